"""What the persistent compilation cache's threshold costs a small fit in a new process.

Every CLI command and notebook kernel is a new process. JAX keeps a compiled program in
its persistent cache only if compiling it took longer than
``jax_persistent_cache_min_compile_time_secs``; NumPyro's model set-up compiles ~200
one-op programs per fit, each far below any such threshold. This script fits the same
small table in new processes, each threshold with a cache directory of its own that
starts empty: process 1 compiles everything, process 2 fits the same table again (a
command repeated), process 3 a table with one more model size (a refit after new runs:
other array shapes).

    python experiments/benchmarks/compile_cache.py [--thresholds 0.5 0] [--chains 1 2] [--out experiments/benchmarks/compile_cache.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def child(threshold: float, chains: int, sizes: int) -> None:
    t0 = time.perf_counter()
    import jax
    import pandas as pd

    from bayesplit import _jax
    from bayesplit.fitting import fit

    _jax.configure()
    jax.config.update("jax_persistent_cache_min_compile_time_secs", threshold)
    # 2 domains × 2 token counts × `sizes` model sizes
    table = pd.DataFrame(
        [
            {
                "run_id": f"r{i}",
                "params": n,
                "pretrain_tokens": d,
                "spec_tokens": 0.0,
                "eval_domain": k,
                "loss": 1.8 + 400 * n**-0.34 + 410 * d**-0.28 + (0.1 if k == "code" else 0.0),
            }
            for i, (n, d) in enumerate(
                (n, d) for n in (1e7, 3e7, 1e8, 3e8, 1e9)[:sizes] for d in (1e9, 1e10)
            )
            for k in ("web", "code")
        ]
    )
    t1 = time.perf_counter()
    fit(table, "chinchilla", seed=1, chains=chains, draws=30, warmup=30, progress=False)
    print(json.dumps({"import_s": t1 - t0, "fit_s": time.perf_counter() - t1}))


def run(threshold: float, chains: int) -> list[dict]:
    cache = Path(tempfile.mkdtemp(prefix="bayesplit-cache-"))
    env = {**os.environ, "BAYESPLIT_JAX_CACHE": str(cache), "PYTHONWARNINGS": "ignore"}
    out = []
    try:
        for i, sizes in enumerate((4, 4, 5)):
            res = subprocess.run(
                [sys.executable, __file__, "--child", str(threshold), str(chains), str(sizes)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO,
            )
            row = json.loads(res.stdout.strip().splitlines()[-1])
            files = [p for p in cache.rglob("*") if p.is_file()]
            row.update(
                threshold=threshold,
                chains=chains,
                process=i + 1,
                rows=2 * 2 * sizes,
                cache_files=len(files),
                cache_kib=sum(p.stat().st_size for p in files) / 1024,
            )
            print(row, flush=True)
            out.append(row)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.0])
    ap.add_argument("--chains", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".md"))
    args = ap.parse_args()
    if args.child:
        child(float(args.child[0]), int(args.child[1]), int(args.child[2]))
        return
    rows = [r for c in args.chains for t in args.thresholds for r in run(t, c)]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    lines = [
        "# Compilation cache: a small fit in a new process",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()} (CPU).  ",
        "Command: `"
        + " ".join(["python experiments/benchmarks/compile_cache.py", *sys.argv[1:]])
        + "`  ",
        "Fit: hierarchical `chinchilla`, 2 domains, 30 draws after 30 warmup per chain; "
        "2 chains run in parallel, one per core. Each threshold starts from an empty cache; "
        "process 1 fills it, process 2 fits the same table, process 3 a table with one more "
        "model size (20 rows instead of 16).",
        "",
        "| chains | threshold (s) | process | rows | import (s) | fit (s) | cache files | cache (KiB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['chains']} | {r['threshold']:g} | {r['process']} | {r['rows']} | {r['import_s']:.1f} | "
        f"{r['fit_s']:.1f} | {r['cache_files']} | {r['cache_kib']:.0f} |"
        for r in rows
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
