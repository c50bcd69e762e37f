"""Build a four-domain demo corpus (code, docs, lexicon, scripture) from Debian packages.

Packages are fetched with ``apt-get download`` (the only network access: the Debian archive) and
unpacked with ``dpkg-deb -x`` into a work folder; nothing is installed. Their text is turned into
one source folder per domain, each domain capped at ``--cap-bytes`` of UTF-8 text, and then
``bayesplit corpus build`` tokenizes it. See README.md next to this file for the measured numbers.

Usage::

    python experiments/corpus/debian_mixture.py --work work/corpus/debian \\
        --out work/corpus/debian_mixture [--cap-bytes 8M] [--seed 0] [--vocab 8192] [--overwrite]

Steps, and what lands where::

    WORK/debs/      the .deb files (reused when present; --refresh downloads again)
    WORK/x/PKG/     each package unpacked
    WORK/src/       DOMAIN/SOURCE/NNNNN_name.txt, the text that goes into the corpus
    WORK/licenses/  each package's /usr/share/doc/PKG/copyright
    WORK/mixture.json, WORK/summary.md   sizes, versions and licenses per package and domain
    OUT/            the tokenized corpus (bayesplit-corpus/1)
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from bayesplit.train.corpus import Corpus, split_document

#: Dictionaries, WordNet and the Jargon File are packed into documents of about this size.
PACK_CHARS = 16_384


@dataclass
class Source:
    """One stream of documents for a domain, read from unpacked packages."""

    domain: str
    name: str
    packages: list[str]
    read: Callable[[Path], Iterable[tuple[str, str]]]  # (x root) -> (doc name, text)
    docs: list[tuple[str, str]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Readers: unpacked package trees -> (name, text) documents


def _files(root: Path, pattern: str) -> list[Path]:
    return sorted(p for p in root.glob(pattern) if p.is_file() and not p.is_symlink())


def read_python_stdlib(x: Path) -> Iterator[tuple[str, str]]:
    for pkg in ("libpython3.11-minimal", "libpython3.11-stdlib"):
        base = x / pkg / "usr/lib/python3.11"
        for p in _files(base, "**/*.py"):
            yield p.relative_to(base).as_posix(), p.read_text(encoding="utf-8", errors="replace")


def read_python_docs(x: Path) -> Iterator[tuple[str, str]]:
    base = x / "python3.11-doc/usr/share/doc/python3.11/html/_sources"
    for p in _files(base, "**/*.rst.txt"):
        yield p.relative_to(base).as_posix(), p.read_text(encoding="utf-8", errors="replace")


class _HTMLText(HTMLParser):
    """Visible text of an HTML page: navigation, scripts and styles dropped, blocks on new lines,
    <pre> kept verbatim."""

    BLOCK = {"p", "div", "br", "li", "tr", "dt", "dd", "pre", "table", "ul", "ol", "dl",
             "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "title", "hr"}  # fmt: skip
    SKIP = {"script", "style", "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0  # depth inside skipped elements
        self.pre = 0
        self.nav_depth = 0  # div nesting inside a navheader/navfooter

    def handle_starttag(self, tag, attrs):
        cls = dict(attrs).get("class") or ""
        if self.nav_depth:
            self.nav_depth += tag == "div"
            return
        if tag == "div" and cls in ("navheader", "navfooter"):
            self.nav_depth = 1
        elif tag in self.SKIP:
            self.skip += 1
        if tag == "pre":
            self.pre += 1
        if tag in self.BLOCK:
            self.parts.append("\n\n" if tag in ("p", "pre", "table", "h1", "h2", "h3") else "\n")

    def handle_endtag(self, tag):
        if self.nav_depth:
            self.nav_depth -= tag == "div"
            return
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if self.skip or self.nav_depth:
            return
        self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))

    def text(self) -> str:
        lines = [line.strip() if not line.startswith("  ") else line.rstrip()
                 for line in "".join(self.parts).splitlines()]  # fmt: skip
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def html_to_text(markup: str) -> str:
    parser = _HTMLText()
    parser.feed(markup)
    parser.close()
    return html.unescape(parser.text())


def read_postgres_docs(x: Path) -> Iterator[tuple[str, str]]:
    base = x / "postgresql-doc-15/usr/share/doc/postgresql-doc-15/html"
    for p in _files(base, "*.html"):
        text = html_to_text(p.read_text(encoding="utf-8", errors="replace"))
        if len(text) >= 200:  # index stubs and redirects carry no prose
            yield p.stem, text


_GROFF = shutil.which("groff")
#: Ragged-right text: groff 1.22's man macros re-justify at every page start unless told here,
#: and justified text pads words with runs of spaces.
_LEFT_ADJUST = ".ad l\n.am an-init\n.ad l\n..\n"


def roff_to_text(source: str) -> str:
    """Render a man page to plain text: with groff when present, else a rough regex strip."""
    if _GROFF:
        out = subprocess.run(
            [_GROFF, "-k", "-t", "-man", "-Tutf8", "-P-cbou", "-rHY=0", "-Wall"],
            input=(_LEFT_ADJUST + source).encode(),
            capture_output=True,
            check=False,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.decode("utf-8", errors="replace")
    lines = []
    for line in source.splitlines():
        if line.startswith(('.\\"', "'\\\"", '.\\\\"')):
            continue
        m = re.match(r"[.']\s*([A-Za-z]+)\s*(.*)", line)
        if m:
            macro, args = m.groups()
            if macro in ("SH", "SS", "B", "I", "BR", "IR", "RB", "BI", "IB", "RI", "TP", "IP"):
                if args:
                    lines.append(args.replace('"', ""))
            elif macro in ("PP", "P", "LP", "sp"):
                lines.append("")
            continue
        lines.append(line)
    text = "\n".join(lines)
    text = re.sub(r"\\f(\[[^\]]*\]|\(..|.)", "", text)
    text = re.sub(r"\\\((em|en)", "—", text).replace("\\-", "-").replace("\\e", "\\")
    return re.sub(r"\\[&|^]", "", text) + "\n"


def read_man_pages(x: Path) -> Iterator[tuple[str, str]]:
    pages = [
        p
        for pkg in ("manpages", "manpages-dev")
        for p in _files(x / pkg / "usr/share/man", "man*/*.gz")
    ]
    sources = [gzip.decompress(p.read_bytes()).decode("utf-8", errors="replace") for p in pages]
    keep = [
        (p, s) for p, s in zip(pages, sources, strict=True) if not s.lstrip().startswith(".so ")
    ]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        texts = list(pool.map(roff_to_text, [s for _, s in keep]))
    for (p, _), text in zip(keep, texts, strict=True):
        yield p.name.removesuffix(".gz"), text


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64_number(s: str) -> int:
    n = 0
    for ch in s:
        n = n * 64 + _B64.index(ch)
    return n


def dictd_text(dict_dz: Path, index: Path) -> str:
    """The entries of a dictd database (.dict.dz is dictzip, i.e. gzip) without its
    ``00-database-*`` housekeeping entries."""
    data = gzip.decompress(dict_dz.read_bytes())
    skip = []
    for line in index.read_text(encoding="utf-8", errors="replace").splitlines():
        head, off, length = line.split("\t")[:3]
        if head.startswith(("00-database", "00database")):
            start = _b64_number(off)
            skip.append((start, start + _b64_number(length)))
    keep, pos = [], 0
    for start, stop in sorted(skip):
        keep.append(data[pos:start])
        pos = max(pos, stop)
    keep.append(data[pos:])
    return b"".join(keep).decode("utf-8", errors="replace")


def _packed(name: str, text: str) -> Iterator[tuple[str, str]]:
    for i, piece in enumerate(split_document(text, PACK_CHARS)):
        yield f"{name}-{i:05d}", piece


def read_gcide(x: Path) -> Iterator[tuple[str, str]]:
    base = x / "dict-gcide/usr/share/dictd"
    yield from _packed("gcide", dictd_text(base / "gcide.dict.dz", base / "gcide.index"))


def read_foldoc(x: Path) -> Iterator[tuple[str, str]]:
    base = x / "dict-foldoc/usr/share/dictd"
    yield from _packed("foldoc", dictd_text(base / "foldoc.dict.dz", base / "foldoc.index"))


def read_jargon(x: Path) -> Iterator[tuple[str, str]]:
    path = x / "jargon-text/usr/share/doc/jargon-text/jargon.txt.gz"
    yield from _packed("jargon", gzip.decompress(path.read_bytes()).decode("utf-8", "replace"))


_POS = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}


def wordnet_glosses(data_file: Path) -> Iterator[tuple[int, str]]:
    """(lexicographer file number, "word, word (pos): gloss") for each synset of a data file."""
    for line in data_file.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("  "):  # license header
            continue
        fields, _, gloss = line.partition(" | ")
        parts = fields.split()
        lexfile, pos, n_words = int(parts[1]), parts[2], int(parts[3], 16)
        words = [w.replace("_", " ") for w in parts[4 : 4 + 2 * n_words : 2]]
        words = [re.sub(r"\((a|p|ip)\)$", "", w) for w in words]  # adjective markers
        yield lexfile, f"{', '.join(words)} ({_POS.get(pos, pos)}): {gloss.strip()}"


def read_wordnet(x: Path) -> Iterator[tuple[str, str]]:
    base = x / "wordnet-base/usr/share/wordnet"
    for pos in ("noun", "verb", "adj", "adv"):
        groups: dict[int, list[str]] = {}
        for lexfile, line in wordnet_glosses(base / f"data.{pos}"):
            groups.setdefault(lexfile, []).append(line)
        for lexfile, lines in sorted(groups.items()):
            # Blank lines every 20 synsets give the packer places to cut.
            text = "\n\n".join("\n".join(lines[i : i + 20]) for i in range(0, len(lines), 20))
            yield from _packed(f"wordnet-{pos}-{lexfile:02d}", text + "\n")


def read_bible(x: Path) -> Iterator[tuple[str, str]]:
    """The KJV text via the ``bible`` program of package bible-kjv, run from its unpacked folder
    (bible.data is a compressed format only that program reads). One document per book."""
    prog = x / "bible-kjv/usr/bin/bible"
    data = x / "bible-kjv-text/usr/lib"
    out = subprocess.run(
        [str(prog), "-p", str(data), "Gen1:1-Rev22:21"], capture_output=True, check=True
    ).stdout.decode("utf-8", errors="replace")
    books: dict[str, list[str]] = {}
    order: list[str] = []
    for chapter in re.split(r"\n\n(?=\S[^\n]* \d+\n)", "\n" + out):
        chapter = chapter.strip("\n")
        if not chapter:
            continue
        book = re.match(r"(.*) \d+$", chapter.split("\n", 1)[0]).group(1)
        if book not in books:
            books[book] = []
            order.append(book)
        books[book].append(chapter)
    for i, book in enumerate(order):
        yield f"{i + 1:02d}-{book.replace(' ', '_')}", "\n\n".join(books[book]) + "\n"


SOURCES = [
    Source("code", "python-stdlib", ["libpython3.11-minimal", "libpython3.11-stdlib"],
           read_python_stdlib),
    Source("docs", "python-docs", ["python3.11-doc"], read_python_docs),
    Source("docs", "postgresql-docs", ["postgresql-doc-15"], read_postgres_docs),
    Source("docs", "man-pages", ["manpages", "manpages-dev"], read_man_pages),
    Source("lexicon", "gcide", ["dict-gcide"], read_gcide),
    Source("lexicon", "wordnet", ["wordnet-base"], read_wordnet),
    Source("lexicon", "foldoc", ["dict-foldoc"], read_foldoc),
    Source("lexicon", "jargon", ["jargon-text"], read_jargon),
    Source("scripture", "kjv", ["bible-kjv-text", "bible-kjv"], read_bible),
]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Packages


def download(packages: list[str], debs: Path, refresh: bool) -> dict[str, Path]:
    debs.mkdir(parents=True, exist_ok=True)
    have = {p.name.split("_")[0]: p for p in debs.glob("*.deb")}
    missing = [p for p in packages if refresh or p not in have]
    if missing:
        print(f"apt-get download {' '.join(missing)}", file=sys.stderr)
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)
    found: dict[str, Path] = {}
    for pkg in packages:
        # newest file wins when an older version is still lying around
        candidates = sorted(debs.glob(f"{pkg}_*.deb"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise SystemExit(f"error: apt-get download left no .deb for {pkg}")
        found[pkg] = candidates[-1]
    return found


def deb_field(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True
    ).stdout.strip()


def copyright_file(x: Path, pkg: str) -> Path | None:
    """/usr/share/doc/PKG/copyright, following a doc folder that links to a sibling package
    (libpython3.11-stdlib -> libpython3.11-minimal, manpages-dev -> manpages)."""
    doc = x / pkg / "usr/share/doc" / pkg
    if doc.is_symlink():
        target = os.readlink(doc)
        doc = x / target / "usr/share/doc" / target
    path = doc / "copyright"
    return path if path.is_file() else None


def license_names(text: str) -> list[str]:
    """Short names from machine-readable (DEP-5) ``License:`` lines; empty when free-form."""
    names = {m.strip() for m in re.findall(r"^License:[ \t]*(\S[^\n]*)$", text, re.M)}
    return sorted(n for n in names if len(n.split()) <= 5 and not n.endswith(("the", "and")))


# ---------------------------------------------------------------------------------------------
# Capping and writing


def shares(sizes: dict[str, int], cap: int) -> dict[str, int]:
    """Split a byte cap between sources: equal shares, what a small source leaves goes to the
    others (water-filling)."""
    out, left = {}, cap
    names = sorted(sizes, key=lambda n: (sizes[n], n))
    for i, name in enumerate(names):
        out[name] = min(sizes[name], left // (len(names) - i))
        left -= out[name]
    return out


def select(docs: list[tuple[str, str]], budget: int, rng: np.random.Generator) -> list[int]:
    """Indices of documents taken in a seeded random order while they fit into ``budget`` bytes
    (first fit), returned in their original order."""
    chosen, total = [], 0
    for i in rng.permutation(len(docs)):
        size = len(docs[i][1].encode())
        if total + size <= budget:
            chosen.append(int(i))
            total += size
    return sorted(chosen)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("/", "__"))[:80]


def parse_bytes(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)[bB]?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a byte count: {text!r} (e.g. 8000000 or 8M)")
    scale = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("work/corpus/debian"))
    ap.add_argument("--out", type=Path, default=Path("work/corpus/debian_mixture"))
    ap.add_argument("--cap-bytes", type=parse_bytes, default=parse_bytes("8M"),
                    help="Most UTF-8 bytes of text per domain (e.g. 8M).")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--val-fraction", type=float, default=0.01)
    ap.add_argument("--overwrite", action="store_true", help="Replace an existing --out.")
    ap.add_argument("--refresh", action="store_true", help="Download the packages again.")
    ap.add_argument("--no-build", action="store_true", help="Stop after writing WORK/src.")
    args = ap.parse_args(argv)
    for tool in ("apt-get", "dpkg-deb"):
        if not shutil.which(tool):
            raise SystemExit(f"error: {tool} not found (this recipe needs a Debian system)")

    packages = sorted({p for s in SOURCES for p in s.packages})
    debs = download(packages, args.work / "debs", args.refresh)
    x = args.work / "x"
    lic_dir = args.work / "licenses"
    lic_dir.mkdir(parents=True, exist_ok=True)
    pkg_info = {}
    for pkg, deb in debs.items():
        dest = x / pkg
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
    for pkg, deb in debs.items():
        cfile = copyright_file(x, pkg)
        text = cfile.read_text(encoding="utf-8", errors="replace") if cfile else ""
        if cfile:
            shutil.copyfile(cfile, lic_dir / f"{pkg}.copyright")
        pkg_info[pkg] = {
            "version": deb_field(deb, "Version"),
            "deb": deb.name,
            "deb_sha256": hashlib.sha256(deb.read_bytes()).hexdigest(),
            "copyright": f"licenses/{pkg}.copyright" if cfile else None,
            "license_names": license_names(text),
        }

    src = args.work / "src"
    if src.exists():
        shutil.rmtree(src)
    domains: dict[str, dict] = {}
    for s in SOURCES:
        print(f"reading {s.domain}/{s.name}", file=sys.stderr)
        s.docs = [(n, t) for n, t in s.read(x) if t.strip()]
    for domain in sorted({s.domain for s in SOURCES}):
        group = [s for s in SOURCES if s.domain == domain]
        sizes = {s.name: sum(len(t.encode()) for _, t in s.docs) for s in group}
        budget = shares(sizes, args.cap_bytes)
        domains[domain] = {"cap_bytes": args.cap_bytes, "sources": {}}
        for s in group:
            rng = np.random.default_rng([args.seed, *s.name.encode()])
            picked = select(s.docs, budget[s.name], rng)
            folder = src / domain / s.name
            folder.mkdir(parents=True)
            for j, i in enumerate(picked):
                name, text = s.docs[i]
                (folder / f"{j:05d}_{_safe(name)}.txt").write_text(text, encoding="utf-8")
            domains[domain]["sources"][s.name] = {
                "packages": s.packages,
                "available_bytes": sizes[s.name],
                "available_documents": len(s.docs),
                "bytes": sum(len(s.docs[i][1].encode()) for i in picked),
                "files": len(picked),
            }
        d = domains[domain]
        d["bytes"] = sum(v["bytes"] for v in d["sources"].values())
        d["files"] = sum(v["files"] for v in d["sources"].values())

    summary = {"packages": pkg_info, "domains": domains, "cap_bytes": args.cap_bytes,
               "seed": args.seed, "groff": bool(_GROFF)}  # fmt: skip
    if not args.no_build:
        cmd = [sys.executable, "-m", "bayesplit.cli", "corpus", "build", str(src),
               "--out", str(args.out), "--vocab", str(args.vocab),
               "--val-fraction", str(args.val_fraction), "--seed", str(args.seed)]  # fmt: skip
        if args.overwrite:
            cmd.append("--overwrite")
        print(" ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)
        corpus = Corpus(args.out)
        summary["corpus"] = corpus.info()
    (args.work / "mixture.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.work / "summary.md").write_text(markdown(summary))
    print(markdown(summary))
    return 0


def markdown(summary: dict) -> str:
    """Tables for the README: per domain, per source, per package."""
    corpus = summary.get("corpus", {}).get("domains", {})
    lines = ["| domain | source bytes | files | documents (train/val) | tokens (train/val) |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    for name, d in summary["domains"].items():
        c = corpus.get(name)
        docs = f"{c['train_documents']:,} / {c['val_documents']:,}" if c else "—"
        toks = f"{c['train_tokens']:,} / {c['val_tokens']:,}" if c else "—"
        lines.append(f"| {name} | {d['bytes']:,} | {d['files']:,} | {docs} | {toks} |")
    lines += ["", "| domain | source | packages | used bytes (files) | available bytes (files) |",
              "|---|---|---|---:|---:|"]  # fmt: skip
    for name, d in summary["domains"].items():
        for sname, s in d["sources"].items():
            lines.append(
                f"| {name} | {sname} | {', '.join(s['packages'])} | {s['bytes']:,} ({s['files']:,})"
                f" | {s['available_bytes']:,} ({s['available_documents']:,}) |"
            )
    lines += ["", "| package | version | DEP-5 license names |", "|---|---|---|"]
    for pkg, p in summary["packages"].items():
        lines.append(
            f"| {pkg} | {p['version']} | {', '.join(p['license_names']) or '(free-form)'} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
