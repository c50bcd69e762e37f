"""Prior predictive checks: what the priors say before the data speak.

Priors are stated relative to the data's reference scales, so the check asks
a useful question: do simulated losses from the prior cover the observed ones,
without being absurdly wide?
"""

from __future__ import annotations

from functools import cache, partial

import numpy as np
import pandas as pd
import xarray as xr

from bayesplit._parse import MAX_DRAWS, check_level, check_max_draws, check_seed
from bayesplit.errors import BayesplitError
from bayesplit.laws import Law, get_law
from bayesplit.model import model_arrays, numpyro_model, prepare
from bayesplit.runs import load_runs


def sample_prior(law: Law, spec, data, *, draws: int, seed: int) -> dict[str, np.ndarray]:
    """Every site of the model (parameters, ``sigma``, ``log_loss``) drawn from the prior.

    ``spec`` and ``data`` are what :func:`bayesplit.model.prepare` returns; arrays have the
    draws first.
    """
    import jax
    from numpyro.infer import Predictive

    from bayesplit._jax import configure

    # float64 and 64-bit seeds, as in a fit: without it the draws depended on whether a fit
    # had run earlier in the process, and seeds 2**32 apart drew the same
    configure()
    model = partial(numpyro_model, law, spec, model_arrays(data))
    with jax.default_device(jax.devices("cpu")[0]):
        sim = Predictive(model, num_samples=draws)(jax.random.PRNGKey(seed), y=None)
    return {k: np.asarray(v) for k, v in sim.items()}


def check_law_mean(
    law: Law, spec, data, draws: dict | None = None, *, before_fit: bool = False
) -> None:
    """Refuse a user law whose mean raises, or is NaN or inf, at the rows of ``data``.

    ``draws`` are parameter draws as :func:`sample_prior` returns them; by default the
    centre of the prior, a cheap check before a fit (NUTS meets a NaN mean as an obscure
    sampler error). ``before_fit`` also refuses what only a fit needs: a declared
    parameter the mean never reads (sampled as pure prior), and a gradient that is NaN or
    inf at and around the prior centre. ``spec`` and ``data`` come from
    :func:`bayesplit.model.prepare`. Built-in laws are not checked.
    """
    if law.builtin:
        return
    from bayesplit.laws import Inputs, get_ops

    ops = get_ops("numpy")
    if draws is None:  # one value, shared by every domain
        p = _Reads(_prior_point(law, spec, 0.0))
    else:  # draws first; a per-domain parameter picked for each row's domain
        p = {}
        for q in law.params:
            v = np.asarray(draws[q.name], dtype=float)
            p[q.name] = v[:, data.domain] if q.per_domain else v[:, None]
    _register_reads_tree()
    with np.errstate(all="ignore"):
        log_l = law.evaluate(ops, p, Inputs(n=data.n, d=data.d, dp=data.dp))
    rows = data.rows
    n_draws = None if draws is None else len(np.asarray(draws[law.params[0].name]))
    _check_mean_shape(law, log_l, (len(rows),) if draws is None else (n_draws, len(rows)))
    points = {
        "N": rows["params"].to_numpy(float),
        "D": rows["pretrain_tokens"].to_numpy(float),
        "D'": rows["spec_tokens"].to_numpy(float),
        "domain": rows["eval_domain"].to_numpy(str),
    }
    law.check_finite(log_l, points)
    if draws is None and before_fit:
        grads = _law_gradients(law, spec, Inputs(n=data.n, d=data.d, dp=data.dp))
        # unread, and no gradient at any probe either (a read the record missed,
        # dict.get(p, k), gives one somewhere)
        unread = [
            q.name
            for q in law.params
            if q.name not in p.read and not any(np.any(g[q.name]) for g in grads)
        ]
        if unread:  # sampled as pure prior, which the gate said only after the fit
            raise BayesplitError(
                f"law {law.name!r}: its mean never reads parameter(s) {', '.join(unread)} "
                "(a typo in p[...], or a constant where the parameter was meant?)"
            )


def _prior_point(law: Law, spec, shift: float) -> dict[str, float]:
    """Each parameter at its prior location, moved by about ``shift`` prior scales
    (unconstrained), by its own amount and sign: moved alike, two parameters with one
    prior stayed equal, and a kink in their difference stayed under every probe."""
    from bayesplit.laws import get_ops
    from bayesplit.model import to_natural

    log_scale = np.log(spec.reference.loss)
    ops = get_ops("numpy")
    return {
        q.name: to_natural(
            q.support, q.prior_loc(log_scale) + shift * (-1) ** i * (1 + 0.25 * i) * q.scale, ops
        )
        for i, q in enumerate(law.params)
    }


class _Reads(dict):
    """Parameters that note which of them a law's mean reads (all, if it iterates them or
    hands them to JAX as a tree)."""

    def __init__(self, values: dict):
        super().__init__(values)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def pop(self, key, *default):
        self.read.add(key)
        return super().pop(key, *default)

    def setdefault(self, key, default=None):
        self.read.add(key)
        return super().setdefault(key, default)

    def _all(self):
        self.read.update(super().keys())

    def __iter__(self):
        self._all()
        return super().__iter__()

    def keys(self):
        self._all()
        return super().keys()

    def values(self):
        self._all()
        return super().values()

    def items(self):
        self._all()
        return super().items()


@cache
def _register_reads_tree() -> None:
    # JAX finds tree types by exact type: unregistered, a _Reads was one leaf, and a law
    # that maps jax.tree_util over its parameters (or jits a helper taking them) failed
    import jax

    def flatten(r: _Reads):
        r._all()  # handed to JAX whole: every parameter counts as read
        keys = list(dict.keys(r))
        return [dict.__getitem__(r, k) for k in keys], keys

    jax.tree_util.register_pytree_node(
        _Reads, flatten, lambda keys, values: _Reads(dict(zip(keys, values, strict=True)))
    )


#: Shifts (about this many prior scales; see :func:`_prior_point`) where the gradient is
#: tried: a kink exactly at the centre (a square root of a square at 0) is not the
#: sampler's problem.
_GRADIENT_PROBES = (0.0, 0.1, -0.1)


def _law_gradients(law: Law, spec, x) -> list[dict[str, np.ndarray]]:
    """The gradient of the summed log mean by parameter at each of the
    :data:`_GRADIENT_PROBES` where it is finite; refused where it is finite at none."""
    # NUTS needs the gradient too: an ops.where whose branch not taken is inf (a log of
    # D' = 0) has a finite mean and a NaN gradient, which NUTS reported as a traceback
    # ("Cannot find valid initial parameters") after compiling
    import jax
    import jax.numpy as jnp

    from bayesplit._jax import configure
    from bayesplit.laws import Inputs, get_ops

    configure()
    jops = get_ops("jax")
    xj = Inputs(n=jnp.asarray(x.n), d=jnp.asarray(x.d), dp=jnp.asarray(x.dp))
    bad: list[str] = []
    finite = []
    for shift in _GRADIENT_PROBES:
        point = _prior_point(law, spec, shift)
        point = {k: jnp.asarray(v, dtype=float) for k, v in point.items()}
        with jax.default_device(jax.devices("cpu")[0]):
            grad = jax.grad(lambda q: jnp.sum(law.evaluate(jops, q, xj)))(point)
        grad = {k: np.asarray(v) for k, v in grad.items()}
        nan = [k for k in point if not np.all(np.isfinite(grad[k]))]
        if nan:
            bad = bad or nan
        else:
            finite.append(grad)
    if finite:
        return finite
    raise BayesplitError(
        f"law {law.name!r}: the gradient of its mean is NaN or inf in {', '.join(bad)} at and "
        "around the prior centre, and the sampler needs it (often an ops.where whose other "
        "branch is inf or NaN, e.g. a log of D' = 0: keep both branches finite)"
    )


def _check_mean_shape(law: Law, log_l, expected: tuple[int, ...]) -> None:
    # a tuple (a trailing comma after the return value) failed deep inside NUTS, text in
    # a float conversion, and a mean that ignores the inputs only later, in `predict`
    if not isinstance(log_l, (np.ndarray, np.generic, float, int)) or isinstance(log_l, bool):
        comma = " (a trailing comma after the return value makes a tuple)"
        raise BayesplitError(
            f"law {law.name!r}: its mean returned a {type(log_l).__name__}, not an array"
            f"{comma if isinstance(log_l, tuple) else ''}"
        )
    if not np.issubdtype(np.asarray(log_l).dtype, np.number):
        raise BayesplitError(
            f"law {law.name!r}: its mean returned {np.asarray(log_l).dtype} values, not numbers"
        )
    if np.shape(log_l) != expected:
        raise BayesplitError(
            f"law {law.name!r}: its mean has shape {np.shape(log_l)} where one value per row "
            f"is needed, shape {expected}; build it from x.n, x.d and x.dp (a term that "
            "ignores them can add 0 * x.n)"
        )


def prior_predictive(
    runs: pd.DataFrame | str,
    law: str | Law = "chinchilla",
    *,
    draws: int = 500,
    seed: int = 0,
    level: float = 0.9,
    per_domain: list[str] | None = None,
    run_effect: bool | str = "auto",
    domains: list[str] | None = None,
) -> xr.Dataset:
    """Sample losses from the prior at every modelled row.

    Parameters
    ----------
    runs
        A run table, or a path or ``bundled:NAME`` that :func:`~bayesplit.runs.load_runs` reads.
    law
        A law name (see :func:`~bayesplit.laws.available_laws`) or a :class:`~bayesplit.laws.Law`.
    draws
        Prior draws (at least 10).
    seed
        Random seed; the same seed gives the same draws.
    level
        Central probability of the ``lo``/``hi`` band, in (0, 1).
    per_domain
        Parameters that vary by domain (default: the law's own choice), as in
        :func:`~bayesplit.fitting.fit`.
    run_effect
        ``"auto"``, True or False: one shift per run or trunk, as in ``fit``.
    domains
        Only these eval domains (default: all), as in ``fit``.

    Returns
    -------
    xarray.Dataset
        ``loss`` (draw × obs) prior predictive losses; ``observed`` (obs);
        ``lo``/``hi`` (obs) the central ``level`` band; ``inside`` whether each
        observed loss is inside it; ``eval_domain`` coordinate on ``obs``.
    """
    draws = check_max_draws(draws, "draws", minimum=10, none_ok=False)
    if draws > MAX_DRAWS:
        raise BayesplitError(f"draws must be at most {MAX_DRAWS:,}, got {draws}")
    level = check_level(level)
    seed = check_seed(seed)
    table = load_runs(runs)
    law_obj = get_law(law)
    if per_domain is not None:
        law_obj = law_obj.with_pooling(per_domain)
    spec, data = prepare(table, law_obj, domains=domains, run_effect=run_effect)
    check_law_mean(law_obj, spec, data)  # a mean of no value per row fails inside JAX
    sim = sample_prior(law_obj, spec, data, draws=draws, seed=seed)
    check_law_mean(law_obj, spec, data, sim)  # a NaN draw would read as "outside the band"
    loss = np.exp(np.asarray(sim["log_loss"], dtype=float))
    lo, hi = np.quantile(loss, [(1 - level) / 2, (1 + level) / 2], axis=0)
    observed = data.rows["loss"].to_numpy(float)
    return xr.Dataset(
        {
            "loss": (("draw", "obs"), loss),
            "observed": ("obs", observed),
            "lo": ("obs", lo),
            "hi": ("obs", hi),
            "inside": ("obs", (observed >= lo) & (observed <= hi)),
        },
        coords={
            "obs": np.arange(len(observed)),
            "eval_domain": ("obs", data.rows["eval_domain"].to_numpy(str)),
        },
        attrs={"law": law_obj.name, "level": level},
    )


def prior_summary(ds: xr.Dataset) -> pd.DataFrame:
    """Per domain: observed loss range, prior band range, fraction of rows inside the band."""
    df = pd.DataFrame(
        {
            "eval_domain": ds["eval_domain"].values,
            "observed": ds["observed"].values,
            "lo": ds["lo"].values,
            "hi": ds["hi"].values,
            "inside": ds["inside"].values,
        }
    )
    g = df.groupby("eval_domain")
    return pd.DataFrame(
        {
            "rows": g.size(),
            "observed_min": g["observed"].min(),
            "observed_max": g["observed"].max(),
            "prior_lo_median": g["lo"].median(),
            "prior_hi_median": g["hi"].median(),
            "inside": g["inside"].mean(),
        }
    )
