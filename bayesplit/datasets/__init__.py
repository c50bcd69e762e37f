"""Bundled run tables (each with its source and license in a ``.md`` next to it)."""

from __future__ import annotations

from importlib import resources

import pandas as pd

from bayesplit.errors import BayesplitError
from bayesplit.runs import validate_runs

#: Models Gadre et al. 2024 trained beyond the fitting ladder, used as held-out targets.
GADRE_HELDOUT = ("open_lm_1b", "open_lm_7b")
DATASETS = ("gadre2024", "datablations")


def _read(name: str) -> pd.DataFrame:
    with resources.files(__package__).joinpath(f"{name}.csv.gz").open("rb") as fh:
        return pd.read_csv(
            fh, compression="gzip", dtype={"run_id": str, "train_domain": str, "eval_domain": str}
        )


def gadre2024(
    train_corpus: str | None = "rpj",
    *,
    split: str = "fit",
    params: str = "non_embedding",
) -> pd.DataFrame:
    """Gadre et al. 2024: open_lm models with losses on 8 validation sets.

    Parameters
    ----------
    train_corpus
        ``"rpj"`` (RedPajama, default), ``"c4_original"``, ``"rw_original"`` or None for all.
    split
        ``"fit"``: the ladder (N ≤ 411.6M); ``"heldout"``: the 1.4B and 6.9B models;
        ``"all"``: both.
    params
        ``"non_embedding"`` (bayesplit's convention) or ``"with_embeddings"``: which
        count goes in the ``params`` column.

    Returns
    -------
    pandas.DataFrame
        A validated run table (one row per model and validation set).
    """
    df = _read("gadre2024")
    if train_corpus is not None:
        known = sorted(df["train_corpus"].unique())
        if train_corpus not in known:
            raise BayesplitError(
                f"unknown train_corpus {train_corpus!r}; choose from {', '.join(known)}"
            )
        df = df[df["train_corpus"] == train_corpus]
    heldout = df["model"].isin(GADRE_HELDOUT)
    if split == "fit":
        df = df[~heldout]
    elif split == "heldout":
        df = df[heldout]
    elif split != "all":
        raise BayesplitError(f"split must be fit, heldout or all, got {split!r}")
    if params == "with_embeddings":
        df = df.assign(params_non_embedding=df["params"], params=df["params_with_embeddings"])
    elif params != "non_embedding":
        raise BayesplitError(f"params must be non_embedding or with_embeddings, got {params!r}")
    return validate_runs(df.reset_index(drop=True))


def datablations(max_epochs: float | None = None) -> pd.DataFrame:
    """Muennighoff et al. 2023: C4 runs trained for several epochs on limited unique data.

    Parameters
    ----------
    max_epochs
        Keep only runs that saw each unique token at most this many times (None: all 296).

    Returns
    -------
    pandas.DataFrame
        A validated run table (one row per run, ``eval_domain`` ``c4_val``), with the extra
        columns ``unique_tokens`` (U), ``epochs`` (D / U) and ``note``.

    Examples
    --------
    >>> from bayesplit.datasets import datablations
    >>> runs = datablations(max_epochs=1)
    >>> len(runs), runs["params"].nunique()
    (41, 19)
    """
    df = _read("datablations")
    if max_epochs is not None:
        if not max_epochs > 0:
            raise BayesplitError(f"max_epochs must be > 0, got {max_epochs}")
        df = df[df["epochs"] <= max_epochs]
    return validate_runs(df.reset_index(drop=True))


def load_dataset(name: str, **kwargs) -> pd.DataFrame:
    """A bundled run table by name (see :data:`DATASETS`)."""
    if name == "gadre2024":
        return gadre2024(**kwargs)
    if name == "datablations":
        return datablations(**kwargs)
    raise BayesplitError(f"unknown dataset {name!r}; bundled: {', '.join(DATASETS)}")
