"""`bayesplit train`: pretrain trunks, specialize checkpoints, execute suggested runs.

torch is imported inside the commands, so ``bayesplit --help`` works without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bayesplit.cli._common import console, emit_json, fmt
from bayesplit.errors import BayesplitError

app = typer.Typer(no_args_is_help=True)

CorpusOpt = Annotated[
    Path, typer.Option("--corpus", help="Corpus directory (bayesplit corpus build).")
]
LadderOpt = Annotated[
    str | None,
    typer.Option(
        "--ladder", help="Model ladder YAML or name in models/ (default models/ladder.yaml)."
    ),
]
WorkdirOpt = Annotated[
    Path | None,
    typer.Option(
        "--workdir", help="Checkpoint directory (default: <store>-checkpoints next to the store)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the rows written as JSON on stdout.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA if available), cpu or cuda.")]
EvalTokensOpt = Annotated[
    str | None,
    typer.Option("--eval-tokens", help="Validation tokens per domain (default from the ladder)."),
]
ProgressOpt = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Progress bars on stderr.")
]


def _count(text: str | None) -> float | None:
    if text is None:
        return None
    from bayesplit.cli.core import parse_count

    return parse_count(text)


def _counts(text: str | None, what: str) -> list[float]:
    if not text:
        return []
    out = [_count(t) for t in text.split(",") if t.strip()]
    if any(v <= 0 for v in out):
        raise BayesplitError(f"{what} must be positive token counts")
    return out


def _workdir(workdir: Path | None, store: Path | None) -> Path:
    if workdir is not None:
        return workdir
    if store is not None:
        return store.with_name(f"{store.stem}-checkpoints")
    return Path("bayesplit-checkpoints")


def _overrides(device: str, eval_tokens: str | None, **more) -> dict:
    out = {"device": device}
    if eval_tokens is not None:
        out["eval_tokens"] = int(_count(eval_tokens))
    out.update({k: v for k, v in more.items() if v is not None})
    return out


def _check_corpus(corpus: Path) -> None:
    if not (corpus / "manifest.json").is_file():
        raise BayesplitError(f"no corpus at {corpus} (no manifest.json)")


def _show(df, as_json: bool, extra: dict | None = None) -> None:
    records = [] if df is None or not len(df) else df.to_dict("records")
    if as_json:
        emit_json({"rows_written": len(records), "rows": records, **(extra or {})})
        return
    if not records:
        console.print("nothing to do: every requested row is already in the store")
        return
    table = Table(title=f"{len(records)} rows written")
    for col in (
        "run_id",
        "params",
        "pretrain_tokens",
        "spec_tokens",
        "train_domain",
        "eval_domain",
        "loss",
    ):
        table.add_column(col)
    for r in records:
        table.add_row(
            str(r["run_id"]),
            fmt(float(r["params"])),
            f"{int(r['pretrain_tokens']):,}",
            f"{int(r['spec_tokens']):,}",
            str(r["train_domain"] or "—"),
            str(r["eval_domain"]),
            f"{r['loss']:.4f}",
        )
    console.print(table)
    r = records[-1]
    console.print(
        f"tokens/s {fmt(r['tokens_per_s'])}, MFU {fmt(r['mfu']) if r['mfu'] is not None else '—'} "
        f"({r['device']}, {r['dtype']}, world size {r['world_size']})"
    )


@app.command("pretrain")
def pretrain_cmd(
    corpus: CorpusOpt,
    model: Annotated[str, typer.Option("--model", help="Ladder size name.")],
    branch_at: Annotated[
        str,
        typer.Option(
            "--branch-at",
            help="Comma-separated D values: a stable checkpoint and a general-model row at each (e.g. 1e6,2e6,4M).",
        ),
    ],
    store: Annotated[Path | None, typer.Option("--store", help="Run store for the rows.")] = None,
    ladder: LadderOpt = None,
    workdir: WorkdirOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of initial weights and data order.")] = 0,
    weights: Annotated[
        str | None,
        typer.Option("--weights", help="General mixture weights, domain=w,... (default ∝ tokens)."),
    ] = None,
    cooldown: Annotated[
        float | None,
        typer.Option("--cooldown", help="Decay length of a general model, fraction of D."),
    ] = None,
    decay_shape: Annotated[
        str | None, typer.Option("--decay-shape", help="linear, 1-sqrt or cosine.")
    ] = None,
    checkpoint_every: Annotated[
        int | None, typer.Option("--checkpoint-every", help="Steps between resume checkpoints.")
    ] = None,
    eval_tokens: EvalTokensOpt = None,
    device: DeviceOpt = "auto",
    progress: ProgressOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Train a trunk on the general mixture with branch points; write general-model rows."""
    _check_corpus(corpus)
    from bayesplit.cli.suggest import parse_weights
    from bayesplit.train.ladder import find_model, load_ladder

    entry = find_model(load_ladder(ladder), model)
    points = _counts(branch_at, "--branch-at")
    if not points:
        raise BayesplitError("--branch-at needs at least one token count")
    from bayesplit.train.loop import TrainConfig, pretrain

    tc = TrainConfig.from_entry(
        entry,
        **_overrides(
            device,
            eval_tokens,
            weights=parse_weights(weights),
            cooldown_fraction=cooldown,
            decay_shape=decay_shape,
            checkpoint_every=checkpoint_every,
        ),
    )
    df = pretrain(
        corpus,
        entry,
        workdir=_workdir(workdir, store),
        eval_at=points,
        save_at=points,
        seed=seed,
        store=store,
        train=tc,
        progress=progress,
    )
    _show(df, as_json)


@app.command("specialize")
def specialize_cmd(
    corpus: CorpusOpt,
    checkpoint: Annotated[
        Path,
        typer.Option(
            "--checkpoint", help="Stable trunk checkpoint (trunks/<id>/stable-<step>.pt)."
        ),
    ],
    domain: Annotated[str, typer.Option("--domain", help="Domain to specialize on.")],
    tokens: Annotated[
        str, typer.Option("--tokens", help="Specialization tokens D' (e.g. 5e5, 2M).")
    ],
    store: Annotated[Path | None, typer.Option("--store", help="Run store for the rows.")] = None,
    workdir: WorkdirOpt = None,
    replay: Annotated[
        float, typer.Option("--replay", help="Fraction of each batch from the general mixture.")
    ] = 0.0,
    rewarmup: Annotated[float, typer.Option("--rewarmup", help="Re-warmup, fraction of D'.")] = 0.0,
    decay: Annotated[
        float, typer.Option("--decay", help="Final decay to zero, fraction of D'.")
    ] = 0.2,
    decay_shape: Annotated[
        str, typer.Option("--decay-shape", help="linear, 1-sqrt or cosine.")
    ] = "linear",
    lr: Annotated[
        float | None, typer.Option("--lr", help="Peak rate (default: the trunk's).")
    ] = None,
    eval_tokens: EvalTokensOpt = None,
    device: DeviceOpt = "auto",
    progress: ProgressOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Continue a trunk checkpoint on one domain for D' tokens; write one row per eval domain."""
    _check_corpus(corpus)
    from bayesplit.train.loop import SpecConfig, specialize

    spec = SpecConfig(
        replay_fraction=replay,
        warmup_fraction=rewarmup,
        decay_fraction=decay,
        lr=lr,
        decay_shape=decay_shape,
    )
    dp = _count(tokens)
    if dp is None or dp <= 0:
        raise BayesplitError("--tokens must be a positive token count")
    df = specialize(
        corpus,
        checkpoint,
        domain,
        dp,
        spec=spec,
        store=store,
        workdir=_workdir(workdir, store),
        train_overrides=_overrides(device, eval_tokens),
        progress=progress,
    )
    _show(df, as_json)


@app.command("execute")
def execute_cmd(
    suggestions: Annotated[
        Path, typer.Argument(help="Suggestions JSON (bayesplit suggest --json).")
    ],
    corpus: CorpusOpt,
    store: Annotated[Path, typer.Option("--store", help="Run store the rows are appended to.")],
    ladder: LadderOpt = None,
    launcher: Annotated[
        str, typer.Option("--launcher", help="local, torchrun or slurm.")
    ] = "local",
    workdir: WorkdirOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of suggestions that carry none.")] = 0,
    nproc: Annotated[
        int | None,
        typer.Option("--nproc", help="torchrun: processes per run (default GPUs, or 2 on CPU)."),
    ] = None,
    slurm_partition: Annotated[str | None, typer.Option("--slurm-partition")] = None,
    slurm_timeout: Annotated[int, typer.Option("--slurm-timeout", help="Minutes per job.")] = 24
    * 60,
    slurm_gpus: Annotated[int | None, typer.Option("--slurm-gpus", help="GPUs per job.")] = None,
    slurm_cluster: Annotated[
        str | None,
        typer.Option(
            "--slurm-cluster", help="submitit cluster (default auto; 'local' for a dry run)."
        ),
    ] = None,
    replay: Annotated[
        float, typer.Option("--replay", help="Specialization replay fraction.")
    ] = 0.0,
    eval_tokens: EvalTokensOpt = None,
    device: DeviceOpt = "auto",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan; train nothing.")
    ] = False,
    progress: ProgressOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Train the suggested runs not yet in the store: one trunk per model, branches off it."""
    _check_corpus(corpus)
    from bayesplit.train.execute import (
        LAUNCHERS,
        execute_suggestions,
        load_suggestions,
        plan_suggestions,
    )
    from bayesplit.train.loop import SpecConfig

    if launcher not in LAUNCHERS:
        raise BayesplitError(f"unknown launcher {launcher!r} (use {', '.join(LAUNCHERS)})")
    items = load_suggestions(suggestions)
    spec = SpecConfig(replay_fraction=replay)
    kwargs = dict(
        ladder=ladder,
        workdir=_workdir(workdir, store),
        seed=seed,
        train_overrides=_overrides(device, eval_tokens),
        spec=spec,
    )
    plan = plan_suggestions(items, corpus, store, **kwargs)
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {note}")
    if dry_run:
        if as_json:
            emit_json(plan.to_dict())
        else:
            console.print(f"{len(plan.done)} of {len(items)} suggestions already in the store")
            for job in plan.jobs:
                console.print(job.describe())
        return
    options = {
        "partition": slurm_partition,
        "timeout_min": slurm_timeout,
        "gpus_per_node": slurm_gpus,
        "cluster": slurm_cluster,
    }
    df = execute_suggestions(
        items,
        corpus,
        store,
        launcher=launcher,
        progress=progress,
        nproc=nproc,
        launcher_options=options,
        **kwargs,
    )
    _show(df, as_json, {"plan": plan.to_dict()})


@app.command("ladder")
def ladder_cmd(
    ladder: Annotated[
        str | None, typer.Argument(help="Ladder YAML or name (default models/ladder.yaml).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the sizes of a model ladder with N (non-embedding) and the with-embeddings count."""
    from bayesplit.train.ladder import load_ladder

    entries = load_ladder(ladder)
    if as_json:
        emit_json(entries)
        return
    table = Table(title="model ladder (params = N, non-embedding)")
    for col in (
        "name",
        "n_layer",
        "n_head",
        "d_model",
        "d_ff",
        "params",
        "with emb.",
        "batch",
        "lr",
    ):
        table.add_column(col)
    for e in entries:
        table.add_row(
            e["name"],
            str(e["n_layer"]),
            str(e["n_head"]),
            str(e["d_model"]),
            str(e["d_ff"]),
            f"{e['params']:,}",
            f"{e['params_with_embeddings']:,}",
            str(e["batch_size"]),
            f"{e['lr']:g}",
        )
    console.print(table)


def loop_cmd(
    corpus: CorpusOpt,
    store: Annotated[Path, typer.Option("--store", help="Run store (created if missing).")],
    budget: Annotated[str, typer.Option("--budget", help="Target compute of the decision.")],
    rounds: Annotated[int, typer.Option(help="Fit → suggest → train rounds.")] = 2,
    batch: Annotated[int, typer.Option(help="Runs suggested per round.")] = 4,
    objective: Annotated[
        str,
        typer.Option(help="What the runs should inform: decision, split or regret (see suggest)."),
    ] = "decision",
    experiment_budget: Annotated[
        str | None,
        typer.Option("--experiment-budget", help="Most FLOPs to spend on runs (seed included)."),
    ] = None,
    ladder: LadderOpt = None,
    law: Annotated[str, typer.Option(help="Law fitted every round.")] = "additive",
    seed_tokens: Annotated[
        str | None,
        typer.Option("--seed-tokens", help="D of the seed design (default 10 tokens/param)."),
    ] = None,
    chains: Annotated[int, typer.Option(help="NUTS chains per fit.")] = 2,
    draws: Annotated[int, typer.Option(help="NUTS draws per chain.")] = 500,
    warmup: Annotated[int, typer.Option(help="NUTS warmup per chain.")] = 500,
    max_run_flops: Annotated[
        str | None, typer.Option("--max-run-flops", help="Cap on one run's compute.")
    ] = None,
    workdir: WorkdirOpt = None,
    eval_tokens: EvalTokensOpt = None,
    device: DeviceOpt = "auto",
    seed: Annotated[int, typer.Option(help="Seed of training and sampling.")] = 0,
    force: Annotated[
        bool, typer.Option("--force", help="Continue with a fit that failed its diagnostics.")
    ] = False,
    progress: ProgressOpt = True,
    as_json: Annotated[bool, typer.Option("--json", help="Round summaries as JSON.")] = False,
) -> None:
    """Closed loop: fit the law, suggest runs, train them, append, refit — for R rounds."""
    _check_corpus(corpus)
    from bayesplit.train.closed_loop import run_loop

    def show(s: dict) -> None:
        if not as_json:
            console.print(
                f"[bold]round {s['round']}[/bold]: {s['runs']} runs / {s['rows']} rows fitted "
                f"(gate {'ok' if s['gate_ok'] else 'FAILED, forced'}); plan N={fmt(s['plan_params'])}, "
                f"pretrain fraction {s['plan_pretrain_fraction']:.2f}, objective "
                f"{s['objective_median']:.4f} [{s['objective_lo']:.4f}, {s['objective_hi']:.4f}]; "
                f"trained {s['suggested']} suggested runs ({s['trained_rows']} rows); "
                f"spent {fmt(s['spent_flops'])} FLOPs"
            )

    history = run_loop(
        corpus,
        store,
        budget=float(_count(budget)),
        rounds=rounds,
        batch=batch,
        objective=objective,
        experiment_budget=_count(experiment_budget),
        ladder=ladder,
        law=law,
        seed_tokens=_count(seed_tokens),
        workdir=_workdir(workdir, store),
        fit_kwargs={"chains": chains, "draws": draws, "warmup": warmup},
        train_overrides=_overrides(device, eval_tokens),
        max_run_flops=_count(max_run_flops),
        force=force,
        seed=seed,
        progress=progress and not as_json,
        report=show,
    )
    if as_json:
        emit_json({"rounds": history.to_dict("records")})
