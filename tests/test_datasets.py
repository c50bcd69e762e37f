"""The bundled run tables load, validate and split as documented."""

from __future__ import annotations

import numpy as np
import pytest

from bayesplit.datasets import DATASETS, datablations, gadre2024, load_dataset
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


@pytest.mark.parametrize(
    "call",
    [
        lambda: gadre2024("wiki"),
        lambda: gadre2024(split="test"),
        lambda: gadre2024(params="total"),
        lambda: datablations(max_epochs=0),
        lambda: load_dataset("pile"),
    ],
)
def test_bad_arguments_raise(call):
    with pytest.raises(BayesplitError):
        call()


def test_load_dataset_knows_every_bundled_table():
    for name in DATASETS:
        assert len(load_dataset(name)) > 0
