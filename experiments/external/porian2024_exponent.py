"""External check: the compute-optimal exponent of Porian et al. 2024's 15 configurations.

Porian et al. (NeurIPS 2024) trained models at 12 FLOP budgets under 15 configurations
(dataset, hyperparameters, warmup, learning-rate decay, parameter count, train or val loss)
and found, by IsoFLOP analysis, how the compute-optimal model size grows with compute,
N* ∝ C^a: a ≈ 0.83 in the Kaplan-like setup, moving to a ≈ 0.5 once the discrepancies are
resolved. This script asks whether bayesplit, fed the same points, says the same.

For each configuration: fit the ``chinchilla`` law (one domain, every row of a model size
one run, since each point is a checkpoint of that model's run) with the default NUTS
settings; read a = β / (α + β) per posterior draw (the exponent of N* for L = E + A·N^-α +
B·D^-β at C = 6·N·D); and, as the allocator sees it, fit the slope of log N of
``bayesplit.frontier``'s plan against log C over budgets inside the data (1e17–1e19).

    python experiments/external/porian2024_exponent.py [--draws 1000] [--configs 0,4]

Writes experiments/external/porian2024_exponent.md (and .csv) and the figure
docs/assets/porian2024_exponent.png. Data:
experiments/external/porian2024/ (MIT; SOURCE.md).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from fit_speed import machine  # noqa: E402  (shared helper of the benchmark scripts)

import bayesplit  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE / "porian2024"
KEYS = ["source_file", "dataset", "hparams", "warmup", "decay", "param_count", "val"]
BUDGETS = np.geomspace(1e17, 1e19, 5)
LEVEL = 0.9


def configurations() -> pd.DataFrame:
    """The authors' ``basic`` fit per configuration: the published a to compare with."""
    fits = pd.read_csv(DATA / "fit_results.csv")
    return fits[fits["fit"] == "basic"][[*KEYS, "n_exponent"]].reset_index(drop=True)


def run_table(points: pd.DataFrame) -> pd.DataFrame:
    """One configuration's points as a bayesplit run table."""
    return pd.DataFrame(
        {
            "run_id": [f"N{n:.0f}" for n in points["N"]],
            "params": points["N"].to_numpy(dtype=float),
            "pretrain_tokens": points["D"].to_numpy(dtype=float),
            "spec_tokens": 0.0,
            "eval_domain": points["dataset"].to_numpy(),
            "loss": points["loss"].to_numpy(dtype=float),
            "seed": 0,
            # the checkpoint: tokens seen, which tells a run's rows apart
            "step": points["D"].round().astype("int64").to_numpy(),
        }
    )


def config_runs(cfg: pd.Series, points: pd.DataFrame) -> pd.DataFrame:
    """The run table of the configuration ``cfg`` (a row of :func:`configurations`)."""
    mask = np.logical_and.reduce([points[k].to_numpy() == cfg[k] for k in KEYS])
    return run_table(points[mask])


def exponent(post) -> np.ndarray:
    """a in N* ∝ C^a per draw: β / (α + β) for L = E + A·N^-α + B·D^-β at C = 6·N·D."""
    d = post.draws(["alpha", "beta"])
    return d["beta"][:, 0] / (d["alpha"][:, 0] + d["beta"][:, 0])


def label(cfg: pd.Series) -> str:
    return (
        f"{cfg['dataset']} {cfg['hparams']} hparams, {cfg['warmup']} warmup, "
        f"{cfg['decay']} decay, {cfg['param_count']} N, {cfg['val']} loss"
    )


def evaluate(cfg: pd.Series, points: pd.DataFrame, draws: int, seed: int) -> dict:
    runs = config_runs(cfg, points)
    start = time.perf_counter()
    post = bayesplit.fit(
        runs, "chinchilla", chains=4, draws=draws, warmup=draws, seed=seed, progress=False
    )
    fit_s = time.perf_counter() - start
    a = exponent(post)
    d = post.draws(["alpha", "beta"])
    lo, med, hi = np.quantile(a, [(1 - LEVEL) / 2, 0.5, (1 + LEVEL) / 2])
    front = bayesplit.frontier(post, BUDGETS, force=True)
    slope = float(np.polyfit(np.log(front["budget"]), np.log(front["params"]), 1)[0])
    published = float(cfg["n_exponent"])
    return {
        "configuration": label(cfg),
        "rows": len(runs),
        "model sizes": int(runs["run_id"].nunique()),
        "published a": published,
        "a median": float(med),
        "a lo": float(lo),
        "a hi": float(hi),
        "published in 90%": bool(lo <= published <= hi),
        "frontier slope": slope,
        "alpha median": float(np.median(d["alpha"][:, 0])),
        "beta median": float(np.median(d["beta"][:, 0])),
        "gate": "passed" if post.ok else "; ".join(post.diagnostics.failures),
        "fit (s)": round(fit_s, 1),
        "draws": draws,
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        ).stdout.strip(),
    }


def plot(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for decay, marker in (("kaplan", "o"), ("chinchilla", "s"), ("const", "^")):
        g = df[df["configuration"].str.contains(f"{decay} decay")]
        ax.errorbar(
            g["published a"],
            g["a median"],
            yerr=[g["a median"] - g["a lo"], g["a hi"] - g["a median"]],
            fmt=marker,
            capsize=3,
            label=f"{decay} decay",
        )
    lim = [0.4, 0.92]
    ax.plot(lim, lim, color="grey", lw=1, ls="--", label="y = x")
    ax.set(
        xlim=lim,
        ylim=lim,
        xlabel="published a (IsoFLOP analysis)",
        ylabel=f"bayesplit a = β/(α+β), median and {LEVEL:.0%} interval",
        title="Porian et al. 2024: N* ∝ C^a, 15 configurations",
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _decay(configuration: str) -> str:
    return configuration.split(" decay")[0].rsplit(" ", 1)[-1]


def report(df: pd.DataFrame) -> str:
    draws = int(df["draws"].iloc[0])
    commit = df["commit"].iloc[0]
    notes: list[str] = []
    gate = []
    for g in df["gate"]:
        if g != "passed":
            notes.append(g)
        gate.append("passed" if g == "passed" else f"failed ({len(notes)})")
    table = pd.DataFrame(
        {
            "configuration": df["configuration"],
            "rows (sizes)": [
                f"{r} ({s})" for r, s in zip(df["rows"], df["model sizes"], strict=True)
            ],
            "published a": df["published a"].map("{:.3f}".format),
            "bayesplit a [90%]": [
                f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
                for m, lo, hi in zip(df["a median"], df["a lo"], df["a hi"], strict=True)
            ],
            "published inside": df["published in 90%"].map({True: "yes", False: "no"}),
            "frontier slope": df["frontier slope"].map("{:.3f}".format),
            "gate": gate,
        }
    )
    diff = df["a median"] - df["published a"]
    by_decay = (
        df.assign(decay=df["configuration"].map(_decay), diff=diff, width=df["a hi"] - df["a lo"])
        .groupby("decay", sort=False)
        .agg(
            configurations=("diff", "size"),
            covered=("published in 90%", "sum"),
            median_diff=("diff", "median"),
            width=("width", "median"),
        )
        .reset_index()
        .rename(
            columns={
                "decay": "learning-rate decay",
                "covered": f"published inside {LEVEL:.0%}",
                "median_diff": "median of (bayesplit − published)",
                "width": "median interval width",
            }
        )
    )
    rank = np.corrcoef(df["published a"].rank(), df["a median"].rank())[0, 1]
    lines = [
        "# External check: Porian et al. 2024's compute-optimal exponents",
        "",
        f"Command: `python experiments/external/porian2024_exponent.py --draws {draws}` "
        f"(fits: {df['fit (s)'].sum() / 60:.1f} min in all)  ",
        f"Machine: {machine()}; code at commit {commit}.  ",
        "Data: `experiments/external/porian2024/` (MIT; Porian, Wortsman, Jitsev, Schmidt, "
        "Carmon, NeurIPS 2024; SOURCE.md).",
        "",
        "Per configuration: the `chinchilla` law fitted to its IsoFLOP points (one domain; the "
        f"rows of a model size share a run), 4 chains × {draws} draws, default priors. "
        "`published a`: the authors' IsoFLOP estimate of a in N* ∝ C^a (`fit_results.csv`, "
        "`basic`). `bayesplit a`: β / (α + β) per draw, the exponent of N* for the fitted law, "
        f"median and {LEVEL:.0%} credible interval. `frontier slope`: d log N / d log C of the "
        "plans `bayesplit.frontier` returns at 5 budgets from 1e17 to 1e19 FLOPs (inside the "
        "data), i.e. what the allocator would recommend.",
        "",
        table.to_markdown(index=False, disable_numparse=True),
        "",
        f"Published a inside the {LEVEL:.0%} interval: {int(df['published in 90%'].sum())} of "
        f"{len(df)}. |bayesplit − published|: median {diff.abs().median():.3f}, worst "
        f"{diff.abs().max():.3f}. Rank correlation of the medians with the published values: "
        f"{rank:.2f}. Frontier slope minus median a: at most "
        f"{(df['frontier slope'] - df['a median']).abs().max():.3f}.",
        "",
        "By learning-rate schedule:",
        "",
        by_decay.to_markdown(index=False, floatfmt=".3f"),
        "",
        "Gate failures (the fits are reported regardless):",
        "",
        *[f"{i}. {g}" for i, g in enumerate(notes, 1)],
        "",
        "Figure: `docs/assets/porian2024_exponent.png` (shown in the docs' Evidence page).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--configs", default="", help="comma-separated row numbers (default: all)")
    ap.add_argument("--report-only", action="store_true", help="rewrite the .md from the .csv")
    args = ap.parse_args()
    csv = HERE / "porian2024_exponent.csv"
    if args.report_only:
        df = pd.read_csv(csv)
        (HERE / "porian2024_exponent.md").write_text(report(df))
        return
    cfgs = configurations()
    if args.configs:
        cfgs = cfgs.iloc[[int(i) for i in args.configs.split(",")]]
    points = pd.read_csv(DATA / "isoflop_points.csv")
    rows = []
    for i, (_, cfg) in enumerate(cfgs.iterrows()):
        rows.append(evaluate(cfg, points, args.draws, args.seed))
        r = rows[-1]
        print(
            f"[{i + 1}/{len(cfgs)}] {r['configuration']}: published {r['published a']:.3f}, "
            f"bayesplit {r['a median']:.3f} [{r['a lo']:.3f}, {r['a hi']:.3f}], "
            f"frontier {r['frontier slope']:.3f}, {r['gate']} ({r['fit (s)']} s)",
            flush=True,
        )
    df = pd.DataFrame(rows)
    if not args.configs:
        df.to_csv(csv, index=False)
        plot(df, HERE.parents[1] / "docs" / "assets" / "porian2024_exponent.png")
        (HERE / "porian2024_exponent.md").write_text(report(df))


if __name__ == "__main__":
    main()
