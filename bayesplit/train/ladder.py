"""Model ladders: the sizes the trainer can build, read from ``models/*.yaml`` without torch.

The bundled ladders ship inside the package (``bayesplit/ladders/``; ``models/`` in a source
checkout points there), so a bare name such as ``cpu_ladder``, or the documented
``models/ladder.yaml``, finds them from any directory and from a non-editable install.

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

Every value is checked when the file is read (an unknown key, a value that is not a number,
a count below 1, a learning rate <= 0, a fraction out of range), so a bad ladder is one
error naming the size and the field, before any command creates a store or trains a step.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from bayesplit._io import strict_yaml_loader
from bayesplit.errors import BayesplitError
from bayesplit.train.config import MLP_KINDS, GPTConfig, count_params
from bayesplit.train.schedule import DECAY_SHAPES

#: The bundled ladders (package data; the checkout's ``models/`` is a link to this folder).
BUNDLED_LADDERS = Path(__file__).resolve().parents[1] / "ladders"

_REQUIRED = ("name", "n_layer", "n_head", "d_model", "d_ff", "params", "batch_size", "lr")


# -- value checks: each returns the value normalized or raises _Invalid(why) ----------------
class _Invalid(Exception):
    """A value a field does not take; the reason reads after the field name."""


def _number(v: Any) -> float:
    # PyYAML reads ``6e-3`` (no dot) as a string, so numeric text counts as a number
    if isinstance(v, bool):
        raise _Invalid("must be a number")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            pass
    raise _Invalid("must be a number")


def _integer(v: Any, low: int) -> int:
    # a whole float (``3.2e4`` reads as 32000.0) is fine; True would pass as 1, so it is not
    why = _Invalid(f"must be an integer >= {low}")
    if isinstance(v, bool):
        raise why
    x = v if isinstance(v, int) else _number(v)
    if not (math.isfinite(x) and x == int(x) and x >= low):
        raise why
    return int(x)


def _positive_int(v: Any) -> int:
    return _integer(v, 1)


def _nonneg_int(v: Any) -> int:
    return _integer(v, 0)


def _rate(v: Any) -> float:
    x = _number(v)
    if not (math.isfinite(x) and x > 0):
        raise _Invalid("must be a finite number > 0")
    return x


def _nonneg(v: Any) -> float:
    x = _number(v)
    if not (math.isfinite(x) and x >= 0):
        raise _Invalid("must be a finite number >= 0")
    return x


def _fraction(v: Any) -> float:
    # cooldown and AdamW betas: 1 would be a decay over the whole run or a frozen moment
    x = _number(v)
    if not (math.isfinite(x) and 0 <= x < 1):
        raise _Invalid("must be a fraction in [0, 1)")
    return x


def _one_of(choices: tuple[str, ...]):
    def check(v: Any) -> str:
        if v not in choices:
            raise _Invalid(f"must be one of {', '.join(choices)}")
        return v

    return check


def _optional(check):
    """``check``, or None (YAML ``null``: the trainer's default)."""
    return lambda v: None if v is None else check(v)


def _as_is(v: Any) -> Any:
    """A value checked on its own (``sizes``, ``train``)."""
    return v


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Invalid("must be true or false")
    return v


#: A size's name: it is what --model matches, and it names a trunk's checkpoint folder and
#: the run ids in the store (a NUL failed after training, a newline went into a run id).
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")


def _name(v: Any) -> str:
    if not isinstance(v, str) or not _NAME.fullmatch(v):
        raise _Invalid(
            "must be 1-100 letters, digits, '.', '_' or '-', starting and ending with a "
            "letter or digit"
        )
    return v


def _weights(v: Any) -> dict[str, float]:
    # the same rule as --weights: finite, >= 0, not all zero (domains are checked at training)
    if not isinstance(v, dict) or not v:
        raise _Invalid("must be a mapping of domain: weight")
    out = {}
    for k, w in v.items():
        try:
            out[str(k)] = _nonneg(w)
        except _Invalid:
            raise _Invalid(f"of {k!r} must be a finite number >= 0") from None
    if not any(out.values()):
        raise _Invalid("are all zero; give at least one domain a weight > 0")
    return out


#: Keys a file may set at its top; the shape keys are defaults its sizes can override.
_TOP = {"vocab_size": _positive_int, "seq_len": _positive_int, "mlp": _one_of(MLP_KINDS)}

#: Keys of one size (``train`` is checked with :data:`_TRAIN`).
_SIZE = {
    "name": _name,
    "n_layer": _positive_int,
    "n_head": _positive_int,
    "d_model": _positive_int,
    "d_ff": _positive_int,
    "params": _positive_int,
    "params_with_embeddings": _positive_int,
    "batch_size": _positive_int,
    "lr": _rate,
    "micro_batch_size": _optional(_positive_int),
    **_TOP,
}

#: Keys of a ``train`` block, each with its check: the fields of
#: ``bayesplit.train.config.TrainConfig`` (a test keeps the two in step) but ``batch_size``
#: and ``lr``, which each size sets: a ``train`` copy would change the trainer's step but
#: not the ladder's.
_TRAIN = {
    "warmup_steps": _nonneg_int,
    "weight_decay": _nonneg,
    "beta1": _fraction,
    "beta2": _fraction,
    "grad_clip": _nonneg,  # 0 turns clipping off
    "micro_batch_size": _optional(_positive_int),
    "cooldown_fraction": _fraction,
    "decay_shape": _one_of(DECAY_SHAPES),
    "weights": _optional(_weights),
    "eval_tokens": _positive_int,
    "eval_batch_size": _positive_int,
    "checkpoint_every": _positive_int,
    "device": _one_of(("auto", "cpu", "cuda")),
    "compile": _optional(_flag),
}


def _checked(where: str, raw: dict, schema: dict, block: str = "") -> dict[str, Any]:
    """``raw`` with each value normalized by its check; an unknown key or bad value is refused.

    ``where`` locates the mapping in messages (file, size); ``block`` prefixes field names
    (``train.``). A typo'd key is refused rather than ignored: the trainer would silently
    use its default instead of the value the file meant to set.
    """
    out = dict(raw)
    for key, value in raw.items():
        if key not in schema:
            raise BayesplitError(
                f"{where}unknown key {block + str(key)!r} (allowed: {', '.join(schema)})"
            )
        try:
            out[key] = schema[key](value)
        except _Invalid as why:
            raise BayesplitError(f"{where}{block}{key} {why}, got {value!r}") from None
    return out


def _train_block(where: str, raw: Any) -> dict[str, Any]:
    """A ``train`` mapping (None or absent: empty), every setting checked."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BayesplitError(f"{where}train must be a mapping of training settings")
    for key in ("batch_size", "lr"):
        if key in raw:
            raise BayesplitError(f"{where}train.{key}: set {key} in each size, not in train")
    return _checked(where, raw, _TRAIN, block="train.")


def bundled_ladder_names() -> list[str]:
    """Names of the ladders shipped with bayesplit (``cpu_ladder``, ``ladder``, ...)."""
    return sorted(f.stem for f in BUNDLED_LADDERS.glob("*.yaml"))


def resolve_ladder(spec: str | Path | None) -> Path:
    """Find a ladder file: a path, a bare name (``cpu_ladder``) or the default.

    A bare name is looked up in ``./models/``, then among the bundled ladders; so is a
    ``models/NAME.yaml`` path that does not exist from the current directory, since that is
    how the docs name the bundled files. ``None`` means ``ladder.yaml`` found the same way.
    """
    p = Path("models/ladder.yaml") if spec is None else Path(spec)
    candidates = [p]
    if not p.suffix and p.parent == Path("."):
        candidates += [Path("models") / f"{p}.yaml", BUNDLED_LADDERS / f"{p}.yaml"]
    elif p.parent == Path("models"):
        candidates.append(BUNDLED_LADDERS / p.name)
    for c in candidates:
        if c.is_file():
            return c
    if p.is_dir():  # it exists, so "no such model ladder" would mislead
        raise BayesplitError(
            f"{p} is a folder, not a model ladder: give a ladder YAML file or the name of "
            "one in models/"
        )
    bundled = ", ".join(bundled_ladder_names())
    raise BayesplitError(
        f"no such model ladder: {p if spec is None else spec} (bundled: {bundled})"
    )


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
        # a key given twice is refused (PyYAML kept the later value silently)
        doc = yaml.load(p.read_text(encoding="utf-8"), Loader=strict_yaml_loader())
    except UnicodeDecodeError:
        raise BayesplitError(f"{p}: not a YAML ladder (the file is not UTF-8 text)") from None
    except yaml.YAMLError as exc:
        raise BayesplitError(f"{p}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("sizes"), list) or not doc["sizes"]:
        raise BayesplitError(f"{p}: a ladder needs a non-empty 'sizes' list")
    top = _checked(f"{p}: ", doc, {**_TOP, "train": _as_is, "sizes": _as_is})
    defaults = {k: top[k] for k in _TOP if k in top}
    base_train = _train_block(f"{p}: ", doc.get("train"))
    entries = [_size(p, i, raw, defaults, base_train) for i, raw in enumerate(doc["sizes"])]
    names = [e["name"] for e in entries]
    if len(set(names)) != len(names):
        raise BayesplitError(f"{p}: duplicate size names")
    return sorted(entries, key=lambda e: e["params"])


def _size(
    p: Path, i: int, raw: Any, defaults: dict[str, Any], base_train: dict[str, Any]
) -> dict[str, Any]:
    """One checked size, with the file's shape and training defaults filled in."""
    if not isinstance(raw, dict):
        raise BayesplitError(f"{p}: size #{i + 1} is not a mapping")
    # name the size in messages once its name is known to be usable
    label = f"size {raw['name']!r}" if isinstance(raw.get("name"), str) else f"size #{i + 1}"
    where = f"{p}: {label}: "
    e = _checked(where, raw, {**_SIZE, "train": _as_is})
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise BayesplitError(f"{p}: {label} lacks {', '.join(missing)}")
    for k in ("vocab_size", "seq_len"):
        if e.setdefault(k, defaults.get(k)) is None:
            raise BayesplitError(f"{where}no {k} (set it at the top of the file or in the size)")
    e.setdefault("mlp", defaults.get("mlp", "swiglu"))
    e["train"] = {**base_train, **_train_block(where, raw.get("train"))}
    try:
        cfg = GPTConfig.from_dict(e)  # the shape rules (heads divide d_model, RoPE) live there
    except BayesplitError as exc:
        raise BayesplitError(f"{where}{exc}") from None
    n = count_params(cfg)
    if e["params"] != n:
        raise BayesplitError(
            f"{p}: size {e['name']!r} says params={e['params']} but its shape has {n} non-embedding parameters"
        )
    with_emb = count_params(cfg, embeddings=True)
    if e.get("params_with_embeddings", with_emb) != with_emb:
        raise BayesplitError(
            f"{where}says params_with_embeddings={e['params_with_embeddings']} but its shape "
            f"has {with_emb} parameters with the embeddings (vocab_size {cfg.vocab_size})"
        )
    e["params_with_embeddings"] = with_emb
    _check_micro_batch(where, e)
    return e


#: Most tokens in one optimizer step (batch_size × seq_len): 2^31, over a hundred times
#: the largest published batches (about 16M tokens). A larger step is a typo, and it was
#: found only when the first batch filled the machine's memory.
MAX_STEP_TOKENS = 2**31


def _check_micro_batch(where: str, e: dict[str, Any]) -> None:
    step_tokens = e["batch_size"] * e["seq_len"]
    if step_tokens > MAX_STEP_TOKENS:
        raise BayesplitError(
            f"{where}batch_size {e['batch_size']} × seq_len {e['seq_len']} is {step_tokens:,} "
            f"tokens per optimizer step, more than the {MAX_STEP_TOKENS:,} bayesplit allows"
        )
    # every process runs batch_size / world rows in micro-batches, so the micro-batch must
    # divide the batch whatever the world size; refused here, not after the store is made
    micro = e.get("micro_batch_size", e["train"].get("micro_batch_size"))
    if micro is not None and e["batch_size"] % micro:
        raise BayesplitError(
            f"{where}batch_size {e['batch_size']} is not divisible by micro_batch_size {micro}"
        )


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
