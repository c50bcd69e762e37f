"""The bundled run tables load, validate and split as documented."""

from __future__ import annotations

import numpy as np
import pytest

from bayesplit.datasets import DATASETS, datablations, debian_campaign, gadre2024, load_dataset
from bayesplit.errors import BayesplitError


def test_gadre2024_splits_partition_the_rpj_models():
    fit, held, both = (gadre2024(split=s) for s in ("fit", "heldout", "all"))
    assert (fit["run_id"].nunique(), held["run_id"].nunique()) == (32, 3)
    assert len(fit) + len(held) == len(both) == 35 * 8
    assert fit["params"].max() < held["params"].min()  # held-out models are the largest
    assert len(gadre2024(None, split="all")) == 104 * 8


def test_gadre2024_embedding_convention():
    non_emb = gadre2024(params="non_embedding")
    with_emb = gadre2024(params="with_embeddings")
    assert (with_emb["params"] > non_emb["params"]).all()
    np.testing.assert_array_equal(with_emb["params_non_embedding"], non_emb["params"])


def test_datablations_repetition_columns():
    runs = datablations()
    assert len(runs) == 296 and set(runs["eval_domain"]) == {"c4_val"}
    np.testing.assert_allclose(runs["pretrain_tokens"] / runs["unique_tokens"], runs["epochs"])
    assert (runs["spec_tokens"] == 0).all()
    # the seed replicates of one (N, D, U) give seed-to-seed noise
    assert (runs["seed"] > 0).sum() == 64
    once = datablations(max_epochs=1)
    assert len(once) == 41 and (once["epochs"] <= 1).all()
    assert len(datablations(max_epochs=4)) == 97


def test_debian_campaign_is_a_two_stage_factorial():
    runs = debian_campaign()
    spec = runs[runs["spec_tokens"] > 0]
    domains = set(runs["eval_domain"])
    assert len(spec) >= 150 and runs["params"].nunique() >= 4 and len(domains) >= 4
    # every model, general or specialist, is evaluated on every domain
    assert (runs.groupby("run_id")["eval_domain"].nunique() == len(domains)).all()
    # specialists of every domain branch from every (trunk, D) that has a general model
    general = runs[runs["spec_tokens"] == 0]
    branch_points = set(zip(general["trunk_id"], general["pretrain_tokens"], strict=True))
    for (trunk, d), grp in spec.groupby(["trunk_id", "pretrain_tokens"]):
        assert (trunk, d) in branch_points
        assert set(grp["train_domain"]) == domains
    # exact token accounting: D and D' are whole optimizer steps of the run's batch
    step_tokens = runs["batch_size"] * runs["seq_len"]
    assert (runs["pretrain_tokens"] % step_tokens == 0).all()
    assert (runs["spec_tokens"] % step_tokens == 0).all()
    # a second seed at some points measures seed noise
    assert set(runs["seed"]) == {0, 1}
    assert (debian_campaign(seeds="first")["seed"] == 0).all()


def test_debian_campaign_holds_out_the_largest_compute_runs():
    runs, fit, held = (debian_campaign(split=s) for s in ("all", "fit", "heldout"))
    assert len(fit) + len(held) == len(runs)
    assert held["params"].min() == runs["params"].max()
    assert held["pretrain_tokens"].min() == runs["pretrain_tokens"].max()
    # general models of one trunk share its run id (checkpoints of one run); rows differ by step
    key = ["run_id", "step", "eval_domain"]
    assert not set(map(tuple, fit[key].to_numpy())) & set(map(tuple, held[key].to_numpy()))


@pytest.mark.parametrize(
    "call",
    [
        lambda: gadre2024("wiki"),
        lambda: gadre2024(split="test"),
        lambda: gadre2024(params="total"),
        lambda: datablations(max_epochs=0),
        lambda: load_dataset("pile"),
        lambda: debian_campaign(split="test"),
        lambda: debian_campaign(seeds="second"),
    ],
)
def test_bad_arguments_raise(call):
    with pytest.raises(BayesplitError):
        call()


def test_load_dataset_knows_every_bundled_table():
    for name in DATASETS:
        assert len(load_dataset(name)) > 0


def test_debian_campaign_contents_count_what_the_table_holds():
    """DEBIAN_CAMPAIGN.md said 992 rows were "230 runs × 4 eval domains" (920): general
    models of one trunk share a run_id, so the models are (run_id, step) pairs."""
    import re
    from importlib import resources

    text = resources.files("bayesplit.datasets").joinpath("DEBIAN_CAMPAIGN.md").read_text()
    said = re.search(
        r"(\d+) rows: (\d+) models \((\d+) at seed 0, (\d+) at seed 1\) × (\d+) eval domains, "
        r"under (\d+) run ids\s+\(the four general models of each of the (\d+) trunks share "
        r"one; (\d+) at seed 0, (\d+) at seed 1\)",
        " ".join(text.split()),
    )
    assert said, "the Contents paragraph no longer reads as this test expects"
    runs = debian_campaign()
    models = runs[["run_id", "step", "seed"]].drop_duplicates()
    ids = runs[["run_id", "seed"]].drop_duplicates()
    measured = [
        len(runs),
        len(models),
        *(int((models["seed"] == s).sum()) for s in (0, 1)),
        runs["eval_domain"].nunique(),
        len(ids),
        runs["trunk_id"].nunique(),
        *(int((ids["seed"] == s).sum()) for s in (0, 1)),
    ]
    assert [int(n) for n in said.groups()] == measured
    assert len(models) * runs["eval_domain"].nunique() == len(runs)
