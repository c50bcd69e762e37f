"""The hierarchical model of a law across domains (DESIGN.md, "The hierarchical model").

* Per-domain parameters are partially pooled, non-centred in unconstrained space:
  ``u_k = μ + τ·z_k`` with ``z_k ~ Normal(0, 1)``, ``τ ~ HalfNormal(group_scale)``.
* The likelihood is Student-t on log loss, with one noise scale σ for all domains.
* An optional run effect ``r_j ~ Normal(0, σ_run)`` is shared by every row of a
  run (all its eval domains and checkpoints), so rows of one run are not treated
  as independent evidence and seed-to-seed variation has its own term.

The model is a plain NumPyro function; :mod:`bayesplit.model_pymc` builds the
same model in PyMC from the same law definition.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from bayesplit._parse import check_flag, is_number, names
from bayesplit.errors import BayesplitError
from bayesplit.laws import Inputs, Law
from bayesplit.runs import modelled_rows

#: Prior scales of the noise terms, on log loss (0.05 ≈ 5% relative noise).
SIGMA_SCALE = 0.05
RUN_SD_SCALE = 0.03


@dataclass(frozen=True)
class Reference:
    """Scales that make law inputs and priors order one.

    ``params`` (N_ref) and ``tokens`` (T_ref) are powers of ten near the
    geometric centre of the data; ``loss`` (L̄) is the median observed loss.
    """

    params: float
    tokens: float
    loss: float

    def scale(self, params, pretrain_tokens, spec_tokens) -> Inputs:
        """Scaled inputs n = N/N_ref, d = D/T_ref, d' = D'/T_ref."""
        return Inputs(
            n=np.asarray(params, dtype=float) / self.params,
            d=np.asarray(pretrain_tokens, dtype=float) / self.tokens,
            dp=np.asarray(spec_tokens, dtype=float) / self.tokens,
        )


def reference_scales(runs: pd.DataFrame) -> Reference:
    """Powers of ten at the centre of the data, and the median loss."""

    def p10(x):
        return float(10.0 ** np.round(np.mean(np.log10(np.asarray(x, dtype=float)))))

    return Reference(
        params=p10(runs["params"]),
        tokens=p10(runs["pretrain_tokens"]),
        loss=float(np.median(runs["loss"])),
    )


@dataclass(frozen=True)
class ModelSpec:
    """Everything about the model except the law and the numbers."""

    domains: tuple[str, ...]
    runs: tuple[str, ...]
    reference: Reference
    run_effect: bool
    student_df: float | None = 5.0  #: None: learn ν ~ Gamma(2, 0.1)
    centered: bool = False  #: centred hierarchy (strong data per domain) instead of non-centred
    sigma_scale: float = SIGMA_SCALE
    run_sd_scale: float = RUN_SD_SCALE

    @property
    def n_domains(self) -> int:
        """Number of domains K."""
        return len(self.domains)

    def pooled(self, law: Law) -> list[str]:
        """Parameters that get a hierarchy; with one domain there is nothing to pool."""
        return law.per_domain if self.n_domains > 1 else []

    def to_dict(self) -> dict:
        """The model structure as a JSON-ready dict (stored with the posterior)."""
        d = asdict(self)
        d["domains"] = list(self.domains)
        d["runs"] = list(self.runs)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        """The spec saved in a posterior's metadata (inverse of ``to_dict``)."""
        d = dict(d)
        d["domains"] = tuple(d["domains"])
        d["runs"] = tuple(d["runs"])
        d["reference"] = Reference(**d["reference"])
        return cls(**d)


@dataclass(frozen=True)
class ModelData:
    """Arrays the model conditions on: one entry per modelled row."""

    n: np.ndarray
    d: np.ndarray
    dp: np.ndarray
    domain: np.ndarray  #: index into ModelSpec.domains
    run: np.ndarray  #: index into ModelSpec.runs
    y: np.ndarray | None  #: log loss, None for prior predictive
    rows: pd.DataFrame = field(repr=False)  #: the run-table rows behind the arrays

    def __len__(self) -> int:
        return len(self.n)


def run_groups(runs: pd.DataFrame) -> pd.Series:
    """Which rows share a run effect: the trunk a branch came from, else the run itself."""
    if "trunk_id" in runs.columns:
        trunk = runs["trunk_id"].astype("object")
        return trunk.where(trunk.notna(), runs["run_id"]).astype(str)
    return runs["run_id"].astype(str)


def prepare(
    runs: pd.DataFrame,
    law: Law,
    *,
    domains: list[str] | None = None,
    run_effect: bool | str = "auto",
    student_df: float | None = 5.0,
    centered: bool = False,
    reference: Reference | None = None,
) -> tuple[ModelSpec, ModelData]:
    """Select the rows a law describes and turn them into model arrays.

    Parameters
    ----------
    runs
        A validated run table.
    law
        The law to fit; a single-stage law (``uses_spec_tokens=False``) still
        sees specialized rows, with D' counted as ordinary tokens.
    domains
        Restrict to these eval domains (default: all, sorted).
    run_effect
        ``"auto"``: on when some run (or trunk) has several rows for one domain, i.e.
        several checkpoints or branches whose errors are correlated; True or False.
    student_df
        Degrees of freedom of the Student-t likelihood; None to learn them.
    centered
        Centred hierarchy (True) or non-centred (False, the default). The textbook rule
        (centred once every domain has many rows) lost on every data set measured:
        along the E-exponent ridge a domain's parameters stay weakly identified however
        many rows it has, and the centred fits diverged (experiments/benchmarks/
        parameterization.md: 1 of 15 fits passed the gate centred, 9 of 15 non-centred).
    reference
        Input/prior scales; computed from the data by default.
    """
    if not (run_effect == "auto" or isinstance(run_effect, (bool, np.bool_))):
        # bool("false") is True: a string other than "auto" is a typo, not a choice
        raise BayesplitError(f"run_effect must be True, False or 'auto', got {run_effect!r}")
    if student_df is not None and not (
        is_number(student_df) and math.isfinite(student_df) and student_df > 0
    ):
        # NUTS met 0, a negative or an infinite ν as "StudentT distribution got invalid df
        # parameter" (inf gives a NaN likelihood), and text as a JAX TypeError
        raise BayesplitError(
            f"student_df must be a finite number > 0 (e.g. 1e6 for a nearly normal "
            f"likelihood) or None to learn it, got {student_df!r}"
        )
    rows = runs[modelled_rows(runs).to_numpy()]
    domains = names(domains)
    if domains is not None and not domains:
        raise BayesplitError("domains is empty: give at least one, or None for all")
    if domains is not None:
        unknown = sorted(set(domains) - set(rows["eval_domain"]))
        if unknown:
            raise BayesplitError(
                f"no modelled rows for domain(s) {', '.join(unknown)}; the table's domains: "
                f"{', '.join(sorted(rows['eval_domain'].unique()))}"
            )
        rows = rows[rows["eval_domain"].isin(domains)]
    if len(rows) == 0:
        raise BayesplitError(
            "no rows to fit: every row is a specialist evaluated on another domain"
        )
    rows = rows.reset_index(drop=True)
    dom = tuple(sorted(rows["eval_domain"].unique())) if domains is None else tuple(domains)
    groups = run_groups(rows)
    run_ids = tuple(pd.unique(groups))
    if run_effect == "auto":
        repeated = pd.DataFrame({"g": groups, "k": rows["eval_domain"]}).duplicated().any()
        run_effect = bool(repeated) and len(run_ids) > 1
    if reference is not None and not (
        isinstance(reference, Reference)
        and all(
            is_number(v) and math.isfinite(v) and v > 0
            for v in (reference.params, reference.tokens, reference.loss)
        )
    ):
        # a mapping failed with "'dict' object has no attribute 'scale'"; a scale of 0 fitted
        # infinite inputs without complaint (every transition divergent)
        raise BayesplitError(
            "reference must be a bayesplit.model.Reference with finite params, tokens and "
            f"loss > 0 (e.g. another posterior's .spec.reference), got {reference!r}"
        )
    ref = reference or reference_scales(rows)
    # "auto" was a value until stop 22; bool("auto") is True
    centered = check_flag(centered, "centered")
    spec = ModelSpec(
        domains=dom,
        runs=run_ids,
        reference=ref,
        run_effect=bool(run_effect),
        student_df=student_df,
        centered=bool(centered),
    )
    x = ref.scale(rows["params"], rows["pretrain_tokens"], rows["spec_tokens"])
    dom_index = {k: i for i, k in enumerate(dom)}
    run_index = {r: i for i, r in enumerate(run_ids)}
    data = ModelData(
        n=x.n,
        d=x.d,
        dp=x.dp,
        domain=rows["eval_domain"].map(dom_index).to_numpy(dtype=np.int32),
        run=groups.map(run_index).to_numpy(dtype=np.int32),
        y=np.log(rows["loss"].to_numpy(dtype=float)),
        rows=rows,
    )
    return spec, data


# -- unconstrained <-> natural ------------------------------------------------
def to_natural(support: str, u, ops):
    """Map an unconstrained value to the parameter's support (exp, sigmoid or identity)."""
    if support == "positive":
        return ops.exp(u)
    if support == "unit":
        return 1.0 / (1.0 + ops.exp(-u))
    return u


def to_unconstrained(support: str, v):
    """Inverse of :func:`to_natural` (log, logit or identity)."""
    v = np.asarray(v, dtype=float)
    if support == "positive":
        return np.log(v)
    if support == "unit":
        return np.log(v / (1 - v))
    return v


def model_arrays(data: ModelData, pad_to: int | None = None) -> dict[str, np.ndarray]:
    """The arrays :func:`numpyro_model` conditions on, optionally padded to a fixed length.

    Padding (with a ``mask`` that switches padded rows off) keeps array shapes fixed
    when the same model is refitted on growing data, so JAX compiles it once.
    """
    out = {"n": data.n, "d": data.d, "dp": data.dp, "domain": data.domain, "run": data.run}
    if pad_to is None:
        return out
    m = len(data)
    if pad_to < m:
        raise BayesplitError(f"cannot pad {m} rows to {pad_to}")
    fill = {"n": 1.0, "d": 1.0, "dp": 0.0, "domain": 0, "run": 0}
    out = {
        k: np.concatenate([v, np.full(pad_to - m, fill[k], dtype=v.dtype)]) for k, v in out.items()
    }
    out["mask"] = np.arange(pad_to) < m
    return out


def numpyro_model(law: Law, spec: ModelSpec, x: dict, y=None):
    """The hierarchical model as a NumPyro program (``y=None`` samples the prior predictive).

    ``x`` holds the arrays of :func:`model_arrays`: scaled inputs ``n, d, dp``, the
    ``domain`` and ``run`` index of each row, and optionally a ``mask`` of real rows.
    """
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    from bayesplit.laws import get_ops

    ops = get_ops("jax")
    log_loss_scale = math.log(spec.reference.loss)
    pooled = set(spec.pooled(law))
    K = spec.n_domains
    row_params = {}
    for p in law.params:
        loc = p.prior_loc(log_loss_scale)
        if p.name in pooled:
            mu = numpyro.sample(f"{p.name}_mu", dist.Normal(loc, p.scale))
            tau = numpyro.sample(f"{p.name}_tau", dist.HalfNormal(p.group_scale))
            with numpyro.plate("domain", K):
                if spec.centered:
                    u = numpyro.sample(f"{p.name}_k", dist.Normal(mu, tau))
                else:
                    u = mu + tau * numpyro.sample(f"{p.name}_z", dist.Normal(0.0, 1.0))
            value = numpyro.deterministic(p.name, to_natural(p.support, u, ops))
            row_params[p.name] = value[x["domain"]]
        elif p.per_domain:  # one domain: a per-domain parameter is a single value
            u = numpyro.sample(f"{p.name}_u", dist.Normal(loc, p.scale))
            value = numpyro.deterministic(
                p.name, jnp.broadcast_to(to_natural(p.support, u, ops), (K,))
            )
            row_params[p.name] = value[x["domain"]]
        else:
            u = numpyro.sample(f"{p.name}_u", dist.Normal(loc, p.scale))
            row_params[p.name] = numpyro.deterministic(p.name, to_natural(p.support, u, ops))

    mean = law.evaluate(ops, row_params, Inputs(n=x["n"], d=x["d"], dp=x["dp"]))
    if spec.run_effect:
        run_sd = numpyro.sample("run_sd", dist.HalfNormal(spec.run_sd_scale))
        with numpyro.plate("run", len(spec.runs)):
            # Always non-centred: run effects are small next to the noise and each run has
            # few rows, exactly the case where a centred effect makes a funnel.
            effect = run_sd * numpyro.sample("run_z", dist.Normal(0.0, 1.0))
        mean = mean + effect[x["run"]]
    sigma = numpyro.sample("sigma", dist.HalfNormal(spec.sigma_scale))
    if spec.student_df is None:
        nu = numpyro.sample("nu", dist.Gamma(2.0, 0.1))
    else:
        nu = spec.student_df
    likelihood = dist.StudentT(nu, mean, sigma)
    if "mask" in x:
        likelihood = likelihood.mask(x["mask"])
    with numpyro.plate("obs", len(x["n"])):
        numpyro.sample("log_loss", likelihood, obs=y)


def site_dims(law: Law, spec: ModelSpec) -> dict[str, list[str]]:
    """ArviZ dims of every site, so posteriors carry named coordinates."""
    dims: dict[str, list[str]] = {"log_loss": ["obs"], "run_z": ["run"], "run_effect": ["run"]}
    for p in law.params:
        if p.per_domain:
            dims[p.name] = ["domain"]
            dims[f"{p.name}_z"] = ["domain"]
            dims[f"{p.name}_k"] = ["domain"]
    return dims
