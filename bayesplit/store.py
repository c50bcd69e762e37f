"""The run store: an append-only SQLite table of run rows, safe for many writer processes.

Trainer jobs append rows as they finish; fits read the whole table. SQLite in
WAL mode lets readers proceed while one writer holds the lock; each append is one
``BEGIN IMMEDIATE`` transaction, so a writer that dies mid-append loses only its
own uncommitted rows. Rows are never updated or deleted (triggers refuse it):
a correction is a new run.
"""

from __future__ import annotations

import contextlib
import decimal
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bayesplit._io import jsonable
from bayesplit._parse import _shown, check_flag, check_path, is_finite_number
from bayesplit.errors import BayesplitError
from bayesplit.runs import (
    CANONICAL,
    STORE_SUFFIXES,
    _json_ok,
    frame_of_records,
    validate_runs,
)

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

#: Columns whose presence in a ``runs`` table marks a SQLite file as a run store.
_STORE_COLUMNS = frozenset({"row_id", *CANONICAL, "extra", "inserted_at"})

#: Layout of the store, in SQLite's ``user_version``: a later bayesplit that changes the
#: layout raises it, so that this one refuses a store it would misread instead of guessing.
#: Stores written before it was recorded (0) have this layout.
SCHEMA_VERSION = 1

# One transaction, so a process opening a store that another is creating sees all of
# the schema or none of it.
_SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS runs (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT,
    {", ".join(f"{c} {t}" for c, t in _COLUMN_TYPES.items())},
    extra TEXT NOT NULL DEFAULT '{{}}',
    inserted_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_key ON runs (run_id, eval_domain, IFNULL(step, -1));
-- appends look up the stored rows of their runs' trunks (an index, not a layout change)
CREATE INDEX IF NOT EXISTS runs_trunk ON runs (trunk_id);
CREATE TRIGGER IF NOT EXISTS runs_no_update BEFORE UPDATE ON runs
BEGIN SELECT RAISE(ABORT, 'the run store is append-only'); END;
CREATE TRIGGER IF NOT EXISTS runs_no_delete BEFORE DELETE ON runs
BEGIN SELECT RAISE(ABORT, 'the run store is append-only'); END;
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""


def check_new_store_name(path: str | Path) -> None:
    """Refuse a name for a new run store that the readers would not take for a store:
    one named new.csv was made, and then read as a CSV by every reader. The trainer asks
    before it trains, as the store is made only when its rows are written."""
    name = Path(path).name
    if not name.lower().endswith(STORE_SUFFIXES):
        raise BayesplitError(
            f"a new run store must end in {', '.join(STORE_SUFFIXES[:-1])} or "
            f"{STORE_SUFFIXES[-1]} (the names read as a store), got {name}"
        )


class RunStore:
    """Append-only SQLite store of run rows.

    Parameters
    ----------
    path
        The database file; created (with its schema) unless ``create=False``. A new
        one must end in ``.db``, ``.sqlite`` or ``.sqlite3``, the names the readers
        take for a store. An existing file must be a run store (or an empty database):
        any other SQLite file is refused, untouched.
    timeout
        Seconds (>= 0) a writer waits for the lock held by another writer.
    create
        If False, a missing file is an error instead of a new, empty store.
    read_only
        Open an existing store for reading only: the file is never created,
        converted or written, and :meth:`append` is refused.

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

    def __init__(
        self,
        path: str | Path,
        *,
        timeout: float = 60.0,
        create: bool = True,
        read_only: bool = False,
    ):
        self.path = check_path(path)
        # float("x") was a ValueError; -5 and NaN were taken
        if not (is_finite_number(timeout) and timeout >= 0):
            raise BayesplitError(f"timeout must be a number of seconds >= 0, got {_shown(timeout)}")
        self.timeout = float(timeout)
        self.read_only = check_flag(read_only, "read_only")
        create = check_flag(create, "create")
        if self.path.is_dir():
            raise BayesplitError(f"{self.path} is a folder, not a run store")
        if self.path.exists():
            # Look before touching: a foreign SQLite file must come out exactly as it went in.
            _check_is_store(self.path, self.timeout, allow_empty=not read_only)
            if not read_only and not os.access(self.path, os.W_OK):
                # refused before SQLite tries: its own error does not say why
                raise BayesplitError(
                    f"cannot write to {self.path}: the file is read-only; nothing was written"
                )
        elif not create or read_only:
            raise BayesplitError(f"no such run store: {self.path}")
        else:
            check_new_store_name(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if not read_only:
            with self._connect() as con, _sql_errors(f"cannot write to {self.path}"):
                _retry(lambda: _create_schema(con), self.timeout)

    @classmethod
    def check(cls, path: str | Path, *, allow_empty: bool = False, timeout: float = 60.0) -> None:
        """Raise :class:`BayesplitError` unless ``path`` is an existing run store.

        With ``allow_empty``, an empty SQLite file (what a new store is made from)
        passes too. The file is only read, never changed.
        """
        path = check_path(path)
        if not path.exists():
            raise BayesplitError(f"no such run store: {path}")
        if path.is_dir():
            raise BayesplitError(f"{path} is a folder, not a run store")
        _check_is_store(path, float(timeout), allow_empty=allow_empty)

    def _connect(self, *, write: bool | None = None) -> sqlite3.Connection:
        return _connect(
            self.path, self.timeout, write=not self.read_only if write is None else write
        )

    # -- writing ----------------------------------------------------------
    def append(self, runs: pd.DataFrame | Iterable[Mapping], *, skip_existing: bool = False) -> int:
        """Validate rows and append them in one transaction; returns the number of rows added.

        ``runs`` is a DataFrame or a list of row mappings (a key some rows lack is missing
        there; integers keep every digit). Rows whose (run_id, eval_domain, step) is
        already in the store are refused and nothing is written; with ``skip_existing``,
        those stored with the same values (a run table that grew since its last import)
        are skipped instead, and one stored with other values (N, D, D', train_domain,
        loss, seed or trunk_id) is refused. A row without a step that repeats a stored
        row's measurement at a step (or the reverse: the same run, eval domain, N, D and
        D') is refused as the same measurement twice.
        """
        if self.read_only:
            raise BayesplitError(f"{self.path} was opened read-only; nothing was written")
        if isinstance(runs, (str, bytes, Path, Mapping)) or not isinstance(
            runs, (pd.DataFrame, Iterable)
        ):
            # a path or one row read as a list of letters or keys: "missing column 'run_id'"
            hint = (
                "; to append a file, pass bayesplit.load_runs(path)"
                if isinstance(runs, (str, Path))
                else "; for one row, pass [row]"
                if isinstance(runs, Mapping)
                else ""
            )
            raise BayesplitError(
                f"append takes a DataFrame or a list of row mappings, got "
                f"{type(runs).__name__}{hint}; nothing was written"
            )
        df = runs if isinstance(runs, pd.DataFrame) else _frame_of_rows(runs)
        # a branch's train_domain may be a domain only earlier rows were evaluated on
        new_domains: set[str] = set()
        if "eval_domain" in df.columns:
            new_domains = {str(d).strip() for d in df["eval_domain"].dropna()}
            stored_domains = self.eval_domains()
            df = validate_runs(df, domains=sorted(stored_domains | new_domains))
        else:
            df = validate_runs(df)
        skip_existing = check_flag(skip_existing, "skip_existing")
        records = _to_records(df)  # a value the store cannot keep is refused before the lock
        now = datetime.now(UTC).isoformat(timespec="seconds")
        cols = [*CANONICAL, "extra", "inserted_at"]
        sql = f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        with self._connect() as con:
            try:
                con.execute("BEGIN IMMEDIATE")
                # inside the write lock, so no other writer slips a clashing row in between
                if new_domains:
                    now_stored = {
                        r[0] for r in con.execute("SELECT DISTINCT eval_domain FROM runs")
                    }
                    if now_stored != stored_domains:  # "Code" appended while "code" was checked
                        validate_runs(df, domains=sorted(now_stored | new_domains))
                stored = _stored_rows(con, df)
                if len(stored):
                    df = _without_stored(df, stored, self.path, skip_existing)
                    records = _to_records(df) if len(df) else []
                clash = _clashes_with_stored(con, df) if len(df) else None
                if clash:
                    con.execute("ROLLBACK")
                    raise BayesplitError(
                        f"{self.path}: {clash}, counting the rows already in the store; "
                        "nothing was written"
                    )
                con.executemany(sql, [(*r, now) for r in records])
                con.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                con.execute("ROLLBACK")
                if "UNIQUE" not in str(exc):  # a NOT NULL column this version does not fill
                    raise BayesplitError(
                        f"cannot write to {self.path}: its table does not match this version "
                        f"of bayesplit; nothing was written ({exc})"
                    ) from None
                raise BayesplitError(
                    f"{self.path}: some (run_id, eval_domain, step) rows are already in the store; nothing was written ({exc})"
                ) from None
            except sqlite3.OperationalError as exc:
                # a read-only file or folder, a full disk, a lock held past the timeout
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise BayesplitError(f"cannot write to {self.path}: {exc}") from None
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        return len(records)

    # -- reading ----------------------------------------------------------
    def read(self) -> pd.DataFrame:
        """All rows, in insertion order, as a run table (extra fields expanded to columns)."""
        with self._connect() as con, _sql_errors(f"cannot read {self.path}"):
            raw = pd.read_sql_query(
                f"SELECT {', '.join(CANONICAL)}, extra FROM runs ORDER BY row_id", con
            )
        try:
            extras = frame_of_records([json.loads(e) for e in raw.pop("extra")], raw.index)
        except (TypeError, ValueError) as exc:  # a row edited outside bayesplit
            raise BayesplitError(
                f"cannot read {self.path}: a row's extra fields are not JSON ({exc})"
            ) from None
        df = pd.concat([raw, extras], axis=1) if len(extras.columns) else raw
        optional_empty = [
            c for c in ("step", "trunk_id", "unique_spec_tokens", "schedule") if df[c].isna().all()
        ]
        df = df.drop(columns=optional_empty)
        if "step" in df.columns:  # an INTEGER column with NULLs reads as float64 (5.0)
            df["step"] = df["step"].astype("Int64")
        return df

    def eval_domains(self) -> set[str]:
        """The eval domains of the rows already in the store."""
        with self._connect(write=False) as con, _sql_errors(f"cannot read {self.path}"):
            return {r[0] for r in con.execute("SELECT DISTINCT eval_domain FROM runs")}

    def __len__(self) -> int:
        with self._connect() as con, _sql_errors(f"cannot read {self.path}"):
            return int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"


def _frame_of_rows(rows: Iterable) -> pd.DataFrame:
    """Row mappings as a table, whole numbers kept whole: ``pd.DataFrame`` made a seed or
    extra integer missing in some rows float64 (``9007199254740993`` stored as ``...992``,
    and a seed beyond 2^53 refused as not written exactly)."""
    rows = list(rows)
    odd = next((i for i, r in enumerate(rows) if not isinstance(r, (Mapping, pd.Series))), None)
    if odd is not None:
        raise BayesplitError(
            f"append takes a DataFrame or a list of row mappings, got a "
            f"{type(rows[odd]).__name__} as row {odd + 1}; nothing was written"
        )
    return frame_of_records([dict(r) for r in rows])


def _connect(path: Path, timeout: float, *, write: bool) -> _Closing:
    """A connection; read-only ones never create, convert or change the file."""
    try:
        if write:
            con = sqlite3.connect(path, timeout=timeout, isolation_level=None)
            _retry(lambda: con.execute("PRAGMA journal_mode=WAL"), timeout)
            con.execute("PRAGMA synchronous=NORMAL")
        else:
            con = _connect_read_only(path, timeout)
    except sqlite3.DatabaseError as exc:
        raise BayesplitError(f"{path} is not a bayesplit run store: {exc}") from None
    return _Closing(con)


def _connect_read_only(path: Path, timeout: float) -> sqlite3.Connection:
    """A connection that never writes, to the file or beside it.

    ``mode=rw`` with ``query_only`` where the file may be written. Where it may not (a
    read-only file, folder or disk), SQLite opens it read-only (``mode=rw`` silently, as
    ``mode=ro``) and creates -wal/-shm files carrying the store's read-only mode, which
    every later append failed on; so ``mode=ro`` is used only where both files exist
    already, else the file is copied into memory (:func:`_snapshot`), only where no -wal
    file holds rows. A store whose -wal holds rows that neither can read is refused rather
    than read without them.
    """
    base = path.resolve().as_uri()
    wal = path.with_name(path.name + "-wal")
    shm = path.with_name(path.name + "-shm")
    deadline = time.monotonic() + timeout
    while True:
        pending = _size(wal) > 0
        queries = ["mode=rw"] if os.access(path, os.W_OK) else []
        if wal.exists() and shm.exists():
            queries.append("mode=ro")
        for query in queries:
            con = None
            try:
                con = sqlite3.connect(
                    f"{base}?{query}", uri=True, timeout=timeout, isolation_level=None
                )
                con.execute("PRAGMA query_only=ON")
                con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                return con
            except sqlite3.OperationalError as exc:  # cannot open so (corrupt files raise others)
                if con is not None and ("locked" in str(exc) or "busy" in str(exc)):
                    return con  # a writer holds it: callers retry their queries
                if con is not None:
                    con.close()
        if pending:
            break
        copy = _snapshot(path)
        if copy is not None:
            return copy
        if time.monotonic() > deadline:
            raise BayesplitError(
                f"cannot read {path}: a writer kept changing it while it was read, for "
                f"{timeout:g} s (reading it needs write access to it, or its "
                f"{shm.name} file beside it, to take SQLite's locks)"
            )
        time.sleep(0.05)
    raise BayesplitError(
        f"cannot read {path}: rows written last are still in {wal.name}, which SQLite reads "
        f"only with write access to the store and its folder, or with {shm.name} beside "
        "it; open the store once with write access (any bayesplit command that reads it, "
        "e.g. runs list) to fold them in"
    )


def _size(file: Path) -> int:
    """The size of ``file``, 0 if it is not there (a writer closing deletes its -wal)."""
    try:
        return file.stat().st_size
    except FileNotFoundError:
        return 0


def _snapshot(path: Path) -> sqlite3.Connection | None:
    """The store copied into memory through an ``immutable`` connection, for a reader that
    may not write the file (another user's store, a read-only disk); None if a writer
    changed it meanwhile (the caller tries again).

    ``immutable`` takes no locks: a writer that checkpoints while it is read tore the
    read ("database disk image is malformed", or half an append). The copy counts only if
    the file is the same before and after it, and no -wal holding rows appeared.
    """
    wal = path.with_name(path.name + "-wal")

    def state() -> tuple:
        st = path.stat()
        return st.st_size, st.st_mtime_ns, _size(wal) > 0

    before = state()
    src = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    copy = sqlite3.connect(":memory:", isolation_level=None)
    try:
        src.backup(copy)
    except sqlite3.DatabaseError:
        copy.close()
        if state() == before and not before[2]:
            raise  # not torn by a writer: the file itself
        return None
    finally:
        src.close()
    if state() != before or before[2]:
        copy.close()
        return None
    copy.execute("PRAGMA query_only=ON")
    return copy


def _check_is_store(path: Path, timeout: float, *, allow_empty: bool) -> None:
    """Refuse a file that is not a run store (an empty database passes if ``allow_empty``)."""
    with _connect(path, timeout, write=False) as con:
        try:
            objects = _retry(
                lambda: con.execute("SELECT type, name FROM sqlite_master").fetchall(), timeout
            )
            columns = {row[1] for row in con.execute("PRAGMA table_info(runs)")}
            version = con.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise BayesplitError(f"{path} is not a bayesplit run store: {exc}") from None
    # a newer layout may rename or drop a column: its runs table need not hold them all
    if columns & _STORE_COLUMNS and version > SCHEMA_VERSION:
        raise BayesplitError(
            f"{path} is a run store of a newer layout (version {version}; this bayesplit "
            f"reads up to {SCHEMA_VERSION}): upgrade bayesplit to use it"
        )
    if columns >= _STORE_COLUMNS:
        return
    if not objects:
        if allow_empty:
            return
        raise BayesplitError(f"{path} is not a bayesplit run store: it is empty")
    tables = sorted(name for kind, name in objects if kind == "table")
    raise BayesplitError(
        f"{path} is a SQLite database but not a bayesplit run store "
        f"(tables: {', '.join(tables) or 'none'})"
    )


@contextlib.contextmanager
def _sql_errors(what: str) -> Iterator[None]:
    """SQLite's errors as one line (a lock held past the timeout, a damaged file)."""
    try:
        yield
    except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:  # pandas wraps read_sql's
        raise BayesplitError(f"{what}: {type(exc).__name__}: {exc}") from None


def _retry(fn, timeout: float):
    # WAL setup and schema creation can race when many jobs open a new store at once.
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _create_schema(con: sqlite3.Connection) -> None:
    try:
        con.executescript(_SCHEMA)
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise


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


#: Run ids per query when looking up stored rows (SQLite's default limit on "?" is 999).
_IDS_PER_QUERY = 500


def _clashes_with_stored(con: sqlite3.Connection, new: pd.DataFrame) -> str | None:
    """The first way the new rows contradict stored rows of the same runs, or None.

    ``validate_runs`` sees the new rows alone; a run whose earlier rows are stored must
    still name one model (the same N, seed and trunk, and D, D', train_domain at each
    step), and a trunk one N, and a row without a step must not repeat a stored row's
    measurement at a step (or the reverse), or every later read of the store would refuse
    it.
    """
    from bayesplit.runs import _run_conflicts

    cols = [
        "run_id",
        "step",
        "params",
        "seed",
        "trunk_id",
        "pretrain_tokens",
        "spec_tokens",
        "train_domain",
        "eval_domain",
    ]
    # stored rows of the new runs, and of their trunks (branches, and a run named like one)
    trunks = new["trunk_id"].dropna() if "trunk_id" in new.columns else []
    keys = sorted({str(r) for r in new["run_id"]} | {str(t) for t in trunks})
    stored = [_rows_where(con, ["row_id", *cols], col, keys) for col in ("run_id", "trunk_id")]
    old = pd.concat(stored, ignore_index=True).drop_duplicates("row_id").drop(columns="row_id")
    if not len(old):
        return None
    fresh = new.reindex(columns=cols)
    both = pd.concat(
        [old.astype({"step": float}), fresh.astype({"step": float})], ignore_index=True
    )
    problems = _run_conflicts(both)
    return problems[0] if problems else None


#: What makes a stored row the same as a given one (beyond its key): extras may differ.
_SAME_ROW = ("params", "pretrain_tokens", "spec_tokens", "train_domain", "loss", "seed", "trunk_id")


def _rows_where(
    con: sqlite3.Connection, cols: list[str], column: str, values: list[str]
) -> pd.DataFrame:
    """``cols`` of the stored rows whose ``column`` is one of ``values`` (asked in chunks:
    SQLite limits the parameters of one query)."""
    found = [
        pd.read_sql_query(
            f"SELECT {', '.join(cols)} FROM runs WHERE {column} IN ({', '.join('?' * len(chunk))})",
            con,
            params=chunk,
        )
        for chunk in (values[i : i + _IDS_PER_QUERY] for i in range(0, len(values), _IDS_PER_QUERY))
    ]
    return pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=cols)


def _stored_rows(con: sqlite3.Connection, new: pd.DataFrame) -> pd.DataFrame:
    """The stored rows with a (run_id, eval_domain, step) key of ``new``."""
    runs = sorted({str(r) for r in new["run_id"]})
    stored = _rows_where(con, ["run_id", "eval_domain", "step", *_SAME_ROW], "run_id", runs)
    keys = set(zip(*_keys(new), strict=True))
    return stored[[k in keys for k in zip(*_keys(stored), strict=True)]]


def _keys(df: pd.DataFrame) -> tuple[list, list, list]:
    step = df["step"] if "step" in df.columns else pd.Series(None, index=df.index)
    steps = [-1 if pd.isna(v) else int(v) for v in step]
    return [str(r) for r in df["run_id"]], [str(d) for d in df["eval_domain"]], steps


def _without_stored(
    new: pd.DataFrame, stored: pd.DataFrame, path: Path, skip_existing: bool
) -> pd.DataFrame:
    """``new`` less the rows ``stored`` holds; refused unless ``skip_existing`` and each
    such row is stored with the same values."""
    given = new.reset_index(drop=True)
    key = list(zip(*_keys(given), strict=True))
    held = dict(zip(zip(*_keys(stored), strict=True), stored.to_dict("records"), strict=True))
    repeated = [i for i, k in enumerate(key) if k in held]
    first = key[repeated[0]]
    where = f"({first[0]!r}, {first[1]!r}, {'no step' if first[2] == -1 else f'step {first[2]}'})"
    if not skip_existing:
        raise BayesplitError(
            f"{path}: {len(repeated)} of the rows are already in the store, e.g. {where}; "
            "nothing was written (runs import --skip-existing, in Python: skip_existing=True, "
            "appends only the rows not in it)"
        )
    for i in repeated:
        row, old = given.iloc[i], held[key[i]]
        for col in _SAME_ROW:
            a = row[col] if col in given.columns else None
            b = old[col]
            if not _same_value(a, b):
                k = key[i]
                raise BayesplitError(
                    f"{path}: row {i + 1} ({k[0]!r}, {k[1]!r}) is in the store with another "
                    f"{col} (stored {_plain(b)!r}, given {_plain(a)!r}); nothing was written"
                )
    return given.drop(index=repeated).reset_index(drop=True)


def _same_value(a, b) -> bool:
    """One value as given and as stored: blanks alike, text as text, integers exactly (a
    64-bit seed is not a float), other numbers as floats."""
    if a is None or pd.isna(a) or b is None or pd.isna(b):
        return (a is None or pd.isna(a)) and (b is None or pd.isna(b))
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)):
        return int(a) == int(b)
    return float(a) == float(b)


def _to_records(df: pd.DataFrame) -> list[tuple]:
    """Rows as the store's columns; extra columns go to one JSON object per row.

    Raises :class:`BayesplitError` for an extra value JSON cannot hold (bytes, a set, an
    arbitrary object), naming its column and row.
    """
    extra_cols = [c for c in df.columns if c not in CANONICAL]
    out = []
    for i, row in enumerate(df.to_dict("records")):
        values = []
        for c in CANONICAL:
            v = row.get(c)
            values.append(_plain(v))
        # JSON has no infinity, and jsonable reads it as missing: a diverged run's
        # grad_norm=inf was kept as null, silently, in a store that cannot be edited
        for c in extra_cols:
            infinite = False
            with contextlib.suppress(RecursionError):  # too deep: jsonable refuses it below
                infinite = _has_infinity(_plain(row[c]))
            if infinite:
                raise BayesplitError(
                    f"column {str(c)!r} holds an infinite value (row {i + 1}), which the run "
                    "store cannot keep (JSON has no infinity); write it as text or a large "
                    "number, or leave it blank"
                )
        # extra columns as JSON: a date becomes ISO text, a decimal a float
        extra = {c: v for c in extra_cols if (v := jsonable(_plain(row[c]))) is not None}
        try:
            values.append(json.dumps(extra, sort_keys=True, allow_nan=False))
        except (TypeError, ValueError):
            bad = [(c, v) for c, v in extra.items() if not _json_ok(v)]
            col, value = bad[0] if bad else (", ".join(map(str, extra)), None)
            raise BayesplitError(
                f"column {str(col)!r} holds a value the run store cannot keep (row {i + 1}: "
                f"{type(value).__name__}); give numbers, text, dates, lists or mappings"
            ) from None
        out.append(tuple(values))
    return out


def _has_infinity(v) -> bool:
    """Whether ``v`` (a scalar, or lists and mappings of them, as JSONL gives) holds ±inf."""
    if isinstance(v, (float, np.floating)):
        return bool(np.isinf(v))
    if isinstance(v, decimal.Decimal):
        return v.is_infinite()
    if isinstance(v, np.ndarray) and v.ndim == 0:  # iterating one was a TypeError
        return _has_infinity(v.item())
    if isinstance(v, dict):
        return any(_has_infinity(x) for x in v.values())
    if isinstance(v, (list, tuple, np.ndarray)):
        return any(_has_infinity(x) for x in v)
    return False


def _plain(v):
    """Python scalar for sqlite/json; missing values become None."""
    if v is None or v is pd.NA:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and np.isnan(v):
        return None
    return v
