"""Small helpers shared by the CLI commands."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from bayesplit._io import _through_link, jsonable, nearest_existing
from bayesplit._parse import check_seed as parse_seed
from bayesplit.errors import BayesplitError
from bayesplit.train.ladder import bundled_ladder_names  # pure Python: no torch


def check_seed(value: int) -> int:
    """``--seed`` callback: a non-negative 64-bit integer (one-line error)."""
    return value if value is None else parse_seed(value, "--seed")


#: The ``--ladder`` text of allocate, suggest and the trainer: where a name is looked up.
LADDER_HELP = (
    f"a YAML file, or the name of one in ./models/ or bundled ({', '.join(bundled_ladder_names())})"
)


#: The ``--level`` option everywhere (not ``--risk q90``, which sets what is minimized).
Level = Annotated[
    float,
    typer.Option(
        "--level",
        help="Probability of the intervals shown (credible, and predictive where shown), e.g. 0.9 for 90%.",
    ),
]

#: The ``--seed`` option everywhere.
Seed = Annotated[
    int,
    typer.Option(
        "--seed",
        callback=check_seed,
        help="Random seed (>= 0); the same seed gives the same result.",
    ),
]

#: The NUTS options of the commands that fit once (fit, compare's fits, demo).
Chains = Annotated[int, typer.Option(help="NUTS chains.")]
Draws = Annotated[int, typer.Option(help="Kept draws per chain.")]
Warmup = Annotated[int, typer.Option(help="Warmup iterations per chain.")]

#: Human-readable output (tables, progress) goes to stderr so ``--json`` stdout stays parseable.
#: Pipes and CI logs get 120 columns instead of rich's 80, so tables are not squeezed.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


def given(value: str | None, option: str) -> str | None:
    """An optional option's text: None when it was left out; an empty value is refused.

    ``--weights "$W"`` with ``W`` unset must not quietly mean the default weights.
    """
    if value is not None and not value.strip():
        raise BayesplitError(f"{option} is empty: give a value, or leave the option out")
    return value


def emit_json(obj: Any) -> None:
    """Print one JSON object on stdout (NaN/inf become null).

    A value JSON has no type for (a Parquet table's bytes or durations) is printed as text:
    ``runs list --json`` of a table ``runs validate`` accepts was a TypeError traceback.
    """
    try:
        text = json.dumps(jsonable(obj), indent=2, allow_nan=False, default=_as_text)
    except RecursionError:  # the indenting encoder recurses too
        raise BayesplitError("a value is nested too deeply to be printed as JSON") from None
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _as_text(value: Any) -> str:
    import datetime

    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, datetime.timedelta):  # pandas' Timedelta too: ISO 8601, "P0DT0H0M5S"
        import pandas as pd

        return pd.Timedelta(value).isoformat()
    return str(value)


def fmt(x: float, digits: int = 4) -> str:
    """Compact number for tables: 3 significant digits for big/small values."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    ax = abs(x)
    if ax != 0 and (ax >= 1e5 or ax < 1e-3):
        return f"{x:.3g}"
    return f"{x:.{digits}g}"


def _probe_directory(folder: Path) -> str | None:
    """Why nothing can be created in ``folder`` (None if something can).

    A real probe rather than ``os.access``: as root, ``access`` says yes to read-only
    mounts and to ``/proc``.
    """
    try:
        fd, name = tempfile.mkstemp(prefix=".bayesplit-probe.", dir=folder)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    os.unlink(name)
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # follows links, including hard links
    except OSError:  # one of them does not exist (yet)
        return a.resolve() == b.resolve()


def check_output_path(
    path: Path | str,
    *,
    option: str = "--out",
    suffixes: Collection[str] | None = None,
    directory: bool = False,
    inputs: Mapping[str, Path | str | None] | None = None,
) -> Path:
    """Refuse an output path that cannot be written, before any slow work starts.

    ``suffixes`` (lower case, with the dot) are the file types the command writes; a
    missing parent folder is fine (it is created on write) as long as the nearest
    existing ancestor is a folder we can write in. ``directory=True`` checks a folder
    that will be created or written into instead of a file. ``inputs`` maps the options
    that name files the command reads to their values: an output that is one of them
    would be overwritten before (or while) it is read.
    """
    target = Path(path)
    for name, source in (inputs or {}).items():
        if source is not None and _same_file(target, Path(source)):
            raise BayesplitError(
                f"{option} {target} is the {name} file: writing there would overwrite "
                "what this command reads; give another file name"
            )
    if not directory:
        if target.is_dir():
            raise BayesplitError(f"{option} {target} is a folder; give a file name")
        if suffixes is not None and target.suffix.lower() not in suffixes:
            wanted = ", ".join(sorted(suffixes))
            got = target.suffix or "no extension"
            raise BayesplitError(f"{option} {target} must end in {wanted} (got {got})")
    elif target.exists() and not target.is_dir():
        raise BayesplitError(f"{option} {target} is a file, not a folder")
    # a file is written through a symlink: checked where it lands (a dangling link into
    # a folder nobody can write in failed after the work)
    ancestor = nearest_existing(target if directory else _through_link(target).parent)
    if not ancestor.is_dir():
        raise BayesplitError(f"{option} {target}: {ancestor} is a file, not a folder")
    reason = _probe_directory(ancestor)
    if reason is not None:
        raise BayesplitError(f"{option} {target}: cannot write in {ancestor} ({reason})")
    return target


def check_plot_path(
    path: Path | str | None,
    option: str = "--plot",
    *,
    inputs: Mapping[str, Path | str | None] | None = None,
) -> Path | None:
    """``check_output_path`` for a figure: the extension must be one matplotlib writes."""
    if path is None:
        return None
    from bayesplit.plots import figure_suffixes

    return check_output_path(path, option=option, suffixes=figure_suffixes(), inputs=inputs)
