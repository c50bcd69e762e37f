"""Is the replay's in-loop bias an extrapolation from small models?

    python experiments/campaign/extrapolation_check.py

In the replay (``replay.py``), once a policy's plan is within 1% of the reference's, its
in-loop fit still puts the plan's objective at about 3.6 nats where the reference (the law
fitted to the whole pool) puts it at 3.45, with 90% intervals that exclude 3.45. The
in-loop designs hold mostly the pool's smaller models, and the 1e13-FLOP plan sits beyond
every run in the pool. This fits the `transfer` law to nested subsets of the pool, the
runs of the smallest 2, 3 and all 4 model sizes, with and without the run effect
(2 chains x 500 draws, seed 0), and reports for each fit:

* the objective band of the reference's optimal plan (the same plan for every fit);
* the fit's own plan, and that plan's regret under the reference's median law;
* the measured losses of the larger model sizes it did not see: median relative error and
  coverage of the 90% new-run predictive band.

The last is the check that needs no reference: if the small-model fits' bands miss the
measured losses of the larger models as often as their objective bands miss the reference,
the in-loop intervals are too narrow for extrapolating in N, and the law (not the reference)
is what the replay's coverage column measures. Writes extrapolation_check.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from replay import measured_pool  # noqa: E402

BUDGET = 1e13
LEVEL = 0.9


def _band(x: np.ndarray) -> tuple[float, float, float]:
    lo, med, hi = np.quantile(x, [(1 - LEVEL) / 2, 0.5, (1 + LEVEL) / 2])
    return float(med), float(lo), float(hi)


def main() -> None:
    # no options; --help says what it does instead of running (and rewriting its output)
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    from bayesplit.allocation import allocate
    from bayesplit.comparison import holdout_predictions
    from bayesplit.fitting import fit
    from bayesplit.truth import truth_from_posterior

    _, runs = measured_pool("with_embeddings")
    sizes = np.sort(runs["params"].unique())
    fit_kw = dict(chains=2, draws=500, warmup=500, seed=0, target_accept=0.95, progress=False)

    # The reference as in replay.py's scoring, at this script's fit length.
    t0 = time.perf_counter()
    ref_post = fit(runs, "transfer", run_effect=True, **fit_kw)
    ref_seconds = time.perf_counter() - t0
    ref_truth = truth_from_posterior(ref_post, "median", force=True)
    ref_law = ref_truth.as_posterior()
    ref_alloc = allocate(ref_law, budget=BUDGET, force=True)
    ref_plan = ref_alloc.plan.to_dict()
    ref_objective = float(np.median(ref_alloc.draws["objective"].values))

    rows = []
    for n_sizes in (2, 3, 4):
        seen = runs[runs["params"] <= sizes[n_sizes - 1]]
        unseen = runs[runs["params"] > sizes[n_sizes - 1]]
        for run_effect in (True, False):
            t0 = time.perf_counter()
            post = (
                ref_post
                if n_sizes == 4 and run_effect
                else fit(seen, "transfer", run_effect=run_effect, **fit_kw)
            )
            alloc = allocate(post, budget=BUDGET, force=True, compare=[{"name": "ref", **ref_plan}])
            at_ref = _band(alloc.alternatives.sel(alternative="ref")["objective"].values)
            own = alloc.plan.to_dict()
            scored = allocate(ref_law, budget=BUDGET, force=True, compare=[{"name": "own", **own}])
            row = {
                "model sizes seen": f"{n_sizes} (N ≤ {sizes[n_sizes - 1]:,.0f})",
                "runs": seen["run_id"].nunique(),
                "run effect": run_effect,
                "gate": "pass" if post.ok else "fail",
                "objective at reference plan": f"{at_ref[0]:.3f} [{at_ref[1]:.3f}, {at_ref[2]:.3f}]",
                "covers reference": at_ref[1] <= ref_objective <= at_ref[2],
                "own plan N": own["params"],
                "own plan regret under reference": float(
                    scored.alternatives.sel(alternative="own")["expected_regret_rel"]
                ),
            }
            if len(unseen):
                pred = holdout_predictions(post, unseen, level=LEVEL)
                rel = pred["median"] / pred["loss"] - 1
                row["larger sizes: median |rel error|"] = float(np.median(np.abs(rel)))
                row["larger sizes: median rel error"] = float(np.median(rel))
                row["larger sizes: 90% band coverage"] = float(
                    np.mean(
                        (pred["new_run_lo"] <= pred["loss"]) & (pred["loss"] <= pred["new_run_hi"])
                    )
                )
            # the all-sizes fit with the run effect is the reference: count its fit time here
            reused = n_sizes == 4 and run_effect
            row["seconds"] = time.perf_counter() - t0 + (ref_seconds if reused else 0.0)
            rows.append(row)
            print(row, flush=True)
    write(pd.DataFrame(rows), ref_plan, ref_objective, len(runs))


def write(table: pd.DataFrame, ref_plan: dict, ref_objective: float, n_rows: int) -> None:
    text = "\n".join(
        [
            "# Extrapolating from the pool's small models",
            "",
            "Command: `python experiments/campaign/extrapolation_check.py`  ",
            f"Machine: CPU, 2 cores. Data: the replay's pool ({n_rows} modelled rows); law "
            f"`transfer`; decision budget {BUDGET:.0e} FLOPs; fits 2 chains × 500 draws, seed 0. "
            f"Reference plan (optimal under the all-sizes fit's median law): N = "
            f"{ref_plan['params']:,.0f}, objective {ref_objective:.3f}.",
            "",
            table.to_markdown(index=False, floatfmt=".4g"),
            "",
        ]
    )
    (HERE / "extrapolation_check.md").write_text(text)


if __name__ == "__main__":
    main()
