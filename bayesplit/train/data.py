"""Deterministic training batches from a token corpus (:class:`bayesplit.train.corpus.Corpus`).

**Data order.** Batch ``t`` of a stream is a pure function of ``(seed, stream name, t)``:
a fresh ``numpy`` generator seeded with that triple picks, for every row, a domain (with
probability proportional to the stream's weights) and a uniform random offset into that
domain's train tokens, and the row is the ``seq_len + 1`` tokens from there. Nothing is
carried between steps, so the data position of a run is just its step count: a resumed or
branched run sees exactly the batches an uninterrupted run would, and under DDP every rank
draws the same global batch and keeps its own rows (``rank::world``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from bayesplit.errors import BayesplitError
from bayesplit.train.corpus import Corpus


@dataclass(frozen=True)
class Stream:
    """``rows`` rows of every batch, drawn from ``domains`` with probabilities ∝ ``weights``."""

    name: str
    domains: tuple[str, ...]
    weights: tuple[float, ...]
    rows: int


class BatchSampler:
    """Deterministic batches from one or more streams (e.g. a domain plus general replay).

    Parameters
    ----------
    corpus
        The corpus to read train tokens from.
    streams
        Row sources; a batch is the concatenation of every stream's rows.
    seq_len
        Tokens per row that the model sees (each row reads ``seq_len + 1`` for the targets).
    seed
        Seed of the data order.
    """

    def __init__(self, corpus: Corpus, streams: list[Stream], seq_len: int, seed: int):
        self.streams = [s for s in streams if s.rows > 0]
        self.seq_len = int(seq_len)
        self.seed = int(seed)
        self.batch_size = sum(s.rows for s in self.streams)
        self.vocab_size = corpus.vocab_size
        self._arrays = {}
        for s in self.streams:
            for d in s.domains:
                arr = corpus.tokens(d, "train")
                if len(arr) < self.seq_len + 2:
                    raise BayesplitError(
                        f"domain {d!r} has {len(arr)} train tokens, fewer than seq_len + 2 = {self.seq_len + 2}"
                    )
                self._arrays[d] = arr

    def rows_of(self, step: int) -> list[tuple[str, int]]:
        """(domain, offset) of every row of global batch ``step``."""
        out: list[tuple[str, int]] = []
        for s in self.streams:
            # crc32 of the stream name keeps streams independent and stable across Python runs
            rng = np.random.default_rng([self.seed, zlib.crc32(s.name.encode()), int(step)])
            which = rng.choice(len(s.domains), size=s.rows, p=shares(s.weights))
            highs = np.array([len(self._arrays[d]) - self.seq_len - 1 for d in s.domains])
            offsets = rng.integers(0, highs[which])
            out.extend((s.domains[w], int(o)) for w, o in zip(which, offsets, strict=True))
        return out

    def batch(self, step: int, rank: int = 0, world: int = 1) -> np.ndarray:
        """This rank's rows of batch ``step`` as an int64 array (rows, seq_len + 1)."""
        rows = self.rows_of(step)[rank::world]
        t = self.seq_len + 1
        out = np.stack([self._arrays[d][o : o + t] for d, o in rows]).astype(np.int64)
        check_token_ids(out, self.vocab_size, f"a train batch (step {step})")
        return out


def check_first_reads(
    sampler: BatchSampler, corpus: Corpus, vocab_size: int, eval_tokens: int
) -> None:
    """Draw what a run reads first (its first batch and every validation window) and refuse
    what training would otherwise stumble on after it has made its store and checkpoint
    folder: a validation split too short for a window, token ids the model has no
    embedding for. Later batches are still checked as they are drawn."""
    check_token_ids(sampler.batch(0), vocab_size, "the first train batch")
    for d in corpus.domains:
        windows = eval_windows(corpus.tokens(d, "val"), sampler.seq_len, eval_tokens, d)
        check_token_ids(windows, vocab_size, f"the {d} validation windows")


def shares(weights) -> np.ndarray:
    """Relative weights as shares summing to 1. Weights near 1e308 sum to infinity (every
    share was 0, or NaN to ``rng.choice``): those are scaled by their largest first; others
    are divided by their sum alone, so the draws of existing runs stay bit for bit."""
    p = np.asarray(weights, dtype=float)
    with np.errstate(over="ignore"):  # an infinite sum is the case handled here
        total = p.sum()
    if not np.isfinite(total):
        p = p / p.max()
    return p / p.sum()


def passes(corpus: Corpus, stream: Stream, tokens: int) -> tuple[float, str]:
    """Expected passes over the train tokens of the stream's most repeated domain when
    ``tokens`` are drawn from it, and that domain.

    Rows are drawn at random offsets, so a pass is a share of the draws, not a sweep: this
    is the epoch count of the data-constrained scaling literature (tokens over unique
    tokens). With weights proportional to the domains' sizes (the default mixture) every
    domain is repeated equally, as often as the mixture as a whole.
    """
    per = {
        d: tokens * share / max(corpus.n_tokens(d, "train"), 1)
        for d, share in zip(stream.domains, shares(stream.weights), strict=True)
    }
    worst = max(per, key=per.get)
    return per[worst], worst


def check_token_ids(tokens: np.ndarray, vocab_size: int, where: str) -> None:
    """Refuse token ids the model has no embedding for (a manifest whose ``vocab_size`` is
    too small for its shards), before they reach the model as an index error."""
    top = int(tokens.max(initial=0))
    if top >= vocab_size:
        raise BayesplitError(
            f"token id {top} in {where} is not below the corpus's vocab_size {vocab_size}: "
            "the manifest's vocab_size is too small for its shards"
        )


def eval_windows(
    tokens: np.ndarray, seq_len: int, max_tokens: int, domain: str | None = None
) -> np.ndarray:
    """Fixed validation windows: evenly spaced, non-overlapping, ``seq_len + 1`` tokens each.

    ``n = min(max_tokens // seq_len, (len - 1) // seq_len)`` windows spread over the whole
    split (so every part of the val set is represented), each giving ``seq_len`` predicted
    tokens; a val split shorter than one window gives one shorter window.
    """
    length = len(tokens)
    if length < 2:
        which = f"the {domain!r} validation split" if domain is not None else "a validation split"
        raise BayesplitError(
            f"{which} has {length} token{'s' if length != 1 else ''}; a validation window "
            "needs at least 2 (one to read, one to predict)"
        )
    w = min(seq_len, length - 1)
    n = max(1, min(int(max_tokens) // w, (length - 1) // w))
    starts = np.linspace(0, length - 1 - w, n).round().astype(np.int64)
    return np.stack([np.asarray(tokens[s : s + w + 1]) for s in starts]).astype(np.int64)
