"""The paper-style baseline: train the whole factorial ladder, then fit once.

``design_efficiency.py`` runs its ``grid`` policy as a campaign: the factorial ladder in a
fixed order (smallest models first), four runs a round, and credits it with the compute
spent up to the first round after which its plan stays within 1% of the optimum. That
measure stops the grid where the *truth* says it may stop, which no lab running a grid can
know. A scaling-law paper instead trains the whole ladder N × D × D' and fits it once. This
script measures that baseline on the same truths, ladders and fit settings: per seed, it
simulates the whole ladder (with the campaigns' seed design inside it), fits it, and scores
the plan (regret, coverage). The report sets it against the compute `active` needed in the
campaigns. It is context for the issue's efficiency target, which ``design_efficiency.md``
judges against the (stricter) sequential grid.

    python experiments/benchmarks/full_ladder.py [--truths debian,...] [--seeds 20] [--workers 2]
    python experiments/benchmarks/full_ladder.py --report-only

Results are kept per (truth, seed) in ``full_ladder.csv`` (a rerun skips what is there);
``full_ladder.md`` is made from all of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import design_efficiency as de  # noqa: E402

CSV = HERE / "full_ladder.csv"
TRUTHS = "debian,debian@1e15,gadre,saturating_reducible"


def ladder_config(name: str):
    """The truth's campaign config with its seed design replaced by the whole ladder."""
    from bayesplit.design import TrunkState
    from bayesplit.simulation import design_cost
    from bayesplit.truth import factorial_design

    truth = de.make_truth(name)
    base = de.make_config(name, truth)
    ladder = factorial_design(base.params, base.pretrain_tokens, base.spec_tokens, truth.domains)
    # the ladder is round 0 alone; a campaign's seed design may not overspend its budget
    cost = max(base.experiment_budget, design_cost(ladder, TrunkState(), base.cost_model))
    ladder_only = dict(seed_design=ladder, max_rounds=0, experiment_budget=cost)
    return truth, base, dataclasses.replace(base, **ladder_only)


_CACHE: dict = {}


def _one(task: tuple[str, int]) -> dict:
    """Fit the whole ladder of one truth under one noise seed and score its plan."""
    from bayesplit.simulation import make_refitter, run_campaign

    name, seed = task
    if name not in _CACHE:
        truth, base, config = ladder_config(name)
        _CACHE[name] = truth, config, make_refitter(truth, base)
    truth, config, refitter = _CACHE[name]
    start = time.perf_counter()
    # a campaign of round 0 only: its "seed design" is the ladder, charged tree-aware
    r = run_campaign(truth, "grid", config, seed=seed, refitter=refitter).iloc[0]
    return {
        "truth": name,
        "seed": seed,
        "n_runs": int(r["n_runs"]),
        "ladder_flops": float(r["spent_flops"]),
        "regret": float(r["regret"]),
        "covered": bool(r["covered"]),
        "pred_error": float(r["pred_error"]),
        "expected_regret": float(r["expected_regret"]),
        "seconds": time.perf_counter() - start,
    }


def run(truths: list[str], seeds: int, workers: int) -> None:
    old = pd.read_csv(CSV) if CSV.exists() else pd.DataFrame(columns=["truth", "seed"])
    done = set(zip(old["truth"], old["seed"], strict=True))
    tasks = [(t, s) for t in truths for s in range(seeds) if (t, s) not in done]
    print(f"{len(tasks)} ladders to fit ({len(done)} already in {CSV.name})", flush=True)
    for t in truths:  # an unknown truth fails here, not in a worker
        de.make_truth(t)
    with mp.get_context("spawn").Pool(workers) as pool:
        for i, row in enumerate(pool.imap_unordered(_one, tasks), 1):
            pd.DataFrame([row]).to_csv(CSV, mode="a", header=not CSV.exists(), index=False)
            print(f"[{i}/{len(tasks)}] {row}", flush=True)


def _active_reach() -> dict[tuple[str, str], np.ndarray]:
    """Per (truth, campaign file): each seed's compute to ≤ 1% regret under ``active``."""
    out = {}
    for path in [de.CSV, *sorted(HERE.glob("design_efficiency_rounds*.csv"))]:
        df = pd.read_csv(path).drop_duplicates(["truth", "policy", "seed", "round"])
        for truth, g in df[df["policy"] == "active"].groupby("truth"):
            out[truth, path.name] = np.array([de._to_reach(h) for _, h in g.groupby("seed")])
    return out


def report(command: str) -> None:
    df = pd.read_csv(CSV)
    reach = _active_reach()
    rows = []
    for truth, g in df.groupby("truth", sort=False):
        ladder = float(g["ladder_flops"].iloc[0])
        # the ladder "reaches" 1% at its own cost in the seeds whose plan is within 1%
        ladder_reach = np.where(g["regret"] <= de.THRESHOLD, ladder, np.inf)
        for (t, source), ours in reach.items():
            if t != truth:
                continue
            rows.append(
                {
                    "truth": truth,
                    "seeds": len(g),
                    "ladder runs": int(g["n_runs"].iloc[0]),
                    "ladder FLOPs": ladder,
                    "ladder regret (median)": g["regret"].median(),
                    "ladder regret (max)": g["regret"].max(),
                    "ladder within 1% (share)": (g["regret"] <= de.THRESHOLD).mean(),
                    "ladder 90% coverage": g["covered"].mean(),
                    "ladder pred error (median)": g["pred_error"].median(),
                    "active campaigns": source,
                    "active median FLOPs to ≤1%": np.median(ours),
                    "active / ladder": de._ratio(np.median(ours), np.median(ladder_reach)),
                }
            )
    table = pd.DataFrame(rows)
    lines = [
        "# The paper-style baseline: the whole ladder, fitted once",
        "",
        f"Command: `{command}`  ",
        f"Machine: CPU, {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"Python {sys.version.split()[0]}; fit settings as in design_efficiency.py "
        f"{de.SETTINGS}.",
        "",
        "Per seed, the whole factorial ladder of each truth (every (N, D) general run and every "
        "specialist branched from it, the seed design included) is simulated with fresh noise, "
        "fitted once, and its plan scored against the truth. `ladder FLOPs` is its tree-aware "
        "cost (one trunk per model size). `ladder pred error`: the predicted objective of the "
        "ladder's plan over its true objective, minus 1. `active median FLOPs to ≤1%` is from the campaigns in "
        "`design_efficiency.md` (the file named); `active / ladder` is that median over the "
        "ladder's cost (nan where the ladder's own plan is more than 1% off in most seeds). "
        "This is context, not the acceptance test: the issue's efficiency target is judged in "
        "`design_efficiency.md` against the grid run as a campaign, which is credited only "
        "with the compute up to the round after which the truth says it stays within 1%.",
        "",
        table.to_markdown(index=False, floatfmt=".3g"),
        "",
    ]
    (HERE / "full_ladder.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--truths", default=TRUTHS)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    command = "python experiments/benchmarks/full_ladder.py " + " ".join(sys.argv[1:])
    if not args.report_only:
        run(args.truths.split(","), args.seeds, args.workers)
    report(command.strip())


if __name__ == "__main__":
    main()
