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
    ``eot_token`` and ``content_sha256`` are recommended. The hash goes into trunk ids and run
    rows, so runs on different data never share a trunk: without it, :attr:`Corpus.content_sha256`
    computes it from the shards (as :func:`content_hash` defines it, the hash ``corpus build``
    records), reading every shard once per process. ``tokenizer`` and its hash are needed only
    by :meth:`Corpus.tokenizer` and :meth:`Corpus.verify`.

What is refused on open
    Domain names other than ``corpus build``'s (``[A-Za-z0-9_-]``, starting and ending with a
    letter or digit, at most 100 characters: they become file and run names), shard paths that
    lead outside the corpus folder (``..``, absolute paths, or symlinks that resolve outside
    it), a validation shard that is also a training shard (of its domain or another: the
    validation loss would be measured on trained text) and shards whose size is not the
    recorded token count. Token ids at or above
    ``vocab_size`` are refused wherever a whole shard is read: :meth:`Corpus.verify`,
    :func:`unigram_entropy` (``corpus info``) and the hashing of a manifest without a hash.

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
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bayesplit._io import read_json
from bayesplit._parse import check_path
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


#: A domain name as ``corpus build`` makes one (see ``sanitize_name``): ASCII letters, digits,
#: ``_`` and ``-``, starting and ending with a letter or digit. Domains name files and run ids.
DOMAIN_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?")
#: Longest domain name: run ids hold it next to the trunk id, and file names stop at 255 bytes.
MAX_DOMAIN_NAME = 100


def domain_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a domain name (None if it can)."""
    if not DOMAIN_NAME.fullmatch(name):
        return (
            "must be ASCII letters, digits, '_' and '-', starting and ending with a letter or digit"
        )
    if len(name) > MAX_DOMAIN_NAME:
        return f"is {len(name)} characters long, more than {MAX_DOMAIN_NAME}"
    return None


def content_hash(
    root: Path,
    files: Sequence[str],
    labels: Sequence[str] | None = None,
    *,
    vocab_size: int | None = None,
) -> str:
    """SHA-256 over the shards: for each file (in the given order) its label (by default its
    relative path), a NUL, its size in bytes as decimal and a NUL, then its bytes.

    ``corpus build`` records it with the shards' canonical paths (:func:`shard_files`) as the
    labels. With ``vocab_size``, a token id at or above it is refused on the way (the bytes
    are read anyway), naming the shard and the id.
    """
    labels = files if labels is None else labels
    h = hashlib.sha256()
    for rel, label in zip(files, labels, strict=True):
        path = root / rel
        h.update(label.encode() + b"\0" + str(path.stat().st_size).encode() + b"\0")
        top = -1
        with open(path, "rb") as f:
            # an even block size keeps every block whole uint16 tokens
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
                if vocab_size is not None and len(block) >= 2:
                    top = max(top, int(np.frombuffer(block, "<u2", len(block) // 2).max()))
        if vocab_size is not None and top >= vocab_size:
            raise token_id_error(path, top, vocab_size)
    return h.hexdigest()


def token_id_error(shard: Path, top: int, vocab_size: int) -> BayesplitError:
    """The one-line refusal of a shard holding a token id outside the vocabulary."""
    return BayesplitError(
        f"corpus shard {shard} holds token id {top}, which is not below the corpus's "
        f"vocab_size {vocab_size} (manifest.json); fix vocab_size or the shard"
    )


def shard_files(domains: Sequence[str]) -> list[str]:
    """The shard paths, relative to the corpus folder, in the order ``content_hash`` reads them."""
    return [f"{d}/{s}.bin" for d in sorted(domains) for s in SPLITS]


# Hashes computed for manifests that record none, per process: (folder, shard paths, sizes,
# modification times, inodes) -> hash. Nothing is written into the corpus folder.
_COMPUTED_HASHES: dict[tuple, str] = {}


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
        self.path = check_path(path, "corpus")
        if not self.path.is_dir():
            raise BayesplitError(f"corpus folder {self.path} does not exist")
        mpath = self.path / "manifest.json"
        if not mpath.is_file():
            raise BayesplitError(
                f"{self.path} has no manifest.json; build a corpus with `bayesplit corpus build`"
            )
        try:
            manifest = read_json(mpath)  # a key given twice: the last one was kept
        except (ValueError, UnicodeDecodeError) as exc:
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
        """SHA-256 of the shards: as the manifest records it, or else computed from the shards
        (see :meth:`computed_content_sha256`), so that different data never shares an id."""
        return str(self.manifest.get("content_sha256") or "") or self.computed_content_sha256()

    def _shards(self) -> tuple[list[str], list[str]]:
        """The shard files as the manifest names them, and their canonical labels
        (``DOMAIN/SPLIT.bin``), in the order :func:`content_hash` reads them."""
        domains = self.manifest["domains"]
        labels = shard_files(domains)
        files = [domains[d][s]["file"] for d in sorted(domains) for s in SPLITS]
        return files, labels

    def computed_content_sha256(self, fresh: bool = False) -> str:
        """The content hash computed from the shards, the way ``corpus build`` records it:
        :func:`content_hash` over each domain's ``DOMAIN/SPLIT.bin`` label, size and bytes
        (whatever the files are called), domains sorted. A built corpus and one written by
        hand with the same shards and domain names agree.

        Reads every shard once (and refuses token ids at or above ``vocab_size`` on the
        way); the result is kept for the rest of the process while the shards' sizes and
        modification times stay the same (``fresh=True`` reads them again regardless).
        """
        files, labels = self._shards()
        stamps = []
        for rel in files:
            st = (self.path / rel).stat()
            stamps.append((rel, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev))
        key = (str(self.path.resolve()), tuple(labels), tuple(stamps), self.vocab_size)
        if fresh or key not in _COMPUTED_HASHES:
            _COMPUTED_HASHES[key] = content_hash(
                self.path, files, labels, vocab_size=self.vocab_size
            )
        return _COMPUTED_HASHES[key]

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
        """The corpus tokenizer (a ``tokenizers.Tokenizer``). It encodes the text
        ``<|endoftext|>`` as plain text, as ``corpus build`` encoded the documents: the
        end-of-text id only ever comes from being appended after a document."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self._built_file("tokenizer")))
        # tokenizer.json does not keep this setting: the literal text became the EOT id here
        # while the shards hold it as text tokens
        tok.encode_special_tokens = True
        return tok

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
        """Recompute the tokenizer and content hashes and read every token id; raise if a
        hash differs from the manifest or an id is not below ``vocab_size``."""
        m = self.manifest
        missing = [k for k in ("tokenizer_sha256", "content_sha256") if not m.get(k)]
        if missing:
            raise BayesplitError(
                f"{self.path}: cannot verify, the manifest records no {' or '.join(missing)}"
            )
        tok_hash = sha256_file(self._built_file("tokenizer"))
        # hex digests in either case, as the manifest check accepts them
        if tok_hash != m["tokenizer_sha256"].lower():
            raise BayesplitError(f"{self.path}: tokenizer.json does not match its recorded hash")
        # read afresh (bit rot keeps a file's size and time), and kept: `corpus info --verify`
        # then reports it without reading the shards again
        if self.computed_content_sha256(fresh=True) != m["content_sha256"].lower():
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
    # it names trunks and rows: a placeholder such as "<sha256 of your shards>", copied into
    # two corpora, made different data share trunks and rows
    # ("" has always meant "not recorded": the hash is computed from the shards)
    if "content_sha256" in m and not re.fullmatch("([0-9a-fA-F]{64})?", m["content_sha256"]):
        raise bad(
            f"content_sha256 {m['content_sha256'][:80]!r} is not a SHA-256 (64 hex digits); "
            "leave the key out and the trainer computes it from the shards (`bayesplit "
            "corpus info` then prints it, to record)"
        )
    if m["dtype"] != "uint16":
        raise bad(f"dtype is {m['dtype']!r}; only 'uint16' is supported")
    if not 1 <= m["vocab_size"] <= 65536:
        raise bad(f"vocab_size {m['vocab_size']} does not fit uint16")
    if "eot_token" in m and not 0 <= m["eot_token"] < m["vocab_size"]:
        raise bad(f"eot_token {m['eot_token']} is outside the vocabulary")
    if not m["domains"]:
        raise bad("no domains")
    seen: dict[str, str] = {}
    for name in m["domains"]:
        problem = domain_name_problem(name)
        if problem is not None:
            raise bad(f"domain name {name!r} {problem} (as `corpus build` names domains)")
        if name.lower() in seen:  # one folder on a case-insensitive file system
            raise bad(f"domain names {seen[name.lower()]!r} and {name!r} differ only in case")
        seen[name.lower()] = name
    root = where.parent
    try:
        real_root = root.resolve()
    except (OSError, RuntimeError) as exc:
        raise bad(f"cannot resolve the corpus folder ({exc})") from None
    reals: dict[tuple[str, str], tuple[Path, str]] = {}
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
            # a symlink (the shard, or a folder on its way) may lead elsewhere
            try:
                real = (root / file).resolve()
            except (OSError, RuntimeError) as exc:  # a symlink loop
                raise bad(f"{name}/{split}: cannot resolve {file!r} ({exc})") from None
            if not real.is_relative_to(real_root):
                raise bad(
                    f"{name}/{split}: {file!r} resolves to {real}, outside the corpus folder "
                    f"{real_root} (shards must lie inside it, symlinks included)"
                )
            for key, val in (("tokens", tokens), ("documents", docs)):
                if not isinstance(val, int) or isinstance(val, bool) or val < 0:
                    raise bad(f"{name}/{split}: {key!r} must be a non-negative integer")
            reals[name, split] = (real, file)
    _check_val_held_out(reals, bad)


def _check_val_held_out(reals: dict[tuple[str, str], tuple[Path, str]], bad) -> None:
    """Refuse a val shard that is also a train shard: a hand-written manifest naming one file
    for both was read, and its validation losses were losses on trained text."""
    trained = {real: name for (name, split), (real, _) in reals.items() if split == "train"}
    for (name, split), (real, file) in reals.items():
        if split == "val" and real in trained:
            other = trained[real]
            whose = "its own train shard" if other == name else f"the train shard of {other!r}"
            raise bad(
                f"{name}/val is {whose} ({file!r}): validation must be text the model "
                "does not train on; give val a file of its own"
            )


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

    def count(name: str, which: str) -> np.ndarray:
        # every token counts: an id outside the vocabulary is refused, not cut off
        c = np.bincount(corpus.tokens(name, which), minlength=v)
        if c.size > v:
            raise token_id_error(corpus.path / corpus._record(name, which)["file"], c.size - 1, v)
        return c

    counts = np.zeros(v, dtype=np.int64)
    for name in names:
        counts += count(name, "train")
    logp = np.log(counts + 1.0) - math.log(counts.sum() + v)
    total, n = 0.0, 0
    for name in names:
        c = count(name, split)
        total -= float(c @ logp)
        n += int(c.sum())
    if n == 0:
        raise BayesplitError(f"no {split} tokens to evaluate on")
    return total / n
