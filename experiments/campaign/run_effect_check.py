"""Is the replay's missing run effect what biases its in-loop fits?

    python experiments/campaign/run_effect_check.py

The replay (``replay.py``) scores its policies against the `transfer` law fitted to the
whole seed-0 pool *with* a per-trunk run effect, while its in-loop refits leave the run
effect out. This fits the whole pool both ways (2 chains x 500 draws each, seed 0) and
prints, for the 1e13-FLOP decision, each posterior's objective band and plan, and the
regret of each median law's optimal plan under the other median law. If the two agree,
the run effect is not what moves the in-loop predictions. Writes run_effect_check.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from replay import measured_pool  # noqa: E402

BUDGET = 1e13


def main() -> None:
    # no options; --help says what it does instead of running (and rewriting its output)
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    from bayesplit.allocation import allocate
    from bayesplit.fitting import fit
    from bayesplit.truth import truth_from_posterior

    _, runs = measured_pool("with_embeddings")
    rows, optima = [], {}
    for run_effect in (True, False):
        t0 = time.perf_counter()
        post = fit(
            runs,
            "transfer",
            chains=2,
            draws=500,
            warmup=500,
            seed=0,
            target_accept=0.95,
            progress=False,
            run_effect=run_effect,
        )
        alloc = allocate(post, budget=BUDGET, force=True)
        truth = truth_from_posterior(post, "median", force=True)
        optima[run_effect] = (truth, allocate(truth.as_posterior(), budget=BUDGET, force=True))
        obj = alloc.to_dict()["objective"]
        rows.append(
            {
                "run effect": run_effect,
                "gate": "pass" if post.ok else "fail",
                "objective (median)": obj["median"],
                "objective 90% interval": f"[{obj['credible'][0]:.3f}, {obj['credible'][1]:.3f}]",
                "plan N": alloc.plan.params,
                "plan pretrain fraction": alloc.pretrain_fraction,
                "fit + allocate seconds": time.perf_counter() - t0,
            }
        )
    for row in rows:
        mine = row["run effect"]
        truth, _ = optima[mine]
        other = optima[not mine][1].plan.to_dict()
        scored = allocate(
            truth.as_posterior(), budget=BUDGET, force=True, compare=[{"name": "x", **other}]
        )
        row["regret of the other's optimal plan under this median law"] = float(
            scored.alternatives.sel(alternative="x")["expected_regret_rel"]
        )
    table = pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4g")
    text = "\n".join(
        [
            "# The replay's reference with and without the run effect",
            "",
            "Command: `python experiments/campaign/run_effect_check.py`  ",
            f"Machine: CPU, 2 cores. Data: the replay's pool ({len(runs)} modelled rows); law "
            f"`transfer`; decision budget {BUDGET:.0e} FLOPs.",
            "",
            table,
            "",
        ]
    )
    (HERE / "run_effect_check.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
