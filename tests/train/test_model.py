"""The GPT module, its analytic parameter count, FLOPs per token and the model ladders."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

torch = pytest.importorskip("torch")

from bayesplit.errors import BayesplitError
from bayesplit.train.config import GPTConfig, count_params, flops_per_token
from bayesplit.train.ladder import BUNDLED_LADDERS, find_model, load_ladder
from bayesplit.train.model import GPT

MODELS = BUNDLED_LADDERS


def test_hand_count_of_a_small_model():
    cfg = GPTConfig(vocab_size=100, seq_len=16, n_layer=2, n_head=2, d_model=8, d_ff=16)
    # per layer: qkv 8x24 = 192, out 8x8 = 64, SwiGLU gate+up 8x32 = 256, down 16x8 = 128,
    # two RMSNorm gains 2x8 = 16 -> 656; two layers + final norm 8 -> 1320; embedding 100x8 = 800
    assert count_params(cfg) == 1320
    assert count_params(cfg, embeddings=True) == 2120
    model = GPT(cfg)
    assert model.num_params() == 1320
    assert sum(p.numel() for p in model.parameters()) == 2120  # tied head counted once
    assert model.head.weight is model.wte.weight


@pytest.mark.parametrize("mlp", ["swiglu", "gelu"])
@pytest.mark.parametrize("shape", [(1, 1, 16, 32), (3, 4, 64, 96), (2, 3, 48, 200)])
def test_count_params_matches_module(mlp, shape):
    n_layer, n_head, d_model, d_ff = shape
    cfg = GPTConfig(
        vocab_size=77,
        seq_len=8,
        n_layer=n_layer,
        n_head=n_head,
        d_model=d_model,
        d_ff=d_ff,
        mlp=mlp,
    )
    model = GPT(cfg)
    assert model.num_params() == count_params(cfg)
    assert model.num_params(embeddings=True) == count_params(cfg, embeddings=True)
    assert all(p.dim() == 1 for n, p in model.named_parameters() if "norm" in n)  # no biases


def test_forward_shapes_loss_and_causality():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=50, seq_len=12, n_layer=2, n_head=2, d_model=16, d_ff=32)
    model = GPT(cfg).eval()
    x = torch.randint(0, 50, (3, 12))
    logits, loss = model(x, x)
    assert logits.shape == (3, 12, 50)
    assert abs(loss.item() - torch.log(torch.tensor(50.0)).item()) < 0.5  # near uniform at init
    y = x.clone()
    y[:, 7:] = (y[:, 7:] + 1) % 50  # change the future only
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(y)
    assert torch.allclose(a[:, :7], b[:, :7], atol=1e-6)
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_flops_per_token_formula():
    cfg = GPTConfig(vocab_size=1000, seq_len=256, n_layer=4, n_head=4, d_model=64, d_ff=128)
    n_emb = count_params(cfg, embeddings=True)
    assert flops_per_token(cfg) == 6 * n_emb + 12 * 4 * 64 * 256


def test_bad_shapes_are_refused():
    with pytest.raises(BayesplitError, match="multiple of n_head"):
        GPTConfig(vocab_size=10, seq_len=8, n_layer=1, n_head=3, d_model=16, d_ff=8)
    with pytest.raises(BayesplitError, match="mlp"):
        GPTConfig(vocab_size=10, seq_len=8, n_layer=1, n_head=2, d_model=16, d_ff=8, mlp="relu")


@pytest.mark.parametrize("name", ["ladder.yaml", "cpu_ladder.yaml"])
def test_ladder_params_equal_count_params(name):
    raw = yaml.safe_load((MODELS / name).read_text())
    entries = load_ladder(MODELS / name)
    assert len(entries) == len(raw["sizes"])
    for e, r in zip(entries, sorted(raw["sizes"], key=lambda r: r["params"]), strict=True):
        cfg = GPTConfig.from_dict(e)
        assert r["params"] == count_params(cfg), e["name"]
        assert r["params_with_embeddings"] == count_params(cfg, embeddings=True), e["name"]
        assert e["batch_size"] > 0 and e["lr"] > 0
        GPT(cfg) if cfg.d_model <= 192 else None  # the small ones build


def test_ladder_ranges():
    main = [e["params"] for e in load_ladder(MODELS / "ladder.yaml")]
    assert len(main) >= 6 and 0.5e6 <= main[0] <= 2e6 and 250e6 <= main[-1] <= 400e6
    cpu = [e["params"] for e in load_ladder("cpu_ladder")]
    assert len(cpu) >= 5 and 10e3 <= cpu[0] <= 40e3 and 1e6 <= cpu[-1] <= 3e6


def test_ladder_lookup_and_errors(tmp_path):
    entries = load_ladder(MODELS / "cpu_ladder.yaml")
    assert find_model(entries, "cpu-1m")["params"] == 1004928
    assert find_model(entries, params=1.1e6)["name"] == "cpu-1m"
    with pytest.raises(BayesplitError, match="unknown model 'nope'"):
        find_model(entries, "nope")
    bad = yaml.safe_load((MODELS / "cpu_ladder.yaml").read_text())
    bad["sizes"][0]["params"] += 1
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(BayesplitError, match="non-embedding parameters"):
        load_ladder(tmp_path / "bad.yaml")
    with pytest.raises(BayesplitError, match="no such model ladder"):
        load_ladder(tmp_path / "missing.yaml")
    (tmp_path / "binary.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(BayesplitError, match="not a YAML ladder"):
        load_ladder(tmp_path / "binary.yaml")


def test_ladder_and_cli_import_no_torch():
    code = (
        "import sys\n"
        "from bayesplit.train.ladder import load_ladder\n"
        "from bayesplit.train.config import count_params\n"
        "import bayesplit.cli, bayesplit.train\n"
        f"load_ladder({str(MODELS / 'ladder.yaml')!r})\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
