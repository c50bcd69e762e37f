"""A user law whose mean raises or returns NaN: one line naming the law, exit 2, nothing written.

Before, these surfaced as raw tracebacks (ZeroDivisionError from deep in JAX tracing,
"All-NaN slice encountered" from allocation, "StudentT got invalid loc" from NUTS) or, for
the prior check, as a silently wrong band.
"""

from __future__ import annotations

import dataclasses
import re
import sys

import numpy as np
import pytest
from support import good_table, refused
from typer.testing import CliRunner

from bayesplit.cli import app
from bayesplit.errors import BayesplitError

runner = CliRunner()

LAW_MODULE = """
import math
from bayesplit.laws import Law, Param, register

def raises(ops, p, x):
    return 1 / 0

def nan_when_specialized(ops, p, x):
    # the log of a negative number once D' > 0
    return ops.log(p["E"]) + ops.log(1.0 - 2.0 * (x.dp > 0))

E = Param("E", "positive", math.log(0.5), 1.0, per_domain=True, loss_scaled=True)
register(Law("err_raises", "L = 1/0", (E,), raises), overwrite=True)
register(Law("err_nan", "L = E·log(-1)", (E,), nan_when_specialized), overwrite=True)

def trailing_comma(ops, p, x):
    return ops.log(p["E"] + 0 * x.n),

def text(ops, p, x):
    return "x"

def constant(ops, p, x):
    return ops.log(p["E"])

def nan_in_part_of_the_prior(ops, p, x):
    # finite at the prior's centre, NaN where A·N^-alpha > E
    return ops.log(p["E"] - p["A"] * ops.exp(-p["alpha"] * ops.log(x.n)))

A = Param("A", "positive", math.log(0.15), 1.0, loss_scaled=True)
ALPHA = Param("alpha", "unit", -0.7, 0.6)
register(Law("err_nan_prior", "L = E - A·N^-alpha", (E, A, ALPHA), nan_in_part_of_the_prior),
         overwrite=True)

def one_loss_for_every_domain(ops, p, x):
    return ops.logsumexp(ops.log(p["E0"]), ops.log(p["A"]) - p["alpha"] * ops.log(x.n))

E0 = Param("E0", "positive", math.log(0.5), 1.0, loss_scaled=True)
register(Law("shared_no_dp", "L = E + A·N^-alpha", (E0, A, ALPHA), one_loss_for_every_domain,
             uses_spec_tokens=False), overwrite=True)

def nan_gradient(ops, p, x):
    # finite everywhere, but the branch not taken where D' = 0 is inf: a NaN gradient
    spec = ops.where(x.dp > 0, ops.log(p["C"]) - p["gamma"] * ops.log(x.dp), -1e30)
    return ops.logsumexp(ops.log(p["E"]) + 0 * x.n, spec)

C = Param("C", "positive", math.log(0.2), 1.0, loss_scaled=True)
GAMMA = Param("gamma", "positive", math.log(0.3), 0.5)
register(Law("err_grad", "L = E + C·D'^-gamma", (E, C, GAMMA), nan_gradient), overwrite=True)

def alpha_not_read(ops, p, x):
    return ops.logsumexp(ops.log(p["E0"]) + 0 * x.n, ops.log(p["A"]) - 0.3 * ops.log(x.n))

register(Law("err_unread", "L = E + A·N^-alpha", (E0, A, ALPHA), alpha_not_read,
             uses_spec_tokens=False), overwrite=True)

register(Law("err_tuple", "L = E", (E,), trailing_comma), overwrite=True)
register(Law("err_text", "L = E", (E,), text), overwrite=True)
register(Law("err_const", "L = E", (E,), constant), overwrite=True)
"""

RAISES = "law 'err_raises': its mean raised ZeroDivisionError: division by zero (/"
NAN = "law 'err_nan': its mean is NaN at N=1e+07, D="
CASES = [pytest.param("err_raises", RAISES, id="raises"), pytest.param("err_nan", NAN, id="nan")]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The law module (imported, so its laws are registered), a run table, a truth per law."""
    import yaml

    root = tmp_path_factory.mktemp("custom_laws")
    (root / "err_laws.py").write_text(LAW_MODULE)
    good_table().to_csv(root / "runs.csv", index=False)
    for law in ("err_raises", "err_nan"):
        truth = {
            "law": law,
            "domains": ["web", "code"],
            "params": {"E": [2.0, 1.5]},
            "reference": {"params": 1e8, "tokens": 1e9, "loss": 3.0},
        }
        (root / f"{law}.yaml").write_text(yaml.safe_dump(truth))
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(root))
        __import__("err_laws")
        yield root
    sys.modules.pop("err_laws", None)


def _start(message: str) -> str:
    """A ``pytest.raises`` pattern: the message up to its ``(file:line)``."""
    return "^" + re.escape(message.split(" (")[0])


def _simulate_args(files, law, out):
    return [
        "simulate", "--truth", str(files / f"{law}.yaml"), "--budget", "1e20",
        "--experiment-budget", "2e18", "--chains", "1", "--draws", "50", "--warmup", "50",
        "--params", "1e7,3e7", "--pretrain-tokens", "3e8,1.2e9", "--spec-tokens", "1e8",
        "--rounds", "1", "--policies", "grid", "--out", str(out), "--law-module", "err_laws",
    ]  # fmt: skip


@pytest.mark.parametrize(("law", "message"), CASES)
def test_simulate_refuses_a_broken_law_in_one_line(files, tmp_path, law, message):
    out = tmp_path / "rounds.csv"
    refused(runner.invoke(app, _simulate_args(files, law, out)), message)
    assert not out.exists()


@pytest.mark.parametrize(("law", "message"), CASES)
def test_prior_refuses_a_broken_law_in_one_line(files, law, message):
    args = ["prior", "--runs", str(files / "runs.csv"), "--law", law, "--draws", "20"]
    refused(runner.invoke(app, [*args, "--law-module", "err_laws"]), message)


@pytest.mark.parametrize(("law", "message"), CASES)
def test_compare_refuses_a_broken_law_in_one_line(files, law, message):
    args = ["compare", "--runs", str(files / "runs.csv"), "--laws", f"additive,{law}"]
    args += ["--chains", "1", "--draws", "50", "--warmup", "50", "--law-module", "err_laws"]
    # refused before fitting anything, the built-in law named first included
    refused(runner.invoke(app, args), message)


@pytest.mark.parametrize(("law", "message"), CASES)
def test_fit_refuses_a_failing_law_in_one_line(files, tmp_path, law, message):
    # the NaN law reached NUTS, which said "StudentT distribution got invalid loc parameter"
    out = tmp_path / "post.nc"
    args = ["fit", "--runs", str(files / "runs.csv"), "--law", law, "--out", str(out)]
    args += ["--chains", "1", "--draws", "50", "--warmup", "50", "--no-progress"]
    refused(runner.invoke(app, [*args, "--law-module", "err_laws"]), message)
    assert not out.exists()


@pytest.mark.parametrize(("law", "message"), CASES)
def test_api_raises_bayesplit_error(files, law, message):
    from bayesplit.cli.simulate import default_config
    from bayesplit.comparison import compare
    from bayesplit.prior import prior_predictive
    from bayesplit.simulation import simulate
    from bayesplit.truth import load_truth

    runs = str(files / "runs.csv")
    truth = load_truth(files / f"{law}.yaml")
    config = default_config(
        truth, 1e20, 2e18, params=[1e7, 3e7], pretrain_tokens=[3e8, 1.2e9],
        spec_tokens=[1e8], max_rounds=1, chains=1, draws=50, warmup=50,
    )  # fmt: skip
    with pytest.raises(BayesplitError, match=_start(message)):
        simulate(truth, config, policies=["grid"])
    with pytest.raises(BayesplitError, match=_start(message)):
        prior_predictive(runs, law, draws=20)
    with pytest.raises(BayesplitError, match=_start(message)):
        compare(runs, [law], chains=1, draws=50, warmup=50)


def test_a_raising_law_keeps_its_exception_as_the_cause(files):
    from bayesplit.allocation import allocate
    from bayesplit.truth import load_truth

    post = load_truth(files / "err_raises.yaml").as_posterior()
    with pytest.raises(BayesplitError, match=_start(RAISES)) as info:
        allocate(post, budget=1e20)
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_allocate_and_predict_refuse_a_nan_law(files):
    """allocate gave numpy's "All-NaN slice" (NaN at every plan) or steered around the NaN
    region to a plan from the rest; predict returned NaN bands."""
    from bayesplit.allocation import allocate
    from bayesplit.truth import load_truth

    post = load_truth(files / "err_nan.yaml").as_posterior()
    with pytest.raises(BayesplitError, match=r"^law 'err_nan': its mean is NaN at N=.*D'="):
        allocate(post, budget=1e20)
    with pytest.raises(BayesplitError, match=r"^law 'err_nan': .*D'=1e\+08, domain=web"):
        post.predict([1e7, 1e7], [1e9, 1e9], [0.0, 1e8])
    assert np.isfinite(post.predict(1e7, 1e9, 0.0)["median"]).all()  # fine where it is finite


def test_allocate_refuses_a_law_nan_over_part_of_the_plans(files):
    from bayesplit.allocation import allocate
    from bayesplit.laws import Law, Param, register
    from bayesplit.truth import load_truth

    def nan_for_large_models(ops, p, x):
        return ops.log(p["E"]) + ops.log(1.0 - 2.0 * (x.n > 10.0))  # N > 1e9

    e = Param("E", "positive", -0.7, 1.0, per_domain=True, loss_scaled=True)
    law = Law("err_nan_large", "L = E, NaN for N > 1e9", (e,), nan_for_large_models)
    register(law, overwrite=True)
    post = dataclasses.replace(load_truth(files / "err_nan.yaml"), law=law).as_posterior()
    with pytest.raises(BayesplitError, match=r"^law 'err_nan_large': its mean is NaN at N="):
        allocate(post, budget=1e20)


def test_only_user_laws_are_guarded(files):
    from bayesplit.laws import get_law

    assert get_law("additive").builtin
    assert get_law("additive").with_pooling(["E"]).builtin  # a pooling copy is still built in
    assert not get_law("err_nan").builtin
    get_law("additive").check_finite(float("nan"), {})  # built-in laws are not checked


@pytest.mark.parametrize(
    ("law", "message"),
    [
        # NUTS: a TracerArrayConversionError traceback of 268 lines
        ("err_tuple", "law 'err_tuple': its mean returned a tuple, not an array (a trailing"),
        # "could not convert string to float: 'x'" (a traceback)
        ("err_text", "law 'err_text': its mean returned a str, not an array"),
        # fitted and written; `predict` then failed with an IndexError
        ("err_const", "law 'err_const': its mean has shape () where one value per row is needed"),
    ],
)
def test_a_law_whose_mean_is_no_value_per_row_is_refused_before_fitting(
    files, tmp_path, law, message
):
    out = tmp_path / "post.nc"
    args = ["fit", "--runs", str(files / "runs.csv"), "--law", law, "--out", str(out)]
    args += ["--chains", "1", "--draws", "50", "--warmup", "50", "--no-progress"]
    refused(runner.invoke(app, [*args, "--law-module", "err_laws"]), message)
    assert not out.exists()
    args = ["prior", "--runs", str(files / "runs.csv"), "--law", law, "--draws", "20"]
    refused(runner.invoke(app, [*args, "--law-module", "err_laws"]), message.split(" (")[0])


@pytest.mark.parametrize(
    ("law", "message"),
    [
        # NUTS: "Cannot find valid initial parameters", a traceback of 94 lines, after compiling
        ("err_grad", "law 'err_grad': the gradient of its mean is NaN or inf in gamma at and"),
        # sampled as pure prior; the gate said "not identified" only after the fit
        ("err_unread", "law 'err_unread': its mean never reads parameter(s) alpha (a typo"),
    ],
)
def test_a_law_nuts_cannot_sample_or_never_reads_a_parameter_is_refused_before_fitting(
    files, tmp_path, law, message
):
    def refused_last(result):  # after the warning that 3 points identify no 3 parameters
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert lines[-1].startswith("error: ") and message in lines[-1], result.stderr

    out = tmp_path / "post.nc"
    args = ["fit", "--runs", str(files / "runs.csv"), "--law", law, "--out", str(out)]
    args += ["--chains", "1", "--draws", "50", "--warmup", "50", "--no-progress"]
    refused_last(runner.invoke(app, [*args, "--law-module", "err_laws"]))
    assert not out.exists()
    args = ["compare", "--runs", str(files / "runs.csv"), "--laws", f"additive,{law}"]
    args += ["--chains", "1", "--draws", "50", "--warmup", "50", "--law-module", "err_laws"]
    refused_last(runner.invoke(app, args))


def test_simulate_refuses_a_law_nuts_cannot_sample_in_one_line(files, tmp_path):
    import yaml

    truth = {
        "law": "err_grad",
        "domains": ["web", "code"],
        "params": {"E": [2.0, 1.5], "C": 0.5, "gamma": 0.3},
        "reference": {"params": 1e8, "tokens": 1e9, "loss": 3.0},
    }
    (files / "err_grad.yaml").write_text(yaml.safe_dump(truth))
    out = tmp_path / "rounds.csv"
    message = "law 'err_grad': the gradient of its mean is NaN or inf in gamma"
    refused(runner.invoke(app, _simulate_args(files, "err_grad", out)), message)
    assert not out.exists()


def test_the_prior_check_does_not_need_what_only_a_fit_needs(files):
    # prior draws are not sampled by NUTS, and `prior` is where a law is debugged: a NaN
    # gradient or an unread parameter is no reason to refuse them
    from bayesplit.prior import prior_predictive

    for law in ("err_grad", "err_unread"):
        check = prior_predictive(str(files / "runs.csv"), law, draws=20)
        assert check.sizes["draw"] == 20


def _three_parameter_law(name, mean, third=None):
    import math

    from bayesplit.laws import Law, Param, register

    params = (
        Param("E0", "positive", math.log(0.5), 1.0, loss_scaled=True),
        Param("A", "positive", math.log(0.15), 1.0, loss_scaled=True),
        third or Param("alpha", "unit", -0.7, 0.6),
    )
    law = Law(name, "L = E + A·N^-alpha", params, mean, uses_spec_tokens=False)
    register(law, overwrite=True)
    return law


def _body(ops, q, x, alpha):
    return ops.logsumexp(ops.log(q["E0"]) + 0 * x.n, ops.log(q["A"]) - alpha * ops.log(x.n))


@pytest.mark.parametrize(
    "reads",
    [
        lambda p: __import__("jax").tree_util.tree_map(lambda v: v, p),  # a pytree of JAX's
        lambda p: {k: dict.get(p, k) for k in dict.keys(p)},  # bypasses the record
        lambda p: {**p},
        lambda p: p.copy(),
    ],
    ids=["tree_map", "dict.get", "unpacked", "copy"],
)
def test_every_way_a_law_can_read_its_parameters_counts_as_reading_them(reads):
    from support import good_table

    from bayesplit.laws import Param
    from bayesplit.model import prepare
    from bayesplit.prior import check_law_mean
    from bayesplit.runs import load_runs

    def mean(ops, p, x):
        q = reads(p)
        return _body(ops, q, x, q["alpha"])

    law = _three_parameter_law("ok_reads", mean)
    check_law_mean(law, *prepare(load_runs(good_table()), law), before_fit=True)

    def squared(ops, p, x):  # read unrecorded, with no gradient at the centre (c = 0)
        q = reads(p)
        return _body(ops, q, x, 0.3 + q["c"] * q["c"])

    law = _three_parameter_law("ok_reads_sq", squared, Param("c", "real", 0.0, 0.5))
    check_law_mean(law, *prepare(load_runs(good_table()), law), before_fit=True)


def test_a_gradient_kink_exactly_at_the_prior_centre_is_not_refused():
    # |c| written as sqrt(c·c): finite everywhere, its gradient NaN only at c = 0 exactly,
    # where the sampler hardly ever starts (init_to_median)
    from support import good_table

    from bayesplit.laws import Law, Param
    from bayesplit.model import prepare
    from bayesplit.prior import check_law_mean
    from bayesplit.runs import load_runs

    def kink(ops, p, x):
        return _body(ops, p, x, 0.3 + ops.sqrt(p["c"] * p["c"]))

    law = _three_parameter_law("ok_kink", kink, Param("c", "real", 0.0, 0.5))
    check_law_mean(law, *prepare(load_runs(good_table()), law), before_fit=True)

    def kink_in_a_difference(ops, p, x):  # equal priors: moved alike, c - g stayed 0
        return _body(ops, p, x, 0.3 + ops.sqrt((p["c"] - p["g"]) ** 2))

    law = Law(
        "ok_kink2",
        "L",
        (*_three_parameter_law("ok_kink", kink, Param("c", "real", 0.0, 0.5)).params,
         Param("g", "real", 0.0, 0.5)),
        kink_in_a_difference,
        uses_spec_tokens=False,
    )  # fmt: skip
    check_law_mean(law, *prepare(load_runs(good_table()), law), before_fit=True)


def test_loss_scaled_is_for_positive_parameters_only():
    # the fit shifted a unit or real parameter's prior by log L, which its text left out
    from bayesplit.laws import Param

    for support in ("unit", "real"):
        with pytest.raises(BayesplitError, match=f"loss_scaled applies to positive .* {support!r}"):
            Param("x", support, 0.0, 1.0, loss_scaled=True)
    assert Param("x", "positive", 0.0, 1.0, loss_scaled=True).prior_loc(1.5) == 1.5


def test_fit_takes_a_law_nan_over_part_of_its_prior(files):
    # finite where the data are: NUTS ran, then ArviZ's run of the model on a draw from the
    # prior met the NaN ("StudentT distribution got invalid loc parameter", a traceback)
    from bayesplit.fitting import fit

    post = fit(files / "runs.csv", "err_nan_prior", chains=1, draws=20, warmup=20,
               progress=False)  # fmt: skip
    assert np.isfinite(post.draws()["E"]).all()


def test_the_conversion_to_arviz_meets_a_nan_mean_without_raising(monkeypatch):
    # which prior draw ArviZ takes is fixed (key 0): here a NaN loc stands in for it
    import arviz
    import numpyro
    import numpyro.distributions as dist

    from bayesplit import _arviz

    def conversion(mcmc, **kwargs):
        return dist.StudentT(5.0, float("nan"), 1.0)

    monkeypatch.setattr(arviz, "from_numpyro", conversion)
    with numpyro.validation_enabled(True):
        with pytest.raises(ValueError, match="invalid loc"):
            conversion(None)
        _arviz.from_numpyro(None, coords={}, dims={})


def test_allocate_takes_a_law_with_one_loss_for_every_domain(files):
    # no per-domain parameter and no D': the law's (draws, 1) met the domain weights as
    # "matmul: Input operand 1 has a mismatch in its core dimension"
    import yaml

    from bayesplit.allocation import allocate
    from bayesplit.truth import load_truth

    spec = {
        "law": "shared_no_dp",
        "domains": ["web", "code"],
        "params": {"E0": 1.6, "A": 0.6, "alpha": 0.3},
        "reference": {"params": 1e8, "tokens": 1e9, "loss": 3.0},
    }
    path = files / "shared_no_dp.yaml"
    path.write_text(yaml.safe_dump(spec))
    truth = load_truth(path)
    alloc = allocate(truth.as_posterior(), budget=1e20)
    assert alloc.pretrain_fraction == pytest.approx(1.0, abs=0.02)  # D' buys nothing here
    assert np.isfinite(alloc.to_dict()["objective"]["median"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("make", "law plugin 'mine' (pkg:make) is a function, not a bayesplit.laws.Law"),
        ("clash", "law plugin 'mine' (pkg:clash) is named 'additive', a built-in law"),
    ],
)
def test_a_law_plugin_that_is_no_law_or_takes_a_taken_name_is_refused(monkeypatch, value, message):
    # both were skipped without a word: the plugin's law read as "unknown law"
    import bayesplit.laws as laws
    from bayesplit.laws import get_law

    def make():
        pass

    objects = {"make": make, "clash": dataclasses.replace(get_law("chinchilla"), name="additive")}

    class EntryPoint:
        name = "mine"

        def __init__(self, target):
            self.target, self.value = target, f"pkg:{target}"

        def load(self):
            return objects[self.target]

    monkeypatch.setattr(laws, "_ENTRY_POINTS_LOADED", False)
    monkeypatch.setattr(laws, "entry_points", lambda group: [EntryPoint(value)])
    with pytest.raises(BayesplitError, match=re.escape(message)):
        laws._load_entry_points()
    with pytest.raises(BayesplitError, match=re.escape(message)):  # not passed over later
        laws._load_entry_points()
    # an entry naming a module whose import registers its laws is fine
    objects["module"] = sys.modules["bayesplit.laws"]
    monkeypatch.setattr(laws, "entry_points", lambda group: [EntryPoint("module")])
    laws._load_entry_points()
    assert laws._ENTRY_POINTS_LOADED


def test_a_posterior_of_a_law_renamed_since_the_fit_says_so(tmp_path):
    # "is not a complete bayesplit posterior: the posterior lacks law parameter(s) alpha2",
    # which reads as a damaged file
    import math

    import yaml

    from bayesplit.laws import Law, Param, register
    from bayesplit.posterior import Posterior
    from bayesplit.truth import load_truth

    def define(alpha: str) -> None:
        def mean(ops, p, x):
            return ops.logsumexp(
                ops.log(p["E0"]) + 0 * x.n, ops.log(p["A"]) - p[alpha] * ops.log(x.n)
            )

        params = (
            Param("E0", "positive", math.log(0.5), 1.0, loss_scaled=True),
            Param("A", "positive", math.log(0.15), 1.0, loss_scaled=True),
            Param(alpha, "unit", -0.7, 0.6),
        )
        law = Law("err_renamed", "L = E + A·N^-alpha", params, mean, uses_spec_tokens=False)
        register(law, overwrite=True)

    define("alpha")
    spec = {
        "law": "err_renamed",
        "domains": ["web", "code"],
        "params": {"E0": 1.6, "A": 0.6, "alpha": 0.3},
        "reference": {"params": 1e8, "tokens": 1e9, "loss": 3.0},
    }
    (tmp_path / "truth.yaml").write_text(yaml.safe_dump(spec))
    path = tmp_path / "post.nc"
    load_truth(tmp_path / "truth.yaml").as_posterior().save(path)
    assert Posterior.load(path).law.param_names == ["E0", "A", "alpha"]
    define("alpha2")
    with pytest.raises(BayesplitError) as info:
        Posterior.load(path)
    assert "another definition of law 'err_renamed'" in str(info.value)
    assert "alpha2" in str(info.value) and "not a complete" not in str(info.value)
