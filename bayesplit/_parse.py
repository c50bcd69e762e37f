"""Counts as people type them: ``1.4B`` tokens, ``3e21`` FLOPs, ``20_000`` steps."""

from __future__ import annotations

import math
import numbers
import os
import reprlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np

from bayesplit.errors import BayesplitError

_SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}

#: The largest seed a run can have: the run store keeps seeds as 64-bit integers (and
#: torch's seeding refuses more). Commands and suggestion files take seeds from 0 to this.
MAX_SEED = 2**63 - 1

#: The most chains, and draws (or warmup steps) per chain, a fit or a prior check takes:
#: far past any useful one. Past them a typo (``--draws 99999999999999999999``) was a JAX
#: traceback, an abort, or a hang while the whole draw array was allocated.
MAX_CHAINS = 10_000
MAX_DRAWS = 10_000_000


def check_seed(seed, what: str = "seed") -> int:
    """A seed as every random path takes it: a whole number from 0 to :data:`MAX_SEED`.

    None is refused rather than read as "fresh entropy": the same call must give the
    same result.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise BayesplitError(f"{what} must be a whole number from 0 to 2^63 - 1, got {seed!r}")
    if not 0 <= int(seed) <= MAX_SEED:
        raise BayesplitError(f"{what} must be between 0 and 2^63 - 1, got {seed}")
    return int(seed)


def derived_seed(seed: int, offset: int, scale: int = 1) -> int:
    """``seed * scale + offset``, wrapped into 0..:data:`MAX_SEED`: a round's seed within
    a campaign or loop. Unchanged for every seed where it fits; past that it overflowed
    (a valid ``seed`` near 2^63 was a traceback, or a refusal of a seed never given).

    >>> derived_seed(7, 2, scale=1000), derived_seed(2**63 - 1, 1)
    (7002, 0)
    """
    return (seed * scale + offset) % (MAX_SEED + 1)


def check_flag(value, what: str) -> bool:
    """A yes/no argument (``force``, ``progress``, ``overwrite``...): True or False
    (numpy's bools too), as a bool. Anything else is refused naming ``what``: ``"no"``
    is truthy, so ``force="no"`` forced.

    >>> check_flag(True, "force"), check_flag(np.False_, "force")
    (True, False)
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise BayesplitError(f"{what} must be True or False, got {_shown(value)}")


def check_path(path, what: str = "path") -> Path:
    """A file or folder name as the API takes it: a non-empty ``str`` or ``pathlib.Path``
    (any ``os.PathLike`` of text). None, a number or bytes are refused naming ``what``;
    they were a TypeError from ``pathlib`` or ``os``.

    >>> check_path("runs.csv").name
    'runs.csv'
    """
    if isinstance(path, str) or (
        isinstance(path, os.PathLike) and isinstance(os.fspath(path), str)
    ):
        if not str(path).strip():  # Path("") is the current folder
            raise BayesplitError(f"{what} is empty: give a file or folder name")
        return Path(path)
    raise BayesplitError(f"{what} must be a file path (a str or pathlib.Path), got {_shown(path)}")


def check_level(level: float) -> float:
    """Refuse a credible level outside (0, 1) (NaN included) with a one-line error; the
    level as a Python float (a numpy float32 kept in a result broke its JSON)."""
    if not (is_number(level) and 0 < level < 1):  # "0.9" gave a TypeError
        raise BayesplitError(f"level must be in (0, 1), got {level!r}")
    return float(level)


def progress_messages(progress) -> Callable[[str], None] | None:
    """What a ``progress`` argument means for a function that reports in lines of text.

    ``True`` prints each line to stderr (``fit`` and the trainers take ``progress=True``
    too, so the same argument works everywhere); ``False`` or ``None`` prints nothing;
    a callable receives each line.
    """
    if progress is None or progress is False:
        return None
    if progress is True:
        return lambda line: print(line, file=sys.stderr, flush=True)
    if callable(progress):
        return progress
    raise BayesplitError(
        f"progress must be True, False or a function that takes a line of text, got {progress!r}"
    )


def share_range(lo: float, hi: float) -> str:
    """A range of shares as a label: (0.86, 0.98) → ``86%–98%``; one share when both
    round alike; ``—`` for a missing end.

    >>> share_range(0.86, 0.98), share_range(0.921, 0.923), share_range(float("nan"), 1.0)
    ('86%–98%', '92%', '—')
    >>> share_range(0.000008, 0.000022)
    '0.0008%–0.0022%'
    """
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "—"
    lo_text, hi_text = share(lo), share(hi)  # under 1%: two digits (it read "0%–0%")
    return lo_text if lo_text == hi_text else f"{lo_text}–{hi_text}"


def share(x: float | None) -> str:
    """A share (of transitions, of compute): ``:.0%`` above 1%, two significant digits
    below (0.3% read "0%", and a plan's 0.04% of compute on pretraining "0.0%").

    >>> share(0.25), share(0.003), share(0.0004), share(1e-9), share(0.0), share(float("nan"))
    ('25%', '0.3%', '0.04%', '0.0000001%', '0%', '—')
    """
    if x is None or not np.isfinite(x):
        return "—"
    if 0 < x < 0.01:  # positional: ".2g" wrote 1e-9 as "1e-07%"
        return np.format_float_positional(x * 100, precision=2, fractional=False, trim="-") + "%"
    return f"{x:.0%}"


def probability(p: float) -> str:
    """A probability estimated from draws, as a whole percent that never claims certainty
    the draws do not show: 0.996 (3 of 800 draws disagree) → ``>99%``, not ``100%``.

    >>> probability(0.8), probability(0.996), probability(1.0), probability(0.003), probability(0.0)
    ('80%', '>99%', '100%', '<1%', '0%')
    """
    p = float(p)
    if not np.isfinite(p):
        return "—"
    if 0.99 < p < 1:
        return ">99%"
    if 0 < p < 0.01:
        return "<1%"
    return f"{p:.0%}"


def percent(level: float) -> str:
    """A credible or predictive level as a label: 0.9 → ``90%``, 0.999 → ``99.9%``
    (``:.0%`` printed ``100%`` for 0.999 and ``0%`` for 0.005).

    >>> percent(0.9), percent(0.999), percent(0.005), percent(0.999999)
    ('90%', '99.9%', '0.5%', '99.9999%')
    """
    value = float(level) * 100
    text = f"{value:.4g}"
    digits = 4
    while float(text) in (0.0, 100.0) and value not in (0.0, 100.0) and digits < 12:
        digits += 1  # a level just under 1 is not "100%"
        text = f"{value:.{digits}g}"
    return f"{text}%"


def check_max_draws(
    max_draws, what: str = "max_draws", minimum: int = 1, none_ok: bool = True
) -> int | None:
    """How many draws to use: a whole number >= ``minimum``, or (``none_ok``) None for all
    of them.

    >>> check_max_draws(None), check_max_draws(500)
    (None, 500)
    """
    all_draws = " (or None for all draws)" if none_ok else ""
    if max_draws is None and none_ok:
        return None
    if isinstance(max_draws, bool) or not isinstance(max_draws, numbers.Integral):
        raise BayesplitError(
            f"{what} must be a whole number >= {minimum}{all_draws}, got {_shown(max_draws)}"
        )
    if max_draws < minimum:
        raise BayesplitError(f"{what} must be >= {minimum}{all_draws}, got {max_draws}")
    return int(max_draws)


def counts(value, what: str, zero_ok: bool = False) -> np.ndarray:
    """N, D or D' as a notebook user passes them: a number, or a list, array or Series of
    numbers; a 1-D float array. Text, bools, None, non-finite and (unless ``zero_ok``)
    non-positive values are refused, naming ``what``.

    >>> counts(1e8, "params").tolist(), counts([0, 1e7], "spec_tokens", zero_ok=True).tolist()
    ([100000000.0], [0.0, 10000000.0])
    """
    expected = "a number >= 0" if zero_ok else "a positive number"

    def refuse(bad, where: str = "") -> NoReturn:
        raise BayesplitError(
            f"{what} must be {expected} or array of numbers, got {where}{_shown(bad)}"
        )

    if value is None or isinstance(value, (str, bytes)) or not _real_or_array(value):
        refuse(value)
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):  # ragged nesting
        refuse(value)
    if arr.ndim > 1:
        raise BayesplitError(f"{what} must be a number or a 1-D array of numbers, got {arr.ndim}-D")
    if isinstance(value, (list, tuple)) or arr.dtype.kind == "O":
        # each entry: numpy would read True as 1 and "1e8" as 1e8
        entries = list(value) if isinstance(value, (list, tuple)) else arr.ravel().tolist()
        for x in entries:
            if not is_number(x):
                refuse(x, "an entry " if arr.ndim else "")
    elif arr.dtype.kind not in "iuf":  # bools, text, complex, dates
        refuse(value)
    try:
        arr = np.atleast_1d(arr.astype(float))
    except OverflowError:  # a Python int of 400 digits: no float holds it
        raise BayesplitError(f"{what} must be finite and {'>= 0' if zero_ok else '> 0'}") from None
    if not arr.size:  # an empty prediction is an empty answer, not one the user asked for
        raise BayesplitError(f"{what} is empty: give at least one number")
    ok = np.isfinite(arr) & ((arr >= 0) if zero_ok else (arr > 0))
    if not ok.all():
        bad = arr[~ok][0]
        where = f" (point {int(np.argmin(ok))})" if arr.size > 1 else ""
        raise BayesplitError(
            f"{what} must be finite and {'>= 0' if zero_ok else '> 0'}, got {bad:g}{where}"
        )
    return arr


def _real_or_array(value) -> bool:
    """Whether ``value`` might hold numbers: a real number or anything array-like."""
    return is_number(value) or hasattr(value, "__len__") or hasattr(value, "__array__")


#: reprlib's defaults bound each level, but six levels of six items each are 6^6 items: a
#: nested list in a YAML file (aliases make one of a few hundred bytes) printed 400 kB.
_SHORT = reprlib.Repr()  # keyword arguments need Python 3.12
_SHORT.maxlevel = 2


def kind_of(value) -> str:
    """A value's type with its article, for "got ...": "an InferenceData", "a list"."""
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def short_repr(value) -> str:
    """``repr`` on one line and bounded (a nested list's levels and items cut with ...)."""
    return " ".join(_SHORT.repr(value).split())


def _shown(value) -> str:
    """``'1e8' (str)``: a short repr and the type, for an error message."""
    return f"{short_repr(value)} ({type(value).__name__})"


def names(value, what: str = "domains") -> list[str] | None:
    """A list of names from what a notebook user passes: one name as a string (not its
    letters), a list, tuple, array or Index; None stays None. Repeats are refused.

    >>> names("web"), names(("web", "code")), names(None)
    (['web'], ['web', 'code'], None)
    """
    if value is None:
        return None
    if not isinstance(value, str) and not hasattr(value, "__iter__"):
        # list(5) said "'int' object is not iterable"
        raise BayesplitError(f"{what} must be names (strings), got {_shown(value)}")
    out = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(v, str) for v in out):
        raise BayesplitError(f"{what} must be names (strings), got {short_repr(value)}")
    twice = sorted({v for v in out if out.count(v) > 1})
    if twice:
        raise BayesplitError(f"{what} name {', '.join(twice)} more than once")
    return out


def parse_count(text: str, what: str | None = None) -> float:
    """``"1.4B"`` → 1.4e9; plain numbers and scientific notation pass through.

    ``what`` (an option's name) is said in the error, so ``--budget ""`` names its option.
    """
    s = str(text).strip()  # float() takes 1_000 as Python does, and refuses 1__000 and _1
    mult = 1.0
    if s and s[-1].lower() in _SUFFIXES:
        mult = _SUFFIXES[s[-1].lower()]
        s = s[:-1]
    try:
        value = float(s) * mult + 0.0  # + 0.0: "-0" is 0, not -0.0 printed as "-0"
    except ValueError:
        where = f"{what} is " if what else ""
        raise BayesplitError(f"{where}not a number: {text!r} (use e.g. 1.4e9 or 1.4B)") from None
    if math.isinf(value) and "inf" not in s.lower():
        # 1e400 overflowed to inf, and the refusal then said "got inf", a value never typed
        where = f"{what} " if what else ""
        raise BayesplitError(f"{where}{text!r} is beyond the largest number (about 1.8e308)")
    return value


def is_number(x) -> bool:
    """A real number as read from a file (numpy scalars too), not a bool or numeric text."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def is_finite_number(x) -> bool:
    """:func:`is_number` and finite as a float: a Python int too large for a float
    (``10**400``) is not, where ``math.isfinite`` raised an OverflowError."""
    if not is_number(x):
        return False
    try:
        return math.isfinite(x)
    except OverflowError:
        return False


def check_kwargs(
    kwargs: dict, target, what: str, taken: Sequence[str] = (), setter: str = "the caller"
) -> None:
    """Refuse keyword arguments passed on to ``target`` that it does not take, or that the
    caller sets itself (``taken``), in one line naming them: they were Python's
    "unexpected keyword argument" or "got multiple values" TypeErrors.
    """
    import inspect

    clash = sorted(k for k in kwargs if k in taken)
    if clash:
        raise BayesplitError(
            f"{what}: {', '.join(clash)} cannot be given here: {setter} sets "
            f"{'it' if len(clash) == 1 else 'them'} from its own arguments"
        )
    params = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    unknown = sorted(k for k in kwargs if k not in known)
    if unknown:
        raise BayesplitError(
            f"{what}: {target.__name__} has no argument {', '.join(map(repr, unknown))} "
            f"(it takes {', '.join(k for k in known if k not in taken)})"
        )
