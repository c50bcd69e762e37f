"""Uncertainty-aware budget allocation (DESIGN.md, "Decisions").

Given a budget C, choose the model size N, the pretraining tokens D and the
specialization tokens D'_k to minimize ``Σ_k w_k L_k(N, D, D'_k)``:

* under a *risk objective* across posterior draws (the plan): the posterior mean
  (default), a quantile (``q90``) or the conditional value at risk (``cvar90``: the mean
  of the worst 10% of draws);
* *per draw* (the distribution of the optimum), to show how sure the choice is.

The plan spends the whole budget (every law decreases in N, D and D'). A plan is
parameterized by log N and softmax shares of the token budget ``T = C / f(N)``:
pretraining gets a share p_0 (D = p_0·T, or p_0·T/K with independent trunks), domain k
gets p_k (D'_k = p_k·T). Both problems are solved with Adam in JAX, vectorized over
draws (``vmap``) and over starting points, then checked against the alternatives.
What :func:`allocate` returns, :class:`~bayesplit.plan.Allocation` around a
:class:`~bayesplit.plan.Plan`, is defined in :mod:`bayesplit.plan`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from bayesplit._parse import (
    _shown,
    check_kwargs,
    check_level,
    counts,
    is_finite_number,
    is_number,
    kind_of,
    names,
    parse_count,
    percent,
    short_repr,
)
from bayesplit.compute import ComputeModel, DataLimits
from bayesplit.errors import BayesplitError
from bayesplit.laws import Inputs, get_ops
from bayesplit.plan import Allocation, Plan, split_shares
from bayesplit.prediction import thin_tails_note

RISK_PATTERN = re.compile(r"^(mean|q(\d{1,2})|cvar(\d{1,2}))$")
#: The names of the plans allocate compares with its own (a ``compare`` plan may not take one).
ALTERNATIVE_NAMES = frozenset(
    {
        "all pretraining",
        "90/10 split",
        "50/50 split",
        "chinchilla then specialize",
        # a law without D': other sizes (see _size_alternatives)
        "20 tokens per parameter",
        "half the size",
        "twice the size",
        "ladder size nearest 20 tokens per parameter",
        "next smaller ladder size",
        "next larger ladder size",
    }
)
#: Chinchilla's compute-optimal tokens per parameter, for the "chinchilla" alternative.
CHINCHILLA_TOKENS_PER_PARAM = 20.0
ADAM_STEPS = 300
#: The risk plan: a multi-start scout on at most SCOUT_DRAWS draws, then a polish on all.
SCOUT_DRAWS = 400
SCOUT_STEPS = 300
POLISH_STEPS = 300
SCOUT_BATCH = 9
#: Default relative slack of the risk objective within which a split counts as near-optimal.
NEAR_OPTIMAL_TOLERANCE = 0.001
#: Pretraining shares the near-optimal range is read on (a 0.5% grid, plus the plan's own).
NEAR_OPTIMAL_GRID = np.linspace(0.005, 1.0, 200)
#: Steps per factor e of N on which the near-optimal model sizes are read (~2% apart).
NEAR_OPTIMAL_SIZE_STEPS = 50
#: Plans of a line evaluated at once: bounds the (plans, draws, domains) arrays in memory.
LINE_CHUNK = 64


def parse_risk(risk: str) -> tuple[str, float]:
    """``"mean"`` → (mean, 0); ``"q90"`` → (quantile, 0.9); ``"cvar90"`` → (cvar, 0.9)."""
    m = RISK_PATTERN.match(risk) if isinstance(risk, str) else None  # 0.9: a TypeError
    if not m:
        raise BayesplitError(
            f"risk must be mean, qNN (e.g. q90) or cvarNN (e.g. cvar90), got {risk!r}"
        )
    digits = m.group(2) or m.group(3)
    if digits is not None and int(digits) == 0:
        raise BayesplitError(f"risk level must be 1-99 (e.g. q90, cvar90), got {risk!r}")
    if m.group(2):
        return "quantile", int(m.group(2)) / 100
    if m.group(3):
        return "cvar", int(m.group(3)) / 100
    return "mean", 0.0


# -- the problem ------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """Everything fixed about one allocation, in the units the law is evaluated in."""

    law: object
    n_ref: float
    t_ref: float
    domains: tuple[str, ...]
    domain_idx: np.ndarray  #: column of each domain in the posterior's per-domain parameters
    weights: np.ndarray  #: (K,), sums to 1
    compute: ComputeModel
    budget: float
    max_spec_tokens: np.ndarray  #: (K,), inf = no limit
    log_n_bounds: tuple[float, float]
    uses_spec_tokens: bool

    @property
    def k(self) -> int:
        """Number of domains K."""
        return len(self.domains)

    def select(self, draws: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Law parameters restricted to the problem's domains: (S,) or (S, K)."""
        out = {}
        for p in self.law.params:
            v = np.asarray(draws[p.name], dtype=float)
            out[p.name] = v[:, self.domain_idx] if v.ndim == 2 else v
        return out


def _env(prob: Problem) -> dict:
    """The numbers of a problem that change between calls (traced, so one compile serves all)."""
    return {
        "budget": prob.budget,
        "weights": prob.weights,
        "cap": np.where(np.isfinite(prob.max_spec_tokens), prob.max_spec_tokens, 1e300),
        "n_ref": prob.n_ref,
        "t_ref": prob.t_ref,
        "lo": prob.log_n_bounds[0],
        "hi": prob.log_n_bounds[1],
    }


def _plan_arrays(prob: Problem, x, xp, env: Mapping | None = None):
    """(N, D, D'_k effective, D'_k nominal) from the unconstrained vector x = (log N, logits)."""
    env = env or _env(prob)
    log_n = x[..., 0]
    z = x[..., 1:]
    z = z - z.max(axis=-1, keepdims=True)
    e = xp.exp(z)
    share = e / e.sum(axis=-1, keepdims=True)
    n = xp.exp(log_n)
    tokens = env["budget"] / prob.compute.flops_per_token(n)
    d = share[..., 0] * tokens / prob.compute.pretrain_multiplier(prob.k)
    dp = share[..., 1:] * tokens[..., None]
    return n, d, xp.minimum(dp, env["cap"]), dp


def _losses(prob: Problem, p: Mapping, n, d, dp, ops, env: Mapping | None = None):
    """Per-domain loss; ``p`` values broadcast against (..., K)."""
    env = env or _env(prob)
    x = Inputs(
        n=(n / env["n_ref"])[..., None], d=(d / env["t_ref"])[..., None], dp=dp / env["t_ref"]
    )
    # + 0·D': a user law without per-domain parameters that ignores D' has one loss for
    # every domain, of shape (..., 1), and the domain weights met it as a shape error
    return ops.exp(prob.law.evaluate(ops, p, x) + 0.0 * x.dp)


def _risk(values, kind: str, alpha: float, xp):
    """Risk of a vector of per-draw objectives (last axis = draws)."""
    if kind == "mean":
        return values.mean(axis=-1)
    if kind == "quantile":
        return xp.quantile(values, alpha, axis=-1)
    tail = xp.sort(values, axis=-1)[..., int(math.floor(alpha * values.shape[-1])) :]
    return tail.mean(axis=-1)


# -- solvers (JAX) ------------------------------------------------------------------
def _adam(f, x0, free, lo, hi, steps: int = ADAM_STEPS, lr: float = 0.08):
    """Minimize f from x0 with Adam; ``free`` masks variables, log N is clipped to [lo, hi]."""
    import jax
    import jax.numpy as jnp

    grad = jax.grad(f)

    def body(i, state):
        x, m, v = state
        g = grad(x) * free
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        mh = m / (1 - 0.9 ** (i + 1.0))
        vh = v / (1 - 0.999 ** (i + 1.0))
        step = lr * (0.005 ** (i / steps))  # decay to polish the optimum
        x = x - step * mh / (jnp.sqrt(vh) + 1e-9)
        x = x.at[0].set(jnp.clip(x[0], lo, hi))
        return x, m, v

    x, _, _ = jax.lax.fori_loop(0, steps, body, (x0, jnp.zeros_like(x0), jnp.zeros_like(x0)))
    return x, f(x)


_SOLVERS: dict = {}


def _solver(prob: Problem, kind: str, alpha: float, per_draw: bool, steps: int = ADAM_STEPS):
    """A jitted solver, compiled once per (law, domains count, compute model, risk, mode).

    Budget, weights, data limits and scales are traced arguments, so a frontier over
    many budgets, or repeated allocations in a campaign, reuse one compilation.
    Returns ``solve(x0, free, params)``.
    """
    import jax
    import jax.numpy as jnp

    key = (id(prob.law), prob.k, prob.compute, kind, alpha, per_draw, steps)
    if key not in _SOLVERS:
        ops = get_ops("jax")

        def objective_single(x, p, env):
            n, d, dp, _ = _plan_arrays(prob, x, jnp, env)
            return jnp.sum(env["weights"] * _losses(prob, p, n, d, dp, ops, env))

        def risk_of(x, p, env):
            n, d, dp, _ = _plan_arrays(prob, x, jnp, env)
            loss = _losses(prob, p, n, d, dp, ops, env)  # (S, K) by broadcasting
            return _risk(jnp.sum(env["weights"] * loss, axis=-1), kind, alpha, jnp)

        if per_draw:

            def one(x0, free, p, env):
                return _adam(
                    lambda x: objective_single(x, p, env), x0, free, env["lo"], env["hi"], steps
                )

            fn = jax.jit(jax.vmap(one, in_axes=(0, None, 0, None)))
        else:

            def one(x0, free, p, env):
                return _adam(lambda x: risk_of(x, p, env), x0, free, env["lo"], env["hi"], steps)

            fn = jax.jit(jax.vmap(one, in_axes=(0, None, None, None)))
        _SOLVERS[key] = (prob.law, fn)  # keep the law alive so its id stays unique
    fn = _SOLVERS[key][1]
    env = {k: jnp.asarray(v) for k, v in _env(prob).items()}
    return lambda x0, free, p: fn(x0, free, p, env)


def _as_param_tree(prob: Problem, p: Mapping[str, np.ndarray], per_draw: bool):
    """Parameters shaped for the solvers: per draw (S, K)/(S,), or for risk (S, K)/(S, 1)."""
    import jax.numpy as jnp

    out = {}
    for par in prob.law.params:
        v = np.asarray(p[par.name], dtype=float)
        if not per_draw and v.ndim == 1:
            v = v[:, None]
        out[par.name] = jnp.asarray(v)
    return out


def _initial_x(prob: Problem, log_n, pretrain_share: float = 0.5) -> np.ndarray:
    k = prob.k
    rest = (1 - pretrain_share) / k if prob.uses_spec_tokens else 1e-6
    logits = np.log(np.r_[pretrain_share, np.full(k, rest)])
    log_n = np.atleast_1d(np.asarray(log_n, dtype=float))
    return np.column_stack([log_n, np.tile(logits, (len(log_n), 1))])


# -- allocate ---------------------------------------------------------------------------
def _normalize_weights(weights: Mapping[str, float] | None, domains: Sequence[str]) -> np.ndarray:
    if weights is None:
        return np.full(len(domains), 1.0 / len(domains))
    if isinstance(weights, pd.Series):  # indexed by domain
        weights = weights.to_dict()
    if not isinstance(weights, Mapping):  # a list would be matched to domains by position
        raise BayesplitError(
            f"weights must map domain names to weights, e.g. {{{domains[0]!r}: 1.0}}; "
            f"got {kind_of(weights)}"
        )
    unknown = sorted(set(weights) - set(domains))
    if unknown:
        raise BayesplitError(
            f"weights for unknown domain(s) {', '.join(unknown)} (allocating over {', '.join(domains)})"
        )
    missing = [k for k in domains if k not in weights]
    if missing:  # {"code": 2} read as "code only", where a user meant "code twice"
        raise BayesplitError(
            f"weights leave out {', '.join(missing)}: give every domain a weight (0 leaves "
            "one out of the objective)"
        )
    given = [weights[k] for k in domains]
    if not all(is_number(v) for v in given):
        bad = next(v for v in given if not is_number(v))
        raise BayesplitError(f"weights must be numbers, got {bad!r} ({type(bad).__name__})")
    w = np.array(given, dtype=float)
    if np.any(w < 0) or not np.isfinite(w).all() or not np.any(w > 0):
        raise BayesplitError("weights must be >= 0 with a positive sum")
    w = w / w.max()  # 1e308 + 1e308 overflows to inf, and every weight became 0
    return w / w.sum()


def _ladder_sizes(ladder, runs: pd.DataFrame | None = None) -> np.ndarray:
    """A ladder's model sizes, sorted. From a ladder file, in the fitted ``runs``' N
    convention (with or without embeddings, as ``suggest`` reads it): without embeddings
    always, the plan's N was not the count the law was fitted on for a table with them."""
    if isinstance(ladder, (str, os.PathLike)):
        if runs is not None and len(runs):
            from bayesplit.design import ladder_as_fitted

            entries, key = ladder_as_fitted(ladder, runs)
        else:
            from bayesplit.train.ladder import load_ladder

            entries, key = load_ladder(ladder), "params"
        return np.array(sorted(float(e[key]) for e in entries))
    if not hasattr(ladder, "__iter__"):  # 1e8: "'float' object is not iterable"
        raise BayesplitError(
            f"ladder must be a ladder file or a list of model sizes, got {ladder!r}; "
            "for one size give params"
        )
    given = list(ladder)
    bad = [v for v in given if not is_number(v)]
    if bad:  # "1e8" was read as a number, as allocate's params and budget are not
        raise BayesplitError(
            f"ladder sizes must be numbers, got {bad[0]!r} ({type(bad[0]).__name__})"
        )
    sizes = np.asarray(given, dtype=float)
    if len(sizes) == 0 or not np.all(np.isfinite(sizes) & (sizes > 0)):  # NaN was dropped
        raise BayesplitError(
            f"a ladder needs at least one positive model size, each finite and > 0, got {given}"
        )
    return np.sort(sizes)


def smallest_budget(
    runs: pd.DataFrame, n_domains: int, compute: ComputeModel | None = None
) -> float:
    """FLOPs of the smallest plan the allocator can consider: the smallest fitted N trained
    on the shortest fitted pretraining (times the trunk's multiplier for ``n_domains``)."""
    compute = compute or ComputeModel()
    n_min, d_min = float(runs["params"].min()), float(runs["pretrain_tokens"].min())
    return compute.flops_per_token(n_min) * d_min * compute.pretrain_multiplier(n_domains)


def smallest_plan_budget(
    posterior,
    *,
    trunk: str = "shared",
    domains: Sequence[str] | None = None,
    weights: Mapping[str, float] | None = None,
) -> float:
    """The smallest budget :func:`allocate` plans for with these settings: the smallest
    fitted run, once per domain served (weight > 0) for independent trunks."""
    domains = names(domains) if domains is not None else posterior.domains
    served = len(domains)
    if trunk == "independent":
        served = int(np.count_nonzero(_normalize_weights(weights, domains)))
    return smallest_budget(posterior.runs, served, ComputeModel(trunk))


def check_budget_buys_a_run(
    budget: float, runs: pd.DataFrame, n_domains: int, compute: ComputeModel | None = None
) -> None:
    """Raise BayesplitError if ``budget`` cannot train even the smallest fitted run.

    The allocator searches N and D only down to the smallest run the law was fitted on
    (``runs``: the modelled rows), so below that no plan is feasible. Commands that fit
    first call this before the fit, so a budget typo costs no minutes.
    """
    smallest = smallest_budget(runs, n_domains, compute)
    if budget < smallest:
        n_min, d_min = float(runs["params"].min()), float(runs["pretrain_tokens"].min())
        k = (compute or ComputeModel()).pretrain_multiplier(n_domains)
        # the run itself costs a K-th of that: the message read as a wrong sum
        each = f", pretrained once for each of {k:g} domains (independent trunks)" if k > 1 else ""
        raise BayesplitError(
            f"budget {budget:.3g} FLOPs is below the smallest run the law is fitted on "
            f"(N={n_min:.3g}, D={d_min:.3g}{each}: {smallest:.3g} FLOPs); no plan is feasible"
        )


def _domain_map(value, what: str, every: Sequence[str] | None = None) -> dict[str, float]:
    """``{domain: number}`` from a mapping, or from one number for ``every`` domain."""
    if value is None:
        return {}
    if every is not None and is_number(value):
        return {k: float(value) for k in every}
    if not isinstance(value, Mapping):
        number = " or one number" if every is not None else ""
        raise BayesplitError(
            f"{what} must be a mapping of domain to number{number}, got {type(value).__name__}"
        )
    for k, v in value.items():
        if not is_number(v):
            raise BayesplitError(f"{what}[{k!r}] must be a number, got {v!r}")
    return {str(k): float(v) for k, v in value.items()}


def _without_domains(compare, left_out: Sequence[str]):
    """``compare`` with ``left_out`` taken out of each plan's spec_tokens, and the domains
    that were there; what is not a plan of a mapping is passed on for
    :func:`_compare_plans` to refuse."""
    plans = [compare] if isinstance(compare, Mapping) else compare
    if isinstance(plans, (str, bytes)) or not hasattr(plans, "__iter__"):
        return compare, []
    out, seen = [], []
    for plan in plans:
        spec = plan.get("spec_tokens") if isinstance(plan, Mapping) else None
        if isinstance(spec, Mapping) and any(k in spec for k in left_out):
            seen += [k for k in left_out if k in spec and k not in seen]
            plan = {**plan, "spec_tokens": {k: v for k, v in spec.items() if k not in left_out}}
        out.append(plan)
    return out, seen


def _plan_dicts(compare):
    """``compare`` with each :class:`Plan` (the ``.plan`` of an earlier allocation) as its
    dict; an :class:`Allocation` is refused, naming its plan. What is neither is passed on
    for :func:`_compare_plans` to check."""

    def one(plan):
        if isinstance(plan, Plan):
            return plan.to_dict()
        if isinstance(plan, Allocation):  # as its to_dict() is refused
            raise BayesplitError(
                "compare got an allocation, not a plan: give its plan (Allocation.plan)"
            )
        return plan

    if isinstance(compare, Plan | Allocation):
        return one(compare)
    if isinstance(compare, Mapping | str | bytes) or not hasattr(compare, "__iter__"):
        return compare
    return [one(plan) for plan in compare]


def _compare_plans(compare, domains: Sequence[str]) -> list[Mapping]:
    """``allocate``'s ``compare`` as a list of plans, each checked against ``domains``: one
    plan (a mapping) or an iterable of them; None for none."""
    if compare is None:
        return []
    usage = (
        "compare must be a plan ({'params': N, 'pretrain_tokens': D, 'spec_tokens': "
        "{domain: D'}} or a Plan) or a list of plans"
    )
    if isinstance(compare, Mapping):
        compare = [compare]
    elif isinstance(compare, (str, bytes)) or not hasattr(compare, "__iter__"):
        raise BayesplitError(f"{usage}, got {_shown(compare)}")  # 5: "not iterable"
    plans = list(compare)
    seen = set()
    for i, extra in enumerate(plans):
        if not isinstance(extra, Mapping):  # "'int' object has no attribute 'get'"
            raise BayesplitError(f"{usage}, got an entry {_shown(extra)}")
        try:
            Plan.from_dict(extra, domains)
        except BayesplitError as exc:  # which of the plans
            if len(plans) == 1:
                raise
            raise BayesplitError(f"compare plan #{i + 1}: {exc}") from None
        name = str(extra.get("name", f"user plan {i + 1}"))  # as the summary names it
        if name in seen:  # the later plan silently replaced the earlier one
            raise BayesplitError(f"compare names the plan {name!r} more than once")
        if name in ALTERNATIVE_NAMES:  # it silently replaced the built-in one
            raise BayesplitError(
                f"compare plan {name!r} has the name of a built-in alternative; rename it"
            )
        seen.add(name)
    return plans


def allocate(
    posterior,
    *,
    budget: float,
    trunk: str = "shared",
    domains: Sequence[str] | None = None,
    weights: Mapping[str, float] | None = None,
    params: float | None = None,
    ladder: str | Sequence[float] | None = None,
    max_spec_tokens: Mapping[str, float] | None = None,
    repetitions: float | Mapping[str, float] | None = None,
    risk: str = "mean",
    compare: Sequence[Mapping | Plan] | Mapping | Plan | None = None,
    compute: ComputeModel | None = None,
    level: float = 0.9,
    max_draws: int | None = 4000,
    tolerance: float = NEAR_OPTIMAL_TOLERANCE,
    force: bool = False,
) -> Allocation:
    """Choose N, D and D'_k for a compute budget, with the uncertainty of that choice.

    Parameters
    ----------
    posterior
        A fitted :class:`~bayesplit.posterior.Posterior` (refused if its gate failed,
        unless ``force``).
    budget
        Total training compute in FLOPs.
    trunk
        ``"shared"`` (one pretraining, K branches) or ``"independent"``.
    domains
        Domains to serve (default: all the posterior knows).
    weights
        Importance ``w_k`` of each domain (default equal); normalized to sum 1.
    params
        Fix N (e.g. for an inference budget).
    ladder
        Restrict N to a ladder (a ``models/*.yaml`` path, whose sizes are read in the fitted
        runs' N convention, with or without embeddings, or a list of sizes).
    max_spec_tokens
        Unique specialization tokens ``U_k`` per domain (``{domain: tokens}``; domains
        left out have no limit). Tokens beyond ``r_k·U_k`` buy nothing.
    repetitions
        Allowed passes ``r_k`` over each domain's unique tokens: one number for every
        domain, or ``{domain: passes}`` (default 1). Only domains with a
        ``max_spec_tokens`` limit are affected.
    risk
        ``"mean"`` (posterior expected objective), ``"qNN"`` (the NN% quantile across
        draws) or ``"cvarNN"`` (mean of the worst (100−NN)% of draws).
    compare
        Extra plan(s) to compare, each ``{"name"?, "params", "pretrain_tokens", "spec_tokens": {k: D'}}``
        or a :class:`~bayesplit.plan.Plan` (such as the ``.plan`` of an earlier allocation,
        named ``user plan i`` as an unnamed dict is).
    compute
        FLOPs-per-token convention (default ``6·N``); its ``trunk`` is replaced by ``trunk``.
    level
        Probability of the credible intervals.
    max_draws
        Use at most this many posterior draws (evenly thinned; deterministic).
    tolerance
        Relative slack of the risk objective for the near-optimal ranges of pretraining
        shares (:attr:`~bayesplit.plan.Allocation.near_optimal`) and of model sizes
        (:attr:`~bayesplit.plan.Allocation.near_optimal_params`); 0.001 = within 0.1%.
    force
        Allocate with a posterior that failed its diagnostics gate.

    Returns
    -------
    Allocation

    Examples
    --------
    A known law as a one-draw posterior (a fitted one works the same way):

    >>> from bayesplit.truth import example_truth
    >>> post = example_truth("additive", ("web", "code")).as_posterior()
    >>> alloc = allocate(post, budget=1e21)
    >>> sorted(alloc.to_dict()["plan"]["spec_tokens"])
    ['code', 'web']
    >>> 0.5 < alloc.pretrain_fraction < 1.0  # most compute on the shared trunk
    True
    """
    from bayesplit._jax import configure
    from bayesplit.posterior import check_posterior

    configure()
    check_posterior(posterior)
    posterior.require_ok(force)
    # numpy scalars too (a budget read from a DataFrame is np.float64 or np.int64)
    if not (is_finite_number(budget) and budget > 0):
        raise BayesplitError(f"budget must be a positive number of FLOPs, got {short_repr(budget)}")
    budget = float(budget)
    level = check_level(level)
    check_tolerance(tolerance)
    kind, alpha = parse_risk(risk)
    if params is not None and ladder is not None:
        raise BayesplitError("give --params or --ladder (in Python: params= or ladder=), not both")
    if params is not None and not (is_number(params) and 0 < params < math.inf):
        # "1e8" was a TypeError from a comparison, and True was read as N = 1
        raise BayesplitError(f"params must be a finite number > 0, got {params!r}")
    if ladder is not None:
        ladder = _ladder_sizes(ladder, posterior.runs)  # checked before the work, as params
    domains = names(domains) if domains is not None else posterior.domains
    if not domains or len(set(domains)) != len(domains):
        raise BayesplitError("domains must be a non-empty list without repeats")
    idx = posterior.domain_index(domains)
    w = _normalize_weights(weights, domains)
    unserved = [k for k, wk in zip(domains, w, strict=True) if wk == 0]
    if trunk == "independent" and unserved:
        # each served domain gets a model of its own: a domain of weight 0 is served by
        # none, and its pretraining would be compute spent on a model no one uses
        domains = [k for k in domains if k not in unserved]
        idx = posterior.domain_index(domains)
        w = w[w > 0]
    dropped_d: list[str] = []
    compare = _plan_dicts(compare)  # a Plan object as the dict of its JSON form
    if trunk == "independent" and unserved and compare is not None:
        # a compared plan's D' for a domain no model serves: that model is not trained
        compare, dropped_d = _without_domains(compare, unserved)
    compare = _compare_plans(compare, domains)  # before the work, not after the solve
    if compute is not None and not isinstance(compute, ComputeModel):
        # "'str' object has no attribute 'flops_per_param_token'"
        raise BayesplitError(
            "compute must be a bayesplit.compute.ComputeModel, e.g. "
            f"ComputeModel(flops_per_param_token=6.0), got {_shown(compute)}"
        )
    compute = ComputeModel(
        trunk,
        *(
            ()
            if compute is None
            else (compute.flops_per_param_token, compute.attention_flops_per_token)
        ),
    )
    left_out = set(unserved) if trunk == "independent" else set()  # limits they had: moot
    limits = DataLimits(
        *(
            {k: v for k, v in _domain_map(value, what, *every).items() if k not in left_out}
            for value, what, every in (
                (max_spec_tokens, "max_spec_tokens", ()),
                (repetitions, "repetitions", (domains,)),
            )
        )
    )
    limits.check(domains)
    cap = limits.max_spec_tokens(domains)

    runs = posterior.runs
    check_budget_buys_a_run(budget, runs, len(domains), compute)
    n_min, d_min = float(runs["params"].min()), float(runs["pretrain_tokens"].min())
    if (
        params is not None
        and compute.flops_per_token(params) * d_min * compute.pretrain_multiplier(len(domains))
        > budget
    ):
        raise BayesplitError(
            f"with N fixed at {params:.3g} the budget buys fewer than {d_min:.3g} pretraining tokens"
        )
    # N may range from a tenth of the smallest fitted model to the largest the budget can train on d_min tokens:
    # flops_per_token(N) * d_min * multiplier = budget, solved for N (attention FLOPs per token do not scale with it)
    n_hi = (
        budget / (d_min * compute.pretrain_multiplier(len(domains)))
        - compute.attention_flops_per_token
    ) / compute.flops_per_param_token
    log_bounds = (math.log(n_min / 10), math.log(max(n_hi, n_min)))
    notes = []
    unlimited = [
        k for k, r in limits.repetitions.items() if r != 1 and k not in limits.unique_tokens
    ]
    if unlimited and (isinstance(repetitions, Mapping) or not limits.unique_tokens):
        # r_k multiplies a limit U_k: without one it changes nothing, and said nothing (one
        # number for every domain with limits on some is the usual way to give it)
        notes.append(
            f"repetitions have no effect on {', '.join(unlimited)}: they multiply a data "
            "limit (max_spec_tokens, --max-spec-tokens), and these domains have none"
        )
    if dropped_d:
        notes.append(
            f"compared plans' D' for {', '.join(dropped_d)} (weight 0) left out: independent "
            "trunks train no model for it"
        )
    if trunk == "independent" and unserved:
        notes.append(
            f"independent trunks: no model for {', '.join(unserved)} (weight 0); the "
            "budget trains one model per domain of positive weight"
        )
    forced = posterior.diagnostics.forced_note()
    if forced is not None:  # say so wherever these numbers are shown
        notes.append(forced)
    if ladder is not None:
        sizes = ladder
        # a size the budget cannot train on d_min tokens would be clipped to another N
        feasible = sizes[sizes <= max(n_hi, n_min) * (1 + 1e-9)]
        if not len(feasible):
            raise BayesplitError(
                f"no ladder size fits the budget: the smallest, N={sizes[0]:.3g}, cannot "
                f"pretrain the shortest fitted run's {d_min:.3g} tokens with {budget:.3g} FLOPs"
            )
        if len(feasible) < len(sizes):
            notes.append(
                f"ladder sizes above N={feasible[-1]:.3g} left out: the budget cannot "
                f"pretrain them on {d_min:.3g} tokens"
            )
        ladder = feasible
    # a fixed N (or ladder) below the usual search range widens it: N is never moved
    fixed = [params] if params is not None else list(ladder) if ladder is not None else []
    if fixed:
        log_bounds = (min(log_bounds[0], math.log(min(fixed))), log_bounds[1])
    ref = posterior.spec.reference
    prob = Problem(
        law=posterior.law,
        n_ref=ref.params,
        t_ref=ref.tokens,
        domains=tuple(domains),
        domain_idx=idx,
        weights=w,
        compute=compute,
        budget=float(budget),
        max_spec_tokens=cap,
        log_n_bounds=log_bounds,
        uses_spec_tokens=posterior.law.uses_spec_tokens,
    )
    all_draws = posterior.draws(max_draws=max_draws)
    p = prob.select(all_draws)
    tails = thin_tails_note(level, len(next(iter(all_draws.values()))), of=posterior.n_draws)
    if tails is not None:
        notes.append(tails)
    if not prob.uses_spec_tokens:
        notes.append(
            f"law {posterior.law.name} has no specialization term: D' counts as ordinary tokens, so the split is not informed by data"
        )

    plan_x, sizes = _solve_plan(prob, p, kind, alpha, params, ladder)
    opt_x = _solve_per_draw(prob, p, plan_x, params, sizes)
    return _summarize(
        posterior, prob, p, plan_x, opt_x, risk, level, compare, notes, params, ladder, tolerance
    )


def _search_bound_notes(prob: Problem, n: float, opt_n: np.ndarray, runs) -> list[str]:
    """Where the plan's N, or the per-draw optima's, sit on a bound of the N search: the
    optimum may lie past it, which the expected regret and the near-optimal sizes, measured
    within the bounds, do not count (a plan on the bound read "per-draw optimum: N in
    [1.11e+07, 1.11e+07]", "expected regret 0.00%", 0.8% from the law's optimum)."""
    lo, hi = np.exp(prob.log_n_bounds)
    d_min, n_min = float(runs["pretrain_tokens"].min()), float(runs["params"].min())
    why = {
        hi: "the largest model the budget pretrains on the shortest fitted run's "
        f"{d_min:.3g} tokens (a larger N on fewer tokens leaves the fitted range of D)",
        lo: f"a tenth of the smallest fitted model ({n_min:.3g})",
    }
    notes = []
    for bound, on_it in (
        (hi, lambda x: x >= hi * (1 - 1e-6)),
        (lo, lambda x: x <= lo * (1 + 1e-6)),
    ):
        share = float(np.mean(on_it(np.asarray(opt_n, dtype=float))))
        if on_it(n) or share >= 0.1:
            some = share >= 0.005  # "and 0% of the draws' optima" for one draw in 1,000
            who = (
                "the plan's N" + (f" and {share:.0%} of the draws' optima" if some else "")
                if on_it(n)
                else f"{share:.0%} of the draws' optimal N"
            )
            verb = "sits" if on_it(n) and not some else "sit"
            notes.append(
                f"{who} {verb} on the bound of the N search, N = {bound:.3g}, {why[bound]}: "
                "the optimum may lie past it, and the expected regret and near-optimal sizes "
                "do not count what lies there"
            )
    return notes


def check_tolerance(tolerance: float) -> None:
    """Refuse a near-optimal tolerance that is not a number in [0, 1)."""
    if not (is_number(tolerance) and 0 <= tolerance < 1):
        raise BayesplitError(
            f"tolerance must be a relative slack in [0, 1), e.g. 0.001 for 0.1%, got {tolerance!r}"
        )


def _near_optimal_range(
    risk_at, fractions, own: float, tolerance: float
) -> tuple[tuple[float, float], np.ndarray]:
    """The contiguous range of pretraining shares around the best one whose risk is within
    ``tolerance`` (relative) of the best, and the shares outside it that are within too.

    ``risk_at(fractions)`` gives the risk objective at each share of ``fractions`` (a sorted
    grid); ``own`` (the plan's share) is added to it, so a plan that is the best point of
    the line is inside its own range; the range is the one around the plan's share when
    that is within the tolerance, else around the best. Shares within the tolerance beyond a worse stretch
    (a second dip) are returned apart, for a note: joined to the range they would claim
    the worse stretch between them.
    """
    grid = np.unique(np.r_[np.asarray(fractions, dtype=float), own])
    risk = np.asarray(risk_at(grid), dtype=float)
    best = int(np.nanargmin(risk))
    # 1e-9: a grid point better by rounding alone must not push the plan out of its range
    ok = risk <= risk[best] * (1 + tolerance + 1e-9)
    # the range holds the plan when the plan is within: with a noisy risk (q90) the best
    # grid point sat in another dip, and the notes called a plan inside the tolerance
    # "outside the near-optimal range" and its own dip "also within"
    mine = int(np.searchsorted(grid, own))
    lo = hi = mine if ok[mine] else best
    while lo > 0 and ok[lo - 1]:
        lo -= 1
    while hi < len(grid) - 1 and ok[hi + 1]:
        hi += 1
    ok[lo : hi + 1] = False
    return (float(grid[lo]), float(grid[hi])), grid[ok]


def _between(values: np.ndarray, spec: str) -> str:
    """ "between a and b", or "of a" where the two ends print alike ("between 1.24e+04 and
    1.24e+04")."""
    lo, hi = format(float(np.min(values)), spec), format(float(np.max(values)), spec)
    return f"of {lo}" if lo == hi else f"between {lo} and {hi}"


def _near_optimal_sizes(
    prob: Problem,
    p,
    plan: Plan,
    own: float,
    shares,
    kind: str,
    alpha: float,
    tolerance: float,
    *,
    fixed: bool,
    notes: list[str],
) -> tuple[float, float]:
    """The range of model sizes N around the best one, at the plan's split (its pretraining
    share and the domains' shares of D'), whose risk is within ``tolerance`` of the best:
    the isoFLOP view of how much the choice of N matters. Adds a note where the plan's N
    is outside it, or where other sizes past a worse stretch are within too."""
    lo, hi = prob.log_n_bounds
    grid = np.linspace(lo, hi, max(2, int(np.ceil((hi - lo) * NEAR_OPTIMAL_SIZE_STEPS)) + 1))

    def risk_at(log_sizes):
        n = np.exp(log_sizes)
        d, dp = zip(*(prob.compute.split(prob.budget, n_i, own, shares) for n_i in n), strict=True)
        return _risk_along(prob, p, n, np.array(d), np.array(dp), kind, alpha)

    (a, b), elsewhere = _near_optimal_range(risk_at, grid, math.log(plan.params), tolerance)
    near = (math.exp(a), math.exp(b))
    if not near[0] * (1 - 1e-9) <= plan.params <= near[1] * (1 + 1e-9):
        why = "its N was fixed (params or ladder)" if fixed else "the optimizer stopped short"
        notes.append(
            f"the plan's N ({plan.params:.3g}) is outside the near-optimal model sizes "
            f"[{near[0]:.3g}, {near[1]:.3g}] at its own split: {why}"
        )
    if len(elsewhere):
        notes.append(
            f"model sizes {_between(np.exp(elsewhere), '.3g')} are also within "
            f"{percent(tolerance)} of the best at this split, past a worse stretch"
        )
    return near


def _free_mask(prob: Problem, fix_n: bool) -> np.ndarray:
    free = np.ones(prob.k + 2)
    if fix_n:
        free[0] = 0.0
    if not prob.uses_spec_tokens:
        free[2:] = 0.0  # D' is just more tokens: keep it at ~0 so the plan is all pretraining
    return free


def _thin(p: Mapping[str, np.ndarray], m: int) -> dict:
    s = len(next(iter(p.values())))
    if s <= m:
        return dict(p)
    take = np.linspace(0, s - 1, m).round().astype(int)
    return {k: v[take] for k, v in p.items()}


def _pad_starts(starts: np.ndarray) -> np.ndarray:
    """Pad a batch of starting points to a multiple of SCOUT_BATCH, so one compiled scout serves every call."""
    m = -len(starts) % SCOUT_BATCH
    return np.vstack([starts, np.repeat(starts[-1:], m, axis=0)]) if m else starts


def _solve_plan(prob: Problem, p, kind, alpha, params, ladder):
    """The plan minimizing the risk objective.

    A multi-start scout over N on a thinned set of draws finds the basin; the best
    start is then polished on all draws. With a ladder every size is tried.
    """
    import jax.numpy as jnp

    fix_n = params is not None or ladder is not None
    free = jnp.asarray(_free_mask(prob, fix_n))
    if ladder is not None:
        sizes = _ladder_sizes(ladder)
        starts = _initial_x(prob, np.log(sizes))
    elif params is not None:
        sizes = None
        starts = np.vstack([_initial_x(prob, math.log(params), s) for s in (0.3, 0.6, 0.9)])
    else:
        sizes = None
        lo, hi = prob.log_n_bounds
        starts = _initial_x(prob, np.linspace(lo + 0.5, hi - 0.5, SCOUT_BATCH))
    scout = _solver(prob, kind, alpha, per_draw=False, steps=SCOUT_STEPS)
    thin = _thin(p, SCOUT_DRAWS)
    _refuse_nan_law(prob, thin, starts)
    xs, vals = scout(
        jnp.asarray(_pad_starts(starts)), free, _as_param_tree(prob, thin, per_draw=False)
    )
    vals = np.asarray(vals)[: len(starts)]
    _refuse_nan_law(prob, thin, np.asarray(xs)[: len(starts)])
    best = np.asarray(xs[int(np.nanargmin(vals))])
    polish = _solver(prob, kind, alpha, per_draw=False, steps=POLISH_STEPS)
    xs, _ = polish(jnp.asarray(best[None, :]), free, _as_param_tree(prob, p, per_draw=False))
    return np.asarray(xs[0]), sizes


def _refuse_nan_law(prob: Problem, p, xs: np.ndarray) -> None:
    """Refuse a user law that is NaN at a plan the scout starts from or ends at.

    The optimizer steps around NaN (``nanargmin``), so without this a law broken over
    part of the plan space gives a plan from the rest of it, or numpy's "All-NaN
    slice". An infinite loss at an extreme plan is allowed: built-in laws have it too.
    """
    if prob.law.builtin:
        return
    n, d, dp, _ = _plan_arrays(prob, np.asarray(xs, dtype=float), np)
    for i in range(len(n)):
        with np.errstate(divide="ignore"):
            log_l = np.log(_evaluate(prob, p, n[i], d[i], dp[i]))  # (S, K)
        point = {"N": n[i], "D": d[i], "D'": dp[i], "domain": np.array(prob.domains)}
        prob.law.check_finite(log_l, point, allow_inf=True)


def _solve_per_draw(prob: Problem, p, plan_x, params, sizes):
    """The optimum of every draw, started from the plan (and from every ladder size)."""
    import jax.numpy as jnp

    solver = _solver(prob, "mean", 0.0, per_draw=True)
    ptree = _as_param_tree(prob, p, per_draw=True)
    s = len(next(iter(p.values())))
    if sizes is None:
        x0 = np.tile(plan_x, (s, 1))
        xs, _ = solver(jnp.asarray(x0), jnp.asarray(_free_mask(prob, params is not None)), ptree)
        return np.asarray(xs)
    best_x, best_v = None, None
    for log_n in np.log(sizes):
        x0 = np.tile(plan_x, (s, 1))
        x0[:, 0] = log_n
        xs, vals = solver(jnp.asarray(x0), jnp.asarray(_free_mask(prob, True)), ptree)
        xs, vals = np.array(xs), np.array(vals)  # writable copies
        if best_x is None:
            best_x, best_v = xs, vals
        else:
            better = vals < best_v
            best_x[better], best_v[better] = xs[better], vals[better]
    return best_x


def _evaluate(prob: Problem, p, n, d, dp) -> np.ndarray:
    """Per-draw, per-domain loss of one plan (numpy): (S, K)."""
    ops = get_ops("numpy")
    dp_eff = np.minimum(
        np.asarray(dp, dtype=float), prob.max_spec_tokens
    )  # tokens beyond the limit buy nothing
    pp = {k: (v if v.ndim == 2 else v[:, None]) for k, v in p.items()}
    x = Inputs(
        n=np.asarray(n / prob.n_ref)[..., None],
        d=np.asarray(d / prob.t_ref)[..., None],
        dp=dp_eff / prob.t_ref,
    )
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return np.exp(prob.law.evaluate(ops, pp, x) + 0.0 * x.dp)  # (S, K), as _losses


def _risk_along(prob: Problem, p, n, d, dp, kind: str, alpha: float) -> np.ndarray:
    """The risk of each plan of a line of plans: N and D of shape (G,), D' (G, K).

    A built-in law broadcasts over a leading plan axis, so its plans are evaluated a chunk
    at a time; a user's law was written for (draws × domains) inputs and is called one plan
    at a time.
    """
    n, d, dp = (np.asarray(a, dtype=float) for a in (n, d, dp))
    if not prob.law.builtin:
        return np.array(
            [
                _risk(_evaluate(prob, p, n[i], d[i], dp[i]) @ prob.weights, kind, alpha, np)
                for i in range(len(n))
            ]
        )
    out = [
        _risk(
            _evaluate(prob, p, n[c, None], d[c, None], dp[c, None, :]) @ prob.weights,
            kind,
            alpha,
            np,
        )
        for c in (slice(i, i + LINE_CHUNK) for i in range(0, len(n), LINE_CHUNK))
    ]
    return np.concatenate(out)


def _alternative_plans(
    prob: Problem, p, plan: Plan, kind, alpha, params, ladder
) -> dict[str, Plan]:
    """All pretraining, fixed 90/10 and 50/50 splits (N re-optimized), Chinchilla-then-specialize.

    A law without D' has no split to compare: see :func:`_size_alternatives`.
    """
    import jax.numpy as jnp

    if not prob.uses_spec_tokens:
        return _size_alternatives(prob, plan, params, ladder)
    out = {}
    k = prob.k
    mult = prob.compute.pretrain_multiplier(k)
    solver = _solver(prob, kind, alpha, per_draw=False, steps=SCOUT_STEPS)
    ptree = _as_param_tree(prob, _thin(p, SCOUT_DRAWS), per_draw=False)
    splits = [("all pretraining", 1.0)]
    if prob.uses_spec_tokens:
        splits += [("90/10 split", 0.9), ("50/50 split", 0.5)]
    fixed_n = params is not None or ladder is not None
    # N is the only free variable of a fixed split: a few starts around the plan's N suffice.
    cand_log_n = (
        [math.log(plan.params)]
        if fixed_n
        else [math.log(plan.params) + o for o in (-1.5, 0.0, 1.5)]
    )
    starts, owner = [], []
    for name, frac in splits:
        share_rest = (1 - frac) * prob.weights if frac < 1 else np.full(k, 1e-12)
        # a domain of weight 0 gets a share of 1e-12, not log(0)
        logits = np.log(np.maximum(np.r_[frac, share_rest], 1e-12))
        for log_n in cand_log_n:
            starts.append(np.r_[np.clip(log_n, *prob.log_n_bounds), logits])
            owner.append(name)
    free = np.zeros(k + 2)
    free[0] = 0.0 if fixed_n else 1.0
    xs, vals = solver(jnp.asarray(_pad_starts(np.array(starts))), jnp.asarray(free), ptree)
    xs, vals = np.asarray(xs)[: len(starts)], np.asarray(vals)[: len(starts)]
    # N of a fixed split is a 1-D problem: the scout draws locate it well enough to compare
    for name, frac in splits:
        mine = [i for i, o in enumerate(owner) if o == name]
        x = xs[mine[int(np.nanargmin(vals[mine]))]]
        n, d, _, dp = (np.asarray(a) for a in _plan_arrays(prob, x, np))
        if frac == 1.0:  # the softmax's 1e-12 shares are a fraction of a token: none at all
            dp = np.zeros_like(dp)
        out[name] = Plan(float(n), float(d), dict(zip(prob.domains, map(float, dp), strict=True)))
    if prob.uses_spec_tokens:
        n = plan.params
        tokens = prob.budget / prob.compute.flops_per_token(n)
        d = min(CHINCHILLA_TOKENS_PER_PARAM * n, tokens / mult)
        rest = max(tokens - d * mult, 0.0)  # an ulp below 0 is none: a Plan's D' is >= 0
        out["chinchilla then specialize"] = Plan(
            n, d, dict(zip(prob.domains, map(float, rest * prob.weights), strict=True))
        )
    return out


def _size_alternatives(prob: Problem, plan: Plan, params, ladder) -> dict[str, Plan]:
    """Other model sizes for a law without D', each spending the budget on pretraining.

    Such a law's only choice is N (the budget fixes D), and "all pretraining" would be the
    plan itself. Compared instead: Chinchilla's 20 tokens per parameter, half and twice
    the plan's N; on a ladder, the sizes next to the plan's and the one nearest the rule.
    A fixed N leaves nothing to compare.
    """
    if params is not None:
        return {}
    c = prob.compute
    mult = c.pretrain_multiplier(prob.k)
    # N whose D = 20·N spends the budget: (a·N + b)·mult·20·N = budget, a quadratic in N
    qa = c.flops_per_param_token * mult * CHINCHILLA_TOKENS_PER_PARAM
    qb = c.attention_flops_per_token * mult * CHINCHILLA_TOKENS_PER_PARAM
    n_rule = (math.sqrt(qb**2 + 4 * qa * prob.budget) - qb) / (2 * qa)
    if ladder is None:
        sizes = {
            "20 tokens per parameter": n_rule,
            "half the size": plan.params / 2,
            "twice the size": plan.params * 2,
        }
    else:
        ladder = _ladder_sizes(ladder)
        nearest = float(ladder[np.argmin(np.abs(np.log(ladder) - math.log(n_rule)))])
        smaller = ladder[ladder < plan.params * (1 - 1e-9)]
        larger = ladder[ladder > plan.params * (1 + 1e-9)]
        sizes = {"ladder size nearest 20 tokens per parameter": nearest}
        if len(smaller):
            sizes["next smaller ladder size"] = float(smaller[-1])
        if len(larger):
            sizes["next larger ladder size"] = float(larger[0])
        # the rule's size may be the plan's or a neighbour's: one row per distinct plan
        seen = [plan.params]
        for name, n in list(sizes.items()):
            if any(math.isclose(n, m, rel_tol=1e-9) for m in seen):
                del sizes[name]
            else:
                seen.append(n)
    none = dict.fromkeys(prob.domains, 0.0)
    return {
        name: Plan(float(n), float(prob.budget / c.flops_per_token(n) / mult), dict(none))
        for name, n in sizes.items()
    }


#: A plan coordinate more than this factor beyond the fitted runs gets a note.
EXTRAPOLATION_FACTOR = 2.0


def _times(ratio: float) -> str:
    """A ratio for a note or the report: two digits below 10 (``:.0f`` read 0.77 as "1"),
    whole numbers up to 10,000, then two digits again (1e300 FLOPs made hundred-digit
    numbers)."""
    return f"{ratio:.0f}" if 10 <= ratio < 1e4 else f"{ratio:.2g}"


def extrapolation_notes(
    plan: Plan, runs: pd.DataFrame, *, uses_spec_tokens: bool = True
) -> list[str]:
    """Where a plan lies well outside the fitted runs: N, D, D' or D'/D beyond 2× what was
    measured, or for a law that reads D + D' as one run's tokens (``uses_spec_tokens``
    False), D + D' beyond 2× the longest fitted run.

    The plan's intervals are conditional on the law's form; outside the measured region that
    form is an assumption the data did not check, and the reader should be told.
    """
    f = EXTRAPOLATION_FACTOR
    notes = []
    n_min, n_max = float(runs["params"].min()), float(runs["params"].max())
    if plan.params > f * n_max:
        notes.append(
            f"extrapolation: N = {plan.params:.3g} is {_times(plan.params / n_max)}x the largest fitted model ({n_max:.3g})"
        )
    elif plan.params < n_min / f:
        notes.append(
            f"extrapolation: N = {plan.params:.3g} is below the smallest fitted model ({n_min:.3g})"
        )
    d_min, d_max = float(runs["pretrain_tokens"].min()), float(runs["pretrain_tokens"].max())
    d_beyond = plan.pretrain_tokens > f * d_max
    if d_beyond:
        notes.append(
            f"extrapolation: D = {plan.pretrain_tokens:.3g} is {_times(plan.pretrain_tokens / d_max)}x the longest fitted pretraining ({d_max:.3g})"
        )
    elif plan.pretrain_tokens < d_min / f:
        notes.append(
            f"extrapolation: D = {plan.pretrain_tokens:.3g} is below the shortest fitted pretraining ({d_min:.3g})"
        )
    spec = runs[runs["spec_tokens"] > 0]
    if uses_spec_tokens and len(spec):
        # a D' term reads D' itself (additive's 1 + D'/D'_0), not only D'/D: D' 27x the
        # longest measured one, at a D'/D within range, had no note. Each domain against
        # its own specialists (the longest of any where it has none).
        own = spec[spec["train_domain"].astype(object) == spec["eval_domain"].astype(object)]
        longest_of = own.groupby("train_domain")["spec_tokens"].max().to_dict()
        dp_any = float(spec["spec_tokens"].max())
        for k, v in plan.spec_tokens.items():
            dp_max = float(longest_of.get(k, dp_any))
            if v > f * dp_max:
                notes.append(
                    f"extrapolation: D' = {v:.3g} for {k} is {_times(v / dp_max)}x its longest "
                    f"fitted specialization ({dp_max:.3g})"
                )
        measured = float((spec["spec_tokens"] / spec["pretrain_tokens"]).max())
        beyond = [k for k, v in plan.spec_tokens.items() if v / plan.pretrain_tokens > f * measured]
        if beyond:
            notes.append(
                f"extrapolation: D'/D for {', '.join(beyond)} exceeds {f:g}x the largest measured "
                f"D'/D ({measured:.2g}); the law's form decides there, not the data"
            )
    elif uses_spec_tokens:
        # no specialized run at all: any D' > 0 is the law's form alone (no note was given)
        given = sorted(k for k, v in plan.spec_tokens.items() if v > 0)
        if given:
            notes.append(
                f"extrapolation: D' > 0 for {', '.join(given)}, but no fitted run was "
                "specialized (spec_tokens > 0); the law's form decides D' there, not the data"
            )
    elif max(plan.spec_tokens.values(), default=0.0) > 0:
        # such a law sees D + D' as one run's tokens: D' = 1e10 on D = 2e6 had no note
        t_max = float((runs["pretrain_tokens"] + runs["spec_tokens"]).max())
        longest = max(plan.spec_tokens.values())
        total = plan.pretrain_tokens + longest
        # past the D note, only when D' is what carries it there (not D twice over)
        if total > f * t_max and (not d_beyond or longest >= plan.pretrain_tokens):
            notes.append(
                f"extrapolation: D + D' = {total:.3g} is {_times(total / t_max)}x the longest "
                f"fitted training ({t_max:.3g}); this law reads them as one run's tokens"
            )
    return notes


#: A D'_k under this share of D is a residue of the solver's softmax shares ...
RESIDUE_SHARE = 1e-4
#: ... and is dropped if the plan's score rises by less than this share of itself.
RESIDUE_SLACK = 1e-7


def _drop_token_residues(prob: Problem, d, dp, score):
    """(D, D') with every D'_k the plan is no worse without set to exactly 0.

    The solver works on softmax shares in log space, so a domain whose best D' is 0 ends
    at a residue (hundreds of tokens next to millions) that it cannot shrink further.
    A reader should see 0. Each D'_k, smallest first, is dropped (its compute going to
    pretraining, so the plan still spends the budget) when ``score`` does not go up, or,
    for a residue (under :data:`RESIDUE_SHARE` of D), goes up by under
    :data:`RESIDUE_SLACK` of itself: with independent trunks its tokens, spread over K
    models, are not neutral, and a law with no D' term kept 2e5 tokens of "specialization"
    next to 4e10 of pretraining for a gain in the ninth digit.
    Works row by row: ``d`` (M,), ``dp`` (M, K), ``score(d, dp)`` -> (M,), one row per
    plan (the recommended plan: M = 1; the per-draw optima: one per draw).
    """
    d = np.array(d, dtype=float)
    dp = np.array(dp, dtype=float)
    rows = np.arange(len(dp))
    mult = prob.compute.pretrain_multiplier(prob.k)
    best = score(d, dp)
    for k in np.argsort(dp, axis=1).T:  # each row's smallest D' first
        residue = dp[rows, k]
        trial_d, trial_dp = d + residue / mult, dp.copy()
        trial_dp[rows, k] = 0.0
        trial = score(trial_d, trial_dp)
        tiny = (residue <= RESIDUE_SHARE * d) & (trial <= best + RESIDUE_SLACK * np.abs(best))
        keep = (residue > 0) & ((trial <= best) | tiny)
        d[keep], dp[keep], best[keep] = trial_d[keep], trial_dp[keep], trial[keep]
    return d, dp


def _respect_data_limits(prob: Problem, d, dp, score):
    """(D, D') with every D'_k at most its data limit r_k·U_k.

    The solver scores only the tokens within a limit (those beyond it buy nothing), so
    its D'_k can end above the limit with a flat gradient there: a plan asking for
    data the user does not have. The excess goes to pretraining, so the plan still
    spends the budget, unless ``score`` says that is worse (a law that does not fall
    with D); then it is left unspent. Rows like :func:`_drop_token_residues`.
    """
    d = np.array(d, dtype=float)
    dp = np.array(dp, dtype=float)
    capped = np.minimum(dp, prob.max_spec_tokens)
    excess = (dp - capped).sum(axis=1)
    if not (excess > 0).any():
        return d, dp
    before = score(d, capped)
    moved = d + excess / prob.compute.pretrain_multiplier(prob.k)
    after = score(moved, capped)
    return np.where(after <= before, moved, d), capped


def _reach_data_limits(prob: Problem, d, dp, score, rtol: float = 5e-3):
    """(D, D') with a D'_k the solver left just short of its data limit (within ``rtol``)
    put at the limit, the tokens taken from pretraining, where ``score`` says that is no
    worse. Rows like :func:`_respect_data_limits`.

    Towards a limit that binds the objective flattens and the solver stops a few tenths
    of a percent short (0.9991 of r·U): the plan then said nothing of the limit binding,
    while its near-optimal range said the limit was what bounded it.
    """
    d = np.array(d, dtype=float)
    dp = np.array(dp, dtype=float)
    cap = np.broadcast_to(prob.max_spec_tokens, dp.shape)
    # one domain at a time: a limit that binds is reached even where moving another
    # domain's D' (its optimum just inside its limit) to its limit would score worse
    for k in range(dp.shape[1]):
        near = (
            np.isfinite(cap[:, k]) & (dp[:, k] < cap[:, k]) & (dp[:, k] >= cap[:, k] * (1 - rtol))
        )
        if not near.any():
            continue
        up = dp.copy()
        up[:, k] = np.where(near, cap[:, k], dp[:, k])
        moved = d - (up[:, k] - dp[:, k]) / prob.compute.pretrain_multiplier(prob.k)
        ok = near & (moved > 0) & (score(np.maximum(moved, 1.0), up) <= score(d, dp))
        d, dp = np.where(ok, moved, d), np.where(ok[:, None], up, dp)
    return d, dp


def _exact_size(n: np.ndarray, params, ladder) -> np.ndarray:
    """A fixed N, or the ladder size nearest each N: N comes back from the optimizer's log
    space an ulp off (20640.000000000007), and a script matching it to a size failed."""
    if params is not None:
        return np.full(np.shape(n), float(params))
    if ladder is not None:
        sizes = _ladder_sizes(ladder)
        log_n = np.log(np.asarray(n, dtype=float))
        return sizes[np.abs(log_n[..., None] - np.log(sizes)).argmin(axis=-1)]
    return n


def _summarize(
    posterior, prob, p, plan_x, opt_x, risk, level, compare, notes, params, ladder, tolerance
) -> Allocation:
    n, d, _, dp = (np.asarray(a) for a in _plan_arrays(prob, plan_x, np))
    n = _exact_size(n, params, ladder)
    kind_, alpha = parse_risk(risk)

    def plan_risk(d_, dp_):
        values = _evaluate(prob, p, n, d_[0], dp_[0]) @ prob.weights
        return np.array([_risk(values, kind_, alpha, np)])

    (d,), (dp,) = _respect_data_limits(prob, d[None], dp[None], plan_risk)
    (d,), (dp,) = _reach_data_limits(prob, d[None], dp[None], plan_risk)
    (d,), (dp,) = _drop_token_residues(prob, d[None], dp[None], plan_risk)
    plan = Plan(float(n), float(d), dict(zip(prob.domains, map(float, dp), strict=True)))
    own = float(prob.compute.pretrain_fraction(d, dp))
    shares = split_shares(dp, prob.weights)

    def past_limits(dp_line: np.ndarray) -> np.ndarray:  # (F, K): D' past a data limit
        return dp_line > prob.max_spec_tokens * (1 + 1e-9)

    def risk_at(fractions):
        d_line, dp_line = prob.compute.split(prob.budget, n, fractions, shares)
        risk = _risk_along(prob, p, np.full(len(d_line), n), d_line, dp_line, kind_, alpha)
        # a share whose D' passes a data limit is no plan: scored with the excess unspent
        # it sat within the tolerance, and the range named shares the data cannot buy
        return np.where(past_limits(dp_line).any(axis=-1), np.inf, risk)

    near, elsewhere = _near_optimal_range(risk_at, NEAR_OPTIMAL_GRID, own, tolerance)
    grid = NEAR_OPTIMAL_GRID
    below = grid[grid < near[0]]
    # the share just below the range, where there is one: past a limit there?
    past = past_limits(prob.compute.split(prob.budget, n, below[-1:], shares)[1]).any(axis=0)
    if prob.uses_spec_tokens and past.any():
        # the range of a plan at a limit read "[90%, 90%]" alone: as if the split were
        # pinned, though lower shares whose D' went to other domains were within too
        held = [k for k, x in zip(prob.domains, past, strict=True) if x]
        notes.append(
            f"the near-optimal pretraining shares stop at {near[0]:.1%}: a lower share, its "
            f"D' divided as the plan divides it, gives {', '.join(held)} more D' than the "
            "data limits hold; lower shares that give it to other domains were not scored "
            "(the per-draw optimum's range says how far the split may move)"
        )
    if not near[0] <= own <= near[1]:
        notes.append(
            f"the plan's pretraining share ({own:.1%}) is outside the near-optimal range "
            f"[{near[0]:.1%}, {near[1]:.1%}] at its own N: the optimizer stopped short"
        )
    if len(elsewhere):
        notes.append(
            f"pretraining shares {_between(elsewhere, '.1%')} are also within "
            f"{percent(tolerance)} of the best at this N, past a worse stretch: "
            "the split has two near-optimal regions"
        )
    near_params = _near_optimal_sizes(
        prob,
        p,
        plan,
        own,
        shares,
        kind_,
        alpha,
        tolerance,
        fixed=params is not None or ladder is not None,
        notes=notes,
    )
    notes.extend(extrapolation_notes(plan, posterior.runs, uses_spec_tokens=prob.uses_spec_tokens))
    if prob.uses_spec_tokens:
        over = [
            k
            for k, v, c in zip(prob.domains, dp, prob.max_spec_tokens, strict=True)
            if v >= c * 0.9999
        ]
        if over:
            notes.append(f"data limit binds for {', '.join(over)}: D' is at r·U")
        spent = float(prob.compute.flops(n, d, dp))
        if spent < prob.budget * 0.999:
            notes.append(
                f"the plan spends {spent:.3g} of the {prob.budget:.3g} FLOPs: beyond the data "
                "limits more pretraining would not lower the loss"
            )
    loss = _evaluate(prob, p, n, d, dp)  # (S, K)
    objective = loss @ prob.weights
    on, od, _, odp = (np.asarray(a) for a in _plan_arrays(prob, opt_x, np))
    on = _exact_size(on, params, ladder)

    def per_draw_objective(d_, dp_):  # draw s's optimum, scored under draw s
        return _evaluate(prob, p, on, d_, dp_) @ prob.weights

    if params is None and ladder is None:
        notes.extend(_search_bound_notes(prob, n, on, posterior.runs))
    od, odp = _respect_data_limits(prob, od, odp, per_draw_objective)
    od, odp = _drop_token_residues(prob, od, odp, per_draw_objective)
    opt_objective = per_draw_objective(od, odp)
    opt_objective = np.minimum(opt_objective, objective)  # the optimum is never worse than the plan
    s = len(objective)
    draws_ds = xr.Dataset(
        {
            "loss": (("draw", "domain"), loss),
            "objective": ("draw", objective),
            "opt_params": ("draw", on),
            "opt_pretrain_tokens": ("draw", od),
            "opt_spec_tokens": (("draw", "domain"), odp),
            "opt_pretrain_fraction": ("draw", prob.compute.pretrain_fraction(od, odp)),
            "opt_objective": ("draw", opt_objective),
            "regret": ("draw", objective - opt_objective),
        },
        coords={"draw": np.arange(s), "domain": list(prob.domains)},
        attrs={"units": "nats per token"},
    )
    alts = _alternative_plans(prob, p, plan, kind_, alpha, params, ladder)
    capped = []
    for name, alt in alts.items():
        an, ad, adp = alt.arrays(prob.domains)
        if not (adp > prob.max_spec_tokens).any():
            continue

        def alt_risk(d_, dp_, an=an):
            return np.array(
                [_risk(_evaluate(prob, p, an, d_[0], dp_[0]) @ prob.weights, kind_, alpha, np)]
            )

        (ad,), (adp,) = _respect_data_limits(prob, np.array([ad]), adp[None], alt_risk)
        alts[name] = Plan(
            float(an), float(ad), dict(zip(prob.domains, map(float, adp), strict=True))
        )
        capped.append(name)
    if capped:
        notes.append(
            f"the data limits cap D' of {', '.join(capped)}: as in the plan, the tokens "
            "beyond a limit go to pretraining"
        )
    for i, extra in enumerate([compare] if isinstance(compare, Mapping) else list(compare or [])):
        alt = Plan.from_dict(extra, prob.domains)
        name = str(extra.get("name", f"user plan {i + 1}"))
        alts[name] = alt
        given = extra.get("spec_tokens") or {}
        unsaid = [k for k in prob.domains if k not in given]
        if given and unsaid:  # read as D' = 0 there, which the table did not say
            notes.append(f"{name} gives no D' for {', '.join(unsaid)}: compared with D' = 0 there")
        cost = float(prob.compute.flops(*alt.arrays(prob.domains)))
        if cost > prob.budget * 1.01:
            notes.append(
                f"{name} costs {cost:.3g} FLOPs, {cost / prob.budget:.3g}x the budget: its "
                "loss is not one the budget can buy, so its regret and P(plan better) "
                "compare unequal spends"
            )
        elif cost < prob.budget * 0.99:  # said of a plan over the budget only
            notes.append(
                f"{name} spends {cost:.3g} FLOPs, {cost / prob.budget:.3g}x the budget: its "
                "regret and P(plan better) compare unequal spends"
            )
    names = list(alts)
    alt_obj, alt_n, alt_d, alt_dp, flops = [], [], [], [], []
    for name in names:
        a = alts[name]
        an, ad, adp = a.arrays(prob.domains)
        alt_obj.append(_evaluate(prob, p, an, ad, adp) @ prob.weights)
        alt_n.append(an)
        alt_d.append(ad)
        alt_dp.append(adp)
        flops.append(float(prob.compute.flops(an, ad, adp)))
    alt_obj = np.array(alt_obj).reshape(len(names), s)
    regret = alt_obj - opt_objective[None, :]
    # a tie is half a win: the plan compared with itself (`--compare` of its own JSON) read
    # "P(plan better) 0%"; 1e-9 absorbs the rounding of a plan read back from JSON
    tie = np.isclose(alt_obj, objective[None, :], rtol=1e-9, atol=0.0)
    p_better = ((objective[None, :] < alt_obj) & ~tie).mean(axis=1) + 0.5 * tie.mean(axis=1)
    alt_ds = xr.Dataset(
        {
            "objective": (("alternative", "draw"), alt_obj),
            "params": ("alternative", np.array(alt_n, dtype=float)),
            "pretrain_tokens": ("alternative", np.array(alt_d, dtype=float)),
            "spec_tokens": (
                ("alternative", "domain"),
                np.array(alt_dp, dtype=float).reshape(len(names), prob.k),
            ),
            "flops": ("alternative", np.array(flops)),
            "p_better": ("alternative", p_better),
            "expected_regret": ("alternative", regret.mean(axis=1)),
            "expected_regret_rel": ("alternative", (regret / opt_objective[None, :]).mean(axis=1)),
        },
        coords={"alternative": names, "draw": np.arange(s), "domain": list(prob.domains)},
    )
    return Allocation(
        plan=plan,
        budget=prob.budget,
        trunk=prob.compute.trunk,
        risk=risk,
        domains=list(prob.domains),
        weights=prob.weights,
        level=level,
        draws=draws_ds,
        alternatives=alt_ds,
        compute=prob.compute,
        law_name=posterior.law.name,
        uses_spec_tokens=prob.uses_spec_tokens,
        notes=notes,
        tolerance=float(tolerance),
        near_optimal=near,
        near_optimal_params=near_params,
        _posterior=posterior,
        _max_spec_tokens=np.asarray(prob.max_spec_tokens, dtype=float),
    )


def frontier(posterior, budgets: Sequence[float], **kwargs) -> pd.DataFrame:
    """The plan and its objective band at every budget (one :func:`allocate` per budget).

    ``budgets`` are FLOPs: a number, a list or array of numbers, or the command line's
    text (``"1e18:1e22:9"`` for 9 log-spaced budgets, ``"1e19,1e20"``). Text entries in a
    list (``["1e20"]``), bools and non-finite or non-positive values are refused. The
    budgets are planned in ascending order, and a budget given more than once is planned
    once (one row): the table is a curve over budgets.

    Returns a DataFrame with columns budget, params, pretrain_tokens, pretrain_fraction,
    spec_tokens (dict), objective_median, objective_lo, objective_hi, opt_params_lo/hi,
    near_optimal_lo/hi (the pretraining shares within the tolerance of the best),
    near_optimal_params_lo/hi (the model sizes within it, at the plan's split) and notes
    (the allocation's, e.g. how far the plan extrapolates), one row per budget in
    ascending order.
    """
    from bayesplit.posterior import check_posterior

    check_posterior(posterior)  # before any budget is planned
    if isinstance(budgets, str):  # the CLI's "1e18:1e22:9" or "1e19,1e20"
        budgets = parse_budgets(budgets)
    # each a number: "1e20" in a list was read as one, True as 1 FLOP, None a TypeError
    budgets = counts(budgets, "budgets")
    budgets = np.unique(budgets)  # a curve: ascending, each budget once
    if len(budgets) > MAX_BUDGETS:  # as the text form: each budget is one allocate
        raise BayesplitError(
            f"budgets: at most {MAX_BUDGETS} (one allocate each), got {len(budgets)}"
        )
    if "budget" in kwargs:  # was allocate's "got multiple values for keyword argument"
        raise BayesplitError("frontier plans each of budgets: give budgets, not budget")
    check_kwargs(kwargs, allocate, "frontier", ("posterior",), "frontier")
    rows = []
    for b in budgets:
        a = allocate(posterior, budget=float(b), **kwargs)
        d = a.to_dict()
        rows.append(
            {
                "budget": float(b),
                "params": a.plan.params,
                "pretrain_tokens": a.plan.pretrain_tokens,
                "pretrain_fraction": a.pretrain_fraction,
                "spec_tokens": dict(a.plan.spec_tokens),
                "objective_median": d["objective"]["median"],
                "objective_lo": d["objective"]["credible"][0],
                "objective_hi": d["objective"]["credible"][1],
                "opt_params_lo": d["optimum_distribution"]["params"][0],
                "opt_params_hi": d["optimum_distribution"]["params"][2],
                "near_optimal_lo": a.near_optimal[0],
                "near_optimal_hi": a.near_optimal[1],
                "near_optimal_params_lo": a.near_optimal_params[0],
                "near_optimal_params_hi": a.near_optimal_params[1],
                "notes": list(d["notes"]),
            }
        )
    table = pd.DataFrame(rows)
    table.attrs["level"] = a.level  # the bands' level, which plot_frontier labels
    table.attrs["law"] = posterior.law.name  # what plot_fans checks it is drawn with
    table.attrs["domains"] = list(a.plan.spec_tokens)  # those served (one model each)
    table.attrs["weights"] = d["weights"]  # the objective's, normalized, as allocate says
    return table


def default_budgets(
    posterior,
    count: int = 9,
    reach: float = 1e4,
    *,
    trunk: str = "shared",
    weights: Mapping[str, float] | None = None,
) -> np.ndarray:
    """``count`` log-spaced budgets from the largest fitted run's compute to ``reach`` times it.

    Where the data say something, and how far beyond it the law is being asked to go.
    Independent trunks train one model per domain: the budgets start no lower than the
    smallest plan they allow (:func:`smallest_plan_budget`).
    """
    from bayesplit.runs import compute_flops

    largest = float(np.max(compute_flops(posterior.runs)))
    largest = max(largest, smallest_plan_budget(posterior, trunk=trunk, weights=weights))
    return np.geomspace(largest, largest * reach, count)


#: A frontier is a figure and a table, not a sweep: more budgets than this is a typo.
MAX_BUDGETS = 100


def parse_budgets(text: str) -> np.ndarray:
    """``"1e18:1e22:9"`` → 9 log-spaced budgets; ``"1e19,1e20"`` (or ``"10T,1e14"``) → those."""
    usage = (
        "--budgets (in Python: budgets=) wants LO:HI:COUNT or a comma list of positive FLOPs, "
        f"got {text!r}"
    )
    try:
        if ":" in text:
            lo, hi, num = text.split(":")
            count = int(num)
            if not 1 <= count <= MAX_BUDGETS:
                raise BayesplitError(
                    f"--budgets (in Python: budgets=) COUNT must be 1-{MAX_BUDGETS}, got {num!r}"
                )
            ends = [parse_count(lo), parse_count(hi)]
            if not all(0 < v < math.inf for v in ends):  # before geomspace warns about them
                raise BayesplitError(usage)
            if count == 1 and ends[0] != ends[1]:  # geomspace would keep LO and drop HI
                raise BayesplitError(
                    f"--budgets (in Python: budgets=) {text!r}: COUNT 1 cannot run from LO to "
                    "HI; give COUNT >= 2, or one budget"
                )
            values = np.geomspace(*ends, count)
        else:
            entries = text.split(",")
            if not all(v.strip() for v in entries):  # "1e20,,1e21": a budget left out
                raise BayesplitError(usage + " (an empty entry)")
            values = np.array([parse_count(v) for v in entries])
    except ValueError as exc:
        if isinstance(exc, BayesplitError) and "COUNT" in str(exc):
            raise
        raise BayesplitError(usage) from None
    if not len(values) or not np.all(np.isfinite(values) & (values > 0)):
        raise BayesplitError(usage)
    if len(values) > MAX_BUDGETS:
        raise BayesplitError(usage + f" ({len(values)} budgets; at most {MAX_BUDGETS})")
    return values
