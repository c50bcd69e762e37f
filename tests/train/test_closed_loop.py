"""The closed loop: seed design, fit → suggest → train → append → refit."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

pytest.importorskip("torch")
from conftest import tiny_entry, write_ladder
from typer.testing import CliRunner

from bayesplit._parse import derived_seed
from bayesplit.cli import app
from bayesplit.errors import BayesplitError
from bayesplit.store import RunStore
from bayesplit.train.closed_loop import _design_flops, _runs_flops, seed_suggestions

runner = CliRunner()


def test_seed_design_is_two_smallest_models_with_specialists():
    ladder = [
        {"name": "b", "params": 5e4},
        {"name": "a", "params": 2e4},
        {"name": "c", "params": 9e4},
    ]
    s = seed_suggestions(ladder, ["x", "y"])
    assert {r["model"] for r in s} == {"a", "b"}
    assert sorted({r["pretrain_tokens"] for r in s}) == [2e5, 8e5]
    spec = [r for r in s if r["spec_tokens"] > 0]
    assert len(spec) == 2 * 2 * 2 and {r["spec_tokens"] for r in spec} == {1e5}
    assert len(s) - len(spec) == 4  # one general row set per (model, D)


def test_loop_bad_input_exit_2(tiny_corpus, tmp_path):
    res = runner.invoke(
        app, ["loop", "--corpus", str(tmp_path / "none"), "--store", str(tmp_path / "s.db"),
              "--budget", "1e13"]
    )  # fmt: skip
    assert res.exit_code == 2 and "no corpus" in res.stderr
    res = runner.invoke(
        app, ["loop", "--corpus", str(tiny_corpus), "--store", str(tmp_path / "s.db"),
              "--budget", "1e13", "--rounds", "0"]
    )  # fmt: skip
    assert res.exit_code == 2 and "at least 1" in res.stderr
    res = runner.invoke(
        app, ["loop", "--corpus", str(tiny_corpus), "--store", str(tmp_path / "s.db"),
              "--budget", "1e13", "--objective", "point"]
    )  # fmt: skip
    assert (
        res.exit_code == 2
        and "--objective (in Python: objective=) must be one of regret, decision, split"
        in res.stderr
    )
    assert not (tmp_path / "s.db").exists()  # refused before anything was written
    # with --json too, an input error: nothing on stdout (it was a "loop stopped" document)
    for bad in (["--objective", "bogus"], ["--batch", "0"], ["--stop-regret", "2"]):
        res = runner.invoke(
            app, ["loop", "--corpus", str(tiny_corpus), "--store", str(tmp_path / "s.db"),
                  "--budget", "1e13", "--json", *bad]
        )  # fmt: skip
        assert res.exit_code == 2 and res.stdout == "", (bad, res.stdout)


@pytest.mark.slow
def test_loop_runs_two_rounds_end_to_end(tiny_corpus, tmp_path):
    ladder = write_ladder(
        tmp_path / "ladder.yaml",
        [tiny_entry(), tiny_entry(name="tiny-wide", d_model=48, n_head=3, d_ff=96),
         tiny_entry(name="tiny-deep", n_layer=3, d_model=48, n_head=3, d_ff=96)],
    )  # fmt: skip
    store = tmp_path / "runs.db"
    res = runner.invoke(
        app,
        ["loop", "--corpus", str(tiny_corpus), "--store", str(store), "--ladder", str(ladder),
         "--budget", "1e13", "--rounds", "2", "--batch", "2", "--objective", "regret",
         "--chains", "1", "--draws", "200",
         "--warmup", "200", "--seed-tokens", "4096", "--eval-tokens", "1024", "--force",
         "--json", "--no-progress"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    rounds = json.loads(res.stdout)["rounds"]
    assert all(r["level"] == 0.9 for r in rounds)
    assert [r["round"] for r in rounds] == [1, 2]
    assert rounds[0]["trained_rows"] > 0
    assert rounds[1]["rows"] > rounds[0]["rows"]  # round 2 fitted round 1's new runs
    rows = RunStore(store).read()
    assert len(rows) == rounds[1]["rows"] + rounds[1]["trained_rows"]
    # models, not run ids: a general model at another D keeps its trunk's id
    seed_models = 2 * 2 * (1 + 3)  # two sizes at two D, each general and on three domains
    assert rounds[0]["models"] == seed_models and rounds[0]["runs"] < seed_models
    assert rounds[1]["models"] > rounds[0]["models"]


TINY_RUN = {"model": "tiny", "params": tiny_entry()["params"], "pretrain_tokens": 2560,
            "spec_tokens": 0.0, "train_domain": None}  # fmt: skip


#: A branch at D = 1280 off TINY_RUN's trunk: it trains the trunk from step 0, then D'.
BRANCH = {**TINY_RUN, "pretrain_tokens": 1280, "spec_tokens": 1280.0, "train_domain": "alpha"}


def _picking_loop(tiny_corpus, tmp_path, monkeypatch) -> tuple:
    """A stubbed loop whose every round picks BRANCH, and the list its picks are counted in."""
    picks: list[int] = []
    loop = _stubbed_loop(tiny_corpus, tmp_path, monkeypatch, 0.05,
                         lambda: picks.append(1) or [BRANCH])  # fmt: skip
    return loop, picks


def _interrupted_after_its_rows(monkeypatch):
    """Training that writes its rows, then is interrupted; returns the real trainer."""
    import bayesplit.train.execute

    real = bayesplit.train.execute.execute_suggestions

    def killed(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(bayesplit.train.execute, "execute_suggestions", killed)
    return real


def _stubbed_loop(tiny_corpus, tmp_path, monkeypatch, expected_regret, suggestions):
    """A store holding one tiny trained run, with the round's statistics stubbed (fit,
    allocate with a given expected relative regret, suggest returning ``suggestions()``):
    only the loop's bookkeeping is under test. Returns run_loop with its files bound."""
    from functools import partial
    from types import SimpleNamespace

    import bayesplit.allocation
    import bayesplit.design
    import bayesplit.fitting
    from bayesplit.train.closed_loop import run_loop
    from bayesplit.train.execute import execute_suggestions

    ladder = write_ladder(tmp_path / "ladder.yaml", [tiny_entry()])
    store, work = tmp_path / "runs.db", tmp_path / "work"
    execute_suggestions([TINY_RUN], tiny_corpus, store, ladder=str(ladder), workdir=work,
                        progress=False)  # fmt: skip
    post = SimpleNamespace(diagnostics=SimpleNamespace(ok=True, failures=[]))
    alloc = SimpleNamespace(
        to_dict=lambda: {"objective": {"median": 3.0, "credible": [2.9, 3.1]}},
        plan=SimpleNamespace(params=1e5),
        pretrain_fraction=0.9,
        expected_regret_rel=expected_regret,
        level=0.9,
    )
    monkeypatch.setattr(bayesplit.fitting, "fit", lambda *a, **k: post)
    monkeypatch.setattr(bayesplit.allocation, "allocate", lambda *a, **k: alloc)
    monkeypatch.setattr(
        bayesplit.design, "suggest", lambda *a, **k: SimpleNamespace(to_list=suggestions)
    )
    return partial(run_loop, tiny_corpus, store, budget=1e13, batch=1, ladder=str(ladder),
                   workdir=work, progress=False)  # fmt: skip


def test_the_largest_seed_gives_rounds_seeds_in_range(tiny_corpus, tmp_path, monkeypatch):
    # round r fitted and suggested with seed + r: --seed 2^63 - 1 gave round 1 a seed that
    # fit refused ("seed must be between 0 and 2^63 - 1", a seed never given)
    import bayesplit.design
    import bayesplit.fitting

    loop = _stubbed_loop(tiny_corpus, tmp_path, monkeypatch, 0.05, lambda: [])
    seeds = []
    fit, suggest = bayesplit.fitting.fit, bayesplit.design.suggest
    monkeypatch.setattr(bayesplit.fitting, "fit", lambda *a, **k: seeds.append(k["seed"]) or fit())
    monkeypatch.setattr(
        bayesplit.design, "suggest", lambda *a, **k: seeds.append(k["seed"]) or suggest()
    )
    loop(rounds=1, seed=2**63 - 1)
    assert seeds == [0, 0]


@pytest.mark.parametrize(("expected", "stops"), [(0.004, True), (0.03, False)])
def test_loop_stops_once_the_fit_expects_its_plan_within_stop_regret(
    tiny_corpus, tmp_path, monkeypatch, expected, stops
):
    asked = []
    loop = _stubbed_loop(
        tiny_corpus, tmp_path, monkeypatch, expected, lambda: asked.append(1) or []
    )
    hist = loop(rounds=3, stop_regret=0.01)
    assert hist["expected_regret"].tolist() == [pytest.approx(expected)]
    if stops:  # stopped before asking for runs
        assert asked == [] and "--stop-regret" in hist["stopped"].iloc[0]
    else:  # went on, and ended only because nothing was suggested
        assert asked == [1] and "experiment-budget" in hist["stopped"].iloc[0]
    assert hist["trained_rows"].tolist() == [0]


def test_a_round_is_charged_only_for_what_it_trains(tiny_corpus, tmp_path, monkeypatch):
    """A suggestion the store already has costs nothing, though suggest priced it as new."""
    again = {**TINY_RUN, "pretrain_tokens": 2500, "cost_flops": 1e9}  # rounds to the same 10 steps
    loop = _stubbed_loop(tiny_corpus, tmp_path, monkeypatch, 0.05, lambda: [again])
    stored = RunStore(tmp_path / "runs.db").read()
    hist = loop(rounds=1)
    assert hist["suggested"].tolist() == [1] and hist["trained_rows"].tolist() == [0]
    # what the store's runs cost already, and nothing more
    assert hist["spent_flops"].tolist() == [pytest.approx(_runs_flops(stored))]
    assert len(RunStore(tmp_path / "runs.db").read()) == len(stored)


def test_a_rerun_counts_what_the_store_already_spent(tiny_corpus, tmp_path, monkeypatch):
    """--experiment-budget covers the campaign: each rerun started again from zero."""
    loop = _stubbed_loop(tiny_corpus, tmp_path, monkeypatch, 0.05, lambda: [])
    cost = _runs_flops(RunStore(tmp_path / "runs.db").read())
    assert cost == pytest.approx(_design_flops([TINY_RUN]))  # what the loop charged for it
    with pytest.raises(BayesplitError, match="already cost .* the whole --experiment-budget"):
        loop(rounds=1, experiment_budget=cost)
    assert loop(rounds=1, experiment_budget=2 * cost)["spent_flops"].tolist() == [
        pytest.approx(cost)
    ]


def test_loop_refuses_a_store_trained_on_another_corpus(tiny_corpus, tmp_path, monkeypatch):
    from conftest import make_corpus

    loop = _stubbed_loop(tiny_corpus, tmp_path, monkeypatch, 0.05, lambda: [])
    other = make_corpus(tmp_path / "other", {"alpha": 3000, "beta": 2000}, val_tokens=512)
    before = (tmp_path / "runs.db").read_bytes()
    with pytest.raises(BayesplitError, match="holds rows trained on another corpus"):
        loop.func(other, *loop.args[1:], **loop.keywords, rounds=1)
    assert (tmp_path / "runs.db").read_bytes() == before


def test_loop_keeps_checkpoints_where_train_does(tiny_corpus, tmp_path, monkeypatch):
    """Without a workdir the library loop uses the CLI's default, runs.db → runs-checkpoints
    (it used `runs-work`, so the same store trained from Python and the shell split in two)."""
    longer = {**TINY_RUN, "pretrain_tokens": 5120, "cost_flops": 1e9}
    loop = _stubbed_loop(tiny_corpus, tmp_path, monkeypatch, 0.05, lambda: [longer])
    hist = loop(rounds=1, workdir=None)
    assert hist["trained_rows"].iloc[0] > 0
    assert any((tmp_path / "runs-checkpoints").iterdir())
    assert not (tmp_path / "runs-work").exists()


def _import_without_hash(tmp_path, store, n: int = 40):
    """`bayesplit runs import` of the Debian campaign's first rows, corpus_sha256 dropped."""
    from bayesplit.datasets import debian_campaign

    table = tmp_path / "deb.csv"
    debian_campaign().drop(columns="corpus_sha256").head(n).to_csv(table, index=False)
    res = runner.invoke(app, ["runs", "import", str(table), "--store", str(store)])
    assert res.exit_code == 0, res.output


def test_loop_refuses_rows_without_a_corpus_hash_next_to_its_own(tiny_corpus, tmp_path,
                                                                  monkeypatch):  # fmt: skip
    """Rows of another tokenizer imported without corpus_sha256 were fitted with the loop's
    own, and their runs charged to its --experiment-budget."""
    loop = _stubbed_loop(tiny_corpus, tmp_path, monkeypatch, 0.05, lambda: [])
    own = len(RunStore(tmp_path / "runs.db").read())
    _import_without_hash(tmp_path, tmp_path / "runs.db")
    before = (tmp_path / "runs.db").read_bytes()
    with pytest.raises(BayesplitError, match=f"holds 40 of its {own + 40} rows without a "
                       "corpus_sha256 .* use another --store"):  # fmt: skip
        loop(rounds=1)
    assert (tmp_path / "runs.db").read_bytes() == before


def test_loop_refuses_a_store_of_rows_without_any_corpus_hash(tiny_corpus, tiny_ladder, tmp_path,
                                                             monkeypatch):  # fmt: skip
    import bayesplit.fitting

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted rows of an unknown corpus")

    monkeypatch.setattr(bayesplit.fitting, "fit", no_fit)
    store = tmp_path / "mix.db"
    _import_without_hash(tmp_path, store)
    before = store.read_bytes()
    res = runner.invoke(
        app, ["loop", "--corpus", str(tiny_corpus), "--store", str(store), "--budget", "1e13",
              "--ladder", str(tiny_ladder), "--rounds", "1", "--no-progress"]
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "holds 40 of its 40 rows without a corpus_sha256" in lines[0]
    assert store.read_bytes() == before and not (tmp_path / "mix-checkpoints").exists()


def test_a_seed_design_that_fails_leaves_no_empty_store(
    tiny_corpus, tiny_ladder, tmp_path, monkeypatch
):
    # the loop created the store before training its seed design, so a seed design that
    # diverged or was interrupted left an empty .db behind
    import bayesplit.train.execute
    from bayesplit.errors import BayesplitError
    from bayesplit.train.closed_loop import run_loop

    def diverges(*args, **kwargs):
        raise BayesplitError("training diverged: loss nan at step 3")

    monkeypatch.setattr(bayesplit.train.execute, "execute_suggestions", diverges)
    store = tmp_path / "runs.db"
    with pytest.raises(BayesplitError, match="diverged"):
        run_loop(tiny_corpus, store, budget=1e13, ladder=str(tiny_ladder), progress=False)
    assert not store.exists()


def test_a_seed_design_cut_short_is_finished_by_the_next_loop(tiny_corpus, tmp_path, monkeypatch):
    """A loop stopped inside its seed design left part of it in the store, and the next loop
    took that part for a finished seed design: every round fitted a fraction of it."""
    from types import SimpleNamespace

    import bayesplit.allocation
    import bayesplit.design
    import bayesplit.fitting
    from bayesplit.train.closed_loop import run_loop, seed_suggestions
    from bayesplit.train.corpus import Corpus
    from bayesplit.train.execute import execute_suggestions, plan_suggestions
    from bayesplit.train.ladder import load_ladder

    ladder = write_ladder(tmp_path / "ladder.yaml", [tiny_entry()])
    entries, corpus = load_ladder(ladder), Corpus(tiny_corpus)
    seed = seed_suggestions(entries, list(corpus.domains), 2560)
    store, work = tmp_path / "runs.db", tmp_path / "work"
    execute_suggestions(
        seed[:1], tiny_corpus, store, ladder=str(ladder), workdir=work, progress=False
    )  # fmt: skip  (where an interrupt left it)
    fitted = []
    post = SimpleNamespace(diagnostics=SimpleNamespace(ok=True, failures=[]))
    alloc = SimpleNamespace(
        to_dict=lambda: {"objective": {"median": 3.0, "credible": [2.9, 3.1]}},
        plan=SimpleNamespace(params=1e5), pretrain_fraction=0.9, expected_regret_rel=0.05, level=0.9,
    )  # fmt: skip
    monkeypatch.setattr(bayesplit.fitting, "fit", lambda runs, **k: fitted.append(runs) or post)
    monkeypatch.setattr(bayesplit.allocation, "allocate", lambda *a, **k: alloc)
    monkeypatch.setattr(bayesplit.design, "suggest", lambda *a, **k: SimpleNamespace(to_list=list))
    run_loop(tiny_corpus, store, budget=1e13, rounds=1, batch=1, ladder=str(ladder),
             workdir=work, seed_tokens=2560, progress=False)  # fmt: skip
    plan = plan_suggestions(seed, corpus, store, ladder=entries, workdir=work)
    assert not plan.jobs and len(plan.done) == len(seed)  # all of the seed design is there
    assert len(fitted) == 1 and len(fitted[0]) == len(RunStore(store).read())


def test_a_one_size_ladder_is_refused_before_the_seed_design_trains(
    tiny_corpus, tmp_path, monkeypatch
):
    """It trained all eight seed-design runs, then every fit failed its gate."""
    import bayesplit.train.execute
    from bayesplit.train.closed_loop import run_loop

    def trains(*args, **kwargs):
        raise AssertionError("the seed design was trained")

    monkeypatch.setattr(bayesplit.train.execute, "execute_suggestions", trains)
    one = write_ladder(tmp_path / "one.yaml", [tiny_entry()])
    store = tmp_path / "runs.db"
    with pytest.raises(BayesplitError, match="has one model size; .* two sizes"):
        run_loop(tiny_corpus, store, budget=1e13, ladder=str(one), progress=False)
    assert not store.exists()


def test_a_budget_left_below_every_run_ends_the_loop_not_in_an_error(tiny_corpus, tmp_path, monkeypatch):  # fmt: skip
    # suggest was given the rest of the budget as --max-run-flops and its refusal ("no
    # candidate fits under --max-run-flops 4.05e+06") ended the loop with exit 2
    import bayesplit.design

    loop = _stubbed_loop(tiny_corpus, tmp_path, monkeypatch, 0.05, lambda: [])
    caps = []

    def nothing_fits(*a, max_run_flops=None, **k):
        caps.append(max_run_flops)
        raise bayesplit.design.NoCandidateFits(
            f"no candidate fits under --max-run-flops {max_run_flops:.3g}: ..."
        )

    monkeypatch.setattr(bayesplit.design, "suggest", nothing_fits)
    cost = _runs_flops(RunStore(tmp_path / "runs.db").read())
    hist = loop(rounds=2, experiment_budget=cost + 1e3)
    assert caps == [pytest.approx(1e3)] and hist["suggested"].tolist() == [0]
    assert hist["stopped"].tolist() == ["no suggestion fits the rest of --experiment-budget"]
    # the user's own cap ruling every run out is still an error
    with pytest.raises(BayesplitError, match="no candidate fits under --max-run-flops 10"):
        loop(rounds=1, experiment_budget=cost + 1e3, max_run_flops=10.0)


def test_finishing_a_seed_design_over_the_budget_is_refused_before_training(tiny_corpus, tmp_path):  # fmt: skip
    # it trained the rest of the seed design to 2.5x the budget, then failed on a negative
    # --max-run-flops
    from bayesplit.train.closed_loop import run_loop, seed_suggestions
    from bayesplit.train.corpus import Corpus
    from bayesplit.train.execute import execute_suggestions
    from bayesplit.train.ladder import load_ladder

    ladder = write_ladder(tmp_path / "ladder.yaml", [tiny_entry(), tiny_entry(name="wide", d_model=48)])  # fmt: skip
    entries, corpus = load_ladder(ladder), Corpus(tiny_corpus)
    seed = seed_suggestions(entries, list(corpus.domains), 2560)
    store, work = tmp_path / "runs.db", tmp_path / "work"
    execute_suggestions(seed[:1], tiny_corpus, store, ladder=str(ladder), workdir=work, progress=False)  # fmt: skip
    rows = len(RunStore(store).read())
    full = _design_flops(seed)
    with pytest.raises(
        BayesplitError, match=re.escape(f"the seed design costs {full:.3g} FLOPs, more")
    ):
        run_loop(tiny_corpus, store, budget=1e13, rounds=1, batch=1, ladder=str(ladder),
                 workdir=work, seed_tokens=2560, progress=False, experiment_budget=full / 2)  # fmt: skip
    assert len(RunStore(store).read()) == rows


def test_an_empty_store_file_is_a_store_not_made_yet(tiny_corpus, tmp_path):
    # the train commands take an empty file as a new store; the loop said "it is empty"
    from bayesplit.train.closed_loop import run_loop

    ladder = write_ladder(tmp_path / "ladder.yaml", [tiny_entry(), tiny_entry(name="wide", d_model=48)])  # fmt: skip
    store = tmp_path / "runs.db"
    store.touch()
    with pytest.raises(BayesplitError, match="the seed design costs .* more than --experiment"):
        run_loop(tiny_corpus, store, budget=1e13, ladder=str(ladder), workdir=tmp_path / "w",
                 seed_tokens=2560, progress=False, experiment_budget=1.0)  # fmt: skip
    assert store.stat().st_size == 0


def test_a_store_name_no_reader_takes_for_a_store_is_refused_before_training(
    tiny_corpus, tmp_path, monkeypatch
):
    """RunStore refuses to make "loop_runs" (readers take it for no store), but the trainer
    makes its store only when it writes the rows: the run trained, then its rows were
    refused."""
    from bayesplit.train import execute
    from bayesplit.train.closed_loop import run_loop
    from bayesplit.train.rows import store_for_lookup

    def no_training(*args, **kwargs):
        raise AssertionError("a run was trained")

    monkeypatch.setattr(execute, "execute_suggestions", no_training)
    ladder = write_ladder(tmp_path / "ladder.yaml", [tiny_entry(), tiny_entry(name="wide", d_model=48)])  # fmt: skip
    store = tmp_path / "loop_runs"
    message = "a new run store must end in .db, .sqlite or .sqlite3 .*got loop_runs$"
    for call in (
        lambda: store_for_lookup(store),
        lambda: execute._store_for_planning(store),
        lambda: run_loop(
            tiny_corpus,
            store,
            budget=1e13,
            ladder=str(ladder),
            workdir=tmp_path / "w",
            seed_tokens=2560,
            progress=False,
        ),  # fmt: skip
    ):
        with pytest.raises(BayesplitError, match=message):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ladder.yaml"]


def test_a_branch_off_a_trunk_not_on_disk_is_charged_its_trunk(tiny_corpus, tmp_path, monkeypatch):  # fmt: skip
    # suggest prices a branch off the store's (N, D) as D' alone; under another --seed the
    # trainer retrains the trunk from scratch, and the loop charged only the branch
    branch = {**TINY_RUN, "spec_tokens": 1280.0, "train_domain": "alpha", "cost_flops": 1.0}
    loop = _stubbed_loop(tiny_corpus, tmp_path, monkeypatch, 0.05, lambda: [branch])
    before = _runs_flops(RunStore(tmp_path / "runs.db").read())
    n = TINY_RUN["params"]
    hist = loop(rounds=1, seed=1)
    assert hist["trained_rows"].iloc[0] > 0
    charged = hist["spent_flops"].iloc[0] - before
    assert charged == pytest.approx(6 * n * (2560 + 1280))  # the trunk to D, then D'
    # a rerun counts both trunks the store's rows name, not one per size
    assert _runs_flops(RunStore(tmp_path / "runs.db").read()) == pytest.approx(before + charged)


def test_a_branch_off_a_trunk_on_disk_is_charged_its_branch(tiny_corpus, tmp_path, monkeypatch):  # fmt: skip
    branch = {**TINY_RUN, "spec_tokens": 1280.0, "train_domain": "alpha", "cost_flops": 1.0}
    loop = _stubbed_loop(tiny_corpus, tmp_path, monkeypatch, 0.05, lambda: [branch])
    before = _runs_flops(RunStore(tmp_path / "runs.db").read())
    from bayesplit.train.checkpoint import list_checkpoints

    # the general run's stable phase stopped one step (256 tokens) short of D = 2560, where
    # its cooldown began: the branch needs that step of trunk, then its D'
    (trunk,) = (tmp_path / "work" / "trunks").iterdir()
    assert max(list_checkpoints(trunk)["stable"]) == 9
    hist = loop(rounds=1)
    charged = hist["spent_flops"].iloc[0] - before
    assert charged == pytest.approx(6 * TINY_RUN["params"] * (256 + 1280))


def test_a_branch_whose_trunk_would_pass_the_budget_is_not_trained(tiny_corpus, tmp_path, monkeypatch):  # fmt: skip
    # priced as a branch it fits the budget left; with the trunk it must retrain it does not
    branch = {**TINY_RUN, "spec_tokens": 1280.0, "train_domain": "alpha", "cost_flops": 1.0}
    loop = _stubbed_loop(tiny_corpus, tmp_path, monkeypatch, 0.05, lambda: [branch])
    store = tmp_path / "runs.db"
    before = _runs_flops(RunStore(store).read())
    rows = len(RunStore(store).read())
    hist = loop(rounds=1, seed=1, experiment_budget=before + 6 * TINY_RUN["params"] * 2000)
    assert hist["suggested"].tolist() == [0] and hist["spent_flops"].tolist() == [before]
    assert len(RunStore(store).read()) == rows


def test_loop_json_keeps_the_rounds_done_when_a_later_round_fails(tiny_corpus, tiny_ladder, tmp_path, monkeypatch):  # fmt: skip
    # the summaries were printed only at the end: a failure in round 2 left stdout empty,
    # though round 1's runs were trained and stored
    import bayesplit.train.closed_loop

    def one_round_then_fail(*a, report, **k):
        report({"round": 1, "runs": 4, "models": 4, "rows": 12, "gate_ok": True, "plan_params": 1e6,
                "plan_pretrain_fraction": 0.9, "objective_median": 3.0, "objective_lo": 2.9,
                "objective_hi": 3.1, "expected_regret": 0.02, "suggested": 2,
                "trained_rows": 6, "spent_flops": 1e9, "stopped": None})  # fmt: skip
        raise BayesplitError("round 2: the fit failed its diagnostics (r_hat 1.2)")

    monkeypatch.setattr(bayesplit.train.closed_loop, "run_loop", one_round_then_fail)
    args = ["loop", "--corpus", str(tiny_corpus), "--store", str(tmp_path / "s.db"),
            "--ladder", str(tiny_ladder), "--budget", "1e13", "--seed-tokens", "2560"]  # fmt: skip
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 2 and "round 2: the fit failed" in res.stderr
    out = json.loads(res.stdout)
    assert [r["round"] for r in out["rounds"]] == [1] and out["rounds"][0]["rows"] == 12
    assert out["error"].startswith("round 2: the fit failed")
    res = runner.invoke(app, args)  # without --json, stdout stays empty: the table went to stderr
    assert res.exit_code == 2 and res.stdout == ""


@pytest.mark.parametrize("case", ["other corpus", "budget"])
def test_loop_json_refusals_before_any_training_are_input_errors(tiny_corpus, tiny_ladder, tmp_path, case):  # fmt: skip
    # run_loop refused these before training anything, but `loop --json` printed its
    # "loop stopped" document for them, as for a round that failed
    store, budget = tmp_path / "s.db", "1e13"
    if case == "other corpus":
        row = dict(run_id="r", params=1e5, pretrain_tokens=2e4, eval_domain="alpha", loss=3.0,
                   corpus_sha256="f" * 64)  # fmt: skip
        RunStore(store).append(pd.DataFrame([row]))
        message = "holds rows trained on another corpus"
    else:
        budget, message = "1e3", "no plan is feasible"
    before = sorted(p.name for p in tmp_path.iterdir())
    args = ["loop", "--corpus", str(tiny_corpus), "--store", str(store), "--ladder",
            str(tiny_ladder), "--budget", budget, "--seed-tokens", "2560", "--json"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and res.stdout == ""
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_d_below_the_furthest_checkpoint_is_charged_from_the_one_before_it():
    # the trainer resumes each D from the furthest checkpoint at or before it; the loop
    # charged from the furthest on disk, so a shorter D's stable phase was free
    from bayesplit.train.closed_loop import _tree_flops

    run = {"params": 1e4, "pretrain_tokens": 5000.0, "spec_tokens": 1000.0, "train_domain": "a"}
    assert _tree_flops([run], [2000.0, 9000.0]) == pytest.approx(6e4 * (3000 + 1000))
    assert _tree_flops([run], [5000.0]) == pytest.approx(6e4 * 1000)
    longer = {**run, "pretrain_tokens": 8000.0}  # trained on from 5000, saved on the way
    assert _tree_flops([run, longer], [2000.0]) == pytest.approx(6e4 * (6000 + 2000))


def test_a_run_asked_for_twice_is_charged_once():
    # the trainer trains one run for suggestions that name it twice, or that round to the
    # same whole step; the loop charged each suggestion's branch
    from bayesplit.train.closed_loop import _tree_flops

    spec = {"params": 1e4, "pretrain_tokens": 5000.0, "spec_tokens": 1000.0, "train_domain": "a"}
    general = {"params": 1e4, "pretrain_tokens": 5000.0, "spec_tokens": 0.0, "train_domain": None}
    one = _tree_flops([spec, general], [], 100.0, 0.1)
    assert one == pytest.approx(6e4 * (5000 + 1000 + 500))  # trunk to 5000, two branches
    assert _tree_flops([spec, spec, general, general], [], 100.0, 0.1) == pytest.approx(one)
    rounded = {**general, "pretrain_tokens": 5020.0}  # 50.2 steps: the trainer's step 50
    assert _tree_flops([spec, general, rounded], [], 100.0, 0.1) == pytest.approx(one)
    other_domain = {**spec, "train_domain": "b"}  # another run on the same branch point
    assert _tree_flops([spec, other_domain], [], 100.0, 0.1) == pytest.approx(6e4 * (5000 + 2000))


def test_models_count_each_checkpoint_of_a_trunk_once():
    # `loop --json`'s "runs" counts run ids, and a trunk's general models share one
    from bayesplit.train.closed_loop import count_models

    runs = pd.DataFrame(
        {
            "run_id": ["t", "t", "t", "t", "t.D2.a.S1"],
            "pretrain_tokens": [1.0, 1.0, 2.0, 2.0, 2.0],
            "spec_tokens": [0.0, 0.0, 0.0, 0.0, 1.0],
            "eval_domain": ["a", "b", "a", "b", "a"],
        }
    )
    assert count_models(runs) == 3 and runs["run_id"].nunique() == 2


@pytest.mark.parametrize("tokens_per_step", [None, 70.0])
def test_suggest_prices_a_batch_as_the_loop_charges_it(tokens_per_step):
    # suggest's greedy price of each pick (given the trainer's checkpoints and the picks
    # before it) adds up to what the loop charges for the whole batch, on random trunks;
    # with the trainer's steps, at token counts that are not whole steps. A batch of suggest
    # never repeats a run; two that round to one trained run are charged once by the loop
    # (as the trainer trains it once) and are left out here
    import numpy as np

    from bayesplit.design import CostModel, TrunkState, candidate_costs, trainer_branch
    from bayesplit.train.closed_loop import _tree_flops

    rng = np.random.default_rng(0)
    n = 1e4
    for _ in range(200):
        stops = sorted(rng.choice(np.arange(1, 20) * 490.0, size=rng.integers(0, 4), replace=False))
        known = {"tokens": stops, "tokens_per_step": tokens_per_step, "cooldown_fraction": 0.15}
        trunks = TrunkState.from_runs(None, {n: known})
        batch, keys, priced = [], [], 0.0
        for _ in range(rng.integers(1, 6)):
            d = float(rng.integers(1, 20) * 500 + rng.integers(-60, 60))
            dp = float(rng.choice([0.0, 300.0]))
            run = {"params": n, "pretrain_tokens": d, "spec_tokens": dp,
                   "train_domain": "a" if dp else None}  # fmt: skip
            key = (
                (d, dp) if tokens_per_step is None else trainer_branch(d, dp, tokens_per_step, 0.15)
            )
            if any(np.array_equal(key, k) for k in keys):
                continue
            keys.append(key)
            priced += candidate_costs(pd.DataFrame([run]), trunks, CostModel())[0]
            trunks.extend(n, d, dp)
            batch.append(run)
            charged = _tree_flops(batch, stops, tokens_per_step, 0.15 if tokens_per_step else None)
            if tokens_per_step is None:  # the design's cooldown share
                charged = _tree_flops(batch, stops)
            assert priced == pytest.approx(charged), (stops, batch)


def test_trunk_checkpoints_are_read_from_the_workdir(tiny_corpus, tmp_path):
    from bayesplit.design import CostModel, TrunkState, candidate_costs
    from bayesplit.train.closed_loop import _plan_flops
    from bayesplit.train.execute import execute_suggestions
    from bayesplit.train.trunk import trunk_checkpoints

    ladder = write_ladder(tmp_path / "ladder.yaml", [tiny_entry()])
    store, work = tmp_path / "runs.db", tmp_path / "work"
    execute_suggestions([TINY_RUN], tiny_corpus, store, ladder=str(ladder), workdir=work,
                        progress=False)  # fmt: skip
    runs = RunStore(store).read()
    n = float(TINY_RUN["params"])
    # D = 2560 tokens is 10 steps of 256; its cooldown is the last step, so the trunk's
    # stable phase stopped at step 9
    trunk = runs["trunk_id"].iloc[0]
    held = {"tokens": [9 * 256.0], "tokens_per_step": 256, "cooldown_fraction": None,
            "trunk": trunk}  # fmt: skip
    assert trunk_checkpoints(work, runs) == {n: held}
    # with the ladder, its sizes' steps and cooldowns as the trainer will use them
    assert trunk_checkpoints(work, runs, ladder) == {n: {**held, "cooldown_fraction": 0.1}}
    # a trunk of other trunk settings or another seed is not the one the trainer resumes
    other = trunk_checkpoints(work, runs, ladder, {"batch_size": 4})
    assert other == {n: {"tokens": [], "tokens_per_step": 128, "cooldown_fraction": 0.1,
                         "trunk": None}}  # fmt: skip
    assert trunk_checkpoints(work, runs, ladder, seed=1)[n]["tokens"] == []
    assert trunk_checkpoints(work, runs, ladder, seed=0)[n]["tokens"] == [9 * 256.0]
    with pytest.raises(BayesplitError, match="seed must be a whole number"):
        trunk_checkpoints(work, runs, ladder, seed="0")  # matched no trunk, unsaid
    assert trunk_checkpoints(work, None, ladder) == {n: {**held, "tokens": [], "trunk": None,
                                                        "cooldown_fraction": 0.1}}  # fmt: skip
    (tmp_path / "empty").mkdir()
    assert trunk_checkpoints(tmp_path / "empty", runs)[n]["tokens"] == []  # not trained there
    # none yet (the how-to's first suggest, before any training): said, not refused
    with pytest.warns(UserWarning, match="nowhere does not exist \\(yet\\): every run is priced"):
        assert trunk_checkpoints(tmp_path / "nowhere", runs)[n]["tokens"] == []
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "afile").write_text("")
    with pytest.raises(BayesplitError, match="workdir=\\) .*afile is not a folder"):
        trunk_checkpoints(tmp_path / "afile", runs)
    # suggest's price of each run is what the loop will charge for it, also where D and D'
    # are not whole steps: 2300 tokens is 9 steps, whose stable checkpoint is there
    trunks = TrunkState.from_runs(runs, trunk_checkpoints(work, runs, ladder))
    plan_kw = {"ladder": [tiny_entry()], "workdir": work, "seed": 0, "train_overrides": None}
    cases = [(2560, 1280), (1280, 1280), (5120, 0.0), (5120, 1280), (7680, 0.0), (2300, 1300),
             (2430, 0.0), (4000, 900), (2200, 0.0)]  # fmt: skip
    for d, dp in cases:
        run = {**TINY_RUN, "pretrain_tokens": d, "spec_tokens": dp,
               "train_domain": "alpha" if dp else None}  # fmt: skip
        price = candidate_costs(pd.DataFrame([run]), trunks, CostModel())[0]
        assert price == pytest.approx(_plan_flops([run], tiny_corpus, store, plan_kw, None)), run
    run = {**TINY_RUN, "pretrain_tokens": 2300, "spec_tokens": 1300, "train_domain": "alpha"}
    assert candidate_costs(pd.DataFrame([run]), trunks)[0] == pytest.approx(6 * n * 5 * 256)


def test_the_trunk_of_the_trainers_seed_is_priced_and_branched_from(tiny_corpus, tmp_path):
    # one trunk per size was looked at, the furthest: a trunk of another seed made every
    # run be priced from scratch though the seed's own trunk was in the workdir, and a seed
    # not given priced from a trunk the rows did not name as theirs
    from bayesplit.design import TrunkState
    from bayesplit.train.execute import execute_suggestions
    from bayesplit.train.trunk import trunk_checkpoints

    ladder = write_ladder(tmp_path / "ladder.yaml", [tiny_entry()])
    store, work = tmp_path / "runs.db", tmp_path / "work"
    kw = {"ladder": str(ladder), "workdir": work, "progress": False}
    execute_suggestions([TINY_RUN], tiny_corpus, store, seed=0, **kw)
    further = {**TINY_RUN, "pretrain_tokens": 2 * TINY_RUN["pretrain_tokens"]}
    execute_suggestions([further], tiny_corpus, store, seed=1, **kw)
    runs = RunStore(store).read()
    n = float(TINY_RUN["params"])
    by_seed = runs.groupby("seed")["trunk_id"].first().to_dict()
    assert len(set(by_seed.values())) == 2
    # D = 2560 and 5120 are 10 and 20 steps; their stable phases stop at steps 9 and 18
    for seed, stable_steps, d in [(0, 9, 2560), (1, 18, 5120), (None, 18, 5120)]:
        at = trunk_checkpoints(work, runs, ladder, seed=seed)[n]  # None: any, the furthest
        assert at["trunk"] == by_seed[1 if seed is None else seed]
        assert max(at["tokens"]) == stable_steps * 256.0
        # suggest branches from the trunk it priced, and knows how far that one reached
        assert TrunkState.from_runs(runs, {n: at}).source[n] == at["trunk"]
        assert TrunkState.from_runs(runs, {n: at}).reached[n] == d
    # the seed-1 trunk's checkpoints gone (trained elsewhere): seed 1 has none, any seed the other
    import shutil

    shutil.rmtree(work / "trunks" / by_seed[1])
    assert trunk_checkpoints(work, runs, ladder, seed=1)[n] == {
        "tokens": [], "tokens_per_step": 256, "cooldown_fraction": 0.1, "trunk": None}  # fmt: skip
    assert trunk_checkpoints(work, runs, ladder)[n]["trunk"] == by_seed[0]
    # no trunk of the seed resumed: its runs start a new trunk, not one of another seed
    none = trunk_checkpoints(work, runs, ladder, seed=2)
    assert n not in TrunkState.from_runs(runs, none).source
    assert TrunkState.from_runs(runs, {n: {"tokens": []}}).source[n] == by_seed[1]
    assert TrunkState.from_runs(runs).source[n] == by_seed[1]
    # a ladder whose model is another (renamed) is not the trunks' model either
    renamed = write_ladder(tmp_path / "renamed.yaml", [{**tiny_entry(), "name": "tinier"}])
    assert trunk_checkpoints(work, runs, renamed, seed=0)[n]["trunk"] is None


def test_the_loop_prices_suggestions_from_its_checkpoints(tiny_corpus, tmp_path, monkeypatch):
    from types import SimpleNamespace

    import bayesplit.design
    from bayesplit.train.trunk import trunk_checkpoints

    loop = _stubbed_loop(tiny_corpus, tmp_path, monkeypatch, 0.05, lambda: [])
    seen = {}

    def suggest(*a, **k):
        seen.update(k)
        return SimpleNamespace(to_list=lambda: [])

    monkeypatch.setattr(bayesplit.design, "suggest", suggest)
    loop(rounds=1)
    runs = RunStore(tmp_path / "runs.db").read()
    ladder = tmp_path / "ladder.yaml"
    assert seen["checkpoints"] == trunk_checkpoints(tmp_path / "work", runs, ladder, seed=0)
    n = float(TINY_RUN["params"])
    assert seen["checkpoints"] == {
        n: {"tokens": [9 * 256.0], "tokens_per_step": 256, "cooldown_fraction": 0.1,
            "trunk": runs["trunk_id"].iloc[0]}
    }  # fmt: skip


def test_a_rerun_goes_on_from_the_rounds_and_charges_before_it(tiny_corpus, tmp_path, monkeypatch):  # fmt: skip
    # a rerun numbered its rounds from 1 again (refitting with the same seeds), and counted
    # the campaign's cost from the store's rows, which do not show a retrained trunk stretch
    loop = _stubbed_loop(tiny_corpus, tmp_path, monkeypatch, 0.05, lambda: [BRANCH])
    first = loop(rounds=1)
    assert first["round"].tolist() == [1]
    rows_cost = _runs_flops(RunStore(tmp_path / "runs.db").read())
    # the branch at D = 1280 retrained the trunk from step 0: more than the rows show
    assert first["spent_flops"].iloc[0] > rows_cost
    from types import SimpleNamespace

    import bayesplit.fitting

    seeds = []
    monkeypatch.setattr(bayesplit.fitting, "fit", lambda *a, **k: seeds.append(k["seed"]) or
                        SimpleNamespace(diagnostics=SimpleNamespace(ok=True, failures=[])))  # fmt: skip
    again = loop(rounds=2, seed=0)
    assert again["round"].tolist() == [2, 3] and seeds == [derived_seed(0, 2), derived_seed(0, 3)]
    assert again["spent_flops"].iloc[0] == pytest.approx(first["spent_flops"].iloc[0])
    with pytest.raises(BayesplitError, match="already cost"):
        loop(rounds=1, experiment_budget=first["spent_flops"].iloc[0])  # > the rows alone
    (tmp_path / "work" / "loop-state.json").write_text("[")
    with pytest.raises(BayesplitError, match="loop-state.json cannot be read .*restore or delete"):
        loop(rounds=1)
    # the store deleted to start over, its run trained again by hand: round 1 again
    (tmp_path / "work" / "loop-state.json").unlink()
    loop(rounds=1)
    (tmp_path / "runs.db").unlink()
    from bayesplit.train.execute import execute_suggestions

    execute_suggestions([TINY_RUN], tiny_corpus, tmp_path / "runs.db", progress=False,
                        ladder=[tiny_entry()], workdir=tmp_path / "work")  # fmt: skip
    assert loop(rounds=1)["round"].tolist() == [1]


def test_a_loop_on_a_new_store_writes_over_a_loop_state_it_cannot_read(tmp_path):
    from support import good_table

    from bayesplit.train.closed_loop import _read_loop_state, _write_loop_state

    (tmp_path / "loop-state.json").write_text("[1, 2")
    rows = good_table()
    RunStore(tmp_path / "runs.db").append(rows)
    _write_loop_state(tmp_path, tmp_path / "runs.db", 1, 5.0)
    stored = RunStore(tmp_path / "runs.db").read()
    assert _read_loop_state(tmp_path, tmp_path / "runs.db", stored)[:2] == (1, 5.0)
    # the same rows under another path: the store moved (found by its first row)
    assert _read_loop_state(tmp_path, tmp_path / "moved.db", stored)[:2] == (1, 5.0)
    # rows added since (trained by hand between loops) are added at their cost
    more = pd.concat([stored, stored.assign(run_id="new", params=3e8)], ignore_index=True)
    grown = _read_loop_state(tmp_path, tmp_path / "runs.db", more)
    assert grown[:2] == (1, pytest.approx(5.0 + _runs_flops(more) - _runs_flops(stored)))
    assert grown[1] > 5.0
    # a store made anew at the path (other first row, or fewer rows) is another campaign
    assert _read_loop_state(tmp_path, tmp_path / "runs.db", stored.iloc[1:])[:2] == (0, 0.0)
    assert _read_loop_state(tmp_path, tmp_path / "runs.db", stored.iloc[:3])[:2] == (0, 0.0)
    state = json.loads((tmp_path / "loop-state.json").read_text())
    state[str((tmp_path / "runs.db").resolve())]["rounds"] = float("inf")
    (tmp_path / "loop-state.json").write_text(json.dumps(state))
    with pytest.raises(BayesplitError, match="loop-state.json cannot be read"):
        _read_loop_state(tmp_path, tmp_path / "runs.db", stored)
    # a hand-edited count of rounds below 0 numbered the next round -4
    state[str((tmp_path / "runs.db").resolve())]["rounds"] = -5
    (tmp_path / "loop-state.json").write_text(json.dumps(state))
    with pytest.raises(BayesplitError, match="rounds must be a whole number >= 0, got -5"):
        _read_loop_state(tmp_path, tmp_path / "runs.db", stored)


def test_a_rerun_with_other_seed_tokens_does_not_train_a_second_seed_design(tiny_corpus, tmp_path, monkeypatch):  # fmt: skip
    # the new design's D = 4 x 2560 general models were in the store, so the store read as
    # "interrupted inside its seed design": the rest of the new design trained, unsaid, past
    # --experiment-budget
    from types import SimpleNamespace

    import bayesplit.allocation
    import bayesplit.design
    import bayesplit.fitting
    import bayesplit.train.execute
    from bayesplit.train.closed_loop import run_loop

    ladder = write_ladder(tmp_path / "ladder.yaml", [tiny_entry(), tiny_entry(name="wide", d_model=48)])  # fmt: skip
    post = SimpleNamespace(diagnostics=SimpleNamespace(ok=True, failures=[]))
    alloc = SimpleNamespace(
        to_dict=lambda: {"objective": {"median": 3.0, "credible": [2.9, 3.1]}},
        plan=SimpleNamespace(params=1e5), pretrain_fraction=0.9, expected_regret_rel=0.05, level=0.9,
    )  # fmt: skip
    monkeypatch.setattr(bayesplit.fitting, "fit", lambda *a, **k: post)
    monkeypatch.setattr(bayesplit.allocation, "allocate", lambda *a, **k: alloc)
    monkeypatch.setattr(bayesplit.design, "suggest", lambda *a, **k: SimpleNamespace(to_list=list))
    kw = dict(budget=1e13, rounds=1, batch=1, ladder=str(ladder), workdir=tmp_path / "work",
              progress=False)  # fmt: skip
    store = tmp_path / "runs.db"
    first = run_loop(tiny_corpus, store, seed_tokens=2560, **kw)
    rows = len(RunStore(store).read())

    def trains(runs, *a, **k):
        raise AssertionError(f"trained {len(runs)} runs")

    monkeypatch.setattr(bayesplit.train.execute, "execute_suggestions", trains)
    again = run_loop(tiny_corpus, store, seed_tokens=4 * 2560, **kw)
    assert again["round"].tolist() == [2] and len(RunStore(store).read()) == rows
    assert again["spent_flops"].tolist() == [pytest.approx(first["spent_flops"].iloc[0])]


def test_a_finished_interrupted_seed_design_is_recorded_before_round_1(tiny_corpus, tmp_path, monkeypatch):  # fmt: skip
    # finishing an interrupted seed design wrote no loop state: a rerun whose round 1 had
    # stopped in its fit (a Ctrl-C, a failed gate) took the store for an unfinished design
    # again, and trained a second one for another --seed-tokens
    from types import SimpleNamespace

    import bayesplit.design
    import bayesplit.fitting
    import bayesplit.train.execute
    from bayesplit.train.closed_loop import run_loop
    from bayesplit.train.corpus import Corpus
    from bayesplit.train.execute import execute_suggestions
    from bayesplit.train.ladder import load_ladder

    ladder = write_ladder(tmp_path / "ladder.yaml", [tiny_entry(), tiny_entry(name="wide", d_model=48)])  # fmt: skip
    work, store = tmp_path / "work", tmp_path / "runs.db"
    design = seed_suggestions(load_ladder(ladder), list(Corpus(tiny_corpus).domains), 2560)
    execute_suggestions(
        design[:1], tiny_corpus, store, ladder=str(ladder), workdir=work, progress=False
    )  # fmt: skip  (where an interrupt left it)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(bayesplit.fitting, "fit", interrupted)
    monkeypatch.setattr(bayesplit.design, "suggest", lambda *a, **k: SimpleNamespace(to_list=list))
    kw = dict(budget=1e13, rounds=1, batch=1, ladder=str(ladder), workdir=work, progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_loop(tiny_corpus, store, seed_tokens=2560, **kw)  # finishes it, stops in round 1
    rows = len(RunStore(store).read())

    def trains(runs, *a, **k):
        raise AssertionError(f"trained {len(runs)} runs")

    monkeypatch.setattr(bayesplit.train.execute, "execute_suggestions", trains)
    with pytest.raises(KeyboardInterrupt):  # round 1 again: no second seed design first
        run_loop(tiny_corpus, store, seed_tokens=4 * 2560, **kw)
    assert len(RunStore(store).read()) == rows


def test_a_refusal_before_any_work_keeps_its_type_in_python(tiny_corpus, tmp_path):
    from bayesplit.train.closed_loop import refused_before_work, run_loop

    bad = tmp_path / "runs.db"
    bad.write_text("not a store")
    with pytest.raises(BayesplitError) as info:
        run_loop(tiny_corpus, bad, budget=1e13, progress=False)
    assert refused_before_work(info.value) and type(info.value) is BayesplitError  # not wrapped
    assert not refused_before_work(BayesplitError("round 2: the fit failed"))


def test_seed_tokens_of_zero_is_refused_not_the_default():
    from bayesplit.train.closed_loop import seed_suggestions

    entries = [tiny_entry(), tiny_entry(name="wide", d_model=48)]
    for bad in (0, float("inf")):  # inf was taken, and on a stored store ignored unsaid
        with pytest.raises(
            BayesplitError, match=f"seed_tokens must be a positive number, got {bad}"
        ):
            seed_suggestions(entries, ["alpha"], bad)
    assert seed_suggestions(entries, ["alpha"], None)[0]["pretrain_tokens"] == pytest.approx(
        10 * min(e["params"] for e in entries)
    )


def test_an_interrupted_round_is_charged_before_it_trains(tiny_corpus, tmp_path, monkeypatch):
    from bayesplit.train.closed_loop import _read_loop_state

    loop = _stubbed_loop(tiny_corpus, tmp_path, monkeypatch, 0.05, lambda: [BRANCH])
    before = _runs_flops(RunStore(tmp_path / "runs.db").read())

    _interrupted_after_its_rows(monkeypatch)  # after its rows were written: charged once
    with pytest.raises(KeyboardInterrupt):
        loop(rounds=1)
    rows = RunStore(tmp_path / "runs.db").read()
    rounds, charged, _ = _read_loop_state(tmp_path / "work", tmp_path / "runs.db", rows)
    # the branch at D = 1280 trains its trunk from step 0, then D'
    assert len(rows) > 4  # the round's rows were written
    assert rounds == 0 and charged == pytest.approx(before + 6 * TINY_RUN["params"] * 2560)


def test_a_rerun_finishes_an_interrupted_round_without_charging_it_twice(
    tiny_corpus, tmp_path, monkeypatch
):
    # the round was charged before it trained, and a rerun planned it anew and charged it
    # again: on a budget the round fits once, the rerun trained nothing ("no suggestion fits")
    import bayesplit.train.execute

    loop, picks = _picking_loop(tiny_corpus, tmp_path, monkeypatch)
    before = _runs_flops(RunStore(tmp_path / "runs.db").read())
    round_cost = 6 * TINY_RUN["params"] * 2560  # the trunk from step 0 to D, then D'
    real = bayesplit.train.execute.execute_suggestions
    trained = []

    def killed_at_first(runs, *args, **kwargs):  # killed before any row of the round landed
        trained.append(runs)
        if len(trained) == 1:
            raise KeyboardInterrupt
        return real(runs, *args, **kwargs)

    monkeypatch.setattr(bayesplit.train.execute, "execute_suggestions", killed_at_first)
    budget = before + 1.5 * round_cost
    with pytest.raises(KeyboardInterrupt):
        loop(rounds=1, experiment_budget=budget)
    # on another device: the same trunks, so still the same runs
    again = loop(rounds=1, experiment_budget=budget, train_overrides={"device": "cpu"})
    assert again["round"].tolist() == [1] and again["resumed"].tolist() == [True]
    assert again["level"].tolist() == [0.9]  # of objective_lo/hi
    assert len(picks) == 1  # the interrupted round's runs, not a new pick
    assert [(r["params"], r["pretrain_tokens"], r["spec_tokens"]) for r in trained[1]] == [
        (BRANCH["params"], BRANCH["pretrain_tokens"], BRANCH["spec_tokens"])
    ]
    assert again["trained_rows"].iloc[0] > 0
    assert again["spent_flops"].iloc[0] == pytest.approx(before + round_cost)
    # the next rerun picks anew, numbered after it
    later = loop(rounds=1)
    assert later["round"].tolist() == [2] and later["resumed"].tolist() == [False]
    assert len(picks) == 2


def test_an_interrupted_round_rerun_with_another_seed_is_planned_anew(
    tiny_corpus, tmp_path, monkeypatch
):
    # its runs would get other trunk and run ids under the new seed: "resumed", they were
    # trained in full again and charged nothing, past --experiment-budget
    import bayesplit.train.execute

    loop, picks = _picking_loop(tiny_corpus, tmp_path, monkeypatch)
    real = _interrupted_after_its_rows(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        loop(rounds=1)
    rows = RunStore(tmp_path / "runs.db").read()
    monkeypatch.setattr(bayesplit.train.execute, "execute_suggestions", real)
    again = loop(rounds=1, seed=1)
    assert again["resumed"].tolist() == [False] and len(picks) == 2  # picked anew
    # charged: the rows that reached the store at their cost, then the new round's trains
    after = RunStore(tmp_path / "runs.db").read()
    assert again["spent_flops"].iloc[0] >= _runs_flops(after) > _runs_flops(rows)


def test_the_loop_state_follows_a_project_folder_moved_or_copied(tmp_path):
    import shutil

    from support import good_table

    from bayesplit.train.closed_loop import _read_loop_state, _write_loop_state

    project = tmp_path / "project"
    RunStore(project / "runs.db").append(good_table())
    _write_loop_state(project / "work", project / "runs.db", 2, 5.0)
    moved = tmp_path / "moved"
    shutil.copytree(project, moved)
    rows = RunStore(moved / "runs.db").read()
    # it numbered its rounds from 1 again, with their seeds
    assert _read_loop_state(moved / "work", moved / "runs.db", rows)[:2] == (2, 5.0)
    # moved on, looped there, moved again, and back: not the stale entry of its first path
    shutil.rmtree(project)
    _write_loop_state(moved / "work", moved / "runs.db", 4, 9.0)
    again = tmp_path / "again"
    shutil.move(moved, again)
    assert _read_loop_state(again / "work", again / "runs.db", rows)[:2] == (4, 9.0)
    shutil.move(again, project)
    assert _read_loop_state(project / "work", project / "runs.db", rows)[:2] == (4, 9.0)
    # a copy beside it, sharing its workdir, goes on from it, then keeps its own state
    shutil.copy(project / "runs.db", project / "copy.db")
    assert _read_loop_state(project / "work", project / "copy.db", rows)[:2] == (4, 9.0)
    RunStore(project / "copy.db").append(good_table().assign(run_id=lambda d: d["run_id"] + "c"))
    _write_loop_state(project / "work", project / "copy.db", 5, 10.0)
    grown = RunStore(project / "copy.db").read()
    assert _read_loop_state(project / "work", project / "copy.db", grown)[:2] == (5, 10.0)
    assert _read_loop_state(project / "work", project / "runs.db", rows)[:2] == (4, 9.0)
    moved = project
    # another store in that workdir is still another campaign
    other = good_table().assign(run_id=lambda d: d["run_id"] + "x")
    RunStore(moved / "other.db").append(other)
    other_rows = RunStore(moved / "other.db").read()
    assert _read_loop_state(moved / "work", moved / "other.db", other_rows)[:2] == (0, 0.0)


def test_training_runs_with_gc_callbacks_off_so_a_ctrl_c_is_not_dropped(
    tiny_corpus, tmp_path, monkeypatch
):
    # JAX's gc callback (imported for the fit) swallowed most Ctrl-Cs during training
    import gc

    import bayesplit.train.execute

    loop = _stubbed_loop(tiny_corpus, tmp_path, monkeypatch, 0.05, lambda: [BRANCH])
    seen = []

    def execute(*args, **kwargs):
        seen.append(list(gc.callbacks))
        return pd.DataFrame()

    def callback(phase, info):
        pass

    monkeypatch.setattr(bayesplit.train.execute, "execute_suggestions", execute)
    gc.callbacks.append(callback)
    try:
        loop(rounds=1)
        assert seen == [[]]
        assert callback in gc.callbacks
    finally:
        gc.callbacks.remove(callback)
