"""Ground-truth laws for simulation: known parameters in, run tables out.

Statistical claims in bayesplit (interval coverage, parameter recovery, decision
regret) are checked against a :class:`GroundTruth`: a law with fixed per-domain
parameters and a noise model, from which run tables are simulated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesplit._parse import is_number, names
from bayesplit.errors import BayesplitError
from bayesplit.laws import Law, get_law, get_ops
from bayesplit.model import Reference


@dataclass(frozen=True)
class Noise:
    """How measured losses scatter around the law, on log loss.

    ``sigma``: per-measurement noise; ``seed_sd``: a per-run (seed) shift shared by
    all rows of a run, and by every branch of one pretraining trunk (``trunk_id``); ``hetero``: extra relative noise for small runs,
    ``sigma · (1 + hetero · (C_ref / C)^0.25)`` so tiny, short runs are noisier.
    """

    sigma: float = 0.005
    seed_sd: float = 0.0
    hetero: float = 0.0
    compute_ref: float = 1e18


@dataclass(frozen=True)
class GroundTruth:
    """A law with known parameter values (natural units on inputs scaled by ``reference``)."""

    law: Law
    domains: tuple[str, ...]
    params: Mapping[str, Any]  #: scalar for shared, sequence (one per domain) for per-domain
    reference: Reference
    noise: Noise = field(default_factory=Noise)

    def __post_init__(self):
        if not self.domains or not all(isinstance(k, str) and k for k in self.domains):
            raise BayesplitError(
                f"ground truth domains must be a list of names, got {list(self.domains)!r}"
            )
        if len(set(self.domains)) != len(self.domains):
            raise BayesplitError(f"ground truth domains repeat a name: {list(self.domains)!r}")
        missing = set(self.law.param_names) - set(self.params)
        if missing:
            raise BayesplitError(f"ground truth lacks parameter(s) {', '.join(sorted(missing))}")
        unknown = [k for k in self.params if k not in self.law.param_names]
        if unknown:
            raise BayesplitError(
                f"ground truth has unknown parameter(s) {', '.join(map(str, unknown))}; "
                f"law {self.law.name} has {', '.join(self.law.param_names)}"
            )
        for p in self.law.params:
            try:
                v = np.asarray(self.params[p.name], dtype=float)
            except (TypeError, ValueError):
                raise BayesplitError(
                    f"ground truth parameter {p.name} is not a number: {self.params[p.name]!r}"
                ) from None
            if not np.all(np.isfinite(v)):
                raise BayesplitError(f"ground truth parameter {p.name} is not finite: {v}")
            if p.support == "positive" and not np.all(v > 0):
                raise BayesplitError(
                    f"ground truth parameter {p.name} must be > 0, got {_shown(v)}"
                )
            if p.support == "unit" and not np.all((v > 0) & (v < 1)):
                raise BayesplitError(
                    f"ground truth parameter {p.name} must be in (0, 1), got {_shown(v)}"
                )
            want = (len(self.domains),) if p.per_domain else ()
            if v.shape != want:
                raise BayesplitError(
                    f"ground truth parameter {p.name} needs "
                    + (
                        f"{len(self.domains)} values, one per domain"
                        if p.per_domain
                        else "one value (it is shared by all domains)"
                    )
                    + f", got {np.ndim(v) and len(v) or 1}"
                )
        for name in ("params", "tokens", "loss"):
            value = getattr(self.reference, name)
            if not (is_number(value) and math.isfinite(value) and value > 0):
                raise BayesplitError(
                    f"ground truth reference {name} must be a finite number > 0, got {value!r}"
                )
        for name in ("sigma", "seed_sd", "hetero"):
            value = getattr(self.noise, name)
            if not (is_number(value) and math.isfinite(value) and value >= 0):
                raise BayesplitError(
                    f"ground truth noise {name} must be a number >= 0, got {value!r}"
                )
        value = self.noise.compute_ref
        if not (is_number(value) and math.isfinite(value) and value > 0):
            raise BayesplitError(
                f"ground truth noise compute_ref must be a finite number > 0, got {value!r}"
            )

    def __repr__(self) -> str:
        # the dataclass default spells out the whole Law (every prior) before any value
        values = ", ".join(f"{p.name}={_value_text(self.params[p.name])}" for p in self.law.params)
        r, z = self.reference, self.noise
        return (
            f"<GroundTruth law={self.law.name}, domains {', '.join(self.domains)}: {values}; "
            f"reference N={r.params:.3g}, tokens={r.tokens:.3g}, loss={r.loss:.4g}; "
            f"noise sigma={z.sigma:g}, seed_sd={z.seed_sd:g}, hetero={z.hetero:g}>"
        )

    def param_arrays(self) -> dict[str, np.ndarray]:
        """Parameters shaped like posterior draws with one draw: (1,) or (1, K)."""
        out = {}
        for p in self.law.params:
            v = np.asarray(self.params[p.name], dtype=float)
            out[p.name] = v.reshape(1, -1) if p.per_domain else v.reshape(1)
        return out

    def loss(self, params, pretrain_tokens, spec_tokens, domain) -> np.ndarray:
        """The true mean loss at raw (N, D, D') for a domain name or index per point."""
        dom = np.asarray(domain)
        if dom.dtype.kind in "US" or dom.dtype == object:
            idx = (
                np.vectorize(self.domains.index)(dom) if dom.ndim else self.domains.index(str(dom))
            )
        else:
            idx = dom
        idx = np.asarray(idx, dtype=int)
        x = self.reference.scale(params, pretrain_tokens, spec_tokens)
        shape = np.broadcast(x.n, x.d, x.dp, idx).shape
        idx = np.broadcast_to(idx, shape)
        rows = {}
        for p in self.law.params:
            v = np.asarray(self.params[p.name], dtype=float)
            rows[p.name] = v[idx] if p.per_domain else v
        from bayesplit.laws import Inputs

        xin = Inputs(*(np.broadcast_to(a, shape) for a in (x.n, x.d, x.dp)))
        with np.errstate(all="ignore"):  # a NaN is refused in words just below
            log_l = self.law.evaluate(get_ops("numpy"), rows, xin)
        # a NaN here would become a measured run, and fail later far from its cause
        points = {"N": params, "D": pretrain_tokens, "D'": spec_tokens}
        self.law.check_finite(log_l, {**points, "domain": np.asarray(self.domains)[idx]})
        return np.exp(log_l)

    def simulate(
        self, design: pd.DataFrame, seed: int = 0, trunk_shifts: dict | None = None
    ) -> pd.DataFrame:
        """Measured rows for a design.

        ``design`` has one row per run spec with ``params``, ``pretrain_tokens``,
        ``spec_tokens``, ``train_domain`` (None for general models) and optionally
        ``run_id``/``seed``/``trunk_id``. General models are evaluated on every domain,
        specialists on their own domain (the rows a law describes). ``trunk_shifts``
        keeps each trunk's seed shift across calls (a campaign simulating batch by batch).
        """
        rng = np.random.default_rng(seed)
        out = []
        trunk_shift: dict[str, float] = {} if trunk_shifts is None else trunk_shifts
        for i, spec in enumerate(design.to_dict("records")):
            run_id = spec.get("run_id") or f"sim-{seed}-{i}"
            train = spec.get("train_domain")
            train = (
                None if train is None or (isinstance(train, float) and np.isnan(train)) else train
            )
            evals = list(self.domains) if train is None else [train]
            trunk = spec.get("trunk_id") if isinstance(spec.get("trunk_id"), str) else run_id
            if trunk not in trunk_shift:  # a seed's luck carries over to every branch of its trunk
                trunk_shift[trunk] = self.noise.seed_sd * rng.standard_normal()
            shift = trunk_shift[trunk]
            n, d, dp = (
                float(spec["params"]),
                float(spec["pretrain_tokens"]),
                float(spec.get("spec_tokens", 0.0) or 0.0),
            )
            flops = 6 * n * (d + dp)
            sd = self.noise.sigma * (
                1 + self.noise.hetero * (self.noise.compute_ref / flops) ** 0.25
            )
            for k in evals:
                mean = float(self.loss(n, d, dp, k))
                out.append(
                    {
                        "run_id": run_id,
                        "seed": int(spec.get("seed", 0) or 0),
                        "params": n,
                        "pretrain_tokens": d,
                        "spec_tokens": dp,
                        "train_domain": train,
                        "eval_domain": k,
                        "loss": mean * float(np.exp(shift + sd * rng.standard_normal())),
                        "true_loss": mean,
                        **({"trunk_id": spec["trunk_id"]} if spec.get("trunk_id") else {}),
                    }
                )
        return pd.DataFrame(out)

    def as_posterior(self, runs: pd.DataFrame | None = None):
        """A one-draw :class:`~bayesplit.posterior.Posterior` holding the true parameters.

        Lets every decision tool run on the truth: ``allocate(truth.as_posterior(), ...)``
        gives the true optimum. ``runs`` (default: one small general run per domain) only
        sets the feasibility floor of allocations.
        """
        import xarray as xr

        from bayesplit import _arviz
        from bayesplit.diagnostics import Diagnostics
        from bayesplit.model import ModelSpec
        from bayesplit.posterior import Posterior, rows_as_constant_data

        if runs is None:
            runs = pd.DataFrame(
                {
                    "run_id": "truth",
                    "params": self.reference.params / 100,
                    "pretrain_tokens": self.reference.tokens / 100,
                    "spec_tokens": 0.0,
                    "train_domain": None,
                    "eval_domain": list(self.domains),
                    "loss": 1.0,
                    "seed": 0,
                }
            )
        post = {}
        for p in self.law.params:
            v = np.asarray(self.params[p.name], dtype=float)
            post[p.name] = v.reshape(1, 1, -1) if p.per_domain else v.reshape(1, 1)
        post["sigma"] = np.full((1, 1), self.noise.sigma)
        post["run_sd"] = np.full((1, 1), self.noise.seed_sd)
        dims = {p.name: ["domain"] for p in self.law.params if p.per_domain}
        idata = _arviz.from_dict(posterior=post, coords={"domain": list(self.domains)}, dims=dims)
        _arviz.concat_groups(idata, constant_data=rows_as_constant_data(runs))
        spec = ModelSpec(
            domains=tuple(self.domains),
            runs=("truth",),
            reference=self.reference,
            run_effect=self.noise.seed_sd > 0,
            student_df=1e6,
        )
        diag = Diagnostics(
            r_hat_max=1.0,
            ess_bulk_min=float("inf"),
            ess_tail_min=float("inf"),
            divergences=0,
            bfmi_min=float("nan"),
            ok=True,
            warnings=["ground truth: one exact draw"],
        )
        del xr
        return Posterior(idata, self.law, spec, diag, {"backend": "truth"})

    def to_dict(self) -> dict:
        """The truth as a YAML/JSON-ready dict (the format :func:`load_truth` reads)."""
        return {
            "law": self.law.name,
            "domains": list(self.domains),
            "params": {
                k: (list(map(float, np.atleast_1d(v))) if np.ndim(v) else float(v))
                for k, v in self.params.items()
            },
            "reference": {
                "params": self.reference.params,
                "tokens": self.reference.tokens,
                "loss": self.reference.loss,
            },
            "noise": {
                "sigma": self.noise.sigma,
                "seed_sd": self.noise.seed_sd,
                "hetero": self.noise.hetero,
                "compute_ref": self.noise.compute_ref,
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> GroundTruth:
        """A ground truth from a mapping (the YAML of ``bayesplit simulate --truth``)."""
        try:
            unknown = sorted(map(str, set(d) - set(_TRUTH_KEYS)))
            if unknown:
                raise BayesplitError(
                    f"ground truth has unknown keys {unknown}; it takes {', '.join(_TRUTH_KEYS)}"
                )
            law = get_law(d["law"])
            if "per_domain" in d:
                law = law.with_pooling(d["per_domain"])
            ref = d.get("reference", {})
            if not isinstance(ref, Mapping):
                raise BayesplitError(
                    f"ground truth reference must be a mapping of params, tokens, loss; got {ref!r}"
                )
            unknown = sorted(map(str, set(ref) - {"params", "tokens", "loss"}))
            if unknown:
                raise BayesplitError(
                    f"ground truth reference has unknown keys {unknown}; "
                    "it takes params, tokens, loss"
                )
            domains = d["domains"]
            if isinstance(domains, str) or not isinstance(domains, list | tuple):
                raise BayesplitError(f"ground truth domains must be a list, got {domains!r}")
            if not isinstance(d["params"], Mapping):
                raise BayesplitError("ground truth params must be a mapping of name: value")
            noise = d.get("noise", {})
            if not isinstance(noise, Mapping):
                raise BayesplitError(f"ground truth noise must be a mapping, got {noise!r}")
            return cls(
                law=law,
                domains=tuple(domains),
                params=dict(d["params"]),
                reference=Reference(
                    params=_reference_value(ref, "params", 1e8),
                    tokens=_reference_value(ref, "tokens", 1e10),
                    loss=_reference_value(ref, "loss", 3.0),
                ),
                noise=Noise(**noise),
            )
        except KeyError as exc:
            raise BayesplitError(f"ground truth is missing {exc}") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, BayesplitError):
                raise
            raise BayesplitError(f"bad ground truth: {' '.join(str(exc).split())}") from None


#: The keys a ground-truth file may have (:meth:`GroundTruth.to_dict` writes all but
#: ``per_domain``, which changes the law's pooling).
def _reference_value(ref: dict, name: str, default: float) -> float:
    """A reference scale from a truth file: a number, or text YAML did not read as one
    (PyYAML reads ``1e8`` as text); ``true`` is not 1 (it became N = 1, refused later as
    run-table rows in the wrong unit)."""
    value = ref.get(name, default)
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise BayesplitError(
            f"ground truth reference {name} must be a finite number > 0, got {value!r}"
        ) from None


_TRUTH_KEYS = ("law", "per_domain", "domains", "params", "reference", "noise")


def _value_text(v) -> str:
    v = np.asarray(v, dtype=float)
    return f"{float(v):.4g}" if not v.ndim else "[" + ", ".join(f"{x:.4g}" for x in v) + "]"


def _shown(v: np.ndarray):
    """A parameter value for a message: a number, or a list of numbers."""
    return v.tolist() if v.ndim else float(v)


def load_truth(path: str | Path) -> GroundTruth:
    """Read a ground truth from YAML (``yaml.safe_load``; never evaluated)."""
    import yaml

    p = Path(path)
    if not p.exists():
        raise BayesplitError(f"no such ground-truth file: {p}")
    if not p.is_file():
        raise BayesplitError(f"ground truth {p} is not a file")
    try:
        data = yaml.safe_load(p.read_text())
    except UnicodeDecodeError:
        raise BayesplitError(f"{p}: not a YAML text file") from None
    except yaml.YAMLError as exc:
        raise BayesplitError(f"{p}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, Mapping):
        raise BayesplitError(f"{p}: expected a mapping with law, domains, params")
    return GroundTruth.from_dict(data)


def truth_from_posterior(
    posterior, draw: int | str = "median", noise: Noise | None = None
) -> GroundTruth:
    """A ground truth from a fitted posterior: one draw, or the per-parameter median."""
    draws = posterior.draws()
    if draw == "median":
        params = {k: np.median(v, axis=0) for k, v in draws.items()}
    else:
        params = {k: v[int(draw)] for k, v in draws.items()}
    if noise is None:
        nd = posterior.noise_draws()
        noise = Noise(sigma=float(np.median(nd["sigma"])), seed_sd=float(np.median(nd["run_sd"])))
    params = {k: (v.tolist() if np.ndim(v) else float(v)) for k, v in params.items()}
    return GroundTruth(
        posterior.law, tuple(posterior.domains), params, posterior.spec.reference, noise
    )


def truth_from_prior(
    runs: pd.DataFrame,
    law: str | Law,
    *,
    reference: Reference | None = None,
    seed: int = 0,
) -> tuple[GroundTruth, pd.DataFrame]:
    """A truth drawn from the model's prior, and ``runs`` with losses drawn with it.

    One draw of the prior predictive: the law's parameters, the noise scale and every row's
    loss come from the same prior and likelihood a fit uses (no run effects), with priors
    centred on ``reference`` (default: the reference scales of ``runs``). Fitting the
    returned runs with the same ``reference`` and scoring against the returned truth, over
    many seeds, is simulation-based calibration: the fit's intervals should cover the drawn
    truths at their nominal rate.
    """
    from bayesplit.model import prepare
    from bayesplit.prior import sample_prior
    from bayesplit.runs import load_runs

    law_obj = get_law(law)
    spec, data = prepare(
        load_runs(runs), law_obj, run_effect=False, reference=reference, centered=True
    )
    sim = sample_prior(law_obj, spec, data, draws=1, seed=seed)
    params = {}
    for p in law_obj.params:
        v = np.asarray(sim[p.name], dtype=float)[0]
        params[p.name] = v.tolist() if p.per_domain else float(v)
    truth = GroundTruth(
        law_obj,
        tuple(spec.domains),
        params,
        spec.reference,
        Noise(sigma=float(sim["sigma"][0])),
    )
    drawn = data.rows.reset_index(drop=True).copy()
    drawn["loss"] = np.exp(np.asarray(sim["log_loss"], dtype=float)[0])
    return truth, drawn


def factorial_design(
    params: Sequence[float],
    pretrain_tokens: Sequence[float],
    spec_tokens: Sequence[float],
    domains: Sequence[str],
    *,
    seeds: Sequence[int] = (0,),
) -> pd.DataFrame:
    """Every (N, D) general run, plus every (N, D, D', k) specialist branched from it."""
    rows = []
    for s in seeds:
        for n in params:
            trunk = f"trunk-N{n:.3g}-s{s}"
            for d in pretrain_tokens:
                rows.append(
                    {
                        "run_id": f"{trunk}-D{d:.3g}",
                        "trunk_id": trunk,
                        "seed": s,
                        "params": n,
                        "pretrain_tokens": d,
                        "spec_tokens": 0.0,
                        "train_domain": None,
                    }
                )
                for dp in spec_tokens:
                    if dp <= 0:
                        continue
                    for k in domains:
                        rows.append(
                            {
                                "run_id": f"{trunk}-D{d:.3g}-{k}-Dp{dp:.3g}",
                                "trunk_id": trunk,
                                "seed": s,
                                "params": n,
                                "pretrain_tokens": d,
                                "spec_tokens": dp,
                                "train_domain": k,
                            }
                        )
    return pd.DataFrame(rows)


#: Plausible parameter values per law for K ≤ 4 domains (reference N = 1e8, T = 1e9),
#: used by tests, benchmarks and the docs' simulated examples.
_EXAMPLES = {
    "chinchilla": {
        "E": [1.8, 1.2, 2.2, 1.6],
        "A": [0.6, 0.5, 0.7, 0.6],
        "alpha": [0.34, 0.34, 0.34, 0.34],
        "B": [0.8, 0.9, 0.7, 0.8],
        "beta": [0.28, 0.3, 0.26, 0.28],
    },
    "additive": {
        "E": [1.8, 1.2, 2.2, 1.6],
        "A": 0.6,
        "alpha": 0.34,
        "B": [0.7, 0.9, 0.6, 0.8],
        "beta": 0.28,
        "C": [0.35, 0.5, 0.25, 0.4],
        "gamma": 0.5,
        "dp0": 0.05,
    },
    "transfer": {
        "E": [1.8, 1.2, 2.2, 1.6],
        "A": 0.6,
        "alpha": 0.34,
        "B": [0.5, 0.45, 0.4, 0.5],
        "beta": 0.3,
        "tau": [0.3, 0.1, 0.5, 0.2],
        "kappa": 0.15,
    },
    "saturating": {
        "E": [1.8, 1.2, 2.2, 1.6],
        "A": 0.6,
        "alpha": 0.34,
        "B": 0.7,
        "beta": 0.28,
        "G": [0.3, 0.5, 0.2, 0.4],
        "gamma": [0.5, 0.6, 0.4, 0.5],
        "dp0": 0.05,
    },
}


def example_truth(
    law: str = "additive",
    domains: Sequence[str] = ("web", "code", "law"),
    noise: Noise | None = None,
) -> GroundTruth:
    """A realistic ground truth for a built-in law with up to four domains (for tests and docs)."""
    if law not in _EXAMPLES:
        raise BayesplitError(
            f"no example parameters for law {law!r}; choose from {', '.join(_EXAMPLES)}"
        )
    domains = names(domains)  # one domain as a string, not its letters
    k = len(domains)
    if not 1 <= k <= 4:
        raise BayesplitError("example truths have 1 to 4 domains")
    law_obj = get_law(law)
    params = {}
    for p in law_obj.params:
        v = _EXAMPLES[law][p.name]
        params[p.name] = list(v[:k]) if p.per_domain else v
    return GroundTruth(
        law_obj,
        tuple(domains),
        params,
        Reference(params=1e8, tokens=1e9, loss=3.0),
        noise or Noise(sigma=0.005),
    )
