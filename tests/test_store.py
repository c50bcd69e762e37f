"""The run store: append-only, transactional, safe with concurrent writers."""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from support import good_table

from bayesplit.errors import BayesplitError
from bayesplit.runs import write_table
from bayesplit.store import RunStore


def _row(writer: int, i: int) -> dict:
    return {
        "run_id": f"w{writer}-r{i}",
        "params": 1e7,
        "pretrain_tokens": 1e9,
        "eval_domain": "web",
        "loss": 3.0 + i * 1e-4,
    }


def _writer(path: str, writer: int, n: int) -> None:
    store = RunStore(path)
    for i in range(n):
        store.append([_row(writer, i)])


def test_append_and_read_round_trip(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    assert store.append(good_table().assign(mfu=0.31)) == 5
    back = store.read()
    assert len(back) == 5 and len(store) == 5
    assert back["mfu"].tolist() == [0.31] * 5
    assert back["train_domain"].tolist()[-1] == "code"


def test_store_is_append_only(tmp_path):
    path = tmp_path / "runs.db"
    RunStore(path).append(good_table())
    con = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE runs SET loss = 1.0")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM runs")


def test_duplicate_rows_are_refused_and_nothing_is_written(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    store.append(good_table())
    mixed = pd.concat([good_table().iloc[:1], pd.DataFrame([_row(9, 9)])], ignore_index=True)
    with pytest.raises(BayesplitError, match="already in the store"):
        store.append(mixed)
    assert len(store) == 5


def test_a_grown_table_appends_only_its_new_rows_with_skip_existing(tmp_path):
    # a table kept by hand and imported again was refused whole, naming no row
    store = RunStore(tmp_path / "runs.db")
    store.append(good_table().iloc[:3])
    with pytest.raises(BayesplitError, match=r"3 of the rows are already in the store, e\.g\. \('r1', 'web', no step\).*--skip-existing"):  # fmt: skip
        store.append(good_table())
    assert store.append(good_table(), skip_existing=True) == 2
    assert store.append(good_table(), skip_existing=True) == 0
    pd.testing.assert_frame_equal(store.read()[good_table().columns], good_table(), check_dtype=False)  # fmt: skip
    edited = good_table().assign(run_id=lambda d: d["run_id"]).copy()
    edited.loc[1, "loss"] += 0.1
    with pytest.raises(BayesplitError, match=r"row 2 \('r1', 'code'\) is in the store with another loss"):  # fmt: skip
        store.append(edited, skip_existing=True)
    seeded = good_table().assign(seed=2**62 + 1, run_id=lambda d: d["run_id"] + "s")
    assert store.append(seeded, skip_existing=True) == 5
    with pytest.raises(BayesplitError, match="another seed"):  # not a float: every digit
        store.append(seeded.assign(seed=2**62 + 2), skip_existing=True)
    assert len(store) == 10


def test_rows_that_contradict_stored_rows_of_their_run_are_refused(tmp_path):
    """Valid alone, the new rows would give a stored run two models: nothing is written."""
    from bayesplit.runs import load_runs

    store = RunStore(tmp_path / "runs.db")
    store.append(good_table().assign(step=1))
    r1 = good_table().iloc[[0]].assign(step=1)
    for change, word in [
        (dict(params=5e7, eval_domain="law"), "params"),
        (dict(seed=3, eval_domain="law"), "seed"),
        (dict(pretrain_tokens=9e8, eval_domain="law"), "pretrain_tokens at one step"),
    ]:
        with pytest.raises(BayesplitError, match=f"run_id 'r1' has rows with different {word}"):
            store.append(r1.assign(**change))
        assert len(store) == 5
    load_runs(store.path)  # still readable by every command
    # the same run's later checkpoint (same N and seed, new step) is what a trainer appends
    later = good_table().iloc[:2].assign(step=2, pretrain_tokens=4e8, loss=[3.7, 2.7])
    assert store.append(later) == 2
    assert len(load_runs(store.path)) == 7


def test_rows_that_contradict_the_trunk_of_stored_rows_are_refused(tmp_path):
    """A run's trunk, and a trunk's model size, hold across appends as within one table."""
    store = RunStore(tmp_path / "runs.db")
    store.append(good_table().assign(trunk_id=["t1", "t1", "t2", "t2", "t1"]))
    with pytest.raises(BayesplitError, match="run_id 'r1' has rows with different trunk_id"):
        store.append(good_table().iloc[[0]].assign(eval_domain="law", trunk_id="t2"))
    with pytest.raises(BayesplitError, match="run_id 'r1' has rows with different trunk_id"):
        store.append(good_table().iloc[[0]].assign(eval_domain="law"))  # no trunk_id column
    branch = dict(run_id="b", spec_tokens=1e8, train_domain="web", eval_domain="web", loss=3.0)
    with pytest.raises(BayesplitError, match="trunk 't2' has branches .* different params"):
        store.append(good_table().iloc[[4]].assign(**branch, trunk_id="t2"))  # N 1e7, t2 is 3e7
    assert len(store) == 5
    assert store.append(good_table().iloc[[4]].assign(**branch, trunk_id="t1")) == 1


def test_a_domain_spelt_in_another_case_than_the_stored_one_is_refused(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    store.append(good_table())
    later = good_table().iloc[:2].assign(run_id="r9", eval_domain=["Web", "code"])
    with pytest.raises(BayesplitError, match=r"differ only in case or Unicode form: 'Web', 'web'"):
        store.append(later)
    assert len(store) == 5


def test_a_later_checkpoint_on_fewer_tokens_than_a_stored_one_is_refused(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    store.append(good_table().assign(step=2))
    earlier_step_more_tokens = good_table().iloc[:2].assign(step=1, pretrain_tokens=4e8)
    with pytest.raises(BayesplitError, match=r"run_id 'r1' has fewer tokens .* at step 2"):
        store.append(earlier_step_more_tokens)
    assert len(store) == 5


@pytest.mark.parametrize(
    ("runs", "words"),
    [
        ("runs.csv", "got str; to append a file, pass bayesplit.load_runs(path)"),
        ({"run_id": "a", "params": 1e7}, "got dict; for one row, pass [row]"),
        (None, "got NoneType"),
        (5, "got int"),
    ],
)
def test_append_of_a_path_or_one_row_says_what_it_takes(tmp_path, runs, words):
    """A path or one row mapping was read as a list of letters or keys ("missing column
    'run_id' (and 4 more problems)"); None or a number was a TypeError traceback."""
    store = RunStore(tmp_path / "runs.db")
    with pytest.raises(BayesplitError, match=re.escape(words)):
        store.append(runs)
    assert len(store) == 0


def test_invalid_rows_never_reach_the_store(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    with pytest.raises(BayesplitError):
        store.append(good_table().assign(loss=-1.0))
    assert len(store) == 0


def test_missing_store_is_an_error_when_not_creating(tmp_path):
    with pytest.raises(BayesplitError, match="no such run store"):
        RunStore(tmp_path / "nope.db", create=False)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(BayesplitError, match="not a bayesplit run store"):
        RunStore(junk)


def test_eight_concurrent_writers_lose_nothing(tmp_path):
    path = str(tmp_path / "runs.db")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 50)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    runs = RunStore(path).read()
    assert len(runs) == 400
    assert runs["run_id"].nunique() == 400


def test_writer_killed_mid_transaction_loses_only_its_own_row(tmp_path):
    path = tmp_path / "runs.db"
    RunStore(path).append([_row(0, 0)])
    # A writer that opens a transaction, inserts a row and then dies before COMMIT.
    child = textwrap.dedent(
        f"""
        import sys, time
        from bayesplit.store import RunStore
        store = RunStore({str(path)!r})
        con = store._connect()
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO runs (run_id, seed, params, pretrain_tokens, spec_tokens, eval_domain, loss, inserted_at) "
                    "VALUES ('doomed', 0, 1e7, 1e9, 0, 'web', 3.0, 'now')")
        print("inserted", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "inserted"
    others = mp.get_context("spawn").Process(target=_writer, args=(str(path), 1, 20))
    others.start()  # blocks on the lock the doomed writer holds
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    others.join(timeout=120)
    assert others.exitcode == 0
    runs = RunStore(path).read()
    assert "doomed" not in set(runs["run_id"])
    assert len(runs) == 21


def test_extra_columns_of_any_type_are_stored_as_json(tmp_path):
    import datetime
    import decimal

    rows = good_table().assign(
        finished=pd.Timestamp("2017-07-14 02:40"),
        price=decimal.Decimal("1.5"),
        day=datetime.date(2026, 11, 30),
    )
    store = RunStore(tmp_path / "runs.db")
    assert store.append(rows) == 5
    back = store.read()
    assert back["finished"].tolist() == ["2017-07-14T02:40:00"] * 5
    assert back["price"].tolist() == [1.5] * 5
    assert back["day"].tolist() == ["2026-11-30"] * 5


@pytest.mark.parametrize("value", [b"\x00raw", {1, 2}, object(), [b"x"]])
def test_an_extra_value_json_cannot_hold_is_one_error_and_nothing_is_written(tmp_path, value):
    """bytes (a Parquet binary column), a set or an object was a TypeError traceback."""
    store = RunStore(tmp_path / "runs.db")
    rows = good_table().assign(blob=None)
    rows["blob"] = rows["blob"].astype(object)
    rows.at[3, "blob"] = value
    with pytest.raises(BayesplitError, match=r"column 'blob' holds a value .* \(row 4: "):
        store.append(rows)
    assert len(store) == 0
    with pytest.raises(BayesplitError, match=r"cannot write .*runs.jsonl: column 'blob' .*row 4"):
        write_table(rows, tmp_path / "runs.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir() if "jsonl" in p.name) == []


def test_a_branch_may_train_on_a_domain_only_earlier_rows_evaluated(tmp_path):
    store = RunStore(tmp_path / "runs.db")
    t = good_table()
    store.append(t[t["spec_tokens"] == 0])
    branch = t[t["spec_tokens"] > 0].assign(eval_domain="web", train_domain="code")
    assert store.append(branch) == 1
    with pytest.raises(BayesplitError, match="unknown train_domain 'cdoe'"):
        store.append(branch.assign(run_id="r9", train_domain="cdoe"))


def test_a_store_that_cannot_be_written_next_to_is_still_read(tmp_path, monkeypatch):
    # On a read-only disk SQLite cannot make the shared-memory file a WAL reader needs, so
    # the usual read-write (query-only) connection fails; the store falls back to
    # immutable reading. Simulated: whoever runs the tests (root) may write anywhere.
    path = tmp_path / "runs.db"
    RunStore(path).append(good_table())
    real_connect = sqlite3.connect
    tried = []

    def connect(database, *args, **kwargs):
        if kwargs.get("uri"):
            tried.append(str(database).split("?")[-1])
            if "immutable=1" not in str(database):
                raise sqlite3.OperationalError("unable to open database file")
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    assert len(RunStore(path, read_only=True).read()) == 5
    # no -wal file holds rows, so no mode=ro (which would create -wal/-shm files)
    assert tried[:2] == ["mode=rw", "mode=ro&immutable=1"]


def _pending_wal_copy(tmp_path) -> Path:
    """A store whose last rows are still in its -wal file, copied without the -shm file
    (as a folder is copied while a writer holds the store open)."""
    import shutil

    path = tmp_path / "live" / "runs.db"
    RunStore(path).append(good_table())
    holder = sqlite3.connect(path)  # keeps SQLite from folding the -wal in on close
    holder.execute("SELECT COUNT(*) FROM runs").fetchone()
    RunStore(path).append(good_table().assign(run_id=lambda d: d["run_id"] + "x"))
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("runs.db", "runs.db-wal"):
        shutil.copy(path.with_name(name), copy / name)
    holder.close()
    assert (copy / "runs.db-wal").stat().st_size > 0
    return copy / "runs.db"


def _without_root_powers() -> list[str]:
    """A command prefix under which file permissions hold, also for root (who runs the
    tests here): setpriv drops the capabilities that let root write anywhere."""
    if os.geteuid() != 0:
        return []
    import shutil

    if shutil.which("setpriv") is None:
        pytest.skip("root, and no setpriv to drop root's powers")
    caps = "-dac_override,-dac_read_search,-fowner"
    return ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]


def test_a_read_where_the_store_cannot_be_written_leaves_no_files_beside_it(tmp_path):
    # SQLite opens a write-protected file read-only even for mode=rw, and that WAL reader
    # created -wal/-shm files with the store's read-only mode; once the file was writable
    # again, every append failed on them ("attempt to write a readonly database").
    path = tmp_path / "runs.db"
    RunStore(path).append(good_table())
    path.chmod(0o444)
    read = textwrap.dedent(
        f"""
        from bayesplit.store import RunStore
        RunStore.check({str(path)!r})
        print(len(RunStore({str(path)!r}, read_only=True).read()))
        """
    )
    done = subprocess.run(
        [*_without_root_powers(), sys.executable, "-c", read], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "5"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.db"]
    path.chmod(0o644)
    assert RunStore(path).append(good_table().assign(run_id=lambda d: d["run_id"] + "x")) == 5


def test_a_copy_taken_while_a_writer_changed_the_file_is_taken_again(tmp_path, monkeypatch):
    # a reader that may not write the file reads an immutable copy, which takes no locks:
    # a writer checkpointing meanwhile tore reads ("database disk image is malformed")
    path = tmp_path / "runs.db"
    RunStore(path).append(good_table())
    real_connect, real_access = sqlite3.connect, os.access
    reader = {"on": True}
    monkeypatch.setattr(
        os,
        "access",
        lambda p, m, **kw: not (reader["on"] and Path(p) == path) and real_access(p, m),
    )
    copies = []

    class Source:  # an immutable connection whose copy a writer overlaps, once
        def __init__(self, con):
            self.con = con

        def backup(self, target):
            self.con.backup(target)
            copies.append(1)
            if len(copies) == 1:
                reader["on"] = False
                RunStore(path).append(good_table().assign(run_id=lambda d: d["run_id"] + "x"))
                reader["on"] = True

        def close(self):
            self.con.close()

    def connect(database, *args, **kwargs):
        con = real_connect(database, *args, **kwargs)
        return Source(con) if "immutable=1" in str(database) else con

    monkeypatch.setattr(sqlite3, "connect", connect)
    from bayesplit.store import _connect_read_only

    con = _connect_read_only(path, timeout=5.0)
    assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 10  # not the 5 copied
    con.close()
    assert len(copies) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.db"]


def test_a_store_a_writer_keeps_changing_is_refused_as_such_not_as_corrupt(tmp_path, monkeypatch):
    # it said "is not a bayesplit run store: the store kept changing while it was read"
    import bayesplit.store
    from bayesplit.store import _connect_read_only

    path = tmp_path / "runs.db"
    RunStore(path).append(good_table())
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, m, **kw: Path(p) != path and real_access(p, m)
    )  # a reader that may not write it
    monkeypatch.setattr(bayesplit.store, "_snapshot", lambda path: None)  # torn each time
    with pytest.raises(BayesplitError, match=r"runs.db: a writer kept changing it .* for 0 s"):
        _connect_read_only(path, timeout=0.0)


def test_rows_still_in_the_wal_file_are_read_or_refused_never_dropped(tmp_path, monkeypatch):
    copy = _pending_wal_copy(tmp_path)
    # where the store cannot be written (simulated, as above), immutable reading would
    # ignore the -wal file and its 5 rows
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **kw: False if Path(p) == copy else real_access(p, mode)
    )
    with pytest.raises(BayesplitError, match="rows written last are still in runs.db-wal, which SQLite reads only with write access"):  # fmt: skip
        RunStore(copy, read_only=True).read()
    monkeypatch.undo()
    assert len(RunStore(copy, read_only=True).read()) == 10  # where it can be written


def test_two_spellings_of_a_domain_appended_at_once_are_refused_under_the_lock(
    tmp_path, monkeypatch
):
    # Validation ran before the write lock: "code" and "Code" appended by two processes at
    # once both landed, and from then on no command could read the store.
    store = RunStore(tmp_path / "runs.db")
    store.append(good_table())
    # the other writer's "Web" rows land between this append's check and its lock
    monkeypatch.setattr(RunStore, "eval_domains", lambda self: set())
    later = good_table().iloc[[0]].assign(run_id="r9", eval_domain="Web")
    with pytest.raises(BayesplitError, match=r"differ only in case or Unicode form: 'Web', 'web'"):
        store.append(later)
    assert len(store) == 5


def test_a_lock_held_past_the_timeout_is_one_line_not_a_traceback(tmp_path):
    path = tmp_path / "runs.db"
    RunStore(path).append(good_table())
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:  # opening for writing runs the schema script, which waited and then raised raw
        with pytest.raises(BayesplitError, match="cannot write to .*database is locked"):
            RunStore(path, timeout=0.5)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_damaged_store_is_named_when_read(tmp_path):
    path = tmp_path / "runs.db"
    big = pd.concat(
        [good_table().assign(run_id=lambda d, i=i: d["run_id"] + f"-{i}") for i in range(800)]
    )
    RunStore(path).append(big)
    with sqlite3.connect(path) as con:  # fold the WAL in, so the rows live in the main file
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    with open(path, "r+b") as f:  # keep the schema page, so the file still opens as a store
        f.seek(4096)
        f.write(b"\xff" * (size - 4096))
    with pytest.raises(BayesplitError, match="cannot read .*malformed"):
        RunStore(path, read_only=True).eval_domains()
    with pytest.raises(BayesplitError, match="cannot read .*malformed"):
        RunStore(path, read_only=True).read()


def test_a_table_of_another_version_is_not_called_duplicates(tmp_path):
    path = tmp_path / "runs.db"
    RunStore(path)  # the schema, then a column this version does not fill
    with sqlite3.connect(path) as con:
        con.execute("ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT 'x'")
        con.execute("UPDATE runs SET owner = 'x'")
    with sqlite3.connect(path) as con:
        con.executescript(
            "CREATE TRIGGER need_owner BEFORE INSERT ON runs BEGIN "
            "SELECT RAISE(ABORT, 'NOT NULL constraint failed: runs.owner'); END;"
        )
    with pytest.raises(BayesplitError) as err:
        RunStore(path).append(good_table())
    assert "already in the store" not in str(err.value)


def test_a_store_of_a_newer_layout_is_refused_not_misread(tmp_path):
    from bayesplit.store import SCHEMA_VERSION

    path = tmp_path / "runs.db"
    RunStore(path).append([_row(0, 0)])
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    con.execute("PRAGMA user_version = 0")  # a store from before the version was kept
    con.commit()
    assert len(RunStore(path, read_only=True)) == 1
    RunStore(path)  # opening it to write records its layout
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    for read_only in (True, False):
        with pytest.raises(BayesplitError, match="newer layout .* upgrade bayesplit"):
            RunStore(path, read_only=read_only)


def test_a_row_edited_outside_bayesplit_is_one_error(tmp_path):
    """json.loads sat outside the store's error handling: runs export showed a traceback."""
    path = tmp_path / "runs.db"
    RunStore(path).append(good_table())
    con = sqlite3.connect(path)
    con.execute("DROP TRIGGER runs_no_update")
    con.execute("UPDATE runs SET extra = '{broken' WHERE row_id = 1")
    con.commit()
    con.close()
    with pytest.raises(BayesplitError, match="a row's extra fields are not JSON"):
        RunStore(path).read()


def test_a_store_file_that_cannot_be_written_is_refused_before_sqlite_tries(tmp_path, monkeypatch):
    # Simulated (root may write anywhere): SQLite's own error, "attempt to write a readonly
    # database", gave no cause; the store is still read.
    path = tmp_path / "runs.db"
    RunStore(path).append(good_table())
    before = path.read_bytes()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if mode == os.W_OK else real_access(p, mode)
    )
    with pytest.raises(BayesplitError, match=r"cannot write to .*runs\.db: the file is read-only"):
        RunStore(path)
    assert path.read_bytes() == before
    assert len(RunStore(path, read_only=True).read()) == 5


@pytest.mark.parametrize("name", ["new.csv", "runs", "runs.db.bak"])
def test_a_new_store_needs_a_name_the_readers_take_for_a_store(tmp_path, name):
    """RunStore("new.csv") made an SQLite file that load_runs and `runs list` then read as
    CSV ("'utf-8' codec can't decode byte")."""
    with pytest.raises(BayesplitError, match=f"must end in .db, .sqlite or .sqlite3 .*got {name}$"):
        RunStore(tmp_path / name)
    assert not list(tmp_path.iterdir())
    RunStore(tmp_path / "RUNS.SQLITE").append(good_table())  # the case is the readers' too
    from bayesplit.runs import load_runs

    assert len(load_runs(tmp_path / "RUNS.SQLITE")) == len(good_table())


@pytest.mark.parametrize("timeout", ["x", -5, float("nan"), None, True])
def test_a_store_timeout_is_a_number_of_seconds(tmp_path, timeout):
    # "x" was a ValueError from float(); -5 and NaN were taken
    with pytest.raises(BayesplitError, match="timeout must be a number of seconds >= 0"):
        RunStore(tmp_path / "runs.db", timeout=timeout)
    assert not list(tmp_path.iterdir())


def test_row_mappings_keep_every_digit_of_an_integer_some_rows_lack(tmp_path):
    """append([row, ...]) built its table with pd.DataFrame: a seed or extra integer that
    some rows lack went through float64, losing digits or refused as not written exactly."""
    first = dict(run_id="r1", params=1e8, pretrain_tokens=2e9, eval_domain="web", loss=3.0)
    second = dict(first, run_id="r2")
    store = RunStore(tmp_path / "runs.db")
    assert store.append([dict(first, seed=2**53 + 1, h=2**53 + 1), second]) == 2
    back = store.read()
    assert back["seed"].tolist() == [2**53 + 1, 0] and back["h"].tolist()[0] == 2**53 + 1
    assert store.append([dict(first, run_id="r3", seed=2**62 + 1), dict(second, run_id="r4")]) == 2
    assert store.read()["seed"].tolist()[2:] == [2**62 + 1, 0]
    with pytest.raises(BayesplitError, match=r"got a tuple as row 2; nothing was written"):
        store.append([dict(first, run_id="r5"), ("run_id", "r6")])
    assert len(store) == 4
    # numpy's integers too (a seed taken from an array)
    import numpy as np

    rows = [dict(first, run_id="r7", seed=np.int64(2**62 + 1)), dict(second, run_id="r8")]
    assert store.append(rows) == 2 and store.read()["seed"].tolist()[4:] == [2**62 + 1, 0]


def test_a_row_without_a_step_repeating_a_stored_checkpoint_row_is_refused(tmp_path):
    """A table imported without steps, then again with them (--skip-existing): its rows were
    added a second time ('added 3 rows (5 in all)'), each loss stored twice."""
    store = RunStore(tmp_path / "runs.db")
    final = good_table().iloc[:2]
    store.append(final)
    grown = pd.concat([final.assign(step=1000), good_table().iloc[[2]].assign(step=9)])
    for skip in (False, True):
        with pytest.raises(
            BayesplitError,
            match=r"runs\.db: run_id 'r1' measures eval_domain '(web|code)' twice .* without a "
            r"step and one at step 1000: one measurement given twice; keep one .*, counting "
            r"the rows already in the store; nothing was written",
        ):
            store.append(grown, skip_existing=skip)
    assert len(store) == 2
    # the reverse: a checkpoint stored, the run's final row at that D given without a step
    stepped = RunStore(tmp_path / "stepped.db")
    stepped.append(final.assign(step=1000))
    with pytest.raises(BayesplitError, match="one measurement given twice"):
        stepped.append(final.iloc[[0]])
    # a final row without a step at another D than the stored checkpoints is its own
    assert stepped.append(final.assign(pretrain_tokens=4e8)) == 2


def test_a_store_of_a_newer_layout_that_renamed_a_column_says_so(tmp_path):
    """A later layout may rename or drop a column: the store was then 'not a run store'."""
    path = tmp_path / "runs.db"
    RunStore(path).append([_row(0, 0)])
    with sqlite3.connect(path) as con:
        con.execute("ALTER TABLE runs RENAME COLUMN params TO n_params")
        con.execute("PRAGMA user_version = 2")
    for read_only in (True, False):
        with pytest.raises(BayesplitError, match=r"newer layout \(version 2;.* upgrade bayesplit"):
            RunStore(path, read_only=read_only)
    # a foreign database with a table named runs is still not taken for a store
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE runs (id INTEGER, name TEXT)")
        con.execute("PRAGMA user_version = 7")
    with pytest.raises(BayesplitError, match=r"not a bayesplit run store \(tables: runs\)"):
        RunStore(other, read_only=True)
