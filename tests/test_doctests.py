"""The examples in docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "bayesplit"


def _runs_examples(path: Path) -> bool:
    """Has an example that doctest runs (examples marked +SKIP only illustrate)."""
    return any(
        line.lstrip().startswith(">>>") and "+SKIP" not in line
        for line in path.read_text().splitlines()
    )


MODULES = sorted(
    ".".join(p.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__")
    for p in PKG.rglob("*.py")
    if _runs_examples(p)
)


def test_some_modules_have_examples():
    assert len(MODULES) >= 3


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name.startswith("bayesplit.train"):
        pytest.importorskip("torch")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
