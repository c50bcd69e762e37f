"""Run tables: one row per (run, eval domain) measurement, validated at the boundary.

The canonical columns follow the DESIGN vocabulary:

============== ========================================================== ========
column          meaning                                                    required
============== ========================================================== ========
run_id          identifier of the training run                             yes
params          N, model size in parameters (raw count, not millions)      yes
pretrain_tokens D, general pretraining tokens before the split             yes
eval_domain     domain whose validation loss is reported                   yes
loss            validation loss in nats per token                          yes
spec_tokens     D', specialization tokens (0 = not specialized)            no (0)
train_domain    domain the run was specialized on (empty when D' = 0)      no
seed            training seed                                              no (0)
step            checkpoint step, for several checkpoints of one run        no
trunk_id        pretraining trunk a branch was specialized from            no
unique_spec_tokens  unique domain tokens behind D' (repetition)            no
schedule        learning-rate schedule label                               no
============== ========================================================== ========

Any other column is kept as it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bayesplit.errors import BayesplitError

REQUIRED = ("run_id", "params", "pretrain_tokens", "eval_domain", "loss")
OPTIONAL = (
    "spec_tokens",
    "train_domain",
    "seed",
    "step",
    "trunk_id",
    "unique_spec_tokens",
    "schedule",
)
CANONICAL = (
    "run_id",
    "seed",
    "params",
    "pretrain_tokens",
    "spec_tokens",
    "train_domain",
    "eval_domain",
    "loss",
    "step",
    "trunk_id",
    "unique_spec_tokens",
    "schedule",
)
NUMERIC = ("params", "pretrain_tokens", "spec_tokens", "loss", "seed", "step", "unique_spec_tokens")
STRINGS = ("run_id", "train_domain", "eval_domain", "trunk_id", "schedule")

#: Below this a parameter or token count is almost surely in millions/billions, not raw.
MIN_PLAUSIBLE_COUNT = 1e3
#: Above this a "loss" in nats per token is almost surely a perplexity.
MAX_PLAUSIBLE_LOSS = 20.0

#: File types a run store (:class:`bayesplit.store.RunStore`) is recognised by.
STORE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
#: File types :func:`write_table` writes, and the format each one means.
WRITE_FORMATS = {
    ".csv": "csv",
    ".csv.gz": "csv.gz",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
FILE_SUFFIXES = (*WRITE_FORMATS, ".json", *STORE_SUFFIXES)


class RunTableError(BayesplitError):
    """A run table failed validation; ``problems`` lists every problem found, one line each."""

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        more = (
            f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
            if len(problems) > 1
            else ""
        )
        super().__init__(f"{where}{problems[0]}{more}")


def _rows(mask: np.ndarray | pd.Series, limit: int = 5) -> str:
    """Describe offending rows by 1-based data-row number, as a spreadsheet shows them."""
    idx = np.flatnonzero(np.asarray(mask))
    shown = ", ".join(str(i + 1) for i in idx[:limit])
    extra = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return f"row{'s' if len(idx) > 1 else ''} {shown}{extra}"


def _is_blank(series: pd.Series) -> pd.Series:
    s = series.astype("object")
    return s.isna() | s.map(lambda v: isinstance(v, str) and v.strip() == "")


def validate_runs(
    table: pd.DataFrame,
    *,
    domains: Iterable[str] | None = None,
    source: str | None = None,
) -> pd.DataFrame:
    """Check a run table and return it in canonical form.

    Parameters
    ----------
    table
        One row per (run, eval domain) measurement, with at least the columns
        ``run_id, params, pretrain_tokens, eval_domain, loss``.
    domains
        If given, every ``eval_domain`` and ``train_domain`` must be one of these.
    source
        Name of the file the table came from, used in error messages.

    Returns
    -------
    pandas.DataFrame
        A copy with canonical dtypes; missing optional columns are filled
        (``spec_tokens`` = 0, ``seed`` = 0, ``train_domain`` empty).

    Raises
    ------
    RunTableError
        With one message per problem (missing column, non-numeric value,
        NaN/inf/non-positive loss, non-positive params or tokens, negative
        spec_tokens, duplicate (run_id, eval_domain, step), unknown domain,
        values in the wrong unit).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"run_id": ["a", "a"], "params": [1e8, 1e8],
    ...                   "pretrain_tokens": [2e9, 2e9], "eval_domain": ["web", "code"],
    ...                   "loss": [3.1, 2.2]})
    >>> v = validate_runs(t)
    >>> v["spec_tokens"].tolist(), v["seed"].tolist()
    ([0.0, 0.0], [0, 0])
    """
    if not isinstance(table, pd.DataFrame):
        raise RunTableError([f"expected a pandas DataFrame, got {type(table).__name__}"], source)
    df = table.copy()
    df.columns = [str(c).strip() for c in df.columns]
    problems: list[str] = []

    missing = [c for c in REQUIRED if c not in df.columns]
    for c in missing:
        problems.append(f"missing column '{c}' (required: {', '.join(REQUIRED)})")
    if missing:
        raise RunTableError(problems, source)
    if len(df) == 0:
        raise RunTableError(["the table has no rows"], source)
    if df.columns.duplicated().any():
        dup = sorted(set(df.columns[df.columns.duplicated()]))
        raise RunTableError([f"duplicate column name(s): {', '.join(dup)}"], source)

    df = df.reset_index(drop=True)
    if "spec_tokens" not in df.columns:
        df["spec_tokens"] = 0.0
    if "seed" not in df.columns:
        df["seed"] = 0
    if "train_domain" not in df.columns:
        df["train_domain"] = None

    # numeric columns: parse, then flag what did not parse
    for col in NUMERIC:
        if col not in df.columns:
            continue
        raw = df[col]
        optional_blank = _is_blank(raw) if col in ("step", "unique_spec_tokens") else None
        if raw.dtype == bool or str(raw.dtype) == "boolean":
            problems.append(f"column '{col}' is boolean, expected numbers")
            df[col] = np.nan
            continue
        num = pd.to_numeric(raw.astype("object").map(_to_number), errors="coerce").astype("float64")
        bad = num.isna() & ~_is_blank(raw)
        if bad.any():
            examples = ", ".join(repr(v) for v in raw[bad].astype("object").head(3))
            problems.append(f"column '{col}' has non-numeric values ({_rows(bad)}: {examples})")
        blank = _is_blank(raw)
        if blank.any() and optional_blank is None:
            if col == "spec_tokens" or col == "seed":
                num = num.where(~blank, 0.0)
            else:
                problems.append(f"column '{col}' has missing values ({_rows(blank)})")
        df[col] = num

    for col in STRINGS:
        if col not in df.columns:
            continue
        s = df[col].astype("object")
        blank = _is_blank(s)
        if col in ("run_id", "eval_domain") and blank.any():
            problems.append(f"column '{col}' has empty values ({_rows(blank)})")
        cleaned = [None if b else str(v).strip() for v, b in zip(s, blank, strict=True)]
        df[col] = pd.Series(cleaned, index=df.index, dtype="object")

    loss = df["loss"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        if np.isinf(loss).any():
            problems.append(f"loss is infinite ({_rows(np.isinf(loss))})")
        nonpos = np.isfinite(loss) & (loss <= 0)
        if nonpos.any():
            problems.append(f"loss must be > 0 nats per token ({_rows(nonpos)})")
        huge = np.isfinite(loss) & (loss > MAX_PLAUSIBLE_LOSS)
        if huge.any():
            problems.append(
                f"loss > {MAX_PLAUSIBLE_LOSS:g} looks like a perplexity; give nats per token, log(perplexity) ({_rows(huge)})"
            )
        nan_loss = np.isnan(loss) & ~df["loss"].isna().to_numpy()  # NaN typed in, not blank
        if nan_loss.any():
            problems.append(f"loss is NaN ({_rows(nan_loss)})")

        for col, label in (("params", "params (N)"), ("pretrain_tokens", "pretrain_tokens (D)")):
            v = df[col].to_numpy(dtype=float)
            if np.isinf(v).any():
                problems.append(f"{label} is infinite ({_rows(np.isinf(v))})")
            nonpos = np.isfinite(v) & (v <= 0)
            if nonpos.any():
                problems.append(f"{label} must be > 0 ({_rows(nonpos)})")
            small = np.isfinite(v) & (v > 0) & (v < MIN_PLAUSIBLE_COUNT)
            if small.any():
                unit = "millions/billions" if col == "params" else "billions"
                problems.append(
                    f"{label} below {MIN_PLAUSIBLE_COUNT:g} looks like the wrong unit ({unit}?); give raw counts ({_rows(small)})"
                )

        sp = df["spec_tokens"].to_numpy(dtype=float)
        if np.isinf(sp).any():
            problems.append(f"spec_tokens (D') is infinite ({_rows(np.isinf(sp))})")
        neg = np.isfinite(sp) & (sp < 0)
        if neg.any():
            problems.append(f"spec_tokens (D') must be >= 0 ({_rows(neg)})")
        tiny = np.isfinite(sp) & (sp > 0) & (sp < MIN_PLAUSIBLE_COUNT)
        if tiny.any():
            problems.append(
                f"spec_tokens (D') between 0 and {MIN_PLAUSIBLE_COUNT:g} looks like the wrong unit; give raw token counts ({_rows(tiny)})"
            )
        seeds = df["seed"].to_numpy(dtype=float)
        nonint = np.isfinite(seeds) & (seeds != np.round(seeds))
        if nonint.any() or np.isinf(seeds).any():
            problems.append(f"seed must be an integer ({_rows(nonint | np.isinf(seeds))})")
        if "step" in df.columns:
            st = df["step"].to_numpy(dtype=float)
            badstep = np.isfinite(st) & ((st != np.round(st)) | (st < 0))
            if badstep.any() or np.isinf(st).any():
                problems.append(
                    f"step must be a non-negative integer ({_rows(badstep | np.isinf(st))})"
                )

    spec = df["spec_tokens"].to_numpy(dtype=float) > 0
    no_train = spec & _is_blank(df["train_domain"]).to_numpy()
    if no_train.any():
        problems.append(f"spec_tokens > 0 but train_domain is empty ({_rows(no_train)})")

    eval_domains = {d for d in df["eval_domain"] if isinstance(d, str)}
    allowed = set(domains) if domains is not None else None
    if allowed is not None:
        unknown = sorted(eval_domains - allowed)
        if unknown:
            problems.append(
                f"unknown eval_domain {', '.join(map(repr, unknown))} (known: {', '.join(sorted(allowed))})"
            )
    known = allowed if allowed is not None else eval_domains
    train_domains = {d for d in df["train_domain"] if isinstance(d, str)}
    unknown_train = sorted(train_domains - known)
    if unknown_train:
        problems.append(
            f"unknown train_domain {', '.join(map(repr, unknown_train))}: no eval_domain of that name (known: {', '.join(sorted(known))})"
        )

    step_key = df["step"].fillna(-1) if "step" in df.columns else pd.Series(-1, index=df.index)
    key = pd.DataFrame({"r": df["run_id"], "e": df["eval_domain"], "s": step_key})
    dup = key.duplicated(keep=False).to_numpy() & df["run_id"].notna().to_numpy()
    if dup.any():
        first = key[dup].iloc[0]
        problems.append(
            f"duplicate (run_id, eval_domain, step) rows, e.g. ({first['r']!r}, {first['e']!r}) ({_rows(dup)})"
        )

    if problems:
        raise RunTableError(problems, source)

    df["seed"] = df["seed"].astype("int64")
    if "step" in df.columns:
        df["step"] = df["step"].astype("Int64")
    ordered = [c for c in CANONICAL if c in df.columns]
    return df[ordered + [c for c in df.columns if c not in CANONICAL]]


def _to_number(v):
    if isinstance(v, str):
        v = v.strip()
        if v == "":
            return np.nan
    return v


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a run table from CSV, Parquet, JSONL or a run store, without validating it."""
    p = Path(path)
    name = p.name.lower()
    if not p.exists():
        raise BayesplitError(f"no such file: {p}")
    if p.is_dir():
        raise BayesplitError(f"{p} is a directory, expected a run table file")
    try:
        if name.endswith(STORE_SUFFIXES):
            from bayesplit.store import RunStore

            return RunStore(p, read_only=True).read()
        if name.endswith((".csv", ".csv.gz", ".tsv")):
            return pd.read_csv(
                p,
                sep="\t" if name.endswith(".tsv") else ",",
                dtype={"run_id": str, "train_domain": str, "eval_domain": str, "trunk_id": str},
            )
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(p)
        if name.endswith((".jsonl", ".ndjson")):
            return pd.read_json(p, lines=True, dtype={"run_id": str})
        if name.endswith(".json"):
            with open(p) as fh:
                data = json.load(fh)
            if isinstance(data, Mapping) and "runs" in data:
                data = data["runs"]
            return pd.DataFrame(data)
    except BayesplitError:
        raise
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise BayesplitError(f"cannot read {p}: {' '.join(str(exc).split())}") from None
    except Exception as exc:  # pyarrow and sqlite raise their own types for corrupt files
        raise BayesplitError(
            f"cannot read {p}: {type(exc).__name__}: {' '.join(str(exc).split())}"
        ) from None
    raise BayesplitError(
        f"unknown run table format for {p.name}; use one of {', '.join(FILE_SUFFIXES)}"
    )


def load_runs(
    source: str | Path | pd.DataFrame,
    *,
    domains: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Load and validate a run table from a file, a run store or a DataFrame.

    Parameters
    ----------
    source
        Path to a ``.csv``/``.csv.gz``, ``.parquet``, ``.jsonl`` or run-store
        ``.db`` file, or a DataFrame.
    domains
        Optional list of allowed domain names.

    Returns
    -------
    pandas.DataFrame
        The canonical, validated run table.
    """
    if isinstance(source, pd.DataFrame):
        return validate_runs(source, domains=domains)
    return validate_runs(read_table(source), domains=domains, source=str(source))


def write_format(path: str | Path, option: str | None = None) -> str:
    """The format :func:`write_table` writes ``path`` in (``csv``, ``csv.gz``, ``parquet``, ``jsonl``).

    Raises :class:`BayesplitError` for any other file type; ``option`` names the
    command-line option the path came from, for the message.

    >>> write_format("runs.csv.gz"), write_format("runs.pq")
    ('csv.gz', 'parquet')
    """
    p = Path(path)
    name = p.name.lower()
    for suffix, fmt in WRITE_FORMATS.items():
        if name.endswith(suffix):
            return fmt
    got = "".join(p.suffixes[-2:] if p.suffix.lower() == ".gz" else [p.suffix])
    allowed = ".csv, .csv.gz, .parquet or .jsonl"
    if option:
        raise BayesplitError(f"{option} {p} must end in {allowed} (got {got or 'no extension'})")
    raise BayesplitError(f"cannot write {p.name}: use {allowed} (got {got or 'no extension'})")


def write_table(runs: pd.DataFrame, path: str | Path) -> Path:
    """Write a run table to CSV, Parquet or JSONL, atomically (temp file + rename).

    An unknown file type is refused before anything (a missing folder included) is created.
    """
    from bayesplit._io import atomic_path

    p = Path(path)
    fmt = write_format(p)
    with atomic_path(p) as tmp:
        if fmt in ("csv", "csv.gz"):
            runs.to_csv(tmp, index=False, compression="gzip" if fmt == "csv.gz" else None)
        elif fmt == "parquet":
            runs.to_parquet(tmp, index=False)
        else:
            runs.to_json(tmp, orient="records", lines=True)
    return p


def compute_flops(runs: pd.DataFrame) -> np.ndarray:
    """Training compute of each row's model, 6·N·(D + D') FLOPs."""
    return (
        6.0
        * runs["params"].to_numpy(float)
        * (runs["pretrain_tokens"].to_numpy(float) + runs["spec_tokens"].to_numpy(float))
    )


def modelled_rows(runs: pd.DataFrame) -> pd.Series:
    """Rows a law L_k(N, D, D') describes: general models on any domain, specialists on their own domain.

    A model specialized on domain j and evaluated on domain k != j measures
    forgetting, which the laws do not model; those rows stay in the store but are
    left out of fits.
    """
    spec = runs["spec_tokens"].to_numpy(float) > 0
    same = (
        runs["train_domain"].astype("object") == runs["eval_domain"].astype("object")
    ).to_numpy()
    return pd.Series(~spec | same, index=runs.index)


def on_domains(runs: pd.DataFrame, domains: Sequence[str], what: str) -> np.ndarray:
    """Which rows of ``runs`` are on one of ``domains``; none at all is an error.

    A run table with no row on the posterior's domains is almost surely another
    project's (or another eval set's) file, so it is refused rather than ignored.
    """
    shared = runs["eval_domain"].isin(list(domains)).to_numpy()
    if len(runs) and not shared.any():
        raise BayesplitError(
            f"none of {what} is on a domain of the posterior ({', '.join(domains)})"
        )
    return shared
