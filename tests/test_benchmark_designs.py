"""The seed designs of experiments/benchmarks/design_efficiency.py: what each trains and costs."""

from __future__ import annotations

import pytest
from support import load_script

from bayesplit.design import CostModel, TrunkState
from bayesplit.simulation import design_cost


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/design_efficiency.py")


def _general_models(design) -> set[tuple[float, float]]:
    return set(zip(design["params"], design["pretrain_tokens"], strict=True))


@pytest.mark.parametrize("truth", ["debian", "gadre", "saturating_reducible"])
def test_lean_seed_design_is_the_standard_one_without_the_second_models_longer_run(bench, truth):
    t = bench.make_truth(truth)
    standard = bench.make_config(truth, t).seed_design
    config = bench.make_config(truth, t, "lean")
    lean = config.seed_design
    (n1, n2), (d1, d2) = config.params[:2], config.pretrain_tokens[:2]
    assert _general_models(standard) == {(n1, d1), (n1, d2), (n2, d1), (n2, d2)}
    assert _general_models(lean) == {(n1, d1), (n1, d2), (n2, d1)}
    assert (lean["spec_tokens"] == 0).all() and len(lean) == 3
    # tree-aware: one trunk per size, to its longest D; every general model pays its cooldown
    c = CostModel()
    f = c.flops_per_param_token
    expected = f * n1 * (d2 + c.cooldown_fraction * (d1 + d2)) + f * n2 * d1 * (
        1 + c.cooldown_fraction
    )
    assert design_cost(lean, TrunkState(), c) == pytest.approx(expected, rel=1e-12)
    assert design_cost(lean, TrunkState(), c) < 0.6 * design_cost(standard, TrunkState(), c)


def test_unknown_seed_design_is_refused(bench):
    with pytest.raises(SystemExit, match="unknown seed design 'tiny'"):
        bench.make_config("debian", bench.make_truth("debian"), "tiny")


def test_lean_campaigns_have_their_own_files(bench):
    assert bench.lean_csv().name == "design_efficiency_seed_lean.csv"
    assert bench.lean_csv(4).name == "design_efficiency_seed_lean.csv"  # the default rounds
    assert bench.lean_csv(12).name == "design_efficiency_seed_lean_rounds12.csv"
    assert bench.CSV.name == "design_efficiency.csv"


def test_campaigns_with_another_batch_have_their_own_files(bench, monkeypatch):
    assert bench.batch_csv(2, 20).name == "design_efficiency_batch2_rounds20.csv"
    assert bench.batch_csv(2, None).name == "design_efficiency_batch2.csv"
    assert bench.batch_csv(2, 4).name == "design_efficiency_batch2.csv"  # the default rounds
    # their own files do not mix into the longer campaigns' section of the report
    assert not bench.batch_csv(2, 20).name.startswith("design_efficiency_rounds")
    argv = ["design_efficiency.py", "--batch", "2", "--seed-design", "lean"]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit, match="--batch with --seed-design lean: not supported"):
        bench.main()


def test_compute_after_the_seed_design_takes_its_cost_off_both_policies(bench):
    """The longer campaigns' second reading of the 1/3 target: ours and the grid compared on
    what each spent after the seed design (10 here), seeds paired."""
    import pandas as pd

    rows = []
    # active reaches 1% at 14 (4 after the seed design), the grid at 22 (12 after it): 1/3
    for policy, spent, regret in [
        ("active", [10, 14, 18], [0.05, 0.005, 0.004]),
        ("grid", [10, 16, 22], [0.05, 0.03, 0.009]),
    ]:
        for seed in range(3):
            rows += [
                {"policy": policy, "seed": seed, "round": r, "spent_flops": s, "regret": g}
                for r, (s, g) in enumerate(zip(spent, regret, strict=True))
            ]
    after = bench._after_seed_design(pd.DataFrame(rows), "active")
    assert after["median"] == 4 and after["baseline_median"] == 12
    assert after["ratio"] == pytest.approx(1 / 3)
