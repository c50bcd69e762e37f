"""Predictions: two bands, never confused."""

from __future__ import annotations

import numpy as np
import pytest

from bayesplit.errors import BayesplitError


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
