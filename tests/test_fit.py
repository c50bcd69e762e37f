"""Fitting: recovery of known parameters, the diagnostics gate, persistence, reproducibility."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import QUICK, coverage, recovery_design, two_run_table

from bayesplit.errors import BayesplitError, DiagnosticsError
from bayesplit.fitting import fit, gpu_pays, select_device
from bayesplit.posterior import Posterior
from bayesplit.truth import example_truth

DOMAINS = ("web", "code", "law", "bio")
LAWS = ("chinchilla", "additive", "transfer", "saturating")


@pytest.mark.parametrize("law", LAWS)
def test_quick_recovery_each_law(law):
    """K = 4 domains, ~40 runs: the true parameters sit inside the 95% credible intervals."""
    truth = example_truth(law, DOMAINS)
    runs = truth.simulate(recovery_design(law, DOMAINS), seed=100)
    post = fit(
        runs,
        law,
        reference=truth.reference,
        seed=0,
        chains=2,
        draws=500,
        warmup=500,
        progress=False,
    )
    frac, missed = coverage(post, truth, level=0.95)
    assert frac >= 0.9, missed


@pytest.mark.slow
@pytest.mark.parametrize("law", LAWS)
def test_recovery_coverage_over_20_replications(law):
    truth = example_truth(law, DOMAINS)
    fracs = []
    for rep in range(20):
        runs = truth.simulate(recovery_design(law, DOMAINS), seed=1000 + rep)
        post = fit(
            runs,
            law,
            reference=truth.reference,
            seed=rep,
            chains=4,
            draws=1000,
            warmup=1000,
            progress=False,
        )
        fracs.append(coverage(post, truth, level=0.95)[0])
    assert np.mean(fracs) >= 0.9, fracs


def test_unidentifiable_fit_is_flagged_and_flag_survives_save_load(tmp_path):
    post = fit(two_run_table(), "chinchilla", **QUICK)
    assert not post.ok
    assert any("not identified" in f for f in post.diagnostics.failures)
    with pytest.raises(DiagnosticsError, match="not identified"):
        post.require_ok()
    # the remedy by check: it said "more draws/warmup", which do not cure a divergence
    with pytest.raises(DiagnosticsError, match=r"another seed or a longer warmup \(one chain off the others, or divergences\)"):  # fmt: skip
        post.require_ok()
    post.require_ok(force=True)  # forcing is allowed, and says nothing
    path = post.save(tmp_path / "post.nc")
    again = Posterior.load(path)
    assert not again.ok and again.diagnostics.failures == post.diagnostics.failures


def test_specialization_law_without_specialized_rows_is_flagged(additive_truth):
    from bayesplit.truth import factorial_design

    runs = additive_truth.simulate(
        factorial_design([1e7, 3e7, 1e8], [3e8, 1e9, 3e9], [], additive_truth.domains), seed=0
    )
    # the check reads the table, not the draws: a short fit will do
    post = fit(runs, "additive", chains=1, draws=30, warmup=30, progress=False)
    assert any("no row has spec_tokens > 0" in f for f in post.diagnostics.failures)


def test_save_load_round_trip_keeps_everything(additive_posterior, tmp_path):
    path = additive_posterior.save(tmp_path / "p.nc")
    again = Posterior.load(path)
    assert again.law.name == "additive" and again.domains == additive_posterior.domains
    assert again.spec == additive_posterior.spec
    for name, v in additive_posterior.draws().items():
        np.testing.assert_array_equal(again.draws()[name], v)
    a = additive_posterior.predict(1e9, 1e10, 1e8, domain="code", seed=3)
    b = again.predict(1e9, 1e10, 1e8, domain="code", seed=3)
    assert a["median"].item() == b["median"].item()
    assert again.runs["loss"].tolist() == additive_posterior.runs["loss"].tolist()
    assert {"posterior", "log_likelihood", "observed_data", "sample_stats", "constant_data"} <= set(
        again.idata.groups()
    )


def test_same_seed_same_posterior(additive_runs, additive_truth):
    small = dict(chains=2, draws=20, warmup=20, progress=False)  # sameness needs no quality
    a = fit(additive_runs, "additive", reference=additive_truth.reference, seed=5, **small)
    b = fit(additive_runs, "additive", reference=additive_truth.reference, seed=5, **small)
    c = fit(additive_runs, "additive", reference=additive_truth.reference, seed=6, **small)
    np.testing.assert_array_equal(a.draws()["beta"], b.draws()["beta"])
    assert not np.array_equal(a.draws()["beta"], c.draws()["beta"])


def test_cross_domain_specialist_rows_are_left_out(additive_runs):
    extra = (
        additive_runs[additive_runs["spec_tokens"] > 0]
        .head(3)
        .assign(eval_domain="web", run_id=lambda d: d["run_id"] + "-x")
    )
    extra = extra[extra["train_domain"] != "web"]
    post = fit(
        pd.concat([additive_runs, extra], ignore_index=True),
        "additive",
        chains=1,
        draws=20,
        warmup=20,
        progress=False,
    )
    assert post.info["n_rows_excluded"] == len(extra)


def test_bad_sampler_arguments_are_user_errors(additive_runs):
    for kwargs, words in [
        ({"chains": 0}, "chains"),
        ({"draws": 1}, "draws"),
        ({"backend": "stan"}, "backend"),
        ({"device": "tpu"}, "device"),
        ({"target_accept": 1.5}, "target_accept"),
    ]:
        with pytest.raises(BayesplitError, match=words):
            fit(additive_runs, "additive", **{**QUICK, **kwargs})


def test_device_selection_without_gpu():
    assert select_device("auto", 10**6, 64) in ("cpu", "gpu")
    assert select_device("cpu", 10, 4) == "cpu"
    from bayesplit.fitting import gpu_available

    if not gpu_available():
        assert select_device("auto", 10**7, 128) == "cpu"
        with pytest.raises(BayesplitError, match="no GPU"):
            select_device("gpu", 10, 4)
        with pytest.raises(BayesplitError, match="no GPU"):
            select_device("cuda", 10, 4)  # torch's name for it, as the trainer takes


def test_gpu_pays_where_the_measured_step_costs_say():
    """experiments/benchmarks/nuts_step_cost.md: an H200 step took 1.1 ms for 16 chains ×
    256 rows and for 256 chains × 2,048 rows; a CPU core stepped one chain in 0.36-0.56 ms
    at 256 rows and 0.64-1.15 ms at 2,048 (two machines)."""
    assert not gpu_pays(256, 4, cores=16)  # the default fit: the CPU is faster per step
    assert not gpu_pays(256, 16, cores=16)  # one chain per core, each faster than the GPU
    assert gpu_pays(2048, 256, cores=16)  # past the 16 host devices, one chain at a time
    assert gpu_pays(256, 1024, cores=16)
    assert not gpu_pays(1000, 1, cores=1)  # one chain, a thousand rows: a core keeps up
    # more chains never turn the choice back to the CPU, nor do more rows
    for cores in (2, 16):
        picks = [gpu_pays(2048, c, cores=cores) for c in (1, 2, 4, 16, 64, 256, 1024)]
        assert picks == sorted(picks)
        picks = [gpu_pays(r, 4, cores=cores) for r in (10, 256, 2048, 10**4, 10**5, 10**6)]
        assert picks == sorted(picks)


def test_seeds_2_to_the_32_apart_draw_differently_on_a_gpu(additive_runs, monkeypatch):
    """A GPU fit runs without JAX's 64-bit mode, where PRNGKey(seed) kept only the low 32
    bits of the seed: --seed 5 and --seed 4294967301 drew the same posterior."""
    import jax
    import numpyro.infer

    import bayesplit.fitting

    class Stop(Exception):
        pass

    keys = []

    def run(self, rng_key, *args, **kwargs):
        keys.append(np.asarray(jax.random.key_data(rng_key)).tolist())
        raise Stop

    cpu_devices = jax.devices
    monkeypatch.setattr(bayesplit.fitting, "select_device", lambda *a: "gpu")
    monkeypatch.setattr(jax, "devices", lambda kind=None: cpu_devices("cpu"))
    monkeypatch.setattr(numpyro.infer.MCMC, "run", run)
    with jax.enable_x64(False):
        for seed in (5, 2**32 + 5):
            with pytest.raises(Stop):
                fit(additive_runs, "additive", seed=seed, **QUICK)
    # the keys 64-bit mode gives, so a CPU fit's draws are what they always were
    assert keys == [[0, 5], [1, 5]]


def test_jax_sees_the_cpu_devices_whatever_bayesplit_ran_first():
    # the flag was set when the fitting module was imported: after prior_predictive had
    # started JAX, a fit ran its chains one after another and drew another posterior
    import subprocess
    import sys

    from bayesplit._jax import CPU_DEVICES

    script = (
        "import bayesplit, jax, os\n"
        "bayesplit.prior_predictive(bayesplit.load_dataset('gadre2024'), 'chinchilla', "
        "draws=10)\n"
        "print(len(jax.devices('cpu')))"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == str(CPU_DEVICES)


def test_a_fit_whose_chains_cannot_run_in_parallel_says_why(monkeypatch):
    import jax

    one = jax.devices("cpu")[:1]
    monkeypatch.setattr(jax, "devices", lambda kind=None: one)
    quick = dict(chains=2, draws=10, warmup=10, seed=3, progress=False)
    with pytest.warns(UserWarning, match=r"JAX sees 1 CPU device\(s\) for 2 chains"):
        post = fit(two_run_table(), "chinchilla", **quick)
    assert post.info["chain_method"] == "sequential"


def test_a_gpu_fit_draws_the_same_whatever_ran_before(monkeypatch):
    """64-bit mode is process-wide and predict, prior and the Refitter turn it on, so a GPU
    fit ran in float64 after one of them and in float32 otherwise: one seed, two posteriors."""
    import jax

    import bayesplit.fitting

    cpu_devices = jax.devices
    monkeypatch.setattr(bayesplit.fitting, "select_device", lambda *a: "gpu")
    monkeypatch.setattr(jax, "devices", lambda kind=None: cpu_devices("cpu"))
    quick = dict(chains=1, draws=20, warmup=20, seed=3, progress=False)
    draws = []
    for x64 in (True, False):
        with jax.enable_x64(x64):
            post = fit(two_run_table(), "chinchilla", **quick)
        draws.append(post.idata.posterior["E"].values)
    assert draws[0].dtype == draws[1].dtype == np.float32
    np.testing.assert_array_equal(draws[0], draws[1])


def test_one_chain_fails_the_gate_with_a_reason(additive_runs, capfd):
    from bayesplit.comparison import loo_metrics

    # one chain fails whatever the draws, so a short one tests the same (a transition of
    # this table's posterior takes about 1,000 leapfrog steps)
    post = fit(additive_runs, "additive", chains=1, draws=30, warmup=30, progress=False)
    assert not post.ok
    assert any(f.startswith("one chain: R-hat is undefined") for f in post.diagnostics.failures)
    assert not any("R-hat nan" in f for f in post.diagnostics.failures)
    loo_metrics(post)
    # ArviZ's own "Shape validation failed" log line leaked next to the gate's reason
    assert "Shape validation" not in capfd.readouterr().err


def test_pareto_k_psis_could_not_estimate_counts_as_bad(monkeypatch, additive_posterior):
    import types

    from bayesplit import comparison

    k = np.array([0.2, np.nan, 0.9, 0.5])
    res = types.SimpleNamespace(elpd_loo=-1.0, se=0.1, p_loo=2.0, pareto_k=k)
    monkeypatch.setattr(comparison._arviz, "loo", lambda idata: res)
    m = comparison.loo_metrics(additive_posterior)
    # the count said 1 bad row while the maximum was NaN (null in --json)
    assert (m["pareto_k_bad"], m["pareto_k_max"]) == (2, 0.9)


def test_gate_thresholds_are_configurable(additive_posterior):
    from bayesplit.diagnostics import Thresholds, check
    from bayesplit.model import prepare

    spec, data = prepare(
        additive_posterior.runs, additive_posterior.law, reference=additive_posterior.spec.reference
    )
    strict = check(
        additive_posterior.idata,
        additive_posterior.law,
        additive_posterior.spec,
        data,
        Thresholds(ess_bulk_min=1e9),
    )
    assert not strict.ok and any("bulk ESS" in f for f in strict.failures)


def test_transitions_at_the_maximum_tree_depth_are_counted_and_warned_about(additive_posterior):
    from bayesplit.diagnostics import MAX_TREE_DEPTH, check, max_depth_share
    from bayesplit.model import prepare

    post = additive_posterior
    steps = post.idata.sample_stats["n_steps"]
    # the share the fit recorded is the share of trees that made their last allowed doubling
    expected = float((steps >= 2 ** (MAX_TREE_DEPTH - 1)).mean())
    assert post.diagnostics.max_depth_share == pytest.approx(expected)
    assert post.diagnostics.summary()["max_depth_share"] == pytest.approx(expected)
    _, data = prepare(post.runs, post.law, reference=post.spec.reference)

    def warned(share: float) -> list[str]:
        n = steps.size
        k = round(share * n)
        fake = np.where(np.arange(n) < k, 2**MAX_TREE_DEPTH - 1, 7).reshape(steps.shape)
        idata = post.idata.copy()
        idata.sample_stats["n_steps"] = (steps.dims, fake)
        assert max_depth_share(idata.sample_stats) == pytest.approx(k / n)
        diag = check(idata, post.law, post.spec, data)
        return [w for w in diag.warnings if "maximum tree depth" in w]

    assert warned(0.04) == []
    (line,) = warned(0.25)
    assert line.startswith("25% of transitions reached the maximum tree depth (10)")
    # PyMC names its own stat; a sampler that records none reports NaN and no warning
    pymc_like = post.idata.sample_stats.drop_vars("n_steps")
    pymc_like["reached_max_treedepth"] = steps >= 0
    assert max_depth_share(pymc_like) == 1.0
    assert np.isnan(max_depth_share(pymc_like.drop_vars("reached_max_treedepth")))


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_compiled_code_is_released_only_when_memory_maps_run_short():
    import jax
    import jax.numpy as jnp

    from bayesplit._jax import release_compiled_if_crowded

    f = jax.jit(lambda x: jnp.sin(x) * 2)
    assert float(f(0.0)) == 0.0
    assert release_compiled_if_crowded(share=2.0) is False  # far from the limit: keep
    assert release_compiled_if_crowded(share=0.0) is True  # at the limit: clear
    assert float(f(0.0)) == 0.0  # and jitted code still runs (recompiled)


def _iid_chains(idata, shift: dict[int, float], draws: int = 1000, seed: int = 0):
    """Four chains of independent draws with each variable's posterior mean and sd (so
    R-hat is ~1), then chain c moved by ``shift[c]`` sds, every third of its draws divergent."""
    import xarray as xr

    from bayesplit._arviz import InferenceData

    rng = np.random.default_rng(seed)
    post = {}
    for v, da in idata.posterior.data_vars.items():
        other = [d for d in da.dims if d not in ("chain", "draw")]
        shape = (4, draws, *(da.sizes[d] for d in other))
        mean, sd = da.mean(("chain", "draw")).values, da.std(("chain", "draw")).values
        z = rng.standard_normal(shape)
        for c, k in shift.items():
            z[c] += k
        post[v] = (("chain", "draw", *other), mean + sd * z)
    coords = {d: idata.posterior[d].values for d in idata.posterior.dims}
    coords |= {"chain": np.arange(4), "draw": np.arange(draws)}
    div = np.zeros((4, draws), bool)
    for c in shift:
        div[c, ::3] = True
    stats = xr.Dataset({"diverging": (("chain", "draw"), div)}, coords=coords)
    return InferenceData(posterior=xr.Dataset(post, coords=coords), sample_stats=stats)


@pytest.mark.parametrize(("shift", "named"), [({}, None), ({2: 3.0}, 2), ({2: 3.0, 3: 3.0}, None)])
def test_a_failed_r_hat_names_the_one_chain_that_disagrees(additive_posterior, shift, named):
    from bayesplit.diagnostics import check
    from bayesplit.model import prepare

    p = additive_posterior
    _, data = prepare(p.runs, p.law, reference=p.spec.reference)
    idata = _iid_chains(p.idata, shift)
    r_hat = [f for f in check(idata, p.law, p.spec, data).failures if f.startswith("R-hat")]
    if not shift:  # four chains that agree pass R-hat
        assert r_hat == []
        return
    assert len(r_hat) == 1
    if named is None:  # two chains apart from the other two: no one chain to blame
        assert "alone disagrees" not in r_hat[0]
    else:
        total = int(idata.sample_stats["diverging"].sum())
        assert f"chain {named} alone disagrees with the other 3" in r_hat[0]
        assert f"has {total} of the {total} divergences" in r_hat[0]
        assert "refit with another seed" in r_hat[0]


def test_a_stuck_chain_with_the_only_divergence_has_the_one_divergence(additive_posterior):
    from bayesplit.diagnostics import check
    from bayesplit.model import prepare

    p = additive_posterior
    _, data = prepare(p.runs, p.law, reference=p.spec.reference)
    idata = _iid_chains(p.idata, {2: 3.0})
    idata.sample_stats["diverging"][:] = False
    idata.sample_stats["diverging"][2, 7] = True
    (r_hat,) = [f for f in check(idata, p.law, p.spec, data).failures if f.startswith("R-hat")]
    assert "chain 2 alone disagrees" in r_hat and "and has the one divergence" in r_hat


@pytest.mark.parametrize("n", [1, 2])
def test_the_divergence_count_reads_as_english(additive_posterior, n):
    from bayesplit.diagnostics import check
    from bayesplit.model import prepare

    p = additive_posterior
    _, data = prepare(p.runs, p.law, reference=p.spec.reference)
    idata = _iid_chains(p.idata, {})
    idata.sample_stats["diverging"][0, :n] = True
    failures = check(idata, p.law, p.spec, data).failures
    expected = "1 divergent transition (allowed 0)" if n == 1 else "2 divergent transitions"
    assert any(f.startswith(expected) for f in failures), failures


def test_a_parameter_the_data_do_not_pin_down_is_named_with_what_it_describes(additive_posterior):
    from bayesplit.diagnostics import Thresholds, check
    from bayesplit.model import prepare

    p = additive_posterior
    _, data = prepare(p.runs, p.law, reference=p.spec.reference)
    default = check(p.idata, p.law, p.spec, data)
    assert not any("still the prior" in f for f in default.failures)  # this design pins all
    # a threshold no posterior meets: every parameter is reported, in the gate's words
    failures = check(p.idata, p.law, p.spec, data, Thresholds(prior_ratio_max=1e-9)).failures
    (loose,) = [f for f in failures if "still the prior" in f]
    pooled = set(p.spec.pooled(p.law))
    for q in p.law.params:
        mean = "mean over domains, " if q.name in pooled else ""
        assert f"{q.name} ({q.description}; {mean}posterior sd " in loose


def test_check_fit_options_defaults_are_fits():
    # compare and demo leave some settings to check_fit_options' defaults: they must be fit's
    import inspect

    from bayesplit.fitting import check_fit_options

    checked = inspect.signature(check_fit_options).parameters
    of_fit = inspect.signature(fit).parameters
    assert checked and all(p.default == of_fit[name].default for name, p in checked.items())


def test_runs_pretrained_on_two_mixtures_are_warned_of(additive_runs):
    # `train pretrain --weights code=1` wrote general rows the law read as the corpus's
    # mixture, unsaid; the trainer records each row's mixture and fit names a mix of them
    runs = additive_runs.copy()
    # rows without a label (imported) are not a mixture of their own
    runs["pretrain_mixture"] = np.where(runs["params"] > 3e7, "code=1,web=0", "tokens")
    runs.loc[runs.index[:5], "pretrain_mixture"] = None
    post = fit(runs, "additive", chains=1, draws=30, warmup=30, progress=False)
    (warning,) = [w for w in post.diagnostics.warnings if "mixtures" in w]
    assert "pretrained on 2 general mixtures (code=1,web=0; tokens)" in warning
    one = fit(runs.assign(pretrain_mixture="tokens"), "additive", chains=1, draws=30, warmup=30,
              progress=False)  # fmt: skip
    assert not [w for w in one.diagnostics.warnings if "mixtures" in w]


def test_the_samplers_bar_shows_on_a_terminal_and_in_a_notebook(monkeypatch):
    # a notebook's stderr is no terminal: fit(progress=True) showed no bar there
    import sys
    import types

    from bayesplit.fitting import bars_show

    class Stream:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setattr(sys, "stderr", Stream(False))
    assert not bars_show()  # a log or a pipe
    monkeypatch.setattr(sys, "stderr", Stream(True))
    assert bars_show()
    monkeypatch.setattr(sys, "stderr", Stream(False))
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert bars_show()


def test_gate_numbers_are_written_so_they_agree_with_the_verdict():
    # "R-hat 1.010 > 1.01" and "bulk ESS 400 < 400" under a FAILED header
    from bayesplit.diagnostics import ess_text, r_hat_text

    assert r_hat_text(1.0104, 1.01) == "1.0104" and r_hat_text(1.2, 1.01) == "1.200"
    assert r_hat_text(1.0096, 1.01) == "1.010"  # passes, and 1.010 <= 1.01 says so
    assert r_hat_text(1.005, 1.01) == "1.005" and r_hat_text(float("nan"), 1.01) == "nan"
    assert ess_text(399.6) == "399" and ess_text(400.0) == "400"
    assert r_hat_text(1.0100000000001, 1.01) == "1.0100000000001"  # every digit, if it takes


def test_the_chain_method_recorded_is_the_one_that_ran():
    # NumPyro runs "parallel" chains one after another where it lacks devices (it warns);
    # the posterior still said "parallel", for the sequential chains' draws
    from support import good_table

    from bayesplit._jax import CPU_DEVICES

    with pytest.warns(UserWarning):
        post = fit(good_table(), "chinchilla", chains=CPU_DEVICES + 1, draws=10, warmup=10,
                   chain_method="parallel", progress=False)  # fmt: skip
    assert post.info["chain_method"] == "sequential"
    # and so do the refits of campaigns and the loop
    from bayesplit.fitting import Refitter

    with pytest.warns(UserWarning):
        refitter = Refitter("chinchilla", list(post.domains), post.spec.reference, max_rows=40,
                            max_runs=40, chains=CPU_DEVICES + 1, draws=10, warmup=10,
                            chain_method="parallel")  # fmt: skip
    assert refitter._method == "sequential"
    with pytest.raises(BayesplitError, match="chain_method must be parallel, vectorized"):
        Refitter("chinchilla", list(post.domains), post.spec.reference, max_rows=40,
                 max_runs=40, chain_method="bogus")  # fmt: skip
