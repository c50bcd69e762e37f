"""Compute models: what a plan (N, D, D'_k) costs, and what data it may use.

* ``shared`` trunk: one general pretraining run, then K branches,
  ``C = f(N)·(D + Σ_k D'_k)``.
* ``independent``: each of the K specialists is pretrained separately with the same
  recipe, ``C = f(N)·Σ_k (D + D'_k) = f(N)·(K·D + Σ_k D'_k)``.

``f(N)`` is training FLOPs per token: ``6·N`` by default (forward + backward of the
non-embedding parameters), plus an optional attention term per token
(``12·n_layer·d_model·seq_len`` in the PaLM convention) when the architecture is known.

Data limits: domain k has ``U_k`` unique tokens and may repeat them ``r_k`` times, so
``D'_k ≤ r_k·U_k``. The built-in laws have no repetition penalty, so tokens beyond the
limit are treated as buying nothing: a plan that needs them is infeasible, and the
allocator moves that compute elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from bayesplit._parse import is_number
from bayesplit.errors import BayesplitError

TRUNKS = ("shared", "independent")


@dataclass(frozen=True)
class ComputeModel:
    """How FLOPs turn into tokens.

    Parameters
    ----------
    trunk
        ``"shared"`` or ``"independent"``.
    flops_per_param_token
        The ``6`` in ``6·N`` FLOPs per token.
    attention_flops_per_token
        Extra FLOPs per token not proportional to N (attention), e.g.
        ``12·n_layer·d_model·seq_len``; 0 by default.
    """

    trunk: str = "shared"
    flops_per_param_token: float = 6.0
    attention_flops_per_token: float = 0.0

    def __post_init__(self):
        if self.trunk not in TRUNKS:
            raise BayesplitError(f"trunk must be shared or independent, got {self.trunk!r}")
        if not (
            is_number(self.flops_per_param_token) and is_number(self.attention_flops_per_token)
        ):  # "6" was a TypeError from the comparison below
            raise BayesplitError(
                "FLOPs per token must be numbers, got "
                f"{self.flops_per_param_token!r} and {self.attention_flops_per_token!r}"
            )
        if not (
            0 < self.flops_per_param_token < math.inf
            and 0 <= self.attention_flops_per_token < math.inf
        ):
            raise BayesplitError("FLOPs per token must be finite and positive")

    def flops_per_token(self, params):
        """Training FLOPs per token of a model with ``params`` non-embedding parameters."""
        return self.flops_per_param_token * params + self.attention_flops_per_token

    def flops(self, params, pretrain_tokens, spec_tokens) -> np.ndarray:
        """Compute of a plan; ``spec_tokens`` has the domains on its last axis."""
        sp = np.asarray(spec_tokens, dtype=float)
        k = sp.shape[-1]
        pre = np.asarray(pretrain_tokens, dtype=float) * (k if self.trunk == "independent" else 1)
        return self.flops_per_token(np.asarray(params, dtype=float)) * (pre + sp.sum(axis=-1))

    def pretrain_fraction(self, pretrain_tokens, spec_tokens) -> np.ndarray:
        """Share of the compute spent on general pretraining."""
        sp = np.asarray(spec_tokens, dtype=float)
        pre = np.asarray(pretrain_tokens, dtype=float) * (
            sp.shape[-1] if self.trunk == "independent" else 1
        )
        return pre / (pre + sp.sum(axis=-1))

    def pretrain_multiplier(self, n_domains: int) -> float:
        """Tokens of compute one pretraining token costs (K for independent trunks)."""
        return float(n_domains) if self.trunk == "independent" else 1.0

    def split(
        self, budget: float, params: float, fraction, shares
    ) -> tuple[np.ndarray, np.ndarray]:
        """(D, D'_k) that spend ``budget`` on a model of ``params`` with ``fraction`` of the
        compute on pretraining and the rest divided between domains by ``shares``.

        ``fraction`` may be an array (F,); D is then (F,) and D' (F, K).
        """
        f = np.asarray(fraction, dtype=float)
        shares = np.asarray(shares, dtype=float)
        tokens = budget / self.flops_per_token(params)
        d = f * tokens / self.pretrain_multiplier(len(shares))
        dp = (1 - f)[..., None] * tokens * (shares / shares.sum())
        return d, dp


@dataclass(frozen=True)
class DataLimits:
    """Unique specialization tokens per domain and allowed repetitions."""

    unique_tokens: Mapping[str, float] = field(default_factory=dict)
    repetitions: Mapping[str, float] = field(default_factory=dict)

    def max_spec_tokens(self, domains: Sequence[str]) -> np.ndarray:
        """``r_k·U_k`` per domain (inf where no limit is set)."""
        out = []
        for k in domains:
            u = self.unique_tokens.get(k)
            r = self.repetitions.get(k, 1.0)
            if u is not None and not (0 <= u < math.inf and 0 < r < math.inf):
                raise BayesplitError(
                    f"data limit for {k!r} must be a finite number >= 0 of tokens and of "
                    "repetitions > 0"
                )
            out.append(np.inf if u is None else float(u) * float(r))
        return np.asarray(out)

    def check(self, domains: Sequence[str]) -> None:
        """Raise BayesplitError if the limits are inconsistent with the domains or each other."""
        unknown = sorted(set(self.unique_tokens) - set(domains))
        if unknown:
            raise BayesplitError(
                f"data limit for unknown domain(s) {', '.join(unknown)} (known: {', '.join(domains)})"
            )
        unknown = sorted(set(self.repetitions) - set(domains))
        if unknown:
            raise BayesplitError(
                f"repetitions for unknown domain(s) {', '.join(unknown)} (known: {', '.join(domains)})"
            )
        for k, r in self.repetitions.items():
            if not 0 < r < math.inf:
                raise BayesplitError(f"repetitions for {k!r} must be a positive number, got {r:g}")
