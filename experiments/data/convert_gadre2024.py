"""Convert Gadre et al. 2024's per-model table into bayesplit's run-table format.

Source: shared/data/external/gadre2024_overtraining/gadre2024_flat_losses.csv
(mlfoundations/scaling @ a003c49, MIT). One input row per model becomes 8 rows,
one per validation set. ``params`` is N without the embedding matrix (the
project's convention); ``params_with_embeddings`` keeps the other count.

    python experiments/data/convert_gadre2024.py PATH/gadre2024_flat_losses.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

EVAL_SETS = (
    "openlm",
    "c4_val",
    "paloma_c4_en",
    "paloma_dolma_100_programing_languages",
    "paloma_falcon_refinedweb",
    "paloma_ptb",
    "paloma_redpajama",
    "val_de_en_100",
)
OUT = Path(__file__).resolve().parents[2] / "bayesplit" / "datasets" / "gadre2024.csv.gz"


def convert(src: Path) -> pd.DataFrame:
    wide = pd.read_csv(src)
    rows = []
    for _, m in wide.iterrows():
        for ev in EVAL_SETS:
            rows.append(
                {
                    "run_id": m["name"],
                    "seed": 0,
                    "params": int(m["N_no_embed"]),
                    "pretrain_tokens": int(m["D"]),
                    "spec_tokens": 0,
                    "train_domain": None,
                    "eval_domain": ev,
                    "loss": float(m[f"loss_{ev}"]),
                    "params_with_embeddings": int(m["N"]),
                    "train_corpus": m["dataset"],
                    "model": m["model"],
                    "tokens_per_param": float(m["tokens_per_param"]),
                    "eval_tokens": int(m[f"loss_{ev}_tokens"]),
                }
            )
    return pd.DataFrame(rows)


if __name__ == "__main__":
    src = Path(
        sys.argv[1]
        if len(sys.argv) > 1
        else "../shared/data/external/gadre2024_overtraining/gadre2024_flat_losses.csv"
    )
    table = convert(src)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(OUT, index=False, compression={"method": "gzip", "mtime": 0}, float_format="%.10g")
    print(f"wrote {len(table)} rows to {OUT}")
