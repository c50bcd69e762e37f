"""The Python API at its boundary: what a notebook user types is read as meant, or refused
with a BayesplitError that says why (not a TypeError from deep inside numpy or JAX)."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pandas as pd
import pytest

import bayesplit
from bayesplit.errors import BayesplitError
from bayesplit.laws import import_law_module
from bayesplit.model import Reference
from bayesplit.simulation import check_stop_regret
from bayesplit.truth import example_truth


@pytest.fixture(scope="module")
def post():
    return example_truth("additive", ("web", "code")).as_posterior()


@pytest.fixture(scope="module")
def runs():
    truth = example_truth("additive", ("web", "code"))
    design = bayesplit.truth.factorial_design([1e7, 3e7], [3e8, 1e9], [1e8], truth.domains)
    return truth.simulate(design, seed=0)


def test_one_domain_given_as_a_string_is_one_domain(post):
    # each of these split "web" into the domains w, e, b
    assert example_truth("additive", "web").domains == ("web",)
    assert bayesplit.allocate(post, budget=1e20, domains="code").domains == ["code"]
    with pytest.raises(BayesplitError, match="law\\(s\\) named more than once"):
        bayesplit.compare(pd.DataFrame(), laws=["additive", "additive"])
    # a Law object is a law too, as fit takes it: the same law by object and by name is twice
    with pytest.raises(BayesplitError, match="law\\(s\\) named more than once: additive"):
        bayesplit.compare(pd.DataFrame(), laws=[bayesplit.get_law("additive"), "additive"])


def test_frontier_takes_the_command_lines_budget_syntax(post):
    assert bayesplit.frontier(post, "1e19:1e20:2")["budget"].tolist() == [1e19, 1e20]
    assert bayesplit.frontier(post, 1e20)["budget"].tolist() == [1e20]  # was len() of a float


@pytest.mark.parametrize(
    ("budgets", "message"),
    [
        # "1e20" in a list was planned as 1e20, True as a budget of 1 FLOP; None and a dict
        # were TypeErrors from float()
        (
            ["1e20", 1e21],
            "budgets must be a positive number or array of numbers, got an entry '1e20'",
        ),
        (np.array(["1e20", "1e21"]), "budgets must be a positive number or array of numbers"),
        ([True], "got an entry True"),
        (None, "got None"),
        ({"a": 1e20}, "budgets must be a positive number"),
        ([1e20, float("nan")], "budgets must be finite and > 0, got nan"),
        ([], "budgets is empty"),
    ],
)
def test_frontier_takes_only_numbers_as_budgets(post, budgets, message):
    with pytest.raises(BayesplitError, match=re.escape(message)):
        bayesplit.frontier(post, budgets)


def test_frontier_plans_a_repeated_budget_once(post):
    assert bayesplit.frontier(post, [1e21, 1e20, 1e21])["budget"].tolist() == [1e20, 1e21]
    assert bayesplit.frontier(post, np.array([1e20, 1e20]))["budget"].tolist() == [1e20]


@pytest.mark.parametrize("weights", [[0.5, 0.5], np.array([0.5, 0.5])])
def test_weights_must_name_their_domains(post, weights):
    with pytest.raises(BayesplitError, match="weights must map domain names to weights"):
        bayesplit.allocate(post, budget=1e20, weights=weights)
    by_name = bayesplit.allocate(post, budget=1e20, weights=pd.Series({"web": 1.0, "code": 0.0}))
    assert by_name.weights.tolist() == [1.0, 0.0]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"domains": ["web", "web"]}, "domains name web more than once"),
        ({"domains": []}, "domains is empty"),
        ({"run_effect": "false"}, "run_effect must be True, False or 'auto'"),
        ({"seed": None}, "seed must be a whole number"),
        ({"seed": 1.5}, "seed must be a whole number"),
        ({"seed": -1}, "seed must be between 0 and 2^63 - 1"),
        ({"seed": 2**64}, "seed must be between 0 and 2^63 - 1"),
        # TypeErrors from deep in the sampler before
        ({"chains": 2.5}, "chains must be a whole number, got 2.5"),
        ({"draws": "10"}, "draws must be a whole number, got '10'"),
        ({"warmup": True}, "warmup must be a whole number, got True"),
        ({"target_accept": "0.9"}, "target_accept must be a number in"),
        # ValueError "StudentT distribution got invalid df parameter" from NumPyro before;
        # inf sampled a NaN likelihood
        ({"student_df": 0}, "student_df must be a finite number > 0"),
        ({"student_df": -3.0}, "student_df must be a finite number > 0"),
        ({"student_df": float("inf")}, "student_df must be a finite number > 0"),
        ({"student_df": "5"}, "student_df must be a finite number > 0"),
        # AttributeError "'dict' object has no attribute 'scale'"; a 0 scale fitted inf inputs
        ({"reference": {"params": 1e7, "tokens": 1e9, "loss": 3.0}}, "reference must be a"),
        ({"reference": Reference(0.0, 1e9, 3.0)}, "reference must be a"),
        ({"reference": Reference(1e7, float("nan"), 3.0)}, "reference must be a"),
        ({"dense_mass": "no"}, "dense_mass must be True or False, got 'no'"),
        ({"thresholds": {"ess_bulk_min": 200}}, "thresholds must be a bayesplit.diagnostics"),
    ],
)
def test_fit_refuses_before_sampling(runs, kwargs, message):
    kw = {"chains": 1, "draws": 10, "warmup": 10, **kwargs}
    with pytest.raises(BayesplitError, match=message.replace("^", r"\^")):
        bayesplit.fit(runs, "additive", **kw)


def test_a_level_given_as_text_is_refused(post):
    # '<' not supported between instances of 'int' and 'str'
    with pytest.raises(BayesplitError, match="level must be in \\(0, 1\\), got '0.9'"):
        bayesplit.allocate(post, budget=1e20, level="0.9")


@pytest.mark.parametrize("seed", [None, -1, "1"])
def test_predict_and_suggest_take_only_whole_seeds(post, seed):
    with pytest.raises(BayesplitError, match="seed must be"):
        bayesplit.predict(post, 1e8, 1e9, domain="web", seed=seed)
    with pytest.raises(BayesplitError, match="seed must be"):
        bayesplit.suggest(post, budget=1e20, n=1, seed=seed, max_draws=20)


def test_load_runs_takes_bundled_names_as_the_command_line_does():
    from bayesplit.datasets import load_dataset
    from bayesplit.runs import load_runs

    # "no such file: bundled:gadre2024" in Python, while --runs took it
    pd.testing.assert_frame_equal(load_runs("bundled:gadre2024"), load_dataset("gadre2024"))
    with pytest.raises(BayesplitError, match="unknown dataset 'nope'"):
        load_runs("bundled:nope")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        # each was a TypeError from pathlib, JAX or a dict lookup
        (lambda r: bayesplit.runs.load_runs(None), "runs must be a DataFrame, a file path"),
        (lambda r: bayesplit.runs.load_runs([1, 2]), "runs must be .* got list"),
        (lambda r: bayesplit.laws.get_law(["additive"]), "law must be a law name or a Law"),
        (lambda r: bayesplit.compare(r, None), "give at least one law"),
        (lambda r: bayesplit.compare(r, [["additive"]]), "laws must be law names"),
        (
            lambda r: bayesplit.prior_predictive(r, "additive", draws=10.5),
            "draws must be a whole number >= 10, got 10.5",
        ),
        (lambda r: bayesplit.prior_predictive(r, "additive", draws="100"), "draws must be"),
        (lambda r: bayesplit.prior_predictive(r, "additive", draws=None), "draws must be"),
        (lambda r: bayesplit.prior_predictive(r, "additive", draws=5), "draws must be >= 10"),
    ],
)
def test_api_misuse_is_one_clear_error(runs, call, message):
    with pytest.raises(BayesplitError, match=message):
        call(runs)


_NO_TORCH = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="the trainer needs torch"
)


def _loop(tmp_path, **kwargs):
    from bayesplit.train.closed_loop import run_loop

    return run_loop(tmp_path / "corpus", tmp_path / "runs.db", budget=1e13, **kwargs)


def _build(tmp_path, **kwargs):
    from bayesplit.train.corpus import build_corpus

    return build_corpus(tmp_path / "src", tmp_path / "out", progress=False, **kwargs)


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda p, r, t: bayesplit.suggest(p, budget=1e20, objective="x"), "objective="),
        (lambda p, r, t: bayesplit.suggest(p, budget=1e20, n=0), "n="),
        (lambda p, r, t: bayesplit.suggest(p, objective="decision", max_draws=50), "budget="),
        (
            lambda p, r, t: bayesplit.allocate(p, budget=1e20, params=1e8, ladder=[1e8]),
            "params= or ladder=",
        ),
        (lambda p, r, t: bayesplit.frontier(p, "bad"), "budgets="),
        (lambda p, r, t: bayesplit.fit(r, backend="pymc", device="gpu"), 'backend="numpyro"'),
        (lambda p, r, t: check_stop_regret(2), "stop_regret="),
        (lambda p, r, t: import_law_module(""), "module="),
        (lambda p, r, t: _build(t, vocab_size=100), "vocab_size="),
        (lambda p, r, t: _build(t, domains="topics"), "domains="),
        pytest.param(lambda p, r, t: _loop(t, rounds=0), "rounds=", marks=_NO_TORCH),
        pytest.param(lambda p, r, t: _loop(t, objective="point"), "objective=", marks=_NO_TORCH),
    ],
)
def test_python_errors_name_the_python_argument_not_only_the_flag(
    post, runs, tmp_path, call, argument
):
    """A notebook user who passed objective="x" was told about --objective, a flag never
    typed: the message names the Python argument next to the flag, in one line, as the
    diagnostics gate says "--force (in Python: force=True)"."""
    with pytest.raises(BayesplitError) as err:
        call(post, runs, tmp_path)
    message = str(err.value)
    assert f"in Python: {argument}" in message, message
    assert "\n" not in message


def test_domains_that_are_no_names_are_refused_in_words(post):
    # "'int' object is not iterable" from list(5)
    with pytest.raises(BayesplitError, match="domains must be names \\(strings\\), got 5"):
        bayesplit.allocate(post, budget=1e20, domains=5)


def test_progress_means_the_same_in_compare_as_in_fit(runs, capfd):
    """fit takes progress=True/False; compare and simulate took only a function, so True
    raised "'bool' object is not callable" once the runs were split."""
    from bayesplit._parse import progress_messages

    quick = dict(chains=1, draws=20, warmup=20, holdout_largest=0.0)
    table = bayesplit.compare(runs, ["additive"], progress=True, **quick)
    assert "fitting additive on 12 runs, holding out 0" in capfd.readouterr().err
    # nothing held out: the metrics are NaN (null in --json), not missing keys
    row = table.iloc[0]
    assert (
        row["n_holdout"] == 0
        and np.isnan(row[["median_rel_error", "coverage"]].astype(float)).all()
    )
    assert progress_messages(False) is None and progress_messages(None) is None
    lines = []
    progress_messages(lines.append)("a line")
    assert lines == ["a line"]
    with pytest.raises(BayesplitError, match="progress must be True, False or a function"):
        bayesplit.compare(runs, ["additive"], progress="yes", **quick)


def test_the_pymc_backend_takes_dense_mass(runs, monkeypatch):
    """dense_mass=False was ignored by PyMC (always a full mass matrix) yet recorded."""
    pm = pytest.importorskip("pymc")
    seen = {}

    class Stop(Exception):
        pass

    def sample(**kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(pm, "sample", sample)
    for dense, init in ((False, "jitter+adapt_diag"), (True, "jitter+adapt_full")):
        with pytest.raises(Stop):
            bayesplit.fit(runs, "additive", backend="pymc", dense_mass=dense, chains=1)
        assert seen["init"] == init


@pytest.mark.parametrize(
    ("call", "hint"),
    [
        # each was an AttributeError: "'DataFrame' object has no attribute 'require_ok'"
        (lambda r, t: bayesplit.allocate(r, budget=1e20), "got a DataFrame; fit the runs first"),
        (lambda r, t: bayesplit.frontier(r, [1e20]), "got a DataFrame; fit the runs first"),
        (lambda r, t: bayesplit.suggest(r, budget=1e20), "got a DataFrame; fit the runs first"),
        (lambda r, t: bayesplit.predict(t, 1e8, 1e9), "got a GroundTruth; .* truth.as_posterior"),
        (lambda r, t: bayesplit.allocate("post.nc", budget=1e20), "bayesplit.load_posterior"),
        (lambda r, t: bayesplit.predict(None, 1e8, 1e9), "got None \\(NoneType\\)$"),
    ],
)
def test_decisions_need_a_posterior_and_say_so(runs, call, hint):
    truth = example_truth("additive", ("web", "code"))
    with pytest.raises(BayesplitError, match=f"posterior must be a fitted Posterior .*{hint}"):
        call(runs, truth)


@pytest.mark.parametrize("flag", ["no", "false", 0, 1, None])
def test_yes_no_arguments_take_only_true_or_false(post, runs, tmp_path, flag):
    """Any truthy value was read as True: force="no" forced a failed posterior, and
    read_only="no" opened the store read-only."""
    from bayesplit.laws import register

    shown = re.escape(repr(flag))
    calls = {
        "force": [
            lambda: bayesplit.allocate(post, budget=1e20, force=flag),
            lambda: bayesplit.frontier(post, [1e20], force=flag),
            lambda: bayesplit.suggest(post, budget=1e20, n=1, max_draws=20, force=flag),
            lambda: post.require_ok(flag),
        ],
        "progress": [lambda: bayesplit.fit(runs, "additive", chains=1, progress=flag)],
        "centered": [lambda: bayesplit.fit(runs, "additive", chains=1, centered=flag)],
        "read_only": [lambda: bayesplit.RunStore(tmp_path / "s.db", read_only=flag)],
        "create": [lambda: bayesplit.RunStore(tmp_path / "s.db", create=flag)],
        "overwrite": [lambda: register(bayesplit.get_law("additive"), overwrite=flag)],
    }
    for what, tries in calls.items():
        for call in tries:
            with pytest.raises(BayesplitError, match=f"{what} must be True or False, got {shown}"):
                call()
    assert not (tmp_path / "s.db").exists()
    # numpy's bools are bools
    assert bayesplit.allocate(post, budget=1e20, force=np.False_).plan.params > 0


@pytest.mark.parametrize("level", [1.5, 0, 1, -0.1, float("nan"), "0.9", None, True])
def test_a_credible_level_outside_0_1_is_refused_everywhere(post, runs, level):
    """Posterior.summary(level=1.5) was numpy's "Quantiles must be in the range [0, 1]",
    "0.9" a TypeError; a held-out table with no row to predict took any level."""
    from bayesplit import plots
    from bayesplit.comparison import holdout_predictions

    shown = re.escape(repr(level))
    calls = [
        lambda: post.summary(level=level),
        lambda: holdout_predictions(post, runs.iloc[:0], level=level),
        lambda: plots.plot_fit(post, level=level),
        lambda: bayesplit.predict(post, 1e8, 1e9, level=level),
        lambda: bayesplit.suggest(post, budget=1e20, n=1, max_draws=20, level=level),
    ]
    if level is not None:  # plot_frontier's None is the level its table was computed at
        table = pd.DataFrame(
            {"budget": [1e20], "params": [1e9], "pretrain_tokens": [1e10], "spec_tokens": [{}]}
        )
        calls.append(lambda: plots.plot_frontier(table, level=level))
    for call in calls:
        with pytest.raises(BayesplitError, match=f"level must be in \\(0, 1\\), got {shown}"):
            call()


def test_figures_and_reports_refuse_the_wrong_object_in_words(post, tmp_path):
    """Each was an AttributeError from inside ("'str' object has no attribute 'runs'",
    "'Posterior' object has no attribute 'split_curve'", "... no attribute 'savefig'") or
    a KeyError 'spec_tokens'."""
    from bayesplit import plots
    from bayesplit.reporting import write_report

    alloc = bayesplit.allocate(post, budget=1e20, max_draws=20)
    posterior = "posterior must be a fitted Posterior .* got 'p.nc' \\(str\\); read a saved one"
    frontier = bayesplit.frontier(post, [1e20], max_draws=20)
    for call, message in (
        (lambda: plots.plot_fit("p.nc"), posterior),
        (lambda: plots.plot_fans("p.nc", frontier), posterior),
        (lambda: write_report("p.nc", tmp_path / "r.html", budget=1e20), posterior),
        (
            lambda: plots.plot_fans(post, frontier[["budget"]]),
            "frontier table must be a DataFrame from bayesplit.frontier \\(columns budget, params",
        ),
        (
            lambda: plots.save_figure("fig", tmp_path / "f.png"),
            "fig must be a matplotlib Figure .*, not str$",
        ),
        (
            lambda: plots.save_figure(alloc.plot_split_curve().axes[0], tmp_path / "f.png"),
            "not Axes; pass its .figure",
        ),
    ) + tuple(
        (
            lambda name=name: getattr(plots, name)(post),
            "alloc must be an Allocation .*not Posterior; plan first: alloc = bayesplit.allocate",
        )
        for name in (
            "plot_split_curve",
            "plot_size_curve",
            "plot_domain_losses",
            "plot_optimum",
            "plot_alternatives",
        )
    ):
        with pytest.raises(BayesplitError, match=message):
            call()
    assert not list(tmp_path.iterdir())  # nothing half-written


@pytest.mark.parametrize("bad", [None, 5, b"post.nc", ["post.nc"], ""])
def test_a_path_that_is_no_path_is_refused_naming_it(post, runs, bad):
    """Each was a TypeError from pathlib or os ("expected str, bytes or os.PathLike
    object, not NoneType"), or for "" the current folder."""
    from bayesplit.plots import save_figure
    from bayesplit.reporting import write_report
    from bayesplit.runs import read_table, write_table
    from bayesplit.store import RunStore
    from bayesplit.truth import load_truth

    message = "is empty: give a file or folder name" if bad == "" else "must be a file path"
    for what, call in (
        ("path", lambda: post.save(bad)),
        ("path", lambda: bayesplit.load_posterior(bad)),
        ("path", lambda: bayesplit.Posterior.load(bad)),
        ("path", lambda: RunStore(bad)),
        ("path", lambda: RunStore.check(bad)),
        ("path", lambda: read_table(bad)),
        ("path", lambda: write_table(runs, bad)),
        ("path", lambda: load_truth(bad)),
        ("path", lambda: save_figure(None, bad)),
        ("out", lambda: write_report(post, bad, budget=1e20)),
    ):
        with pytest.raises(BayesplitError, match=f"^{what} {message}"):
            call()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # "'int' object is not iterable" and "'str' object has no attribute 'get'", both
        # after the solve; each entry is a plan checked before it
        ({"compare": 5}, "compare must be a plan .* or a list of plans, got 5 \\(int\\)"),
        ({"compare": "plan.json"}, "compare must be a plan .*, got 'plan.json' \\(str\\)"),
        ({"compare": [5]}, "compare must be a plan .*, got an entry 5 \\(int\\)"),
        ({"compare": [{"params": 1e8}]}, "a plan needs params and pretrain_tokens"),
        # a typo of spec_tokens was ignored: an all-pretraining plan was compared silently
        (
            {"compare": {"params": 1e8, "pretrain_tokens": 1e10, "spec_token": {"web": 1e8}}},
            "a plan has unknown key\\(s\\) 'spec_token' \\(did you mean 'spec_tokens'\\?\\)",
        ),
        # allocate's own output: a list of unknown keys did not say what to give instead
        (
            {"compare": {"plan": {"params": 1e8, "pretrain_tokens": 1e10}, "budget": 1e20}},
            "this is an allocation, not a plan: give its 'plan'",
        ),
        # numeric text was read as a number, where every other count refuses text
        (
            {"compare": {"params": "1e8", "pretrain_tokens": 1e10}},
            "a plan's params must be a number, got '1e8' \\(str\\)",
        ),
        (
            {"compare": {"params": 1e8, "pretrain_tokens": 1e10, "spec_tokens": {"web": "1e8"}}},
            "a plan's spec_tokens.web must be a number, got '1e8'",
        ),
        # false or 0 for spec_tokens was read as no specialization
        (
            {"compare": {"params": 1e8, "pretrain_tokens": 1e10, "spec_tokens": 0}},
            "a plan's spec_tokens must map domains to tokens",
        ),
        # a 400-digit integer was an OverflowError; the field is named
        (
            {"compare": {"params": 10**400, "pretrain_tokens": 1e10}},
            "a plan needs finite params > 0, .* got params=inf",
        ),
        (
            {"compare": [{"params": 1e8, "pretrain_tokens": 1e10}, {"params": 1e8}]},
            "^compare plan #2: a plan needs params and pretrain_tokens",
        ),
        ({"compare": {"params": 1e8, "pretrain_tokens": 1e10, "name": 5}}, "name must be text"),
        # the second plan of a name silently replaced the first
        (
            {"compare": [{"name": "a", "params": 1e8, "pretrain_tokens": 1e10}] * 2},
            "compare names the plan 'a' more than once",
        ),
        # it silently replaced the built-in alternative of that name
        (
            {"compare": {"name": "50/50 split", "params": 1e8, "pretrain_tokens": 1e10}},
            "compare plan '50/50 split' has the name of a built-in alternative; rename it",
        ),
        # "'str' object has no attribute 'flops_per_param_token'"
        ({"compute": "6N"}, "compute must be a bayesplit.compute.ComputeModel, .* got '6N'"),
        ({"compute": 6.0}, "compute must be a bayesplit.compute.ComputeModel"),
    ],
)
def test_allocate_refuses_bad_compare_and_compute(post, kwargs, message):
    with pytest.raises(BayesplitError, match=message):
        bayesplit.allocate(post, budget=1e20, **kwargs)


def test_allocate_takes_compare_plans_as_before(post):
    from bayesplit.compute import ComputeModel

    plan = {"name": "mine", "params": 1e8, "pretrain_tokens": 1e10, "spec_tokens": {"web": 1e8}}
    for compare in (plan, [plan], (plan,)):
        alloc = bayesplit.allocate(post, budget=1e20, compare=compare)
        assert "mine" in alloc.alternatives.coords["alternative"].values
        # a domain it leaves out is compared at D' = 0, and that is said (it was not)
        others = [k for k in post.domains if k != "web"]
        assert (
            f"mine gives no D' for {', '.join(others)}: compared with D' = 0 there" in alloc.notes
        )
    # a plan with no spec_tokens at all is a plan with no branches: nothing to say
    general = bayesplit.allocate(
        post, budget=1e20, compare={"params": 1e8, "pretrain_tokens": 1e10}
    )
    assert not any("gives no D'" in n for n in general.notes)
    alloc = bayesplit.allocate(post, budget=1e20, compute=ComputeModel(flops_per_param_token=8))
    assert alloc.plan.params > 0
    with pytest.raises(BayesplitError, match="FLOPs per token must be numbers"):
        ComputeModel(flops_per_param_token="6")
    with pytest.raises(BayesplitError, match="FLOPs per token must be finite and positive"):
        ComputeModel(flops_per_param_token=float("nan"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # each was made without a word, and failed (or gave NaN losses) where it was used
        ((-1, 1e10, {}), "Plan params must be a finite number > 0, got -1$"),
        ((0.0, 1e10, {}), "Plan params must be a finite number > 0, got 0.0$"),
        ((float("nan"), 1e10, {}), "Plan params must be a finite number > 0, got nan$"),
        (("1e8", 1e10, {}), "Plan params must be a finite number > 0, got '1e8' \\(str\\)$"),
        ((True, 1e10, {}), "Plan params must be a finite number > 0, got True \\(bool\\)$"),
        ((1e8, float("inf"), {}), "Plan pretrain_tokens must be a finite number > 0, got inf$"),
        ((1e8, None, {}), "Plan pretrain_tokens must be a finite number > 0, got None"),
        ((1e8, 1e10, 5), "Plan spec_tokens must map domain names to tokens, .* got 5$"),
        ((1e8, 1e10, {1: 1e9}), "Plan spec_tokens must map domain names to tokens"),
        (
            (1e8, 1e10, {"web": -1.0}),
            "Plan spec_tokens\\['web'\\] must be a finite number >= 0, got -1.0$",
        ),
        ((1e8, 1e10, {"web": float("nan")}), "Plan spec_tokens\\['web'\\] must be a finite"),
        ((1e8, 1e10, {"web": "1e9"}), "Plan spec_tokens\\['web'\\] .* got '1e9' \\(str\\)"),
    ],
)
def test_a_plan_is_checked_when_made(args, message):
    from bayesplit.plan import Plan

    with pytest.raises(BayesplitError, match=message) as exc:
        Plan(*args)
    assert "\n" not in str(exc.value)


def test_a_plan_made_of_good_counts_keeps_them_as_floats():
    from bayesplit.plan import Plan

    plan = Plan(np.int64(100_000_000), 1e10, {"web": np.float32(1e9), "code": 0})
    assert plan.to_dict() == {
        "params": 1e8,
        "pretrain_tokens": 1e10,
        "spec_tokens": {"web": 1e9, "code": 0.0},
    }
    assert all(type(v) is float for v in [plan.params, *plan.spec_tokens.values()])
    # -0.0 (a solver's residue) is kept as 0.0: it read "-0" in tables and JSON
    assert str(Plan(1e8, 1e10, {"web": -0.0}).spec_tokens["web"]) == "0.0"
    # from_dict's own messages, which name the JSON field, are as before
    with pytest.raises(BayesplitError, match="a plan needs finite params > 0, .* got params=-1"):
        Plan.from_dict({"params": -1, "pretrain_tokens": 1e10}, ["web"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"history": None}, "history must be the DataFrame simulate\\(\\) returns"),
        ({"history": pd.DataFrame({"policy": ["grid"]})}, "history must be the DataFrame"),
        ({"baseline": ["grid"]}, "baseline must be a policy name"),
        ({"threshold": "0.01"}, "threshold must be a regret >= 0, got '0.01'"),
        ({"threshold": -1}, "threshold must be a regret >= 0"),
        ({"level": 90}, "level must be in \\(0, 1\\), got 90"),
        ({"n_boot": 0}, "n_boot must be >= 1"),
        ({"n_boot": 10.5}, "n_boot must be a whole number"),
        ({"seed": -1}, "seed must be between 0"),
    ],
)
def test_compare_policies_refuses_bad_arguments(kwargs, message):
    from bayesplit.simulation import compare_policies

    history = pd.DataFrame(
        {
            "policy": ["grid", "active"],
            "seed": [0, 0],
            "round": [0, 0],
            "regret": [0.0, 0.0],
            "spent_flops": [1.0, 2.0],
        }
    )
    kw = {"history": history, **kwargs}
    with pytest.raises(BayesplitError, match=message):
        compare_policies(**kw)


def test_draws_of_an_unknown_name_are_refused_listing_the_known(post):
    # ["nope"] gave {} and "sigma" was read as its letters (also {})
    with pytest.raises(
        BayesplitError, match="the posterior has no variable 'nope'; it has .*sigma"
    ):
        post.draws(["nope"])
    with pytest.raises(BayesplitError, match="no variable 'nope'"):
        post.draws(["sigma", "nope"])
    with pytest.raises(BayesplitError, match="names must be names \\(strings\\), got 5"):
        post.draws(5)
    # [] gave every parameter, as None does
    with pytest.raises(BayesplitError, match="names is empty"):
        post.draws([])
    assert list(post.draws("sigma")) == ["sigma"]
    assert set(post.draws()) == set(post.law.param_names)


@pytest.mark.parametrize("run", [5, 5.0, ["r1"]])
def test_predict_takes_a_run_id_as_text(post, run):
    """run=5 never matched a run "5" (ids are text) and silently gave a new run's band.
    An unknown text id giving the new-run band is documented: attrs["run"] says "new"."""
    with pytest.raises(BayesplitError, match="run must be a run or trunk id \\(a str\\) or None"):
        bayesplit.predict(post, 1e8, 1e9, domain="web", run=run)
    assert bayesplit.predict(post, 1e8, 1e9, domain="web", run="nope").attrs["run"] == "new"


def test_fit_takes_numpy_whole_numbers_and_its_posterior_saves(runs, tmp_path):
    """np.int64 draws passed the check, then NumPyro refused them ("num_samples must be a
    positive integer"); np.int64 chains or np.float32 target_accept fitted, then the save
    failed ("Object of type int64 is not JSON serializable")."""
    post = bayesplit.fit(
        runs,
        law="additive",
        chains=np.int64(1),
        draws=np.int64(10),
        warmup=np.int32(10),
        target_accept=np.float32(0.9),
        progress=False,
    )
    info = post.info
    assert [type(info[k]) for k in ("chains", "draws", "warmup", "target_accept")] == [
        int,
        int,
        int,
        float,
    ]
    assert post.n_draws == 10
    back = bayesplit.Posterior.load(post.save(tmp_path / "p.nc"))
    assert back.info["draws"] == 10


def test_a_write_to_a_folder_or_under_a_file_is_refused_before_the_work(
    post, tmp_path, monkeypatch
):
    """Both were raw OSErrors at the final rename, after the whole file or report was built."""
    folder, file = tmp_path / "out.nc", tmp_path / "plain"
    folder.mkdir()
    file.write_text("x")
    with pytest.raises(BayesplitError, match="out.nc is a folder; give a file name"):
        post.save(folder)
    with pytest.raises(BayesplitError, match="plain is a file, not a folder"):
        post.save(file / "deeper" / "p.nc")
    import bayesplit.reporting

    def build_report(*args, **kwargs):
        raise AssertionError("the report was built before its path was checked")

    monkeypatch.setattr(bayesplit.reporting, "build_report", build_report)
    (tmp_path / "rep.html").mkdir()
    with pytest.raises(BayesplitError, match="rep.html is a folder"):
        bayesplit.reporting.write_report(post, tmp_path / "rep.html", budget=1e20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nc", "plain", "rep.html"]


@pytest.mark.parametrize("dtype", ["Int64", "int64[pyarrow]"])
def test_a_blank_seed_in_a_nullable_column_is_seed_0(runs, dtype):
    # pd.NA is what a blank is in these columns; a blank CSV seed was already 0
    table = runs.astype({"seed": dtype})
    table["seed"] = table["seed"] + 3
    blank = table["run_id"] == table["run_id"].iloc[0]  # every row of one run
    table.loc[blank, "seed"] = pd.NA
    seeds = bayesplit.validate_runs(table)["seed"]
    assert (seeds[blank] == 0).all() and (seeds[~blank] == 3).all() and 0 < blank.sum() < len(seeds)


def _suggest(post, n=1, **kwargs):
    return bayesplit.suggest(post, budget=1e20, n=n, max_draws=50, **kwargs)


@pytest.mark.parametrize(
    ("candidates", "message"),
    [
        # an AttributeError ('list' object has no attribute 'reset_index')
        (
            [{"params": 1e7, "pretrain_tokens": 1e9, "spec_tokens": 0, "train_domain": None}],
            "candidates must be a DataFrame with columns params, pretrain_tokens",
        ),
        ({"params": [1e7]}, "candidates has no column pretrain_tokens, spec_tokens"),  # KeyError
        # KeyError: 'math', then KeyError: None
        ({"train_domain": "math"}, "row 0: a specialist .* among web, code, got 'math'"),
        ({"train_domain": None}, "row 0: a specialist .* got None"),
        # blamed on the posterior: "fewer than 10 posterior draws give finite values"
        ({"params": np.nan}, r"candidates\['params'\] must be finite and > 0, got nan"),
        ({"pretrain_tokens": -1e9}, r"candidates\['pretrain_tokens'\] must be finite"),
        ({"spec_tokens": "1e8"}, r"candidates\['spec_tokens'\] must be .* got an entry '1e8'"),
    ],
)
def test_a_candidate_table_is_checked_as_the_grids_are(post, candidates, message):
    if isinstance(candidates, dict):  # one row: a good one with these values changed
        base = {"params": 3e7, "pretrain_tokens": 1e9, "spec_tokens": 1e8, "train_domain": "web"}
        whole = message.startswith("candidates has no column")
        candidates = pd.DataFrame(candidates if whole else [{**base, **candidates}])
    with pytest.raises(BayesplitError, match=message):
        _suggest(post, candidates=candidates)


def test_a_good_candidate_table_is_ranked(additive_posterior):
    table = pd.DataFrame(
        {
            "params": [2e7, 2e7],  # not among the fitted runs, which are not suggested again
            "pretrain_tokens": [2e9, 2e9],
            "spec_tokens": [0.0, 2e8],
            # a general run's train domain means nothing: not a reason to refuse
            "train_domain": ["web", "code"],
        },
        index=[7, 7],  # not a default index
    )
    picked = _suggest(additive_posterior, candidates=table, n=2, force=True).table
    assert len(picked) == 2
    assert sorted(picked["train_domain"].fillna("-")) == ["-", "code"]


@pytest.mark.parametrize(
    ("point", "message"),
    [
        # "Unknown format code 'g' for object of type 'str'"
        ({"params": "1e8"}, r"point\['params'\] must be a positive number .* got '1e8'"),
        # blamed on the posterior
        ({"params": float("nan")}, r"point\['params'\] must be finite and > 0, got nan"),
        ({"pretrain_tokens": -1e9}, r"point\['pretrain_tokens'\] must be finite and > 0"),
        ({"params": [1e8, 2e8]}, r"point\['params'\] must be one number, got 2"),
        ({"size": 1}, "point has no key 'size'"),
    ],
)
def test_the_target_point_is_checked(post, point, message):
    target = {"params": 1e8, "pretrain_tokens": 1e9, "spec_tokens": 1e8, "domain": "web", **point}
    with pytest.raises(BayesplitError, match=message):
        _suggest(post, objective="point", point=target)


def test_suggest_takes_a_ladder_of_sizes_as_allocate_does(post, additive_posterior):
    """ladder=[...] was a TypeError from the ladder file lookup; allocate takes sizes."""
    by_ladder = _suggest(additive_posterior, ladder=[1e7, 3e7], n=2, force=True).table
    by_params = _suggest(additive_posterior, params=[1e7, 3e7], n=2, force=True).table
    pd.testing.assert_frame_equal(by_ladder, by_params)
    with pytest.raises(BayesplitError, match="give params or ladder, not both"):
        _suggest(post, ladder=[1e7], params=[1e7])
    with pytest.raises(BayesplitError, match=r"ladder must be finite and > 0"):
        _suggest(post, ladder=[1e7, -1])
    # AttributeErrors from deep inside
    with pytest.raises(BayesplitError, match="cost_model must be a bayesplit.design.CostModel"):
        _suggest(post, cost_model="x")
    with pytest.raises(BayesplitError, match="allocate_kwargs must be a dict"):
        _suggest(post, allocate_kwargs=[1])


def test_curves_check_their_points_and_span(post):
    a = bayesplit.allocate(post, budget=1e20, max_draws=50)
    # an xarray error, a TypeError, a ZeroDivisionError, and a curve of NaN at N = -5e8
    for call in (
        lambda: a.split_curve(points=0),
        lambda: a.split_curve(points=5.0),
        lambda: a.size_curve(points=True),
    ):
        with pytest.raises(BayesplitError, match="points must be a whole number >= 3"):
            call()
    for span in (0, -1, 1, float("nan"), "10"):
        with pytest.raises(BayesplitError, match="span must be a number > 1"):
            a.size_curve(span=span)
    assert a.split_curve(points=np.int64(3)).sizes["fraction"] == 3


def test_numbers_too_large_for_a_float_are_refused(post):
    # OverflowError: int too large to convert to float
    with pytest.raises(BayesplitError, match="params must be finite and > 0"):
        bayesplit.predict(post, 10**400, 1e9, domain="web")
    with pytest.raises(BayesplitError, match="budget must be a positive number of FLOPs"):
        bayesplit.allocate(post, budget=10**400)
    assert bayesplit.allocate(post, budget=10**20, max_draws=50).budget == 1e20


def test_a_numpy_level_gives_plain_json(post):
    import json

    a = bayesplit.allocate(post, budget=1e20, level=np.float32(0.8), max_draws=50)
    assert json.loads(json.dumps(a.to_dict()))["level"] == pytest.approx(0.8)
    pred = bayesplit.predict(post, 1e8, 1e9, domain="web", level=np.float32(0.8))
    assert type(pred.attrs["level"]) is float


def test_frontier_refuses_a_budget_and_too_many_budgets(post):
    # allocate's "got multiple values for keyword argument 'budget'"
    with pytest.raises(BayesplitError, match="give budgets, not budget"):
        bayesplit.frontier(post, [1e20], budget=1e20)
    # the text form refused more than 100; a list was planned, one allocate each
    with pytest.raises(BayesplitError, match="budgets: at most 100 .* got 101"):
        bayesplit.frontier(post, np.geomspace(1e19, 1e21, 101))


def test_bundled_tables_load_by_the_name_the_readme_uses():
    from bayesplit.datasets import datablations, load_dataset

    assert len(load_dataset("bundled:datablations")) == len(load_dataset("datablations"))
    # a TypeError ('>' between str and int), True read as 1, and "the table has no rows"
    for bad in ("1", True):
        with pytest.raises(BayesplitError, match="max_epochs must be a number > 0"):
            datablations(max_epochs=bad)
    with pytest.raises(BayesplitError, match="max_epochs=1e-09 keeps no run"):
        datablations(max_epochs=1e-9)


def test_figures_refuse_what_they_cannot_draw_or_write(post, tmp_path):
    """A .xyz path was matplotlib's ValueError, .pgf a RuntimeError (xelatex missing) after
    the figure was drawn; an empty frontier table numpy's "zero-size array"; a frontier
    computed at level 0.5 was labelled "90% credible"."""
    from bayesplit import plots

    table = bayesplit.frontier(post, [1e19, 1e20], level=0.5, max_draws=50)
    fig = plots.plot_frontier(table)
    assert "50% credible" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    # the twin axis's dashed line is in the plan panel's legend too (drawn on the twin)
    plan_legend = [t.get_text() for t in fig.axes[2].get_legend().get_texts()]
    assert plan_legend == ["N of the plan", "50% of per-draw optima", "pretraining share"]
    for suffix in ("xyz", "pgf"):
        with pytest.raises(BayesplitError, match=f"cannot save a figure as .{suffix}; use one of"):
            plots.save_figure(fig, tmp_path / f"f.{suffix}")
    assert list(tmp_path.iterdir()) == []
    for call in (
        lambda: plots.plot_fans(post, table.iloc[:0]),
        lambda: plots.plot_frontier(table.iloc[:0]),
    ):
        with pytest.raises(BayesplitError, match="frontier table is empty"):
            call()
    with pytest.raises(BayesplitError, match="frontier table must be a DataFrame"):
        plots.plot_frontier([1e19, 1e20])


def test_thresholds_are_checked_when_made(tmp_path):
    # r_hat_max="x" was a TypeError after sampling; with one chain a gate that meant nothing
    import json
    from dataclasses import asdict

    for bad, message in [
        ({"r_hat_max": "x"}, "Thresholds.r_hat_max must be a number >= 1, got 'x'"),
        ({"r_hat_max": 0.99}, "r_hat_max must be a number >= 1"),
        ({"ess_bulk_min": -1}, "ess_bulk_min must be a number >= 0"),
        ({"bfmi_min": float("nan")}, "bfmi_min must be a number >= 0"),
        ({"divergences_max": 1.5}, "divergences_max must be a whole number"),
        ({"max_depth_share_max": True}, "max_depth_share_max must be a number"),
    ]:
        with pytest.raises(BayesplitError, match=re.escape(message)):
            bayesplit.Thresholds(**bad)
    loose = bayesplit.Thresholds(r_hat_max=np.float32(1.05), divergences_max=np.inf)
    json.dumps(asdict(loose), allow_nan=True)  # numpy values were kept, and broke saving


def test_arguments_passed_on_are_checked_by_name(post):
    # each was Python's "unexpected keyword argument" or "multiple values" TypeError
    runs = bayesplit.load_dataset("debian_campaign")
    for call, message in [
        (lambda: bayesplit.frontier(post, [1e20], bogus=1), "frontier: allocate has no argument 'bogus'"),
        (lambda: bayesplit.load_dataset("debian_campaign", bogus=1), "debian_campaign has no argument 'bogus'"),
        (lambda: bayesplit.compare(runs, ["chinchilla"], bogus=1), "compare: fit has no argument 'bogus'"),
        (lambda: bayesplit.compare(runs, ["chinchilla"], law="x"), "compare: law cannot be given here"),
        (lambda: bayesplit.suggest(post, budget=1e20, n=1, allocate_kwargs={"force": True}), "allocate_kwargs: force cannot be given here: suggest sets it"),
        (lambda: bayesplit.suggest(post, budget=1e20, n=1, allocate_kwargs={"bogus": 1}), "allocate_kwargs: allocate has no argument 'bogus'"),
    ]:  # fmt: skip
        with pytest.raises(BayesplitError, match=re.escape(message)):
            call()


def test_suggest_point_domain_and_a_one_draw_posterior_are_said(post):
    from bayesplit.truth import example_truth

    point = {"params": 1e8, "pretrain_tokens": 1e9}
    for domain in (None, ["web", "code"], ""):
        # ranked runs for the first domain, labelled "loss on None"
        with pytest.raises(BayesplitError, match=r"point\['domain'\] must be one domain name"):
            bayesplit.suggest(post, objective="point", point={**point, "domain": domain}, n=1)
    truth = example_truth("additive", ("web", "code")).as_posterior()
    with pytest.raises(BayesplitError, match="needs at least 10 posterior draws .* has 1"):
        bayesplit.suggest(truth, budget=1e21, n=1)
    with pytest.raises(BayesplitError, match="seed"):
        post.draws(seed=-1)


def test_simulate_checks_its_truth_and_config():
    import dataclasses

    from bayesplit.simulation import CampaignConfig
    from bayesplit.truth import example_truth, factorial_design

    truth = example_truth("additive", ("web", "code"))
    base = dict(budget=1e20, experiment_budget=1e18, params=[1e7, 3e7], pretrain_tokens=[3e8],
                spec_tokens=[1e8], seed_design=factorial_design([1e7], [3e8], [1e8], truth.domains))  # fmt: skip
    cfg = CampaignConfig(**base)
    for bad, message in [({"seed_design": None}, "seed_design must be a run table"),
                         ({"cost_model": {}}, "cost_model must be a bayesplit.design.CostModel")]:  # fmt: skip
        with pytest.raises(BayesplitError, match=message):
            dataclasses.replace(cfg, **bad)
    with pytest.raises(BayesplitError, match="truth must be a bayesplit.truth.GroundTruth"):
        bayesplit.simulate(None, cfg, policies=["grid"])
    with pytest.raises(BayesplitError, match="config must be a CampaignConfig"):
        bayesplit.simulate(truth, base, policies=["grid"])


@pytest.mark.parametrize("fraction", ["0.2", None, True, float("nan")])
def test_compare_refuses_a_holdout_fraction_that_is_not_a_number(fraction):
    # "0.2" and None were a TypeError from the comparison, True read as a fraction of 1
    from bayesplit.comparison import split_largest
    from bayesplit.truth import example_truth, factorial_design

    truth = example_truth("additive", ("web", "code"))
    runs = truth.simulate(factorial_design([1e7, 3e7], [3e8, 1e9], [0.0], truth.domains), seed=0)
    with pytest.raises(BayesplitError, match=r"holdout fraction must be in \[0, 1\), got"):
        split_largest(runs, fraction)


def test_share_ranges_under_one_percent_keep_two_digits():
    # the report's near-optimal range of a plan at 0.019% read "0%" (both ends rounded)
    from bayesplit._parse import share, share_range

    assert share_range(0.000008, 0.000022) == "0.0008%–0.0022%"
    assert share_range(0.004, 0.3) == "0.4%–30%"
    assert share_range(0.86, 0.98) == "86%–98%" and share_range(0.921, 0.923) == "92%"
    assert share(0.0004) == "0.04%" and share(0.0) == "0%"


@pytest.mark.parametrize(
    ("name", "message"),
    [("p.txt", "posterior files are netCDF (.nc), got .txt"), ("p", "got no extension"),
     ("p.nc/", "names a folder; give a file name ending in .nc")],
)  # fmt: skip
def test_a_posterior_is_saved_under_a_nc_name_only(post, tmp_path, name, message):
    # save("x.txt") wrote netCDF that `bayesplit fit --out` would refuse to name so, and
    # "x.nc/" (a folder, meant or not) became the file x.nc
    with pytest.raises(BayesplitError, match=re.escape(message)):
        post.save(f"{tmp_path}/{name}")
    assert list(tmp_path.iterdir()) == []
    assert post.save(tmp_path / "P.NC").exists()


def test_compare_names_held_out_intervals_too_narrow_beyond_sampling_noise():
    """compare ranks by elpd alone: a law first with 75% held-out coverage of its 90% bands
    (against another's 89%) read as the better extrapolator, with no word."""
    from bayesplit.comparison import undercoverage_note

    note = undercoverage_note(0.75, 61, 0.9)  # 2 se over 61 runs: 7.7 points
    assert note == (
        "held-out coverage 75% of its 90% bands is below the level by more than sampling "
        "noise over 61 independent held-out runs: its intervals are too narrow beyond the fit"
    )
    assert undercoverage_note(0.89, 61, 0.9) is None and undercoverage_note(0.83, 61, 0.9) is None
    assert undercoverage_note(0.75, 8, 0.9) is None  # 8 runs: 2 se is 21 points
    assert undercoverage_note(float("nan"), 0, 0.9) is None  # nothing held out
    # calibrated 90% bands on 8 held-out runs of 8 rows each, rows of a run correlated
    # through its effect: counted as 64 rows the note fired on ~9-16% of such tables
    rng = np.random.default_rng(0)
    z = 1.6448536269514722
    fired = []
    for _ in range(400):
        share = 0.8  # of the predictive variance that is the run's
        effect = rng.normal(0, np.sqrt(share), size=(8, 1))
        noise = rng.normal(0, np.sqrt(1 - share), size=(8, 8))
        inside = np.abs(effect + noise) <= z
        fired.append(undercoverage_note(inside.mean(), 8, 0.9) is not None)
    assert np.mean(fired) < 0.05


def test_compare_says_nothing_of_domains_left_out_on_purpose_or_of_forgetting_rows():
    """compare(..., domains=["code"]) warned "147 held-out row(s) on domains the fitted runs
    lack (docs, lexicon, scripture) not predicted", counting the specialists' rows on other
    domains, which no law predicts."""
    from bayesplit.comparison import unpredicted_domains

    rows = pd.DataFrame(
        {
            "eval_domain": ["code", "docs", "docs", "law"],
            "train_domain": [None, None, "code", None],
            "spec_tokens": [0.0, 0.0, 1e8, 0.0],
        }
    )
    # a general model's docs and law rows; the code specialist's docs row is forgetting
    assert sorted(unpredicted_domains(rows, ["code"])) == ["docs", "law"]
    assert list(unpredicted_domains(rows, ["code"], chosen=["code"])) == []
    assert list(unpredicted_domains(rows, ["code"], chosen=["code", "law"])) == ["law"]


def test_compare_draws_its_held_out_bands_with_its_seed(runs, monkeypatch):
    """compare(seed=3) fitted with seed 3 but drew the held-out bands' noise with seed 0."""
    import bayesplit.comparison as comparison

    seeds = []
    real = comparison.holdout_predictions

    def spy(posterior, holdout, level=0.9, seed=0):
        seeds.append(seed)
        return real(posterior, holdout, level, seed)

    monkeypatch.setattr(comparison, "holdout_predictions", spy)
    quick = dict(chains=1, draws=20, warmup=20, holdout_largest=0.3)
    bayesplit.compare(runs, ["additive"], seed=3, **quick)
    assert seeds == [3]


def test_a_huge_integer_budget_is_refused_in_a_short_line(post):
    # 10**400 printed all its 401 digits in the message
    for call in (
        lambda: bayesplit.allocate(post, budget=10**400),
        lambda: bayesplit.suggest(post, budget=1e20, max_run_flops=-(10**400), force=True),
    ):
        with pytest.raises(BayesplitError, match=r"positive number of FLOPs, got -?1000+\.\.\.0+$"):
            call()
