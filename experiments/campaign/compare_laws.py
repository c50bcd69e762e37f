"""Which law family describes the measured campaign? Held-out error, coverage and PSIS-LOO per law.

    python experiments/campaign/compare_laws.py [--laws chinchilla,additive,transfer,saturating]
        [--holdout-largest 0.2] [--draws 1000] [--report-only]

Runs `bayesplit.compare` on the bundled campaign table (`debian_campaign`, both seeds): each law
is fitted without the largest-compute 20% of runs and scored on them (relative error of the
median prediction, coverage of the 90% predictive band), plus PSIS-LOO on its training fit.
Writes compare.csv and compare.md next to this file, and compare_residuals.png: measured vs
predicted loss of the held-out rows for each law, by D'.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent


def heldout_predictions(post, holdout: pd.DataFrame) -> pd.DataFrame:
    from bayesplit.comparison import holdout_predictions

    p = holdout_predictions(post, holdout).rename(
        columns={"predictive_lo": "lo", "predictive_hi": "hi"}
    )
    cols = ["run_id", "params", "pretrain_tokens", "spec_tokens", "eval_domain", "loss"]
    return p[[*cols, "median", "lo", "hi"]]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--laws", default="chinchilla,additive,transfer,saturating")
    ap.add_argument("--holdout-largest", type=float, default=0.2)
    ap.add_argument(
        "--params",
        default="non_embedding,with_embeddings",
        help="N conventions to compare (debian_campaign(params=...)).",
    )
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--target-accept",
        type=float,
        default=0.95,
        help="NUTS target acceptance for every law (0.9, the package default, leaves a "
        "divergence or R-hat 1.011 on some of these fits).",
    )
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    command = "python experiments/campaign/compare_laws.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )

    from bayesplit.comparison import holdout_metrics, loo_metrics, split_largest
    from bayesplit.datasets import debian_campaign
    from bayesplit.fitting import fit

    laws = [x.strip() for x in args.laws.split(",") if x.strip()]
    conventions = [x.strip() for x in args.params.split(",") if x.strip()]
    splits = {}
    for conv in conventions:
        splits[conv] = split_largest(debian_campaign(params=conv), args.holdout_largest)
    if not args.report_only:
        rows, preds = [], []
        for conv, law in ((c, law) for c in conventions for law in laws):
            train, holdout = splits[conv]
            t0 = time.perf_counter()
            post = fit(
                train,
                law,
                chains=4,
                draws=args.draws,
                warmup=args.draws,
                seed=args.seed,
                target_accept=args.target_accept,
                progress=False,
            )
            secs = time.perf_counter() - t0
            row = {"law": law, "N": conv, "n_train_rows": len(post.runs), "fit_s": round(secs, 1)}
            row.update(holdout_metrics(post, holdout))
            row.update(loo_metrics(post))
            d = post.diagnostics.summary()
            row.update(
                {
                    "r_hat_max": d["r_hat_max"],
                    "ess_bulk_min": d["ess_bulk_min"],
                    "ess_tail_min": d["ess_tail_min"],
                    "divergences": d["divergences"],
                    "gate_ok": post.ok,
                    "gate_failures": "; ".join(post.diagnostics.failures),
                }
            )
            rows.append(row)
            p = heldout_predictions(post, holdout)
            p["law"] = law
            p["N"] = conv
            preds.append(p)
            print(row, flush=True)
        pd.DataFrame(rows).to_csv(HERE / "compare.csv", index=False)
        pd.concat(preds).to_csv(HERE / "compare_predictions.csv", index=False)
    table = pd.read_csv(HERE / "compare.csv")
    preds = pd.read_csv(HERE / "compare_predictions.csv")
    report(table, preds, splits, command)


def report(table: pd.DataFrame, preds: pd.DataFrame, splits: dict, command: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [
        "law",
        "N",
        "n_holdout",
        "n_seen_run",
        "median_rel_error",
        "max_rel_error",
        "coverage",
        "coverage_new_run",
        "elpd_loo",
        "elpd_loo_se",
        "pareto_k_bad",
        "r_hat_max",
        "ess_bulk_min",
        "ess_tail_min",
        "divergences",
        "gate_ok",
        "fit_s",
    ]
    t = table.sort_values(["N", "elpd_loo"], ascending=[False, False])
    lines = [
        "# Law comparison on the measured campaign",
        "",
        f"Command: `{command}`  ",
        "Machine: CPU, 2 cores (NumPyro NUTS, 4 chains × 1000 draws, target_accept 0.95). Data: "
        "`bayesplit.datasets.debian_campaign(params=N)`, both seeds. Each law is fitted "
        "without the largest-compute 20% of runs and scored on them (modelled rows: general "
        "models on every domain, specialists on their own domain):",
        "",
    ]
    for conv, (train, holdout) in splits.items():
        flops = 6 * holdout["params"] * (holdout["pretrain_tokens"] + holdout["spec_tokens"])
        sizes = ", ".join(f"{n:,.0f}" for n in sorted(holdout["params"].unique()))
        lines.append(
            f"* N = `{conv}`: fitted on {train['run_id'].nunique()} runs, scored on "
            f"{holdout['run_id'].nunique()} runs of N = {sizes} ({flops.min():.3g}–"
            f"{flops.max():.3g} FLOPs each)."
        )
    lines += [
        "",
        "`median_rel_error`/`max_rel_error`: |median prediction / measured − 1| over the "
        "held-out rows; `coverage`: share inside the 90% predictive band. Every held-out row here "
        "is a later branch of a trunk whose earlier branches were fitted (`n_seen_run`), so it "
        "is predicted for that trunk, its estimated run effect included; `coverage_new_run` "
        "scores the same rows against the band for a brand-new run (new seed), which is wider "
        "by the seed-to-seed spread. `elpd_loo`: PSIS-LOO "
        "of the training fit (higher is better; compare within one N convention only, the "
        "training rows differ); `gate_ok`: R-hat ≤ 1.01, bulk and tail ESS ≥ 400, no "
        "divergences, every parameter identified.",
        "",
        t[[c for c in cols if c in t.columns]].to_markdown(index=False, floatfmt=".4g"),
        "",
    ]
    if "gate_failures" in t.columns:  # what each failed gate said, in the gate's words
        failed = t[t["gate_failures"].fillna("") != ""]
        if len(failed):
            lines += ["Why a fit failed the gate:", ""]
            lines += [f"* {r.law}, {r.N}: {r.gate_failures}" for r in failed.itertuples()]
            lines.append("")
    (HERE / "compare.md").write_text("\n".join(lines))

    laws = list(dict.fromkeys(table["law"]))
    convs = list(splits)
    fig, axes = plt.subplots(
        len(convs),
        len(laws),
        figsize=(3.3 * len(laws), 2.9 * len(convs)),
        sharey=True,
        squeeze=False,
    )
    colors = dict(
        zip(sorted(preds["eval_domain"].unique()), ["C0", "C1", "C2", "C3", "C4"], strict=False)
    )
    for r, conv in enumerate(convs):
        for c, law in enumerate(laws):
            ax = axes[r, c]
            p = preds[(preds["law"] == law) & (preds["N"] == conv)]
            rel = 100 * (p["median"] / p["loss"] - 1)
            for (dom, spec), g in p.groupby(["eval_domain", p["spec_tokens"] > 0]):
                e = rel[g.index]
                ax.scatter(
                    g["pretrain_tokens"] * (1.04 if spec else 0.96),
                    e,
                    s=14,
                    color=colors[dom],
                    marker="o" if spec else "s",
                    facecolors=colors[dom] if spec else "none",
                    label=f"{dom}{' (specialist)' if spec else ' (general)'}",
                )
            ax.axhline(0, color="k", lw=0.8)
            ax.set(xscale="log", title=f"{law}, N {conv.replace('_', ' ')}")
            if r == len(convs) - 1:
                ax.set_xlabel("D, pretraining tokens")
        axes[r, 0].set_ylabel("predicted / measured − 1 (%)")
    axes[0, 0].legend(fontsize=6, ncol=2)
    fig.suptitle("Held-out largest-compute runs: error of the median prediction")
    fig.tight_layout()
    fig.savefig(HERE / "compare_residuals.png", dpi=110)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
