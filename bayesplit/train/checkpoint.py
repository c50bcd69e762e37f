"""Checkpoint files: atomic writes, safe reads (``weights_only=True``), names by kind and step."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from bayesplit._io import atomic_path
from bayesplit._parse import check_path
from bayesplit.errors import BayesplitError
from bayesplit.train.model import GPT

CKPT_FORMAT = "bayesplit-ckpt/1"


def save_checkpoint(path: Path, model: GPT, opt: torch.optim.Optimizer, meta: dict) -> None:
    """Write a checkpoint atomically: a reader (or a resumed run) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": CKPT_FORMAT,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "rng": {"torch": torch.get_rng_state()},
        "meta": meta,
    }
    # atomic_path flushes before the rename (a power cut leaves old or new) and deletes
    # its temporary file on any failure, an interrupt included (one was left, full size)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint (tensors and plain Python data only: ``weights_only=True``)."""
    p = check_path(path, "checkpoint")  # "" was the current folder: "no such checkpoint: ."
    if not p.is_file():
        raise BayesplitError(f"no such checkpoint: {p}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        if not _starts_like_a_zip(p):  # torch.save writes a zip; a CSV said "IndexError"
            raise BayesplitError(
                f"cannot read checkpoint {p}: not a PyTorch checkpoint file"
            ) from None
        raise BayesplitError(
            f"cannot read checkpoint {p} (damaged or truncated?): {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CKPT_FORMAT:
        raise BayesplitError(f"{p} is not a bayesplit checkpoint")
    return state


def _starts_like_a_zip(p: Path) -> bool:
    """Whether a file begins as a zip does (a cut-off one too, whose index at the end is gone)."""
    with open(p, "rb") as f:
        return f.read(4) == b"PK\x03\x04"


_CKPT_NAME = re.compile(r"^(stable|periodic)-(\d+)\.pt$")


def list_checkpoints(directory: Path) -> dict[str, dict[int, Path]]:
    """Checkpoints of a run directory by kind (``stable``/``periodic``) and step."""
    out: dict[str, dict[int, Path]] = {"stable": {}, "periodic": {}}
    if directory.is_dir():
        for p in directory.iterdir():
            m = _CKPT_NAME.match(p.name)
            if m:
                out[m.group(1)][int(m.group(2))] = p
    return out


def resumable_steps(directory: Path) -> list[int]:
    """Steps a trunk in ``directory`` can be resumed from (its stable and periodic
    checkpoints), in order."""
    have = list_checkpoints(directory)
    return sorted({*have["stable"], *have["periodic"]})


def ckpt_path(directory: Path, kind: str, step: int) -> Path:
    """Checkpoint file of ``kind`` (stable, decayed, spec) at ``step`` in ``directory``."""
    return directory / f"{kind}-{step:010d}.pt"
