"""Build a tokenized corpus from a folder of text files (``bayesplit corpus build``).

The format it writes, and its reader, are in :mod:`bayesplit.train.corpus.reader`.

How documents are made
    Every regular, non-hidden file is read as UTF-8 (a leading byte-order mark is dropped, CRLF
    becomes LF; invalid bytes become U+FFFD, and such files are counted in one ``warning:`` line
    on stderr, naming one of them).
    Symbolic links, to files or to folders, are not followed: a corpus holds only what lies
    in SRC itself, never what a link points to elsewhere. They are skipped and counted in
    one ``warning:`` line on stderr.
    Files with a NUL byte in their first 8 KiB are treated as binary and skipped (this also skips
    UTF-16 and compressed files), with one ``warning:`` line that counts them (a domain folder
    left with no documents says so in its error); empty or whitespace-only files are skipped
    silently. A file longer than ``max_doc_chars`` characters is cut into several documents, at
    blank lines (paragraphs) where possible, else at line ends, else mid-line; the pieces are
    exact substrings of the file.
    ``documents.tsv`` lists each document's source file; bytes of a file name that are not
    UTF-8 are written there as ``\\xNN``.

Domains
    ``"folders"``: each (non-hidden) subfolder of SRC is a domain and every file below it, at any
    depth, is one of its documents; files lying directly in SRC are ignored. Folder names are
    sanitized to ``[A-Za-z0-9_-]`` so they are safe as file names and identifiers (at most
    100 characters; the reader refuses any other domain name).
    ``"cluster:K"``: every file under SRC is an unlabeled document; documents are clustered into K
    domains by TF-IDF → truncated SVD → k-means (seeded) and each cluster is named from its most
    distinctive TF-IDF terms, e.g. ``c0-def-return-self`` (``c0`` is the largest cluster).

Train/val split
    Per domain, by document, in a seeded random order (seeded by the seed and the domain's name, so
    adding a domain leaves the others' splits alone): validation takes documents from that order
    until it holds at least ``val_fraction`` of the domain's characters, always at least one
    document, and never the last one (training keeps at least one). A document that would take
    validation past half of the domain's characters is passed over (it stays in training), so
    one long document cannot become all of validation; if every document but the last is such
    a one, validation takes the domain's shortest document. A domain with a single document
    has that document cut in two (at the line end nearest the middle) and validation takes the
    shorter piece, so that both splits are non-empty; a domain with no text at all is an
    error. The tokenizer is trained on the training documents only, so the validation text is
    unseen by it as well.

The whole source text is held in memory while building: fine for corpora up to a few GB.

Example
-------
>>> from bayesplit.train.corpus import build_corpus              # doctest: +SKIP
>>> corpus = build_corpus("texts/", "corpus/", vocab_size=4096)  # doctest: +SKIP
>>> corpus.domains                                               # doctest: +SKIP
['code', 'docs']
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import numbers
import os
import re
import shutil
import sys
import tempfile
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bayesplit._io import sigterm_cleans_up
from bayesplit._parse import check_flag, check_path, check_seed, is_number
from bayesplit.errors import BayesplitError, require
from bayesplit.train.corpus.clustering import cluster_documents
from bayesplit.train.corpus.reader import (
    FORMAT,
    MAX_DOMAIN_NAME,
    SPLITS,
    Corpus,
    content_hash,
    sha256_file,
    shard_files,
)

#: The end-of-text special token, appended after every document.
EOT = "<|endoftext|>"
#: uint16 holds ids 0..65535; a vocabulary of 65535 keeps one id spare.
MAX_VOCAB = 65535
#: The 256 byte symbols of byte-level BPE plus the end-of-text token.
MIN_VOCAB = 257
DEFAULT_MAX_DOC_CHARS = 32_768

_BINARY_SNIFF = 8192
_ENCODE_BATCH = 256
#: Characters of --out's name kept in the hidden temp folders' names beside it: with all of a
#: long name (242 bytes and more) they passed the file system's 255 bytes and the build
#: failed after all its work, naming a folder the user never gave.
_TEMP_NAME_CHARS = 40


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
            "--domains (in Python: domains=) must be 'folders' or 'cluster:K' (K an integer), "
            f"not {mode!r}"
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


@dataclass
class _Passed:
    """Files a build skipped or read with losses, each kind said in one ``warning:`` line."""

    links: list[Path] = field(default_factory=list)
    binary: list[Path] = field(default_factory=list)
    not_utf8: list[Path] = field(default_factory=list)


def _read_text(path: Path, passed: _Passed) -> str | None:
    """The file's text, or None when it is binary or blank."""
    data = path.read_bytes()
    if b"\x00" in data[:_BINARY_SNIFF]:
        passed.binary.append(path)
        return None
    # "-sig": a byte-order mark (Windows editors write one) was the document's first character
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        passed.not_utf8.append(path)
        text = data.decode("utf-8-sig", errors="replace")
    text = text.replace("\r\n", "\n")
    return text if text.strip() else None


def shown_name(name: str) -> str:
    """A file name as text that can be written anywhere: bytes that are not UTF-8 (which
    Python keeps as lone surrogates, and UTF-8 files cannot hold) become ``\\xNN``.

    >>> shown_name(os.fsdecode(b"bad\\xffname.txt"))
    'bad\\\\xffname.txt'
    """
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _list_files(root: Path, links: list[Path] | None = None) -> list[Path]:
    """Regular, non-hidden files under ``root`` in a fixed (sorted) order.

    Symbolic links (to files or folders) are not followed; the non-hidden ones are appended
    to ``links``.
    """
    found: list[Path] = []
    links = [] if links is None else links
    for dirpath, dirnames, filenames in os.walk(root):  # does not descend into linked folders
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        links.extend(Path(dirpath) / d for d in dirnames if (Path(dirpath) / d).is_symlink())
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith("."):
                continue
            if path.is_symlink():
                links.append(path)
            elif path.is_file():
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _warn_passed(passed: _Passed, src: Path) -> None:
    """One ``warning:`` line per kind of file passed over: Latin-1 or UTF-16 text was
    dropped or garbled without a word, while symbolic links were counted."""
    for paths, what, why in (
        (passed.links, "skipped {n} symbolic link{s}", "only regular files are read"),
        (
            passed.binary,
            "skipped {n} binary file{s}",
            "a NUL byte in the first 8 KiB (UTF-16 text too); convert text to UTF-8 to include it",
        ),
        (
            passed.not_utf8,
            "read {n} file{s} that {are} not UTF-8",
            "invalid bytes became U+FFFD; convert to UTF-8 to keep them",
        ),
    ):
        if paths:
            n = len(paths)
            head = what.format(n=n, s="s" * (n != 1), are="are" if n != 1 else "is")
            example = shown_name(paths[0].relative_to(src).as_posix())
            print(
                f"warning: {head} under {src} (e.g. {example}): {why}", file=sys.stderr, flush=True
            )


def _skipped_note(passed: _Passed, links_before: int = 0, binary_before: int = 0) -> str:
    """Why a folder gave no documents, for its error: the warnings come after all folders
    are read, so a folder of UTF-16 files was "no text documents" and nothing more."""
    links = len(passed.links) - links_before
    binary = len(passed.binary) - binary_before
    parts = [f"{links} symbolic links skipped: only regular files are read"] * (links > 0)
    parts += [f"{binary} binary files skipped, UTF-16 text too: convert it to UTF-8"] * (binary > 0)
    return f" ({'; '.join(parts)})" if parts else ""


def _read_documents(
    files: Sequence[Path],
    root: Path,
    max_chars: int,
    reporter: _Reporter,
    label: str,
    passed: _Passed,
) -> list[Document]:
    docs: list[Document] = []
    with reporter.task(f"reading {label}", total=len(files)) as advance:
        for path in files:
            text = _read_text(path, passed)
            if text is not None:
                source = shown_name(path.relative_to(root).as_posix())
                docs.extend(
                    Document(source, i, piece)
                    for i, piece in enumerate(split_document(text, max_chars))
                )
            advance(1)
    return docs


def _folder_domains(
    src: Path, max_chars: int, reporter: _Reporter, passed: _Passed
) -> dict[str, list[Document]]:
    links = passed.links
    visible = sorted(p for p in src.iterdir() if not p.name.startswith("."))
    links.extend(p for p in visible if p.is_symlink() and p.is_dir())
    subdirs = [p for p in visible if p.is_dir() and not p.is_symlink()]
    if not subdirs:
        raise BayesplitError(
            f"{src} has no domain folders: put each domain's files in a subfolder, "
            'or use --domains cluster:K (in Python: domains="cluster:K") for unlabeled documents'
        )
    names: dict[str, Path] = {}
    for d in subdirs:
        name = sanitize_name(d.name)
        if not name:
            raise BayesplitError(
                f"domain folder '{shown_name(d.name)}' has no usable characters for a name"
            )
        if len(name) > MAX_DOMAIN_NAME:
            raise BayesplitError(
                f"domain folder '{shown_name(d.name)}' makes a name of {len(name)} characters, "
                f"more than {MAX_DOMAIN_NAME}; rename the folder"
            )
        clash = next((n for n in names if n.lower() == name.lower()), None)
        if clash is not None:
            raise BayesplitError(
                f"domain folders '{shown_name(names[clash].name)}' and '{shown_name(d.name)}' "
                f"both map to the name {name!r}"
            )
        names[name] = d
    domains: dict[str, list[Document]] = {}
    for name, folder in names.items():
        before = len(links), len(passed.binary)
        docs = _read_documents(_list_files(folder, links), src, max_chars, reporter, name, passed)
        if not docs:
            why = _skipped_note(passed, *before)
            raise BayesplitError(f"domain folder {folder} has no text documents{why}")
        for doc in docs:
            doc.domain = name
        domains[name] = docs
    return domains


def _cluster_domains(
    src: Path, k: int, seed: int, max_chars: int, reporter: _Reporter, passed: _Passed
) -> tuple[dict[str, list[Document]], dict[str, list[str]]]:
    files = _list_files(src, passed.links)
    docs = _read_documents(files, src, max_chars, reporter, "documents", passed)
    if not docs:
        raise BayesplitError(f"no text files under {src}{_skipped_note(passed)}")
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
    ``val_fraction`` of the characters (at least one document; train keeps at least one),
    passing over any that would take it past half of the characters; when all but the last
    are such, it takes the shortest document. Both lists come back in that random order,
    which is the order they are written in."""
    order = rng.permutation(len(docs))
    sizes = [len(d.text) for d in docs]
    total = sum(sizes)
    target = val_fraction * total
    picked: list[int] = []
    chars = 0
    for i in order[:-1]:
        # one long document drawn first was all of val: 3,300 tokens of 3,319 at 1%
        if 2 * (chars + sizes[i]) > total:
            continue
        picked.append(i)
        chars += sizes[i]
        if chars >= target:
            break
    if not picked:  # a long first document and a short last one
        picked = [min(order, key=lambda i: sizes[i])]
    in_val = set(picked)
    val = [docs[i] for i in order if i in in_val]
    train = [docs[i] for i in order if i not in in_val]
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


def _holds_a_corpus(folder: Path) -> bool:
    """Whether ``folder`` has a manifest.json that ``corpus build`` wrote (by its format tag)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, unreadable, or not JSON
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def _check_out(src: Path, out: Path, overwrite: bool) -> None:
    cwd, out_r = Path.cwd().resolve(), out.resolve()
    if out_r == cwd or out_r in cwd.parents:
        # the finished corpus replaces --out by a rename, which the working folder refuses
        raise BayesplitError(
            f"--out {out} (in Python: out=) is the current folder or one above it; give a "
            "folder of its own for the corpus"
        )
    if out.is_symlink():
        # the finished corpus replaces --out by renames: a link was swapped for a real folder
        # (its target left as it was) or the build failed at the end naming a temp folder
        raise BayesplitError(
            f"--out {out} (in Python: out=) is a symbolic link; give the folder it points to "
            f"({os.path.realpath(out)}) or a new name"
        )
    if out.exists() and not out.is_dir():
        raise BayesplitError(f"--out {out} (in Python: out=) exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise BayesplitError(
            f"--out {out} (in Python: out=) is not empty; pass --overwrite (in Python: "
            "overwrite=True) to replace it"
        )
    if out.is_dir() and any(out.iterdir()) and not _holds_a_corpus(out):
        # --overwrite replaces a corpus: a typo such as `--out runs-checkpoints` deleted
        # trained checkpoints, or any folder's files (a web app's manifest.json included)
        damaged = (
            " (if it is a corpus whose manifest.json was damaged, delete the folder yourself)"
            if (out / "manifest.json").is_file()
            else ""
        )
        raise BayesplitError(
            f"--out {out} (in Python: out=) is not empty and holds no corpus (no manifest.json "
            f"of format {FORMAT!r}); --overwrite (in Python: overwrite=True) replaces only a "
            f"corpus folder: give a new or empty folder{damaged}"
        )
    src_r, out_r = src.resolve(), out.resolve()
    if out_r == src_r or src_r in out_r.parents:
        raise BayesplitError(f"--out {out} (in Python: out=) is inside the source folder {src}")
    if out_r in src_r.parents:
        raise BayesplitError(f"the source folder {src} is inside --out {out} (in Python: out=)")


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
        build leaves nothing behind (parent folders it created included). Without
        ``overwrite``, an ``out`` that another process filled during the build is refused,
        not replaced.
    domains
        ``"folders"`` or ``"cluster:K"`` (K >= 2), see the module docstring.
    vocab_size
        BPE vocabulary size including the 256 byte symbols and the end-of-text token,
        in [257, 65535] so that ids fit uint16.
    val_fraction
        Share of each domain's text held out for validation, in (0, 0.5): a target, taken
        in whole documents and never past half of a domain (see the module docstring).
    seed
        Seeds the split and the clustering, a whole number from 0 to 2^63 - 1; the same
        input and seed give identical shards.
    max_doc_chars
        Files longer than this are cut into several documents (paragraph boundaries preferred).
        ``vocab_size``, ``seed`` and ``max_doc_chars`` take any integer type (numpy's too)
        but not bools; ``val_fraction`` any real number.
    overwrite
        Replace a non-empty ``out`` that holds a corpus (a ``manifest.json``); any other
        non-empty folder is refused.
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
    overwrite = check_flag(overwrite, "overwrite")
    progress = check_flag(progress, "progress")
    src, out = check_path(src, "src"), check_path(out, "out")
    k = parse_domain_mode(domains)
    vocab_size, val_fraction, max_doc_chars = _check_sizes(vocab_size, val_fraction, max_doc_chars)
    seed = check_seed(seed, "--seed (in Python: seed=)")
    if not src.exists():
        raise BayesplitError(f"source folder {src} does not exist")
    if not src.is_dir():
        raise BayesplitError(f"source {src} is not a folder")
    _check_out(src, out, overwrite)
    # said before every file is read, not at the tokenizer's training
    require("tokenizers")
    if k is not None:
        require("sklearn")

    reporter = _Reporter(progress)
    passed = _Passed()
    with reporter:
        clusters: dict[str, list[str]] = {}
        if k is None:
            by_domain = _folder_domains(src, max_doc_chars, reporter, passed)
        else:
            by_domain, clusters = _cluster_domains(src, k, seed, max_doc_chars, reporter, passed)
        _warn_passed(passed, src)
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

        # a SIGTERM (a scheduler's time limit) left gigabytes of partial shards in the
        # hidden temp folder; it raises here instead, so the folder is removed
        with sigterm_cleans_up(), _parents_made(out.parent):
            tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(out, "tmp"), dir=out.parent))
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
                        "source": shown_name(str(src.resolve())),
                        "domain_mode": "folders" if k is None else f"cluster:{k}",
                    },
                )
                manifest["requested_vocab_size"] = vocab_size
                manifest["val_fraction"] = val_fraction
                manifest["max_doc_chars"] = max_doc_chars
                if clusters:
                    manifest["clusters"] = {
                        n: {"top_terms": t} for n, t in sorted(clusters.items())
                    }
                from bayesplit import __version__

                manifest["bayesplit_version"] = __version__
                (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
                _replace(tmp, out, overwrite=overwrite)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    return Corpus(out)


def _check_sizes(vocab_size, val_fraction, max_doc_chars) -> tuple[int, float, int]:
    """The build's sizes as Python numbers (numpy's went into manifest.json, which json
    refused after all the work); bools are refused (True was a max_doc_chars of 1)."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, numbers.Integral):
        raise BayesplitError(
            f"--vocab (in Python: vocab_size=) must be an integer, got {vocab_size!r}"
        )
    if not MIN_VOCAB <= vocab_size <= MAX_VOCAB:
        raise BayesplitError(
            f"--vocab (in Python: vocab_size=) must be in [{MIN_VOCAB}, {MAX_VOCAB}] "
            f"(uint16 tokens), got {vocab_size}"
        )
    if not (is_number(val_fraction) and 0 < val_fraction < 0.5):
        raise BayesplitError(
            f"--val-fraction (in Python: val_fraction=) must be in (0, 0.5), got {val_fraction!r}"
        )
    if (
        isinstance(max_doc_chars, bool)
        or not isinstance(max_doc_chars, numbers.Integral)
        or max_doc_chars < 1
    ):
        raise BayesplitError(
            f"--max-doc-chars (in Python: max_doc_chars=) must be a positive integer, "
            f"got {max_doc_chars!r}"
        )
    return int(vocab_size), float(val_fraction), int(max_doc_chars)


def _temp_prefix(out: Path, kind: str) -> str:
    return f".{out.name[:_TEMP_NAME_CHARS]}.{kind}-"


@contextmanager
def _parents_made(folder: Path):
    """Create ``folder`` with its missing parents; if the block fails, remove the ones it
    created, deepest first, while they are empty (a failed build left ``a/b/`` behind)."""
    missing = []
    for p in (folder, *folder.parents):
        if p.exists() or p.is_symlink():
            break
        missing.append(p)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for p in missing:
            try:
                p.rmdir()
            except OSError:  # another process put something there: it stays
                break
        raise


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
        "tokenizer_sha256": sha256_file(root / "tokenizer.json"),
        "content_sha256": content_hash(root, shard_files(entries)),
        "seed": meta["seed"],
        "source": meta["source"],
        "domain_mode": meta["domain_mode"],
        "domains": entries,
        "documents_file": "documents.tsv",
    }


def _replace(tmp: Path, out: Path, *, overwrite: bool) -> None:
    """Move the finished build into place; with ``overwrite`` an existing ``out`` is swapped
    out, then removed. Without it, an ``out`` filled since the build began is refused."""
    if overwrite and out.is_dir() and any(out.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=_temp_prefix(out, "old"), dir=out.parent))
        old.rmdir()
        try:
            out.rename(old)
            tmp.rename(out)
        except BaseException:
            # interrupted between the renames (Ctrl-C, SIGTERM): the old corpus goes back,
            # not hidden as .NAME.old-* with --out missing
            if old.exists() and not out.exists():
                old.rename(out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        _rename_into_place(tmp, out)


def _rename_into_place(tmp: Path, out: Path) -> None:
    try:
        tmp.rename(out)  # atomically replaces an empty directory, and fails on a full one
    except OSError as exc:
        # two builds to one --out without --overwrite: the second replaced the first
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise BayesplitError(
                f"--out {out} (in Python: out=) became non-empty during the build (another "
                "build writing there?); nothing was replaced: build again, with --overwrite "
                "(in Python: overwrite=True) to replace it"
            ) from None
        raise


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
        from rich.markup import escape

        tid = self._progress.add_task(escape(description), total=total)
        yield lambda n: self._progress.advance(tid, n)
        self._progress.update(tid, completed=total)

    @contextmanager
    def status(self, description: str):
        """A step without a known length: a spinner that turns into a finished bar."""
        if self._progress is None:
            yield
            return
        from rich.markup import escape

        tid = self._progress.add_task(escape(description), total=None)
        yield
        self._progress.update(tid, total=1, completed=1)
