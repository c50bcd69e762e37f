"""NumPyro and PyMC: two implementations of one model must agree."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest

from bayesplit.fitting import fit
from bayesplit.truth import example_truth, factorial_design

pytest.importorskip("pymc")


def _mcse_median(post, name):
    import arviz as az

    return np.asarray(az.mcse(post.idata, var_names=[name], method="median")[name]).ravel()


@pytest.mark.parametrize("law,design_tokens", [("chinchilla", [])])
def test_numpyro_and_pymc_agree_on_exponents(law, design_tokens):
    truth = example_truth(law, ("web",))
    runs = truth.simulate(
        factorial_design(
            [1e7, 3e7, 1e8, 3e8], [1e8, 4e8, 1.6e9, 6.4e9], design_tokens, truth.domains
        ).assign(trunk_id=None),
        seed=7,
    )
    kw = dict(chains=4, draws=1000, warmup=1000, seed=1, reference=truth.reference, progress=False)
    a = fit(runs, law, backend="numpyro", **kw)
    # PyMC's INFO lines went to stderr around the CLI's own output
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    pymc_log = logging.getLogger("pymc")
    level = pymc_log.level
    pymc_log.setLevel(logging.INFO)  # as PyMC sets it when the root logger has no handler
    pymc_log.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            b = fit(runs, law, backend="pymc", **kw)
    finally:
        pymc_log.removeHandler(handler)
        pymc_log.setLevel(level)
    assert [r.getMessage() for r in records if r.levelno < logging.WARNING] == []
    # nor library notices of several lines (PyTensor's BLAS advice, PyMC's "experimental")
    noisy = ("could not link to a BLAS", "QuadPotentialFullAdapt")
    assert not [w for w in caught if any(n in str(w.message) for n in noisy)]
    # both converged (the ESS gate may be a little short; the MCSE below accounts for it)
    assert a.diagnostics.r_hat_max < 1.02 and b.diagnostics.r_hat_max < 1.02, (
        a.diagnostics.failures,
        b.diagnostics.failures,
    )
    for name in ("alpha", "beta"):
        ma, mb = (
            np.median(a.draws()[name], axis=0).ravel(),
            np.median(b.draws()[name], axis=0).ravel(),
        )
        tol = 4 * np.hypot(_mcse_median(a, name), _mcse_median(b, name))
        assert np.all(np.abs(ma - mb) <= tol), (name, ma, mb, tol)


@pytest.mark.slow
def test_backends_agree_on_a_hierarchical_two_stage_fit(additive_runs, additive_truth):
    kw = dict(
        chains=4,
        draws=1000,
        warmup=1000,
        seed=1,
        reference=additive_truth.reference,
        progress=False,
    )
    a = fit(additive_runs, "additive", backend="numpyro", **kw)
    b = fit(additive_runs, "additive", backend="pymc", **kw)
    for name in ("alpha", "beta", "gamma"):
        ma, mb = (
            np.median(a.draws()[name], axis=0).ravel(),
            np.median(b.draws()[name], axis=0).ravel(),
        )
        tol = 4 * np.hypot(_mcse_median(a, name), _mcse_median(b, name))
        assert np.all(np.abs(ma - mb) <= tol), (name, ma, mb, tol)


@pytest.mark.parametrize("how", ["some draws", "fewer chains", "before the first draw"])
def test_a_ctrl_c_in_a_pymc_fit_is_an_interrupt_not_a_posterior(monkeypatch, how):
    # PyMC catches Ctrl-C and returns the draws so far: `fit` saved 636 of 50,000 draws as
    # a finished posterior and exited 0; before the first kept draw it was a ValueError,
    # and it may keep the chains that finished, at full length
    import arviz as az
    import pymc
    from support import good_table

    def interrupted(**kw):
        if how == "before the first draw":
            raise ValueError("Not enough samples to build a trace.")
        shape = (kw["chains"], 3) if how == "some draws" else (kw["chains"] - 1, kw["draws"])
        return az.from_dict(posterior={"E": np.zeros(shape)})

    monkeypatch.setattr(pymc, "sample", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit(good_table(), "chinchilla", backend="pymc", chains=2, draws=10, warmup=10,
            progress=False)  # fmt: skip


def test_every_backend_refuses_an_unknown_chain_method():
    from support import good_table

    from bayesplit.errors import BayesplitError

    with pytest.raises(BayesplitError, match="chain_method must be auto, parallel"):
        fit(good_table(), "chinchilla", backend="pymc", chain_method="bogus", progress=False)


def test_the_pymc_progress_table_stays_out_of_logs(monkeypatch):
    # numpyro's bar shows only on a terminal or in a notebook; PyMC's table went into logs
    from support import good_table

    import bayesplit.model_pymc

    seen = {}

    def sample(*a, progress, **k):
        seen["progress"] = progress
        raise KeyboardInterrupt

    monkeypatch.setattr(bayesplit.model_pymc, "sample_pymc", sample)
    with pytest.raises(KeyboardInterrupt):  # pytest's stderr is no terminal
        fit(good_table(), "chinchilla", backend="pymc", chains=2, draws=10, warmup=10)
    assert seen == {"progress": False}


def test_nutpie_chains_padded_with_nan_are_an_interrupt():
    # nutpie sizes `draw` by its longest chain and pads the ones it did not finish with NaN
    import arviz as az

    from bayesplit.model_pymc import _cut_short

    whole = np.zeros((2, 5))
    padded = whole.copy()
    padded[1, 3:] = np.nan
    assert not _cut_short(az.from_dict(posterior={"E": whole}).posterior, 2, 5, padded=True)
    assert _cut_short(az.from_dict(posterior={"E": padded}).posterior, 2, 5, padded=True)
    assert _cut_short(az.from_dict(posterior={"E": whole}).posterior, 3, 5, padded=False)
