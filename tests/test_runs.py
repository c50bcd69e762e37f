"""Run tables: canonical form, one message per problem, loaders."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import good_table

from bayesplit.errors import BayesplitError
from bayesplit.runs import (
    RunTableError,
    load_runs,
    modelled_rows,
    read_table,
    validate_runs,
    write_table,
)


def test_canonical_form_fills_optional_columns():
    t = good_table().drop(columns=["seed", "spec_tokens", "train_domain"])
    out = validate_runs(t)
    assert out["spec_tokens"].tolist() == [0.0] * 5
    assert out["seed"].dtype == np.int64
    assert out["train_domain"].isna().all()
    assert list(out.columns[:8]) == [
        "run_id",
        "seed",
        "params",
        "pretrain_tokens",
        "spec_tokens",
        "train_domain",
        "eval_domain",
        "loss",
    ]


def test_extra_columns_are_kept(table):
    out = validate_runs(table.assign(wall_time_s=1.5))
    assert out["wall_time_s"].tolist() == [1.5] * 5


# Each class of bad input named in the issue, with the words its message must carry.
BAD = {
    "missing column": (lambda t: t.drop(columns=["loss"]), "missing column 'loss'"),
    "non-numeric": (lambda t: t.assign(params=["1e7", "abc", 3e7, 3e7, 1e7]), "non-numeric"),
    "nan loss": (lambda t: t.assign(loss=[3.9, float("nan"), 3.5, 2.5, 2.3]), "loss"),
    "inf loss": (lambda t: t.assign(loss=[3.9, float("inf"), 3.5, 2.5, 2.3]), "infinite"),
    "non-positive loss": (lambda t: t.assign(loss=[3.9, 0.0, 3.5, 2.5, 2.3]), "loss must be > 0"),
    "params <= 0": (
        lambda t: t.assign(params=[1e7, -1e7, 3e7, 3e7, 1e7]),
        "params (N) must be > 0",
    ),
    "tokens <= 0": (
        lambda t: t.assign(pretrain_tokens=[2e8, 0, 6e8, 6e8, 2e8]),
        "pretrain_tokens (D) must be > 0",
    ),
    "negative spec": (
        lambda t: t.assign(spec_tokens=[0, 0, 0, -5, 5e7]),
        "spec_tokens (D') must be >= 0",
    ),
    "duplicate": (lambda t: pd.concat([t, t.iloc[[0]]]), "duplicate (run_id, eval_domain, step)"),
    "unknown domain": (
        lambda t: t.assign(train_domain=[None, None, None, None, "legal"]),
        "unknown train_domain 'legal'",
    ),
    "wrong unit params": (lambda t: t.assign(params=[10, 10, 30, 30, 10]), "wrong unit"),
    "wrong unit tokens": (lambda t: t.assign(pretrain_tokens=[2, 2, 6, 6, 2]), "wrong unit"),
    "perplexity": (lambda t: t.assign(loss=[49.0, 16.4, 33.1, 12.2, 10.0]), "perplexity"),
    # 1e-300 was fitted (log loss -690 among values near 1)
    "implausibly small loss": (
        lambda t: t.assign(loss=[3.9, 1e-300, 3.5, 2.5, 2.3]),
        "loss < 0.001 nats per token is no language model's on real text",
    ),
    "spec without domain": (lambda t: t.assign(train_domain=[None] * 5), "train_domain is empty"),
    # values pandas reads as numbers: True as 1, a date as ns since 1970, complex as real
    "bool in a number column": (
        lambda t: t.assign(loss=[3.9, True, 3.5, 2.5, 2.3]),
        "column 'loss' has non-numeric values (row 2: True)",
    ),
    "dates as sizes": (
        lambda t: t.assign(params=pd.to_datetime(["2020-01-01"] * 5)),
        "column 'params' has non-numeric values (rows 1, 2, 3, 4, 5: Timestamp(",
    ),
    "time spans as tokens": (
        lambda t: t.assign(pretrain_tokens=pd.to_timedelta([1] * 5, unit="s")),
        "column 'pretrain_tokens' has non-numeric values",
    ),
    "complex loss": (
        lambda t: t.assign(loss=np.array([3.9 + 1j, 3.0, 3.5, 2.5, 2.3])),
        "column 'loss' has non-numeric values",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_bad_input_class_is_named(case, table):
    mangle, words = BAD[case]
    with pytest.raises(RunTableError) as err:
        validate_runs(mangle(table))
    assert any(words in p for p in err.value.problems), err.value.problems
    assert "\n" not in str(err.value)


def test_all_problems_are_listed_not_just_the_first(table):
    t = table.assign(loss=[3.9, -1, 3.5, 2.5, 2.3], params=[1e7, 1e7, 0, 3e7, 1e7])
    with pytest.raises(RunTableError) as err:
        validate_runs(t)
    assert len(err.value.problems) == 2
    assert "and 1 more problem" in str(err.value)


def test_rows_are_reported_one_based(table):
    t = table.assign(loss=[3.9, 2.8, -3.5, 2.5, 2.3])
    with pytest.raises(RunTableError, match="row 3"):
        validate_runs(t)


def test_domains_argument_restricts_eval_domains(table):
    with pytest.raises(RunTableError, match="unknown eval_domain 'web'"):
        validate_runs(table, domains=["code"])


def test_modelled_rows_drop_cross_domain_specialists(table):
    t = validate_runs(
        pd.concat([table, table.iloc[[4]].assign(eval_domain="web")], ignore_index=True)
    )
    assert modelled_rows(t).tolist() == [True, True, True, True, True, False]


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet", ".jsonl"])
def test_round_trip_through_every_format(tmp_path, table, suffix):
    path = tmp_path / f"runs{suffix}"
    write_table(validate_runs(table), path)
    back = load_runs(path)
    pd.testing.assert_frame_equal(
        back[["run_id", "params", "loss", "eval_domain"]],
        validate_runs(table)[["run_id", "params", "loss", "eval_domain"]],
    )
    assert back["train_domain"].iloc[4] == "code" and pd.isna(back["train_domain"].iloc[0])


def test_unreadable_files_are_user_errors(tmp_path):
    bad = tmp_path / "runs.parquet"
    bad.write_text("not parquet")
    with pytest.raises(BayesplitError, match="cannot read"):
        load_runs(bad)
    with pytest.raises(BayesplitError, match="no such file"):
        load_runs(tmp_path / "missing.csv")
    tmp_path.joinpath("x.xlsx").write_text("x")
    with pytest.raises(BayesplitError, match="unknown run table format") as err:
        load_runs(tmp_path / "x.xlsx")
    # every suffix it reads is offered, .tsv included
    assert all(f" {s}" in str(err.value) for s in (".csv", ".tsv", ".parquet", ".jsonl", ".db"))


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "bayesplit.cli", *args], capture_output=True, text=True, cwd=cwd
    )


@pytest.mark.parametrize(
    "case", ["missing column", "non-numeric", "nan loss", "duplicate", "wrong unit params"]
)
def test_cli_validate_exits_2_with_one_line_and_no_traceback(tmp_path, table, case):
    path = tmp_path / "runs.csv"
    BAD[case][0](table).to_csv(path, index=False)
    before = sorted(p.name for p in tmp_path.iterdir())
    res = _cli("runs", "validate", str(path))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    error_lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cli_validate_ok_and_json(tmp_path, table):
    path = tmp_path / "runs.csv"
    table.to_csv(path, index=False)
    res = _cli("runs", "validate", str(path), "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["valid"] and out["rows"] == 5 and out["specialized_rows"] == 1


# -- property-based: any mangling gives a clean table or a RunTableError, never a crash --
_cells = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-10, 10**12),
    st.text(max_size=5),
    st.sampled_from(["", " ", "nan", "1e9", "web", "code"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.sampled_from(list(good_table().columns)), _cells),
        max_size=6,
    ),
    st.sets(st.sampled_from(list(good_table().columns)), max_size=2),
)
def test_mangled_tables_never_crash(edits, dropped):
    t = good_table().astype(object)
    for row, col, value in edits:
        t.loc[row, col] = value
    t = t.drop(columns=list(dropped))
    try:
        out = validate_runs(t)
    except RunTableError as err:
        assert err.problems and all(isinstance(p, str) and "\n" not in p for p in err.problems)
        return
    assert (out["loss"] > 0).all() and np.isfinite(out["loss"]).all()
    assert (out["params"] >= 1e3).all() and (out["pretrain_tokens"] >= 1e3).all()
    assert (out["spec_tokens"] >= 0).all()


# -- reading files as written (stop 26) ----------------------------------------------

HEADER = "run_id,params,pretrain_tokens,spec_tokens,train_domain,eval_domain,loss,seed"


def _csv(tmp_path, *lines: str, name: str = "runs.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_csv_cut_off_mid_row_is_refused_with_its_line(tmp_path):
    full = _csv(tmp_path, HEADER, "r1,1e8,2e9,0,,web,3.0909855,0", "r2,1e8,2e9,0,,web,3.1,0")
    assert len(load_runs(full)) == 2
    cut = tmp_path / "cut.csv"
    text = full.read_text()
    cut.write_text(text[: text.rindex(",3.1")] + ",3")  # the seed field and a digit lost
    with pytest.raises(BayesplitError, match=r"line 3 has 7 of the header's 8 fields"):
        load_runs(cut)


def test_a_repeated_csv_column_is_refused_not_renamed(tmp_path):
    path = _csv(tmp_path, HEADER + ",loss", "r1,1e8,2e9,0,,web,3.1,0,2.9")
    with pytest.raises(BayesplitError, match=r"repeated column name\(s\) 'loss'"):
        load_runs(path)


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_a_json_row_with_a_repeated_key_is_refused_not_resolved(tmp_path, suffix):
    """json keeps the last of two values silently: params 1e7 then 2e7 read as 2e7."""
    row = '{"run_id": "a", "params": 1e7, "pretrain_tokens": 1e9, "eval_domain": "web", '
    row += '"loss": 3.0, "params": 2e7}'
    path = tmp_path / f"runs{suffix}"
    path.write_text(row if suffix == ".jsonl" else f"[{row}]", encoding="utf-8")
    with pytest.raises(BayesplitError, match=r"repeated key\(s\) 'params'"):
        load_runs(path)


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_a_json_number_written_as_text_is_refused(tmp_path, suffix):
    """ "loss": "3.1" was read as 3.1, as CSV's text is; JSON has numbers, and the
    suggestion and truth files refuse text where a number goes."""
    base = {"run_id": "a", "params": 1e7, "pretrain_tokens": 1e9, "eval_domain": "web"}
    rows = [{**base, "loss": "3.1", "seed": "7"}, {**base, "run_id": "b", "loss": 3.0}]
    text = "\n".join(json.dumps(r) for r in rows)
    path = tmp_path / f"runs{suffix}"
    path.write_text(text if suffix == ".jsonl" else json.dumps(rows), encoding="utf-8")
    with pytest.raises(RunTableError) as err:
        load_runs(path)
    assert err.value.problems == [
        "column 'loss' holds numbers written as text (row 1: '3.1'); write them as JSON "
        "numbers, without quotes",
    ]  # a quoted seed keeps every digit of a 64-bit seed: taken
    # a table read from CSV (its seeds kept as text) and written as JSONL reads back
    back = write_table(read_table(_csv(tmp_path, HEADER, "r1,1e8,2e9,0,,web,3.1,7")), tmp_path / "b.jsonl")  # fmt: skip
    assert load_runs(back)["seed"].tolist() == [7]
    # as numbers (and an empty text for a missing step, as before), the table is read
    rows[0] |= {"loss": 3.1, "seed": 7, "step": ""}
    path.write_text("\n".join(json.dumps(r) for r in rows) if suffix == ".jsonl" else json.dumps(rows))  # fmt: skip
    assert load_runs(path)["loss"].tolist() == [3.1, 3.0]


@pytest.mark.parametrize(("name", "text"), [("e.jsonl", ""), ("e.json", "[]"), ("e.csv", "")])
def test_an_empty_table_says_it_has_no_rows(tmp_path, name, text):
    # an empty JSONL listed five missing columns, where CSV and Parquet say "no rows"
    (tmp_path / name).write_text(text)
    with pytest.raises(BayesplitError) as err:
        load_runs(tmp_path / name)
    assert "no rows" in str(err.value) or "is empty" in str(err.value), err.value
    assert "missing column" not in str(err.value)


def test_duplicates_without_an_eval_domain_are_listed_not_a_traceback(tmp_path):
    # NaN != NaN: the example matched no row, and .iloc[0] raised an IndexError
    path = _csv(tmp_path, "run_id,params,pretrain_tokens,eval_domain,loss,step",
                "a,1e8,1e9,,3.0,100", "a,1e8,1e9,,3.1,100")  # fmt: skip
    with pytest.raises(RunTableError) as err:
        load_runs(path)
    assert any("e.g. ('a', None, step 100) at rows 1, 2" in p for p in err.value.problems)
    # two rows of no columns are not "no rows"
    with pytest.raises(RunTableError, match="missing column 'run_id'"):
        validate_runs(pd.DataFrame([{}, {}]))


def test_a_repeated_parquet_column_is_refused_as_a_csv_one_is(tmp_path):
    # pyarrow's "Multiple matches for FieldRef.Name(loss) in ... __fragment_index ..."
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = [["a"], [1e6], [1e8], ["web"], [3.1], [3.2]]
    names = ["run_id", "params", "pretrain_tokens", "eval_domain", "loss", "loss"]
    pq.write_table(pa.table([pa.array(c) for c in cols], names=names), tmp_path / "r.parquet")
    with pytest.raises(BayesplitError, match=r"r\.parquet: repeated column name\(s\) 'loss'$"):
        load_runs(tmp_path / "r.parquet")


def test_duplicate_rows_are_named_with_their_whole_key(tmp_path):
    # the example showed (run_id, eval_domain) under a three-part key, and the rows listed
    # were every clash's, not the example's
    path = _csv(tmp_path, "run_id,params,pretrain_tokens,eval_domain,loss,step",
                "a,1e6,1e8,web,3.1,100", "a,1e6,1e8,web,3.2,100", "b,1e6,1e8,web,3.1,",
                "b,1e6,1e8,web,3.0,")  # fmt: skip
    with pytest.raises(RunTableError) as err:
        load_runs(path)
    assert err.value.problems == [
        "duplicate (run_id, eval_domain, step) rows, e.g. ('a', 'web', step 100) at rows 1, 2; "
        "4 rows in all"
    ]
    path = _csv(tmp_path, HEADER, "r1,1e8,2e9,0,,web,3.1,0", "r1,1e8,2e9,0,,web,3.0,0")
    with pytest.raises(RunTableError, match=r"\('r1', 'web', no step\) at rows 1, 2$"):
        load_runs(path)


def test_a_named_index_is_read_as_the_columns_it_holds(tmp_path):
    """pandas writes df.set_index([...]) to Parquet with the index as columns of the file
    and reads it back as the index: the table was refused as missing run_id."""
    path = tmp_path / "runs.parquet"
    good_table().set_index(["run_id", "eval_domain"]).to_parquet(path)
    pd.testing.assert_frame_equal(load_runs(path), validate_runs(good_table()))
    with pytest.raises(RunTableError, match=r"it is the DataFrame's index: call .reset_index"):
        validate_runs(good_table().set_index("run_id"))


def test_text_columns_are_read_as_written(tmp_path):
    path = _csv(
        tmp_path,
        HEADER + ",trunk_id,schedule",
        "NA,1e8,2e9,0,,007,3.1,0,0012,1e3",
        "r2,1e8,2e9,1e9,007,007,3.0,0,0012,1e3",
        "r3,1e8,2e9,0,NA,None,3.2,NA,,",  # R writes NA for a missing value
    )
    for source in (path, write_table(load_runs(path), tmp_path / "back.jsonl")):
        runs = load_runs(source)
        assert runs["run_id"].tolist() == ["NA", "r2", "r3"]
        assert runs["eval_domain"].tolist() == ["007", "007", "None"]
        assert runs["train_domain"].tolist() == [None, "007", None]
        assert runs["trunk_id"].tolist()[:2] == ["0012", "0012"]
        assert runs["schedule"].tolist()[:2] == ["1e3", "1e3"]
        assert runs["seed"].tolist() == [0, 0, 0]


def test_jsonl_round_trip_is_exact_and_guesses_no_types(tmp_path):
    t = good_table().assign(
        loss=[5.520235389471054, 2.591426, 3.5, 0.1 + 0.2, 2.3],
        wall_time=[1500000000] * 5,  # pandas' JSON reader would make this a date
        train_domain=[None, None, None, None, "code"],
    )
    first = write_table(validate_runs(t), tmp_path / "a.jsonl")
    back = load_runs(first)
    assert back["loss"].tolist() == t["loss"].tolist()  # every bit
    assert back["wall_time"].tolist() == [1500000000] * 5
    second = write_table(back, tmp_path / "b.jsonl")
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_json_with_a_byte_order_mark_is_read_as_a_csv_with_one_is(tmp_path, suffix):
    """Windows tools (PowerShell 5's Out-File -Encoding utf8) write a BOM: CSV took it, JSON
    and JSONL refused the file ("Unexpected UTF-8 BOM")."""
    rows = validate_runs(good_table())
    plain = write_table(rows, tmp_path / "plain.jsonl")
    path = tmp_path / f"bom{suffix}"
    lines = plain.read_text(encoding="utf-8").splitlines()
    text = "\n".join(lines) if suffix == ".jsonl" else "[" + ",".join(lines) + "]"
    path.write_text("\ufeff" + text, encoding="utf-8")
    pd.testing.assert_frame_equal(load_runs(path), load_runs(plain))


def test_seeds_are_kept_exactly_or_refused(tmp_path):
    path = _csv(
        tmp_path,
        HEADER,
        "r1,1e8,2e9,0,,web,3.1,9223372036854775807",
        "r2,1e8,2e9,0,,web,3.1,9007199254740993",  # 2^53 + 1: no float holds it
        "r3,1e8,2e9,0,,web,3.1,",
    )
    expected = [2**63 - 1, 2**53 + 1, 0]
    assert load_runs(path)["seed"].tolist() == expected
    assert load_runs(write_table(load_runs(path), tmp_path / "s.jsonl"))["seed"].tolist() == (
        expected
    )
    bad = _csv(
        tmp_path,
        HEADER,
        "r1,1e8,2e9,0,,web,3.1,1e30",
        "r2,1e8,2e9,0,,web,3.1,18446744073709551615",
        "r3,1e8,2e9,0,,web,3.1,1.5",
        "r4,1e8,2e9,0,,web,3.1,7",
        name="bad.csv",
    )
    with pytest.raises(RunTableError, match=r"seed must be an integer .* \(rows 1, 2, 3\)"):
        load_runs(bad)


def test_steps_beyond_64_bits_and_bad_unique_tokens_are_problems_not_crashes(table):
    with pytest.raises(RunTableError, match=r"step must be a non-negative 64-bit integer"):
        validate_runs(table.assign(step=[1, 2, 3, 4, 1e25]))
    with pytest.raises(RunTableError, match=r"unique_spec_tokens must be > 0 .* \(rows 1, 2, 3\)"):
        validate_runs(table.assign(unique_spec_tokens=[-5, np.inf, 0, 1e9, None]))


def test_one_run_id_must_name_one_model(table):
    with pytest.raises(RunTableError, match=r"run_id 'r1' has rows with different params"):
        validate_runs(table.assign(params=[1e7, 2e7, 3e7, 3e7, 1e7]))
    with pytest.raises(RunTableError, match=r"run_id 'r2' has rows with different seed"):
        validate_runs(table.assign(seed=[0, 0, 0, 1, 0]))
    with pytest.raises(RunTableError, match=r"different pretrain_tokens at one step"):
        validate_runs(table.assign(pretrain_tokens=[2e8, 4e8, 6e8, 6e8, 2e8], step=[1] * 5))
    # checkpoints of one run: D grows with the step, on every eval domain alike
    ok = table.assign(step=[1, 1, 1, 1, 1])
    two_steps = pd.concat([ok, ok.assign(step=2, pretrain_tokens=ok["pretrain_tokens"] * 2)])
    assert len(validate_runs(two_steps)) == 10


def test_one_run_has_one_trunk_and_one_trunk_one_model_size(table):
    """The model gives each trunk (else run) one run effect: a run on two trunks, or on a
    trunk in some rows only, would get two; models of two sizes on one trunk would share one."""
    with pytest.raises(RunTableError, match=r"run_id 'r1' has rows with different trunk_id"):
        validate_runs(table.assign(trunk_id=["t1", "t2", None, None, "t1"]))
    with pytest.raises(RunTableError, match=r"run_id 'r1' has rows with different trunk_id"):
        validate_runs(table.assign(trunk_id=["t1", None, None, None, "t1"]))
    # r3 branches off r2's trunk (3e7) but is 1e7: one run effect for two model sizes
    with pytest.raises(RunTableError, match=r"trunk 'r2' has branches .* different params"):
        validate_runs(table.assign(trunk_id=[None, None, None, None, "r2"]))
    # a branch of the trunk run r1 (same N), and branches named by trunk_id, are fine
    assert len(validate_runs(table.assign(trunk_id=[None, None, None, None, "r1"]))) == 5
    assert len(validate_runs(table.assign(trunk_id=["t1", "t1", "t2", "t2", "t1"]))) == 5


def test_a_specialist_with_its_spec_tokens_missing_is_refused_not_read_as_general(tmp_path):
    """A blank D' means a general model (D' = 0); on a row that names a train_domain it is
    a specialist's missing value, and was fitted as a general model at D alone."""
    path = tmp_path / "runs.csv"
    good_table().assign(spec_tokens=[0, 0, 0, 0, None]).to_csv(path, index=False)
    with pytest.raises(RunTableError, match=r"spec_tokens value is missing \(row 5\)"):
        load_runs(path)
    with pytest.raises(RunTableError, match=r"spec_tokens column is missing \(row 5\)"):
        validate_runs(good_table().drop(columns="spec_tokens"))
    # blank D' with no train_domain is a general model; an explicit 0 may name one
    general = good_table().assign(spec_tokens=[None, None, None, None, 5e7])
    assert validate_runs(general)["spec_tokens"].tolist() == [0, 0, 0, 0, 5e7]
    assert len(validate_runs(good_table().assign(spec_tokens=0.0))) == 5


def test_domain_names_that_differ_only_in_case_are_refused(tmp_path):
    """'Code' and 'code' were two domains, each fitted with its own parameters; padding
    ('code ') is stripped, as it always was."""
    path = tmp_path / "runs.csv"
    good_table().assign(eval_domain=["web", "Code", "web", "code ", "code"]).to_csv(
        path, index=False
    )
    with pytest.raises(RunTableError, match=r"differ only in case or Unicode form: 'Code', 'code'"):
        load_runs(path)
    padded = good_table().assign(eval_domain=["web", " code", "web", "code ", "code"])
    assert set(validate_runs(padded)["eval_domain"]) == {"web", "code"}


def test_domain_names_in_two_unicode_forms_are_refused():
    """ "café" composed (NFC) and decomposed (NFD, as macOS tools write it) look alike and
    were fitted as two domains."""
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    table = good_table().assign(eval_domain=["web", composed, "web", decomposed, composed])
    with pytest.raises(RunTableError, match=r"Unicode form: 'cafe\\u0301', 'caf\\xe9'"):
        validate_runs(table)  # escaped: the two look alike
    with pytest.raises(RunTableError) as refused:  # against the store's spelling
        validate_runs(good_table().assign(eval_domain=decomposed), domains=[composed])
    assert any("differ only in case or Unicode form" in p for p in refused.value.problems)


@pytest.mark.parametrize("column", ["trunk_id", "schedule"])
@pytest.mark.parametrize("value", [["a"], True, {"kind": "wsd"}])
def test_a_json_list_or_flag_is_no_trunk_id_or_schedule(tmp_path, column, value):
    # stored as Python's text: the trunk "['a']", the schedule "True"
    rows = json.loads(good_table().to_json(orient="records"))
    path = tmp_path / "runs.jsonl"
    for row in rows:
        row[column] = value
    path.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(RunTableError, match=f"column '{column}' holds values that are not names"):
        load_runs(path)
    for row in rows:
        row[column] = int(row["params"])  # a number is text, as in a CSV (one trunk per N)
    path.write_text("\n".join(json.dumps(r) for r in rows))
    assert set(load_runs(path)[column]) == {str(int(n)) for n in good_table()["params"]}


def test_a_csv_with_pandas_index_or_empty_unnamed_columns_reads_without_them(tmp_path):
    """pandas' to_csv() writes its index as a first column without a name; spreadsheets
    leave empty unnamed columns. Both went into the store as extra fields 'Unnamed: 0'."""
    table = good_table()
    path = tmp_path / "runs.csv"
    table.iloc[1:].to_csv(path)  # the index 1..4, as after filtering
    assert list(load_runs(path).columns) == list(validate_runs(table).columns)
    pd.concat([table.iloc[:2], table.iloc[2:]]).set_index(pd.Index([0, 1, 0, 1, 2])).to_csv(path)
    assert list(load_runs(path).columns) == list(validate_runs(table).columns)  # labels repeat
    table.set_index(pd.MultiIndex.from_arrays([[0] * 5, range(5)])).to_csv(path)
    assert list(load_runs(path).columns) == list(validate_runs(table).columns)  # two levels
    table.assign(**{"": None}).to_csv(path, index=False)
    assert "Unnamed: 8" not in load_runs(path).columns
    table.assign(**{"": 1.0}).to_csv(path, index=False)  # values no one can name later
    with pytest.raises(BayesplitError, match="column 9 of the header has no name but holds"):
        load_runs(path)


def test_checkpoints_whose_tokens_shrink_as_the_step_grows_are_refused(table):
    """Step 200 on fewer tokens than step 100: a mislabelled step or token column (or two
    runs under one id); the fit would have used the token counts as given."""
    ok = table.assign(step=1)
    later = ok.assign(step=2, pretrain_tokens=ok["pretrain_tokens"] / 2)
    with pytest.raises(RunTableError, match=r"run_id 'r1' has fewer tokens \(D \+ D'\) at step 2"):
        validate_runs(pd.concat([ok, later], ignore_index=True))
    # the order of the rows does not matter, nor equal counts at two steps
    grown = ok.assign(step=2, pretrain_tokens=ok["pretrain_tokens"] * 2)
    assert len(validate_runs(pd.concat([grown, ok, grown.assign(step=3)]).iloc[::-1])) == 15


def test_one_domain_given_as_a_string_is_one_domain(table):
    validate_runs(table, domains=["web", "code"])
    with pytest.raises(RunTableError, match=r"unknown eval_domain 'code' \(known: web\)"):
        validate_runs(table, domains="web")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("column", ["params", "loss"])
def test_an_integer_too_large_for_a_float_is_infinite_not_a_crash(tmp_path, fmt, column):
    """1e400 was refused as infinite, but 1 followed by 400 zeros was an OverflowError
    (a traceback from every command that reads a run table)."""
    path = tmp_path / f"t.{fmt}"
    row = {"run_id": "a", "params": 1e7, "pretrain_tokens": 2e8, "eval_domain": "web"}
    row["loss"] = 3.0
    if fmt == "csv":
        head = ",".join(row)
        values = ",".join("1" + "0" * 400 if k == column else str(v) for k, v in row.items())
        path.write_text(f"{head}\n{values}\n")
    else:
        path.write_text(json.dumps({**row, column: 10**400}) + "\n")
    with pytest.raises(RunTableError, match=f"{column}.* is infinite \\(row 1\\)"):
        load_runs(path)


@pytest.mark.parametrize(
    ("extra", "column"),
    [
        ([{}, {}], "meta"),  # ArrowNotImplementedError: struct type with no child field
        ([[1, "a"], [2, "b"]], "meta"),  # ArrowInvalid
        ([{"k": "s"}, {"k": [1, 2]}], "meta"),  # cannot mix list and non-list
        ([2**70, 1], "n"),  # OverflowError: int too large to convert to C long
    ],
)
def test_parquet_refuses_an_extra_it_cannot_type_naming_it(tmp_path, extra, column):
    table = good_table().head(2).assign(**{column: extra})
    out = tmp_path / "t.parquet"
    with pytest.raises(BayesplitError, match=f"Parquet cannot hold column '{column}'.*jsonl"):
        write_table(table, out)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temp file left
    write_table(table, tmp_path / "t.jsonl")  # what the message offers keeps them
    assert load_runs(tmp_path / "t.jsonl")[column].tolist() == extra


def test_csv_writes_lists_and_mappings_as_json_and_reads_long_fields(tmp_path):
    """Lists and mappings were written as Python reprs ({'a': 0}); a field over 131,072
    characters (csv's default limit) was refused when read back."""
    table = (
        good_table()
        .head(2)
        .assign(meta=[{"a": 0, "b": [1, 2]}, [1, "x"]], note=["x" * 140_000, "short"])
    )
    write_table(table, tmp_path / "t.csv")
    back = load_runs(tmp_path / "t.csv")
    assert [json.loads(v) for v in back["meta"]] == [{"a": 0, "b": [1, 2]}, [1, "x"]]
    assert back["note"].str.len().tolist() == [140_000, 5]


def test_jsonl_integers_no_float_holds_keep_every_digit(tmp_path):
    """An integer beyond 64 bits beside a missing value, or beyond 2^53 beside a fraction,
    went through float64: 18446744073709551615 came back 1.8446744073709552e+19."""
    row = dict(run_id="r1", params=1e8, pretrain_tokens=2e9, eval_domain="web", loss=3.1)
    rows = [dict(row, x=2**64 - 1, y=2**53 + 1, z=2**53 + 1), dict(row, run_id="r2", y=1.5)]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    back = load_runs(path)
    assert back["x"].tolist()[0] == 2**64 - 1 and pd.isna(back["x"].tolist()[1])
    assert back["y"].tolist() == [2**53 + 1, 1.5]
    assert back["z"].tolist()[0] == 2**53 + 1  # a whole column, one missing: Int64 as before
    again = load_runs(write_table(back, tmp_path / "u.jsonl"))
    assert again["x"].tolist()[0] == 2**64 - 1 and again["y"].tolist() == [2**53 + 1, 1.5]


def test_a_numeric_name_is_one_name_whatever_its_column_dtype(table):
    """An integer column with a gap is float64 in pandas and Parquet: trunk 8 was '8.0', not
    the run named 8, and a branch of another size passed on it, which trunk '8' did not."""
    runs = table.assign(run_id=[7, 7, 8, 8, 9], trunk_id=[None, None, None, None, 7])
    assert runs["trunk_id"].dtype == float
    assert validate_runs(runs)["trunk_id"].tolist() == [None] * 4 + ["7"]
    # run 9 (N 1e7) on the trunk of run 8 (N 3e7): one run effect for two model sizes
    with pytest.raises(RunTableError, match=r"trunk '8' has branches .* different params"):
        validate_runs(runs.assign(trunk_id=[None, None, None, None, 8]))
    # names a float no longer tells: refused, not guessed
    with pytest.raises(RunTableError, match=r"column 'run_id' holds whole numbers beyond 2\^53"):
        validate_runs(runs.assign(run_id=[7.0, 7.0, 8.0, 8.0, 2.0**60]))
    domains = runs.assign(eval_domain=[1.5, 2.0, 1.5, 2.0, 2.0], train_domain=[None] * 4 + [2.0])
    assert validate_runs(domains)["eval_domain"].tolist() == ["1.5", "2", "1.5", "2", "2"]


def test_a_json_name_written_as_a_whole_float_is_the_integer(tmp_path):
    path = tmp_path / "t.jsonl"
    row = dict(params=1e8, pretrain_tokens=2e9, eval_domain="web", loss=3.1)
    rows = [dict(row, run_id=7.0), dict(row, run_id="r2"), dict(row, run_id=8, trunk_id=7.0)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    back = load_runs(path)
    assert back["run_id"].tolist() == ["7", "r2", "8"] and back["trunk_id"].tolist()[2] == "7"


def test_a_row_without_a_step_repeating_a_checkpoint_row_is_refused(table):
    """A run's final row (no step) and the same measurement at its step passed every check
    (the key reads no step as -1) and were fitted twice."""
    final = table.iloc[:2]
    twice = pd.concat([final, final.assign(step=1000)], ignore_index=True)
    with pytest.raises(
        RunTableError,
        match=r"run_id 'r1' measures eval_domain 'web' twice .* a row without a step and one "
        r"at step 1000: one measurement given twice; keep one \(1 run like this\)",
    ):
        validate_runs(twice)
    # checkpoints with steps and a final row without one at another D are one run's rows
    checkpoints = final.assign(step=500, pretrain_tokens=1e8)
    assert len(validate_runs(pd.concat([checkpoints, final], ignore_index=True))) == 4
    # and another domain's checkpoint at that D is not the same measurement
    other = pd.concat([final.iloc[[0]], final.iloc[[1]].assign(step=1000)], ignore_index=True)
    assert len(validate_runs(other)) == 2


def test_tokens_per_parameter_beyond_any_run_are_warned_of_not_refused():
    """FLOPs in the token column (1.2e18 for N = 1e8), or N in thousands, passed unsaid."""
    from bayesplit.datasets import DATASETS, load_dataset
    from bayesplit.runs import table_warnings

    units = pd.DataFrame(
        {
            "run_id": ["r1", "r2", "r3"],
            "params": [1e8, 7000, 1e8],
            "pretrain_tokens": [1.2e18, 1.4e11, 2e9],
            "eval_domain": ["web"] * 3,
            "loss": [3.1, 2.9, 3.0],
        }
    )
    runs = validate_runs(units)  # valid: a warning, not a refusal
    assert table_warnings(runs) == [
        "(pretrain_tokens + spec_tokens) / params above 1e+07 tokens per parameter "
        "(rows 1, 2: 1.2e+10) looks like a wrong unit (FLOPs in the token column? N in "
        "millions?); give raw token and parameter counts"
    ]
    assert table_warnings(runs.iloc[[2]]) == []
    for name in DATASETS:
        assert table_warnings(load_dataset(name)) == []


def test_a_pipe_is_not_called_an_empty_file(tmp_path):
    """A pipe's size is 0: `runs validate <(cat runs.csv)` said "the file is empty"."""
    import os

    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    fifo = tmp_path / "runs.csv"
    os.mkfifo(fifo)
    with pytest.raises(BayesplitError, match=r"runs.csv is not a regular file \(a pipe") as err:
        load_runs(fifo)
    assert "empty" not in str(err.value)
