"""Candidates, tree-aware costs and the acquisition behind `bayesplit suggest`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesplit.design import (
    NEGLIGIBLE_VALUE,
    CostModel,
    Ensemble,
    TrunkState,
    already_measured,
    candidate_costs,
    candidate_grid,
    greedy_batch,
    suggest,
)
from bayesplit.errors import BayesplitError


def test_candidate_grid_shapes():
    c = candidate_grid([1e7, 1e8], [1e9, 1e10], [0, 1e8, 1e9], ["a", "b", "c"])
    # per (N, D): one general model + 2 D' values × 3 domains
    assert len(c) == 2 * 2 * (1 + 2 * 3)
    assert c["train_domain"].isna().sum() == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cooldown_fraction": 0.0}, r"cooldown_fraction must be in \(0, 1\], got 0.0"),
        ({"cooldown_fraction": 1.5}, r"cooldown_fraction must be in \(0, 1\], got 1.5"),
        ({"flops_per_param_token": 0}, "flops_per_param_token must be a positive number"),
        ({"flops_per_param_token": float("nan")}, "flops_per_param_token must be a positive"),
    ],
)
def test_a_cost_model_that_makes_runs_free_is_refused(kwargs, message):
    with pytest.raises(BayesplitError, match=message):
        CostModel(**kwargs)


def test_tree_aware_costs():
    cands = pd.DataFrame(
        {
            "params": [1e8, 1e8, 1e8, 1e8, 3e8],
            "pretrain_tokens": [1e9, 1e9, 4e9, 1e9, 1e9],
            "spec_tokens": [1e8, 0.0, 1e8, 1e8, 1e8],
            "train_domain": ["a", None, "a", "b", "a"],
        }
    )
    trunks = TrunkState(reached={1e8: 2e9})
    cost = candidate_costs(cands, trunks, CostModel(cooldown_fraction=0.1))
    # existing checkpoint at D ≤ D_max: a branch costs 6·N·D'
    assert cost[0] == pytest.approx(6 * 1e8 * 1e8)
    # a general evaluation at an existing checkpoint: only the short decay
    assert cost[1] == pytest.approx(6 * 1e8 * 0.1 * 1e9)
    # beyond the trunk: continue it from 2e9 to 4e9, then branch
    assert cost[2] == pytest.approx(6 * 1e8 * (4e9 - 2e9) + 6 * 1e8 * 1e8)
    # a size with no trunk: a new trunk to D plus the branch
    assert cost[4] == pytest.approx(6 * 3e8 * 1e9 + 6 * 3e8 * 1e8)


def test_a_suggested_trunk_makes_later_branches_cheap():
    trunks = TrunkState()
    cands = pd.DataFrame(
        {"params": [1e8], "pretrain_tokens": [1e9], "spec_tokens": [1e8], "train_domain": ["a"]}
    )
    before = candidate_costs(cands, trunks)[0]
    trunks.extend(1e8, 1e9)
    after = candidate_costs(cands, trunks)[0]
    assert before == pytest.approx(6e8 * (1e9 + 1e8)) and after == pytest.approx(6e8 * 1e8)


def test_trunks_from_runs_use_the_furthest_checkpoint(table):
    state = TrunkState.from_runs(table)
    assert state.reached == {1e7: 2e8, 3e7: 6e8}


def test_already_measured(table):
    cands = candidate_grid([1e7], [2e8], [5e7], ["web", "code"])
    measured = already_measured(cands, table)
    assert measured.tolist() == [
        True,
        False,
        True,
    ]  # general at (1e7, 2e8); code specialist; not web
    # within 1% in each of N, D, D' is the same run, whatever digits round where
    runs = pd.DataFrame(
        dict(params=[1e7, 1e7], pretrain_tokens=[1.151e8, 1.0e8], spec_tokens=[0.0, 0.0],
             train_domain=[None, None])
    )  # fmt: skip
    cands = pd.DataFrame(
        dict(params=[1e7] * 4, pretrain_tokens=[1.149e8, 1.049e8, 1.001e8, 1.0e8],
             spec_tokens=[0.0, 0.0, 0.0, 1e6], train_domain=[None, None, None, "web"])
    )  # fmt: skip
    assert already_measured(cands, runs).tolist() == [True, False, True, False]


def test_a_run_the_trainer_would_round_onto_a_stored_one_is_already_measured():
    # D = 6261 tokens is 24.46 steps of 256: the trainer trains 24 (6144 tokens), a run the
    # store has, and skips it; 1.9% apart, suggest offered it again (priced and valued)
    runs = pd.DataFrame(
        dict(run_id=["g", "s"], trunk_id=["t", "t"], params=[46320.0, 46320.0],
             pretrain_tokens=[6144.0, 6144.0], spec_tokens=[0.0, 1024.0],
             train_domain=[None, "web"])
    )  # fmt: skip
    cands = pd.DataFrame(
        dict(params=[46320.0] * 4 + [20640.0], pretrain_tokens=[6261.0, 6500.0, 6200.0, 6144.0, 6261.0],
             spec_tokens=[0.0, 0.0, 1100.0, 1200.0, 0.0], train_domain=[None, None, "web", "web", None])
    )  # fmt: skip
    steps = {46320.0: 256.0}  # the other size's steps are not known: compared as asked
    assert already_measured(cands, runs).tolist() == [False] * 5
    assert already_measured(cands, runs, steps).tolist() == [True, False, True, False, False]
    # and two candidates that round to one run are one pick: the second is blocked
    trunks = TrunkState.from_runs(runs, {46320.0: {"tokens": [6144.0], "tokens_per_step": 256}})
    twins = cands.iloc[[1, 1]].assign(pretrain_tokens=[6500.0, 6450.0]).reset_index(drop=True)
    assert trunks.steps == steps
    assert already_measured(twins, twins.iloc[[0]], trunks.steps).tolist() == [True, True]
    # whole steps compare exactly: 202 steps is another run than the stored 200 (0.8% apart)
    stored = runs.iloc[[0]].assign(pretrain_tokens=200 * 256.0)
    near = cands.iloc[[0, 0]].assign(pretrain_tokens=[201.6 * 256, 200.4 * 256])
    assert already_measured(near, stored, steps).tolist() == [False, True]
    assert already_measured(near, stored).tolist() == [True, True]  # 1% without steps
    # a size without known steps is still compared within 1%, also with a stepped twin
    twin = cands.iloc[[0]].assign(params=46320.0 * 1.001)
    assert already_measured(twin, cands.iloc[[0]], steps).tolist() == [True]


def test_ensemble_value_matches_gaussian_conditioning():
    rng = np.random.default_rng(0)
    s = 20000
    y = rng.normal(size=s)
    q = 0.8 * y + 0.6 * rng.normal(size=s)  # Var(q)=1, Cov(q, y)=0.8
    ens = Ensemble.build(q, y[:, None], [np.array([0])], noise=0.25)
    # Var(q | y + e) = 1 - 0.8² / (1 + 0.25) = 0.488
    expected = 1 - np.sqrt(1 - 0.64 / 1.25)
    assert ens.values()[0] == pytest.approx(expected, rel=0.03)
    ens.condition(0)
    assert ens.var_q() == pytest.approx(1 - 0.64 / 1.25, rel=0.03)
    # the observable itself has shrunk: observing it again is worth less
    assert ens.values()[0] < expected


def test_batch_has_no_duplicates_and_updates_costs():
    rng = np.random.default_rng(1)
    cands = candidate_grid([1e7, 3e7], [1e9, 3e9], [1e8], ["a", "b"])
    obs = [np.array([i]) for i in range(len(cands))]
    y = rng.normal(size=(500, len(cands)))
    q = y[:, 0] + y[:, 1] + 0.1 * rng.normal(size=500)
    ens = Ensemble.build(q, y, obs, noise=0.01)
    picks = greedy_batch(ens, cands, TrunkState(), n=len(cands))
    idx = [p["index"] for p in picks]
    assert len(idx) == len(set(idx)) == len(cands)
    assert all(p["sd_after"] <= p["sd_before"] + 1e-12 for p in picks)
    with pytest.raises(BayesplitError):
        greedy_batch(ens, cands, TrunkState(), n=0)


def test_suggest_point_objective(additive_posterior):
    point = {"params": 1e9, "pretrain_tokens": 2e10, "spec_tokens": 1e9, "domain": "code"}
    sug = suggest(
        additive_posterior, objective="point", point=point, n=3, max_draws=400, force=True
    )
    recs = sug.to_list()
    assert len(recs) == 3
    keys = {
        "params",
        "pretrain_tokens",
        "spec_tokens",
        "train_domain",
        "cost_flops",
        "value",
        "value_per_flop",
        "predicted_loss",
        "branch_from",
        "reason",
    }
    assert all(keys <= set(r) for r in recs)
    # what the trainer reads or ignores: any other key is refused, so the file, and the
    # table's records, must hold none
    from bayesplit.train.execute import _SUGGEST_KEYS, SUGGESTION_KEYS

    known = {*SUGGESTION_KEYS, *_SUGGEST_KEYS}
    assert all(set(r) <= known for r in recs) and set(sug.table.columns) <= known
    specs = {(r["params"], r["pretrain_tokens"], r["spec_tokens"], r["train_domain"]) for r in recs}
    assert len(specs) == 3
    assert all(r["value"] >= 0 and r["cost_flops"] > 0 for r in recs)
    r0 = recs[0]["predicted_loss"]
    assert r0["predictive"][0] <= r0["median"] <= r0["predictive"][1]


def test_suggest_respects_max_run_flops(additive_posterior):
    point = {"params": 1e9, "pretrain_tokens": 2e10, "spec_tokens": 1e9, "domain": "code"}
    cap = 2e17
    sug = suggest(
        additive_posterior,
        objective="point",
        point=point,
        n=4,
        max_run_flops=cap,
        max_draws=300,
        force=True,
    )
    assert all(r["cost_flops"] <= cap for r in sug.to_list())
    # the refusal says how far off the cap is, and does not point to a ladder never given
    params = [1e8, 1e9]
    with pytest.raises(
        BayesplitError, match=r"max-run-flops 1 \(in Python: max_run_flops=\):"
    ) as err:
        suggest(
            additive_posterior,
            objective="point",
            point=point,
            n=2,
            params=params,
            max_run_flops=1.0,
            max_draws=300,
            force=True,
        )
    message = str(err.value)
    cheapest = float(message.split("costs ")[1].split(" FLOPs")[0])
    # a new trunk's cheapest run: the smallest N over the smallest D of the grid (6·N·D)
    everything = suggest(
        additive_posterior, objective="point", point=point, n=1, params=params, max_draws=300,
        force=True, max_run_flops=cheapest * 1.001,
    )  # fmt: skip
    assert everything.to_list()[0]["cost_flops"] == pytest.approx(cheapest, rel=1e-3)
    assert "ladder" not in message.split(";")[1].replace("--ladder", "")


@pytest.mark.parametrize("objective", ["decision", "split"])
def test_suggest_decision_objectives(additive_posterior, objective):
    sug = suggest(
        additive_posterior, budget=1e20, objective=objective, n=4, max_draws=400, force=True
    )
    recs = sug.to_list()
    assert len(recs) == 4
    assert "at 1e+20 FLOPs" in sug.quantity or "recommended plan" in sug.quantity
    assert recs[0]["value"] > 0
    # later picks are conditioned on earlier ones: the sd keeps falling through the batch
    sds = sug.table["sd_after"].tolist()
    assert all(b <= a + 1e-12 for a, b in zip(sds, sds[1:], strict=False))


def _brute_force_kg(q, y, noise, rng, outcomes=4000):
    """E[best mean now − best mean after observing y + e], by simulating outcomes."""
    # linear-Gaussian posterior means of each plan given an outcome, for many outcomes
    qc, yc = q - q.mean(0), y - y.mean()
    cov = qc.T @ yc / (len(y) - 1)
    var = yc @ yc / (len(y) - 1) + noise
    obs = rng.normal(0.0, np.sqrt(var), outcomes)
    means = q.mean(0)[None, :] + np.outer(obs, cov / var)
    return q.mean(0).min() - means.min(axis=1).mean()


def test_knowledge_gradient_matches_simulated_outcomes():
    rng = np.random.default_rng(5)
    s = 4000
    theta = rng.normal(size=s)  # the unknown that decides which plan is best
    # three plans: 0 is best on average, 1 wins when theta > ~0.5, 2 never does
    q = np.stack([1.0 + 0.0 * theta, 1.05 - 0.1 * theta, 1.3 + 0.05 * theta], axis=1)
    informative = theta + 0.3 * rng.normal(size=s)
    useless = rng.normal(size=s)
    y = np.stack([informative, useless], axis=1)
    ens = Ensemble.build(q, y, [np.array([0]), np.array([1]), np.array([0, 1])], noise=0.1)
    kg = ens.values()
    expected = _brute_force_kg(q, informative, 0.1, rng)
    assert kg[0] == pytest.approx(expected, rel=0.05)
    assert kg[1] < 0.05 * kg[0]  # an outcome unrelated to the plans is worth ~nothing
    # a general model observing both: worth what its informative part is worth
    assert kg[2] == pytest.approx(kg[0], rel=0.1)
    # the expected regret of plan 0 falls once the informative outcome is fantasized
    before = ens.uncertainty()
    ens.condition(0)
    assert ens.uncertainty() < before
    assert ens.values()[0] < kg[0]


def test_knowledge_gradient_is_zero_when_one_plan_dominates():
    rng = np.random.default_rng(6)
    theta = rng.normal(size=2000)
    q = np.stack([1.0 + 0.01 * theta, 2.0 + 0.01 * theta], axis=1)
    ens = Ensemble.build(q, theta[:, None], [np.array([0])], noise=0.1)
    assert ens.values()[0] == pytest.approx(0.0, abs=1e-9)
    assert ens.uncertainty() == pytest.approx(0.0, abs=1e-9)


def test_suggest_regret_objective(additive_posterior):
    sug = suggest(
        additive_posterior, budget=1e20, objective="regret", n=4, max_draws=400, force=True
    )
    recs = sug.to_list()
    assert len(recs) == 4
    assert "expected regret" in sug.quantity and "expected regret" in recs[0]["reason"]
    assert all(r["value"] >= 0 for r in recs)
    keys = {(r["params"], r["pretrain_tokens"], r["spec_tokens"], r["train_domain"]) for r in recs}
    assert len(keys) == 4
    # the plan's expected regret (nats) never rises as the batch is fantasized
    left = [sug.sd_initial, *sug.table["sd_after"].tolist()]
    assert all(b <= a + 1e-12 for a, b in zip(left, left[1:], strict=False))
    # same posterior, same plan; and regret is what suggest ranks by when not told
    again = suggest(additive_posterior, budget=1e20, n=4, max_draws=400, force=True)
    assert again.to_list() == recs


def test_suggest_regret_is_below_allocates(additive_posterior):
    """suggest measures regret against a sample of draws' optima, allocate against each
    draw's own optimum: the same plan's regret must come out smaller in suggest, as its
    CLI says."""
    from bayesplit import allocate

    sug = suggest(additive_posterior, budget=1e20, n=1, max_draws=400, force=True)
    alloc = allocate(additive_posterior, budget=1e20, max_draws=400, force=True).to_dict()
    assert 0 < sug.sd_initial <= alloc["expected_regret"]


def test_repr_lists_each_suggestion_by_its_reason(additive_posterior):
    sug = suggest(
        additive_posterior, budget=1e20, objective="decision", n=3, max_draws=200, force=True
    )
    lines = repr(sug).splitlines()
    assert lines[0] == (
        f"<Suggestions: 3 of {sug.n_candidates:,} candidates, to cut the sd of "
        f"{sug.quantity} (now {sug.sd_initial:.4g})"
    )
    # then its notes (the fixture's short fit fails the gate: forced, it says so)
    shown = [f"  {r}" for r in sug.table["reason"]] + [f"  ! {n}" for n in sug.notes]
    assert lines[1:] == shown[:-1] + [f"{shown[-1]}>"]
    assert [line[:5] for line in lines[1:4]] == ["  #1:", "  #2:", "  #3:"]


def test_suggest_needs_budget_for_decisions(additive_posterior):
    with pytest.raises(BayesplitError, match="needs --budget"):
        suggest(additive_posterior, objective="decision", n=2, max_draws=200, force=True)
    with pytest.raises(BayesplitError, match=r"--objective \(in Python: objective=\) must be"):
        suggest(additive_posterior, budget=1e20, objective="bogus", n=2, max_draws=200, force=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # a negative or NaN grid value was blamed on the posterior ("fewer than 10
        # posterior draws give finite values"); text was read as a number or a TypeError
        ({"params": [1e7, -1e8]}, "params must be finite and > 0, got -1e\\+08"),
        ({"pretrain_tokens": [float("nan"), 1e9]}, "pretrain_tokens must be finite and > 0"),
        ({"params": ["1e8"]}, "params must be .* got an entry '1e8' \\(str\\)"),
        ({"spec_tokens": "1e8"}, "spec_tokens must be a number >= 0 .* got '1e8'"),
        ({"n": 1.5}, "n must be a whole number of runs >= 1, got 1.5"),
        ({"n": "4"}, "n must be a whole number of runs >= 1, got '4'"),
        ({"max_run_flops": "1e18"}, "max_run_flops must be a positive number of FLOPs"),
        ({"max_run_flops": float("nan")}, "max_run_flops must be a positive number of FLOPs"),
        (
            {"objective": "point", "point": {"params": 1e8}, "budget": None},
            "point needs pretrain_tokens, domain",  # KeyError: 'pretrain_tokens'
        ),
    ],
)
def test_suggest_refuses_bad_grids_and_counts_in_words(kwargs, message):
    from bayesplit.truth import example_truth, factorial_design

    truth = example_truth("additive", ("web", "code"))
    runs = truth.simulate(factorial_design([1e7, 3e7], [3e8, 1e9], [1e8], truth.domains))
    post = truth.as_posterior(runs)
    with pytest.raises(BayesplitError, match=message):
        suggest(post, **{"budget": 1e20, "max_draws": 10, **kwargs})


def test_fast_log_mean_matches_numpy(additive_posterior):
    # suggest evaluates its candidate ensemble with the jitted float32 kernel
    rng = np.random.default_rng(3)
    n = 10 ** rng.uniform(6, 9, 50)
    d = 10 ** rng.uniform(8, 11, 50)
    dp = np.where(rng.random(50) < 0.3, 0.0, 10 ** rng.uniform(6, 9, 50))
    k = rng.integers(0, len(additive_posterior.domains), 50)
    exact = additive_posterior.log_mean(n, d, dp, k, max_draws=200)
    fast = additive_posterior.log_mean(n, d, dp, k, max_draws=200, fast=True)
    assert fast.dtype == np.float32 and fast.shape == exact.shape
    np.testing.assert_allclose(fast, exact, rtol=1e-5, atol=1e-6)


def _with_rows(post, runs: pd.DataFrame):
    """``post``'s draws, with ``runs`` as the rows it says it was fitted to."""
    from bayesplit.posterior import Posterior, rows_as_constant_data

    idata = post.idata.copy()
    del idata.constant_data
    idata.add_groups(constant_data=rows_as_constant_data(runs))
    return Posterior(idata, post.law, post.spec, post.diagnostics, post.info)


@pytest.mark.parametrize("vocab", [512, 2048])
def test_suggest_ladder_counts_embeddings_at_the_runs_vocabulary(additive_posterior, vocab):
    # runs counted with embeddings on a corpus whose vocabulary may differ from the ladder's
    # default (2048): the candidate N must be the sizes the trainer builds on that corpus
    from bayesplit.train.ladder import at_vocab, load_ladder

    built = [at_vocab(e, vocab) for e in load_ladder("cpu_ladder")]
    runs = additive_posterior.runs.copy()
    runs["params"] = [built[i % 3]["params_with_embeddings"] for i in range(len(runs))]
    runs["vocab_size"] = vocab
    post = _with_rows(additive_posterior, runs)
    assert post.runs["vocab_size"].unique().tolist() == [vocab]
    sug = suggest(post, budget=1e18, n=4, ladder="cpu_ladder", max_draws=200, force=True)
    with_emb = {e["name"]: e["params_with_embeddings"] for e in built}
    assert {r["params"] for r in sug.to_list()} <= set(with_emb.values())
    assert all(r["params"] == with_emb[r["model"]] for r in sug.to_list())


def test_ladder_candidates_are_whole_steps_of_their_model():
    # a D' grid from small models' runs can fall under half a step of a larger model's
    # batch; the trainer refuses those, so `loop` would stop mid-campaign on them
    from bayesplit.design import candidate_grid, trainable

    entries = [
        {"name": "small", "batch_size": 2, "seq_len": 1024},  # 2,048 tokens a step
        {"name": "large", "batch_size": 64, "seq_len": 1024},  # 65,536 tokens a step
    ]
    grid = candidate_grid([1e6, 1e8], [1e6], [3e3, 1e5], ["web"], ["small", "large"])
    kept = trainable(grid, entries)
    small = kept[kept["model"] == "small"]
    large = kept[kept["model"] == "large"]
    assert sorted(small["spec_tokens"]) == [0.0, 3e3, 1e5]
    assert sorted(large["spec_tokens"]) == [0.0, 1e5]  # 3e3 is 0.05 of its step
    with pytest.raises(BayesplitError, match="no candidate run is whole optimizer steps"):
        trainable(candidate_grid([1e8], [1e4], [], ["web"], ["large"]), entries)


def test_a_large_batch_stops_where_the_runs_stop_adding_information(additive_posterior):
    # -n 300 used to be filled up with runs of value 0, ranked by cost alone
    grid = dict(
        params=[1e7, 3e7, 1e8, 3e8], pretrain_tokens=[1e9, 2e9, 4e9], spec_tokens=[3e8, 1e9]
    )
    s = suggest(additive_posterior, budget=1e20, n=300, max_draws=200, force=True, **grid)
    cands = candidate_grid(**grid, domains=additive_posterior.domains)
    fresh = int((~already_measured(cands, additive_posterior.runs)).sum())
    assert 4 <= len(s) < fresh
    values = s.table["value"].to_numpy()
    assert (values > NEGLIGIBLE_VALUE * values[0]).all()
    forced = (
        additive_posterior.diagnostics.forced_note()
    )  # the fixture's short fit may fail its gate
    assert s.notes == ([] if forced is None else [forced]) + [
        f"{len(s)} runs suggested, not 300: the {fresh - len(s)} other candidates add nothing to "
        f"{s.quantity} once these runs' outcomes are known"
    ]
    assert s.notes[-1] in repr(s)
    # a batch that fits is not cut: same picks as before, and no note
    small = suggest(additive_posterior, budget=1e20, n=4, max_draws=200, force=True, **grid)
    assert small.notes == s.notes[:-1] and list(small.table["params"]) == list(
        s.table["params"][:4]
    )


def test_the_shortfall_note_does_not_count_twins_of_the_picks(additive_posterior):
    # a candidate 0.5% from a pick is the same run (it is never picked beside it), but the
    # note counted it among the candidates that "add nothing"
    grid = dict(
        params=[1e7, 1e8], pretrain_tokens=[1e9, 1.005e9, 4e9], spec_tokens=[3e8]
    )  # fmt: skip
    s = suggest(additive_posterior, budget=1e20, n=300, max_draws=200, force=True, **grid)
    cands = candidate_grid(**grid, domains=additive_posterior.domains)
    fresh = int((~already_measured(cands, additive_posterior.runs)).sum())
    # each pick at D = 1e9 or 1.005e9 has one twin at the other D, which was not picked
    t = s.table.assign(pair=s.table["pretrain_tokens"].isin([1e9, 1.005e9]))
    twins = int(t["pair"].sum())
    key = [t["params"], t["spec_tokens"], t["train_domain"].fillna("")]
    assert not t[t["pair"]].groupby([k[t["pair"]] for k in key]).size().gt(1).any()
    assert 0 < twins < len(s) < fresh - twins
    k = fresh - len(s) - twins
    others = f"the {k} other candidates add" if k > 1 else "the one other candidate adds"
    assert s.notes[-1] == (
        f"{len(s)} runs suggested, not 300: {others} "
        f"nothing to {s.quantity} once these runs' outcomes are known"
    )


def test_a_grid_that_was_all_run_is_named_as_such(additive_posterior):
    # it was blamed on --max-run-flops, which had not been given
    with pytest.raises(BayesplitError, match="all 42 candidates have been run already"):
        suggest(
            additive_posterior, budget=1e20, force=True,
            params=[1e7, 3e7, 1e8], pretrain_tokens=[3e8, 3e9], spec_tokens=[1e8, 1e9],
        )  # fmt: skip


def test_suggest_reads_the_runs_done_from_a_file_as_fit_does(additive_posterior, tmp_path):
    done = additive_posterior.runs.iloc[:30]
    path = tmp_path / "done.csv"
    done.to_csv(path, index=False)
    grids = dict(params=[1e7, 1e8], pretrain_tokens=[3e8, 3e9], spec_tokens=[1e8])
    kwargs = dict(budget=1e20, n=2, force=True, objective="point", **grids)
    kwargs["point"] = dict(params=1e9, pretrain_tokens=1e10, spec_tokens=1e9, domain="code")
    from_file = suggest(additive_posterior, runs=path, **kwargs).to_list()
    from_frame = suggest(additive_posterior, runs=done, **kwargs).to_list()
    assert from_file == from_frame
    with pytest.raises(BayesplitError, match="runs must be a DataFrame, a file path"):
        suggest(additive_posterior, runs=42, **kwargs)


def test_repeated_candidates_are_one_candidate_and_a_suggested_trunk_is_named_so(
    additive_posterior,
):
    web = dict(params=1e7, pretrain_tokens=1e8, spec_tokens=1e7, train_domain="web")
    general = dict(params=1e7, pretrain_tokens=1e8, spec_tokens=0.0, train_domain=None)
    cands = pd.DataFrame([web] * 3 + [general, {**general, "train_domain": "web"}])
    # the web branch and the general model (its train_domain is moot with no D'), once each
    unique = {(1e7, 1e8, 1e7, "web"), (1e7, 1e8, 0.0, None)}
    for objective in ("decision", "split"):
        out = suggest(
            additive_posterior, budget=1e19, n=5, candidates=cands, force=True, objective=objective
        )
        assert out.n_candidates == 2
        specs = [
            (p["params"], p["pretrain_tokens"], p["spec_tokens"], p["train_domain"])
            for p in out.to_list()
        ]
        assert len(specs) == len(set(specs)) and set(specs) <= unique
        # a candidate left out is one that adds nothing: never a repeat of one picked
        if len(specs) < 2:
            assert any("the one other candidate adds nothing" in n for n in out.notes)
    # a branch from a trunk suggested earlier in the batch is not called "existing"
    grid = dict(params=[3e8], pretrain_tokens=[1e8, 3e8], spec_tokens=[3e7, 1e8])
    out = suggest(additive_posterior, budget=1e19, n=6, force=True, **grid).to_list()
    branches = [
        p for p in out
        if p["branch_from"] and p["branch_from"].get("trunk") == "suggested"
        and "extend_from" not in p["branch_from"]
    ]  # fmt: skip
    assert branches
    for p in branches:
        assert "a branch of the suggested N=3e+08 trunk" in p["reason"], p["reason"]


def test_a_batch_holds_no_two_specs_within_one_percent():
    # sizes 3e8 and 3.01e8 are one run (SAME_SPEC_RTOL, as already_measured says); a batch
    # held both, the second priced as a trunk of its own
    rng = np.random.default_rng(2)
    cands = candidate_grid([3e8, 3.01e8], [1e9], [4e8], ["a", "b"])
    obs = [np.array([i]) for i in range(len(cands))]
    y = rng.normal(size=(500, len(cands)))
    ens = Ensemble.build(y.sum(axis=1), y, obs, noise=0.01)
    picks = greedy_batch(ens, cands, TrunkState(), n=len(cands))
    chosen = cands.iloc[[p["index"] for p in picks]]
    spec = chosen[["pretrain_tokens", "spec_tokens"]].assign(
        domain=chosen["train_domain"].fillna("")
    )
    assert not spec.duplicated().any(), chosen  # one of each (D, D', domain), one size
    assert len(picks) == 3  # the general model and one specialist per domain


def test_a_run_of_another_schedule_is_no_trunk_to_branch_from():
    # a cosine run has no stable-phase checkpoint: a branch "off" it was priced 6·N·D'
    runs = pd.DataFrame(
        {"run_id": ["r1", "r2"], "params": [1e7, 3e7], "pretrain_tokens": [1e9, 1e9],
         "spec_tokens": [0.0, 0.0], "schedule": ["cosine", None]}
    )  # fmt: skip
    state = TrunkState.from_runs(runs)
    assert state.reached == {3e7: 1e9}  # the unlabelled run stays a trunk
    wsd = runs.assign(schedule=["wsd+cooldown:0.1:linear", "WSD"])
    assert TrunkState.from_runs(wsd).reached == {1e7: 1e9, 3e7: 1e9}
    assert TrunkState.from_runs(runs.assign(schedule="cosine")).reached == {}


def test_suggest_refuses_a_decision_quantity_no_run_can_inform(additive_posterior, monkeypatch):
    # a law without D' has one optimal split in every draw: suggest returned one run
    # "worth" 0, cutting the sd "from 0 to 0", with exit 0
    import bayesplit.design

    monkeypatch.setattr(
        bayesplit.design,
        "decision_quantity",
        lambda post, objective, draws, **k: (np.full(100, 0.97), "the split"),
    )
    with pytest.raises(BayesplitError, match="the split is the same in every posterior draw"):
        suggest(additive_posterior, budget=1e20, objective="split", max_draws=100, force=True)


# -- pricing from the trainer's checkpoints -------------------------------------------------
def _specs(params, pretrain_tokens, spec_tokens):
    k = len(params)
    return pd.DataFrame(
        {
            "params": params,
            "pretrain_tokens": pretrain_tokens,
            "spec_tokens": spec_tokens,
            "train_domain": [("a" if dp > 0 else None) for dp in spec_tokens],
            "run_id": [f"r{i}" for i in range(k)],
        }
    )


def test_known_checkpoints_price_a_run_from_the_one_before_its_branch_point():
    # the trainer kept checkpoints at 2e8 and 6e8 of a trunk that went to 1e9: a branch at
    # 5e8 retrains 3e8 of trunk, where the design's rule ("a checkpoint at every D
    # reached") priced it as its D' alone
    runs = _specs([1e8, 3e8], [1e9, 1e9], [0.0, 0.0])
    known = TrunkState.from_runs(runs, {1e8: [6e8, 2e8]})
    cands = _specs([1e8, 1e8, 1e8, 1e8, 3e8], [5e8, 5e8, 6e8, 1.2e9, 5e8],
                   [1e8, 0.0, 1e8, 1e8, 1e8])  # fmt: skip
    cost = candidate_costs(cands, known, CostModel(cooldown_fraction=0.1))
    six = 6 * 1e8
    assert cost[0] == pytest.approx(six * (5e8 - 2e8) + six * 1e8)
    # a general model leaves the trunk a cooldown (10% of D) before D
    assert cost[1] == pytest.approx(six * (4.5e8 - 2e8) + six * 0.1 * 5e8)
    assert cost[2] == pytest.approx(six * 1e8)  # a checkpoint right at D: only D'
    assert cost[3] == pytest.approx(six * (1.2e9 - 6e8) + six * 1e8)  # on from the last one
    assert cost[4] == pytest.approx(6 * 3e8 * (5e8 + 1e8))  # not listed: no checkpoint
    rule = candidate_costs(cands, TrunkState.from_runs(runs), CostModel(cooldown_fraction=0.1))
    assert rule[0] == pytest.approx(six * 1e8) and rule[4] == pytest.approx(6 * 3e8 * 1e8)
    # a size listed with no checkpoint (its trunk is not on disk) is a trunk from scratch
    gone = candidate_costs(cands, TrunkState.from_runs(runs, {1e8: []}))
    assert gone[0] == pytest.approx(six * 5e8 + six * 1e8)
    assert gone[1] == pytest.approx(six * 4.5e8 + six * 0.1 * 5e8)  # to D less its cooldown


def test_a_batch_trains_through_its_own_branch_points():
    # once a pick at D = 5e8 resumes the trunk at 2e8, every point between is passed on the
    # way: free; one past it starts at the pick, or at a later checkpoint
    trunks = TrunkState.from_runs(None, {1e8: [2e8, 6e8]})
    trunks.extend(1e8, 5e8, 1e8)
    cands = _specs([1e8] * 5, [4e8, 5e8, 5.5e8, 6.5e8, 1e8], [1e8] * 5)
    trunk_part = candidate_costs(cands, trunks) - 6 * 1e8 * 1e8
    assert trunk_part / 6e8 == pytest.approx([0.0, 0.0, 0.5e8, 0.5e8, 1e8])
    # a point before the batch's pick, past a checkpoint, shortens the pick's own stretch
    trunks = TrunkState.from_runs(None, {1e8: []})
    trunks.extend(1e8, 5e8, 1e8)
    assert candidate_costs(_specs([1e8], [3e8], [1e8]), trunks)[0] == pytest.approx(6e8 * 1e8)


def test_suggest_prices_runs_from_the_trainer_checkpoints(additive_posterior):
    post = additive_posterior
    cands = pd.DataFrame(
        {"params": [3e7], "pretrain_tokens": [6e8], "spec_tokens": [1e8], "train_domain": ["web"]}
    )
    kw = dict(budget=1e20, n=1, candidates=cands, max_draws=50, force=True)
    (rule,) = suggest(post, **kw).to_list()
    (known,) = suggest(post, checkpoints={3e7: [3e8, 1e9]}, **kw).to_list()
    assert rule["cost_flops"] == pytest.approx(6 * 3e7 * 1e8)
    assert known["cost_flops"] == pytest.approx(6 * 3e7 * (3e8 + 1e8))
    assert "5.4e+16 FLOPs of it trained again from D=3e+08" in known["reason"]
    assert "trained again" not in rule["reason"]
    other = suggest(post, checkpoints={3.0001e7: [3e8]}, **kw)
    assert "checkpoints were given for model sizes no candidate has (3.0001e+07)" in other.notes[-1]
    (gone,) = suggest(post, checkpoints={3e7: []}, **kw).to_list()
    assert gone["cost_flops"] == pytest.approx(6 * 3e7 * (6e8 + 1e8))
    assert "trained again from scratch (no checkpoint of it before" in gone["reason"]


def test_trunks_by_size_lists_each_sizes_trunks_furthest_first():
    from bayesplit.design import trunks_by_size

    runs = pd.DataFrame(
        {
            "run_id": ["a", "b", "c", "d", "e", "f"],
            "params": [1e7, 1e7, 1e7, 1e7, 1e7, 3e7],
            "pretrain_tokens": [1e8, 2e8, 2e8, np.nan, 3e8, 1e8],
            "trunk_id": ["A", "B", "A", "C", None, "F"],
            "schedule": ["wsd", "wsd", "wsd", "wsd", "cosine", None],
        }
    )
    # a tie goes to the trunk whose furthest row comes first; a D unknown counts for
    # nothing (its trunk is left out), a cosine run has nothing to branch from
    assert trunks_by_size(runs) == {1e7: [("B", 2e8), ("A", 2e8)], 3e7: [("F", 1e8)]}
    # a run without a trunk id is its own trunk
    wsd = runs.drop(columns="schedule")
    assert trunks_by_size(wsd)[1e7][0] == ("e", 3e8)
    assert [t for t, _ in trunks_by_size(wsd.drop(columns="trunk_id"))[1e7]] == list("ebca")
    # where every run names its trunk, no run id is needed
    assert trunks_by_size(runs.drop(columns="run_id").iloc[:3]) == {1e7: [("B", 2e8), ("A", 2e8)]}
    assert trunks_by_size(None) == {} == trunks_by_size(runs.iloc[:0])


def test_suggest_branches_from_the_trunk_its_checkpoints_belong_to(additive_posterior):
    post = additive_posterior
    cands = pd.DataFrame(
        {"params": [3e7], "pretrain_tokens": [2e9], "spec_tokens": [1e8], "train_domain": ["web"]}
    )
    # two trunks of N = 3e7: "far" reached 3e9, "near" (the trainer's seed) 1e9
    runs = post.runs.copy()
    at = runs["params"] == 3e7
    runs.loc[at, "trunk_id"] = np.where(runs.loc[at, "pretrain_tokens"] >= 3e9, "far", "near")
    kw = dict(budget=1e20, n=1, candidates=cands, max_draws=50, force=True, runs=runs)
    (furthest,) = suggest(post, checkpoints={3e7: [3e9]}, **kw).to_list()
    assert furthest["branch_from"] == {"trunk": "far", "params": 3e7, "pretrain_tokens": 2e9}
    stops = {"tokens": [3e8], "trunk": "near"}
    (near,) = suggest(post, checkpoints={3e7: stops}, **kw).to_list()
    # continued from how far "near" reached, not "far"
    assert near["branch_from"] == {"trunk": "near", "params": 3e7, "pretrain_tokens": 2e9,
                                   "extend_from": 1e9}  # fmt: skip
    assert near["cost_flops"] == pytest.approx(6 * 3e7 * (2e9 - 3e8 + 1e8))
    # no trunk of the size resumed: a new trunk, trained from scratch
    (new,) = suggest(post, checkpoints={3e7: {"tokens": [], "trunk": None}}, **kw).to_list()
    assert new["branch_from"] is None and "(a new trunk)" in new["reason"]
    assert new["cost_flops"] == pytest.approx(6 * 3e7 * (2e9 + 1e8))
    with pytest.raises(BayesplitError, match=r"trunk must be a trunk id \(text\), got 3"):
        suggest(post, checkpoints={3e7: {"tokens": [], "trunk": 3}}, **kw)


@pytest.mark.parametrize(
    ("checkpoints", "message"),
    [
        ([1e8], r"checkpoints must be a dict of model size -> tokens"),
        ({-1: [1e8]}, "a model size must be a positive number, got -1"),
        ({1e7: "1e8"}, r"checkpoints\[10000000.0\] must be a list of token counts"),
        ({1e7: [float("nan")]}, r"token counts must be numbers >= 0, got nan"),
    ],
)
def test_suggest_refuses_checkpoints_it_cannot_read(checkpoints, message):
    from bayesplit.truth import example_truth, factorial_design

    truth = example_truth("additive", ("web", "code"))
    runs = truth.simulate(factorial_design([1e7, 3e7], [3e8, 1e9], [1e8], truth.domains))
    with pytest.raises(BayesplitError, match=message):
        suggest(truth.as_posterior(runs), budget=1e20, max_draws=10, checkpoints=checkpoints)


def test_a_trunk_carried_further_in_a_batch_keeps_its_id(additive_posterior):
    # the first pick continues an existing trunk; the batch's later branches off it were
    # named "suggested", which `train execute` reads as a new trunk: trained again
    post = additive_posterior
    trunk = TrunkState.from_runs(post.runs).source[1e7]
    state = TrunkState.from_runs(post.runs)
    state.extend(1e7, 1e10)
    assert state.source[1e7] == trunk and state.reached[1e7] == 1e10
    grid = dict(params=[1e7], pretrain_tokens=[1e10], spec_tokens=[3e7, 3e8])
    first, *later = suggest(post, budget=1e19, n=3, force=True, max_draws=100, **grid).to_list()
    assert first["branch_from"] == {"trunk": trunk, "params": 1e7, "pretrain_tokens": 1e10,
                                    "extend_from": 3e9}  # fmt: skip
    assert "(continuing the N=1e+07 trunk)" in first["reason"]
    assert later
    for p in later:
        assert p["branch_from"] == {"trunk": trunk, "params": 1e7, "pretrain_tokens": 1e10}
        assert p["cost_flops"] == pytest.approx(6 * 1e7 * (p["spec_tokens"] or 1e9))
        assert "existing N=1e+07 trunk as an earlier pick carries it past its D" in p["reason"]
