"""Ground-truth laws for simulation: known parameters in, run tables out.

Statistical claims in bayesplit (interval coverage, parameter recovery, decision
regret) are checked against a :class:`GroundTruth`: a law with fixed per-domain
parameters and a noise model, from which run tables are simulated.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesplit._parse import _shown as _typed
from bayesplit._parse import (
    check_flag,
    check_path,
    check_seed,
    counts,
    is_finite_number,
    is_number,
    names,
    short_repr,
)
from bayesplit.errors import BayesplitError
from bayesplit.laws import Law, get_law, get_ops
from bayesplit.model import Reference
from bayesplit.runs import MAX_PLAUSIBLE_LOSS, MIN_PLAUSIBLE_COUNT


@dataclass(frozen=True)
class Noise:
    """How measured losses scatter around the law, on log loss.

    ``sigma``: per-measurement noise; ``seed_sd``: a per-run (seed) shift shared by
    all rows of a run, and by every branch of one pretraining trunk (``trunk_id``); ``hetero``: extra relative noise for small runs,
    ``sigma · (1 + hetero · (C_ref / C)^0.25)`` so tiny, short runs are noisier.
    Each is a finite number >= 0 (``compute_ref`` > 0), refused when the Noise is made.
    """

    sigma: float = 0.005
    seed_sd: float = 0.0
    hetero: float = 0.0
    compute_ref: float = 1e18

    def __post_init__(self):
        # checked when made: Noise(sigma=-1) was refused only when it reached a GroundTruth
        for name in ("sigma", "seed_sd", "hetero"):
            value = getattr(self, name)
            if not (is_finite_number(value) and value >= 0):
                raise BayesplitError(
                    f"ground truth noise {name} must be a finite number >= 0, got {short_repr(value)}"
                )
        value = self.compute_ref
        if not (is_finite_number(value) and value > 0):
            raise BayesplitError(
                "ground truth noise compute_ref must be a finite number > 0, "
                f"got {short_repr(value)}"
            )


@dataclass(frozen=True)
class GroundTruth:
    """A law with known parameter values (natural units on inputs scaled by ``reference``)."""

    law: Law
    domains: tuple[str, ...]
    params: Mapping[str, Any]  #: scalar for shared, sequence (one per domain) for per-domain
    reference: Reference
    noise: Noise = field(default_factory=Noise)

    def __post_init__(self):
        # frozen: the checks below may only normalise what was passed, through object.__setattr__
        law = self.law
        if isinstance(law, str):  # a law name, as in a truth file
            law = get_law(law)
        if not isinstance(law, Law):
            raise BayesplitError(
                f"ground truth law must be a law name or a Law, got {short_repr(law)}"
            )
        object.__setattr__(self, "law", law)
        domains = self.domains
        if isinstance(domains, str):  # one domain, not its letters
            domains = (domains,)
        if not isinstance(domains, Sequence | np.ndarray | pd.Index) or not all(
            isinstance(k, str) and k for k in domains
        ):
            raise BayesplitError(
                f"ground truth domains must be a list of names, got {short_repr(domains)}"
            )
        domains = tuple(domains)
        if not domains:
            raise BayesplitError("ground truth domains must be a list of names, got []")
        object.__setattr__(self, "domains", domains)
        if len(set(self.domains)) != len(self.domains):
            raise BayesplitError(
                f"ground truth domains repeat a name: {short_repr(list(self.domains))}"
            )
        if not isinstance(self.params, Mapping):
            raise BayesplitError(
                "ground truth params must be a mapping of name: value, "
                f"got {short_repr(self.params)}"
            )
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
            v = _param_value(p.name, self.params[p.name])
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
            k = len(self.domains)
            want = (k,) if p.per_domain else ()
            if v.shape != want:
                raise BayesplitError(
                    f"ground truth parameter {p.name} needs "
                    + (
                        f"{k} value{'s' * (k != 1)}, one per domain"
                        if p.per_domain
                        else "one value (it is shared by all domains)"
                    )
                    + (f", got {len(v)} values" if v.ndim else ", got a single number")
                )
        if not isinstance(self.reference, Reference):
            raise BayesplitError(
                "ground truth reference must be a Reference(params, tokens, loss), "
                f"got {short_repr(self.reference)}"
            )
        for name in ("params", "tokens", "loss"):
            value = getattr(self.reference, name)
            if not (is_finite_number(value) and value > 0):
                raise BayesplitError(
                    f"ground truth reference {name} must be a finite number > 0, "
                    f"got {short_repr(value)}"
                )
        for name in ("params", "tokens"):
            value = getattr(self.reference, name)
            if value < MIN_PLAUSIBLE_COUNT:  # its runs would be refused as "the wrong unit"
                raise BayesplitError(
                    f"ground truth reference {name} {value:g} is below "
                    f"{MIN_PLAUSIBLE_COUNT:g}: give raw counts (e.g. 1e8), not millions or "
                    "billions"
                )
        object.__setattr__(self, "noise", _noise(self.noise))  # a Noise checks its fields

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

    def _log_mean(self, n, d, dp, idx) -> np.ndarray:
        """``log L`` at scaled inputs and domain indices, broadcast together (no checks)."""
        from bayesplit.laws import Inputs

        shape = np.broadcast_shapes(np.shape(n), np.shape(d), np.shape(dp), np.shape(idx))
        idx = np.broadcast_to(idx, shape)
        rows = {}
        for p in self.law.params:
            v = np.asarray(self.params[p.name], dtype=float)
            rows[p.name] = v[idx] if p.per_domain else v
        xin = Inputs(*(np.broadcast_to(np.asarray(a, dtype=float), shape) for a in (n, d, dp)))
        with np.errstate(all="ignore"):  # callers refuse a NaN or inf in words
            return np.asarray(self.law.evaluate(get_ops("numpy"), rows, xin), dtype=float)

    def _scaled(self, n, d, dp):
        with np.errstate(all="ignore"):  # an overflow is a non-finite loss, refused in words
            return self.reference.scale(n, d, dp)

    def _domain_index(self, domain, what: str = "domain") -> np.ndarray:
        """Indices into :attr:`domains` of a domain name or an array of names."""
        known = ", ".join(self.domains)
        if isinstance(domain, str):
            if domain not in self.domains:
                raise BayesplitError(
                    f"{what} {domain!r} is not a domain of this truth; it has {known}"
                )
            return np.asarray(self.domains.index(domain))
        if isinstance(domain, Sequence | np.ndarray | pd.Series | pd.Index):
            arr = np.asarray(domain, dtype=object)
            lookup = {k: i for i, k in enumerate(self.domains)}
            flat = arr.ravel().tolist()
            for x in flat:
                if not (isinstance(x, str) and x in lookup):
                    raise BayesplitError(
                        f"{what} must be domain names of this truth ({known}), "
                        f"got an entry {_typed(x)}"
                    )
            if not flat:
                raise BayesplitError(f"{what} is empty: give at least one domain name")
            return np.array([lookup[x] for x in flat], dtype=int).reshape(arr.shape)
        raise BayesplitError(
            f"{what} must be a domain name of this truth ({known}) or a list of them, "
            f"got {_typed(domain)}"
        )

    def loss(self, params, pretrain_tokens, spec_tokens, domain) -> np.ndarray:
        """The true mean loss at raw (N, D, D') for a domain name (or an array of names,
        one per point); the inputs broadcast together."""
        n = _count_values(params, "params")
        d = _count_values(pretrain_tokens, "pretrain_tokens")
        dp = _count_values(spec_tokens, "spec_tokens", zero_ok=True)
        idx = self._domain_index(domain)
        try:
            shape = np.broadcast_shapes(n.shape, d.shape, dp.shape, idx.shape)
        except ValueError:
            shapes = ", ".join(
                f"{k}={v.shape}"
                for k, v in zip(
                    ("params", "pretrain_tokens", "spec_tokens", "domain"),
                    (n, d, dp, idx),
                    strict=True,
                )
            )
            raise BayesplitError(
                f"params, pretrain_tokens, spec_tokens and domain must have shapes that "
                f"broadcast together, got {shapes}"
            ) from None
        x = self._scaled(n, d, dp)
        log_l = self._log_mean(x.n, x.d, x.dp, idx)
        # a NaN here would become a measured run, and fail later far from its cause
        points = {"N": n, "D": d, "D'": dp, "domain": np.asarray(self.domains)[idx]}
        self.law.check_finite(log_l, points)
        with np.errstate(all="ignore"):
            return np.exp(log_l).reshape(shape)

    def simulate(
        self, design: pd.DataFrame, seed: int = 0, trunk_shifts: dict | None = None
    ) -> pd.DataFrame:
        """Measured rows for a design.

        ``design`` has one row per run spec with ``params``, ``pretrain_tokens``,
        ``spec_tokens`` (default 0), ``train_domain`` (None for general models) and
        optionally ``run_id``/``seed``/``trunk_id``. General models are evaluated on every
        domain, specialists on their own domain (the rows a law describes). ``seed`` (a
        whole number from 0 to 2^63 - 1) draws the noise; ``trunk_shifts`` keeps each
        trunk's seed shift across calls (a campaign simulating batch by batch; every row
        then needs its own ``run_id``, as the default ids repeat from call to call).
        """
        seed = check_seed(seed)
        if trunk_shifts is not None and not isinstance(trunk_shifts, dict):
            raise BayesplitError(
                f"trunk_shifts must be a dict (or None), got {_typed(trunk_shifts)}"
            )
        specs = self._design_rows(design)
        if trunk_shifts is not None:
            unnamed = [i for i, sp in enumerate(specs) if not sp["run_id"]]
            if unnamed:
                # the default ids sim-SEED-ROW repeat in every call: row 0 of two batches
                # drawn with one seed was one run, sharing its id and its seed shift
                raise BayesplitError(
                    f"with trunk_shifts, every design row needs a run_id (row {unnamed[0]} "
                    "has none): the default ids sim-<seed>-<row> repeat in every call, so "
                    "runs of two batches would share an id and a seed shift"
                )
        # every (run, evaluated domain) pair, in the order the rows are written
        pairs = [(i, k) for i, sp in enumerate(specs) for k in sp["evals"]]
        n = np.array([specs[i]["params"] for i, _ in pairs])
        d = np.array([specs[i]["pretrain_tokens"] for i, _ in pairs])
        dp = np.array([specs[i]["spec_tokens"] for i, _ in pairs])
        idx = np.array([k for _, k in pairs], dtype=int)
        x = self._scaled(n, d, dp)
        log_l = self._log_mean(x.n, x.d, x.dp, idx)
        self.law.check_finite(
            log_l, {"N": n, "D": d, "D'": dp, "domain": np.asarray(self.domains)[idx]}
        )
        with np.errstate(all="ignore"):
            means = np.exp(log_l)
        rng = np.random.default_rng(seed)
        out = []
        trunk_shift: dict[str, float] = {} if trunk_shifts is None else trunk_shifts
        z = self.noise
        j = 0
        for i, spec in enumerate(specs):
            run_id = spec["run_id"] or f"sim-{seed}-{i}"
            trunk = spec["trunk_id"] or run_id
            if trunk not in trunk_shift:  # a seed's luck carries over to every branch of its trunk
                trunk_shift[trunk] = z.seed_sd * rng.standard_normal()
            shift = trunk_shift[trunk]
            nn, dd, ddp = spec["params"], spec["pretrain_tokens"], spec["spec_tokens"]
            sd = z.sigma
            if z.hetero > 0:  # 0 · inf would be NaN; a tiny run's inf is refused below
                with np.errstate(all="ignore"):
                    flops = 6 * np.float64(nn) * (dd + ddp)
                    sd = z.sigma * (1 + z.hetero * float((z.compute_ref / flops) ** 0.25))
            for k in spec["evals"]:
                mean = float(means[j])
                j += 1
                with np.errstate(all="ignore"):
                    measured = mean * float(np.exp(shift + sd * rng.standard_normal()))
                if not (math.isfinite(measured) and 0 < measured <= MAX_PLAUSIBLE_LOSS):
                    raise self._implausible(measured, mean, spec, i, k, MAX_PLAUSIBLE_LOSS)
                out.append(
                    {
                        "run_id": run_id,
                        "seed": spec["seed"],
                        "params": nn,
                        "pretrain_tokens": dd,
                        "spec_tokens": ddp,
                        "train_domain": spec["train_domain"],
                        "eval_domain": self.domains[k],
                        "loss": measured,
                        "true_loss": mean,
                        **({"trunk_id": spec["trunk_id"]} if spec["trunk_id"] else {}),
                    }
                )
        return pd.DataFrame(out)

    def _implausible(self, measured, mean, spec, i, k, most) -> BayesplitError:
        """The error for a simulated loss a run table would refuse: it names the truth, not
        a table the user never wrote."""

        def why(value):
            if not math.isfinite(value):
                return "not a finite number"
            if value <= 0:
                return "not > 0"
            return f"above {most:g} nats per token, which a run table refuses as a perplexity"

        at = (
            f"at N={spec['params']:g}, D={spec['pretrain_tokens']:g}, "
            f"D'={spec['spec_tokens']:g}, domain {self.domains[k]} (design row {i}"
        )
        z = self.noise
        if math.isfinite(mean) and 0 < mean <= most:  # the noise took it there
            what = f"simulated loss {measured:.4g} {at}; true loss {mean:.4g}): {why(measured)}"
        else:
            what = f"has true loss {mean:.4g} {at}): {why(mean)}"
        return BayesplitError(
            f"ground truth (law {self.law.name}) {what}; check the truth's parameters, "
            f"reference and noise (sigma={z.sigma:g}, seed_sd={z.seed_sd:g}, hetero={z.hetero:g})"
        )

    def _design_rows(self, design) -> list[dict]:
        """The rows of a design, checked: one dict per run with float N, D, D', an int seed,
        ``train_domain`` (None or a name), ``run_id``/``trunk_id`` (None when not given)
        and ``evals``, the indices of the domains it is evaluated on."""
        need = ("params", "pretrain_tokens")
        if not isinstance(design, pd.DataFrame):
            raise BayesplitError(
                f"design must be a pandas DataFrame with columns {', '.join(need)} (and "
                f"spec_tokens, train_domain), got {type(design).__name__}"
            )
        missing = [c for c in need if c not in design.columns]
        if missing:
            raise BayesplitError(
                f"design lacks column(s) {', '.join(missing)}; it needs {', '.join(need)} "
                "(and optionally spec_tokens, train_domain, run_id, seed, trunk_id)"
            )
        if design.columns.duplicated().any():
            dup = sorted(map(str, set(design.columns[design.columns.duplicated()])))
            raise BayesplitError(f"design repeats column(s) {', '.join(dup)}")
        if not len(design):
            raise BayesplitError("design has no rows: give at least one run")
        m = len(design)
        cols = {
            "params": _design_counts(design["params"], "params"),
            "pretrain_tokens": _design_counts(design["pretrain_tokens"], "pretrain_tokens"),
            "spec_tokens": (
                _design_counts(design["spec_tokens"], "spec_tokens", zero_ok=True)
                if "spec_tokens" in design.columns
                else np.zeros(m)
            ),
        }
        seeds = _design_seeds(design["seed"]) if "seed" in design.columns else [0] * m
        train = design["train_domain"].tolist() if "train_domain" in design else [None] * m
        run_ids = _design_labels(design, "run_id")
        trunks = _design_labels(design, "trunk_id")
        lookup = {k: j for j, k in enumerate(self.domains)}
        rows = []
        for i in range(m):
            t = None if _blank(train[i]) else train[i]
            if t is not None and not (isinstance(t, str) and t in lookup):
                raise BayesplitError(
                    f"design column 'train_domain' has {_typed(t)} (row {i}), not a domain of "
                    f"this truth ({', '.join(self.domains)}); use None for a general model"
                )
            if t is None and cols["spec_tokens"][i] > 0:
                raise BayesplitError(
                    f"design row {i} has spec_tokens > 0 but no train_domain: a specialist "
                    "needs the domain it was trained on"
                )
            rows.append(
                {
                    "params": float(cols["params"][i]),
                    "pretrain_tokens": float(cols["pretrain_tokens"][i]),
                    "spec_tokens": float(cols["spec_tokens"][i]),
                    "seed": seeds[i],
                    "train_domain": t,
                    "run_id": run_ids[i],
                    "trunk_id": trunks[i],
                    "evals": list(range(len(self.domains))) if t is None else [lookup[t]],
                }
            )
        return rows

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
        """The truth as a YAML/JSON-ready dict (the format :func:`load_truth` reads);
        ``per_domain`` is written where the pooling is not the law's own, so the dict
        reads back as the same truth."""
        try:
            own = get_law(self.law.name).per_domain
        except BayesplitError:  # a Law object that was never registered
            own = None
        pooling = {}
        if self.law.per_domain != own:
            pooling = {"per_domain": list(self.law.per_domain)}
        return {
            "law": self.law.name,
            **pooling,
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
        if not isinstance(d, Mapping):
            raise BayesplitError(
                f"ground truth must be a mapping with law, domains, params; got {_typed(d)}"
            )
        try:
            unknown = sorted(map(str, set(d) - set(_TRUTH_KEYS)))
            if unknown:
                raise BayesplitError(
                    f"ground truth has unknown keys {unknown}; it takes {', '.join(_TRUTH_KEYS)}"
                )
            name = d["law"]
            if not isinstance(name, str):  # a list was "unhashable type: 'list'"
                raise BayesplitError(f"ground truth law must be a law name, got {short_repr(name)}")
            law = get_law(name)
            if "per_domain" in d:
                law = law.with_pooling(
                    _names(d["per_domain"], "ground truth per_domain", empty_ok=True)
                )
            ref = d.get("reference", {})
            if not isinstance(ref, Mapping):
                raise BayesplitError(
                    "ground truth reference must be a mapping of params, tokens, loss; "
                    f"got {short_repr(ref)}"
                )
            unknown = sorted(map(str, set(ref) - {"params", "tokens", "loss"}))
            if unknown:
                raise BayesplitError(
                    f"ground truth reference has unknown keys {unknown}; "
                    "it takes params, tokens, loss"
                )
            domains = d["domains"]
            if isinstance(domains, str) or not isinstance(domains, list | tuple):
                raise BayesplitError(
                    f"ground truth domains must be a list, got {short_repr(domains)}"
                )
            if not isinstance(d["params"], Mapping):
                raise BayesplitError("ground truth params must be a mapping of name: value")
            return cls(
                law=law,
                domains=tuple(domains),
                params=dict(d["params"]),
                reference=Reference(
                    params=_reference_value(ref, "params", 1e8),
                    tokens=_reference_value(ref, "tokens", 1e10),
                    loss=_reference_value(ref, "loss", 3.0),
                ),
                noise=d.get("noise", {}),  # made in __post_init__, after the law's checks
            )
        except KeyError as exc:
            raise BayesplitError(f"ground truth is missing {exc}") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, BayesplitError):
                raise
            raise BayesplitError(f"bad ground truth: {' '.join(str(exc).split())}") from None


#: The keys a ground-truth file may have (:meth:`GroundTruth.to_dict` writes
#: ``per_domain`` only where it changes the law's pooling).
def _reference_value(ref: dict, name: str, default: float) -> float:
    """A reference scale from a truth file: a number, or text YAML did not read as one
    (PyYAML reads ``1e8`` as text); ``true`` is not 1 (it became N = 1, refused later as
    run-table rows in the wrong unit)."""
    value = ref.get(name, default)
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise BayesplitError(
            f"ground truth reference {name} must be a finite number > 0, got {short_repr(value)}"
        ) from None


_TRUTH_KEYS = ("law", "per_domain", "domains", "params", "reference", "noise")


def _value_text(v) -> str:
    v = np.asarray(v, dtype=float)
    return f"{float(v):.4g}" if not v.ndim else "[" + ", ".join(f"{x:.4g}" for x in v) + "]"


def _shown(v: np.ndarray):
    """A parameter value for a message: a number, or a list of numbers."""
    return v.tolist() if v.ndim else float(v)


_NOISE_KEYS = ("sigma", "seed_sd", "hetero", "compute_ref")


def _noise(value) -> Noise:
    """A :class:`Noise`, or one from a mapping of its fields (a truth file's ``noise``)."""
    if isinstance(value, Noise):
        return value
    if not isinstance(value, Mapping):
        raise BayesplitError(
            f"ground truth noise must be a Noise or a mapping of {', '.join(_NOISE_KEYS)}; "
            f"got {short_repr(value)}"
        )
    unknown = sorted(map(str, set(value) - set(_NOISE_KEYS)))
    if unknown:  # was "Noise.__init__() got an unexpected keyword argument"
        raise BayesplitError(
            f"ground truth noise has unknown keys {unknown}; it takes {', '.join(_NOISE_KEYS)}"
        )
    return Noise(**value)


def _param_value(name: str, value) -> np.ndarray:
    """A truth parameter as a float array: a number, or a list of numbers (one per domain).

    Text and bools are refused, as everywhere else in a truth (numpy read ``"0.6"`` as
    0.6 and ``true`` as 1.0).
    """

    def refuse():
        raise BayesplitError(
            f"ground truth parameter {name} is not a number: {short_repr(value)}; "
            "give a number or a list of numbers, one per domain"
        )

    if is_number(value):
        return np.asarray(_float(value))
    if isinstance(value, np.ndarray) and value.dtype.kind in "iuf":
        return value.astype(float)
    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        entries = value.ravel().tolist()
    elif isinstance(value, list | tuple):
        entries = list(value)
    else:
        refuse()
    if not all(is_number(x) for x in entries):  # a nested list too
        refuse()
    return np.asarray([_float(x) for x in entries])


def _float(x) -> float:
    """A number as a float; an integer of 400 digits is no float: infinite, refused as "not
    finite" (NaN stays NaN: the message showed it as inf)."""
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


def _names(value, what: str, empty_ok: bool = False) -> list[str]:
    """Names through the shared validator (one string is one name, not its letters), and
    at least one unless ``empty_ok``."""
    if value is None:  # names() lets None through as "not given"; here names are needed
        raise BayesplitError(f"{what} must be names (strings), got None")
    out = names(value, what)
    if not out and not empty_ok:
        raise BayesplitError(f"{what} is empty: give at least one name")
    return out


def _count_values(value, what: str, zero_ok: bool = False) -> np.ndarray:
    """N, D or D' through the shared ``counts`` validator, keeping the caller's shape (a
    number stays 0-d; a 2-D grid of points stays 2-D)."""
    if isinstance(value, np.ndarray) and value.ndim > 1:
        return counts(value.reshape(-1), what, zero_ok).reshape(value.shape)
    return counts(value, what, zero_ok).reshape(np.shape(value))


def _blank(x) -> bool:
    """None, NaN or pd.NA: a cell left empty."""
    if x is None or x is pd.NA:
        return True
    return isinstance(x, float | np.floating) and math.isnan(x)


def _design_counts(col: pd.Series, name: str, zero_ok: bool = False) -> np.ndarray:
    """A design column of N, D or D': numbers (not text or bools), finite and > 0 (>= 0)."""
    values = col.tolist()
    for i, x in enumerate(values):
        if not is_number(x):
            raise BayesplitError(
                f"design column {name!r} must hold numbers, got {_typed(x)} (row {i})"
            )
    arr = np.asarray(values, dtype=float)
    ok = np.isfinite(arr) & ((arr >= 0) if zero_ok else (arr > 0))
    if not ok.all():
        i = int(np.argmin(ok))
        raise BayesplitError(
            f"design column {name!r} must be finite and {'>= 0' if zero_ok else '> 0'}, "
            f"got {arr[i]:g} (row {i})"
        )
    return arr


def _design_seeds(col: pd.Series) -> list[int]:
    """A design's ``seed`` column: whole numbers that fit a 64-bit integer, as in run tables."""
    out = []
    for i, x in enumerate(col.tolist()):
        if isinstance(x, numbers.Integral) and not isinstance(x, bool):
            whole = True
        else:
            whole = is_number(x) and math.isfinite(x) and float(x).is_integer()
        if whole and -(2**63) <= int(x) <= 2**63 - 1:
            out.append(int(x))
            continue
        raise BayesplitError(
            "design column 'seed' must hold whole numbers between -2^63 and 2^63 - 1, "
            f"got {_typed(x)} (row {i})"
        )
    return out


def _design_labels(design: pd.DataFrame, name: str) -> list[str | None]:
    """``run_id`` or ``trunk_id`` per row: text, or None where the column or a cell is empty."""
    if name not in design.columns:
        return [None] * len(design)
    return [None if _blank(x) or str(x) == "" else str(x) for x in design[name].tolist()]


def _truth_loader():
    """``yaml.SafeLoader`` that also reads ``1e8`` and ``5e-2`` as numbers (YAML 1.2; PyYAML
    reads them as text). Parameters refuse text, so a plainly written number must not be
    text, while a quoted ``"0.6"`` still is."""
    import re

    from bayesplit._io import strict_yaml_loader

    class TruthLoader(strict_yaml_loader()):  # a key given twice is refused
        pass

    TruthLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
        list("-+.0123456789"),
    )
    return TruthLoader


def load_truth(path: str | Path) -> GroundTruth:
    """Read a ground truth from YAML (a safe loader; never evaluated)."""
    import yaml

    p = check_path(path)
    if not p.exists():
        raise BayesplitError(f"no such ground-truth file: {p}")
    if not p.is_file():
        raise BayesplitError(f"ground truth {p} is not a file")
    try:
        # UTF-8 whatever the locale: an ASCII locale refused a "café" comment
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_truth_loader())  # a SafeLoader
    except UnicodeDecodeError:
        raise BayesplitError(f"{p}: not a YAML text file") from None
    except yaml.YAMLError as exc:
        raise BayesplitError(f"{p}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, Mapping):
        raise BayesplitError(f"{p}: expected a mapping with law, domains, params")
    return GroundTruth.from_dict(data)


def student_t_sd(sigma, nu):
    """Standard deviation of a Student-t of scale ``sigma`` and ``nu`` degrees of freedom,
    ``sigma · √(ν / (ν − 2))`` (infinite for ν <= 2): the Gaussian sd of the same spread."""
    sigma, nu = np.asarray(sigma, float), np.asarray(nu, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(nu > 2, sigma * np.sqrt(nu / np.where(nu > 2, nu - 2, 1.0)), np.inf)


def truth_from_posterior(
    posterior, draw: int | str = "median", noise: Noise | None = None, *, force: bool = False
) -> GroundTruth:
    """A ground truth from a fitted posterior: one draw (a whole number from 0 to
    ``posterior.n_draws - 1``), or the per-parameter ``"median"``. A posterior that failed
    its diagnostics gate is refused unless ``force``, as the decisions refuse it.

    Its noise (unless ``noise``) is the fit's, as the simulator draws it: the Gaussian sd of
    the fit's Student-t measurement noise, ``σ·√(ν/(ν−2))`` (1.29 σ at ν = 5; the scale σ
    itself made simulated campaigns 20–25% less noisy than the fit), and ``run_sd`` as the
    seed shift ``seed_sd`` (posterior medians)."""
    from bayesplit.posterior import check_posterior

    check_posterior(posterior)
    force = check_flag(force, "force")
    last = posterior.n_draws - 1
    if not (isinstance(draw, str) and draw == "median"):
        if isinstance(draw, bool) or not isinstance(draw, numbers.Integral):
            raise BayesplitError(
                f"draw must be 'median' or a whole number from 0 to {last}, got {_typed(draw)}"
            )
        if not 0 <= int(draw) <= last:
            raise BayesplitError(
                f"draw must be between 0 and {last} (the posterior has {last + 1} draws), "
                f"got {int(draw)}"
            )
    if noise is not None:
        noise = _noise(noise)
    posterior.require_ok(force)
    draws = posterior.draws()
    if isinstance(draw, str):
        params = {k: np.median(v, axis=0) for k, v in draws.items()}
    else:
        params = {k: v[int(draw)] for k, v in draws.items()}
    if noise is None:
        nd = posterior.noise_draws()
        sd = float(np.median(student_t_sd(nd["sigma"], nd["nu"])))
        if not math.isfinite(sd):
            raise BayesplitError(
                "the posterior's Student-t noise has ν <= 2 in half its draws or more, so "
                "no standard deviation for the simulator's Gaussian noise: give the noise "
                "yourself (in Python: noise=Noise(sigma=...); on the command line, a YAML "
                "truth file with a noise: section)"
            )
        noise = Noise(sigma=sd, seed_sd=float(np.median(nd["run_sd"])))
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
    truths at their nominal rate. ``seed`` is a whole number from 0 to 2^63 - 1.
    """
    from bayesplit._jax import configure
    from bayesplit.model import prepare
    from bayesplit.prior import sample_prior
    from bayesplit.runs import load_runs

    seed = check_seed(seed)
    if reference is not None and not isinstance(reference, Reference):
        raise BayesplitError(
            f"reference must be a Reference(params, tokens, loss) or None, got {_typed(reference)}"
        )
    law_obj = get_law(law)
    # float64 and 64-bit seeds, as in a fit: the same seed draws the same truth whether or
    # not a fit ran earlier in the process, and seeds 2**32 apart differ
    configure()
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
        # the Gaussian sd of the t noise the rows were drawn with (its scale read as an sd)
        Noise(sigma=float(student_t_sd(sim["sigma"][0], spec.student_df))),
    )
    drawn = data.rows.reset_index(drop=True).copy()
    with np.errstate(all="ignore"):
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
    """Every (N, D) general run, plus every (N, D, D', k) specialist branched from it.

    Sizes are numbers or lists of numbers (``spec_tokens`` may be empty: general runs
    only; a D' of 0 adds nothing); ``domains`` a name or a list of names; ``seeds`` whole
    numbers from 0 to 2^63 - 1.
    """
    params = counts(params, "params")
    pretrain_tokens = counts(pretrain_tokens, "pretrain_tokens")
    if isinstance(spec_tokens, list | tuple | np.ndarray | pd.Series) and not len(spec_tokens):
        spec_tokens = np.zeros(0)
    else:
        spec_tokens = counts(spec_tokens, "spec_tokens", zero_ok=True)
    domains = _names(domains, "domains")
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        seeds = (seeds,)  # one seed
    if not isinstance(seeds, Sequence | np.ndarray | pd.Series) or isinstance(seeds, str):
        raise BayesplitError(f"seeds must be a list of whole numbers, got {_typed(seeds)}")
    seeds = [check_seed(s, "each of seeds") for s in seeds]
    if not seeds:
        raise BayesplitError("seeds is empty: give at least one seed")
    spec_tokens = spec_tokens[spec_tokens > 0]  # a D' of 0 is the general run, always there
    for what, values in (
        ("params", params),
        ("pretrain_tokens", pretrain_tokens),
        ("spec_tokens", spec_tokens),
        ("seeds", seeds),
    ):
        seen = set()
        for v in values:
            if v in seen:  # two runs of one name, refused later as duplicate run-table rows
                raise BayesplitError(f"{what} repeats {v:g}: give each value once")
            seen.add(v)
    # ids name sizes to 3 significant digits, more where that would name two sizes alike
    n_ids, d_ids, dp_ids = (_labels(v) for v in (params, pretrain_tokens, spec_tokens))
    rows = []
    for s in seeds:
        for n, n_id in zip(params, n_ids, strict=True):
            trunk = f"trunk-N{n_id}-s{s}"
            for d, d_id in zip(pretrain_tokens, d_ids, strict=True):
                rows.append(
                    {
                        "run_id": f"{trunk}-D{d_id}",
                        "trunk_id": trunk,
                        "seed": s,
                        "params": n,
                        "pretrain_tokens": d,
                        "spec_tokens": 0.0,
                        "train_domain": None,
                    }
                )
                for dp, dp_id in zip(spec_tokens, dp_ids, strict=True):
                    for k in domains:
                        rows.append(
                            {
                                "run_id": f"{trunk}-D{d_id}-{k}-Dp{dp_id}",
                                "trunk_id": trunk,
                                "seed": s,
                                "params": n,
                                "pretrain_tokens": d,
                                "spec_tokens": dp,
                                "train_domain": k,
                            }
                        )
    return pd.DataFrame(rows)


def _labels(values) -> list[str]:
    """Distinct numbers as short distinct labels: ``1e+07``, or ``1.0001e+07`` beside it."""
    for digits in range(3, 18):
        out = [f"{v:.{digits}g}" for v in values]
        if len(set(out)) == len(out):
            return out
    return [repr(float(v)) for v in values]


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
    if not isinstance(law, str) or law not in _EXAMPLES:
        raise BayesplitError(
            f"no example parameters for law {law!r}; choose from {', '.join(_EXAMPLES)}"
        )
    domains = _names(domains, "domains")  # one domain as a string, not its letters
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
        Noise(sigma=0.005) if noise is None else _noise(noise),
    )
