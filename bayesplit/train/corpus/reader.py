"""The corpus format and its one reader, :class:`Corpus` (``corpus info`` and the trainer).

A corpus is a folder of token shards, one ``train`` and one ``val`` shard per domain, plus the
tokenizer that made them and a manifest that describes both::

    OUT/manifest.json          format, vocab size, end-of-text id, hashes, per-domain counts
    OUT/tokenizer.json         byte-level BPE, in the ``tokenizers`` library's own JSON
    OUT/documents.tsv          one line per document, in shard order (domain, split, source, ...)
    OUT/NAME/train.bin         raw little-endian uint16 token ids: documents concatenated,
    OUT/NAME/val.bin           each followed by the end-of-text token

Tokens made elsewhere
    The trainer reads only the manifest's ``format`` (``"bayesplit-corpus/1"``), ``vocab_size``
    (at most 65,536), ``dtype`` (``"uint16"``) and ``domains`` (per domain, ``train`` and
    ``val``, each ``{"file": relative path, "tokens": count, "documents": count}``), and the
    shards. A corpus tokenized by other tools (e.g. a GPT-2 vocabulary) needs only those;
    ``eot_token`` and ``content_sha256`` are recommended (the hash goes into trunk ids and
    run rows, so runs on different data never share a trunk), ``tokenizer`` and its hash are
    needed only by :meth:`Corpus.tokenizer` and :meth:`Corpus.verify`.

Example
-------
>>> from bayesplit.train.corpus import Corpus    # doctest: +SKIP
>>> corpus = Corpus("corpus/")                   # doctest: +SKIP
>>> corpus.tokens("code", "val")[:8]             # doctest: +SKIP
memmap([ 318,  257, 1043, ...], dtype=uint16)
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bayesplit.errors import BayesplitError

FORMAT = "bayesplit-corpus/1"
SPLITS = ("train", "val")


def sha256_file(path: Path) -> str:
    """SHA-256 of one file's bytes, as hex (the manifest's ``tokenizer_sha256``)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_hash(root: Path, files: Sequence[str]) -> str:
    """SHA-256 over the shards: for each file (in the given order) its relative path, a NUL,
    its size in bytes as decimal and a NUL, then its bytes."""
    h = hashlib.sha256()
    for rel in files:
        path = root / rel
        h.update(rel.encode() + b"\0" + str(path.stat().st_size).encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def shard_files(domains: Sequence[str]) -> list[str]:
    """The shard paths, relative to the corpus folder, in the order ``content_hash`` reads them."""
    return [f"{d}/{s}.bin" for d in sorted(domains) for s in SPLITS]


class Corpus:
    """A tokenized corpus, opened read-only: the manifest and the shard sizes are checked on
    open, and the shards are memory-mapped on first use. The one reader of the format, for
    ``corpus info`` and the trainer alike.

    Example
    -------
    >>> corpus = Corpus("corpus/")                   # doctest: +SKIP
    >>> corpus.domains, corpus.vocab_size            # doctest: +SKIP
    (['code', 'docs'], 8192)
    >>> val = corpus.tokens("code", "val")           # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise BayesplitError(f"corpus folder {self.path} does not exist")
        mpath = self.path / "manifest.json"
        if not mpath.is_file():
            raise BayesplitError(
                f"{self.path} has no manifest.json; build a corpus with `bayesplit corpus build`"
            )
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BayesplitError(f"{mpath} is not valid JSON: {exc}") from None
        _validate_manifest(manifest, mpath)
        self.manifest: dict[str, Any] = manifest
        for name, entry in manifest["domains"].items():
            for split in SPLITS:
                rec = entry[split]
                shard = self.path / rec["file"]
                if not shard.is_file():
                    raise BayesplitError(f"corpus shard {shard} is missing")
                size = shard.stat().st_size
                if size != 2 * rec["tokens"]:
                    raise BayesplitError(
                        f"corpus shard {shard} has {size} bytes but the manifest records "
                        f"{rec['tokens']} tokens ({2 * rec['tokens']} bytes) for {name}/{split}"
                    )
        self._maps: dict[tuple[str, str], np.ndarray] = {}

    def __repr__(self) -> str:
        return f"Corpus({str(self.path)!r}, domains={self.domains}, vocab_size={self.vocab_size})"

    @property
    def domains(self) -> list[str]:
        """Domain names, sorted."""
        return sorted(self.manifest["domains"])

    @property
    def vocab_size(self) -> int:
        """Tokenizer vocabulary size."""
        return int(self.manifest["vocab_size"])

    @property
    def eot_token(self) -> int:
        """End-of-text token id (-1 for a corpus whose manifest records none)."""
        return int(self.manifest.get("eot_token", -1))

    @property
    def content_sha256(self) -> str:
        """SHA-256 of the shards as the manifest records it (empty if it records none)."""
        return str(self.manifest.get("content_sha256") or "")

    def check_domain(self, domain: str) -> None:
        """Raise BayesplitError if the corpus has no such domain."""
        if domain not in self.manifest["domains"]:
            raise BayesplitError(
                f"unknown domain {domain!r} in corpus {self.path} (domains: {', '.join(self.domains)})"
            )

    def _record(self, domain: str, split: str) -> dict[str, Any]:
        self.check_domain(domain)
        if split not in SPLITS:
            raise BayesplitError(f"split must be 'train' or 'val', not {split!r}")
        return self.manifest["domains"][domain][split]

    def n_tokens(self, domain: str, split: str) -> int:
        """Number of tokens of ``domain`` in ``split`` (train or val)."""
        return int(self._record(domain, split)["tokens"])

    def tokens(self, domain: str, split: str = "train") -> np.ndarray:
        """The token ids of one domain and split as a read-only ``np.memmap`` of uint16
        (mapped once per corpus object)."""
        rec = self._record(domain, split)
        if rec["tokens"] == 0:  # numpy cannot map an empty file
            return np.zeros(0, dtype=np.uint16)
        key = (domain, split)
        if key not in self._maps:
            self._maps[key] = np.memmap(
                self.path / rec["file"], dtype="<u2", mode="r", shape=(rec["tokens"],)
            )
        return self._maps[key]

    def _built_file(self, key: str) -> Path:
        """A file only ``corpus build`` writes (the tokenizer), refused when absent."""
        name = self.manifest.get(key)
        if not name or not (self.path / name).is_file():
            raise BayesplitError(
                f"corpus {self.path} has no {key} file"
                + (f" ({self.path / name} is missing)" if name else " in its manifest")
            )
        return self.path / name

    def tokenizer(self):
        """The corpus tokenizer (a ``tokenizers.Tokenizer``)."""
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(self._built_file("tokenizer")))

    def documents(self) -> list[dict[str, Any]]:
        """One record per document in shard order: domain, split, source, part, chars, tokens
        (tokens without the end-of-text token)."""
        path = self.path / self.manifest.get("documents_file", "documents.tsv")
        if not path.is_file():
            raise BayesplitError(f"{path} is missing")
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        for r in rows:
            for key in ("part", "chars", "tokens"):
                r[key] = int(r[key])
        return rows

    def info(self) -> dict[str, Any]:
        """A summary: counts per domain and split, totals, hashes and build settings."""
        m = self.manifest
        domains = {
            name: {
                f"{split}_{what}": m["domains"][name][split][what]
                for split in SPLITS
                for what in ("documents", "tokens")
            }
            for name in self.domains
        }
        totals = {
            key: sum(d[key] for d in domains.values())
            for key in ("train_documents", "train_tokens", "val_documents", "val_tokens")
        }
        keys = (
            "format",
            "vocab_size",
            "requested_vocab_size",
            "eot_token",
            "domain_mode",
            "seed",
            "val_fraction",
            "max_doc_chars",
            "source",
            "tokenizer_sha256",
            "content_sha256",
        )
        return {
            "path": str(self.path),
            **{k: m[k] for k in keys if k in m},
            "domains": domains,
            "totals": totals,
        }

    def verify(self) -> None:
        """Recompute the tokenizer and content hashes; raise if they differ from the manifest."""
        m = self.manifest
        missing = [k for k in ("tokenizer_sha256", "content_sha256") if not m.get(k)]
        if missing:
            raise BayesplitError(
                f"{self.path}: cannot verify, the manifest records no {' or '.join(missing)}"
            )
        tok_hash = sha256_file(self._built_file("tokenizer"))
        if tok_hash != m["tokenizer_sha256"]:
            raise BayesplitError(f"{self.path}: tokenizer.json does not match its recorded hash")
        if content_hash(self.path, shard_files(m["domains"])) != m["content_sha256"]:
            raise BayesplitError(f"{self.path}: the shards do not match the recorded content hash")


def _validate_manifest(m: Any, where: Path) -> None:
    def bad(msg: str) -> BayesplitError:
        return BayesplitError(f"{where}: {msg}")

    if not isinstance(m, dict):
        raise bad("expected a JSON object")
    if m.get("format") != FORMAT:
        raise bad(f"format is {m.get('format')!r}, expected {FORMAT!r}")
    required = {"vocab_size": int, "dtype": str, "domains": dict}
    # what `corpus build` also records; a corpus tokenized elsewhere may leave them out
    optional = {"eot_token": int, "tokenizer": str, "tokenizer_sha256": str, "content_sha256": str}
    for key, typ in (required | optional).items():
        if key not in required and key not in m:
            continue
        if not isinstance(m.get(key), typ) or isinstance(m.get(key), bool):
            raise bad(f"{key!r} is missing or not a {typ.__name__}")
    if m["dtype"] != "uint16":
        raise bad(f"dtype is {m['dtype']!r}; only 'uint16' is supported")
    if not 1 <= m["vocab_size"] <= 65536:
        raise bad(f"vocab_size {m['vocab_size']} does not fit uint16")
    if "eot_token" in m and not 0 <= m["eot_token"] < m["vocab_size"]:
        raise bad(f"eot_token {m['eot_token']} is outside the vocabulary")
    if not m["domains"]:
        raise bad("no domains")
    for name, entry in m["domains"].items():
        if not isinstance(entry, dict):
            raise bad(f"domain {name!r} is not an object")
        for split in SPLITS:
            rec = entry.get(split)
            if not isinstance(rec, dict):
                raise bad(f"domain {name!r} has no {split!r} entry")
            file, tokens, docs = rec.get("file"), rec.get("tokens"), rec.get("documents")
            if not isinstance(file, str) or Path(file).is_absolute() or ".." in Path(file).parts:
                raise bad(f"{name}/{split}: 'file' must be a relative path inside the corpus")
            for key, val in (("tokens", tokens), ("documents", docs)):
                if not isinstance(val, int) or isinstance(val, bool) or val < 0:
                    raise bad(f"{name}/{split}: {key!r} must be a non-negative integer")


def unigram_entropy(corpus: Corpus, split: str = "val", domain: str | None = None) -> float:
    """Cross-entropy in nats/token of a unigram model fitted on the training tokens
    (add-one smoothed over the vocabulary) and evaluated on ``split``.

    A language model that learned nothing beyond token frequencies scores about this; a trained
    model should score well below it. ``domain=None`` pools every domain.

    >>> unigram_entropy(Corpus("corpus/"))  # doctest: +SKIP
    6.93
    """
    names = corpus.domains if domain is None else [domain]
    v = corpus.vocab_size
    counts = np.zeros(v, dtype=np.int64)
    for name in names:
        counts += np.bincount(corpus.tokens(name, "train"), minlength=v)[:v]
    logp = np.log(counts + 1.0) - math.log(counts.sum() + v)
    total, n = 0.0, 0
    for name in names:
        toks = corpus.tokens(name, split)
        total -= float(np.bincount(toks, minlength=v)[:v] @ logp)
        n += toks.size
    if n == 0:
        raise BayesplitError(f"no {split} tokens to evaluate on")
    return total / n
