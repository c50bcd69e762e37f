"""The corpus builder and reader: folder and cluster domains, shards, manifest, CLI contract."""

from __future__ import annotations

import json
import math
import random
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from bayesplit.cli import app
from bayesplit.errors import BayesplitError
from bayesplit.train.corpus import (
    Corpus,
    build_corpus,
    cluster_documents,
    sanitize_name,
    split_document,
    unigram_entropy,
)

runner = CliRunner()

# Literal end-of-text text inside a document must stay text, not become a document boundary.
TRICKY = "def f():\n    return '<|endoftext|>'  # not a boundary\n\nnon-ASCII: été, 日本語, ✓\n"


def _words(rng: random.Random, n: int, *, letters: str) -> list[str]:
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 8))) for _ in range(n)]


def _make_tree(root):
    """Two domains with known documents, plus things that are not documents."""
    rng = random.Random(0)
    vocab = _words(rng, 60, letters="abcdefghij")
    texts = {}
    for i in range(6):
        texts[f"alpha/doc{i}.txt"] = " ".join(rng.choice(vocab) for _ in range(120)) + "\n"
    for i in range(3):
        texts[f"beta/note{i}.md"] = f"# Note {i}\n\n" + " ".join(
            rng.choice(vocab) for _ in range(90)
        )
    texts["beta/nested/deep.py"] = TRICKY
    for rel, text in texts.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (root / "beta" / "blob.bin").write_bytes(b"\x00\x01binary")  # skipped: binary
    (root / "beta" / "empty.txt").write_text("  \n")  # skipped: blank
    (root / "beta" / ".hidden").write_text("hidden text")  # skipped: hidden
    (root / "README").write_text("loose file, not in a domain")  # ignored in folder mode
    return texts


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("src")
    return root, _make_tree(root)


@pytest.fixture(scope="module")
def built(tree, tmp_path_factory):
    src, texts = tree
    out = tmp_path_factory.mktemp("corpus") / "c"
    return build_corpus(src, out, vocab_size=400, val_fraction=0.2, seed=3, progress=False), texts


def _documents_from_shard(corpus, domain, split):
    """Split a shard at end-of-text tokens and decode each document."""
    toks = np.asarray(corpus.tokens(domain, split))
    ends = np.flatnonzero(toks == corpus.eot_token)
    tok = corpus.tokenizer()
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [tok.decode(toks[s:e].tolist()) for s, e in zip(starts, ends, strict=True)]


def test_folder_mode_counts_and_manifest(built):
    corpus, texts = built
    m = corpus.manifest
    assert m["format"] == "bayesplit-corpus/1" and m["dtype"] == "uint16"
    assert m["domain_mode"] == "folders" and m["seed"] == 3
    assert corpus.domains == ["alpha", "beta"]
    counts = {d: sum(e[s]["documents"] for s in ("train", "val")) for d, e in m["domains"].items()}
    assert counts == {"alpha": 6, "beta": 4}  # binary, blank, hidden and loose files skipped
    for domain in corpus.domains:
        for split in ("train", "val"):
            rec = m["domains"][domain][split]
            assert rec["file"] == f"{domain}/{split}.bin"
            toks = corpus.tokens(domain, split)
            assert toks.dtype == np.uint16 and not toks.flags.writeable
            assert toks.size == rec["tokens"] > 0
            assert rec["documents"] >= 1
            assert int((toks == corpus.eot_token).sum()) == rec["documents"]
            assert toks[-1] == corpus.eot_token
            assert int(toks.max()) < corpus.vocab_size
    assert corpus.tokenizer().token_to_id("<|endoftext|>") == corpus.eot_token


def test_round_trip_decode(built):
    corpus, texts = built
    rows = corpus.documents()
    assert len(rows) == 10
    for domain in corpus.domains:
        for split in ("train", "val"):
            listed = [r for r in rows if r["domain"] == domain and r["split"] == split]
            decoded = _documents_from_shard(corpus, domain, split)
            assert [texts[r["source"]] for r in listed] == decoded
            assert sum(r["tokens"] + 1 for r in listed) == corpus.tokens(domain, split).size
            assert all(r["part"] == 0 and r["chars"] == len(texts[r["source"]]) for r in listed)
    everything = [
        t
        for d in corpus.domains
        for s in ("train", "val")
        for t in _documents_from_shard(corpus, d, s)
    ]
    assert sorted(everything) == sorted(texts.values())  # TRICKY included, eot text intact


def test_info_and_unigram_entropy(built):
    corpus, _ = built
    info = corpus.info()
    assert info["totals"]["train_documents"] + info["totals"]["val_documents"] == 10
    h = unigram_entropy(corpus, "val")
    # direct computation: add-one smoothed unigram on train, cross-entropy on val
    v = corpus.vocab_size
    train = np.concatenate([corpus.tokens(d, "train") for d in corpus.domains])
    val = np.concatenate([corpus.tokens(d, "val") for d in corpus.domains])
    p = (np.bincount(train, minlength=v) + 1) / (train.size + v)
    assert h == pytest.approx(-np.log(p[val]).mean(), rel=1e-9)
    assert 0 < h < math.log(v)
    corpus.verify()


def test_deterministic_given_seed(tree, built, tmp_path):
    src, _ = tree
    corpus, _ = built
    again = build_corpus(
        src, tmp_path / "again", vocab_size=400, val_fraction=0.2, seed=3, progress=False
    )
    assert again.manifest["content_sha256"] == corpus.manifest["content_sha256"]
    assert again.manifest["tokenizer_sha256"] == corpus.manifest["tokenizer_sha256"]
    other = build_corpus(
        src, tmp_path / "other", vocab_size=400, val_fraction=0.2, seed=4, progress=False
    )
    assert other.manifest["content_sha256"] != corpus.manifest["content_sha256"]


def test_split_document_pieces_concatenate():
    text = "para one\nline two\n\npara two is here\n\n" + "x" * 50 + "\nend\n"
    pieces = split_document(text, 20)
    assert "".join(pieces) == text
    assert all(len(p) <= 20 for p in pieces)
    assert pieces[0] == "para one\nline two\n\n"  # cut after the blank line
    assert split_document("short", 100) == ["short"]


def test_large_file_and_single_document_domain(tmp_path):
    src = tmp_path / "src"
    (src / "big").mkdir(parents=True)
    (src / "one").mkdir()
    big = "\n\n".join(f"paragraph {i} " + "word " * 40 for i in range(50))
    (src / "big" / "book.txt").write_text(big)
    (src / "one" / "only.txt").write_text("first line of the only file\nsecond line of it\n")
    corpus = build_corpus(src, tmp_path / "out", vocab_size=300, max_doc_chars=1000, progress=False)
    rows = corpus.documents()
    big_rows = [r for r in rows if r["domain"] == "big"]
    assert len(big_rows) >= math.ceil(len(big) / 1000)
    assert all(r["chars"] <= 1000 for r in big_rows)
    assert sorted(r["part"] for r in big_rows) == list(range(len(big_rows)))
    # the single document was cut in two: one piece for train, one for val
    one = corpus.manifest["domains"]["one"]
    assert one["train"]["documents"] == one["val"]["documents"] == 1
    pieces = _documents_from_shard(corpus, "one", "train") + _documents_from_shard(
        corpus, "one", "val"
    )
    assert sorted(pieces) == sorted(["first line of the only file\n", "second line of it\n"])


def _mixture(n_per: int = 50, seed: int = 0):
    """Three planted domains: distinct topical vocabularies mixed into shared filler words."""
    rng = random.Random(seed)
    shared = _words(rng, 300, letters="abcdefghijklmnop")
    topical = [_words(rng, 150, letters=letters) for letters in ("qrstu", "vwxyz", "aeiouk")]
    texts, truth = [], []
    for i in range(3 * n_per):
        k = i % 3
        n = rng.randint(60, 160)
        words = [
            rng.choice(topical[k]) if rng.random() < 0.3 else rng.choice(shared) for _ in range(n)
        ]
        texts.append(" ".join(words))
        truth.append(k)
    return texts, np.array(truth)


def test_clustering_recovers_planted_domains():
    from sklearn.metrics import adjusted_rand_score

    texts, truth = _mixture()
    labels, names, terms = cluster_documents(texts, 3, seed=0)
    assert adjusted_rand_score(truth, labels) >= 0.9
    assert len(set(names)) == 3
    for i, name in enumerate(names):
        assert re.fullmatch(rf"c{i}(-[a-z0-9]+)+", name), name
        assert len(terms[i]) == 3
    again, names2, _ = cluster_documents(texts, 3, seed=0)
    assert np.array_equal(labels, again) and names == names2


def test_clustering_takes_every_seed_the_command_line_takes():
    # --seed 4294967296 was sklearn's InvalidParameterError traceback: it takes 32-bit seeds
    from sklearn.metrics import adjusted_rand_score

    texts, truth = _mixture()
    for seed in (2**32, 2**63 - 1):
        labels, _, _ = cluster_documents(texts, 3, seed=seed)
        assert adjusted_rand_score(truth, labels) >= 0.9
        again, _, _ = cluster_documents(texts, 3, seed=seed)
        assert np.array_equal(labels, again)


def test_cluster_mode_build(tmp_path):
    texts, truth = _mixture(n_per=20, seed=1)
    src = tmp_path / "src"
    for i, text in enumerate(texts):
        sub = src / f"batch{i % 4}"  # subfolders do not matter in cluster mode
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"d{i:03d}.txt").write_text(text)
    corpus = build_corpus(
        src, tmp_path / "out", domains="cluster:3", vocab_size=500, progress=False
    )
    assert corpus.manifest["domain_mode"] == "cluster:3"
    assert len(corpus.domains) == 3
    assert set(corpus.manifest["clusters"]) == set(corpus.domains)
    rows = corpus.documents()
    assert len(rows) == 60
    # every planted domain lands (almost) entirely in one cluster
    from sklearn.metrics import adjusted_rand_score

    by_source = {r["source"]: r["domain"] for r in rows}
    pred = [by_source[f"batch{i % 4}/d{i:03d}.txt"] for i in range(60)]
    assert adjusted_rand_score(truth, pred) >= 0.9
    for d in corpus.domains:
        assert corpus.manifest["domains"][d]["val"]["tokens"] > 0


def test_names_that_are_not_utf8_are_listed_escaped(tmp_path):
    """documents.tsv used to fail on such a name with a UnicodeEncodeError, after the tokenizer."""
    import os

    src = tmp_path / "src"
    rng = random.Random(1)
    vocab = _words(rng, 40, letters="abcdefgh")
    files = {b"a/bad\xffname.txt": 0, b"b\xfed/ok.txt": 1, b"b\xfed/two.txt": 2}
    try:
        for raw, i in files.items():
            path = src / os.fsdecode(raw)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(" ".join(rng.choice(vocab) for _ in range(80 + i)))
    except (OSError, UnicodeError):
        pytest.skip("this file system takes only UTF-8 names")
    corpus = build_corpus(src, tmp_path / "out", vocab_size=300, progress=False)
    assert corpus.domains == ["a", "bd"]  # the folder name is sanitized like any odd name
    sources = {d["source"] for d in corpus.documents()}
    assert sources == {"a/bad\\xffname.txt", "b\\xfed/ok.txt", "b\\xfed/two.txt"}
    res = runner.invoke(app, ["corpus", "build", str(src), "--out", str(tmp_path / "o2"), "-q",
                              "--vocab", "300"])  # fmt: skip
    assert res.exit_code == 0, res.output
    (src / os.fsdecode(b"\xff\xfe")).mkdir()
    (src / os.fsdecode(b"\xff\xfe") / "x.txt").write_text("text")
    with pytest.raises(BayesplitError, match=re.escape("domain folder '\\xff\\xfe' has no usable")):
        build_corpus(src, tmp_path / "o3", vocab_size=300, progress=False)


def test_sanitize_name():
    assert sanitize_name("Law & Order (US)") == "Law-Order-US"
    assert sanitize_name("  médecine ") == "medecine"
    assert sanitize_name("...") == ""


# ------------------------------------------------------------------------------------------
# Bad input: BayesplitError from the API, exit code 2 and one line from the CLI, nothing written


def _bad_cases(root):
    good = root / "good"
    _make_tree(good)
    (root / "flat").mkdir()
    (root / "flat" / "a.txt").write_text("a flat file, no domain folders")
    (root / "bin" / "d").mkdir(parents=True)
    (root / "bin" / "d" / "x.bin").write_bytes(b"\x00\x00")
    (root / "emptydomain" / "ok").mkdir(parents=True)
    (root / "emptydomain" / "ok" / "a.txt").write_text("some text here")
    (root / "emptydomain" / "void").mkdir()
    (root / "afile.txt").write_text("not a folder")
    occupied = root / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("precious")
    return {
        "missing source": (root / "nope", {}, "does not exist"),
        "source is a file": (root / "afile.txt", {}, "not a folder"),
        "no domain folders": (root / "flat", {}, "no domain folders"),
        "no text files (cluster)": (root / "bin", {"domains": "cluster:2"}, "no text files"),
        "domain without documents": (root / "emptydomain", {}, "no text documents"),
        "K < 2": (good, {"domains": "cluster:1"}, "K >= 2"),
        "K > documents": (good, {"domains": "cluster:99"}, "K <= number of documents"),
        "bad domain mode": (good, {"domains": "topics"}, "'folders' or 'cluster:K'"),
        "vocab too small": (
            good,
            {"vocab_size": 100},
            "--vocab (in Python: vocab_size=) must be in",
        ),
        "vocab too large": (
            good,
            {"vocab_size": 70000},
            "--vocab (in Python: vocab_size=) must be in",
        ),
        "val fraction 0": (good, {"val_fraction": 0.0}, "--val-fraction"),
        "val fraction 0.5": (good, {"val_fraction": 0.5}, "--val-fraction"),
        "out not empty": (good, {"out": occupied}, "not empty"),
        "out inside source": (good, {"out": good / "alpha" / "corpus"}, "inside the source"),
    }


BAD_IDS = [
    "missing source",
    "source is a file",
    "no domain folders",
    "no text files (cluster)",
    "domain without documents",
    "K < 2",
    "K > documents",
    "bad domain mode",
    "vocab too small",
    "vocab too large",
    "val fraction 0",
    "val fraction 0.5",
    "out not empty",
    "out inside source",
]


def test_every_bad_case_is_parametrized(tmp_path):
    assert sorted(_bad_cases(tmp_path)) == sorted(BAD_IDS)


def _snapshot(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.mark.parametrize("case", BAD_IDS)
def test_bad_input_api(tmp_path, case):
    src, kwargs, fragment = _bad_cases(tmp_path)[case]
    out = kwargs.pop("out", tmp_path / "out")
    before = _snapshot(tmp_path)
    with pytest.raises(BayesplitError, match=re.escape(fragment)):
        build_corpus(src, out, progress=False, **kwargs)
    assert _snapshot(tmp_path) == before


_CLI_FLAGS = {"domains": "--domains", "vocab_size": "--vocab", "val_fraction": "--val-fraction"}


@pytest.mark.parametrize("case", BAD_IDS)
def test_bad_input_cli(tmp_path, case):
    src, kwargs, fragment = _bad_cases(tmp_path)[case]
    out = kwargs.pop("out", tmp_path / "out")
    args = ["corpus", "build", str(src), "--out", str(out), "-q"]
    for key, value in kwargs.items():
        args += [_CLI_FLAGS[key], str(value)]
    before = _snapshot(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]
    assert _snapshot(tmp_path) == before


def test_overwrite_replaces_only_a_corpus(tree, tmp_path):
    # `--out precious --overwrite` deleted precious/important.txt: any folder went
    src, _ = tree
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "important.txt").write_text("x")
    with pytest.raises(BayesplitError, match="holds no corpus .no manifest.json."):
        build_corpus(src, precious, vocab_size=300, overwrite=True, progress=False)
    res = runner.invoke(app, ["corpus", "build", str(src), "--out", str(precious),
                              "--overwrite", "-q", "--vocab", "300"])  # fmt: skip
    assert res.exit_code == 2 and "holds no corpus" in res.stderr
    assert [p.name for p in precious.iterdir()] == ["important.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious"]
    # another tool's manifest.json (a web app's, a package's) is no corpus either
    for text in ('{"name": "my-app", "version": "1.0"}', "not json", "[1, 2]"):
        (precious / "manifest.json").write_text(text)
        # a corpus whose manifest was damaged is not replaced either; the refusal says how
        with pytest.raises(BayesplitError, match="holds no corpus .*delete the folder yourself"):
            build_corpus(src, precious, vocab_size=300, overwrite=True, progress=False)
        assert sorted(p.name for p in precious.iterdir()) == ["important.txt", "manifest.json"]


def test_overwrite_and_failed_build_leave_no_trace(tree, tmp_path, monkeypatch):
    import bayesplit.train.corpus.build as mod

    src, _ = tree
    out = tmp_path / "out"
    first = build_corpus(src, out, vocab_size=300, progress=False)
    second = build_corpus(src, out, vocab_size=300, seed=9, overwrite=True, progress=False)
    assert second.manifest["seed"] == 9 and first.path == second.path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp or old folders left

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(mod, "_write", boom)
    with pytest.raises(RuntimeError):
        build_corpus(src, tmp_path / "new", vocab_size=300, progress=False)
    with pytest.raises(RuntimeError):
        build_corpus(src, out, vocab_size=300, overwrite=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert Corpus(out).manifest["seed"] == 9  # the old corpus survived the failed rebuild


def test_reader_rejects_damaged_corpora(built, tmp_path):
    import shutil

    corpus, _ = built
    with pytest.raises(BayesplitError, match="does not exist"):
        Corpus(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BayesplitError, match="no manifest.json"):
        Corpus(tmp_path / "empty")

    def copy(name):
        dst = tmp_path / name
        shutil.copytree(corpus.path, dst)
        return dst

    garbled = copy("garbled")
    (garbled / "manifest.json").write_text('{"format": "bayesplit-corpus/1", "domains": ')
    with pytest.raises(BayesplitError, match="not valid JSON"):
        Corpus(garbled)

    wrong = copy("wrong")
    m = json.loads((wrong / "manifest.json").read_text())
    m["format"] = "other/2"
    (wrong / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BayesplitError, match="format"):
        Corpus(wrong)

    missing = copy("missing")
    (missing / "beta" / "val.bin").unlink()
    with pytest.raises(BayesplitError, match="missing"):
        Corpus(missing)

    short = copy("short")
    data = (short / "alpha" / "train.bin").read_bytes()
    (short / "alpha" / "train.bin").write_bytes(data[:-2])
    with pytest.raises(BayesplitError, match="manifest records"):
        Corpus(short)

    tampered = copy("tampered")
    data = bytearray((tampered / "alpha" / "train.bin").read_bytes())
    data[0] ^= 1
    (tampered / "alpha" / "train.bin").write_bytes(bytes(data))
    with pytest.raises(BayesplitError, match="content hash"):
        Corpus(tampered).verify()
    with pytest.raises(BayesplitError, match="unknown domain"):
        corpus.tokens("gamma", "train")
    with pytest.raises(BayesplitError, match="split"):
        corpus.tokens("alpha", "test")


def test_cli_build_and_info(tree, tmp_path):
    src, _ = tree
    out = tmp_path / "c"
    result = runner.invoke(
        app, ["corpus", "build", str(src), "--out", str(out), "--vocab", "300", "-q", "--json"]
    )
    assert result.exit_code == 0, result.output
    built_info = json.loads(result.stdout)
    assert set(built_info["domains"]) == {"alpha", "beta"}
    result = runner.invoke(app, ["corpus", "info", str(out), "--verify", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["content_sha256"] == built_info["content_sha256"] and info["verified"]
    assert info["unigram_entropy_val"] > 0
    result = runner.invoke(app, ["corpus", "info", str(out)])
    assert result.exit_code == 0 and "alpha" in result.stderr and "content" in result.stderr
    result = runner.invoke(app, ["corpus", "info", str(tmp_path / "none")])
    assert result.exit_code == 2 and result.stderr.startswith("error: ")


def test_a_manifest_nested_too_deeply_or_with_a_repeated_key_is_one_error(built, tmp_path):
    """[[[...]]] nested deeper than the recursion limit (2,000 in the CLI; pytest-xdist's
    workers allow more) was a RecursionError traceback; a key given twice was taken
    silently (the last one won), where suggestions files and ladders refuse it."""
    import shutil

    corpus, _ = built
    deep = tmp_path / "deep"
    shutil.copytree(corpus.path, deep)
    (deep / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(BayesplitError, match="not valid JSON.*nested too deeply"):
        Corpus(deep)
    twice = tmp_path / "twice"
    shutil.copytree(corpus.path, twice)
    text = (corpus.path / "manifest.json").read_text()
    (twice / "manifest.json").write_text(text.replace("{", '{"format": "x", ', 1))
    with pytest.raises(BayesplitError, match="not valid JSON.*format"):
        Corpus(twice)


def test_documents_too_alike_to_cluster_are_one_line_without_warnings(tmp_path):
    import warnings

    texts = ["the a of and"] * 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn's RuntimeWarning / ConvergenceWarning
        with pytest.raises(BayesplitError, match="too alike to split: give each domain"):
            cluster_documents(texts, 2, seed=0)
        # one group: no smaller K splits it (K=3 said "use a smaller K", then K=2 failed)
        with pytest.raises(
            BayesplitError,
            match="found only 1 distinct group for K=3; the documents are too alike to split",
        ):
            cluster_documents(texts * 2, 3, seed=0)
        two = ["apple banana cherry"] * 3 + ["zebra yak walrus"] * 3
        with pytest.raises(
            BayesplitError, match=re.escape("found only 2 distinct groups for K=3; use K <= 2")
        ):
            cluster_documents(two, 3, seed=0)
        labels, _, _ = cluster_documents(two, 2, seed=0)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]


# ------------------------------------------------------------------------------------------
# The train/val split: --val-fraction is a target, never more than half of a domain


def _docs(*sizes: int) -> list:
    from bayesplit.train.corpus import Document

    return [Document(f"d{i}.txt", 0, "x" * n, "dom") for i, n in enumerate(sizes)]


def _old_split(docs, val_fraction, rng):
    """The rule before half a domain was a limit: documents in a random order until the target."""
    order = rng.permutation(len(docs))
    target = val_fraction * sum(len(d.text) for d in docs)
    n_val, chars = 0, 0
    for i in order[:-1]:
        n_val += 1
        chars += len(docs[i].text)
        if chars >= target:
            break
    return [docs[i] for i in order[n_val:]], [docs[i] for i in order[:n_val]]


def test_one_long_document_never_becomes_all_of_validation():
    # 17,077 + 18 characters at 1%: the long one drawn first was all of val (99.9%)
    from bayesplit.train.corpus import split_train_val

    docs = _docs(17_077, 18)
    for seed in range(8):
        train, val = split_train_val(docs, 0.01, np.random.default_rng(seed))
        assert [d.source for d in val] == ["d1.txt"] and [d.source for d in train] == ["d0.txt"]
    docs = _docs(5_000, 60, 50, 40)  # the long one is passed over wherever it is drawn
    for seed in range(8):
        train, val = split_train_val(docs, 0.005, np.random.default_rng(seed))
        assert "d0.txt" in [d.source for d in train]
        assert len(val) == 1 and len(val[0].text) <= 60


def test_the_split_is_unchanged_where_no_document_takes_val_past_half():
    # corpora built before keep their split, and so their content hash
    from bayesplit.train.corpus import split_train_val

    rng = random.Random(5)
    compared = 0
    for case in range(300):
        docs = _docs(*(rng.randint(1, 400) for _ in range(rng.randint(2, 9))))
        vf = rng.choice([0.01, 0.1, 0.3, 0.49])
        old = _old_split(docs, vf, np.random.default_rng(case))
        if 2 * sum(len(d.text) for d in old[1]) > sum(len(d.text) for d in docs):
            continue
        assert split_train_val(docs, vf, np.random.default_rng(case)) == old
        compared += 1
    assert compared > 150


def test_a_one_document_domain_gives_val_the_shorter_piece(tmp_path):
    src = tmp_path / "src"
    for name, text in {"one": "x" * 10 + "\n" + "y" * 30 + "\n", "two": "a b c\n" * 20}.items():
        (src / name).mkdir(parents=True)
        (src / name / "f.txt").write_text(text)
    (src / "two" / "g.txt").write_text("d e f\n" * 20)
    for seed in range(4):
        out = tmp_path / f"out{seed}"
        corpus = build_corpus(src, out, vocab_size=300, seed=seed, progress=False)
        val = [r for r in corpus.documents() if r["domain"] == "one" and r["split"] == "val"]
        assert [(r["part"], r["chars"]) for r in val] == [(0, 11)]
        assert _documents_from_shard(corpus, "one", "val") == ["x" * 10 + "\n"]


def test_a_long_document_is_not_all_of_val_from_the_command_line(tmp_path):
    src = tmp_path / "src"
    (src / "ov").mkdir(parents=True)
    (src / "ov" / "large.txt").write_text(
        "\n".join(f"line {i} of the long file" for i in range(700))
    )
    (src / "ov" / "small.txt").write_text("short text here.\n")
    for seed in (0, 2, 4, 5):
        res = runner.invoke(
            app,
            [
                "corpus",
                "build",
                str(src),
                "--out",
                str(tmp_path / "o"),
                "--overwrite",
                "-q",
                "--vocab",
                "300",
                "--seed",
                str(seed),
                "--val-fraction",
                "0.01",
                "--json",
            ],
        )
        assert res.exit_code == 0, res.output
        d = json.loads(res.stdout)["domains"]["ov"]
        assert (d["train_documents"], d["val_documents"]) == (1, 1)
        corpus = Corpus(tmp_path / "o")
        assert _documents_from_shard(corpus, "ov", "val") == ["short text here.\n"]
        assert d["val_tokens"] == len(corpus.tokenizer().encode("short text here.\n").ids) + 1
        assert d["train_tokens"] > 50 * d["val_tokens"]


# ------------------------------------------------------------------------------------------
# Arguments of build_corpus and cluster_documents


@pytest.mark.parametrize("seed", [-1, 1.5, None, "3", True, 2**70])
def test_build_and_clustering_refuse_a_seed_the_command_line_refuses(tree, tmp_path, seed):
    # -1 was a ValueError traceback, 1.5 and None TypeErrors; "3", True and 2**70 built
    src, _ = tree
    with pytest.raises(BayesplitError, match=re.escape("--seed (in Python: seed=) must be")):
        build_corpus(src, tmp_path / "out", vocab_size=300, seed=seed, progress=False)
    with pytest.raises(BayesplitError, match="^seed must be"):
        cluster_documents(["apple banana", "zebra yak", "apple cherry"], 2, seed=seed)
    assert list(tmp_path.iterdir()) == []


def test_build_takes_numpy_numbers_and_refuses_bools(tree, tmp_path):
    # np.int64(1000) was "must be a positive integer, got 1000"; True was a max_doc_chars of 1
    src, _ = tree
    for bad, fragment in (
        ({"max_doc_chars": True}, "--max-doc-chars (in Python: max_doc_chars=) must be a positive"),
        ({"val_fraction": True}, "--val-fraction (in Python: val_fraction=) must be in"),
        ({"vocab_size": np.True_}, "--vocab (in Python: vocab_size=) must be an integer"),
    ):
        with pytest.raises(BayesplitError, match=re.escape(fragment)):
            build_corpus(src, tmp_path / "out", progress=False, **{"vocab_size": 300, **bad})
    assert list(tmp_path.iterdir()) == []
    corpus = build_corpus(
        src,
        tmp_path / "out",
        vocab_size=np.int64(300),
        seed=np.uint8(3),
        val_fraction=np.float32(0.25),
        max_doc_chars=np.int64(400),
        progress=False,
    )
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert (m["requested_vocab_size"], m["seed"], m["max_doc_chars"]) == (300, 3, 400)
    assert m["val_fraction"] == pytest.approx(0.25)
    assert max(r["chars"] for r in corpus.documents()) <= 400


# ------------------------------------------------------------------------------------------
# Writing --out: atomic, nothing left behind


def test_a_build_does_not_replace_an_out_filled_during_it(tree, tmp_path, monkeypatch):
    # two builds to one --out without --overwrite both succeeded: the second replaced the first
    import bayesplit.train.corpus.build as mod

    src, _ = tree
    out = tmp_path / "out"
    real_write = mod._write

    def another_build_finishes_first(root, *args, **kwargs):
        manifest = real_write(root, *args, **kwargs)
        out.mkdir()
        (out / "manifest.json").write_text("the other build's")
        return manifest

    monkeypatch.setattr(mod, "_write", another_build_finishes_first)
    with pytest.raises(
        BayesplitError,
        match=re.escape(f"--out {out} (in Python: out=) became non-empty during the build"),
    ):
        build_corpus(src, out, vocab_size=300, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp folder left
    assert [p.name for p in out.iterdir()] == ["manifest.json"]
    assert (out / "manifest.json").read_text() == "the other build's"


def test_a_long_out_name_builds(tree, tmp_path):
    # a name of 242-255 bytes failed after all the work, naming the hidden temp folder
    src, _ = tree
    out = tmp_path / ("o" * 250)
    try:
        out.mkdir()
        out.rmdir()
    except OSError:
        pytest.skip("the file system takes no such name")
    corpus = build_corpus(src, out, vocab_size=300, progress=False)
    assert corpus.path == out and (out / "manifest.json").is_file()
    again = build_corpus(src, out, vocab_size=300, seed=1, overwrite=True, progress=False)
    assert again.manifest["seed"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_a_failed_build_removes_the_parent_folders_it_made(tree, tmp_path, monkeypatch):
    import bayesplit.train.corpus.build as mod

    src, _ = tree
    (tmp_path / "keep").mkdir()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(mod, "_write", boom)
    for out in (tmp_path / "a" / "b" / "out", tmp_path / "keep" / "x" / "out"):
        with pytest.raises(RuntimeError, match="disk full"):
            build_corpus(src, out, vocab_size=300, progress=False)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["keep"]


# ------------------------------------------------------------------------------------------
# Reading the source files


def test_binary_and_non_utf8_files_are_said_in_one_warning_line_each(tmp_path, capfd):
    src = tmp_path / "src"
    for domain in ("alpha", "beta"):
        (src / domain).mkdir(parents=True)
        (src / domain / "ok.txt").write_text(f"{domain} plain text here\n" * 5)
    (src / "alpha" / "u16.txt").write_bytes("utf-16 text\n".encode("utf-16"))
    (src / "beta" / "blob.bin").write_bytes(b"\x00\x01binary")
    (src / "beta" / "l1.txt").write_bytes("caf\xe9 na\xefve\n".encode("latin-1"))
    corpus = build_corpus(src, tmp_path / "out", vocab_size=300, progress=False)
    err = [ln for ln in capfd.readouterr().err.splitlines() if ln.strip()]
    assert err == [
        f"warning: skipped 2 binary files under {src} (e.g. alpha/u16.txt): a NUL byte in the "
        "first 8 KiB (UTF-16 text too); convert text to UTF-8 to include it",
        f"warning: read 1 file that is not UTF-8 under {src} (e.g. beta/l1.txt): invalid bytes "
        "became U+FFFD; convert to UTF-8 to keep them",
    ]
    assert sorted({r["source"] for r in corpus.documents()}) == [
        "alpha/ok.txt",
        "beta/l1.txt",
        "beta/ok.txt",
    ]
    res = runner.invoke(
        app, ["corpus", "build", str(src), "--out", str(tmp_path / "o2"), "-q", "--vocab", "300"]
    )
    assert res.exit_code == 0, res.output
    warnings = [ln for ln in res.stderr.splitlines() if ln.startswith("warning: ")]
    assert [w.split(" under ")[0] for w in warnings] == [
        "warning: skipped 2 binary files",
        "warning: read 1 file that is not UTF-8",
    ]
    # a domain of UTF-16 files only: its error comes before the warnings, so it says why
    (src / "gamma").mkdir()
    (src / "gamma" / "u16.txt").write_bytes("only utf-16 here\n".encode("utf-16"))
    with pytest.raises(
        BayesplitError,
        match=re.escape(
            "has no text documents (1 binary files skipped, UTF-16 text too: convert it"
        ),
    ):
        build_corpus(src, tmp_path / "o3", vocab_size=300, progress=False)


def test_a_byte_order_mark_is_not_text(tmp_path):
    # Windows editors start UTF-8 files with U+FEFF: it was the first character of the document
    src = tmp_path / "src"
    texts = {
        "alpha/bom.txt": "first line\nsecond line\n",
        "alpha/plain.txt": "more text\n" * 3,
        "beta/b.txt": "beta text\n" * 4,
        "beta/c.txt": "gamma text\n" * 4,
    }
    for rel, text in texts.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes((b"\xef\xbb\xbf" if "bom" in rel else b"") + text.encode())
    corpus = build_corpus(src, tmp_path / "out", vocab_size=300, progress=False)
    chars = {r["source"]: r["chars"] for r in corpus.documents()}
    assert chars == {rel: len(text) for rel, text in texts.items()}
    decoded = [
        t
        for d in corpus.domains
        for s in ("train", "val")
        for t in _documents_from_shard(corpus, d, s)
    ]
    assert sorted(decoded) == sorted(texts.values())


def test_the_tokenizer_encodes_end_of_text_as_text_like_the_shards(built):
    # tokenizer.json does not keep encode_special_tokens: the literal became the EOT id
    corpus, texts = built
    tok = corpus.tokenizer()
    ids = tok.encode("hello <|endoftext|> world").ids
    assert corpus.eot_token not in ids and tok.decode(ids) == "hello <|endoftext|> world"
    rows = corpus.documents()
    (row,) = [r for r in rows if r["source"] == "beta/nested/deep.py"]
    same = [r for r in rows if (r["domain"], r["split"]) == (row["domain"], row["split"])]
    start = sum(r["tokens"] + 1 for r in same[: same.index(row)])
    shard = corpus.tokens(row["domain"], row["split"])
    assert tok.encode(TRICKY).ids == shard[start : start + row["tokens"]].tolist()
