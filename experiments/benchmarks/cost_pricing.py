"""Check: does `suggest` price runs as the bundled trainer will train them?

`suggest` prices a run inside an existing trunk by the design's rule ("a checkpoint at every
D the trunk reached"); the trainer keeps stable checkpoints only at the branch points it was
asked for and every ``checkpoint_every`` steps, and trains the gap to a run's branch point
again. With the trainer's checkpoints (``suggest --workdir``, ``checkpoints=``) the price
should be what the loop is charged for the batch, exactly.

The script builds a small corpus from generated text (three domains), runs a two-round
``loop`` on a three-size CPU ladder, fits the store, and then, for several targets and
objectives, asks ``suggest`` for a batch with and without the checkpoints. For each batch it
compares the summed ``cost_flops`` with what the loop's accounting
(``closed_loop._plan_flops``: the trainer's plan, from the checkpoints on disk) charges.

Usage::

    python experiments/benchmarks/cost_pricing.py            # about 3 minutes on 2 cores

Writes ``cost_pricing.md`` next to this file.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from bayesplit import fit
from bayesplit.design import suggest
from bayesplit.runs import load_runs
from bayesplit.store import RunStore
from bayesplit.train.closed_loop import _plan_flops, run_loop
from bayesplit.train.config import GPTConfig, count_params
from bayesplit.train.corpus import Corpus
from bayesplit.train.corpus.build import build_corpus
from bayesplit.train.ladder import load_ladder
from bayesplit.train.trunk import trunk_checkpoints

HERE = Path(__file__).resolve().parent
VOCAB = 300
SHAPES = [  # (name, n_layer, n_head, d_model, d_ff)
    ("p-20k", 2, 2, 32, 64),
    ("p-50k", 2, 3, 48, 96),
    ("p-80k", 3, 3, 48, 96),
]


def write_text(src: Path, seed: int = 0) -> None:
    """Three domains of generated documents, each from its own word list."""
    rng = np.random.default_rng(seed)
    for k, domain in enumerate(["prose", "code", "legal"]):
        words = [f"{domain[:2]}{i}" for i in range(40)] + ["the", "a", "of", "and"]
        weights = rng.dirichlet(np.full(len(words), 0.3 + k))
        (src / domain).mkdir(parents=True)
        for d in range(120):
            text = " ".join(rng.choice(words, size=int(rng.integers(40, 160)), p=weights))
            (src / domain / f"doc{d}.txt").write_text(text + "\n")


def write_ladder(path: Path) -> None:
    sizes = []
    for name, n_layer, n_head, d_model, d_ff in SHAPES:
        cfg = GPTConfig(vocab_size=VOCAB, seq_len=32, n_layer=n_layer, n_head=n_head,
                        d_model=d_model, d_ff=d_ff)  # fmt: skip
        sizes.append({"name": name, "n_layer": n_layer, "n_head": n_head, "d_model": d_model,
                      "d_ff": d_ff, "params": count_params(cfg),
                      "params_with_embeddings": count_params(cfg, embeddings=True),
                      "batch_size": 8, "lr": 1e-2})  # fmt: skip
    doc = {"vocab_size": VOCAB, "seq_len": 32, "mlp": "swiglu",
           "train": {"warmup_steps": 10, "eval_tokens": 1024, "checkpoint_every": 40},
           "sizes": sizes}  # fmt: skip
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def main() -> None:
    # no options; --help says what it does instead of running (and rewriting its .md)
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_text(root / "src")
        build_corpus(root / "src", root / "corpus", vocab_size=VOCAB, progress=False)
        write_ladder(root / "ladder.yaml")
        store, work = root / "runs.db", root / "runs-checkpoints"
        fit_kw = {"chains": 1, "draws": 200, "warmup": 200}
        history = run_loop(root / "corpus", store, budget=1e13, rounds=2, batch=3,
                           ladder=root / "ladder.yaml", seed_tokens=4096, fit_kwargs=fit_kw,
                           force=True, progress=False)  # fmt: skip
        runs = load_runs(RunStore(store).read())
        post = fit(runs, "additive", progress=False, **fit_kw)
        on_disk = trunk_checkpoints(work, runs, root / "ladder.yaml")  # as the loop reads them
        plan_kw = {"ladder": load_ladder(root / "ladder.yaml"), "workdir": work, "seed": 0,
                   "train_overrides": None}  # fmt: skip
        corpus = Corpus(root / "corpus")
        rows = []
        for budget in (1e12, 1e13, 1e14):
            for objective in ("regret", "decision"):
                for label, ckpts in (("design rule", None), ("--workdir", on_disk)):
                    batch = suggest(post, budget=budget, n=4, objective=objective, runs=runs,
                                    ladder=str(root / "ladder.yaml"), checkpoints=ckpts,
                                    max_draws=200, force=True).to_list()  # fmt: skip
                    priced = sum(r["cost_flops"] for r in batch)
                    charged = _plan_flops(batch, corpus, store, plan_kw, None)
                    rows.append((budget, objective, label, len(batch), priced, charged))
        n_trunks = len(list((work / "trunks").iterdir()))
        ckpt_steps = {f"{n:.3g}": len(v["tokens"]) for n, v in on_disk.items()}
    elapsed = time.perf_counter() - t0

    lines = [
        "# Does `suggest` price runs as the trainer trains them?",
        "",
        f"Machine: {platform.machine()} CPU, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; no GPU. Command: "
        "`python experiments/benchmarks/cost_pricing.py` "
        f"({elapsed:.0f} s).",
        "",
        f"A two-round `loop` (batch 3) on a three-size CPU ladder ({n_trunks} trunks on disk, "
        f"checkpoints per size: {ckpt_steps}), then a batch of 4 from `suggest` per row. "
        "*priced*: the batch's summed `cost_flops`; *charged*: what the loop's accounting "
        "(the trainer's plan from the checkpoints on disk) charges for the same batch.",
        "",
        "The loop's rounds:",
        "",
        history[["round", "runs", "rows", "suggested", "trained_rows", "spent_flops"]].to_markdown(
            index=False, floatfmt=".3g"
        ),
        "",
        "| target FLOPs | objective | pricing | runs | priced | charged | charged / priced |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for budget, objective, label, n, priced, charged in rows:
        lines.append(
            f"| {budget:.0e} | {objective} | {label} | {n} | {priced:.3g} | {charged:.3g} | "
            f"{charged / priced:.3f} |"
        )
    rule = [c / p for _, _, lab, _, p, c in rows if lab == "design rule"]
    known = [c / p for _, _, lab, _, p, c in rows if lab == "--workdir"]
    lines += [
        "",
        f"Design rule: charged / priced from {min(rule):.2f} to {max(rule):.2f}. "
        f"With the trainer's checkpoints: from {min(known):.4f} to {max(known):.4f}.",
        "",
    ]
    out = HERE / "cost_pricing.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"written {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
