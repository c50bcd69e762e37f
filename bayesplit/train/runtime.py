"""Where a run executes: device, precision, DDP rank, and the peak FLOP/s that MFU divides by."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from bayesplit.errors import BayesplitError
from bayesplit.train.config import TrainConfig

#: Dense bf16 tensor-core peak per GPU (FLOP/s, no sparsity), by the words of the device
#: name (``L4`` is not ``NVIDIA L40``, ``A100`` not ``RTX A1000``); the first match wins.
#: H100 SXM and H200 share the same compute die and clocks.
GPU_PEAK_BF16 = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("L4", 121e12),
    ("A10G", 70e12),
)


@dataclass
class Runtime:
    """Where a run executes: device and distributed rank/world size."""

    device: torch.device
    rank: int = 0
    world: int = 1
    compile: bool = False

    @property
    def cuda(self) -> bool:
        """Whether the run is on a CUDA device."""
        return self.device.type == "cuda"

    @property
    def main(self) -> bool:
        """Whether this process is rank 0 (the one that logs and saves)."""
        return self.rank == 0

    @property
    def dtype(self) -> str:
        """Compute dtype label: bf16 autocast on CUDA, fp32 on CPU."""
        return "bf16" if self.cuda else "fp32"

    def autocast(self):
        """bf16 autocast on CUDA; a no-op context on CPU (fp32)."""
        if self.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def barrier(self) -> None:
        """Wait for every DDP rank (no-op in a single process)."""
        if self.world > 1:
            dist.barrier()


def make_runtime(tc: TrainConfig) -> Runtime:
    """Pick the device and join the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if tc.device not in ("auto", "cpu", "cuda"):
        raise BayesplitError(f"device must be auto, cpu or cuda, got {tc.device!r}")
    if tc.device == "cuda" and not torch.cuda.is_available():
        raise BayesplitError("device cuda requested but no CUDA device is available")
    use_cuda = tc.device != "cpu" and torch.cuda.is_available()
    device = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    # compile only on CUDA: on CPU it costs minutes of compile time for tiny models
    do_compile = use_cuda and (tc.compile is None or tc.compile)
    return Runtime(device=device, rank=rank, world=world, compile=do_compile)


def _words(name: str) -> list[str]:
    """A device name's words, case-folded: ``NVIDIA A100-SXM4-80GB`` → nvidia, a100, sxm4, 80gb."""
    return re.findall(r"[a-z0-9]+", name.lower())


@functools.cache
def peak_flops(device_type: str, device_name: str = "") -> tuple[float | None, str]:
    """Peak FLOP/s of one device and where the number comes from.

    CUDA: dense bf16 peak from a table of datasheet values. CPU: ``$BAYESPLIT_CPU_PEAK_FLOPS``
    if set, else measured — the best fp32 1024×1024 matmul rate with this process's threads
    (a practical peak; a busy machine measures low and so inflates MFU).
    """
    if device_type == "cuda":
        words = _words(device_name)
        for key, value in GPU_PEAK_BF16:
            k = _words(key)
            if any(words[i : i + len(k)] == k for i in range(len(words) - len(k) + 1)):
                return value, f"bf16 dense datasheet peak ({key})"
        return None, f"unknown GPU {device_name!r}"
    env = os.environ.get("BAYESPLIT_CPU_PEAK_FLOPS")
    if env:
        return float(env), "BAYESPLIT_CPU_PEAK_FLOPS"
    a = torch.randn(1024, 1024)
    b = torch.randn(1024, 1024)
    best = math.inf
    for _ in range(7):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * 1024**3 / best, f"measured fp32 matmul, {torch.get_num_threads()} threads"


@functools.cache
def git_commit() -> str | None:
    """``git rev-parse HEAD`` of bayesplit's own checkout, or None when it is not one.

    Installed inside another git repository (``project/.venv/lib/.../bayesplit``), git
    answered with that repository's commit, which every run row then recorded as the
    trainer's; only a checkout whose top level holds bayesplit's ``pyproject.toml`` counts.
    """
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.splitlines()  # a path may hold spaces
    if out.returncode != 0 or len(lines) != 2 or not _is_bayesplit_root(Path(lines[0]), root):
        return None
    return lines[1]


def _is_bayesplit_root(top: Path, root: Path) -> bool:
    try:
        if top.resolve() != root:
            return False
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return False
    return 'name = "bayesplit"' in text
