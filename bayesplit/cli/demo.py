"""`bayesplit demo`: the main job on bundled data, end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from bayesplit.cli._common import console, emit_json
from bayesplit.cli.core import diagnostics_lines, params_json, print_params, step


def demo_cmd(
    out_dir: Annotated[
        Path, typer.Option("--out-dir", help="Where the posterior (and later the report) go.")
    ] = Path("bayesplit-demo"),
    chains: int = 4,
    draws: int = 1000,
    warmup: int = 1000,
    seed: int = 0,
    budget: Annotated[
        str, typer.Option("--budget", help="Compute of the decision the demo answers (FLOPs).")
    ] = "1e22",
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Fit the bundled Gadre et al. 2024 runs, predict held-out models, allocate a budget,
    suggest the next runs and write a report."""
    from bayesplit.datasets import gadre2024
    from bayesplit.fitting import fit

    show = not json_out
    runs = gadre2024(split="fit")
    heldout = gadre2024(split="heldout")
    if show:
        console.print(
            f"[bold]bayesplit demo[/bold]: {runs['run_id'].nunique()} RedPajama models ≤ 412M params × "
            f"{runs['eval_domain'].nunique()} eval domains (Gadre et al. 2024)"
        )
    with step(f"fitting hierarchical chinchilla ({chains} chains × {draws} draws)", enabled=show):
        post = fit(
            runs, "chinchilla", chains=chains, draws=draws, warmup=warmup, seed=seed, progress=False
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    post.save(out_dir / "posterior.nc")

    preds = []
    for _, r in heldout.iterrows():
        ds = post.predict(r["params"], r["pretrain_tokens"], domain=r["eval_domain"], seed=seed)
        s = ds.isel(domain=0, point=0)
        preds.append(
            {
                "run_id": r["run_id"],
                "eval_domain": r["eval_domain"],
                "params": r["params"],
                "pretrain_tokens": r["pretrain_tokens"],
                "observed": r["loss"],
                "median": float(s["median"]),
                "credible": [float(s["credible_lo"]), float(s["credible_hi"])],
                "predictive": [float(s["predictive_lo"]), float(s["predictive_hi"])],
            }
        )
    for p in preds:
        p["rel_error"] = (p["median"] - p["observed"]) / p["observed"]
        p["inside_predictive"] = p["predictive"][0] <= p["observed"] <= p["predictive"][1]

    from bayesplit.allocation import allocate
    from bayesplit.cli.core import parse_count
    from bayesplit.design import suggest
    from bayesplit.reporting import write_report

    target = parse_count(budget)
    # the decision commands refuse a posterior that failed its gate; the demo says so and
    # goes on, so that a reader sees every step
    force = not post.diagnostics.ok
    with step(f"allocating {target:.3g} FLOPs (posterior mean objective)", enabled=show):
        alloc = allocate(post, budget=target, force=force)
    with step("suggesting the next 4 runs (value for the decision per FLOP)", enabled=show):
        sug = suggest(post, budget=target, n=4, force=force, seed=seed)
    with step("writing the report", enabled=show):
        report = write_report(
            post, out_dir / "report.html", budget=target, runs=heldout, force=force
        )
    decision = alloc.to_dict()
    suggestions = sug.to_list()

    if json_out:
        emit_json(
            {
                "law": post.law.name,
                "diagnostics": post.diagnostics.summary(),
                "params": params_json(post),
                "heldout": preds,
                "allocation": decision,
                "suggestions": suggestions,
                "posterior": str(out_dir / "posterior.nc"),
                "report": str(report),
            }
        )
        return
    print_params(post)
    for line in diagnostics_lines(post.diagnostics):
        console.print(line)
    table = Table(
        title="held-out models (never seen by the fit): predicted vs measured loss, 90% bands"
    )
    for c in (
        "model",
        "N",
        "D",
        "domain",
        "measured",
        "median",
        "credible (law)",
        "predictive (new run)",
        "error",
    ):
        table.add_column(c, justify="left" if c in ("model", "domain") else "right")
    for p in preds:
        if p["eval_domain"] not in ("c4_val", "paloma_dolma_100_programing_languages", "openlm"):
            continue
        table.add_row(
            p["run_id"].replace("rpj-", ""),
            f"{p['params']:.3g}",
            f"{p['pretrain_tokens']:.3g}",
            p["eval_domain"],
            f"{p['observed']:.3f}",
            f"{p['median']:.3f}",
            f"{p['credible'][0]:.3f}–{p['credible'][1]:.3f}",
            f"{p['predictive'][0]:.3f}–{p['predictive'][1]:.3f}",
            f"{p['rel_error']:+.2%}",
        )
    console.print(table)
    err = np.abs([p["rel_error"] for p in preds])
    cover = np.mean([p["inside_predictive"] for p in preds])
    console.print(
        f"all {len(preds)} held-out (model, domain) pairs: median |error| {np.median(err):.2%}, predictive coverage {cover:.0%}"
    )
    plan, obj = decision["plan"], decision["objective"]
    console.print(
        f"[bold]decision for {target:.3g} FLOPs[/bold] (mean loss over {len(alloc.domains)} domains): "
        f"N = {plan['params']:.3g} params, D = {plan['pretrain_tokens']:.3g} tokens, "
        f"pretrain fraction {decision['pretrain_fraction']:.2f}; objective {obj['median']:.3f} "
        f"[{obj['credible'][0]:.3f}, {obj['credible'][1]:.3f}]; optimal N across draws "
        f"{decision['optimum_distribution']['params'][0]:.3g}–{decision['optimum_distribution']['params'][2]:.3g}"
    )
    for a in decision["alternatives"]:
        console.print(
            f"  vs {a['name']}: P(plan better) {a['p_better']:.0%}, expected regret {a['expected_regret']:.4f}"
        )
    table = Table(title="next runs worth most to this decision per FLOP")
    for c in ("N", "D", "D'", "domain", "cost (FLOPs)", "predicted loss (90%)"):
        table.add_column(c, justify="left" if c == "domain" else "right")
    for r in suggestions:
        pl = r["predicted_loss"]
        table.add_row(
            f"{r['params']:.3g}",
            f"{r['pretrain_tokens']:.3g}",
            f"{r['spec_tokens']:.3g}",
            r["train_domain"] or "all (general)",
            f"{r['cost_flops']:.3g}",
            f"{pl['median']:.3f} [{pl['predictive'][0]:.3f}, {pl['predictive'][1]:.3f}]",
        )
    console.print(table)
    console.print(f"posterior written to {out_dir / 'posterior.nc'}; report: {report}")
