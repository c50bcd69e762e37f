"""Specialization: a branch that continues a stable trunk checkpoint on one domain.

**Specialist at (D, D', k)**: branched from the *undecayed* stable checkpoint at D (so
``pretrain_tokens`` = D exactly), then ``m`` steps on domain k (optionally with a fixed
number of general replay rows per batch), with its own re-warmup/stable/decay schedule.
``spec_tokens`` = ``m · tokens_per_step``, replay rows included; the domain-only count
is in ``spec_domain_tokens``.

Run ids: a specialist has its own run id (:func:`spec_run_id`), ``trunk_id`` = its trunk
and ``step`` = ``D + D'``.

Repetition: rows record ``spec_epochs``, the expected passes of the domain rows over the
domain's train tokens, and (without replay) ``unique_spec_tokens``, the unique domain tokens
behind D' in the data-constrained scaling convention: ``min(D', U_k)``. A D' beyond ``U_k``
is also said on stderr.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bayesplit._io import jsonable, remove_if_empty
from bayesplit._parse import _shown, check_flag, check_path, is_number
from bayesplit.errors import BayesplitError
from bayesplit.train.checkpoint import ckpt_path, list_checkpoints, load_checkpoint, run_lock
from bayesplit.train.config import (
    GPTConfig,
    TrainConfig,
    config_hash,
    count_params,
    drawn_mixture,
    exact_steps,
)
from bayesplit.train.corpus import Corpus
from bayesplit.train.data import BatchSampler, Stream, check_first_reads
from bayesplit.train.loop import Trainer, finite_weights, progress_bar
from bayesplit.train.rows import (
    check_corpus_of_store,
    check_row_counts,
    mixture_label,
    run_rows,
    steps_in_store,
    store_for_lookup,
    warn,
    write_rows,
)
from bayesplit.train.runtime import make_runtime
from bayesplit.train.schedule import specialization
from bayesplit.train.trunk import general_streams, pretrain_epochs


@dataclass(frozen=True)
class SpecConfig:
    """Settings of a specialization phase.

    Parameters
    ----------
    replay_fraction
        Share of every batch drawn from the general mixture (rounded to whole rows).
    warmup_fraction
        Re-warmup from zero, as a fraction of the phase.
    decay_fraction
        Final decay to zero, as a fraction of the phase.
    lr
        Peak rate; None = the trunk's peak rate.
    decay_shape
        ``"linear"``, ``"1-sqrt"`` or ``"cosine"``.
    """

    replay_fraction: float = 0.0
    warmup_fraction: float = 0.0
    decay_fraction: float = 0.2
    lr: float | None = None
    decay_shape: str = "linear"

    def __post_init__(self) -> None:
        if not 0 <= self.replay_fraction < 1:
            raise BayesplitError(f"replay fraction must be in [0, 1), got {self.replay_fraction}")


def replay_rows(fraction: float, batch_size: int) -> int:
    """Rows of every batch drawn from the general mixture, refused unless the fraction is 0
    or leaves at least one row to replay and at least one to the domain.

    ``round(fraction × batch_size)`` rows: a fraction that rounds to the whole batch would
    train a specialist that never sees its domain, and one that rounds to no row would train
    the run of ``fraction = 0`` again under another run id.
    """
    rows = round(fraction * batch_size)
    if fraction == 0 or 0 < rows < batch_size:
        return rows
    if batch_size < 2:
        allowed = "a batch of 1 row allows only 0 (no replay)"
    else:
        lo, hi = 1 / batch_size, (batch_size - 1) / batch_size
        allowed = (
            f"a batch of {batch_size} rows allows 0 (no replay) or a fraction from "
            f"{lo:.4g} to {hi:.4g} (1 to {batch_size - 1} rows)"
        )
    leaves = "the same run as no replay" if rows == 0 else "leaving none to the specialized domain"
    raise BayesplitError(
        f"replay fraction {fraction:g} gives round({fraction:g} × {batch_size}) = {rows} of "
        f"the {batch_size} rows of a batch to replay, {leaves}; {allowed}"
    )


def spec_sampler(
    corpus: Corpus, tc: TrainConfig, cfg: GPTConfig, domain: str, spec: SpecConfig, seed: int
) -> BatchSampler:
    """The specialization's batches (domain rows, then replay rows), checked against the
    corpus before anything is written, as :func:`bayesplit.train.trunk.general_sampler` is."""
    corpus.check_domain(domain)
    replay = replay_rows(spec.replay_fraction, tc.batch_size)
    streams = [Stream(f"spec/{domain}", (domain,), (1.0,), tc.batch_size - replay)]
    if replay:
        streams += general_streams(corpus, tc, replay, "spec-replay")
    sampler = BatchSampler(corpus, streams, cfg.seq_len, seed)
    check_first_reads(sampler, corpus, cfg.vocab_size, tc.eval_tokens)
    return sampler


#: The training settings a specialization learns under (the rest are the trunk's schedule,
#: or say how a run is measured or executed).
_SPEC_TRAINING = ("batch_size", "lr", "weight_decay", "beta1", "beta2", "grad_clip", "weights")


def effective_spec(sc: SpecConfig, steps: int, batch_size: int, lr: float) -> SpecConfig:
    """``sc`` as the phase of ``steps`` steps trains it: the replay fraction in whole rows,
    re-warmup and decay in whole steps (a re-warmup of one step is none: it starts at the
    peak), no ``lr`` where it is the trunk's rate ``lr``, no decay shape without a decay
    (cosine is linear over one step); a re-warmup or decay of as many steps as the
    default's is the default's fraction, so the defaults keep the ids they always had.

    Requests that train the same phase (``--replay 0.1`` and ``0.125`` with batches of 8,
    ``--decay 0.2`` and ``0.21`` over 16 steps, ``--lr`` the trunk's own) were trained
    again under ids of their own, and fitted as independent runs.
    """
    default = SpecConfig()
    rows = replay_rows(sc.replay_fraction, batch_size)
    mine = specialization(
        1.0, steps, warmup_fraction=sc.warmup_fraction, decay_fraction=sc.decay_fraction
    )
    usual = specialization(
        1.0, steps, warmup_fraction=default.warmup_fraction, decay_fraction=default.decay_fraction
    )
    warmup = mine.warmup_steps if mine.warmup_steps > 1 else 0  # one step starts at the peak
    # one decay step is half the rate, linear or cosine (1-sqrt differs); none has no shape
    shape = sc.decay_shape
    if mine.decay_steps == 0 or (mine.decay_steps == 1 and shape == "cosine"):
        shape = default.decay_shape
    return SpecConfig(
        replay_fraction=rows / batch_size if rows else 0.0,
        warmup_fraction=default.warmup_fraction if warmup == usual.warmup_steps else warmup / steps,
        decay_fraction=default.decay_fraction
        if mine.decay_steps == usual.decay_steps
        else mine.decay_steps / steps,
        lr=None if sc.lr is None or sc.lr == lr else sc.lr,
        decay_shape=shape,
    )


def spec_run_id(
    trunk_id: str,
    d_tokens: int,
    domain: str,
    dp_tokens: int,
    sc: SpecConfig,
    *,
    seed: int | None = None,
    changed: dict[str, Any] | None = None,
) -> str:
    """Run id of a specialist: its trunk, D, domain, D' and a hash of its settings.

    ``seed`` (given only when it is not the trunk's) and ``changed`` (training settings that
    differ from the trunk's) are part of the id too: two specialists that differ only in
    them are different runs, and the second was skipped as "already in the store".
    ``sc`` is the phase's :func:`effective_spec`.
    """
    rid = f"{trunk_id}.D{d_tokens}.{domain}.S{dp_tokens}.{config_hash(asdict(sc))[:6]}"
    if seed is not None:
        rid += f".seed{int(seed)}"
    if changed:
        rid += f".train-{config_hash(jsonable(changed))[:6]}"
    return rid


def _train_changes(tc: TrainConfig, trunk: dict[str, Any]) -> dict[str, Any]:
    """The settings of ``tc`` a specialization learns under that differ from the trunk's."""
    mine, trunk = asdict(tc), dict(trunk)
    if "weights" in trunk:  # a mixture as it is drawn: code=1,web=0 is code=1
        mine["weights"], trunk["weights"] = map(drawn_mixture, (mine["weights"], trunk["weights"]))
    return {
        k: mine[k] for k in _SPEC_TRAINING if k in trunk and jsonable(trunk[k]) != jsonable(mine[k])
    }


def specialize(
    corpus: str | Path | Corpus,
    checkpoint: str | Path,
    domain: str,
    spec_tokens: float,
    *,
    spec: SpecConfig = SpecConfig(),
    store: Any = None,
    workdir: str | Path | None = None,
    seed: int | None = None,
    train: TrainConfig | None = None,
    train_overrides: dict[str, Any] | None = None,
    entry: dict[str, Any] | None = None,
    run_id: str | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Continue a stable trunk checkpoint on one domain for D' tokens; evaluate every domain.

    Parameters
    ----------
    corpus
        The corpus the trunk was trained on.
    checkpoint
        A stable trunk checkpoint (``trunks/<id>/stable-<step>.pt``); it carries the model
        shape, settings, seed and D.
    domain
        Domain k to specialize on.
    spec_tokens
        Requested D' (rounded to whole steps; the row records the exact count).
    spec
        Replay fraction, re-warmup, decay and learning rate of the phase.
    store
        Run store for the rows (skipped if they are already there); None = do not write.
    workdir
        Where periodic resume checkpoints go (``workdir/runs/<run_id>/``), and the lock
        that refuses a second run of the same specialist (:func:`run_lock`); None = none.
    seed
        Data-order seed; default the trunk's.
    train
        Settings (device, eval tokens, ...); default the trunk's.
    train_overrides
        Fields of the trunk's settings to change (e.g. ``device``, ``eval_tokens``).
    entry
        The ladder entry (for the model name); default from the checkpoint.
    run_id
        Default :func:`spec_run_id`.
    progress
        Progress bars on stderr.

    Returns
    -------
    pandas.DataFrame
        The rows written, one per eval domain.
    """
    progress = check_flag(progress, "progress")
    checkpoint = check_path(checkpoint, "checkpoint")
    if not (is_number(spec_tokens) and 0 < spec_tokens < math.inf):  # True trained 1 token
        raise BayesplitError(
            f"--tokens (in Python: spec_tokens=) must be a positive number of tokens, got "
            f"{_shown(spec_tokens)}"
        )
    if workdir is not None:
        workdir = check_path(workdir, "workdir")
    corpus = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    corpus.check_domain(domain)
    state = load_checkpoint(checkpoint)
    meta = state["meta"]
    if meta.get("kind") != "trunk":
        raise BayesplitError(f"{checkpoint} is not a trunk checkpoint")
    if meta["corpus_sha256"] != corpus.content_sha256:
        raise BayesplitError(f"{checkpoint} was trained on another corpus")
    cfg = GPTConfig.from_dict(meta["model_config"])
    trunk_tc = TrainConfig(**meta["train_config"])
    tc = train or TrainConfig(**{**meta["train_config"], **(train_overrides or {})})
    entry = entry or {"name": meta["model"]}
    seed = meta["seed"] if seed is None else int(seed)
    tps = tc.batch_size * cfg.seq_len
    d_tokens = int(meta["tokens"])
    check_row_counts(count_params(cfg), d_tokens, where=str(checkpoint))
    n = exact_steps(spec_tokens, tps, "D'", kind="a specialization", model=entry["name"])
    dp_tokens = n * tps
    trunk_id = meta["trunk_id"]
    phase = effective_spec(spec, n, tc.batch_size, tc.lr)
    run_id = run_id or spec_run_id(
        trunk_id,
        d_tokens,
        domain,
        dp_tokens,
        phase,
        seed=seed if seed != meta["seed"] else None,
        changed=_train_changes(tc, meta["train_config"]),
    )
    # everything that can refuse the input runs before the store exists; the store is
    # created only when the rows are written, so a run that fails leaves none behind
    sampler = spec_sampler(corpus, tc, cfg, domain, spec, seed)
    replay = replay_rows(spec.replay_fraction, tc.batch_size)
    domain_tokens = (tc.batch_size - replay) * cfg.seq_len * n
    unique = corpus.n_tokens(domain, "train")
    check_corpus_of_store(store, corpus)  # as the train commands refuse it
    if steps_in_store(store_for_lookup(store), run_id):
        return pd.DataFrame()
    # held from here to the rows: a second run of this specialist is refused now, not
    # when its rows clash with the first one's after it trained in full
    with run_lock(workdir, run_id):
        # again under the lock: a run that held it may have written the rows meanwhile
        if steps_in_store(store_for_lookup(store), run_id):
            return pd.DataFrame()
        if domain_tokens > unique:
            warn(
                f"D' = {dp_tokens:,} tokens on domain {domain!r} reads {domain_tokens:,} of its "
                f"tokens, {domain_tokens / unique:.3g} passes over its {unique:,} train tokens: "
                "the data repeats (rows record spec_epochs)"
            )

        rt = make_runtime(tc)
        tr = Trainer(cfg, tc, rt, seed)
        tr.load(state, checkpoint)
        tr.run_id = run_id
        sched = specialization(
            spec.lr or tc.lr,
            n,
            warmup_fraction=spec.warmup_fraction,
            decay_fraction=spec.decay_fraction,
            shape=spec.decay_shape,
        )
        run_dir = Path(workdir) / "runs" / run_id if workdir is not None else None
        start, train_s0, wall_s0 = 0, 0.0, 0.0
        if run_dir is not None and (periodic := list_checkpoints(run_dir)["periodic"]):
            resumed = load_checkpoint(periodic[max(periodic)])
            if finite_weights(resumed):
                start = max(periodic)
                tr.load(resumed, periodic[start])
                train_s0, wall_s0 = resumed["meta"]["train_time_s"], resumed["meta"]["wall_time_s"]
            else:  # a diverged state saved before the trainer checked: start again
                warn(
                    f"{periodic[max(periodic)]} holds weights that are not finite (the run "
                    "diverged); specializing again from the trunk checkpoint"
                )
        t0 = time.perf_counter()

        def on_step(step: int, losses: list, secs: float) -> None:
            if run_dir is not None and tc.checkpoint_every and step % tc.checkpoint_every == 0:
                m = {
                    "kind": "spec",
                    "run_id": run_id,
                    "step": step,
                    "train_time_s": train_s0 + secs,
                    "wall_time_s": wall_s0 + time.perf_counter() - t0,
                }
                tr.save_periodic(run_dir, step, m)

        label = f"specialize {domain} D={d_tokens:,} D'={dp_tokens:,}"
        with progress_bar(progress and rt.main, n - start, label) as bar:
            _, secs = tr.train(sampler, sched, start, n, on_step=on_step, progress=bar)
        try:
            losses = tr.evaluate(corpus, tc.eval_tokens)
        except BayesplitError:
            # the last periodic checkpoint is the state that evaluated to NaN: a rerun must
            # not resume from it and find nothing left to train
            if run_dir is not None and rt.main:
                ckpt_path(run_dir, "periodic", n).unlink(missing_ok=True)
                remove_if_empty(run_dir)
            raise
        train_s = train_s0 + secs
        rows = run_rows(
            tr,
            losses,
            entry=entry,
            run_id=run_id,
            trunk_id=trunk_id,
            seed=seed,
            pretrain_tokens=d_tokens,
            spec_tokens=dp_tokens,
            train_domain=domain,
            step=d_tokens + dp_tokens,
            wall_time_s=wall_s0 + time.perf_counter() - t0,
            # over the whole run, as a trunk's: a run resumed at its last step trains 0 s now
            tokens_per_s=n * tps / train_s if train_s > 0 else math.nan,
            schedule=f"wsd-spec:warmup={phase.warmup_fraction:g}:decay={phase.decay_fraction:g}:{phase.decay_shape}",
            corpus=corpus,
            extra={
                "replay_fraction": replay / tc.batch_size,
                "spec_domain_tokens": domain_tokens,
                # what the trunk saw: a specialist's own weights are its replay mixture
                "pretrain_mixture": mixture_label(trunk_tc.weights),
                "pretrain_epochs": pretrain_epochs(corpus, trunk_tc, d_tokens)[0],
                "spec_epochs": domain_tokens / unique,
                # replay rows draw from every domain, this one included, so the unique domain
                # tokens behind a D' with replay are not known; left blank rather than guessed
                "unique_spec_tokens": min(domain_tokens, unique) if not replay else None,
                "spec_lr": spec.lr or tc.lr,
                "trunk_wall_time_s": meta["wall_time_s"],
                "spec_train_time_s": train_s,
            },
        )
        out = write_rows(store, rows, rt)
        if run_dir is not None and rt.main:
            for p in list_checkpoints(run_dir)["periodic"].values():
                p.unlink(missing_ok=True)
            remove_if_empty(run_dir)
        return out
