"""The law library: one mean function, three array libraries; registry; user laws."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from bayesplit.errors import BayesplitError
from bayesplit.laws import BUILTIN, Inputs, Law, Param, available_laws, get_law, get_ops, register


def _natural_prior_centre(law: Law, loss_scale: float = 3.0) -> dict:
    out = {}
    for p in law.params:
        loc = p.prior_loc(math.log(loss_scale))
        out[p.name] = (
            math.exp(loc)
            if p.support == "positive"
            else (1 / (1 + math.exp(-loc)) if p.support == "unit" else loc)
        )
    return out


X = Inputs(
    n=np.array([0.1, 1.0, 10.0, 3.0]),
    d=np.array([0.05, 1.0, 20.0, 2.0]),
    dp=np.array([0.0, 0.01, 0.5, 3.0]),
)


@pytest.mark.parametrize("law", BUILTIN, ids=lambda law: law.name)
def test_numpy_jax_and_pytensor_agree(law):
    import jax.numpy as jnp
    import pytensor

    p = _natural_prior_centre(law)
    ref = law.evaluate(get_ops("numpy"), p, X)
    jx = law.evaluate(
        get_ops("jax"),
        {k: jnp.asarray(v) for k, v in p.items()},
        Inputs(*(jnp.asarray(a) for a in (X.n, X.d, X.dp))),
    )
    pt_val = pytensor.function([], law.evaluate(get_ops("pytensor"), p, X))()
    np.testing.assert_allclose(np.asarray(jx), ref, rtol=1e-6)
    np.testing.assert_allclose(pt_val, ref, rtol=1e-6)


@pytest.mark.parametrize("law", BUILTIN, ids=lambda law: law.name)
def test_loss_decreases_with_size_and_data_and_stays_above_E(law):
    p = _natural_prior_centre(law)
    ops = get_ops("numpy")
    base = np.exp(law.evaluate(ops, p, Inputs(np.array(1.0), np.array(1.0), np.array(0.0))))
    bigger = np.exp(law.evaluate(ops, p, Inputs(np.array(2.0), np.array(1.0), np.array(0.0))))
    more_data = np.exp(law.evaluate(ops, p, Inputs(np.array(1.0), np.array(2.0), np.array(0.0))))
    specialized = np.exp(law.evaluate(ops, p, Inputs(np.array(1.0), np.array(1.0), np.array(0.5))))
    assert bigger < base and more_data < base and specialized < base
    assert base > p["E"]


def test_additive_matches_its_written_formula():
    law = get_law("additive")
    p = {
        "E": 1.5,
        "A": 0.4,
        "alpha": 0.3,
        "B": 0.6,
        "beta": 0.25,
        "C": 0.3,
        "gamma": 0.5,
        "dp0": 0.1,
    }
    n, d, dp = 2.0, 3.0, 0.4
    expected = 1.5 + 0.4 * n**-0.3 + 0.6 * d**-0.25 + 0.3 * (1 + dp / 0.1) ** -0.5
    got = math.exp(
        law.evaluate(get_ops("numpy"), p, Inputs(np.array(n), np.array(d), np.array(dp)))
    )
    assert got == pytest.approx(expected, rel=1e-12)


def test_registry_lists_builtins_and_rejects_unknown():
    assert available_laws()[:4] == ["chinchilla", "additive", "transfer", "saturating"]
    with pytest.raises(BayesplitError, match="unknown law 'nope'"):
        get_law("nope")


def test_user_law_registers_and_cannot_shadow_builtins():
    def log_mean(ops, p, x):
        return ops.logaddexp(
            ops.log(p["E"]), ops.log(p["A"]) - p["alpha"] * ops.log(x.n * (x.d + x.dp))
        )

    law = Law(
        name="test_compute_only",
        formula="L = E + A·(n·(d + d'))^-α",
        params=(
            Param("E", "positive", math.log(0.5), 0.5, per_domain=True, loss_scaled=True),
            Param("A", "positive", math.log(0.2), 1.0, loss_scaled=True),
            Param("alpha", "unit", -0.7, 0.6),
        ),
        log_mean=log_mean,
        uses_spec_tokens=False,
    )
    assert register(law) is law
    assert get_law("test_compute_only") is law
    with pytest.raises(BayesplitError, match="built-in"):
        register(Law("additive", "x", law.params, log_mean))
    with pytest.raises(BayesplitError, match="already registered"):
        register(Law("test_compute_only", "other", law.params, log_mean))
    # nor by being passed to fit unregistered: its posterior would load as the built-in
    with pytest.raises(BayesplitError, match="'additive' is already registered with another"):
        get_law(Law("additive", "x", law.params, log_mean))
    assert get_law(get_law("additive").with_pooling([])).name == "additive"  # a pooling copy


def test_with_pooling_changes_only_pooling():
    law = get_law("additive").with_pooling(["E", "alpha"])
    assert law.per_domain == ["E", "alpha"]
    assert get_law("additive").per_domain == ["E", "B", "C"]
    with pytest.raises(BayesplitError, match="no parameter"):
        get_law("additive").with_pooling(["zeta"])
    # one name is one parameter, not its letters; a name twice is a typo (as for --domains)
    assert get_law("additive").with_pooling("alpha").per_domain == ["alpha"]
    with pytest.raises(BayesplitError, match="per_domain name E more than once"):
        get_law("additive").with_pooling(["E", "E"])


def test_bad_param_definitions_are_refused():
    with pytest.raises(BayesplitError):
        Param("E", "negative", 0.0, 1.0)
    with pytest.raises(BayesplitError):
        Param("E", "positive", 0.0, 0.0)
    with pytest.raises(BayesplitError):
        Param("not an identifier", "positive", 0.0, 1.0)
    # a NaN or text prior reached NUTS as "Normal distribution got invalid loc parameter"
    for bad in (float("nan"), float("inf"), "0.5", True, None):
        with pytest.raises(BayesplitError, match="prior loc must be a finite number"):
            Param("E", "positive", bad, 1.0)
    with pytest.raises(BayesplitError, match="prior scale must be a finite number"):
        Param("E", "positive", 0.0, float("inf"))
    # "no" is truthy: the parameter became per-domain
    with pytest.raises(BayesplitError, match="E: per_domain must be True or False, got 'no'"):
        Param("E", "positive", 0.0, 1.0, per_domain="no")
    with pytest.raises(BayesplitError, match="E: loss_scaled must be True or False, got 1"):
        Param("E", "positive", 0.0, 1.0, loss_scaled=1)


def _mean(ops, p, x):
    return ops.log(p["E"] + 0 * x.n)


@pytest.mark.parametrize(
    ("names", "law_name", "message"),
    [
        # NUTS: "all sites must have unique names but got `sigma` duplicated" (a traceback)
        (["sigma"], "sig", "parameter name 'sigma' is taken by the model itself"),
        (["E", "domain"], "dom", "parameter name 'domain' is taken by the model itself"),
        (["E", "E_mu"], "mu", "'E_mu' is the name the model gives a part of parameter 'E'"),
        (["E", "E_z"], "z", "'E_z' is the name the model gives a part of parameter 'E'"),
        # a name `compare --laws a,b` could never pass
        (["E"], "my law, v2", "law name 'my law, v2' must be letters, digits"),
        (["E"], "", "law name '' must be"),
        (["E"], "[bold]x[/bold]", "must be letters, digits"),
    ],
)
def test_laws_whose_names_would_collide_are_refused(names, law_name, message):
    params = tuple(Param(n, "positive", 0.0, 1.0) for n in names)
    with pytest.raises(BayesplitError, match=re.escape(message)):
        Law(law_name, "L = E", params, _mean)


def test_describe_has_formula_and_priors():
    d = get_law("saturating").describe()
    assert "(1 + d'/d'_0)" in d["formula"]
    assert set(d["priors"]) == set(get_law("saturating").param_names)
    assert "τ ~ HalfNormal" in d["priors"]["G"]


@pytest.mark.parametrize("law", BUILTIN, ids=lambda law: law.name)
def test_repr_is_the_formula_and_the_pooling(law):
    text = repr(law)
    assert text == (
        f"<Law {law.name}: {law.formula}; per domain: {', '.join(law.per_domain) or '-'}; "
        f"shared: {', '.join(law.shared) or '-'}>"
    )
    assert "Param(" not in text and "function" not in text  # not the dataclass default


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # None reached `bayesplit laws` as a TypeError traceback from rich's escape()
        ({"description": None}, "law fields: description must be text, got None"),
        ({"formula": None}, "law fields: formula must be text, got None"),
        # "no" is truthy: the law was taken to use D'
        ({"uses_spec_tokens": "no"}, "law fields: uses_spec_tokens must be True or False"),
        ({"log_mean": None}, "law fields: log_mean must be a function"),
        # no parameter: `predict` failed on a reshape after the fit was written
        ({"params": ()}, "law fields: a law needs at least one parameter"),
        ({"params": Param("E", "positive", 0.0, 1.0)}, "params must be a tuple of Param"),
        ({"params": ("E",)}, "params must be Param objects, got 'E'"),
    ],
)
def test_law_fields_of_the_wrong_kind_are_refused(change, message):
    fields = {
        "name": "fields",
        "formula": "L = E",
        "params": (Param("E", "positive", 0.0, 1.0),),
        "log_mean": _mean,
    }
    with pytest.raises(BayesplitError, match=re.escape(message)):
        Law(**{**fields, **change})


def test_a_list_of_params_is_kept_as_a_tuple_and_domain_idx_is_taken():
    law = Law("listed", "L = E", [Param("E", "positive", 0.0, 1.0)], _mean)
    assert law.params == (Param("E", "positive", 0.0, 1.0),)
    # the PyMC model's data node: "Variable name domain_idx already exists" (a traceback)
    with pytest.raises(BayesplitError, match="parameter name 'domain_idx' is taken by the model"):
        Law("didx", "L = E", (Param("domain_idx", "positive", 0.0, 1.0),), _mean)


def _marked_per_domain(law) -> dict[str, bool]:
    """Per parameter whose symbol is in the formula once: is it written with ``_k``?"""
    import re

    from bayesplit.laws.base import FORMULA_SYMBOLS

    out = {}
    for p in law.params:
        symbol = re.escape(FORMULA_SYMBOLS.get(p.name, p.name))
        found = re.findall(rf"(?<![\w'])({symbol})(_k)?(?![\w'])", law.formula)
        if len(found) == 1:
            out[p.name] = bool(found[0][1])
    return out


@pytest.mark.parametrize("law", BUILTIN, ids=lambda law: law.name)
def test_a_formula_marks_exactly_the_per_domain_parameters(law):
    # chinchilla's read A_k·n^-α with α per domain; a pooling copy kept its law's formula
    marked = _marked_per_domain(law)
    assert len(marked) >= len(law.params) - 1  # all but d'_0, which has no plain symbol
    assert marked == {p.name: p.per_domain for p in law.params if p.name in marked}
    other = law.with_pooling([p.name for p in law.params if not p.per_domain and p.name in marked])
    assert _marked_per_domain(other) == {
        p.name: p.per_domain for p in other.params if p.name in marked
    }
    assert other.formula != law.formula


def test_a_pooling_copy_whose_formula_cannot_be_rewritten_says_its_pooling():
    law = get_law("additive").with_pooling(["E", "dp0"])  # d'_0 is not written as dp0
    assert law.formula.endswith("(per domain here: E, dp0)")


def _mean_d(o, p, x):
    return o.logsumexp(o.log(p["E"]), o.log(p["B"]) - 0.3 * o.log(x.d))


def _mean_d_dp(o, p, x):
    return o.logsumexp(o.log(p["E"]), o.log(p["B"]) - 0.3 * o.log(x.d + x.dp))


def test_a_laws_fingerprint_follows_its_mean_and_priors_not_its_pooling_or_formula():
    # what a posterior file compares with the law registered under its name at load
    E = Param("E", "positive", math.log(0.5), 1.0, per_domain=True, loss_scaled=True)
    B = Param("B", "positive", math.log(0.2), 1.0, loss_scaled=True)
    law = Law("fp", "L = E + B·D^-0.3", (E, B), _mean_d)
    same = law.fingerprint()
    assert Law("fp", "another text", (E, B), _mean_d).fingerprint() == same
    assert law.with_pooling(["B"]).fingerprint() == same
    assert Law("fp", "L", (E, B), _mean_d_dp).fingerprint() != same
    wider = Param("B", "positive", math.log(0.2), 2.0, loss_scaled=True)
    assert Law("fp", "L", (E, wider), _mean_d).fingerprint() != same

    def closing(k):
        return lambda o, p, x: o.log(p["E"]) - k * o.log(x.d)

    assert (
        Law("fp", "L", (E, B), closing(0.3)).fingerprint()
        != Law("fp", "L", (E, B), closing(0.4)).fingerprint()
    )


LAW_MODULE = """
import functools, math
import numpy as np
from bayesplit.laws import Law, Param, register

E = Param("E", "positive", math.log(0.5), 1.0, loss_scaled=True)
B = Param("B", "positive", math.log(0.2), 1.0, loss_scaled=True)


def _mean(o, p, x, k=0.3):
    return o.logsumexp(o.log(p["E"]), o.log(p["B"]) - K * o.log(x.d))


class Mean:
    def __init__(self, k):
        self.k = k

    def __call__(self, o, p, x):
        return o.logsumexp(o.log(p["E"]), o.log(p["B"]) - self.k * o.log(x.d))


K = 0.3
NAMES = np.array(["a", "b"], dtype=object)  # its bytes are pointers


def _closing(o, p, x):
    return _mean(o, p, x) + 0 * len(NAMES)


class Key:
    pass


TABLE = {Key(): 1.0}  # a key whose repr holds an address
register(Law("fp_edit", "L", (E, B), _mean), overwrite=True)
register(Law("fp_closing", "L", (E, B), lambda o, p, x: _closing(o, p, x) + 0 * len(TABLE)),
         overwrite=True)
register(Law("fp_partial", "L", (E, B), functools.partial(_mean, k=0.5)), overwrite=True)
register(Law("fp_object", "L", (E, B), Mean(0.5)), overwrite=True)
"""


def test_a_laws_fingerprint_is_its_fitted_code_and_the_same_in_every_process(tmp_path, monkeypatch):
    # it read the source file as it is at save time (an edited, reloaded module went
    # unseen), and a partial or a callable object had a memory address in it: a new
    # digest, and a false warning, in every process
    import importlib
    import subprocess
    import sys

    (tmp_path / "fp_laws.py").write_text(LAW_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("fp_laws")
    fitted = get_law("fp_edit")
    names = ("fp_edit", "fp_partial", "fp_object", "fp_closing")
    before = {name: get_law(name).fingerprint() for name in names}
    code = (
        "import fp_laws; from bayesplit.laws import get_law; "
        "print(*(get_law(n).fingerprint() for n in ('fp_edit', 'fp_partial', 'fp_object', "
        "'fp_closing')))"
    )
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    runs = [
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        for _ in range(2)
    ]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
    assert runs[0].stdout.split() == runs[1].stdout.split() == list(before.values())
    (tmp_path / "fp_laws.py").write_text(LAW_MODULE.replace("- K * o.log", "- 2 * K * o.log"))
    importlib.invalidate_caches()
    importlib.reload(module)
    assert fitted.fingerprint() == before["fp_edit"]  # the law it was fitted with
    assert get_law("fp_edit").fingerprint() != before["fp_edit"]  # the law now


def test_a_laws_fingerprint_sees_defaults_and_closed_over_functions_and_never_raises():
    # a default argument edited (k=0.5 to 0.9), or a helper held in a closure, went unseen;
    # a closed-over value numpy cannot read made every save fail
    E = Param("E", "positive", math.log(0.5), 1.0, loss_scaled=True)

    def law(fn):
        return Law("fp2", "L", (E,), fn)

    def with_default(k):
        def mean(o, p, x, k=k):
            return o.log(p["E"]) - k * o.log(x.d)

        return mean

    assert law(with_default(0.5)).fingerprint() != law(with_default(0.9)).fingerprint()

    def through(helper):
        return lambda o, p, x: helper(o, p, x)

    def h1(o, p, x):
        return o.log(p["E"]) - 0.3 * o.log(x.d)

    def h2(o, p, x):
        return o.log(p["E"]) - 0.6 * o.log(x.d)

    assert law(through(h1)).fingerprint() != law(through(h2)).fingerprint()

    class Unreadable:
        dtype = "float64"

        def __array__(self, *args, **kwargs):
            raise RuntimeError("Can't call numpy() on Tensor that requires grad")

    loop: list = []
    loop.extend([loop] * 10)  # a list holding itself: it took minutes
    for odd in (Unreadable(), loop):
        print(law(lambda o, p, x, v=odd: o.log(p["E"]) - 0 * o.log(x.d)).fingerprint())
