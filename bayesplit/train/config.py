"""Model shape, training settings, parameter counts and FLOPs per token, in pure Python (no torch).

The Bayesian side reads N from a model ladder without importing torch, so the counts
live here and :mod:`bayesplit.train.model` checks them against the real module.

**Convention.** ``params`` (N, the scaling-law variable) is the number of
*non-embedding* parameters: every weight except the token embedding matrix. The output
head is tied to the embedding, so it adds nothing; RMSNorm gains are counted. The
with-embeddings count adds ``vocab_size * d_model``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from bayesplit.errors import BayesplitError

MLP_KINDS = ("swiglu", "gelu")


@dataclass(frozen=True)
class GPTConfig:
    """Shape of a decoder-only GPT (RoPE, RMSNorm, SwiGLU/GELU MLP, tied embeddings, no biases).

    Parameters
    ----------
    vocab_size, seq_len
        Token vocabulary and context length.
    n_layer, n_head, d_model, d_ff
        Depth, attention heads, width and MLP hidden width (per branch for SwiGLU).
    mlp
        ``"swiglu"`` (gate, up and down projections) or ``"gelu"`` (up and down).
    """

    vocab_size: int
    seq_len: int
    n_layer: int
    n_head: int
    d_model: int
    d_ff: int
    mlp: str = "swiglu"

    def __post_init__(self) -> None:
        for f in ("vocab_size", "seq_len", "n_layer", "n_head", "d_model", "d_ff"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise BayesplitError(f"model {f} must be a positive integer, got {v!r}")
        if self.d_model % self.n_head:
            raise BayesplitError(
                f"d_model ({self.d_model}) must be a multiple of n_head ({self.n_head})"
            )
        if (self.d_model // self.n_head) % 2:
            raise BayesplitError("RoPE needs an even head dimension (d_model / n_head)")
        if self.mlp not in MLP_KINDS:
            raise BayesplitError(f"mlp must be one of {', '.join(MLP_KINDS)}, got {self.mlp!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GPTConfig:
        """Build from a mapping, ignoring keys that are not model fields (ladder extras)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        """The model shape as a plain dict."""
        return asdict(self)


def count_params(config: GPTConfig, embeddings: bool = False) -> int:
    """Number of trainable parameters, computed from the shape.

    Parameters
    ----------
    config
        The model shape.
    embeddings
        If False (the scaling-law N), leave out the token embedding matrix; the tied output
        head shares it and adds nothing either way.

    Examples
    --------
    >>> c = GPTConfig(vocab_size=100, seq_len=16, n_layer=2, n_head=2, d_model=8, d_ff=16)
    >>> count_params(c)  # 2 * (4*8*8 + 3*8*16 + 2*8) + 8
    1320
    >>> count_params(c, embeddings=True) - count_params(c)
    800
    """
    d = config.d_model
    attn = 4 * d * d  # q, k, v and output projections
    mlp = (3 if config.mlp == "swiglu" else 2) * d * config.d_ff
    norms = 2 * d  # one RMSNorm gain before attention, one before the MLP
    n = config.n_layer * (attn + mlp + norms) + d  # + the final RMSNorm
    return n + (config.vocab_size * d if embeddings else 0)


def flops_per_token(config: GPTConfig) -> float:
    """Training FLOPs per token (forward + backward), for MFU.

    ``6·N_emb + 12·n_layer·d_model·seq_len`` (the PaLM appendix B formula). N here counts
    the embedding matrix because the tied output head is a real ``d_model × vocab`` matmul
    (as nanoGPT's ``estimate_mfu`` does); the embedding lookup itself is free. The
    scaling-law compute ``C = 6·N·D`` keeps non-embedding N.
    """
    n = count_params(config, embeddings=True)
    return 6.0 * n + 12.0 * config.n_layer * config.d_model * config.seq_len


def config_hash(*parts: Any, length: int = 12) -> str:
    """Short, stable hash of JSON-able values (dict key order does not matter)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


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
        """The settings that change a trunk's trajectory (its id hashes these).

        The mixture as it is drawn: a domain of weight 0 is never drawn, and one domain
        alone is drawn whatever its weight, so ``code=1``, ``code=2`` and
        ``code=1,web=0`` are one trunk (they were three, trained alike).
        """
        keep = ("batch_size", "lr", "warmup_steps", "weight_decay", "beta1", "beta2", "grad_clip")
        return {k: getattr(self, k) for k in keep} | {"weights": drawn_mixture(self.weights)}


def drawn_mixture(weights: dict[str, float] | None) -> dict[str, float] | None:
    """The domains of a mixture that are drawn, with their weights (1 for a domain alone)."""
    if weights is None:
        return None
    drawn = {d: w for d, w in weights.items() if float(w) > 0}
    return {d: 1.0 for d in drawn} if len(drawn) == 1 else drawn


def steps_for(tokens: float, tokens_per_step: int) -> int:
    """Optimizer steps for a requested token count: the nearest whole step, at least one."""
    return max(1, int(round(float(tokens) / tokens_per_step)))


#: Largest token count a run may ask for: 2^53 (about 9.0e15, hundreds of times the largest
#: published training runs). Up to it every whole count is exact as a float (the run table
#: stores counts as floats), and steps, tokens and ``D + D'`` fit the store's 64-bit INTEGER
#: step column; past it a count is a typo that would train for ever.
MAX_TOKENS = 2**53


def exact_steps(
    tokens: float,
    tokens_per_step: int,
    what: str,
    *,
    kind: str = "a token count",
    model: str | None = None,
) -> int:
    """Optimizer steps for a requested token count, refused where they would misstate it.

    :func:`steps_for` trains at least one step, so a count under half a step would silently
    train a whole one (twice what was asked, or far more); and the run store refuses counts
    below ``MIN_PLAUSIBLE_COUNT``. Both are refused here, naming the smallest count that
    works, and so is a count above :data:`MAX_TOKENS`. ``what`` names the value in the
    message (``--branch-at``, ``D'``, ...).
    """
    from bayesplit.runs import MIN_PLAUSIBLE_COUNT

    x = float(tokens)
    of = f" of {model}" if model else ""
    most = MAX_TOKENS // tokens_per_step
    steps = round(x / tokens_per_step) if math.isfinite(x) else 0
    if x > MAX_TOKENS or steps > most:  # inf too
        raise BayesplitError(
            f"{what} {x:g} is more than a run may train: token counts go up to 2^53 = "
            f"{MAX_TOKENS:.4g} ({most:,} optimizer steps{of}), past which a count is not "
            "exact as a float and the run would not finish"
        )
    if steps < 1 or steps * tokens_per_step < MIN_PLAUSIBLE_COUNT:
        smallest = max(1, math.ceil(MIN_PLAUSIBLE_COUNT / tokens_per_step)) * tokens_per_step
        raise BayesplitError(
            f"{what} {x:g} is {x / tokens_per_step:.3g} optimizer steps{of} "
            f"({tokens_per_step:,} tokens each); {kind} is whole steps and at least "
            f"{MIN_PLAUSIBLE_COUNT:g} tokens, so the smallest is {smallest:,}"
        )
    return int(steps)
