"""Run-table rows of a trained model, and the run store they go to."""

from __future__ import annotations

import math
import os
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from bayesplit._io import jsonable
from bayesplit.errors import BayesplitError
from bayesplit.train.config import config_hash, count_params, drawn_mixture
from bayesplit.train.corpus import Corpus
from bayesplit.train.loop import Trainer
from bayesplit.train.runtime import Runtime, git_commit


def mixture_label(weights: dict[str, float] | None) -> str:
    """The pretraining mixture a row's trunk saw: ``"tokens"`` (domains in proportion to
    their train tokens) or the weights given as shares, ``code=0.6667,web=0.3333`` (sorted
    by domain; 4 significant digits, so ``code=2,web=1`` and ``code=1,web=0.5`` are one
    mixture)."""
    weights = drawn_mixture(weights)  # a domain of weight 0 is not in the mixture
    if weights is None:
        return "tokens"
    top = max(float(w) for w in weights.values())  # weights near the largest float: no inf
    total = math.fsum(float(w) / top for w in weights.values())
    return ",".join(f"{d}={float(w) / top / total:.4g}" for d, w in sorted(weights.items()))


def run_rows(
    tr: Trainer,
    losses: dict[str, tuple[float, int]],
    *,
    entry: dict,
    run_id: str,
    trunk_id: str,
    seed: int,
    pretrain_tokens: int,
    spec_tokens: int,
    train_domain: str | None,
    step: int,
    wall_time_s: float,
    tokens_per_s: float,
    schedule: str,
    corpus: Corpus,
    extra: dict,
) -> list[dict]:
    """One row per eval domain: the loss, the exact token counts, the settings and the speed."""
    mfu, peak, peak_source = tr.mfu(tokens_per_s)
    common = {
        "run_id": run_id,
        "seed": int(seed),
        "params": count_params(tr.cfg),
        "pretrain_tokens": int(pretrain_tokens),
        "spec_tokens": int(spec_tokens),
        "train_domain": train_domain,
        "step": int(step),
        "trunk_id": trunk_id,
        "schedule": schedule,
        "params_with_embeddings": count_params(tr.cfg, embeddings=True),
        "wall_time_s": float(wall_time_s),
        "tokens_per_s": float(tokens_per_s),
        "mfu": mfu,
        "peak_flops": peak,
        "peak_flops_source": peak_source,
        "config_hash": config_hash(tr.cfg.to_dict(), jsonable(asdict(tr.tc))),
        "git_commit": git_commit(),
        "model": entry.get("name"),
        "replay_fraction": 0.0,
        "device": str(tr.rt.device.type),
        "dtype": tr.rt.dtype,
        "world_size": tr.rt.world,
        "batch_size": tr.tc.batch_size,
        "seq_len": tr.cfg.seq_len,
        "lr": tr.tc.lr,
        "vocab_size": tr.cfg.vocab_size,
        "corpus_sha256": corpus.content_sha256,
        "pretrain_mixture": mixture_label(tr.tc.weights),
        **extra,
    }
    return [
        {**common, "eval_domain": d, "loss": loss, "eval_tokens": n}
        for d, (loss, n) in losses.items()
    ]


def check_row_counts(params: int, pretrain_tokens: int | None = None, *, where: str) -> None:
    """Refuse, before training, a run whose rows the run store would refuse after it.

    The store reads N or D below 1,000 as a unit slip (millions for raw counts); a run that
    trained to the end and was then refused wasted its compute, left an empty store and
    said so in words meant for imported tables. Token counts asked for are checked where
    they become steps (:func:`~bayesplit.train.config.exact_steps`); ``pretrain_tokens`` is
    for a D read from a checkpoint.
    """
    from bayesplit.runs import MIN_PLAUSIBLE_COUNT as least

    if params < least:
        raise BayesplitError(
            f"{where}: N = {params:,} parameters, and the run store refuses N below "
            f"{least:,.0f} (it reads such counts as a unit slip): use a larger model"
        )
    if pretrain_tokens is not None and pretrain_tokens < least:
        raise BayesplitError(
            f"{where}: D = {pretrain_tokens:,} pretraining tokens, and the run store refuses D "
            f"below {least:,.0f}: branch from a later checkpoint"
        )


def write_rows(store, rows: list[dict], rt: Runtime) -> pd.DataFrame:
    """Append the rows (main rank only) and return them as a DataFrame.

    ``store`` is a run store or its path: a path is opened (and the store created) only
    now, once the run has trained and evaluated, so a run that fails leaves no empty store.
    """
    df = pd.DataFrame(rows)
    if store is not None and rt.main and len(df):
        from bayesplit.runs import validate_runs

        validate_runs(df)  # before the store is opened: a refused row must not create one
        open_store(store).append(df)
    return df if rt.main else pd.DataFrame()


def warn(message: str) -> None:
    """One ``warning:`` line on stderr, from the main process only (under torchrun every rank
    runs the same code); stderr keeps it out of the ``--json`` document on stdout."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"warning: {' '.join(message.split())}", file=sys.stderr, flush=True)


def open_store(store):
    """A run store as given, or opened from its path; None stays None (rows are not written)."""
    if store is None or hasattr(store, "append"):
        return store
    from bayesplit.store import RunStore

    return RunStore(store)


def store_for_lookup(store):
    """The run store to look rows up in before training, without creating anything.

    A store object stays as it is; a path is checked (a foreign file is refused, untouched)
    and opened read-only, or None when it does not exist yet (or is an empty database). A
    path that does not exist must be creatable: the nearest existing folder above it must
    be writable, so a run is not refused only after it trained. :func:`write_rows` creates
    the store.
    """
    if store is None or hasattr(store, "append"):
        return store
    from bayesplit.store import RunStore, check_new_store_name

    path = Path(store)
    if not path.exists():
        check_new_store_name(path)
        folder = path.parent
        while not folder.exists():
            folder = folder.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise BayesplitError(f"cannot create the run store {path}: {folder} is not writable")
        return None
    RunStore.check(path, allow_empty=True)
    try:
        return RunStore(path, read_only=True)
    except BayesplitError:  # an empty SQLite file: a store not made yet
        return None


def steps_in_store(store, run_id: str) -> set[int]:
    """Steps of ``run_id`` already in the store (-1 for rows without a step)."""
    if store is None or len(store) == 0:
        return set()
    df = store.read()
    df = df[df["run_id"] == run_id]
    if "step" not in df:
        return {-1} if len(df) else set()
    return {int(s) if pd.notna(s) else -1 for s in df["step"]}


def check_store_corpus(
    known: pd.DataFrame, corpus, store: Path, *, unhashed_ok: bool = False
) -> None:
    """Refuse a store whose trained rows come from another corpus, or from a corpus it cannot
    tell: their losses may be in another tokenizer's nats per token, and one fit of both
    would mix them (the experiment budget would count their runs too).

    Every row the trainer writes records its corpus's hash (computed from the shards when
    the manifest records none); a row without one was imported or written by an older
    version, and is refused rather than assumed to be this corpus's, unless
    ``unhashed_ok`` (the train commands, which only add rows, leave those to the user).
    """
    if not len(known):
        return
    if "corpus_sha256" in known:
        hashes = known["corpus_sha256"].map(lambda h: h if isinstance(h, str) and h else None)
    else:
        hashes = pd.Series([None] * len(known), index=known.index, dtype=object)
    own = corpus.content_sha256
    other = sorted(set(hashes.dropna()) - {own})
    if other:
        raise BayesplitError(
            f"{store} holds rows trained on another corpus (content sha256 {other[0][:12]}…, "
            f"this corpus {own[:12]}…); use another --store (in Python: store=)"
        )
    missing = int(hashes.isna().sum())
    if missing and not unhashed_ok:
        raise BayesplitError(
            f"{store} holds {missing} of its {len(known)} rows without a corpus_sha256 "
            "(imported, or trained before hashes were recorded), so the loop cannot tell "
            f"whether they were trained on this corpus ({own[:12]}…); use another --store "
            "(in Python: store=) for this corpus, or fit those rows apart"
        )


def check_corpus_of_store(store, corpus: Corpus) -> None:
    """Refuse a store (a path or a store object) holding rows trained on another corpus,
    before anything is trained: the train functions check it as the train commands do."""
    known = store_for_lookup(store)
    if known is None or len(known) == 0:
        return
    where = getattr(known, "path", store)
    check_store_corpus(known.read(), corpus, where, unhashed_ok=True)
