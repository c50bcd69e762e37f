"""What ``predict`` (and every path through ``Posterior.draws``) takes from a notebook user:
N, D, D' as numbers, lists, arrays or Series of one length, and ``max_draws`` as a whole
number >= 1 or None. Anything else is a BayesplitError naming the argument, not a
TypeError, ValueError or broadcasting error from numpy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayesplit
from bayesplit.errors import BayesplitError

POINT = {"params": 1e8, "pretrain_tokens": 1e9, "spec_tokens": 0.0}


BAD_POINTS = [
    # text is refused, not read by numpy as a number
    (
        {"params": "1e8"},
        "params must be a positive number or array of numbers, got '1e8' \\(str\\)",
    ),
    ({"params": "abc"}, "params must be a positive number or array of numbers, got 'abc'"),
    ({"pretrain_tokens": "1e9"}, "pretrain_tokens must be a positive number .* got '1e9'"),
    ({"spec_tokens": "0"}, "spec_tokens must be a number >= 0 or array of numbers, got '0'"),
    ({"params": [1e8, "x"]}, "params must be .* got an entry 'x' \\(str\\)"),
    # None and bools are not counts (True was read as N = 1)
    ({"params": None}, "params must be .* got None"),
    ({"pretrain_tokens": None}, "pretrain_tokens must be .* got None"),
    ({"spec_tokens": None}, "spec_tokens must be .* got None"),
    ({"params": True}, "params must be .* got True \\(bool\\)"),
    ({"pretrain_tokens": False}, "pretrain_tokens must be .* got False \\(bool\\)"),
    ({"spec_tokens": True}, "spec_tokens must be .* got True \\(bool\\)"),
    ({"params": [1e8, True]}, "params must be .* got an entry True \\(bool\\)"),
    ({"params": np.array([True, False])}, "params must be .* \\(ndarray\\)"),
    ({"params": {}}, "params must be .* got {} \\(dict\\)"),
    ({"params": 1e8 + 0j}, "params must be .* \\(complex\\)"),
    # shapes
    ({"params": [[1e8, 1e9]]}, "params must be a number or a 1-D array of numbers, got 2-D"),
    (
        {"params": [1e7, 1e8, 1e9], "pretrain_tokens": [1e9, 1e10]},
        "must be arrays of one length .* got lengths params=3, pretrain_tokens=2",
    ),
    (
        {"params": [1e7, 1e8, 1e9], "spec_tokens": np.array([0.0, 1e8])},
        "got lengths params=3, spec_tokens=2",
    ),
    # no points: an empty dataset was returned, as if that were an answer
    ({"params": []}, "params is empty: give at least one number"),
    ({"pretrain_tokens": np.array([])}, "pretrain_tokens is empty"),
    ({"spec_tokens": pd.Series([], dtype=float)}, "spec_tokens is empty"),
    # values
    ({"params": np.nan}, "params must be finite and > 0, got nan"),
    ({"params": np.inf}, "params must be finite and > 0, got inf"),
    ({"params": 0}, "params must be finite and > 0, got 0"),
    ({"pretrain_tokens": -1}, "pretrain_tokens must be finite and > 0, got -1"),
    ({"pretrain_tokens": [1e9, np.inf]}, "pretrain_tokens .* got inf \\(point 1\\)"),
    ({"spec_tokens": -5}, "spec_tokens must be finite and >= 0, got -5"),
    ({"spec_tokens": np.nan}, "spec_tokens must be finite and >= 0, got nan"),
]


@pytest.mark.parametrize("given,message", BAD_POINTS, ids=[repr(g) for g, _ in BAD_POINTS])
def test_predict_refuses_bad_points(additive_posterior, given, message):
    with pytest.raises(BayesplitError, match=message):
        bayesplit.predict(additive_posterior, **{**POINT, **given}, domain="web")


BAD_MAX_DRAWS = [
    (0, "max_draws must be >= 1 \\(or None for all draws\\), got 0"),
    (-1, "max_draws must be >= 1 .* got -1"),
    (2.5, "max_draws must be a whole number >= 1 .* got 2.5 \\(float\\)"),
    (100.0, "max_draws must be a whole number >= 1 .* got 100.0 \\(float\\)"),
    (True, "max_draws must be a whole number >= 1 .* got True \\(bool\\)"),
    ("100", "max_draws must be a whole number >= 1 .* got '100' \\(str\\)"),
]


@pytest.mark.parametrize("max_draws,message", BAD_MAX_DRAWS)
def test_max_draws_is_a_whole_number_of_at_least_one(additive_posterior, max_draws, message):
    with pytest.raises(BayesplitError, match=message):
        bayesplit.predict(additive_posterior, 1e8, 1e9, domain="web", max_draws=max_draws)
    with pytest.raises(BayesplitError, match=message):
        additive_posterior.predict(1e8, 1e9, domain="web", max_draws=max_draws)
    with pytest.raises(BayesplitError, match=message):
        additive_posterior.draws(max_draws=max_draws)


@pytest.mark.parametrize("max_draws,message", [BAD_MAX_DRAWS[i] for i in (0, 2, 3, 5)])
def test_allocate_and_suggest_check_max_draws(additive_posterior, max_draws, message):
    with pytest.raises(BayesplitError, match=message):
        bayesplit.allocate(additive_posterior, budget=1e20, max_draws=max_draws, force=True)
    # suggest's floor is 10 draws (the ranking needs them), and its messages say so
    message = message.replace(">= 1 ", ">= 10 ").replace(">= 1 \\(", ">= 10 \\(")
    with pytest.raises(BayesplitError, match=message):
        bayesplit.suggest(additive_posterior, budget=1e20, n=1, max_draws=max_draws, force=True)


@pytest.mark.parametrize(
    ("level", "draws", "said"),
    [
        (0.9, 400, None),
        (0.9, 200, None),  # 10 draws beyond each end: "only 10 ... (fewer than 10)" by rounding
        (0.96, 400, "noisy"),
        (0.999, 400, "the most extreme draws"),
    ],
)
def test_a_band_resting_on_a_few_draws_is_noted(additive_posterior, post_path, level, draws, said):
    # --level 0.999999 gave the smallest and largest draw as the band, unsaid
    import json

    from typer.testing import CliRunner

    from bayesplit.cli import app

    plan = bayesplit.allocate(
        additive_posterior, budget=1e20, level=level, max_draws=draws, force=True
    )
    tails = [n for n in plan.notes if "expected beyond each end" in n]
    assert len(tails) == (said is not None)
    if said:
        expected = f"only {(1 - level) / 2 * draws:.2g} of the {draws} draws"
        assert expected in tails[0] and said in tails[0]
    args = ["predict", str(post_path), "--params", "1e8", "--pretrain-tokens", "1e9",
            "--spec-tokens", "1e8", "--domain", "web", "--level", str(level), "--json"]  # fmt: skip
    notes = json.loads(CliRunner().invoke(app, args).stdout)["notes"]
    n_draws = (
        additive_posterior.idata.posterior.sizes["draw"]
        * (additive_posterior.idata.posterior.sizes["chain"])
    )
    assert any("expected beyond each end" in n for n in notes) == ((1 - level) / 2 * n_draws < 10)


def test_one_draw_of_a_fitted_posterior_is_noted(additive_posterior):
    # max_draws=1 gave a point band and an expected regret of 1e-8, without a word
    plan = bayesplit.allocate(additive_posterior, budget=1e20, max_draws=1, force=True)
    assert any("every band is a point" in n for n in plan.notes), plan.notes
    truth = bayesplit.truth.example_truth("additive", ("web", "code")).as_posterior()
    assert not any("every band is a point" in n for n in bayesplit.allocate(truth, budget=1e20).notes)  # fmt: skip


def test_valid_points_work_and_broadcast(additive_posterior):
    post = additive_posterior
    n = [1e7, 1e8, 1e9]
    ref = bayesplit.predict(post, n, [1e9, 1e9, 1e9], [0.0, 0.0, 0.0], domain="web")
    same = [
        bayesplit.predict(post, np.array(n), 1e9, domain="web"),  # a scalar is used at every point
        bayesplit.predict(post, pd.Series(n, index=[5, 6, 7]), [1e9], domain="web"),  # length 1
        bayesplit.predict(post, pd.Series(n, dtype=object), np.float32(1e9), 0, domain="web"),
        post.predict(tuple(n), np.int64(10**9), np.array([0.0]), domain="web"),
    ]
    for ds in same:
        assert ds.sizes["point"] == 3
        np.testing.assert_allclose(ds["params"], n)
        np.testing.assert_allclose(ds["pretrain_tokens"], 1e9)
        np.testing.assert_allclose(ds["spec_tokens"], 0.0)
        np.testing.assert_allclose(ds["mean"], ref["mean"])
    one = bayesplit.predict(post, 1e8, 1e9, 1e8, domain=["web", "code"])
    assert dict(one.sizes) == {"domain": 2, "point": 1, "draw": post.n_draws}
    assert bayesplit.predict(post, 1e8, 1e9, domain="web", max_draws=1).sizes["draw"] == 1
    assert (
        bayesplit.predict(post, 1e8, 1e9, domain="web", max_draws=np.int64(50)).sizes["draw"] == 50
    )
    assert len(post.draws(max_draws=10 * post.n_draws)["E"]) == post.n_draws
    assert len(post.draws(max_draws=None)["E"]) == post.n_draws


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        ([], "domain is empty: give a domain name, a list of them, or None"),  # an empty answer
        (5, "domain must be names \\(strings\\), got 5 \\(int\\)"),  # 'int' is not iterable
        (["web", "web"], "domain name web more than once"),  # two "web" coordinates
        (["web", None], "domain must be names \\(strings\\)"),
    ],
)
def test_predict_refuses_domains_that_name_no_domain_once(domain, message):
    from bayesplit.truth import example_truth

    post = example_truth("additive", ("web", "code")).as_posterior()
    with pytest.raises(BayesplitError, match=message):
        bayesplit.predict(post, 1e8, 1e9, domain=domain)
    with pytest.raises(BayesplitError, match=message):
        post.predict(1e8, 1e9, domain=domain)
    # what was valid still is: a name, a list, an array, None for every domain
    assert bayesplit.predict(post, 1e8, 1e9, domain="code")["domain"].values.tolist() == ["code"]
    both = bayesplit.predict(post, 1e8, 1e9, domain=np.array(["code", "web"]))
    assert both["domain"].values.tolist() == ["code", "web"]
    assert bayesplit.predict(post, 1e8, 1e9)["domain"].values.tolist() == ["web", "code"]


def test_the_split_and_size_curves_use_the_allocations_draws(additive_posterior):
    # allocate(max_draws=20) gave bands from 20 draws and curves from up to 2000
    alloc = bayesplit.allocate(additive_posterior, budget=1e20, max_draws=20, force=True)
    assert alloc.draws.sizes["draw"] == 20
    assert alloc.split_curve(points=5).sizes["draw"] == 20
    assert alloc.size_curve(points=5).sizes["draw"] == 20
