"""`bayesplit simulate`: campaigns against a known truth, to see which way of choosing runs pays."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from bayesplit.cli._common import check_output_path, check_plot_path, console, emit_json, given
from bayesplit.cli.core import (
    LawModule,
    _import_law_modules,
    _names_csv,
    parse_counts,
    parse_positive,
)
from bayesplit.errors import BayesplitError


def load_truth_arg(spec: str, domains: list[str] | None = None, force: bool = False):
    """``--truth``: a YAML file, a posterior (.nc, its medians; one that failed its gate
    only with ``force``) or ``example:LAW``."""
    from bayesplit.truth import example_truth, load_truth, truth_from_posterior

    if not spec.strip():  # Path("") is the current folder: "ground truth . is not a file"
        raise BayesplitError("--truth is empty: give a truth file, a posterior .nc or example:LAW")
    if spec.startswith("example:"):
        return example_truth(spec.split(":", 1)[1], tuple(domains or ("web", "code")))
    if domains:
        # a file names its own domains; ignoring the option silently would mislead
        raise BayesplitError(
            "--domains only applies to an example:LAW truth; the truth file names its own"
        )
    path = Path(spec)
    if path.suffix.lower() == ".nc":  # POST.NC was read as YAML
        from bayesplit.posterior import load_posterior

        post = load_posterior(path)
        truth = truth_from_posterior(post, "median", force=force)
        note = post.diagnostics.forced_note("its medians, the truth here,")
        if note is not None:  # forced: every campaign is scored against a failed fit
            console.print(f"[yellow]! --truth {escape(str(path))}: {escape(note)}[/yellow]")
        return truth
    return load_truth(path)


def _grid(value: str | None, flag: str) -> list[float] | None:
    """One axis of the candidate grid, ascending; a value given twice is a typo, not a size
    (it made the seed design repeat a run, refused as a duplicate run-table row)."""
    if given(value, flag) is None:
        return None
    values = sorted(parse_counts(value, flag))
    twice = sorted({v for a, v in zip(values, values[1:], strict=False) if a == v})
    if twice:
        raise BayesplitError(f"{flag} lists {', '.join(f'{v:.3g}' for v in twice)} more than once")
    return values


def default_config(truth, budget: float, experiment_budget: float, **grids):
    """A campaign around the truth's reference scale: 5 sizes, 3 D, 3 D'; seed = 2 smallest."""
    from bayesplit.simulation import CampaignConfig
    from bayesplit.truth import factorial_design

    ref = truth.reference
    params = grids.pop("params") or [ref.params * f for f in (0.1, 0.25, 0.6, 1.5, 4.0)]
    tokens = grids.pop("pretrain_tokens") or [ref.tokens * f for f in (0.2, 0.8, 3.2)]
    spec = grids.pop("spec_tokens") or [ref.tokens * f for f in (0.1, 0.4, 1.6)]
    if len(params) < 2 or len(tokens) < 2:
        raise BayesplitError("the candidate grid needs at least 2 model sizes and 2 values of D")
    seed = factorial_design(params[:2], tokens[:2], spec[:1], truth.domains)
    return CampaignConfig(
        budget=budget,
        experiment_budget=experiment_budget,
        params=params,
        pretrain_tokens=tokens,
        spec_tokens=spec,
        seed_design=seed,
        **grids,
    )


def simulate_cmd(
    truth: Annotated[
        str,
        typer.Option(
            "--truth", help="Ground truth: YAML file, posterior .nc (its medians) or example:LAW."
        ),
    ],
    budget: Annotated[str, typer.Option("--budget", help="Target compute of the decision.")],
    experiment_budget: Annotated[
        str, typer.Option("--experiment-budget", help="FLOPs each campaign may spend on runs.")
    ],
    policies: Annotated[
        str,
        typer.Option(
            help="Comma list of: active (suggest's default, --objective regret), "
            "active-decision (--objective decision), grid, random, cost-random, uncertainty."
        ),
    ] = "active,grid,random",
    seeds: Annotated[int, typer.Option(help="Campaigns per policy (seeds 0..n-1).")] = 1,
    params: Annotated[
        str | None,
        typer.Option(
            help="Candidate model sizes N, comma list (default: 0.1, 0.25, 0.6, 1.5 and 4 × "
            "the truth's reference N, a power of ten; for a posterior truth, give the sizes "
            "of your own runs)."
        ),
    ] = None,
    pretrain_tokens: Annotated[
        str | None,
        typer.Option(help="Candidate D values (default: 0.2, 0.8, 3.2 × the reference D)."),
    ] = None,
    spec_tokens: Annotated[
        str | None,
        typer.Option(help="Candidate D' values (default: 0.1, 0.4, 1.6 × the reference D)."),
    ] = None,
    domains: Annotated[
        str | None, typer.Option(help="Domains of an example:LAW truth (default web,code).")
    ] = None,
    batch: Annotated[int, typer.Option(help="Runs per round.")] = 4,
    rounds: Annotated[int, typer.Option(help="Most rounds after the seed design.")] = 4,
    stop_regret: Annotated[
        float | None,
        typer.Option(
            "--stop-regret",
            help="End a campaign once its fit expects the plan within this share of the "
            "optimum (e.g. 0.01), as bayesplit loop --stop-regret does.",
        ),
    ] = None,
    chains: Annotated[int, typer.Option(help="NUTS chains per refit.")] = 2,
    draws: Annotated[int, typer.Option(help="NUTS draws per chain per refit.")] = 200,
    warmup: Annotated[int, typer.Option(help="NUTS warmup per refit.")] = 200,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write every round of every campaign (.csv).")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Save regret vs compute spent and interval coverage by round, per policy "
            "(.png, .pdf, .svg, ...).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Use a --truth posterior that failed its diagnostics (its medians)."
        ),
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout.")
    ] = False,
    progress: Annotated[
        bool,
        typer.Option(
            "--progress/--no-progress",
            help="Each round on stderr (a status line on a terminal, one line per round in a log).",
        ),
    ] = True,
    law_module: LawModule = None,
) -> None:
    """Simulate campaigns (fit → pick runs → observe → refit) against a known truth.

    With grid among the policies, each other policy's compute to reach 1% regret is also
    given relative to grid's, with a paired bootstrap interval over seeds. In --json,
    JSON having no infinity, a compute of null means never (the share that got there is
    `reached`); a ratio is null where the policy's median compute is null (inf in the
    table: it did not get there in most seeds), whether or not grid's is.
    """
    from bayesplit._io import atomic_path
    from bayesplit.simulation import (
        MAX_SEEDS,
        POLICIES,
        compare_policies,
        simulate,
        summarize,
    )

    _import_law_modules(law_module)
    names = _names_csv(policies, "--policies")
    bad = [p for p in names if p not in POLICIES]
    if bad or not names:
        raise BayesplitError(
            f"unknown policy {bad[0] if bad else policies!r}; choose from {', '.join(POLICIES)}"
        )
    twice = sorted({p for p in names if names.count(p) > 1})
    if twice:
        raise BayesplitError(f"--policies names {', '.join(twice)} twice")
    if seeds < 1 or batch < 1 or rounds < 0:
        raise BayesplitError("--seeds and --batch must be ≥ 1 and --rounds ≥ 0")
    if seeds > MAX_SEEDS:
        raise BayesplitError(f"--seeds must be at most {MAX_SEEDS:,}, got {seeds}")
    # a truth file given as --out was overwritten by the campaign table
    truth_file = None if truth.startswith("example:") or not truth.strip() else truth
    if out is not None:
        check_output_path(out, suffixes={".csv"}, inputs={"--truth": truth_file})
    check_plot_path(plot, inputs={"--truth": truth_file})
    target = parse_positive(budget, "--budget")
    spend = parse_positive(experiment_budget, "--experiment-budget")
    gt = load_truth_arg(truth, _names_csv(domains, "--domains"), force=force)
    config = default_config(
        gt,
        target,
        spend,
        params=_grid(params, "--params"),
        pretrain_tokens=_grid(pretrain_tokens, "--pretrain-tokens"),
        spec_tokens=_grid(spec_tokens, "--spec-tokens"),
        batch=batch,
        max_rounds=rounds,
        stop_regret=stop_regret,
        chains=chains,
        draws=draws,
        warmup=warmup,
    )
    total = len(names) * seeds
    # a status line redraws in place on a terminal; in a log (stderr a file, nohup) it
    # printed nothing until the end, so there each round is a line
    status_line = console.is_terminal
    shown = console.status(f"simulating {total} campaign(s)") if status_line else nullcontext()
    with shown as status:
        if json_out or not progress:
            report = None
        elif status_line:
            report = status.update
        else:
            report = lambda line: console.print(escape(line))  # noqa: E731
        history = simulate(gt, config, policies=names, seeds=range(seeds), progress=report)
    if plot is not None:  # first: drawing can fail in more ways than writing a table
        from bayesplit.plots import plot_campaigns, save_figure

        save_figure(plot_campaigns(history, title=f"{gt.law.name} truth"), plot)
    if out is not None:
        with atomic_path(out) as tmp:
            history.to_csv(tmp, index=False)
    summary = summarize(history)
    # each other policy's compute to 1% regret over grid's, paired by seed (the test)
    vs_grid = compare_policies(history, "grid") if "grid" in names and len(names) > 1 else None
    if json_out:
        emit_json(
            {
                "truth": gt.to_dict(),
                "budget": config.budget,
                "experiment_budget": config.experiment_budget,
                "level": config.level,  # of the rounds' intervals and coverage
                "summary": summary.to_dict("records"),
                "vs_grid": [] if vs_grid is None else vs_grid.to_dict("records"),
                "rounds": history.to_dict("records"),
            }
        )
        return
    table = Table(title=f"campaigns against {gt.law.name} truth, target {config.budget:.3g} FLOPs")
    cols = ["policy", "seeds", "FLOPs to ≤1% regret", "final regret", "|pred error|"]
    cols += ["90% coverage"] + (["vs grid [90% CI]"] if vs_grid is not None else [])
    for col in cols:
        table.add_column(col, justify="left" if col == "policy" else "right")
    ratios = vs_grid.set_index("policy") if vs_grid is not None else None
    for r in summary.to_dict("records"):
        row = [
            r["policy"],
            str(r["seeds"]),
            f"{r['compute_to_reach']:.3g}",
            f"{r['final_regret']:.2%}",
            f"{r['final_pred_error']:.2%}",
            f"{r['coverage']:.0%}",
        ]
        if ratios is not None:
            row.append(_ratio_cell(ratios.loc[r["policy"]]) if r["policy"] in ratios.index else "1")
        table.add_row(*row)
    console.print(table)
    if ratios is not None:
        console.print(
            "vs grid: median compute to ≤1% regret over grid's (paired over seeds; 0 = grid "
            "never got there in most seeds, nan = neither did)"
        )
    failed = int((~history["gate_ok"].astype(bool)).sum())
    if failed:
        console.print(
            f"note: {failed} of {len(history)} fits failed the diagnostics gate (short "
            f"chains, {chains} × {draws} draws, and early designs too small to identify the "
            "law) and were used anyway; the coverage column is the check on their intervals"
        )
    if out is not None:
        console.print(f"every round written to {escape(str(out))}")
    if plot is not None:
        console.print(f"figure written to {escape(str(plot))}")


def _ratio_cell(r) -> str:
    """``0.68 [0.41, 1.2]``; a single seed has no interval worth printing."""
    if r["seeds"] < 2 or not np.isfinite(r["ratio_lo"]):
        return f"{r['ratio']:.2g}"
    return f"{r['ratio']:.2g} [{r['ratio_lo']:.2g}, {r['ratio_hi']:.2g}]"


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_cmd)
