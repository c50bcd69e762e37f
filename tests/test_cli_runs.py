"""The CLI contract of `bayesplit runs`: foreign files untouched, bad paths refused early."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import good_table
from typer.testing import CliRunner

from bayesplit.cli import app
from bayesplit.errors import BayesplitError
from bayesplit.runs import load_runs, write_table
from bayesplit.store import RunStore

runner = CliRunner()


def _ok(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _refused(result, match: str = "") -> str:
    """Exit 2, exactly one `error:` line on stderr, no traceback; returns that line."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert match in errors[0], errors[0]
    return errors[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>")
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture
def table_csv(tmp_path) -> Path:
    path = tmp_path / "runs.csv"
    good_table().to_csv(path, index=False)
    return path


@pytest.fixture
def store(tmp_path) -> Path:
    path = tmp_path / "runs.db"
    RunStore(path).append(good_table())
    return path


def _foreign(path: Path, sql: str) -> Path:
    con = sqlite3.connect(path)
    con.execute(sql)
    con.commit()
    con.close()
    return path


# -- 1. a SQLite file that is not a run store is refused and never modified ------------------

FOREIGN = {
    "other table": "create table t(a)",
    "table named runs": "create table runs(a)",
}


def _commands(db: Path, table_csv: Path, out: Path) -> dict[str, list[str]]:
    return {
        "import": ["runs", "import", str(table_csv), "--store", str(db)],
        "export": ["runs", "export", str(db), "--out", str(out)],
        "export json": ["runs", "export", str(db), "--out", str(out), "--json"],
        "list": ["runs", "list", str(db)],
        "list json": ["runs", "list", str(db), "--json"],
        "validate": ["runs", "validate", str(db)],
    }


@pytest.mark.parametrize("schema", FOREIGN)
@pytest.mark.parametrize(
    "command", ["import", "export", "export json", "list", "list json", "validate"]
)
def test_foreign_sqlite_is_refused_untouched(tmp_path, table_csv, schema, command):
    db = _foreign(tmp_path / "other.db", FOREIGN[schema])
    out = tmp_path / "out" / "o.csv"
    before = _snapshot(tmp_path)
    result = runner.invoke(app, _commands(db, table_csv, out)[command])
    _refused(result, "not a bayesplit run store")
    assert _snapshot(tmp_path) == before  # same bytes, still not WAL, no -wal/-shm, no out/
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_validate_json_on_a_foreign_sqlite_names_the_problem(tmp_path):
    db = _foreign(tmp_path / "other.sqlite", "create table t(a)")
    result = runner.invoke(app, ["runs", "validate", str(db), "--json"])
    _refused(result)
    out = json.loads(result.stdout)
    assert out["valid"] is False and "not a bayesplit run store" in out["problems"][0]


@pytest.mark.parametrize("content", [b"", b"this is not sqlite" * 100])
@pytest.mark.parametrize("command", ["export", "list", "validate"])
def test_empty_or_junk_file_is_not_a_store_for_reading(tmp_path, table_csv, content, command):
    db = tmp_path / "x.db"
    db.write_bytes(content)
    before = _snapshot(tmp_path)
    result = runner.invoke(app, _commands(db, table_csv, tmp_path / "o.csv")[command])
    _refused(result, "not a bayesplit run store")
    assert _snapshot(tmp_path) == before


def test_import_turns_an_empty_file_into_a_store_but_refuses_junk(tmp_path, table_csv):
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    assert (
        _ok(
            runner.invoke(app, ["runs", "import", str(table_csv), "--store", str(empty), "--json"])
        )["total"]
        == 5
    )
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    _refused(runner.invoke(app, ["runs", "import", str(table_csv), "--store", str(junk)]))
    assert junk.read_bytes() == b"this is not sqlite" * 100


def test_reading_commands_leave_a_store_unchanged(tmp_path, store):
    before = _snapshot(tmp_path)
    _ok(runner.invoke(app, ["runs", "list", str(store), "--json"]))
    _ok(runner.invoke(app, ["runs", "validate", str(store), "--json"]))
    assert _snapshot(tmp_path) == before
    _ok(
        runner.invoke(
            app, ["runs", "export", str(store), "--out", str(tmp_path / "o.csv"), "--json"]
        )
    )
    assert {k: v for k, v in _snapshot(tmp_path).items() if k != "o.csv"} == before


@pytest.mark.parametrize("name", ["x.txt", "runs.csv", "store"])
def test_import_store_needs_a_store_extension(tmp_path, table_csv, name):
    target = tmp_path / "new" / name
    result = runner.invoke(app, ["runs", "import", str(table_csv), "--store", str(target)])
    _refused(result, "must end in .db, .sqlite, .sqlite3")
    assert not (tmp_path / "new").exists()
    # an existing non-SQLite file with the wrong extension is refused and left alone
    _refused(runner.invoke(app, ["runs", "import", str(table_csv), "--store", str(table_csv)]))
    assert pd.read_csv(table_csv).shape == good_table().shape


def test_import_creates_a_missing_store_in_a_new_folder(tmp_path, table_csv):
    target = tmp_path / "a" / "b" / "runs.sqlite"
    assert _ok(
        runner.invoke(app, ["runs", "import", str(table_csv), "--store", str(target), "--json"])
    ) == {
        "added": 5,
        "skipped": 0,
        "total": 5,
        "store": str(target),
    }


def test_import_of_a_bad_table_creates_no_store(tmp_path):
    bad = tmp_path / "bad.csv"
    good_table().assign(loss=-1.0).to_csv(bad, index=False)
    target = tmp_path / "new" / "runs.db"
    _refused(runner.invoke(app, ["runs", "import", str(bad), "--store", str(target)]))
    assert not (tmp_path / "new").exists()


def test_import_of_a_table_with_values_the_store_cannot_keep_creates_no_store(tmp_path):
    """A Parquet binary column validates, but JSON cannot hold bytes: it was a traceback
    after an empty store had been created."""
    table = tmp_path / "runs.parquet"
    good_table().assign(blob=[b"\x00raw"] * 5).to_parquet(table)
    target = tmp_path / "new" / "runs.db"
    _refused(
        runner.invoke(app, ["runs", "import", str(table), "--store", str(target)]),
        "column 'blob' holds a value the run store cannot keep (row 1: bytes)",
    )
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(("sep", "name"), [(";", "';'"), ("\t", "tabs")])
def test_a_csv_separated_otherwise_is_named_not_reported_as_missing_columns(tmp_path, sep, name):
    """A European spreadsheet's ';' CSV was "missing column 'run_id' (and 4 more problems)"
    though every column was there."""
    table = tmp_path / "runs.csv"
    good_table().to_csv(table, index=False, sep=sep)
    _refused(
        runner.invoke(app, ["runs", "validate", str(table)]),
        f"the file seems to be separated by {name}: .csv files are read with commas",
    )


# -- 2. unusable output paths are refused before anything is read or written ---------------


def _bad_paths(tmp_path: Path, name: str) -> dict[str, tuple[Path, str]]:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    folder = tmp_path / f"folder{Path(name).suffix}"
    folder.mkdir()
    cases = {
        "under a file": (blocker / name, "is a file, not a folder"),
        "existing folder": (folder, "is a folder; give a file name"),
    }
    if Path("/proc/self").is_dir():
        cases["in /proc"] = (Path("/proc") / name, "cannot write in /proc")
    return cases


@pytest.mark.parametrize("case", ["under a file", "existing folder", "in /proc"])
def test_export_refuses_unusable_out(tmp_path, store, case):
    cases = _bad_paths(tmp_path, "o.csv")
    if case not in cases:
        pytest.skip("no /proc here")
    out, message = cases[case]
    before = _snapshot(tmp_path)
    _refused(runner.invoke(app, ["runs", "export", str(store), "--out", str(out)]), message)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("case", ["under a file", "existing folder", "in /proc"])
def test_import_refuses_unusable_store_path(tmp_path, table_csv, case):
    cases = _bad_paths(tmp_path, "s.db")
    if case not in cases:
        pytest.skip("no /proc here")
    target, message = cases[case]
    before = _snapshot(tmp_path)
    _refused(
        runner.invoke(app, ["runs", "import", str(table_csv), "--store", str(target)]), message
    )
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("name", ["o.txt", "o.json.gz", "o", "o.json"])
def test_export_bad_extension_leaves_no_folder_behind(tmp_path, store, name):
    result = runner.invoke(
        app, ["runs", "export", str(store), "--out", str(tmp_path / "new" / name)]
    )
    _refused(result, "must end in .csv, .csv.gz, .parquet or .jsonl")
    assert not (tmp_path / "new").exists()


def test_write_table_checks_the_format_before_making_folders(tmp_path):
    with pytest.raises(BayesplitError, match="cannot write o.xlsx"):
        write_table(good_table(), tmp_path / "new" / "o.xlsx")
    assert not (tmp_path / "new").exists()


# -- 3. --json everywhere; validate lists each problem once -------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("o.csv", "csv"), ("o.csv.gz", "csv.gz"), ("o.parquet", "parquet"), ("o.jsonl", "jsonl")],
)
def test_export_json_and_round_trip(tmp_path, store, name, fmt):
    out = tmp_path / "sub" / name
    got = _ok(runner.invoke(app, ["runs", "export", str(store), "--out", str(out), "--json"]))
    assert got == {"store": str(store), "out": str(out), "format": fmt, "rows": 5, "runs": 3}
    back = _ok(runner.invoke(app, ["runs", "validate", str(out), "--json"]))
    assert back["valid"] and back["rows"] == 5


def test_export_table_mode_says_what_it_wrote(tmp_path, store):
    result = runner.invoke(app, ["runs", "export", str(store), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 0 and result.stdout == ""
    assert "wrote 5 rows (3 runs)" in result.stderr


@pytest.mark.parametrize("case", ["missing", "empty", "folder"])
def test_validate_json_always_prints_one_object(tmp_path, case):
    path = tmp_path / "runs.csv"
    if case == "empty":
        path.touch()
    elif case == "folder":
        path.mkdir()
    result = runner.invoke(app, ["runs", "validate", str(path), "--json"])
    _refused(result)
    out = json.loads(result.stdout)
    assert out["valid"] is False and out["path"] == str(path) and len(out["problems"]) == 1


def test_validate_lists_each_problem_once(tmp_path):
    bad = tmp_path / "bad.csv"
    good_table().assign(loss=-1.0, params="abc").to_csv(bad, index=False)
    result = runner.invoke(app, ["runs", "validate", str(bad)])
    _refused(result, "2 problems (listed above)")
    assert result.stderr.count("non-numeric") == 1 and result.stderr.count("loss must be > 0") == 1
    single = tmp_path / "single.csv"
    good_table().assign(loss=-1.0).to_csv(single, index=False)
    one = runner.invoke(app, ["runs", "validate", str(single)])
    _refused(one, "loss must be > 0")
    assert one.stderr.count("loss must be > 0") == 1


def test_a_row_longer_than_the_header_is_named_not_read_shifted(tmp_path, table_csv):
    # a trailing comma on every data row: pandas took run_id for the index and shifted the
    # other columns left, so the error blamed pretrain_tokens for holding 'web'
    lines = table_csv.read_text().splitlines()
    trailing = tmp_path / "trailing.csv"
    trailing.write_text("\n".join([lines[0], *(f"{line}," for line in lines[1:])]) + "\n")
    fields = len(lines[0].split(","))
    for command in (["validate"], ["import", "--store", str(tmp_path / "s.db")]):
        args = ["runs", command[0], str(trailing), *command[1:]]
        _refused(runner.invoke(app, args), f"line 2 has {fields + 1} fields, the header {fields}")
    assert not (tmp_path / "s.db").exists()
    one = tmp_path / "one.csv"  # one long row among good ones: pandas' own tokenizer message
    one.write_text("\n".join([*lines[:2], lines[2] + ",7", *lines[3:]]) + "\n")
    _refused(runner.invoke(app, ["runs", "validate", str(one)]), "line 3 has")


@pytest.mark.parametrize(
    ("column", "value"),
    [("eval_domain", ["web", "code"]), ("eval_domain", True), ("run_id", {"id": 1})],
)
def test_a_json_list_or_object_is_no_domain_or_run_name(tmp_path, column, value):
    # str() made ["web", "code"] one domain named "['web', 'code']", and the table valid
    rows = json.loads(good_table().head(2).to_json(orient="records"))
    rows[1][column] = value
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(rows))
    result = runner.invoke(app, ["runs", "validate", str(path), "--json"])
    _refused(result, f"column '{column}' holds values that are not names (row 2: {value!r})")
    assert json.loads(result.stdout)["valid"] is False
    rows[1][column] = 7  # a number is a name, as in a CSV (a domain named 7)
    path.write_text(json.dumps(rows))
    assert _ok(runner.invoke(app, ["runs", "validate", str(path), "--json"]))["valid"]


def test_a_json_nan_in_a_name_column_is_blank_not_the_name_nan(tmp_path):
    # Python's json writes a general run's missing train_domain as NaN, read back as the
    # domain "nan": "unknown train_domain 'nan'"
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(good_table().head(2).to_dict("records")))
    assert "NaN" in path.read_text()
    assert _ok(runner.invoke(app, ["runs", "validate", str(path), "--json"]))["valid"]


# -- 4. bundled:NAME, as every --runs takes it ---------------------------------------------


def test_validate_and_list_take_bundled_names():
    got = _ok(runner.invoke(app, ["runs", "validate", "bundled:gadre2024", "--json"]))
    assert got["valid"] and got["path"] == "bundled:gadre2024" and got["rows"] > 0
    listed = _ok(
        runner.invoke(app, ["runs", "list", "bundled:gadre2024", "--json", "--limit", "2"])
    )
    assert listed["rows"] == got["rows"] and len(listed["runs"]) == 2
    _refused(runner.invoke(app, ["runs", "list", "bundled:nope"]), "unknown dataset 'nope'")
    unknown = runner.invoke(app, ["runs", "validate", "bundled:nope", "--json"])
    _refused(unknown, "unknown dataset")
    assert json.loads(unknown.stdout)["valid"] is False


# -- the store API behind it ----------------------------------------------------------------


def test_run_store_read_only_and_check(tmp_path, store):
    foreign = _foreign(tmp_path / "f.db", "create table runs(a)")
    before = foreign.read_bytes()
    for kwargs in ({}, {"create": False}, {"read_only": True}):
        with pytest.raises(BayesplitError, match="not a bayesplit run store"):
            RunStore(foreign, **kwargs)
    with pytest.raises(BayesplitError, match="not a bayesplit run store"):
        RunStore.check(foreign, allow_empty=True)
    assert foreign.read_bytes() == before
    RunStore.check(store)
    ro = RunStore(store, read_only=True)
    assert len(ro) == 5
    with pytest.raises(BayesplitError, match="read-only"):
        ro.append(good_table().assign(run_id="new"))
    with pytest.raises(BayesplitError, match="no such run store"):
        RunStore(tmp_path / "missing.db", read_only=True)
    assert not (tmp_path / "missing.db").exists()


def test_brackets_in_names_and_paths_are_shown_not_read_as_styles(tmp_path):
    # rich reads "[...]" as markup: run[lr=3e-4] lost its brackets, "[/bold]" crashed
    folder = tmp_path / "d[x]"
    folder.mkdir()
    src = folder / "runs[bold].csv"
    good_table().assign(
        run_id=["run[lr=3e-4]", "run[lr=3e-4]", "[/bold]", "[/bold]", "r3"],
        eval_domain=["[web]", "code", "[web]", "code", "code"],
    ).to_csv(src, index=False)
    db = folder / "s[red].db"
    out = runner.invoke(app, ["runs", "validate", str(src)])
    assert out.exit_code == 0 and "runs[bold].csv" in out.stderr, out.output
    out = runner.invoke(app, ["runs", "import", str(src), "--store", str(db)])
    assert out.exit_code == 0 and "s[red].db" in out.stderr, out.output
    out = runner.invoke(app, ["runs", "list", str(db)])
    assert out.exit_code == 0, out.output
    assert "run[lr=3e-4]" in out.stderr and "[/bold]" in out.stderr and "[web]" in out.stderr


def test_import_accepts_a_branch_whose_domain_only_the_store_has_seen(tmp_path):
    t = good_table()
    general, branch = tmp_path / "general.csv", tmp_path / "branch.csv"
    t[t["spec_tokens"] == 0].to_csv(general, index=False)
    t[t["spec_tokens"] > 0].assign(eval_domain="web").to_csv(branch, index=False)
    db = tmp_path / "runs.db"
    _ok(runner.invoke(app, ["runs", "import", str(general), "--store", str(db), "--json"]))
    assert (
        _ok(runner.invoke(app, ["runs", "import", str(branch), "--store", str(db), "--json"]))[
            "total"
        ]
        == 5
    )
    # without the store the same file is refused: its train_domain is no eval_domain of it
    _refused(
        runner.invoke(app, ["runs", "import", str(branch), "--store", str(tmp_path / "new.db")]),
        "unknown train_domain 'code'",
    )
    assert not (tmp_path / "new.db").exists()


def test_export_to_parquet_keeps_an_extra_column_typed_differently_by_two_imports(tmp_path):
    db = tmp_path / "runs.db"
    for i, (lr, warmup) in enumerate([(0.001, 1), ("auto", 0.5)]):
        path = tmp_path / f"t{i}.csv"
        good_table().assign(
            run_id=lambda d, i=i: d["run_id"] + f"-{i}", lr=lr, warmup=warmup
        ).to_csv(path, index=False)
        _ok(runner.invoke(app, ["runs", "import", str(path), "--store", str(db), "--json"]))
    out = tmp_path / "all.parquet"
    _ok(runner.invoke(app, ["runs", "export", str(db), "--out", str(out), "--json"]))
    back = pd.read_parquet(out)
    assert back["lr"].tolist() == ["0.001"] * 5 + ["auto"] * 5
    assert back["warmup"].tolist() == [1.0] * 5 + [0.5] * 5  # numbers stay numbers


def test_list_shows_an_empty_store_as_empty(tmp_path):
    # a store a trainer created before its first row: list said "the table has no rows"
    # and exited 2, while export wrote it (0 rows) and exited 0
    from bayesplit.store import RunStore

    store = tmp_path / "runs.db"
    RunStore(store)
    result = runner.invoke(app, ["runs", "list", str(store), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout) == {
        "rows": 0,
        "shown": 0,
        "runs": [],
    }
    result = runner.invoke(app, ["runs", "list", str(store)])
    assert result.exit_code == 0 and "no rows yet" in result.output
    # validate agrees with list (it said "the table has no rows", exit 2)
    result = runner.invoke(app, ["runs", "validate", str(store), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["valid"] is True and summary["rows"] == summary["runs"] == 0
    assert summary["warnings"] == ["a run store with no rows yet"]
    result = runner.invoke(app, ["runs", "validate", str(store)])
    assert result.exit_code == 0 and "no rows yet" in result.output
    # export wrote a header-only CSV (exit 0) that `runs import` then refused
    out = tmp_path / "e.csv"
    result = runner.invoke(app, ["runs", "export", str(store), "--out", str(out)])
    assert result.exit_code == 2 and "no rows yet: nothing to export" in result.stderr
    assert not out.exists()


def test_import_takes_a_bundled_data_set_as_the_other_runs_commands_do(tmp_path):
    from bayesplit.datasets import load_dataset

    store = tmp_path / "g.db"
    result = runner.invoke(app, ["runs", "import", "bundled:gadre2024", "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert len(load_runs(store)) == len(load_dataset("gadre2024"))
    bad = runner.invoke(app, ["runs", "import", "bundled:nope", "--store", str(tmp_path / "n.db")])
    assert bad.exit_code == 2 and not (tmp_path / "n.db").exists()


def test_validate_warns_of_an_extra_the_store_cannot_keep(tmp_path):
    # a Parquet binary column is a valid run table, but `runs import` refuses it: validate
    # said "✓" and nothing else, so the refusal came only at import
    table = good_table().assign(blob=b"\x00\x01")
    path = tmp_path / "runs.parquet"
    table.to_parquet(path)
    out = _ok(runner.invoke(app, ["runs", "validate", str(path), "--json"]))
    assert out["valid"] is True
    assert len(out["warnings"]) == 1
    assert "column 'blob' holds a value the run store cannot keep" in out["warnings"][0]
    assert "`runs import` will refuse this table" in out["warnings"][0]
    text = runner.invoke(app, ["runs", "validate", str(path)])
    assert text.exit_code == 0 and "runs import` will refuse" in " ".join(text.output.split())
    _refused(runner.invoke(app, ["runs", "import", str(path), "--store", str(tmp_path / "s.db")]))
    plain = tmp_path / "plain.csv"
    write_table(good_table(), plain)
    assert _ok(runner.invoke(app, ["runs", "validate", str(plain), "--json"]))["warnings"] == []


@pytest.mark.parametrize("value", ["inf", "-inf"])
def test_an_infinite_extra_is_refused_not_stored_as_missing(tmp_path, value):
    # JSON has no infinity: `runs import` stored grad_norm=inf as null, with exit 0 and no
    # warning from validate, in a store that cannot be edited
    path = tmp_path / "runs.csv"
    table = good_table().assign(grad_norm=1.5)
    table.loc[1, "grad_norm"] = float(value)
    write_table(table, path)
    out = _ok(runner.invoke(app, ["runs", "validate", str(path), "--json"]))
    assert "column 'grad_norm' holds an infinite value (row 2)" in out["warnings"][0]
    store = tmp_path / "s.db"
    _refused(runner.invoke(app, ["runs", "import", str(path), "--store", str(store)]), "infinite")
    assert not store.exists()
    nested = tmp_path / "nested.jsonl"
    rows = good_table().assign(hist=None).to_dict("records")
    rows[0]["hist"] = [1.0, float(value)]
    nested.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _refused(runner.invoke(app, ["runs", "import", str(nested), "--store", str(store)]), "'hist'")
    # a 0-d array (a TypeError) and a decimal infinity (stored as null) are caught too
    from decimal import Decimal

    from bayesplit.store import _to_records

    for odd in (np.array(float(value)), Decimal(value)):
        with pytest.raises(BayesplitError, match="holds an infinite value"):
            _to_records(good_table().head(1).assign(grad_norm=[odd]))
    assert _to_records(good_table().head(1).assign(grad_norm=[np.array(2.5)]))
    # NaN is missing, in JSON as in the table: still kept as a blank
    table.loc[1, "grad_norm"] = float("nan")
    write_table(table, path)
    _ok(runner.invoke(app, ["runs", "import", str(path), "--store", str(store), "--json"]))
    assert RunStore(store).read()["grad_norm"].isna().sum() == 1


def test_runs_list_shows_checkpoints_and_says_when_limit_cut_the_json(tmp_path):
    # two checkpoints of one trunk looked alike (no step or trunk_id column), and --json's
    # "runs" held 50 of 81 rows with nothing saying so
    path = tmp_path / "steps.csv"
    path.write_text(
        "run_id,params,pretrain_tokens,eval_domain,loss,step,trunk_id\n"
        "r1,1e8,1e9,web,3.1,1,t1\nr1,1e8,1.001e9,web,3.0,2,t1\n"
    )
    res = runner.invoke(app, ["runs", "list", str(path)], terminal_width=200)
    assert res.exit_code == 0, res.output
    header = next(line for line in res.stderr.splitlines() if "run_id" in line)
    assert "step" in header and "trunk_id" in header
    out = _ok(runner.invoke(app, ["runs", "list", str(path), "--json", "--limit", "1"]))
    assert (out["rows"], out["shown"], len(out["runs"])) == (2, 1, 1)
    out = _ok(runner.invoke(app, ["runs", "list", str(path), "--json", "--limit", "0"]))
    assert (out["rows"], out["shown"], len(out["runs"])) == (2, 2, 2)
    # a step shows whole (123456 read "1.23e+05"), and a missing one as a dash (it read
    # "<NA>" from a store mixing trained and imported rows)
    store = tmp_path / "mixed.db"
    big = tmp_path / "big.csv"
    big.write_text(
        "run_id,params,pretrain_tokens,eval_domain,loss,step\n"
        "r1,1e8,1e9,web,3.1,123456\nr2,1e8,2e9,web,3.0,\n"
    )
    _ok(runner.invoke(app, ["runs", "import", str(big), "--store", str(store), "--json"]))
    for source in (big, store):
        res = runner.invoke(app, ["runs", "list", str(source)], terminal_width=200)
        assert "123456" in res.stderr and "<NA>" not in res.stderr and "1.23e+05" not in res.stderr
    # a table without them keeps the eight columns
    plain = tmp_path / "plain.csv"
    write_table(good_table(), plain)
    res = runner.invoke(app, ["runs", "list", str(plain)], terminal_width=200)
    header = next(line for line in res.stderr.splitlines() if "run_id" in line)
    assert "step" not in header and "trunk_id" not in header


def test_runs_list_json_prints_what_validate_accepts(tmp_path):
    # a Parquet bytes or duration column: validate said fine, list --json was a TypeError
    df = good_table()
    df["blob"] = [b"\x00\x01"] * len(df)
    df["took"] = pd.to_timedelta([5] * len(df), unit="s")
    path = tmp_path / "t.parquet"
    df.to_parquet(path)
    assert runner.invoke(app, ["runs", "validate", str(path)]).exit_code == 0
    res = runner.invoke(app, ["runs", "list", str(path), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    rows = rows["runs"] if isinstance(rows, dict) else rows
    assert rows[0]["blob"] == "0001" and rows[0]["took"] == "P0DT0H0M5S"


def test_conversion_to_json_of_a_value_nested_too_deeply_is_one_line(capsys):
    # the recursive conversion raised RecursionError (a traceback from every command)
    from bayesplit._io import jsonable
    from bayesplit.cli._common import emit_json

    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(BayesplitError, match="nested too deeply"):
        jsonable({"x": deep})
    with pytest.raises(BayesplitError, match="nested too deeply"):
        emit_json({"x": deep})
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("depth", [500, 5_000])
@pytest.mark.parametrize("command", ["validate", "import"])
def test_an_extra_value_nested_too_deeply_is_one_line(tmp_path, command, depth):
    # [[[...]]] 500 deep: json read it, then a RecursionError traceback. Where the limit
    # falls depends on the stack already in use, so either layer may be the one to say it
    rows = good_table().to_dict("records")
    rows[0]["x"] = "DEEP"
    lines = [json.dumps(r) for r in rows]  # the encoder itself refuses such depths
    lines[0] = lines[0].replace('"DEEP"', "[" * depth + "]" * depth)
    path = tmp_path / "deep.jsonl"
    path.write_text("\n".join(lines) + "\n")
    store = tmp_path / "s.db"
    args = ["runs", command, str(path)] + (["--store", str(store)] if command == "import" else [])
    res = runner.invoke(app, args)
    assert "Traceback" not in res.output and not isinstance(res.exception, RecursionError)
    said = " ".join(res.stderr.split())
    if res.exit_code == 2:  # refused in one line, nothing written
        assert said.startswith("error: ") and "nested too deeply" in said
        assert res.stderr.count("\n") == 1 and not store.exists()
    else:  # read and kept whole, or (validate) read with the store's refusal as a warning
        assert res.exit_code == 0, res.output
        if command == "import":
            assert len(RunStore(store).read()) == len(rows)
        else:
            assert "nested too deeply" not in said or "`runs import` will refuse" in said


def test_whole_numbers_missing_in_some_rows_stay_exact_through_the_store(tmp_path):
    # an extra integer absent from some rows became float64 (2**53 + 1 read as 2**53) on
    # import and on read, and a step missing in some rows was exported as 5.0
    big = 2**53 + 1
    rows = good_table().to_dict("records")
    rows[0] |= {"n": 1, "big": big, "step": 5}
    path = tmp_path / "ix.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert runner.invoke(app, ["runs", "import", str(path), "--store", str(tmp_path / "s.db")]).exit_code == 0  # fmt: skip
    with sqlite3.connect(tmp_path / "s.db") as con:
        extra = json.loads(con.execute("SELECT extra FROM runs ORDER BY row_id").fetchone()[0])
    assert extra == {"big": big, "n": 1}
    back = RunStore(tmp_path / "s.db").read()
    assert back["big"].iloc[0] == big and back["big"].isna().sum() == len(rows) - 1
    assert str(back["step"].dtype) == "Int64" and back["step"].iloc[0] == 5
    for suffix in ("jsonl", "csv"):
        out = tmp_path / f"out.{suffix}"
        res = runner.invoke(app, ["runs", "export", str(tmp_path / "s.db"), "--out", str(out)])
        assert res.exit_code == 0, res.output
        text = out.read_text()
        assert str(big) in text and "5.0" not in text


@pytest.mark.parametrize(("column", "value"), [("trunk_id", "NA"), ("schedule", "None"), ("train_domain", "NA"), ("note", "N/A")])  # fmt: skip
def test_csv_export_refuses_text_it_would_read_back_as_missing(tmp_path, column, value):
    # trunk_id "NA" came back from CSV as no trunk; train_domain "NA" as an invalid table
    df = good_table()
    if column == "train_domain":
        df["eval_domain"] = df["eval_domain"].replace("code", "NA")
    df.loc[4, column] = value
    if column == "trunk_id":  # each run its own trunk, r3 on trunk "NA"
        df["trunk_id"] = df["run_id"].replace("r3", value)
    RunStore(tmp_path / "s.db").append(df)
    out = tmp_path / "out.csv"
    res = runner.invoke(app, ["runs", "export", str(tmp_path / "s.db"), "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert f"column {column!r} holds the text {value!r}" in res.stderr
    assert "write .jsonl or .parquet" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]
    deep = tmp_path / "new" / "deeper" / "out.csv"  # the folders it made are gone too
    res = runner.invoke(app, ["runs", "export", str(tmp_path / "s.db"), "--out", str(deep)])
    assert res.exit_code == 2, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]
    keep = tmp_path / "out.jsonl"
    assert runner.invoke(app, ["runs", "export", str(tmp_path / "s.db"), "--out", str(keep)]).exit_code == 0  # fmt: skip
    assert load_runs(keep)[column].iloc[4] == value


def test_parquet_export_of_a_mixed_column_writes_mappings_as_json(tmp_path):
    # a mapping in one row and text in another: Parquet got "{'lr': 0.001, 'warm': True}"
    df = good_table()
    df["cfg"] = [{"lr": 0.001, "warm": True, "x": None}, "plain", None, None, None]
    RunStore(tmp_path / "s.db").append(df)
    out = tmp_path / "out.parquet"
    res = runner.invoke(app, ["runs", "export", str(tmp_path / "s.db"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    cfg = pd.read_parquet(out)["cfg"]
    assert json.loads(cfg.iloc[0]) == {"lr": 0.001, "warm": True, "x": None}
    assert cfg.iloc[1] == "plain"


def test_csv_gz_export_is_the_same_bytes_every_time_and_names_its_file(tmp_path):
    # the gzip header held the temp file's name and the time
    import gzip
    import time

    RunStore(tmp_path / "s.db").append(good_table())
    outs = []
    for i in range(2):
        out = tmp_path / f"t{i}.csv.gz"
        assert runner.invoke(app, ["runs", "export", str(tmp_path / "s.db"), "--out", str(out)]).exit_code == 0  # fmt: skip
        outs.append(out.read_bytes())
        time.sleep(1.1)
    header = outs[0][10 : outs[0].index(b"\0", 10)]  # FNAME, after the 10-byte header
    assert header == b"t0.csv" and outs[0][4:8] == b"\0\0\0\0"  # no mtime
    assert outs[0].replace(b"t0.csv", b"t1.csv", 1) == outs[1]
    assert load_runs(tmp_path / "t1.csv.gz").equals(load_runs(tmp_path / "t0.csv.gz"))
    assert gzip.decompress(outs[0]).startswith(b"run_id,")


def test_import_skip_existing_appends_the_rows_a_grown_table_added(tmp_path):
    first, grown = tmp_path / "first.csv", tmp_path / "grown.csv"
    good_table().iloc[:3].to_csv(first, index=False)
    good_table().to_csv(grown, index=False)
    store = tmp_path / "s.db"
    assert _ok(runner.invoke(app, ["runs", "import", str(first), "--store", str(store), "--json"]))["added"] == 3  # fmt: skip
    _refused(runner.invoke(app, ["runs", "import", str(grown), "--store", str(store)]), "3 of the rows are already in the store")  # fmt: skip
    out = _ok(runner.invoke(app, ["runs", "import", str(grown), "--store", str(store), "--skip-existing", "--json"]))  # fmt: skip
    assert out == {"added": 2, "skipped": 3, "total": 5, "store": str(store)}


def test_validate_and_import_warn_of_tokens_per_parameter_no_run_trains_on(tmp_path):
    """FLOPs in pretrain_tokens (1.2e18 for N = 1e8) validated and imported unsaid."""
    path = tmp_path / "units.csv"
    good_table().assign(pretrain_tokens=[1.2e18, 1.2e18, 6e8, 6e8, 2e8]).to_csv(path, index=False)
    said = "(pretrain_tokens + spec_tokens) / params above 1e+07 tokens per parameter (rows 1, 2"
    out = _ok(runner.invoke(app, ["runs", "validate", str(path), "--json"]))
    assert out["valid"] is True and len(out["warnings"]) == 1
    assert (
        out["warnings"][0].startswith(said) and "FLOPs in the token column?" in out["warnings"][0]
    )
    text = runner.invoke(app, ["runs", "validate", str(path)])
    assert text.exit_code == 0 and said in " ".join(text.output.split())
    store = tmp_path / "s.db"
    with pytest.warns(UserWarning, match=re.escape(said)):  # bayesplit.cli prints it one line
        result = runner.invoke(app, ["runs", "import", str(path), "--store", str(store), "--json"])
    assert _ok(result) == {"added": 5, "skipped": 0, "total": 5, "store": str(store)}


def test_a_piped_table_is_not_called_empty(tmp_path):
    """`runs validate <(cat runs.csv)` said "/dev/fd/63: the file is empty"."""
    import os

    read, write = os.pipe()
    try:
        if not Path(f"/dev/fd/{read}").exists():
            pytest.skip("no /dev/fd here")
        for args in (["validate"], ["import", "--store", str(tmp_path / "s.db")]):
            error = _refused(runner.invoke(app, ["runs", args[0], f"/dev/fd/{read}", *args[1:]]))
            assert "is not a regular file (a pipe" in error and "empty" not in error
        assert not (tmp_path / "s.db").exists()
    finally:
        os.close(read)
        os.close(write)
