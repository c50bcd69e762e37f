"""Warmup–stable–decay (WSD) learning-rate schedules.

A trunk runs warmup then a constant rate with no end in sight: its learning rate at step t
does not depend on how long it will run, which is what makes a checkpoint at any D a valid
branch point and lets a trunk be extended later. A *branch* (the short decay that makes a
general model at D, or a specialization) starts from a trunk step with its own schedule.

Each decay step uses the rate at the midpoint of its interval, so a decay of n steps never
wastes a step at rate 0 and a 1-step decay still moves.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from bayesplit.errors import BayesplitError

DECAY_SHAPES = ("linear", "1-sqrt", "cosine")


def decay_factor(progress: float, shape: str = "linear") -> float:
    """Multiplier in [0, 1] at ``progress`` ∈ [0, 1] of a decay to zero."""
    p = min(max(progress, 0.0), 1.0)
    if shape == "linear":
        return 1.0 - p
    if shape == "1-sqrt":
        return 1.0 - math.sqrt(p)
    if shape == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    raise BayesplitError(f"unknown decay shape {shape!r} (use {', '.join(DECAY_SHAPES)})")


@dataclass(frozen=True)
class WSD:
    """Learning rate of step ``t`` (0-based, counted from the start of this phase).

    Parameters
    ----------
    peak_lr
        Rate of the stable phase.
    warmup_steps
        Linear warmup from ``peak_lr / warmup_steps`` to ``peak_lr``.
    decay_start
        First step of the decay; ``None`` means stable forever (a trunk).
    decay_steps
        Length of the decay to zero.
    shape
        ``"linear"``, ``"1-sqrt"`` or ``"cosine"``.
    start_lr
        Rate the decay starts from; ``None`` means the rate the warmup–stable part has at
        ``decay_start`` (lower than ``peak_lr`` when a branch point falls in the warmup).
    """

    peak_lr: float
    warmup_steps: int = 0
    decay_start: int | None = None
    decay_steps: int = 0
    shape: str = "linear"
    start_lr: float | None = None

    def __post_init__(self) -> None:
        decay_factor(0.0, self.shape)  # validates the shape
        if self.peak_lr <= 0 or self.warmup_steps < 0 or self.decay_steps < 0:
            raise BayesplitError("a schedule needs peak_lr > 0 and non-negative step counts")

    def stable_lr(self, t: int) -> float:
        """Rate of the warmup–stable part at ``step`` (no decay)."""
        if t < self.warmup_steps:
            return self.peak_lr * (t + 1) / self.warmup_steps
        return self.peak_lr

    def __call__(self, t: int) -> float:
        if self.decay_start is None or t < self.decay_start:
            return self.stable_lr(t)
        base = self.start_lr if self.start_lr is not None else self.stable_lr(self.decay_start)
        progress = (t - self.decay_start + 0.5) / max(self.decay_steps, 1)
        return base * decay_factor(progress, self.shape)

    def to_dict(self) -> dict:
        """The schedule's settings as a plain dict."""
        return asdict(self)


def cooldown(trunk: WSD, branch_step: int, decay_steps: int, shape: str = "linear") -> WSD:
    """The decay that turns trunk step ``branch_step`` into a finished model.

    Step numbers of the returned schedule stay on the trunk's clock, so the cooldown's
    step ``branch_step + i`` also reads the trunk's data batch ``branch_step + i``.
    """
    return WSD(
        peak_lr=trunk.peak_lr,
        warmup_steps=trunk.warmup_steps,
        decay_start=branch_step,
        decay_steps=decay_steps,
        shape=shape,
        start_lr=trunk.stable_lr(branch_step),
    )


def specialization(
    peak_lr: float,
    steps: int,
    *,
    warmup_fraction: float = 0.0,
    decay_fraction: float = 0.2,
    shape: str = "linear",
) -> WSD:
    """Schedule of a specialization phase of ``steps`` steps: re-warmup, stable, decay to zero."""
    if not (0 <= warmup_fraction <= 1 and 0 <= decay_fraction <= 1):
        raise BayesplitError("warmup and decay fractions must be in [0, 1]")
    if warmup_fraction + decay_fraction > 1:
        raise BayesplitError("re-warmup + decay fractions exceed the specialization length")
    n_decay = max(1, round(decay_fraction * steps)) if decay_fraction > 0 else 0
    # fractions that fit can overlap in whole steps (0.5 + 0.5 of 3 steps rounds to 2 + 2):
    # the warmup ends where the decay starts, or the rate jumps back to the peak mid-warmup
    warmup_steps = min(round(warmup_fraction * steps), steps - n_decay)
    return WSD(
        peak_lr=peak_lr,
        warmup_steps=warmup_steps,
        decay_start=steps - n_decay,
        decay_steps=n_decay,
        shape=shape,
        start_lr=peak_lr,
    )
