"""Benchmark: what one NUTS leapfrog step of the hierarchical fit costs, on CPU and GPU.

``fit_gpu.py`` times whole fits; on a GPU those ran past every time limit a lent machine
allowed. This measures the piece that decides where a GPU can pay: seconds per leapfrog
step once compiled. A GPU runs all chains in lockstep (``chain_method="vectorized"``),
so one step there advances every chain; a CPU runs one chain per core
(``chain_method="parallel"``). Chain-steps per second on each side, with the CPU's
figure times its cores, give the crossover in chains.

Each (device, tile, chains) runs in its own process (the CPU path is float64, the GPU's
float32): a short warmup and draws that compile the sampler, then ``--draws`` more
draws from the post-warmup state with the compiled sampler, timed.

    python experiments/benchmarks/nuts_step_cost.py --specs cpu,1,1 gpu,1,16 gpu,8,256

Writes ``nuts_step_cost.md`` next to this file (``--out`` elsewhere), rewritten after
every measurement so a run cut short keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one(device: str, tile: int, chains: int, warmup: int, draws: int) -> dict:
    """Compile and warm up once, then time ``draws`` draws (runs in a child process)."""
    import jax
    import numpy as np
    from fit_gpu import tiled_table  # this folder's script, on sys.path when run as one
    from numpyro.infer import MCMC

    from bayesplit._jax import configure, prng_key
    from bayesplit.fitting import nuts_kernel
    from bayesplit.laws import get_law
    from bayesplit.model import model_arrays, numpyro_model, prepare

    if device == "cpu":
        configure()
    else:
        jax.config.update("jax_enable_x64", False)
    table = tiled_table(tile)
    law = get_law("chinchilla")
    spec, data = prepare(table, law)
    # diagonal mass, as measured in the committed table (fit's default is dense)
    kernel = nuts_kernel(partial(numpyro_model, law, spec, model_arrays(data)), dense_mass=False)
    method = "vectorized" if chains > 1 else "sequential"
    mcmc = MCMC(
        kernel,
        num_warmup=warmup,
        num_samples=draws,
        num_chains=chains,
        chain_method=method,
        progress_bar=False,
    )
    y = np.asarray(data.y)
    with jax.default_device(jax.devices(device)[0]):
        t0 = time.perf_counter()
        mcmc.run(prng_key(0), y=y, extra_fields=("num_steps",))
        first = time.perf_counter() - t0
        mcmc.post_warmup_state = mcmc.last_state
        t0 = time.perf_counter()
        mcmc.run(mcmc.post_warmup_state.rng_key, y=y, extra_fields=("num_steps",))
        jax.block_until_ready(mcmc.get_samples())
        timed = time.perf_counter() - t0
    steps = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["num_steps"])  # chain, draw
    lockstep = steps.max(axis=0).sum()  # a vectorized step waits for the longest tree
    return {
        "device": device,
        "rows": len(data),
        "chains": chains,
        "compile + first run (s)": first,
        "timed draws": draws,
        "timed (s)": timed,
        "mean steps per draw": float(steps.mean()),
        "ms per step": 1e3 * timed / lockstep,
        "chain-steps per s": float(steps.sum()) / timed,
    }


def _write(rows: list[dict], out: Path) -> None:
    import jax
    import pandas as pd

    gpus = [d.device_kind for d in jax.devices()] if any(r["device"] == "gpu" for r in rows) else []
    command = "python experiments/benchmarks/nuts_step_cost.py " + " ".join(sys.argv[1:])
    text = "\n".join(
        [
            "# NUTS: cost of one leapfrog step, CPU vs GPU",
            "",
            f"Command: `{command}`  ",
            f"Machine: {os.cpu_count()} CPU cores{'; GPU ' + gpus[0] if gpus else ''}; "
            f"Python {sys.version.split()[0]}, jax {jax.__version__}.",
            "",
            "Hierarchical `chinchilla` on the Gadre et al. 2024 table (tiled for more rows). "
            "Timed: draws from the post-warmup state with the compiled sampler. `ms per step`: "
            "wall time over leapfrog steps, counting a vectorized step (all chains at once) as "
            "the longest tree among the chains; `chain-steps per s`: every chain's steps over "
            "wall time. A CPU runs one chain per core, so its figure scales with cores.",
            "",
            pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3g"),
            "",
        ]
    )
    out.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", nargs="+", metavar="DEVICE,TILE,CHAINS", default=[])
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=120, help="seconds per measurement")
    ap.add_argument("--out", type=Path, default=HERE / "nuts_step_cost.md")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        device, tile, chains = args.one.split(",")
        print(json.dumps(one(device, int(tile), int(chains), args.warmup, args.draws)))
        return
    rows: list[dict] = []
    for spec in args.specs:
        cmd = [sys.executable, __file__, "--one", spec, "--warmup", str(args.warmup)]
        cmd += ["--draws", str(args.draws)]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            print(f"{spec}: over {args.timeout:.0f} s", flush=True)
            continue
        if res.returncode != 0:
            print(f"{spec}: failed\n{res.stderr[-2000:]}", flush=True)
            continue
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
        _write(rows, args.out)
    if rows:
        print(args.out.read_text())


if __name__ == "__main__":
    main()
