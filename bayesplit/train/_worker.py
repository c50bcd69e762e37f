"""Process entry point of a DDP job: ``torchrun ... -m bayesplit.train._worker JOB.json ROWS.json``.

Every rank runs the same job; the process group is set up from torchrun's environment by
:func:`bayesplit.train.runtime.make_runtime`. Rank 0 writes the rows it appended to ROWS.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    import torch.distributed as dist

    from bayesplit._io import atomic_write_text
    from bayesplit.train.execute import rows_as_records, run_job

    job_file, rows_file = argv
    df = run_job(json.loads(Path(job_file).read_text()))
    rank = dist.get_rank() if dist.is_initialized() else 0
    if rank == 0:
        atomic_write_text(rows_file, json.dumps(rows_as_records(df), allow_nan=False))
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
