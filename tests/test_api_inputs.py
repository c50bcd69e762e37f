"""The Python API at its boundary: what a notebook user types is read as meant, or refused
with a BayesplitError that says why (not a TypeError from deep inside numpy or JAX)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import bayesplit
from bayesplit.errors import BayesplitError
from bayesplit.model import Reference
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


def test_domains_that_are_no_names_are_refused_in_words(post):
    # "'int' object is not iterable" from list(5)
    with pytest.raises(BayesplitError, match="domains must be names \\(strings\\), got 5"):
        bayesplit.allocate(post, budget=1e20, domains=5)


def test_progress_means_the_same_in_compare_as_in_fit(runs, capfd):
    """fit takes progress=True/False; compare and simulate took only a function, so True
    raised "'bool' object is not callable" once the runs were split."""
    from bayesplit._parse import progress_messages

    quick = dict(chains=1, draws=20, warmup=20, holdout_largest=0.0)
    bayesplit.compare(runs, ["additive"], progress=True, **quick)
    assert "fitting additive on 12 runs, holding out 0" in capfd.readouterr().err
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
    for call in (
        lambda: post.summary(level=level),
        lambda: holdout_predictions(post, runs.iloc[:0], level=level),
        lambda: plots.plot_fit(post, level=level),
        lambda: plots.plot_frontier(pd.DataFrame({"budget": [1e20]}), level=level),
        lambda: bayesplit.predict(post, 1e8, 1e9, level=level),
        lambda: bayesplit.suggest(post, budget=1e20, n=1, max_draws=20, level=level),
    ):
        with pytest.raises(BayesplitError, match=f"level must be in \\(0, 1\\), got {shown}"):
            call()


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
        ("out", lambda: write_report(post, bad)),
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
    alloc = bayesplit.allocate(post, budget=1e20, compute=ComputeModel(flops_per_param_token=8))
    assert alloc.plan.params > 0
    with pytest.raises(BayesplitError, match="FLOPs per token must be numbers"):
        ComputeModel(flops_per_param_token="6")
    with pytest.raises(BayesplitError, match="FLOPs per token must be finite and positive"):
        ComputeModel(flops_per_param_token=float("nan"))


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
