"""Model ladders: the sizes the trainer can build, read from ``models/*.yaml`` without torch.

A ladder file looks like::

    vocab_size: 8192        # default; a corpus with another vocabulary overrides it
    seq_len: 1024
    mlp: swiglu             # optional, default swiglu
    train: {warmup_steps: 200}   # optional defaults for every size (see TrainConfig)
    sizes:
      - {name: s10m, n_layer: 8, n_head: 5, d_model: 320, d_ff: 896,
         params: 10163520, params_with_embeddings: 12784960, batch_size: 64, lr: 1.5e-3}

``params`` is the non-embedding count N and must equal
:func:`bayesplit.train.config.count_params`; a file that disagrees is refused, so the N a
fit reads from the ladder is the N the trainer builds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from bayesplit.errors import BayesplitError
from bayesplit.train.config import GPTConfig, count_params

#: Where ``models/`` lives in a source checkout (the package is installed editable).
_REPO_MODELS = Path(__file__).resolve().parents[2] / "models"

_REQUIRED = ("name", "n_layer", "n_head", "d_model", "d_ff", "params", "batch_size", "lr")


def resolve_ladder(spec: str | Path | None) -> Path:
    """Find a ladder file: a path, a bare name (``cpu_ladder``) in ``models/``, or the default.

    ``None`` means ``models/ladder.yaml`` in the current directory, else in the source tree.
    """
    candidates: list[Path] = []
    if spec is None:
        candidates = [Path("models/ladder.yaml"), _REPO_MODELS / "ladder.yaml"]
    else:
        p = Path(spec)
        candidates = [p]
        if not p.suffix and p.parent == Path("."):
            candidates += [Path("models") / f"{p}.yaml", _REPO_MODELS / f"{p}.yaml"]
    for c in candidates:
        if c.is_file():
            return c
    raise BayesplitError(f"no such model ladder: {spec if spec is not None else candidates[0]}")


def load_ladder(path: str | Path | None = None) -> list[dict[str, Any]]:
    """Read and check a ladder file.

    Parameters
    ----------
    path
        A YAML ladder file, a bare ladder name in ``models/``, or None for the default.

    Returns
    -------
    list of dict
        One dict per size, smallest first, with the model shape (``vocab_size``, ``seq_len``
        and ``mlp`` filled from the file's defaults), ``params``,
        ``params_with_embeddings``, ``batch_size``, ``lr`` and ``train`` (per-size
        training defaults merged over the file's).
    """
    p = resolve_ladder(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise BayesplitError(f"{p}: not a YAML ladder (the file is not UTF-8 text)") from None
    except yaml.YAMLError as exc:
        raise BayesplitError(f"{p}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("sizes"), list) or not doc["sizes"]:
        raise BayesplitError(f"{p}: a ladder needs a non-empty 'sizes' list")
    base_train = doc.get("train") or {}
    entries: list[dict[str, Any]] = []
    for i, raw in enumerate(doc["sizes"]):
        if not isinstance(raw, dict):
            raise BayesplitError(f"{p}: size #{i + 1} is not a mapping")
        missing = [k for k in _REQUIRED if k not in raw]
        if missing:
            raise BayesplitError(f"{p}: size #{i + 1} lacks {', '.join(missing)}")
        e = dict(raw)
        e.setdefault("vocab_size", doc.get("vocab_size"))
        e.setdefault("seq_len", doc.get("seq_len"))
        e.setdefault("mlp", doc.get("mlp", "swiglu"))
        e["train"] = {**base_train, **(raw.get("train") or {})}
        cfg = GPTConfig.from_dict(e)  # validates the shape
        n = count_params(cfg)
        if int(e["params"]) != n:
            raise BayesplitError(
                f"{p}: size {e['name']!r} says params={e['params']} but its shape has {n} non-embedding parameters"
            )
        e["params_with_embeddings"] = count_params(cfg, embeddings=True)
        e["batch_size"] = int(e["batch_size"])
        e["lr"] = float(e["lr"])
        entries.append(e)
    names = [e["name"] for e in entries]
    if len(set(names)) != len(names):
        raise BayesplitError(f"{p}: duplicate size names")
    return sorted(entries, key=lambda e: e["params"])


def at_vocab(entry: dict[str, Any], vocab_size: int) -> dict[str, Any]:
    """A ladder entry as built with a corpus of ``vocab_size`` tokens.

    N (``params``) does not depend on the vocabulary; ``params_with_embeddings`` does, so a
    corpus whose vocabulary differs from the ladder's default moves it.
    """
    cfg = GPTConfig.from_dict({**entry, "vocab_size": int(vocab_size)})
    return {
        **entry,
        "vocab_size": int(vocab_size),
        "params_with_embeddings": count_params(cfg, embeddings=True),
    }


def find_model(
    entries: list[dict[str, Any]], name: str | None = None, params: float | None = None
) -> dict[str, Any]:
    """The ladder entry called ``name``, or else the one whose N is nearest ``params`` (in log)."""
    if name is not None:
        for e in entries:
            if e["name"] == name:
                return e
        raise BayesplitError(
            f"unknown model {name!r} (ladder sizes: {', '.join(e['name'] for e in entries)})"
        )
    if params is None or not (float(params) > 0):
        raise BayesplitError("need a model name or a positive params to pick a ladder size")
    return min(entries, key=lambda e: abs(math.log(e["params"] / float(params))))
