"""What the corpus reader and builder refuse or compute on their own: content hashes of
manifests that record none, token ids beyond the vocabulary, domain names that are not file
names, shards outside the corpus folder, symbolic links in a source tree, ``--out .``."""

from __future__ import annotations

import json
import random
import re
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from bayesplit.cli import app
from bayesplit.errors import BayesplitError
from bayesplit.train.corpus import Corpus, build_corpus, content_hash, unigram_entropy

runner = CliRunner()


def _hand_made(root, data: dict[str, dict[str, np.ndarray]], vocab_size=512, files=None):
    """A corpus written by hand: the contract's four manifest keys, no hashes."""
    domains = {}
    for name, splits in data.items():
        domains[name] = {}
        for split, toks in splits.items():
            rel = (files or {}).get((name, split), f"{name}/{split}.bin")
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            toks.astype("<u2").tofile(root / rel)
            domains[name][split] = {"file": rel, "tokens": int(toks.size), "documents": 1}
    manifest = {"format": "bayesplit-corpus/1", "vocab_size": vocab_size, "dtype": "uint16",
                "domains": domains}  # fmt: skip
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _random(seed: int, high: int, names=("code", "text")):
    rng = np.random.default_rng(seed)
    return {d: {"train": rng.integers(0, high, 2000), "val": rng.integers(0, high, 200)}
            for d in names}  # fmt: skip


def _state(root):
    """Every path below root, with each file's size and modification time."""
    return sorted(
        (p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
        if p.is_file()
        else (p.relative_to(root).as_posix(), 0, 0)
        for p in root.rglob("*")
    )


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A corpus made by ``corpus build``: two domains of a few documents each."""
    src = tmp_path_factory.mktemp("src")
    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghij") for _ in range(5)) for _ in range(50)]
    for domain in ("alpha", "beta"):
        (src / domain).mkdir()
        for i in range(4):
            text = " ".join(rng.choice(words) for _ in range(100))
            (src / domain / f"d{i}.txt").write_text(text + "\n")
    out = tmp_path_factory.mktemp("built") / "c"
    return build_corpus(src, out, vocab_size=300, val_fraction=0.2, progress=False)


def _copy(corpus, dst, **manifest_changes):
    shutil.copytree(corpus.path, dst)
    m = json.loads((dst / "manifest.json").read_text())
    for key, value in manifest_changes.items():
        if value is None:
            m.pop(key, None)
        else:
            m[key] = value
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


# ------------------------------------------------------------------------------------------
# 1. a manifest without content_sha256


def test_different_shards_without_a_recorded_hash_get_different_ids(tmp_path):
    """Both corpora had content_sha256 "" and so one trunk id: the second trained nothing
    and its rows were the first one's losses."""
    a = _hand_made(tmp_path / "A", _random(1, 512))
    b = _hand_made(tmp_path / "B", _random(2, 8))
    before = _state(tmp_path)
    ha, hb = Corpus(a).content_sha256, Corpus(b).content_sha256
    assert re.fullmatch("[0-9a-f]{64}", ha) and re.fullmatch("[0-9a-f]{64}", hb)
    assert ha != hb
    assert Corpus(a).content_sha256 == ha  # the same data, the same id (cached or not)
    assert _state(tmp_path) == before  # nothing cached in the corpus folders
    assert "content_sha256" not in json.loads((a / "manifest.json").read_text())

    pytest.importorskip("torch")
    from conftest import tiny_entry

    from bayesplit.train.config import TrainConfig
    from bayesplit.train.trunk import model_config, trunk_id_for

    entry = tiny_entry(vocab_size=512)
    ids = {
        trunk_id_for(entry, model_config(entry, c), TrainConfig.from_entry(entry), 0, c)
        for c in (Corpus(a), Corpus(b))
    }
    assert len(ids) == 2


def test_the_computed_hash_is_the_one_corpus_build_records(built, tmp_path):
    recorded = built.manifest["content_sha256"]
    bare = _copy(built, tmp_path / "bare", content_sha256=None, tokenizer=None,
                 tokenizer_sha256=None)  # fmt: skip
    assert Corpus(bare).content_sha256 == recorded
    # the same shards under other file names: the same data, the same hash
    moved = tmp_path / "moved"
    data = {d: {s: np.fromfile(bare / f"{d}/{s}.bin", dtype="<u2") for s in ("train", "val")}
            for d in built.domains}  # fmt: skip
    files = {(d, s): f"shards/{s}-{d}.u16" for d in data for s in ("train", "val")}
    _hand_made(moved, data, vocab_size=built.vocab_size, files=files)
    assert Corpus(moved).content_sha256 == recorded
    # the same bytes filed under other domain names are other data
    renamed = _hand_made(
        tmp_path / "renamed", {"gamma": data["alpha"], "beta": data["beta"]},
        vocab_size=built.vocab_size,
    )  # fmt: skip
    assert Corpus(renamed).content_sha256 != recorded
    # a shard rewritten in place is hashed again, not served from the process's cache
    corpus = Corpus(moved)
    toks = data["alpha"]["val"].copy()
    toks[0] = (int(toks[0]) + 1) % built.vocab_size
    toks.astype("<u2").tofile(moved / files[("alpha", "val")])
    assert Corpus(moved).content_sha256 != recorded
    assert corpus.content_sha256 != recorded


def test_corpus_info_shows_the_computed_hash(tmp_path):
    path = _hand_made(tmp_path / "A", _random(1, 512))
    res = runner.invoke(app, ["corpus", "info", str(path), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert "content_sha256" not in info
    assert info["computed_content_sha256"] == Corpus(path).content_sha256


@pytest.mark.parametrize("value", ["<sha256 of your shards>", "ABC", "0" * 63, "g" * 64])
def test_a_recorded_hash_that_is_no_sha256_is_refused(built, tmp_path, value):
    # the how-to's placeholder, copied into two corpora of different data, gave both one
    # trunk id: the second trained nothing and reused the first one's rows
    path = _copy(built, tmp_path / "c", content_sha256=value)
    with pytest.raises(BayesplitError, match="content_sha256 .* is not a SHA-256"):
        Corpus(path)
    _one_line_error(runner.invoke(app, ["corpus", "info", str(path)]), "leave the key out")
    # what the message says to do works: without the key, info prints the hash to record
    fixed = _copy(built, tmp_path / "fixed", content_sha256=None)
    res = runner.invoke(app, ["corpus", "info", str(fixed), "--json"])
    assert json.loads(res.stdout)["computed_content_sha256"] == built.manifest["content_sha256"]


def test_an_empty_or_uppercase_recorded_hash_is_still_read(built, tmp_path):
    # "" always meant "not recorded"; an uppercase SHA-256 is one
    empty = _copy(built, tmp_path / "empty", content_sha256="")
    assert Corpus(empty).content_sha256 == built.manifest["content_sha256"]
    res = runner.invoke(app, ["corpus", "info", str(empty)])  # it printed nothing there
    assert res.exit_code == 0 and "content   sha256 not recorded" in res.output, res.output
    upper = _copy(
        built, tmp_path / "upper", content_sha256=built.manifest["content_sha256"].upper()
    )
    assert Corpus(upper).content_sha256 == built.manifest["content_sha256"].upper()
    res = runner.invoke(app, ["corpus", "info", str(upper), "--json"])
    assert not any("shards' hash" in w for w in json.loads(res.stdout)["warnings"])
    # --verify agrees: it said "the shards do not match the recorded content hash"
    m = json.loads((upper / "manifest.json").read_text())
    m["tokenizer_sha256"] = m["tokenizer_sha256"].upper()
    (upper / "manifest.json").write_text(json.dumps(m))
    Corpus(upper).verify()
    res = runner.invoke(app, ["corpus", "info", str(upper), "--verify", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["verified"] is True, res.output


def test_corpus_info_verify_reads_the_shards_once(built, tmp_path, monkeypatch):
    import bayesplit.train.corpus.reader as reader

    path = _copy(built, tmp_path / "c")
    calls = []
    real = reader.content_hash
    monkeypatch.setattr(reader, "content_hash", lambda *a, **k: calls.append(1) or real(*a, **k))
    res = runner.invoke(app, ["corpus", "info", str(path), "--verify", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["verified"] is True
    assert len(calls) == 1  # --verify and the computed hash read every shard twice


def test_corpus_info_warns_when_the_recorded_hash_is_not_the_shards(built, tmp_path):
    other = "0" * 64
    path = _copy(built, tmp_path / "c", content_sha256=other)
    res = runner.invoke(app, ["corpus", "info", str(path), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["content_sha256"] == other == Corpus(path).content_sha256  # what runs carry
    assert info["computed_content_sha256"] == built.manifest["content_sha256"]
    assert any("is not the shards' hash" in w for w in info["warnings"])
    text = runner.invoke(app, ["corpus", "info", str(path)])
    assert "is not the shards' hash" in " ".join(text.stderr.split())
    # as built, the two agree and nothing is said
    res = runner.invoke(app, ["corpus", "info", str(built.path), "--json"])
    info = json.loads(res.stdout)
    assert info["computed_content_sha256"] == info["content_sha256"]
    assert not any("shards' hash" in w for w in info["warnings"])


def test_verify_reads_shards_under_their_own_names(built, tmp_path):
    """verify hashed DOMAIN/SPLIT.bin whatever the manifest named: a FileNotFoundError."""
    moved = _copy(built, tmp_path / "moved")
    m = json.loads((moved / "manifest.json").read_text())
    for d in built.domains:
        for s in ("train", "val"):
            new = f"{d}-{s}.tokens"
            (moved / m["domains"][d][s]["file"]).rename(moved / new)
            m["domains"][d][s]["file"] = new
    (moved / "manifest.json").write_text(json.dumps(m))
    Corpus(moved).verify()
    res = runner.invoke(app, ["corpus", "info", str(moved), "--verify", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["verified"] is True


# ------------------------------------------------------------------------------------------
# 2. token ids at or above vocab_size


def test_ids_beyond_the_vocabulary_are_refused_not_cut_off(built, tmp_path):
    """unigram_entropy cut the counts at vocab_size but divided by every token, and
    --verify said "verified"."""
    top = max(int(built.tokens(d, s).max()) for d in built.domains for s in ("train", "val"))
    small = _copy(built, tmp_path / "small", vocab_size=top)  # one id too few
    corpus = Corpus(small)  # opening reads no token
    with pytest.raises(BayesplitError, match=f"holds token id {top}, which is not below the "
                       f"corpus's vocab_size {top}"):  # fmt: skip
        corpus.verify()
    with pytest.raises(BayesplitError, match=r"corpus shard .*\.bin holds token id"):
        unigram_entropy(corpus)
    before = _state(tmp_path)
    for args in (["corpus", "info", str(small)], ["corpus", "info", str(small), "--verify"]):
        line = _one_line_error(runner.invoke(app, args), f"token id {top}", f"vocab_size {top}")
        assert re.search(r"(alpha|beta)/(train|val)\.bin", line)
    assert _state(tmp_path) == before
    # a vocabulary that holds every id is fine, and the entropy counts every token
    assert unigram_entropy(Corpus(_copy(built, tmp_path / "ok", vocab_size=top + 1))) > 0


def test_the_hash_of_a_hand_made_corpus_refuses_ids_beyond_the_vocabulary(tmp_path):
    data = _random(3, 100)
    data["text"]["val"][7] = 300
    path = _hand_made(tmp_path / "c", data, vocab_size=256)
    with pytest.raises(BayesplitError, match=r"text/val\.bin holds token id 300, .*vocab_size 256"):
        Corpus(path).content_sha256  # noqa: B018


def test_unigram_entropy_counts_every_token(tmp_path):
    data = _random(4, 50, names=("a",))
    path = _hand_made(tmp_path / "c", data, vocab_size=64)
    v = 64
    train, val = data["a"]["train"], data["a"]["val"]
    p = (np.bincount(train, minlength=v) + 1) / (train.size + v)
    assert unigram_entropy(Corpus(path)) == pytest.approx(-np.log(p[val]).mean(), rel=1e-12)


# ------------------------------------------------------------------------------------------
# 3. domain names


BAD_NAMES = [
    "x/../../../../../escape",
    "a/b",
    "..",
    "",
    "has space",
    "-leading",
    "trailing_",
    "ümlaut",
    "semi;colon",
    "x" * 101,
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_domain_names_other_than_build_makes_are_refused(tmp_path, name):
    """A domain named x/../../../../../escape made the trainer write outside --workdir."""
    data = {"ok": _random(5, 100)["code"], name: _random(6, 100)["text"]}
    files = {(name, s): f"bad/{s}.bin" for s in ("train", "val")}
    path = _hand_made(tmp_path / "c", data, files=files)
    with pytest.raises(BayesplitError, match=re.escape(f"domain name {name!r}")):
        Corpus(path)
    _one_line_error(runner.invoke(app, ["corpus", "info", str(path)]), f"domain name {name!r}")


def test_domain_names_build_makes_are_accepted(tmp_path):
    names = ("c0-def-return-self", "Law-Order-US", "a", "x_1", "9lives", "y" * 100)
    path = _hand_made(tmp_path / "c", {n: _random(7, 100)["code"] for n in names})
    assert Corpus(path).domains == sorted(names)


def test_domain_names_that_differ_only_in_case_are_refused(tmp_path):
    path = _hand_made(tmp_path / "c", {"Code": _random(8, 100)["code"],
                                        "code": _random(9, 100)["code"]},
                      files={("Code", "train"): "C/train.bin", ("Code", "val"): "C/val.bin"})  # fmt: skip
    with pytest.raises(BayesplitError, match="'Code' and 'code' differ only in case"):
        Corpus(path)


def test_a_domain_name_cannot_lead_the_trainer_out_of_its_workdir(tmp_path):
    pytest.importorskip("torch")
    from conftest import tiny_entry

    from bayesplit.train.trunk import pretrain

    name = "x/../../../../../escape"
    data = {"ok": _random(10, 64)["code"], name: _random(11, 64)["text"]}
    path = _hand_made(tmp_path / "deep" / "er" / "c", data, vocab_size=64,
                      files={(name, s): f"bad/{s}.bin" for s in ("train", "val")})  # fmt: skip
    work = tmp_path / "deep" / "er" / "w"
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(BayesplitError, match="domain name"):
        pretrain(path, tiny_entry(), workdir=work, eval_at=[2560], progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not work.exists()


# ------------------------------------------------------------------------------------------
# 4. shards that are symlinks


def test_a_shard_linked_to_a_file_outside_the_corpus_is_refused(tmp_path):
    path = _hand_made(tmp_path / "c", _random(12, 100))
    outside = tmp_path / "outside.bin"
    shutil.copy(path / "code" / "train.bin", outside)
    (path / "code" / "train.bin").unlink()
    (path / "code" / "train.bin").symlink_to(outside)
    with pytest.raises(
        BayesplitError, match=r"code/train: 'code/train\.bin' resolves to .*outside"
    ):
        Corpus(path)
    _one_line_error(runner.invoke(app, ["corpus", "info", str(path)]), "outside the corpus")
    # a linked folder on the way counts too
    (path / "code" / "train.bin").unlink()
    shutil.copy(outside, path / "code" / "train.bin")
    shutil.move(path / "text", tmp_path / "text-elsewhere")
    (path / "text").symlink_to(tmp_path / "text-elsewhere", target_is_directory=True)
    with pytest.raises(BayesplitError, match="text/train: .* outside the corpus folder"):
        Corpus(path)


def test_a_shard_linked_inside_the_corpus_is_fine(tmp_path):
    path = _hand_made(tmp_path / "c", _random(13, 100))
    (path / "store").mkdir()
    (path / "code" / "val.bin").rename(path / "store" / "code-val.bin")
    (path / "code" / "val.bin").symlink_to(path / "store" / "code-val.bin")
    corpus = Corpus(path)
    assert corpus.tokens("code", "val").size == 200
    # and a corpus reached through a link of its own is still inside itself
    (tmp_path / "link").symlink_to(path, target_is_directory=True)
    assert Corpus(tmp_path / "link").content_sha256 == corpus.content_sha256


# ------------------------------------------------------------------------------------------
# 5. corpus build: symlinks in the source, --out . or above


def _source(root):
    rng = random.Random(1)
    words = ["".join(rng.choice("klmnopqrst") for _ in range(5)) for _ in range(40)]
    for domain in ("alpha", "beta"):
        (root / domain).mkdir(parents=True)
        for i in range(3):
            (root / domain / f"d{i}.txt").write_text(" ".join(rng.choice(words) for _ in range(80)))
    return root


def test_build_skips_symbolic_links_and_says_how_many(tmp_path, capfd):
    """A link to /etc/passwd in a domain folder became a document."""
    src = _source(tmp_path / "src")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n" * 5)
    (src / "alpha" / "p").symlink_to(secret)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "e.txt").write_text("elsewhere " * 50)
    (src / "beta" / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (src / "gamma").symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # a domain
    corpus = build_corpus(src, tmp_path / "out", vocab_size=300, progress=False)
    assert corpus.domains == ["alpha", "beta"]
    sources = {d["source"] for d in corpus.documents()}
    assert sources == {f"{d}/d{i}.txt" for d in ("alpha", "beta") for i in range(3)}
    err = capfd.readouterr().err
    assert err.count("warning: skipped 3 symbolic links under") == 1, err
    assert "only regular files are read" in err
    # a domain of links only is empty, and the error says why
    (tmp_path / "src2" / "only").mkdir(parents=True)
    (tmp_path / "src2" / "only" / "p").symlink_to(secret)
    with pytest.raises(BayesplitError, match="no text documents .*1 symbolic links skipped"):
        build_corpus(tmp_path / "src2", tmp_path / "out2", vocab_size=300, progress=False)
    with pytest.raises(BayesplitError, match="no text files under .*1 symbolic links skipped"):
        build_corpus(tmp_path / "src2", tmp_path / "out2", domains="cluster:2", vocab_size=300,
                     progress=False)  # fmt: skip


@pytest.mark.parametrize("where", ["here", "above"])
def test_build_refuses_out_at_or_above_the_current_folder_before_any_work(
    tmp_path, monkeypatch, where
):
    """--out . --overwrite trained the tokenizer, then failed with 'Device or resource busy'."""
    import bayesplit.train.corpus.build as mod

    src = _source(tmp_path / "src")
    out = tmp_path / "work"
    (out / "sub").mkdir(parents=True)
    (out / "keep.txt").write_text("precious")
    monkeypatch.chdir(out if where == "here" else out / "sub")

    def no_work(*args, **kwargs):
        raise AssertionError("read documents before refusing --out")

    monkeypatch.setattr(mod, "_read_documents", no_work)
    given = "." if where == "here" else ".."
    before = _state(tmp_path)
    with pytest.raises(BayesplitError, match="current folder or one above it"):
        build_corpus(src, given, vocab_size=300, overwrite=True, progress=False)
    res = runner.invoke(app, ["corpus", "build", str(src), "--out", given, "--overwrite", "-q",
                              "--vocab", "300"])  # fmt: skip
    _one_line_error(res, f"--out {given} (in Python: out=) is the current folder")
    assert _state(tmp_path) == before


@pytest.mark.parametrize("target", ["empty", "full", "missing"])
def test_build_refuses_an_out_that_is_a_symbolic_link_before_any_work(tmp_path, monkeypatch, target):  # fmt: skip
    """A link to an empty folder failed after the build naming a temp folder; to a full one
    with --overwrite, the link became a real folder and a hidden link was left behind."""
    import bayesplit.train.corpus.build as mod

    src = _source(tmp_path / "src")
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("old corpus")
    (tmp_path / "link").symlink_to(tmp_path / target, target_is_directory=True)

    def no_work(*args, **kwargs):
        raise AssertionError("read documents before refusing --out")

    monkeypatch.setattr(mod, "_read_documents", no_work)
    before = _state(tmp_path)
    with pytest.raises(BayesplitError, match="is a symbolic link; give the folder it points to"):
        build_corpus(src, tmp_path / "link", vocab_size=300, overwrite=True, progress=False)
    res = runner.invoke(app, ["corpus", "build", str(src), "--out", str(tmp_path / "link"),
                              "--overwrite", "-q", "--vocab", "300"])  # fmt: skip
    _one_line_error(res, f"--out {tmp_path / 'link'} (in Python: out=) is a symbolic link")
    assert _state(tmp_path) == before and (tmp_path / "link").is_symlink()


def test_build_refuses_a_folder_name_too_long_for_a_domain(tmp_path):
    src = _source(tmp_path / "src")
    try:
        (src / "alpha").rename(src / ("a" * 120))
    except OSError:
        pytest.skip("the file system takes no such name")
    with pytest.raises(BayesplitError, match="makes a name of 120 characters, more than 100"):
        build_corpus(src, tmp_path / "out", vocab_size=300, progress=False)
    assert not (tmp_path / "out").exists()


def test_content_hash_keeps_its_definition(tmp_path):
    """content_hash(root, files) is what `corpus build` recorded before: files as labels."""
    import hashlib

    path = _hand_made(tmp_path / "c", _random(14, 100, names=("a",)))
    want = hashlib.sha256()
    for rel in ("a/train.bin", "a/val.bin"):
        data = (path / rel).read_bytes()
        want.update(rel.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    assert content_hash(path, ["a/train.bin", "a/val.bin"]) == want.hexdigest()
    assert Corpus(path).content_sha256 == want.hexdigest()


def test_verify_reads_the_shards_again_after_a_silent_change(built, tmp_path):
    # bit rot keeps a shard's size and time: a second verify() in one process passed it,
    # from the digest kept for `corpus info`
    import os

    path = _copy(built, tmp_path / "c")
    corpus = Corpus(path)
    corpus.verify()
    shard = next(path.glob("*/train.bin"))
    st = shard.stat()
    data = bytearray(shard.read_bytes())
    data[0] ^= 1  # token ids stay below vocab_size: only the hash can tell
    data[1] = 0
    shard.write_bytes(bytes(data))
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(BayesplitError, match="do not match the recorded content hash"):
        corpus.verify()


def test_a_sigterm_while_writing_shards_leaves_no_temp_folder(tmp_path, monkeypatch):
    # a scheduler's time limit (SIGTERM) killed the build on the spot and left the hidden
    # temp folder of partial shards beside --out; the CLI turns SIGTERM into an exception
    import os
    import signal

    from bayesplit import _io
    from bayesplit.errors import Terminated
    from bayesplit.train.corpus import build

    src = tmp_path / "src"
    for domain in ("alpha", "beta"):
        (src / domain).mkdir(parents=True)
        for i in range(3):
            (src / domain / f"d{i}.txt").write_text(f"{domain} text {i} " * 40 + "\n")
    real_write = build._write

    def write_then_killed(root, *args, **kwargs):
        real_write(root, *args, **kwargs)
        assert any(root.iterdir())  # shards written in the temp folder
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(_io, "SIGTERM_CLEANS_UP", True)  # as the CLI sets it
    monkeypatch.setattr(build, "_write", write_then_killed)
    out = tmp_path / "out" / "c"
    with pytest.raises(Terminated):
        build_corpus(src, out, vocab_size=300, val_fraction=0.2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # "out", which it made, too


def test_an_interrupt_between_the_swap_renames_puts_the_old_corpus_back(tmp_path, monkeypatch):
    # the old corpus was left hidden as .NAME.old-* and --out was missing
    from pathlib import Path

    from bayesplit.train.corpus import build

    out, tmp = tmp_path / "c", tmp_path / ".c.tmp-1"
    out.mkdir()
    (out / "manifest.json").write_text("old")
    tmp.mkdir()
    (tmp / "manifest.json").write_text("new")
    real_rename = Path.rename

    def rename(self, target):
        if self == tmp:
            raise KeyboardInterrupt
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        build._replace(tmp, out, overwrite=True)
    assert (out / "manifest.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".c.tmp-1", "c"]


# ------------------------------------------------------------------------------------------
# 6. corpus info on short splits; a val shard that is a train shard


def test_corpus_info_on_a_corpus_without_val_tokens_shows_the_table_and_warnings(tmp_path):
    # it stopped with "error: no val tokens to evaluate on" before the warnings it has for this
    path = _hand_made(tmp_path / "c", {"code": {"train": np.arange(50), "val": np.arange(0)},
                                       "text": {"train": np.arange(1), "val": np.arange(0)}})  # fmt: skip
    res = runner.invoke(app, ["corpus", "info", str(path), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["unigram_entropy_val"] is None and info["totals"]["val_tokens"] == 0
    assert info["warnings"] == [
        "domain 'code': its validation split has 0 token(s); training needs at least 2 "
        "(one validation window)",
        "domain 'text': its training split has 1 token(s); training reads rows of "
        "seq_len + 2 tokens (at least 2)",
        "domain 'text': its validation split has 0 token(s); training needs at least 2 "
        "(one validation window)",
    ]
    res = runner.invoke(app, ["corpus", "info", str(path)])
    assert res.exit_code == 0, res.output
    out = " ".join(res.stderr.split())
    assert "unigram cross-entropy on val n/a (no val tokens)" in out
    assert "'text': its training split has 1 token(s)" in out


def test_a_train_split_under_2_tokens_is_warned_of(tmp_path):
    path = _hand_made(tmp_path / "c", {"code": {"train": np.arange(1), "val": np.arange(20)}})
    res = runner.invoke(app, ["corpus", "info", str(path), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["warnings"] == [
        "domain 'code': its training split has 1 token(s); training reads rows of "
        "seq_len + 2 tokens (at least 2)"
    ]
    assert info["unigram_entropy_val"] > 0


@pytest.mark.parametrize("shared", ["own", "other"])
def test_a_val_shard_that_is_a_train_shard_is_refused(tmp_path, shared):
    # a hand-written manifest naming one file for both was read without a word: validation
    # losses were losses on trained text
    data = _random(15, 100, names=("code", "text"))
    owner = "code" if shared == "own" else "text"
    data["code"]["val"] = data[owner]["train"]  # sizes and bytes agree with the manifest
    path = _hand_made(tmp_path / "c", data, files={("code", "val"): f"{owner}/train.bin"})
    whose = "its own train shard" if shared == "own" else "the train shard of 'text'"
    with pytest.raises(BayesplitError, match=re.escape(f"code/val is {whose} ('")):
        Corpus(path)
    res = runner.invoke(app, ["corpus", "info", str(path)])
    _one_line_error(res, f"code/val is {whose}", "give val a file of its own")
    other = _hand_made(tmp_path / "ok", data)  # the same tokens in another file are not seen
    assert Corpus(other).domains == ["code", "text"]
