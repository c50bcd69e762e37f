"""Benchmark: trainer tokens/s and MFU per ladder size, against a plain nanoGPT-style loop.

For each size, the bundled :class:`bayesplit.train.loop.Trainer` (the code path of every
pretraining and specialization run) and a bare loop of the same model, batch and optimizer
(`forward → backward → clip → AdamW step`, nothing else) each train on random tokens for a
few seconds after a warmup. MFU = 6·N_total·tokens/s (plus attention, see
``bayesplit.train.config.flops_per_token``) over the device peak: on CUDA the bf16 datasheet
peak, on CPU a measured fp32 matmul rate.

Usage::

    python experiments/benchmarks/trainer_throughput.py --ladder cpu_ladder
    python experiments/benchmarks/trainer_throughput.py --ladder ladder --sizes s1m,s3m,s10m
    python experiments/benchmarks/trainer_throughput.py --ladder ladder --device cuda   # GPU

Writes ``trainer_throughput[_DEVICE].md`` next to this file (a table with machine and command).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


class RandomTokens:
    """Stands in for the corpus sampler: deterministic random batches of one shape."""

    def __init__(self, batch: int, seq_len: int, vocab: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.data = rng.integers(0, vocab, size=(8, batch, seq_len + 1), dtype=np.int64)

    def batch(self, step: int, rank: int = 0, world: int = 1) -> np.ndarray:
        return self.data[step % len(self.data)][rank::world]


def _timed(run_steps, min_seconds: float, warmup: int) -> tuple[float, int]:
    run_steps(0, warmup)
    steps, seconds, start = 0, 0.0, warmup
    while seconds < min_seconds:
        n = max(2, steps or 4)
        t0 = time.perf_counter()
        run_steps(start, start + n)
        seconds += time.perf_counter() - t0
        steps += n
        start += n
    return seconds, steps


def bench_trainer(entry: dict, device: str, min_seconds: float, warmup: int) -> dict:
    from bayesplit.train.config import GPTConfig, TrainConfig
    from bayesplit.train.loop import Trainer
    from bayesplit.train.runtime import make_runtime
    from bayesplit.train.schedule import WSD

    cfg = GPTConfig.from_dict(entry)
    tc = TrainConfig.from_entry(entry, device=device)
    rt = make_runtime(tc)
    tr = Trainer(cfg, tc, rt, seed=0)
    sampler = RandomTokens(tc.batch_size, cfg.seq_len, cfg.vocab_size)
    sched = WSD(tc.lr, warmup_steps=10)

    def run_steps(a: int, b: int) -> None:
        tr.train(sampler, sched, a, b)

    seconds, steps = _timed(run_steps, min_seconds, warmup)
    tps = steps * tr.tokens_per_step / seconds
    mfu, peak, source = tr.mfu(tps)
    return {"tokens_per_s": tps, "mfu": mfu, "peak": peak, "peak_source": source,
            "flops_per_token": tr.flops_per_token, "compile": rt.compile}  # fmt: skip


def bench_plain(entry: dict, device: str, min_seconds: float, warmup: int) -> dict:
    """The reference: nanoGPT's loop body with the same model, batch and AdamW."""
    from bayesplit.train.config import GPTConfig
    from bayesplit.train.model import GPT

    cfg = GPTConfig.from_dict(entry)
    dev = torch.device("cuda" if device == "cuda" else "cpu")
    torch.manual_seed(0)
    model = GPT(cfg).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=float(entry["lr"]), fused=dev.type == "cuda")
    net = torch.compile(model) if dev.type == "cuda" else model
    batch = int(entry["batch_size"])
    micro = int(entry.get("micro_batch_size") or batch)
    data = torch.from_numpy(RandomTokens(batch, cfg.seq_len, cfg.vocab_size).data).to(dev)
    ctx = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if dev.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )

    def run_steps(a: int, b: int) -> None:
        for step in range(a, b):
            buf = data[step % len(data)]
            for i in range(0, batch, micro):
                chunk = buf[i : i + micro]
                with ctx:
                    _, loss = net(chunk[:, :-1], chunk[:, 1:])
                (loss * micro / batch).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    seconds, steps = _timed(run_steps, min_seconds, warmup)
    return {"tokens_per_s": steps * batch * cfg.seq_len / seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ladder", default="cpu_ladder")
    ap.add_argument("--sizes", default=None, help="comma list of ladder names (default: all)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--seconds", type=float, default=4.0, help="measured seconds per size and loop")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=None, help="torch threads on CPU")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from bayesplit.train.ladder import load_ladder

    entries = load_ladder(args.ladder)
    if args.sizes:
        keep = args.sizes.split(",")
        entries = [e for e in entries if e["name"] in keep]
    rows = []
    for e in entries:
        t = bench_trainer(e, args.device, args.seconds, args.warmup)
        p = bench_plain(e, args.device, args.seconds, args.warmup)
        row = {
            "size": e["name"],
            "N (non-emb)": e["params"],
            "N (with emb)": e["params_with_embeddings"],
            "batch×seq": f"{e['batch_size']}×{e['seq_len']}",
            "trainer tokens/s": t["tokens_per_s"],
            "plain loop tokens/s": p["tokens_per_s"],
            "trainer / plain": t["tokens_per_s"] / p["tokens_per_s"],
            "MFU": t["mfu"],
        }
        rows.append(row)
        print(row, flush=True)
    if args.device == "cuda":
        machine = torch.cuda.get_device_name(0)
    else:
        machine = (
            f"CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads "
            f"({platform.processor() or platform.machine()})"
        )
    peak_note = t["peak_source"] if rows else ""
    import pandas as pd

    df = pd.DataFrame(rows)
    command = "python experiments/benchmarks/trainer_throughput.py " + " ".join(sys.argv[1:])
    text = "\n".join(
        [
            f"# Trainer throughput ({args.device})",
            "",
            f"Command: `{command}`  ",
            f"Machine: {machine}; torch {torch.__version__}; peak for MFU: {peak_note} "
            f"({t['peak']:.3g} FLOP/s).",
            "",
            "MFU counts 6·N FLOPs per token with N including the (tied) embedding matrix, plus "
            "the attention term (`bayesplit.train.config.flops_per_token`). `plain loop` is a "
            "bare nanoGPT-style loop of the same model, batch and optimizer in the same process.",
            "",
            df.to_markdown(index=False, floatfmt=".3g"),
            "",
        ]
    )
    suffix = "" if args.device == "cpu" else f"_{args.device}"
    name = f"trainer_throughput{suffix}_{Path(args.ladder).stem}.md"
    (HERE / name).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
