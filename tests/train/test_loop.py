"""Training loop: learning, exact token counts, branching, kill-and-resume, specialization."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from conftest import close, tiny_entry, unigram_entropy

from bayesplit.errors import BayesplitError
from bayesplit.store import RunStore
from bayesplit.train.checkpoint import ckpt_path, list_checkpoints, load_checkpoint
from bayesplit.train.config import TrainConfig, count_params, steps_for
from bayesplit.train.corpus import Corpus
from bayesplit.train.data import BatchSampler, Stream, eval_windows, passes
from bayesplit.train.schedule import WSD, cooldown, specialization
from bayesplit.train.specialist import SpecConfig, specialize
from bayesplit.train.trunk import pretrain

TPS = 8 * 32  # tokens per step of the tiny model: batch 8 x seq_len 32
D1, D2 = 64 * TPS, 128 * TPS  # branch points (exact multiples of a step)


@pytest.fixture(scope="module")
def trunk(tiny_corpus, tmp_path_factory):
    """One trunk: general rows at D1 and D2, a stable checkpoint at D1 to branch from."""
    root = tmp_path_factory.mktemp("trunk")
    store = RunStore(root / "runs.db")
    rows = pretrain(
        tiny_corpus,
        tiny_entry(),
        workdir=root / "work",
        eval_at=[D1, D2],
        save_at=[D1, D2],
        store=store,
        progress=False,
    )
    trunk_id = rows["run_id"].iloc[0]
    return {"root": root, "store": store, "rows": rows, "dir": root / "work" / "trunks" / trunk_id}


# -- schedule and data -------------------------------------------------------------------------
def test_wsd_schedule():
    s = WSD(peak_lr=1.0, warmup_steps=4)
    assert [s(t) for t in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    c = cooldown(s, branch_step=2, decay_steps=4)  # branch inside the warmup
    assert c(1) == 0.5 and c(2) == pytest.approx(0.75 * (1 - 0.5 / 4))
    assert c(5) == pytest.approx(0.75 * (1 - 3.5 / 4)) and c(6) == 0.0
    sp = specialization(2.0, 10, warmup_fraction=0.2, decay_fraction=0.3)
    assert sp(0) == 1.0 and sp(1) == 2.0 and sp(6) == 2.0 and sp(9) == pytest.approx(2 / 6)
    sq = WSD(1.0, 0, decay_start=0, decay_steps=4, shape="1-sqrt")
    assert sq(3) == pytest.approx(1 - np.sqrt(3.5 / 4))
    with pytest.raises(BayesplitError):
        WSD(1.0, shape="exponential")


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 10, 17])
@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.95, 0.05), (0.3, 0.7), (0.75, 0.25)])
def test_a_specialization_warms_up_only_before_its_decay(steps, fractions):
    # 0.5 + 0.5 of 3 steps rounded to 2 warmup + 2 decay steps: the rate went 0.5, 0.75,
    # then back to the peak's decay, 0.25 (the warmup ran into the decay)
    w, d = fractions
    s = specialization(1.0, steps, warmup_fraction=w, decay_fraction=d)
    assert s.warmup_steps + s.decay_steps <= steps
    rates = [s(t) for t in range(steps)]
    top = rates.index(max(rates))
    assert (np.diff(rates[: top + 1]) >= 0).all()  # rises to the peak
    assert (np.diff(rates[top:]) <= 0).all()  # then only falls
    three = specialization(1.0, 3, warmup_fraction=0.5, decay_fraction=0.5)
    assert [three(t) for t in range(3)] == [1.0, 0.75, 0.25]  # a one-step warmup: the peak


def test_gpu_peaks_match_whole_words_of_the_device_name():
    from bayesplit.train.runtime import peak_flops

    # by substring, an L40 read as an L4, an RTX A1000 as an A100, an H100 NVL as an SXM H100
    assert peak_flops("cuda", "NVIDIA L40")[0] == 181e12
    assert peak_flops("cuda", "NVIDIA L40S")[0] == 362e12
    assert peak_flops("cuda", "NVIDIA L4")[0] == 121e12
    assert peak_flops("cuda", "NVIDIA RTX A1000") == (None, "unknown GPU 'NVIDIA RTX A1000'")
    assert peak_flops("cuda", "NVIDIA H100 NVL")[0] == 835e12
    assert peak_flops("cuda", "NVIDIA H100 PCIe")[0] == 756e12
    assert peak_flops("cuda", "NVIDIA H100 80GB HBM3")[0] == 989e12
    assert peak_flops("cuda", "NVIDIA A100-SXM4-80GB")[0] == 312e12
    assert peak_flops("cuda", "NVIDIA GH200 480GB")[0] == 989e12
    # measured once per process on CPU (a matmul benchmark), not at every row written
    assert hasattr(peak_flops, "cache_info")


def test_data_order_is_a_function_of_seed_and_step(tiny_corpus):
    corpus = Corpus(tiny_corpus)
    stream = [Stream("general", ("alpha", "beta", "gamma"), (4.0, 3.0, 2.0), 8)]
    a = BatchSampler(corpus, stream, 32, seed=1)
    b = BatchSampler(corpus, stream, 32, seed=1)
    assert np.array_equal(a.batch(17), b.batch(17))
    assert not np.array_equal(a.batch(17), a.batch(18))
    assert not np.array_equal(a.batch(17), BatchSampler(corpus, stream, 32, seed=2).batch(17))
    # DDP: the ranks' rows make up the global batch
    merged = np.empty_like(a.batch(5))
    merged[0::2], merged[1::2] = a.batch(5, rank=0, world=2), a.batch(5, rank=1, world=2)
    assert np.array_equal(merged, a.batch(5))
    # a replay mix keeps its row counts exactly
    mix = BatchSampler(
        corpus,
        [
            Stream("spec/gamma", ("gamma",), (1.0,), 6),
            stream[0].__class__("r", ("alpha",), (1.0,), 2),
        ],
        32,
        seed=0,
    )
    assert [d for d, _ in mix.rows_of(3)] == ["gamma"] * 6 + ["alpha"] * 2
    w = eval_windows(corpus.tokens("alpha", "val"), 32, 1000)
    assert w.shape == (1000 // 32, 33)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # the overflow is handled, not warned
def test_weights_near_the_largest_float_draw_as_their_ratios(tiny_corpus):
    # 1e308 + 1e308 is inf: rng.choice got NaN shares, an 86-line traceback from
    # `train pretrain --weights alpha=1e308,beta=1e308`
    corpus = Corpus(tiny_corpus)
    huge = Stream("general", ("alpha", "beta"), (1e308, 1e308), 8)
    even = Stream("general", ("alpha", "beta"), (1.0, 1.0), 8)
    a, b = BatchSampler(corpus, [huge], 32, seed=3), BatchSampler(corpus, [even], 32, seed=3)
    assert a.rows_of(4) == b.rows_of(4)
    assert passes(corpus, huge, 10**6) == passes(corpus, even, 10**6)
    assert passes(corpus, huge, 10**6)[0] > 0


# -- trunk ---------------------------------------------------------------------------------------
def test_trunk_learns_below_unigram_entropy(trunk, tiny_corpus):
    h = unigram_entropy(tiny_corpus)
    rows = trunk["rows"]
    at_d2 = rows[rows["pretrain_tokens"] == D2]
    assert len(at_d2) == 3 and set(at_d2["eval_domain"]) == {"alpha", "beta", "gamma"}
    assert at_d2["loss"].max() < 0.6 * h, (at_d2["loss"].tolist(), h)
    # more pretraining helps
    at_d1 = rows[rows["pretrain_tokens"] == D1].set_index("eval_domain")["loss"]
    assert (at_d2.set_index("eval_domain")["loss"] < at_d1).all()


def test_token_counts_are_exact(trunk):
    rows = trunk["rows"]
    assert sorted(set(rows["pretrain_tokens"])) == [D1, D2]
    assert (rows["stable_tokens"] + rows["decay_tokens"] == rows["pretrain_tokens"]).all()
    assert set(rows["decay_tokens"]) == {round(0.1 * 64) * TPS, round(0.1 * 128) * TPS}
    assert (rows["step"] == rows["pretrain_tokens"]).all() and (rows["spec_tokens"] == 0).all()
    assert (rows["params"] == count_params(tiny_cfg())).all()
    assert (rows["eval_tokens"] == 2048).all()
    state = load_checkpoint(ckpt_path(trunk["dir"], "stable", D2 // TPS))
    meta = state["meta"]
    assert meta["tokens"] == D2 and meta["step"] * meta["tokens_per_step"] == D2
    assert len(meta["train_losses"]) == D2 // TPS
    assert steps_for(1000, 256) == 4 and steps_for(10, 256) == 1  # nearest step, at least one
    stored = trunk["store"].read()
    assert len(stored) == 6 and set(stored["run_id"]) == {rows["run_id"].iloc[0]}
    for col in ("wall_time_s", "tokens_per_s", "mfu", "config_hash", "git_commit", "model"):
        assert col in stored


def tiny_cfg():
    from bayesplit.train.config import GPTConfig

    return GPTConfig.from_dict(tiny_entry())


def test_checkpoint_is_atomic_and_weights_only(trunk, tmp_path):
    files = list(trunk["dir"].iterdir())
    assert not [f for f in files if f.name.endswith(".tmp")]
    state = torch.load(ckpt_path(trunk["dir"], "stable", D1 // TPS), weights_only=True)
    assert set(state) == {"format", "model", "optimizer", "rng", "meta"}
    assert state["meta"]["trunk_id"] == trunk["dir"].name
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BayesplitError, match="junk.pt: not a PyTorch checkpoint file"):
        load_checkpoint(tmp_path / "junk.pt")
    # a torch file cut short is named as damaged, with what torch said
    good = ckpt_path(trunk["dir"], "stable", D1 // TPS).read_bytes()
    (tmp_path / "cut.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(BayesplitError, match="cut.pt \\(damaged or truncated\\?\\)"):
        load_checkpoint(tmp_path / "cut.pt")


def test_extending_a_trunk_from_a_checkpoint_is_bitwise(trunk, tiny_corpus, tmp_path):
    """Train to D1, then continue to D2 in a second call: same trajectory and weights as one go."""
    work = tmp_path / "work"
    pretrain(tiny_corpus, tiny_entry(), workdir=work, save_at=[D1], progress=False)
    pretrain(tiny_corpus, tiny_entry(), workdir=work, save_at=[D1, D2], progress=False)
    mine = load_checkpoint(ckpt_path(work / "trunks" / trunk["dir"].name, "stable", D2 // TPS))
    ref = load_checkpoint(ckpt_path(trunk["dir"], "stable", D2 // TPS))
    assert mine["meta"]["train_losses"] == ref["meta"]["train_losses"]
    for k, v in ref["model"].items():
        assert torch.equal(v, mine["model"][k]), k


def test_a_rerun_for_an_earlier_branch_point_keeps_the_resume_checkpoint(tiny_corpus, tmp_path, monkeypatch):  # fmt: skip
    """Interrupted past step 12 on the way to 16, then rerun for 5 and 16: the checkpoint at
    step 4 (on the way to 5) deleted the one at 12, and steps 5-12 were trained again."""
    from bayesplit.train.loop import Trainer

    work, entry = (
        tmp_path / "work",
        tiny_entry(train={**tiny_entry()["train"], "checkpoint_every": 4}),
    )
    pretrain(tiny_corpus, entry, workdir=work, save_at=[16 * TPS], progress=False)
    (trunk_dir,) = (work / "trunks").iterdir()
    ref = load_checkpoint(ckpt_path(trunk_dir, "stable", 16))
    ckpt_path(trunk_dir, "stable", 16).unlink()  # as if killed after step 12's checkpoint
    assert sorted(list_checkpoints(trunk_dir)["periodic"]) == [12]
    spans, train = [], Trainer.train

    def recorded(self, sampler, schedule, start, end, **kw):
        spans.append((start, end))
        return train(self, sampler, schedule, start, end, **kw)

    monkeypatch.setattr(Trainer, "train", recorded)
    pretrain(tiny_corpus, entry, workdir=work, save_at=[5 * TPS, 16 * TPS], progress=False)
    assert spans == [(0, 5), (12, 16)]
    mine = load_checkpoint(ckpt_path(trunk_dir, "stable", 16))
    assert mine["meta"]["train_losses"] == ref["meta"]["train_losses"]
    for k, v in ref["model"].items():
        assert torch.equal(v, mine["model"][k]), k


def test_general_row_from_branch_is_reproducible(trunk, tiny_corpus, tmp_path):
    """The decay at D1 re-run from the stored checkpoint gives the same loss, bitwise."""
    store = RunStore(tmp_path / "runs.db")
    work = trunk["root"] / "work"
    rows = pretrain(
        tiny_corpus, tiny_entry(), workdir=work, eval_at=[D1], store=store, progress=False
    )
    ref = trunk["rows"][trunk["rows"]["pretrain_tokens"] == D1]
    assert rows["loss"].tolist() == ref["loss"].tolist()


def test_the_cooldown_is_part_of_the_general_rows_identity(trunk, tiny_corpus, tmp_path):
    """Another cooldown is another general model: it used to be taken for the default one
    ("nothing to do"), because the rows were keyed by the trunk id alone."""
    store = RunStore(tmp_path / "runs.db")
    entry = tiny_entry()
    before = sorted(p.name for p in trunk["dir"].iterdir())

    def general(**cooldown):
        tc = TrainConfig.from_entry(entry, **cooldown)
        work = trunk["root"] / "work"
        return pretrain(
            tiny_corpus, entry, workdir=work, eval_at=[D2], store=store, train=tc, progress=False
        )

    default = general()
    half = general(cooldown_fraction=0.5)
    cosine = general(decay_shape="cosine")
    trunk_id = trunk["dir"].name
    # the default keeps the trunk id, so rows of stores written before stay valid
    assert set(default["run_id"]) == {trunk_id}
    assert set(half["run_id"]) == {f"{trunk_id}.cooldown-0.5-linear"}
    assert set(cosine["run_id"]) == {f"{trunk_id}.cooldown-0.1-cosine"}
    for rows in (default, half, cosine):
        assert len(rows) == 3 and set(rows["trunk_id"]) == {trunk_id}
        assert (rows["pretrain_tokens"] == D2).all() and (rows["step"] == D2).all()
    assert (half["stable_tokens"] == D1).all() and (half["decay_tokens"] == D2 - D1).all()
    assert not np.allclose(half["loss"], default["loss"])
    assert not np.allclose(cosine["loss"], default["loss"])
    assert len(general(cooldown_fraction=0.5)) == 0 and len(store) == 9
    # the stable checkpoints are shared: D1 and D2 - 13 steps were there already
    assert sorted(p.name for p in trunk["dir"].iterdir()) == before


def test_kill_and_resume_matches_uninterrupted(trunk, tiny_corpus, tiny_ladder, tmp_path):
    work = tmp_path / "work"
    cmd = [
        sys.executable,
        "-m",
        "bayesplit.cli",
        "train",
        "pretrain",
        "--corpus",
        str(tiny_corpus),
        "--model",
        "tiny",
        "--ladder",
        str(tiny_ladder),
        "--branch-at",
        str(D2),
        "--workdir",
        str(work),
        "--checkpoint-every",
        "8",
        "--no-progress",
    ]
    trunk_dir = work / "trunks" / trunk["dir"].name
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list_checkpoints(trunk_dir)["periodic"] and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.01)
    still_running = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert still_running and proc.returncode == -signal.SIGKILL
    killed_at = max(list_checkpoints(trunk_dir)["periodic"])
    assert 0 < killed_at < D2 // TPS
    assert not list_checkpoints(trunk_dir)["stable"]

    # resume: same command, in this process
    rows = pretrain(
        tiny_corpus,
        tiny_entry(),
        workdir=work,
        eval_at=[D2],
        save_at=[D2],
        store=None,
        progress=False,
    )
    mine = load_checkpoint(ckpt_path(trunk_dir, "stable", D2 // TPS))
    ref = load_checkpoint(ckpt_path(trunk["dir"], "stable", D2 // TPS))
    assert mine["meta"]["train_losses"] == ref["meta"]["train_losses"]
    ref_rows = trunk["rows"][trunk["rows"]["pretrain_tokens"] == D2]
    assert rows["loss"].tolist() == ref_rows["loss"].tolist()


# -- specialization --------------------------------------------------------------------------
def test_specialization_lowers_its_domain_loss(trunk, tiny_corpus):
    store = trunk["store"]
    dp = 32 * TPS
    rows = specialize(
        tiny_corpus,
        ckpt_path(trunk["dir"], "stable", D1 // TPS),
        "gamma",
        dp,
        store=store,
        workdir=trunk["root"] / "work",
        progress=False,
    )
    general = trunk["rows"]
    base = general[general["pretrain_tokens"] == D1].set_index("eval_domain")["loss"]
    spec = rows.set_index("eval_domain")["loss"]
    assert spec["gamma"] < base["gamma"] - 0.05
    assert spec["alpha"] > base["alpha"]  # forgetting, as expected of a specialist
    stored = store.read()
    mine = stored[stored["run_id"] == rows["run_id"].iloc[0]]
    assert len(mine) == 3 and set(mine["eval_domain"]) == {"alpha", "beta", "gamma"}
    assert (mine["params"] == count_params(tiny_cfg())).all()
    assert (mine["pretrain_tokens"] == D1).all() and (mine["spec_tokens"] == dp).all()
    assert (mine["train_domain"] == "gamma").all()
    assert (mine["trunk_id"] == trunk["dir"].name).all() and (mine["step"] == D1 + dp).all()
    # asking again writes nothing
    again = specialize(
        tiny_corpus,
        ckpt_path(trunk["dir"], "stable", D1 // TPS),
        "gamma",
        dp,
        store=store,
        progress=False,
    )
    assert len(again) == 0


def test_specialization_with_replay_counts_rows(trunk, tiny_corpus):
    rows = specialize(
        tiny_corpus,
        ckpt_path(trunk["dir"], "stable", D1 // TPS),
        "beta",
        8 * TPS,
        spec=SpecConfig(replay_fraction=0.25, warmup_fraction=0.25, decay_fraction=0.5),
        store=None,
        progress=False,
    )
    assert (rows["replay_fraction"] == 0.25).all()
    assert (rows["spec_domain_tokens"] == 6 * 32 * 8).all() and (
        rows["spec_tokens"] == 8 * TPS
    ).all()
    with pytest.raises(BayesplitError, match="unknown domain 'delta'"):
        specialize(tiny_corpus, ckpt_path(trunk["dir"], "stable", D1 // TPS), "delta", TPS)


def test_settings_that_train_the_same_phase_are_one_run(trunk, tiny_corpus, tmp_path):
    # --replay 0.1 and 0.125 (1 of 8 rows), --decay 0.2 and 0.21 over 16 steps, --lr the
    # trunk's own: each pair trained the same phase twice, under two run ids
    from dataclasses import asdict

    from bayesplit.train.specialist import effective_spec

    def same(a: SpecConfig, b: SpecConfig, steps: int = 16, lr: float = 0.01) -> bool:
        return effective_spec(a, steps, 8, lr) == effective_spec(b, steps, 8, lr)

    assert same(SpecConfig(replay_fraction=0.1), SpecConfig(replay_fraction=0.125))
    assert not same(SpecConfig(replay_fraction=0.125), SpecConfig(replay_fraction=0.25))
    assert same(SpecConfig(decay_fraction=0.21), SpecConfig())  # 3 decay steps of 16
    assert not same(SpecConfig(decay_fraction=0.25), SpecConfig())  # 4
    assert same(SpecConfig(decay_fraction=0.3), SpecConfig(decay_fraction=0.31))  # 5 of 16
    assert same(SpecConfig(warmup_fraction=0.01), SpecConfig())  # round(0.16): no step
    assert same(SpecConfig(lr=0.01), SpecConfig()) and not same(SpecConfig(lr=0.02), SpecConfig())
    assert same(SpecConfig(decay_fraction=0, decay_shape="cosine"), SpecConfig(decay_fraction=0))
    assert not same(SpecConfig(decay_shape="cosine"), SpecConfig())
    # a re-warmup of one step starts at the peak: none; cosine over one step is linear
    assert same(SpecConfig(warmup_fraction=0.07), SpecConfig())  # round(1.12) = 1 step
    assert not same(SpecConfig(warmup_fraction=0.1), SpecConfig())  # 2 steps
    one = {"decay_fraction": 0.05}  # max(1, round(0.8)): one decay step
    assert same(SpecConfig(**one, decay_shape="cosine"), SpecConfig(**one))
    assert not same(SpecConfig(**one, decay_shape="1-sqrt"), SpecConfig(**one))
    # the defaults keep their ids: the settings hashed are the defaults themselves
    for steps in (1, 7, 16, 1000):
        assert asdict(effective_spec(SpecConfig(), steps, 8, 0.01)) == asdict(SpecConfig())
    assert effective_spec(SpecConfig(decay_fraction=0.3), 10, 8, 0.01).decay_fraction == 0.3
    # trained once: the second request of the same phase is already in the store
    ckpt = ckpt_path(trunk["dir"], "stable", D1 // TPS)
    kw = dict(store=tmp_path / "s.db", workdir=tmp_path / "w", progress=False)
    first = specialize(tiny_corpus, ckpt, "beta", 16 * TPS, spec=SpecConfig(replay_fraction=0.125,
                       decay_fraction=0.21), **kw)  # fmt: skip
    assert len(first) == 3 and (first["schedule"] == "wsd-spec:warmup=0:decay=0.2:linear").all()
    again = specialize(tiny_corpus, ckpt, "beta", 16 * TPS,
                       spec=SpecConfig(replay_fraction=0.1, lr=trunk_lr(ckpt)), **kw)  # fmt: skip
    assert len(again) == 0 and RunStore(tmp_path / "s.db").read()["run_id"].nunique() == 1


def trunk_lr(ckpt) -> float:
    return load_checkpoint(ckpt)["meta"]["train_config"]["lr"]


def test_specialize_refuses_what_it_cannot_train_before_writing(trunk, tiny_corpus, tmp_path):
    ckpt = ckpt_path(trunk["dir"], "stable", D1 // TPS)
    kw = dict(store=tmp_path / "s.db", workdir=tmp_path / "w", progress=False)
    for spec_tokens, spec, message in [
        # batch 8: round(0.97 × 8) = 8 replay rows, none on the domain
        (8 * TPS, SpecConfig(replay_fraction=0.97), "leaving none to the specialized domain"),
        # round(0.01 × 8) = 0 replay rows: the replay-0 run again, under another run id
        (8 * TPS, SpecConfig(replay_fraction=0.01), "the same run as no replay"),
        # under half a step used to train a whole one; 2 steps are under 1000 tokens
        (100, SpecConfig(), "D' 100 is 0.391 optimizer steps of tiny"),
        (500, SpecConfig(), "so the smallest is 1,024"),
    ]:
        with pytest.raises(BayesplitError, match=re.escape(message)):
            specialize(tiny_corpus, ckpt, "beta", spec_tokens, spec=spec, **kw)
    assert list(tmp_path.iterdir()) == []


def test_repeated_data_is_said_and_recorded(tiny_ladder, tmp_path):
    """D or D' beyond the unique train tokens: a warning line on stderr, and epochs in the rows."""
    import json

    from conftest import make_corpus
    from typer.testing import CliRunner

    from bayesplit.cli import app

    corpus = make_corpus(tmp_path / "small", {"alpha": 3000, "beta": 2000}, val_tokens=512)
    common = ["--corpus", str(corpus), "--store", str(tmp_path / "r.db"), "--json",
              "--no-progress", "--eval-tokens", "256"]  # fmt: skip
    runner = CliRunner()

    def run(*args: str) -> tuple[list[dict], list[str]]:
        res = runner.invoke(app, [*args, *common])
        assert res.exit_code == 0, res.output
        rows = json.loads(res.stdout)["rows"]  # the warning stays out of the JSON
        return rows, [ln for ln in res.stderr.splitlines() if ln.startswith("warning:")]

    d = 32 * TPS  # 8,192 tokens of a 5,000-token mixture
    rows, warned = run("train", "pretrain", "--ladder", str(tiny_ladder), "--model", "tiny",
                       "--branch-at", str(d))  # fmt: skip
    assert warned == [
        "warning: D = 8,192 tokens is 1.64 passes over the 5,000 train tokens of the general "
        "mixture: the data repeats (rows record pretrain_epochs)"
    ]
    assert all(close(r["pretrain_epochs"], d / 5000) and r["spec_epochs"] == 0 for r in rows)
    assert all(r.get("unique_spec_tokens") is None for r in rows)
    (trunk_dir,) = (tmp_path / "r-checkpoints" / "trunks").iterdir()
    ckpt = str(ckpt_path(trunk_dir, "stable", 32))
    spec = ["train", "specialize", "--checkpoint", ckpt, "--domain", "beta"]
    rows, warned = run(*spec, "--tokens", str(12 * TPS))  # 3,072 tokens of beta's 2,000
    assert len(warned) == 1 and "1.54 passes over its 2,000 train tokens" in warned[0]
    for r in rows:
        assert close(r["spec_epochs"], 12 * TPS / 2000) and r["unique_spec_tokens"] == 2000
        assert close(r["pretrain_epochs"], d / 5000)
    rows, warned = run(*spec, "--tokens", str(4 * TPS))
    assert warned == [] and all(r["unique_spec_tokens"] == 4 * TPS for r in rows)
    # replay rows read beta too, so its unique tokens are not known: left blank
    rows, warned = run(*spec, "--tokens", str(12 * TPS), "--replay", "0.25")
    assert "reads 2,304 of its tokens, 1.15 passes" in warned[0]
    assert all(r["unique_spec_tokens"] is None and r["spec_epochs"] == 2304 / 2000 for r in rows)
    stored = RunStore(tmp_path / "r.db").read()
    assert (
        stored["unique_spec_tokens"].notna().sum() == 2 * 2 and stored["spec_epochs"].notna().all()
    )


def test_train_config_from_entry_and_overrides():
    tc = TrainConfig.from_entry(tiny_entry(), eval_tokens=512, device="cpu")
    assert tc.batch_size == 8 and tc.lr == 1e-2 and tc.warmup_steps == 10 and tc.eval_tokens == 512
    with pytest.raises(BayesplitError, match="unknown training settings"):
        TrainConfig.from_entry(tiny_entry(), nonsense=1)
    assert close(tc.cooldown_fraction, 0.1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_trunk_trains_evaluates_and_matches_cpu(tiny_corpus, tmp_path):
    """The whole path on a GPU (bf16 autocast, compile): rows written, losses near the CPU's."""
    entry = tiny_entry()

    def trunk_on(device: str):
        return pretrain(
            tiny_corpus,
            entry,
            workdir=tmp_path / device,
            eval_at=[D1],
            save_at=[D1],
            store=RunStore(tmp_path / f"{device}.db"),
            train=TrainConfig.from_entry(entry, device=device),
            progress=False,
        )

    rows, cpu_rows = trunk_on("cuda"), trunk_on("cpu")
    assert len(rows) == 3 and (rows["pretrain_tokens"] == D1).all()
    assert set(rows["device"]) == {"cuda"} and np.isfinite(rows["loss"]).all()
    cpu = cpu_rows.set_index("eval_domain")["loss"]
    gpu = rows.set_index("eval_domain")["loss"]
    # same seed, data and schedule; bf16 and TF32 arithmetic move the loss a little
    assert np.allclose(gpu.loc[cpu.index], cpu, rtol=0.03), (gpu, cpu)
    trunk_dir = tmp_path / "cuda" / "trunks" / rows["run_id"].iloc[0]
    spec = specialize(
        tiny_corpus,
        ckpt_path(trunk_dir, "stable", D1 // TPS),
        "gamma",
        32 * TPS,
        store=RunStore(tmp_path / "cuda.db"),
        train_overrides={"device": "cuda"},
        progress=False,
    )
    assert len(spec) == 3 and set(spec["device"]) == {"cuda"} and np.isfinite(spec["loss"]).all()


def test_a_corpus_tokenized_elsewhere_trains_with_only_the_contract(tmp_path):
    """Manifest with format, vocab_size, dtype and domains only (no tokenizer, no hashes)."""
    import json

    from conftest import make_corpus
    from typer.testing import CliRunner

    from bayesplit.cli import app

    path = make_corpus(tmp_path / "own", {"alpha": 12_000, "beta": 12_000})
    m = json.loads((path / "manifest.json").read_text())
    minimal = {k: m[k] for k in ("format", "vocab_size", "dtype", "domains")}
    (path / "manifest.json").write_text(json.dumps(minimal))
    corpus = Corpus(path)
    # no recorded hash: one computed from the shards (an empty one made every such corpus
    # share trunks and rows)
    assert corpus.eot_token == -1 and len(corpus.content_sha256) == 64
    assert corpus.n_tokens("alpha", "train") == 12_000 == len(corpus.tokens("alpha"))
    rows = pretrain(path, tiny_entry(), workdir=tmp_path / "w", eval_at=[8 * TPS], progress=False)
    assert (
        sorted(rows["eval_domain"]) == ["alpha", "beta"]
        and (rows["pretrain_tokens"] == 8 * TPS).all()
    )
    with pytest.raises(BayesplitError, match="no tokenizer file in its manifest"):
        corpus.tokenizer()
    with pytest.raises(BayesplitError, match="cannot verify"):
        corpus.verify()
    res = CliRunner().invoke(app, ["corpus", "info", str(path)])
    assert res.exit_code == 0, res.output
    assert "content   sha256 not recorded" in res.output


def test_the_trainer_refuses_a_shard_outside_the_corpus(tiny_corpus, tmp_path):
    import json
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_corpus, bad)
    m = json.loads((bad / "manifest.json").read_text())
    m["domains"]["alpha"]["train"]["file"] = "../elsewhere.bin"
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BayesplitError, match="relative path inside the corpus"):
        pretrain(bad, tiny_entry(), workdir=tmp_path / "w", eval_at=[8 * TPS], progress=False)


def test_a_vocab_size_too_small_for_the_shards_is_one_line_not_an_index_error(tmp_path):
    import json

    from conftest import make_corpus

    path = make_corpus(tmp_path / "own", {"alpha": 12_000})
    m = json.loads((path / "manifest.json").read_text())
    top = max(
        int(Corpus(path).tokens("alpha").max()), int(Corpus(path).tokens("alpha", "val").max())
    )
    m = {k: m[k] for k in ("format", "dtype", "domains")} | {"vocab_size": top}  # one too few
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BayesplitError, match=f"is not below the corpus's vocab_size {top}"):
        pretrain(path, tiny_entry(), workdir=tmp_path / "w", eval_at=[8 * TPS], progress=False)


def test_rows_record_the_mixture_their_trunk_was_pretrained_on(trunk, tiny_corpus, tmp_path):
    from bayesplit.train.config import TrainConfig

    assert set(trunk["store"].read()["pretrain_mixture"]) == {"tokens"}
    tc = TrainConfig.from_entry(tiny_entry(), weights={"beta": 0.5, "alpha": 1})
    rows = pretrain(tiny_corpus, tiny_entry(), workdir=tmp_path / "w", eval_at=[8 * TPS],
                    train=tc, store=RunStore(tmp_path / "r.db"), progress=False)  # fmt: skip
    assert set(rows["pretrain_mixture"]) == {"alpha=0.6667,beta=0.3333"}
    stored = RunStore(tmp_path / "r.db").read()["pretrain_mixture"]
    assert set(stored) == {"alpha=0.6667,beta=0.3333"}
    from bayesplit.train.rows import mixture_label

    # weights are shares: the same mixture is one label however it is written
    assert mixture_label({"beta": 1, "alpha": 2}) == mixture_label({"alpha": 1, "beta": 0.5})
    assert mixture_label({"alpha": 1, "beta": 0, "gamma": 0}) == "alpha=1"


def test_a_specialist_trains_with_its_own_optimizer_settings(trunk, tiny_corpus):
    # the trunk's optimizer state restored the trunk's weight decay and betas as well as its
    # moments: three ids for other settings trained the same run to the bit
    ckpt = ckpt_path(trunk["dir"], "stable", D1 // TPS)
    seen = []

    def run(**overrides):
        from bayesplit.train import loop

        real = loop.Trainer.train

        def spy(self, *a, **k):
            seen.append([(g["weight_decay"], g["betas"]) for g in self.opt.param_groups])
            return real(self, *a, **k)

        loop.Trainer.train = spy
        try:
            rows = specialize(tiny_corpus, ckpt, "alpha", 4 * TPS, train_overrides=overrides,
                              store=None, progress=False)  # fmt: skip
        finally:
            loop.Trainer.train = real
        return rows.set_index("eval_domain")["loss"]

    base = run()
    other = run(weight_decay=5.0, beta2=0.5)
    assert seen[0] == [(0.1, (0.9, 0.95)), (0.0, (0.9, 0.95))]
    assert seen[1] == [(5.0, (0.9, 0.5)), (0.0, (0.9, 0.5))]
    assert not np.allclose(base.to_numpy(), other.loc[base.index].to_numpy(), rtol=0, atol=1e-6)


def test_a_specialists_rows_name_its_trunks_mixture_not_its_replay_mixture(trunk, tiny_corpus):
    ckpt = ckpt_path(trunk["dir"], "stable", D1 // TPS)
    kw = dict(spec=SpecConfig(replay_fraction=0.25), store=None, progress=False)
    plain = specialize(tiny_corpus, ckpt, "alpha", 4 * TPS, **kw)
    mixed = specialize(tiny_corpus, ckpt, "alpha", 4 * TPS,
                       train_overrides={"weights": {"alpha": 1.0, "beta": 3.0}}, **kw)  # fmt: skip
    assert set(mixed["pretrain_mixture"]) == set(plain["pretrain_mixture"]) == {"tokens"}
    assert np.allclose(mixed["pretrain_epochs"], plain["pretrain_epochs"])
    assert mixed["run_id"].iloc[0] != plain["run_id"].iloc[0]  # the replay mixture differs


def test_mixtures_drawn_alike_are_one_trunk(tiny_corpus, tmp_path):
    # alpha=1, alpha=2 and alpha=1,beta=0 draw the same batches: they were three trunks
    # (three ids, three trainings, rows fitted as independent), and two mixture labels
    from bayesplit.train.trunk import model_config, trunk_id_for

    corpus, entry = Corpus(tiny_corpus), tiny_entry()

    def trunk_of(weights: dict) -> str:
        tc = TrainConfig.from_entry(entry, weights=weights)
        return trunk_id_for(entry, model_config(entry, corpus), tc, 0, corpus)

    alone = trunk_of({"alpha": 1.0})
    assert trunk_of({"alpha": 2.0}) == alone == trunk_of({"alpha": 1.0, "beta": 0.0})
    two = trunk_of({"alpha": 1.0, "beta": 0.5})
    assert two == trunk_of({"alpha": 1.0, "beta": 0.5, "gamma": 0.0}) and two != alone
    assert trunk_of({"alpha": 1.0, "beta": 1.0}) != two  # another mixture: another trunk
    kw = dict(workdir=tmp_path / "w", eval_at=[8 * TPS], store=tmp_path / "r.db", progress=False)
    tc = TrainConfig.from_entry(entry, weights={"alpha": 1.0, "gamma": 0.0})
    rows = pretrain(tiny_corpus, entry, train=tc, **kw)
    assert set(rows["trunk_id"]) == {alone} and set(rows["pretrain_mixture"]) == {"alpha=1"}
    again = TrainConfig.from_entry(entry, weights={"alpha": 3.0})
    assert len(pretrain(tiny_corpus, entry, train=again, **kw)) == 0  # already in the store


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"eval_at": "2e4"}, r"eval_at must be a positive number or array of numbers, got '2e4'"),
        ({"save_at": [D1, True]}, "save_at must be .* got an entry True"),
        ({}, "pretrain needs eval_at= .* or save_at= .*both are empty"),
        ({"eval_at": [], "save_at": ()}, "both are empty"),
    ],
)
def test_pretrain_refuses_token_counts_it_would_misread(tiny_corpus, tmp_path, kwargs, message):
    with pytest.raises(BayesplitError, match=message):
        pretrain(tiny_corpus, tiny_entry(), workdir=tmp_path / "w", progress=False, **kwargs)
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("tokens", [True, "2048", float("nan"), -5])
def test_specialize_refuses_a_token_count_it_would_misread(trunk, tiny_corpus, tmp_path, tokens):
    # True was read as 1 token, and trained
    ckpt = ckpt_path(trunk["dir"], "stable", D1 // TPS)
    with pytest.raises(BayesplitError, match=r"spec_tokens=\) must be a positive number"):
        specialize(tiny_corpus, ckpt, "alpha", tokens, store=tmp_path / "s.db", progress=False)
    assert not (tmp_path / "s.db").exists()


def test_a_rerun_for_other_eval_tokens_says_the_stored_rows_are_kept(tiny_ladder, tiny_corpus,
                                                                   tmp_path):  # fmt: skip
    # it said "nothing to do" alone, and the rows kept their first evaluation
    from typer.testing import CliRunner

    from bayesplit.cli import app

    args = ["train", "pretrain", "--ladder", str(tiny_ladder), "--model", "tiny", "--branch-at",
            str(8 * TPS), "--corpus", str(tiny_corpus), "--store", str(tmp_path / "r.db"),
            "--no-progress"]  # fmt: skip
    runner = CliRunner()
    assert runner.invoke(app, [*args, "--eval-tokens", "256"]).exit_code == 0
    again = runner.invoke(app, [*args, "--eval-tokens", "512"])
    assert again.exit_code == 0 and "nothing to do" in again.output
    assert "--eval-tokens 512 does not evaluate rows already stored again" in again.output
    plain = runner.invoke(app, args)
    assert "nothing to do" in plain.output and "--eval-tokens" not in plain.output
    assert set(RunStore(tmp_path / "r.db").read()["eval_tokens"]) == {256}


def test_git_commit_is_bayesplit_s_own_checkout_only(tmp_path, monkeypatch):
    # installed inside a user's git repository (project/.venv/lib/.../bayesplit), every run
    # row recorded that repository's commit as the trainer's
    import importlib.util
    import shutil
    import subprocess
    from pathlib import Path

    from bayesplit.train import runtime

    proj = tmp_path / "userproj"
    pkg = proj / "lib" / "bayesplit" / "train"
    pkg.mkdir(parents=True)
    shutil.copy(runtime.__file__, pkg / "runtime.py")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-C", str(proj)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "user's project"], check=True)
    spec = importlib.util.spec_from_file_location("copied_runtime", pkg / "runtime.py")
    copied = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(__import__("sys").modules, "copied_runtime", copied)  # for dataclasses
    spec.loader.exec_module(copied)
    assert copied.git_commit() is None
    root = Path(runtime.__file__).resolve().parents[2]
    if (root / ".git").exists():  # run from bayesplit's own checkout: its commit
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip
        assert runtime.git_commit() == head
