"""Checkpoint files: atomic writes, safe reads (``weights_only=True``), names by kind and step."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from bayesplit._io import atomic_path, remove_if_empty
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


@contextlib.contextmanager
def run_lock(workdir: str | Path | None, run_id: str, kind: str = "specialist") -> Iterator[None]:
    """Hold ``workdir/runs/<run_id>.lock`` while a specialist trains and writes its rows
    (``workdir/trunks/<trunk id>.lock`` while a trunk does: ``kind="trunk"``).

    Two runs of one specialist (same trunk checkpoint, domain, D' and settings) share its
    run id, its periodic checkpoints and its rows, and two pretrainings of one trunk its
    checkpoints: the second trained in full and was refused only when the store already
    had the first one's rows. The lock is an exclusive ``flock`` on the file, so of two
    runners exactly one gets it and the other is refused before it trains, saying who holds
    it. The operating system drops it with its process, so a run killed outright does not
    keep its rerun out (with an ``O_EXCL`` file it did, until the file was deleted by hand);
    the file is removed when a run ends. Only the main process takes it (under torchrun
    every rank runs this), and only with a workdir (where the run's checkpoints go; the
    default workdir is named after the store).
    """
    if workdir is None or int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    lock = Path(workdir) / ("trunks" if kind == "trunk" else "runs") / f"{run_id}.lock"
    # a run that fails leaves nothing behind, so neither do the folders made for its lock
    made = [d for d in (lock.parent, *lock.parent.parents) if not d.exists()]
    try:
        fd = _acquire(lock)
    except BaseException:
        for folder in made:  # deepest first
            remove_if_empty(folder)
        raise
    if fd is None:
        raise BayesplitError(
            f"{kind} {run_id} is being trained by another run ({_lock_owner(lock)}); wait "
            f"for it to finish (its lock: {lock})"
        )
    try:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode())
        yield
    finally:
        lock.unlink(missing_ok=True)  # before the lock goes: see _acquire
        os.close(fd)
        for folder in made:  # deepest first
            remove_if_empty(folder)


def _acquire(path: Path) -> int | None:
    """An open descriptor of ``path`` (made with its folder) under an exclusive ``flock``;
    None when another process holds it."""
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # another run's lock, released, took the empty folder
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as exc:  # a file system without flock (some Lustre or NFS mounts)
            os.close(fd)
            if not existed:  # made for this run: nothing of it is left behind
                path.unlink(missing_ok=True)
            raise BayesplitError(
                f"cannot lock {path} ({exc.strerror}): the workdir's file system does not "
                "take file locks; give a --workdir on one that does"
            ) from None
        # a run removes its lock file before releasing it: one opened before that is not
        # the lock any more, and locking it would let two runs in
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            return fd
        os.close(fd)


def _lock_owner(lock: Path) -> str:
    """Who holds a lock, as its file says (empty while the holder is still writing it)."""
    try:
        owner = lock.read_text().strip()
    except OSError:  # released in the meantime, or unreadable
        owner = ""
    return f"lock taken by {owner}" if owner else "lock held"
