"""The run store: append-only, transactional, safe with concurrent writers."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest
from support import good_table

from bayesplit.errors import BayesplitError
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
    procs = [ctx.Process(target=_writer, args=(path, w, 200)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    runs = RunStore(path).read()
    assert len(runs) == 1600
    assert runs["run_id"].nunique() == 1600


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
    assert tried[:3] == ["mode=rw", "mode=ro", "mode=ro&immutable=1"]
