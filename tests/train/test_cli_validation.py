"""Trainer CLI input checks: a bad value is exit 2 and one line, before anything is written.

Every refusal here happens before training, so these tests train nothing; each also checks
that no store, checkpoint folder or other file appeared.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
from conftest import make_corpus, refused, tiny_entry, tree, write_ladder
from typer.testing import CliRunner

from bayesplit.cli import app

runner = CliRunner()
TPS = 8 * 32  # tokens per step of the tiny ladder
on_linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")


@pytest.fixture
def out(tmp_path) -> Path:
    """An empty folder the commands would write their store and checkpoints into."""
    d = tmp_path / "out"
    d.mkdir()
    (d / "a-file").write_text("not a folder\n")
    (d / "a-folder").mkdir()
    return d


# -- train pretrain ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--cooldown", "-1"], "--cooldown must be a fraction in [0, 1)"),
        (["--cooldown", "2"], "--cooldown must be a fraction in [0, 1)"),
        (["--cooldown", "nan"], "--cooldown must be a fraction in [0, 1)"),
        (["--checkpoint-every", "0"], "--checkpoint-every must be >= 1"),
        (["--checkpoint-every", "-1"], "--checkpoint-every must be >= 1"),
        (["--weights", "alpha=-1,beta=1"], "finite and >= 0"),
        (["--weights", "alpha=nan,beta=1"], "finite and >= 0"),
        (["--weights", "alpha=0,beta=0"], "zero"),
        (["--weights", "web=1"], "unknown domain 'web'"),
        (["--eval-tokens", "0"], "--eval-tokens must be a positive number"),
        (["--eval-tokens", "-1"], "--eval-tokens must be a positive number"),
        (["--eval-tokens", "inf"], "--eval-tokens must be a positive number"),
        (["--decay-shape", "exp"], "--decay-shape must be one of"),
        (["--device", "tpu"], "--device must be auto, cpu, cuda or gpu"),
        (["--seed", "-1"], "--seed must be between 0 and 2^63 - 1"),
        (["--ladder", "BINARY"], "not a YAML ladder"),
    ],
)
def test_pretrain_refuses_bad_values(tiny_corpus, tiny_ladder, out, extra, message):
    if "BINARY" in extra:
        (out / "a-folder" / "bin.yaml").write_bytes(bytes(range(256)) * 4)
        extra = ["--ladder", out / "a-folder" / "bin.yaml"]
    args = ["train", "pretrain", "--corpus", tiny_corpus, "--ladder", tiny_ladder,
            "--model", "tiny", "--branch-at", "2k", "--store", out / "s.db", *extra]  # fmt: skip
    refused(args, message, out)


@pytest.mark.parametrize("branch_at", ["1", "100", "600", "nan", "2k,-5"])
def test_pretrain_refuses_branch_points_that_are_no_whole_step(
    tiny_corpus, tiny_ladder, out, branch_at
):
    # D is trained as whole steps of 256 tokens and stored only from 1000 tokens up:
    # 1 token used to train one step (256 tokens) and then fail to store it
    args = ["train", "pretrain", "--corpus", tiny_corpus, "--ladder", tiny_ladder,
            "--model", "tiny", "--branch-at", branch_at, "--store", out / "s.db"]  # fmt: skip
    msg = refused(args, "--branch-at", out)
    if branch_at in ("1", "100", "600"):
        assert f"smallest is {4 * TPS:,}" in msg


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("a-file/s.db", "a-file is a file, not a folder"),
        ("a-folder", "is a folder; give a file name"),
        ("runs.csv", "must end in .db"),
        pytest.param("/proc/s.db", "cannot write in /proc", marks=on_linux),
    ],
)
def test_pretrain_refuses_an_unwritable_store(tiny_corpus, tiny_ladder, out, store, message):
    target = store if store.startswith("/") else out / store
    args = ["train", "pretrain", "--corpus", tiny_corpus, "--ladder", tiny_ladder,
            "--model", "tiny", "--branch-at", "2k", "--store", target]  # fmt: skip
    msg = refused(args, message, out)
    assert msg.startswith("error: --store ")


def test_pretrain_without_a_store_does_not_say_rows_were_written(
    tiny_corpus, tiny_ladder, tmp_path
):
    # it printed "2 rows written" (and "rows_written": 2) where nothing was stored
    args = ["train", "pretrain", "--corpus", tiny_corpus, "--ladder", tiny_ladder,
            "--model", "tiny", "--branch-at", "2k", "--workdir", tmp_path / "w",
            "--no-progress"]  # fmt: skip
    res = runner.invoke(app, [str(a) for a in [*args, "--json"]])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["rows_written"] == 0 and len(out["rows"]) > 0
    text = runner.invoke(app, [str(a) for a in args])
    assert text.exit_code == 0, text.output
    said = " ".join(text.stderr.split())
    assert "rows, not stored (no --store)" in said and "rows written" not in said
    store = tmp_path / "s.db"
    res = runner.invoke(app, [str(a) for a in [*args, "--store", store, "--json"]])
    out = json.loads(res.stdout)
    assert out["rows_written"] == len(out["rows"]) > 0 and store.exists()


# -- train specialize ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--lr", "0"], "--lr must be a positive number"),
        (["--lr", "-1e-3"], "--lr must be a positive number"),
        (["--lr", "nan"], "--lr must be a positive number"),
        (["--tokens", "0"], "--tokens must be a positive number"),
        (["--tokens", "nan"], "--tokens must be a positive number"),
        (["--tokens", "10"], "--tokens must be at least 1000"),
        (["--replay", "1"], "--replay must be a fraction in [0, 1)"),
        (["--decay", "1.5"], "--decay must be a fraction in [0, 1]"),
        (["--rewarmup", "0.9", "--decay", "0.2"], "--rewarmup + --decay must be at most 1"),
        (["--decay-shape", "exp"], "--decay-shape must be one of"),
        (["--eval-tokens", "0"], "--eval-tokens must be a positive number"),
        (["--device", "tpu"], "--device must be auto, cpu, cuda or gpu"),
        (["--domain", "web"], "unknown domain 'web'"),
        (["--store", "OUT/a-file/s.db"], "a-file is a file, not a folder"),
    ],
)
def test_specialize_refuses_bad_values(tiny_corpus, out, extra, message):
    ckpt = out / "a-folder" / "stable-0000000008.pt"
    ckpt.write_bytes(b"not read: the values are refused first")
    extra = [str(a).replace("OUT", str(out)) for a in extra]
    args = ["train", "specialize", "--corpus", tiny_corpus, "--checkpoint", ckpt,
            "--domain", "alpha", "--tokens", "2k", "--store", out / "s.db", *extra]  # fmt: skip
    refused(args, message, out)


# -- train ladder -----------------------------------------------------------------------------
def test_ladder_refuses_a_binary_file_and_documents_its_json(tmp_path):
    binary = tmp_path / "ladder.yaml"
    binary.write_bytes(b"\x00\xff\xfe" + bytes(range(256)))
    refused(["train", "ladder", binary], "not a YAML ladder (the file is not UTF-8 text)", tmp_path)
    res = runner.invoke(app, ["train", "ladder", "--help"])
    assert res.exit_code == 0
    text = " ".join(res.output.replace("│", " ").split())  # the help box may wrap the line
    assert "rows written" not in text and "ladder's sizes as JSON" in text


# -- train execute ----------------------------------------------------------------------------
def _suggestions(path: Path, items: list[dict]) -> Path:
    path.write_text(json.dumps(items))
    return path


def test_execute_dry_run_writes_nothing(tiny_corpus, tiny_ladder, out, tmp_path):
    n = tiny_entry()["params"]
    sfile = _suggestions(tmp_path / "s.json", [
        {"params": n, "pretrain_tokens": 48 * TPS, "spec_tokens": 0, "train_domain": None},
        {"model": "tiny", "pretrain_tokens": 48 * TPS, "spec_tokens": 16 * TPS,
         "train_domain": "alpha"},
    ])  # fmt: skip
    base = ["train", "execute", str(sfile), "--corpus", str(tiny_corpus), "--ladder",
            str(tiny_ladder), "--store", str(out / "s.db"), "--dry-run"]  # fmt: skip
    before = tree(out)
    res = runner.invoke(app, base)
    assert res.exit_code == 0, res.output
    assert "0 of 2 suggestions already in the store" in res.stderr
    res = runner.invoke(app, [*base, "--json"])
    assert res.exit_code == 0, res.output
    assert [j["model"] for j in json.loads(res.stdout)["jobs"]] == ["tiny"]
    assert tree(out) == before  # no store, no checkpoint folder


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--nproc", "0"], "--nproc must be >= 1"),
        # local and slurm run each job in one process: the count was silently dropped
        (
            ["--nproc", "2"],
            '--nproc is for --launcher torchrun only (in Python: nproc= with launcher="torchrun"): '
            "--launcher local",
        ),
        (
            ["--launcher", "slurm", "--slurm-cluster", "local", "--nproc", "2"],
            '--nproc is for --launcher torchrun only (in Python: nproc= with launcher="torchrun"): '
            "--launcher slurm",
        ),
        (["--slurm-timeout", "0"], "--slurm-timeout must be >= 1"),
        (["--slurm-gpus", "-1"], "--slurm-gpus must be >= 0"),
        (["--replay", "1"], "--replay must be a fraction in [0, 1)"),
        (["--seed", "-1"], "--seed must be between 0 and 2^63 - 1"),
        (["--eval-tokens", "0"], "--eval-tokens must be a positive number"),
        (["--device", "tpu"], "--device must be auto, cpu, cuda or gpu"),
        (["--store", "OUT/a-file/s.db"], "a-file is a file, not a folder"),
        (["--store", "OUT/a-folder"], "is a folder; give a file name"),
        (["--workdir", "OUT/a-file"], "--workdir"),
    ],
)
def test_execute_refuses_bad_options(tiny_corpus, tiny_ladder, out, tmp_path, extra, message):
    sfile = _suggestions(tmp_path / "s.json", [{"model": "tiny", "pretrain_tokens": 48 * TPS}])
    extra = [a.replace("OUT", str(out)) for a in extra]
    args = ["train", "execute", sfile, "--corpus", tiny_corpus, "--ladder", tiny_ladder,
            "--store", out / "s.db", *extra]  # fmt: skip
    refused(args, message, out)


# -- the N convention of suggest → execute ----------------------------------------------------
@pytest.fixture(scope="module")
def two_size_ladder(tmp_path_factory) -> tuple[Path, dict, dict]:
    """Sizes where "a with embeddings" is nearer (in log) to b's non-embedding N than to a's."""
    a = tiny_entry(name="a")  # N 20,640; with the 64-token embedding 22,688
    b = tiny_entry(name="b", d_ff=84)  # N 24,480; with embeddings 26,528
    path = write_ladder(tmp_path_factory.mktemp("ladder") / "two.yaml", [a, b])
    return path, a, b


def _plan(args: list[str]) -> dict:
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout) | {"stderr": res.stderr}


def test_execute_reads_params_in_the_suggestions_convention(
    tiny_corpus, two_size_ladder, out, tmp_path
):
    ladder, a, b = two_size_ladder
    base = ["train", "execute", "S", "--corpus", tiny_corpus, "--ladder", ladder,
            "--store", out / "s.db", "--dry-run", "--json"]  # fmt: skip
    with_emb = _suggestions(tmp_path / "emb.json", [
        {"params": a["params_with_embeddings"], "pretrain_tokens": 48 * TPS},
        {"params": b["params_with_embeddings"], "pretrain_tokens": 48 * TPS},
    ])  # fmt: skip
    plan = _plan([with_emb if x == "S" else x for x in base])
    # before: a's with-embeddings count was matched to b's non-embedding N (nearest in log)
    assert [j["model"] for j in plan["jobs"]] == ["a", "b"]
    assert "params read as N with embeddings" in " ".join(plan["stderr"].split())
    non_emb = _suggestions(tmp_path / "non.json", [
        {"params": a["params"], "pretrain_tokens": 48 * TPS},
        {"params": b["params"] * 1.02, "pretrain_tokens": 48 * TPS},
    ])  # fmt: skip
    plan = _plan([non_emb if x == "S" else x for x in base])
    assert [j["model"] for j in plan["jobs"]] == ["a", "b"] and plan["notes"] == []
    assert tree(out) == {"a-file", "a-folder"}


def test_execute_with_the_cpu_ladder_trains_the_suggested_size(tmp_path):
    # the reported case: `bayesplit demo` suggests N with embeddings (cpu-55k = 153,840 at
    # the campaign's 2048-token vocabulary); execute used to train cpu-140k (N 141,760)
    corpus = make_corpus(tmp_path / "c2048", {"alpha": 8000, "beta": 8000}, val_tokens=1024)
    manifest = json.loads((corpus / "manifest.json").read_text())
    (corpus / "manifest.json").write_text(json.dumps({**manifest, "vocab_size": 2048}))
    sfile = _suggestions(tmp_path / "s.json", [
        {"params": 153840.0, "pretrain_tokens": 1e6, "spec_tokens": 0.0, "model": None},
        {"params": 272832.0, "pretrain_tokens": 2e6, "spec_tokens": 1e5, "train_domain": "beta"},
    ])  # fmt: skip
    plan = _plan(["train", "execute", sfile, "--corpus", corpus, "--ladder", "cpu_ladder",
                  "--store", tmp_path / "s.db", "--dry-run", "--json"])  # fmt: skip
    assert [(j["model"], j["params"]) for j in plan["jobs"]] == [
        ("cpu-55k", 55536),
        ("cpu-140k", 141760),
    ]
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize("dry_run", [True, False])
def test_execute_refuses_params_no_ladder_size_has(
    tiny_corpus, two_size_ladder, out, tmp_path, dry_run
):
    ladder, a, b = two_size_ladder
    sfile = _suggestions(tmp_path / "s.json", [{"params": 40_000, "pretrain_tokens": 48 * TPS}])
    args = ["train", "execute", sfile, "--corpus", tiny_corpus, "--ladder", ladder,
            "--store", out / "s.db", *(["--dry-run"] if dry_run else [])]  # fmt: skip
    msg = refused(args, "suggestion #1: no ladder size has N=4e+04", out)
    # the closest size in each convention, with its count
    assert f"b (N={b['params']:,} non-embedding)" in msg
    assert f"b (N={b['params_with_embeddings']:,} with embeddings)" in msg


def test_execute_refuses_ambiguous_or_mixed_conventions(tiny_corpus, out, tmp_path):
    a = tiny_entry(name="a")  # N 20,640; with embeddings 22,688
    c = tiny_entry(name="c", d_ff=72)  # N 22,176: within 5% of a's with-embeddings count
    ladder = write_ladder(tmp_path / "close.yaml", [a, c])
    base = ["train", "execute", "S", "--corpus", tiny_corpus, "--ladder", ladder,
            "--store", out / "s.db"]  # fmt: skip

    def run(items: list[dict], message: str) -> str:
        sfile = _suggestions(tmp_path / "s.json", items)
        return refused([sfile if x == "S" else x for x in base], message, out)

    msg = run([{"params": a["params_with_embeddings"], "pretrain_tokens": 48 * TPS}],
              "is c counted without embeddings but a counted with them")  # fmt: skip
    assert "params_convention" in msg
    run([{"params": a["params"], "pretrain_tokens": 48 * TPS},
         {"params": c["params_with_embeddings"], "pretrain_tokens": 48 * TPS}],
        "the suggestions mix N conventions")  # fmt: skip
    run([{"params": a["params"], "pretrain_tokens": 48 * TPS, "params_convention": "both"}],
        "params_convention must be non_embedding or with_embeddings")  # fmt: skip
    # saying which convention settles it
    sfile = _suggestions(tmp_path / "s.json", [{"params": a["params_with_embeddings"],
        "pretrain_tokens": 48 * TPS, "params_convention": "with_embeddings"}])  # fmt: skip
    plan = _plan([sfile if x == "S" else x for x in base] + ["--dry-run", "--json"])
    assert [j["model"] for j in plan["jobs"]] == ["a"]


# -- loop -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--law", "nosuch"], "unknown law 'nosuch'"),
        (["--budget", "-1"], "--budget must be a positive number"),
        (["--budget", "nan"], "--budget must be a positive number"),
        (["--budget", "1"], "below the smallest run"),  # no plan can use the seed design
        (["--experiment-budget", "0"], "--experiment-budget must be a positive number"),
        (["--experiment-budget", "1e6"], "the seed design of an empty store costs"),
        (["--max-run-flops", "-1"], "--max-run-flops must be a positive number"),
        (["--seed-tokens", "100"], "the smallest --seed-tokens these models train is"),
        (["--chains", "0"], "--chains must be >= 1"),
        (["--draws", "5"], "--draws must be >= 10"),
        (["--draws", "9" * 20], "draws must be at most 10,000,000"),  # was found after training
        (["--seed", "-1"], "--seed must be between 0 and 2^63 - 1"),
        (["--eval-tokens", "0"], "--eval-tokens must be a positive number"),
        (["--device", "tpu"], "--device must be auto, cpu, cuda or gpu"),
        (["--stop-regret", "0"], "--stop-regret (in Python: stop_regret=) must be between 0 and 1"),
        (
            ["--stop-regret", "1.5"],
            "--stop-regret (in Python: stop_regret=) must be between 0 and 1",
        ),
        (
            ["--stop-regret", "nan"],
            "--stop-regret (in Python: stop_regret=) must be between 0 and 1",
        ),
        (["--store", "OUT/a-file/s.db"], "a-file is a file, not a folder"),
        pytest.param(["--store", "/proc/s.db"], "cannot write in /proc", marks=on_linux),
    ],
)
def test_loop_refuses_bad_options_before_training(tiny_corpus, tiny_ladder, out, extra, message):
    # --law nosuch and --budget -1 used to be found after the seed design was trained and
    # its rows appended
    extra = [a.replace("OUT", str(out)) for a in extra]
    args = ["loop", "--corpus", tiny_corpus, "--ladder", tiny_ladder, "--store", out / "s.db",
            "--budget", "1e13", "--seed-tokens", "4096", *extra]  # fmt: skip
    refused(args, message, out)


def test_loop_refuses_a_seed_design_under_half_a_step(tiny_corpus, out, tmp_path):
    # 64 rows of 32 tokens: the seed specialists' D' of 1,000 is under half a step; the
    # trainer refuses it now, so the loop does before it creates the store
    # two sizes: a one-size ladder is refused before this (the loop's fits need two)
    wide = tiny_entry(name="tiny-wide", d_model=48, n_head=3, d_ff=96, batch_size=64)
    ladder = write_ladder(tmp_path / "wide-batch.yaml", [tiny_entry(batch_size=64), wide])
    args = ["loop", "--corpus", tiny_corpus, "--ladder", ladder, "--store", out / "s.db",
            "--budget", "1e13", "--seed-tokens", "2000"]  # fmt: skip
    refused(args, "gives a seed design the trainer refuses", out)


def test_loop_names_the_smallest_seed_tokens_it_trains(tiny_corpus, tiny_ladder, out):
    # it said "at least 2000", then refused 2000 (a D' under half a step) and 5000 (a
    # cooldown of no step, with advice to use a --cooldown that loop does not have)
    from bayesplit.train.closed_loop import least_seed_tokens, seed_design_problem
    from bayesplit.train.ladder import load_ladder

    entries = load_ladder(tiny_ladder)
    least = least_seed_tokens(entries)
    assert seed_design_problem(entries, least) is None
    assert seed_design_problem(entries, least - 1) is not None
    args = ["loop", "--corpus", tiny_corpus, "--ladder", tiny_ladder, "--store", out / "s.db",
            "--budget", "1e13", "--experiment-budget", "1e6"]  # fmt: skip
    msg = refused([*args, "--seed-tokens", least - 1], f"train is {least:,}", out)
    assert msg.startswith(f"error: --seed-tokens {least - 1} gives a seed design")
    # the bound it names passes this check (and meets the next: the budget)
    refused([*args, "--seed-tokens", least], "the seed design of an empty store costs", out)


def test_loop_says_when_no_seed_tokens_can_train_the_ladder(tiny_corpus, tmp_path, out):
    # a cooldown of 0 gives no general model a decay step at any D: the search for the
    # smallest --seed-tokens doubled past 2^1024, an OverflowError traceback
    flat = {"cooldown_fraction": 0.0}
    ladder = write_ladder(tmp_path / "flat.yaml", [tiny_entry(train=flat),
                          tiny_entry(name="tiny-wide", d_model=48, n_head=3, d_ff=96, train=flat)])  # fmt: skip
    args = ["loop", "--corpus", tiny_corpus, "--ladder", ladder, "--store", out / "s.db",
            "--budget", "1e13", "--seed-tokens", "4096"]  # fmt: skip
    refused(args, "no --seed-tokens trains these models", out)


# -- --device ---------------------------------------------------------------------------------
def test_device_gpu_is_cuda(monkeypatch, tiny_corpus, tiny_ladder, out):
    import torch

    from bayesplit.cli.train import _device

    for cmd in (["train", "pretrain"], ["train", "execute"], ["loop"]):
        res = runner.invoke(app, [*cmd, "--help"])
        assert "gpu" in res.output and "cuda" in res.output
    assert _device("cpu") == "cpu" and _device("auto") == "auto"
    if not torch.cuda.is_available():
        # `gpu` is accepted as a name, then refused for the missing device (not as unknown)
        args = ["train", "pretrain", "--corpus", tiny_corpus, "--ladder", tiny_ladder,
                "--model", "tiny", "--branch-at", "2k", "--store", out / "s.db",
                "--device", "gpu"]  # fmt: skip
        refused(args, "--device gpu asked for, but torch sees no CUDA device", out)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _device("gpu") == "cuda" and _device("cuda") == "cuda" and _device("GPU") == "cuda"


# -- corpus -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("a-file/corpus", "--out OUT/a-file/corpus: OUT/a-file is a file, not a folder"),
        ("a-file", "--out OUT/a-file is a file, not a folder"),
        pytest.param("/proc/corpus", "--out /proc/corpus: cannot write in /proc", marks=on_linux),
    ],
)
def test_corpus_build_refuses_an_unwritable_out(out, tmp_path, target, message):
    src = tmp_path / "src"
    for d in ("x", "y"):
        (src / d).mkdir(parents=True)
        for i in range(3):
            (src / d / f"{i}.txt").write_text(f"text {d} {i} " * 20)
    dest = target if target.startswith("/") else str(out / target)
    refused(["corpus", "build", src, "--out", dest, "-q"], message.replace("OUT", str(out)), out)


def test_corpus_info_on_a_file_says_it_is_a_file(tiny_corpus, out):
    msg = refused(["corpus", "info", out / "a-file"], "is a file, not a corpus folder", out)
    assert "does not exist" not in msg
    msg = refused(["corpus", "info", tiny_corpus / "manifest.json"], "is a file", out)


# -- suggestion values and data the trainer would refuse late --------------------------------
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        # torch.manual_seed failed with a traceback after the store and trunk.json existed
        ({"seed": 1e30}, "seed must be a whole number from 0 to 2^63 - 1, got 1e+30"),
        ({"seed": 2**63}, "seed must be a whole number from 0 to 2^63 - 1"),
        ({"seed": -1}, "seed must be a whole number from 0 to 2^63 - 1"),
        ({"seed": 1.5}, "seed must be a whole number from 0 to 2^63 - 1"),
        ({"seed": True}, "seed must be a whole number from 0 to 2^63 - 1"),
        # under half a step used to train a whole one (256 tokens for 10)
        ({"pretrain_tokens": 10}, "pretrain_tokens 10 is 0.0391 optimizer steps of tiny"),
        ({"pretrain_tokens": 600}, "so the smallest is 1,024"),
        ({"pretrain_tokens": True}, "pretrain_tokens must be a number, got True"),
        ({"spec_tokens": 100, "train_domain": "alpha"}, "spec_tokens 100 is 0.391 optimizer"),
        ({"spec_tokens": True, "train_domain": "alpha"}, "spec_tokens must be a number"),
        # a specialist without its tokens trained a general model
        ({"spec_tokens": 0, "train_domain": "alpha"}, "train_domain 'alpha' needs spec_tokens > 0"),
        ({"train_domain": "alpha"}, "train_domain 'alpha' needs spec_tokens > 0"),
    ],
)
def test_execute_refuses_bad_suggestion_values(tiny_corpus, tiny_ladder, out, tmp_path, fields, message):  # fmt: skip
    item = {"model": "tiny", "pretrain_tokens": 48 * TPS} | fields
    sfile = _suggestions(tmp_path / "s.json", [item])
    args = ["train", "execute", sfile, "--corpus", tiny_corpus, "--ladder", tiny_ladder,
            "--store", out / "s.db"]  # fmt: skip
    assert "suggestion #1: " in refused(args, message, out)


GOOD = '{"model": "tiny", "pretrain_tokens": 12288'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # a typo of spec_tokens trained a general model (spec_tokens taken as 0)
        (f'[{GOOD}, "spec_token": 4096, "train_domain": "alpha"}}]', "'spec_token' (did you mean"),
        # a key like no real one was ignored: a general model again
        (
            f'[{GOOD}, "spec": 4096, "train_domain": "alpha"}}]',
            "unknown key 'spec' (it reads params",
        ),
        # an empty file trained nothing without a word
        ("[]", "holds no suggestion to train"),
        ('{"suggestions": []}', "holds no suggestion to train"),
        # json kept the later value silently
        (f'[{GOOD}, "pretrain_tokens": 4096}}]', "repeated key(s) 'pretrain_tokens'"),
        # "must be a number, got None"
        ('[{"model": "tiny"}]', "suggestion #1: needs pretrain_tokens"),
        # float() of a 400-digit integer: an OverflowError traceback
        (f'[{{"model": "tiny", "pretrain_tokens": 1{"0" * 400}}}]', "must be finite and >= 0"),
    ],
)
def test_execute_refuses_a_bad_suggestions_file_naming_it(tiny_corpus, tiny_ladder, out, tmp_path, text, message):  # fmt: skip
    sfile = tmp_path / "s.json"
    sfile.write_text(text)
    args = ["train", "execute", sfile, "--corpus", tiny_corpus, "--ladder", tiny_ladder,
            "--store", out / "s.db"]  # fmt: skip
    line = refused(args, message, out)
    assert str(sfile) in line or "suggestion #1" in line


def test_execute_reads_a_suggestions_file_with_a_byte_order_mark(tiny_corpus, tiny_ladder, out, tmp_path):  # fmt: skip
    # as Notepad saves UTF-8: it was "not valid JSON (Unexpected UTF-8 BOM)"
    sfile = tmp_path / "s.json"
    sfile.write_bytes(b"\xef\xbb\xbf" + f"[{GOOD}}}]".encode())
    args = ["train", "execute", sfile, "--corpus", tiny_corpus, "--ladder", tiny_ladder,
            "--store", out / "s.db", "--dry-run"]  # fmt: skip
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    assert "0 of 1 suggestions already in the store" in res.stderr


@pytest.mark.parametrize(
    ("replay", "message"),
    [
        # round(0.97 × 8) = 8 of 8 rows: a "specialist" that never saw its domain
        ("0.97", "= 8 of the 8 rows of a batch to replay, leaving none to the specialized"),
        # round(0.01 × 8) = 0: the run of --replay 0 again, under another run id
        ("0.01", "= 0 of the 8 rows of a batch to replay, the same run as no replay"),
    ],
)
def test_execute_refuses_a_replay_the_batch_cannot_hold(
    tiny_corpus, tiny_ladder, out, tmp_path, replay, message
):
    item = {"model": "tiny", "pretrain_tokens": 48 * TPS, "spec_tokens": 16 * TPS,
            "train_domain": "alpha"}  # fmt: skip
    sfile = _suggestions(tmp_path / "s.json", [item])
    args = ["train", "execute", sfile, "--corpus", tiny_corpus, "--ladder", tiny_ladder,
            "--store", out / "s.db", "--replay", replay]  # fmt: skip
    msg = refused(args, message, out)
    assert "from 0.125 to 0.875 (1 to 7 rows)" in msg


def test_bad_data_is_refused_before_the_store_or_a_trunk_exists(tiny_ladder, out, tmp_path):
    from bayesplit.errors import BayesplitError
    from bayesplit.train.checkpoint import ckpt_path
    from bayesplit.train.config import TrainConfig
    from bayesplit.train.execute import execute_suggestions
    from bayesplit.train.trunk import pretrain

    # a domain too short for one row (20 train tokens, seq_len 32): found at the first batch,
    # after tiny.db and trunks/<id>/trunk.json had been written
    short = make_corpus(tmp_path / "short", {"alpha": 20_000, "beta": 20}, val_tokens=512)
    # a manifest vocab_size below the shards' ids: found at the first batch too
    small_vocab = make_corpus(tmp_path / "vocab", {"alpha": 4000}, val_tokens=512)
    m = json.loads((small_vocab / "manifest.json").read_text())
    m = {k: m[k] for k in ("format", "dtype", "domains")} | {"vocab_size": 32}
    (small_vocab / "manifest.json").write_text(json.dumps(m))
    store = ["--store", out / "s.db", "--ladder", tiny_ladder]
    pre = ["train", "pretrain", "--model", "tiny", "--branch-at", "2k", *store]
    refused([*pre, "--corpus", short], "domain 'beta' has 20 train tokens", out)
    refused([*pre, "--corpus", small_vocab], "is not below the corpus's vocab_size 32", out)
    sfile = _suggestions(tmp_path / "s.json", [{"model": "tiny", "pretrain_tokens": 2048}])
    refused(["train", "execute", sfile, "--corpus", short, *store], "has 20 train tokens", out)
    with pytest.raises(BayesplitError, match="has 20 train tokens"):  # the API plans first too
        execute_suggestions(json.loads(sfile.read_text()), short, out / "s.db",
                            ladder=str(tiny_ladder), workdir=out / "w", progress=False)  # fmt: skip
    assert tree(out) == {"a-file", "a-folder"}
    # a trunk on alpha alone, then a specialist on the short domain
    entry = tiny_entry()
    tc = TrainConfig.from_entry(entry, weights={"alpha": 1.0, "beta": 0.0})
    pretrain(short, entry, workdir=tmp_path / "w", save_at=[4 * TPS], train=tc, progress=False)
    (trunk,) = (tmp_path / "w" / "trunks").iterdir()
    spec = ["train", "specialize", "--corpus", short, "--checkpoint", ckpt_path(trunk, "stable", 4),
            "--tokens", "2k", "--store", out / "s.db"]  # fmt: skip
    refused([*spec, "--domain", "beta"], "domain 'beta' has 20 train tokens", out)
    # --replay is checked against the checkpoint's batch of 8 rows, before the store exists
    refused([*spec, "--domain", "alpha", "--replay", "0.97"], "leaving none", out)


@pytest.mark.parametrize("command", ["pretrain", "execute"])
def test_training_into_a_store_of_another_corpus_is_refused(tiny_corpus, tiny_ladder, out, command):
    """Rows of another tokenizer are in other nats per token; `loop` refused such a store,
    the train commands added to it."""
    import pandas as pd

    from bayesplit.store import RunStore

    store = out / "s.db"
    row = dict(run_id="r", params=1e5, pretrain_tokens=2e4, eval_domain="alpha", loss=3.0,
               corpus_sha256="f" * 64)  # fmt: skip
    RunStore(store).append(pd.DataFrame([row]))
    if command == "pretrain":
        args = ["train", "pretrain", "--corpus", tiny_corpus, "--ladder", tiny_ladder,
                "--model", "tiny", "--branch-at", "2k", "--store", store]  # fmt: skip
    else:
        plan = out / "plan.json"
        plan.write_text(json.dumps([{"model": "tiny", "params": tiny_entry()["params"],
                                     "pretrain_tokens": 2560, "spec_tokens": 0}]))  # fmt: skip
        args = ["train", "execute", plan, "--corpus", tiny_corpus, "--ladder", tiny_ladder,
                "--store", store]  # fmt: skip
    refused(args, "holds rows trained on another corpus (content sha256 ffffffffffff", out)
    assert len(RunStore(store).read()) == 1


def test_eval_tokens_help_says_where_each_command_takes_its_default():
    # specialize said "default from the ladder" but takes the trunk checkpoint's value
    def helptext(*words):
        res = CliRunner().invoke(app, ["train", *words, "--help"], env={"COLUMNS": "200"})
        return " ".join(res.output.replace("│", " ").split())

    assert "default the trunk's, as its checkpoint recorded" in helptext("specialize")
    assert "default from the ladder" in helptext("pretrain")
    assert "from the ladder" not in helptext("specialize")


def test_a_validation_split_too_short_for_a_window_is_named(tmp_path, tiny_ladder):
    # "a validation split needs at least 2 tokens", naming no domain; corpus info said nothing
    corpus = make_corpus(tmp_path / "c", {"alpha": 20_000, "beta": 20_000}, val_tokens=1)
    res = runner.invoke(app, ["corpus", "info", str(corpus), "--json"])
    assert res.exit_code == 0, res.output
    warnings = json.loads(res.stdout)["warnings"]
    assert warnings == [
        f"domain {d!r}: its validation split has 1 token(s); training needs at least 2 "
        "(one validation window)"
        for d in ("alpha", "beta")
    ]
    assert (
        "! domain 'alpha': its validation split has 1"
        in runner.invoke(app, ["corpus", "info", str(corpus)]).stderr
    )
    out = tmp_path / "out"
    out.mkdir()
    args = ["train", "pretrain", "--corpus", corpus, "--ladder", tiny_ladder, "--model", "tiny",
            "--branch-at", "2048", "--store", out / "s.db", "--workdir", out / "w"]  # fmt: skip
    refused(args, "the 'alpha' validation split has 1 token; a validation window needs", out)
