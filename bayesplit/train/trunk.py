"""Pretraining: a trunk with branch points, and the general models decayed off it.

How a trunk works
-----------------
A trunk trains on the general mixture with a warmup–stable schedule that never decays, so
its state at step s does not depend on how far it will go. It saves a *stable checkpoint*
at every step a branch needs, and a periodic checkpoint every ``checkpoint_every`` steps
(only the newest is kept) to resume from if it is killed. A trunk asked to go further
later resumes from its furthest checkpoint; a missing checkpoint below that is recomputed
from the nearest earlier one (the data order makes it bitwise the same on CPU).

Token accounting
----------------
A step consumes exactly ``batch_size × seq_len`` tokens (``batch_size`` is global across
DDP ranks). A requested token count T becomes ``max(1, round(T / tokens_per_step))`` steps
and every row records the tokens actually consumed, so D and D' are exact, not requested.

**General model at D** (a pretrain-only row): the trunk is branched at stable step
``n − k`` and decayed to zero over the last ``k = round(cooldown_fraction · n)`` steps,
where ``n`` is D in steps; a cooldown that rounds to no step is refused
(:func:`decay_steps`). The row's ``pretrain_tokens`` is ``n · tokens_per_step``: every
token the model saw, decay included (the usual WSD convention: the cooldown is part
of the run's length). The decay reads the trunk's own data batches.

Run ids: the general rows of a trunk share one run id with ``step`` = their pretrain tokens.
The stable checkpoints do not depend on the cooldown, so the trunk id leaves it out and
every cooldown branches off the same trunk; the general models do, so their run id is
:func:`general_run_id`: ``trunk_id`` for the default cooldown (10%, linear), the trunk id
plus the cooldown otherwise.

Repetition: a D beyond the unique train tokens of the mixture repeats data; pretraining says
so on stderr, and every row records ``pretrain_epochs`` (expected passes over the train
tokens of the most repeated domain, see :func:`bayesplit.train.data.passes`).
"""

from __future__ import annotations

import json
import math
import os
import reprlib
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bayesplit._io import atomic_write_text, jsonable, read_json
from bayesplit._parse import check_flag, check_path, check_seed, counts
from bayesplit.errors import BayesplitError
from bayesplit.train.checkpoint import (
    ckpt_path,
    list_checkpoints,
    load_checkpoint,
    resumable_steps,
    run_lock,
)
from bayesplit.train.config import GPTConfig, TrainConfig, config_hash, count_params, exact_steps
from bayesplit.train.corpus import Corpus
from bayesplit.train.data import BatchSampler, Stream, check_first_reads, passes
from bayesplit.train.loop import Trainer, progress_bar
from bayesplit.train.rows import (
    check_corpus_of_store,
    check_row_counts,
    run_rows,
    steps_in_store,
    store_for_lookup,
    warn,
    write_rows,
)
from bayesplit.train.runtime import make_runtime
from bayesplit.train.schedule import WSD, cooldown


def general_streams(corpus: Corpus, tc: TrainConfig, rows: int, name: str) -> list[Stream]:
    """Batch streams of the general mixture (domains weighted by tokens or ``tc.weights``)."""
    weights = tc.weights or {d: corpus.n_tokens(d, "train") for d in corpus.domains}
    for d in weights:
        corpus.check_domain(d)
    doms = tuple(d for d in corpus.domains if weights.get(d, 0) > 0)
    if not doms:
        raise BayesplitError("the general mixture has no domain with positive weight")
    return [Stream(name, doms, tuple(float(weights[d]) for d in doms), rows)]


def general_sampler(corpus: Corpus, tc: TrainConfig, cfg: GPTConfig, seed: int) -> BatchSampler:
    """The trunk's batches, checked against the corpus before anything is written: every
    domain of the mixture long enough for a row, the first batch and the validation windows
    within the model's vocabulary (see :func:`bayesplit.train.data.check_first_reads`)."""
    streams = general_streams(corpus, tc, tc.batch_size, "general")
    sampler = BatchSampler(corpus, streams, cfg.seq_len, seed)
    check_first_reads(sampler, corpus, cfg.vocab_size, tc.eval_tokens)
    return sampler


def pretrain_epochs(corpus: Corpus, tc: TrainConfig, tokens: int) -> tuple[float, str]:
    """Expected passes over the train tokens of the mixture's most repeated domain at D."""
    return passes(corpus, general_streams(corpus, tc, tc.batch_size, "general")[0], tokens)


def warn_pretrain_repeats(corpus: Corpus, tc: TrainConfig, tokens: int) -> None:
    """A warning line when D draws more tokens than the mixture has."""
    epochs, domain = pretrain_epochs(corpus, tc, tokens)
    if epochs <= 1:
        return
    if tc.weights is None:
        unique = sum(corpus.n_tokens(d, "train") for d in corpus.domains)
        where = f"the {unique:,} train tokens of the general mixture"
    else:  # weights not proportional to size repeat some domain more than the mixture
        unique = corpus.n_tokens(domain, "train")
        where = f"the {unique:,} train tokens of domain {domain!r} at its mixture weight"
    warn(
        f"D = {tokens:,} tokens is {epochs:.3g} passes over {where}: the data repeats "
        "(rows record pretrain_epochs)"
    )


def model_config(entry: dict[str, Any], corpus: Corpus) -> GPTConfig:
    """The ladder entry's shape with the corpus's vocabulary."""
    return GPTConfig.from_dict({**entry, "vocab_size": corpus.vocab_size})


def trunk_id_for(entry: dict, cfg: GPTConfig, tc: TrainConfig, seed: int, corpus: Corpus):
    """Stable id of a trunk: model, training settings, seed and corpus hash."""
    h = config_hash(cfg.to_dict(), tc.trunk_identity(), seed, corpus.content_sha256)
    return f"{entry['name']}-s{seed}-{h[:8]}"


def general_run_id(trunk_id: str, tc: TrainConfig) -> str:
    """Run id of the general models decayed off a trunk: its id, plus the cooldown unless
    that is the default.

    Leaving the default out keeps the ids general rows had before the cooldown was part of
    them, so stores written then stay valid (their rows are not trained again).
    """
    default = (TrainConfig.cooldown_fraction, TrainConfig.decay_shape)
    if (float(tc.cooldown_fraction), tc.decay_shape) == default:
        return trunk_id
    # repr, not a rounded format: two different fractions must not share an id
    return f"{trunk_id}.cooldown-{float(tc.cooldown_fraction)!r}-{tc.decay_shape}"


def decay_steps(
    cooldown_fraction: float, n: int, tokens_per_step: int, model: str | None = None
) -> int:
    """Steps of the short decay that turns the stable checkpoint at ``n − k`` into the general
    model at ``n`` steps: ``k = round(cooldown_fraction · n)``, refused below one step.

    A cooldown that rounds to no step would train the one-step decay of some other cooldown
    under its own run id (``--cooldown 0``, ``0.001`` and ``0.01`` were three ids of one
    model); the message names the smallest cooldown that gives a step at this D, and the
    smallest D that gives one at this cooldown.
    """
    f = float(cooldown_fraction)
    k = round(f * n)
    if k >= 1:
        return min(n, k)
    of = f" of {model}" if model else ""
    at_d = f"D = {n * tokens_per_step:,} tokens ({n} optimizer step{'s' if n != 1 else ''}{of})"
    fix = f"a cooldown above {0.5 / n:.4g} gives one step at this D"
    if n > 1:
        fix += f" ({1 / n:.4g} = 1/{n} gives exactly one)"
    if f > 0:
        least = max(n, math.floor(0.5 / f))
        while round(f * least) < 1:
            least += 1
        fix += f", or ask for a D of at least {least * tokens_per_step:,} tokens"
    raise BayesplitError(
        f"cooldown {f:g} of {at_d} is {f * n:.3g} of a step and rounds to no decay step; "
        f"a general model is decayed for at least one step: {fix}"
    )


@dataclass
class TrunkPlan:
    """Step arithmetic of a trunk: which stable checkpoints it needs, which general rows it makes."""

    tokens_per_step: int
    cooldown_fraction: float
    eval_at: list[int] = field(default_factory=list)  # general rows, in steps (decay included)
    save_at: list[int] = field(default_factory=list)  # stable checkpoints for branching, in steps
    model: str | None = None  # named in a refusal

    def __post_init__(self) -> None:
        for n in self.eval_at:  # a cooldown of no step is refused before anything trains
            self.decay_steps(n)

    def decay_steps(self, n: int) -> int:
        """Steps of the short decay that turns the checkpoint at ``n`` into a general model."""
        return decay_steps(self.cooldown_fraction, n, self.tokens_per_step, self.model)


def _token_counts(value, what: str) -> list[float]:
    """A list of token counts as a notebook passes it (a number, a list or an array); an
    empty list or tuple is none."""
    if isinstance(value, (list, tuple)) and not value:
        return []
    return counts(value, what).tolist()


def pretrain(
    corpus: str | Path | Corpus,
    entry: dict[str, Any],
    *,
    workdir: str | Path,
    eval_at: list[float] = (),
    save_at: list[float] = (),
    seed: int = 0,
    store: Any = None,
    train: TrainConfig | None = None,
    trunk_id: str | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Train (or reuse, or extend) a trunk and write a general-model row set at every ``eval_at``.

    Parameters
    ----------
    corpus
        Corpus directory (or an opened one).
    entry
        A ladder entry (see :func:`bayesplit.train.ladder.load_ladder`).
    workdir
        Checkpoints go to ``workdir/trunks/<trunk_id>/``.
    eval_at
        Pretraining token counts D at which to produce a general model (short decay off the
        trunk, see the module docstring) evaluated on every domain.
    save_at
        Token counts at which to keep a stable (undecayed) checkpoint to branch from.
    seed
        Seed of the initial weights and of the data order.
    store
        A :class:`bayesplit.store.RunStore` (or a path) for the rows; None = do not write.
        Rows already in the store are not recomputed.
    train
        Training settings; default from the ladder entry.
    trunk_id
        Name of the trunk; default ``<model>-s<seed>-<hash of config, settings, corpus>``.
    progress
        Show progress bars on stderr.

    Returns
    -------
    pandas.DataFrame
        The rows written (one per eval domain and D).
    """
    progress = check_flag(progress, "progress")
    workdir = check_path(workdir, "workdir")  # None or "" was a TypeError or the cwd, late
    # "2e4" was read character by character, and neither list returned no rows, unsaid
    eval_at, save_at = _token_counts(eval_at, "eval_at"), _token_counts(save_at, "save_at")
    if not eval_at and not save_at:
        raise BayesplitError(
            "pretrain needs eval_at= (D of general models) or save_at= (branch points to "
            "keep); both are empty"
        )
    corpus = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    tc = train or TrainConfig.from_entry(entry)
    cfg = model_config(entry, corpus)
    if trunk_id:
        check_trunk_id(trunk_id)
    trunk_id = trunk_id or trunk_id_for(entry, cfg, tc, seed, corpus)
    run_id = general_run_id(trunk_id, tc)
    tps = tc.batch_size * cfg.seq_len
    check_row_counts(count_params(cfg), where=f"model {entry['name']}")

    def steps(points: list[float], kind: str) -> list[int]:
        return sorted({exact_steps(d, tps, "D", kind=kind, model=entry["name"]) for d in points})

    plan = TrunkPlan(
        tps,
        tc.cooldown_fraction,
        steps(eval_at, "a general model"),
        steps(save_at, "a branch point"),
        model=entry["name"],
    )
    trunk_dir = Path(workdir) / "trunks" / trunk_id
    # everything that can refuse the input runs before the store or the trunk folder exists;
    # the store is created only when the rows are written, so a failed run leaves none
    sampler = general_sampler(corpus, tc, cfg, seed)
    info = check_trunk_meta(trunk_dir, entry, cfg, tc, seed, corpus, trunk_id)
    check_corpus_of_store(store, corpus)  # as the train commands refuse it

    def todo() -> tuple[list[int], list[int]]:
        """General models not in the store, and the stable steps they and the branch points
        need; both empty when nothing is left to train."""
        done = steps_in_store(store_for_lookup(store), run_id)
        todo_eval = [n for n in plan.eval_at if (n * tps) not in done]
        needed = sorted({n - plan.decay_steps(n) for n in todo_eval} | set(plan.save_at))
        if not todo_eval and all(s in list_checkpoints(trunk_dir)["stable"] for s in needed):
            return [], []
        return todo_eval, needed

    if trunk_dir.exists():  # else written with the first checkpoint: a failed run leaves none
        _write_trunk_meta(trunk_dir, info)
    if not todo()[1]:
        return pd.DataFrame()  # nothing to train: checkpoints and rows are all there
    # held from here to the rows: a second pretraining of this trunk is refused now, not
    # when its rows clash with the first one's after both trained the same checkpoints
    with run_lock(workdir, trunk_id, kind="trunk"):
        # again under the lock: a run that held it may have trained and written meanwhile
        todo_eval, needed = todo()
        if not needed:
            return pd.DataFrame()
        warn_pretrain_repeats(corpus, tc, max([*todo_eval, *plan.save_at]) * tps)
        rt = make_runtime(tc)
        tr = Trainer(cfg, tc, rt, seed)
        tr.run_id = trunk_id
        trunk_schedule = WSD(peak_lr=tc.lr, warmup_steps=tc.warmup_steps)
        meta_base = {
            "kind": "trunk",
            "trunk_id": trunk_id,
            "model": entry["name"],
            "model_config": cfg.to_dict(),
            "train_config": jsonable(asdict(tc)),
            "seed": seed,
            "corpus_sha256": corpus.content_sha256,
            "tokens_per_step": tps,
            "schedule": trunk_schedule.to_dict(),
        }
        _advance_trunk(tr, sampler, trunk_schedule, trunk_dir, needed, meta_base, info, progress)

        rows = []
        for n in todo_eval:
            k = plan.decay_steps(n)
            path = ckpt_path(trunk_dir, "stable", n - k)
            state = load_checkpoint(path)
            tr.load(state, path)
            tr.run_id = run_id
            t0 = time.perf_counter()
            sched = cooldown(trunk_schedule, n - k, k, tc.decay_shape)
            with progress_bar(progress and rt.main, k, f"{trunk_id} decay to D={n * tps:,}") as bar:
                _, secs = tr.train(sampler, sched, n - k, n, progress=bar)
            losses = tr.evaluate(corpus, tc.eval_tokens)
            meta = state["meta"]
            train_s = meta["train_time_s"] + secs
            wall = meta["wall_time_s"] + time.perf_counter() - t0
            rows += run_rows(
                tr,
                losses,
                entry=entry,
                run_id=run_id,
                trunk_id=trunk_id,
                seed=seed,
                pretrain_tokens=n * tps,
                spec_tokens=0,
                train_domain=None,
                step=n * tps,
                wall_time_s=wall,
                tokens_per_s=n * tps / train_s if train_s > 0 else math.nan,
                schedule=f"wsd+cooldown:{tc.cooldown_fraction:g}:{tc.decay_shape}",
                corpus=corpus,
                extra={
                    "stable_tokens": (n - k) * tps,
                    "decay_tokens": k * tps,
                    "pretrain_epochs": pretrain_epochs(corpus, tc, n * tps)[0],
                    "spec_epochs": 0.0,
                },
            )
        return write_rows(store, rows, rt)


def _advance_trunk(
    tr: Trainer,
    sampler: BatchSampler,
    schedule: WSD,
    trunk_dir: Path,
    needed: list[int],
    meta_base: dict,
    info: dict,
    progress: bool,
) -> None:
    """Make a stable checkpoint exist at every needed step, training as little as possible.

    Each missing checkpoint is reached from the furthest checkpoint at or before it (or from
    the initial weights), continuing in memory when the trainer is already on the way.
    ``tr`` must hold freshly initialized weights on entry. ``info`` (the trunk's
    ``trunk.json``) is written with the first checkpoint, once the run has not diverged.
    """
    missing = [s for s in needed if s not in list_checkpoints(trunk_dir)["stable"]]
    if not missing:
        return
    pos: int | None = None  # the step the in-memory model is at
    history: list[float] = []  # train losses of steps 0 .. pos-1
    train_s = wall_s = 0.0

    def start_for(m: int) -> tuple[int, Path | None]:
        have = list_checkpoints(trunk_dir)
        avail = {**have["periodic"], **have["stable"]}
        s = max((s for s in avail if s <= m), default=0)
        return s, avail.get(s)

    first, _ = start_for(missing[0])
    label = f"trunk {meta_base['trunk_id']}"
    with progress_bar(progress and tr.rt.main, missing[-1] - first, label) as bar:
        for m in missing:
            if ckpt_path(trunk_dir, "stable", m).exists():
                continue  # saved on the way to an earlier one
            start, path = start_for(m)
            if pos is None or not (start <= pos <= m):
                if path is not None:
                    state = load_checkpoint(path)
                    tr.load(state, path)
                    meta = state["meta"]
                    history = list(meta["train_losses"])[:start]
                    train_s, wall_s = meta["train_time_s"], meta["wall_time_s"]
                elif pos is not None:  # cannot happen: we only move forward from step 0
                    raise RuntimeError("trunk would need to restart from its initial weights")
                pos = start
            if pos == m:  # the checkpoint is the start point itself (a branch at step 0)
                meta = {**meta_base, "step": m, "tokens": m * tr.tokens_per_step}
                meta |= {"train_losses": history, "train_time_s": train_s, "wall_time_s": wall_s}
                _save(tr, trunk_dir, info, ckpt_path(trunk_dir, "stable", m), meta)
                continue
            seg = _Segment(tr, trunk_dir, needed, meta_base, info, m, history, train_s, wall_s)
            losses, secs = tr.train(sampler, schedule, pos, m, on_step=seg.on_step, progress=bar)
            history = history + losses
            train_s, wall_s = train_s + secs, wall_s + time.perf_counter() - seg.t0
            pos = m


@dataclass
class _Segment:
    """Checkpointing of one stretch of a trunk: stable checkpoints where needed, else periodic."""

    tr: Trainer
    trunk_dir: Path
    needed: list[int]
    meta_base: dict
    info: dict
    end: int
    history: list[float]
    train_s: float
    wall_s: float
    t0: float = field(default_factory=time.perf_counter)
    to_save: frozenset = frozenset()

    def __post_init__(self) -> None:
        # Decided once, before any rank trains: every save ends in a barrier, so all ranks
        # must agree on which steps save. Asking the file system at each step races with
        # rank 0 writing the file, and a rank that sees it early skips the barrier (hang).
        self.to_save = frozenset(
            s
            for s in self.needed
            if s <= self.end and not ckpt_path(self.trunk_dir, "stable", s).exists()
        )

    def meta(self, step: int, losses: list, secs: float) -> dict:
        return {
            **self.meta_base,
            "step": step,
            "tokens": step * self.tr.tokens_per_step,
            "train_losses": self.history + [float(x) for x in losses],
            "train_time_s": self.train_s + secs,
            "wall_time_s": self.wall_s + time.perf_counter() - self.t0,
        }

    def on_step(self, step: int, losses: list, secs: float) -> None:
        if step in self.to_save:
            path = ckpt_path(self.trunk_dir, "stable", step)
            _save(self.tr, self.trunk_dir, self.info, path, self.meta(step, losses, secs))
        elif self.tr.tc.checkpoint_every and step % self.tr.tc.checkpoint_every == 0:
            _save(self.tr, self.trunk_dir, self.info, None, self.meta(step, losses, secs))


def _save(tr: Trainer, trunk_dir: Path, info: dict, path: Path | None, meta: dict) -> None:
    """A stable checkpoint at ``path`` (periodic when None), after the trunk's ``trunk.json``;
    neither is written once the run has diverged."""
    tr.check_finite()
    _write_trunk_meta(trunk_dir, info)
    if path is None:
        tr.save_periodic(trunk_dir, meta["step"], meta)
    else:
        tr.save(path, meta)


def trunk_meta(entry, cfg, tc, seed, corpus, trunk_id) -> dict:
    """A trunk's description, as its ``trunk.json`` holds it."""
    return jsonable(
        {
            "trunk_id": trunk_id,
            "model": entry["name"],
            "model_config": cfg.to_dict(),
            "train": tc.trunk_identity(),
            "seed": seed,
            "corpus_sha256": corpus.content_sha256,
        }
    )


def check_trunk_meta(trunk_dir, entry, cfg, tc, seed, corpus, trunk_id) -> dict:
    """Refuse to mix checkpoints of different configurations under one trunk id; the
    trunk's description, for :func:`_write_trunk_meta`."""
    info = trunk_meta(entry, cfg, tc, seed, corpus, trunk_id)
    f = trunk_dir / "trunk.json"
    held = read_trunk_meta(f) if f.exists() else info
    if held != info:
        raise BayesplitError(
            f"{trunk_dir} holds a trunk with another configuration; use another workdir or trunk id"
        )
    return info


def names_a_folder(name: str) -> bool:
    """Whether ``name`` is one folder's name, not a path (nor ``.`` or ``..``)."""
    return name not in (".", "..") and not any(c in name for c in "/\\\0")


def check_trunk_id(trunk_id: Any) -> None:
    """A trunk id names one folder under ``workdir/trunks``: a path (``../other/trunks/t``)
    would train a trunk in another workdir."""
    if not isinstance(trunk_id, str) or not trunk_id.strip():
        raise BayesplitError(f"trunk_id must be a trunk id (text), got {reprlib.repr(trunk_id)}")
    if not names_a_folder(trunk_id):
        raise BayesplitError(
            "trunk_id must be a trunk id (a folder name under <workdir>/trunks), not a path: "
            f"{reprlib.repr(trunk_id)}"
        )


def read_trunk_meta(f: Path) -> dict:
    """A trunk's ``trunk.json``, or a one-line refusal when it cannot be read."""
    try:
        held = read_json(f)
        if not isinstance(held, dict):
            raise ValueError(f"a JSON {type(held).__name__}, not an object")
    except (OSError, ValueError, UnicodeDecodeError) as exc:  # empty after a crash, or edited
        raise BayesplitError(
            f"{f} cannot be read ({type(exc).__name__}: {exc}); it says which configuration "
            "the checkpoints beside it were trained with: restore it, or delete the folder "
            "to train this trunk again"
        ) from None
    return held


def _write_trunk_meta(trunk_dir: Path, info: dict) -> None:
    f = trunk_dir / "trunk.json"
    if not f.exists() and int(os.environ.get("RANK", "0")) == 0:
        atomic_write_text(f, json.dumps(info, indent=2, sort_keys=True))


def trunk_checkpoints(
    workdir: str | Path,
    runs: pd.DataFrame | None,
    ladder: str | Path | None = None,
    train_overrides: dict[str, Any] | None = None,
    seed: int | None = None,
) -> dict[float, dict[str, Any]]:
    """Per model size, where its trunk in ``workdir`` can be resumed, for
    :func:`bayesplit.design.suggest`'s ``checkpoints``: a dict of ``tokens`` (its stable and
    periodic checkpoints), ``tokens_per_step``, ``cooldown_fraction`` and ``trunk`` (its id;
    None where no trunk of the size will be resumed).

    The trunk of a size is, of the trunks its ``runs`` name that are in ``workdir``, the
    furthest one the trainer would resume: with ``ladder`` (and the ``train_overrides`` the
    trainer will use) one of the ladder's model trained with the trunk settings it will use
    (batch size, learning rate, mixture), and with ``seed`` (the trainer's ``seed``) one
    trained with that seed. The corpus is not compared: the runs of one store share one. A
    size without one (its rows imported, trained elsewhere or otherwise) has no checkpoint:
    its runs are priced as a new trunk, which is what the trainer would train. With
    ``ladder``, every ladder size is listed, in the runs' N convention, with its steps and
    cooldown; without, the sizes of ``runs``, with the default cooldown.
    """
    from bayesplit.design import ladder_as_fitted, trunks_by_size
    from bayesplit.train.ladder import load_ladder

    workdir = check_path(workdir, "workdir")
    if seed is not None:  # "3" matched no trunk: every run priced as a new one
        seed = check_seed(seed)
    if Path(workdir).exists() and not Path(workdir).is_dir():
        raise BayesplitError(f"--workdir (in Python: workdir=) {workdir} is not a folder")
    if not Path(workdir).exists():
        # before the first run the trainer has made none (the how-to's first suggest was
        # refused); said, as a typo prices every run as a new trunk
        warnings.warn(
            f"workdir {workdir} does not exist (yet): every run is priced with a trunk "
            "trained from scratch, as the trainer would train it there",
            UserWarning,
            stacklevel=2,
        )
    out: dict[float, dict[str, Any]] = {}
    identity: dict[float, dict] = {}  # per size, the trunk settings the trainer will use
    if ladder is not None:
        if runs is None or not len(runs):
            entries, count = load_ladder(ladder), "params"
        else:
            entries, count = ladder_as_fitted(ladder, runs)  # as suggest reads the ladder
        for e in entries:
            tc = TrainConfig.from_entry(e, **(train_overrides or {}))
            out[float(e[count])] = {
                "tokens": [],
                "tokens_per_step": tc.batch_size * int(e["seq_len"]),
                "cooldown_fraction": tc.cooldown_fraction,
                "trunk": None,
            }
            identity[float(e[count])] = {"model": e["name"], "train": jsonable(tc.trunk_identity())}
    for n, trunks in trunks_by_size(runs).items():
        info = out.setdefault(
            n, {"tokens": [], "tokens_per_step": None, "cooldown_fraction": None, "trunk": None}
        )
        for trunk, _ in trunks:  # furthest first
            trunk_dir = Path(workdir) / "trunks" / trunk
            f = trunk_dir / "trunk.json"
            if not f.is_file():
                continue
            meta = read_trunk_meta(f)
            if (n in identity and any(meta.get(k) != v for k, v in identity[n].items())) or (
                seed is not None and meta.get("seed") != seed
            ):
                continue  # the trainer will not resume this trunk
            try:
                tokens_per_step = int(meta["train"]["batch_size"]) * int(
                    meta["model_config"]["seq_len"]
                )
            except (KeyError, TypeError, ValueError):
                raise BayesplitError(
                    f"{f} does not say the trunk's batch size and sequence length; it was not "
                    "written by this trainer"
                ) from None
            steps = resumable_steps(trunk_dir)
            info.update(tokens=[float(s * tokens_per_step) for s in steps], trunk=trunk)
            info["tokens_per_step"] = tokens_per_step
            break
    return out
