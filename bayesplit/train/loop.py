"""Training: a pretraining trunk with branch points, short decays, specializations, run rows.

How a trunk works
-----------------
A trunk trains on the general mixture with a warmup–stable schedule that never decays, so
its state at step s does not depend on how far it will go. It saves a *stable checkpoint*
at every step a branch needs, and a periodic checkpoint every ``checkpoint_every`` steps
(only the newest is kept) to resume from if it is killed. A trunk asked to go further
later resumes from its furthest checkpoint; a missing checkpoint below that is recomputed
from the nearest earlier one (the data order makes it bitwise the same on CPU).

Token accounting
----------------
A step consumes exactly ``batch_size × seq_len`` tokens (``batch_size`` is global across
DDP ranks). A requested token count T becomes ``max(1, round(T / tokens_per_step))`` steps
and every row records the tokens actually consumed, so D and D' are exact, not requested.

**General model at D** (a pretrain-only row): the trunk is branched at stable step
``n − k`` and decayed to zero over the last ``k = max(1, round(cooldown_fraction · n))``
steps, where ``n`` is D in steps. The row's ``pretrain_tokens`` is ``n · tokens_per_step``:
every token the model saw, decay included (the usual WSD convention: the cooldown is part
of the run's length). The decay reads the trunk's own data batches.

**Specialist at (D, D', k)**: branched from the *undecayed* stable checkpoint at D (so
``pretrain_tokens`` = D exactly), then ``m`` steps on domain k (optionally with a fixed
number of general replay rows per batch), with its own re-warmup/stable/decay schedule.
``spec_tokens`` = ``m · tokens_per_step``, replay rows included; the domain-only count
is in ``spec_domain_tokens``.

Run ids: the general rows of a trunk share ``run_id = trunk_id`` with ``step`` = their
pretrain tokens; a specialist has its own run id, ``trunk_id`` = its trunk and ``step`` =
``D + D'``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import subprocess
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from bayesplit._io import atomic_write_text
from bayesplit.errors import BayesplitError
from bayesplit.train.config import GPTConfig, config_hash, count_params, flops_per_token
from bayesplit.train.data import BatchSampler, CorpusData, Stream, eval_windows, open_corpus
from bayesplit.train.model import GPT
from bayesplit.train.schedule import WSD, cooldown, specialization

CKPT_FORMAT = "bayesplit-ckpt/1"

#: Dense bf16 tensor-core peak per GPU (FLOP/s, no sparsity), by device-name substring;
#: the first match wins. H100 SXM and H200 share the same compute die and clocks.
GPU_PEAK_BF16 = (
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("A10G", 70e12),
)


@dataclass(frozen=True)
class TrainConfig:
    """Optimization and bookkeeping settings of a run.

    Parameters
    ----------
    batch_size
        Sequences per optimizer step, summed over DDP ranks.
    lr
        Peak (stable-phase) learning rate.
    warmup_steps
        Linear warmup of the trunk.
    weight_decay, beta1, beta2, grad_clip
        AdamW settings; weight decay applies to matrices only (not RMSNorm gains).
    micro_batch_size
        Rows per forward pass on one rank (gradient accumulation); None = all rows at once.
    cooldown_fraction, decay_shape
        The short decay that turns a stable checkpoint at D into a general model at D.
    weights
        General-mixture weights per domain; None = proportional to train tokens.
    eval_tokens
        Predicted validation tokens per domain (fixed, evenly spaced windows).
    eval_batch_size
        Windows per evaluation forward pass.
    checkpoint_every
        Steps between periodic (resume) checkpoints of a trunk or a long specialization.
    device
        ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
    compile
        ``torch.compile`` the model; None = on CUDA only (never on CPU).
    """

    batch_size: int
    lr: float
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    micro_batch_size: int | None = None
    cooldown_fraction: float = 0.1
    decay_shape: str = "linear"
    weights: dict[str, float] | None = None
    eval_tokens: int = 65536
    eval_batch_size: int = 16
    checkpoint_every: int = 1000
    device: str = "auto"
    compile: bool | None = None

    @classmethod
    def from_entry(cls, entry: dict[str, Any], **overrides: Any) -> TrainConfig:
        """Settings of a ladder entry (its ``batch_size``, ``lr`` and ``train`` defaults) plus overrides."""
        names = {f.name for f in fields(cls)}
        base = {"batch_size": entry["batch_size"], "lr": entry["lr"]}
        base.update({k: v for k, v in (entry.get("train") or {}).items() if k in names})
        if "micro_batch_size" in entry:
            base["micro_batch_size"] = entry["micro_batch_size"]
        unknown = set(overrides) - names
        if unknown:
            raise BayesplitError(f"unknown training settings: {', '.join(sorted(unknown))}")
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def trunk_identity(self) -> dict[str, Any]:
        """The settings that change a trunk's trajectory (its id hashes these)."""
        keep = ("batch_size", "lr", "warmup_steps", "weight_decay", "beta1", "beta2", "grad_clip")
        return {k: getattr(self, k) for k in keep} | {"weights": self.weights}


def steps_for(tokens: float, tokens_per_step: int) -> int:
    """Optimizer steps for a requested token count: the nearest whole step, at least one."""
    return max(1, int(round(float(tokens) / tokens_per_step)))


# -- runtime: device, precision, DDP ---------------------------------------------------
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


@functools.cache
def peak_flops(device_type: str, device_name: str = "") -> tuple[float | None, str]:
    """Peak FLOP/s of one device and where the number comes from.

    CUDA: dense bf16 peak from a table of datasheet values. CPU: ``$BAYESPLIT_CPU_PEAK_FLOPS``
    if set, else measured — the best fp32 1024×1024 matmul rate with this process's threads
    (a practical peak; a busy machine measures low and so inflates MFU).
    """
    if device_type == "cuda":
        for key, value in GPU_PEAK_BF16:
            if key in device_name:
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
    """``git rev-parse HEAD`` of the source tree, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


# -- checkpoints ---------------------------------------------------------------------------
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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint (tensors and plain Python data only: ``weights_only=True``)."""
    p = Path(path)
    if not p.is_file():
        raise BayesplitError(f"no such checkpoint: {p}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise BayesplitError(f"cannot read checkpoint {p}: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != CKPT_FORMAT:
        raise BayesplitError(f"{p} is not a bayesplit checkpoint")
    return state


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


def ckpt_path(directory: Path, kind: str, step: int) -> Path:
    """Checkpoint file of ``kind`` (stable, decayed, spec) at ``step`` in ``directory``."""
    return directory / f"{kind}-{step:010d}.pt"


# -- the trainer: one model, its optimizer, and the loop -------------------------------------
class Trainer:
    """A model and its AdamW optimizer on a device, with the train and eval loops."""

    def __init__(self, cfg: GPTConfig, tc: TrainConfig, rt: Runtime, seed: int):
        self.cfg, self.tc, self.rt = cfg, tc, rt
        if tc.batch_size % rt.world:
            raise BayesplitError(
                f"batch_size {tc.batch_size} is not divisible by {rt.world} processes"
            )
        self.rows = tc.batch_size // rt.world
        self.micro = tc.micro_batch_size or self.rows
        if self.rows % self.micro:
            raise BayesplitError(
                f"{self.rows} rows per process are not divisible by micro_batch_size {self.micro}"
            )
        torch.manual_seed(seed)  # the initial weights depend on the seed only
        self.model = GPT(cfg).to(rt.device)
        matrices = [p for p in self.model.parameters() if p.dim() >= 2]
        gains = [p for p in self.model.parameters() if p.dim() < 2]
        self.opt = torch.optim.AdamW(
            [
                {"params": matrices, "weight_decay": tc.weight_decay},
                {"params": gains, "weight_decay": 0.0},
            ],
            lr=tc.lr,
            betas=(tc.beta1, tc.beta2),
            fused=rt.cuda,
        )
        net: torch.nn.Module = self.model
        if rt.world > 1:
            net = DDP(net, device_ids=[rt.device.index] if rt.cuda else None)
        self.net = torch.compile(net) if rt.compile else net
        self.tokens_per_step = tc.batch_size * cfg.seq_len
        self.flops_per_token = flops_per_token(cfg)

    # state -----------------------------------------------------------------------------
    def load(self, state: dict) -> None:
        """Restore model, optimizer and RNG state from a checkpoint dict."""
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])

    def save(self, path: Path, meta: dict) -> None:
        """Write a checkpoint atomically (rank 0), then sync every rank."""
        if self.rt.main:
            save_checkpoint(path, self.model, self.opt, meta)
        self.rt.barrier()  # other ranks may load it next

    # loops -----------------------------------------------------------------------------
    def train(
        self,
        sampler: BatchSampler,
        schedule: WSD,
        start: int,
        end: int,
        *,
        on_step=None,
        progress=None,
    ) -> tuple[list[float], float]:
        """Steps ``start .. end-1``; returns this rank's train losses and the seconds spent.

        ``on_step(step, losses, seconds)`` runs after every step (``step`` = steps done so far,
        ``losses`` this call's loss tensors, ``seconds`` its train time so far) and may save a
        checkpoint; its time is not counted as training time.
        """
        self.net.train()
        n_micro = self.rows // self.micro
        losses: list[torch.Tensor] = []
        seconds = 0.0
        for step in range(start, end):
            t0 = time.perf_counter()
            lr = schedule(step)
            for g in self.opt.param_groups:
                g["lr"] = lr
            buf = torch.from_numpy(sampler.batch(step, self.rt.rank, self.rt.world))
            buf = buf.to(self.rt.device, non_blocking=True)
            total = torch.zeros((), device=self.rt.device)
            for i in range(n_micro):
                chunk = buf[i * self.micro : (i + 1) * self.micro]
                # DDP: all-reduce gradients only on the last micro-batch
                sync = self.rt.world == 1 or i == n_micro - 1
                ctx = contextlib.nullcontext() if sync else self.net.no_sync()
                with ctx, self.rt.autocast():
                    _, loss = self.net(chunk[:, :-1], chunk[:, 1:])
                    loss = loss / n_micro
                loss.backward()
                total += loss.detach()
            if self.tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tc.grad_clip)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            losses.append(total)
            if self.rt.cuda:
                torch.cuda.synchronize()
            seconds += time.perf_counter() - t0
            if progress is not None:
                progress(1, losses)
            if on_step is not None:
                on_step(step + 1, losses, seconds)
        return [float(x) for x in torch.stack(losses).cpu()] if losses else [], seconds

    @torch.no_grad()
    def evaluate(self, corpus: CorpusData, max_tokens: int) -> dict[str, tuple[float, int]]:
        """Mean val cross-entropy (nats/token) and tokens evaluated, per domain."""
        self.model.eval()
        out = {}
        for d in corpus.domains:
            windows = eval_windows(corpus.tokens(d, "val"), self.cfg.seq_len, max_tokens)
            mine = torch.from_numpy(windows[self.rt.rank :: self.rt.world])
            acc = torch.zeros(2, dtype=torch.float64, device=self.rt.device)
            for i in range(0, len(mine), self.tc.eval_batch_size):
                chunk = mine[i : i + self.tc.eval_batch_size].to(self.rt.device)
                with self.rt.autocast():
                    logits, _ = self.model(chunk[:, :-1])
                loss = F.cross_entropy(
                    logits.float().reshape(-1, logits.size(-1)),
                    chunk[:, 1:].reshape(-1),
                    reduction="sum",
                )
                tokens = torch.tensor(chunk[:, 1:].numel(), dtype=torch.float64, device=acc.device)
                acc += torch.stack([loss.double(), tokens])
            if self.rt.world > 1:
                dist.all_reduce(acc)
            out[d] = (float(acc[0] / acc[1]), int(acc[1]))
        self.model.train()
        return out

    def mfu(self, tokens_per_s: float) -> tuple[float | None, float | None, str]:
        """(MFU, peak FLOP/s, where the peak comes from) at ``tokens_per_s``."""
        name = torch.cuda.get_device_name(self.rt.device) if self.rt.cuda else ""
        peak, source = peak_flops(self.rt.device.type, name)
        if peak is None or not math.isfinite(tokens_per_s):
            return None, peak, source
        return self.flops_per_token * tokens_per_s / (peak * self.rt.world), peak, source


def _progress(enabled: bool, total: int, label: str):
    """A rich progress bar on stderr; yields ``advance(n, losses)`` (or None when disabled)."""
    if not enabled or total <= 0:
        return contextlib.nullcontext(None)

    @contextlib.contextmanager
    def bar():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            "{task.fields[loss]}",
            console=Console(stderr=True),
            transient=False,
        ) as prog:
            task = prog.add_task(label, total=total, loss="")

            def advance(n, losses):
                # reading the loss forces a device sync: only every 10 steps
                shown = f"loss {float(losses[-1]):.3f}" if len(losses) % 10 == 0 else None
                prog.update(task, advance=n, **({"loss": shown} if shown else {}))

            yield advance

    return bar()


# -- trunks ----------------------------------------------------------------------------------
def general_streams(corpus: CorpusData, tc: TrainConfig, rows: int, name: str) -> list[Stream]:
    """Batch streams of the general mixture (domains weighted by tokens or ``tc.weights``)."""
    weights = tc.weights or {d: corpus.n_tokens(d, "train") for d in corpus.domains}
    for d in weights:
        corpus.check_domain(d)
    doms = tuple(d for d in corpus.domains if weights.get(d, 0) > 0)
    if not doms:
        raise BayesplitError("the general mixture has no domain with positive weight")
    return [Stream(name, doms, tuple(float(weights[d]) for d in doms), rows)]


def model_config(entry: dict[str, Any], corpus: CorpusData) -> GPTConfig:
    """The ladder entry's shape with the corpus's vocabulary."""
    return GPTConfig.from_dict({**entry, "vocab_size": corpus.vocab_size})


def trunk_id_for(entry: dict, cfg: GPTConfig, tc: TrainConfig, seed: int, corpus: CorpusData):
    """Stable id of a trunk: model, training settings, seed and corpus hash."""
    h = config_hash(cfg.to_dict(), tc.trunk_identity(), seed, corpus.content_sha256)
    return f"{entry['name']}-s{seed}-{h[:8]}"


@dataclass
class TrunkPlan:
    """Step arithmetic of a trunk: which stable checkpoints it needs, which general rows it makes."""

    tokens_per_step: int
    cooldown_fraction: float
    eval_at: list[int] = field(default_factory=list)  # general rows, in steps (decay included)
    save_at: list[int] = field(default_factory=list)  # stable checkpoints for branching, in steps

    def decay_steps(self, n: int) -> int:
        """Steps of the short decay that turns the checkpoint at ``d`` into a general model."""
        return min(n, max(1, round(self.cooldown_fraction * n)))


def pretrain(
    corpus: str | Path | CorpusData,
    entry: dict[str, Any],
    *,
    workdir: str | Path,
    eval_at: list[float] = (),
    save_at: list[float] = (),
    seed: int = 0,
    store: Any = None,
    train: TrainConfig | None = None,
    trunk_id: str | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Train (or reuse, or extend) a trunk and write a general-model row set at every ``eval_at``.

    Parameters
    ----------
    corpus
        Corpus directory (or an opened one).
    entry
        A ladder entry (see :func:`bayesplit.train.ladder.load_ladder`).
    workdir
        Checkpoints go to ``workdir/trunks/<trunk_id>/``.
    eval_at
        Pretraining token counts D at which to produce a general model (short decay off the
        trunk, see the module docstring) evaluated on every domain.
    save_at
        Token counts at which to keep a stable (undecayed) checkpoint to branch from.
    seed
        Seed of the initial weights and of the data order.
    store
        A :class:`bayesplit.store.RunStore` (or a path) for the rows; None = do not write.
        Rows already in the store are not recomputed.
    train
        Training settings; default from the ladder entry.
    trunk_id
        Name of the trunk; default ``<model>-s<seed>-<hash of config, settings, corpus>``.
    progress
        Show progress bars on stderr.

    Returns
    -------
    pandas.DataFrame
        The rows written (one per eval domain and D).
    """
    corpus = corpus if isinstance(corpus, CorpusData) else open_corpus(corpus)
    tc = train or TrainConfig.from_entry(entry)
    cfg = model_config(entry, corpus)
    store = _open_store(store)
    trunk_id = trunk_id or trunk_id_for(entry, cfg, tc, seed, corpus)
    tps = tc.batch_size * cfg.seq_len
    plan = TrunkPlan(
        tps,
        tc.cooldown_fraction,
        sorted({steps_for(d, tps) for d in eval_at}),
        sorted({steps_for(d, tps) for d in save_at}),
    )
    done = _existing_keys(store, trunk_id)
    todo_eval = [n for n in plan.eval_at if (n * tps) not in done]
    trunk_dir = Path(workdir) / "trunks" / trunk_id
    _check_trunk_meta(trunk_dir, entry, cfg, tc, seed, corpus, trunk_id)
    needed = sorted({n - plan.decay_steps(n) for n in todo_eval} | set(plan.save_at))
    if not todo_eval and all(s in list_checkpoints(trunk_dir)["stable"] for s in needed):
        return pd.DataFrame()  # nothing to train: checkpoints and rows are all there
    rt = make_runtime(tc)
    tr = Trainer(cfg, tc, rt, seed)
    sampler = BatchSampler(
        corpus, general_streams(corpus, tc, tc.batch_size, "general"), cfg.seq_len, seed
    )
    trunk_schedule = WSD(peak_lr=tc.lr, warmup_steps=tc.warmup_steps)
    meta_base = {
        "kind": "trunk",
        "trunk_id": trunk_id,
        "model": entry["name"],
        "model_config": cfg.to_dict(),
        "train_config": _jsonable(asdict(tc)),
        "seed": seed,
        "corpus_sha256": corpus.content_sha256,
        "tokens_per_step": tps,
        "schedule": trunk_schedule.to_dict(),
    }
    _advance_trunk(tr, sampler, trunk_schedule, trunk_dir, needed, meta_base, progress)

    rows = []
    for n in todo_eval:
        k = plan.decay_steps(n)
        state = load_checkpoint(ckpt_path(trunk_dir, "stable", n - k))
        tr.load(state)
        t0 = time.perf_counter()
        sched = cooldown(trunk_schedule, n - k, k, tc.decay_shape)
        with _progress(progress and rt.main, k, f"{trunk_id} decay to D={n * tps:,}") as bar:
            _, secs = tr.train(sampler, sched, n - k, n, progress=bar)
        losses = tr.evaluate(corpus, tc.eval_tokens)
        meta = state["meta"]
        train_s = meta["train_time_s"] + secs
        wall = meta["wall_time_s"] + time.perf_counter() - t0
        rows += _rows(
            tr,
            losses,
            entry=entry,
            run_id=trunk_id,
            trunk_id=trunk_id,
            seed=seed,
            pretrain_tokens=n * tps,
            spec_tokens=0,
            train_domain=None,
            step=n * tps,
            wall_time_s=wall,
            tokens_per_s=n * tps / train_s if train_s > 0 else math.nan,
            schedule=f"wsd+cooldown:{tc.cooldown_fraction:g}:{tc.decay_shape}",
            corpus=corpus,
            extra={"stable_tokens": (n - k) * tps, "decay_tokens": k * tps},
        )
    return _write(store, rows, rt)


def _advance_trunk(
    tr: Trainer,
    sampler: BatchSampler,
    schedule: WSD,
    trunk_dir: Path,
    needed: list[int],
    meta_base: dict,
    progress: bool,
) -> None:
    """Make a stable checkpoint exist at every needed step, training as little as possible.

    Each missing checkpoint is reached from the furthest checkpoint at or before it (or from
    the initial weights), continuing in memory when the trainer is already on the way.
    ``tr`` must hold freshly initialized weights on entry.
    """
    missing = [s for s in needed if s not in list_checkpoints(trunk_dir)["stable"]]
    if not missing:
        return
    pos: int | None = None  # the step the in-memory model is at
    history: list[float] = []  # train losses of steps 0 .. pos-1
    train_s = wall_s = 0.0

    def start_for(m: int) -> tuple[int, Path | None]:
        have = list_checkpoints(trunk_dir)
        avail = {**have["periodic"], **have["stable"]}
        s = max((s for s in avail if s <= m), default=0)
        return s, avail.get(s)

    first, _ = start_for(missing[0])
    label = f"trunk {meta_base['trunk_id']}"
    with _progress(progress and tr.rt.main, missing[-1] - first, label) as bar:
        for m in missing:
            if ckpt_path(trunk_dir, "stable", m).exists():
                continue  # saved on the way to an earlier one
            start, path = start_for(m)
            if pos is None or not (start <= pos <= m):
                if path is not None:
                    state = load_checkpoint(path)
                    tr.load(state)
                    meta = state["meta"]
                    history = list(meta["train_losses"])[:start]
                    train_s, wall_s = meta["train_time_s"], meta["wall_time_s"]
                elif pos is not None:  # cannot happen: we only move forward from step 0
                    raise RuntimeError("trunk would need to restart from its initial weights")
                pos = start
            if pos == m:  # the checkpoint is the start point itself (a branch at step 0)
                meta = {**meta_base, "step": m, "tokens": m * tr.tokens_per_step}
                meta |= {"train_losses": history, "train_time_s": train_s, "wall_time_s": wall_s}
                tr.save(ckpt_path(trunk_dir, "stable", m), meta)
                continue
            seg = _Segment(tr, trunk_dir, needed, meta_base, m, history, train_s, wall_s)
            losses, secs = tr.train(sampler, schedule, pos, m, on_step=seg.on_step, progress=bar)
            history = history + losses
            train_s, wall_s = train_s + secs, wall_s + time.perf_counter() - seg.t0
            pos = m


@dataclass
class _Segment:
    """Checkpointing of one stretch of a trunk: stable checkpoints where needed, else periodic."""

    tr: Trainer
    trunk_dir: Path
    needed: list[int]
    meta_base: dict
    end: int
    history: list[float]
    train_s: float
    wall_s: float
    t0: float = field(default_factory=time.perf_counter)
    to_save: frozenset = frozenset()

    def __post_init__(self) -> None:
        # Decided once, before any rank trains: every save ends in a barrier, so all ranks
        # must agree on which steps save. Asking the file system at each step races with
        # rank 0 writing the file, and a rank that sees it early skips the barrier (hang).
        self.to_save = frozenset(
            s
            for s in self.needed
            if s <= self.end and not ckpt_path(self.trunk_dir, "stable", s).exists()
        )

    def meta(self, step: int, losses: list, secs: float) -> dict:
        return {
            **self.meta_base,
            "step": step,
            "tokens": step * self.tr.tokens_per_step,
            "train_losses": self.history + [float(x) for x in losses],
            "train_time_s": self.train_s + secs,
            "wall_time_s": self.wall_s + time.perf_counter() - self.t0,
        }

    def on_step(self, step: int, losses: list, secs: float) -> None:
        if step in self.to_save:
            self.tr.save(ckpt_path(self.trunk_dir, "stable", step), self.meta(step, losses, secs))
        elif self.tr.tc.checkpoint_every and step % self.tr.tc.checkpoint_every == 0:
            _save_periodic(self.tr, self.trunk_dir, step, self.meta(step, losses, secs))


def _save_periodic(tr: Trainer, directory: Path, step: int, meta: dict) -> None:
    """Write the newest resume checkpoint, then drop the older ones."""
    if tr.rt.main:
        old = list_checkpoints(directory)["periodic"]
        save_checkpoint(ckpt_path(directory, "periodic", step), tr.model, tr.opt, meta)
        for s, p in old.items():
            if s != step:
                p.unlink(missing_ok=True)
    # after the old ones are gone, so no rank lists a checkpoint that is being deleted
    tr.rt.barrier()


def _check_trunk_meta(trunk_dir, entry, cfg, tc, seed, corpus, trunk_id) -> None:
    """Refuse to mix checkpoints of different configurations under one trunk id."""
    info = _jsonable(
        {
            "trunk_id": trunk_id,
            "model": entry["name"],
            "model_config": cfg.to_dict(),
            "train": tc.trunk_identity(),
            "seed": seed,
            "corpus_sha256": corpus.content_sha256,
        }
    )
    f = trunk_dir / "trunk.json"
    if f.exists():
        if json.loads(f.read_text()) != info:
            raise BayesplitError(
                f"{trunk_dir} holds a trunk with another configuration; use another workdir or trunk id"
            )
    elif int(os.environ.get("RANK", "0")) == 0:
        atomic_write_text(f, json.dumps(info, indent=2, sort_keys=True))


# -- specialization --------------------------------------------------------------------------
@dataclass(frozen=True)
class SpecConfig:
    """Settings of a specialization phase.

    Parameters
    ----------
    replay_fraction
        Share of every batch drawn from the general mixture (rounded to whole rows).
    warmup_fraction
        Re-warmup from zero, as a fraction of the phase.
    decay_fraction
        Final decay to zero, as a fraction of the phase.
    lr
        Peak rate; None = the trunk's peak rate.
    decay_shape
        ``"linear"``, ``"1-sqrt"`` or ``"cosine"``.
    """

    replay_fraction: float = 0.0
    warmup_fraction: float = 0.0
    decay_fraction: float = 0.2
    lr: float | None = None
    decay_shape: str = "linear"

    def __post_init__(self) -> None:
        if not 0 <= self.replay_fraction < 1:
            raise BayesplitError(f"replay fraction must be in [0, 1), got {self.replay_fraction}")


def spec_run_id(trunk_id: str, d_tokens: int, domain: str, dp_tokens: int, sc: SpecConfig) -> str:
    """Run id of a specialist: its trunk, D, domain, D' and a hash of its settings."""
    return f"{trunk_id}.D{d_tokens}.{domain}.S{dp_tokens}.{config_hash(asdict(sc))[:6]}"


def specialize(
    corpus: str | Path | CorpusData,
    checkpoint: str | Path,
    domain: str,
    spec_tokens: float,
    *,
    spec: SpecConfig = SpecConfig(),
    store: Any = None,
    workdir: str | Path | None = None,
    seed: int | None = None,
    train: TrainConfig | None = None,
    train_overrides: dict[str, Any] | None = None,
    entry: dict[str, Any] | None = None,
    run_id: str | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Continue a stable trunk checkpoint on one domain for D' tokens; evaluate every domain.

    Parameters
    ----------
    corpus
        The corpus the trunk was trained on.
    checkpoint
        A stable trunk checkpoint (``trunks/<id>/stable-<step>.pt``); it carries the model
        shape, settings, seed and D.
    domain
        Domain k to specialize on.
    spec_tokens
        Requested D' (rounded to whole steps; the row records the exact count).
    spec
        Replay fraction, re-warmup, decay and learning rate of the phase.
    store
        Run store for the rows (skipped if they are already there); None = do not write.
    workdir
        Where periodic resume checkpoints go (``workdir/runs/<run_id>/``); None = none.
    seed
        Data-order seed; default the trunk's.
    train
        Settings (device, eval tokens, ...); default the trunk's.
    train_overrides
        Fields of the trunk's settings to change (e.g. ``device``, ``eval_tokens``).
    entry
        The ladder entry (for the model name); default from the checkpoint.
    run_id
        Default :func:`spec_run_id`.
    progress
        Progress bars on stderr.

    Returns
    -------
    pandas.DataFrame
        The rows written, one per eval domain.
    """
    corpus = corpus if isinstance(corpus, CorpusData) else open_corpus(corpus)
    corpus.check_domain(domain)
    state = load_checkpoint(checkpoint)
    meta = state["meta"]
    if meta.get("kind") != "trunk":
        raise BayesplitError(f"{checkpoint} is not a trunk checkpoint")
    if meta["corpus_sha256"] != corpus.content_sha256:
        raise BayesplitError(f"{checkpoint} was trained on another corpus")
    cfg = GPTConfig.from_dict(meta["model_config"])
    tc = train or TrainConfig(**{**meta["train_config"], **(train_overrides or {})})
    entry = entry or {"name": meta["model"]}
    seed = meta["seed"] if seed is None else int(seed)
    tps = tc.batch_size * cfg.seq_len
    d_tokens = int(meta["tokens"])
    n = steps_for(spec_tokens, tps)
    dp_tokens = n * tps
    trunk_id = meta["trunk_id"]
    run_id = run_id or spec_run_id(trunk_id, d_tokens, domain, dp_tokens, spec)
    store = _open_store(store)
    if _existing_keys(store, run_id):
        return pd.DataFrame()

    rt = make_runtime(tc)
    tr = Trainer(cfg, tc, rt, seed)
    tr.load(state)
    replay_rows = round(spec.replay_fraction * tc.batch_size)
    streams = [Stream(f"spec/{domain}", (domain,), (1.0,), tc.batch_size - replay_rows)]
    if replay_rows:
        streams += general_streams(corpus, tc, replay_rows, "spec-replay")
    sampler = BatchSampler(corpus, streams, cfg.seq_len, seed)
    sched = specialization(
        spec.lr or tc.lr,
        n,
        warmup_fraction=spec.warmup_fraction,
        decay_fraction=spec.decay_fraction,
        shape=spec.decay_shape,
    )
    run_dir = Path(workdir) / "runs" / run_id if workdir is not None else None
    start, train_s0, wall_s0 = 0, 0.0, 0.0
    if run_dir is not None and (periodic := list_checkpoints(run_dir)["periodic"]):
        start = max(periodic)
        resumed = load_checkpoint(periodic[start])
        tr.load(resumed)
        train_s0, wall_s0 = resumed["meta"]["train_time_s"], resumed["meta"]["wall_time_s"]
    t0 = time.perf_counter()

    def on_step(step: int, losses: list, secs: float) -> None:
        if run_dir is not None and tc.checkpoint_every and step % tc.checkpoint_every == 0:
            m = {
                "kind": "spec",
                "run_id": run_id,
                "step": step,
                "train_time_s": train_s0 + secs,
                "wall_time_s": wall_s0 + time.perf_counter() - t0,
            }
            _save_periodic(tr, run_dir, step, m)

    label = f"specialize {domain} D={d_tokens:,} D'={dp_tokens:,}"
    with _progress(progress and rt.main, n - start, label) as bar:
        _, secs = tr.train(sampler, sched, start, n, on_step=on_step, progress=bar)
    losses = tr.evaluate(corpus, tc.eval_tokens)
    train_s = train_s0 + secs
    rows = _rows(
        tr,
        losses,
        entry=entry,
        run_id=run_id,
        trunk_id=trunk_id,
        seed=seed,
        pretrain_tokens=d_tokens,
        spec_tokens=dp_tokens,
        train_domain=domain,
        step=d_tokens + dp_tokens,
        wall_time_s=wall_s0 + time.perf_counter() - t0,
        tokens_per_s=(n - start) * tps / secs if secs > 0 else math.nan,
        schedule=f"wsd-spec:warmup={spec.warmup_fraction:g}:decay={spec.decay_fraction:g}:{spec.decay_shape}",
        corpus=corpus,
        extra={
            "replay_fraction": replay_rows / tc.batch_size,
            "spec_domain_tokens": (tc.batch_size - replay_rows) * cfg.seq_len * n,
            "spec_lr": spec.lr or tc.lr,
            "trunk_wall_time_s": meta["wall_time_s"],
            "spec_train_time_s": train_s,
        },
    )
    out = _write(store, rows, rt)
    if run_dir is not None and rt.main:
        for p in list_checkpoints(run_dir)["periodic"].values():
            p.unlink(missing_ok=True)
    return out


# -- rows --------------------------------------------------------------------------------------
def _rows(
    tr: Trainer,
    losses: dict[str, tuple[float, int]],
    *,
    entry: dict,
    run_id: str,
    trunk_id: str,
    seed: int,
    pretrain_tokens: int,
    spec_tokens: int,
    train_domain: str | None,
    step: int,
    wall_time_s: float,
    tokens_per_s: float,
    schedule: str,
    corpus: CorpusData,
    extra: dict,
) -> list[dict]:
    mfu, peak, peak_source = tr.mfu(tokens_per_s)
    common = {
        "run_id": run_id,
        "seed": int(seed),
        "params": count_params(tr.cfg),
        "pretrain_tokens": int(pretrain_tokens),
        "spec_tokens": int(spec_tokens),
        "train_domain": train_domain,
        "step": int(step),
        "trunk_id": trunk_id,
        "schedule": schedule,
        "params_with_embeddings": count_params(tr.cfg, embeddings=True),
        "wall_time_s": float(wall_time_s),
        "tokens_per_s": float(tokens_per_s),
        "mfu": mfu,
        "peak_flops": peak,
        "peak_flops_source": peak_source,
        "config_hash": config_hash(tr.cfg.to_dict(), _jsonable(asdict(tr.tc))),
        "git_commit": git_commit(),
        "model": entry.get("name"),
        "replay_fraction": 0.0,
        "device": str(tr.rt.device.type),
        "dtype": tr.rt.dtype,
        "world_size": tr.rt.world,
        "batch_size": tr.tc.batch_size,
        "seq_len": tr.cfg.seq_len,
        "lr": tr.tc.lr,
        "vocab_size": tr.cfg.vocab_size,
        "corpus_sha256": corpus.content_sha256,
        **extra,
    }
    return [
        {**common, "eval_domain": d, "loss": loss, "eval_tokens": n}
        for d, (loss, n) in losses.items()
    ]


def _write(store, rows: list[dict], rt: Runtime) -> pd.DataFrame:
    """Append the rows (main rank only) and return them as a DataFrame."""
    df = pd.DataFrame(rows)
    if store is not None and rt.main and len(df):
        store.append(df)
    return df if rt.main else pd.DataFrame()


def _open_store(store):
    if store is None or hasattr(store, "append"):
        return store
    from bayesplit.store import RunStore

    return RunStore(store)


def _existing_keys(store, run_id: str) -> set[int]:
    """Steps of ``run_id`` already in the store (-1 for rows without a step)."""
    if store is None or len(store) == 0:
        return set()
    df = store.read()
    df = df[df["run_id"] == run_id]
    if "step" not in df:
        return {-1} if len(df) else set()
    return {int(s) if pd.notna(s) else -1 for s in df["step"]}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
