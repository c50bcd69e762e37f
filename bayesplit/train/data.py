"""Reading a token corpus and drawing deterministic training batches from it.

**Corpus format** (written by ``bayesplit corpus build``; this module reads it directly,
the format is the contract)::

    DIR/manifest.json    {"format": "bayesplit-corpus/1", "vocab_size", "dtype": "uint16",
                          "eot_token", "content_sha256", "domains": {NAME: {"train": {"file",
                          "tokens", "documents"}, "val": {...}}}, ...}
    DIR/NAME/train.bin   raw uint16 tokens, documents separated by eot_token
    DIR/NAME/val.bin

**Data order.** Batch ``t`` of a stream is a pure function of ``(seed, stream name, t)``:
a fresh ``numpy`` generator seeded with that triple picks, for every row, a domain (with
probability proportional to the stream's weights) and a uniform random offset into that
domain's train tokens, and the row is the ``seq_len + 1`` tokens from there. Nothing is
carried between steps, so the data position of a run is just its step count: a resumed or
branched run sees exactly the batches an uninterrupted run would, and under DDP every rank
draws the same global batch and keeps its own rows (``rank::world``).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bayesplit.errors import BayesplitError

FORMAT = "bayesplit-corpus/1"


@dataclass
class CorpusData:
    """A tokenized corpus on disk: per-domain train/val token arrays, opened lazily as memmaps."""

    path: Path
    manifest: dict
    domains: list[str] = field(init=False)
    _cache: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.domains = sorted(self.manifest["domains"])

    @property
    def vocab_size(self) -> int:
        """Tokenizer vocabulary size."""
        return int(self.manifest["vocab_size"])

    @property
    def eot_token(self) -> int:
        """End-of-text token id (-1 if the corpus has none)."""
        return int(self.manifest.get("eot_token", -1))

    @property
    def content_sha256(self) -> str:
        """SHA-256 of the corpus content, from the manifest."""
        return str(self.manifest.get("content_sha256") or "")

    def n_tokens(self, domain: str, split: str) -> int:
        """Number of tokens of ``domain`` in ``split`` (train or val)."""
        self.check_domain(domain)
        return int(self.manifest["domains"][domain][split]["tokens"])

    def check_domain(self, domain: str) -> None:
        """Raise BayesplitError if the corpus has no such domain."""
        if domain not in self.manifest["domains"]:
            raise BayesplitError(
                f"unknown domain {domain!r} in corpus {self.path} (domains: {', '.join(self.domains)})"
            )

    def tokens(self, domain: str, split: str) -> np.ndarray:
        """The token array of one domain and split (``"train"`` or ``"val"``), memory-mapped."""
        self.check_domain(domain)
        key = (domain, split)
        if key not in self._cache:
            info = self.manifest["domains"][domain][split]
            f = self.path / info["file"]
            if not f.is_file():
                raise BayesplitError(f"corpus {self.path}: missing token file {info['file']}")
            n = int(info["tokens"])
            if f.stat().st_size != 2 * n:
                raise BayesplitError(
                    f"corpus {self.path}: {info['file']} has {f.stat().st_size // 2} tokens, manifest says {n}"
                )
            self._cache[key] = np.memmap(f, dtype=np.uint16, mode="r", shape=(n,))
        return self._cache[key]


def open_corpus(path: str | Path) -> CorpusData:
    """Open a corpus directory; a missing or malformed manifest is a :class:`BayesplitError`."""
    p = Path(path)
    m = p / "manifest.json"
    if not m.is_file():
        raise BayesplitError(f"no corpus at {p} (no manifest.json)")
    try:
        manifest = json.loads(m.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BayesplitError(f"{m}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BayesplitError(f"{m}: not a {FORMAT} manifest")
    if manifest.get("dtype", "uint16") != "uint16":
        raise BayesplitError(f"{m}: token dtype {manifest.get('dtype')!r} is not uint16")
    if not isinstance(manifest.get("domains"), dict) or not manifest["domains"]:
        raise BayesplitError(f"{m}: the corpus has no domains")
    return CorpusData(p, manifest)


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

    def __init__(self, corpus: CorpusData, streams: list[Stream], seq_len: int, seed: int):
        self.streams = [s for s in streams if s.rows > 0]
        self.seq_len = int(seq_len)
        self.seed = int(seed)
        self.batch_size = sum(s.rows for s in self.streams)
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
            p = np.asarray(s.weights, dtype=float)
            which = rng.choice(len(s.domains), size=s.rows, p=p / p.sum())
            highs = np.array([len(self._arrays[d]) - self.seq_len - 1 for d in s.domains])
            offsets = rng.integers(0, highs[which])
            out.extend((s.domains[w], int(o)) for w, o in zip(which, offsets, strict=True))
        return out

    def batch(self, step: int, rank: int = 0, world: int = 1) -> np.ndarray:
        """This rank's rows of batch ``step`` as an int64 array (rows, seq_len + 1)."""
        rows = self.rows_of(step)[rank::world]
        t = self.seq_len + 1
        return np.stack([self._arrays[d][o : o + t] for d, o in rows]).astype(np.int64)


def eval_windows(tokens: np.ndarray, seq_len: int, max_tokens: int) -> np.ndarray:
    """Fixed validation windows: evenly spaced, non-overlapping, ``seq_len + 1`` tokens each.

    ``n = min(max_tokens // seq_len, (len - 1) // seq_len)`` windows spread over the whole
    split (so every part of the val set is represented), each giving ``seq_len`` predicted
    tokens; a val split shorter than one window gives one shorter window.
    """
    length = len(tokens)
    if length < 2:
        raise BayesplitError("a validation split needs at least 2 tokens")
    w = min(seq_len, length - 1)
    n = max(1, min(int(max_tokens) // w, (length - 1) // w))
    starts = np.linspace(0, length - 1 - w, n).round().astype(np.int64)
    return np.stack([np.asarray(tokens[s : s + w + 1]) for s in starts]).astype(np.int64)
