"""Tokenized multi-domain corpora: build them from text files, read them back.

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

How documents are made
    Every regular, non-hidden file is read as UTF-8 (invalid bytes become U+FFFD, CRLF becomes LF).
    Files with a NUL byte in their first 8 KiB are treated as binary and skipped (this also skips
    UTF-16 and compressed files); empty or whitespace-only files are skipped. A file longer than
    ``max_doc_chars`` characters is cut into several documents, at blank lines (paragraphs) where
    possible, else at line ends, else mid-line; the pieces are exact substrings of the file.

Domains
    ``"folders"``: each (non-hidden) subfolder of SRC is a domain and every file below it, at any
    depth, is one of its documents; files lying directly in SRC are ignored. Folder names are
    sanitized to ``[A-Za-z0-9_-]`` so they are safe as file names and identifiers.
    ``"cluster:K"``: every file under SRC is an unlabeled document; documents are clustered into K
    domains by TF-IDF → truncated SVD → k-means (seeded) and each cluster is named from its most
    distinctive TF-IDF terms, e.g. ``c0-def-return-self`` (``c0`` is the largest cluster).

Train/val split
    Per domain, by document, in a seeded random order (seeded by the seed and the domain's name, so
    adding a domain leaves the others' splits alone): validation takes documents from that order
    until it holds at least ``val_fraction`` of the domain's characters, always at least one
    document, and never the last one (training keeps at least one). A domain with a single
    document has that document cut in two (at the line end nearest the middle) so that
    both splits are non-empty; a domain with no text at all is an error. The tokenizer is trained on
    the training documents only, so the validation text is unseen by it as well.

The whole source text is held in memory while building: fine for corpora up to a few GB.

Example
-------
>>> from bayesplit.train.corpus import Corpus, build_corpus      # doctest: +SKIP
>>> corpus = build_corpus("texts/", "corpus/", vocab_size=4096)  # doctest: +SKIP
>>> corpus.tokens("code", "train")[:8]                           # doctest: +SKIP
memmap([ 318,  257, 1043, ...], dtype=uint16)
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bayesplit.errors import BayesplitError

FORMAT = "bayesplit-corpus/1"
#: The end-of-text special token, appended after every document.
EOT = "<|endoftext|>"
SPLITS = ("train", "val")
#: uint16 holds ids 0..65535; a vocabulary of 65535 keeps one id spare.
MAX_VOCAB = 65535
#: The 256 byte symbols of byte-level BPE plus the end-of-text token.
MIN_VOCAB = 257
DEFAULT_MAX_DOC_CHARS = 32_768

_BINARY_SNIFF = 8192
_ENCODE_BATCH = 256


@dataclass
class Document:
    """One document: where it came from and its text.

    ``part`` numbers the pieces of a source file that was cut into several documents.
    """

    source: str
    part: int
    text: str
    domain: str = ""


# --------------------------------------------------------------------------------------------
# Reading documents


def parse_domain_mode(mode: str) -> int | None:
    """Parse ``"folders"`` (returns None) or ``"cluster:K"`` (returns K).

    >>> parse_domain_mode("cluster:4")
    4
    """
    mode = mode.strip()
    if mode == "folders":
        return None
    m = re.fullmatch(r"cluster:(-?\d+)", mode)
    if not m:
        raise BayesplitError(
            f"--domains must be 'folders' or 'cluster:K' (K an integer), not {mode!r}"
        )
    k = int(m.group(1))
    if k < 2:
        raise BayesplitError(f"cluster:K needs K >= 2, got {k}")
    return k


def sanitize_name(name: str) -> str:
    """Make a domain name safe as a file name and an identifier: ``[A-Za-z0-9_-]``, no leading
    punctuation. Returns ``""`` when nothing usable is left.

    >>> sanitize_name("Law & Order (US)")
    'Law-Order-US'
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9_-]+", "-", ascii_name).strip("-_")


def split_document(text: str, max_chars: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``max_chars`` characters.

    Cuts go after a blank line where one falls in the window, else after a line end, else
    mid-line. The pieces concatenate back to ``text``; whitespace-only pieces are dropped.

    >>> split_document("aa\\n\\nbb\\n\\ncc", 5)
    ['aa\\n\\n', 'bb\\n\\n', 'cc']
    """
    if max_chars < 1:
        raise BayesplitError(f"max_doc_chars must be >= 1, got {max_chars}")
    pieces: list[str] = []
    start = 0
    while len(text) - start > max_chars:
        stop = start + max_chars
        window = text[start:stop]
        # the end of the last blank line (paragraph break) in the window, else the last newline
        cut = -1
        for m in re.finditer(r"\n[ \t]*\n", window):
            cut = m.end()
        if cut <= 0:
            cut = window.rfind("\n") + 1
        if cut <= 0:
            cut = max_chars
        pieces.append(text[start : start + cut])
        start += cut
    pieces.append(text[start:])
    return [p for p in pieces if p.strip()]


def _read_text(path: Path) -> str | None:
    """The file's text, or None when it is binary or blank."""
    data = path.read_bytes()
    if b"\x00" in data[:_BINARY_SNIFF]:
        return None
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
    return text if text.strip() else None


def _list_files(root: Path) -> list[Path]:
    """Regular, non-hidden files under ``root`` in a fixed (sorted) order."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if not name.startswith(".") and path.is_file():
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _read_documents(
    files: Sequence[Path], root: Path, max_chars: int, reporter: _Reporter, label: str
) -> list[Document]:
    docs: list[Document] = []
    with reporter.task(f"reading {label}", total=len(files)) as advance:
        for path in files:
            text = _read_text(path)
            if text is not None:
                source = path.relative_to(root).as_posix()
                docs.extend(
                    Document(source, i, piece)
                    for i, piece in enumerate(split_document(text, max_chars))
                )
            advance(1)
    return docs


def _folder_domains(src: Path, max_chars: int, reporter: _Reporter) -> dict[str, list[Document]]:
    subdirs = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise BayesplitError(
            f"{src} has no domain folders: put each domain's files in a subfolder, "
            "or use --domains cluster:K for unlabeled documents"
        )
    names: dict[str, Path] = {}
    for d in subdirs:
        name = sanitize_name(d.name)
        if not name:
            raise BayesplitError(f"domain folder {d.name!r} has no usable characters for a name")
        clash = next((n for n in names if n.lower() == name.lower()), None)
        if clash is not None:
            raise BayesplitError(
                f"domain folders {names[clash].name!r} and {d.name!r} both map to the name {name!r}"
            )
        names[name] = d
    domains: dict[str, list[Document]] = {}
    for name, folder in names.items():
        docs = _read_documents(_list_files(folder), src, max_chars, reporter, name)
        if not docs:
            raise BayesplitError(f"domain folder {folder} has no text documents")
        for doc in docs:
            doc.domain = name
        domains[name] = docs
    return domains


# --------------------------------------------------------------------------------------------
# Clustering


def _term_slug(term: str) -> str:
    ascii_term = unicodedata.normalize("NFKD", term).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", ascii_term.lower())[:16]


def cluster_documents(
    texts: Sequence[str], k: int, *, seed: int = 0, n_terms: int = 3
) -> tuple[np.ndarray, list[str], list[list[str]]]:
    """Cluster documents into ``k`` groups: TF-IDF → truncated SVD (LSA) → k-means.

    Returns ``(labels, names, top_terms)``. Clusters are numbered by size, largest first (ties by
    their first document), and named ``c{i}-{term}-{term}-{term}`` from the terms whose mean
    TF-IDF is highest inside the cluster relative to outside it. Deterministic given ``seed``.

    Example
    -------
    >>> labels, names, _ = cluster_documents(texts, 3, seed=0)  # doctest: +SKIP
    >>> names                                                    # doctest: +SKIP
    ['c0-def-return-self', 'c1-lord-thou-thy', 'c2-noun-verb-adj']
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    n = len(texts)
    if k < 2 or k > n:
        raise BayesplitError(f"cluster:K needs 2 <= K <= number of documents ({n}), got K={k}")
    # Words start with a letter: numbers and hex make poor cluster names and weak features.
    settings = dict(
        sublinear_tf=True,
        token_pattern=r"(?u)\b[^\W\d_]\w+\b",
        max_features=1 << 16,
        dtype=np.float32,
    )
    try:
        # Common words out (stop words, terms in >80% of documents); rare ones too on bigger sets.
        vec = TfidfVectorizer(
            stop_words="english",
            max_df=0.8 if n >= 20 else 1.0,
            min_df=2 if n >= 20 else 1,
            **settings,
        )
        x = vec.fit_transform(texts)
    except ValueError:  # pruning left no terms; fall back to every word
        try:
            vec = TfidfVectorizer(**settings)
            x = vec.fit_transform(texts)
        except ValueError:
            raise BayesplitError("cannot cluster: the documents contain no words") from None
    n_components = min(100, x.shape[1] - 1, n - 1)
    if n_components >= 2:
        svd = TruncatedSVD(n_components=n_components, random_state=seed)
        z = normalize(svd.fit_transform(x))
    else:
        z = x
    raw = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(z)
    found = np.unique(raw)
    if len(found) < k:
        raise BayesplitError(
            f"clustering found only {len(found)} distinct groups for K={k}; use a smaller K"
        )
    # Renumber: largest cluster first, ties by first appearance, so names do not depend on
    # k-means' arbitrary numbering.
    sizes = np.bincount(raw, minlength=k)
    first = np.array([np.flatnonzero(raw == c)[0] for c in range(k)])
    order = sorted(range(k), key=lambda c: (-sizes[c], first[c]))
    relabel = np.empty(k, dtype=np.int64)
    relabel[order] = np.arange(k)
    labels = relabel[raw]

    vocab = vec.get_feature_names_out()
    names: list[str] = []
    top_terms: list[list[str]] = []
    for c in range(k):
        inside = labels == c
        score = np.asarray(x[inside].mean(axis=0)).ravel()
        if (~inside).any():
            score = score - np.asarray(x[~inside].mean(axis=0)).ravel()
        terms: list[str] = []
        for j in np.argsort(-score, kind="stable"):
            if score[j] <= 0 or len(terms) == n_terms:
                break
            slug = _term_slug(vocab[j])
            if slug and slug not in terms:
                terms.append(slug)
        top_terms.append([str(t) for t in terms])
        names.append("-".join([f"c{c}", *terms]))
    return labels, names, top_terms


def _cluster_domains(
    src: Path, k: int, seed: int, max_chars: int, reporter: _Reporter
) -> tuple[dict[str, list[Document]], dict[str, list[str]]]:
    docs = _read_documents(_list_files(src), src, max_chars, reporter, "documents")
    if not docs:
        raise BayesplitError(f"no text files under {src}")
    if k > len(docs):
        raise BayesplitError(f"cluster:K needs K <= number of documents ({len(docs)}), got K={k}")
    with reporter.status(f"clustering {len(docs)} documents into {k} domains"):
        labels, names, terms = cluster_documents([d.text for d in docs], k, seed=seed)
    domains: dict[str, list[Document]] = {name: [] for name in names}
    for doc, label in zip(docs, labels, strict=True):
        doc.domain = names[label]
        domains[doc.domain].append(doc)
    return domains, dict(zip(names, terms, strict=True))


# --------------------------------------------------------------------------------------------
# Splitting, tokenizing, writing


def _domain_rng(seed: int, domain: str) -> np.random.Generator:
    key = int.from_bytes(hashlib.sha256(domain.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, key])


def _ensure_two(docs: list[Document]) -> list[Document]:
    """A one-document domain: cut the document in two so train and val both get text.

    The cut goes at the line end nearest the middle, or mid-text if it is a single line.
    """
    if len(docs) >= 2:
        return docs
    (doc,) = docs
    text = doc.text

    def usable(c: int) -> bool:
        return bool(text[:c].strip() and text[c:].strip())

    cuts = [m.end() for m in re.finditer("\n", text) if usable(m.end())]
    mid = len(text) // 2
    cut = min(cuts, key=lambda c: (abs(c - mid), c)) if cuts else mid
    if not usable(cut):
        raise BayesplitError(
            f"domain {doc.domain!r} is too small to split into train and val ({doc.source})"
        )
    return [
        Document(doc.source, doc.part, text[:cut], doc.domain),
        Document(doc.source, doc.part + 1, text[cut:], doc.domain),
    ]


def split_train_val(
    docs: Sequence[Document], val_fraction: float, rng: np.random.Generator
) -> tuple[list[Document], list[Document]]:
    """Seeded split by document: val takes documents in a random order until it holds
    ``val_fraction`` of the characters (at least one document; train keeps at least one).
    Both lists come back in that random order, which is the order they are written in."""
    order = rng.permutation(len(docs))
    target = val_fraction * sum(len(d.text) for d in docs)
    n_val, chars = 0, 0
    for i in order[:-1]:
        n_val += 1
        chars += len(docs[i].text)
        if chars >= target:
            break
    val = [docs[i] for i in order[:n_val]]
    train = [docs[i] for i in order[n_val:]]
    return train, val


def train_tokenizer(
    texts: Iterator[str] | Sequence[str], vocab_size: int, *, length: int | None = None
):
    """Train a byte-level BPE tokenizer locally (no download) with ``EOT`` as its special token.

    Byte-level means any text round-trips exactly through encode/decode. Returns a
    ``tokenizers.Tokenizer``; its vocabulary may be smaller than ``vocab_size`` on tiny text.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=length)
    return tok


def _encode(tok, texts: Sequence[str], advance) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
    for i in range(0, len(texts), _ENCODE_BATCH):
        batch = list(texts[i : i + _ENCODE_BATCH])
        out.extend(np.asarray(e.ids, dtype=np.uint16) for e in encode(batch))
        advance(len(batch))
    return out


def _sha256_file(path: Path) -> str:
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


def _shard_files(domains: Sequence[str]) -> list[str]:
    return [f"{d}/{s}.bin" for d in sorted(domains) for s in SPLITS]


def _check_out(src: Path, out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise BayesplitError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise BayesplitError(f"--out {out} is not empty; pass --overwrite to replace it")
    src_r, out_r = src.resolve(), out.resolve()
    if out_r == src_r or src_r in out_r.parents:
        raise BayesplitError(f"--out {out} is inside the source folder {src}")
    if out_r in src_r.parents:
        raise BayesplitError(f"the source folder {src} is inside --out {out}")


def build_corpus(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    domains: str = "folders",
    vocab_size: int = 8192,
    val_fraction: float = 0.01,
    seed: int = 0,
    max_doc_chars: int = DEFAULT_MAX_DOC_CHARS,
    overwrite: bool = False,
    progress: bool = True,
) -> Corpus:
    """Build a tokenized corpus from the text files under ``src`` into the folder ``out``.

    Parameters
    ----------
    src
        Folder of text files: one subfolder per domain (``domains="folders"``) or any tree of
        unlabeled documents (``domains="cluster:K"``).
    out
        Output folder; must be missing or empty unless ``overwrite``. Written atomically: the
        corpus is built in a temporary folder next to it and renamed into place, so a failed
        build leaves nothing behind.
    domains
        ``"folders"`` or ``"cluster:K"`` (K >= 2), see the module docstring.
    vocab_size
        BPE vocabulary size including the 256 byte symbols and the end-of-text token,
        in [257, 65535] so that ids fit uint16.
    val_fraction
        Share of each domain's text held out for validation, in (0, 0.5).
    seed
        Seeds the split and the clustering; the same input and seed give identical shards.
    max_doc_chars
        Files longer than this are cut into several documents (paragraph boundaries preferred).
    overwrite
        Replace a non-empty ``out``.
    progress
        Show progress bars on stderr.

    Returns
    -------
    Corpus
        The corpus just written, opened for reading.

    Example
    -------
    >>> corpus = build_corpus("texts/", "corpus/", domains="cluster:4", seed=1)  # doctest: +SKIP
    >>> corpus.domains                                                            # doctest: +SKIP
    ['c0-def-return-self', 'c1-lord-thou-thy', ...]
    """
    src, out = Path(src), Path(out)
    k = parse_domain_mode(domains)
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int | np.integer):
        raise BayesplitError(f"--vocab must be an integer, got {vocab_size!r}")
    if not MIN_VOCAB <= vocab_size <= MAX_VOCAB:
        raise BayesplitError(
            f"--vocab must be in [{MIN_VOCAB}, {MAX_VOCAB}] (uint16 tokens), got {vocab_size}"
        )
    if not (isinstance(val_fraction, int | float) and 0 < val_fraction < 0.5):
        raise BayesplitError(f"--val-fraction must be in (0, 0.5), got {val_fraction}")
    if not isinstance(max_doc_chars, int) or max_doc_chars < 1:
        raise BayesplitError(f"--max-doc-chars must be a positive integer, got {max_doc_chars}")
    if not src.exists():
        raise BayesplitError(f"source folder {src} does not exist")
    if not src.is_dir():
        raise BayesplitError(f"source {src} is not a folder")
    _check_out(src, out, overwrite)

    reporter = _Reporter(progress)
    with reporter:
        clusters: dict[str, list[str]] = {}
        if k is None:
            by_domain = _folder_domains(src, max_doc_chars, reporter)
        else:
            by_domain, clusters = _cluster_domains(src, k, seed, max_doc_chars, reporter)
        splits: dict[str, dict[str, list[Document]]] = {}
        for name in sorted(by_domain):
            train, val = split_train_val(
                _ensure_two(by_domain[name]), val_fraction, _domain_rng(seed, name)
            )
            splits[name] = {"train": train, "val": val}

        train_texts = [d.text for name in splits for d in splits[name]["train"]]
        with reporter.status(f"training a {vocab_size}-token byte-level BPE tokenizer"):
            tok = train_tokenizer(train_texts, vocab_size, length=len(train_texts))
        eot = tok.token_to_id(EOT)
        actual_vocab = tok.get_vocab_size()

        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            tmp.chmod(0o755)
            manifest = _write(
                tmp,
                tok,
                eot,
                splits,
                reporter,
                meta={
                    "vocab_size": actual_vocab,
                    "seed": seed,
                    "source": str(src.resolve()),
                    "domain_mode": "folders" if k is None else f"cluster:{k}",
                },
            )
            manifest["requested_vocab_size"] = vocab_size
            manifest["val_fraction"] = val_fraction
            manifest["max_doc_chars"] = max_doc_chars
            if clusters:
                manifest["clusters"] = {n: {"top_terms": t} for n, t in sorted(clusters.items())}
            from bayesplit import __version__

            manifest["bayesplit_version"] = __version__
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            _replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return Corpus(out)


def _write(
    root: Path,
    tok,
    eot: int,
    splits: dict[str, dict[str, list[Document]]],
    reporter: _Reporter,
    meta: dict[str, Any],
) -> dict[str, Any]:
    tok.save(str(root / "tokenizer.json"))
    # Encode literal "<|endoftext|>" inside documents as plain text: only the end-of-text we
    # append marks a document boundary.
    tok.encode_special_tokens = True
    eot_arr = np.array([eot], dtype=np.uint16)
    entries: dict[str, Any] = {}
    rows: list[tuple] = []
    n_docs = sum(len(docs) for parts in splits.values() for docs in parts.values())
    with reporter.task("tokenizing", total=n_docs) as advance:
        for name, parts in splits.items():
            (root / name).mkdir()
            entries[name] = {}
            for split in SPLITS:
                docs = parts[split]
                ids = _encode(tok, [d.text for d in docs], advance)
                arr = np.concatenate([a for doc_ids in ids for a in (doc_ids, eot_arr)])
                rel = f"{name}/{split}.bin"
                arr.astype("<u2", copy=False).tofile(root / rel)
                entries[name][split] = {
                    "file": rel,
                    "tokens": int(arr.size),
                    "documents": len(docs),
                }
                rows.extend(
                    (name, split, d.source, d.part, len(d.text), int(a.size))
                    for d, a in zip(docs, ids, strict=True)
                )
    with open(root / "documents.tsv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["domain", "split", "source", "part", "chars", "tokens"])
        w.writerows(rows)
    return {
        "format": FORMAT,
        "vocab_size": meta["vocab_size"],
        "dtype": "uint16",
        "eot_token": eot,
        "tokenizer": "tokenizer.json",
        "tokenizer_sha256": _sha256_file(root / "tokenizer.json"),
        "content_sha256": content_hash(root, _shard_files(entries)),
        "seed": meta["seed"],
        "source": meta["source"],
        "domain_mode": meta["domain_mode"],
        "domains": entries,
        "documents_file": "documents.tsv",
    }


def _replace(tmp: Path, out: Path) -> None:
    """Move the finished build into place; an existing ``out`` is swapped out, then removed."""
    if out.is_dir() and any(out.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        old.rmdir()
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)  # atomically replaces an empty directory


# --------------------------------------------------------------------------------------------
# Reading a corpus


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
        tok_hash = _sha256_file(self._built_file("tokenizer"))
        if tok_hash != m["tokenizer_sha256"]:
            raise BayesplitError(f"{self.path}: tokenizer.json does not match its recorded hash")
        if content_hash(self.path, _shard_files(m["domains"])) != m["content_sha256"]:
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


# --------------------------------------------------------------------------------------------
# Progress on stderr


class _Reporter:
    """Rich progress bars and status lines on stderr, or nothing when disabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress = None

    def __enter__(self) -> _Reporter:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

    @contextmanager
    def task(self, description: str, total: int):
        """Yield ``advance(n)`` for a bar of ``total`` steps."""
        if self._progress is None:
            yield lambda n: None
            return
        tid = self._progress.add_task(description, total=total)
        yield lambda n: self._progress.advance(tid, n)
        self._progress.update(tid, completed=total)

    @contextmanager
    def status(self, description: str):
        """A step without a known length: a spinner that turns into a finished bar."""
        if self._progress is None:
            yield
            return
        tid = self._progress.add_task(description, total=None)
        yield
        self._progress.update(tid, total=1, completed=1)
