"""Bundled run tables (each with its source and license in a ``.md`` next to it)."""

from __future__ import annotations

from importlib import resources

import pandas as pd

from bayesplit._parse import is_number
from bayesplit.errors import BayesplitError
from bayesplit.runs import validate_runs

#: Models Gadre et al. 2024 trained beyond the fitting ladder, used as held-out targets.
GADRE_HELDOUT = ("open_lm_1b", "open_lm_7b")
DATASETS = ("debian_campaign", "gadre2024", "datablations")


def _read(name: str) -> pd.DataFrame:
    with resources.files(__package__).joinpath(f"{name}.csv.gz").open("rb") as fh:
        return pd.read_csv(
            fh, compression="gzip", dtype={"run_id": str, "train_domain": str, "eval_domain": str}
        )


def _split(df: pd.DataFrame, heldout: pd.Series, split: str) -> pd.DataFrame:
    """``all`` rows, the ``fit`` rows (not held out) or the ``heldout`` ones."""
    if split == "fit":
        return df[~heldout]
    if split == "heldout":
        return df[heldout]
    if split != "all":
        raise BayesplitError(f"split must be all, fit or heldout, got {split!r}")
    return df


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
    df = _split(df, df["model"].isin(GADRE_HELDOUT), split)
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
        if not (is_number(max_epochs) and max_epochs > 0):  # "1" was a TypeError, True 1
            raise BayesplitError(f"max_epochs must be a number > 0, got {max_epochs!r}")
        if not (df["epochs"] <= max_epochs).any():
            raise BayesplitError(
                f"max_epochs={max_epochs:g} keeps no run: the fewest epochs of a run is "
                f"{df['epochs'].min():g}"
            )
        df = df[df["epochs"] <= max_epochs]
    return validate_runs(df.reset_index(drop=True))


def debian_campaign(
    split: str = "all", *, seeds: str = "all", params: str = "non_embedding"
) -> pd.DataFrame:
    """bayesplit's own measured two-stage campaign (the default data of ``bayesplit demo``).

    Models of ``models/cpu_ladder.yaml`` (20k-440k non-embedding parameters) trained by the
    bundled trainer on the four-domain Debian demo corpus (code, docs, lexicon, scripture):
    for each size one warmup-stable-decay trunk with four branch points D, a decayed general
    model at each (``spec_tokens`` = 0) and specialists for three D' on every domain, every
    model evaluated on every domain. See ``DEBIAN_CAMPAIGN.md`` next to the table.

    Parameters
    ----------
    split
        ``"all"``; ``"fit"``: everything but the held-out runs; ``"heldout"``: the largest
        model's runs at its largest D (general and specialists), the largest-compute runs
        of the campaign, which ``bayesplit demo`` predicts.
    seeds
        ``"all"``, or ``"first"`` for seed 0 only (one trunk per size; the second seed at
        the two smallest sizes measures seed-to-seed noise).
    params
        ``"non_embedding"`` (bayesplit's convention) or ``"with_embeddings"``: which count
        goes in the ``params`` column (the other stays in ``params_non_embedding`` /
        ``params_with_embeddings``). At this scale the tied embedding is most of the model
        and its output projection most of the compute; the law comparison in
        ``experiments/campaign/compare.md`` shows which count extrapolates better.

    Returns
    -------
    pandas.DataFrame
        A validated run table: one row per model and eval domain (specialists on other
        domains measure forgetting and are left out of fits by
        :func:`bayesplit.runs.modelled_rows`), with the trainer's extra columns (``model``,
        ``params_with_embeddings``, ``tokens_per_s``, ``wall_time_s``, ...).

    Examples
    --------
    >>> from bayesplit.datasets import debian_campaign
    >>> runs = debian_campaign()
    >>> sorted(runs["eval_domain"].unique())
    ['code', 'docs', 'lexicon', 'scripture']
    """
    df = _read("debian_campaign")
    if seeds == "first":
        df = df[df["seed"] == 0]
    elif seeds != "all":
        raise BayesplitError(f"seeds must be all or first, got {seeds!r}")
    largest = df["params"] == df["params"].max()
    d_max = df.loc[largest, "pretrain_tokens"].max()
    df = _split(df, largest & (df["pretrain_tokens"] == d_max), split)
    df = df.assign(params_non_embedding=df["params"])
    if params == "with_embeddings":
        df = df.assign(params=df["params_with_embeddings"].astype(float))
    elif params != "non_embedding":
        raise BayesplitError(f"params must be non_embedding or with_embeddings, got {params!r}")
    return validate_runs(df.reset_index(drop=True))


def load_dataset(name: str, **kwargs) -> pd.DataFrame:
    """A bundled run table by name (see :data:`DATASETS`); ``bundled:NAME``, the form
    :func:`bayesplit.runs.load_runs` and the command line take, works too."""
    if isinstance(name, str) and name.startswith("bundled:"):
        name = name.removeprefix("bundled:")
    loaders = {"debian_campaign": debian_campaign, "gadre2024": gadre2024}
    loaders["datablations"] = datablations
    if kwargs and name in loaders:  # "debian_campaign() got an unexpected keyword argument"
        from bayesplit._parse import check_kwargs

        check_kwargs(kwargs, loaders[name], f"load_dataset({name!r})")
    if name == "debian_campaign":
        return debian_campaign(**kwargs)
    if name == "gadre2024":
        return gadre2024(**kwargs)
    if name == "datablations":
        return datablations(**kwargs)
    raise BayesplitError(f"unknown dataset {name!r}; bundled: {', '.join(DATASETS)}")
