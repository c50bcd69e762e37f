"""Small helpers shared by the CLI commands."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np
from rich.console import Console

#: Human-readable output (tables, progress) goes to stderr so ``--json`` stdout stays parseable.
#: Pipes and CI logs get 120 columns instead of rich's 80, so tables are not squeezed.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def emit_json(obj: Any) -> None:
    """Print one JSON object on stdout (NaN/inf become null)."""
    sys.stdout.write(json.dumps(_jsonable(obj), indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()


def fmt(x: float, digits: int = 4) -> str:
    """Compact number for tables: 3 significant digits for big/small values."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    ax = abs(x)
    if ax != 0 and (ax >= 1e5 or ax < 1e-3):
        return f"{x:.3g}"
    return f"{x:.{digits}g}"
