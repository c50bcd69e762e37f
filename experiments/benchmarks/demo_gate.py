"""Does the demo's fit pass the diagnostics gate, by NUTS target_accept and seed?

The demo fits the `transfer` law to the bundled campaign (4 chains x 1000 draws after 1000
warmup steps, N counted with embeddings), as `bayesplit demo` does. XLA's floating-point
arithmetic differs between CPUs, so the same seed takes a different path on another machine;
this table is what one machine saw.

    python experiments/benchmarks/demo_gate.py 0.95,0.98 0,1,2,3
"""

from __future__ import annotations

import sys
import time

from bayesplit.datasets import load_dataset
from bayesplit.fitting import fit


def main() -> None:
    accepts = [float(a) for a in sys.argv[1].split(",")]
    seeds = [int(s) for s in sys.argv[2].split(",")]
    runs = load_dataset("debian_campaign", split="fit", params="with_embeddings")
    print("| target_accept | seed | gate | R-hat max | bulk ESS min | divergences | seconds |")
    print("|---:|---:|:---|---:|---:|---:|---:|")
    for ta in accepts:
        for seed in seeds:
            start = time.perf_counter()
            post = fit(
                runs, "transfer", chains=4, draws=1000, warmup=1000, seed=seed,
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
