"""Time one hierarchical fit with NumPyro, PyMC and nutpie, and an Epoch-style point fit.

The data: the bundled Gadre et al. 2024 table (RedPajama models ≤ 412M params,
8 eval domains, 256 rows), hierarchical ``chinchilla`` law (5 parameters per domain,
partially pooled). The point fit is what Besiroglu et al. (Epoch, 2024) did for
Chinchilla: per domain, Huber loss on log loss minimized with L-BFGS from a grid of
starts, and 1000 bootstrap refits for intervals.

    python experiments/benchmarks/fit_speed.py [--draws 1000] [--bootstrap 1000] [--out experiments/benchmarks/fit_speed.md]

ESS/s is the minimum bulk ESS over the law parameters divided by the wall time of
the whole fit (compilation included: that is what a user waits for).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.optimize as so

import bayesplit
from bayesplit.datasets import gadre2024


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def versions() -> str:
    import arviz
    import jax
    import numpyro

    parts = [
        f"numpyro {numpyro.__version__}",
        f"jax {jax.__version__}",
        f"arviz {arviz.__version__}",
    ]
    try:
        import pymc

        parts.append(f"pymc {pymc.__version__}")
        import nutpie

        parts.append(f"nutpie {nutpie.__version__}")
    except ImportError:
        pass
    return ", ".join(parts)


def bayes_row(runs, backend: str, draws: int) -> dict:
    start = time.perf_counter()
    post = bayesplit.fit(
        runs,
        "chinchilla",
        backend=backend,
        chains=4,
        draws=draws,
        warmup=draws,
        seed=0,
        progress=False,
    )
    wall = time.perf_counter() - start
    d = post.diagnostics
    return {
        "method": f"{backend} NUTS" + (" (dense mass)" if backend != "nutpie" else " (diag mass)"),
        "wall_s": wall,
        "ess_bulk_min": d.ess_bulk_min,
        "ess_per_s": d.ess_bulk_min / wall,
        "r_hat_max": d.r_hat_max,
        "divergences": d.divergences,
        "alpha_c4": float(np.median(post.draws()["alpha"][:, post.domains.index("c4_val")])),
    }


def _chinchilla(theta, n, d):
    e, a, b, alpha, beta = theta
    return np.logaddexp(np.logaddexp(e, a - alpha * np.log(n)), b - beta * np.log(d))


def _huber(r, delta=1e-3):
    return np.where(np.abs(r) < delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))


def point_fit(n, d, y, start=None) -> np.ndarray:
    """Epoch's recipe: Huber on log loss, L-BFGS from a grid of starting points (or one warm start)."""
    best = None
    grid = itertools.product(
        [-1.0, 0.5], [0.0, 5.0, 10.0], [0.0, 5.0, 10.0], [0.2, 0.5], [0.2, 0.5]
    )
    for x0 in [start] if start is not None else grid:
        res = so.minimize(
            lambda t: _huber(_chinchilla(t, n, d) - y).sum(), list(x0), method="L-BFGS-B"
        )
        if best is None or res.fun < best.fun:
            best = res
    return best.x


def bootstrap_row(runs, n_boot: int) -> dict:
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    alphas = []
    for dom, g in runs.groupby("eval_domain"):
        n, d, y = (
            g["params"].to_numpy(),
            g["pretrain_tokens"].to_numpy(),
            np.log(g["loss"].to_numpy()),
        )
        best = point_fit(n, d, y)
        for _ in range(n_boot):
            idx = rng.integers(0, len(y), len(y))
            theta = point_fit(
                n[idx], d[idx], y[idx], start=best
            )  # bootstrap refits warm-start at the fit
            if dom == "c4_val":
                alphas.append(theta[3])
    wall = time.perf_counter() - start
    return {
        "method": f"Huber L-BFGS (72-start grid) + {n_boot} warm-started bootstrap refits, per domain",
        "wall_s": wall,
        "ess_bulk_min": float("nan"),
        "ess_per_s": float("nan"),
        "r_hat_max": float("nan"),
        "divergences": float("nan"),
        "alpha_c4": float(np.median(alphas)),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".md"))
    args = ap.parse_args()

    runs = gadre2024(split="fit")
    rows = []
    for backend in ("numpyro", "pymc", "nutpie"):
        print(f"fitting with {backend} ...", file=sys.stderr, flush=True)
        rows.append(bayes_row(runs, backend, args.draws))
    print("bootstrap point fit ...", file=sys.stderr, flush=True)
    rows.append(bootstrap_row(runs, args.bootstrap))

    def f(x, spec):
        return "—" if x != x else format(x, spec)

    lines = [
        "# Fit speed: NumPyro vs PyMC vs nutpie vs bootstrap point fit",
        "",
        f"Machine: {machine()} (CPU only; no GPU in this session).  ",
        f"Versions: {versions()}.  ",
        f"Command: `python experiments/benchmarks/fit_speed.py --draws {args.draws} --bootstrap {args.bootstrap}`  ",
        f"Data: Gadre et al. 2024, RedPajama models ≤ 412M params, {len(runs)} rows, 8 eval domains; "
        f"hierarchical `chinchilla` (all 5 parameters per domain, partially pooled); 4 chains × {args.draws} draws after {args.draws} warmup.",
        "",
        "| method | wall time (s) | min bulk ESS | ESS/s | max R-hat | divergences | median α (c4_val) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['wall_s']:.1f} | {f(r['ess_bulk_min'], '.0f')} | {f(r['ess_per_s'], '.1f')} | "
            f"{f(r['r_hat_max'], '.3f')} | {f(r['divergences'], '.0f')} | {r['alpha_c4']:.3f} |"
        )
    lines += [
        "",
        "Wall time includes compilation (JAX / PyTensor C / nutpie's Rust+Numba), which is what a user waits for.",
        "The point fit gives no convergence diagnostics; its interval is a bootstrap, not a posterior.",
        "",
        "## GPU",
        "",
        "This table is CPU only. A GPU's cost per NUTS step was measured separately, on a lent",
        "H200 (`nuts_step_cost.md`): `--device auto` picks the GPU where it steps all chains at",
        "least twice as fast as the CPU's cores would (`bayesplit.fitting.gpu_pays`).",
    ]
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    lines.append(f"\n_Generated at commit {git or 'unknown'}._")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
