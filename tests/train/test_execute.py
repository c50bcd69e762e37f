"""Executing suggestions: grouping into trunks, reuse, launchers (DDP, submitit), CLI errors."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

pytest.importorskip("torch")
from conftest import refused, tiny_entry
from typer.testing import CliRunner

from bayesplit.cli import app
from bayesplit.errors import BayesplitError
from bayesplit.store import RunStore
from bayesplit.train.checkpoint import list_checkpoints, load_checkpoint
from bayesplit.train.execute import execute_suggestions, plan_suggestions

runner = CliRunner()
TPS = 8 * 32
D1, D2, D3 = 48 * TPS, 96 * TPS, 144 * TPS
DP = 16 * TPS


def suggestions() -> list[dict]:
    n = tiny_entry()["params"]
    info = {"cost_flops": 1e9, "value": 0.1, "reason": "test", "predicted_loss": {"median": 2}}
    return [
        {"params": n, "pretrain_tokens": D1, "spec_tokens": 0, "train_domain": None,
         "model": "tiny", "branch_from": None, **info},
        # no model name: the ladder entry nearest params
        {"params": n * 1.01, "pretrain_tokens": D2, "spec_tokens": 0, "train_domain": None},
        {"params": n, "pretrain_tokens": D1, "spec_tokens": DP, "train_domain": "gamma",
         "model": "tiny", "branch_from": {"trunk": "suggested", "params": n, "pretrain_tokens": D1}},
        {"params": n, "pretrain_tokens": D1, "spec_tokens": DP, "train_domain": "alpha",
         "model": "tiny", "branch_from": None, **info},
        # a duplicate of the first: one row set, not two
        {"params": n, "pretrain_tokens": D1, "spec_tokens": 0, "model": "tiny"},
    ]  # fmt: skip


@pytest.fixture(scope="module")
def executed(tiny_corpus, tiny_ladder, tmp_path_factory):
    root = tmp_path_factory.mktemp("execute")
    kw = dict(ladder=str(tiny_ladder), workdir=root / "work")
    plan = plan_suggestions(suggestions(), tiny_corpus, root / "runs.db", **kw)
    rows = execute_suggestions(suggestions(), tiny_corpus, root / "runs.db", progress=False, **kw)
    return {"root": root, "plan": plan, "rows": rows, "kw": kw}


def test_suggestions_become_one_trunk_and_branches(executed):
    plan = executed["plan"]
    assert len(plan.jobs) == 1
    job = plan.jobs[0]
    assert job.entry["name"] == "tiny" and job.eval_at == [D1, D2]
    assert job.specs == [(D1, "alpha", DP), (D1, "gamma", DP)]
    assert job.trunk_step == 0 and plan.done == []
    rows = executed["rows"]
    assert len(rows) == 2 * 3 + 2 * 3
    general = rows[rows["spec_tokens"] == 0]
    assert set(general["pretrain_tokens"]) == {D1, D2} and general["train_domain"].isna().all()
    assert (general["run_id"] == job.trunk_id).all()
    spec = rows[rows["spec_tokens"] > 0]
    assert set(spec["train_domain"]) == {"alpha", "gamma"} and (spec["pretrain_tokens"] == D1).all()
    assert (spec["trunk_id"] == job.trunk_id).all() and spec["run_id"].nunique() == 2
    assert len(RunStore(executed["root"] / "runs.db")) == 12


def test_second_execute_trains_nothing(executed, tiny_corpus):
    store = executed["root"] / "runs.db"
    trunk_dir = executed["root"] / "work" / "trunks" / executed["plan"].jobs[0].trunk_id
    before = {p.name: p.stat().st_mtime_ns for p in trunk_dir.iterdir()}
    plan = plan_suggestions(suggestions(), tiny_corpus, store, **executed["kw"])
    assert plan.jobs == [] and len(plan.done) == 5
    rows = execute_suggestions(suggestions(), tiny_corpus, store, progress=False, **executed["kw"])
    assert len(rows) == 0 and len(RunStore(store)) == 12
    assert {p.name: p.stat().st_mtime_ns for p in trunk_dir.iterdir()} == before


def test_another_cooldown_is_new_general_rows_on_the_same_trunk(executed, tiny_corpus):
    # a ladder's train block or the loop's overrides set it; the store has the default's rows
    store = executed["root"] / "runs.db"
    plan = plan_suggestions(
        suggestions(), tiny_corpus, store, train_overrides={"cooldown_fraction": 0.5},
        **executed["kw"],
    )  # fmt: skip
    (job,) = plan.jobs
    assert job.trunk_id == executed["plan"].jobs[0].trunk_id  # the stable trunk is shared
    assert job.eval_at == [D1, D2] and job.specs == []  # specialists branch before any cooldown
    assert plan.done == [2, 3]


def test_a_longer_trunk_extends_the_existing_one(executed, tiny_corpus, tmp_path):
    store = tmp_path / "runs.db"  # a new store: the general rows are recomputed from checkpoints
    trunk_dir = executed["root"] / "work" / "trunks" / executed["plan"].jobs[0].trunk_id
    have = list_checkpoints(trunk_dir)
    reached = max([*have["stable"], *have["periodic"]])
    old = {s: p.stat().st_mtime_ns for s, p in have["stable"].items()}
    more = [{"model": "tiny", "pretrain_tokens": D3, "spec_tokens": 0}]
    plan = plan_suggestions(more, tiny_corpus, store, **executed["kw"])
    assert plan.jobs[0].trunk_step == reached > 0
    rows = execute_suggestions(more, tiny_corpus, store, progress=False, **executed["kw"])
    assert list(rows["pretrain_tokens"].unique()) == [D3]
    new = list_checkpoints(trunk_dir)["stable"]
    assert {s: new[s].stat().st_mtime_ns for s in old} == old  # old checkpoints untouched
    top = load_checkpoint(new[max(new)])["meta"]
    ref = load_checkpoint(new[max(old)])["meta"]
    assert max(new) > max(old) and top["train_losses"][: max(old)] == ref["train_losses"]


def test_cli_execute_json_and_dry_run(executed, tiny_corpus, tiny_ladder, tmp_path):
    sfile = tmp_path / "suggestions.json"
    sfile.write_text(json.dumps(suggestions()))
    common = ["--corpus", str(tiny_corpus), "--store", str(tmp_path / "runs.db"),
              "--ladder", str(tiny_ladder), "--workdir", str(executed["root"] / "work")]  # fmt: skip
    dry = runner.invoke(app, ["train", "execute", str(sfile), *common, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert len(json.loads(dry.stdout)["jobs"]) == 1
    res = runner.invoke(app, ["train", "execute", str(sfile), *common, "--json", "--no-progress"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["rows_written"] == 12
    # the trunk was reused: the same losses as the first execute (bitwise on CPU)
    ref = executed["rows"].set_index(["run_id", "eval_domain", "step"])["loss"]
    for r in out["rows"]:
        assert r["loss"] == ref[(r["run_id"], r["eval_domain"], r["step"])]


def test_cli_pretrain_and_ladder(tiny_corpus, tiny_ladder, tmp_path):
    res = runner.invoke(app, ["train", "ladder", str(tiny_ladder), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)[0]["name"] == "tiny"
    args = ["train", "pretrain", "--corpus", str(tiny_corpus), "--model", "tiny", "--ladder",
            str(tiny_ladder), "--branch-at", "2k", "--store", str(tmp_path / "r.db"), "--json",
            "--no-progress", "--eval-tokens", "512"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["rows_written"] == 3 and out["rows"][0]["pretrain_tokens"] == 8 * TPS
    assert out["rows"][0]["eval_tokens"] == 512


def _error(args: list[str]) -> str:
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def test_suggestions_are_read_from_stdin_and_from_a_pipe(tiny_corpus, tiny_ladder, tmp_path):
    # `suggest --json | bayesplit train execute - ...` and `<(...)` were "no such file"
    items = suggestions()[:2]
    base = ["--corpus", str(tiny_corpus), "--store", str(tmp_path / "r.db"), "--ladder",
            str(tiny_ladder), "--workdir", str(tmp_path / "w"), "--dry-run", "--json"]  # fmt: skip
    res = runner.invoke(app, ["train", "execute", "-", *base], input=json.dumps(items))
    assert res.exit_code == 0, res.output
    from_stdin = json.loads(res.stdout)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_text, args=(json.dumps(items),))
    writer.start()
    res = runner.invoke(app, ["train", "execute", str(fifo), *base])
    writer.join()
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == from_stdin and from_stdin["jobs"]
    res = runner.invoke(app, ["train", "execute", "-", *base], input="[{")
    assert res.exit_code == 2 and "error: standard input: not valid JSON" in res.stderr
    assert not (tmp_path / "r.db").exists() and not (tmp_path / "w").exists()


def test_bad_inputs_exit_2(tiny_corpus, tiny_ladder, tmp_path):
    good = tmp_path / "s.json"
    good.write_text(json.dumps(suggestions()[:1]))
    base = ["--store", str(tmp_path / "r.db"), "--ladder", str(tiny_ladder), "--workdir",
            str(tmp_path / "w")]  # fmt: skip
    ex = ["train", "execute"]
    assert "no corpus" in _error([*ex, str(good), "--corpus", str(tmp_path / "none"), *base])
    assert "no such suggestions file" in _error(
        [*ex, str(tmp_path / "missing.json"), "--corpus", str(tiny_corpus), *base]
    )
    assert "is a folder, not a suggestions file" in _error(
        [*ex, str(tmp_path), "--corpus", str(tiny_corpus), *base]
    )
    for text, msg in [
        ("{not json", "not valid JSON"),
        ('{"a": 1}', "expected a JSON list"),
        # which suggestion was not said, where every other refusal says it
        ('[{"model": "tiny", "pretrain_tokens": 1e4}, {"model": "huge", "pretrain_tokens": 1e4}]',
         "suggestion #2: unknown model 'huge'"),
        ('[{"model": 5, "pretrain_tokens": 1e4}]',
         "suggestion #1: model must be a ladder size's name (text), got 5"),
        ('[{"model": "tiny", "pretrain_tokens": 1e4, "spec_tokens": 1e4}]', "needs a train_domain"),
        ('[{"model": "tiny", "pretrain_tokens": 1e4, "spec_tokens": 1e4, "train_domain": "law"}]',
         "suggestion #1: unknown domain 'law'"),
        ('[{"model": "tiny", "pretrain_tokens": "lots"}]', "must be a number"),
        ('[{"pretrain_tokens": 1e4}]', "needs params or model"),
        # the named model was trained, its rows recording another N than asked, unsaid
        ('[{"model": "tiny", "params": 1e9, "pretrain_tokens": 1e4}]',
         "suggestion #1: model tiny has N="),
    ]:  # fmt: skip
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        assert msg in _error([*ex, str(bad), "--corpus", str(tiny_corpus), *base]), text
    assert "unknown launcher" in _error(
        [*ex, str(good), "--corpus", str(tiny_corpus), *base, "--launcher", "mpi"]
    )
    assert "no such model ladder" in _error(
        [*ex, str(good), "--corpus", str(tiny_corpus), "--store", str(tmp_path / "r.db"),
         "--ladder", str(tmp_path / "nope.yaml")]
    )  # fmt: skip
    pre = ["train", "pretrain", "--corpus", str(tiny_corpus), "--ladder", str(tiny_ladder)]
    assert "unknown model" in _error([*pre, "--model", "giant", "--branch-at", "1e4"])
    assert "not a number" in _error([*pre, "--model", "tiny", "--branch-at", "many"])
    spec = ["train", "specialize", "--corpus", str(tiny_corpus), "--domain", "alpha"]
    assert "no such checkpoint" in _error(
        [*spec, "--checkpoint", str(tmp_path / "x.pt"), "--tokens", "1e4"]
    )


def test_ddp_two_processes_match_one(executed, tiny_corpus, tmp_path, monkeypatch):
    """torchrun with 2 gloo processes (each half of every batch) ≈ one process on the whole batch."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))  # where torchrun made its log folder
    one = [{"model": "tiny", "pretrain_tokens": D1, "spec_tokens": 0}]
    rows = execute_suggestions(
        one,
        tiny_corpus,
        tmp_path / "runs.db",
        ladder=executed["kw"]["ladder"],
        workdir=tmp_path / "work",
        launcher="torchrun",
        nproc=2,
        progress=False,
    )
    assert len(rows) == 3 and (rows["world_size"] == 2).all()
    ref = executed["rows"]
    ref = ref[(ref["spec_tokens"] == 0) & (ref["pretrain_tokens"] == D1)]
    ref = ref.set_index("eval_domain")["loss"]
    for _, r in rows.iterrows():
        assert r["loss"] == pytest.approx(ref[r["eval_domain"]], abs=2e-3)
    assert len(RunStore(tmp_path / "runs.db")) == 3
    # the job file, the rows file and torchrun's log folder (/tmp/torchelastic_*) stayed
    assert [p.name for p in (tmp_path / "work").iterdir()] == ["trunks"]
    assert not list(tmp.glob("torchelastic_*"))


def test_slurm_launcher_with_submitit_local_executor(executed, tiny_corpus, tmp_path, monkeypatch):
    import submitit

    submit, submitted = submitit.AutoExecutor.submit, []

    def counted(self, *args, **kwargs):
        submitted.append(args)
        return submit(self, *args, **kwargs)

    monkeypatch.setattr(submitit.AutoExecutor, "submit", counted)
    one = [
        {"model": "tiny", "pretrain_tokens": D1, "spec_tokens": 0},
        {"model": "tiny", "pretrain_tokens": D1, "spec_tokens": DP, "train_domain": "gamma"},
    ]
    rows = execute_suggestions(
        one,
        tiny_corpus,
        tmp_path / "runs.db",
        ladder=executed["kw"]["ladder"],
        workdir=tmp_path / "work",
        launcher="slurm",
        launcher_options={"cluster": "local", "timeout_min": 10},
        progress=False,
    )
    assert len(rows) == 6 and len(RunStore(tmp_path / "runs.db")) == 6
    ref = executed["rows"].set_index(["run_id", "eval_domain", "step"])["loss"]
    for _, r in rows.iterrows():
        assert r["loss"] == pytest.approx(ref[(r["run_id"], r["eval_domain"], r["step"])], abs=1e-5)
    assert len(submitted) == 1  # the job ran through submitit
    # and its job file, submitit's pickles and its logs stayed
    assert [p.name for p in (tmp_path / "work").iterdir()] == ["trunks"]


def test_a_failed_launch_leaves_its_logs_only(tmp_path, monkeypatch):
    """A failed torchrun or slurm job left its job file, and submitit's pickles, behind;
    a failed slurm job was a traceback. Its logs are kept, and named in one line."""
    from bayesplit.train.execute import _slurm, _torchrun

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    work = tmp_path / "work"
    bad = {"trunk_id": "t", "corpus": str(tmp_path / "gone")}  # the job fails at once
    with pytest.raises(BayesplitError, match=r"torchrun job t failed with exit code 1 \("):
        _torchrun(bad, work, 1)
    # its processes printed their messages, and torchrun's log folder held empty folders only
    assert list(work.iterdir()) == [] and not list(tmp.glob("torchelastic_*"))
    with pytest.raises(BayesplitError, match="slurm job t failed: .*BayesplitError: corpus") as err:
        _slurm([bad], work, {"cluster": "local", "timeout_min": 5})
    (message,) = str(err.value).splitlines()
    logs = [Path(p) for p in message.split("its logs are kept: ")[1].split(", ")]
    assert sorted(work.rglob("*")) == sorted([work / "submitit", *logs])
    assert f"corpus folder {tmp_path / 'gone'} does not exist" in logs[0].read_text()


@pytest.mark.parametrize(
    ("launcher", "options", "message"),
    [
        # each rank refused it after the launch, and a RuntimeError traceback followed
        ("torchrun", {"nproc": 3}, "batch_size 8 is not divisible by --nproc 3"),
        ("slurm", {"launcher_options": {"cluster": "bogus"}}, "slurm launcher: .*bogus"),
        # the local launcher trained in one process, silently
        ("local", {"nproc": 2}, "--nproc is for --launcher torchrun only"),
    ],
)
def test_a_launch_that_cannot_work_is_one_error_before_anything_runs(
    executed, tiny_corpus, tmp_path, launcher, options, message
):
    one = [{"model": "tiny", "pretrain_tokens": D1, "spec_tokens": 0}]
    with pytest.raises(BayesplitError, match=message):
        execute_suggestions(
            one, tiny_corpus, tmp_path / "runs.db", ladder=executed["kw"]["ladder"],
            workdir=tmp_path / "work", launcher=launcher, progress=False, **options,
        )  # fmt: skip
    assert not (tmp_path / "runs.db").exists()


def test_a_dry_run_refuses_the_launch_the_real_run_refuses(tiny_corpus, tiny_ladder, tmp_path):
    # --dry-run showed a normal plan; the same command without it said "not divisible"
    sfile = tmp_path / "s.json"
    sfile.write_text(json.dumps([{"model": "tiny", "pretrain_tokens": D1, "spec_tokens": 0}]))
    args = ["train", "execute", sfile, "--corpus", tiny_corpus, "--ladder", tiny_ladder,
            "--store", tmp_path / "runs.db", "--launcher", "torchrun", "--nproc", "3",
            "--dry-run"]  # fmt: skip
    refused(args, "batch_size 8 is not divisible by --nproc 3", tmp_path)


def test_an_unreadable_trunk_json_is_named(executed, tiny_corpus, tmp_path):
    # an empty trunk.json (a crash before the write reached the disk) was a JSONDecodeError
    import shutil

    work = tmp_path / "work"
    shutil.copytree(executed["root"] / "work", work)
    trunk_id = executed["plan"].jobs[0].trunk_id
    (work / "trunks" / trunk_id / "trunk.json").write_text("")
    more = [{"model": "tiny", "pretrain_tokens": D3, "spec_tokens": 0}]
    kw = {**executed["kw"], "workdir": work}
    with pytest.raises(BayesplitError, match="trunk.json cannot be read .*delete the folder"):
        execute_suggestions(more, tiny_corpus, tmp_path / "runs.db", progress=False, **kw)


def test_the_dry_run_line_says_which_checkpoints_exist_not_where_training_resumes():
    from bayesplit.train.execute import TrunkJob

    job = TrunkJob("t", {"name": "tiny"}, 0, eval_at=[2560], trunk_step=39)
    # a run needing stable step 29 retrains from step 0 when only step 39 exists
    assert "resumes from step 39" not in job.describe()
    assert "checkpoints up to step 39 exist" in job.describe()


def test_a_suggestions_file_nested_too_deeply_is_one_error(tmp_path):
    """A RecursionError traceback (exit 1)."""
    from bayesplit.train.execute import load_suggestions

    path = tmp_path / "nest.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(BayesplitError, match="not valid JSON \\(nested too deeply"):
        load_suggestions(path)


def test_a_failed_checkpoint_save_leaves_no_temporary_file(tmp_path):
    """An interrupt (or any failure) inside torch.save left a full-size hidden .tmp file."""
    import torch

    from bayesplit.train.checkpoint import save_checkpoint
    from bayesplit.train.config import GPTConfig
    from bayesplit.train.model import GPT

    model = GPT(GPTConfig(vocab_size=16, seq_len=8, n_layer=1, n_head=1, d_model=8, d_ff=16))
    opt = torch.optim.AdamW(model.parameters())
    target = tmp_path / "ck" / "periodic-0000000001.pt"
    with pytest.raises(Exception):  # noqa: B017 (pickle's error type varies by version)
        save_checkpoint(target, model, opt, {"not saveable": lambda: 0})
    assert list((tmp_path / "ck").iterdir()) == []
    save_checkpoint(target, model, opt, {"step": 1})
    assert [p.name for p in (tmp_path / "ck").iterdir()] == [target.name]
    assert load_checkpoint(target)["meta"] == {"step": 1}


def test_job_rows_come_back_from_a_launcher_with_every_digit():
    # torchrun and slurm jobs sent rows through DataFrame.to_json: 10 significant digits
    import pandas as pd

    from bayesplit.train.execute import rows_as_records

    df = pd.DataFrame({"loss": [5.934026718139648, float("nan")], "step": [1, 2], "id": ["a", "b"]})
    back = pd.DataFrame(json.loads(json.dumps(rows_as_records(df), allow_nan=False)))
    assert back["loss"].iloc[0] == 5.934026718139648 and back["loss"].isna().iloc[1]
    assert back["step"].tolist() == [1, 2] and back["id"].tolist() == ["a", "b"]
    assert rows_as_records(pd.DataFrame()) == []


def test_the_dry_run_names_the_checkpoint_a_trunk_resumes_from(executed, tiny_corpus, tmp_path):
    # it named the furthest checkpoint on disk, past the step these runs need, which the
    # trainer does not use for them
    trunk_dir = executed["root"] / "work" / "trunks" / executed["plan"].jobs[0].trunk_id
    have = list_checkpoints(trunk_dir)
    kept = sorted({*have["stable"], *have["periodic"]})
    assert kept[-1] > 60
    for step, general in [(60, False), (30, False), (70, True)]:
        run = {"model": "tiny", "pretrain_tokens": step * TPS, "spec_tokens": 0 if general else DP,
               "train_domain": None if general else "beta"}  # fmt: skip
        plan = plan_suggestions([run], tiny_corpus, tmp_path / "runs.db", **executed["kw"])
        (job,) = plan.to_dict()["jobs"]
        first = step - round(0.1 * step) if general else step  # a general model's cooldown
        assert job["trunk_resumes_from_step"] == max([0, *(s for s in kept if s <= first)])
        assert job["trunk_furthest_checkpoint_step"] == kept[-1]
        assert f"the first from step {job['trunk_resumes_from_step']})" in plan.jobs[0].describe()
    # a step that has its stable checkpoint is not trained: the first missing one is named
    stable = sorted(have["stable"])
    there = {"model": "tiny", "pretrain_tokens": stable[0] * TPS, "spec_tokens": DP,
             "train_domain": "beta"}  # fmt: skip
    later = {"model": "tiny", "pretrain_tokens": 60 * TPS, "spec_tokens": DP,
             "train_domain": "beta"}  # fmt: skip
    plan = plan_suggestions([there, later], tiny_corpus, tmp_path / "runs.db", **executed["kw"])
    (job,) = plan.to_dict()["jobs"]
    assert job["trunk_resumes_from_step"] == max(s for s in kept if s <= 60)
    plan = plan_suggestions([there], tiny_corpus, tmp_path / "runs.db", **executed["kw"])
    assert plan.to_dict()["jobs"][0]["trunk_resumes_from_step"] is None
    assert "all are there" in plan.jobs[0].describe()
