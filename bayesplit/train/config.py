"""Model shape, parameter counts and FLOPs per token, in pure Python (no torch).

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
