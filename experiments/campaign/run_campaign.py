"""Run the measured two-stage campaign of a campaign file, then export its run table and logs.

    python experiments/campaign/run_campaign.py experiments/campaign/cpu_campaign.yaml \
        [--workers 2] [--threads 1] [--dry-run] [--export-only]

Every trunk of the file is pretrained under warmup-stable-decay to its D_max with a stable
checkpoint and a decayed general model at each branch point D; from each branch point a
specialist is trained for every D' on every domain; every model is evaluated on every domain's
validation set. Rows go to the SQLite run store named in the file, which makes the campaign
resumable: a second invocation skips every run whose rows are already there and reuses the
trunk checkpoints.

Jobs run in ``--workers`` processes with ``--threads`` torch threads each (with models this
small, two one-thread processes beat one two-thread process). Trunks are scheduled first,
largest first; a trunk's specialists are queued when it finishes.

Outputs (committed):
    table (from the file; default <name>_runs.csv.gz next to it)
                          the run table (every row of the store, DESIGN.md columns and extras)
    <name>_logs.tar.gz    jobs.jsonl (one line per job: kind, spec, seconds, rows) and the
                          per-step train losses of every trunk (trunk_losses.csv)
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import yaml


def load_campaign(path: Path) -> dict:
    cfg = yaml.safe_load(path.read_text())
    for key in (
        "corpus",
        "ladder",
        "workdir",
        "store",
        "branch_fractions",
        "spec_fractions",
        "trunks",
    ):
        if key not in cfg:
            raise SystemExit(f"error: {path}: missing key {key!r}")
    return cfg


def plan_jobs(cfg: dict, domains: list[str]) -> list[dict]:
    """Trunk jobs, each with the specialist jobs that branch from it."""
    from bayesplit.train.ladder import find_model, load_ladder

    ladder = load_ladder(cfg["ladder"])
    jobs = []
    for t in cfg["trunks"]:
        entry = find_model(ladder, t["model"])
        d_max = float(t["max_tokens"])
        branch = [round(f * d_max) for f in t.get("branch_fractions", cfg["branch_fractions"])]
        specs = [
            {"D": d, "domain": k, "Dp": round(f * d_max)}
            for d in branch
            for f in t.get("spec_fractions", cfg["spec_fractions"])
            for k in domains
        ]
        jobs.append(
            {"entry": entry, "seed": int(t.get("seed", 0)), "branch": branch, "specs": specs}
        )
    return jobs


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _trunk_setup(cfg: dict, job: dict):
    from bayesplit.train.config import TrainConfig
    from bayesplit.train.corpus import Corpus
    from bayesplit.train.trunk import model_config, trunk_id_for

    corpus = Corpus(cfg["corpus"])
    tc = TrainConfig.from_entry(job["entry"], **(cfg.get("train") or {}))
    trunk_id = trunk_id_for(
        job["entry"], model_config(job["entry"], corpus), tc, job["seed"], corpus
    )
    return corpus, tc, trunk_id


def run_trunk(cfg: dict, job: dict) -> dict:
    from bayesplit.train.trunk import pretrain

    t0 = time.perf_counter()
    corpus, tc, trunk_id = _trunk_setup(cfg, job)
    rows = pretrain(
        corpus,
        job["entry"],
        workdir=Path(cfg["workdir"]),
        eval_at=job["branch"],
        save_at=job["branch"],
        seed=job["seed"],
        store=cfg["store"],
        train=tc,
        trunk_id=trunk_id,
        progress=False,
    )
    return {
        "kind": "trunk",
        "trunk_id": trunk_id,
        "model": job["entry"]["name"],
        "seed": job["seed"],
        "branch": job["branch"],
        "rows": len(rows),
        "seconds": round(time.perf_counter() - t0, 2),
        "losses": _losses(rows),
    }


def run_spec(cfg: dict, job: dict, spec: dict) -> dict:
    from bayesplit.train.checkpoint import ckpt_path
    from bayesplit.train.config import steps_for
    from bayesplit.train.specialist import SpecConfig, specialize

    t0 = time.perf_counter()
    corpus, tc, trunk_id = _trunk_setup(cfg, job)
    tps = tc.batch_size * job["entry"]["seq_len"]
    ckpt = ckpt_path(
        Path(cfg["workdir"]) / "trunks" / trunk_id, "stable", steps_for(spec["D"], tps)
    )
    rows = specialize(
        corpus,
        ckpt,
        spec["domain"],
        spec["Dp"],
        spec=SpecConfig(**(cfg.get("spec") or {})),
        store=cfg["store"],
        workdir=Path(cfg["workdir"]),
        train=tc,
        entry=job["entry"],
        progress=False,
    )
    return {
        "kind": "spec",
        "trunk_id": trunk_id,
        "model": job["entry"]["name"],
        "seed": job["seed"],
        **spec,
        "rows": len(rows),
        "seconds": round(time.perf_counter() - t0, 2),
        "losses": _losses(rows),
    }


def _losses(rows) -> dict:
    if not len(rows):
        return {}
    return {
        f"{r.pretrain_tokens}/{r.spec_tokens}/{r.eval_domain}": round(float(r.loss), 5)
        for r in rows.itertuples()
    }


def run(cfg: dict, workers: int, threads: int, log: Path) -> None:
    from bayesplit.train.corpus import Corpus

    domains = list(Corpus(cfg["corpus"]).domains)
    jobs = plan_jobs(cfg, domains)
    n_total = len(jobs) + sum(len(j["specs"]) for j in jobs)
    done = 0
    t_start = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with (
        ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(threads,)) as pool,
        log.open("a") as fh,
    ):
        pending = {pool.submit(run_trunk, cfg, j): j for j in jobs}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                job = pending.pop(fut)
                record = fut.result()  # a failed job stops the campaign: fix, then re-run
                done += 1
                record["finished_s"] = round(time.perf_counter() - t_start, 1)
                fh.write(json.dumps(record) + "\n")
                fh.flush()
                what = record["kind"] + " " + record["trunk_id"]
                if record["kind"] == "spec":
                    what += f" D={record['D']:,} {record['domain']} D'={record['Dp']:,}"
                print(
                    f"[{done}/{n_total}] {what}: {record['seconds']:.0f} s, {record['rows']} rows",
                    flush=True,
                )
                if record["kind"] == "trunk":
                    for s in job["specs"]:
                        pending[pool.submit(run_spec, cfg, job, s)] = job
    print(f"campaign done in {time.perf_counter() - t_start:.0f} s", flush=True)


def export(cfg: dict, campaign: Path) -> None:
    """Write the run table and the compressed logs next to the campaign file."""
    import pandas as pd

    from bayesplit.runs import validate_runs
    from bayesplit.store import RunStore
    from bayesplit.train.checkpoint import list_checkpoints, load_checkpoint

    stem = campaign.with_suffix("")
    table = Path(cfg.get("table") or f"{stem}_runs.csv.gz")
    runs = RunStore(cfg["store"]).read()
    runs = runs.sort_values(
        ["params", "seed", "pretrain_tokens", "spec_tokens", "train_domain", "eval_domain"],
        na_position="first",
    )
    validate_runs(runs)
    runs.to_csv(table, index=False, compression={"method": "gzip", "mtime": 0})
    print(
        f"wrote {table}: {len(runs)} rows, {(runs['spec_tokens'] > 0).sum()} with spec_tokens > 0"
    )

    curves = []
    for trunk_dir in sorted((Path(cfg["workdir"]) / "trunks").iterdir()):
        stable = list_checkpoints(trunk_dir)["stable"]
        if not stable:
            continue
        meta = load_checkpoint(stable[max(stable)])["meta"]
        tps = meta["tokens_per_step"]
        curves += [
            {
                "trunk_id": meta["trunk_id"],
                "step": i + 1,
                "tokens": (i + 1) * tps,
                "train_loss": round(v, 5),
            }
            for i, v in enumerate(meta["train_losses"])
        ]
    logs = Path(f"{stem}_logs.tar.gz")
    jobs_log = Path(cfg["workdir"]) / "jobs.jsonl"
    buf = io.StringIO()
    pd.DataFrame(curves).to_csv(buf, index=False)
    with tarfile.open(logs, "w:gz") as tar:
        for name, data in (
            ("jobs.jsonl", jobs_log.read_bytes()),
            ("trunk_losses.csv", buf.getvalue().encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    print(f"wrote {logs}: {sum(1 for _ in jobs_log.open())} job records, {len(curves)} trunk steps")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("campaign", type=Path)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dry-run", action="store_true", help="Print the jobs and stop.")
    ap.add_argument("--export-only", action="store_true", help="Only write the run table and logs.")
    args = ap.parse_args(argv)
    cfg = load_campaign(args.campaign)
    if not Path(cfg["corpus"]).is_dir():
        raise SystemExit(
            f"error: corpus {cfg['corpus']} not found; build it first (see the campaign file)"
        )
    if args.dry_run:
        from bayesplit.train.corpus import Corpus

        for j in plan_jobs(cfg, list(Corpus(cfg["corpus"]).domains)):
            print(
                j["entry"]["name"],
                "seed",
                j["seed"],
                "D",
                j["branch"],
                f"{len(j['specs'])} specialists",
            )
        return
    if not args.export_only:
        run(cfg, args.workers, args.threads, Path(cfg["workdir"]) / "jobs.jsonl")
    export(cfg, args.campaign)


if __name__ == "__main__":
    sys.exit(main())
