"""What the ground-truth API takes from a notebook user or a truth file: designs, points,
sizes, seeds, draws and truth values. Anything else is a BayesplitError naming the
argument, not a TypeError, KeyError, IndexError or ZeroDivisionError from deep inside,
and never NaN losses, a wrong domain or a message about a run table the user never wrote."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml

from bayesplit.errors import BayesplitError
from bayesplit.laws import get_law
from bayesplit.model import Reference
from bayesplit.truth import (
    GroundTruth,
    Noise,
    example_truth,
    factorial_design,
    load_truth,
    truth_from_posterior,
    truth_from_prior,
)


@pytest.fixture(scope="module")
def truth():
    return example_truth("additive", ("web", "code"))


@pytest.fixture(scope="module")
def design(truth):
    return factorial_design([1e7, 3e7], [3e8, 1e9], [3e7], truth.domains)


def _set(column, row, value):
    """A change to a design: one cell."""

    def change(d):
        d = d.copy()
        d[column] = d[column].astype(object)
        d.loc[row, column] = value
        return d

    return change


BAD_DESIGNS = {
    # not a table: '...' object has no attribute 'to_dict' or columns
    "list": (lambda d: d.to_dict("records"), "design must be a pandas DataFrame .* got list"),
    "dict": (lambda d: d.to_dict("list"), "design must be a pandas DataFrame .* got dict"),
    "no rows": (lambda d: d.iloc[:0], "design has no rows"),
    "no params": (lambda d: d.drop(columns="params"), "design lacks column\\(s\\) params;"),
    "no D": (
        lambda d: d.drop(columns="pretrain_tokens"),
        "design lacks column\\(s\\) pretrain_tokens;",
    ),
    # 16 NaN losses, no error
    "NaN spec_tokens": (
        lambda d: d.assign(spec_tokens=np.nan),
        "design column 'spec_tokens' must be finite and >= 0, got nan \\(row 0\\)",
    ),
    # ZeroDivisionError
    "params 0": (_set("params", 3, 0.0), "design column 'params' must be finite and > 0, got 0 "),
    "params -1": (_set("params", 2, -1.0), "column 'params' .* got -1 \\(row 2\\)"),
    "D inf": (_set("pretrain_tokens", 1, np.inf), "'pretrain_tokens' .* got inf \\(row 1\\)"),
    "D' negative": (_set("spec_tokens", 4, -1.0), "'spec_tokens' must be finite and >= 0"),
    "params text": (
        _set("params", 1, "1e7"),
        "design column 'params' must hold numbers, got '1e7' \\(str\\) \\(row 1\\)",
    ),
    "params bool": (_set("params", 0, True), "must hold numbers, got True \\(bool\\) \\(row 0\\)"),
    "params None": (_set("params", 5, None), "'params' must hold numbers, got None .*row 5"),
    # int(nan): ValueError
    "NaN seed": (
        _set("seed", 2, np.nan),
        "design column 'seed' must hold whole numbers .* got nan \\(float\\) \\(row 2\\)",
    ),
    "seed 1.5": (_set("seed", 0, 1.5), "column 'seed' must hold whole numbers .* got 1.5"),
    "seed text": (_set("seed", 0, "a"), "column 'seed' must hold whole numbers .* got 'a'"),
    # tuple.index: ValueError
    "unknown train_domain": (
        _set("train_domain", 1, "math"),
        "design column 'train_domain' has 'math' \\(str\\) \\(row 1\\), not a domain of this "
        "truth \\(web, code\\)",
    ),
    "int train_domain": (_set("train_domain", 1, 0), "'train_domain' has 0 \\(int\\) \\(row 1\\)"),
    # a general model with D' > 0: the run table refused it later
    "specialist without domain": (
        _set("train_domain", 1, None),
        "design row 1 has spec_tokens > 0 but no train_domain",
    ),
}


@pytest.mark.parametrize("case", list(BAD_DESIGNS))
def test_simulate_refuses_bad_designs(truth, design, case):
    change, message = BAD_DESIGNS[case]
    with pytest.raises(BayesplitError, match=message):
        truth.simulate(change(design), seed=0)


BAD_SEEDS = [
    (None, "seed must be a whole number from 0 to 2\\^63 - 1, got None"),  # fresh entropy
    (-1, "seed must be between 0 and 2\\^63 - 1, got -1"),
    (1.5, "seed must be a whole number .* got 1.5"),
    ("a", "seed must be a whole number .* got 'a'"),
    (True, "seed must be a whole number .* got True"),
    (2**63, "seed must be between 0 and 2\\^63 - 1"),
]


@pytest.mark.parametrize("seed,message", BAD_SEEDS)
def test_simulate_refuses_bad_seeds(truth, design, seed, message):
    with pytest.raises(BayesplitError, match=message):
        truth.simulate(design, seed=seed)


def test_simulate_refuses_bad_trunk_shifts(truth, design):
    with pytest.raises(BayesplitError, match="trunk_shifts must be a dict \\(or None\\)"):
        truth.simulate(design, seed=0, trunk_shifts=[])
    # unnamed rows of two batches drawn with one seed were one run "sim-0-0", one shift
    shifts: dict = {}
    unnamed = pd.DataFrame([dict(params=1e7, pretrain_tokens=2e8)])
    with pytest.raises(BayesplitError, match="row 0 has none"):
        truth.simulate(unnamed, seed=0, trunk_shifts=shifts)
    with pytest.raises(BayesplitError, match="row 0 has none"):  # both batches were sim-0-0
        truth.simulate(unnamed.assign(trunk_id="t"), seed=0, trunk_shifts=shifts)
    assert shifts == {}
    named = unnamed.assign(run_id="a")
    assert set(truth.simulate(named, seed=0, trunk_shifts=shifts)["run_id"]) == {"a"}
    assert list(shifts) == ["a"]


POINT = {"params": 1e8, "pretrain_tokens": 1e9, "spec_tokens": 0.0, "domain": "web"}

BAD_POINTS = [
    # nan, inf: a NaN and an infinite loss came back
    ({"params": -1e8}, "params must be finite and > 0, got -1e\\+08"),
    ({"params": 0}, "params must be finite and > 0, got 0"),
    ({"params": np.nan}, "params must be finite and > 0, got nan"),
    ({"params": "1e8"}, "params must be a positive number or array of numbers, got '1e8'"),
    ({"params": True}, "params must be .* got True \\(bool\\)"),
    ({"params": None}, "params must be .* got None"),
    ({"pretrain_tokens": 0}, "pretrain_tokens must be finite and > 0, got 0"),
    ({"pretrain_tokens": [1e9, np.inf]}, "pretrain_tokens .* got inf \\(point 1\\)"),
    ({"spec_tokens": -1}, "spec_tokens must be finite and >= 0, got -1"),
    ({"spec_tokens": np.nan}, "spec_tokens must be finite and >= 0, got nan"),
    ({"params": []}, "params is empty"),
    # -1 was read as the last domain (3.2), 0 as the first
    ({"domain": -1}, "domain must be a domain name of this truth \\(web, code\\) .* got -1"),
    ({"domain": 0}, "domain must be a domain name of this truth .* got 0 \\(int\\)"),
    ({"domain": np.array([0, 1])}, "domain must be domain names .* got an entry 0 \\(int\\)"),
    ({"domain": "math"}, "domain 'math' is not a domain of this truth; it has web, code"),
    ({"domain": ["web", "math"]}, "domain must be domain names .* \\(web, code\\), .* 'math'"),
    ({"domain": None}, "domain must be a domain name of this truth .* got None"),
    ({"domain": []}, "domain is empty"),
    (
        {"params": [1e7, 1e8, 1e9], "pretrain_tokens": [1e9, 1e10]},
        "must have shapes that broadcast together, got params=\\(3,\\), pretrain_tokens=\\(2,\\)",
    ),
    ({"params": [1e7, 1e8], "domain": ["web", "code", "web"]}, "domain=\\(3,\\)"),
]


@pytest.mark.parametrize("given,message", BAD_POINTS, ids=[repr(g) for g, _ in BAD_POINTS])
def test_loss_refuses_bad_points(truth, given, message):
    with pytest.raises(BayesplitError, match=message):
        truth.loss(**{**POINT, **given})


SIZES = {"params": [1e7, 3e7], "pretrain_tokens": [3e8], "spec_tokens": [3e7], "domains": "web"}

BAD_SIZES = [
    # a str domains was split into letters; these were TypeErrors or silent empty designs
    ({"domains": 5}, "domains must be names \\(strings\\), got 5"),
    ({"domains": None}, "domains must be names \\(strings\\), got None"),
    ({"domains": []}, "domains is empty"),
    ({"domains": ["web", 1]}, "domains must be names \\(strings\\)"),
    ({"domains": ["web", "web"]}, "domains name web more than once"),
    ({"params": []}, "params is empty"),
    ({"params": "1e7"}, "params must be a positive number or array of numbers, got '1e7'"),
    ({"params": [1e7, 0]}, "params must be finite and > 0, got 0 \\(point 1\\)"),
    ({"params": None}, "params must be .* got None"),
    ({"pretrain_tokens": [np.nan]}, "pretrain_tokens must be finite and > 0, got nan"),
    ({"spec_tokens": [-1.0]}, "spec_tokens must be finite and >= 0, got -1"),
    ({"spec_tokens": None}, "spec_tokens must be .* got None"),
    ({"seeds": [None]}, "each of seeds must be a whole number .* got None"),
    ({"seeds": [-1]}, "each of seeds must be between 0 and 2\\^63 - 1, got -1"),
    ({"seeds": 1.5}, "seeds must be a list of whole numbers, got 1.5"),
    ({"seeds": []}, "seeds is empty"),
    # repeated values named two runs alike, refused later as duplicate run-table rows
    ({"params": [1e7, 1e7]}, "params repeats 1e\\+07: give each value once"),
    ({"spec_tokens": [1e7, 0, 1e7]}, "spec_tokens repeats 1e\\+07"),
    ({"seeds": [0, 0]}, "seeds repeats 0"),
]


@pytest.mark.parametrize("given,message", BAD_SIZES, ids=[repr(g) for g, _ in BAD_SIZES])
def test_factorial_design_refuses_bad_sizes(given, message):
    kw = {**SIZES, **given}
    seeds = {"seeds": kw.pop("seeds")} if "seeds" in kw else {}
    with pytest.raises(BayesplitError, match=message):
        factorial_design(
            kw["params"], kw["pretrain_tokens"], kw["spec_tokens"], kw["domains"], **seeds
        )


def _parts(**change):
    t = example_truth("additive", ("web", "code"))
    parts = {
        "law": t.law,
        "domains": t.domains,
        "params": dict(t.params),
        "reference": t.reference,
        "noise": t.noise,
    }
    return {**parts, **change}


BAD_CONSTRUCTIONS = {
    # AttributeError: 'str' object has no attribute 'param_names'
    "unknown law name": (lambda: GroundTruth(**_parts(law="nolaw")), "unknown law 'nolaw'"),
    "law not a law": (
        lambda: GroundTruth(**_parts(law=5)),
        "ground truth law must be a law name or a Law, got 5",
    ),
    "reference None": (
        lambda: GroundTruth(**_parts(reference=None)),
        "ground truth reference must be a Reference\\(params, tokens, loss\\), got None",
    ),
    "reference below 1e3": (
        lambda: GroundTruth(**_parts(reference=Reference(1e-300, 1e9, 3.0))),
        "ground truth reference params 1e-300 is below 1000: give raw counts",
    ),
    "params not a mapping": (
        lambda: GroundTruth(**_parts(params=[1, 2])),
        "ground truth params must be a mapping of name: value",
    ),
    "domains not names": (
        lambda: GroundTruth(**_parts(domains=5)),
        "ground truth domains must be a list of names, got 5",
    ),
    "noise unknown key": (
        lambda: GroundTruth(**_parts(noise={"sigma": 0.1, "foo": 1})),
        "ground truth noise has unknown keys \\['foo'\\]; it takes sigma, seed_sd, hetero",
    ),
    "noise None": (
        lambda: GroundTruth(**_parts(noise=None)),
        "ground truth noise must be a Noise or a mapping",
    ),
    # Noise.__init__() got an unexpected keyword argument 'foo'
    "example noise unknown key": (
        lambda: example_truth(noise={"foo": 1}),
        "ground truth noise has unknown keys \\['foo'\\]",
    ),
    "example law list": (
        lambda: example_truth(["additive"]),
        "no example parameters for law \\['additive'\\]",
    ),
    "example domains int": (
        lambda: example_truth(domains=5),
        "domains must be names \\(strings\\), got 5",
    ),
    "parameter text": (
        lambda: GroundTruth(**_parts(params={**_parts()["params"], "A": "0.6"})),
        "ground truth parameter A is not a number: '0.6'; give a number or a list of numbers",
    ),
    "parameter bool": (
        lambda: GroundTruth(**_parts(params={**_parts()["params"], "A": True})),
        "ground truth parameter A is not a number: True",
    ),
    "from_dict a list": (
        lambda: GroundTruth.from_dict([1, 2]),
        "ground truth must be a mapping with law, domains, params; got \\[1, 2\\] \\(list\\)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CONSTRUCTIONS))
def test_truth_construction_refuses_bad_values(case):
    make, message = BAD_CONSTRUCTIONS[case]
    with pytest.raises(BayesplitError, match=message):
        make()


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("sigma", -1, "-1"),
        ("sigma", float("nan"), "nan"),
        ("seed_sd", float("inf"), "inf"),
        ("hetero", -0.5, "-0.5"),
        ("sigma", "0.01", "'0.01'"),
        ("seed_sd", True, "True"),
        ("compute_ref", 0, "0"),
        ("compute_ref", None, "None"),
    ],
)
def test_noise_refuses_bad_fields_when_made(field, value, shown):
    # Noise(sigma=-1) was made without a word and refused only when a truth took it
    message = f"ground truth noise {field} must be a .*number .*, got {shown}$"
    with pytest.raises(BayesplitError, match=message):
        Noise(**{field: value})
    assert Noise(sigma=0.0, seed_sd=0.01, hetero=np.float64(0.5)).hetero == 0.5


def _entry(*keys, value):
    def change(d):
        where = d
        for k in keys[:-1]:
            where = where[k]
        where[keys[-1]] = value

    return change


BAD_FILES = {
    # unhashable type: 'list'
    "law a list": (_entry("law", value=["additive"]), "ground truth law must be a law name"),
    # split into letters: "law additive has no parameter(s) a, g, m"
    "per_domain one string": (
        _entry("per_domain", value="gamma"),
        "ground truth parameter E needs one value \\(it is shared by all domains\\)",
    ),
    # 'int' object is not iterable
    "per_domain int": (
        _entry("per_domain", value=5),
        "ground truth per_domain must be names \\(strings\\), got 5",
    ),
    "per_domain nested": (_entry("per_domain", value=[["E"]]), "per_domain must be names"),
    "per_domain unknown": (_entry("per_domain", value=["zeta"]), "has no parameter\\(s\\) zeta"),
    # numeric text and true were read as numbers, unlike noise and reference
    "parameter text": (_entry("params", "A", value="0.6"), "parameter A is not a number: '0.6'"),
    "parameter true": (_entry("params", "A", value=True), "parameter A is not a number: True"),
    "parameter entry text": (
        _entry("params", "E", value=[1.8, "1.2"]),
        "parameter E is not a number: \\[1.8, '1.2'\\]",
    ),
    "noise unknown key": (
        _entry("noise", "foo", value=1),
        "ground truth noise has unknown keys \\['foo'\\]",
    ),
    "noise not a mapping": (_entry("noise", value=[0.1]), "noise must be a Noise or a mapping"),
    "noise text": (
        _entry("noise", "sigma", value="0.01"),
        "noise sigma must be a finite number >= 0",
    ),
    "reference true": (
        _entry("reference", "params", value=True),
        "reference params must be a finite number > 0, got True",
    ),
    # OverflowError: int too large to convert to float (a traceback from the CLI)
    "parameter huge int": (_entry("params", "A", value=10**400), "parameter A is not finite"),
    "parameter entry huge int": (
        _entry("params", "E", value=[10**400, 1.2]),
        "parameter E is not finite",
    ),
    # the message showed the NaN as inf ("is not finite: [inf 1.2]")
    "parameter entry NaN": (
        _entry("params", "E", value=[float("nan"), 1.2]),
        r"parameter E is not finite: \[nan 1\.2\]",
    ),
    "reference huge int": (
        _entry("reference", "params", value=10**400),
        "reference params must be a finite number > 0, got 1000.*0$",
    ),
    "noise huge int": (
        _entry("noise", "sigma", value=10**400),
        "noise sigma must be a finite number",
    ),
    "compute_ref huge int": (
        _entry("noise", "compute_ref", value=10**400),
        "noise compute_ref must be a finite number > 0",
    ),
    # "column 'loss' has missing values" from the runs it simulated
    "reference tiny": (
        _entry("reference", "params", value=1e-300),
        "ground truth reference params 1e-300 is below 1000",
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_truth_files_refuse_bad_values_in_one_line(tmp_path, case):
    change, message = BAD_FILES[case]
    d = copy.deepcopy(example_truth("additive", ("web", "code")).to_dict())
    change(d)
    with pytest.raises(BayesplitError, match=message) as err:
        GroundTruth.from_dict(d)
    assert "\n" not in str(err.value)
    for leak in ("__init__", "unhashable", "not iterable"):
        assert leak not in str(err.value)
    path = tmp_path / "truth.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(BayesplitError, match=message):
        load_truth(path)


IMPLAUSIBLE = {
    # "loss > 20 looks like a perplexity", as if the user's run table were wrong
    "huge E": (
        _entry("params", "E", value=[1e300, 1e300]),
        "ground truth \\(law additive\\) has true loss 1e\\+300 at N=1e\\+07, D=3e\\+08, "
        "D'=0, domain web \\(design row 0\\): above 20 nats per token",
    ),
    "huge noise": (
        _entry("noise", "sigma", value=50),
        "ground truth \\(law additive\\) simulated loss .* at N=.*domain .*; true loss .*\\): "
        "(above 20|not > 0).*noise \\(sigma=50,",
    ),
}


@pytest.mark.parametrize("case", list(IMPLAUSIBLE))
def test_implausible_truths_are_named_when_they_simulate(design, case):
    change, message = IMPLAUSIBLE[case]
    d = copy.deepcopy(example_truth("additive", ("web", "code")).to_dict())
    change(d)
    truth = GroundTruth.from_dict(d)  # loads: its losses are finite at the reference
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning printed before the error
        with pytest.raises(BayesplitError, match=message):
            truth.simulate(design, seed=0)


BAD_DRAWS = [
    (10**6, "draw must be between 0 and 599 \\(the posterior has 600 draws\\), got 1000000"),
    (-1, "draw must be between 0 and 599 .* got -1"),
    ("mean", "draw must be 'median' or a whole number from 0 to 599, got 'mean' \\(str\\)"),
    (1.7, "draw must be 'median' or a whole number .* got 1.7 \\(float\\)"),  # used draw 1
    (2.0, "draw must be 'median' or a whole number .* got 2.0 \\(float\\)"),
    (True, "draw must be 'median' or a whole number .* got True \\(bool\\)"),
    (None, "draw must be 'median' or a whole number .* got None"),
]


@pytest.mark.parametrize("draw,message", BAD_DRAWS)
def test_truth_from_posterior_refuses_bad_draws(additive_posterior, draw, message):
    with pytest.raises(BayesplitError, match=message):
        truth_from_posterior(additive_posterior, draw)


@pytest.mark.parametrize("posterior", ["post.nc", None, 5])
def test_truth_from_posterior_needs_a_posterior(posterior):
    with pytest.raises(BayesplitError, match="posterior must be a fitted Posterior"):
        truth_from_posterior(posterior)


def test_a_posterior_that_failed_its_gate_is_a_truth_only_with_force(tmp_path):
    # simulate --truth bad.nc used it with exit 0 and no word, where allocate refuses it
    from support import two_run_table
    from typer.testing import CliRunner

    from bayesplit.cli import app
    from bayesplit.errors import DiagnosticsError
    from bayesplit.fitting import fit

    post = fit(two_run_table(), "chinchilla", chains=2, draws=30, warmup=30, progress=False)
    assert not post.ok  # two runs cannot identify the law
    with pytest.raises(DiagnosticsError, match="diagnostics gate"):
        truth_from_posterior(post)
    assert truth_from_posterior(post, force=True).domains == tuple(post.domains)
    with pytest.raises(BayesplitError, match="force must be True or False"):
        truth_from_posterior(post, force="no")
    path = post.save(tmp_path / "bad.nc")
    args = ["simulate", "--truth", str(path), "--budget", "1e19", "--experiment-budget", "1e18"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "diagnostics gate" in res.stderr and "--force" in res.stderr


def test_truth_from_posterior_takes_draws_and_noise(additive_posterior):
    # the fixture's short fit fails the gate
    median = truth_from_posterior(additive_posterior, force=True)
    last = truth_from_posterior(additive_posterior, 599, force=True)
    same = truth_from_posterior(
        additive_posterior, np.int64(599), noise={"sigma": 0.01}, force=True
    )
    assert last.params == same.params and median.params != last.params
    assert same.noise == Noise(sigma=0.01)
    assert last.params["alpha"] == float(additive_posterior.draws()["alpha"][599])


def test_a_truth_from_a_posterior_simulates_the_fits_noise_spread(additive_posterior):
    # the fit's Student-t scale σ was taken as the simulator's Gaussian sd: at ν = 5 the
    # fit's noise has sd 1.29 σ, and campaigns from the truth were 20-25% less noisy
    truth = truth_from_posterior(additive_posterior, force=True)
    nd = additive_posterior.noise_draws()
    want = float(np.median(nd["sigma"] * np.sqrt(5 / 3)))
    assert additive_posterior.spec.student_df == 5.0
    assert truth.noise.sigma == pytest.approx(want, rel=1e-12)
    assert truth.noise.seed_sd == pytest.approx(float(np.median(nd["run_sd"])))
    from bayesplit.truth import student_t_sd

    assert student_t_sd(1.0, 5.0) == pytest.approx(np.sqrt(5 / 3))
    assert np.isinf(student_t_sd(1.0, 2.0)) and np.isinf(student_t_sd(1.0, 1.5))


@pytest.fixture(scope="module")
def prior_rows():
    base = example_truth("saturating", ("web", "code"), noise=Noise(sigma=0.01))
    return base.simulate(factorial_design([1e7, 2.5e7], [2e8, 8e8], [1e8], base.domains))


BAD_PRIOR_ARGS = [
    ({"seed": None}, "seed must be a whole number from 0 to 2\\^63 - 1, got None"),
    ({"seed": -1}, "seed must be between 0 and 2\\^63 - 1, got -1"),
    ({"seed": 1.5}, "seed must be a whole number .* got 1.5"),
    ({"seed": "a"}, "seed must be a whole number .* got 'a'"),
    ({"seed": True}, "seed must be a whole number .* got True"),
    ({"law": ["saturating"]}, "law must be a law name or a Law"),
    ({"reference": "x"}, "reference must be a Reference\\(params, tokens, loss\\) or None"),
]


@pytest.mark.parametrize("given,message", BAD_PRIOR_ARGS, ids=[repr(g) for g, _ in BAD_PRIOR_ARGS])
def test_truth_from_prior_refuses_bad_arguments(prior_rows, given, message):
    kw = {"law": "saturating", "seed": 0, **given}
    with pytest.raises(BayesplitError, match=message):
        truth_from_prior(prior_rows, kw.pop("law"), **kw)


def test_truth_from_prior_seeds_are_whole_64_bit_numbers(prior_rows):
    one, drawn = truth_from_prior(prior_rows, "saturating", seed=0)
    again, drawn_again = truth_from_prior(prior_rows, "saturating", seed=np.int64(0))
    other, _ = truth_from_prior(prior_rows, "saturating", seed=2**32)  # not 0 mod 2^32
    assert one.params == again.params and drawn["loss"].equals(drawn_again["loss"])
    assert one.params != other.params


def test_valid_inputs_still_work(truth, design):
    # numbers, numpy scalars, arrays, Series, a 2-D grid; a domain name or names per point
    one = truth.loss(1e8, 1e9, 0.0, "web")
    assert np.shape(one) == () and 0 < float(one) < 20
    assert float(truth.loss(np.float64(1e8), np.int64(10**9), 0, "web")) == float(one)
    many = truth.loss(np.array([1e7, 1e8]), pd.Series([1e9, 1e9]), [0.0, 1e8], ["web", "code"])
    assert many.shape == (2,) and np.isfinite(many).all()
    assert truth.loss(1e8, 1e9, 0.0, np.array(["web", "code"]))[0] == float(one)
    grid = truth.loss(1e8, np.full((3, 4), 1e9), np.zeros((1, 4)), "code")
    assert grid.shape == (3, 4)
    # factorial_design: one domain as a str, single numbers, arrays, no D'
    d = factorial_design(1e7, np.array([3e8, 1e9]), [], "web", seeds=3)
    assert d["train_domain"].isna().all() and len(d) == 2 and (d["seed"] == 3).all()
    d = factorial_design([1e7], [1e9], [0, 1e7], "web")
    assert d["train_domain"].tolist()[1:] == ["web"]
    close = factorial_design([1e7, 1.0001e7], [3e8], [1e7, 1.00001e7], ("web",))
    assert close["run_id"].is_unique and "trunk-N1.0001e+07-s0-D3e+08" in set(close["run_id"])
    # simulate: a numpy seed, and the same seed gives the same losses
    a = truth.simulate(design, seed=np.int64(4))
    b = truth.simulate(design.drop(columns=["seed", "run_id", "trunk_id"]), seed=4)
    assert np.isfinite(a["loss"]).all() and len(a) == 16
    assert a["loss"].equals(truth.simulate(design, seed=4)["loss"])
    assert b["run_id"].iloc[0] == "sim-4-0" and (b["seed"] == 0).all()
    # construction: a law name, a str domain, a noise mapping
    t = GroundTruth(
        "chinchilla",
        "web",
        {"E": [1.8], "A": [0.6], "alpha": [0.34], "B": [0.8], "beta": [0.28]},
        Reference(params=1e8, tokens=1e9, loss=3.0),
        {"sigma": 0.01},
    )
    assert t.law.name == "chinchilla" and t.domains == ("web",) and t.noise.sigma == 0.01
    assert example_truth(noise={"sigma": 0.1}).noise == Noise(sigma=0.1)


def test_truth_files_read_plain_scientific_numbers(tmp_path):
    """PyYAML reads ``1e-1`` as text; a truth file means the number."""
    path = tmp_path / "truth.yaml"
    path.write_text(
        "law: additive\nper_domain: E\ndomains: [web, code]\n"
        "params: {E: [1.8, 1.2], A: 6e-1, alpha: 3.4e-1, B: 7e-1, beta: 0.28, C: 35e-2,"
        " gamma: 5e-1, dp0: 5E-2}\nreference: {params: 1e8, tokens: 1e9, loss: 3}\n"
        "noise: {sigma: 1e-2}\n"
    )
    t = load_truth(path)
    assert t.params["dp0"] == 0.05 and t.noise.sigma == 0.01 and t.law.per_domain == ["E"]


def _alias_bomb(depth: int = 9) -> str:
    """A YAML list of 9^depth leaves in a few hundred bytes (each level repeats an alias)."""
    level = "&b0 [x, x, x, x, x, x, x, x, x]"
    for i in range(1, depth + 1):
        level = f"&b{i} [{level}, " + ", ".join([f"*b{i - 1}"] * 8) + "]"
    return level


@pytest.mark.parametrize("where", ["law", "domains", "A", "reference", "noise", "per_domain"])
def test_a_nested_alias_in_a_truth_file_is_one_short_line(tmp_path, where):
    """Its repr in the message took longer than 20 s at depth 9, and was a 7 MB line at
    depth 6."""
    import time

    d = example_truth("additive", ("web", "code")).to_dict()
    if where == "A":
        d["params"]["A"] = "__BOMB__"
    else:
        d[where] = "__BOMB__"
    text = yaml.safe_dump(d, sort_keys=False).replace("__BOMB__", _alias_bomb())
    assert len(text) < 2000
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(BayesplitError) as err:
        load_truth(path)
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert "\n" not in message and len(message) < 600, message[:200]


def test_a_truth_with_its_own_pooling_reads_back_from_its_dict():
    """to_dict left per_domain out, so its JSON (simulate --json's "truth") read back as
    the law's default pooling and was refused: "parameter A needs 2 values"."""
    d = example_truth("additive", ("web", "code")).to_dict()
    assert "per_domain" not in d  # the law's own pooling: nothing to say
    law = get_law("additive")
    shared = law.per_domain[0]
    d["per_domain"] = [p for p in law.per_domain if p != shared]
    d["params"][shared] = d["params"][shared][0]
    truth = GroundTruth.from_dict(d)
    again = GroundTruth.from_dict(truth.to_dict())
    assert again.law.per_domain == truth.law.per_domain == d["per_domain"]
    assert again.to_dict() == truth.to_dict()
