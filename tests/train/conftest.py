"""Fixtures of the trainer tests: tiny synthetic corpora and a tiny model ladder.

The corpus is written in the on-disk format of ``bayesplit corpus build`` directly, so these
tests do not depend on the tokenizer or the clustering code. Each domain is a sparse
first-order Markov chain over a shared vocabulary, with its own transitions: a model must
read the context to know the domain, and training on one domain helps that domain most.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from bayesplit.train.corpus.reader import content_hash, shard_files

# The torch-using test modules skip themselves without torch; the corpus tests need none.

VOCAB = 64
EOT = VOCAB - 1


def _markov_tokens(rng: np.random.Generator, trans: np.ndarray, n_tokens: int) -> np.ndarray:
    """Documents of 40–160 tokens from a Markov chain, each followed by EOT."""
    out = np.empty(n_tokens, dtype=np.uint16)
    cum = trans.cumsum(axis=1)
    i = 0
    while i < n_tokens:
        length = int(rng.integers(40, 160))
        tok = int(rng.integers(0, EOT))
        u = rng.random(length)
        for j in range(length):
            if i >= n_tokens:
                break
            out[i] = tok
            i += 1
            tok = int(np.searchsorted(cum[tok], u[j] * cum[tok, -1]))
        if i < n_tokens:
            out[i] = EOT
            i += 1
    return out


def make_corpus(
    path: Path,
    sizes: dict[str, int] | None = None,
    *,
    val_tokens: int = 4096,
    branching: int = 3,
    seed: int = 0,
) -> Path:
    """Write a synthetic corpus (manifest + uint16 shards) and return its directory."""
    sizes = sizes or {"alpha": 40_000, "beta": 30_000, "gamma": 20_000}
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    domains = {}
    for name, n_train in sizes.items():
        trans = np.zeros((EOT, EOT))
        for row in trans:
            row[rng.choice(EOT, size=branching, replace=False)] = rng.dirichlet(np.ones(branching))
        (path / name).mkdir(exist_ok=True)
        info = {}
        for split, n in (("train", n_train), ("val", val_tokens)):
            toks = _markov_tokens(rng, trans, n)
            f = f"{name}/{split}.bin"
            toks.tofile(path / f)
            info[split] = {"file": f, "tokens": int(n), "documents": int((toks == EOT).sum())}
        domains[name] = info
    manifest = {
        "format": "bayesplit-corpus/1",
        "vocab_size": VOCAB,
        "dtype": "uint16",
        "eot_token": EOT,
        "tokenizer": "tokenizer.json",
        "tokenizer_sha256": "0" * 64,
        # what `corpus build` records: `corpus info` warns of a hash that is not the shards'
        "content_sha256": content_hash(path, shard_files(domains)),
        "seed": seed,
        "domains": domains,
    }
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return path


def unigram_entropy(corpus_dir: Path, split: str = "val") -> float:
    """Entropy (nats) of the token frequencies of all domains pooled."""
    m = json.loads((corpus_dir / "manifest.json").read_text())
    counts = np.zeros(m["vocab_size"])
    for info in m["domains"].values():
        toks = np.fromfile(corpus_dir / info[split]["file"], dtype=np.uint16)
        counts += np.bincount(toks, minlength=m["vocab_size"])
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


#: A model small enough that a few hundred steps take seconds on 2 cores.
TINY = {
    "name": "tiny",
    "n_layer": 2,
    "n_head": 2,
    "d_model": 32,
    "d_ff": 64,
    "seq_len": 32,
    "vocab_size": VOCAB,
    "mlp": "swiglu",
    "batch_size": 8,
    "lr": 1e-2,
    "train": {"warmup_steps": 10, "eval_tokens": 2048, "checkpoint_every": 40},
}


def tiny_entry(**overrides) -> dict:
    from bayesplit.train.config import GPTConfig, count_params

    e = {**TINY, **overrides}
    cfg = GPTConfig.from_dict(e)
    e["params"] = count_params(cfg)
    e["params_with_embeddings"] = count_params(cfg, embeddings=True)
    return e


def write_ladder(path: Path, entries: list[dict]) -> Path:
    sizes = []
    for e in entries:
        sizes.append({k: v for k, v in e.items() if k not in ("vocab_size", "seq_len", "mlp")})
    doc = {"vocab_size": VOCAB, "seq_len": entries[0]["seq_len"], "sizes": sizes}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus") / "tiny")


@pytest.fixture(scope="session")
def tiny_ladder(tmp_path_factory) -> Path:
    small = tiny_entry()
    wide = tiny_entry(name="tiny-wide", d_model=48, n_head=3, d_ff=96)
    return write_ladder(tmp_path_factory.mktemp("ladder") / "tiny.yaml", [small, wide])


@pytest.fixture(autouse=True)
def _fixed_cpu_peak(monkeypatch):
    # MFU needs a peak; measuring it costs a second per process and varies with load
    monkeypatch.setenv("BAYESPLIT_CPU_PEAK_FLOPS", "1e11")


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tiny models run fastest on one thread, and two OpenMP threads on a busy 2-core machine
    wait on each other (measured: 4-10x slower). Subprocesses inherit OMP_NUM_THREADS, so the
    bitwise comparisons between a subprocess and this process use the same thread count."""
    try:
        import torch
    except ImportError:  # the corpus tests run without torch
        yield
        return

    old_threads, old_env = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    yield
    torch.set_num_threads(old_threads)
    if old_env is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = old_env


def close(a: float, b: float, tol: float = 1e-6) -> bool:
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def tree(root: Path) -> set[str]:
    """Every path under ``root``, relative to it."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def refused(args: list, message: str, where: Path) -> str:
    """Run the CLI; assert exit 2, one ``error:`` line containing ``message``, and nothing
    new under ``where``. Returns the line."""
    from typer.testing import CliRunner

    from bayesplit.cli import app

    before = tree(where)
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert message in lines[0], lines[0]
    assert tree(where) == before, "a refused command wrote something"
    return lines[0]
