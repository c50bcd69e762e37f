"""bayesplit: how to split a training budget between pretraining and specialization.

The Python API (the CLI is a thin shell over it)::

    import bayesplit
    runs = bayesplit.load_runs("runs.csv")
    post = bayesplit.fit(runs, law="chinchilla")
    post.diagnostics.ok
    bayesplit.predict(post, params=1e9, pretrain_tokens=2e10, domain="code")
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from bayesplit import _jax

__version__ = "0.1.0"

_jax.reserve_cpu_devices()  # before anything starts JAX (cheap: JAX is not imported)

# Heavy modules (JAX, ArviZ) load on first use so that `import bayesplit` and the CLI's
# --help stay fast.
_LAZY = {
    "load_runs": "bayesplit.runs",
    "validate_runs": "bayesplit.runs",
    "RunTableError": "bayesplit.runs",
    "RunStore": "bayesplit.store",
    "fit": "bayesplit.fitting",
    "Posterior": "bayesplit.posterior",
    "load_posterior": "bayesplit.posterior",
    "predict": "bayesplit.prediction",
    "prior_predictive": "bayesplit.prior",
    "compare": "bayesplit.comparison",
    "Law": "bayesplit.laws",
    "Param": "bayesplit.laws",
    "register_law": "bayesplit.laws",
    "get_law": "bayesplit.laws",
    "available_laws": "bayesplit.laws",
    "load_dataset": "bayesplit.datasets",
    "BayesplitError": "bayesplit.errors",
    "Thresholds": "bayesplit.diagnostics",
    "allocate": "bayesplit.allocation",
    "frontier": "bayesplit.allocation",
    "suggest": "bayesplit.design",
    "simulate": "bayesplit.simulation",
}
_RENAMED = {"register_law": "register"}

__all__ = [
    "BayesplitError",
    "Law",
    "Param",
    "Posterior",
    "RunStore",
    "RunTableError",
    "Thresholds",
    "allocate",
    "available_laws",
    "compare",
    "fit",
    "frontier",
    "get_law",
    "load_dataset",
    "load_posterior",
    "load_runs",
    "predict",
    "prior_predictive",
    "register_law",
    "simulate",
    "suggest",
    "validate_runs",
]

if TYPE_CHECKING:  # pragma: no cover
    from bayesplit.allocation import allocate, frontier
    from bayesplit.comparison import compare
    from bayesplit.datasets import load_dataset
    from bayesplit.design import suggest
    from bayesplit.diagnostics import Thresholds
    from bayesplit.errors import BayesplitError
    from bayesplit.fitting import fit
    from bayesplit.laws import Law, Param, available_laws, get_law
    from bayesplit.laws import register as register_law
    from bayesplit.posterior import Posterior, load_posterior
    from bayesplit.prediction import predict
    from bayesplit.prior import prior_predictive
    from bayesplit.runs import RunTableError, load_runs, validate_runs
    from bayesplit.simulation import simulate
    from bayesplit.store import RunStore


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), _RENAMED.get(name, name))
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayesplit' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
