"""Predictions: two bands, never confused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support import QUICK

from bayesplit.errors import BayesplitError
from bayesplit.posterior import load_posterior


def test_credible_band_is_inside_predictive_band(additive_posterior):
    ds = additive_posterior.predict(
        [1e7, 1e8, 1e9], [1e9, 1e10, 1e11], [0, 1e8, 1e9], domain=None, level=0.9
    )
    assert ds.sizes == {"domain": 3, "point": 3, "draw": additive_posterior.n_draws}
    # up to Monte Carlo error: when the law is far more uncertain than the noise the bands nearly coincide
    assert (ds["predictive_lo"] <= ds["credible_lo"] * 1.002).all()
    assert (ds["credible_hi"] <= ds["predictive_hi"] * 1.002).all()
    assert (ds["credible_lo"] <= ds["median"]).all() and (ds["median"] <= ds["credible_hi"]).all()


def test_wider_level_wider_bands(additive_posterior):
    narrow = additive_posterior.predict(1e9, 1e10, domain="code", level=0.5)
    wide = additive_posterior.predict(1e9, 1e10, domain="code", level=0.95)
    assert (wide["credible_hi"] - wide["credible_lo"]).item() > (
        narrow["credible_hi"] - narrow["credible_lo"]
    ).item()


def test_extrapolation_is_less_certain_than_interpolation(additive_posterior):
    ds = additive_posterior.predict([3e7, 3e9], [1e9, 1e12], domain="web")
    width = (ds["credible_hi"] - ds["credible_lo"]).values.ravel()
    assert width[1] > width[0]


def test_predictions_track_the_truth_inside_the_data(additive_posterior, additive_truth):
    ds = additive_posterior.predict(3e7, 1e9, 1e8, domain="law", level=0.95)
    true = float(additive_truth.loss(3e7, 1e9, 1e8, "law"))
    assert (ds["credible_lo"]).item() <= true <= (ds["credible_hi"]).item()


def test_bad_prediction_inputs(additive_posterior):
    with pytest.raises(BayesplitError, match="unknown domain"):
        additive_posterior.predict(1e9, 1e10, domain="math")
    with pytest.raises(BayesplitError, match="level"):
        additive_posterior.predict(1e9, 1e10, domain="web", level=1.5)
    with pytest.raises(BayesplitError, match="params"):
        additive_posterior.predict(-1, 1e10, domain="web")
    with pytest.raises(BayesplitError, match="spec_tokens"):
        additive_posterior.predict(1e9, 1e10, -5, domain="web")


def test_predictive_band_reflects_noise(additive_posterior):
    ds = additive_posterior.predict(3e7, 1e9, domain="web", level=0.9)
    sigma = np.median(additive_posterior.noise_draws()["sigma"])
    rel_width = (ds["predictive_hi"] - ds["predictive_lo"]).item() / (ds["median"]).item()
    assert rel_width > 2 * 1.6 * sigma * 0.8  # at least the noise band


@pytest.fixture(scope="module")
def seeded_fit():
    """Runs whose trunks carry a large seed shift (4%) next to small noise (0.5%)."""
    from bayesplit.fitting import fit
    from bayesplit.truth import Noise, example_truth, factorial_design

    truth = example_truth("additive", ("web", "code"), noise=Noise(sigma=0.005, seed_sd=0.04))
    design = factorial_design([1e7, 3e7, 1e8], [3e8, 1e9, 3e9], [1e8], truth.domains, seeds=(0, 1))
    shifts: dict = {}
    runs = truth.simulate(design, seed=3, trunk_shifts=shifts)
    later = (runs["params"] == 1e8) & (runs["pretrain_tokens"] == 3e9) & (runs["seed"] == 0)
    post = fit(runs[~later], "additive", reference=truth.reference, seed=2, **QUICK)
    return post, runs[later], shifts


def test_a_seen_trunk_is_predicted_with_its_own_run_effect(seeded_fit):
    post, later, shifts = seeded_fit
    trunk = "trunk-N1e+08-s0"
    general = later[later["spec_tokens"] == 0]
    for _, row in general.iterrows():
        args = (row["params"], row["pretrain_tokens"], 0.0)
        dom = row["eval_domain"]
        own = post.predict(*args, domain=dom, run=trunk).isel(domain=0, point=0)
        new = post.predict(*args, domain=dom).isel(domain=0, point=0)
        assert own.attrs["run"] == trunk and new.attrs["run"] == "new"
        # the trunk's shift is recovered from its earlier branches
        shift = np.log(float(own["median"]) / float(new["median"]))
        assert shift == pytest.approx(shifts[trunk], abs=0.015)
        # no new seed is drawn, so the band is the noise band, far narrower
        own_w = float(own["predictive_hi"] - own["predictive_lo"])
        new_w = float(new["predictive_hi"] - new["predictive_lo"])
        assert own_w < 0.6 * new_w
        # and it is centred on this trunk's curve, not on the population's
        this_trunk = row["true_loss"] * np.exp(shifts[trunk])
        assert abs(np.log(float(own["median"]) / this_trunk)) < 0.02


def test_an_unseen_run_gets_the_new_run_band(seeded_fit):
    post, _, _ = seeded_fit
    a = post.predict(1e8, 3e9, domain="web", run="never-fitted")
    b = post.predict(1e8, 3e9, domain="web")
    assert a.attrs["run"] == "new"
    np.testing.assert_allclose(a["predictive_hi"], b["predictive_hi"])


def test_a_run_effect_is_refused_for_a_model_of_another_size(seeded_fit, tmp_path):
    post, _, _ = seeded_fit
    with pytest.raises(
        BayesplitError, match=r"is a model of N=1e\+08; its run effect says nothing"
    ):
        post.predict(1e9, 3e9, domain="web", run="trunk-N1e+08-s0")
    # the trunk is kept with the saved posterior, so the check survives a round trip
    path = tmp_path / "post.nc"
    post.save(path)
    again = load_posterior(path)
    assert "trunk-N1e+08-s0" in set(again.runs["trunk_id"])
    with pytest.raises(BayesplitError, match="its run effect says nothing"):
        again.predict(1e9, 3e9, domain="web", run="trunk-N1e+08-s0")


def test_the_reports_held_out_rows_include_later_checkpoints_of_fitted_runs(seeded_fit):
    """A run's later checkpoint is held out although the run's earlier one was fitted."""
    from bayesplit.comparison import holdout_predictions
    from bayesplit.reporting import heldout_table
    from bayesplit.runs import load_runs

    post, later, _ = seeded_fit
    fitted = post.runs
    run = "trunk-N1e+08-s0-D1e+09"  # a fitted general run, evaluated on both domains
    earlier = fitted[fitted["run_id"] == run].assign(step=1)
    # its checkpoint at D = 3e9 (what the simulator named a run of its own): same run_id
    general = later[later["spec_tokens"] == 0].assign(run_id=run, step=3)
    given = load_runs(pd.concat([earlier, general, later[later["spec_tokens"] > 0]]))
    table = heldout_table(post, given)
    # the fitted checkpoint is left out; the later one is not, however it shares a run_id
    assert len(table) == len(later) and len(earlier) == 2
    assert set(table["pretrain_tokens"]) == {3e9}
    # predicted for the trunk it came from, as the demo's held-out check predicts it
    assert (table["predicted_for"] == "seen trunk").all()
    expected = holdout_predictions(post, given[given["pretrain_tokens"] == 3e9])
    np.testing.assert_allclose(
        np.sort(table["median"].to_numpy()), np.sort(expected["median"].to_numpy())
    )
    inside = (table["predictive_lo"] <= table["observed"]) & (
        table["observed"] <= table["predictive_hi"]
    )
    assert (table["inside"] == inside).all()


def test_a_branch_id_stands_for_the_trunk_it_was_branched_from(seeded_fit):
    post, _, _ = seeded_fit
    branch = "trunk-N1e+08-s0-D3e+08-web-Dp1e+08"  # a fitted branch of trunk-N1e+08-s0
    assert post.run_effect_group(branch) == "trunk-N1e+08-s0"
    assert post.run_effect_group("trunk-N1e+08-s0-D1e+09") == "trunk-N1e+08-s0"
    assert post.run_effect_group("never-fitted") is None
    by_branch = post.predict(1e8, 3e9, 1e8, domain="web", run=branch)
    by_trunk = post.predict(1e8, 3e9, 1e8, domain="web", run="trunk-N1e+08-s0")
    np.testing.assert_allclose(by_branch["law"], by_trunk["law"])
    assert by_branch.attrs["run"] == branch


def test_the_predictive_band_always_holds_the_credible_band(additive_posterior):
    # far beyond the data the law's spread dwarfs the noise, and the Monte Carlo quantiles
    # of the predictive band fell inside the credible band at 16 of these 120 (point, domain)
    n, d, dp = np.geomspace(1e7, 1e11, 40), np.geomspace(3e8, 3e12, 40), np.geomspace(1e7, 1e12, 40)
    ds = additive_posterior.predict(n, d, dp, level=0.9)
    assert (ds["predictive_lo"] <= ds["credible_lo"]).all()
    assert (ds["predictive_hi"] >= ds["credible_hi"]).all()


def test_the_reports_held_out_check_counts_the_rows_no_law_describes(seeded_fit):
    """A specialist evaluated off its own domain is not predicted; the report says how many
    such rows it left out (it dropped them without a word)."""
    from bayesplit.reporting import heldout_table
    from bayesplit.runs import load_runs

    post, later, _ = seeded_fit
    spec = later[later["spec_tokens"] > 0].iloc[:1]
    other = next(d for d in post.domains if d != spec["train_domain"].iloc[0])
    off = spec.assign(eval_domain=other)  # the same specialist measured on another domain
    table = heldout_table(post, load_runs(pd.concat([later, off])))
    assert len(table) == len(later)  # not predicted
    assert table.attrs["not_modelled"] == 1
    assert heldout_table(post, later).attrs["not_modelled"] == 0


def test_a_new_run_has_one_run_effect_across_its_domains():
    """A point is one new run evaluated on every domain: the mean over its domains (what
    suggest predicts for a general model) keeps the whole run-to-run spread. Drawn per
    domain, the effects of 4 domains averaged to half the spread."""
    from bayesplit.prediction import sample_predictive

    s, k, m = 20000, 4, 2
    noise = {"run_sd": np.full(s, 0.05), "sigma": np.full(s, 1e-4), "nu": np.full(s, 5.0)}
    new = sample_predictive(np.zeros((s, k, m)), noise, np.random.default_rng(0))
    log_mean_over_domains = np.log(new).mean(axis=1)  # (S, M)
    assert np.std(log_mean_over_domains, axis=0) == pytest.approx([0.05, 0.05], rel=0.05)
    # each point is its own run
    assert abs(np.corrcoef(log_mean_over_domains.T)[0, 1]) < 0.05
    seen = sample_predictive(np.zeros((s, k, m)), noise, np.random.default_rng(0), new_run=False)
    assert np.std(np.log(seen)) < 0.001  # a seen run's prediction adds noise only
