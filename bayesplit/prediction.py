"""Predictions with two bands that are never confused.

* ``credible``: where the *law* (the mean loss) is, given the posterior.
* ``predictive``: where a *new run's* measured loss will be: the law plus a new
  run effect plus Student-t noise.

With ``run=`` naming a run (or trunk) the fit has seen, both bands are for *that*
run instead: its estimated run effect is added to the law and no new effect is
drawn, so the predictive band only adds noise. That is the right question for a
later branch of a trunk already under way.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from bayesplit._parse import _shown, check_level, check_seed, counts
from bayesplit.errors import BayesplitError

#: The predictive band is estimated from at least this many simulated new runs.
MIN_PREDICTIVE_SAMPLES = 8000


def sample_predictive(
    log_mean: np.ndarray,
    noise: dict[str, np.ndarray],
    rng: np.random.Generator,
    new_run: bool = True,
) -> np.ndarray:
    """Losses of new runs, shape of ``log_mean`` (draws × domains × points): per posterior
    draw, noise on every row and (``new_run``) a new run effect.

    A point is one new run, evaluated on every domain, so its run effect is one draw shared
    by its domains, as the model shares it between a run's rows. Drawn per domain, the
    mean over domains (a general model's predicted loss in ``suggest``) averaged K
    independent effects, and its band lost most of the run-to-run spread.
    """
    s = log_mean.shape[0]
    extra = (1,) * (log_mean.ndim - 1)
    eps = noise["sigma"].reshape((s,) + extra) * rng.standard_t(
        noise["nu"].reshape((s,) + extra), size=log_mean.shape
    )
    if not new_run:
        return np.exp(log_mean + eps)
    shared = (s, 1, *log_mean.shape[2:]) if log_mean.ndim >= 2 else log_mean.shape
    run = noise["run_sd"].reshape((s,) + extra) * rng.standard_normal(shared)
    return np.exp(log_mean + run + eps)


def _check_run_size(runs, run: str, n: np.ndarray, *, held_out: bool = False) -> None:
    """A run's effect is that model's offset: it says nothing about a model of another N.

    Within 5%, so an N typed to two or three digits (6.4e5 for 640,512) still matches.
    ``held_out``: ``n`` are a held-out table's rows of the run, not a point asked for.
    """
    mine = runs["run_id"] == run
    if "trunk_id" in runs:
        mine |= runs["trunk_id"] == run
    sizes = np.unique(runs.loc[mine, "params"].to_numpy(dtype=float))
    n = n[np.isfinite(n)]  # a missing N is refused as such where it is read, not as a size
    if len(sizes) and not np.all(np.isclose(n[:, None], sizes[None, :], rtol=0.05).any(axis=1)):
        if held_out:  # no run to leave out: the two tables disagree
            raise BayesplitError(
                f"run {run!r} is a model of N={', '.join(f'{v:.4g}' for v in sizes)} in the "
                f"fitted runs but of N={', '.join(f'{v:.4g}' for v in np.unique(n))} in the "
                "held-out rows: the two tables count N differently (with embeddings in one?) "
                "or give two models one run id"
            )
        raise BayesplitError(
            f"run {run!r} is a model of N={', '.join(f'{v:.4g}' for v in sizes)}; its run effect "
            f"says nothing about N={', '.join(f'{v:.4g}' for v in np.unique(n))} (leave out "
            "the run for a new model's prediction)"
        )


def _points(params, pretrain_tokens, spec_tokens) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """N, D and D' as float arrays of one length; a single number is used at every point."""
    given = {
        "params": counts(params, "params"),
        "pretrain_tokens": counts(pretrain_tokens, "pretrain_tokens"),
        "spec_tokens": counts(spec_tokens, "spec_tokens", zero_ok=True),
    }
    lengths = {k: len(v) for k, v in given.items() if len(v) != 1}
    if len(set(lengths.values())) > 1:
        raise BayesplitError(
            "params, pretrain_tokens and spec_tokens must be arrays of one length (or single "
            f"numbers), got lengths {', '.join(f'{k}={m}' for k, m in lengths.items())}"
        )
    n, d, dp = np.broadcast_arrays(*given.values())
    return n, d, dp


def predict(
    posterior,
    params,
    pretrain_tokens,
    spec_tokens=0.0,
    domain: str | list[str] | None = None,
    *,
    level: float = 0.9,
    seed: int = 0,
    max_draws: int | None = None,
    run: str | None = None,
) -> xr.Dataset:
    """Predict the loss at (N, D, D') points for one or more domains.

    Parameters
    ----------
    posterior
        A fitted :class:`~bayesplit.posterior.Posterior`.
    params, pretrain_tokens, spec_tokens
        N, D and D' as raw counts (numbers, not text such as ``"1e8"``): scalars or
        1-D arrays (lists, numpy arrays, pandas Series) of one length, the points; a
        scalar or a length-1 array is used at every point.
    domain
        A domain name, a list of them, or None for every domain.
    level
        Probability mass of both bands.
    seed
        Seed of the noise draws behind the predictive band.
    max_draws
        Use an evenly thinned subset of draws (slightly noisier bands): a whole number
        >= 1, or None for all draws. The predictive band always draws at least 8,000 new
        runs per point and domain (several per posterior draw when there are fewer), so
        its cost and memory grow with the number of points, not with ``max_draws``:
        predict many points in chunks.
    run
        A run, branch or trunk id the fit has seen: predict for that model (a later
        checkpoint, or another branch of its trunk), its estimated run effect included,
        instead of for a new one. An id the fit has not seen, or a
        fit without a run effect, gives the new-run prediction (``attrs["run"]`` says
        which was used). Ids are text: ``run=5`` is refused (give ``"5"``).

    Returns
    -------
    xarray.Dataset
        Dims ``domain`` × ``point`` (and ``draw`` for the raw draws) with variables
        ``mean``, ``median``, ``credible_lo``, ``credible_hi`` (band on the law),
        ``predictive_lo``, ``predictive_hi`` (band for a new run), ``law`` and
        ``new_run`` (draws); coordinates carry N, D, D'. ``attrs["level"]``.
    """
    from bayesplit.posterior import check_posterior

    check_posterior(posterior)
    level = check_level(level)
    seed = check_seed(seed)
    if run is not None and not isinstance(run, str):
        # run ids are text: 5 never matched the run "5" and gave a new run's prediction
        raise BayesplitError(f"run must be a run or trunk id (a str) or None, got {_shown(run)}")
    n, d, dp = _points(params, pretrain_tokens, spec_tokens)
    dom_idx = posterior.domain_index(domain)
    domains = [posterior.domains[i] for i in dom_idx]

    draws = posterior.draws(max_draws=max_draws)
    noise = posterior.noise_draws(max_draws=max_draws)
    # points × domains evaluated in one broadcast: (S, K, M)
    log_mean = posterior.log_mean(
        n[None, :], d[None, :], dp[None, :], dom_idx[:, None], draws=draws
    )
    points = {"N": n[None, :], "D": d[None, :], "D'": dp[None, :], "domain": np.c_[domains]}
    posterior.law.check_finite(log_mean, points)  # a user law's NaN is no prediction
    effect = posterior.run_effect_draws(run, max_draws=max_draws) if run is not None else None
    if effect is not None:
        _check_run_size(posterior.runs, run, n)
        log_mean = log_mean + effect[:, None, None]
    law = np.exp(log_mean)
    rng = np.random.default_rng(seed)
    # Several noise draws per posterior draw, so the predictive band's Monte Carlo error
    # stays small next to the credible band's even with few posterior draws.
    reps = max(1, int(np.ceil(MIN_PREDICTIVE_SAMPLES / law.shape[0])))
    new_all = np.concatenate(
        [sample_predictive(log_mean, noise, rng, new_run=effect is None) for _ in range(reps)],
        axis=0,
    )
    new = new_all[: law.shape[0]]

    lo, hi = (1 - level) / 2, (1 + level) / 2
    credible = np.quantile(law, [lo, hi], axis=0)
    # A new run's loss is the law's plus noise, so its band holds the law's. Its quantiles
    # are Monte Carlo estimates, though, and where the noise is small next to the law's
    # spread (far extrapolations) their error could put an end inside the credible band.
    predictive = np.quantile(new_all, [lo, hi], axis=0)
    predictive = np.stack(
        [np.minimum(predictive[0], credible[0]), np.maximum(predictive[1], credible[1])]
    )
    dims = ("domain", "point")
    ds = xr.Dataset(
        {
            "mean": (dims, law.mean(axis=0)),
            "median": (dims, np.median(law, axis=0)),
            "credible_lo": (dims, credible[0]),
            "credible_hi": (dims, credible[1]),
            "predictive_lo": (dims, predictive[0]),
            "predictive_hi": (dims, predictive[1]),
            "law": (("draw", *dims), law),
            "new_run": (("draw", *dims), new),
        },
        coords={
            "domain": domains,
            "point": np.arange(len(n)),
            "draw": np.arange(law.shape[0]),
            "params": ("point", n),
            "pretrain_tokens": ("point", d),
            "spec_tokens": ("point", dp),
        },
        attrs={
            "level": level,
            "law_name": posterior.law.name,
            "units": "nats per token",
            "run": run if effect is not None else "new",
        },
    )
    return ds


#: Fewer expected draws than this beyond each end of a band, and its ends are a few draws.
TAIL_DRAWS = 10


def thin_tails_note(level: float, n_draws: int, of: int | None = None) -> str | None:
    """A note when a band's ends rest on too few draws to mean much, else None.

    ``--level 0.999999`` with 4,000 draws gave the smallest and largest draw as the band,
    with nothing said. ``of``: the posterior's own number of draws, when ``n_draws`` were
    thinned from it (one draw of many is a point, not an interval; a known truth's one
    draw is the truth).
    """
    if n_draws < 2:  # a known truth's one draw is the truth; one draw of many is no band
        if of is None or of < 2:
            return None
        return (
            f"{n_draws} of the posterior's {of:,} draws: every band is a point and the "
            "expected regret is 0, not a measure of uncertainty; use more draws"
        )
    beyond = (1 - level) / 2 * n_draws
    # within rounding: 1 - 0.9 is 0.09999999999999998, and 200 draws said "only 10 ... (fewer
    # than 10)"
    if beyond >= TAIL_DRAWS * (1 - 1e-9):
        return None
    return (
        f"at level {level:g} only {beyond:.2g} of the {n_draws:,} draws are expected beyond "
        f"each end of a band (fewer than {TAIL_DRAWS}), so its ends are "
        + ("the most extreme draws" if beyond < 1 else "noisy")
        + "; lower the level or use more draws"
    )


def point_summary(ds: xr.Dataset, domain: str, point: int = 0) -> dict:
    """The CLI's JSON for one (domain, point): mean, median, credible, predictive, level."""
    sel = ds.sel(domain=domain).isel(point=point)
    return {
        "domain": domain,
        "params": float(sel["params"]),
        "pretrain_tokens": float(sel["pretrain_tokens"]),
        "spec_tokens": float(sel["spec_tokens"]),
        "mean": float(sel["mean"]),
        "median": float(sel["median"]),
        "credible": [float(sel["credible_lo"]), float(sel["credible_hi"])],
        "predictive": [float(sel["predictive_lo"]), float(sel["predictive_hi"])],
        "run": ds.attrs.get("run", "new"),
        "level": float(ds.attrs["level"]),
    }
