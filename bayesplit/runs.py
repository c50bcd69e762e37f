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
step            position of the row in its run, for several rows of one    no
                run (the bundled trainer: tokens trained, D + D')
trunk_id        pretraining trunk a branch was specialized from            no
unique_spec_tokens  unique domain tokens behind D' (repetition)            no
schedule        learning-rate schedule label                               no
============== ========================================================== ========

A blank ``spec_tokens`` means 0 on a general model's row; on a row that names a
``train_domain`` it is refused as missing.

Any other column is kept as it is.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import gzip
import json
import numbers
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bayesplit._io import no_repeated_keys, read_json
from bayesplit._parse import check_path, is_number, names
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
#: Text a CSV may use for a missing number (pandas' defaults: R writes NA, Python None).
_NA_MARKERS = (
    "",
    "NA",
    "N/A",
    "n/a",
    "NaN",
    "nan",
    "-NaN",
    "-nan",
    "NULL",
    "null",
    "None",
    "<NA>",
    "#N/A",
)

#: Below this a parameter or token count is almost surely in millions/billions, not raw.
MIN_PLAUSIBLE_COUNT = 1e3
#: Above this many tokens per parameter, (D + D') / N, a count is likely in another unit
#: (FLOPs in the token column, N in millions); the bundled tables reach 6.4e4. A warning,
#: not a refusal: a tiny model trained far past its optimum may be meant.
MAX_PLAUSIBLE_TOKENS_PER_PARAM = 1e7
#: Above this a "loss" in nats per token is almost surely a perplexity.
MAX_PLAUSIBLE_LOSS = 20.0
#: Below this no language model's loss on real text: a probability, or a wrong unit.
MIN_PLAUSIBLE_LOSS = 1e-3

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
FILE_SUFFIXES = (*WRITE_FORMATS, ".tsv", ".json", *STORE_SUFFIXES)


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
        domain names that differ only in case,
        values in the wrong unit, one run_id for two models or two trunks, one
        trunk for two model sizes, a checkpoint on fewer tokens than an earlier step, a
        row without a step that repeats a row with one, a name held as a whole float
        beyond 2^53). A name given as a whole number is the integer's text (``7``, not
        ``7.0``, from a float column). Unlikely but valid values are not refused:
        :func:`table_warnings` names them.

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
    domains = names(domains)  # one domain given as a string is that domain, not its letters
    df = table.copy()
    df.columns = [str(c).strip() for c in df.columns]
    problems: list[str] = []
    if len(df) == 0 and len(df.columns) == 0:  # an empty JSON list: five "missing column" lines
        raise RunTableError(["the table has no rows"], source)

    missing = [c for c in REQUIRED if c not in df.columns]
    in_index = {str(n).strip() for n in table.index.names if n is not None}
    for c in missing:
        hint = " (it is the DataFrame's index: call .reset_index())" if c in in_index else ""
        problems.append(f"missing column '{c}'{hint} (required: {', '.join(REQUIRED)})")
    if missing:
        raise RunTableError(problems, source)
    if len(df) == 0:
        raise RunTableError(["the table has no rows"], source)
    if df.columns.duplicated().any():
        dup = sorted(set(df.columns[df.columns.duplicated()]))
        raise RunTableError([f"duplicate column name(s): {', '.join(dup)}"], source)

    df = df.reset_index(drop=True)
    exact_seeds = pd.Series(0, index=df.index, dtype=object)
    # D' not given (no column, or a blank cell) means a general model: D' = 0
    spec_column = "spec_tokens" in df.columns
    spec_missing = _is_blank(df["spec_tokens"]) if spec_column else pd.Series(True, df.index)
    if not spec_column:
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
        if col == "seed":
            # object dtype: pandas' map would turn [int, nan] into floats again
            exact_seeds = pd.Series([_exact_int(v) for v in raw], index=raw.index, dtype=object)
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
        # a JSON list, object or true/false is no name: str() made ["web", "code"] the one
        # domain "['web', 'code']" (and ["a"] the trunk "['a']"); a number is one (a domain
        # named 7)
        odd = ~blank & s.map(lambda v: not (isinstance(v, str) or is_number(v)))
        if odd.any():
            examples = ", ".join(repr(v) for v in s[odd].head(3))
            problems.append(
                f"column '{col}' holds values that are not names ({_rows(odd)}: {examples})"
            )
        lossy = ~blank & s.map(_lossy_name)
        if lossy.any():
            examples = ", ".join(f"{v:.17g}" for v in s[lossy].head(3))
            problems.append(
                f"column '{col}' holds whole numbers beyond 2^53 as floats, which no longer "
                f"say which name was meant ({_rows(lossy)}: {examples}); give the names as text"
            )
        cleaned = [None if b else _name_text(v) for v, b in zip(s, blank, strict=True)]
        df[col] = pd.Series(cleaned, index=df.index, dtype="object")

    loss = df["loss"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        if np.isinf(loss).any():
            problems.append(f"loss is infinite ({_rows(np.isinf(loss))})")
        nonpos = np.isfinite(loss) & (loss <= 0)
        if nonpos.any():
            problems.append(f"loss must be > 0 nats per token ({_rows(nonpos)})")
        # 1e-300 was fitted: log loss -690 among values near 1, and a posterior to match
        tiny = np.isfinite(loss) & (loss > 0) & (loss < MIN_PLAUSIBLE_LOSS)
        if tiny.any():
            problems.append(
                f"loss < {MIN_PLAUSIBLE_LOSS:g} nats per token is no language model's on real "
                f"text; give the mean cross-entropy per token ({_rows(tiny)})"
            )
        huge = np.isfinite(loss) & (loss > MAX_PLAUSIBLE_LOSS)
        if huge.any():
            problems.append(
                f"loss > {MAX_PLAUSIBLE_LOSS:g} looks like a perplexity; give nats per token, log(perplexity) ({_rows(huge)})"
            )

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
        # a seed is an identifier: it must survive as a 64-bit integer, digit for digit
        not_int64 = exact_seeds.map(lambda v: v is _NOT_INT64).to_numpy(dtype=bool)
        badseed = np.isfinite(seeds) & not_int64 | np.isinf(seeds)
        if badseed.any():
            problems.append(
                f"seed must be an integer between -2^63 and 2^63 - 1, written exactly ({_rows(badseed)})"
            )
        if "step" in df.columns:
            st = df["step"].to_numpy(dtype=float)
            badstep = np.isfinite(st) & ((st != np.round(st)) | (st < 0) | (st >= 2.0**63))
            if badstep.any() or np.isinf(st).any():
                problems.append(
                    f"step must be a non-negative 64-bit integer ({_rows(badstep | np.isinf(st))})"
                )
        if "unique_spec_tokens" in df.columns:
            u = df["unique_spec_tokens"].to_numpy(dtype=float)
            badu = np.isinf(u) | (np.isfinite(u) & (u <= 0))
            if badu.any():
                problems.append(
                    f"unique_spec_tokens must be > 0 and finite where given ({_rows(badu)})"
                )

    spec = df["spec_tokens"].to_numpy(dtype=float) > 0
    no_train = spec & _is_blank(df["train_domain"]).to_numpy()
    if no_train.any():
        problems.append(f"spec_tokens > 0 but train_domain is empty ({_rows(no_train)})")
    # a specialist whose D' is missing would be fitted as a general model at D alone
    no_spec = spec_missing.to_numpy(dtype=bool) & ~_is_blank(df["train_domain"]).to_numpy()
    if no_spec.any():
        where = "value" if spec_column else "column"
        problems.append(
            f"train_domain is given but the spec_tokens {where} is missing ({_rows(no_spec)}): "
            "give D' (0 for a general model or a branch's starting point)"
        )

    eval_domains = {d for d in df["eval_domain"] if isinstance(d, str)}
    allowed = set(domains) if domains is not None else None
    if allowed is not None:
        unknown = sorted(eval_domains - allowed)
        if unknown:
            problems.append(
                f"unknown eval_domain {', '.join(map(repr, unknown))} (known: {', '.join(sorted(allowed))})"
            )
    # one domain written two ways ("code", "Code"; "café" composed and decomposed, as
    # macOS tools write it) would be fitted as two domains
    spellings: dict[str, set[str]] = {}
    for d in eval_domains | (allowed or set()):
        spellings.setdefault(unicodedata.normalize("NFC", d).casefold(), set()).add(d)
    twice = sorted(sorted(v) for v in spellings.values() if len(v) > 1 and v & eval_domains)
    if twice:
        problems.append(
            f"eval_domain names that differ only in case or Unicode form: "
            # ascii: "café" composed and decomposed look alike, 'caf\xe9' and 'cafe\u0301' not
            f"{'; '.join(', '.join(map(ascii, v)) for v in twice)} "
            "(one domain written two ways would be fitted as two; spell it one way)"
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
        # a missing eval_domain is a value here, as duplicated() takes it (NaN != NaN)
        filled = key.astype(object).where(key.notna(), "\0")
        first = key[dup].iloc[0]
        same = (filled == filled[dup].iloc[0]).all(axis=1).to_numpy() & dup  # the example's
        raw = df["step"][same].iloc[0] if "step" in df.columns else None
        step = "no step" if raw is None or pd.isna(raw) else f"step {float(raw):.15g}"
        problems.append(
            f"duplicate (run_id, eval_domain, step) rows, e.g. ({first['r']!r}, {first['e']!r}, "
            f"{step}) at {_rows(same)}"
            + (f"; {int(dup.sum())} rows in all" if dup.sum() > same.sum() else "")
        )

    if not problems:  # on values that parsed: a bad N must not also read as a clash
        problems += _run_conflicts(df)

    if problems:
        raise RunTableError(problems, source)

    df["seed"] = np.array([0 if v is None or v != v else v for v in exact_seeds], dtype=np.int64)
    if "step" in df.columns:
        df["step"] = df["step"].astype("Int64")
    ordered = [c for c in CANONICAL if c in df.columns]
    return df[ordered + [c for c in df.columns if c not in CANONICAL]]


def table_warnings(runs: pd.DataFrame) -> list[str]:
    """What a valid run table (from :func:`validate_runs`) holds that is likely, but not
    surely, wrong; one line each, as ``runs validate`` and ``runs import`` print them."""
    tokens = runs["pretrain_tokens"].to_numpy(float) + runs["spec_tokens"].to_numpy(float)
    ratio = tokens / runs["params"].to_numpy(float)
    high = ratio > MAX_PLAUSIBLE_TOKENS_PER_PARAM
    if not high.any():
        return []
    return [
        f"(pretrain_tokens + spec_tokens) / params above {MAX_PLAUSIBLE_TOKENS_PER_PARAM:g} "
        f"tokens per parameter ({_rows(high)}: {ratio[high][0]:.3g}) looks like a wrong unit "
        "(FLOPs in the token column? N in millions?); give raw token and parameter counts"
    ]


def _run_conflicts(df: pd.DataFrame) -> list[str]:
    """Rows of one run must describe one model: the same N, seed and trunk throughout,
    and at each checkpoint (``step``) the same D, D' and train_domain on every eval
    domain, and no fewer tokens (D + D') at a later step; the rows of one trunk (its
    branches, and the run named like it) one N; and no row without a step measures what a
    row with one does (:func:`_measured_twice`).

    The model gives each run (or its trunk) one random effect, so two models under
    one run_id or trunk_id would silently share it, and a run on two trunks (or on a
    trunk in some rows only) would silently get two.
    """
    problems = []
    valid = df["run_id"].notna()
    step = df["step"].fillna(-1) if "step" in df.columns else pd.Series(-1, index=df.index)
    train = df["train_domain"].astype("object").where(df["train_domain"].notna(), "")
    if "trunk_id" in df.columns:
        trunk = df["trunk_id"].astype("object").where(df["trunk_id"].notna(), "")
    else:
        trunk = pd.Series("", index=df.index, dtype="object")
    keyed = pd.DataFrame(
        {
            "run_id": df["run_id"],
            "step": step,
            "params": df["params"],
            "seed": df["seed"],
            "trunk_id": trunk,
            "pretrain_tokens": df["pretrain_tokens"],
            "spec_tokens": df["spec_tokens"],
            "train_domain": train,
            "eval_domain": df["eval_domain"],
        }
    )[valid]
    checks = (
        (["run_id"], ("params", "seed", "trunk_id")),
        (["run_id", "step"], ("pretrain_tokens", "spec_tokens", "train_domain")),
    )
    for by, cols in checks:
        for col in cols:
            counts = keyed.groupby(by, sort=False)[col].nunique()
            clashing = counts[counts > 1]
            if len(clashing):
                run = clashing.index[0][0] if len(by) > 1 else clashing.index[0]
                values = keyed.loc[keyed["run_id"] == run, col].drop_duplicates().head(3)
                where = " at one step" if len(by) > 1 and "step" in df.columns else ""
                problems.append(
                    f"run_id {run!r} has rows with different {col}{where} "
                    f"({', '.join(_show(v) for v in values)}): one run_id must name one model "
                    f"({len(clashing)} run{'s' if len(clashing) > 1 else ''} like this)"
                )
    if problems:
        return problems
    problems += _measured_twice(keyed)
    if problems:
        return problems
    # checkpoints of one run: a later step has trained on at least as many tokens
    at = keyed[keyed["step"] >= 0].assign(tokens=keyed["pretrain_tokens"] + keyed["spec_tokens"])
    at = at.drop_duplicates(["run_id", "step"]).sort_values(["run_id", "step"], kind="stable")
    before = at.groupby("run_id", sort=False)["tokens"].shift().fillna(-np.inf)
    fewer = at["tokens"].to_numpy() < before.to_numpy()
    if fewer.any():
        later = at[fewer].iloc[0]
        mine = at[at["run_id"] == later["run_id"]]
        earlier = mine[(mine["step"] < later["step"]) & (mine["tokens"] > later["tokens"])].iloc[-1]
        runs_like = at.loc[fewer, "run_id"].nunique()
        problems.append(
            f"run_id {later['run_id']!r} has fewer tokens (D + D') at step "
            f"{int(later['step'])} ({later['tokens']:.6g}) than at step {int(earlier['step'])} "
            f"({earlier['tokens']:.6g}): the checkpoints of one run train on more tokens as "
            f"the step grows ({runs_like} run{'s' if runs_like > 1 else ''} like this)"
        )
        return problems
    # the group the model gives one run effect (bayesplit.model.run_groups)
    group = keyed["trunk_id"].where(keyed["trunk_id"] != "", keyed["run_id"])
    counts = keyed.groupby(group, sort=False)["params"].nunique()
    clashing = counts[counts > 1]
    if len(clashing):
        name = clashing.index[0]
        values = keyed.loc[group == name, "params"].drop_duplicates().head(3)
        problems.append(
            f"trunk {name!r} has branches (rows with that trunk_id, or run_id where "
            f"trunk_id is empty) with different params ({', '.join(_show(v) for v in values)}): "
            f"the branches of one trunk share its model size "
            f"({len(clashing)} trunk{'s' if len(clashing) > 1 else ''} like this)"
        )
    return problems


def _measured_twice(keyed: pd.DataFrame) -> list[str]:
    """A row without a step and one with a step of one run, eval domain, N, D, D' and
    train_domain: one measurement (a run's final row and its last checkpoint's) that the
    unique key (step -1 for none) let in twice, and a fit would count twice. A final row
    without a step at another D than the run's checkpoints is a measurement of its own.
    """
    same = ["run_id", "eval_domain", "params", "pretrain_tokens", "spec_tokens", "train_domain"]
    unstepped = keyed[keyed["step"] < 0]
    pairs = unstepped.merge(keyed[keyed["step"] >= 0], on=same, suffixes=("", "_given"))
    if not len(pairs):
        return []
    first = pairs.iloc[0]
    runs_like = pairs["run_id"].nunique()
    return [
        f"run_id {first['run_id']!r} measures eval_domain {first['eval_domain']!r} twice at "
        f"the same params, pretrain_tokens and spec_tokens, in a row without a step and one "
        f"at step {int(first['step_given'])}: one measurement given twice; keep one "
        f"({runs_like} run{'s' if runs_like > 1 else ''} like this)"
    ]


def _name_text(v) -> str:
    """A name as text. A whole number held as a float reads as the integer: an integer
    column with a gap is float64 in pandas and Parquet, and trunk 7 became "7.0" beside
    the run named 7."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer() and not _lossy_name(v):
        return str(int(v))
    return str(v).strip()


def _lossy_name(v) -> bool:
    """A whole float beyond 2^53: the integer name it stood for is lost."""
    return isinstance(v, (float, np.floating)) and float(v).is_integer() and abs(v) > 2.0**53


def _show(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else repr(v)


#: What :func:`_exact_int` returns for a value that is not a 64-bit integer.
_NOT_INT64 = object()


def _exact_int(v):
    """An integer exactly as written (beyond float precision), or ``_NOT_INT64``;
    blanks stay NaN."""
    if isinstance(v, str):
        v = v.strip()
        if v == "":
            return np.nan
        try:
            v = int(v)
        except ValueError:
            try:
                v = float(v)
            except ValueError:
                return _NOT_INT64
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return np.nan  # pd.NA: a blank in a nullable (Int64, pyarrow) column
    if isinstance(v, (bool, np.bool_)):
        return _NOT_INT64
    if isinstance(v, (float, np.floating)):
        # beyond 2^53 a float no longer says which integer was meant
        if not np.isfinite(v) or v != np.round(v) or abs(v) > 2.0**53:
            return _NOT_INT64
        v = int(v)
    if isinstance(v, (int, np.integer)) and -(2**63) <= int(v) < 2**63:
        return int(v)
    return _NOT_INT64


#: Values pandas would read as numbers that are not counts or losses: True as 1, a date
#: as nanoseconds since 1970, a complex number as its real part.
_NOT_NUMBERS = (
    bool,
    np.bool_,
    complex,
    np.complexfloating,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    np.datetime64,
    np.timedelta64,
)


def _to_number(v):
    if isinstance(v, _NOT_NUMBERS):
        return np.nan  # reported with the other values that are not numbers
    if isinstance(v, str):
        v = v.strip()
        if v == "":
            return np.nan
        if len(v) > 300 and v.lstrip("+-").isdigit():
            return float(v)  # inf, refused as 1e400 is (pandas made an int that overflowed)
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > _FLOAT_MAX:
        return np.inf if v > 0 else -np.inf  # a JSON integer of 400 digits
    return v


_FLOAT_MAX = int(np.finfo(float).max)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a run table from CSV, Parquet, JSONL or a run store, without validating it.

    Text columns (``run_id``, the domains, ``trunk_id``, ``schedule``) are read as
    written: ``007`` stays ``007``, and an ``eval_domain`` or ``run_id`` named ``NA`` is
    a name, not a missing value. A CSV row with fewer fields than the header (a file
    cut short), a repeated column name, a JSON object with a repeated key and a path that
    is not a regular file (a pipe) are refused.
    """
    p = check_path(path)
    name = p.name.lower()
    if not p.exists():
        raise BayesplitError(f"no such file: {p}")
    if p.is_dir():
        raise BayesplitError(f"{p} is a directory, expected a run table file")
    if not p.is_file():
        # a pipe's size is 0 ("the file is empty"), its name tells no format (/dev/fd/63
        # from <(...)), and the readers go through a CSV twice
        raise BayesplitError(
            f"{p} is not a regular file (a pipe, as <(...) gives, or a device): save the "
            "table to a file named .csv, .parquet or .jsonl and read that"
        )
    if not name.endswith(STORE_SUFFIXES) and p.stat().st_size == 0:
        # CSV said "No columns to parse from file", JSONL five missing columns
        raise RunTableError(["the file is empty: the table has no rows"], str(p))
    try:
        if name.endswith(STORE_SUFFIXES):
            from bayesplit.store import RunStore

            return RunStore(p, read_only=True).read()
        if name.endswith((".csv", ".csv.gz", ".tsv")):
            return _read_csv(p, sep="\t" if name.endswith(".tsv") else ",")
        if name.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            # as CSV says it; pyarrow's own message was "Multiple matches for FieldRef..."
            _refuse_repeated_columns(p, pq.read_schema(p).names)
            return _index_as_columns(pd.read_parquet(p))
        if name.endswith((".jsonl", ".ndjson")):
            return _records_frame(_read_jsonl(p), str(p))
        if name.endswith(".json"):
            data = read_json(p)
            if isinstance(data, Mapping) and "runs" in data:
                data = data["runs"]
            if not isinstance(data, list) or not all(isinstance(r, Mapping) for r in data):
                raise BayesplitError(f'{p}: expected a list of row objects (or {{"runs": [...]}})')
            return _records_frame(data, str(p))
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


def _index_as_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Named index levels as columns: pandas writes ``df.set_index("run_id")`` to Parquet
    with ``run_id`` as a column of the file, and reads it back as the index."""
    named = [n for n in df.index.names if n is not None]
    if not named or any(n in df.columns for n in named):
        return df
    return df.reset_index(level=named)


def _read_csv(p: Path, sep: str) -> pd.DataFrame:
    header = _check_csv_shape(p, sep)
    text = [c for c in header if c.strip() in STRINGS]
    # A run or eval domain is never missing, so "NA" or "None" there is a name (North
    # America), not pandas' missing value; elsewhere the usual markers mean missing (R
    # writes NA for a general run's train_domain).
    names = [c for c in header if c.strip() in ("run_id", "eval_domain")]
    na_values = {c: [""] if c in names else list(_NA_MARKERS) for c in header}
    # seeds as text too: a column of 64-bit seeds with one blank would become float64
    exact = text + [c for c in header if c.strip() == "seed"]
    df = pd.read_csv(
        p,
        sep=sep,
        dtype={c: str for c in exact},
        keep_default_na=False,
        na_values=na_values,
    )
    return _drop_unnamed(df, header, p)


def _drop_unnamed(df: pd.DataFrame, header: list[str], p: Path) -> pd.DataFrame:
    """Drop the columns without a name that carry nothing: the leading ones (row labels:
    pandas' ``to_csv()`` writes its index so, one column per level, and R's
    ``write.csv`` its row names) and empty ones (a spreadsheet's leftovers). Both went
    into the append-only store as extra fields ``Unnamed: 0``. Any other unnamed column
    holding values is refused: no one could name it later."""
    drop, refuse = [], []
    labels = True
    for i, name in enumerate(header):
        if name.strip():
            labels = False
            continue
        values = df[df.columns[i]]
        if labels or values.isna().all() or values.astype(str).str.strip().eq("").all():
            drop.append(df.columns[i])
        else:
            refuse.append(str(i + 1))
    if refuse:
        raise BayesplitError(
            f"{p}: column {', '.join(refuse)} of the header has no name but holds values; "
            "name it or remove it"
        )
    return df.drop(columns=drop)


@contextlib.contextmanager
def _csv_fields_unlimited():
    """csv's 131,072-character field limit refused a long note that pandas reads (and
    that bayesplit's own export wrote); lifted while a file is checked."""
    before = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # a C long on every platform
    try:
        yield
    finally:
        csv.field_size_limit(before)


def _check_csv_shape(p: Path, sep: str) -> list[str]:
    """The header's column names, as written; refuse a repeated name and rows with missing
    or extra fields.

    pandas renames a repeated column (``loss.1``) and fills a short row with blanks,
    so a file cut off mid-row would otherwise read as valid with its last values lost.
    When every row has one field more than the header (a trailing comma on each data
    row), pandas takes the first column for the index and shifts the others left, so the
    error named the wrong column ("pretrain_tokens has non-numeric values: 'web'").
    """
    opener = gzip.open if p.name.lower().endswith(".gz") else open
    with opener(p, "rt", encoding="utf-8-sig", newline="") as fh, _csv_fields_unlimited():
        reader = csv.reader(fh, delimiter=sep)
        header = next(reader, [])
        if len(header) == 1:
            # a European spreadsheet's ";", a tab-separated file named .csv: one wide column
            other = [c for c in (";", "\t", ",", "|") if c != sep and c in header[0]]
            if other:
                name = {"\t": "tabs", ";": "';'", ",": "commas", "|": "'|'"}[other[0]]
                raise BayesplitError(
                    f"{p}: the header is one column ({_clip(header[0])}); the file seems to be "
                    f"separated by {name}: .csv files are read with commas, .tsv with tabs"
                )
        # (unnamed columns, as spreadsheets leave them, are not a repeated name)
        _refuse_repeated_columns(p, [c.strip() for c in header if c.strip()])
        short, long = [], []
        for row in reader:
            if len(row) < len(header) and any(v.strip() for v in row):
                short.append((reader.line_num, len(row)))
            elif len(row) > len(header):
                long.append((reader.line_num, len(row)))
    if short:
        line, got = short[0]
        more = f" (and {len(short) - 1} more rows)" if len(short) > 1 else ""
        raise BayesplitError(
            f"{p}: line {line} has {got} of the header's {len(header)} fields{more}; "
            "is the file cut short?"
        )
    if long:
        line, got = long[0]
        more = f" (and {len(long) - 1} more rows)" if len(long) > 1 else ""
        raise BayesplitError(
            f"{p}: line {line} has {got} fields, the header {len(header)}{more}; a value "
            "without a column name (a trailing comma?)"
        )
    return header


def _clip(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _read_jsonl(p: Path) -> list[dict]:
    # The json module, not pandas: pandas guesses types (the domain "007" becomes 7, a
    # column named wall_time becomes a date) and rounds floats.
    records = []
    with open(p, encoding="utf-8-sig") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line, object_pairs_hook=no_repeated_keys)
            except json.JSONDecodeError as exc:
                raise BayesplitError(f"cannot read {p}: line {number}: {exc.msg}") from None
            except ValueError as exc:  # a repeated key
                raise BayesplitError(f"cannot read {p}: line {number}: {exc}") from None
            except RecursionError:  # [[[...]]] thousands deep, as read_json says it
                raise BayesplitError(
                    f"cannot read {p}: line {number}: nested too deeply to be read"
                ) from None
            if not isinstance(row, dict):
                raise BayesplitError(f"{p}: line {number} is not a JSON object")
            records.append(row)
    return records


def _refuse_repeated_columns(p: Path, names: list[str]) -> None:
    """Refuse a table whose header names a column twice, in one message for every format."""
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise BayesplitError(f"{p}: repeated column name(s) {', '.join(map(repr, repeated))}")


def _records_frame(records: list, source: str | None = None) -> pd.DataFrame:
    """A table from row objects; a number in a text column (a domain named 7) becomes
    text, and so does an integer seed (a column of 64-bit seeds with one null would
    become float64; :func:`validate_runs` parses it back exactly).

    JSON has numbers: a number written as text (``"loss": "3.1"``) is refused, as the
    suggestion files and truth files refuse it, rather than parsed as CSV's text is.
    """
    problems = []
    # seeds excepted: 64-bit seeds are often quoted in JSON to keep every digit, and a table
    # read from CSV (seeds kept as text, exactly) is written so
    for col in (c for c in NUMERIC if c != "seed"):
        values = [next((v for k, v in r.items() if str(k).strip() == col), None) for r in records]
        quoted = np.array([isinstance(v, str) and v.strip() != "" for v in values])
        if quoted.any():
            shown = [v for v, q in zip(values, quoted, strict=True) if q][:3]
            examples = ", ".join(repr(v if len(v) <= 40 else v[:39] + "…") for v in shown)
            problems.append(
                f"column '{col}' holds numbers written as text ({_rows(quoted)}: {examples}); "
                "write them as JSON numbers, without quotes"
            )
    if problems:
        raise RunTableError(problems, source)

    def text(k, v):
        if v is None or isinstance(v, str):
            return False
        if k in STRINGS:  # a list or true/false is left for validate_runs to refuse
            # Python's json writes NaN, not "nan"; a whole float beyond 2^53 (1e300) is left
            # for validate_runs to refuse
            return is_number(v) and not pd.isna(v) and not _lossy_name(v)
        return k == "seed" and isinstance(v, int) and not isinstance(v, bool)

    rows = [{k: _name_text(v) if text(k, v) else v for k, v in r.items()} for r in records]
    return frame_of_records(rows)


def frame_of_records(rows: list[dict], index=None) -> pd.DataFrame:
    """``pd.DataFrame(rows)``, except that pandas' float64 does not cost an integer its
    digits: a column of whole numbers missing in some rows is nullable ``Int64``
    (``9007199254740993`` came back as ``...992.0``), and one holding an integer no float
    holds exactly (beyond 64 bits, or beside a fraction) keeps its values as they are."""
    df = pd.DataFrame(rows, index=index)
    for col in df.columns:
        if df[col].dtype != float:
            continue
        given = [r.get(col) for r in rows]
        present = [v for v in given if v is not None]
        # numpy integers too: np.int64(2**62 + 1) beside a missing value went through float64
        ints = [v for v in present if isinstance(v, numbers.Integral) and not isinstance(v, bool)]
        int64 = all(-(2**63) <= v < 2**63 for v in ints)
        if df[col].isna().any() and present and len(ints) == len(present) and int64:
            df[col] = pd.array(given, dtype="Int64")
        elif not all(map(_float_exact, ints)):
            df[col] = pd.Series(given, index=df.index, dtype=object)
    return df


def _float_exact(v: int) -> bool:
    try:
        return int(float(v)) == v
    except OverflowError:  # beyond the largest float
        return False


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
        ``.db`` file, ``"bundled:NAME"`` for a bundled data set (as ``--runs`` takes
        it), or a DataFrame.
    domains
        Optional list of the domain names the table may use: a row on any other is an
        error (a check of the table, not a filter; ``fit(domains=)`` and
        ``compare(domains=)`` are the ones that fit a subset).

    Returns
    -------
    pandas.DataFrame
        The canonical, validated run table.
    """
    if isinstance(source, pd.DataFrame):
        return validate_runs(source, domains=domains)
    if not isinstance(source, (str, Path)):
        raise BayesplitError(
            f"runs must be a DataFrame, a file path or 'bundled:NAME', got {type(source).__name__}"
        )
    if isinstance(source, str) and source.startswith("bundled:"):
        from bayesplit.datasets import load_dataset  # as the command line's --runs takes it

        table = load_dataset(source.split(":", 1)[1])
        return table if domains is None else validate_runs(table, domains=domains)
    return validate_runs(read_table(source), domains=domains, source=str(source))


def write_format(path: str | Path, option: str | None = None) -> str:
    """The format :func:`write_table` writes ``path`` in (``csv``, ``csv.gz``, ``parquet``, ``jsonl``).

    Raises :class:`BayesplitError` for any other file type; ``option`` names the
    command-line option the path came from, for the message.

    >>> write_format("runs.csv.gz"), write_format("runs.pq")
    ('csv.gz', 'parquet')
    """
    p = check_path(path, option or "path")
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

    p = check_path(path)
    fmt = write_format(p)
    with atomic_path(p) as tmp:
        if fmt == "csv":
            _csv_ready(runs, p).to_csv(tmp, index=False)
        elif fmt == "csv.gz":
            import gzip

            # the header names the file gunzip -N restores (the temp file's name, before)
            # and no time, so one table gives the same bytes every time
            with open(tmp, "wb") as raw, gzip.GzipFile(p.name[:-3], "wb", fileobj=raw, mtime=0) as gz:  # fmt: skip
                gz.write(_csv_ready(runs, p).to_csv(index=False).encode("utf-8"))
        elif fmt == "parquet":
            _write_parquet(_parquet_ready(runs), tmp, name=p)
        else:
            _write_jsonl(runs, tmp, name=p)
    return p


def _csv_ready(runs: pd.DataFrame, name: Path) -> pd.DataFrame:
    """Lists and mappings of extra columns as JSON text (pandas wrote Python's repr,
    ``{'a': 1}``, which no JSON reader takes).

    Text a CSV reads back as missing (``NA``, ``None``, ... outside run_id and eval_domain)
    is refused: a trunk_id "NA" came back as no trunk, silently, and a train_domain "NA" as
    a table that no longer validates.
    """
    from bayesplit._io import jsonable

    markers = set(_NA_MARKERS) - {""}
    for col in runs.columns:
        if str(col).strip() in ("run_id", "eval_domain") or runs[col].dtype.kind in "biufcmM":
            continue
        hit = runs[col].map(lambda v: isinstance(v, str) and v in markers).to_numpy(dtype=bool)
        if hit.any():
            i = int(hit.argmax())
            raise BayesplitError(
                f"cannot write {name.name}: column {str(col)!r} holds the text "
                f"{runs[col].iloc[i]!r} (row {i + 1}), which a CSV reads back as missing; "
                "write .jsonl or .parquet, which keep it"
            )
    out = runs
    for col in runs.columns:
        if runs[col].dtype == object and any(isinstance(v, list | dict) for v in runs[col]):
            if out is runs:
                out = runs.copy()
            out[col] = runs[col].map(
                lambda v: json.dumps(jsonable(v)) if isinstance(v, list | dict) else v
            )
    return out


def _write_parquet(runs: pd.DataFrame, path: Path, name: Path) -> None:
    """Parquet, or one line naming the column pyarrow cannot type (an empty mapping, a
    list of numbers and text, an integer beyond 64 bits) and the format that keeps it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    failures = (pa.ArrowException, OverflowError, TypeError, ValueError)
    try:
        runs.to_parquet(path, index=False)
    except failures as exc:
        col = None
        for c in runs.columns:  # each alone, in memory: the first that fails is named
            try:
                pq.write_table(pa.table({str(c): pa.array(runs[c])}), pa.BufferOutputStream())
            except failures:
                col = c
                break
        what = f"column {col!r}" if col is not None else "the table"
        reason = " ".join(str(exc).split())[:200]
        raise BayesplitError(
            f"{name}: Parquet cannot hold {what} ({type(exc).__name__}: {reason}); "
            "write .jsonl, which keeps any JSON value"
        ) from None


def _parquet_ready(runs: pd.DataFrame) -> pd.DataFrame:
    """Parquet needs one type per column; an extra column that holds numbers in some rows
    and text in others (rows imported from different tables) is written as text, a list or
    mapping among them as JSON (as in a CSV; ``str`` gave Python's repr)."""
    from bayesplit._io import jsonable

    def as_text(v):
        if isinstance(v, (list, dict)):
            return json.dumps(jsonable(v))
        return v if v is None or v != v else str(v)

    def kind(v) -> str:
        return (
            "number"
            if isinstance(v, (int, float)) and not isinstance(v, bool)
            else type(v).__name__
        )

    out = runs
    for col in runs.columns:
        if runs[col].dtype == object and len({kind(v) for v in runs[col].dropna()}) > 1:
            if out is runs:
                out = runs.copy()
            out[col] = runs[col].map(as_text)
    return out


def _write_jsonl(runs: pd.DataFrame, path: Path, name: Path) -> None:
    # One json.dumps per row: floats in their shortest exact form (pandas keeps 10 digits).
    from bayesplit._io import jsonable

    with open(path, "w", encoding="utf-8") as fh:
        for i, row in enumerate(runs.to_dict(orient="records")):
            try:
                line = json.dumps(jsonable(row), allow_nan=False, ensure_ascii=False)
            except (TypeError, ValueError):  # bytes, a set, an arbitrary object
                col = next((c for c, v in row.items() if not _json_ok(jsonable(v))), None)
                raise BayesplitError(
                    f"cannot write {name}: column {str(col)!r} holds a value JSON cannot "
                    f"hold (row {i + 1}: {type(row.get(col)).__name__})"
                ) from None
            fh.write(line + "\n")


def _json_ok(v) -> bool:
    try:
        json.dumps(v, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


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
