"""The same hierarchical model in PyMC, built from the same law definition.

An independent implementation of the model (different autodiff, different
sampler: nutpie when installed, else PyMC's NUTS) is the cross-check that the
NumPyro posterior is the posterior of the model we wrote down. Variable names
and dims match :func:`bayesplit.model.numpyro_model`, so everything downstream
reads either posterior the same way.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections.abc import Iterator

import numpy as np

from bayesplit.errors import BayesplitError
from bayesplit.laws import Inputs, get_ops
from bayesplit.model import ModelData, ModelSpec, to_natural


def build_pymc_model(law, spec: ModelSpec, data: ModelData):
    """A ``pymc.Model`` equivalent to :func:`bayesplit.model.numpyro_model`."""
    try:
        import pymc as pm
    except ImportError:
        raise BayesplitError("the PyMC backend needs pymc: pip install 'bayesplit[pymc]'") from None

    ops = get_ops("pytensor")
    log_loss_scale = math.log(spec.reference.loss)
    pooled = set(spec.pooled(law))
    coords = {"domain": list(spec.domains), "run": list(spec.runs), "obs": np.arange(len(data))}
    with pm.Model(coords=coords) as model:
        dom = pm.Data("domain_idx", data.domain.astype("int64"), dims="obs")
        row_params = {}
        for p in law.params:
            loc = p.prior_loc(log_loss_scale)
            if p.name in pooled:
                mu = pm.Normal(f"{p.name}_mu", loc, p.scale)
                tau = pm.HalfNormal(f"{p.name}_tau", p.group_scale)
                if spec.centered:
                    u = pm.Normal(f"{p.name}_k", mu, tau, dims="domain")
                else:
                    u = mu + tau * pm.Normal(f"{p.name}_z", 0.0, 1.0, dims="domain")
                value = pm.Deterministic(p.name, to_natural(p.support, u, ops), dims="domain")
                row_params[p.name] = value[dom]
            elif p.per_domain:
                u = pm.Normal(f"{p.name}_u", loc, p.scale)
                value = pm.Deterministic(
                    p.name, to_natural(p.support, u, ops) * np.ones(spec.n_domains), dims="domain"
                )
                row_params[p.name] = value[dom]
            else:
                u = pm.Normal(f"{p.name}_u", loc, p.scale)
                row_params[p.name] = pm.Deterministic(p.name, to_natural(p.support, u, ops))
        mean = law.evaluate(ops, row_params, Inputs(n=data.n, d=data.d, dp=data.dp))
        if spec.run_effect:
            run_sd = pm.HalfNormal("run_sd", spec.run_sd_scale)
            effect = run_sd * pm.Normal("run_z", 0.0, 1.0, dims="run")
            mean = mean + effect[data.run]
        sigma = pm.HalfNormal("sigma", spec.sigma_scale)
        nu = pm.Gamma("nu", 2.0, 0.1) if spec.student_df is None else spec.student_df
        pm.StudentT("log_loss", nu=nu, mu=mean, sigma=sigma, observed=data.y, dims="obs")
    return model


@contextlib.contextmanager
def _pymc_log_level(level: int) -> Iterator[None]:
    log = logging.getLogger("pymc")
    before = log.level
    log.setLevel(max(level, before))
    try:
        with warnings.catch_warnings():
            # two library notices of five lines and one broke the CLI's one line per
            # problem on every fit: PyTensor's BLAS advice for pip installs (its C code runs
            # without BLAS, slower, which the sampling time already shows), and PyMC's
            # "experimental" dense mass matrix, which the backend asks for on purpose
            warnings.filterwarnings("ignore", "PyTensor could not link to a BLAS", UserWarning)
            warnings.filterwarnings(
                "ignore", "QuadPotentialFullAdapt is an experimental", UserWarning
            )
            yield
    finally:
        log.setLevel(before)


def sample_pymc(
    law,
    spec,
    data,
    *,
    chains,
    draws,
    warmup,
    seed,
    target_accept,
    progress,
    sampler="pymc",
    dense_mass=True,
):
    """Sample the PyMC model; returns (InferenceData, sampler name).

    ``sampler="pymc"``: PyMC's NUTS with a dense (full) mass matrix adapted during
    warmup, the counterpart of NumPyro's ``dense_mass=True`` (``dense_mass=False``: a
    diagonal one); law terms are strongly correlated and a diagonal mass matrix mixes
    badly on them. ``sampler="nutpie"``:
    nutpie's gradient-based diagonal adaptation (fast, but measured to mix worse on
    these laws; see experiments/benchmarks/fit_speed.md).
    """
    import pymc as pm

    model = build_pymc_model(law, spec, data)
    if sampler == "nutpie":
        try:
            import nutpie
        except ImportError:
            raise BayesplitError(
                '--backend nutpie (in Python: backend="nutpie") needs nutpie: '
                "pip install 'bayesplit[pymc]'"
            ) from None
        with _pymc_log_level(logging.WARNING):
            compiled = nutpie.compile_pymc_model(model)
            idata = nutpie.sample(
                compiled,
                draws=draws,
                tune=warmup,
                chains=chains,
                seed=seed,
                progress_bar=progress,
                target_accept=target_accept,
                cores=min(chains, 4),
                save_warmup=False,
            )
    else:
        # PyMC's INFO lines ("Auto-assigning NUTS sampler...") repeat the progress bar
        # and broke the CLI's one-line-per-problem stderr; warnings still show
        with model, _pymc_log_level(logging.WARNING), _interrupted_before_a_trace():
            idata = pm.sample(
                draws=draws,
                tune=warmup,
                chains=chains,
                cores=min(chains, 4),
                random_seed=seed,
                init="jitter+adapt_full" if dense_mass else "jitter+adapt_diag",
                target_accept=target_accept,
                progressbar=progress,
                idata_kwargs={"log_likelihood": False},
                compute_convergence_checks=False,
                # JAX threads live in this process; forking it can deadlock
                mp_ctx="spawn",
            )
    if _cut_short(idata.posterior, chains, draws, padded=sampler == "nutpie"):
        raise KeyboardInterrupt
    with model, _pymc_log_level(logging.WARNING):
        pm.compute_log_likelihood(
            idata, var_names=["log_loss"], progressbar=False, extend_inferencedata=True
        )
    stats = idata.sample_stats
    if "diverging" not in stats and "divergences" in stats:
        stats["diverging"] = stats["divergences"] > 0
    keep = {
        g: getattr(idata, g)
        for g in ("posterior", "log_likelihood", "observed_data")
        if g in idata.groups()
    }
    from bayesplit import _arviz

    return _arviz.InferenceData(sample_stats=stats, **keep), sampler


@contextlib.contextmanager
def _interrupted_before_a_trace() -> Iterator[None]:
    # a Ctrl-C before PyMC's first kept draw surfaces as this ValueError (a traceback)
    try:
        yield
    except ValueError as exc:
        if "Not enough samples to build a trace" in str(exc):
            raise KeyboardInterrupt from None
        raise


def _cut_short(posterior, chains: int, draws: int, *, padded: bool) -> bool:
    """Whether a sampler returned fewer draws than asked: PyMC and nutpie catch Ctrl-C and
    return what they have, which `fit` saved as a finished posterior (636 of 50,000 draws)
    and exited 0. PyMC may keep fewer chains at full length instead, and nutpie pads the
    chains it did not finish with NaN."""
    if posterior.sizes["chain"] != chains or posterior.sizes["draw"] != draws:
        return True
    return padded and any(bool(np.isnan(v.values).any()) for v in posterior.data_vars.values())
