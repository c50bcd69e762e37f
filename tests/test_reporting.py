"""The report's two renderers and its frontier budgets, without drawing a report."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest

from bayesplit.reporting import BR, _b, _code, _html_blocks, _md_blocks

BLOCKS = [
    ("bad", "Gate failed: ESS 12 < 400"),
    ("box", [_b("Recommendation."), " Train <big>."]),
    ("note", "Note: D' is at r·U"),
    (
        "table",
        ["item", "value"],
        [["law", [_code("add|x"), ": E_k·d'_0"]], ["priors", ["a ~ N(0, 1)", BR, "b*c"]]],
        2,
    ),
    ("table", ["run", "inside"], [["a|b", [_b("no")]], ["D' > 1", "yes"]], 1),
    ("img", "split", "loss vs split point"),
]


def test_html_renderer_draws_the_blocks():
    html = _html_blocks(BLOCKS, {"split": b"png"})
    assert html.startswith(
        "<p class='bad'>Gate failed: ESS 12 &lt; 400</p>"
        "<div class='box'><b>Recommendation.</b> Train &lt;big&gt;.</div>"
        "<p class='muted'>Note: D&#x27; is at r·U</p>"
        "<table><tr><th class='l'>item</th><th class='l'>value</th></tr>"
        "<tr><td class='l'>law</td><td class='l'><code>add|x</code>: E_k·d&#x27;_0</td></tr>"
        "<tr><td class='l'>priors</td><td class='l'>a ~ N(0, 1)<br>b*c</td></tr></table>"
        "<table><tr><th class='l'>run</th><th>inside</th></tr>"
        "<tr><td class='l'>a|b</td><td><b>no</b></td></tr>"
        "<tr><td class='l'>D&#x27; &gt; 1</td><td>yes</td></tr></table>"
    )
    assert html.endswith("<img alt='loss vs split point' src='data:image/png;base64,cG5n'>")


def test_markdown_renderer_draws_the_same_blocks():
    assert _md_blocks(BLOCKS, "my report_files") == [
        "**Gate failed: ESS 12 < 400**",
        "> **Recommendation.** Train \\<big>.",
        "Note: D' is at r·U",
        "| item   | value |\n"
        "| :----- | :---- |\n"
        "| law    | `add\\|x`: E_k·d'\\_0 |\n"
        "| priors | a ~ N(0, 1); b\\*c |",
        "| run    | inside |\n| :----- | -----: |\n| a\\|b   | **no** |\n| D' > 1 |    yes |",
        "![loss vs split point](my%20report_files/split.png)",
    ]


def test_frontier_budgets_run_from_the_data_to_the_target(additive_posterior):
    from bayesplit.allocation import smallest_budget
    from bayesplit.reporting import frontier_budgets
    from bayesplit.runs import compute_flops

    largest = float(compute_flops(additive_posterior.runs).max())
    far = frontier_budgets(additive_posterior, largest * 1e6)
    assert far[0] == pytest.approx(largest * 100) and far[-1] == pytest.approx(largest * 1e6)
    near = frontier_budgets(additive_posterior, largest * 3)
    assert near[0] == pytest.approx(largest * 3 / 10)  # the decade below
    # a target within the data: the range from the largest run ran backwards
    inside = frontier_budgets(additive_posterior, largest / 2)
    assert np.all(np.diff(inside) > 0) and inside[-1] == pytest.approx(largest / 2)
    floor = smallest_budget(additive_posterior.runs, len(additive_posterior.domains))
    low = frontier_budgets(additive_posterior, floor * 2)
    assert low[0] == pytest.approx(floor) and low[-1] == pytest.approx(floor * 2)
    # just above the floor: seven budgets within 3% of each other were seven plans alike
    sliver = frontier_budgets(additive_posterior, floor * 1.03)
    assert len(sliver) == 2 and sliver[-1] == pytest.approx(floor * 1.03)
    assert frontier_budgets(additive_posterior, floor).tolist() == [pytest.approx(floor)]
    assert len(far) == 7 and len(near) == 7
    # a budget written 10**21 (a Python int past int64): numpy's geomspace made an object
    # array and write_report failed with "loop of ufunc does not support argument 0"
    big = 10 ** (len(str(int(largest * 1e6))))
    assert big > 2**63
    np.testing.assert_allclose(
        frontier_budgets(additive_posterior, big), frontier_budgets(additive_posterior, float(big))
    )


def test_frontier_budgets_start_at_the_smallest_plan_of_independent_trunks(additive_posterior):
    # K models of the smallest run: the report's frontier started at the shared trunk's
    # floor, and `report --trunk independent` was refused at budgets `allocate` plans for
    from bayesplit.allocation import default_budgets, frontier, smallest_plan_budget
    from bayesplit.reporting import frontier_budgets

    shared = smallest_plan_budget(additive_posterior)
    floor = smallest_plan_budget(additive_posterior, trunk="independent")
    k = len(additive_posterior.domains)
    assert floor == pytest.approx(k * shared)
    one_off = {d: float(i > 0) for i, d in enumerate(additive_posterior.domains)}
    assert smallest_plan_budget(
        additive_posterior, trunk="independent", weights=one_off
    ) == pytest.approx((k - 1) * shared)  # no model for a domain of weight 0
    budgets = frontier_budgets(additive_posterior, floor * 1.2, trunk="independent")
    assert budgets[0] == pytest.approx(floor) and budgets[-1] == pytest.approx(floor * 1.2)
    table = frontier(additive_posterior, budgets, trunk="independent", force=True)
    assert len(table) == len(budgets)
    assert default_budgets(additive_posterior, trunk="independent")[0] >= floor
    # one run on three domains: `frontier --trunk independent` started at that run's
    # compute, a third of the smallest plan, and was refused
    from types import SimpleNamespace

    one = pd.DataFrame(
        {"params": [1e7], "pretrain_tokens": [3e8], "spec_tokens": [0.0], "seed": [0]}
    )
    post = SimpleNamespace(runs=one, domains=["a", "b", "c"])
    assert default_budgets(post)[0] == pytest.approx(6 * 1e7 * 3e8)
    assert default_budgets(post, trunk="independent")[0] == pytest.approx(3 * 6 * 1e7 * 3e8)


def test_the_checklist_says_how_far_the_target_is_from_the_largest_run():
    # a target below the largest run read "1×" (0.77×) or "0×" (0.4×)
    from bayesplit.reporting import _checklist
    from bayesplit.runs import compute_flops
    from bayesplit.truth import example_truth, factorial_design

    truth = example_truth("additive", ("web", "code"))
    post = truth.as_posterior(truth.simulate(factorial_design([1e7], [1e9], [], truth.domains)))
    largest = float(compute_flops(post.runs).max())

    def extrapolation(budget: float) -> str:
        rep = {"dict": {"budget": budget}, "level": 0.9, "loo": {"error": "none"}, "heldout": None}
        rows = _checklist(post, rep)[0][2]
        return next(text for item, text in rows if item == "extrapolation")

    assert extrapolation(0.4 * largest).endswith("= 0.4× the largest run")
    assert extrapolation(0.77 * largest).endswith("= 0.77× the largest run")
    assert extrapolation(51.2 * largest).endswith("= 51× the largest run")


def test_names_with_dollar_signs_are_drawn_as_written():
    # matplotlib read "usd$^$" as maths: every figure of the report failed with a parse error
    from bayesplit import plots
    from bayesplit.allocation import allocate, frontier
    from bayesplit.truth import example_truth

    post = example_truth("additive", domains=("web", "usd$^$")).as_posterior()
    alloc = allocate(
        post, budget=1e20, compare=[{"name": "a $b$", "params": 1e8, "pretrain_tokens": 1e10}]
    )
    fig = alloc.plot_domains()
    plots.figure_to_png(fig)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["web", r"usd\$^\$"]
    for figure in (
        alloc.plot_alternatives(),
        plots.plot_fit(post),
        plots.plot_fans(post, frontier(post, [1e19, 1e20])),
    ):
        assert plots.figure_to_png(figure).startswith(b"\x89PNG")


def test_the_report_says_what_independent_trunks_and_weights_mean(tmp_path):
    # independent trunks read "train a model on D general tokens" (a quarter of the
    # pretraining with four domains), and --weights web=1 never showed in the report
    from bayesplit.reporting import write_report
    from bayesplit.truth import example_truth

    post = example_truth("additive", domains=("web", "code", "law")).as_posterior()
    out = write_report(
        post,
        tmp_path / "r.md",
        budget=1e20,
        trunk="independent",
        weights={"web": 1.0, "code": 1.0, "law": 0.0},
    )
    text = " ".join(out.read_text().split())
    # a domain of weight 0 gets no model of its own (it got one, and its share of the budget)
    assert re.search(r"train 2 separate [\d.e+]+-parameter models, one per domain, each on", text)
    assert "independent trunks: no model for law (weight 0)" in text
    assert "| domain weights of the objective | web: 0.5, code: 0.5 |" in text
    assert "| pretraining tokens D (each of the 2 models) |" in text
    # with a shared trunk it still costs nothing to evaluate: it stays, outside the objective
    out = write_report(
        post, tmp_path / "s.md", budget=1e20, weights={"web": 1.0, "code": 1.0, "law": 0.0}
    )
    text = " ".join(out.read_text().split())
    assert "Domains of weight 0 (law) do not count in the objective." in text
    assert "| domain weights of the objective | web: 0.5, code: 0.5, law: 0 |" in text


def test_the_fans_are_drawn_at_each_domains_own_model_compute():
    # at the total budget, the fan sat right of the runs by the other branches' D'
    from bayesplit import plots
    from bayesplit.allocation import frontier
    from bayesplit.truth import example_truth

    post = example_truth("additive", domains=("web", "code")).as_posterior()
    fr = frontier(post, [1e19, 1e20], trunk="independent")
    fig = plots.plot_fans(post, fr)
    last = []
    for ax, dom in zip(fig.axes, post.domains, strict=False):
        want = [6 * r.params * (r.pretrain_tokens + r.spec_tokens[dom]) for r in fr.itertuples()]
        assert ax.lines[0].get_xdata() == pytest.approx(want)
        last.append(want[-1])
    assert sum(last) == pytest.approx(1e20, rel=1e-3)  # the two models share the budget


def test_the_figures_refuse_a_frontier_table_they_would_mislabel():
    from bayesplit import plots
    from bayesplit.allocation import frontier
    from bayesplit.errors import BayesplitError
    from bayesplit.truth import example_truth

    post = example_truth("additive", domains=("web", "code")).as_posterior()
    fr = frontier(post, [1e19, 1e20])
    # 90% bands were labelled "50% credible"
    with pytest.raises(BayesplitError, match="bands are 90%; level=0.5 would mislabel"):
        plots.plot_frontier(fr, level=0.5)
    plots.plot_frontier(fr, level=0.9)
    # a table of another posterior was drawn with its plans (a missing domain at D' = 0)
    other = example_truth("transfer", domains=("web", "code")).as_posterior()
    with pytest.raises(
        BayesplitError, match="planned with law additive, the posterior is transfer"
    ):
        plots.plot_fans(other, fr)
    three = example_truth("additive", domains=("web", "code", "math")).as_posterior()
    with pytest.raises(BayesplitError, match="plans for 'math', which the posterior does not"):
        plots.plot_fans(post, frontier(three, [1e19, 1e20]))


def test_the_fans_leave_out_a_domain_no_model_serves():
    # independent trunks train no model for a domain of weight 0: no fan for it either
    from bayesplit import plots
    from bayesplit.allocation import frontier
    from bayesplit.truth import example_truth

    post = example_truth("additive", domains=("web", "code", "math")).as_posterior()
    w = {"web": 1.0, "code": 1.0, "math": 0.0}
    fr = frontier(post, [1e19, 1e20], trunk="independent", weights=w)
    assert fr.attrs["domains"] == ["web", "code"]
    titles = [ax.get_title() for ax in plots.plot_fans(post, fr).axes if ax.lines]
    assert len(titles) == 2 and not any("math" in t for t in titles)


def test_a_report_name_of_another_type_is_refused_naming_every_suffix_taken(tmp_path):
    # the message left out .htm, which both the CLI and write_report take
    from bayesplit.errors import BayesplitError
    from bayesplit.reporting import write_report
    from bayesplit.truth import example_truth

    post = example_truth("additive", ("web", "code")).as_posterior()
    with pytest.raises(BayesplitError, match=r"must end in \.html, \.htm or \.md, got r\.txt"):
        write_report(post, tmp_path / "r.txt", budget=1e20)
    assert list(tmp_path.iterdir()) == []


def test_a_held_out_table_at_odds_with_the_fit_is_refused_before_the_figures(
    additive_posterior, additive_runs, monkeypatch
):
    # a table counting N otherwise (with embeddings) was refused after the allocation, the
    # frontier and all eight figures, advising to "leave out the run", which report cannot
    from bayesplit import plots
    from bayesplit.errors import BayesplitError
    from bayesplit.reporting import build_report

    def no_figures(*a, **k):
        raise AssertionError("a figure was drawn before the held-out table was checked")

    monkeypatch.setattr(plots, "figure_to_png", no_figures)
    held = additive_runs.copy()
    held["params"] *= 1.5
    held["pretrain_tokens"] *= 2  # later checkpoints of the same runs: held out
    with pytest.raises(BayesplitError, match=r"run '[^']+' is a model of N=.* in the fitted runs but of N=.* in the held-out rows: the two tables count N differently"):  # fmt: skip
        build_report(additive_posterior, budget=1e20, runs=held)


def test_one_budget_draws_its_bands_as_bars():
    # a one-row frontier (a target at the smallest plan) drew empty bands and no median
    from bayesplit import plots
    from bayesplit.allocation import frontier
    from bayesplit.truth import example_truth

    post = example_truth("additive", domains=("web", "code")).as_posterior()
    fr = frontier(post, [1e20])
    for fig in (plots.plot_fans(post, fr, max_draws=50), plots.plot_frontier(fr)):
        ax = fig.axes[0]
        bands = [c for c in ax.collections if c.get_label() in ("predictive", "credible")
                 or "credible" in str(c.get_label())]  # fmt: skip
        assert bands
        for band in bands:  # a truth's credible band has no width, its predictive one has
            ((x0, lo), (x1, hi)) = band.get_segments()[0]
            assert x0 == x1 == ax.lines[0].get_xdata()[0] and hi >= lo
            assert hi > lo or band.get_label() != "predictive"
        assert ax.lines[0].get_marker() == "o"


def test_the_frontier_legend_sits_below_the_plan_panel():
    # inside, the share line on the twin axis was drawn over it ("best" avoided only N)
    from bayesplit import plots
    from bayesplit.allocation import frontier
    from bayesplit.truth import example_truth

    post = example_truth("additive", domains=("web", "code")).as_posterior()
    fig = plots.plot_frontier(frontier(post, [1e19, 1e20]))
    fig.savefig(io.BytesIO(), format="png")  # lays the figure out as a report's PNG is
    plan, twin = fig.axes[1], fig.axes[2]
    legend = twin.get_legend()
    assert legend is not None and plan.get_legend() is None
    assert [t.get_text() for t in legend.get_texts()] == [
        "N of the plan",
        "90% of per-draw optima",
        "pretraining share",
    ]
    box = legend.get_window_extent()
    assert box.y1 <= plan.get_window_extent().y0  # below the panel, over no line
    assert box.y0 >= 0  # and inside the figure


def test_a_markdown_report_through_a_symlink_has_its_figures_beside_the_file(tmp_path):
    from bayesplit.reporting import write_report
    from bayesplit.truth import example_truth

    (tmp_path / "other").mkdir()
    link = tmp_path / "r.md"
    link.symlink_to(tmp_path / "other" / "real.md")
    post = example_truth("additive", ("web", "code")).as_posterior()
    write_report(post, link, budget=1e20)
    text = (tmp_path / "other" / "real.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert images and all((tmp_path / "other" / i).is_file() for i in images)
    assert link.is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == ["other", "r.md"]


def test_held_out_rows_of_a_fit_without_run_effects_are_predicted_as_new_runs():
    # the check of a run's N applies where the fit estimated that run's effect (as predict
    # checks it): a fit without run effects predicts every held-out row as a new run
    from bayesplit.comparison import holdout_predictions
    from bayesplit.truth import example_truth, factorial_design

    truth = example_truth("additive", ("web", "code"))
    runs = truth.simulate(factorial_design([1e7, 3e7], [3e8, 1e9], [0.0], truth.domains), seed=0)
    post = truth.as_posterior(runs)
    assert post.run_effect_group(runs["run_id"].iloc[0]) is None
    held = runs.assign(params=runs["params"] * 1.5, pretrain_tokens=runs["pretrain_tokens"] * 2)
    pred = holdout_predictions(post, held)
    assert len(pred) == len(held) and set(pred["predicted_for"]) == {"new run"}


def test_a_missing_n_in_held_out_rows_is_refused_as_missing(additive_posterior, additive_runs):
    # it read as "the two tables count N differently ... N=1e+07, nan"
    from bayesplit.comparison import holdout_predictions
    from bayesplit.errors import BayesplitError

    held = additive_runs.assign(pretrain_tokens=additive_runs["pretrain_tokens"] * 2)
    held.loc[held.index[0], "params"] = np.nan
    with pytest.raises(BayesplitError, match="params must be finite and > 0, got nan"):
        holdout_predictions(additive_posterior, held)
