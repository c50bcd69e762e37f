"""The run store: an append-only SQLite table of run rows, safe for many writer processes.

Trainer jobs append rows as they finish; fits read the whole table. SQLite in
WAL mode lets readers proceed while one writer holds the lock; each append is one
``BEGIN IMMEDIATE`` transaction, so a writer that dies mid-append loses only its
own uncommitted rows. Rows are never updated or deleted (triggers refuse it):
a correction is a new run.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bayesplit.errors import BayesplitError
from bayesplit.runs import CANONICAL, validate_runs

_COLUMN_TYPES = {
    "run_id": "TEXT NOT NULL",
    "seed": "INTEGER NOT NULL",
    "params": "REAL NOT NULL",
    "pretrain_tokens": "REAL NOT NULL",
    "spec_tokens": "REAL NOT NULL",
    "train_domain": "TEXT",
    "eval_domain": "TEXT NOT NULL",
    "loss": "REAL NOT NULL",
    "step": "INTEGER",
    "trunk_id": "TEXT",
    "unique_spec_tokens": "REAL",
    "schedule": "TEXT",
}
assert tuple(_COLUMN_TYPES) == CANONICAL

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT,
    {", ".join(f"{c} {t}" for c, t in _COLUMN_TYPES.items())},
    extra TEXT NOT NULL DEFAULT '{{}}',
    inserted_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_key ON runs (run_id, eval_domain, IFNULL(step, -1));
CREATE TRIGGER IF NOT EXISTS runs_no_update BEFORE UPDATE ON runs
BEGIN SELECT RAISE(ABORT, 'the run store is append-only'); END;
CREATE TRIGGER IF NOT EXISTS runs_no_delete BEFORE DELETE ON runs
BEGIN SELECT RAISE(ABORT, 'the run store is append-only'); END;
"""


class RunStore:
    """Append-only SQLite store of run rows.

    Parameters
    ----------
    path
        The database file; created (with its schema) unless ``create=False``.
    timeout
        Seconds a writer waits for the lock held by another writer.
    create
        If False, a missing file is an error instead of a new, empty store.

    Examples
    --------
    >>> import tempfile, os, pandas as pd
    >>> store = RunStore(os.path.join(tempfile.mkdtemp(), "runs.db"))
    >>> store.append(pd.DataFrame({"run_id": ["r1"], "params": [1e6], "pretrain_tokens": [1e8],
    ...                            "eval_domain": ["code"], "loss": [3.2]}))
    1
    >>> len(store)
    1
    """

    def __init__(self, path: str | Path, *, timeout: float = 60.0, create: bool = True):
        self.path = Path(path)
        self.timeout = float(timeout)
        if not self.path.exists():
            if not create:
                raise BayesplitError(f"no such run store: {self.path}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            self._retry(lambda: con.executescript(_SCHEMA))

    # -- connection -------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            con = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            self._retry(lambda: con.execute("PRAGMA journal_mode=WAL"))
            con.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            raise BayesplitError(f"{self.path} is not a bayesplit run store: {exc}") from None
        return _Closing(con)

    def _retry(self, fn):
        # WAL setup and schema creation can race when many jobs open a new store at once.
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if (
                    "locked" not in str(exc)
                    and "busy" not in str(exc)
                    or time.monotonic() > deadline
                ):
                    raise
                time.sleep(0.05)

    # -- writing ----------------------------------------------------------
    def append(self, runs: pd.DataFrame | Iterable[Mapping]) -> int:
        """Validate rows and append them in one transaction; returns the number of rows added.

        Rows whose (run_id, eval_domain, step) is already in the store are refused
        and nothing is written.
        """
        df = runs if isinstance(runs, pd.DataFrame) else pd.DataFrame(list(runs))
        df = validate_runs(df)
        records = _to_records(df)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        cols = [*CANONICAL, "extra", "inserted_at"]
        sql = f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        with self._connect() as con:
            try:
                con.execute("BEGIN IMMEDIATE")
                con.executemany(sql, [(*r, now) for r in records])
                con.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                con.execute("ROLLBACK")
                raise BayesplitError(
                    f"{self.path}: some (run_id, eval_domain, step) rows are already in the store; nothing was written ({exc})"
                ) from None
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        return len(records)

    # -- reading ----------------------------------------------------------
    def read(self) -> pd.DataFrame:
        """All rows, in insertion order, as a run table (extra fields expanded to columns)."""
        with self._connect() as con:
            raw = pd.read_sql_query(
                f"SELECT {', '.join(CANONICAL)}, extra FROM runs ORDER BY row_id", con
            )
        extras = pd.DataFrame([json.loads(e) for e in raw.pop("extra")], index=raw.index)
        df = pd.concat([raw, extras], axis=1) if len(extras.columns) else raw
        optional_empty = [
            c for c in ("step", "trunk_id", "unique_spec_tokens", "schedule") if df[c].isna().all()
        ]
        return df.drop(columns=optional_empty)

    def __len__(self) -> int:
        with self._connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"


class _Closing:
    """Context manager that closes (not just commits) a sqlite3 connection."""

    def __init__(self, con: sqlite3.Connection):
        self.con = con

    def __enter__(self) -> sqlite3.Connection:
        return self.con

    def __exit__(self, *exc) -> None:
        self.con.close()

    def __getattr__(self, name):
        return getattr(self.con, name)


def _to_records(df: pd.DataFrame) -> list[tuple]:
    extra_cols = [c for c in df.columns if c not in CANONICAL]
    out = []
    for row in df.to_dict("records"):
        values = []
        for c in CANONICAL:
            v = row.get(c)
            values.append(_plain(v))
        extra = {c: _plain(row[c]) for c in extra_cols if _plain(row[c]) is not None}
        values.append(json.dumps(extra, sort_keys=True))
        out.append(tuple(values))
    return out


def _plain(v):
    """Python scalar for sqlite/json; missing values become None."""
    if v is None or v is pd.NA:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and np.isnan(v):
        return None
    return v
