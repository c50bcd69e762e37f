"""The training loop: one GPT, its AdamW optimizer, train steps, evaluation and MFU.

A step consumes exactly ``batch_size × seq_len`` tokens (``batch_size`` is global across
DDP ranks, split into ``micro_batch_size`` rows per forward pass). What a run trains on and
where it branches is decided by :mod:`bayesplit.train.trunk` (pretraining) and
:mod:`bayesplit.train.specialist` (specialization); this module only steps.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from bayesplit.errors import BayesplitError
from bayesplit.train.checkpoint import ckpt_path, list_checkpoints, save_checkpoint
from bayesplit.train.config import GPTConfig, TrainConfig, flops_per_token
from bayesplit.train.corpus import Corpus
from bayesplit.train.data import BatchSampler, check_token_ids, eval_windows
from bayesplit.train.model import GPT
from bayesplit.train.runtime import Runtime, peak_flops
from bayesplit.train.schedule import WSD


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
        #: the run a divergence error names (set by the caller), and the steps the weights
        #: in memory have taken on the current run's clock
        self.run_id: str | None = None
        self.step = 0
        # losses of the train call under way, and how many of them are known to be finite
        self._live: tuple[int, list[torch.Tensor]] | None = None
        self._checked = 0

    # state -----------------------------------------------------------------------------
    def load(self, state: dict, source: str | Path | None = None) -> None:
        """Restore model, optimizer and RNG state from a checkpoint dict.

        A checkpoint whose weights are not finite (a diverged run, saved before the trainer
        checked) is refused: training on from it would only give NaN losses.
        """
        if not finite_weights(state):
            where = f"checkpoint {source}" if source is not None else "the checkpoint"
            raise BayesplitError(
                f"{where} holds weights that are not finite (a run that diverged): delete it, "
                "and lower the learning rate"
            )
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        # load_state_dict also restores the saved groups' settings: a specialist asked for
        # another weight decay or betas trained with its trunk's (the moments carry over)
        for group, decay in zip(self.opt.param_groups, (self.tc.weight_decay, 0.0), strict=True):
            group["weight_decay"] = decay
            group["betas"] = (self.tc.beta1, self.tc.beta2)
        torch.set_rng_state(state["rng"]["torch"])
        self.step = int(state.get("meta", {}).get("step", 0) or 0)

    def diverged(self, what: str) -> BayesplitError:
        """The error of a run whose loss or weights are no longer finite."""
        of = f" of run {self.run_id}" if self.run_id else ""
        return BayesplitError(f"training diverged: {what}{of}; lower the learning rate")

    def check_finite(self) -> None:
        """Refuse to go on (or to save) once the training has diverged.

        Checks the train losses of the call under way that were not checked yet (one
        device sync; under DDP every rank learns whether any rank saw a non-finite loss),
        then the weights. Called at every checkpoint and at the end of each train call, so
        a diverged state is never written where a rerun would resume from it.
        """
        if self._live is not None:
            start, losses = self._live
            if len(losses) > self._checked:
                recent = torch.stack(losses[self._checked :])
                bad = ~torch.isfinite(recent)
                flag = bad.any().to(torch.float32)
                if self.rt.world > 1:
                    dist.all_reduce(flag)
                if float(flag) > 0:
                    where = bad.nonzero()
                    if len(where):
                        i = int(where[0])
                        step = start + self._checked + i + 1
                        raise self.diverged(f"loss {float(recent[i])} at step {step}")
                    step = start + len(losses)
                    raise self.diverged(f"a loss on another process is not finite by step {step}")
                self._checked = len(losses)
        if not finite_weights({"model": self.model.state_dict()}):
            raise self.diverged(f"the weights are not finite after step {self.step}")

    def save(self, path: Path, meta: dict) -> None:
        """Write a checkpoint atomically (rank 0), then sync every rank."""
        self.check_finite()
        if self.rt.main:
            save_checkpoint(path, self.model, self.opt, meta)
        self.rt.barrier()  # other ranks may load it next

    def save_periodic(self, directory: Path, step: int, meta: dict) -> None:
        """Write the newest resume checkpoint, then drop the ones before it.

        One further along is kept: a trunk rerun that first makes an earlier branch point
        passes through here on its way, and resumes from that one afterwards (deleting it
        threw away every step past the earlier branch point).
        """
        self.check_finite()
        if self.rt.main:
            old = list_checkpoints(directory)["periodic"]
            save_checkpoint(ckpt_path(directory, "periodic", step), self.model, self.opt, meta)
            for s, p in old.items():
                if s < step:
                    p.unlink(missing_ok=True)
        # after the old ones are gone, so no rank lists a checkpoint that is being deleted
        self.rt.barrier()

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

        The losses are checked to be finite every ``checkpoint_every`` steps, before every
        checkpoint and at the end (see :meth:`check_finite`): a diverged run is a
        :class:`BayesplitError` naming the first non-finite step.
        """
        self.net.train()
        n_micro = self.rows // self.micro
        losses: list[torch.Tensor] = []
        self._live, self._checked = (start, losses), 0
        every = self.tc.checkpoint_every or 0
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
            self.step = step + 1
            if self.rt.cuda:
                torch.cuda.synchronize()
            seconds += time.perf_counter() - t0
            if progress is not None:
                progress(1, losses)
            if step + 1 == end or (every and (step + 1) % every == 0):
                self.check_finite()
            if on_step is not None:
                on_step(step + 1, losses, seconds)
        self._live = None
        return [float(x) for x in torch.stack(losses).cpu()] if losses else [], seconds

    @torch.no_grad()
    def evaluate(self, corpus: Corpus, max_tokens: int) -> dict[str, tuple[float, int]]:
        """Mean val cross-entropy (nats/token) and tokens evaluated, per domain."""
        self.model.eval()
        out = {}
        for d in corpus.domains:
            windows = eval_windows(corpus.tokens(d, "val"), self.cfg.seq_len, max_tokens, d)
            check_token_ids(windows, self.cfg.vocab_size, f"the {d} validation windows")
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
        from bayesplit.runs import MAX_PLAUSIBLE_LOSS

        for d, (loss, _) in out.items():  # the same on every rank: all-reduced
            if not math.isfinite(loss):
                raise self.diverged(f"validation loss {loss} on {d!r} after step {self.step}")
            if loss > MAX_PLAUSIBLE_LOSS:
                # finite but far above a uniform guess: the run store would refuse the row
                # (as a perplexity) after all the compute, in words meant for imported tables
                raise self.diverged(
                    f"validation loss {loss:.4g} nats/token on {d!r} after step {self.step}, "
                    f"above the run store's {MAX_PLAUSIBLE_LOSS:g} (a uniform guess over "
                    f"{self.cfg.vocab_size:,} tokens scores {math.log(self.cfg.vocab_size):.2f})"
                )
        return out

    def mfu(self, tokens_per_s: float) -> tuple[float | None, float | None, str]:
        """(MFU, peak FLOP/s, where the peak comes from) at ``tokens_per_s``."""
        name = torch.cuda.get_device_name(self.rt.device) if self.rt.cuda else ""
        peak, source = peak_flops(self.rt.device.type, name)
        if peak is None or not math.isfinite(tokens_per_s):
            return None, peak, source
        return self.flops_per_token * tokens_per_s / (peak * self.rt.world), peak, source


def finite_weights(state: dict) -> bool:
    """Whether every floating-point tensor of a checkpoint's (or a model's) weights is finite."""
    tensors = [t for t in state["model"].values() if torch.is_tensor(t) and t.is_floating_point()]
    if not tensors:
        return True
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


def progress_bar(enabled: bool, total: int, label: str):
    """A rich progress bar on stderr; yields ``advance(n, losses)`` (or None when disabled)."""
    if not enabled or total <= 0:
        return contextlib.nullcontext(None)

    @contextlib.contextmanager
    def bar():
        from rich.console import Console
        from rich.markup import escape
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
            task = prog.add_task(escape(label), total=total, loss="")

            def advance(n, losses):
                # reading the loss forces a device sync: only every 10 steps
                shown = f"loss {float(losses[-1]):.3f}" if len(losses) % 10 == 0 else None
                prog.update(task, advance=n, **({"loss": shown} if shown else {}))

            yield advance

    return bar()
