"""Benchmark: one hierarchical NUTS fit on CPU against GPU, as rows and chains grow.

The data: the bundled Gadre et al. 2024 table (256 modelled rows, 8 domains, hierarchical
``chinchilla``), and the same table tiled ``--tile`` times with fresh run ids (a larger
problem of the same shape). Each (device, rows, chains) fit runs in its own process, since
the CPU path turns on 64-bit floats for the whole process and the GPU path keeps 32-bit.
Wall time includes compilation: that is what a user waits for.

    python experiments/benchmarks/fit_gpu.py [--chains 4 64] [--tile 1 8] [--draws 500]
    python experiments/benchmarks/fit_gpu.py --specs gpu,64,8 cpu,16,8   # chosen fits, in order

Writes ``fit_gpu.md`` next to this file (``--out`` elsewhere): the table, machine, command.
The table is rewritten after every fit, so a run cut short still leaves what it measured.
Whole fits on a GPU ran past the time a lent machine allowed; ``nuts_step_cost.py``
measures the cost per step that ``bayesplit.fitting.gpu_pays`` (``--device auto``) uses.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def tiled_table(tile: int):
    """The bundled Gadre et al. 2024 table ``tile`` times over, with fresh run ids."""
    import pandas as pd

    from bayesplit.datasets import gadre2024

    base = gadre2024()
    return pd.concat(
        [base.assign(run_id=base["run_id"].astype(str) + f"-t{i}") for i in range(tile)],
        ignore_index=True,
    )


def one_fit(device: str, chains: int, tile: int, draws: int) -> dict:
    """Fit once and return timing and a convergence summary (runs in a child process)."""
    from bayesplit.fitting import fit

    table = tiled_table(tile)
    t0 = time.perf_counter()
    post = fit(
        table,
        "chinchilla",
        chains=chains,
        draws=draws,
        warmup=draws,
        seed=0,
        device=device,
        progress=False,
    )
    wall = time.perf_counter() - t0
    d = post.diagnostics
    return {
        "device": post.info["device"],
        "chain_method": post.info.get("chain_method"),
        "rows": len(post.runs),
        "chains": chains,
        "draws": draws,
        "wall_s": wall,
        "ess_bulk_min": d.ess_bulk_min,
        "ess_per_s": d.ess_bulk_min / wall,
        "r_hat_max": d.r_hat_max,
        "divergences": d.divergences,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", nargs="+", default=["cpu", "gpu"])
    ap.add_argument("--chains", nargs="+", type=int, default=[4, 64])
    ap.add_argument("--tile", nargs="+", type=int, default=[1, 8])
    ap.add_argument(
        "--specs",
        nargs="+",
        metavar="DEVICE,CHAINS,TILE",
        help="fits to run, in this order (instead of devices × chains × tile)",
    )
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--timeout", type=float, default=600, help="seconds per fit")
    ap.add_argument("--out", type=Path, default=HERE / "fit_gpu.md")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # child: device,chains,tile,draws
    args = ap.parse_args()
    if args.one:
        device, chains, tile, draws = args.one.split(",")
        print(json.dumps(one_fit(device, int(chains), int(tile), int(draws))))
        return
    if args.specs:
        specs = [tuple(spec.split(",")) for spec in args.specs]
    else:
        specs = [
            (device, str(chains), str(tile))
            for tile in args.tile
            for chains in args.chains
            for device in args.devices
        ]
    rows: list[dict] = []
    for device, chains, tile in specs:
        spec = f"{device},{chains},{tile},{args.draws}"
        try:
            res = subprocess.run(
                [sys.executable, __file__, "--one", spec],
                capture_output=True,
                text=True,
                timeout=args.timeout,
            )
        except subprocess.TimeoutExpired:
            print(f"{spec}: over {args.timeout:.0f} s", flush=True)
            rows.append(_stopped(device, int(chains), int(tile), args.draws, args.timeout))
        else:
            if res.returncode != 0:
                print(f"{spec}: failed\n{res.stderr[-2000:]}", flush=True)
                continue
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
        _write(rows, args)
    print(args.out.read_text() if rows else "no fit ran")


def _stopped(device: str, chains: int, tile: int, draws: int, timeout: float) -> dict:
    """A table row for a fit stopped at the time limit: its wall time is a lower bound."""
    from bayesplit.datasets import gadre2024

    return {
        "device": device,
        "chain_method": "stopped",
        "rows": len(gadre2024()) * tile,
        "chains": chains,
        "draws": draws,
        "wall_s": f"> {timeout:.0f}",
    }


def _write(rows: list[dict], args: argparse.Namespace) -> None:
    import jax
    import pandas as pd

    from bayesplit.fitting import gpu_pays

    gpus = [d.device_kind for d in jax.devices()] if any(r["device"] == "gpu" for r in rows) else []
    command = "python experiments/benchmarks/fit_gpu.py " + " ".join(sys.argv[1:])
    table = pd.DataFrame(rows)
    table["auto picks"] = ["gpu" if gpu_pays(r["rows"], r["chains"]) else "cpu" for r in rows]
    text = "\n".join(
        [
            "# NUTS on CPU vs GPU",
            "",
            f"Command: `{command}`  ",
            f"Machine: {os.cpu_count()} CPU cores{'; GPU ' + gpus[0] if gpus else ''}; "
            f"Python {sys.version.split()[0]}, jax {jax.__version__}.",
            "",
            "Hierarchical `chinchilla` on the Gadre et al. 2024 table (tiled for more rows); "
            "warmup = draws; wall time includes compilation. CPU fits run in float64 with "
            "chains in parallel over the host's devices (one per core); GPU fits run in "
            "float32 with chains vectorized. `auto picks`: what `--device auto` would choose "
            "on this machine with a GPU (`bayesplit.fitting.gpu_pays`).",
            "",
            table.to_markdown(index=False, floatfmt=".3g"),
            "",
        ]
    )
    args.out.write_text(text)


if __name__ == "__main__":
    main()
