"""`bayesplit train`: pretrain trunks, specialize checkpoints, execute suggested runs.

torch is imported inside the commands, so ``bayesplit --help`` works without it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bayesplit.cli._common import (
    LADDER_HELP,
    check_output_path,
    check_seed,
    console,
    emit_json,
    fmt,
    given,
)
from bayesplit.cli.core import LawModule, _import_law_modules, parse_counts, parse_positive
from bayesplit.errors import BayesplitError

app = typer.Typer(no_args_is_help=True)

CorpusOpt = Annotated[
    Path, typer.Option("--corpus", help="Corpus directory (bayesplit corpus build).")
]
LadderOpt = Annotated[
    str | None,
    typer.Option("--ladder", help=f"Model ladder: {LADDER_HELP}. Default: ladder."),
]
WorkdirOpt = Annotated[
    Path | None,
    typer.Option(
        "--workdir",
        help="Checkpoint directory (default: next to the store, named after it: runs.db → "
        "runs-checkpoints; without --store, bayesplit-checkpoints).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the rows written as JSON on stdout.")]
DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device", help="auto (CUDA if available), cpu, or cuda (gpu is the same as cuda)."
    ),
]


def _eval_tokens_opt(default: str):
    return Annotated[
        str | None,
        typer.Option(
            "--eval-tokens",
            help=f"Validation tokens per domain (default {default}); at most the whole "
            "validation split, and each row's eval_tokens says how many were used.",
        ),
    ]


EvalTokensOpt = _eval_tokens_opt("from the ladder")
#: specialize reads its settings from the trunk checkpoint, so its rows match the trunk's
SpecEvalTokensOpt = _eval_tokens_opt("the trunk's, as its checkpoint recorded")
ProgressOpt = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Progress bars on stderr.")
]

#: What ``--device`` takes; ``gpu`` (the name ``fit`` and ``compare`` use) means ``cuda``.
DEVICES = ("auto", "cpu", "cuda", "gpu")


def _positive(text: str | None, option: str) -> float | None:
    """A finite count > 0 (``1e6``, ``2M``), or None when the option was not given."""
    return None if text is None else parse_positive(text, option)


def _fraction(value: float | None, option: str, *, closed: bool = False) -> None:
    """A fraction in [0, 1) (or [0, 1] when ``closed``); None passes."""
    if value is None:
        return
    ok = math.isfinite(value) and (0 <= value <= 1 if closed else 0 <= value < 1)
    if not ok:
        interval = "[0, 1]" if closed else "[0, 1)"
        raise BayesplitError(f"{option} must be a fraction in {interval}, got {value:g}")


def _at_least(value: int | None, option: str, low: int) -> None:
    if value is not None and value < low:
        raise BayesplitError(f"{option} must be >= {low}, got {value}")


def _device(device: str) -> str:
    """The trainer's name for ``--device`` (``gpu`` → ``cuda``), refused if unusable here."""
    d = device.strip().lower()
    if d not in DEVICES:
        raise BayesplitError(f"--device must be auto, cpu, cuda or gpu, got {device!r}")
    if d == "gpu":
        d = "cuda"
    if d == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise BayesplitError(f"--device {device} asked for, but torch sees no CUDA device")
    return d


def _eval_tokens(text: str | None) -> int | None:
    value = _positive(text, "--eval-tokens")
    if value is not None and value < 1:
        raise BayesplitError(f"--eval-tokens must be at least 1 token, got {text!r}")
    return None if value is None else int(value)


def _decay_shape(shape: str | None) -> None:
    from bayesplit.train.schedule import DECAY_SHAPES

    if shape is not None and shape not in DECAY_SHAPES:
        raise BayesplitError(
            f"--decay-shape must be one of {', '.join(DECAY_SHAPES)}, got {shape!r}"
        )


def _load_ladder(spec: str | None, option: str = "--ladder") -> list[dict]:
    """``load_ladder`` with a malformed file as a one-line error, not a traceback."""
    from bayesplit.train.ladder import load_ladder, resolve_ladder

    given(spec, option)  # "" was "no such model ladder: "
    try:
        return load_ladder(spec)
    except BayesplitError:  # already one line (a ValueError too, so said before the next)
        raise
    except (TypeError, ValueError) as exc:
        path = resolve_ladder(spec)
        raise BayesplitError(f"{path}: not a valid ladder ({exc})") from None


def _check_store(store: Path | None) -> None:
    """Refuse a ``--store`` that cannot be a run store before anything is trained or
    created. Rows of another corpus are refused by the train functions themselves."""
    if store is None:
        return
    from bayesplit.runs import STORE_SUFFIXES
    from bayesplit.store import RunStore

    check_output_path(store, option="--store", suffixes=set(STORE_SUFFIXES))
    if store.exists():
        RunStore.check(store, allow_empty=True)  # a foreign file is refused, untouched


def _workdir(workdir: Path | None, store: Path | None) -> Path:
    if workdir is not None:
        out = workdir
    elif store is not None:
        out = store.with_name(f"{store.stem}-checkpoints")
    else:
        out = Path("bayesplit-checkpoints")
    check_output_path(out, option="--workdir", directory=True)
    return out


def _overrides(device: str, eval_tokens: int | None, **more) -> dict:
    out = {"device": device}
    if eval_tokens is not None:
        out["eval_tokens"] = eval_tokens
    out.update({k: v for k, v in more.items() if v is not None})
    return out


def _check_corpus(corpus: Path):
    """The opened corpus (manifest and shard sizes only: cheap), or a one-line refusal."""
    from bayesplit.train.corpus import Corpus

    if corpus.exists() and not corpus.is_dir():
        raise BayesplitError(f"--corpus {corpus} is a file, not a corpus folder")
    if not (corpus / "manifest.json").is_file():
        raise BayesplitError(f"no corpus at {corpus} (no manifest.json)")
    return Corpus(corpus)


def _check_weights(weights: dict[str, float] | None, data) -> None:
    if weights is None:
        return
    for name in weights:  # parse_weights already refused negative, nan and all-zero weights
        data.check_domain(name)


class _EmptyStore:
    """A run store that does not exist yet, for planning: a dry run must not create it."""

    def __len__(self) -> int:
        return 0

    def append(self, rows) -> int:
        raise RuntimeError("planning writes nothing")


def _store_for_planning(store: Path):
    """The store to plan against, opened read-only (nothing is created or changed)."""
    from bayesplit.store import RunStore

    if not store.exists():
        return _EmptyStore()
    RunStore.check(store, allow_empty=True)
    try:
        return RunStore(store, read_only=True)
    except BayesplitError:  # an empty SQLite file: a store not made yet
        return _EmptyStore()


def _show(
    df,
    as_json: bool,
    extra: dict | None = None,
    *,
    stored: bool = True,
    eval_tokens: int | None = None,
) -> None:
    """The rows trained, as a table or JSON; ``stored`` is False without ``--store`` (the
    rows were only printed: "N rows written" said otherwise). ``eval_tokens``: the
    ``--eval-tokens`` given, which a row already stored is not evaluated again for."""
    records = [] if df is None or not len(df) else df.to_dict("records")
    if as_json:
        written = len(records) if stored else 0
        emit_json({"rows_written": written, "rows": records, **(extra or {})})
        return
    if not records:
        console.print("nothing to do: every requested row is already in the store")
        if eval_tokens is not None:  # a rerun to evaluate on more tokens did nothing, unsaid
            console.print(
                f"[yellow]note:[/] --eval-tokens {eval_tokens:,} does not evaluate rows "
                "already stored again (their eval_tokens column says what they used); use "
                "another --store to have them evaluated anew"
            )
        return
    title = "rows written" if stored else "rows, not stored (no --store)"
    table = Table(title=f"{len(records)} {title}")
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
            escape(str(r["run_id"])),
            fmt(float(r["params"])),
            f"{int(r['pretrain_tokens']):,}",
            f"{int(r['spec_tokens']):,}",
            escape(str(r["train_domain"] or "—")),
            escape(str(r["eval_domain"])),
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
    seed: Annotated[
        int, typer.Option(callback=check_seed, help="Seed of initial weights and data order.")
    ] = 0,
    weights: Annotated[
        str | None,
        typer.Option("--weights", help="General mixture weights, domain=w,... (default ∝ tokens)."),
    ] = None,
    cooldown: Annotated[
        float | None,
        typer.Option(
            "--cooldown",
            help="Decay length of a general model, fraction of D; it must round to at least "
            "one optimizer step of each D.",
        ),
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
    from bayesplit.cli.suggest import parse_weights
    from bayesplit.train.ladder import find_model

    data = _check_corpus(corpus)
    entry = find_model(_load_ladder(ladder), model)
    points = parse_counts(branch_at, "--branch-at") if branch_at else []
    if not points:
        raise BayesplitError("--branch-at needs at least one token count")
    _check_branch_points(points, entry)
    mixture = parse_weights(weights)
    _check_weights(mixture, data)
    _fraction(cooldown, "--cooldown")
    _decay_shape(decay_shape)
    _at_least(checkpoint_every, "--checkpoint-every", 1)
    overrides = _overrides(
        _device(device),
        _eval_tokens(eval_tokens),
        weights=mixture,
        cooldown_fraction=cooldown,
        decay_shape=decay_shape,
        checkpoint_every=checkpoint_every,
    )
    _check_store(store)
    work = _workdir(workdir, store)
    from bayesplit.train.config import TrainConfig
    from bayesplit.train.trunk import pretrain

    tc = TrainConfig.from_entry(entry, **overrides)
    df = pretrain(
        data,
        entry,
        workdir=work,
        eval_at=points,
        save_at=points,
        seed=seed,
        store=store,
        train=tc,
        progress=progress,
    )
    _show(df, as_json, stored=store is not None, eval_tokens=_eval_tokens(eval_tokens))


def _check_branch_points(points: list[float], entry: dict) -> None:
    """Refuse a branch point that rounds to no step, or to a D the run store refuses.

    A D becomes whole optimizer steps of ``batch_size × seq_len`` tokens (at least one), and
    the row records the tokens actually trained, so a D far below one step would silently
    train far more than asked, and a D under ``MIN_PLAUSIBLE_COUNT`` tokens cannot be stored.
    """
    from bayesplit.train.config import exact_steps

    tps = int(entry["batch_size"]) * int(entry["seq_len"])
    for d in points:
        exact_steps(d, tps, "--branch-at", kind="a branch point", model=entry["name"])


@app.command("specialize")
def specialize_cmd(
    corpus: CorpusOpt,
    checkpoint: Annotated[
        Path,
        typer.Option(
            "--checkpoint",
            help="Trunk checkpoint: stable (trunks/<id>/stable-<step>.pt), or periodic (the "
            "same undecayed state; only the newest is kept, `train pretrain --branch-at` keeps "
            "a stable one).",
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
    eval_tokens: SpecEvalTokensOpt = None,
    device: DeviceOpt = "auto",
    progress: ProgressOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Continue a trunk checkpoint on one domain for D' tokens; write one row per eval domain."""
    from bayesplit.runs import MIN_PLAUSIBLE_COUNT
    from bayesplit.train.config import MAX_TOKENS

    data = _check_corpus(corpus)
    if not checkpoint.is_file():
        raise BayesplitError(f"no such checkpoint: {checkpoint}")
    data.check_domain(domain)
    dp = _positive(tokens, "--tokens")
    if dp < MIN_PLAUSIBLE_COUNT:
        raise BayesplitError(
            f"--tokens must be at least {MIN_PLAUSIBLE_COUNT:g} tokens (a raw count), got {tokens!r}"
        )
    if dp > MAX_TOKENS:
        raise BayesplitError(
            f"--tokens must be at most 2^53 = {MAX_TOKENS:.4g} tokens (past it a count is not "
            f"exact as a float, and the run would not finish), got {tokens!r}"
        )
    _fraction(replay, "--replay")
    _fraction(rewarmup, "--rewarmup", closed=True)
    _fraction(decay, "--decay", closed=True)
    if rewarmup + decay > 1:
        raise BayesplitError(
            f"--rewarmup + --decay must be at most 1 (the whole of D'), got {rewarmup + decay:g}"
        )
    _decay_shape(decay_shape)
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise BayesplitError(f"--lr must be a positive number, got {lr:g}")
    overrides = _overrides(_device(device), _eval_tokens(eval_tokens))
    _check_store(store)
    work = _workdir(workdir, store)
    from bayesplit.train.specialist import SpecConfig, specialize

    spec = SpecConfig(
        replay_fraction=replay,
        warmup_fraction=rewarmup,
        decay_fraction=decay,
        lr=lr,
        decay_shape=decay_shape,
    )
    df = specialize(
        data,
        checkpoint,
        domain,
        dp,
        spec=spec,
        store=store,
        workdir=work,
        train_overrides=overrides,
        progress=progress,
    )
    _show(df, as_json, stored=store is not None, eval_tokens=_eval_tokens(eval_tokens))


@app.command("execute")
def execute_cmd(
    suggestions: Annotated[
        Path,
        typer.Argument(
            help="Suggestions JSON (bayesplit suggest --out), or - to read it from stdin "
            "(bayesplit suggest --json | ...)."
        ),
    ],
    corpus: CorpusOpt,
    store: Annotated[Path, typer.Option("--store", help="Run store the rows are appended to.")],
    ladder: LadderOpt = None,
    launcher: Annotated[
        str, typer.Option("--launcher", help="local, torchrun or slurm.")
    ] = "local",
    workdir: WorkdirOpt = None,
    seed: Annotated[
        int, typer.Option(callback=check_seed, help="Seed of suggestions that carry none.")
    ] = 0,
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
        bool, typer.Option("--dry-run", help="Show the plan; train and write nothing.")
    ] = False,
    progress: ProgressOpt = True,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the rows written (with --dry-run: the plan) as JSON on stdout."
        ),
    ] = False,
) -> None:
    """Train the suggested runs not yet in the store: one trunk per model, branches off it."""
    data = _check_corpus(corpus)
    from bayesplit.train.execute import (
        LAUNCHERS,
        check_launch,
        check_nproc,
        execute_suggestions,
        load_suggestions,
        plan_suggestions,
    )
    from bayesplit.train.specialist import SpecConfig

    if launcher not in LAUNCHERS:
        raise BayesplitError(f"unknown launcher {launcher!r} (use {', '.join(LAUNCHERS)})")
    _at_least(nproc, "--nproc", 1)
    check_nproc(launcher, nproc)
    _at_least(slurm_timeout, "--slurm-timeout", 1)
    _at_least(slurm_gpus, "--slurm-gpus", 0)
    _fraction(replay, "--replay")
    items = load_suggestions(suggestions)
    entries = _load_ladder(ladder)
    spec = SpecConfig(replay_fraction=replay)
    overrides = _overrides(_device(device), _eval_tokens(eval_tokens))
    _check_store(store)
    kwargs = dict(
        ladder=entries,
        workdir=_workdir(workdir, store),
        seed=seed,
        train_overrides=overrides,
        spec=spec,
    )
    # planned against the store read-only: a refused plan, or a dry run, creates nothing
    plan = plan_suggestions(items, data, _store_for_planning(store), **kwargs)
    check_launch(plan, launcher, nproc, overrides)  # a dry run showed what the launch refused
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    if dry_run:
        if as_json:
            emit_json(plan.to_dict())
        else:
            console.print(f"{len(plan.done)} of {len(items)} suggestions already in the store")
            for job in plan.jobs:
                console.print(job.describe(), markup=False)
        return
    options = {
        "partition": slurm_partition,
        "timeout_min": slurm_timeout,
        "gpus_per_node": slurm_gpus,
        "cluster": slurm_cluster,
    }
    df = execute_suggestions(
        items,
        data,
        store,
        launcher=launcher,
        progress=progress,
        nproc=nproc,
        launcher_options=options,
        **kwargs,
    )
    _show(df, as_json, {"plan": plan.to_dict()}, eval_tokens=_eval_tokens(eval_tokens))


@app.command("ladder")
def ladder_cmd(
    ladder: Annotated[
        str | None, typer.Argument(help="Ladder YAML or name (default models/ladder.yaml).")
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the ladder's sizes as JSON on stdout: a list with one object per size "
            "(shape, params = N non-embedding, params_with_embeddings at the ladder's "
            "vocab_size, batch_size, lr, train defaults).",
        ),
    ] = False,
) -> None:
    """List the sizes of a model ladder with N (non-embedding) and the with-embeddings count."""
    entries = _load_ladder(ladder, "LADDER")
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
            escape(e["name"]),
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
        typer.Option(help="What the runs should inform: regret, decision or split (see suggest)."),
    ] = "regret",
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
    stop_regret: Annotated[
        float | None,
        typer.Option(
            "--stop-regret",
            help="Stop once the fit expects its plan within this share of the optimum "
            "(e.g. 0.005 for a plan within 1%: see 'When to stop' in the docs); checked before "
            "each round's training.",
        ),
    ] = None,
    max_run_flops: Annotated[
        str | None, typer.Option("--max-run-flops", help="Cap on one run's compute.")
    ] = None,
    workdir: WorkdirOpt = None,
    eval_tokens: EvalTokensOpt = None,
    device: DeviceOpt = "auto",
    seed: Annotated[
        int, typer.Option(callback=check_seed, help="Seed of training and sampling.")
    ] = 0,
    force: Annotated[
        bool, typer.Option("--force", help="Continue with a fit that failed its diagnostics.")
    ] = False,
    progress: ProgressOpt = True,
    as_json: Annotated[bool, typer.Option("--json", help="Round summaries as JSON.")] = False,
    law_module: LawModule = None,
) -> None:
    """Closed loop: fit the law, suggest runs, train them, append, refit — for R rounds."""
    from bayesplit.laws import get_law

    _import_law_modules(law_module)
    data = _check_corpus(corpus)
    target = _positive(budget, "--budget")
    cap = _positive(experiment_budget, "--experiment-budget")
    run_cap = _positive(max_run_flops, "--max-run-flops")
    first = _positive(seed_tokens, "--seed-tokens")
    _at_least(chains, "--chains", 1)
    _at_least(draws, "--draws", 10)
    _at_least(warmup, "--warmup", 10)
    from bayesplit.fitting import check_fit_options

    check_fit_options(chains=chains, draws=draws, warmup=warmup)  # and the upper limits
    get_law(law)  # an unknown law is refused now, not after the seed design is trained
    from bayesplit.simulation import check_stop_regret
    from bayesplit.train.closed_loop import check_loop_options

    # an input error (exit 2, nothing on stdout), not a loop stopped with a --json document
    check_loop_options(rounds, batch, objective)
    check_stop_regret(stop_regret)
    entries = _load_ladder(ladder)
    overrides = _overrides(_device(device), _eval_tokens(eval_tokens))
    _check_store(store)
    work = _workdir(workdir, store)
    empty = len(_store_for_planning(store)) == 0
    if empty:
        _check_seed_design(entries, first, seed_tokens)
    _check_run_cap(run_cap, max_run_flops, entries, data, store, first)
    if cap is not None and empty:
        from bayesplit.train.closed_loop import _design_flops, seed_suggestions

        seed_cost = _design_flops(seed_suggestions(entries, list(data.domains), first))
        if seed_cost > cap:
            raise BayesplitError(
                f"the seed design of an empty store costs {seed_cost:.3g} FLOPs, more than "
                f"--experiment-budget {cap:.3g}; raise it or lower --seed-tokens"
            )
    from bayesplit.train.closed_loop import refused_before_work, run_loop

    done: list[dict] = []

    def show(s: dict) -> None:
        done.append(s)
        if not as_json:
            console.print(
                f"[bold]round {s['round']}[/bold]: {s['models']} models / {s['rows']} rows fitted "
                f"(gate {'ok' if s['gate_ok'] else 'FAILED, forced'}); plan N={fmt(s['plan_params'])}, "
                f"pretrain fraction {s['plan_pretrain_fraction']:.2f}, objective "
                f"{s['objective_median']:.4f} [{s['objective_lo']:.4f}, {s['objective_hi']:.4f}], "
                f"expected regret {s['expected_regret']:.2%}; "
                + (
                    f"finished the interrupted round's {s['suggested']} runs, "
                    if s.get("resumed")
                    else f"{s['suggested']} runs suggested, "
                )
                + f"{s['trained_rows']} rows trained; "
                f"spent {fmt(s['spent_flops'])} FLOPs"
                + (f"; stopped: {escape(s['stopped'])}" if s["stopped"] else "")
            )

    try:
        history = run_loop(
            corpus,
            store,
            budget=target,
            rounds=rounds,
            batch=batch,
            objective=objective,
            experiment_budget=cap,
            ladder=ladder,
            law=law,
            seed_tokens=first,
            workdir=work,
            fit_kwargs={"chains": chains, "draws": draws, "warmup": warmup},
            train_overrides=overrides,
            max_run_flops=run_cap,
            stop_regret=stop_regret,
            force=force,
            seed=seed,
            progress=progress and not as_json,
            report=show,
        )
    except (BayesplitError, KeyboardInterrupt) as exc:
        if refused_before_work(exc):
            raise  # an input error like those above: nothing was trained, no document to give
        # the rounds already trained are in the store; --json still says what they were and
        # what stopped the loop (the error itself goes to stderr, with its exit code)
        if as_json:  # round 1 too: a reader gets an object, with no rounds
            import pandas as pd

            from bayesplit.errors import Terminated

            stop = str(exc)
            if isinstance(exc, KeyboardInterrupt):
                stop = "terminated" if isinstance(exc, Terminated) else "interrupted"
            emit_json({"rounds": pd.DataFrame(done).to_dict("records"), "error": stop})
        raise
    if as_json:
        emit_json({"rounds": history.to_dict("records")})


def _check_seed_design(entries, tokens: float | None, text: str | None) -> None:
    """Refuse a seed design the trainer cannot train, before anything is written, naming the
    smallest ``--seed-tokens`` it can (the bound said before, 2000, was itself refused for
    a D' under half an optimizer step, and 5000 for a cooldown of no step)."""
    from bayesplit.train.closed_loop import least_seed_tokens, seed_design_problem

    problem = seed_design_problem(entries, tokens)
    if problem is None:
        return
    given = f"--seed-tokens {text}" if tokens is not None else "the default --seed-tokens"
    least = least_seed_tokens(entries)
    fix = (
        f"the smallest --seed-tokens these models train is {least:,}"
        if least is not None
        else "no --seed-tokens trains these models: change the ladder's training settings"
    )
    raise BayesplitError(f"{given} gives a seed design the trainer refuses ({problem}); {fix}")


def _check_run_cap(cap, text, entries, data, store: Path, seed_tokens) -> None:
    """Refuse a ``--max-run-flops`` below the cheapest run the loop could ever suggest.

    The loop suggests runs on the ladder's sizes at D and D' no shorter than those of the
    runs it has (the seed design on an empty store), priced as ``bayesplit suggest`` prices
    them; the cheapest conceivable one is the shortest branch (a general model's cooldown,
    or the shortest D') of the smallest size off a trunk already trained. Under that, no
    suggestion fits and the loop would train the seed design only to stop after it.
    """
    if cap is None:
        return
    import pandas as pd

    from bayesplit.design import CostModel

    known = _store_for_planning(store)
    if len(known):
        runs, source = known.read(), f"the runs in {store}"
    else:
        from bayesplit.train.closed_loop import seed_suggestions

        seed = seed_suggestions(entries, list(data.domains), seed_tokens)
        runs, source = pd.DataFrame(seed), "the seed design of an empty store"
    cost = CostModel()
    n = min(min(float(e["params"]) for e in entries), float(runs["params"].min()))
    d_lo = float(runs["pretrain_tokens"].min())
    specs = runs.loc[runs["spec_tokens"] > 0, "spec_tokens"]
    dp_lo = float(specs.min()) if len(specs) else d_lo / 100
    branch = min(cost.cooldown_fraction * d_lo, dp_lo)
    cheapest = cost.flops_per_param_token * n * branch
    if cap < cheapest:
        raise BayesplitError(
            f"--max-run-flops {text} is below the cheapest run the loop could suggest: "
            f"{cheapest:.3g} FLOPs ({cost.flops_per_param_token:g} × N = {n:,.0f}, the smallest "
            f"size, × {branch:,.0f} tokens, the shortest branch after {source}); raise it"
        )
