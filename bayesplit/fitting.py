"""Fitting a law to runs with NUTS: NumPyro by default, PyMC as a cross-check.

Sampling choices come from measurements on these machines (DESIGN.md, "Sampling
notes"): a dense mass matrix (law terms are strongly correlated), inputs scaled
to order one, target acceptance 0.9. The device is chosen by problem size.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import sys
import time
import warnings
from functools import partial

import numpy as np
import pandas as pd

from bayesplit import _arviz
from bayesplit._jax import CPU_DEVICES, reserve_cpu_devices
from bayesplit._parse import MAX_CHAINS, MAX_DRAWS, check_flag, check_seed, is_number
from bayesplit.diagnostics import MAX_TREE_DEPTH, Thresholds, check
from bayesplit.errors import BayesplitError
from bayesplit.laws import Law, get_law
from bayesplit.model import (
    ModelData,
    ModelSpec,
    Reference,
    model_arrays,
    numpyro_model,
    prepare,
    site_dims,
)
from bayesplit.posterior import Posterior, rows_as_constant_data
from bayesplit.prior import check_law_mean
from bayesplit.runs import load_runs

# again here: XLA_FLAGS set after `import bayesplit`, before JAX starts, lost the count
reserve_cpu_devices()

#: Cost of one NUTS leapfrog step (experiments/benchmarks/nuts_step_cost.md): a CPU core
#: steps one chain in about ``CPU_STEP_MS[0] + CPU_STEP_MS[1] * rows`` ms (a 2-core EPYC
#: machine with nothing else running; the H200 machine's cores, busy beside the GPU, took
#: 1.6-1.8 times as long); an H200 steps all chains at once in about
#: ``GPU_STEP_MS[0] + GPU_STEP_MS[1] * rows * chains`` ms, nearly flat, since at these sizes
#: it waits on kernel launches rather than arithmetic.
CPU_STEP_MS = (0.32, 1.5e-4)
GPU_STEP_MS = (1.1, 1.8e-7)
#: The GPU must be this many times faster per step to be chosen: its chains move in
#: lockstep, each step waiting for the longest tree, and a whole GPU fit was not timed.
GPU_MARGIN = 2.0

BACKENDS = ("numpyro", "pymc", "nutpie")
DEVICES = ("auto", "cpu", "gpu")


def gpu_available() -> bool:
    """True when JAX sees a CUDA device."""
    import jax

    try:
        return len(jax.devices("gpu")) > 0
    except RuntimeError:
        return False


def select_device(device: str, n_obs: int, chains: int) -> str:
    """``cpu`` or ``gpu`` for a problem of ``n_obs`` rows and ``chains`` chains."""
    device = "gpu" if device == "cuda" else device  # the trainer's (torch's) name for it
    if device not in DEVICES:
        raise BayesplitError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu":
        return "cpu"
    has_gpu = gpu_available()
    if device == "gpu":
        if not has_gpu:
            raise BayesplitError(
                '--device gpu (in Python: device="gpu") asked for, but JAX sees no GPU '
                "(install jax[cuda12] on a GPU machine)"
            )
        return "gpu"
    return "gpu" if has_gpu and gpu_pays(n_obs, chains) else "cpu"


def gpu_pays(n_obs: int, chains: int, cores: int | None = None) -> bool:
    """Whether a GPU steps ``chains`` chains over ``n_obs`` rows ``GPU_MARGIN`` times faster
    than this machine's CPU cores (``cores``: ``os.cpu_count()`` unless given).

    The CPU runs chains in parallel, one per core, when JAX has a host device for each
    (``XLA_FLAGS`` above), and one after another otherwise.
    """
    cores = max(1, cores or os.cpu_count() or 1)
    host_devices = max(4, cores)
    rounds = math.ceil(chains / cores) if chains <= host_devices else chains
    cpu_ms = (CPU_STEP_MS[0] + CPU_STEP_MS[1] * n_obs) * rounds
    gpu_ms = GPU_STEP_MS[0] + GPU_STEP_MS[1] * n_obs * chains
    return cpu_ms >= GPU_MARGIN * gpu_ms


def _check_sampler_args(
    chains: int, draws: int, warmup: int, target_accept: float
) -> tuple[int, int, int, float]:
    """The sampler settings checked, as plain Python numbers: NumPyro refuses a numpy
    integer for ``num_samples``, and the settings are saved as JSON with the posterior."""
    counts = (("chains", chains, MAX_CHAINS), ("draws", draws, MAX_DRAWS))
    for name, value, most in (*counts, ("warmup", warmup, MAX_DRAWS)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise BayesplitError(f"{name} must be a whole number, got {value!r}")
        if value > most:
            raise BayesplitError(f"{name} must be at most {most:,}, got {value}")
    if not is_number(target_accept):
        raise BayesplitError(f"target_accept must be a number in [0.5, 1), got {target_accept!r}")
    if chains < 1:
        raise BayesplitError(f"chains must be >= 1, got {chains}")
    if draws < 10:
        raise BayesplitError(f"draws must be >= 10, got {draws}")
    if warmup < 10:
        raise BayesplitError(f"warmup must be >= 10, got {warmup}")
    if not 0.5 <= target_accept < 1:
        raise BayesplitError(f"target_accept must be in [0.5, 1), got {target_accept}")
    return int(chains), int(draws), int(warmup), float(target_accept)


def check_fit_options(
    *,
    chains: int = 4,
    draws: int = 1000,
    warmup: int = 1000,
    seed: int = 0,
    device: str = "auto",
    backend: str = "numpyro",
    target_accept: float = 0.9,
) -> None:
    """Refuse sampler settings :func:`fit` would refuse, before any other work.

    ``fit`` checks them first too; commands that print something before they fit (a
    design warning, a progress line) call this beforehand, so a typo is one error line.
    A GPU asked for where JAX sees none is refused here as well.
    """
    if backend not in BACKENDS:
        raise BayesplitError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    _check_sampler_args(chains, draws, warmup, target_accept)
    check_seed(seed)
    if not isinstance(device, str) or device not in (*DEVICES, "cuda"):
        raise BayesplitError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device in ("gpu", "cuda"):
        if backend != "numpyro":
            raise BayesplitError(
                "the PyMC backend runs on CPU; use --backend numpyro (in Python: "
                'backend="numpyro") for a GPU'
            )
        select_device(device, 0, chains)  # refuses when JAX sees no GPU


#: ``fit``'s ``chain_method`` values (NumPyro's, and ``auto``; the PyMC backends ignore it).
CHAIN_METHODS = ("auto", "parallel", "vectorized", "sequential")


def _check_chain_method(chain_method, allowed: tuple[str, ...]) -> None:
    if chain_method not in allowed:
        raise BayesplitError(f"chain_method must be {', '.join(allowed)}, got {chain_method!r}")


def bars_show() -> bool:
    """Whether a sampler's progress bar is seen: on a terminal, or in a notebook (whose
    stderr is no terminal, so a minutes-long fit showed nothing); not in a log or a pipe,
    which would keep every redraw of the bar."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def fit(
    runs: pd.DataFrame | str,
    law: str | Law = "chinchilla",
    *,
    domains: list[str] | None = None,
    per_domain: list[str] | None = None,
    chains: int = 4,
    draws: int = 1000,
    warmup: int = 1000,
    seed: int = 0,
    device: str = "auto",
    backend: str = "numpyro",
    chain_method: str = "auto",
    run_effect: bool | str = "auto",
    student_df: float | None = 5.0,
    centered: bool = False,
    dense_mass: bool = True,
    target_accept: float = 0.9,
    thresholds: Thresholds | None = None,
    reference: Reference | None = None,
    progress: bool = True,
) -> Posterior:
    """Fit a hierarchical law to a run table with NUTS.

    Parameters
    ----------
    runs
        A run table (DataFrame or path); validated here.
    law
        A law name from :func:`bayesplit.laws.available_laws` or a :class:`Law`.
    domains
        Fit only these eval domains (default: all).
    per_domain
        Override which law parameters vary by domain (default: the law's own choice).
    chains, draws, warmup
        NUTS chains, kept draws per chain and warmup iterations per chain.
    seed
        The same seed gives the same posterior, for the same table in the same row order
        (the order of the rows and of their runs is part of the model's arrays).
    device
        ``"auto"`` (by problem size), ``"cpu"`` or ``"gpu"``.
    backend
        ``"numpyro"`` (default), ``"pymc"`` (the same model in PyMC, PyMC's NUTS with a
        dense mass matrix) or ``"nutpie"`` (the PyMC model sampled by nutpie).
        ``"pymc"`` runs its chains in spawned processes (forking a process with JAX's
        threads can deadlock), and a spawned process re-imports the calling script: in a
        script, call ``fit`` under ``if __name__ == "__main__":``, as with any
        multiprocessing code, or it hangs. Notebooks and the CLI need nothing.
    chain_method
        NumPyro's ``"parallel"``, ``"vectorized"`` or ``"sequential"``; ``"auto"``:
        vectorized on a GPU; parallel on CPU when JAX has a CPU device per chain (bayesplit
        asks XLA for one per core, at least 4, before JAX starts), else sequential.
    run_effect
        Rows of one run share a random effect: ``"auto"``, True or False.
    student_df
        Degrees of freedom of the Student-t likelihood on log loss; None learns them.
    centered
        Centred hierarchy (True) or non-centred (False, the default; see
        :func:`bayesplit.model.prepare`).
    dense_mass, target_accept
        NUTS settings.
    thresholds
        The diagnostics gate (default :class:`~bayesplit.diagnostics.Thresholds`).
    reference
        Input scales N_ref, T_ref and loss scale (default: from the data); fix it to
        compare coefficients across fits.
    progress
        Show the sampler's progress bar (on a terminal or in a notebook; not in a log).

    Returns
    -------
    Posterior
        Draws, diagnostics gate, law and settings; ``.save(path)`` writes netCDF.
    """
    check_fit_options(
        chains=chains,
        draws=draws,
        warmup=warmup,
        seed=seed,
        device=device,
        backend=backend,
        target_accept=target_accept,
    )
    seed = check_seed(seed)
    chains, draws, warmup, target_accept = _check_sampler_args(chains, draws, warmup, target_accept)
    _check_chain_method(chain_method, CHAIN_METHODS)  # every backend: pymc took "bogus"
    dense_mass = check_flag(dense_mass, "dense_mass")  # "no" would be truthy: a dense matrix
    progress = check_flag(progress, "progress")
    if thresholds is not None and not isinstance(thresholds, Thresholds):
        # a dict failed after sampling, with "'dict' object has no attribute 'r_hat_max'"
        raise BayesplitError(
            "thresholds must be a bayesplit.diagnostics.Thresholds, e.g. "
            f"Thresholds(ess_bulk_min=200), got {thresholds!r}"
        )
    device = "gpu" if device == "cuda" else device
    table = load_runs(runs)
    law_obj = get_law(law)
    if per_domain is not None:
        law_obj = law_obj.with_pooling(per_domain)
    spec, data = prepare(
        table,
        law_obj,
        domains=domains,
        run_effect=run_effect,
        student_df=student_df,
        centered=centered,
        reference=reference,
    )
    # NUTS meets a NaN mean or gradient as an obscure sampler error
    check_law_mean(law_obj, spec, data, before_fit=True)

    start = time.perf_counter()
    if backend == "numpyro":
        chosen = select_device(device, len(data), chains)
        idata, method = _sample_numpyro(
            law_obj,
            spec,
            data,
            chains=chains,
            draws=draws,
            warmup=warmup,
            seed=seed,
            device=chosen,
            chain_method=chain_method,
            dense_mass=dense_mass,
            target_accept=target_accept,
            progress=progress,
        )
    else:
        if device == "gpu":
            raise BayesplitError(
                "the PyMC backend runs on CPU; use --backend numpyro (in Python: "
                'backend="numpyro") for a GPU'
            )
        from bayesplit.model_pymc import sample_pymc

        chosen = "cpu"
        idata, method = sample_pymc(
            law_obj,
            spec,
            data,
            chains=chains,
            draws=draws,
            warmup=warmup,
            seed=seed,
            target_accept=target_accept,
            progress=progress and bars_show(),  # PyMC's table went into logs too
            sampler=backend,
            dense_mass=dense_mass,
        )
        # nutpie adapts a diagonal mass matrix whatever was asked: record what ran
        dense_mass = dense_mass and backend == "pymc"
    elapsed = time.perf_counter() - start
    _arviz.concat_groups(idata, constant_data=rows_as_constant_data(data.rows))
    diagnostics = check(idata, law_obj, spec, data, thresholds)
    mixed = pretrain_mixtures(table)
    if len(mixed) > 1:
        diagnostics.warnings.append(
            f"the runs' trunks were pretrained on {len(mixed)} general mixtures "
            f"({'; '.join(mixed)}): the law reads them all as one general model; fit each "
            "mixture's runs apart"
        )
    info = {
        "backend": backend,
        "device": chosen,
        "chain_method": method,
        "chains": chains,
        "draws": draws,
        "warmup": warmup,
        "seed": seed,
        "dense_mass": dense_mass,
        "target_accept": target_accept,
        "seconds": round(elapsed, 2),
        "n_rows": len(data),
        "n_rows_excluded": int(len(table) - len(data)),
    }
    return Posterior(idata, law_obj, spec, diagnostics, info)


def pretrain_mixtures(runs: pd.DataFrame) -> list[str]:
    """The distinct ``pretrain_mixture`` labels the trainer recorded (rows without one, e.g.
    imported, are not counted)."""
    if "pretrain_mixture" not in runs:
        return []
    return sorted({str(m) for m in runs["pretrain_mixture"] if isinstance(m, str) and m})


def _coords(spec: ModelSpec, data: ModelData) -> dict:
    return {"domain": list(spec.domains), "run": list(spec.runs), "obs": np.arange(len(data))}


def nuts_kernel(model, dense_mass: bool = True, target_accept: float = 0.9):
    """The NUTS kernel every NumPyro fit uses (``fit``, the ``Refitter``, the benchmarks)."""
    from numpyro.infer import NUTS, init_to_median

    return NUTS(
        model,
        dense_mass=dense_mass,
        target_accept_prob=target_accept,
        max_tree_depth=MAX_TREE_DEPTH,
        init_strategy=init_to_median(num_samples=15),
    )


def _sample_numpyro(
    law,
    spec,
    data,
    *,
    chains,
    draws,
    warmup,
    seed,
    device,
    chain_method,
    dense_mass,
    target_accept,
    progress,
):
    import jax
    from numpyro.infer import MCMC

    from bayesplit._jax import prng_key, release_compiled_if_crowded

    release_compiled_if_crowded()
    if device == "cpu":
        # Double precision makes dense-mass adaptation robust; on a GPU float32 is the point.
        from bayesplit._jax import configure

        configure()
        precision = contextlib.nullcontext()
    else:
        # 64-bit mode is process-wide and predict, prior and the Refitter turn it on, so
        # without this a GPU fit's precision (and draws) hung on what ran before it.
        precision = jax.enable_x64(False)
    platform_devices = jax.devices(device)
    if chain_method == "auto":
        if device == "gpu":
            chain_method = "vectorized"
        elif chains > 1 and len(platform_devices) >= chains:
            chain_method = "parallel"
        else:
            chain_method = "sequential"
            if 1 < chains <= CPU_DEVICES and len(platform_devices) < chains:
                # the chain method changes the draws of a seed
                warnings.warn(
                    f"JAX sees {len(platform_devices)} CPU device(s) for {chains} chains, so "
                    "they run one after another, and the same seed draws another posterior "
                    "than with one device per chain. bayesplit asks XLA for "
                    f"{CPU_DEVICES} unless XLA_FLAGS sets a count "
                    "(--xla_force_host_platform_device_count), and only before JAX starts: "
                    "import bayesplit before anything uses JAX.",
                    stacklevel=3,
                )
    kernel = nuts_kernel(
        partial(numpyro_model, law, spec, model_arrays(data)), dense_mass, target_accept
    )
    mcmc = MCMC(
        kernel,
        num_warmup=warmup,
        num_samples=draws,
        num_chains=chains,
        chain_method=chain_method,
        progress_bar=progress and bars_show(),
    )
    with precision, jax.default_device(platform_devices[0]):
        mcmc.run(
            prng_key(seed),
            y=np.asarray(data.y),
            extra_fields=("diverging", "energy", "num_steps"),
        )
        idata = _arviz.from_numpyro(mcmc, coords=_coords(spec, data), dims=site_dims(law, spec))
    # what ran: NumPyro runs "parallel" chains one after another where it lacks devices,
    # and the file said "parallel" for draws that are the sequential ones
    return idata, mcmc.chain_method


class Refitter:
    """Refit one law again and again on growing data, compiling the sampler once.

    Campaign simulations and the closed training loop refit after every batch of
    runs. Padding the data to a fixed number of rows and runs (masked) keeps array
    shapes fixed, so NumPyro's compiled sampler is reused and each refit costs only
    sampling time. The model structure (domains, reference scales, run effect,
    parameterization) is fixed at construction.

    It stays centred by default although :func:`fit` is not: centred refits are about
    twice as fast, campaigns judge their fits by coverage against a known truth rather
    than by the gate, and every committed campaign benchmark was run centred.
    """

    def __init__(
        self,
        law: str | Law,
        domains: list[str],
        reference: Reference,
        *,
        max_rows: int,
        max_runs: int,
        chains: int = 2,
        draws: int = 500,
        warmup: int = 500,
        run_effect: bool = False,
        student_df: float | None = 5.0,
        centered: bool = True,
        dense_mass: bool = True,
        target_accept: float = 0.9,
        thresholds: Thresholds | None = None,
        chain_method: str = "sequential",
    ):
        from numpyro.infer import MCMC

        chains, draws, warmup, target_accept = _check_sampler_args(
            chains, draws, warmup, target_accept
        )
        from bayesplit._jax import configure

        configure()
        self.law = get_law(law)
        self.domains = list(domains)
        self.reference = reference
        self.max_rows, self.max_runs = int(max_rows), int(max_runs)
        self.thresholds = thresholds
        self.settings = {
            "chains": chains,
            "draws": draws,
            "warmup": warmup,
            "run_effect": run_effect,
            "student_df": student_df,
            "centered": centered,
        }
        self._spec = ModelSpec(
            domains=tuple(self.domains),
            runs=tuple(f"run{i}" for i in range(self.max_runs)),
            reference=reference,
            run_effect=run_effect,
            student_df=student_df,
            centered=centered,
        )
        # pmap ("parallel") recompiles on every run; sequential and vectorized chains reuse
        # the compiled sampler. Campaigns parallelize across processes instead.
        _check_chain_method(chain_method, CHAIN_METHODS[1:])  # no "auto" here
        method = chain_method
        kernel = nuts_kernel(
            partial(numpyro_model, self.law, self._spec), dense_mass, target_accept
        )
        self._mcmc = MCMC(
            kernel,
            num_warmup=warmup,
            num_samples=draws,
            num_chains=chains,
            chain_method=method,
            progress_bar=False,
            jit_model_args=True,
        )
        # what runs: NumPyro makes "parallel" chains sequential where it lacks devices
        self._method = self._mcmc.chain_method

    def fit(self, runs: pd.DataFrame, seed: int = 0) -> Posterior:
        """A posterior for ``runs`` (same law, domains and reference as constructed)."""
        import jax

        from bayesplit._jax import release_compiled_if_crowded

        release_compiled_if_crowded()

        table = load_runs(runs)
        spec, data = prepare(
            table,
            self.law,
            domains=self.domains,
            run_effect=self.settings["run_effect"],
            student_df=self.settings["student_df"],
            centered=self.settings["centered"],
            reference=self.reference,
        )
        check_law_mean(self.law, spec, data, before_fit=True)  # user laws: before NUTS
        if len(data) > self.max_rows or len(spec.runs) > self.max_runs:
            raise BayesplitError(
                f"Refitter sized for {self.max_rows} rows / {self.max_runs} runs got {len(data)} / {len(spec.runs)}"
            )
        x = model_arrays(data, pad_to=self.max_rows)
        y = np.concatenate([data.y, np.zeros(self.max_rows - len(data))])
        start = time.perf_counter()
        with jax.default_device(jax.devices("cpu")[0]):
            self._mcmc.run(
                jax.random.PRNGKey(seed), x, y=y, extra_fields=("diverging", "energy", "num_steps")
            )
            samples = self._mcmc.get_samples(group_by_chain=True)
            stats = self._mcmc.get_extra_fields(group_by_chain=True)
        elapsed = time.perf_counter() - start
        m, r = len(data), len(spec.runs)
        posterior = {}
        dims = site_dims(self.law, spec)
        for name, v in samples.items():
            v = np.asarray(v)
            if name == "run_z":
                v = v[..., :r]
            posterior[name] = v
        coords = {"domain": list(spec.domains), "run": list(spec.runs), "obs": np.arange(m)}
        sample_stats = {
            "diverging": np.asarray(stats["diverging"]),
            "energy": np.asarray(stats["energy"]),
            "n_steps": np.asarray(stats["num_steps"]),
        }
        idata = _arviz.from_dict(
            posterior=posterior,
            sample_stats=sample_stats,
            coords=coords,
            dims={k: v for k, v in dims.items() if k in posterior},
        )
        _arviz.concat_groups(idata, constant_data=rows_as_constant_data(data.rows))
        diagnostics = check(idata, self.law, spec, data, self.thresholds)
        info = {
            "backend": "numpyro",
            "device": "cpu",
            "chain_method": self._method,
            "seed": seed,
            "seconds": round(elapsed, 2),
            "n_rows": m,
            "n_rows_excluded": int(len(table) - m),
            "refitter": True,
            **{k: self.settings[k] for k in ("chains", "draws", "warmup")},
        }
        return Posterior(idata, self.law, spec, diagnostics, info)
