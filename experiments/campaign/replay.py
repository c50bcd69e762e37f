"""Replay the measured campaign as a pool: how much compute does each policy need to get the decision right?

    python experiments/campaign/replay.py [--law transfer] [--params with_embeddings]
        [--budget 1e13] [--seeds 0 1 2]
        [--policies active active-decision grid random cost-random] [--batch 8] [--rounds 12] [--workers 2]
        [--no-run-effect] [--report-only]

The pool is every seed-0 run of the bundled campaign (`bayesplit.datasets.debian_campaign`):
general models at every branch point and specialists for every (D, D', domain), one
candidate per run spec (208). Each policy starts from runs of the two smallest models (one
specialist per domain branched at the second D, and the general checkpoints up to it) and
then picks batches from the pool — `active` by `suggest`'s default, the knowledge gradient
of the plan's regret per FLOP (`active-decision`: by how much a run shrinks the sd of the
objective at the plan, `--objective decision`; it was `active`, the default, until stop 20),
`grid` in the paper's order (smallest model first, then D, then D'), `random` and
`cost-random` — observing the *measured* losses of what it picks, with tree-aware costs.

Scoring needs a truth, and real data has none: the reference is the law fitted to the whole
pool (its per-parameter posterior median), and the "right decision" is the plan that is
optimal under it. A policy's plan after each round is scored by its relative regret under
that reference; the compute a policy needs is the experiment FLOPs after which the regret
stays at or below 1%. The in-loop refits model a run effect per trunk, as the reference
does (``--no-run-effect`` leaves it out, into replay_no_run_effect.csv: the first version of
this replay did, and its intervals were overconfident; see extrapolation_check.py). Writes
replay.csv (every round), replay.md (the table, with the no-run-effect campaigns next to it
where both exist) and replay.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
KEY = ["params", "pretrain_tokens", "spec_tokens", "train_domain"]
OUT = HERE / "replay"


def measured_pool(params: str = "with_embeddings") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(candidates, rows): one candidate per seed-0 run spec; the modelled rows each one yields.

    A spec, not a run id: a trunk's general checkpoints at every D share the trunk's run id,
    and an earlier version that kept one candidate per run id left 12 of them unpickable.
    """
    from bayesplit.datasets import debian_campaign
    from bayesplit.runs import modelled_rows

    runs = debian_campaign(seeds="first", params=params)
    runs = runs[modelled_rows(runs)].reset_index(drop=True)
    cand = runs.drop_duplicates(KEY)[KEY].reset_index(drop=True)
    cand["train_domain"] = [
        d if s > 0 else None for d, s in zip(cand["train_domain"], cand["spec_tokens"], strict=True)
    ]
    return cand, runs


def seed_design(cand: pd.DataFrame) -> pd.DataFrame:
    """The two smallest models: one specialist per domain, branched at the second D, and the
    general checkpoints up to that D (the trunk is trained that far for the specialists)."""
    sizes = np.sort(cand["params"].unique())[:2]
    small = cand[cand["params"].isin(sizes)]
    spec = small[small["spec_tokens"] > 0]
    picks = []
    for n, g in spec.groupby("params"):
        d = np.sort(g["pretrain_tokens"].unique())[1]
        dp = np.sort(g["spec_tokens"].unique())
        dp = dp[len(dp) // 2]
        general = small[
            (small["params"] == n) & (small["spec_tokens"] == 0) & (small["pretrain_tokens"] <= d)
        ]
        picks += [general, g[(g["pretrain_tokens"] == d) & (g["spec_tokens"] == dp)]]
    return pd.concat(picks).reset_index(drop=True)


def _key(r) -> tuple:
    dom = r.train_domain if r.spec_tokens > 0 else None
    return (float(r.params), float(r.pretrain_tokens), float(r.spec_tokens), dom)


def reference(law: str, runs: pd.DataFrame, seed: int = 0):
    """The law fitted to the whole pool, and the ground truth made of its posterior medians."""
    from bayesplit.fitting import fit
    from bayesplit.truth import truth_from_posterior

    post = fit(
        runs, law, chains=4, draws=1000, warmup=1000, seed=seed, target_accept=0.95, progress=False
    )
    # the gate is printed with the result, not required: a reference is reported either way
    return post, truth_from_posterior(post, "median", force=True)


def campaign_setup(
    truth,
    budget: float,
    batch: int,
    rounds: int,
    params: str = "with_embeddings",
    run_effect: bool = True,
):
    """Everything a replayed campaign needs before it starts.

    Returns (candidates, pool rows, observe, config, make_refitter): ``observe`` looks the
    measured rows of a design up in the pool; ``make_refitter()`` builds the in-loop refitter
    (reference scales of the seed design, sized for the whole pool).
    """
    from bayesplit.fitting import Refitter
    from bayesplit.model import reference_scales
    from bayesplit.simulation import CampaignConfig

    cand, runs = measured_pool(params)
    by_key = {k: g for k, g in runs.groupby(runs.apply(_key, axis=1))}

    def observe(design: pd.DataFrame, _seed: int) -> pd.DataFrame:
        return pd.concat([by_key[_key(r)] for r in design.itertuples()], ignore_index=True)

    design = seed_design(cand)
    config = CampaignConfig(
        budget=budget,
        experiment_budget=float("inf"),
        params=sorted(cand["params"].unique()),
        pretrain_tokens=sorted(cand["pretrain_tokens"].unique()),
        spec_tokens=sorted(cand.loc[cand["spec_tokens"] > 0, "spec_tokens"].unique()),
        seed_design=design,
        batch=batch,
        max_rounds=rounds,
    )
    scales = reference_scales(observe(design, 0))

    def make_refitter():
        return Refitter(
            truth.law,
            list(truth.domains),
            scales,
            max_rows=len(runs),
            max_runs=runs["trunk_id"].nunique() + 1,
            chains=config.chains,
            draws=config.draws,
            warmup=config.warmup,
            run_effect=run_effect,
        )

    return cand, runs, observe, config, make_refitter


def one_campaign(
    truth_dict: dict,
    budget: float,
    policy: str,
    seed: int,
    batch: int,
    rounds: int,
    params: str = "with_embeddings",
    run_effect: bool = True,
) -> pd.DataFrame:
    from bayesplit._jax import configure
    from bayesplit.simulation import run_campaign
    from bayesplit.truth import GroundTruth

    configure()
    truth = GroundTruth.from_dict(truth_dict)
    cand, _, observe, config, make_refitter = campaign_setup(
        truth, budget, batch, rounds, params, run_effect
    )
    refitter = make_refitter()
    t0 = time.perf_counter()
    h = run_campaign(
        truth, policy, config, seed=seed, refitter=refitter, candidates=cand, observe=observe
    )
    h["seconds"] = time.perf_counter() - t0
    print(
        f"{policy} seed {seed}: {len(h)} rounds, final regret {h['regret'].iloc[-1]:.3%}",
        flush=True,
    )
    return h


def _csv(run_effect: bool) -> Path:
    return OUT.with_suffix(".csv") if run_effect else HERE / "replay_no_run_effect.csv"


def _headline(hist: pd.DataFrame) -> pd.DataFrame:
    from bayesplit.simulation import summarize

    s = summarize(hist).set_index("policy")
    return s[["seeds", "compute_to_reach", "reached", "coverage", "coverage_later_rounds"]]


def report(
    hist: pd.DataFrame, law: str, budget: float, params: str, command: str, run_effect: bool
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogFormatterSciNotation, LogLocator

    from bayesplit.design import CostModel, TrunkState
    from bayesplit.plots import policy_colors
    from bayesplit.simulation import CampaignConfig, design_cost, summarize

    cand, runs = measured_pool(params)
    fit = {f.name: f.default for f in dataclasses.fields(CampaignConfig)}  # what one_campaign uses
    pool_cost = design_cost(cand.sort_values(KEY[:3]), TrunkState(), CostModel())
    s = summarize(hist)
    grid = s.loc[s["policy"] == "grid", "compute_to_reach"]
    g = float(grid.iloc[0]) if len(grid) else float("nan")
    s["vs_grid"] = s["compute_to_reach"] / g if np.isfinite(g) and g > 0 else np.nan
    s["share_of_pool"] = s["compute_to_reach"] / pool_cost
    lines = [
        "# Replaying the measured campaign: compute to reach the full-pool decision",
        "",
        (
            f"Campaigns: `python experiments/campaign/replay.py`; this file: `{command}`  "
            if "--report-only" in command
            else f"Command: `{command}`  "
        ),
        "Machine: CPU, 2 cores. Data: "
        f"`bayesplit.datasets.debian_campaign(seeds='first', params='{params}')`, "
        f"{cand.shape[0]} runs ({runs.shape[0]} modelled rows); law `{law}`; decision budget "
        f"{budget:.3g} FLOPs (shared trunk, equal weights). The whole pool costs "
        f"{pool_cost:.3g} FLOPs with tree-aware costs.",
        "",
        "`compute_to_reach`: median over seeds of the experiment FLOPs after which the plan's "
        "regret under the full-pool reference law stays ≤ 1% (inf: never within the rounds run); "
        "`reached`: share of seeds that got there; `coverage`: share of rounds whose 90% "
        "interval of the objective covered the reference objective; `gate_passed`: share of "
        f"the in-loop fits ({fit['chains']} chains × {fit['draws']} draws, "
        f"{'with a run effect per trunk' if run_effect else 'no run effect'}) that passed the "
        "diagnostics gate.",
        "",
        s.to_markdown(index=False, floatfmt=".3g"),
        "",
    ]
    other = _csv(not run_effect)
    if other.exists():
        mine, theirs = ("with", "no") if run_effect else ("no", "with")
        a, b = _headline(hist), _headline(pd.read_csv(other))
        both = pd.DataFrame(
            {
                f"{col} ({tag} run effect)": frame[col]
                for col in a.columns
                for tag, frame in ((mine, a), (theirs, b))
            }
        )
        lines += [
            f"The same campaigns with the in-loop refits {'without' if run_effect else 'with'} "
            f"the run effect (`{other.name}`; same seeds, seed design, reference and rounds):",
            "",
            both.to_markdown(floatfmt=".3g"),
            "",
        ]
    OUT.with_suffix(".md").write_text("\n".join(lines))
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = policy_colors()
    first = hist["seed"].min()
    for (policy, seed), h in hist.groupby(["policy", "seed"]):
        ax.plot(
            h["spent_flops"],
            100 * h["regret"].clip(lower=1e-5),
            color=colors[policy],
            alpha=0.7,
            label=policy if seed == first else None,
            marker="o",
            ms=3,
        )
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="experiment compute spent (FLOPs)",
        ylabel="regret of the plan (%)",
        title=f"Replay of the measured campaign ({law}, {budget:.0e} FLOPs)",
    )
    # after the log scale, which resets the ticks: labels at 1x and 3x each decade only, as
    # the default 2x, 3x, ... labels collide
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 3.0)))
    ax.xaxis.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT.with_suffix(".png"), dpi=120)
    # the docs show the same figure; mkdocs only serves files under docs/
    fig.savefig(HERE.parent.parent / "docs" / "assets" / "replay.png", dpi=120)
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--law", default="transfer")
    ap.add_argument("--params", default="with_embeddings", help="N convention of the table.")
    ap.add_argument("--budget", type=float, default=1e13)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument(
        "--policies",
        nargs="+",
        default=["active", "active-decision", "grid", "random", "cost-random"],
    )
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--no-run-effect",
        dest="run_effect",
        action="store_false",
        help="In-loop refits without the per-trunk run effect (into replay_no_run_effect.csv).",
    )
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    out = _csv(args.run_effect)
    given = sys.argv[1:] if argv is None else argv
    command = "python experiments/campaign/replay.py " + " ".join(given)
    if not args.report_only:
        from bayesplit._jax import configure

        configure()
        _, runs = measured_pool(args.params)
        t0 = time.perf_counter()
        post, truth = reference(args.law, runs)
        print(
            f"reference fit ({args.law}, {len(runs)} rows): {time.perf_counter() - t0:.0f} s, "
            f"gate ok {post.ok}",
            flush=True,
        )
        truth_dict = truth.to_dict()
        jobs = [
            (truth_dict, args.budget, p, s, args.batch, args.rounds, args.params, args.run_effect)
            for s in args.seeds
            for p in args.policies
        ]
        ctx = multiprocessing.get_context("spawn")
        # one campaign per worker process: campaigns stay independent, and XLA's compiled
        # code (~1,300 memory mappings per refit) never piles up in one process
        with ProcessPoolExecutor(args.workers, mp_context=ctx, max_tasks_per_child=1) as pool:
            hist = pd.concat(pool.map(one_campaign, *zip(*jobs, strict=True)), ignore_index=True)
        hist.to_csv(out, index=False)
    report(pd.read_csv(out), args.law, args.budget, args.params, command, args.run_effect)


if __name__ == "__main__":
    sys.exit(main())
