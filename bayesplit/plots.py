"""Figures. All matplotlib lives here; the math modules only return numbers.

Every function takes an optional ``ax`` (or returns a new figure), labels axes with
units, and draws bands as shaded regions: darker = credible (the law), lighter =
predictive (a new run), never the same shade.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np

from bayesplit._parse import check_level, check_path, percent, share
from bayesplit.errors import BayesplitError

LAW_COLOR = "#1f5fa8"
PRED_COLOR = "#9ec3ea"
PLAN_COLOR = "#c0392b"
DATA_COLOR = "#222222"


def _mpl():
    """The few pyplot names the plots use, without pyplot's figure manager.

    Figures are plain ``matplotlib.figure.Figure`` objects, so plotting never selects or
    switches a backend: ``matplotlib.use("Agg")`` here used to turn a notebook's inline
    backend off for every later cell. A notebook still shows a returned figure (its
    display formatter handles Figure objects) and ``savefig`` needs no backend.
    """
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    def subplots(*args, figsize=None, constrained_layout=False, **kwargs):
        fig = Figure(figsize=figsize, layout="constrained" if constrained_layout else None)
        return fig, fig.subplots(*args, **kwargs)

    def close(fig) -> None:
        plt = sys.modules.get("matplotlib.pyplot")  # only a figure pyplot made needs it
        if plt is not None:
            plt.close(fig)

    return SimpleNamespace(
        subplots=subplots,
        get_cmap=matplotlib.colormaps.get_cmap,
        NullFormatter=NullFormatter,
        close=close,
    )


#: The columns of a frontier table that the figures read.
_FRONTIER_COLUMNS = ("budget", "params", "pretrain_tokens", "spec_tokens")


def _check_rows(table, what: str) -> None:
    # an empty table failed in numpy ("zero-size array to reduction operation"), one
    # without its plans' columns with a KeyError
    if not hasattr(table, "columns") or not set(_FRONTIER_COLUMNS) <= set(table.columns):
        raise BayesplitError(
            f"{what} must be a DataFrame from bayesplit.frontier (columns "
            f"{', '.join(_FRONTIER_COLUMNS)})"
        )
    if len(table) == 0:
        raise BayesplitError(f"{what} is empty: plan at least one budget")


def _check_alloc(alloc) -> None:
    """Refuse what is not an :class:`~bayesplit.plan.Allocation`: a posterior passed here
    failed with "'Posterior' object has no attribute 'split_curve'"."""
    from bayesplit.plan import Allocation

    if not isinstance(alloc, Allocation):
        hint = (
            "; plan first: alloc = bayesplit.allocate(post, budget=...)"
            if hasattr(alloc, "law")
            else ""
        )
        raise BayesplitError(
            f"alloc must be an Allocation (bayesplit.allocate), not {type(alloc).__name__}{hint}"
        )


def _frontier_domains(posterior, table) -> list[str]:
    """The domains a frontier table plans for, checked against the posterior drawn with it:
    a table of another posterior was drawn with its plans, and a domain it does not name
    with D' = 0."""
    law = table.attrs.get("law")
    if law is not None and law != posterior.law.name:
        raise BayesplitError(
            f"the frontier table was planned with law {law}, the posterior is {posterior.law.name}"
        )
    named = table.attrs.get("domains")
    if named is None:  # a table built by hand: the domains its plans name
        named = list(dict.fromkeys(k for r in table["spec_tokens"] for k in r))
    unknown = [k for k in named if k not in posterior.domains]
    if unknown:
        raise BayesplitError(
            f"the frontier table plans for {', '.join(map(repr, unknown))}, which the posterior "
            f"does not have ({', '.join(posterior.domains)})"
        )
    return [k for k in posterior.domains if k in named]


def _literal(text) -> str:
    """A name shown as written: matplotlib reads text between two ``$`` as maths, and a
    domain named ``usd$^$`` failed every figure with a parse error."""
    return str(text).replace("$", r"\$")


def _ax(ax, figsize=(6.4, 4.2)):
    plt = _mpl()
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
        return fig, ax
    return ax.figure, ax


def _decision_curve(ax, alloc, x, objective, plan_x, plan_label, optima, near) -> None:
    """One slice of the decision through the plan: the objective's credible band and median
    along ``x``, the plan, the spread of the per-draw optima and the near-optimal edges."""
    lo, hi = (1 - alloc.level) / 2, (1 + alloc.level) / 2
    ax.fill_between(
        x,
        np.quantile(objective, lo, axis=1),
        np.quantile(objective, hi, axis=1),
        color=LAW_COLOR,  # a credible band: the law's shade, as in the fit and fan figures
        alpha=0.3,
        label=f"{percent(alloc.level)} credible band",
    )
    ax.plot(x, np.median(objective, axis=1), color=LAW_COLOR, lw=2, label="posterior median")
    ax.axvline(plan_x, color=PLAN_COLOR, ls="--", label=f"plan ({plan_label})")
    q = np.quantile(optima, [lo, hi])  # as describe() says
    ax.axvspan(
        q[0], q[1], color=PLAN_COLOR, alpha=0.08, label=f"{percent(alloc.level)} of per-draw optima"
    )
    for i, edge in enumerate(near):
        ax.axvline(
            edge,
            color=PLAN_COLOR,
            ls=":",
            lw=1.2,
            label=f"within {percent(alloc.tolerance)} of the best {alloc.risk}" if i == 0 else None,
        )
    ax.set_ylabel("weighted loss Σ w_k L_k (nats/token)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def plot_split_curve(alloc, ax=None, points: int = 25):
    """Objective vs share of compute on pretraining, at the plan's N, with its credible band
    and the spread of the per-draw optima (both at the allocation's level)."""
    _check_alloc(alloc)
    fig, ax = _ax(ax)
    curve = alloc.split_curve(points)
    _decision_curve(
        ax,
        alloc,
        curve["fraction"].values,
        curve["objective"].values,
        alloc.pretrain_fraction,
        share(alloc.pretrain_fraction),
        alloc.draws["opt_pretrain_fraction"].values,
        alloc.near_optimal,
    )
    ax.set_xlabel("share of compute spent on general pretraining")
    ax.set_title(f"Where to split, at N = {alloc.plan.params:.3g} and C = {alloc.budget:.2g} FLOPs")
    return fig


def plot_size_curve(alloc, ax=None, points: int = 41):
    """Objective vs model size N at the plan's split and budget (an isoFLOP curve), with its
    credible band, the spread of the per-draw optimal N and the near-optimal sizes."""
    _check_alloc(alloc)
    fig, ax = _ax(ax)
    curve = alloc.size_curve(points)
    _decision_curve(
        ax,
        alloc,
        curve["params"].values,
        curve["objective"].values,
        alloc.plan.params,
        f"N = {alloc.plan.params:.3g}",
        alloc.draws["opt_params"].values,
        alloc.near_optimal_params,
    )
    ax.set_xscale("log")
    ax.set_xlabel("model size N (parameters)")
    ax.set_title(
        f"Which model size, at {share(alloc.pretrain_fraction)} pretraining and C = {alloc.budget:.2g} FLOPs"
    )
    return fig


def plot_domain_losses(alloc, ax=None):
    """Loss per domain at the plan and at each alternative (median and credible interval)."""
    _check_alloc(alloc)
    fig, ax = _ax(ax, figsize=(7.2, 4.2))
    names = ["plan", *map(str, alloc.alternatives["alternative"].values)]
    width = 0.8 / len(names)
    x = np.arange(len(alloc.domains))
    lo, hi = (1 - alloc.level) / 2, (1 + alloc.level) / 2
    post = alloc._posterior
    idx = post.domain_index(alloc.domains)
    # the allocation's own draws: at up to 2000 the bars differed from its table's bands
    draws = post.draws(max_draws=alloc.draws.sizes["draw"])
    colors = [PLAN_COLOR, "#7f8c8d", "#95a5a6", "#bdc3c7", "#34495e", "#16a085", "#8e44ad"]
    for i, name in enumerate(names):
        if name == "plan":
            n, d, dp = alloc.plan.arrays(alloc.domains)
        else:
            a = alloc.alternatives.sel(alternative=name)
            n, d, dp = float(a["params"]), float(a["pretrain_tokens"]), a["spec_tokens"].values
        # D' beyond a data limit buys nothing, as the allocation's objective counts it: a
        # compared plan over the limit showed a loss its table did not have
        loss = np.exp(post.log_mean(n, d, alloc._effective_spec(dp), idx, draws=draws))
        med = np.median(loss, axis=0)
        err = np.abs(np.quantile(loss, [lo, hi], axis=0) - med)
        ax.errorbar(
            x + (i - (len(names) - 1) / 2) * width,
            med,
            yerr=err,
            fmt="o",
            ms=4,
            capsize=2,
            color=colors[i % len(colors)],
            label=_literal(name),
        )
    ax.set_xticks(x, [_literal(d) for d in alloc.domains], rotation=20, ha="right")
    ax.set_ylabel("loss at the target budget (nats/token)")
    ax.set_title(f"Per-domain loss, {percent(alloc.level)} credible intervals")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, axis="y")
    return fig


def plot_optimum(alloc, ax=None, points: int = 41):
    """Per-draw optimum: model size vs pretraining share, with the chosen plan and the
    joint near-optimal region (the plans within the allocation's tolerance of the best
    risk objective when N and the split both move; :meth:`Allocation.landscape`)."""
    _check_alloc(alloc)
    fig, ax = _ax(ax)
    d = alloc.draws
    land = alloc.landscape(points)
    rel = land["relative"].values.T  # (fraction, params), as contour wants it
    if np.isfinite(alloc.tolerance) and np.nanmin(rel) <= alloc.tolerance < np.nanmax(rel):
        ax.contourf(
            land["params"].values,
            land["fraction"].values,
            rel,
            levels=[-np.inf, alloc.tolerance],
            colors=[PLAN_COLOR],
            alpha=0.15,
        )
        ax.contour(
            land["params"].values,
            land["fraction"].values,
            rel,
            levels=[alloc.tolerance],
            colors=[PLAN_COLOR],
            linewidths=1.2,
            linestyles=":",
        )
        ax.plot(  # a legend entry for the region (contour sets have none of their own)
            [],
            [],
            color=PLAN_COLOR,
            ls=":",
            lw=1.2,
            label=f"within {percent(alloc.tolerance)} of the best {alloc.risk} (N and split)",
        )
    elif np.isfinite(alloc.tolerance) and np.nanmax(rel) <= alloc.tolerance:
        # no contour to draw: say so, or a reader takes the missing outline for an empty region
        ax.plot(
            [],
            [],
            " ",
            label=f"every plan of the grid is within {percent(alloc.tolerance)} of the best {alloc.risk}",
        )
    ax.scatter(
        d["opt_params"].values,
        d["opt_pretrain_fraction"].values,
        s=4,
        alpha=0.25,
        color=LAW_COLOR,
        label="optimum of each posterior draw",
    )
    ax.scatter(
        [alloc.plan.params],
        [alloc.pretrain_fraction],
        marker="*",
        s=200,
        color=PLAN_COLOR,
        label=f"plan (risk: {alloc.risk})",
    )
    ax.set_xscale("log")
    # no offset notation ("1e-8 + 0.99999") when every draw agrees on the share
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    shares = np.r_[d["opt_pretrain_fraction"].values, alloc.pretrain_fraction, alloc.near_optimal]
    lo, hi = np.nanmin(shares), np.nanmax(shares)
    pad = max(0.02, 0.1 * (hi - lo))
    ax.set_ylim(max(0.0, lo - pad), min(1.0, hi + pad) + 0.005)
    ax.set_xlabel("model size N (parameters, as counted in the run table)")
    ax.set_ylabel("share of compute on pretraining")
    ax.set_title("How sure is the optimum, and how flat is it?")
    legend = ax.legend(fontsize=8)
    for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
        if text.get_text() == "optimum of each posterior draw":
            # the dots are faint and small so that thousands can overlap; their key need not be
            handle.set_alpha(1.0)
            handle.set_sizes([16])
    ax.grid(alpha=0.3)
    return fig


def plot_alternatives(alloc, ax=None):
    """Distribution of the objective for the plan and every alternative."""
    _check_alloc(alloc)
    fig, ax = _ax(ax, figsize=(7.2, 4.2))
    names = ["plan", *map(str, alloc.alternatives["alternative"].values)]
    data = [alloc.draws["objective"].values] + [
        alloc.alternatives["objective"].sel(alternative=n).values for n in names[1:]
    ]
    parts = ax.violinplot(data, showmedians=True)
    for body in parts["bodies"]:
        body.set_facecolor(PRED_COLOR)
        body.set_alpha(0.7)
    ax.set_xticks(
        np.arange(1, len(names) + 1), [_literal(n) for n in names], rotation=20, ha="right"
    )
    ax.set_ylabel("weighted loss Σ w_k L_k (nats/token)")
    ax.set_title("Plan vs alternatives across the posterior")
    ax.grid(alpha=0.3, axis="y")
    return fig


def _band(ax, x, lo, hi, *, color, alpha: float, label: str) -> None:
    """A shaded band along ``x``; at a single x (a one-budget frontier), where a band has
    no width and drew nothing, a bar from ``lo`` to ``hi``."""
    if len(x) >= 2:
        ax.fill_between(x, lo, hi, color=color, alpha=alpha, lw=0, label=label)
    else:
        ax.vlines(x, lo, hi, colors=[color], alpha=alpha, lw=8, label=label)


def plot_frontier(table, ax=None, level: float | None = None):
    """Objective band and optimal N along budgets (from :func:`bayesplit.allocation.frontier`).

    ``level`` labels the bands; by default the level the table was computed at (a table
    from ``frontier(..., level=0.5)`` was labelled "90% credible").
    """
    _check_rows(table, "frontier table")  # before its attrs are read
    computed = table.attrs.get("level")
    level = check_level((0.9 if computed is None else computed) if level is None else level)
    if computed is not None and level != computed:
        # the bands are the table's: level=0.5 labelled 90% bands "50% credible"
        raise BayesplitError(
            f"the frontier table's bands are {percent(computed)}; level={level!r} would "
            f"mislabel them: compute the table with frontier(..., level={level!r})"
        )
    plt = _mpl()
    if ax is None:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    else:
        fig, ax2 = ax.figure, None
    b = table["budget"].to_numpy()
    _band(
        ax,
        b,
        table["objective_lo"],
        table["objective_hi"],
        color=LAW_COLOR,  # credible, not predictive: the law's shade
        alpha=0.3,
        label=f"{percent(level)} credible",
    )
    ax.plot(b, table["objective_median"], "o-", color=LAW_COLOR, label="median")
    ax.set_xscale("log")
    ax.set_xlabel("training budget C (FLOPs)")
    ax.set_ylabel("weighted loss at the optimal plan (nats/token)")
    ax.set_title("Frontier: best achievable loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if ax2 is not None:
        ax2.plot(b, table["params"], "o-", color=PLAN_COLOR, label="N of the plan")
        _band(
            ax2,
            b,
            table["opt_params_lo"],
            table["opt_params_hi"],
            color=PLAN_COLOR,
            alpha=0.12,
            label=f"{percent(level)} of per-draw optima",
        )
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.set_xlabel("training budget C (FLOPs)")
        ax2.set_ylabel(
            "model size N\n(parameters, as counted in the run table)"
        )  # one line did not fit 4 in
        ax3 = ax2.twinx()
        ax3.plot(b, table["pretrain_fraction"], "s--", color="#555", label="pretraining share")
        ax3.set_ylim(0, 1.05)
        ax3.set_ylabel("share of compute on pretraining")
        ax2.set_title("Frontier: the plan")
        # one legend for both axes: the twin axis's dashed line had no entry of its own
        handles, labels = ax2.get_legend_handles_labels()
        twin_handles, twin_labels = ax3.get_legend_handles_labels()
        # below the panel: inside, the twin axis's share line is drawn over it wherever it
        # lies ("best" avoids only the N line), and both lines cross every corner
        ax3.legend(
            handles + twin_handles,
            labels + twin_labels,
            fontsize=8,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.18),
            ncol=3,
            frameon=False,
        )
        ax2.grid(alpha=0.3)
    return fig


def policy_colors() -> dict[str, tuple]:
    """One colour per simulation policy, the same in every campaign figure.

    Fixed by the policy's place in :data:`bayesplit.simulation.POLICIES`, not by which
    policies a table holds, so that side-by-side panels and separate figures agree.
    """
    from bayesplit.simulation import POLICIES

    plt = _mpl()
    return dict(zip(POLICIES, plt.get_cmap("tab10").colors, strict=False))


def plot_campaigns(
    history, axes=None, threshold: float = 0.01, coverage_target=(0.8, 0.97), title=None
):
    """Simulated campaigns by policy: decision regret vs compute spent, and interval coverage.

    ``history`` is :func:`bayesplit.simulation.simulate`'s table (one row per round of each
    campaign). Left: per policy and round, the median regret over seeds against the median
    compute spent by then, with the ``threshold`` line. Right: the share of seeds whose
    credible interval of the target objective covered the truth, per round, with the
    ``coverage_target`` band. ``axes``: two axes to draw into (default: a new figure).
    """
    from bayesplit.simulation import PLOTTED_COLUMNS, check_history, check_threshold

    check_history(history, PLOTTED_COLUMNS)
    threshold = check_threshold(threshold)
    plt = _mpl()
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    from bayesplit.simulation import POLICIES

    ax, ax2 = axes
    fig = ax.figure
    suffix = f"\n{_literal(title)}" if title else ""
    colors = policy_colors()
    names = history["policy"].unique()
    for policy in [p for p in POLICIES if p in names] + [p for p in names if p not in POLICIES]:
        g = history[history["policy"] == policy]
        style = {"marker": "o", "label": _literal(policy), "color": colors.get(policy)}
        by = g.groupby("round").agg(spent=("spent_flops", "median"), regret=("regret", "median"))
        # a regret of exactly 0 (the true optimum) still has to show on a log axis
        ax.plot(by["spent"], 100 * by["regret"].clip(lower=1e-5), **style)
        ax2.plot(g.groupby("round")["covered"].mean() * 100, **style)
    ax.axhline(100 * threshold, color="grey", ls="--", lw=1, label=f"{threshold:.0%} regret")
    ax.set_xscale("log")
    ax.set_yscale("log")
    spent = history["spent_flops"].to_numpy(dtype=float)
    if spent.max() >= 10 * spent.min() > 0:
        # past a decade the 2×, 3×, ... labels between powers of ten run into each other
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("experiment compute spent (FLOPs)")
    ax.set_ylabel("decision regret at the target budget (%)")
    ax.set_title(f"Regret of the plan, median over seeds{suffix}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    lo, hi = coverage_target
    ax2.axhspan(100 * lo, 100 * hi, color="green", alpha=0.1, label=f"target {lo:.0%}–{hi:.0%}")
    ax2.set_ylim(-3, 103)
    ax2.set_xticks(sorted(history["round"].unique()))
    ax2.set_xlabel("round (0 = the seed design alone)")
    ax2.set_ylabel("seeds whose interval covered the truth (%)")
    ax2.set_title(f"Interval coverage by round{suffix}")
    ax2.legend(fontsize=8)
    return fig


def plot_fit(posterior, domains=None, max_draws: int = 800, level: float = 0.9):
    """Data and fitted law per domain: loss vs compute, with credible and predictive bands.

    For each general model size the law is drawn along the D range of the data
    (specialist rows are shown as open markers at their total compute).
    """
    from bayesplit.posterior import check_posterior

    check_posterior(posterior)
    level = check_level(level)
    plt = _mpl()
    runs = posterior.runs
    from bayesplit._parse import names

    domains = names(domains) if domains is not None else posterior.domains
    if not domains:  # no panel to draw: it failed with ZeroDivisionError
        raise BayesplitError("domains is empty: give at least one domain to plot")
    cols = min(4, len(domains))
    rows = int(np.ceil(len(domains) / cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.6 * cols, 3.0 * rows), constrained_layout=True, squeeze=False
    )
    sizes = np.sort(runs["params"].unique())
    cmap = plt.get_cmap("viridis")
    _lo, _hi = (1 - level) / 2, (1 + level) / 2
    for ax, dom in zip(axes.ravel(), domains, strict=False):
        sub = runs[runs["eval_domain"] == dom]
        for i, n in enumerate(sizes):
            color = cmap(i / max(1, len(sizes) - 1))
            g = sub[(sub["params"] == n) & (sub["spec_tokens"] == 0)]
            s = sub[(sub["params"] == n) & (sub["spec_tokens"] > 0)]
            d_all = runs.loc[runs["params"] == n, "pretrain_tokens"]
            dgrid = np.geomspace(d_all.min(), d_all.max(), 30)
            ds = posterior.predict(
                np.full_like(dgrid, n), dgrid, 0.0, domain=dom, level=level, max_draws=max_draws
            ).sel(domain=dom)
            c = 6 * n * dgrid
            ax.fill_between(
                c, ds["predictive_lo"], ds["predictive_hi"], color=color, alpha=0.12, lw=0
            )
            ax.fill_between(c, ds["credible_lo"], ds["credible_hi"], color=color, alpha=0.35, lw=0)
            ax.plot(c, ds["median"], color=color, lw=1.2, label=f"N={n:.2g}")
            ax.scatter(
                6 * g["params"] * g["pretrain_tokens"],
                g["loss"],
                color=color,
                s=12,
                zorder=3,
                edgecolor="k",
                linewidth=0.3,
            )
            if len(s):
                ax.scatter(
                    6 * s["params"] * (s["pretrain_tokens"] + s["spec_tokens"]),
                    s["loss"],
                    facecolor="none",
                    edgecolor=color,
                    s=14,
                    zorder=3,
                )
        ax.set_xscale("log")
        ax.set_title(_literal(dom), fontsize=9)
        ax.set_xlabel("compute 6N(D + D') (FLOPs)", fontsize=8)
        ax.set_ylabel("loss (nats/token)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(domains) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=6)
    fig.suptitle(
        f"{_literal(posterior.law.name)} fit: points = runs (open = specialized), lines = median law, dark band = {percent(level)} credible, light = {percent(level)} predictive",
        fontsize=9,
        wrap=True,  # one or two domains make a figure narrower than this line: it was cut off
    )
    return fig


def plot_fans(posterior, frontier_table, level: float = 0.9, max_draws: int = 1000):
    """Extrapolation fans: each domain's loss at the optimal plan, from the data to the target budget."""
    from bayesplit.posterior import check_posterior

    check_posterior(posterior)
    level = check_level(level)
    _check_rows(frontier_table, "frontier table")
    domains = _frontier_domains(posterior, frontier_table)
    plt = _mpl()
    cols = min(4, len(domains))
    rows = int(np.ceil(len(domains) / cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.6 * cols, 3.0 * rows), constrained_layout=True, squeeze=False
    )
    runs = posterior.runs
    _lo, _hi = (1 - level) / 2, (1 + level) / 2
    b = frontier_table["budget"].to_numpy()
    for ax, dom in zip(axes.ravel(), domains, strict=False):
        # at the compute of this domain's own model, 6·N·(D + D'_k), where its runs are
        # drawn: at the total budget the fan sat right of the data by the other branches'
        # D' (K times over with independent trunks)
        x = np.array(
            [
                6 * r["params"] * (r["pretrain_tokens"] + r["spec_tokens"].get(dom, 0.0))
                for _, r in frontier_table.iterrows()
            ]
        )
        med, clo, chi, plo, phi = [], [], [], [], []
        for _, r in frontier_table.iterrows():
            ds = posterior.predict(
                r["params"],
                r["pretrain_tokens"],
                r["spec_tokens"].get(dom, 0.0),
                domain=dom,
                level=level,
                max_draws=max_draws,
            ).isel(domain=0, point=0)
            med.append(ds["median"].item())
            clo.append(ds["credible_lo"].item())
            chi.append(ds["credible_hi"].item())
            plo.append(ds["predictive_lo"].item())
            phi.append(ds["predictive_hi"].item())
        _band(ax, x, plo, phi, color=PRED_COLOR, alpha=0.35, label="predictive")
        _band(ax, x, clo, chi, color=LAW_COLOR, alpha=0.35, label="credible")
        ax.plot(x, med, "o-" if len(x) < 2 else "-", color=LAW_COLOR, lw=1.5, label="median")
        sub = runs[runs["eval_domain"] == dom]
        ax.scatter(
            6 * sub["params"] * (sub["pretrain_tokens"] + sub["spec_tokens"]),
            sub["loss"],
            s=8,
            color=DATA_COLOR,
            alpha=0.6,
            label="runs",
        )
        ax.set_xscale("log")
        ax.set_title(_literal(dom), fontsize=9)
        ax.set_xlabel("compute of this domain's model, 6N(D + D') (FLOPs)", fontsize=8)
        ax.set_ylabel("loss (nats/token)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(domains) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=6)
    fig.suptitle(
        f"Extrapolation along the optimal plan up to a budget of {b.max():.2g} FLOPs "
        f"({percent(level)} bands)",
        fontsize=9,
        wrap=True,  # a one-domain figure (3.6 in) is narrower than this line
    )
    return fig


def figure_to_png(fig, dpi: int = 110) -> bytes:
    """PNG bytes of a figure (and close it)."""
    import io

    plt = _mpl()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


#: Formats matplotlib lists but cannot write by itself: PGF runs a LaTeX program, which
#: is found missing only after the slow work.
NEEDS_EXTERNAL_PROGRAM = {"pgf"}


def figure_suffixes() -> set[str]:
    """The file types matplotlib can save a figure as (``.png``, ``.pdf``, ``.svg``, ...)."""
    from matplotlib.backend_bases import FigureCanvasBase

    types = set(FigureCanvasBase.get_supported_filetypes()) - NEEDS_EXTERNAL_PROGRAM
    return {"." + ext for ext in types}


def save_figure(fig, path, dpi: int = 120):
    """Write a figure atomically, in the format its extension names (and close it)."""
    from pathlib import Path

    import matplotlib

    from bayesplit._io import atomic_path

    path = check_path(path)
    if not hasattr(fig, "savefig"):  # an AttributeError from inside the atomic write
        hint = "; pass its .figure" if hasattr(fig, "figure") else ""
        raise BayesplitError(
            "fig must be a matplotlib Figure (what the plot functions return), not "
            f"{type(fig).__name__}{hint}"
        )
    plt = _mpl()
    # a name without an extension gets matplotlib's default format, as savefig gives it:
    # left to the temporary file's ".tmp", it failed with "Format 'tmp' is not supported"
    fmt = Path(path).suffix.lstrip(".").lower() or matplotlib.rcParams["savefig.format"]
    if f".{fmt}" not in figure_suffixes():  # matplotlib's ValueError, or xelatex missing
        plt.close(fig)
        raise BayesplitError(
            f"cannot save a figure as .{fmt}; use one of {', '.join(sorted(figure_suffixes()))}"
        )
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi)
    finally:
        plt.close(fig)
    return Path(path)
