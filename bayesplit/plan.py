"""What :func:`bayesplit.allocate` returns: a :class:`Plan` (N, D, D'_k) and the
:class:`Allocation` around it (the plan's loss per draw, the per-draw optimum, the
alternatives, and the hooks :func:`bayesplit.design.suggest` scores runs with).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from bayesplit._parse import (
    _shown,
    is_finite_number,
    is_number,
    percent,
    probability,
    share,
    short_repr,
)
from bayesplit.compute import ComputeModel
from bayesplit.errors import BayesplitError

#: The keys of a plan's JSON form (:meth:`Plan.from_dict`).
PLAN_KEYS = ("params", "pretrain_tokens", "spec_tokens", "name")


@dataclass
class Plan:
    """A concrete allocation: model size, pretraining tokens, specialization tokens per domain.

    ``params`` and ``pretrain_tokens`` are finite numbers > 0, ``spec_tokens`` maps domain
    names to finite numbers >= 0 (a domain left out has D' = 0); other values are refused
    when the plan is made. The counts are kept as floats.
    """

    params: float
    pretrain_tokens: float
    spec_tokens: dict[str, float]

    def __post_init__(self) -> None:
        # checked when made: Plan(params=-1, ...) was taken, and failed (or gave NaN
        # losses) only where it was used
        for name in ("params", "pretrain_tokens"):
            value = getattr(self, name)
            if not (is_finite_number(value) and value > 0):
                raise BayesplitError(
                    f"Plan {name} must be a finite number > 0, got {_given(value)}"
                )
            setattr(self, name, float(value))
        spec = self.spec_tokens
        if not isinstance(spec, Mapping) or not all(isinstance(k, str) for k in spec):
            raise BayesplitError(
                "Plan spec_tokens must map domain names to tokens, e.g. {'code': 1e9}, "
                f"got {_given(spec)}"
            )
        for k, v in spec.items():
            if not (is_finite_number(v) and v >= 0):
                raise BayesplitError(
                    f"Plan spec_tokens[{k!r}] must be a finite number >= 0, got {_given(v)}"
                )
        # + 0.0: a D' of -0.0 (a solver's residue, or a user's) read "-0" in tables and JSON
        self.spec_tokens = {k: float(v) + 0.0 for k, v in spec.items()}

    def to_dict(self) -> dict:
        """The plan as JSON-ready dict: params, pretrain_tokens, spec_tokens {domain: D'}."""
        return {
            "params": self.params,
            "pretrain_tokens": self.pretrain_tokens,
            "spec_tokens": dict(self.spec_tokens),
        }

    @classmethod
    def from_dict(cls, d: Mapping, domains: Sequence[str]) -> Plan:
        """A plan from its JSON form (``--compare plan.json``), checked against ``domains``.

        Takes ``params``, ``pretrain_tokens``, optional ``spec_tokens`` ({domain: D'}) and
        ``name``; any other key is refused (a typo such as ``spec_token`` silently compared
        an all-pretraining plan). The counts must be JSON numbers: ``"1e8"`` is refused, as
        every other count bayesplit reads is, and so are true/false.
        """
        if not isinstance(d, Mapping):
            raise BayesplitError(f"a plan must be an object of counts, got {_shown(d)}")
        unknown = [k for k in d if k not in PLAN_KEYS]
        if "plan" in unknown and isinstance(d["plan"], Mapping):  # Allocation.to_dict()
            raise BayesplitError(
                "this is an allocation, not a plan: give its 'plan' (or Allocation.plan)"
            )
        if unknown:
            hints = [difflib.get_close_matches(str(k), PLAN_KEYS, n=1) for k in unknown]
            said = ", ".join(
                repr(k) + (f" (did you mean {h[0]!r}?)" if h else "")
                for k, h in zip(unknown, hints, strict=True)
            )
            raise BayesplitError(
                f"a plan has unknown key(s) {said}; it takes {', '.join(PLAN_KEYS)}"
            )
        missing = [k for k in ("params", "pretrain_tokens") if k not in d]
        if missing:
            raise BayesplitError(
                f"a plan needs params and pretrain_tokens (missing {', '.join(map(repr, missing))})"
            )
        if "name" in d and not isinstance(d["name"], str):
            raise BayesplitError(f"a plan's name must be text, got {_shown(d['name'])}")
        spec = d.get("spec_tokens")
        spec = {} if spec is None else spec
        if not isinstance(spec, Mapping):  # one number: which domain would get it?
            raise BayesplitError(
                f"a plan's spec_tokens must map domains to tokens, e.g. "
                f'{{"{domains[0] if domains else "code"}": 1e9}}, got {spec!r}'
            )
        if not all(isinstance(k, str) for k in spec):
            raise BayesplitError(
                f"a plan's spec_tokens must map domain names (text) to tokens, got {spec!r}"
            )
        unknown = sorted(set(spec) - set(domains))
        if unknown:
            raise BayesplitError(f"plan names unknown domain(s) {', '.join(unknown)}")
        fields = {
            "params": d["params"],
            "pretrain_tokens": d["pretrain_tokens"],
            **{f"spec_tokens.{k}": spec.get(k, 0.0) for k in domains},
        }
        numbers = {}
        for what, v in fields.items():
            if isinstance(v, bool):  # float(True) would be N = 1
                raise BayesplitError(f"a plan's {what} must be a number, not true/false")
            if not is_number(v):  # float("1e8") read text as a number
                raise BayesplitError(f"a plan's {what} must be a number, got {_shown(v)}")
            try:
                numbers[what] = float(v)
            except OverflowError:  # a JSON integer of 400 digits
                numbers[what] = math.inf
        for what, x in numbers.items():
            spec_value = what.startswith("spec_tokens.")
            if not math.isfinite(x) or (x < 0 if spec_value else x <= 0):
                raise BayesplitError(
                    "a plan needs finite params > 0, pretrain_tokens > 0 and spec_tokens "
                    f">= 0, got {what}={x:g}"
                )
        return cls(
            numbers["params"],
            numbers["pretrain_tokens"],
            {k: numbers[f"spec_tokens.{k}"] for k in domains},
        )

    def arrays(self, domains: Sequence[str]) -> tuple[float, float, np.ndarray]:
        """(N, D, D' array ordered like ``domains``) for the law's evaluators."""
        return (
            self.params,
            self.pretrain_tokens,
            np.array([self.spec_tokens.get(k, 0.0) for k in domains]),
        )


@dataclass
class Allocation:
    """The chosen plan, its uncertainty, the distribution of the optimum, and alternatives.

    Attributes
    ----------
    plan : Plan
        The allocation minimizing the risk objective.
    draws : xarray.Dataset
        Per draw (dim ``draw``, and ``domain``): ``loss`` at the plan, ``objective`` at
        the plan, the per-draw optimum (``opt_params``, ``opt_pretrain_tokens``,
        ``opt_spec_tokens``, ``opt_objective``, ``opt_pretrain_fraction``) and the plan's
        ``regret``.
    alternatives : xarray.Dataset
        Dims ``alternative`` (× ``draw``, ``domain``): each alternative's plan, objective
        per draw, ``p_better`` (probability the chosen plan is better, a tie counting
        half) and
        ``expected_regret`` (nats; ``expected_regret_rel`` relative to the optimum).
        Other splits for a law with D', other model sizes for one without; empty for a
        law without D' at a fixed N (the budget then fixes the plan).
    near_optimal : tuple of float
        The range of pretraining shares (N and the domains' shares of D' as in the plan)
        whose risk objective is within ``tolerance`` (relative) of the best share's: where
        the choice of split hardly matters. A wide range means the split can follow other
        constraints at little cost; a plan that moves within it between budgets or draw
        counts has not really moved.
    near_optimal_params : tuple of float
        The range of model sizes N (the plan's pretraining share and domain shares, the
        budget spent) whose risk objective is within ``tolerance`` of the best size's: the
        isoFLOP view of how much the choice of N matters, e.g. which sizes of an existing
        ladder would do nearly as well.
    """

    plan: Plan
    budget: float
    trunk: str
    risk: str
    domains: list[str]
    weights: np.ndarray
    level: float
    draws: xr.Dataset
    alternatives: xr.Dataset
    compute: ComputeModel
    law_name: str
    uses_spec_tokens: bool
    notes: list[str] = field(default_factory=list)
    #: the risk objective's relative slack that still counts as near-optimal
    tolerance: float = math.nan
    #: the pretraining shares (at the plan's N) whose risk objective is within
    #: ``tolerance`` of the best one: how flat the decision is
    near_optimal: tuple[float, float] = (math.nan, math.nan)
    #: the model sizes (at the plan's split) whose risk objective is within ``tolerance``
    #: of the best one
    near_optimal_params: tuple[float, float] = (math.nan, math.nan)
    _posterior: object = field(default=None, repr=False)
    #: per-domain limit on D' (inf = none): tokens beyond it buy nothing, as in the solver
    _max_spec_tokens: np.ndarray | None = field(default=None, repr=False)

    # -- summaries --------------------------------------------------------------
    def _band(self, v: np.ndarray) -> dict:
        lo, hi = (1 - self.level) / 2, (1 + self.level) / 2
        q = np.quantile(v, [0.5, lo, hi])
        return {"median": float(q[0]), "credible": [float(q[1]), float(q[2])]}

    @property
    def relative_regret(self) -> np.ndarray:
        """Per draw: the plan's regret against that draw's own optimum, relative to the optimum."""
        return (self.draws["regret"] / self.draws["opt_objective"]).values

    @property
    def expected_regret_rel(self) -> float:
        """The plan's expected regret relative to the optimum: the mean of :attr:`relative_regret`."""
        return float(self.relative_regret.mean())

    @property
    def pretrain_fraction(self) -> float:
        """Share of the plan's compute spent on general pretraining."""
        n, d, dp = self.plan.arrays(self.domains)
        return float(self.compute.pretrain_fraction(d, dp))

    def to_dict(self) -> dict:
        """The CLI's JSON (see ``bayesplit allocate --json``)."""
        # the per-draw optimum's spread at the same level as every other interval
        q = [(1 - self.level) / 2, 0.5, (1 + self.level) / 2]
        d = self.draws
        alts = []
        for name in self.alternatives["alternative"].values:
            a = self.alternatives.sel(alternative=name)
            spec = {k: float(a["spec_tokens"].sel(domain=k)) for k in self.domains}
            alts.append(
                {
                    "name": str(name),
                    "plan": {
                        "params": float(a["params"]),
                        "pretrain_tokens": float(a["pretrain_tokens"]),
                        "spec_tokens": spec,
                    },
                    "p_better": float(a["p_better"]),
                    "expected_regret": float(a["expected_regret"]),
                    "expected_regret_rel": float(a["expected_regret_rel"]),
                    "objective": self._band(a["objective"].values),
                    "flops": float(a["flops"]),
                }
            )
        return {
            "budget": self.budget,
            "trunk": self.trunk,
            "risk": self.risk,
            "law": self.law_name,
            "weights": dict(zip(self.domains, map(float, self.weights), strict=True)),
            "plan": self.plan.to_dict(),
            "pretrain_fraction": self.pretrain_fraction,
            "loss": {k: self._band(d["loss"].sel(domain=k).values) for k in self.domains},
            "objective": self._band(d["objective"].values),
            "optimum_distribution": {
                "params": [float(v) for v in np.quantile(d["opt_params"].values, q)],
                "pretrain_fraction": [
                    float(v) for v in np.quantile(d["opt_pretrain_fraction"].values, q)
                ],
            },
            "expected_regret": float(d["regret"].mean()),
            "expected_regret_rel": self.expected_regret_rel,
            "near_optimal": {
                "tolerance": self.tolerance,
                "pretrain_fraction": [float(v) for v in self.near_optimal],
                "params": [float(v) for v in self.near_optimal_params],
            },
            "alternatives": alts,
            "level": self.level,
            "notes": list(self.notes),
        }

    def describe(self) -> list[str]:
        """The plan in words, one line each: N, D and its share of compute, D' and loss per
        domain, the weighted loss, the expected regret and the spread of the per-draw optimum
        (what ``bayesplit allocate`` prints above its table of alternatives)."""
        d = self.to_dict()
        plan, o, od = d["plan"], d["objective"], d["optimum_distribution"]
        near = d["near_optimal"]["pretrain_fraction"]
        sizes = d["near_optimal"]["params"]
        lines = [
            f"plan for {self.budget:.3g} FLOPs ({self.trunk} trunk, risk {self.risk}, law {self.law_name})",
            f"  N = {plan['params']:.3g} params, D = {plan['pretrain_tokens']:.3g} pretraining "
            f"tokens ({share(d['pretrain_fraction'])} of compute)",
        ]
        for k, v in plan["spec_tokens"].items():
            b = d["loss"][k]
            lines.append(
                f"  {k}: D' = {v:.3g}  → loss {b['median']:.4f} "
                f"[{b['credible'][0]:.4f}, {b['credible'][1]:.4f}]"
            )
        return lines + [
            f"  weighted loss {o['median']:.4f} [{o['credible'][0]:.4f}, {o['credible'][1]:.4f}] "
            f"({percent(self.level)} credible)",
            f"  expected regret vs each draw's own optimum: {d['expected_regret']:.4f} nats "
            f"({d['expected_regret_rel']:.2%})",
            f"  per-draw optimum: N in [{od['params'][0]:.3g}, {od['params'][2]:.3g}], "
            f"pretraining share in [{share(od['pretrain_fraction'][0])}, "
            f"{share(od['pretrain_fraction'][2])}] ({percent(self.level)} of draws)",
            (
                f"  near-optimal: pretraining shares in [{share(near[0])}, {share(near[1])}] are "
                if share(near[0]) != share(near[1])
                else f"  near-optimal: only a pretraining share of {share(near[0])} is "
            )
            + f"within {percent(self.tolerance)} of the best {self.risk} weighted loss at this N",
            f"  near-optimal: model sizes N in [{sizes[0]:.3g}, {sizes[1]:.3g}] are within "
            f"{percent(self.tolerance)} of the best {self.risk} weighted loss at this split",
        ]

    def __repr__(self) -> str:
        # the dataclass default would print every draw of two xarray Datasets
        alts = [
            f"  vs {a['name']}: P(plan better) {probability(a['p_better'])}; that plan's expected regret "
            f"{a['expected_regret_rel']:.2%}"
            for a in self.to_dict()["alternatives"]
        ]
        notes = [f"  ! {n}" for n in self.notes]
        head, *rest = self.describe()
        return "\n".join([f"<Allocation: {head}", *rest, *alts, *notes]) + ">"

    # -- hooks for suggest ---------------------------------------------------------
    def decision_quantity(self, objective: str, draws: Mapping[str, np.ndarray]) -> np.ndarray:
        """Q per draw for :func:`bayesplit.design.suggest`: the objective at the plan, the
        optimal split, or (``"regret"``) the objectives of competing plans, (S, P)."""
        if objective == "regret":
            return self.plan_objectives(draws)
        if objective == "split":
            self._check_same_draws(draws)
            return self.draws["opt_pretrain_fraction"].values
        n, d, dp = self.plan.arrays(self.domains)
        post = self._posterior
        idx = post.domain_index(self.domains)
        log_l = post.log_mean(n, d, self._effective_spec(dp), idx, draws=draws)  # (S, K)
        return np.exp(log_l) @ self.weights

    def plan_objectives(self, draws: Mapping[str, np.ndarray], n_plans: int = 40) -> np.ndarray:
        """Objective of competing plans under every draw, (S, P): column 0 is the chosen plan.

        The competitors are the optima of ``n_plans`` draws spread evenly over the
        posterior: the plans the decision could move to if the posterior moved towards
        one of them. :func:`bayesplit.design.suggest` scores a run by how much it is
        expected to lower the expected objective of the best of these plans.
        """
        s = self._check_same_draws(draws)
        take = np.unique(np.linspace(0, s - 1, min(n_plans, s)).round().astype(int))
        n0, d0, dp0 = self.plan.arrays(self.domains)
        n = np.r_[n0, self.draws["opt_params"].values[take]]
        d = np.r_[d0, self.draws["opt_pretrain_tokens"].values[take]]
        dp = np.vstack([dp0, self.draws["opt_spec_tokens"].values[take]])
        return self._objectives(n, d, dp, draws)

    def _objectives(self, params, pretrain_tokens, spec_tokens, draws, fast: bool = False):
        """The objective of P plans (N, D of shape (P,), D' (P, K)) under every draw: (S, P),
        with D' capped at the data limits as the objective counts it. ``fast``: the float32
        kernel of :meth:`Posterior.log_mean`."""
        post = self._posterior
        idx = np.asarray(post.domain_index(self.domains))
        k, m = len(idx), len(spec_tokens)
        log_l = post.log_mean(
            np.repeat(params, k) if np.ndim(params) else params,
            np.repeat(pretrain_tokens, k),
            self._effective_spec(spec_tokens).reshape(-1),
            np.tile(idx, m),
            draws=draws,
            fast=fast,
        )  # (S, P*K)
        return np.exp(log_l, dtype=float).reshape(-1, m, k) @ self.weights

    def _effective_spec(self, dp: np.ndarray) -> np.ndarray:
        """D' as the law sees it: capped at the data limit, as ``objective`` was computed."""
        if self._max_spec_tokens is None:
            return np.asarray(dp, dtype=float)
        return np.minimum(np.asarray(dp, dtype=float), self._max_spec_tokens)

    def _check_same_draws(self, draws: Mapping[str, np.ndarray]) -> int:
        """The number of draws, refusing draws other than the ones this allocation used."""
        s = len(next(iter(draws.values())))
        if s != self.draws.sizes["draw"]:
            raise BayesplitError("allocation and suggestion used different posterior draws")
        return s

    def describe_quantity(self, objective: str) -> str:
        """One line naming the decision quantity (for suggest's output)."""
        if objective == "split":
            return f"the optimal pretraining fraction at {self.budget:.3g} FLOPs"
        if objective == "regret":
            return f"the expected regret of the recommended plan ({self.budget:.3g} FLOPs)"
        return f"the objective at the recommended plan ({self.budget:.3g} FLOPs)"

    # -- figures ----------------------------------------------------------------
    def plot_split_curve(self, ax=None, points: int = 25):
        """Objective vs pretraining fraction at the plan's N, with its credible band."""
        from bayesplit.plots import plot_split_curve

        return plot_split_curve(self, ax=ax, points=points)

    def plot_size_curve(self, ax=None, points: int = 41):
        """Objective vs model size N at the plan's split and budget, with its credible band."""
        from bayesplit.plots import plot_size_curve

        return plot_size_curve(self, ax=ax, points=points)

    def plot_domains(self, ax=None):
        """Per-domain loss at the plan and at each alternative, with credible bands."""
        from bayesplit.plots import plot_domain_losses

        return plot_domain_losses(self, ax=ax)

    def plot_optimum(self, ax=None, points: int = 41):
        """Where the per-draw optimum lies: N vs pretraining fraction, with the joint
        near-optimal region (:meth:`landscape` on a ``points`` × ``points`` grid)."""
        from bayesplit.plots import plot_optimum

        return plot_optimum(self, ax=ax, points=points)

    def plot_alternatives(self, ax=None):
        """Objective distribution of the plan and of each alternative."""
        from bayesplit.plots import plot_alternatives

        return plot_alternatives(self, ax=ax)

    def split_curve(self, points: int = 25) -> xr.Dataset:
        """Objective per draw as the pretraining fraction varies (N fixed at the plan's),
        from 2% (or the plan's own share, if smaller) to 100%."""
        points = _check_points(points)
        n, _, dp = self.plan.arrays(self.domains)
        # a plan below 2% (a law where pretraining buys little) sat left of the curve
        start = min(0.02, self.pretrain_fraction) if self.pretrain_fraction > 0 else 0.02
        fractions = np.linspace(start, 1.0, points)
        d_line, dp_line = self.compute.split(
            self.budget, n, fractions, split_shares(dp, self.weights)
        )
        objective = self._objective_along(np.full(points, n), d_line, dp_line)
        return xr.Dataset(
            {"objective": (("fraction", "draw"), objective)},
            coords={"fraction": fractions},
            attrs={"plan_fraction": self.pretrain_fraction, "params": n},
        )

    def _objective_along(self, params, pretrain_tokens, spec_tokens) -> np.ndarray:
        """The objective of each plan of a line, per draw (plans × draws: the allocation's
        draws), with D' counted as the objective counts it."""
        post = self._posterior
        idx = post.domain_index(self.domains)
        # allocate's max_draws, as landscape takes it: capped at 2000, the curves' bands at
        # the plan differed from the table's in the third decimal
        draws = post.draws(max_draws=self.draws.sizes["draw"])
        out = []
        for n, d, dp in zip(params, pretrain_tokens, spec_tokens, strict=True):
            log_l = post.log_mean(n, d, self._effective_spec(dp), idx, draws=draws)
            out.append(np.exp(log_l) @ self.weights)
        return np.array(out)

    def size_curve(self, points: int = 41, span: float = 10.0) -> xr.Dataset:
        """Objective per draw as the model size varies from N/span to N·span, the budget
        spent at the plan's pretraining share and domain shares (an isoFLOP curve)."""
        points = _check_points(points)
        if not (is_finite_number(span) and span > 1):
            raise BayesplitError(f"span must be a number > 1 (N/span to N·span), got {span!r}")
        n0, _, dp0 = self.plan.arrays(self.domains)
        sizes = np.geomspace(n0 / span, n0 * span, points)
        shares = split_shares(dp0, self.weights)
        lines = [self.compute.split(self.budget, n, self.pretrain_fraction, shares) for n in sizes]
        objective = self._objective_along(sizes, *zip(*lines, strict=True))
        return xr.Dataset(
            {"objective": (("params", "draw"), objective)},
            coords={"params": sizes},
            attrs={"plan_params": n0, "pretrain_fraction": self.pretrain_fraction},
        )

    def landscape(self, points: int = 41) -> xr.Dataset:
        """The risk objective over model size × pretraining share at the budget, each plan
        dividing D' between domains as this plan does: the plane both curves cut through.

        Dims ``params`` × ``fraction``; the grid covers the plan, the near-optimal ranges
        and the spread of the per-draw optima (at the allocation's level). ``risk`` is the
        allocation's risk objective (on the draws it used); ``relative`` is the risk over
        the best of the grid and the plan minus 1, so ``relative <= tolerance`` is the
        joint near-optimal region: the plans whose N and split may both move and stay
        within the tolerance.
        """
        from bayesplit.allocation import _risk, parse_risk

        points = _check_points(points)
        lo, hi = (1 - self.level) / 2, (1 + self.level) / 2
        n0, _, dp0 = self.plan.arrays(self.domains)
        opt_n = np.quantile(self.draws["opt_params"].values, [lo, hi])
        opt_f = np.quantile(self.draws["opt_pretrain_fraction"].values, [lo, hi])
        n_lo = np.nanmin([n0, *self.near_optimal_params, opt_n[0]]) / 1.25
        n_hi = np.nanmax([n0, *self.near_optimal_params, opt_n[1]]) * 1.25
        least = np.nanmin([self.pretrain_fraction, *self.near_optimal, opt_f[0]])
        # down to half the least share where that is under 0.5% (a plan of 0.02% sat below
        # a grid from 0.5%, outside its own near-optimal region)
        f_lo = least - 0.05 if least - 0.05 >= 0.005 else min(0.005, least / 2)
        f_hi = min(1.0, np.nanmax([self.pretrain_fraction, *self.near_optimal, opt_f[1]]) + 0.05)
        sizes = np.geomspace(n_lo, n_hi, points)
        fractions = np.linspace(f_lo, f_hi, points)
        shares = split_shares(dp0, self.weights)
        draws = self._posterior.draws(max_draws=self.draws.sizes["draw"])
        kind, alpha = parse_risk(self.risk)
        risk = np.empty((points, points))
        for i, n in enumerate(sizes):  # one line of shares per size: one compiled shape
            d, dp = self.compute.split(self.budget, n, fractions, shares)
            # float32 kernel: ~1e-7 relative, far below any tolerance
            objective = self._objectives(n, d, dp, draws, fast=True)  # (S, points)
            risk[i] = _risk(objective.T, kind, alpha, np)
        # measured from the plan where no grid point is as good: the plan falls between
        # grid points, and a region measured from a worse baseline came out too large
        d, dp = self.compute.split(self.budget, n0, np.array([self.pretrain_fraction]), shares)
        plan_risk = float(
            _risk(self._objectives(n0, d, dp, draws, fast=True).T, kind, alpha, np)[0]
        )
        best = np.nanmin([np.nanmin(risk), plan_risk])
        return xr.Dataset(
            {
                "risk": (("params", "fraction"), risk),
                "relative": (("params", "fraction"), risk / best - 1.0),
            },
            coords={"params": sizes, "fraction": fractions},
            attrs={
                "plan_params": n0,
                "plan_fraction": self.pretrain_fraction,
                "risk": self.risk,
                "tolerance": self.tolerance,
            },
        )


def _given(value) -> str:
    """A refused value for a message: a number as it reads, anything else with its type."""
    return short_repr(value) if is_number(value) else _shown(value)


def split_shares(spec_tokens: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """How a plan divides its specialization compute between domains: its own D' shares,
    or the domain weights when it specializes nothing (then any split must start somewhere)."""
    spec_tokens = np.asarray(spec_tokens, dtype=float)
    total = spec_tokens.sum()
    return spec_tokens / total if total > 0 else np.asarray(weights, dtype=float)


def _check_points(points) -> int:
    """The number of points of a curve or a grid side: a whole number >= 3."""
    if isinstance(points, bool) or not (isinstance(points, int | np.integer) and points >= 3):
        raise BayesplitError(f"points must be a whole number >= 3, got {points!r}")
    return int(points)
