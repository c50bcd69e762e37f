"""Centred or non-centred hierarchy: which one passes the diagnostics gate, on which data?

Until stop 22 ``bayesplit.fit`` defaulted to ``centered="auto"``: the centred hierarchy
when every domain has at least 20 rows (the textbook rule: a strongly informed domain
offset samples better centred), non-centred otherwise. This script fits the same data both
ways with the user-facing defaults (4 chains × 1000 draws) and records the gate,
divergences, R-hat, ESS and time: the bundled tables as the demo fits them, and the whole
factorial ladders of the design benchmark's simulated truths (``full_ladder.py``). Its
result made non-centred the default.

    python experiments/benchmarks/parameterization.py [--seeds 3] [--data NAME,...]
    python experiments/benchmarks/parameterization.py --report-only

Results are kept per (data, centered, seed) in ``parameterization.csv`` (a rerun skips what
is there); ``parameterization.md`` is made from all of them.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
CSV = HERE / "parameterization.csv"
#: the rows per domain from which the old ``centered="auto"`` chose the centred form
OLD_AUTO_MIN_ROWS = 20
DATA = "debian_campaign,gadre2024,ladder:gadre,ladder:debian,ladder:saturating_reducible"


def load(name: str, seed: int) -> tuple[pd.DataFrame, str, dict]:
    """The run table, law and fit options of one data set (a ladder's noise follows seed)."""
    if name.startswith("ladder:"):
        import full_ladder

        from bayesplit.simulation import _trunk_ids

        truth, _, config = full_ladder.ladder_config(name.removeprefix("ladder:"))
        runs = truth.simulate(_trunk_ids(config.seed_design, seed), seed=seed)
        return runs, truth.law.name, {}
    from bayesplit.cli.demo import DEMO_DATA
    from bayesplit.datasets import load_dataset

    setting = DEMO_DATA[name]
    runs = load_dataset(name, split="fit", **setting.get("load", {}))
    return runs, setting["law"], setting.get("fit", {})


def fit_once(name: str, centered: bool, seed: int) -> dict:
    from bayesplit.fitting import fit
    from bayesplit.runs import modelled_rows

    runs, law, options = load(name, seed)
    start = time.perf_counter()
    post = fit(runs, law, centered=centered, seed=seed, progress=False, **options)
    d = post.diagnostics
    rows = runs[modelled_rows(runs)]
    return {
        "data": name,
        "centered": centered,
        "seed": seed,
        "law": law,
        "domains": rows["eval_domain"].nunique(),
        "min rows per domain": int(rows["eval_domain"].value_counts().min()),
        "gate ok": bool(d.ok),
        "divergences": int(d.divergences),
        "r_hat max": float(d.r_hat_max),
        "bulk ESS min": float(d.ess_bulk_min),
        "seconds": time.perf_counter() - start,
        "failures": "; ".join(d.failures),
    }


def report(command: str) -> None:
    df = pd.read_csv(CSV)
    table = (
        df.groupby(["data", "centered"], sort=False)
        .agg(
            law=("law", "first"),
            domains=("domains", "first"),
            min_rows=("min rows per domain", "min"),
            seeds=("seed", "size"),
            gate_passed=("gate ok", "sum"),
            divergences_median=("divergences", "median"),
            r_hat_max=("r_hat max", "max"),
            bulk_ess_min=("bulk ESS min", "min"),
            seconds_median=("seconds", "median"),
        )
        .reset_index()
    )
    table["old auto picks"] = (table["min_rows"] >= OLD_AUTO_MIN_ROWS) == table["centered"]
    lines = [
        "# Centred or non-centred hierarchy",
        "",
        f"Command: `{command}`  ",
        f"Machine: CPU, {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"Python {sys.version.split()[0]}; `bayesplit.fit` defaults (4 chains × 1000 draws "
        "after 1000 warmup steps; the demo's `target_accept` for its own table).",
        "",
        "Each data set fitted both ways with the same seeds. `gate_passed`: fits (of `seeds`) "
        "that passed the diagnostics gate; `old auto picks`: the parameterization the "
        f'default before stop 22, `centered="auto"`, chose there (centred when every domain has '
        f"≥ {OLD_AUTO_MIN_ROWS} rows); non-centred is the default since. `ladder:NAME`: the whole factorial ladder of a design-benchmark truth "
        "(`full_ladder.py`), simulated with the seed's noise.",
        "",
        table.to_markdown(index=False, floatfmt=".3g"),
        "",
    ]
    (HERE / "parameterization.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DATA)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    command = "python experiments/benchmarks/parameterization.py " + " ".join(sys.argv[1:])
    if not args.report_only:
        old = pd.read_csv(CSV) if CSV.exists() else None
        done = (
            set()
            if old is None
            else set(zip(old["data"], old["centered"], old["seed"], strict=True))
        )
        for name in args.data.split(","):
            for seed in range(args.seeds):
                for centered in (True, False):
                    if (name, centered, seed) in done:
                        continue
                    row = fit_once(name, centered, seed)
                    pd.DataFrame([row]).to_csv(CSV, mode="a", header=not CSV.exists(), index=False)
                    print(row, flush=True)
    report(command.strip())


if __name__ == "__main__":
    main()
