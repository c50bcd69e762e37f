"""The bundled trainer: a small GPT, warmup–stable–decay training with branch points, run logging.

Importing this package is cheap and does not import torch: the Bayesian core reads model
sizes through :mod:`bayesplit.train.ladder` and :mod:`bayesplit.train.config`, which are
pure Python. The torch modules (:mod:`~bayesplit.train.model`, :mod:`~bayesplit.train.loop`,
:mod:`~bayesplit.train.trunk`, :mod:`~bayesplit.train.specialist`,
:mod:`~bayesplit.train.execute`) are imported on first use.

Main entry points
-----------------
- :func:`bayesplit.train.trunk.pretrain` — a trunk on the general mixture with branch points.
- :func:`bayesplit.train.specialist.specialize` — a branch: continue a checkpoint on one domain.
- :func:`bayesplit.train.execute.execute_suggestions` — run a batch of suggested runs.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "GPTConfig": "bayesplit.train.config",
    "count_params": "bayesplit.train.config",
    "flops_per_token": "bayesplit.train.config",
    "load_ladder": "bayesplit.train.ladder",
    "GPT": "bayesplit.train.model",
    "TrainConfig": "bayesplit.train.config",
    "SpecConfig": "bayesplit.train.specialist",
    "Trainer": "bayesplit.train.loop",
    "pretrain": "bayesplit.train.trunk",
    "specialize": "bayesplit.train.specialist",
    "execute_suggestions": "bayesplit.train.execute",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bayesplit.train' has no attribute {name!r}")
