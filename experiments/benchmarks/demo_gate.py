"""Does the demo's fit pass the diagnostics gate, by NUTS target_accept and seed?

The demo's fit of a bundled data set (4 chains x 1000 draws after 1000 warmup steps, with
the law and loader options `bayesplit demo --data NAME` uses; default the campaign).
XLA's floating-point arithmetic differs between CPUs, so the same seed takes a different
path on another machine; this table is what one machine saw.

    python experiments/benchmarks/demo_gate.py 0.95,0.98 0,1,2,3
    python experiments/benchmarks/demo_gate.py 0.9,0.98 0,1,2,3 gadre2024
"""

from __future__ import annotations

import argparse
import time

from bayesplit.cli.demo import DEMO_DATA
from bayesplit.datasets import load_dataset
from bayesplit.fitting import fit


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("accepts", help="target_accept values, comma-separated (0.95,0.98)")
    parser.add_argument("seeds", help="seeds, comma-separated (0,1,2,3)")
    parser.add_argument("data", nargs="?", default="debian_campaign", help="bundled data set")
    args = parser.parse_args()
    accepts = [float(a) for a in args.accepts.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    data = args.data
    setting = DEMO_DATA[data]
    runs = load_dataset(data, split="fit", **setting.get("load", {}))
    print("| target_accept | seed | gate | R-hat max | bulk ESS min | divergences | seconds |")
    print("|---:|---:|:---|---:|---:|---:|---:|")
    for ta in accepts:
        for seed in seeds:
            start = time.perf_counter()
            post = fit(
                runs, setting["law"], chains=4, draws=1000, warmup=1000, seed=seed,
                progress=False, target_accept=ta,
            )  # fmt: skip
            d = post.diagnostics
            print(
                f"| {ta} | {seed} | {'pass' if d.ok else 'FAIL'} | {d.r_hat_max:.4f} | "
                f"{d.ess_bulk_min:.0f} | {d.divergences} | {time.perf_counter() - start:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
