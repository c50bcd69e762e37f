"""Array namespaces for law mean functions.

A law's mean function is written once against a tiny namespace ``ops`` and runs
unchanged under NumPy (allocation, prediction), JAX (NumPyro) and PyTensor (PyMC).
Only the operations laws need are here; each is elementwise and broadcasts.
"""

from __future__ import annotations

from functools import reduce
from typing import Any


class Ops:
    """Elementwise math for one array library; subclasses bind ``xp``."""

    name = "abstract"
    xp: Any

    def exp(self, x):
        """Elementwise exp."""
        return self.xp.exp(x)

    def log(self, x):
        """Elementwise natural log."""
        return self.xp.log(x)

    def log1p(self, x):
        """Elementwise log(1 + x), accurate near 0."""
        return self.xp.log1p(x)

    def sqrt(self, x):
        """Elementwise square root."""
        return self.xp.sqrt(x)

    def where(self, cond, a, b):
        """Elementwise choice: ``a`` where ``cond`` else ``b``."""
        return self.xp.where(cond, a, b)

    def maximum(self, a, b):
        """Elementwise maximum."""
        return self.xp.maximum(a, b)

    def minimum(self, a, b):
        """Elementwise minimum."""
        return self.xp.minimum(a, b)

    def logaddexp(self, a, b):
        """Elementwise log(exp(a) + exp(b)) without overflow."""
        return self.xp.logaddexp(a, b)

    def logsumexp(self, *terms):
        """log(Σ exp(term)) of several broadcastable terms, stable in float32."""
        return reduce(self.logaddexp, terms)

    def log1pexp(self, x):
        """log(1 + e^x), i.e. softplus, without overflow."""
        return self.logaddexp(0.0, x)


class NumpyOps(Ops):
    name = "numpy"

    def __init__(self):
        import numpy

        self.xp = numpy


class JaxOps(Ops):
    name = "jax"

    def __init__(self):
        import jax.numpy

        self.xp = jax.numpy


class PytensorOps(Ops):
    name = "pytensor"

    def __init__(self):
        import pytensor.tensor

        self.xp = pytensor.tensor

    def where(self, cond, a, b):
        """Elementwise choice (``pytensor.tensor.switch``)."""
        return self.xp.switch(cond, a, b)


_CACHE: dict[str, Ops] = {}


def get_ops(name: str) -> Ops:
    """The shared :class:`Ops` instance for ``"numpy"``, ``"jax"`` or ``"pytensor"``."""
    if name not in _CACHE:
        cls = {"numpy": NumpyOps, "jax": JaxOps, "pytensor": PytensorOps}[name]
        _CACHE[name] = cls()
    return _CACHE[name]
