"""Ladder files are checked value by value: a bad key or value is one error naming the size
and the field, raised by ``load_ladder`` (the one place every command reads a ladder).

These tests need no torch except where they compare with the trainer's own settings.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bayesplit.cli import app
from bayesplit.errors import BayesplitError
from bayesplit.train.ladder import _TRAIN, BUNDLED_LADDERS, load_ladder

MODELS = BUNDLED_LADDERS
runner = CliRunner()


def _cpu() -> dict:
    return yaml.safe_load((MODELS / "cpu_ladder.yaml").read_text())


def _write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _set(**fields):
    """Change the first size (cpu-20k)."""
    return lambda doc: doc["sizes"][0].update(fields)


def _rename(old: str, new: str):
    def edit(doc):
        size = doc["sizes"][0]
        size[new] = size.pop(old)

    return edit


def _top(**fields):
    return lambda doc: doc.update(fields)


def _train(**fields):
    """Change the file's ``train`` defaults."""
    return lambda doc: doc["train"].update(fields)


def _size_train(**fields):
    return lambda doc: doc["sizes"][0].update(train=fields)


NAME_RULE = (
    "must be 1-100 letters, digits, '.', '_' or '-', starting and ending with a letter or digit"
)

BAD = [
    # learning rates: > 0 and finite
    (_set(lr=-1e-3), "size 'cpu-20k': lr must be a finite number > 0, got -0.001"),
    (_set(lr=0), "size 'cpu-20k': lr must be a finite number > 0, got 0"),
    (_set(lr=float("nan")), "size 'cpu-20k': lr must be a finite number > 0, got nan"),
    (_set(lr=float("inf")), "size 'cpu-20k': lr must be a finite number > 0, got inf"),
    (_set(lr="fast"), "size 'cpu-20k': lr must be a number, got 'fast'"),
    # sizes and counts: positive integers
    (_set(batch_size=-16), "size 'cpu-20k': batch_size must be an integer >= 1, got -16"),
    (_set(batch_size=0), "size 'cpu-20k': batch_size must be an integer >= 1, got 0"),
    (_set(batch_size=16.5), "size 'cpu-20k': batch_size must be an integer >= 1, got 16.5"),
    (_set(batch_size=True), "size 'cpu-20k': batch_size must be an integer >= 1, got True"),
    (_set(batch_size="many"), "size 'cpu-20k': batch_size must be a number, got 'many'"),
    (_set(n_layer=0), "size 'cpu-20k': n_layer must be an integer >= 1, got 0"),
    (_set(n_head=-2), "size 'cpu-20k': n_head must be an integer >= 1, got -2"),
    (_set(d_model=[32]), "size 'cpu-20k': d_model must be a number, got [32]"),
    (_set(d_ff=6.4e1 + 0.5), "size 'cpu-20k': d_ff must be an integer >= 1, got 64.5"),
    (_set(seq_len=0), "size 'cpu-20k': seq_len must be an integer >= 1, got 0"),
    (_set(micro_batch_size=0), "size 'cpu-20k': micro_batch_size must be an integer >= 1"),
    (_set(micro_batch_size=5), "batch_size 16 is not divisible by micro_batch_size 5"),
    # a typo of a batch filled the machine's memory at the first step (killed, no message)
    (
        _set(batch_size=10**9),
        "size 'cpu-20k': batch_size 1000000000 × seq_len 128 is 128,000,000,000 tokens per "
        "optimizer step, more than the 2,147,483,648",
    ),
    (_set(params=-1), "size 'cpu-20k': params must be an integer >= 1, got -1"),
    (
        _set(params_with_embeddings=86177),
        "size 'cpu-20k': says params_with_embeddings=86177 but its shape has 86176",
    ),
    (_top(vocab_size=0), "vocab_size must be an integer >= 1, got 0"),
    (_top(seq_len="long"), "seq_len must be a number, got 'long'"),
    # heads must divide the width (and give RoPE an even head dimension)
    (_set(n_head=3), "size 'cpu-20k': d_model (32) must be a multiple of n_head (3)"),
    (_set(n_head=32), "size 'cpu-20k': RoPE needs an even head dimension"),
    # names and choices
    (_set(name=5), f"size #1: name {NAME_RULE}, got 5"),
    (_set(name="a/b"), f"name {NAME_RULE}, got 'a/b'"),
    # a NUL failed after training ("embedded null byte"), a newline went into a run id, and
    # 300 characters made a folder name too long after creating its parent
    (_set(name="a\x00b"), f"name {NAME_RULE}, got"),
    (_set(name="a b\nc"), f"name {NAME_RULE}, got"),
    (_set(name="x" * 101), f"name {NAME_RULE}, got"),
    (_set(name="-x"), f"name {NAME_RULE}, got"),
    (_set(mlp="relu"), "size 'cpu-20k': mlp must be one of swiglu, gelu, got 'relu'"),
    # unknown keys, with the allowed ones listed
    (_rename("n_layer", "n_layers"), "size 'cpu-20k': unknown key 'n_layers' (allowed: name,"),
    (_top(seq_length=128), "unknown key 'seq_length' (allowed: vocab_size, seq_len, mlp, train"),
    (_train(warmup_step=5), "unknown key 'train.warmup_step' (allowed: warmup_steps,"),
    (_train(lr=0.1), "train.lr: set lr in each size, not in train"),
    (_size_train(batch_size=8), "size 'cpu-20k': train.batch_size: set batch_size in each size"),
    # training settings: counts, fractions, choices
    (_train(warmup_steps=-5), "train.warmup_steps must be an integer >= 0, got -5"),
    (_train(eval_tokens=0), "train.eval_tokens must be an integer >= 1, got 0"),
    (_train(checkpoint_every=0.5), "train.checkpoint_every must be an integer >= 1, got 0.5"),
    (_train(cooldown_fraction=1.5), "train.cooldown_fraction must be a fraction in [0, 1)"),
    (_train(cooldown_fraction=-0.1), "train.cooldown_fraction must be a fraction in [0, 1)"),
    (_size_train(beta2=1), "size 'cpu-20k': train.beta2 must be a fraction in [0, 1), got 1"),
    (_train(weight_decay=-0.1), "train.weight_decay must be a finite number >= 0, got -0.1"),
    (_train(grad_clip="big"), "train.grad_clip must be a number, got 'big'"),
    (_train(decay_shape="cos"), "train.decay_shape must be one of linear, 1-sqrt, cosine"),
    (_train(device="gpu"), "train.device must be one of auto, cpu, cuda, got 'gpu'"),
    (_train(compile="maybe"), "train.compile must be true or false, got 'maybe'"),
    (_train(weights={"a": -1}), "train.weights of 'a' must be a finite number >= 0"),
    (_train(weights={"a": 0}), "train.weights are all zero"),
    (_size_train(micro_batch_size=32), "batch_size 16 is not divisible by micro_batch_size 32"),
    (_top(train=[1]), "train must be a mapping of training settings"),
]


@pytest.mark.parametrize(("edit", "message"), BAD, ids=[m for _, m in BAD])
def test_a_bad_value_is_refused_naming_the_field(tmp_path, edit, message):
    doc = _cpu()
    edit(doc)
    with pytest.raises(BayesplitError) as err:
        load_ladder(_write(tmp_path, doc))
    assert message in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_numbers_written_without_a_dot_still_load(tmp_path):
    # PyYAML reads 6e-3 and 3.2e4-style counts written as 1e6 as text; they are numbers
    text = (MODELS / "cpu_ladder.yaml").read_text()
    text = text.replace("lr: 6.0e-3}", "lr: 6e-3}").replace(
        "eval_tokens: 32768", "eval_tokens: 1e6"
    )
    (tmp_path / "ok.yaml").write_text(text)
    e = load_ladder(tmp_path / "ok.yaml")[0]
    assert e["lr"] == 6e-3 and isinstance(e["lr"], float)
    assert e["train"]["eval_tokens"] == 1_000_000 and isinstance(e["train"]["eval_tokens"], int)


@pytest.mark.parametrize("name", ["ladder.yaml", "cpu_ladder.yaml"])
def test_the_bundled_ladders_load_as_written(name):
    raw = yaml.safe_load((MODELS / name).read_text())
    entries = load_ladder(MODELS / name)
    for e, r in zip(entries, raw["sizes"], strict=True):  # already smallest first
        assert {k: e[k] for k in r} == r
        assert e["train"] == raw["train"]


def test_train_keys_are_the_trainer_settings():
    from bayesplit.train.config import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(_TRAIN) == fields - {"batch_size", "lr"}


def test_cli_refuses_a_bad_ladder_in_one_line(tmp_path):
    doc = _cpu()
    doc["sizes"][0]["lr"] = -1e-3
    path = _write(tmp_path, doc)
    before = set(tmp_path.rglob("*"))
    res = runner.invoke(app, ["train", "ladder", str(path), "--json"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines == [f"error: {path}: size 'cpu-20k': lr must be a finite number > 0, got -0.001"]
    assert res.stdout == ""
    assert set(tmp_path.rglob("*")) == before


def test_pretrain_refuses_a_bad_ladder_before_writing(tmp_path):
    pytest.importorskip("torch")
    from conftest import make_corpus

    corpus = make_corpus(tmp_path / "corpus", {"alpha": 5_000}, val_tokens=1024)
    doc = _cpu()
    doc["sizes"][0]["lr"] = -1e-3
    path = _write(tmp_path, doc)
    out = tmp_path / "out"
    out.mkdir()
    res = runner.invoke(
        app,
        ["train", "pretrain", "--corpus", str(corpus), "--ladder", str(path), "--model",
         "cpu-20k", "--branch-at", "1e5", "--store", str(out / "s.db"), "--no-progress"],
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "lr must be a finite number > 0" in lines[0], res.stderr
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("repeat", ["top", "size"])
def test_a_key_given_twice_is_refused(tmp_path, repeat):
    # PyYAML kept the later value silently: a size's lr written twice trained with the second
    text = (MODELS / "cpu_ladder.yaml").read_text()
    if repeat == "size":
        text = text.replace("lr: 6.0e-3}", "lr: 6.0e-3, lr: 1.0}", 1)
        assert "lr: 1.0}" in text
    else:
        text += "\nsizes: []\n"
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(BayesplitError, match="not valid YAML .* found the key '(lr|sizes)' twice"):
        load_ladder(path)


def test_bundled_ladders_are_found_from_any_directory(tmp_path, monkeypatch):
    from bayesplit.train.ladder import resolve_ladder

    monkeypatch.chdir(tmp_path)  # no models/ here: the names must reach the package's copies
    assert resolve_ladder("cpu_ladder") == BUNDLED_LADDERS / "cpu_ladder.yaml"
    assert resolve_ladder("models/cpu_ladder.yaml") == BUNDLED_LADDERS / "cpu_ladder.yaml"
    assert resolve_ladder(None) == BUNDLED_LADDERS / "ladder.yaml"
    with pytest.raises(BayesplitError, match=r"models/nope.yaml \(bundled: cpu_ladder, ladder\)"):
        resolve_ladder("models/nope.yaml")
    with pytest.raises(BayesplitError, match="no such model ladder: other/cpu_ladder.yaml"):
        resolve_ladder("other/cpu_ladder.yaml")  # only the documented models/ prefix falls back
    # a ladder of the user's own in ./models/ wins over the bundled one of the same name
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "cpu_ladder.yaml").write_text((MODELS / "cpu_ladder.yaml").read_text())
    assert resolve_ladder("cpu_ladder") == Path("models/cpu_ladder.yaml")
    assert resolve_ladder("models/cpu_ladder.yaml") == Path("models/cpu_ladder.yaml")

    r = runner.invoke(app, ["train", "ladder", "models/ladder.yaml", "--json"])
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.output)) == len(load_ladder(MODELS / "ladder.yaml"))


def test_bundled_ladders_ship_inside_the_package():
    import bayesplit

    package = Path(bayesplit.__file__).resolve().parent
    assert BUNDLED_LADDERS.parent == package
    assert sorted(f.name for f in BUNDLED_LADDERS.glob("*.yaml")) == [
        "cpu_ladder.yaml",
        "ladder.yaml",
    ]
    checkout_models = package.parent / "models"  # the layout's models/: a link to the package's
    if checkout_models.exists():
        assert checkout_models.resolve() == BUNDLED_LADDERS
