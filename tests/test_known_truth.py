"""Simulate runs from a known law, fit, allocate far beyond the data, compare with the true optimum."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesplit.allocation import allocate
from bayesplit.fitting import fit
from bayesplit.runs import compute_flops
from bayesplit.truth import Noise, example_truth, factorial_design


def _design(domains):
    sizes, tokens = [1e7, 2e7, 5e7, 1e8], [3e8, 1e9]
    general = factorial_design(sizes, tokens, [], domains)
    spec = factorial_design(sizes, tokens, [3e7, 1e8, 3e8], domains)
    return pd.concat(
        [general, spec[spec["spec_tokens"] > 0]], ignore_index=True
    )  # 80 runs ≤ 8e17 FLOPs


def _check(seed: int, chains: int, draws: int) -> tuple[float, bool, float, list]:
    truth = example_truth(
        "additive", ("web", "code", "law"), noise=Noise(sigma=0.005, seed_sd=0.002)
    )
    runs = truth.simulate(_design(truth.domains), seed=seed)
    assert compute_flops(runs).max() <= 1e18
    budget = 100 * compute_flops(runs).max()
    post = fit(
        runs, "additive", chains=chains, draws=draws, warmup=draws, seed=seed, progress=False
    )
    plan = allocate(post, budget=budget, force=True)
    best = allocate(truth.as_posterior(), budget=budget)
    n, d, dp = plan.plan.arrays(plan.domains)
    true_loss = np.mean([truth.loss(n, d, dp[i], k) for i, k in enumerate(plan.domains)])
    gap = true_loss / best.to_dict()["objective"]["median"] - 1
    q = plan.to_dict()["optimum_distribution"]["pretrain_fraction"]
    inside = q[0] <= best.pretrain_fraction <= q[2]
    return gap, inside, best.pretrain_fraction, q


def test_known_truth_single_seed():
    gap, inside, true_fraction, interval = _check(seed=0, chains=2, draws=400)
    assert gap < 0.005, gap
    assert inside, (true_fraction, interval)


@pytest.mark.slow
def test_known_truth_ten_seeds():
    results = [_check(seed=s, chains=4, draws=1000) for s in range(10)]
    good = [gap < 0.005 and inside for gap, inside, _, _ in results]
    assert sum(good) >= 9, results
