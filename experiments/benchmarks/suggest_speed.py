"""Time `suggest` over ≥ 10,000 candidates with 2,000 posterior draws (target ≤ 5 s, 2 CPU cores).

Posterior: the synthetic `additive` posterior of allocate_speed.py with 3 domains and 2,000
draws. Candidates: 10 model sizes × 21 values of D × (1 general + 16 values of D' × 3
domains) = 10,290 run specs, with tree-aware costs. Timed in one process: the first call
(allocation solvers compiled or read from the persistent JAX cache) and warm calls.

    python experiments/benchmarks/suggest_speed.py
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import allocate_speed  # noqa: E402
from fit_speed import machine  # noqa: E402

from bayesplit.design import suggest  # noqa: E402


def main() -> None:
    # no options; --help says what it does instead of running (and rewriting its .md)
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    allocate_speed.DRAWS, allocate_speed.K = 2000, 3
    post = allocate_speed.synthetic_posterior()
    grids = {
        "params": np.geomspace(1e7, 3e9, 10),
        "pretrain_tokens": np.geomspace(1e8, 1e11, 21),
        "spec_tokens": np.geomspace(1e7, 3e10, 16),
    }
    rows = []
    for objective in ("decision", "split", "regret"):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            sug = suggest(post, budget=1e21, n=4, objective=objective, max_draws=2000, **grids)
            times.append(time.perf_counter() - start)
        rows.append((objective, sug.n_candidates, times[0], min(times[1:]), sug.to_list()))
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        "# Suggest speed: ≥ 10,000 candidates × 2,000 draws",
        "",
        f"Machine: {machine()} (CPU).  ",
        "Command: `python experiments/benchmarks/suggest_speed.py`  ",
        "Synthetic `additive` posterior (3 domains, 2,000 draws); budget 1e21 FLOPs; batch n = 4.",
        "A call = the decision quantity per draw (allocation), the observable matrix of every",
        "candidate per draw, the linear-Gaussian ensemble and the greedy batch with fantasies.",
        "",
        "| objective | candidates | first call (s) | warm (s) | first suggestion |",
        "|---|---:|---:|---:|---|",
    ]
    for objective, n_cand, first, warm, recs in rows:
        r = recs[0]
        what = f"N={r['params']:.3g}, D={r['pretrain_tokens']:.3g}, D'={r['spec_tokens']:.3g} {r['train_domain'] or 'general'}"
        lines.append(f"| {objective} | {n_cand} | {first:.2f} | {warm:.2f} | {what} |")
    worst = max(r[3] for r in rows)
    lines += [
        "",
        f"Target ≤ 5 s (warm): {'met' if worst <= 5 else 'NOT met'} (worst {worst:.2f} s).",
        "",
        f"_Generated at commit {git}._",
    ]
    out = Path(__file__).with_suffix(".md")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
