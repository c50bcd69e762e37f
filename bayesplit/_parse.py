"""Counts as people type them: ``1.4B`` tokens, ``3e21`` FLOPs, ``20_000`` steps."""

from __future__ import annotations

import numbers

from bayesplit.errors import BayesplitError

_SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}

#: The largest seed a run can have: the run store keeps seeds as 64-bit integers (and
#: torch's seeding refuses more). Commands and suggestion files take seeds from 0 to this.
MAX_SEED = 2**63 - 1


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


def names(value, what: str = "domains") -> list[str] | None:
    """A list of names from what a notebook user passes: one name as a string (not its
    letters), a list, tuple, array or Index; None stays None. Repeats are refused.

    >>> names("web"), names(("web", "code")), names(None)
    (['web'], ['web', 'code'], None)
    """
    if value is None:
        return None
    out = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(v, str) for v in out):
        raise BayesplitError(f"{what} must be names (strings), got {value!r}")
    twice = sorted({v for v in out if out.count(v) > 1})
    if twice:
        raise BayesplitError(f"{what} name {', '.join(twice)} more than once")
    return out


def parse_count(text: str) -> float:
    """``"1.4B"`` → 1.4e9; plain numbers and scientific notation pass through."""
    s = str(text).strip().replace("_", "")
    mult = 1.0
    if s and s[-1].lower() in _SUFFIXES:
        mult = _SUFFIXES[s[-1].lower()]
        s = s[:-1]
    try:
        value = float(s) * mult
    except ValueError:
        raise BayesplitError(f"not a number: {text!r} (use e.g. 1.4e9 or 1.4B)") from None
    return value


def is_number(x) -> bool:
    """A real number as read from a file (numpy scalars too), not a bool or numeric text."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)
