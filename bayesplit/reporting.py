"""Reports (HTML or Markdown) a person can take to a budget meeting.

``report.html`` is one self-contained file: figures embedded as base64 PNG, no scripts,
no external CSS or fonts, no network fetches. ``report.md`` is plain CommonMark with GFM
pipe tables, readable in a terminal and rendered by GitHub; its figures are PNG files in
the folder beside it, ``report_files/``, linked by relative paths (as Jupyter and pandoc
do). Sections: the decision, the alternatives, the frontier, the fit per domain,
extrapolation fans, diagnostics, and a reporting checklist.

Each section is described once, as a list of blocks, and drawn by two small renderers:

- ``("note", text)``, ``("ok", text)``, ``("bad", text)``: a paragraph (muted, passed,
  failed), ``("box", text)``: the recommendation;
- ``("table", headers, rows, left)``: the first ``left`` columns are text, aligned left;
- ``("img", key, alt)``: the figure ``rep["figs"][key]``.

A text is a ``str`` or a list of parts, each a ``str`` or a ``(style, str)`` pair made by
:func:`_b`, :func:`_code` or :data:`BR`; every string is plain text that
each renderer escapes for its format.
"""

from __future__ import annotations

import base64
import html
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from bayesplit._io import (
    _through_link,
    atomic_folder,
    atomic_write_bytes,
    atomic_write_text,
    check_file_target,
)
from bayesplit._parse import check_path, percent, probability, share, share_range
from bayesplit.errors import BayesplitError
from bayesplit.posterior import check_posterior

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f3f5f8}td.l,th.l{text-align:left}.ok{color:#1e7e34;font-weight:600}.bad{color:#b02a37;font-weight:600}
.box{background:#f6f8fb;border:1px solid #dde3ea;border-radius:6px;padding:.8em 1.2em;margin:1em 0}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.5em 0}.muted{color:#666;font-size:.9em}
code{background:#f1f1f1;padding:0 .25em;border-radius:3px}
"""

BANDS = "Bands: credible = where the law is; predictive = where a new run will land."


def _fmt(x: float, digits: int = 3) -> str:
    if x is None or not np.isfinite(x):
        return "—"
    return f"{x:.{digits}g}"


def _b(s: str) -> tuple[str, str]:
    return ("b", s)


def _code(s: str) -> tuple[str, str]:
    return ("code", s)


BR = ("br", "")  # a line break in a cell: <br> in HTML, "; " in Markdown


def heldout_table(posterior, runs: pd.DataFrame, level: float = 0.9) -> pd.DataFrame:
    """Predictions for rows of ``runs`` the posterior was not fitted on (e.g. larger runs).

    A row counts as fitted only if the fit has the same run, domain and checkpoint (D and
    D'): a later checkpoint of a fitted run is held out, and, as in
    :func:`bayesplit.comparison.holdout_predictions`, it is predicted for that run with its
    estimated run effect (``predicted_for`` = ``"seen trunk"``).
    """
    from bayesplit.comparison import holdout_predictions
    from bayesplit.runs import modelled_rows, on_domains

    def keys(table: pd.DataFrame) -> list[tuple]:
        return list(
            zip(
                table["run_id"].astype(str),
                table["eval_domain"].astype(str),
                table["pretrain_tokens"].astype(float),
                table["spec_tokens"].astype(float),
                strict=True,
            )
        )

    seen = set(keys(posterior.runs))
    shared = on_domains(runs, posterior.domains, "the runs to check")
    other = runs.loc[~shared, "eval_domain"]
    modelled = modelled_rows(runs).to_numpy()
    rows = runs[modelled & shared]
    unseen = np.array([k not in seen for k in keys(rows)], bool)
    rows = rows.loc[unseen]  # a boolean mask: an empty list would select columns instead
    pred = holdout_predictions(posterior, rows, level)
    columns = ["run_id", "eval_domain", "params", "pretrain_tokens", "spec_tokens"]
    table = pred[columns].rename_axis(None).reset_index(drop=True)
    if len(pred):
        table["observed"] = pred["loss"].to_numpy(float)
        for c in ("median", "predictive_lo", "predictive_hi"):
            table[c] = pred[c].to_numpy(float)
        table["predicted_for"] = pred["predicted_for"].to_numpy()
    else:
        for c in ("observed", "median", "predictive_lo", "predictive_hi", "predicted_for"):
            table[c] = pd.Series(dtype=object if c == "predicted_for" else float)
    table["rel_error"] = table["median"] / table["observed"] - 1
    table["inside"] = (table["predictive_lo"] <= table["observed"]) & (
        table["observed"] <= table["predictive_hi"]
    )
    # said in the report: rows the fit has no domain for cannot be predicted
    table.attrs["other_domains"] = {"rows": len(other), "domains": sorted(map(str, set(other)))}
    # and so are a specialist's rows on the domains it was not specialized on: no law here
    # describes them (DESIGN.md), so they are not predicted
    table.attrs["not_modelled"] = int((~modelled & shared).sum())
    return table


def frontier_budgets(
    posterior, budget: float, count: int = 7, *, trunk: str = "shared", weights=None
) -> np.ndarray:
    """The report's frontier: ``count`` budgets from where the data end to the target.

    A target within (or near) the data gets the decade below it instead: from the
    largest run to such a target was a sliver, or ran backwards. A target within a decade
    of the smallest plan gets fewer budgets (about six per decade). None is below the
    smallest plan of ``trunk`` (independent trunks train one model per domain served).
    """
    from bayesplit.allocation import smallest_plan_budget
    from bayesplit.runs import compute_flops

    budget = float(budget)  # 10**21, a Python int past int64: numpy made an object array
    floor = smallest_plan_budget(posterior, trunk=trunk, weights=weights)
    lo = max(float(np.max(compute_flops(posterior.runs))), budget / 1e4, floor)
    if lo > budget / 10:
        lo = max(budget / 10, floor)
    # a target just above the smallest plan left a sliver: seven budgets within 4% of each
    # other, seven plans alike; about six per decade, and the target alone at the least
    points = max(1, min(count, 1 + math.ceil(6 * math.log10(budget / lo)))) if lo < budget else 1
    return np.geomspace(lo, budget, points) if points > 1 else np.array([float(budget)])


#: A file that marks a Markdown report's figure folder as bayesplit's, so that the next
#: report may replace it whole; a folder without it that holds anything is refused.
REPORT_MARK = ".bayesplit-report"


def build_report(
    posterior,
    *,
    budget: float,
    runs: pd.DataFrame | str | Path | None = None,
    trunk: str = "shared",
    weights=None,
    risk: str = "mean",
    level: float = 0.9,
    tolerance: float = 0.001,
    force: bool = False,
    title: str | None = None,
) -> dict:
    """Compute everything a report shows: the decision, frontier, LOO, held-out table and
    figure PNGs, by name; :func:`write_report` draws them as HTML or Markdown."""
    from bayesplit import plots
    from bayesplit.allocation import allocate, frontier
    from bayesplit.comparison import loo_metrics
    from bayesplit.runs import load_runs

    held_runs = load_runs(runs) if runs is not None else None  # bad input fails before the work
    if held_runs is not None:  # another project's table was refused after every figure
        from bayesplit.runs import on_domains

        on_domains(held_runs, posterior.domains, "the runs to check")
    # before the slow work: a table at odds with the fit was refused after every figure
    held = heldout_table(posterior, held_runs, level) if held_runs is not None else None
    common = dict(trunk=trunk, weights=weights, risk=risk, level=level, tolerance=tolerance)
    alloc = allocate(posterior, budget=budget, force=force, **common)
    d = alloc.to_dict()
    fr = frontier(
        posterior,
        frontier_budgets(posterior, budget, trunk=trunk, weights=weights),
        force=force,
        **common,
    )  # all the draws, as the decision: its last row is the decision, to the digit
    figs = {
        "split": plots.figure_to_png(alloc.plot_split_curve()),
        "size": plots.figure_to_png(alloc.plot_size_curve()),
        "domains": plots.figure_to_png(alloc.plot_domains()),
        "optimum": plots.figure_to_png(alloc.plot_optimum()),
        "alternatives": plots.figure_to_png(alloc.plot_alternatives()),
        "frontier": plots.figure_to_png(plots.plot_frontier(fr, level=level)),
        "fit": plots.figure_to_png(plots.plot_fit(posterior, level=level)),
        # on the decision's draws: the fans' 1000 put their bands off the tables' at the target
        "fans": plots.figure_to_png(
            plots.plot_fans(posterior, fr, level=level, max_draws=alloc.draws.sizes["draw"])
        ),
    }
    try:
        loo = loo_metrics(posterior)
    except Exception as exc:  # LOO needs the log-likelihood group; a truth-posterior has none
        loo = {"error": str(exc)}
    return {
        "alloc": alloc,
        "dict": d,
        "frontier": fr,
        "figs": figs,
        "loo": loo,
        "heldout": held,
        "title": title or f"bayesplit report: {posterior.law.name} at {budget:.3g} FLOPs",
        "level": level,
    }


def _sections(posterior, rep: dict) -> list[tuple[str, list[tuple]]]:
    """(heading, blocks) pairs: the one description both renderers draw."""
    from bayesplit.diagnostics import GATE_NOTE

    d, level = rep["dict"], rep["level"]
    near = d["near_optimal"]
    diag = posterior.diagnostics
    out = []

    n_models = len(d["plan"]["spec_tokens"])  # one per domain with independent trunks
    independent = d["trunk"] == "independent" and n_models > 1
    plan_rows = [
        ["model size N (parameters, as in the run table)", _fmt(d["plan"]["params"])],
        [
            f"pretraining tokens D (each of the {n_models} models)"
            if independent
            else "pretraining tokens D",
            _fmt(d["plan"]["pretrain_tokens"]),
        ],
        # --weights c4=1 made the plan serve c4 alone, and the report never said so
        [
            "domain weights of the objective",
            ", ".join(f"{w}: {v:.3g}" for w, v in d["weights"].items()),
        ],
    ]
    plan_rows += [
        [f"specialization tokens D' on {k}", _fmt(v)] for k, v in d["plan"]["spec_tokens"].items()
    ]
    plan_rows += [
        [
            "share of compute on pretraining",
            # under 1%: two digits, as the summary says it ("0.0%" for a plan at 0.019%)
            f"{d['pretrain_fraction']:.1%}"
            if d["pretrain_fraction"] >= 0.01
            else share(d["pretrain_fraction"]),
        ],
        [
            f"weighted loss (median, {percent(level)} credible)",
            f"{d['objective']['median']:.4f} [{d['objective']['credible'][0]:.4f}, {d['objective']['credible'][1]:.4f}]",
        ],
        [
            "expected regret vs the per-draw optimum",
            f"{d['expected_regret']:.4f} nats ({d['expected_regret_rel']:.2%})",
        ],
        [
            f"pretraining shares within {percent(near['tolerance'])} of the best (this N)",
            share_range(*near["pretrain_fraction"]),
        ],
        [
            f"model sizes N within {percent(near['tolerance'])} of the best (this split)",
            f"{_fmt(near['params'][0])}–{_fmt(near['params'][1])}",
        ],
    ]
    od = d["optimum_distribution"]
    spec = {k: v for k, v in d["plan"]["spec_tokens"].items() if v > 0}
    then = (
        f"then specialize ({', '.join(f'{k}: {v:.3g}' for k, v in spec.items())} tokens)"
        if spec
        else "with no specialization"
    )
    n_, d_ = d["plan"]["params"], d["plan"]["pretrain_tokens"]
    # independent trunks: K pretrainings of D each; "a model on D tokens" was a quarter of it
    train = (
        f"train {n_models} separate {n_:.3g}-parameter models, one per domain, each on "
        f"{d_:.3g} general tokens ({n_models * d_:.3g} in all)"
        if independent
        else f"train a {n_:.3g}-parameter model on {d_:.3g} general tokens"
    )
    unserved = [w for w, v in d["weights"].items() if v == 0]
    weights_note = (
        f" Domains of weight 0 ({', '.join(unserved)}) do not count in the objective."
        if unserved
        else ""
    )
    summary = (
        f" With {d['budget']:.3g} FLOPs ({d['trunk']} trunk, risk: {d['risk']}), "
        f"{train}, {then}.{weights_note} "
        f"Across the posterior, the optimal N lies in "
        f"[{od['params'][0]:.3g}, {od['params'][2]:.3g}] and the optimal pretraining share in [{share(od['pretrain_fraction'][0])}, "
        f"{share(od['pretrain_fraction'][2])}] ({percent(level)}). "
        f"At this N, any pretraining share in {share_range(*near['pretrain_fraction'])} is "
        f"within {percent(near['tolerance'])} of the best {d['risk']} weighted loss, and at this "
        f"split so is any model size in [{near['params'][0]:.3g}, {near['params'][1]:.3g}]. "
        f"The optimum-distribution figure below also outlines the plans within "
        f"{percent(near['tolerance'])} when N and the split move together."
    )
    failed = f"The posterior FAILED its diagnostics gate ({'; '.join(diag.failures)}); this report was forced."
    gate = [] if diag.ok else [("bad", failed)]
    out.append(
        (
            "Decision",
            gate
            + [("box", [_b("Recommendation."), summary])]
            # the banner above already says the gate failed; the allocation's note repeats it
            + [("note", f"Note: {n}") for n in d["notes"] if diag.ok or not n.startswith(GATE_NOTE)]
            + [
                ("table", ["plan", "value"], plan_rows, 1),
                ("img", "split", "loss vs split point"),
                ("img", "size", "loss vs model size at this split"),
                ("img", "optimum", "optimum distribution and joint near-optimal region"),
            ],
        )
    )

    loss_rows = [
        [k, f"{v['median']:.4f}", f"{v['credible'][0]:.4f}", f"{v['credible'][1]:.4f}"]
        for k, v in d["loss"].items()
    ]
    alt_rows = [
        [
            a["name"],
            _fmt(a["plan"]["params"]),
            _fmt(a["plan"]["pretrain_tokens"]),
            f"{a['objective']['median']:.4f}",
            probability(a["p_better"]),
            f"{a['expected_regret']:.4f}",
            f"{a['expected_regret_rel']:.2%}",
        ]
        for a in d["alternatives"]
    ]
    alt_headers = [
        "alternative",
        "N",
        "D",
        "loss (median)",
        "P(plan better)",
        "expected regret (nats)",
        "relative",
    ]
    out.append(
        (
            "Per-domain loss and alternatives",
            [
                (
                    "table",
                    [
                        "domain",
                        "median",
                        f"{percent(level)} credible lo",
                        f"{percent(level)} credible hi",
                    ],
                    loss_rows,
                    1,
                ),
                ("table", alt_headers, alt_rows, 1),
                ("img", "domains", "per-domain loss"),
                ("img", "alternatives", "alternatives"),
            ],
        )
    )

    fr_rows = [
        [
            f"{r['budget']:.3g}",
            _fmt(r["params"]),
            _fmt(r["pretrain_tokens"]),
            share(r["pretrain_fraction"]),
            share_range(r["near_optimal_lo"], r["near_optimal_hi"]),
            f"{_fmt(r['near_optimal_params_lo'])}–{_fmt(r['near_optimal_params_hi'])}",
            f"{r['objective_median']:.4f} [{r['objective_lo']:.4f}, {r['objective_hi']:.4f}]",
        ]
        for _, r in rep["frontier"].iterrows()
    ]
    fr_headers = [
        "budget (FLOPs)",
        "N",
        "D",
        "pretraining share",
        f"shares within {percent(near['tolerance'])}",
        f"N within {percent(near['tolerance'])}",
        f"loss ({percent(level)} credible)",
    ]
    out.append(
        (
            "Frontier",
            [("table", fr_headers, fr_rows, 0), ("img", "frontier", "frontier")],
        )
    )
    out.append(("Data and fitted law per domain", [("img", "fit", "fit per domain")]))
    out.append(("Extrapolation to the target budget", [("img", "fans", "extrapolation fans")]))

    diag_rows = [
        ["max R-hat", f"{diag.r_hat_max:.3f}", f"≤ {diag.thresholds.r_hat_max}"],
        ["min bulk ESS", f"{diag.ess_bulk_min:.0f}", f"≥ {diag.thresholds.ess_bulk_min:.0f}"],
        ["min tail ESS", f"{diag.ess_tail_min:.0f}", f"≥ {diag.thresholds.ess_tail_min:.0f}"],
        ["divergences", str(diag.divergences), f"≤ {diag.thresholds.divergences_max}"],
        ["min BFMI", _fmt(diag.bfmi_min), f"≥ {diag.thresholds.bfmi_min} (warning)"],
        [
            "transitions at max tree depth",
            share(diag.max_depth_share),
            f"≤ {diag.thresholds.max_depth_share_max:.0%} (warning)",
        ],
    ]
    verdict = (
        ("ok", "Gate passed.") if diag.ok else ("bad", "Gate failed: " + "; ".join(diag.failures))
    )
    out.append(
        (
            "Diagnostics",
            [verdict, ("table", ["check", "value", "threshold"], diag_rows, 1)]
            + [("note", f"Warning: {w}") for w in diag.warnings],
        )
    )

    out.append(("Reporting checklist", _checklist(posterior, rep)))
    return out


def _checklist(posterior, rep: dict) -> list[tuple]:
    from bayesplit.allocation import _times

    d, level = rep["dict"], rep["level"]
    law, diag, runs = posterior.law, posterior.diagnostics, posterior.runs
    loo = rep["loo"]
    if "error" in loo:
        loo_text = ["PSIS-LOO not available (", loo["error"], ")"]
    else:
        loo_text = [
            f"PSIS-LOO elpd {loo['elpd_loo']:.1f} ± {loo['elpd_loo_se']:.1f}, p_loo {loo['p_loo']:.1f}; "
            f"{loo['pareto_k_bad']} row{'s' if loo['pareto_k_bad'] != 1 else ''} with Pareto k > 0.7 "
            f"(max {loo['pareto_k_max']:.2f})"
        ]
    held = rep["heldout"]
    if held is not None and len(held):
        seen = int((held["predicted_for"] == "seen trunk").sum())
        held_text = (
            f"{len(held)} row{'s' if len(held) != 1 else ''} not in the fit: median |error| {held['rel_error'].abs().median():.2%}, "
            f"{percent(level)} predictive coverage {held['inside'].mean():.0%}"
        )
        if seen:
            which = "all" if seen == len(held) else f"{seen} of them"
            held_text += (
                f" ({which} from runs or trunks the fit saw at other checkpoints, "
                "predicted with their estimated run effect)"
            )
    elif held is not None:
        held_text = "the runs given with --runs (in Python: runs=) contain no rows outside the fit"
    if held is not None and held.attrs.get("other_domains", {}).get("rows"):
        o = held.attrs["other_domains"]
        held_text += (
            f"; {o['rows']} row{'s' if o['rows'] != 1 else ''} on domains the fit does not model "
            f"({', '.join(o['domains'])}) were left out"
        )
    if held is not None and held.attrs.get("not_modelled"):
        m = held.attrs["not_modelled"]
        held_text += (
            f"; {m} row{'s' if m != 1 else ''} of specialists evaluated off their own domain "
            f"{'were' if m != 1 else 'was'} left out (the law does not describe them)"
        )
    if held is None:
        held_text = (
            "no held-out runs given (pass --runs, in Python: runs=, with runs the fit did not "
            "see, e.g. larger ones)"
        )
    priors = []
    for t in law.describe()["priors"].values():
        priors += [BR, t] if priors else [t]
    ref = posterior.spec.reference
    flops = 6 * runs["params"] * (runs["pretrain_tokens"] + runs["spec_tokens"])
    largest = float(flops.max())
    checklist = [
        ["law", [_code(law.name), f": {law.formula}"]],
        [
            "scaled inputs",
            f"n = N / {ref.params:.0e}, d = D / {ref.tokens:.0e}, d' = D' / {ref.tokens:.0e}; L̄ = {ref.loss:.3g}",
        ],
        ["priors", priors],
        [
            "likelihood",
            f"Student-t(ν={posterior.spec.student_df or 'learned'}) on log loss, one σ for all domains; run effect: {'yes' if posterior.spec.run_effect else 'no'}",
        ],
        [
            "data",
            f"{len(runs)} rows, {runs['run_id'].nunique()} runs, {len(posterior.domains)} domains; N {runs['params'].min():.3g}–{runs['params'].max():.3g}, "
            f"D {runs['pretrain_tokens'].min():.3g}–{runs['pretrain_tokens'].max():.3g}, D' up to {runs['spec_tokens'].max():.3g}; largest run {largest:.3g} FLOPs",
        ],
        [
            "extrapolation",
            f"target {d['budget']:.3g} FLOPs = {_times(d['budget'] / largest)}× the largest run",
        ],
        ["held-out error", [*loo_text, "; ", held_text]],
        [
            "convergence",
            ("passed" if diag.ok else "FAILED")
            + f": R-hat {diag.r_hat_max:.3f}, ESS ≥ {diag.ess_bulk_min:.0f}, {diag.divergences} divergences",
        ],
        [
            "sampler",
            ", ".join(
                f"{k}={v}"
                for k, v in posterior.info.items()
                if k in ("backend", "chains", "draws", "warmup", "seed", "device")
            ),
        ],
    ]
    blocks = [("table", ["item", "what was done"], checklist, 2)]
    if held is not None and len(held):
        hr = [
            [
                str(r["run_id"]),
                r["eval_domain"],
                f"{r['params']:.3g}, {r['pretrain_tokens']:.3g}, {r['spec_tokens']:.3g}",
                f"{r['observed']:.4f}",
                f"{r['median']:.4f}",
                f"{r['rel_error']:+.2%}",
                f"[{r['predictive_lo']:.4f}, {r['predictive_hi']:.4f}]",
                "yes" if r["inside"] else [_b("no")],
                r["predicted_for"],
            ]
            for _, r in held.iterrows()
        ]
        headers = [
            "run",
            "domain",
            "N, D, D'",
            "measured",
            "median",
            "error",
            f"{percent(level)} predictive",
            "inside",
            "predicted for",
        ]
        blocks.append(("table", headers, hr, 2))
    return blocks


def _parts(text) -> list[tuple[str, str]]:
    parts = [text] if isinstance(text, str) else text
    return [("", str(p)) if isinstance(p, str) else p for p in parts]


def _html_text(text) -> str:
    out = []
    for style, s in _parts(text):
        if style == "br":
            out.append("<br>")
        elif style in ("b", "code"):
            out.append(f"<{style}>{html.escape(s)}</{style}>")
        else:
            out.append(html.escape(s))
    return "".join(out)


def _html_table(headers: list, rows: list[list], left: int) -> str:
    def cell(tag: str, i: int, text) -> str:
        cls = " class='l'" if i < left else ""
        return f"<{tag}{cls}>{_html_text(text)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(r)) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _html_blocks(blocks: list[tuple], figs: dict[str, bytes]) -> str:
    out = []
    for kind, *args in blocks:
        if kind == "table":
            out.append(_html_table(*args))
        elif kind == "img":
            key, alt = args
            data = base64.b64encode(figs[key]).decode()
            out.append(f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>")
        elif kind == "box":
            out.append(f"<div class='box'>{_html_text(args[0])}</div>")
        else:
            cls = {"note": "muted"}.get(kind, kind)
            out.append(f"<p class='{cls}'>{_html_text(args[0])}</p>")
    return "".join(out)


def _html(title: str, intro: str, sections: list, figs: dict[str, bytes]) -> str:
    t = html.escape(title)
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{t}</title>"
        f"<style>{CSS}</style></head><body><h1>{t}</h1>"
        + _html_blocks([("note", intro)], figs)
        + "".join(f"<h2>{html.escape(h)}</h2>{_html_blocks(b, figs)}" for h, b in sections)
        + "</body></html>"
    )


# What would turn plain text into Markdown: backslashes, backticks and asterisks anywhere;
# underscores and tildes that could open or close emphasis (not those inside a word, as in
# E_k, nor a spaced "x ~ Normal"); "<" before a tag or autolink; "&" of an entity; and the
# "](" of a link. Brackets alone stay, as in "[0.51, 0.55]": the report defines no links.
_MD_SPECIAL = re.compile(
    r"[\\`*]|(?<![^\W_])_|_(?![^\W_])|~(?=\S)|(?<=\S)~|<(?=[A-Za-z/!?])|&(?=#?\w+;)|\](?=\()"
)


def _md_escape(s: str, cell: bool) -> str:
    s = re.sub(r"\s*[\r\n]+\s*", " ", s)  # a line break would end the paragraph or row
    s = _MD_SPECIAL.sub(lambda m: "\\" + m.group(), s)
    return s.replace("|", r"\|") if cell else s


def _md_text(text, cell: bool = False) -> str:
    out = []
    for style, s in _parts(text):
        if style == "br":
            out.append("; ")
        elif style == "code":
            s = s.replace("|", r"\|") if cell else s  # GFM splits cells before code spans
            out.append(f"`` {s} ``" if "`" in s else f"`{s}`")
        elif style == "b":
            out.append(f"**{_md_escape(s, cell).strip()}**")  # "** x **" is not bold
        else:
            out.append(_md_escape(s, cell))
    return "".join(out)


def _md_table(headers: list, rows: list[list], left: int) -> str:
    grid = [[_md_text(c, cell=True) for c in r] for r in [headers, *rows]]
    n = len(headers)
    widths = [max(3, *(len(r[i]) for r in grid)) for i in range(n)]
    if left >= n:  # a last column aligned left gains nothing from padding but blanks
        widths[-1] = max(3, len(grid[0][-1]))
    rule = [":" + "-" * (w - 1) if i < left else "-" * (w - 1) + ":" for i, w in enumerate(widths)]

    def line(cells: list[str]) -> str:
        cells = [
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(cells) + " |"

    return "\n".join(map(line, [grid[0], rule, *grid[1:]]))


def _md_blocks(blocks: list[tuple], folder: str) -> list[str]:
    out = []
    for kind, *args in blocks:
        if kind == "table":
            out.append(_md_table(*args))
        elif kind == "img":
            key, alt = args
            out.append(f"![{_md_escape(alt, False)}]({quote(f'{folder}/{key}.png')})")
        elif kind == "box":
            out.append("> " + _md_text(args[0]))
        elif kind in ("ok", "bad"):
            out.append(f"**{_md_text(args[0]).strip()}**")
        else:
            out.append(_md_text(args[0]))
    return out


def _markdown(title: str, intro: str, sections: list, folder: str) -> str:
    parts = [f"# {_md_escape(title, False)}", *_md_blocks([("note", intro)], folder)]
    for heading, blocks in sections:
        parts += [f"## {_md_escape(heading, False)}", *_md_blocks(blocks, folder)]
    return "\n\n".join(parts) + "\n"


def report_folder(out: str | Path) -> Path:
    """The folder of a Markdown report's figures: ``<stem>_files`` beside the file written
    (through a symlink, beside its target, where the report's image links look)."""
    written = _through_link(Path(out))
    return written.with_name(f"{written.stem}_files")


def write_report(posterior, out: str | Path, *, budget: float, **kwargs) -> Path:
    """Build and write a report; the format follows the suffix (``.html`` or ``.md``).

    ``budget`` (the target compute) and the other keywords are :func:`build_report`'s.

    ``.html`` (or ``.htm``) is one self-contained file with the figures embedded.
    ``.md`` is plain Markdown (GFM tables, no HTML); its figures are PNG files in the
    folder ``<stem>_files`` beside it (``report.md`` -> ``report_files/split.png``; beside
    the file a symlink points to, see :func:`report_folder`), which is replaced as a
    whole, so that no figure of an earlier run is left in it. A folder of that name that
    a report did not write (no ``.bayesplit-report`` file in it) and that holds anything
    is refused, before the work. Returns ``out``.
    """
    check_posterior(posterior)  # a file name here was refused only after the path checks
    out = check_path(out, "out")
    suffix = out.suffix.lower()
    if suffix not in (".html", ".htm", ".md"):
        raise BayesplitError(f"report must end in .html, .htm or .md, got {out.name}")
    check_file_target(out)  # a folder of that name failed at the rename, after the work
    # beside the file written: through a symlink the text lands at its target, and the
    # figures beside the link were missing from where the Markdown looks for them
    folder = report_folder(out)
    written = _through_link(out)
    if suffix == ".md" and folder.exists() and not folder.is_dir():
        raise BayesplitError(
            f"{folder} is a file; the Markdown report writes its figures into a folder "
            "of that name: move the file or choose another --out (in Python: out=)"
        )
    if suffix == ".md" and folder.is_dir() and not (folder / REPORT_MARK).exists():
        # the folder is replaced as a whole: a notebook's or pandoc's files there went too
        foreign = sorted(p.name for p in folder.iterdir())
        if foreign:
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            raise BayesplitError(
                f"{folder} holds files a report did not write ({', '.join(foreign[:3])}{more}); "
                "the Markdown report replaces that folder as a whole: move them or choose "
                "another --out (in Python: out=)"
            )
    rep = build_report(posterior, budget=budget, **kwargs)
    sections = _sections(posterior, rep)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    intro = f"Generated by bayesplit on {stamp}. {BANDS}"
    if suffix != ".md":
        atomic_write_text(out, _html(rep["title"], intro, sections, rep["figs"]))
        return out
    keys = [b[1] for _, blocks in sections for b in blocks if b[0] == "img"]
    with atomic_folder(folder) as tmp:
        for key in keys:
            atomic_write_bytes(tmp / f"{key}.png", rep["figs"][key])
        (tmp / REPORT_MARK).write_text(f"figures of {written.name}, written by bayesplit\n")
    atomic_write_text(out, _markdown(rep["title"], intro, sections, folder.name))
    return out
