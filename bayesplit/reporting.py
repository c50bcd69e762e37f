"""Self-contained reports (HTML or Markdown) a person can take to a budget meeting.

One file, figures embedded as base64 PNG, no scripts, no external CSS or fonts,
no network fetches. Sections: the decision, the alternatives, the frontier, the fit
per domain, extrapolation fans, diagnostics, and a reporting checklist.
"""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from bayesplit._io import atomic_write_text
from bayesplit._parse import percent
from bayesplit.errors import BayesplitError

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f3f5f8}td.l,th.l{text-align:left}.ok{color:#1e7e34;font-weight:600}.bad{color:#b02a37;font-weight:600}
.box{background:#f6f8fb;border:1px solid #dde3ea;border-radius:6px;padding:.8em 1.2em;margin:1em 0}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.5em 0}.muted{color:#666;font-size:.9em}
code{background:#f1f1f1;padding:0 .25em;border-radius:3px}
"""


def _fmt(x: float, digits: int = 3) -> str:
    if x is None or not np.isfinite(x):
        return "—"
    return f"{x:.{digits}g}"


def _table(headers: list[str], rows: list[list], left: int = 1) -> str:
    head = "".join(
        f"<th class='l'>{html.escape(h)}</th>" if i < left else f"<th>{html.escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = []
    for r in rows:
        cells = "".join(
            f"<td class='l'>{c}</td>" if i < left else f"<td>{c}</td>" for i, c in enumerate(r)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _img(png: bytes, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def heldout_table(posterior, runs: pd.DataFrame, level: float = 0.9) -> pd.DataFrame:
    """Predictions for rows of ``runs`` the posterior was not fitted on (e.g. larger runs)."""
    from bayesplit.runs import modelled_rows, on_domains

    fitted = posterior.runs
    key = ["run_id", "eval_domain"]
    seen = set(map(tuple, fitted[key].astype(str).to_numpy()))
    shared = on_domains(runs, posterior.domains, "the runs to check")
    other = runs.loc[~shared, "eval_domain"]
    rows = runs[modelled_rows(runs).to_numpy() & shared]
    unseen = np.array([tuple(r) not in seen for r in rows[key].astype(str).to_numpy()], bool)
    rows = rows.loc[unseen]  # a boolean mask: an empty list would select columns instead
    out = []
    for dom, g in rows.groupby("eval_domain"):
        ds = posterior.predict(
            g["params"], g["pretrain_tokens"], g["spec_tokens"], domain=dom, level=level
        ).sel(domain=dom)
        for i, (_, r) in enumerate(g.iterrows()):
            lo, hi = float(ds["predictive_lo"][i]), float(ds["predictive_hi"][i])
            out.append(
                {
                    "run_id": r["run_id"],
                    "eval_domain": dom,
                    "params": r["params"],
                    "pretrain_tokens": r["pretrain_tokens"],
                    "spec_tokens": r["spec_tokens"],
                    "observed": r["loss"],
                    "median": float(ds["median"][i]),
                    "rel_error": float(ds["median"][i]) / r["loss"] - 1,
                    "predictive_lo": lo,
                    "predictive_hi": hi,
                    "inside": lo <= r["loss"] <= hi,
                }
            )
    table = pd.DataFrame(out)
    # said in the report: rows the fit has no domain for cannot be predicted
    table.attrs["other_domains"] = {"rows": len(other), "domains": sorted(map(str, set(other)))}
    return table


def build_report(
    posterior,
    *,
    budget: float,
    runs: pd.DataFrame | None = None,
    trunk: str = "shared",
    weights=None,
    risk: str = "mean",
    level: float = 0.9,
    force: bool = False,
    title: str | None = None,
) -> dict:
    """Compute everything a report shows; returns named sections (HTML strings and PNGs)."""
    from bayesplit import plots
    from bayesplit.allocation import allocate, frontier
    from bayesplit.comparison import loo_metrics

    alloc = allocate(
        posterior, budget=budget, trunk=trunk, weights=weights, risk=risk, level=level, force=force
    )
    d = alloc.to_dict()
    data = posterior.runs
    c_data = 6 * data["params"] * (data["pretrain_tokens"] + data["spec_tokens"])
    budgets = np.geomspace(max(c_data.max(), budget / 1e4), budget, 7)
    fr = frontier(
        posterior,
        budgets,
        trunk=trunk,
        weights=weights,
        risk=risk,
        level=level,
        force=force,
    )  # all the draws, as the decision: its last row is the decision, to the digit
    figs = {
        "split": plots.figure_to_png(alloc.plot_split_curve()),
        "domains": plots.figure_to_png(alloc.plot_domains()),
        "optimum": plots.figure_to_png(alloc.plot_optimum()),
        "alternatives": plots.figure_to_png(alloc.plot_alternatives()),
        "frontier": plots.figure_to_png(plots.plot_frontier(fr, level=level)),
        "fit": plots.figure_to_png(plots.plot_fit(posterior, level=level)),
        "fans": plots.figure_to_png(plots.plot_fans(posterior, fr, level=level)),
    }
    try:
        loo = loo_metrics(posterior)
    except Exception as exc:  # LOO needs the log-likelihood group; a truth-posterior has none
        loo = {"error": str(exc)}
    held = heldout_table(posterior, runs, level) if runs is not None else None
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


def _sections(posterior, rep: dict) -> list[tuple[str, str]]:
    """(heading, HTML body) pairs, shared by the HTML and Markdown writers."""
    d, _alloc, level = rep["dict"], rep["alloc"], rep["level"]
    law = posterior.law
    diag = posterior.diagnostics
    runs = posterior.runs
    out = []

    plan_rows = [
        ["model size N (parameters, as in the run table)", _fmt(d["plan"]["params"])],
        ["pretraining tokens D", _fmt(d["plan"]["pretrain_tokens"])],
    ]
    plan_rows += [
        [f"specialization tokens D' on {k}", _fmt(v)] for k, v in d["plan"]["spec_tokens"].items()
    ]
    plan_rows += [
        ["share of compute on pretraining", f"{d['pretrain_fraction']:.1%}"],
        [
            f"weighted loss (median, {percent(level)} credible)",
            f"{d['objective']['median']:.4f} [{d['objective']['credible'][0]:.4f}, {d['objective']['credible'][1]:.4f}]",
        ],
        [
            "expected regret vs the per-draw optimum",
            f"{d['expected_regret']:.4f} nats ({d['expected_regret_rel']:.2%})",
        ],
    ]
    od = d["optimum_distribution"]
    spec = {k: v for k, v in d["plan"]["spec_tokens"].items() if v > 0}
    then = (
        f"then specialize ({', '.join(f'{k}: {v:.3g}' for k, v in spec.items())} tokens)"
        if spec
        else "with no specialization"
    )
    summary = (
        f"<div class='box'><b>Recommendation.</b> With {d['budget']:.3g} FLOPs ({d['trunk']} trunk, risk: {d['risk']}), "
        f"train a {d['plan']['params']:.3g}-parameter model on {d['plan']['pretrain_tokens']:.3g} general tokens, {then}. "
        f"Across the posterior, the optimal N lies in "
        f"[{od['params'][0]:.3g}, {od['params'][2]:.3g}] and the optimal pretraining share in [{od['pretrain_fraction'][0]:.0%}, "
        f"{od['pretrain_fraction'][2]:.0%}] ({percent(level)}).</div>"
    )
    notes = "".join(f"<p class='muted'>Note: {html.escape(n)}</p>" for n in d["notes"])
    gate = (
        ""
        if diag.ok
        else f"<p class='bad'>The posterior FAILED its diagnostics gate ({html.escape('; '.join(diag.failures))}); this report was forced.</p>"
    )
    out.append(
        (
            "Decision",
            gate
            + summary
            + notes
            + _table(["plan", "value"], plan_rows)
            + _img(rep["figs"]["split"], "loss vs split point")
            + _img(rep["figs"]["optimum"], "optimum distribution"),
        )
    )

    loss_rows = [
        [k, f"{v['median']:.4f}", f"{v['credible'][0]:.4f}", f"{v['credible'][1]:.4f}"]
        for k, v in d["loss"].items()
    ]
    alt_rows = [
        [
            html.escape(a["name"]),
            _fmt(a["plan"]["params"]),
            _fmt(a["plan"]["pretrain_tokens"]),
            f"{a['objective']['median']:.4f}",
            f"{a['p_better']:.0%}",
            f"{a['expected_regret']:.4f}",
            f"{a['expected_regret_rel']:.2%}",
        ]
        for a in d["alternatives"]
    ]
    out.append(
        (
            "Per-domain loss and alternatives",
            _table(["domain", "median", f"{percent(level)} lo", f"{percent(level)} hi"], loss_rows)
            + _table(
                [
                    "alternative",
                    "N",
                    "D",
                    "loss (median)",
                    "P(plan better)",
                    "expected regret (nats)",
                    "relative",
                ],
                alt_rows,
            )
            + _img(rep["figs"]["domains"], "per-domain loss")
            + _img(rep["figs"]["alternatives"], "alternatives"),
        )
    )

    fr = rep["frontier"]
    fr_rows = [
        [
            f"{r['budget']:.3g}",
            _fmt(r["params"]),
            _fmt(r["pretrain_tokens"]),
            f"{r['pretrain_fraction']:.0%}",
            f"{r['objective_median']:.4f} [{r['objective_lo']:.4f}, {r['objective_hi']:.4f}]",
        ]
        for _, r in fr.iterrows()
    ]
    out.append(
        (
            "Frontier",
            _table(
                [
                    "budget (FLOPs)",
                    "N",
                    "D",
                    "pretraining share",
                    f"loss ({percent(level)} credible)",
                ],
                fr_rows,
            )
            + _img(rep["figs"]["frontier"], "frontier"),
        )
    )
    out.append(("Data and fitted law per domain", _img(rep["figs"]["fit"], "fit per domain")))
    out.append(
        ("Extrapolation to the target budget", _img(rep["figs"]["fans"], "extrapolation fans"))
    )

    diag_rows = [
        ["max R-hat", f"{diag.r_hat_max:.3f}", f"≤ {diag.thresholds.r_hat_max}"],
        ["min bulk ESS", f"{diag.ess_bulk_min:.0f}", f"≥ {diag.thresholds.ess_bulk_min:.0f}"],
        ["min tail ESS", f"{diag.ess_tail_min:.0f}", f"≥ {diag.thresholds.ess_tail_min:.0f}"],
        ["divergences", str(diag.divergences), f"≤ {diag.thresholds.divergences_max}"],
        ["min BFMI", _fmt(diag.bfmi_min), f"≥ {diag.thresholds.bfmi_min} (warning)"],
    ]
    verdict = (
        "<p class='ok'>Gate passed.</p>"
        if diag.ok
        else "<p class='bad'>Gate failed: " + html.escape("; ".join(diag.failures)) + "</p>"
    )
    warn = "".join(f"<p class='muted'>Warning: {html.escape(w)}</p>" for w in diag.warnings)
    out.append(("Diagnostics", verdict + _table(["check", "value", "threshold"], diag_rows) + warn))

    loo = rep["loo"]
    if "error" in loo:
        loo_text = f"PSIS-LOO not available ({html.escape(loo['error'])})"
    else:
        loo_text = (
            f"PSIS-LOO elpd {loo['elpd_loo']:.1f} ± {loo['elpd_loo_se']:.1f}, p_loo {loo['p_loo']:.1f}; "
            f"{loo['pareto_k_bad']} rows with Pareto k > 0.7 (max {loo['pareto_k_max']:.2f})"
        )
    held = rep["heldout"]
    if held is not None and len(held):
        held_text = (
            f"{len(held)} rows not in the fit: median |error| {held['rel_error'].abs().median():.2%}, "
            f"{percent(level)} predictive coverage {held['inside'].mean():.0%}"
        )
    elif held is not None:
        held_text = "the runs given with --runs contain no rows outside the fit"
    if held is not None and held.attrs.get("other_domains", {}).get("rows"):
        o = held.attrs["other_domains"]
        held_text += (
            f"; {o['rows']} row{'s' if o['rows'] != 1 else ''} on domains the fit does not model "
            f"({html.escape(', '.join(o['domains']))}) "
            "were left out"
        )
    if held is None:
        held_text = (
            "no held-out runs given (pass --runs with runs the fit did not see, e.g. larger ones)"
        )
    priors = "<br>".join(html.escape(t) for t in law.describe()["priors"].values())
    ref = posterior.spec.reference
    checklist = [
        ["law", f"<code>{html.escape(law.name)}</code>: {html.escape(law.formula)}"],
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
            f"D {runs['pretrain_tokens'].min():.3g}–{runs['pretrain_tokens'].max():.3g}, D' up to {runs['spec_tokens'].max():.3g}; largest run {float((6 * runs['params'] * (runs['pretrain_tokens'] + runs['spec_tokens'])).max()):.3g} FLOPs",
        ],
        [
            "extrapolation",
            f"target {d['budget']:.3g} FLOPs = {d['budget'] / float((6 * runs['params'] * (runs['pretrain_tokens'] + runs['spec_tokens'])).max()):.0f}× the largest run",
        ],
        ["held-out error", loo_text + "; " + held_text],
        [
            "convergence",
            ("passed" if diag.ok else "FAILED")
            + f": R-hat {diag.r_hat_max:.3f}, ESS ≥ {diag.ess_bulk_min:.0f}, {diag.divergences} divergences",
        ],
        [
            "sampler",
            html.escape(
                ", ".join(
                    f"{k}={v}"
                    for k, v in posterior.info.items()
                    if k in ("backend", "chains", "draws", "warmup", "seed", "device")
                )
            ),
        ],
    ]
    body = _table(["item", "what was done"], checklist, left=2)
    if held is not None and len(held):
        hr = [
            [
                html.escape(str(r["run_id"])),
                r["eval_domain"],
                f"{r['observed']:.4f}",
                f"{r['median']:.4f}",
                f"{r['rel_error']:+.2%}",
                f"[{r['predictive_lo']:.4f}, {r['predictive_hi']:.4f}]",
                "yes" if r["inside"] else "<b>no</b>",
            ]
            for _, r in held.iterrows()
        ]
        body += _table(
            [
                "run",
                "domain",
                "measured",
                "median",
                "error",
                f"{percent(level)} predictive",
                "inside",
            ],
            hr,
            left=2,
        )
    out.append(("Reporting checklist", body))
    return out


def write_report(posterior, out: str | Path, **kwargs) -> Path:
    """Build and write a report; the format follows the suffix (``.html`` or ``.md``)."""
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm", ".md"):
        raise BayesplitError(f"report must end in .html or .md, got {out.name}")
    rep = build_report(posterior, **kwargs)
    sections = _sections(posterior, rep)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if out.suffix.lower() == ".md":
        text = _markdown(rep["title"], sections, stamp)
    else:
        parts = [f"<h2>{html.escape(h)}</h2>{b}" for h, b in sections]
        text = (
            f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(rep['title'])}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(rep['title'])}</h1>"
            f"<p class='muted'>Generated by bayesplit on {stamp}. Bands: credible = where the law is; predictive = where a new run will land.</p>"
            + "".join(parts)
            + "</body></html>"
        )
    atomic_write_text(out, text)
    return out


def _markdown(title: str, sections: list[tuple[str, str]], stamp: str) -> str:
    """Markdown with the same content: tables and images stay inline HTML (valid CommonMark)."""
    lines = [f"# {title}", "", f"_Generated by bayesplit on {stamp}._", ""]
    for heading, body in sections:
        lines += [f"## {heading}", "", body, ""]
    return "\n".join(lines)
