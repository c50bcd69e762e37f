"""Core commands: laws, prior, fit, predict, compare, demo."""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bayesplit._parse import parse_count, percent
from bayesplit.cli._common import (
    Chains,
    Draws,
    Level,
    Seed,
    Warmup,
    check_output_path,
    console,
    emit_json,
    fmt,
)
from bayesplit.errors import BayesplitError


def parse_positive(text: str, option: str) -> float:
    """A count (``parse_count``) that must be finite and > 0, e.g. a budget in FLOPs."""
    value = parse_count(text, option)
    if not (math.isfinite(value) and value > 0):
        raise BayesplitError(f"{option} must be a positive number, got {text!r}")
    return value


def parse_counts(text: str, option: str) -> list[float]:
    """A comma list of counts (``1e6,2M``), each finite and > 0, in the order given."""
    items = text.split(",")
    if len(items) > 1 and any(not t.strip() for t in items):  # "2560,,5120" lost an item
        raise BayesplitError(
            f"{option} has an empty item in {text!r}; give numbers separated by single commas"
        )
    values = [parse_count(t, option) for t in items if t.strip()]
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise BayesplitError(f"{option} wants positive numbers separated by commas, got {text!r}")
    return values


def load_runs_arg(spec: str):
    """``--runs`` takes a file/store path or ``bundled:NAME`` for a bundled data set."""
    from bayesplit.runs import load_runs

    if not spec.strip():  # "" was read as the folder "."; the option is required
        raise BayesplitError("--runs is empty: give a run table file, a store or bundled:NAME")
    return load_runs(spec)


@contextlib.contextmanager
def step(message: str, enabled: bool = True):
    """A spinner while a step runs, then a ✓ line with its duration (stderr)."""
    if not enabled:
        yield
        return
    start = time.perf_counter()
    with console.status(message):
        yield
    console.print(
        f"[green]✓[/green] {escape(message)} [dim]({time.perf_counter() - start:.1f} s)[/dim]"
    )


def _csv(text: str | None, option: str) -> list[str] | None:
    """A comma list of names typed on the command line (None when not given; never empty).

    An empty item (``web,``, ``,web``, ``web,,code``) is refused, not dropped: it is a
    name left out (``--domains "web,$D"`` with ``D`` unset).
    """
    if text is None:
        return None
    items = [t.strip() for t in text.split(",")]
    if not any(items):
        raise BayesplitError(f"{option}: empty list {text!r}: give names separated by commas")
    if not all(items):
        raise BayesplitError(
            f"{option} has an empty item in {text!r}; give names separated by single commas"
        )
    return items


def _names_csv(text: str | None, option: str) -> list[str] | None:
    """:func:`_csv` of names, each once: the API's "domains name web more than once" did
    not say which option held the repeat."""
    items = _csv(text, option)
    twice = sorted({v for v in items or [] if items.count(v) > 1})
    if twice:
        raise BayesplitError(f"{option} names {', '.join(twice)} more than once")
    return items


def _per_domain(text: str | None) -> list[str] | None:
    """``--per-domain``: parameter names, or ``none`` for a law whose every parameter is
    shared by the domains (an empty list was refused as an empty option, so the CLI could
    not fit the fully shared law ``per_domain=[]`` fits in Python)."""
    if text is not None and text.strip().lower() == "none":
        return []
    return _names_csv(text, "--per-domain")


def _run_effect(text: str):
    choices = {"auto": "auto", "on": True, "off": False}
    if text not in choices:
        raise BayesplitError(f"--run-effect must be auto, on or off, got {text!r}")
    return choices[text]


def _model_options(domains: str | None, per_domain: str | None, run_effect: str) -> dict:
    """The model options that prior and compare pass on as fit takes them."""
    return {
        "domains": _names_csv(domains, "--domains"),
        "per_domain": _per_domain(per_domain),
        "run_effect": _run_effect(run_effect),
    }


def _import_law_modules(modules: list[str] | None) -> None:
    from bayesplit.laws import import_law_module

    for m in modules or []:
        import_law_module(m)


def _warn_before_fitting(table, law: str, domains, per_domain) -> None:
    """Say before the sampler runs (minutes) what the design alone says the gate will fail on."""
    from bayesplit.diagnostics import design_problems
    from bayesplit.laws import get_law
    from bayesplit.model import prepare

    law_obj = get_law(law)
    if per_domain is not None:
        law_obj = law_obj.with_pooling(per_domain)
    _, data = prepare(table, law_obj, domains=domains)
    for problem in design_problems(law_obj, data.rows):
        console.print(
            f"[yellow]![/yellow] {escape(problem)}: the fit will fail its diagnostics gate"
        )


def diagnostics_lines(diag) -> list[str]:
    from bayesplit.diagnostics import ess_text, r_hat_text

    status = "[green]passed[/green]" if diag.ok else "[red]FAILED[/red]"
    # one chain has no R-hat (it compares chains): "n/a" reads better than "nan"
    r_hat = (
        "n/a"
        if math.isnan(diag.r_hat_max)
        else r_hat_text(diag.r_hat_max, diag.thresholds.r_hat_max)
    )
    lines = [
        f"diagnostics {status}: R-hat max {r_hat}, bulk ESS min {ess_text(diag.ess_bulk_min)}, "
        f"tail ESS min {ess_text(diag.ess_tail_min)}, divergences {diag.divergences}, "
        f"BFMI min {diag.bfmi_min:.2f}"
    ]
    lines += [f"  [red]✗[/red] {escape(f)}" for f in diag.failures]
    lines += [f"  [yellow]![/yellow] {escape(w)}" for w in diag.warnings]
    return lines


def params_json(posterior) -> dict:
    table = posterior.summary(level=0.9)
    return {
        name: {"median": r["median"], "q05": r["q05"], "q95": r["q95"]}
        for name, r in table.iterrows()
    }


def print_params(posterior) -> None:
    table = Table(
        title=escape(f"{posterior.law.name}: {posterior.law.formula}"), title_justify="left"
    )
    for col in ("parameter", "median", "q05", "q95"):
        table.add_column(col, justify="left" if col == "parameter" else "right")
    for name, r in posterior.summary(level=0.9).iterrows():
        table.add_row(escape(str(name)), fmt(r["median"]), fmt(r["q05"]), fmt(r["q95"]))
    console.print(table)
    ref = posterior.spec.reference
    console.print(
        f"[dim]scaled inputs: n = N / {ref.params:.0e}, d = D / {ref.tokens:.0e}, d' = D' / {ref.tokens:.0e}[/dim]"
    )


LawModule = Annotated[
    list[str] | None,
    typer.Option("--law-module", help="Import a module that registers extra laws."),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
Domains = Annotated[
    str | None,
    typer.Option("--domains", help="Comma-separated eval domains to fit (default all)."),
]
PerDomain = Annotated[
    str | None,
    typer.Option(
        "--per-domain",
        help="Comma-separated parameters that vary by domain (default: the law's); none: "
        "every parameter shared by the domains.",
    ),
]
RunEffect = Annotated[str, typer.Option("--run-effect", help="auto, on or off.")]
Device = Annotated[
    str,
    typer.Option(
        help="auto, cpu or gpu (cuda is the same). auto takes the GPU only where it steps the "
        "chains at least twice as fast as the CPU's cores (many chains, or ~10^4 rows and up)."
    ),
]


def laws_cmd(json_out: JsonFlag = False, law_module: LawModule = None) -> None:
    """List the laws with their formulas, pooling and priors."""
    from bayesplit.laws import available_laws, get_law

    _import_law_modules(law_module)
    laws = [get_law(n).describe() for n in available_laws()]
    if json_out:
        emit_json({"laws": laws})
        return
    for law in laws:
        console.print(f"[bold]{escape(law['name'])}[/bold]  {escape(law['formula'])}")
        console.print(f"  {escape(law['description'])}")
        console.print(
            f"  per domain: {', '.join(law['per_domain']) or '—'};  shared: {', '.join(law['shared']) or '—'}"
        )
        for text in law["priors"].values():
            console.print(f"  [dim]{escape(text)}[/dim]")
        console.print()


def prior_cmd(
    runs: Annotated[
        str, typer.Option("--runs", help="Run table (CSV, Parquet, JSONL, store) or bundled:NAME.")
    ],
    law: Annotated[
        str, typer.Option("--law", help="Law name (see `bayesplit laws`).")
    ] = "chinchilla",
    draws: Annotated[int, typer.Option(help="Prior draws.")] = 500,
    seed: Seed = 0,
    level: Level = 0.9,
    domains: Annotated[
        str | None,
        typer.Option("--domains", help="Comma-separated eval domains to check (default all)."),
    ] = None,
    per_domain: PerDomain = None,
    run_effect: RunEffect = "auto",
    json_out: JsonFlag = False,
    law_module: LawModule = None,
) -> None:
    """Prior predictive check: do the priors cover the observed losses?"""
    from bayesplit.prior import prior_predictive, prior_summary

    _import_law_modules(law_module)
    ds = prior_predictive(
        load_runs_arg(runs),
        law,
        draws=draws,
        seed=seed,
        level=level,
        **_model_options(domains, per_domain, run_effect),
    )
    summary = prior_summary(ds)
    if json_out:
        emit_json(
            {
                "law": law,
                "level": level,
                "inside": float(ds["inside"].mean()),
                "domains": summary.to_dict(orient="index"),
            }
        )
        return
    table = Table(title=escape(f"prior predictive check, {law}, {percent(level)} band"))
    for col in ("domain", "rows", "observed range", "prior band (row medians)", "inside"):
        table.add_column(col)
    for dom, r in summary.iterrows():
        table.add_row(
            escape(str(dom)),
            str(int(r["rows"])),
            f"{r['observed_min']:.3f}–{r['observed_max']:.3f}",
            f"{r['prior_lo_median']:.3f}–{r['prior_hi_median']:.3f}",
            f"{r['inside']:.0%}",
        )
    console.print(table)


def fit_cmd(
    runs: Annotated[
        str, typer.Option("--runs", help="Run table (CSV, Parquet, JSONL, store) or bundled:NAME.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Where to write the posterior (netCDF, .nc).")],
    law: Annotated[
        str, typer.Option("--law", help="Law name (see `bayesplit laws`).")
    ] = "chinchilla",
    chains: Chains = 4,
    draws: Draws = 1000,
    warmup: Warmup = 1000,
    seed: Seed = 0,
    device: Device = "auto",
    backend: Annotated[str, typer.Option(help="numpyro, pymc or nutpie.")] = "numpyro",
    domains: Domains = None,
    per_domain: PerDomain = None,
    run_effect: RunEffect = "auto",
    json_out: JsonFlag = False,
    law_module: LawModule = None,
    progress: Annotated[bool, typer.Option(help="Show the sampler's progress bar.")] = True,
) -> None:
    """Fit a hierarchical law with NUTS and save the posterior."""
    from bayesplit.fitting import check_fit_options, fit

    _import_law_modules(law_module)
    check_output_path(out, suffixes={".nc"}, inputs={"--runs": runs})
    # before the design warnings: a typo here is the one line the command prints
    check_fit_options(
        chains=chains, draws=draws, warmup=warmup, seed=seed, device=device, backend=backend
    )
    effect = _run_effect(run_effect)
    table = load_runs_arg(runs)
    if not json_out:
        _warn_before_fitting(table, law, _names_csv(domains, "--domains"), _per_domain(per_domain))
    with step(f"fitting {law} ({chains} chains × {draws} draws, {backend})", enabled=not json_out):
        post = fit(
            table,
            law,
            domains=_names_csv(domains, "--domains"),
            per_domain=_per_domain(per_domain),
            chains=chains,
            draws=draws,
            warmup=warmup,
            seed=seed,
            device=device,
            backend=backend,
            run_effect=effect,
            progress=progress and not json_out,
        )
    post.save(out)
    if json_out:
        emit_json(
            {
                "law": post.law.name,
                "out": str(out),
                "diagnostics": post.diagnostics.summary(),
                "params": params_json(post),
                "reference": {
                    "params": post.spec.reference.params,
                    "tokens": post.spec.reference.tokens,
                    "loss": post.spec.reference.loss,
                },
                "info": post.info,
            }
        )
        return
    print_params(post)
    for line in diagnostics_lines(post.diagnostics):
        console.print(line)
    console.print(f"posterior written to {escape(str(out))}")


def predict_cmd(
    posterior: Annotated[Path, typer.Argument(help="Posterior file from `bayesplit fit`.")],
    params: Annotated[str, typer.Option("--params", help="N, model size (e.g. 1.4e9 or 1.4B).")],
    pretrain_tokens: Annotated[
        str, typer.Option("--pretrain-tokens", help="D, pretraining tokens.")
    ],
    domain: Annotated[str, typer.Option("--domain", help="Eval domain.")],
    spec_tokens: Annotated[
        str, typer.Option("--spec-tokens", help="D', specialization tokens.")
    ] = "0",
    run: Annotated[
        str | None,
        typer.Option(
            "--run",
            help="A run, branch or trunk id the fit has seen: predict that model (a later "
            "checkpoint or another branch of its trunk), its run effect included (default: a "
            "new run).",
        ),
    ] = None,
    level: Level = 0.9,
    seed: Seed = 0,
    json_out: JsonFlag = False,
    law_module: LawModule = None,
) -> None:
    """Predict the loss at (N, D, D') with a credible band (law) and a predictive band (new run)."""
    from bayesplit.allocation import extrapolation_notes
    from bayesplit.plan import Plan
    from bayesplit.posterior import load_posterior
    from bayesplit.prediction import point_summary, thin_tails_note

    _import_law_modules(law_module)
    post = load_posterior(posterior)
    n = parse_positive(params, "--params")
    d = parse_positive(pretrain_tokens, "--pretrain-tokens")
    dp = parse_count(spec_tokens, "--spec-tokens")
    if not (math.isfinite(dp) and dp >= 0):
        raise BayesplitError(f"--spec-tokens must be a number >= 0, got {spec_tokens!r}")
    if run is not None and post.run_effect_draws(run, max_draws=1) is None:
        known = (
            ", ".join(post.spec.runs) if post.spec.run_effect else "none: the fit has no run effect"
        )
        raise BayesplitError(f"--run {run!r} is not a run the fit has an effect for ({known})")
    ds = post.predict(n, d, dp, domain=domain, level=level, seed=seed, run=run)
    result = point_summary(ds, domain)
    if not post.ok:
        from bayesplit.diagnostics import GATE_NOTE

        result["warning"] = f"{GATE_NOTE}: " + "; ".join(post.diagnostics.failures)
    # as allocate says it: --params 1e-300 gave losses near 1e86 without a word
    result["notes"] = extrapolation_notes(
        Plan(n, d, {domain: dp}), post.runs, uses_spec_tokens=post.law.uses_spec_tokens
    )
    tails = thin_tails_note(level, ds.sizes["draw"])
    if tails is not None:
        result["notes"].append(tails)
    if json_out:
        emit_json(result)
        return
    console.print(
        escape(f"{domain} at N={n:.3g}, D={d:.3g}, D'={dp:.3g} ({post.law.name})"),
    )
    console.print(f"  median {result['median']:.4f}   mean {result['mean']:.4f} nats/token")
    # with --run the credible band is the law plus that run's estimated effect
    credible = f"credible ({'law' if run is None else 'law + run ' + run + ' effect'}):"
    predictive = f"predictive ({'new run' if run is None else 'run ' + run}):"
    width = max(len(credible), len(predictive))
    for label, (lo, hi) in ((credible, result["credible"]), (predictive, result["predictive"])):
        console.print(f"  {percent(level)} {escape(label.ljust(width))} [{lo:.4f}, {hi:.4f}]")
    for note in result["notes"]:
        console.print(f"[yellow]! {escape(note)}[/yellow]")
    if "warning" in result:
        console.print(f"[yellow]! {escape(result['warning'])}[/yellow]")


def compare_cmd(
    runs: Annotated[str, typer.Option("--runs", help="Run table or bundled:NAME.")],
    laws: Annotated[
        str, typer.Option("--laws", help="Comma-separated law names.")
    ] = "chinchilla,additive,transfer,saturating",
    holdout_largest: Annotated[
        float, typer.Option("--holdout-largest", help="Fraction of runs (by compute) held out.")
    ] = 0.2,
    level: Level = 0.9,
    chains: Chains = 4,
    draws: Draws = 1000,
    warmup: Warmup = 1000,
    seed: Seed = 0,
    device: Device = "auto",
    domains: Domains = None,
    per_domain: PerDomain = None,
    run_effect: RunEffect = "auto",
    json_out: JsonFlag = False,
    law_module: LawModule = None,
) -> None:
    """Compare laws: held-out error on the largest runs, interval coverage, PSIS-LOO (best elpd_loo first)."""
    from bayesplit.comparison import compare

    _import_law_modules(law_module)
    names = _names_csv(laws, "--laws") or []
    df = compare(
        load_runs_arg(runs),
        names,
        holdout_largest=holdout_largest,
        level=level,
        chains=chains,
        draws=draws,
        warmup=warmup,
        seed=seed,
        device=device,
        **_model_options(domains, per_domain, run_effect),
        progress=(lambda _line: None) if json_out else console.print,  # the fits' bars either way
    )
    if json_out:
        emit_json(
            {
                "holdout_largest": holdout_largest,
                "level": level,
                "laws": df.reset_index().to_dict(orient="records"),
            }
        )
        return
    table = Table(
        title=(
            f"law comparison, best elpd_loo first (held out: largest {percent(holdout_largest)} "
            "of runs by compute)"
        )
    )
    for col in (
        "law",
        "median rel. error",
        "max rel. error",
        f"{percent(level)} coverage",
        "new-run coverage",
        "elpd_loo ± se",
        "bad k",
        "gate",
    ):
        table.add_column(col, justify="right" if col != "law" else "left")

    def pct(r, key: str, spec: str) -> str:
        value = r.get(key, float("nan"))
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        return "—" if missing else format(value, spec)

    for name, r in df.iterrows():
        table.add_row(
            escape(str(name)),
            pct(r, "median_rel_error", ".2%"),
            pct(r, "max_rel_error", ".2%"),
            pct(r, "coverage", ".0%"),
            pct(r, "coverage_new_run", ".0%"),
            f"{r['elpd_loo']:.1f} ± {r['elpd_loo_se']:.1f}",
            str(r["pareto_k_bad"]),
            "ok" if r["gate_ok"] else "[red]failed[/red]",
        )
    console.print(table)
    seen = [(name, r) for name, r in df.iterrows() if r.get("n_seen_run", 0) > 0]
    for name, r in seen:
        # "held out: largest runs" read as new runs; on a tree of branches they share trunks
        console.print(
            f"{escape(str(name))}: {r['n_seen_run']} of {r['n_holdout']} held-out rows are of "
            f"trunks the fit saw, so '{percent(level)} coverage' includes their run effect; "
            "'new-run coverage' scores every row as a new run"
        )
    for name, r in df.iterrows():
        for w in r["warnings"]:
            console.print(f"[yellow]! {escape(f'{name}: {w}')}[/yellow]")


def register(app: typer.Typer) -> None:
    app.command("laws")(laws_cmd)
    app.command("prior")(prior_cmd)
    app.command("fit")(fit_cmd)
    app.command("predict")(predict_cmd)
    app.command("compare")(compare_cmd)
    from bayesplit.cli.demo import demo_cmd

    app.command("demo")(demo_cmd)
