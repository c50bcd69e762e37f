"""What a law is: parameters with supports and priors, pooling, and one mean function.

Laws are evaluated on *scaled* inputs so that every parameter is of order one:
``n = N / N_ref`` and ``d = D / T_ref``, ``dp = D' / T_ref``, where ``N_ref`` and
``T_ref`` are powers of ten at the centre of the data (see
:func:`bayesplit.model.reference_scales`). A coefficient such as ``A`` in
``A·n^-α`` is therefore "the size of that loss term at the reference model size",
in nats, and its prior is stated relative to the typical observed loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from bayesplit.errors import BayesplitError

Support = Literal["positive", "unit", "real"]


@dataclass(frozen=True)
class Param:
    """One law parameter.

    Parameters
    ----------
    name
        Identifier used in the mean function, posteriors and reports.
    support
        ``"positive"`` (sampled as log), ``"unit"`` (in (0, 1), sampled as logit)
        or ``"real"``.
    loc, scale
        Normal prior on the unconstrained value (log / logit / identity).
    per_domain
        True: one value per domain, partially pooled (θ_k = μ + τ·z_k).
        False: one value shared by all domains.
    group_scale
        Scale of the half-normal prior on τ, the between-domain spread of the
        unconstrained value (per-domain parameters only).
    loss_scaled
        True: ``loc`` is relative to the log of the typical observed loss, so
        ``loc = log(0.5)`` means "about half the typical loss".
    description
        One line for ``bayesplit laws`` and reports.
    """

    name: str
    support: Support
    loc: float
    scale: float
    per_domain: bool = False
    group_scale: float = 0.5
    loss_scaled: bool = False
    description: str = ""

    def __post_init__(self):
        if self.support not in ("positive", "unit", "real"):
            raise BayesplitError(f"parameter {self.name}: unknown support {self.support!r}")
        if not (self.scale > 0 and self.group_scale > 0):
            raise BayesplitError(f"parameter {self.name}: prior scales must be > 0")
        if not self.name.isidentifier():
            raise BayesplitError(f"parameter name {self.name!r} must be an identifier")

    def prior_loc(self, log_loss_scale: float) -> float:
        """Prior location on the unconstrained scale, given the typical observed log loss."""
        return self.loc + (log_loss_scale if self.loss_scaled else 0.0)

    def prior_text(self) -> str:
        """The prior in words, e.g. ``log E ~ Normal(log(0.5·L̄), 1)``."""
        if self.support == "positive":
            centre = math.exp(self.loc)
            inner = f"log({centre:.3g}·L̄)" if self.loss_scaled else f"{self.loc:.3g}"
            text = f"log {self.name} ~ Normal({inner}, {self.scale:g})"
        elif self.support == "unit":
            centre = 1 / (1 + math.exp(-self.loc))
            text = f"logit {self.name} ~ Normal(logit({centre:.3g}), {self.scale:g})"
        else:
            text = f"{self.name} ~ Normal({self.loc:g}, {self.scale:g})"
        if self.per_domain:
            text += f", per domain with τ ~ HalfNormal({self.group_scale:g})"
        return text


@dataclass(frozen=True)
class Inputs:
    """Scaled law inputs; arrays broadcast against each other and the parameters."""

    n: Any  #: N / N_ref
    d: Any  #: D / T_ref
    dp: Any  #: D' / T_ref


LogMean = Callable[[Any, Mapping[str, Any], Inputs], Any]


@dataclass(frozen=True)
class Law:
    """A parametric loss law ``L_k(N, D, D'; θ)``.

    Parameters
    ----------
    name
        Registry key (``bayesplit fit --law NAME``).
    formula
        Human-readable formula on scaled inputs, shown by ``bayesplit laws``.
    params
        The parameters, in the order they are reported.
    log_mean
        ``log_mean(ops, p, x) -> log L``: ``ops`` is a :class:`~bayesplit.laws.ops.Ops`
        namespace, ``p`` maps parameter names to arrays broadcastable against the
        :class:`Inputs` ``x``. Write it with ``ops`` functions only, in log space
        (``ops.logsumexp`` of log terms), so every backend can run it.
    uses_spec_tokens
        Whether D' enters the law (False for single-stage laws).
    description
        A sentence on when to use the law.
    """

    name: str
    formula: str
    params: tuple[Param, ...]
    log_mean: LogMean
    uses_spec_tokens: bool = True
    description: str = ""
    reference: str = ""
    _index: dict[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise BayesplitError(f"law {self.name}: duplicate parameter names")
        object.__setattr__(self, "_index", {p.name: p for p in self.params})

    @property
    def param_names(self) -> list[str]:
        """Parameter names, in order."""
        return [p.name for p in self.params]

    @property
    def per_domain(self) -> list[str]:
        """Names of the parameters that vary by domain (partially pooled)."""
        return [p.name for p in self.params if p.per_domain]

    @property
    def shared(self) -> list[str]:
        """Names of the parameters shared by all domains."""
        return [p.name for p in self.params if not p.per_domain]

    def param(self, name: str) -> Param:
        """The :class:`Param` called ``name`` (BayesplitError if there is none)."""
        try:
            return self._index[name]
        except KeyError:
            raise BayesplitError(
                f"law {self.name} has no parameter {name!r} (has {', '.join(self.param_names)})"
            ) from None

    def with_pooling(self, per_domain: Iterable[str]) -> Law:
        """A copy of the law where exactly ``per_domain`` parameters vary by domain."""
        chosen = set(per_domain)
        unknown = chosen - set(self.param_names)
        if unknown:
            raise BayesplitError(
                f"law {self.name} has no parameter(s) {', '.join(sorted(unknown))}"
            )
        params = tuple(replace(p, per_domain=p.name in chosen) for p in self.params)
        return replace(self, params=params)

    def evaluate(self, ops, p: Mapping[str, Any], x: Inputs):
        """``log L`` at scaled inputs ``x`` (see :class:`Inputs`)."""
        return self.log_mean(ops, p, x)

    def __repr__(self) -> str:
        # the dataclass default spells out every Param and the log_mean function object
        return (
            f"<Law {self.name}: {self.formula}; per domain: {', '.join(self.per_domain) or '-'}; "
            f"shared: {', '.join(self.shared) or '-'}>"
        )

    def describe(self) -> dict[str, Any]:
        """Multi-line text for ``bayesplit laws``: formula, pooling, priors."""
        return {
            "name": self.name,
            "formula": self.formula,
            "description": self.description,
            "uses_spec_tokens": self.uses_spec_tokens,
            "per_domain": self.per_domain,
            "shared": self.shared,
            "priors": {p.name: p.prior_text() for p in self.params},
            "reference": self.reference,
        }
