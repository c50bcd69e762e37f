"""Decision commands: allocate, frontier, report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bayesplit._parse import percent, probability, share, share_range
from bayesplit.cli._common import (
    LADDER_HELP,
    Level,
    check_output_path,
    check_plot_path,
    console,
    emit_json,
    given,
)
from bayesplit.cli.core import (
    JsonFlag,
    LawModule,
    _csv,
    _import_law_modules,
    _names_csv,
    load_runs_arg,
    parse_count,
    parse_positive,
    step,
)
from bayesplit.cli.suggest import parse_weights
from bayesplit.errors import BayesplitError

Budget = Annotated[str, typer.Option("--budget", help="Training compute in FLOPs, e.g. 1e21.")]
WEIGHTS_HELP = (
    "Domain weights of the objective, one per domain served, e.g. a=0.5,b=0.5 (default "
    "equal; 0 leaves a domain out)."
)
Trunk = Annotated[str, typer.Option(help="shared (one pretraining, K branches) or independent.")]
Risk = Annotated[str, typer.Option(help="mean, qNN (e.g. q90) or cvarNN (e.g. cvar90).")]
Tolerance = Annotated[
    float,
    typer.Option(
        help="Near-optimal ranges: pretraining shares (at the plan's N) and model sizes (at "
        "its split) whose risk objective is within this relative slack of the best "
        "(0.001 = 0.1%).",
    ),
]
Force = Annotated[
    bool, typer.Option("--force", help="Use a posterior that failed its diagnostics.")
]


def parse_limits(text: str | None) -> dict | None:
    """``a=1e9,b=2e9`` → {domain: tokens} (accepts 1.4B style counts)."""
    if given(text, "--max-spec-tokens") is None:
        return None
    out = {}
    for part in _csv(text, "--max-spec-tokens"):
        if "=" not in part:
            raise BayesplitError(f"--max-spec-tokens wants domain=tokens pairs, got {part!r}")
        k, v = part.rsplit("=", 1)  # a domain name may hold '=' ("数学=law=2")
        if not k.strip():
            raise BayesplitError(f"--max-spec-tokens: no domain name before '=' in {part!r}")
        if k.strip() in out:
            raise BayesplitError(f"--max-spec-tokens gives {k.strip()!r} twice")
        out[k.strip()] = parse_count(v, f"--max-spec-tokens {k.strip()}")
    return out


def _load_compare(path: Path | None, domains: list[str]) -> list | None:
    """The plans of a ``--compare`` file, each checked against ``domains``, every error
    naming the file."""
    from bayesplit._io import read_json
    from bayesplit.plan import Plan

    if path is None:
        return None
    if not path.exists():
        raise BayesplitError(f"no such plan file: {path}")
    if not path.is_file():
        raise BayesplitError(f"--compare {path} is not a file")
    try:
        data = read_json(path)  # a BOM is read, a key given twice refused
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, a repeated key
        raise BayesplitError(f"--compare {path}: not valid JSON ({exc})") from None
    plans = data if isinstance(data, list) else [data]
    for i, p in enumerate(plans):
        # an `allocate --json` output; {"plan": 5} is no plan ("'int' object is not a mapping")
        if isinstance(p, dict) and isinstance(p.get("plan"), dict):
            name = path.stem if len(plans) == 1 else f"{path.stem} #{i + 1}"
            plans[i] = {**p["plan"], "name": p.get("name", name)}
        elif isinstance(p, dict) and "plan" in p:
            plans[i] = None  # refused below
    if not plans or not all(isinstance(p, dict) for p in plans):
        raise BayesplitError(
            f"--compare {path}: want a plan object (or a list of them), e.g. the output of "
            "`bayesplit allocate --json`"
        )
    for i, p in enumerate(plans):
        try:  # here, where the file is known
            Plan.from_dict(p, domains)
        except BayesplitError as exc:
            where = f" plan #{i + 1}" if len(plans) > 1 else ""
            raise BayesplitError(f"--compare {path}{where}: {exc}") from None
    return plans


def allocate_cmd(
    posterior: Annotated[Path, typer.Argument(help="Posterior file from `bayesplit fit`.")],
    budget: Budget,
    trunk: Trunk = "shared",
    domains: Annotated[
        str | None, typer.Option(help="Comma-separated domains to serve (default all).")
    ] = None,
    weights: Annotated[str | None, typer.Option(help=WEIGHTS_HELP)] = None,
    params: Annotated[str | None, typer.Option("--params", help="Fix the model size N.")] = None,
    ladder: Annotated[
        str | None,
        typer.Option("--ladder", help=f"Restrict N to the sizes of a model ladder: {LADDER_HELP}."),
    ] = None,
    max_spec_tokens: Annotated[
        str | None,
        typer.Option("--max-spec-tokens", help="Unique domain tokens, e.g. a=2e9,b=5e8."),
    ] = None,
    repetitions: Annotated[
        float, typer.Option(help="Allowed passes over each domain's unique tokens.")
    ] = 1.0,
    risk: Risk = "mean",
    compare: Annotated[
        Path | None, typer.Option("--compare", help="JSON plan (or list of plans) to compare with.")
    ] = None,
    level: Level = 0.9,
    tolerance: Tolerance = 0.001,
    force: Force = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Save the loss-vs-split figure (.png, .pdf, .svg, ...)."),
    ] = None,
    json_out: JsonFlag = False,
    law_module: LawModule = None,
) -> None:
    """Split a compute budget between pretraining and specialization, with credible intervals."""
    from bayesplit.allocation import allocate
    from bayesplit.plots import save_figure
    from bayesplit.posterior import load_posterior

    _import_law_modules(law_module)
    # through a link, a figure named like an input overwrote it (the posterior, say)
    check_plot_path(plot, inputs={"POSTERIOR": posterior, "--compare": compare, "--ladder": ladder})
    post = load_posterior(posterior)
    limits = parse_limits(max_spec_tokens)
    if not (math.isfinite(repetitions) and repetitions > 0):
        # checked here too: without --max-spec-tokens the value would never be looked at
        raise BayesplitError(f"--repetitions must be a positive number, got {repetitions:g}")
    served = _names_csv(domains, "--domains")
    alloc = allocate(
        post,
        budget=parse_positive(budget, "--budget"),
        trunk=trunk,
        domains=served,
        weights=parse_weights(weights),
        params=parse_positive(given(params, "--params"), "--params")
        if params is not None
        else None,
        ladder=given(ladder, "--ladder"),  # "" was "no such model ladder: "
        max_spec_tokens=limits,
        repetitions=repetitions,
        risk=risk,
        # checked against the served domains; a --domains allocate refuses is said first
        compare=_load_compare(
            compare, served if served and set(served) <= set(post.domains) else post.domains
        ),
        level=level,
        tolerance=tolerance,
        force=force,
    )
    if plot is not None:
        save_figure(alloc.plot_split_curve(), plot)
    d = alloc.to_dict()
    if json_out:
        emit_json(d)
        return
    head, *rest = alloc.describe()
    # markup off: a domain name like "web[en]" would otherwise be read as a style tag
    console.print(head, style="bold", markup=False)
    for line in rest:
        console.print(line, markup=False, highlight=False)
    if d["alternatives"]:
        table = Table(title="alternatives")
        for c in ("alternative", "N", "D", "loss (median)", "P(plan better)", "expected regret"):
            table.add_column(c, justify="left" if c == "alternative" else "right")
        for a in d["alternatives"]:
            table.add_row(
                escape(a["name"]),
                f"{a['plan']['params']:.3g}",
                f"{a['plan']['pretrain_tokens']:.3g}",
                f"{a['objective']['median']:.4f}",
                probability(a["p_better"]),
                f"{a['expected_regret']:.4f} ({a['expected_regret_rel']:.2%})",
            )
        console.print(table)
    else:  # a law without D' at a fixed N: the budget fixes D, so there is no other plan
        console.print(
            "no alternatives: with N fixed and no split to choose, the budget fixes the plan"
        )
    for note in d["notes"]:
        console.print(f"[yellow]! {escape(note)}[/yellow]")


def frontier_cmd(
    posterior: Annotated[Path, typer.Argument(help="Posterior file from `bayesplit fit`.")],
    budgets: Annotated[
        str | None,
        typer.Option(
            "--budgets",
            help="LO:HI:COUNT (log-spaced) or a comma list (default: 9 budgets from the "
            "largest fitted run's compute, or the smallest plan of independent trunks if "
            "more, to 10,000x it).",
        ),
    ] = None,
    trunk: Trunk = "shared",
    weights: Annotated[str | None, typer.Option(help=WEIGHTS_HELP)] = None,
    risk: Risk = "mean",
    level: Level = 0.9,
    tolerance: Tolerance = 0.001,
    force: Force = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Save the frontier figure (.png, .pdf, .svg, ...)."),
    ] = None,
    json_out: JsonFlag = False,
    law_module: LawModule = None,
) -> None:
    """The optimal plan and its loss band across budgets."""
    from bayesplit.allocation import default_budgets, frontier, parse_budgets
    from bayesplit.plots import plot_frontier, save_figure
    from bayesplit.posterior import load_posterior

    _import_law_modules(law_module)
    check_plot_path(plot, inputs={"POSTERIOR": posterior})
    post = load_posterior(posterior)
    weights_map = parse_weights(weights)
    table = frontier(
        post,
        parse_budgets(budgets)
        if budgets is not None
        else default_budgets(post, trunk=trunk, weights=weights_map),
        trunk=trunk,
        weights=weights_map,
        risk=risk,
        level=level,
        tolerance=tolerance,
        force=force,
    )  # all the draws, as `allocate`: one budget, one plan, whichever command asks
    if plot is not None:
        save_figure(plot_frontier(table, level=level), plot)
    if json_out:
        emit_json(
            {
                "law": table.attrs["law"],  # as allocate --json says what it decided on
                "trunk": trunk,
                "risk": risk,
                "weights": table.attrs["weights"],
                "level": level,
                "tolerance": tolerance,
                "frontier": table.to_dict(orient="records"),
            }
        )
        return
    t = Table(title=f"frontier ({trunk} trunk, risk {risk})")
    near = f"within {percent(tolerance)}"
    columns = ("budget", "N", "D", "pretrain share", f"shares {near}", f"N {near}")
    for c in (*columns, f"loss ({percent(level)} credible)"):
        t.add_column(c, justify="right")
    for _, r in table.iterrows():
        t.add_row(
            f"{r['budget']:.3g}",
            f"{r['params']:.3g}",
            f"{r['pretrain_tokens']:.3g}",
            share(r["pretrain_fraction"]),  # 0.12% read "0%", outside its own range
            share_range(r["near_optimal_lo"], r["near_optimal_hi"]),
            f"{r['near_optimal_params_lo']:.3g}–{r['near_optimal_params_hi']:.3g}",
            f"{r['objective_median']:.4f} [{r['objective_lo']:.4f}, {r['objective_hi']:.4f}]",
        )
    console.print(t)
    for _, r in table.iterrows():
        for note in r["notes"]:
            console.print(f"[yellow]! {r['budget']:.3g} FLOPs: {escape(note)}[/yellow]")


def report_cmd(
    posterior: Annotated[Path, typer.Argument(help="Posterior file from `bayesplit fit`.")],
    budget: Budget,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="report.html (one self-contained file) or report.md (Markdown; its figures go to report_files/ beside it, or beside the file a symlink points to, a folder it replaces whole; one it did not write must be empty)",
        ),
    ],
    runs: Annotated[
        str | None,
        typer.Option("--runs", help="Runs to check predictions against (those not in the fit)."),
    ] = None,
    trunk: Trunk = "shared",
    weights: Annotated[str | None, typer.Option(help=WEIGHTS_HELP)] = None,
    risk: Risk = "mean",
    level: Level = 0.9,
    tolerance: Tolerance = 0.001,
    force: Force = False,
    json_out: JsonFlag = False,
    law_module: LawModule = None,
) -> None:
    """Write a report (decision, frontier, fit, diagnostics, checklist): one self-contained HTML file, or Markdown with its figures in <stem>_files/."""
    from bayesplit.posterior import load_posterior
    from bayesplit.reporting import report_folder, write_report

    _import_law_modules(law_module)
    check_output_path(
        out, suffixes={".html", ".htm", ".md"}, inputs={"POSTERIOR": posterior, "--runs": runs}
    )
    post = load_posterior(posterior)
    table = load_runs_arg(runs) if runs is not None else None
    with step(f"writing {out}", enabled=not json_out):
        write_report(
            post,
            out,
            budget=parse_positive(budget, "--budget"),
            runs=table,
            trunk=trunk,
            weights=parse_weights(weights),
            risk=risk,
            level=level,
            tolerance=tolerance,
            force=force,
        )
    if json_out:
        md = out.suffix.lower() == ".md"
        result = {"out": str(out), "format": "md" if md else "html"}
        if md:
            result["figures"] = str(report_folder(out))
        emit_json(result)


def register(app: typer.Typer) -> None:
    """Add the decision commands to the root app."""
    app.command("allocate")(allocate_cmd)
    app.command("frontier")(frontier_cmd)
    app.command("report")(report_cmd)
