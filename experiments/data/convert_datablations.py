"""Convert the datablations final validation losses into bayesplit's run-table format.

Source: shared/data/external/datablations/datablations_c4_final_val_loss.csv, derived from
huggingface/datablations @ 1370131 (Apache-2.0), Muennighoff et al. 2023. One row per
finished, non-deduplicated C4 run (296 rows): N, D (total tokens seen), the unique tokens U
behind them and the epochs D/U, evaluated on C4 validation. Single-stage data.

    python experiments/data/convert_datablations.py PATH/datablations_c4_final_val_loss.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parents[2] / "bayesplit" / "datasets" / "datablations.csv.gz"


def convert(src: Path) -> pd.DataFrame:
    raw = pd.read_csv(src)
    keep = raw[(raw["unfinished"] == 0) & (raw["is_dedup"] == 0)]
    return pd.DataFrame(
        {
            "run_id": keep["name"],
            "seed": keep["seed"].fillna(0).astype(int),
            "params": keep["params"],
            "pretrain_tokens": keep["tokens"],
            "spec_tokens": 0.0,
            "train_domain": None,
            "eval_domain": "c4_val",
            "loss": keep["val_loss"],
            "unique_tokens": keep["unique_tokens"],
            "epochs": keep["epochs"],
            "note": keep["note"],
        }
    ).reset_index(drop=True)


if __name__ == "__main__":
    table = convert(Path(sys.argv[1]))
    tmp = OUT.with_suffix(".tmp")
    table.to_csv(tmp, index=False, compression="gzip")
    tmp.replace(OUT)
    print(f"{len(table)} rows -> {OUT}")
