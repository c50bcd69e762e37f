"""The convergence and identifiability gate every posterior carries.

A posterior passes when R-hat, bulk and tail ESS and divergences meet their
thresholds *and* the data can identify the law (enough distinct design points,
and every law parameter learned something beyond its prior). Decisions built on
a posterior that fails are refused unless forced; the refusal names the check.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import xarray as xr

from bayesplit import _arviz
from bayesplit._parse import check_flag, is_number
from bayesplit.errors import BayesplitError, DiagnosticsError

#: NUTS's limit on trajectory doublings (NumPyro's and PyMC's default, set explicitly so
#: the share of transitions that reach it can be reported): at most 2**10 - 1 leapfrog steps.
MAX_TREE_DEPTH = 10


@dataclass(frozen=True)
class Thresholds:
    """What a posterior must meet to be used for decisions (``fit(thresholds=...)``).

    Parameters
    ----------
    r_hat_max
        Largest rank-normalized split R-hat of any gated variable.
    ess_bulk_min, ess_tail_min
        Smallest bulk and tail effective sample size of any gated variable.
    divergences_max
        Most divergent transitions allowed.
    prior_ratio_max
        Posterior sd / prior sd of an unconstrained law parameter above this: "not
        identified" (the data barely moved it from its prior).
    bfmi_min
        Energy BFMI below this is a warning, not a failure.
    max_depth_share_max
        Share of transitions at NUTS's maximum tree depth above this is a warning (PyMC
        warns at 5%).
    """

    r_hat_max: float = 1.01
    ess_bulk_min: float = 400.0
    ess_tail_min: float = 400.0
    divergences_max: int = 0
    #: posterior sd / prior sd of an unconstrained law parameter above this: "not identified"
    prior_ratio_max: float = 0.9
    bfmi_min: float = 0.3  #: below: a warning, not a failure
    #: share of transitions at the maximum tree depth above this: a warning (PyMC warns at 5%)
    max_depth_share_max: float = 0.05

    def __post_init__(self) -> None:
        # checked here: a text or negative threshold was a TypeError after the sampling, or
        # (one chain, no R-hat) a gate that meant nothing
        lower = {"r_hat_max": 1.0, "prior_ratio_max": 0.0}
        for name in (
            "r_hat_max",
            "ess_bulk_min",
            "ess_tail_min",
            "divergences_max",
            "prior_ratio_max",
            "bfmi_min",
            "max_depth_share_max",
        ):
            value = getattr(self, name)
            least = lower.get(name, 0.0)
            if not (is_number(value) and value >= least):
                raise BayesplitError(
                    f"Thresholds.{name} must be a number >= {least:g}, got {value!r}"
                )
            # plain floats: a numpy float32 could not be saved with the posterior (JSON)
            object.__setattr__(self, name, float(value))
        if self.divergences_max != np.inf:
            if self.divergences_max != int(self.divergences_max):
                raise BayesplitError(
                    "Thresholds.divergences_max must be a whole number, got "
                    f"{self.divergences_max!r}"
                )
            # a count: "1 divergent transition (allowed 0)", not "(allowed 0.0)"
            object.__setattr__(self, "divergences_max", int(self.divergences_max))


#: How a failed gate is named: in the refusal and at the head of a forced result's note
#: (the report, which says so in a banner, leaves that note out).
GATE_NOTE = "the posterior failed its diagnostics gate"


@dataclass
class Diagnostics:
    """Summary of sampler health and identifiability, with the gate's verdict."""

    r_hat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    bfmi_min: float
    ok: bool
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    thresholds: Thresholds = field(default_factory=Thresholds)
    worst: dict[str, str] = field(default_factory=dict)
    #: share of transitions whose trajectory reached NUTS's maximum tree depth (NaN: unknown)
    max_depth_share: float = float("nan")

    def to_dict(self) -> dict:
        """All checks, thresholds and failures as a dict; a check that could not run (R-hat
        of one chain) is NaN, which :meth:`to_json` keeps (``bayesplit._io.jsonable`` makes
        it null for strict JSON)."""
        d = asdict(self)
        return d

    def to_json(self) -> str:
        """``to_dict`` serialized (stored in the posterior file's attributes)."""
        return json.dumps(self.to_dict(), allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> Diagnostics:
        """Diagnostics saved by :meth:`to_json`."""
        d = json.loads(text)
        d["thresholds"] = Thresholds(**d["thresholds"])
        return cls(**d)

    def summary(self) -> dict:
        """The keys the CLI's ``--json`` reports."""
        return {
            "r_hat_max": self.r_hat_max,
            "ess_bulk_min": self.ess_bulk_min,
            "ess_tail_min": self.ess_tail_min,
            "divergences": self.divergences,
            "bfmi_min": self.bfmi_min,
            "max_depth_share": self.max_depth_share,
            "ok": self.ok,
            "failures": self.failures,
            "warnings": self.warnings,
        }

    def require_ok(self, force: bool = False) -> None:
        """Raise :class:`DiagnosticsError` naming the failed checks, unless ``force``."""
        if check_flag(force, "force") or self.ok:  # checked first: "no" forced
            return
        raise DiagnosticsError(
            f"{GATE_NOTE}: "
            + "; ".join(self.failures)
            # the remedy by check, as the tutorial gives it: more draws do not cure a stuck
            # chain or a divergence
            + ". Refit with more draws (low ESS, or R-hat with every chain short), another seed "
            "or a longer warmup (one chain off the others, or divergences), or more data; or "
            "pass --force (in Python: force=True) to use it anyway"
        )

    def forced_note(self, what: str = "these numbers") -> str | None:
        """The note every result of a forced posterior carries (None when it passed)."""
        if self.ok:
            return None
        return f"{GATE_NOTE} ({'; '.join(self.failures)}): {what} were forced"


def _extreme(ds: xr.Dataset, fn) -> tuple[float, str]:
    """Max/min over every variable and element, with the name of the worst one."""
    best_val, best_name = None, ""
    for name, da in ds.data_vars.items():
        vals = np.asarray(da.values, dtype=float)
        if vals.size == 0 or np.all(np.isnan(vals)):
            continue
        idx = fn(np.nan_to_num(vals, nan=np.inf if fn is np.nanargmin else -np.inf).ravel())
        v = float(vals.ravel()[idx])
        label = name
        if da.ndim:
            coords = np.unravel_index(idx, vals.shape)
            label += (
                "["
                + ",".join(str(da[d].values[i]) for d, i in zip(da.dims, coords, strict=True))
                + "]"
            )
        if (
            best_val is None
            or (fn is np.nanargmax and v > best_val)
            or (fn is np.nanargmin and v < best_val)
        ):
            best_val, best_name = v, label
    return (float("nan") if best_val is None else best_val), best_name


def max_depth_share(sample_stats: xr.Dataset) -> float:
    """Share of transitions whose NUTS trajectory reached :data:`MAX_TREE_DEPTH`.

    Such transitions stopped doubling at the limit rather than at a U-turn: the posterior
    has directions much narrower than others that the mass matrix did not undo. They cost
    time (2**depth - 1 gradients each), and can cost mixing, which R-hat and ESS report.
    NaN where the sampler did not record it.
    """
    for name in ("reached_max_treedepth", "maxdepth_reached"):  # PyMC, nutpie
        if name in sample_stats:
            return float(np.asarray(sample_stats[name], dtype=float).mean())
    if "n_steps" in sample_stats:  # NumPyro: a tree of depth d takes 2**(d-1) steps or more
        steps = np.asarray(sample_stats["n_steps"])
        return float((steps >= 2 ** (MAX_TREE_DEPTH - 1)).mean())
    return float("nan")


def gated_variables(law, spec) -> list[str]:
    """Variables whose convergence decisions depend on: law parameters, noise, hyper-scales."""
    names = list(law.param_names)
    names += [f"{p}_tau" for p in spec.pooled(law)]
    names += ["sigma"]
    if spec.run_effect:
        names += ["run_sd"]
    if spec.student_df is None:
        names += ["nu"]
    return names


def r_hat_text(r_hat: float, limit: float) -> str:
    """R-hat with three decimals, or as many more as tell it apart from ``limit``: 1.0104
    read "R-hat 1.010 > 1.01" under a failed gate."""
    digits = 3
    text = f"{r_hat:.{digits}f}"
    while math.isfinite(r_hat) and (float(text) > limit) != (r_hat > limit):
        if digits == 9:
            return repr(float(r_hat))  # every digit there is
        digits += 1
        text = f"{r_hat:.{digits}f}"
    return text


def ess_text(ess: float) -> str:
    """An effective sample size rounded down: 399.6 read "bulk ESS 400 < 400"."""
    return f"{math.floor(ess):d}" if math.isfinite(ess) else str(ess)


def check(idata, law, spec, data, thresholds: Thresholds | None = None) -> Diagnostics:
    """Run every check on a fitted InferenceData."""
    th = thresholds or Thresholds()
    names = [v for v in gated_variables(law, spec) if v in idata.posterior]
    post = idata.posterior[names]
    r_hat, r_hat_at = _extreme(_arviz.rhat(post), np.nanargmax)
    ess_bulk, ess_bulk_at = _extreme(_arviz.ess(post, "bulk"), np.nanargmin)
    ess_tail, ess_tail_at = _extreme(_arviz.ess(post, "tail"), np.nanargmin)
    divergences = (
        int(idata.sample_stats["diverging"].sum()) if "diverging" in idata.sample_stats else 0
    )
    bfmi = _arviz.bfmi(idata)
    at_max_depth = max_depth_share(idata.sample_stats)

    failures, warnings = [], []
    n_chains = idata.posterior.sizes["chain"]
    if n_chains < 2:
        failures.append(
            "one chain: R-hat is undefined, so chains that disagree go unseen; use ≥ 4 chains"
        )
    elif not r_hat <= th.r_hat_max:
        lone = lone_chain(post, idata.sample_stats, th.r_hat_max)
        failures.append(
            f"R-hat {r_hat_text(r_hat, th.r_hat_max)} > {th.r_hat_max} (worst: {r_hat_at})"
            + (f"; {lone}" if lone else "")
        )
    if not ess_bulk >= th.ess_bulk_min:
        failures.append(
            f"bulk ESS {ess_text(ess_bulk)} < {th.ess_bulk_min:.0f} (worst: {ess_bulk_at})"
        )
    if not ess_tail >= th.ess_tail_min:
        failures.append(
            f"tail ESS {ess_text(ess_tail)} < {th.ess_tail_min:.0f} (worst: {ess_tail_at})"
        )
    if divergences > th.divergences_max:
        noun = "transition" if divergences == 1 else "transitions"
        failures.append(f"{divergences} divergent {noun} (allowed {th.divergences_max})")
    if np.isfinite(bfmi) and bfmi < th.bfmi_min:
        warnings.append(f"low BFMI {bfmi:.2f} < {th.bfmi_min}: the sampler explores energy poorly")
    if at_max_depth > th.max_depth_share_max:
        warnings.append(
            f"{at_max_depth:.0%} of transitions reached the maximum tree depth "
            f"({MAX_TREE_DEPTH}): the posterior has narrow, curved directions, so the fit is "
            "slow; R-hat and ESS say whether the draws mixed"
        )
    failures += identifiability(idata, law, spec, data, th)

    return Diagnostics(
        r_hat_max=r_hat,
        ess_bulk_min=ess_bulk,
        ess_tail_min=ess_tail,
        divergences=divergences,
        bfmi_min=bfmi,
        ok=not failures,
        failures=failures,
        warnings=warnings,
        thresholds=th,
        worst={"r_hat": r_hat_at, "ess_bulk": ess_bulk_at, "ess_tail": ess_tail_at},
        max_depth_share=at_max_depth,
    )


def lone_chain(post: xr.Dataset, sample_stats: xr.Dataset | None, r_hat_max: float) -> str | None:
    """Name the one chain whose removal brings R-hat under ``r_hat_max``, if there is one.

    That pattern is a chain stuck since warmup in a region the sampler cannot leave (it
    then tends to hold the divergences too), and its fix differs from that of chains that
    are all too short: another seed or a longer warmup, not more draws.
    """
    chains = post["chain"].values
    if len(chains) < 3:  # R-hat of the rest needs two chains
        return None
    without = {
        c: _extreme(_arviz.rhat(post.sel(chain=chains != c)), np.nanargmax)[0] for c in chains
    }
    chain = min(without, key=without.get)
    if not without[chain] <= r_hat_max:
        return None
    note = (
        f"chain {chain} alone disagrees with the other {len(chains) - 1} "
        f"(without it R-hat is {without[chain]:.3f})"
    )
    if sample_stats is not None and "diverging" in sample_stats:
        per_chain = sample_stats["diverging"].sum("draw")
        total = int(per_chain.sum())
        mine = int(per_chain.sel(chain=chain))
        if total == 1:
            note += " and has the one divergence" if mine else ""
        elif total:
            note += f" and has {mine} of the {total} divergences"
    return note + ": it is likely stuck; refit with another seed or a longer warmup"


def design_problems(law, rows) -> list[str]:
    """What the fitted rows' design alone says the law cannot learn (no sampling needed):
    too few distinct (N, D, D') points, no specialized row for a law with D', one size."""
    problems = []
    points = rows[["params", "pretrain_tokens", "spec_tokens"]].drop_duplicates()
    n_params = len(law.params)
    if len(points) < n_params + 1:
        problems.append(
            f"only {len(points)} distinct (N, D, D') points for a law with {n_params} parameters: the law is not identified"
        )
    if law.uses_spec_tokens and not (rows["spec_tokens"] > 0).any():
        problems.append(f"law {law.name} has specialization terms but no row has spec_tokens > 0")
    if rows["params"].nunique() < 2:
        problems.append("a single model size: the size exponent is not identified")
    return problems


def identifiability(idata, law, spec, data, th: Thresholds) -> list[str]:
    """Can these data pin the law down? Design-point counts, then prior-to-posterior contraction."""
    problems = design_problems(law, data.rows)
    if problems:
        return problems

    pooled = set(spec.pooled(law))
    loose = []
    for p in law.params:
        site = f"{p.name}_mu" if p.name in pooled else f"{p.name}_u"
        if site not in idata.posterior:
            continue
        post_sd = float(idata.posterior[site].std())
        if post_sd / p.scale > th.prior_ratio_max:
            what = f"{p.description}; " if p.description else ""
            mean = "mean over domains, " if p.name in pooled else ""
            loose.append(f"{p.name} ({what}{mean}posterior sd {post_sd / p.scale:.2f}× prior)")
    if loose:
        # each named with its description ("model-size exponent"), which tells the user
        # which runs would pin it down: more model sizes, token counts, domains
        problems.append(
            "not identified by the data, the posterior is still the prior for: " + ", ".join(loose)
        )
    return problems
