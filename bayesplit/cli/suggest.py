"""`bayesplit suggest`: the next runs to train, ranked by value per FLOP."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bayesplit._parse import check_seed as parse_seed
from bayesplit.cli._common import (
    LADDER_HELP,
    Seed,
    check_output_path,
    console,
    emit_json,
    given,
)
from bayesplit.cli.core import (
    LawModule,
    _csv,
    _import_law_modules,
    load_runs_arg,
    parse_count,
    parse_positive,
)
from bayesplit.errors import BayesplitError


def parse_point(text: str) -> dict:
    """``params=1e9,pretrain_tokens=20B,spec_tokens=1e9,domain=code`` → dict."""
    out: dict = {}
    for part in _csv(text, "--point"):
        if "=" not in part:
            raise BayesplitError(f"--point wants key=value pairs, got {part!r}")
        k, v = (s.strip() for s in part.split("=", 1))
        if k in out:
            raise BayesplitError(f"--point gives {k} twice")
        if k == "domain":
            out[k] = v
        elif k in ("params", "pretrain_tokens", "spec_tokens"):
            out[k] = parse_count(v, f"--point {k}")
            ok = out[k] >= 0 if k == "spec_tokens" else out[k] > 0
            if not (math.isfinite(out[k]) and ok):
                bound = ">= 0" if k == "spec_tokens" else "> 0"
                raise BayesplitError(f"--point {k} must be a finite number {bound}, got {v!r}")
        else:
            raise BayesplitError(
                f"--point has no key {k!r} (params, pretrain_tokens, spec_tokens, domain)"
            )
    missing = {"params", "pretrain_tokens", "domain"} - set(out)
    if missing:
        raise BayesplitError(f"--point lacks {', '.join(sorted(missing))}")
    return out


def parse_weights(text: str | None) -> dict | None:
    if given(text, "--weights") is None:
        return None
    out = {}
    for part in _csv(text, "--weights"):  # "web=1," is refused naming the empty item
        if "=" not in part:
            raise BayesplitError(f"--weights wants domain=weight pairs, got {part!r}")
        k, v = part.rsplit("=", 1)  # a domain name may hold '=' ("数学=law=2")
        if not k.strip():
            raise BayesplitError(f"--weights: no domain name before '=' in {part!r}")
        if k.strip() in out:
            raise BayesplitError(f"--weights gives {k.strip()!r} twice")
        try:
            w = float(v)
        except ValueError:
            raise BayesplitError(f"weight for {k.strip()!r} is not a number: {v!r}") from None
        if not (math.isfinite(w) and w >= 0):
            raise BayesplitError(f"weight for {k.strip()!r} must be finite and >= 0, got {v!r}")
        out[k.strip()] = w
    if not any(out.values()):
        raise BayesplitError("--weights are all zero; give at least one domain a weight > 0")
    return out


def _trunk_seeds(runs, checkpoints: dict | None) -> list[int]:
    """The seeds of the runs that trained the trunks of a size, where there are several
    trunks of one size (of which ``checkpoints`` picked the furthest)."""
    if checkpoints is None or runs is None or not {"seed", "trunk_id"} <= set(runs):
        return []
    seeds: set[int] = set()
    for _, grp in runs.groupby("params"):
        by_trunk = grp.dropna(subset=["trunk_id", "seed"]).groupby("trunk_id")["seed"].first()
        if len(by_trunk) > 1:
            seeds.update(int(s) for s in by_trunk)
    return sorted(seeds)


def _trainer_workdir_beside(runs: str | None) -> Path | None:
    """``X-checkpoints`` next to a ``--runs`` store ``X.db``, as `bayesplit train` names
    its default workdir, when it holds trunks."""
    if runs is None or Path(runs).suffix.lower() not in (".db", ".sqlite", ".sqlite3"):
        return None
    folder = Path(runs).with_name(f"{Path(runs).stem}-checkpoints")
    return folder if (folder / "trunks").is_dir() else None


def suggest_cmd(
    posterior: Annotated[Path, typer.Argument(help="Posterior file from `bayesplit fit`.")],
    budget: Annotated[
        str | None,
        typer.Option(
            "--budget",
            help="Target compute of the decision (FLOPs); not with --objective point.",
        ),
    ] = None,
    n: Annotated[int, typer.Option("-n", "--n", help="How many runs to suggest.")] = 4,
    objective: Annotated[
        str,
        typer.Option(
            help="regret (expected regret of the plan: knowledge gradient), decision (sd of "
            "the objective at the plan), split (optimal pretrain fraction), or point."
        ),
    ] = "regret",
    point: Annotated[
        str | None,
        typer.Option(
            "--point",
            help="For --objective point: params=..,pretrain_tokens=..,spec_tokens=..,domain=..",
        ),
    ] = None,
    runs: Annotated[
        str | None,
        typer.Option(
            "--runs", help="Runs already done (table or store); default: the posterior's own."
        ),
    ] = None,
    ladder: Annotated[
        str | None,
        typer.Option(
            "--ladder",
            help="Model ladder whose sizes are the candidate N (in the fitted runs' N "
            f"convention: with or without embeddings): {LADDER_HELP}.",
        ),
    ] = None,
    max_run_flops: Annotated[
        str | None, typer.Option("--max-run-flops", help="Cap on one suggestion's compute.")
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir",
            help="The trainer's workdir (as given to `bayesplit train`): price runs on its "
            "trunks from the checkpoints there, as the trainer will train them. Default: the "
            "design's rule, a checkpoint at every D a trunk has reached.",
        ),
    ] = None,
    train_seed: Annotated[
        int | None,
        typer.Option(
            "--train-seed",
            callback=lambda v: v if v is None else parse_seed(v, "--train-seed"),
            help="With --workdir: the --seed `bayesplit train execute` will be given (its "
            "default is 0); a trunk trained with another seed is priced as a new one, as the "
            "trainer will train it. Default: the furthest trunk of any seed.",
        ),
    ] = None,
    trunk: Annotated[
        str, typer.Option(help="Compute model of the decision: shared or independent.")
    ] = "shared",
    weights: Annotated[
        str | None,
        typer.Option(
            help="Domain weights of the decision, one per domain served, e.g. a=0.5,b=0.5."
        ),
    ] = None,
    max_draws: Annotated[int, typer.Option(help="Posterior draws used.")] = 2000,
    seed: Seed = 0,
    force: Annotated[
        bool, typer.Option("--force", help="Use a posterior that failed its diagnostics.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write the suggestions (JSON list) here for `bayesplit train execute`."
        ),
    ] = None,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the suggestions on stdout as one JSON list, the file `bayesplit train execute` reads.",
        ),
    ] = False,
    law_module: LawModule = None,
) -> None:
    """Suggest the next training runs: the most information about the decision per FLOP."""
    from bayesplit._io import atomic_write_text, jsonable
    from bayesplit.design import suggest
    from bayesplit.posterior import load_posterior

    _import_law_modules(law_module)
    if out is not None:
        check_output_path(out, suffixes={".json"}, inputs={"--runs": runs, "POSTERIOR": posterior})
    if point is not None and objective != "point":
        raise BayesplitError(f"--point is only used with --objective point (got {objective!r})")
    if objective == "point" and (weights is not None or trunk != "shared" or budget is not None):
        # they shape the decision, which --objective point does not look at: ignored, unsaid
        raise BayesplitError(
            "--budget, --weights and --trunk set the decision; --objective point ranks runs "
            "by the loss at --point alone: leave them out"
        )
    if max_draws < 10:  # the API's own message offers None, which an option cannot take
        raise BayesplitError(
            f"--max-draws must be >= 10 (the ranking needs draws), got {max_draws}"
        )
    post = load_posterior(posterior)
    done = load_runs_arg(runs) if runs is not None else None
    checkpoints = None
    if train_seed is not None and workdir is None:
        raise BayesplitError(
            "--train-seed says which trunks in --workdir the trainer resumes: give --workdir"
        )
    if workdir is not None:
        from bayesplit.train.trunk import trunk_checkpoints

        # with --ladder, the trainer's steps and cooldown of every candidate size
        checkpoints = trunk_checkpoints(
            workdir, post.runs if done is None else done, given(ladder, "--ladder"),
            seed=train_seed,
        )  # fmt: skip
    sug = suggest(
        post,
        budget=parse_positive(budget, "--budget") if budget is not None else None,
        n=n,
        objective=objective,
        point=parse_point(point) if point is not None else None,
        runs=done,
        ladder=given(ladder, "--ladder"),  # "" was "no such model ladder: "
        max_run_flops=(
            parse_positive(given(max_run_flops, "--max-run-flops"), "--max-run-flops")
            if max_run_flops is not None
            else None
        ),
        checkpoints=checkpoints,
        allocate_kwargs={"trunk": trunk, "weights": parse_weights(weights)},
        max_draws=max_draws,
        force=force,
        seed=seed,
    )
    records = sug.to_list()
    beside = _trainer_workdir_beside(runs) if workdir is None else None
    if beside is not None:  # trained with `bayesplit train`'s default: priced by the rule
        sug.notes.append(
            f"the trainer's workdir of {runs} is there ({beside}): give --workdir {beside} to "
            "price each run from its checkpoints, as the trainer will train it"
        )
    seeds = _trunk_seeds(post.runs if done is None else done, checkpoints)
    if train_seed is None and len(seeds) > 1:
        # the trainer resumes only its own --seed's trunks: the others were priced as its
        sug.notes.append(
            f"the runs come from trunks of one size trained with seeds "
            f"{', '.join(map(str, seeds))}; each size is priced from its furthest trunk in "
            f"{workdir}: give --train-seed the --seed `bayesplit train execute` will be "
            "given, to price runs from the trunks it resumes"
        )
    if (
        checkpoints is not None
        and Path(workdir).is_dir()  # a missing one was said by trunk_checkpoints
        and not any(c["tokens"] for c in checkpoints.values())
    ):
        sug.notes.append(
            f"no trunk of the runs already done has checkpoints in {workdir}: every run is "
            "priced with a trunk trained from scratch, as the trainer would train it there"
        )
    for note in sug.notes:  # stderr: --json's stdout stays the list the trainer reads
        console.print(f"[yellow]! {escape(note)}[/yellow]")
    if out is not None:
        # as --json prints it: NaN/inf as null, numpy values as plain numbers
        atomic_write_text(out, json.dumps(jsonable(records), indent=2, allow_nan=False) + "\n")
    if json_out:
        emit_json(records)
        return
    what = "expected regret" if objective == "regret" else "sd"
    table = Table(
        title=f"next runs for: {sug.quantity} ({what} now {sug.sd_initial:.4g}; {sug.n_candidates} candidates)"
    )
    for col in (
        "#",
        "N",
        "D",
        "D'",
        "domain",
        "cost (FLOPs)",
        f"{what} after",
        "predicted loss (90%)",
    ):
        table.add_column(col, justify="left" if col == "domain" else "right")
    for r, rec in zip(sug.table.to_dict("records"), records, strict=True):
        p = rec["predicted_loss"]
        table.add_row(
            str(r["rank"]),
            f"{rec['params']:.3g}",
            f"{rec['pretrain_tokens']:.3g}",
            f"{rec['spec_tokens']:.3g}",
            escape(rec["train_domain"] or "all (general)"),
            f"{rec['cost_flops']:.3g}",
            f"{r['sd_after']:.4g}",
            f"{p['median']:.3f} [{p['predictive'][0]:.3f}, {p['predictive'][1]:.3f}]",
        )
    console.print(table)
    if objective == "regret":
        # the same words as allocate's regret line but a different yardstick: say which
        console.print(
            "[dim]expected regret here: nats the plan gives away against the best of the "
            "optima of up to 40 posterior draws; `allocate` measures it against every draw's own "
            "optimum, so its figure is at least as large[/dim]"
        )
    for rec in records:
        console.print(f"[dim]{escape(rec['reason'])}[/dim]")
    if out is not None:
        console.print(
            escape(
                f"suggestions written to {out} (run them with `bayesplit train execute {out} ...`)"
            )
        )


def register(app: typer.Typer) -> None:
    app.command("suggest")(suggest_cmd)
