"""Choosing a law by evidence: held-out error on the largest runs, interval coverage, PSIS-LOO.

The largest-compute runs are what a scaling law exists to predict, so each law is
fitted without them and asked to predict them; PSIS-LOO on the same fit scores
how well the law explains the runs it saw.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from bayesplit import _arviz
from bayesplit._parse import (
    check_kwargs,
    check_level,
    is_finite_number,
    names,
    percent,
    progress_messages,
)
from bayesplit.errors import BayesplitError
from bayesplit.laws import Law, get_law
from bayesplit.model import run_groups
from bayesplit.prediction import _check_run_size
from bayesplit.runs import compute_flops, load_runs, modelled_rows

#: Pareto k above this makes the PSIS-LOO estimate for a row unreliable.
PARETO_K_BAD = 0.7


def split_largest(runs: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a run table into (train, holdout): the top ``fraction`` of runs by compute are held out.

    Whole runs move together (all their eval domains and checkpoints), so no
    information about a held-out run leaks into the fit.
    """
    # "0.2" or None was a TypeError from the comparison, and True read as 1
    if not (is_finite_number(fraction) and 0 <= fraction < 1):
        raise BayesplitError(f"holdout fraction must be in [0, 1), got {fraction!r}")
    if fraction == 0:
        return runs, runs.iloc[0:0]
    flops = pd.Series(compute_flops(runs), index=runs.index).groupby(runs["run_id"]).max()
    n_hold = int(np.ceil(fraction * len(flops)))
    if n_hold >= len(flops):
        raise BayesplitError("holdout fraction leaves no runs to fit")
    held_runs = set(flops.sort_values(ascending=False).index[:n_hold])
    mask = runs["run_id"].isin(held_runs)
    return runs[~mask], runs[mask]


def holdout_predictions(
    posterior, holdout: pd.DataFrame, level: float = 0.9, seed: int = 0
) -> pd.DataFrame:
    """Predictions for the held-out rows the law describes, one row each, in table order.

    A held-out row whose run (or trunk) the fit has seen, say a later branch of a trunk
    whose early branches were fitted, is predicted for that run, its estimated run effect
    included (``predicted_for`` = ``"seen trunk"``); a row of an unseen run gets the band
    of a new run. ``new_run_lo``/``new_run_hi`` are the new-run band for every row.
    """
    level = check_level(level)  # even with no row to predict
    rows = holdout[
        modelled_rows(holdout).to_numpy()
        & holdout["eval_domain"].isin(posterior.domains).to_numpy()
    ]
    keep = ["run_id", "params", "pretrain_tokens", "spec_tokens", "train_domain", "eval_domain"]
    out = []
    groups = run_groups(rows)
    for group, grp in rows.groupby(groups, sort=False):  # before any prediction
        if posterior.run_effect_group(group) is not None:  # as predict checks it
            _check_run_size(posterior.runs, group, grp["params"].to_numpy(float), held_out=True)
    for (dom, group), grp in rows.groupby([rows["eval_domain"], groups], sort=False):
        args = (grp["params"], grp["pretrain_tokens"], grp["spec_tokens"])
        ds = posterior.predict(*args, domain=dom, level=level, seed=seed, run=group).sel(domain=dom)
        new = posterior.predict(*args, domain=dom, level=level, seed=seed).sel(domain=dom)
        g = grp[[c for c in keep if c in grp.columns] + ["loss"]].copy()
        g["predicted_for"] = "new run" if ds.attrs["run"] == "new" else "seen trunk"
        for v in ("median", "credible_lo", "credible_hi", "predictive_lo", "predictive_hi"):
            g[v] = ds[v].values
        g["new_run_lo"] = new["predictive_lo"].values
        g["new_run_hi"] = new["predictive_hi"].values
        out.append(g)
    if not out:
        return pd.DataFrame(columns=[*keep, "loss", "predicted_for", "median"])
    return pd.concat(out).sort_index()


def holdout_metrics(posterior, holdout: pd.DataFrame, level: float = 0.9, seed: int = 0) -> dict:
    """Relative error of the median prediction and coverage of the predictive band on held-out rows.

    Rows are predicted as in :func:`holdout_predictions` (``seed``: its noise draws).
    ``coverage_new_run`` scores every row against the new-run band, the stricter reading
    when the held-out runs share a trunk with the fitted ones. ``n_holdout_runs`` counts
    the held-out runs as independent units: a trunk and its branches once, as they share
    one run effect.
    """
    p = holdout_predictions(posterior, holdout, level, seed)
    if len(p) == 0:
        return {
            "n_holdout": 0,
            "n_holdout_runs": 0,
            "n_seen_run": 0,
            "median_rel_error": float("nan"),
            "max_rel_error": float("nan"),
            "coverage": float("nan"),
            "coverage_new_run": float("nan"),
        }
    obs = p["loss"].to_numpy(float)
    err = np.abs(p["median"].to_numpy() - obs) / obs
    return {
        "n_holdout": len(p),
        "n_holdout_runs": int(run_groups(holdout.loc[p.index]).nunique()),
        "n_seen_run": int((p["predicted_for"] == "seen trunk").sum()),
        "median_rel_error": float(np.median(err)),
        "max_rel_error": float(np.max(err)),
        "coverage": float(np.mean((obs >= p["predictive_lo"]) & (obs <= p["predictive_hi"]))),
        "coverage_new_run": float(np.mean((obs >= p["new_run_lo"]) & (obs <= p["new_run_hi"]))),
    }


def loo_metrics(posterior) -> dict:
    """PSIS-LOO of a fit: elpd, its standard error, p_loo and how many Pareto k are bad."""
    res = _arviz.loo(posterior.idata)
    k = np.asarray(res.pareto_k, dtype=float)
    # a k PSIS could not estimate (NaN) is as unreliable as a large one; counting it keeps
    # the count and the maximum telling the same story
    n_bad = int(np.sum(~(k <= PARETO_K_BAD)))
    return {
        "elpd_loo": float(res.elpd_loo),
        "elpd_loo_se": float(res.se),
        "p_loo": float(res.p_loo),
        "pareto_k_bad": n_bad,
        "pareto_k_max": float(np.nanmax(k)) if np.isfinite(k).any() else float("inf"),
    }


def compare(
    runs: pd.DataFrame | str,
    laws: Sequence[str | Law],
    *,
    holdout_largest: float = 0.2,
    level: float = 0.9,
    progress: bool | Callable[[str], None] | None = None,
    **fit_kwargs,
) -> pd.DataFrame:
    """Fit each law without the largest runs, then score it.

    Parameters
    ----------
    runs
        The run table.
    laws
        Laws to compare: names (:func:`bayesplit.laws.available_laws`) or
        :class:`~bayesplit.laws.Law` objects, as :func:`bayesplit.fit` takes them.
    holdout_largest
        Fraction of runs, by compute, held out for prediction (0: none, LOO only).
    level
        Probability of the predictive intervals whose coverage is reported.
    progress
        True prints a line to stderr before each fit, and shows the fits' progress bars;
        a callable receives the lines instead. False or None: silent.
    **fit_kwargs
        Passed to :func:`bayesplit.fit` (chains, draws, seed, ...).

    Returns
    -------
    pandas.DataFrame
        One row per law: ``n_train`` fitted rows (``n_train_runs`` runs), held-out
        ``median_rel_error``, ``max_rel_error``,
        ``coverage`` (``coverage_new_run``: see :func:`holdout_metrics`), ``elpd_loo`` (± se, with the count of Pareto k > 0.7),
        ``gate_ok`` and the warnings (one says when the held-out coverage is below the
        level by more than sampling noise), sorted by elpd, best first.
    """
    from bayesplit.fitting import check_fit_options, fit
    from bayesplit.model import prepare
    from bayesplit.prior import check_law_mean

    if laws is None or isinstance(laws, (str, Law)):
        laws = [] if laws is None else [laws]  # one law, not its letters
    elif not all(isinstance(law, (str, Law)) for law in laws):
        raise BayesplitError(f"laws must be law names or Law objects, got {laws!r}")
    if not laws:
        raise BayesplitError("give at least one law to compare")
    laws = [get_law(law) for law in laws]  # an unknown name fails now, not after the first fits
    names = [law.name for law in laws]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:  # the same fit twice, at twice the cost, would read as two candidates
        raise BayesplitError(f"law(s) named more than once: {', '.join(repeated)}")
    level = check_level(level)
    # fit's own arguments, or "fit() got an unexpected keyword argument" after loading
    check_kwargs(fit_kwargs, fit, "compare", ("runs", "law", "progress"), "compare")
    # a sampler typo fails now, not after the first fit's progress line
    options = ("chains", "draws", "warmup", "seed", "device", "backend", "target_accept")
    check_fit_options(**{k: v for k, v in fit_kwargs.items() if k in options})
    progress = progress_messages(progress)
    train, holdout = split_largest(load_runs(runs), holdout_largest)
    for law in laws:  # and so does a user law whose mean fails on these runs
        if not law.builtin:
            kw = {"domains": fit_kwargs.get("domains"), "reference": fit_kwargs.get("reference")}
            check_law_mean(law, *prepare(train, law, **kw), before_fit=True)
    results = []
    for law in laws:
        name = law.name
        if progress:
            progress(
                f"fitting {name} on {train['run_id'].nunique()} runs, holding out {holdout['run_id'].nunique()}"
            )
        post = fit(train, law, progress=progress is not None, **fit_kwargs)  # its bars too
        # rows and runs: the progress line counts runs, and one run has a row per domain
        row = {
            "law": name,
            "n_train": len(post.runs),
            "n_train_runs": post.runs["run_id"].nunique(),
        }
        # the same keys with nothing held out (NaN), so --json has one shape
        # the bands' noise draws follow the fits' seed: --seed changed only the fits
        row.update(holdout_metrics(post, holdout, level, fit_kwargs.get("seed", 0)))
        row.update(loo_metrics(post))
        warnings = list(post.diagnostics.failures)
        unscored = unpredicted_domains(holdout, post.domains, fit_kwargs.get("domains"))
        if len(unscored):  # the fit has no parameters for them, so they cannot be scored
            warnings.append(
                f"{len(unscored)} held-out row{'s' if len(unscored) != 1 else ''} on domains "
                f"the fitted runs lack ({', '.join(sorted(map(str, set(unscored))))}) not "
                "predicted"
            )
        narrow = undercoverage_note(row["coverage"], row["n_holdout_runs"], level)
        if narrow is not None:
            warnings.append(narrow)
        if row["pareto_k_bad"]:
            warnings.append(
                f"{row['pareto_k_bad']} row{'s' if row['pareto_k_bad'] != 1 else ''} with Pareto "
                f"k > {PARETO_K_BAD}: PSIS-LOO is unreliable for {'them' if row['pareto_k_bad'] != 1 else 'it'}"
            )
        row["gate_ok"] = post.diagnostics.ok
        row["warnings"] = warnings
        results.append(row)
    df = pd.DataFrame(results).set_index("law")
    return df.sort_values("elpd_loo", ascending=False)


def unpredicted_domains(holdout: pd.DataFrame, fitted, chosen=None) -> pd.Series:
    """The eval domains of the held-out rows a fit of ``fitted`` domains cannot score:
    rows a law describes (not a specialist's forgetting rows), on a domain the fit lacks
    and that the user did not leave out (``chosen``, the fit's ``domains``)."""
    rows = holdout[modelled_rows(holdout).to_numpy()]
    lacking = ~rows["eval_domain"].isin(list(fitted))
    if chosen is not None:  # left out on purpose: "147 rows ... not predicted" misled
        lacking &= rows["eval_domain"].isin(names(chosen))
    return rows.loc[lacking, "eval_domain"]


def undercoverage_note(coverage: float, n_runs: int, level: float) -> str | None:
    """A note when held-out ``coverage`` of ``level`` bands is below the level by more
    than sampling noise: two binomial standard errors over ``n_runs`` independent runs
    (the rows of one run share its effect, so counting rows made the test fire on
    calibrated bands; a run's share of rows inside varies less than one Bernoulli, so
    this errs on the lenient side). The law's intervals are then too narrow where it
    extrapolates, whatever its elpd, which orders the table."""
    if not n_runs or not np.isfinite(coverage):
        return None
    floor = level - 2 * math.sqrt(level * (1 - level) / n_runs)
    if coverage >= floor:
        return None
    return (
        f"held-out coverage {coverage:.0%} of its {percent(level)} bands is below the level by "
        f"more than sampling noise over {n_runs} independent held-out runs: its intervals are "
        "too narrow beyond the fit"
    )
