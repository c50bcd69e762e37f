"""The allocator: correct optimum (brute force), sensible behaviour, clear refusals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from support import two_run_table

from bayesplit.allocation import (
    ALTERNATIVE_NAMES,
    _near_optimal_range,
    allocate,
    parse_budgets,
    parse_risk,
)
from bayesplit.compute import ComputeModel
from bayesplit.errors import BayesplitError, DiagnosticsError
from bayesplit.truth import GroundTruth, example_truth

BUDGET = 1e20


def brute_force(truth, budget, trunk="shared", cap=None, params=None, compute=None):
    """Exhaustive grid over N, the pretraining share and the split between two domains."""
    n_grid = np.array([params]) if params else np.geomspace(5e7, 5e9, 241)
    phi = np.linspace(0.0, 1.0, 201)[:, None]
    share_a = np.linspace(0.0, 1.0, 201)[None, :]
    cm = compute or ComputeModel(trunk)
    best = np.inf
    for n in n_grid:
        tokens = budget / cm.flops_per_token(n)
        d = phi * tokens / cm.pretrain_multiplier(2)
        dpa = (1 - phi) * tokens * share_a
        dpb = (1 - phi) * tokens * (1 - share_a)
        if cap is not None:
            dpa = np.minimum(dpa, cap)
        la = truth.loss(n, np.maximum(d, 1.0), dpa, "a")
        lb = truth.loss(n, np.maximum(d, 1.0), dpb, "b")
        best = min(best, float(np.min(0.5 * (la + lb))))
    return best


@pytest.fixture(scope="module")
def truth2():
    return example_truth("additive", ("a", "b"))


@pytest.mark.parametrize("trunk", ["shared", "independent"])
def test_matches_brute_force(truth2, trunk):
    alloc = allocate(truth2.as_posterior(), budget=BUDGET, trunk=trunk)
    got = alloc.to_dict()["objective"]["median"]
    ref = brute_force(truth2, BUDGET, trunk)
    assert got <= ref * (1 + 1e-3), (got, ref)
    assert got >= ref * (1 - 2e-3)  # the grid is fine enough that nothing beats it by much
    assert alloc.compute.flops(
        alloc.plan.params, alloc.plan.pretrain_tokens, list(alloc.plan.spec_tokens.values())
    ) == pytest.approx(BUDGET, rel=1e-6)


def test_the_split_and_size_curves_see_the_data_limit(truth2):
    """The figures' curves are the objective allocate reports: D' beyond the limit buys nothing."""
    from bayesplit.plan import split_shares

    post = truth2.as_posterior()
    free = allocate(post, budget=BUDGET)
    cap = 0.3 * free.plan.spec_tokens["a"]
    alloc = allocate(post, budget=BUDGET, max_spec_tokens={"a": cap})
    curve = alloc.split_curve(points=9)
    n, _, dp = alloc.plan.arrays(alloc.domains)
    shares = split_shares(dp, alloc.weights)
    d, dps = alloc.compute.split(alloc.budget, n, curve["fraction"].values, shares)
    assert alloc.domains == ["a", "b"] and (dps[:, 0] > cap).any()  # the limit binds on part
    idx = post.domain_index(alloc.domains)
    want = [
        float(np.exp(post.log_mean(n, a, np.minimum(b, [cap, np.inf]), idx)[0]) @ alloc.weights)
        for a, b in zip(d, dps, strict=True)
    ]
    np.testing.assert_allclose(curve["objective"].values[:, 0], want, rtol=1e-9)
    sizes = alloc.size_curve(points=5)
    np.testing.assert_allclose(sizes["objective"].values[2], alloc.draws["objective"], rtol=1e-9)


def test_matches_brute_force_with_a_data_limit(truth2):
    free = allocate(truth2.as_posterior(), budget=BUDGET)
    cap = 0.3 * free.plan.spec_tokens["a"]
    alloc = allocate(truth2.as_posterior(), budget=BUDGET, max_spec_tokens={"a": cap})
    got = alloc.to_dict()["objective"]["median"]
    ref = brute_force(truth2, BUDGET, cap=cap)
    assert got <= ref * (1 + 1e-3), (got, ref)
    assert alloc.plan.spec_tokens["a"] <= cap * 1.01
    assert got > free.to_dict()["objective"]["median"]  # the limit costs something


@pytest.mark.parametrize("share", [0.9, 0.97, 0.99])
def test_a_data_limit_that_binds_is_reached_and_said(truth2, share):
    # the solver stopped 0.03-0.13% short of a limit that binds: no "binds" note, while the
    # near-optimal range said the limit bounded it
    post = truth2.as_posterior()
    cap = share * allocate(post, budget=BUDGET).plan.spec_tokens["a"]
    alloc = allocate(post, budget=BUDGET, max_spec_tokens={"a": cap})
    assert alloc.plan.spec_tokens["a"] == pytest.approx(cap, rel=1e-12)
    assert "data limit binds for a: D' is at r·U" in alloc.notes
    assert alloc.compute.flops(
        alloc.plan.params, alloc.plan.pretrain_tokens, list(alloc.plan.spec_tokens.values())
    ) == pytest.approx(BUDGET, rel=1e-9)


def test_only_the_limits_that_bind_are_reached(truth2):
    # b's optimum lies just inside its limit: moved there with a's (which binds), the pair
    # scored no worse, and the plan said b's limit binds too
    post = truth2.as_posterior()
    free = allocate(post, budget=BUDGET).plan.spec_tokens
    caps = {"a": 0.97 * free["a"], "b": 1.003 * free["b"]}
    alloc = allocate(post, budget=BUDGET, max_spec_tokens=caps)
    assert alloc.plan.spec_tokens["a"] == pytest.approx(caps["a"], rel=1e-12)
    assert alloc.plan.spec_tokens["b"] < caps["b"] * (1 - 1e-3)
    assert "data limit binds for a: D' is at r·U" in alloc.notes


def test_the_budget_refusal_says_independent_trunks_pretrain_once_per_domain(truth2):
    # "below the smallest run (N=1e+07, D=1e+08: 1.2e+16 FLOPs)" for a run of 6e15 FLOPs
    from bayesplit.allocation import smallest_budget

    post = truth2.as_posterior()
    one = smallest_budget(post.runs, 1)
    with pytest.raises(BayesplitError, match=r"pretrained once for each of 2 domains .independent"):
        allocate(post, budget=1.5 * one, trunk="independent")
    assert allocate(post, budget=1.5 * one).plan.params > 0  # one trunk: that budget buys it


def test_alternatives_respect_the_data_limit(truth2):
    """A fixed split that asks for more D' than the data allows is capped as the plan is."""
    post = truth2.as_posterior()
    cap = 0.3 * allocate(post, budget=BUDGET).plan.spec_tokens["a"]
    alloc = allocate(post, budget=BUDGET, max_spec_tokens={"a": cap})
    alts = alloc.alternatives
    capped = [n for n in alts["alternative"].values if n != "all pretraining"]
    for name in capped:
        alt = alts.sel(alternative=name)
        assert float(alt["spec_tokens"].sel(domain="a")) <= cap * (1 + 1e-9), name
        assert float(alt["flops"]) == pytest.approx(BUDGET, rel=1e-6), name  # excess pretrains
    assert any("cap D' of 90/10 split, 50/50 split" in n for n in alloc.notes)


def test_suggest_hooks_see_the_data_limit(truth2):
    """What suggest scores is the objective allocate reports: D' beyond the limit buys nothing."""
    post = truth2.as_posterior()
    free = allocate(post, budget=BUDGET)
    cap = 0.3 * free.plan.spec_tokens["a"]
    alloc = allocate(post, budget=BUDGET, max_spec_tokens={"a": cap})
    draws = post.draws()
    reported = alloc.draws["objective"].values
    np.testing.assert_allclose(alloc.decision_quantity("decision", draws), reported, rtol=1e-9)
    np.testing.assert_allclose(alloc.plan_objectives(draws)[:, 0], reported, rtol=1e-9)
    # a plan far beyond the limit is worth what the limit allows, not what its tokens would buy
    alloc.plan.spec_tokens["a"] = 10 * cap
    capped = alloc.decision_quantity("decision", draws)
    alloc.plan.spec_tokens["a"] = cap
    np.testing.assert_allclose(capped, alloc.decision_quantity("decision", draws), rtol=1e-12)


def test_no_token_residue_where_specializing_does_not_pay():
    """Pretraining transfers fully to `a`, so its best D' is 0: the plan says 0, not a residue."""
    base = example_truth("transfer", ("a", "b"))
    truth = dataclasses.replace(base, params={**base.params, "tau": [1.0, 0.05]})
    alloc = allocate(truth.as_posterior(), budget=BUDGET)
    assert alloc.plan.spec_tokens["a"] == 0.0
    assert alloc.plan.spec_tokens["b"] > 0.1 * alloc.plan.pretrain_tokens  # b still specializes
    assert float(alloc.draws["opt_spec_tokens"].sel(domain="a")[0]) == 0.0  # the draw's optimum too
    spent = alloc.compute.flops(
        alloc.plan.params, alloc.plan.pretrain_tokens, list(alloc.plan.spec_tokens.values())
    )
    assert spent == pytest.approx(BUDGET, rel=1e-6)  # the dropped tokens went to pretraining
    assert alloc.to_dict()["objective"]["median"] <= brute_force(truth, BUDGET) * (1 + 1e-3)


def test_fixed_params_are_respected(truth2):
    alloc = allocate(truth2.as_posterior(), budget=BUDGET, params=2e8)
    assert alloc.plan.params == pytest.approx(2e8)
    got = alloc.to_dict()["objective"]["median"]
    assert got <= brute_force(truth2, BUDGET, params=2e8) * (1 + 1e-3)


def test_ladder_picks_a_ladder_size(truth2):
    sizes = [1e8, 3e8, 1e9, 3e9]
    alloc = allocate(truth2.as_posterior(), budget=BUDGET, ladder=sizes)
    assert any(alloc.plan.params == pytest.approx(s) for s in sizes)
    assert set(np.round(alloc.draws["opt_params"].values / 1e8, 3)) <= {1.0, 3.0, 10.0, 30.0}


def test_more_domains_move_the_split_later():
    """With a shared trunk, pretraining serves every domain: more domains → branch later (larger D).

    Domains are identical so only the amortization changes. The *share* of compute on
    pretraining can still fall, because each domain's specialization gets fewer tokens
    and its marginal value rises; the split point D moves later.
    """
    one = example_truth("additive", ("web",))
    params = {k: ([v[0]] * 4 if isinstance(v, list) else v) for k, v in one.params.items()}
    truth = GroundTruth(one.law, ("a", "b", "c", "d"), params, one.reference, one.noise)
    split_points = [
        allocate(truth.as_posterior(), budget=BUDGET, domains=list("abcd"[:k])).plan.pretrain_tokens
        for k in (1, 2, 3, 4)
    ]
    assert all(a < b for a, b in zip(split_points, split_points[1:], strict=False)), split_points


@pytest.mark.parametrize("trunk", ["shared", "independent"])
def test_attention_flops_per_token_are_paid_not_a_cap_on_n(truth2, trunk):
    """A per-token cost that does not grow with N once capped the plan's N at the smallest
    fitted model's: the bound on N had counted it as if it did (1 FLOP per parameter)."""
    compute = ComputeModel(trunk, attention_flops_per_token=5e8)
    alloc = allocate(truth2.as_posterior(), budget=BUDGET, trunk=trunk, compute=compute)
    got = alloc.to_dict()["objective"]["median"]
    ref = brute_force(truth2, BUDGET, trunk, compute=compute)
    assert got <= ref * (1 + 1e-3), (got, ref)
    assert got >= ref * (1 - 2e-3)
    assert alloc.compute.flops(*alloc.plan.arrays(alloc.domains)) == pytest.approx(BUDGET)


def test_alternatives_and_regret(truth2):
    d = allocate(truth2.as_posterior(), budget=BUDGET).to_dict()
    names = [a["name"] for a in d["alternatives"]]
    assert names == ["all pretraining", "90/10 split", "50/50 split", "chinchilla then specialize"]
    assert set(names) <= ALTERNATIVE_NAMES  # the names a compare plan may not take
    for a in d["alternatives"]:  # with one exact draw the plan is the optimum: never worse
        assert a["expected_regret"] >= -1e-9 and a["p_better"] in (0.0, 1.0)
    assert d["expected_regret"] == pytest.approx(0.0, abs=1e-9)


@pytest.fixture(scope="module")
def no_spec_truth():
    return example_truth("chinchilla", ("a", "b"))


@pytest.mark.parametrize(
    "compute",
    [ComputeModel(), ComputeModel(trunk="independent", attention_flops_per_token=3e9)],
    ids=["shared", "independent-with-attention"],
)
def test_a_law_without_d_prime_is_compared_with_other_sizes(no_spec_truth, compute):
    """Without D' the only choice is N ("all pretraining" would be the plan itself)."""
    d = allocate(
        no_spec_truth.as_posterior(), budget=BUDGET, trunk=compute.trunk, compute=compute
    ).to_dict()
    alts = {a["name"]: a for a in d["alternatives"]}
    assert list(alts) == ["20 tokens per parameter", "half the size", "twice the size"]
    assert set(alts) <= ALTERNATIVE_NAMES
    n = d["plan"]["params"]
    rule = alts["20 tokens per parameter"]["plan"]
    assert rule["pretrain_tokens"] == pytest.approx(20 * rule["params"], rel=1e-9)
    assert alts["half the size"]["plan"]["params"] == pytest.approx(n / 2, rel=1e-12)
    assert alts["twice the size"]["plan"]["params"] == pytest.approx(2 * n, rel=1e-12)
    for a in alts.values():  # each spends the budget, all on pretraining
        assert a["flops"] == pytest.approx(BUDGET, rel=1e-9)
        assert set(a["plan"]["spec_tokens"].values()) == {0.0}
        # with one exact draw the plan is the optimum: never worse
        assert a["expected_regret"] >= -1e-9 and a["p_better"] in (0.0, 1.0)
    for name in ("half the size", "twice the size"):  # a factor 2 off the optimum costs
        assert alts[name]["expected_regret_rel"] > 1e-4 and alts[name]["p_better"] == 1.0


def test_a_law_without_d_prime_on_a_ladder_or_a_fixed_n(no_spec_truth):
    post = no_spec_truth.as_posterior()
    free = allocate(post, budget=BUDGET).to_dict()
    n = free["plan"]["params"]
    rule = next(a for a in free["alternatives"] if a["name"] == "20 tokens per parameter")
    n_rule = rule["plan"]["params"]
    assert n_rule > 1.1 * n  # so that the ladder below puts the rule's size next to the plan's
    # the plan takes the free optimum; its larger neighbour is also the rule's nearest size
    ladder = [n / 3, n, 1.1 * n_rule, 4 * n_rule]
    d = allocate(post, budget=BUDGET, ladder=ladder).to_dict()
    assert d["plan"]["params"] == pytest.approx(n)
    got = {a["name"]: a["plan"]["params"] for a in d["alternatives"]}
    assert set(got) <= ALTERNATIVE_NAMES
    assert got == pytest.approx(
        {
            "ladder size nearest 20 tokens per parameter": 1.1 * n_rule,
            "next smaller ladder size": n / 3,
        }
    )
    # N fixed: the budget fixes D, and there is no other plan to compare
    fixed = allocate(post, budget=BUDGET, params=n)
    assert fixed.to_dict()["alternatives"] == []
    assert fixed.alternatives.sizes["alternative"] == 0
    assert not any(line.startswith("  vs ") for line in repr(fixed).splitlines())
    fixed.plot_alternatives()  # the plan alone


def test_user_plan_comparison(truth2):
    plan = {
        "name": "ours",
        "params": 3e8,
        "pretrain_tokens": 4e10,
        "spec_tokens": {"a": 5e9, "b": 5e9},
    }
    d = allocate(truth2.as_posterior(), budget=BUDGET, compare=[plan]).to_dict()
    ours = [a for a in d["alternatives"] if a["name"] == "ours"][0]
    assert ours["plan"]["params"] == 3e8 and ours["expected_regret"] > 0
    # the plan itself, as its JSON gives it back: a tie in every draw, not "0% better"
    itself = {**d["plan"], "name": "itself"}
    again = allocate(truth2.as_posterior(), budget=BUDGET, compare=[itself]).to_dict()
    (same,) = [a for a in again["alternatives"] if a["name"] == "itself"]
    assert same["p_better"] == pytest.approx(0.5)
    with pytest.raises(BayesplitError, match="unknown domain"):
        allocate(
            truth2.as_posterior(),
            budget=BUDGET,
            compare=[{"params": 1e8, "pretrain_tokens": 1e9, "spec_tokens": {"zz": 1.0}}],
        )


def test_chinchilla_then_specialize_leaves_no_d_prime_below_zero():
    # with independent trunks its D is tokens / K where 20·N is more, and the D' left,
    # tokens - D·K, came out an ulp below 0 (-7.6e-6 tokens): a D' a Plan refuses
    post = example_truth("additive", ("web", "code", "law")).as_posterior()
    alloc = allocate(post, budget=1e21, trunk="independent", params=2.56e9)
    alt = alloc.alternatives.sel(alternative="chinchilla then specialize")
    assert (alt["spec_tokens"].values == 0).all()
    assert alloc.alternatives["spec_tokens"].values.min() >= 0


def test_a_plan_object_is_compared_as_its_dict(truth2):
    # compare=alloc.plan (a Plan, not a dict) was refused: "compare must be a plan ..."
    post = truth2.as_posterior()
    earlier = allocate(post, budget=BUDGET / 10, max_draws=200)
    as_dict = allocate(post, budget=BUDGET, max_draws=200, compare=earlier.plan.to_dict())
    (want,) = [a for a in as_dict.to_dict()["alternatives"] if a["name"] == "user plan 1"]
    assert want["plan"] == earlier.plan.to_dict()
    ours = {"name": "ours", "params": 3e8, "pretrain_tokens": 4e10}
    for compare in (earlier.plan, [earlier.plan], (earlier.plan, ours)):
        alloc = allocate(post, budget=BUDGET, max_draws=200, compare=compare)
        alts = {a["name"]: a for a in alloc.to_dict()["alternatives"]}
        assert alts["user plan 1"] == want
    assert "ours" in alts  # a Plan and a dict in one list
    # the plan itself: a tie in every draw
    alloc = allocate(post, budget=BUDGET, max_draws=200, compare=as_dict.plan)
    assert alloc.alternatives["p_better"].sel(alternative="user plan 1") == pytest.approx(0.5)
    with pytest.raises(BayesplitError, match="^compare got an allocation, not a plan: give its"):
        allocate(post, budget=BUDGET, max_draws=200, compare=[alloc])
    other = allocate(example_truth("additive", ("a", "c")).as_posterior(), budget=BUDGET)
    with pytest.raises(BayesplitError, match="^plan names unknown domain\\(s\\) c$"):
        allocate(post, budget=BUDGET, max_draws=200, compare=other.plan)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"budget": 1e9}, "below the smallest run"),
        ({"budget": -5.0}, "budget must be"),
        ({"budget": BUDGET, "domains": ["a", "zz"]}, "unknown domain"),
        ({"budget": BUDGET, "weights": {"a": -1.0}}, "weights"),
        ({"budget": BUDGET, "max_spec_tokens": {"zz": 1e9}}, "unknown domain"),
        ({"budget": BUDGET, "risk": "worst"}, "risk"),
        ({"budget": BUDGET, "params": 1e8, "ladder": [1e8]}, "not both"),
        ({"budget": BUDGET, "params": 1e13}, "fewer than"),
        ({"budget": BUDGET, "trunk": "forest"}, "trunk"),
    ],
)
def test_infeasible_or_bad_requests(truth2, kwargs, words):
    with pytest.raises(BayesplitError, match=words):
        allocate(truth2.as_posterior(), **kwargs)


def _true_objective_at(post, alloc, n, fraction):
    """The weighted loss of size ``n`` and pretraining share ``fraction`` at the plan's
    budget and division of D' between domains, straight from the law."""
    _, _, dp = alloc.plan.arrays(alloc.domains)
    d, dps = alloc.compute.split(alloc.budget, n, fraction, dp)
    log_l = post.log_mean(n, d, dps, post.domain_index(alloc.domains))
    return float(np.exp(log_l[0]) @ alloc.weights)


def _true_objective(post, alloc, fraction):
    """The weighted loss of the split ``fraction`` at the plan's N."""
    return _true_objective_at(post, alloc, alloc.plan.params, fraction)


@pytest.mark.parametrize("trunk", ["shared", "independent"])
def test_near_optimal_range_holds_the_shares_within_the_tolerance(truth2, trunk):
    post = truth2.as_posterior()
    ranges = {}
    for tol in (0.0, 0.001, 0.01):
        alloc = allocate(post, budget=BUDGET, trunk=trunk, tolerance=tol)
        lo, hi = ranges[tol] = alloc.near_optimal
        own = alloc.pretrain_fraction
        assert not [n for n in alloc.notes if "near-optimal" in n]
        assert lo <= own <= hi
        best = _true_objective(post, alloc, own)
        limit = best * (1 + tol)
        assert _true_objective(post, alloc, lo) <= limit * (1 + 1e-9)
        assert _true_objective(post, alloc, hi) <= limit * (1 + 1e-9)
        # one grid step (0.5%) further out on either side is beyond the tolerance
        if lo > 0.01:
            assert _true_objective(post, alloc, lo - 0.005) > limit
        if hi < 1.0:
            assert _true_objective(post, alloc, hi + 0.005) > limit
        near = alloc.to_dict()["near_optimal"]
        assert (near["tolerance"], near["pretrain_fraction"]) == (tol, [lo, hi])
    assert ranges[0.0] == (pytest.approx(own, abs=1e-12),) * 2  # the best share alone
    # a wider tolerance, a wider range
    assert ranges[0.01][0] < ranges[0.001][0] <= ranges[0.0][0]
    assert ranges[0.01][1] > ranges[0.001][1] >= ranges[0.0][1]
    assert "near-optimal: pretraining shares in [" in repr(alloc)


def _true_objective_at_size(post, alloc, n):
    """The weighted loss of model size ``n`` at the plan's split."""
    return _true_objective_at(post, alloc, n, alloc.pretrain_fraction)


@pytest.mark.parametrize("trunk", ["shared", "independent"])
def test_near_optimal_sizes_hold_the_models_within_the_tolerance(truth2, trunk):
    post = truth2.as_posterior()
    ranges = {}
    for tol in (0.0, 0.001, 0.01):
        alloc = allocate(post, budget=BUDGET, trunk=trunk, tolerance=tol)
        lo, hi = ranges[tol] = alloc.near_optimal_params
        n = alloc.plan.params
        assert lo <= n <= hi
        assert not [x for x in alloc.notes if "near-optimal model sizes" in x]
        limit = _true_objective_at_size(post, alloc, n) * (1 + tol)
        assert _true_objective_at_size(post, alloc, lo) <= limit * (1 + 1e-9)
        assert _true_objective_at_size(post, alloc, hi) <= limit * (1 + 1e-9)
        # one grid step (a factor e^(1/50), 2%) further out on either side is beyond it
        step = np.exp(1 / 50)
        assert _true_objective_at_size(post, alloc, lo / step) > limit
        assert _true_objective_at_size(post, alloc, hi * step) > limit
        assert alloc.to_dict()["near_optimal"]["params"] == [lo, hi]
    assert ranges[0.0] == (pytest.approx(n, rel=1e-9),) * 2  # the best size alone
    assert ranges[0.01][0] < ranges[0.001][0] <= ranges[0.0][0]
    assert ranges[0.01][1] > ranges[0.001][1] >= ranges[0.0][1]
    # a loss law's isoFLOP curve is flat at its bottom: 1% of loss spans a wide range of N
    assert ranges[0.01][1] / ranges[0.01][0] > 2
    assert "near-optimal: model sizes N in [" in repr(alloc)


def test_a_plan_below_half_a_percent_pretraining_lies_in_its_landscapes_region():
    # the grid started at a 0.5% share: a plan at 0.03% and every per-draw optimum lay
    # below it, and the region, measured from the grid's best, not the plan, was too large
    post = example_truth("transfer", ("a", "b")).as_posterior()
    alloc = allocate(post, budget=1e18, trunk="independent", tolerance=0.01)
    assert alloc.pretrain_fraction < 0.005
    land = alloc.landscape(points=41)
    fractions = land["fraction"].values
    assert 0 < fractions[0] < alloc.pretrain_fraction < fractions[-1]
    below = fractions[fractions <= alloc.pretrain_fraction][-1]
    i = int(np.argmin(abs(np.log(land["params"].values / alloc.plan.params))))
    assert float(land["relative"][i, list(fractions).index(below)]) <= alloc.tolerance
    inside = fractions[land["relative"].values[i] <= alloc.tolerance]
    step = fractions[1] - fractions[0]  # the region at the plan's N agrees with the table
    assert inside.max() == pytest.approx(alloc.near_optimal[1], abs=step)


@pytest.mark.parametrize("trunk", ["shared", "independent"])
def test_the_landscape_is_the_law_over_size_and_share_and_holds_both_slices(truth2, trunk):
    post = truth2.as_posterior()
    tol = 0.01
    alloc = allocate(post, budget=BUDGET, trunk=trunk, tolerance=tol)
    land = alloc.landscape(points=31)
    assert land["risk"].dims == ("params", "fraction") and land["risk"].shape == (31, 31)
    sizes, fractions = land["params"].values, land["fraction"].values
    (n_lo, n_hi), (f_lo, f_hi) = alloc.near_optimal_params, alloc.near_optimal
    assert sizes[0] < n_lo <= alloc.plan.params <= n_hi < sizes[-1]
    assert fractions[0] < f_lo <= alloc.pretrain_fraction <= f_hi <= fractions[-1]
    for i, j in [(0, 0), (12, 20), (30, 30), (17, 3)]:  # the law's objective at grid points
        want = _true_objective_at(post, alloc, sizes[i], fractions[j])
        assert float(land["risk"][i, j]) == pytest.approx(want, rel=1e-5)  # float32 kernel
    # no plan of the grid beats the optimizer's plan
    plan_risk = _true_objective_at(post, alloc, alloc.plan.params, alloc.pretrain_fraction)
    assert float(land["risk"].min()) >= plan_risk * (1 - 1e-5)
    # measured from the best of the grid and the plan (the plan lies between grid points)
    best = min(float(land["risk"].min()), plan_risk)
    assert np.allclose(land["relative"], land["risk"] / best - 1, rtol=0, atol=1e-4)
    assert 0.0 <= float(land["relative"].min()) <= 1e-4
    # the joint region holds both slices through the plan: every size within the sizes'
    # range has some share within the tolerance, and every share in the shares' range some N
    inside = land["relative"].values <= tol
    assert inside[(sizes >= n_lo) & (sizes <= n_hi)].any(axis=1).all()
    assert inside[:, (fractions >= f_lo) & (fractions <= f_hi)].any(axis=0).all()
    # and is a region, not the whole grid: the grid's corners are worse
    assert not inside[0, 0] and not inside[-1, 0]
    with pytest.raises(BayesplitError, match="points must be a whole number >= 3"):
        alloc.landscape(points=2)


def test_the_optimum_figure_outlines_the_joint_near_optimal_region(additive_posterior):
    alloc = allocate(additive_posterior, budget=1e20, force=True, max_draws=400, tolerance=0.01)
    fig = alloc.plot_optimum(points=15)
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert "within 1% of the best mean (N and split)" in labels
    assert "optimum of each posterior draw" in labels and "plan (risk: mean)" in labels
    # the draws' key is drawn opaque and visible (it was the dots' own alpha 0.25 and size 4)
    legend = ax.get_legend()
    (key,) = [h for h, t in zip(legend.legend_handles, legend.get_texts(), strict=True)
              if t.get_text() == "optimum of each posterior draw"]  # fmt: skip
    assert key.get_alpha() == 1.0 and key.get_sizes()[0] >= 16
    # the outline is the landscape's tolerance contour, around the plan
    land = alloc.landscape(points=15)
    region = [c for c in ax.collections if type(c).__name__ == "QuadContourSet"]
    assert len(region) == 2  # the shaded region and its outline
    paths = [p for c in region for p in c.get_paths() if len(p.vertices) > 2]
    outline = np.vstack([p.vertices for p in paths])
    assert outline[:, 0].min() >= land["params"].values[0] * (1 - 1e-9)
    assert outline[:, 0].max() <= land["params"].values[-1] * (1 + 1e-9)
    assert any(p.contains_point((alloc.plan.params, alloc.pretrain_fraction)) for p in paths)


def test_the_optimum_figure_says_when_the_whole_grid_is_within_tolerance(truth2, monkeypatch):
    """An objective flat across the grid has no contour to draw; the legend says why."""
    alloc = allocate(truth2.as_posterior(), budget=BUDGET)
    land = alloc.landscape(points=7)
    flat = land.assign(relative=land["relative"] * (0.5 * alloc.tolerance / land["relative"].max()))
    monkeypatch.setattr(type(alloc), "landscape", lambda self, points=41: flat)
    ax = alloc.plot_optimum(points=7).axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert "every plan of the grid is within 0.1% of the best mean" in labels
    assert not [c for c in ax.collections if type(c).__name__ == "QuadContourSet"]
    # and a landscape that is not flat gets its outline, not that line
    monkeypatch.setattr(type(alloc), "landscape", lambda self, points=41: land)
    labels = alloc.plot_optimum(points=7).axes[0].get_legend_handles_labels()[1]
    assert not any(x.startswith("every plan") for x in labels)


def test_a_fixed_size_outside_the_near_optimal_sizes_is_noted(truth2):
    post = truth2.as_posterior()
    free = allocate(post, budget=BUDGET)
    lo, hi = free.near_optimal_params
    fixed = allocate(post, budget=BUDGET, params=lo / 3)
    assert fixed.plan.params == pytest.approx(lo / 3)
    assert any(
        "is outside the near-optimal model sizes" in x and "its N was fixed (params or ladder)" in x
        for x in fixed.notes
    )
    coarse = allocate(post, budget=BUDGET, ladder=[lo / 3, hi * 3])  # no size in the range
    assert coarse.plan.params in (pytest.approx(lo / 3), pytest.approx(hi * 3))
    assert any("its N was fixed (params or ladder)" in x for x in coarse.notes)
    # the best size at the fixed plan's own split is near the free optimum's
    f_lo, f_hi = fixed.near_optimal_params
    assert f_lo < free.plan.params * 2 and f_hi > free.plan.params / 2


def test_near_optimal_range_is_the_stretch_around_the_best_share():
    grid = np.linspace(0.005, 1.0, 200)

    def bowl(f):  # best at 0.6, 1% worse at 0.5 and 0.7
        return 1.0 + (np.asarray(f) - 0.6) ** 2

    (lo, hi), elsewhere = _near_optimal_range(bowl, grid, 0.6, 0.01)
    assert (lo, hi) == (pytest.approx(0.5, abs=0.005), pytest.approx(0.7, abs=0.005))
    assert 1 + (lo - 0.6) ** 2 <= 1.01 and 1 + (hi - 0.6) ** 2 <= 1.01
    assert len(elsewhere) == 0

    def two_dips(f):  # a second dip at 0.95, within the tolerance but across a ridge
        f = np.asarray(f)
        return np.minimum(1.0 + (f - 0.3) ** 2, 1.005 + 50 * (f - 0.95) ** 2)

    (lo, hi), elsewhere = _near_optimal_range(two_dips, grid, 0.3, 0.01)
    assert hi < 0.45, "a separate dip is not part of the best share's range"
    assert elsewhere.min() > 0.9 and elsewhere.max() < 1.0  # but it is reported apart
    assert np.all(two_dips(elsewhere) <= 1.01)
    # a plan in the other dip, itself within the tolerance: its own dip is the range and
    # the best's is reported apart (q90 made the notes call such a plan "outside")
    (lo, hi), elsewhere = _near_optimal_range(two_dips, grid, 0.95, 0.01)
    assert lo <= 0.95 <= hi and hi < 1.0 and lo > 0.9
    assert elsewhere.min() > 0.1 and elsewhere.max() < 0.45
    # the plan's own share joins the grid, so a best plan off the grid is its own range
    assert _near_optimal_range(lambda f: 1 + (f - 0.6012) ** 2, grid, 0.6012, 0.0)[0] == (
        0.6012,
        0.6012,
    )


def test_a_second_near_optimal_region_and_a_plan_outside_its_range_are_noted(truth2, monkeypatch):
    import bayesplit.allocation as allocation

    real = allocation._near_optimal_range

    def two_regions(risk_at, fractions, own, tolerance):
        _, elsewhere = real(risk_at, fractions, own, tolerance)
        assert len(elsewhere) == 0  # the example law's line has one dip...
        return (0.2, 0.3), np.array([0.95, 0.96, 0.97])  # ...so pretend it had two

    monkeypatch.setattr(allocation, "_near_optimal_range", two_regions)
    notes = allocate(truth2.as_posterior(), budget=BUDGET).notes
    # ends that print alike are one value: it read "between 1.24e+04 and 1.24e+04"
    assert allocation._between(np.array([12_400.0, 12_400.4]), ".3g") == "of 1.24e+04"
    assert (
        "pretraining shares between 95.0% and 97.0% are also within 0.1% of the best at this "
        "N, past a worse stretch: the split has two near-optimal regions" in notes
    )
    assert any("is outside the near-optimal range [20.0%, 30.0%]" in n for n in notes)


@pytest.mark.parametrize("risk", ["mean", "q90", "cvar90"])
def test_the_near_optimal_lines_are_the_same_evaluated_at_once_or_plan_by_plan(
    additive_posterior, monkeypatch, risk
):
    import bayesplit.allocation as allocation
    from bayesplit.laws.base import Law

    real = allocation._near_optimal_range
    seen: dict[bool, list] = {}

    def record(risk_at, fractions, own, tolerance):
        seen[mode].append(np.asarray(risk_at(np.unique(np.r_[fractions, own]))))
        return real(risk_at, fractions, own, tolerance)

    monkeypatch.setattr(allocation, "_near_optimal_range", record)
    # built-in laws take the chunked path; a user's law is called one plan at a time
    monkeypatch.setattr(allocation, "LINE_CHUNK", 7)  # chunks that do not divide the grids
    out = {}
    for mode in (True, False):
        seen[mode] = []
        monkeypatch.setattr(Law, "builtin", property(lambda self, m=mode: m))
        out[mode] = allocate(additive_posterior, budget=BUDGET, risk=risk, force=True)
    assert [len(r) for r in seen[True]] == [len(r) for r in seen[False]] and len(seen[True]) == 2
    assert len(seen[True][1]) > 100  # the sizes' grid
    for chunked, one_by_one in zip(seen[True], seen[False], strict=True):
        np.testing.assert_allclose(chunked, one_by_one, rtol=1e-12)
    assert out[True].near_optimal == out[False].near_optimal
    assert out[True].near_optimal_params == out[False].near_optimal_params


@pytest.mark.parametrize("tolerance", [-0.001, 1.0, float("nan"), "0.1", True])
def test_a_bad_tolerance_is_refused(truth2, tolerance):
    with pytest.raises(BayesplitError, match="tolerance must be a relative slack in"):
        allocate(truth2.as_posterior(), budget=BUDGET, tolerance=tolerance)


def test_failed_posterior_is_refused_unless_forced():
    from bayesplit.fitting import fit

    two = two_run_table()
    # two runs cannot identify the law: the gate fails however long the chains
    post = fit(two, "chinchilla", chains=2, draws=30, warmup=30, progress=False)
    with pytest.raises(DiagnosticsError, match="diagnostics gate"):
        allocate(post, budget=1e19)
    assert allocate(post, budget=1e19, force=True).plan.params > 0


def test_parsers():
    assert (
        parse_risk("mean") == ("mean", 0.0)
        and parse_risk("q90") == ("quantile", 0.9)
        and parse_risk("cvar95") == ("cvar", 0.95)
    )
    np.testing.assert_allclose(parse_budgets("1e18:1e22:5"), [1e18, 1e19, 1e20, 1e21, 1e22])
    with pytest.raises(BayesplitError):
        parse_budgets("lots")


def test_a_long_specialization_is_flagged_whatever_its_law_reads(additive_runs):
    """D' 27x the longest measured one at a D'/D within range had no note; nor had a law
    that reads D + D' as one run's tokens (chinchilla) for any D'."""
    from bayesplit.allocation import Plan, extrapolation_notes

    d_max = additive_runs["pretrain_tokens"].max()  # 3e9; the longest D' is 1e9
    long_dp = Plan(1e8, d_max, {"web": 2.5e9, "code": 0.0, "law": 0.0})  # D'/D 0.83, 1/3 ran
    assert extrapolation_notes(long_dp, additive_runs) == [
        "extrapolation: D' = 2.5e+09 for web is 2.5x its longest fitted specialization (1e+09)"
    ]
    # each domain against its own specialists: web's went to 1e8 only, code's to 1e9
    short_web = additive_runs[
        ~((additive_runs["train_domain"] == "web") & (additive_runs["spec_tokens"] > 1e8))
    ]
    both = Plan(1e8, d_max, {"web": 5e8, "code": 5e8, "law": 0.0})
    assert extrapolation_notes(both, short_web) == [
        "extrapolation: D' = 5e+08 for web is 5x its longest fitted specialization (1e+08)"
    ]
    # chinchilla: the longest fitted run is D + D' = 3e9 + 1e9
    notes = extrapolation_notes(
        Plan(1e8, 1e9, {"web": 1e11}), additive_runs, uses_spec_tokens=False
    )
    assert notes == [
        "extrapolation: D + D' = 1.01e+11 is 25x the longest fitted training (4e+09); this "
        "law reads them as one run's tokens"
    ]
    inside = Plan(1e8, 1e9, {"web": 3e9})  # 4e9: as long as the longest run
    assert extrapolation_notes(inside, additive_runs, uses_spec_tokens=False) == []
    # D itself far beyond, D' a token: one note, not D and D + D' for one cause
    (note,) = extrapolation_notes(Plan(1e8, 1e11, {"web": 1.0}), additive_runs, uses_spec_tokens=False)  # fmt: skip
    assert note.startswith("extrapolation: D = 1e+11 is 33x the longest fitted pretraining")


def test_a_plan_far_beyond_the_fitted_runs_is_flagged(additive_posterior, additive_runs):
    from bayesplit.allocation import Plan, extrapolation_notes

    n_max = additive_runs["params"].max()
    d_max = additive_runs["pretrain_tokens"].max()
    inside = Plan(n_max, d_max, {"web": 0.1 * d_max, "code": 0.0, "law": 0.0})
    assert extrapolation_notes(inside, additive_runs) == []
    far = Plan(10 * n_max, 0.5 * d_max, {"web": 5 * d_max, "code": 0.0, "law": 0.0})
    notes = extrapolation_notes(far, additive_runs)
    assert len(notes) == 3
    assert "10x the largest fitted model" in notes[0] and "D'/D for web" in notes[2]
    assert "D' = 1.5e+10 for web is 15x its longest fitted specialization (1e+09)" in notes[1]
    short = Plan(n_max, 0.01 * additive_runs["pretrain_tokens"].min(), {"web": 0.0})
    assert "below the shortest" in extrapolation_notes(short, additive_runs)[0]
    # an absurd plan reads as a number, not as a hundred digits
    absurd = Plan(6.8e112 * n_max, 3e180 * d_max, {"web": 0.0, "code": 0.0, "law": 0.0})
    n_note, d_note = extrapolation_notes(absurd, additive_runs)
    assert "is 6.8e+112x the largest" in n_note and "is 3e+180x the longest" in d_note
    # allocate carries the notes: at 1e6x the data's compute the plan is far outside it
    flops = (
        6
        * additive_runs["params"]
        * (additive_runs["pretrain_tokens"] + additive_runs["spec_tokens"])
    )
    alloc = allocate(additive_posterior, budget=1e6 * flops.max(), max_draws=200, force=True)
    assert any(n.startswith("extrapolation: N") for n in alloc.to_dict()["notes"])


def test_a_plan_that_specializes_on_runs_that_never_did_is_flagged(additive_runs):
    from bayesplit.allocation import Plan, extrapolation_notes

    general = additive_runs[additive_runs["spec_tokens"] == 0]
    d = general["pretrain_tokens"].max()
    plan = Plan(general["params"].max(), d, {"web": 0.1 * d, "code": 0.0, "law": 0.05 * d})
    (note,) = extrapolation_notes(plan, general)
    assert "D' > 0 for law, web, but no fitted run was specialized" in note
    assert extrapolation_notes(Plan(general["params"].max(), d, {"web": 0.0}), general) == []


def test_repr_reads_as_the_plan_not_as_every_draw(additive_posterior):
    alloc = allocate(additive_posterior, budget=1e20, max_draws=200, force=True)
    text = repr(alloc)
    d = alloc.to_dict()
    # the dataclass default printed both xarray Datasets (every draw): thousands of characters
    assert "Dimensions" not in text and "<xarray" not in text
    lines = text.splitlines()
    assert (
        lines[0]
        == f"<Allocation: plan for {1e20:.3g} FLOPs (shared trunk, risk mean, law additive)"
    )
    assert f"N = {d['plan']['params']:.3g} params" in lines[1]
    o = d["objective"]
    assert (
        f"weighted loss {o['median']:.4f} [{o['credible'][0]:.4f}, {o['credible'][1]:.4f}]" in text
    )
    for k in alloc.domains:  # one line per domain, with its loss band
        assert sum(line.startswith(f"  {k}: D' = ") for line in lines) == 1
    assert sum(line.startswith("  vs ") for line in lines) == len(d["alternatives"])
    assert sum(line.startswith("  ! ") for line in lines) == len(alloc.notes) > 0
    assert text.endswith(">") and len(text) < 3000


def test_a_fixed_n_far_below_the_fitted_models_is_kept_and_flagged(truth2):
    post = truth2.as_posterior()
    n_min = float(post.runs["params"].min())
    alloc = allocate(post, budget=BUDGET, params=n_min / 100)
    assert alloc.plan.params == pytest.approx(n_min / 100)  # it was moved to n_min / 10
    assert np.allclose(alloc.draws["opt_params"].values, n_min / 100)
    assert any("below the smallest fitted model" in n for n in alloc.notes)


def test_a_ladder_of_small_sizes_stays_on_the_ladder(truth2):
    post = truth2.as_posterior()
    n_min = float(post.runs["params"].min())
    sizes = [n_min / 300, n_min / 100, n_min / 30]
    alloc = allocate(post, budget=BUDGET, ladder=sizes)
    assert any(alloc.plan.params == pytest.approx(s) for s in sizes), alloc.plan.params
    opt = alloc.draws["opt_params"].values
    assert np.isclose(opt[:, None], np.array(sizes)[None, :]).any(axis=1).all()


def test_ladder_sizes_the_budget_cannot_train_are_left_out_with_a_note(truth2):
    post = truth2.as_posterior()
    alloc = allocate(post, budget=BUDGET, ladder=[1e8, 3e8, 1e15])
    assert alloc.plan.params in (pytest.approx(1e8), pytest.approx(3e8))
    assert any("ladder sizes above N=3e+08 left out" in n for n in alloc.notes)
    with pytest.raises(BayesplitError, match="no ladder size fits the budget"):
        allocate(post, budget=BUDGET, ladder=[1e15])


@pytest.mark.parametrize("trunk,risk", [("shared", "mean"), ("independent", "q90")])
def test_plans_never_ask_for_more_data_than_the_limit(truth2, trunk, risk):
    # The solver scores only tokens within the limit; the flat gradient beyond it left
    # D' up to 26% over r·U. The excess now goes to pretraining, so the budget is spent.
    post = truth2.as_posterior()
    free = allocate(post, budget=BUDGET, trunk=trunk, risk=risk)
    caps = {k: 0.5 * v for k, v in free.plan.spec_tokens.items()}
    alloc = allocate(
        post, budget=BUDGET, trunk=trunk, risk=risk, max_spec_tokens=caps, repetitions={"a": 2}
    )
    limit = {"a": 2 * caps["a"], "b": caps["b"]}
    for k, v in alloc.plan.spec_tokens.items():
        assert v <= limit[k] * (1 + 1e-9), (k, v, limit[k])
    opt = alloc.draws["opt_spec_tokens"]
    for k in limit:
        assert float(opt.sel(domain=k).max()) <= limit[k] * (1 + 1e-9)
    spent = alloc.compute.flops(
        alloc.plan.params, alloc.plan.pretrain_tokens, list(alloc.plan.spec_tokens.values())
    )
    assert spent == pytest.approx(BUDGET, rel=1e-6)


def test_one_number_of_repetitions_applies_to_every_limited_domain(truth2):
    post = truth2.as_posterior()
    free = allocate(post, budget=BUDGET)
    caps = {k: 0.3 * v for k, v in free.plan.spec_tokens.items()}
    one = allocate(post, budget=BUDGET, max_spec_tokens=caps, repetitions=2)
    each = allocate(post, budget=BUDGET, max_spec_tokens=caps, repetitions={"a": 2, "b": 2})
    assert one.plan == each.plan
    assert one.plan != allocate(post, budget=BUDGET, max_spec_tokens=caps).plan
    for bad, message in [
        (2, "max_spec_tokens must be a mapping of domain to number, got int"),
        ({"a": "lots"}, r"max_spec_tokens\['a'\] must be a number"),
    ]:
        with pytest.raises(BayesplitError, match=message):
            allocate(post, budget=BUDGET, max_spec_tokens=bad)
    for bad, message in [
        ([2, 2], "repetitions must be a mapping of domain to number or one number, got list"),
        (0, "repetitions for 'a' must be a positive number, got 0"),
        ({"a": float("inf")}, "repetitions for 'a' must be a positive number, got inf"),
        ({"zz": 2}, "repetitions for unknown domain"),
    ]:
        with pytest.raises(BayesplitError, match=message):
            allocate(post, budget=BUDGET, max_spec_tokens=caps, repetitions=bad)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"params": float("nan")}, "params must be a finite number > 0"),
        ({"params": float("inf")}, "params must be a finite number > 0"),
        # a TypeError from a comparison; True was read as N = 1
        ({"params": "1e8"}, "params must be a finite number > 0, got '1e8'"),
        ({"params": True}, "params must be a finite number > 0, got True"),
        # "1e8" was read as a number, a NaN size was dropped, one number was a TypeError
        ({"ladder": ["1e8", 3e8]}, "ladder sizes must be numbers, got '1e8' \\(str\\)"),
        ({"ladder": [float("nan"), 1e8]}, "each finite and > 0, got \\[nan, "),
        ({"ladder": 1e8}, "ladder must be a ladder file or a list of model sizes"),
        ({"risk": 0.9}, "risk must be mean, qNN .* got 0.9"),  # a TypeError from re
        ({"risk": None}, "risk must be mean, qNN .* got None"),
        ({"max_spec_tokens": {"a": float("nan")}}, "must be a finite number >= 0"),
        ({"max_spec_tokens": {"a": float("inf")}}, "must be a finite number >= 0"),
        ({"compare": {"params": True, "pretrain_tokens": 1e10}}, "not true/false"),
        ({"compare": {"params": float("nan"), "pretrain_tokens": 1e10}}, "finite params"),
    ],
)
def test_non_numbers_are_refused(truth2, kwargs, message):
    with pytest.raises(BayesplitError, match=message):
        allocate(truth2.as_posterior(), budget=BUDGET, **kwargs)


def test_a_compared_plan_over_the_budget_is_flagged(truth2):
    plan = {"params": 1e12, "pretrain_tokens": 1e13, "name": "huge"}
    alloc = allocate(truth2.as_posterior(), budget=BUDGET, compare=plan)
    assert any(n.startswith("huge costs 6e+25 FLOPs") for n in alloc.notes), alloc.notes
    # one spending less was not flagged
    small = {"params": 1e8, "pretrain_tokens": 1e9, "name": "small"}
    alloc = allocate(truth2.as_posterior(), budget=BUDGET, compare=small)
    assert any(n.startswith("small spends 6e+17 FLOPs") for n in alloc.notes), alloc.notes


def test_plotting_leaves_the_users_matplotlib_backend_alone(truth2, tmp_path):
    # it called matplotlib.use("Agg"), which turned a notebook's inline backend off
    import subprocess
    import sys

    code = (
        "import matplotlib; matplotlib.use('svg'); "
        "from bayesplit.truth import example_truth; from bayesplit.allocation import allocate; "
        "from bayesplit.plots import save_figure; "
        "a = allocate(example_truth('additive', ('a', 'b')).as_posterior(), budget=1e20); "
        f"save_figure(a.plot_split_curve(), {str(tmp_path / 'split.png')!r}); "
        "a.plot_domains(); print(matplotlib.get_backend())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "svg"
    assert (tmp_path / "split.png").read_bytes().startswith(b"\x89PNG")


def test_the_optimum_spread_is_reported_at_the_requested_level(additive_posterior):
    # it was the 5-95% range whatever the level, next to level-wide credible intervals
    wide, narrow = (
        allocate(additive_posterior, budget=1e20, max_draws=200, force=True, level=lv)
        for lv in (0.9, 0.5)
    )
    opt = narrow.draws["opt_params"].values
    want = np.quantile(opt, [0.25, 0.5, 0.75])
    got = narrow.to_dict()["optimum_distribution"]["params"]
    assert np.allclose(got, want)
    lo90, _, hi90 = wide.to_dict()["optimum_distribution"]["params"]
    assert lo90 <= got[0] and got[2] <= hi90 and (got[0], got[2]) != (lo90, hi90)
    spread = next(line for line in narrow.describe() if "per-draw optimum" in line)
    assert "(50% of draws)" in spread
    from bayesplit.allocation import frontier

    fr = frontier(additive_posterior, [1e20], max_draws=200, force=True, level=0.5)
    assert np.allclose(fr[["opt_params_lo", "opt_params_hi"]].iloc[0], [want[0], want[2]])


def test_the_split_figure_and_labels_follow_the_level(additive_posterior):
    # the figure shaded and labelled the 5-95% range whatever the level; 0.999 read "100%"
    alloc = allocate(additive_posterior, budget=1e20, max_draws=200, force=True, level=0.5)
    fig = alloc.plot_split_curve(points=5)
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert "50% of per-draw optima" in labels and "50% credible band" in labels
    span = next(p for p in ax.patches if p.get_label() == "50% of per-draw optima")
    x0 = span.get_x()  # a Rectangle since matplotlib 3.9
    want = np.quantile(alloc.draws["opt_pretrain_fraction"].values, [0.25, 0.75])
    assert np.allclose([x0, x0 + span.get_width()], want)
    near = [line for line in ax.lines if line.get_linestyle() == ":"]
    assert [line.get_xdata()[0] for line in near] == list(alloc.near_optimal)
    assert near[0].get_label() == "within 0.1% of the best mean"
    fine = allocate(additive_posterior, budget=1e20, max_draws=200, force=True, level=0.999)
    assert "(99.9% credible)" in repr(fine) and "(99.9% of draws)" in repr(fine)


def test_the_size_figure_marks_the_plan_and_the_near_optimal_sizes(additive_posterior):
    # all of the fixture's draws, as the curve uses (up to 2000)
    alloc = allocate(additive_posterior, budget=1e20, force=True, level=0.5)
    fig = alloc.plot_size_curve(points=7)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    labels = ax.get_legend_handles_labels()[1]
    assert "50% of per-draw optima" in labels and "50% credible band" in labels
    plan = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert plan[0].get_xdata()[0] == alloc.plan.params
    near = [line for line in ax.lines if line.get_linestyle() == ":"]
    assert [line.get_xdata()[0] for line in near] == list(alloc.near_optimal_params)
    curve = alloc.size_curve(points=7)
    assert curve["objective"].dims == ("params", "draw")
    assert curve["params"].values[3] == pytest.approx(alloc.plan.params)
    # the plan's own point of the curve is the plan's objective, draw for draw
    assert np.allclose(curve["objective"].values[3], alloc.draws["objective"].values, rtol=1e-9)


def test_boundary_inputs_from_notebooks(additive_posterior, tmp_path):
    from bayesplit.allocation import frontier
    from bayesplit.posterior import Posterior

    post = additive_posterior
    # numpy scalars (read from a DataFrame) were "not a positive number of FLOPs"
    a = allocate(post, budget=np.float32(1e20), max_draws=200, force=True)
    assert a.budget == pytest.approx(1e20, rel=1e-6)
    # 1e308 + 1e308 overflowed: every weight 0, a plan of loss 0.0000
    big = allocate(
        post, budget=1e20, max_draws=200, force=True, weights=dict.fromkeys(post.domains, 1e308)
    )
    assert np.allclose(big.weights, 1 / 3) and big.to_dict()["objective"]["median"] > 1
    with pytest.raises(BayesplitError, match="weights must be numbers, got '1'"):
        allocate(
            post, budget=1e20, force=True, weights={**dict.fromkeys(post.domains, 1), "web": "1"}
        )
    # {"web": 2} meant "web twice as much" and gave every other domain weight 0, unsaid
    with pytest.raises(BayesplitError, match="weights leave out code, law: give every domain"):
        allocate(post, budget=1e20, force=True, weights={"web": 2})
    # forced numbers say so, and only they do
    assert any("failed its diagnostics gate" in n for n in a.notes) == (not post.diagnostics.ok)
    # unsorted and repeated budgets drew a zigzag frontier
    fr = frontier(post, [1e21, 1e20, 1e21], max_draws=200, force=True)
    assert list(fr["budget"]) == [1e20, 1e21]
    (tmp_path / "dir.nc").mkdir()
    with pytest.raises(BayesplitError, match="is a folder, not a posterior file"):
        Posterior.load(tmp_path / "dir.nc")


def test_small_messages_and_residues(truth2):
    # "--budgets nan,1e21" was blamed on the count ("at most 100")
    with pytest.raises(BayesplitError) as err:
        parse_budgets("nan,1e21")
    assert "at most" not in str(err.value)
    with pytest.raises(BayesplitError, match="101 budgets; at most 100"):
        parse_budgets(",".join(["1e20"] * 101))
    # one budget asked for between two: HI was dropped without a word
    with pytest.raises(BayesplitError, match="COUNT 1 cannot run from LO to HI"):
        parse_budgets("1e20:1e22:1")
    np.testing.assert_allclose(parse_budgets("1e20:1e20:1"), [1e20])
    for text in ("1e20,,1e21", "1e20,"):  # a budget left out, as "" is refused
        with pytest.raises(BayesplitError, match="an empty entry"):
            parse_budgets(text)
    # "all pretraining" kept 1e-12 shares of the tokens for specialization (0.06 tokens)
    a = allocate(truth2.as_posterior(), budget=1e20)
    allpre = a.to_dict()["alternatives"][0]
    assert allpre["name"] == "all pretraining"
    assert set(allpre["plan"]["spec_tokens"].values()) == {0.0}


def test_an_unknown_domain_names_the_tables_domains(additive_runs):
    from bayesplit.laws import get_law
    from bayesplit.model import prepare

    with pytest.raises(
        BayesplitError, match="domain\\(s\\) nope; the table's domains: code, law, web"
    ):
        prepare(additive_runs, get_law("additive"), domains=["nope"])


def test_the_per_domain_figures_titles_fit_one_domain():
    # the title that says which band is which ran off both edges of a one-domain figure
    from bayesplit.allocation import frontier
    from bayesplit.plots import plot_fans, plot_fit
    from bayesplit.truth import factorial_design

    truth = example_truth("additive", ("web",))
    design = factorial_design([1e7, 3e7], [3e8, 1e9], [3e7], truth.domains)
    post = truth.as_posterior(truth.simulate(design, seed=0))
    table = frontier(post, [1e19, 1e20])
    for fig in (plot_fit(post, max_draws=1), plot_fans(post, table, max_draws=1)):
        fig.draw_without_rendering()
        box = fig._suptitle.get_window_extent(fig._get_renderer())
        assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1, fig._suptitle.get_text()


def test_a_figure_saved_without_an_extension_gets_the_default_format(truth2, tmp_path):
    # the temporary file's ".tmp" chose the format: "Format 'tmp' is not supported"
    from bayesplit.plots import save_figure

    alloc = allocate(truth2.as_posterior(), budget=BUDGET)
    save_figure(alloc.plot_split_curve(points=3), tmp_path / "split")
    assert (tmp_path / "split").read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in tmp_path.iterdir()] == ["split"]


def test_the_fit_figure_refuses_an_empty_list_of_domains(truth2):
    # it raised ZeroDivisionError while laying out zero panels
    from bayesplit.plots import plot_fit

    with pytest.raises(BayesplitError, match="domains is empty"):
        plot_fit(truth2.as_posterior(), domains=[])


def test_the_domain_figure_counts_d_prime_as_the_objective_does(truth2):
    # a compared plan beyond a data limit was drawn with the loss of all its D' tokens
    mine = {"params": 1e9, "pretrain_tokens": 1e10, "spec_tokens": {"a": 5e9, "b": 1e9}}
    alloc = allocate(
        truth2.as_posterior(),
        budget=1e20,
        max_spec_tokens={"a": 1e8},
        compare={**mine, "name": "mine"},
    )
    ax = alloc.plot_domains().axes[0]
    drawn = next(c for c in ax.containers if c.get_label() == "mine").lines[0].get_ydata()
    post = alloc._posterior
    capped = np.exp(post.log_mean(1e9, 1e10, np.array([1e8, 1e9]), post.domain_index(["a", "b"])))
    np.testing.assert_allclose(drawn, np.median(capped, axis=0), rtol=1e-9)
    objective = float(alloc.alternatives["objective"].sel(alternative="mine").median())
    assert float(drawn @ alloc.weights) == pytest.approx(objective, rel=1e-9)


def test_credible_bands_have_the_law_shade_in_every_figure(truth2):
    """plots.py promises credible bands darker than predictive ones, never the same shade;
    the split, size and frontier figures drew theirs in the predictive colour."""
    from matplotlib.colors import to_rgb

    from bayesplit.allocation import frontier
    from bayesplit.plots import LAW_COLOR, PRED_COLOR, plot_frontier

    post = truth2.as_posterior()
    alloc = allocate(post, budget=BUDGET)
    figs = [
        alloc.plot_split_curve(points=3),
        alloc.plot_size_curve(points=3),
        plot_frontier(frontier(post, [1e19, 1e20])),
    ]
    for fig in figs:
        ax = fig.axes[0]
        band = next(c for c in ax.collections if "credible" in str(c.get_label()))
        rgb = tuple(band.get_facecolor()[0][:3])
        assert np.allclose(rgb, to_rgb(LAW_COLOR)), ax.get_title()
        assert not np.allclose(rgb, to_rgb(PRED_COLOR))


def test_a_fixed_n_and_a_ladder_size_come_back_exact(truth2):
    # N went through log/exp: 49999999.99999999 for params=5e7, and a ladder size 1 ulp off,
    # which a script mapping the plan back to its ladder entry by equality missed
    post = truth2.as_posterior()
    for n in (5e7, 4.1e7, 20_640e3):
        fixed = allocate(post, budget=BUDGET, params=n).to_dict()
        assert fixed["plan"]["params"] == n
    sizes = [20_640e3, 55_536e3, 123_450e3]
    laddered = allocate(post, budget=BUDGET, ladder=sizes)
    assert laddered.to_dict()["plan"]["params"] in sizes
    assert set(laddered.draws["opt_params"].values.tolist()) <= set(sizes)


def test_repetitions_without_a_data_limit_are_said_to_change_nothing(truth2):
    # `--repetitions 4` without --max-spec-tokens was ignored without a word
    post = truth2.as_posterior()
    said = [n for n in allocate(post, budget=BUDGET, repetitions=4).notes if "repetitions" in n]
    assert said == [
        "repetitions have no effect on a, b: they multiply a data limit (max_spec_tokens, "
        "--max-spec-tokens), and these domains have none"
    ]
    for kwargs in ({}, {"repetitions": 1}, {"repetitions": 4, "max_spec_tokens": {"a": 1e9}}):
        assert not any("repetitions" in n for n in allocate(post, budget=BUDGET, **kwargs).notes)
    mapped = allocate(post, budget=BUDGET, repetitions={"b": 2}, max_spec_tokens={"a": 1e9})
    assert any(n.startswith("repetitions have no effect on b:") for n in mapped.notes)


def test_independent_trunks_train_no_model_for_a_domain_of_weight_0():
    # each domain got its own pretrained model, weight 0 or not: the budget was split K ways
    # and the served domain's model was 2x smaller than serving it alone
    from bayesplit.allocation import allocate

    post = example_truth("additive", ("web", "code", "math")).as_posterior()
    w = {"web": 1.0, "code": 0.0, "math": 0.0}
    caps = {"web": 1e13, "code": 1e5, "math": 1e5}  # limits of the unserved domains are moot
    zero = allocate(post, budget=1e21, trunk="independent", weights=w, max_spec_tokens=caps)
    alone = allocate(post, budget=1e21, trunk="independent", domains=["web"])
    assert list(zero.plan.spec_tokens) == ["web"]
    assert zero.plan.params == pytest.approx(alone.plan.params, rel=1e-6)
    assert zero.plan.pretrain_tokens == pytest.approx(alone.plan.pretrain_tokens, rel=1e-6)
    assert any("no model for code, math (weight 0)" in n for n in zero.notes)
    # a shared trunk costs the same with or without them: they stay, with no D'
    shared = allocate(post, budget=1e21, weights=w)
    assert set(shared.plan.spec_tokens) == {"web", "code", "math"}
    with pytest.raises(BayesplitError, match="data limit for unknown domain"):
        allocate(post, budget=1e21, trunk="independent", weights=w, max_spec_tokens={"wbe": 1e9})


def test_a_law_without_specialization_terms_gets_no_residue_of_d_prime_under_independent_trunks():
    # chinchilla counts D' as ordinary tokens: the solver's softmax left 2.2e5 tokens of
    # "specialization" on two domains next to 3.7e10 of pretraining, which the residue
    # check kept (with K models, moving them to D is not exactly neutral)
    from bayesplit.allocation import allocate

    post = example_truth("chinchilla", ("web", "code", "math")).as_posterior()
    for trunk in ("shared", "independent"):
        plan = allocate(post, budget=1e21, trunk=trunk).plan
        assert set(plan.spec_tokens.values()) == {0.0}, trunk
    # a real specialization is not a residue: additive's D'_k stay
    post = example_truth("additive", ("web", "code", "math")).as_posterior()
    plan = allocate(post, budget=1e21, trunk="independent").plan
    assert min(plan.spec_tokens.values()) > 1e-2 * plan.pretrain_tokens


def test_the_domain_figure_draws_the_allocations_own_draws(additive_posterior):
    # it took up to 2000 draws whatever the allocation used: its bars and the table's
    # per-domain bands came from different draws
    alloc = allocate(additive_posterior, budget=1e20, max_draws=50, force=True)
    ax = alloc.plot_domains().axes[0]
    drawn = next(c for c in ax.containers if c.get_label() == "plan").lines[0].get_ydata()
    table = alloc.to_dict()["loss"]
    assert drawn == pytest.approx([table[k]["median"] for k in alloc.domains], rel=1e-9)


def test_the_split_curve_reaches_a_plan_below_two_percent_pretraining():
    # the curve started at 2%: a plan at 0.04% was drawn left of it, with no loss there
    from bayesplit._parse import share

    post = example_truth("transfer", ("web", "code", "math")).as_posterior()
    alloc = allocate(post, budget=1e21, trunk="independent")
    assert 0 < alloc.pretrain_fraction < 0.01
    curve = alloc.split_curve(points=9)
    assert curve["fraction"].values[0] == pytest.approx(alloc.pretrain_fraction)
    assert curve.sizes["fraction"] == 9 and curve["fraction"].values[-1] == 1.0
    assert share(alloc.pretrain_fraction) not in ("0%", "0.0%")  # the report's wording
    # a plan above 2% keeps the usual grid
    wide = allocate(post, budget=1e21).split_curve(points=9)
    assert wide["fraction"].values[0] == pytest.approx(0.02)


def test_a_plan_under_one_percent_pretraining_is_printed_as_its_share(tmp_path):
    # allocate and frontier printed 0.12% as "0%", next to its own near-optimal range
    # "0.12%–21%": the plan read as outside it
    from typer.testing import CliRunner

    from bayesplit._parse import share
    from bayesplit.cli import app

    post = example_truth("transfer", ("web", "code", "math")).as_posterior()
    alloc = allocate(post, budget=1e21, trunk="independent")
    text = share(alloc.pretrain_fraction)
    assert 0 < alloc.pretrain_fraction < 0.01 and text not in ("0%", "0.0%")
    assert f"({text} of compute)" in "\n".join(alloc.describe())
    path = post.save(tmp_path / "t.nc")
    runner = CliRunner()
    res = runner.invoke(app, ["allocate", str(path), "--budget", "1e21", "--trunk", "independent"])
    assert res.exit_code == 0 and f"({text} of compute)" in " ".join(res.output.split())
    res = runner.invoke(app, ["frontier", str(path), "--budgets", "1e21", "--trunk", "independent"])
    assert res.exit_code == 0 and f" {text} " in res.output, res.output


def test_a_ladder_file_is_read_in_the_fitted_runs_n_convention():
    # allocate read a ladder's without-embeddings counts whatever the runs used, so with a
    # table counting N with embeddings (the bundled campaign) its N was not a fitted count
    import pandas as pd

    from bayesplit.allocation import _ladder_sizes
    from bayesplit.train.ladder import load_ladder, resolve_ladder

    entries = load_ladder(resolve_ladder("cpu_ladder"))
    with_emb = sorted(float(e["params_with_embeddings"]) for e in entries)
    without = sorted(float(e["params"]) for e in entries)
    runs = pd.DataFrame({"params": with_emb[:2]})
    assert _ladder_sizes("cpu_ladder", runs).tolist() == with_emb
    assert _ladder_sizes("cpu_ladder", pd.DataFrame({"params": without[:2]})).tolist() == without
    assert _ladder_sizes("cpu_ladder").tolist() == without


def test_the_near_optimal_shares_are_shares_the_data_limits_allow(truth2):
    # shares needing more D' than r_k·U_k were scored with the excess unspent and counted
    # near-optimal: [86%, 88%] with 3.5e9 tokens of D' at 86%, above the 3e9 the data has
    from bayesplit.compute import ComputeModel

    limits = {"a": 1e9, "b": 5e8}
    alloc = allocate(truth2.as_posterior(), budget=1e20, max_spec_tokens=limits, repetitions=2)
    lo, hi = alloc.near_optimal
    compute = ComputeModel()
    shares = np.array([alloc.plan.spec_tokens[k] for k in ("a", "b")])
    for f in (lo, hi):
        _, dp = compute.split(1e20, alloc.plan.params, f, shares / shares.sum())
        assert (dp <= 2 * np.array([1e9, 5e8]) * (1 + 1e-6)).all(), (f, dp)


def test_a_compared_plan_may_name_a_domain_no_independent_model_serves():
    # after weight-0 domains were left out, a plan with D' for one was "unknown domain"
    post = example_truth("additive", ("web", "code")).as_posterior()
    plan = {"name": "mine", "params": 1e9, "pretrain_tokens": 1e10,
            "spec_tokens": {"code": 1e10, "web": 5e10}}  # fmt: skip
    alloc = allocate(post, budget=1e21, trunk="independent", weights={"code": 1, "web": 0},
                     compare=plan)  # fmt: skip
    assert "mine" in alloc.alternatives.coords["alternative"].values
    assert any("D' for web (weight 0) left out" in n for n in alloc.notes)
    assert plan["spec_tokens"] == {"code": 1e10, "web": 5e10}  # the caller's plan untouched


def test_every_view_of_p_better_says_what_the_draws_show(additive_posterior, monkeypatch):
    # the repr and the demo printed 0.996 as "100%", as the report and allocate did
    import bayesplit.plan

    alloc = allocate(additive_posterior, budget=1e20, max_draws=200, force=True)
    d = alloc.to_dict()
    for a in d["alternatives"]:
        a["p_better"] = 0.996
    monkeypatch.setattr(bayesplit.plan.Allocation, "to_dict", lambda self: d)
    text = repr(alloc)
    assert "P(plan better) >99%" in text and "P(plan better) 100%" not in text


def test_a_plan_on_the_bound_of_the_n_search_says_so():
    # small models trained long: at a budget below the largest run, the N search stops at
    # the largest model the budget trains on the shortest fitted D, and every draw's
    # optimum with it; "expected regret 0" and a one-point range of optimal N were all it said
    from bayesplit import allocate
    from bayesplit.truth import factorial_design

    truth = example_truth("additive", ("web", "code", "law"))
    design = factorial_design([1e7, 3e7, 1e8], [1e10, 3e10, 1e11], [1e9, 3e9], truth.domains)
    post = truth.as_posterior(truth.simulate(design, seed=0))
    bound = allocate(post, budget=1e19)
    (note,) = [n for n in bound.notes if "bound of the N search" in n]
    assert note.startswith("the plan's N and 100% of the draws' optima sit on the bound")
    assert "shortest fitted run's 1e+10 tokens" in note
    n_hi = bound.plan.params
    # the law's optimum lies past it: a larger N at this budget is better under the truth
    free = allocate(truth.as_posterior(), budget=1e19)
    assert free.plan.params > 1.05 * n_hi
    assert free.to_dict()["objective"]["median"] < bound.to_dict()["objective"]["median"]
    # inside the bounds, or with the size given: no note
    assert not [n for n in allocate(post, budget=1e20).notes if "N search" in n]
    fixed = allocate(post, budget=1e19, params=n_hi)
    assert not [n for n in fixed.notes if "N search" in n]


def test_a_near_optimal_split_range_cut_by_a_data_limit_says_so(truth2):
    # a share below the plan's asks more D' of a domain at its limit: no plan, so the
    # range of a plan at a limit stopped at its own share ("[90%, 90%]" in one audit), as
    # if the split were pinned, with not a word of why
    post = truth2.as_posterior()
    cap = 0.3 * allocate(post, budget=BUDGET).plan.spec_tokens["a"]
    alloc = allocate(post, budget=BUDGET, max_spec_tokens={"a": cap})
    lo = alloc.to_dict()["near_optimal"]["pretrain_fraction"][0]
    (note,) = [n for n in alloc.notes if "near-optimal pretraining shares stop" in n]
    assert note.startswith(f"the near-optimal pretraining shares stop at {lo:.1%}: a lower")
    assert "gives a more D' than the data limits hold" in note
    # a limit that does not bind, or no limit: no note
    for kw in ({}, {"max_spec_tokens": {"a": 1e30}}):
        assert not [n for n in allocate(post, budget=BUDGET, **kw).notes if "stop at" in n]


def test_the_curves_use_every_draw_the_allocation_used(additive_posterior):
    # the split and size curves were capped at 2000 draws: at the plan their bands differed
    # from the table's (median 3.4369 against 3.4366 on the demo's posterior)
    import xarray as xr

    from bayesplit.posterior import Posterior

    post = additive_posterior
    idata = post.idata.copy()
    chains = idata.posterior.sizes["chain"]
    idata.posterior = xr.concat([idata.posterior] * 4, dim="chain").assign_coords(
        chain=np.arange(4 * chains)
    )
    big = Posterior(idata, post.law, post.spec, post.diagnostics, post.info)
    alloc = allocate(big, budget=BUDGET, max_draws=None, force=True)
    draws = alloc.draws.sizes["draw"]
    assert draws > 2000
    size = alloc.size_curve(points=5)
    assert size["objective"].sizes["draw"] == draws
    assert alloc.split_curve(points=5)["objective"].sizes["draw"] == draws
    at_plan = size["objective"].isel(params=2).values  # the middle of N/span .. N·span
    assert np.allclose(at_plan, alloc.draws["objective"].values, rtol=1e-9)
