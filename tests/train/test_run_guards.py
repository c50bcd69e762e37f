"""Guards of the trainer found by an adversarial review: a run that diverges, a cooldown of no
step, token counts without an upper bound, a broken trunk.json of a named trunk, the store
created before the checks, a --max-run-flops no run can meet, and small refusals.

Each test fails on the code before the fix. Refusals are exit 2 and one ``error:`` line,
with nothing new on disk.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from conftest import refused, tiny_entry, write_ladder
from typer.testing import CliRunner

from bayesplit.cli import app
from bayesplit.errors import BayesplitError
from bayesplit.store import RunStore
from bayesplit.train.checkpoint import ckpt_path, load_checkpoint
from bayesplit.train.config import MAX_TOKENS, exact_steps
from bayesplit.train.execute import execute_suggestions, plan_suggestions
from bayesplit.train.specialist import SpecConfig, specialize
from bayesplit.train.trunk import pretrain

runner = CliRunner()
TPS = 8 * 32  # tokens per step of the tiny ladder
D = 8 * TPS  # the branch point of the shared trunk


@pytest.fixture(scope="module")
def trunk(tiny_corpus, tmp_path_factory) -> dict:
    """A trunk of 8 steps with a stable checkpoint at D to branch from (no rows)."""
    root = tmp_path_factory.mktemp("guards")
    pretrain(tiny_corpus, tiny_entry(), workdir=root / "work", save_at=[D], progress=False)
    (trunk_dir,) = (root / "work" / "trunks").iterdir()
    return {"root": root, "dir": trunk_dir, "ckpt": ckpt_path(trunk_dir, "stable", D // TPS)}


@pytest.fixture
def out(tmp_path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


# -- 1. divergence -----------------------------------------------------------------------------
def test_a_diverged_specialist_is_an_error_with_no_rows_no_store_and_no_checkpoint(
    trunk, tiny_corpus, tmp_path
):
    # lr 1e9 turned the loss into NaN: the rows went out with "loss": null (no store) or were
    # refused by the store after training, and the final-step periodic checkpoint made a
    # rerun train nothing and exit 0
    spec = SpecConfig(lr=1e9)
    kw = dict(spec=spec, store=tmp_path / "s.db", workdir=tmp_path / "w", progress=False)
    train = {"checkpoint_every": 4}
    for _ in range(2):  # the rerun diverges again: nothing was left to resume from
        with pytest.raises(BayesplitError, match=r"training diverged: loss nan at step \d+ of run"):
            specialize(tiny_corpus, trunk["ckpt"], "alpha", 8 * TPS, train_overrides=train, **kw)
        assert not (tmp_path / "s.db").exists()
        assert not list((tmp_path / "w").rglob("*.pt"))
    with pytest.raises(BayesplitError, match="lower the learning rate"):  # no store either
        specialize(tiny_corpus, trunk["ckpt"], "alpha", 8 * TPS, spec=spec, progress=False)


def test_a_diverged_specialist_on_the_command_line_is_exit_2(trunk, tiny_corpus, out):
    args = ["train", "specialize", "--corpus", tiny_corpus, "--checkpoint", trunk["ckpt"],
            "--domain", "beta", "--tokens", str(8 * TPS), "--lr", "1e9", "--device", "cpu",
            "--store", out / "s.db", "--no-progress"]  # fmt: skip
    msg = refused(args, "training diverged: loss nan at step", out)
    assert msg.endswith("; lower the learning rate")


def test_a_diverged_trunk_writes_no_rows_and_no_checkpoint(tiny_corpus, tmp_path):
    # a ladder lr of 1e6: the trunk's NaN state was saved as its stable checkpoint
    hot = tiny_entry(lr=1e6)
    with pytest.raises(BayesplitError, match="training diverged: loss nan at step .* of run tiny-"):
        pretrain(tiny_corpus, hot, workdir=tmp_path / "w", eval_at=[D], save_at=[D],
                 store=tmp_path / "s.db", progress=False)  # fmt: skip
    assert list(tmp_path.iterdir()) == []  # no store, no trunk folder


def test_a_periodic_checkpoint_of_a_diverged_state_is_not_resumed(trunk, tiny_corpus, tmp_path):
    """A NaN checkpoint left by an older trainer: the rerun specializes again from the trunk."""
    kw = dict(store=tmp_path / "s.db", workdir=tmp_path / "w", progress=False)
    rows = specialize(tiny_corpus, trunk["ckpt"], "alpha", 8 * TPS, **kw)
    run_dir = tmp_path / "w" / "runs" / rows["run_id"].iloc[0]
    state = load_checkpoint(trunk["ckpt"])
    state["model"] = {k: torch.full_like(v, float("nan")) for k, v in state["model"].items()}
    state["meta"] = {"kind": "spec", "step": 8, "train_time_s": 0.0, "wall_time_s": 0.0}
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.save(state, ckpt_path(run_dir, "periodic", 8))
    again = specialize(tiny_corpus, trunk["ckpt"], "alpha", 8 * TPS, **{**kw, "store": None})
    assert again["loss"].tolist() == pytest.approx(rows["loss"].tolist())
    # and a NaN trunk checkpoint is refused in one line
    bad = tmp_path / "stable-0000000008.pt"
    torch.save(state | {"meta": load_checkpoint(trunk["ckpt"])["meta"]}, bad)
    with pytest.raises(BayesplitError, match="holds weights that are not finite"):
        specialize(tiny_corpus, bad, "alpha", 8 * TPS, progress=False)


# -- 2. a cooldown of no step ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cooldown", "message"),
    [
        # 0, 0.001 and 0.01 all trained a one-step decay under three run ids
        ("0", "cooldown 0 of D = 10,240 tokens (40 optimizer steps of tiny) is 0 of a step"),
        ("0.001", "a cooldown above 0.0125 gives one step at this D (0.025 = 1/40 gives exactly"),
        ("0.01", "or ask for a D of at least 13,056 tokens"),  # 51 steps: 0.51 rounds to 1
    ],
)
def test_a_cooldown_that_rounds_to_no_step_is_refused(
    tiny_corpus, tiny_ladder, out, cooldown, message
):
    args = ["train", "pretrain", "--corpus", tiny_corpus, "--ladder", tiny_ladder,
            "--model", "tiny", "--branch-at", str(40 * TPS), "--cooldown", cooldown,
            "--store", out / "s.db", "--device", "cpu"]  # fmt: skip
    refused(args, message, out)


def test_execute_refuses_a_cooldown_of_no_step_while_planning(tiny_corpus, tiny_ladder, tmp_path):
    # the default 0.1 of a 4-step D is 0.4 of a step: it trained one step (25%) all the same
    items = [{"model": "tiny", "pretrain_tokens": 4 * TPS}]
    kw = dict(ladder=str(tiny_ladder), workdir=tmp_path / "w")
    with pytest.raises(BayesplitError, match=re.escape("0.4 of a step and rounds to no decay")):
        plan_suggestions(items, tiny_corpus, tmp_path / "s.db", **kw)
    items = [{"model": "tiny", "pretrain_tokens": 40 * TPS}]
    with pytest.raises(BayesplitError, match="rounds to no decay step"):
        plan_suggestions(items, tiny_corpus, tmp_path / "s.db", **kw,
                         train_overrides={"cooldown_fraction": 0.001})  # fmt: skip
    assert plan_suggestions(items, tiny_corpus, tmp_path / "s.db", **kw).jobs  # 4 of 40 steps
    assert list(tmp_path.iterdir()) == []


# -- 3. a broken trunk.json of a named trunk ---------------------------------------------------
@pytest.mark.parametrize("content", ["{broken", "", "[1, 2]"])
def test_a_broken_trunk_json_of_branch_from_is_one_line(trunk, tiny_corpus, tiny_ladder, tmp_path, content):  # fmt: skip
    work = tmp_path / "work"
    shutil.copytree(trunk["root"] / "work", work)
    (work / "trunks" / "other").mkdir()
    (work / "trunks" / "other" / "trunk.json").write_text(content)
    items = [{"model": "tiny", "pretrain_tokens": D, "branch_from": "other"}]
    sfile = tmp_path / "s.json"
    sfile.write_text(json.dumps(items))
    args = ["train", "execute", sfile, "--corpus", tiny_corpus, "--ladder", tiny_ladder,
            "--store", tmp_path / "s.db", "--workdir", work, "--dry-run"]  # fmt: skip
    refused(args, "other/trunk.json cannot be read", tmp_path)


# -- 4. token counts without an upper bound ----------------------------------------------------
def test_token_counts_above_2_to_the_53_are_refused(trunk, tiny_corpus, tiny_ladder, out, tmp_path):
    with pytest.raises(BayesplitError, match=re.escape("token counts go up to 2^53")):
        exact_steps(1e30, TPS, "D")
    with pytest.raises(BayesplitError, match="more than a run may train"):
        exact_steps(MAX_TOKENS + TPS, TPS, "D")
    assert exact_steps(MAX_TOKENS, TPS, "D") == MAX_TOKENS // TPS
    pre = ["train", "pretrain", "--corpus", tiny_corpus, "--ladder", tiny_ladder,
           "--model", "tiny", "--store", out / "s.db"]  # fmt: skip
    refused([*pre, "--branch-at", "1e30"], "--branch-at 1e+30 is more than a run may train", out)
    spec = ["train", "specialize", "--corpus", tiny_corpus, "--checkpoint", trunk["ckpt"],
            "--domain", "alpha", "--store", out / "s.db"]  # fmt: skip
    refused([*spec, "--tokens", "1e30"], "--tokens must be at most 2^53", out)
    with pytest.raises(BayesplitError, match="D' 1e\\+30 is more than a run may train"):
        specialize(tiny_corpus, trunk["ckpt"], "alpha", 1e30, workdir=out, progress=False)
    sfile = tmp_path / "s.json"
    sfile.write_text(json.dumps([{"model": "tiny", "pretrain_tokens": 1e30}]))
    args = ["train", "execute", sfile, "--corpus", tiny_corpus, "--ladder", tiny_ladder,
            "--store", out / "s.db"]  # fmt: skip
    refused(args, "suggestion #1: pretrain_tokens 1e+30 is more than a run may train", out)


# -- 5. the store is created only after every check --------------------------------------------
def test_execute_refused_by_a_trunk_json_creates_no_store(trunk, tiny_corpus, tiny_ladder, tmp_path):  # fmt: skip
    work = tmp_path / "work"
    shutil.copytree(trunk["root"] / "work", work)
    (work / "trunks" / trunk["dir"].name / "trunk.json").write_text("")
    items = [{"model": "tiny", "pretrain_tokens": 2 * D}]
    with pytest.raises(BayesplitError, match="trunk.json cannot be read"):
        execute_suggestions(items, tiny_corpus, tmp_path / "s.db", ladder=str(tiny_ladder),
                            workdir=work, progress=False)  # fmt: skip
    assert not (tmp_path / "s.db").exists()
    # another configuration under the same trunk id is refused while planning too
    (work / "trunks" / trunk["dir"].name / "trunk.json").write_text('{"trunk_id": "x"}')
    with pytest.raises(BayesplitError, match="holds a trunk with another configuration"):
        execute_suggestions(items, tiny_corpus, tmp_path / "s.db", ladder=str(tiny_ladder),
                            workdir=work, progress=False)  # fmt: skip
    assert not (tmp_path / "s.db").exists()


def test_pretrain_and_specialize_create_the_store_only_to_write_rows(trunk, tiny_corpus, tmp_path):
    store = tmp_path / "s.db"
    work = tmp_path / "w"
    # a trunk with branch points only writes no rows, so it creates no store
    pretrain(tiny_corpus, tiny_entry(), workdir=work, save_at=[4 * TPS], store=store,
             progress=False)  # fmt: skip
    assert not store.exists()
    kw = dict(store=store, workdir=work, train_overrides={"checkpoint_every": 2}, progress=False)
    rows = specialize(tiny_corpus, trunk["ckpt"], "beta", 4 * TPS, **kw)
    assert len(RunStore(store)) == len(rows) == 3
    assert not len(specialize(tiny_corpus, trunk["ckpt"], "beta", 4 * TPS, **kw))
    # 7. the finished specialist's periodic checkpoints are gone, and so is their folder (and
    # the runs folder, made for the run's lock)
    assert not (work / "runs").exists()


# -- 6. --max-run-flops no run can meet --------------------------------------------------------
def test_loop_refuses_a_max_run_flops_no_run_can_meet(tiny_corpus, tiny_ladder, out):
    args = ["loop", "--corpus", tiny_corpus, "--ladder", tiny_ladder, "--store", out / "s.db",
            "--budget", "1e13", "--seed-tokens", "4096", "--max-run-flops", "1"]  # fmt: skip
    msg = refused(args, "--max-run-flops 1 is below the cheapest run the loop could suggest", out)
    n = tiny_entry()["params"]
    assert f"{6 * n * 409.6:.3g} FLOPs" in msg  # 6 N × the 10% cooldown of D = 4096


# -- 7. small refusals --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"pretrain_tokens": "2560"}, "pretrain_tokens must be a number, got '2560'"),
        ({"params": "40000", "model": None}, "params must be a number, got '40000'"),
        ({"spec_tokens": 2560, "train_domain": 5}, "train_domain must be a domain name"),
        # a hand-edited branch_from was read as "no trunk named"
        ({"branch_from": 5}, "branch_from must be null, a trunk id (text) or an object"),
        ({"branch_from": ["t1"]}, "branch_from must be null, a trunk id"),
        ({"branch_from": {"trunk": 7}}, "branch_from.trunk must be a trunk id (text) or null"),
    ],
)
def test_execute_refuses_text_counts_and_a_domain_that_is_no_name(
    tiny_corpus, tiny_ladder, out, tmp_path, fields, message
):
    item = {"model": "tiny", "pretrain_tokens": 48 * TPS} | fields
    sfile = tmp_path / "s.json"
    sfile.write_text(json.dumps([item]))
    args = ["train", "execute", sfile, "--corpus", tiny_corpus, "--ladder", tiny_ladder,
            "--store", out / "s.db"]  # fmt: skip
    refused(args, f"suggestion #1: {message}", out)


@pytest.mark.parametrize("branch_at", ["2560,,5120", "2560,", ",2560"])
def test_branch_at_with_an_empty_item_is_refused(tiny_corpus, tiny_ladder, out, branch_at):
    args = ["train", "pretrain", "--corpus", tiny_corpus, "--ladder", tiny_ladder,
            "--model", "tiny", "--branch-at", branch_at, "--store", out / "s.db"]  # fmt: skip
    refused(args, "--branch-at has an empty item", out)


def test_ladder_of_a_folder_says_it_is_a_folder(tmp_path):
    ladder = write_ladder(tmp_path / "l.yaml", [tiny_entry()])
    msg = refused(["train", "ladder", tmp_path], "is a folder, not a model ladder", tmp_path)
    assert "no such" not in msg
    assert runner.invoke(app, ["train", "ladder", str(ladder)]).exit_code == 0


def test_a_specialist_resumed_at_its_last_step_keeps_its_throughput(trunk, tiny_corpus, tmp_path):
    """Interrupted while evaluating, a run resumes at its last step and trains 0 s: its rows
    had tokens_per_s and mfu NaN (stored as null). They count the whole run, as a trunk's."""
    kw = dict(workdir=tmp_path / "w", progress=False)
    rows = specialize(tiny_corpus, trunk["ckpt"], "alpha", 8 * TPS, **kw)
    run_dir = tmp_path / "w" / "runs" / rows["run_id"].iloc[0]
    state = load_checkpoint(trunk["ckpt"])
    state["meta"] = {"kind": "spec", "step": 8, "train_time_s": 4.0, "wall_time_s": 5.0}
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.save(state, ckpt_path(run_dir, "periodic", 8))
    again = specialize(tiny_corpus, trunk["ckpt"], "alpha", 8 * TPS, **kw)
    assert again["tokens_per_s"].tolist() == pytest.approx([8 * TPS / 4.0] * len(again))


# -- 8. two runs of one specialist at once ------------------------------------------------------
def test_a_second_run_of_a_specialist_is_refused_before_it_trains(
    trunk, tiny_corpus, tmp_path, monkeypatch
):
    """Started while the first one trained, a second run of the same specialist trained in full
    and was refused only when its rows clashed with the first one's in the store. It is now
    refused at once, in one line naming the lock; the first run writes its rows, and the lock
    goes with it."""
    from bayesplit.train.loop import Trainer

    store, work = tmp_path / "s.db", tmp_path / "w"
    args = ["train", "specialize", "--corpus", tiny_corpus, "--checkpoint", trunk["ckpt"],
            "--domain", "gamma", "--tokens", str(4 * TPS), "--device", "cpu",
            "--store", store, "--workdir", work, "--no-progress"]  # fmt: skip
    args = [str(a) for a in args]
    real_train, trained, second = Trainer.train, [], []

    def train(self, *a, **kw):  # the second run starts while the first one trains
        trained.append(self.run_id)
        if len(trained) == 1:
            second.append(runner.invoke(app, args))
        return real_train(self, *a, **kw)

    monkeypatch.setattr(Trainer, "train", train)
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    (res,) = second
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    lock = work / "runs" / f"{trained[0]}.lock"
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "is being trained by another run (lock taken by pid" in lines[0]
    assert lines[0].endswith(f"wait for it to finish (its lock: {lock})")
    assert len(trained) == 1  # the second run trained nothing
    assert len(RunStore(store)) == 3
    assert not work.exists()  # the lock went with the first run, and the folders made for it


def test_a_second_pretraining_of_a_trunk_is_refused_before_it_trains(
    tiny_corpus, tmp_path, monkeypatch
):
    """Two pretrainings of one trunk at once both trained it in full, writing the same
    checkpoints, and the second was refused only by the store's unique key. The second is
    now refused at once; the first writes its rows, and its lock goes with it."""
    from bayesplit.train.loop import Trainer

    store, work = tmp_path / "s.db", tmp_path / "w"
    kw = dict(workdir=work, eval_at=[D], store=store, progress=False)
    real_train, trained, second = Trainer.train, [], []

    def train(self, *a, **k):  # the second run starts while the first one trains
        trained.append(self.run_id)
        if len(trained) == 1:
            with pytest.raises(BayesplitError, match="is being trained by another run") as exc:
                pretrain(tiny_corpus, tiny_entry(), **kw)
            second.append(str(exc.value))
        return real_train(self, *a, **k)

    monkeypatch.setattr(Trainer, "train", train)
    rows = pretrain(tiny_corpus, tiny_entry(), **kw)
    trunk_id = rows["trunk_id"].iloc[0]
    (message,) = second
    assert message.startswith(f"trunk {trunk_id} is being trained by another run (lock taken")
    assert message.endswith(f"(its lock: {work / 'trunks' / trunk_id}.lock)")
    # the first run trained the trunk and its decay; the second, nothing
    assert trained == [trunk_id, trunk_id] and len(RunStore(store)) == 3
    assert [p.name for p in (work / "trunks").iterdir()] == [trunk_id]  # no lock left
    assert len(pretrain(tiny_corpus, tiny_entry(), **kw)) == 0  # done: no lock needed


def test_a_lock_left_by_a_killed_run_does_not_keep_its_rerun_out(tmp_path):
    """A run killed outright left its lock file, and every rerun was refused until it was
    deleted by hand; the lock is the file's flock, which the system drops with the run."""
    import subprocess
    import sys

    from bayesplit.train.checkpoint import run_lock

    work = tmp_path / "w"
    held = work / "trunks" / "t.lock"
    # a process that takes the lock and is killed while holding it
    code = ("import os, sys\nfrom bayesplit.train.checkpoint import run_lock\n"
            "with run_lock(sys.argv[1], 't', kind='trunk'):\n    print('held', flush=True)\n"
            "    os.kill(os.getpid(), 9)\n")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code, str(work)], capture_output=True, text=True)
    assert proc.returncode == -9 and proc.stdout == "held\n", proc.stderr
    assert held.read_text().startswith("pid ")  # its file is still there
    with run_lock(work, "t", kind="trunk"):
        assert held.read_text().startswith(f"pid {os.getpid()} ")
        refusal = pytest.raises(BayesplitError, match="trunk t is being trained by another run")
        with refusal, run_lock(work, "t", kind="trunk"):  # held by this run: refused
            pass
    assert not held.exists()
    # a file system without flock: one line, and nothing left of the lock or its folders
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fcntl, "flock", no_locks)
        refusal = pytest.raises(BayesplitError, match="the workdir's file system does not take")
        with refusal, run_lock(tmp_path / "nfs", "t"):
            pass
    assert not (tmp_path / "nfs").exists()


@pytest.mark.parametrize("bad", [None, "", 5, b"w"])
def test_the_trainers_refuse_a_path_that_is_no_path(trunk, tiny_corpus, tiny_ladder, tmp_path, monkeypatch, bad):  # fmt: skip
    """None or a number was a TypeError from pathlib deep in the run; "" was the current
    folder (checkpoints written next to the user's files). Nothing is written."""
    from bayesplit.train.closed_loop import run_loop

    monkeypatch.chdir(tmp_path)
    entry, store = tiny_entry(), tmp_path / "s.db"
    calls = {
        "workdir": [
            lambda: pretrain(tiny_corpus, entry, workdir=bad, progress=False),
            lambda: execute_suggestions([], tiny_corpus, store, workdir=bad, progress=False),
            lambda: specialize(
                tiny_corpus,
                trunk["ckpt"],
                "gamma",
                4 * TPS,
                workdir=bad if bad is not None else 5,
                progress=False,
            ),  # fmt: skip
            lambda: run_loop(
                tiny_corpus,
                store,
                budget=1e13,
                workdir=bad if bad is not None else 5,
                progress=False,
            ),  # fmt: skip
        ],
        "checkpoint": [
            lambda: specialize(tiny_corpus, bad, "gamma", 4 * TPS, progress=False),
            lambda: load_checkpoint(bad),
        ],
        "corpus": [lambda: run_loop(bad, store, budget=1e13, progress=False)],
        "store": [lambda: run_loop(tiny_corpus, bad, budget=1e13, progress=False)],
    }
    for what, tries in calls.items():
        for call in tries:
            with pytest.raises(BayesplitError, match=f"^{what} (is empty|must be a file path)"):
                call()
    assert list(tmp_path.iterdir()) == []


# -- 8. rows the run store would refuse after training -----------------------------------------
def test_a_model_below_1000_parameters_is_refused_before_it_trains(tiny_corpus, tmp_path):
    # it trained to the end, then the store said "params (N) below 1000 looks like the wrong
    # unit" and an empty store was left
    small = tiny_entry(n_layer=1, n_head=1, d_model=8, d_ff=8)
    assert small["params"] < 1000
    with pytest.raises(BayesplitError, match=f"N = {small['params']:,} parameters, and the run"):
        pretrain(tiny_corpus, small, workdir=tmp_path / "w", eval_at=[D], save_at=[D],
                 store=tmp_path / "s.db", progress=False)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_of_too_few_pretraining_tokens_is_refused_before_it_trains(trunk, tiny_corpus, tmp_path):  # fmt: skip
    # a step-0 stable checkpoint (a cooldown of 0.9 makes one): specialized to the end, then
    # "pretrain_tokens (D) must be > 0" and an empty store
    state = load_checkpoint(trunk["ckpt"])
    state["meta"] = {**state["meta"], "tokens": 0, "step": 0}
    early = tmp_path / "stable-0000000000.pt"
    torch.save(state, early)
    with pytest.raises(BayesplitError, match="D = 0 pretraining tokens, and the run store refuses"):
        specialize(tiny_corpus, early, "alpha", 8 * TPS, store=tmp_path / "s.db",
                   workdir=tmp_path / "w", progress=False)  # fmt: skip
    assert [p.name for p in tmp_path.iterdir()] == [early.name]


def test_a_validation_loss_the_store_would_refuse_is_divergence(trunk, tiny_corpus, tmp_path):
    # a finite loss above 20 nats/token (lr 3 on a small model): the store refused the rows
    # after training as "looks like a perplexity", and an empty store was left
    from bayesplit.train.config import TrainConfig
    from bayesplit.train.corpus import Corpus
    from bayesplit.train.loop import Trainer
    from bayesplit.train.rows import write_rows
    from bayesplit.train.runtime import make_runtime
    from bayesplit.train.trunk import model_config

    entry = tiny_entry()
    corpus = Corpus(tiny_corpus)
    tc = TrainConfig.from_entry(entry, device="cpu")
    rt = make_runtime(tc)
    tr = Trainer(model_config(entry, corpus), tc, rt, 0)
    with torch.no_grad():
        for p in tr.model.parameters():
            p.mul_(300.0)  # confident and wrong: a large, finite cross-entropy
    with pytest.raises(BayesplitError, match=r"training diverged: validation loss [\d.e+]+ "
                       r"nats/token on 'alpha' after step 0, above the run store's 20 "
                       r"\(a uniform guess over 64 tokens scores 4.16\)"):  # fmt: skip
        tr.evaluate(corpus, 2048)
    # and rows the store would refuse never create it
    row = {"run_id": "r", "params": 5e4, "pretrain_tokens": 1e5, "spec_tokens": 0,
           "train_domain": None, "eval_domain": "alpha", "loss": 25.0, "seed": 0}  # fmt: skip
    with pytest.raises(BayesplitError, match="looks like a perplexity"):
        write_rows(tmp_path / "s.db", [row], rt)
    assert list(tmp_path.iterdir()) == []


def test_a_specialist_of_another_seed_or_batch_is_another_run(trunk, tiny_corpus, tmp_path):
    # seed=2 after seed=1 trained nothing: its run id was the same, so "already in the store"
    from bayesplit.train.config import TrainConfig

    kw = dict(store=tmp_path / "s.db", workdir=tmp_path / "w", progress=False)
    base = specialize(tiny_corpus, trunk["ckpt"], "alpha", 4 * TPS, **kw)
    again = specialize(tiny_corpus, trunk["ckpt"], "alpha", 4 * TPS, **kw)
    assert len(again) == 0  # the same run: in the store already
    one = specialize(tiny_corpus, trunk["ckpt"], "alpha", 4 * TPS, seed=1, **kw)
    two = specialize(tiny_corpus, trunk["ckpt"], "alpha", 4 * TPS, seed=2, **kw)
    ids = [f["run_id"].iloc[0] for f in (base, one, two)]
    assert len(set(ids)) == 3 and ids[1].endswith(".seed1") and ids[2].endswith(".seed2")
    assert base["run_id"].iloc[0] == ids[0] and ".seed" not in ids[0]  # the default id kept
    trunk_tc = load_checkpoint(trunk["ckpt"])["meta"]["train_config"]
    half = TrainConfig(**{**trunk_tc, "batch_size": 4})
    other = specialize(tiny_corpus, trunk["ckpt"], "alpha", 4 * TPS, train=half, **kw)
    assert ".train-" in other["run_id"].iloc[0]
    assert len(RunStore(tmp_path / "s.db").read()["run_id"].unique()) == 4


# -- 8. the Python train functions, named trunks -------------------------------------------------
def _store_of_another_corpus(path: Path) -> RunStore:
    import pandas as pd

    row = dict(run_id="r", params=1e5, pretrain_tokens=2e4, eval_domain="alpha", loss=3.0,
               corpus_sha256="f" * 64)  # fmt: skip
    store = RunStore(path)
    store.append(pd.DataFrame([row]))
    return store


@pytest.mark.parametrize("as_object", [False, True])
def test_the_python_train_functions_refuse_a_store_of_another_corpus(
    trunk, tiny_corpus, tiny_ladder, tmp_path, as_object
):
    # only the train commands checked: execute_suggestions, pretrain and specialize in
    # Python appended rows of two corpora (two tokenizers' nats) to one store
    store = _store_of_another_corpus(tmp_path / "s.db")
    given = store if as_object else store.path
    work = tmp_path / "work"
    msg = "holds rows trained on another corpus"
    items = [{"model": "tiny", "pretrain_tokens": D}]
    with pytest.raises(BayesplitError, match=msg):
        execute_suggestions(items, tiny_corpus, given, ladder=str(tiny_ladder), workdir=work,
                            progress=False)  # fmt: skip
    with pytest.raises(BayesplitError, match=msg):
        pretrain(tiny_corpus, tiny_entry(), workdir=work, eval_at=[D], store=given,
                 progress=False)  # fmt: skip
    with pytest.raises(BayesplitError, match=msg):
        specialize(tiny_corpus, trunk["ckpt"], "alpha", 4 * TPS, workdir=work, store=given,
                   progress=False)  # fmt: skip
    assert len(store.read()) == 1
    assert not work.exists()


def test_a_named_trunk_of_this_configuration_is_branched_from(tiny_corpus, tiny_ladder, tmp_path):  # fmt: skip
    # a trunk saved under another id was used only when the default trunk was there too
    # (it compared with that trunk's trunk.json): suggest priced the branch off it, and
    # execute trained a new trunk from step 0
    work = tmp_path / "work"
    pretrain(tiny_corpus, tiny_entry(), workdir=work, save_at=[D], trunk_id="mytrunk",
             progress=False)  # fmt: skip
    items = [{"model": "tiny", "pretrain_tokens": D, "spec_tokens": 4 * TPS,
              "train_domain": "alpha", "branch_from": {"trunk": "mytrunk"}}]  # fmt: skip
    plan = plan_suggestions(items, tiny_corpus, tmp_path / "s.db", ladder=str(tiny_ladder),
                            workdir=work)  # fmt: skip
    assert [job.trunk_id for job in plan.jobs] == ["mytrunk"]
    assert not any("mytrunk" in note for note in plan.notes)
    other = plan_suggestions(items, tiny_corpus, tmp_path / "s.db", ladder=str(tiny_ladder),
                             workdir=work, seed=1)  # another seed: another trunk  # fmt: skip
    assert [job.trunk_id for job in other.jobs] != ["mytrunk"]
    assert any("'mytrunk' is not in" in note for note in other.notes)
    # a trunk folder renamed from another id: pretraining refuses its trunk.json, so it is
    # not branched from (it was, and the plan then refused it)
    (work / "trunks" / "mytrunk").rename(work / "trunks" / "moved")
    items[0]["branch_from"] = {"trunk": "moved"}
    moved = plan_suggestions(items, tiny_corpus, tmp_path / "s.db", ladder=str(tiny_ladder),
                             workdir=work)  # fmt: skip
    assert [job.trunk_id for job in moved.jobs] != ["moved"]
    assert any("'moved' is not in" in note for note in moved.notes)
    # a name longer than the file system takes (ENAMETOOLONG) was a traceback
    items[0]["branch_from"] = {"trunk": "x" * 300}
    long = plan_suggestions(items, tiny_corpus, tmp_path / "s.db", ladder=str(tiny_ladder),
                            workdir=work)  # fmt: skip
    assert any("is not in" in note and "xxxx" in note for note in long.notes)


@pytest.mark.parametrize("name", ["../other/trunks/t", "/abs/trunks/t", "..", "a\\b"])
def test_a_trunk_id_that_is_a_path_reaches_no_other_workdir(
    tiny_corpus, tiny_ladder, tmp_path, name
):
    # a path in branch_from (or pretrain's trunk_id) reached a trunk in another workdir;
    # in branch_from it is a note (suggest names an imported run's id, "org/model", there)
    items = [{"model": "tiny", "pretrain_tokens": D, "branch_from": {"trunk": name}}]
    plan = plan_suggestions(items, tiny_corpus, tmp_path / "s.db", ladder=str(tiny_ladder),
                            workdir=tmp_path / "work")  # fmt: skip
    (job,) = plan.jobs
    assert job.trunk_id != name and "/" not in job.trunk_id
    assert any(f"trunk {name!r} is not a trunk in" in note for note in plan.notes)
    with pytest.raises(BayesplitError, match="trunk_id must be a trunk id .* not a path"):
        pretrain(tiny_corpus, tiny_entry(), workdir=tmp_path / "work", eval_at=[D],
                 trunk_id=name, progress=False)  # fmt: skip
    assert list(tmp_path.iterdir()) == []
