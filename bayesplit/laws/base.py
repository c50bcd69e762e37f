"""What a law is: parameters with supports and priors, pooling, and one mean function.

Laws are evaluated on *scaled* inputs so that every parameter is of order one:
``n = N / N_ref`` and ``d = D / T_ref``, ``dp = D' / T_ref``, where ``N_ref`` and
``T_ref`` are powers of ten at the centre of the data (see
:func:`bayesplit.model.reference_scales`). A coefficient such as ``A`` in
``A·n^-α`` is therefore "the size of that loss term at the reference model size",
in nats, and its prior is stated relative to the typical observed loss.
"""

from __future__ import annotations

import functools
import math
import numbers
import re
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from bayesplit.errors import BayesplitError

Support = Literal["positive", "unit", "real"]


#: Names the hierarchical model gives its own sites, plates and dims (noise, run effects,
#: ArviZ's chain and draw): a parameter so named would collide with them in NUTS.
MODEL_SITES = frozenset(
    {
        *("sigma", "nu", "run_sd", "run_z", "log_loss", "domain", "run", "obs", "chain"),
        *("draw", "domain_idx"),  # the PyMC model's data node of each row's domain
    }
)
#: Each parameter ``X`` also becomes sites ``X_mu``, ``X_tau``, ``X_k``, ``X_z``, ``X_u``.
PARAM_SITE_SUFFIXES = ("_mu", "_tau", "_k", "_z", "_u")
LAW_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class Param:
    """One law parameter.

    Parameters
    ----------
    name
        Identifier used in the mean function, posteriors and reports.
    support
        ``"positive"`` (sampled as log), ``"unit"`` (in (0, 1), sampled as logit)
        or ``"real"``.
    loc, scale
        Normal prior on the unconstrained value (log / logit / identity).
    per_domain
        True: one value per domain, partially pooled (θ_k = μ + τ·z_k).
        False: one value shared by all domains.
    group_scale
        Scale of the half-normal prior on τ, the between-domain spread of the
        unconstrained value (per-domain parameters only).
    loss_scaled
        True: ``loc`` is relative to the log of the typical observed loss, so
        ``loc = log(0.5)`` means "about half the typical loss". Positive parameters
        only.
    description
        One line for ``bayesplit laws`` and reports.
    """

    name: str
    support: Support
    loc: float
    scale: float
    per_domain: bool = False
    group_scale: float = 0.5
    loss_scaled: bool = False
    description: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise BayesplitError(f"parameter name {self.name!r} must be an identifier")
        if self.support not in ("positive", "unit", "real"):
            raise BayesplitError(f"parameter {self.name}: unknown support {self.support!r}")
        for what in ("loc", "scale", "group_scale"):
            v = getattr(self, what)
            # a NaN loc reached NUTS as "Normal distribution got invalid loc parameter"
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise BayesplitError(
                    f"parameter {self.name}: prior {what} must be a finite number, got {v!r}"
                )
        if not (self.scale > 0 and self.group_scale > 0):
            raise BayesplitError(f"parameter {self.name}: prior scales must be > 0")
        for what in ("per_domain", "loss_scaled"):
            v = getattr(self, what)
            if not isinstance(v, bool):  # "no" is truthy: it meant yes
                raise BayesplitError(
                    f"parameter {self.name}: {what} must be True or False, got {v!r}"
                )
        if self.loss_scaled and self.support != "positive":
            # the shift is log L̄: a scale for a positive amount of loss, none for an
            # exponent or a share (and the printed prior left it out)
            raise BayesplitError(
                f"parameter {self.name}: loss_scaled applies to positive parameters only, "
                f"not to a {self.support!r} one"
            )

    def prior_loc(self, log_loss_scale: float) -> float:
        """Prior location on the unconstrained scale, given the typical observed log loss."""
        return self.loc + (log_loss_scale if self.loss_scaled else 0.0)

    def prior_text(self) -> str:
        """The prior in words, e.g. ``log E ~ Normal(log(0.5·L̄), 1)``."""
        if self.support == "positive":
            centre = math.exp(self.loc)
            inner = f"log({centre:.3g}·L̄)" if self.loss_scaled else f"{self.loc:.3g}"
            text = f"log {self.name} ~ Normal({inner}, {self.scale:g})"
        elif self.support == "unit":
            centre = 1 / (1 + math.exp(-self.loc))
            text = f"logit {self.name} ~ Normal(logit({centre:.3g}), {self.scale:g})"
        else:
            text = f"{self.name} ~ Normal({self.loc:g}, {self.scale:g})"
        if self.per_domain:
            text += f", per domain with τ ~ HalfNormal({self.group_scale:g})"
        return text


@dataclass(frozen=True)
class Inputs:
    """Scaled law inputs; arrays broadcast against each other and the parameters."""

    n: Any  #: N / N_ref
    d: Any  #: D / T_ref
    dp: Any  #: D' / T_ref


LogMean = Callable[[Any, Mapping[str, Any], Inputs], Any]


#: How the built-in laws write their parameters in a formula; ``_k`` marks one per domain.
FORMULA_SYMBOLS = {"alpha": "α", "beta": "β", "gamma": "γ", "tau": "τ", "kappa": "κ"}


def _repooled_formula(formula: str, params: tuple[Param, ...], old: tuple[Param, ...]) -> str:
    """``formula`` with the ``_k`` of each parameter whose pooling changed added or removed.

    A parameter whose symbol (its name, or its Greek letter) is not in the formula exactly
    once cannot be rewritten; the formula then says which parameters vary by domain.
    """
    rewritten = True
    for p, before in zip(params, old, strict=True):
        if p.per_domain == before.per_domain:
            continue
        symbol = re.escape(FORMULA_SYMBOLS.get(p.name, p.name))
        pattern = rf"(?<![\w'])({symbol})(_k)?(?![\w'])"
        if len(re.findall(pattern, formula)) != 1:
            rewritten = False
            continue
        formula = re.sub(pattern, r"\1_k" if p.per_domain else r"\1", formula)
    if not rewritten:
        varying = ", ".join(p.name for p in params if p.per_domain) or "none"
        formula += f" (per domain here: {varying})"
    return formula


def _callable_digest(fn: Any, seen: frozenset = frozenset()) -> Any:
    """What identifies a mean function's behaviour across processes: its code objects
    (bytecode, constants, names), its default arguments, the plain values and functions of
    its closure, a partial's arguments, a decorated function's inner one. Nothing with a
    memory address in it (a repr of a function or object), which would differ in every
    process."""
    if id(fn) in seen or len(seen) > 8:
        return ("seen",)
    seen = seen | {id(fn)}
    if isinstance(fn, functools.partial):
        return ("partial", _callable_digest(fn.func, seen), _plain(fn.args, seen),
                _plain(fn.keywords, seen))  # fmt: skip
    inner = getattr(fn, "__wrapped__", None)  # functools.wraps, jax.jit
    code = getattr(fn, "__code__", None)
    state = None
    if code is None:  # a callable object: its class's __call__ and its plain attributes
        call = type(fn).__call__ if callable(fn) else None
        code = getattr(call, "__code__", None)
        state = _plain(getattr(fn, "__dict__", None), seen)
        if code is None:
            kind = ("opaque", type(fn).__module__, type(fn).__qualname__)
            return kind if inner is None else (kind, _callable_digest(inner, seen))
    cells = []
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            cells.append(_plain(cell.cell_contents, seen))
        except ValueError:  # a cell not filled yet
            cells.append(None)
    defaults = (
        _plain(getattr(fn, "__defaults__", None), seen),
        _plain(getattr(fn, "__kwdefaults__", None), seen),
    )
    wrapped = None if inner is None else _callable_digest(inner, seen)
    return (_code_digest(code), defaults, cells, state, wrapped)


def _code_digest(code: types.CodeType) -> Any:
    consts = tuple(
        _code_digest(c) if isinstance(c, types.CodeType) else _plain(c) for c in code.co_consts
    )
    return (code.co_code.hex(), consts, code.co_names)


def _plain(value: Any, seen: frozenset = frozenset()) -> Any:
    """A value as the digest keeps it: numbers, text, arrays and containers of them by
    content, functions by their code; anything else by its type only. A container met
    again inside itself is not entered again."""
    if value is None or isinstance(value, (bool, numbers.Number, str, bytes)):
        return repr(value)
    if isinstance(value, (types.FunctionType, functools.partial)):
        return _callable_digest(value, seen)  # which keeps its own record of what it saw
    if id(value) in seen or len(seen) > 8:
        return ("seen",)
    seen = seen | {id(value)}
    if isinstance(value, (tuple, list, frozenset, set)):
        items = [_plain(v, seen) for v in value]
        if isinstance(value, (set, frozenset)):
            items.sort(key=repr)
        return (type(value).__name__, tuple(items))
    if isinstance(value, Mapping):
        pairs = sorted(((_plain(k, seen), _plain(v, seen)) for k, v in value.items()), key=repr)
        return ("map", tuple(pairs))
    if hasattr(value, "__array__") and hasattr(value, "dtype"):
        import numpy as np

        try:
            arr = np.asarray(value)
        except Exception:  # a tensor that needs grad, a lazy array: its type is all we keep
            return ("object", type(value).__module__, type(value).__qualname__)
        if arr.dtype.hasobject:  # its bytes are pointers, another in every process
            return ("array", arr.shape, _plain(arr.tolist(), seen))
        return ("array", str(arr.dtype), arr.shape, arr.tobytes().hex())
    return ("object", type(value).__module__, type(value).__qualname__)


@dataclass(frozen=True)
class Law:
    """A parametric loss law ``L_k(N, D, D'; θ)``.

    Parameters
    ----------
    name
        Registry key (``bayesplit fit --law NAME``).
    formula
        Human-readable formula on scaled inputs, shown by ``bayesplit laws``.
    params
        The parameters, in the order they are reported.
    log_mean
        ``log_mean(ops, p, x) -> log L``: ``ops`` is a :class:`~bayesplit.laws.ops.Ops`
        namespace, ``p`` maps parameter names to arrays broadcastable against the
        :class:`Inputs` ``x``. Write it with ``ops`` functions only, in log space
        (``ops.logsumexp`` of log terms), so every backend can run it.
    uses_spec_tokens
        Whether D' enters the law (False for single-stage laws).
    description
        A sentence on when to use the law.
    reference
        Where the law comes from (papers); in ``bayesplit laws --json``.
    """

    name: str
    formula: str
    params: tuple[Param, ...]
    log_mean: LogMean
    uses_spec_tokens: bool = True
    description: str = ""
    reference: str = ""
    _index: dict[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not LAW_NAME.fullmatch(self.name):
            # a comma or a space could never be named in `compare --laws a,b`
            raise BayesplitError(
                f"law name {self.name!r} must be letters, digits, '_', '-' or '.' (no spaces "
                "or commas)"
            )
        self._check_fields()
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise BayesplitError(f"law {self.name}: duplicate parameter names")
        parts = {f"{o}{suffix}": o for o in names for suffix in PARAM_SITE_SUFFIXES}
        for name in names:
            if name in MODEL_SITES:
                raise BayesplitError(
                    f"law {self.name}: parameter name {name!r} is taken by the model itself "
                    f"({', '.join(sorted(MODEL_SITES))}); choose another"
                )
            if name in parts:
                raise BayesplitError(
                    f"law {self.name}: parameter name {name!r} is the name the model gives a "
                    f"part of parameter {parts[name]!r}; choose another"
                )
        object.__setattr__(self, "_index", {p.name: p for p in self.params})

    def _check_fields(self) -> None:
        # each was accepted and failed later: None in `bayesplit laws` (a traceback), "no"
        # read as True, no parameters at `predict` (a reshape error)
        for key in ("formula", "description", "reference"):
            if not isinstance(getattr(self, key), str):
                raise BayesplitError(
                    f"law {self.name}: {key} must be text, got {getattr(self, key)!r}"
                )
        if not isinstance(self.uses_spec_tokens, bool):
            raise BayesplitError(
                f"law {self.name}: uses_spec_tokens must be True or False, "
                f"got {self.uses_spec_tokens!r}"
            )
        if not callable(self.log_mean):
            raise BayesplitError(f"law {self.name}: log_mean must be a function")
        params = self.params
        if isinstance(params, Param) or not isinstance(params, (tuple, list)):
            raise BayesplitError(
                f"law {self.name}: params must be a tuple of Param, got {type(params).__name__}"
            )
        if not params:
            raise BayesplitError(f"law {self.name}: a law needs at least one parameter")
        bad = [p for p in params if not isinstance(p, Param)]
        if bad:
            raise BayesplitError(f"law {self.name}: params must be Param objects, got {bad[0]!r}")
        object.__setattr__(self, "params", tuple(params))

    @property
    def param_names(self) -> list[str]:
        """Parameter names, in order."""
        return [p.name for p in self.params]

    @property
    def per_domain(self) -> list[str]:
        """Names of the parameters that vary by domain (partially pooled)."""
        return [p.name for p in self.params if p.per_domain]

    @property
    def shared(self) -> list[str]:
        """Names of the parameters shared by all domains."""
        return [p.name for p in self.params if not p.per_domain]

    def param(self, name: str) -> Param:
        """The :class:`Param` called ``name`` (BayesplitError if there is none)."""
        try:
            return self._index[name]
        except KeyError:
            raise BayesplitError(
                f"law {self.name} has no parameter {name!r} (has {', '.join(self.param_names)})"
            ) from None

    def with_pooling(self, per_domain: Iterable[str]) -> Law:
        """A copy of the law where exactly ``per_domain`` parameters vary by domain."""
        from bayesplit._parse import names

        chosen = set(names(per_domain, "per_domain") or [])  # one name, not its letters
        unknown = chosen - set(self.param_names)
        if unknown:
            raise BayesplitError(
                f"law {self.name} has no parameter(s) {', '.join(sorted(unknown))}"
            )
        params = tuple(replace(p, per_domain=p.name in chosen) for p in self.params)
        formula = _repooled_formula(self.formula, params, self.params)
        return replace(self, params=params, formula=formula)

    def fingerprint(self) -> str:
        """A digest of what a fit of this law depends on: its mean function's compiled code
        (and the plain values it closes over or is partially applied to) and its priors.

        Neither the pooling (a posterior records it apart), the formula nor the
        descriptions count, nor comments and layout of the code; helper functions the mean
        calls are not followed. The code is the function's own, not its file's text now
        (a module edited and reloaded after the fit). Compiled code differs between Python
        versions, so the digest starts with the version (``py3.11-...``): a posterior file
        compares it only with a law's digest under the same version.
        """
        import hashlib

        priors = [
            (q.name, q.support, q.loc, q.scale, q.group_scale, q.loss_scaled) for q in self.params
        ]
        try:
            mean = _callable_digest(self.log_mean)
        except Exception:  # never in the way of saving a posterior: a digest of nothing
            mean = ("unreadable",)
        text = repr((mean, priors, self.uses_spec_tokens))
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        return f"py{sys.version_info[0]}.{sys.version_info[1]}-{digest}"

    @property
    def builtin(self) -> bool:
        """Whether the mean function is one of bayesplit's own (pooling copies included)."""
        from bayesplit.laws.library import BUILTIN

        return any(self.log_mean is law.log_mean for law in BUILTIN)

    def evaluate(self, ops, p: Mapping[str, Any], x: Inputs):
        """``log L`` at scaled inputs ``x`` (see :class:`Inputs`).

        Every backend calls a law through here, so this is where a user law's exception
        becomes a :class:`BayesplitError` naming the law (the CLI prints it in one line);
        the original stays chained for debugging. A built-in law's exception is a
        bayesplit bug and keeps its traceback. The ``try`` costs nothing when nothing
        is raised, so the hot paths (allocation, suggest) run as before.
        """
        try:
            return self.log_mean(ops, p, x)
        except Exception as exc:
            if isinstance(exc, BayesplitError) or self.builtin:
                raise
            first = str(exc).strip().splitlines()
            text = f"{type(exc).__name__}: {first[0]}" if first else type(exc).__name__
            raise BayesplitError(
                f"law {self.name!r}: its mean raised {text}{_where(exc, self.log_mean)}"
            ) from exc

    def check_finite(self, log_l, points: Mapping[str, Any], *, allow_inf: bool = False) -> None:
        """Refuse a user law whose ``log L`` (from :meth:`evaluate`) is NaN or ±inf.

        Not part of :meth:`evaluate` because decisions tolerate an infinite loss at an
        extreme candidate (``allow_inf=True``: only NaN is refused there, as a plan the
        optimizer would silently steer around); callers that turn the mean into data
        (simulated runs, prior draws, predictions) or are about to fit check it here. ``points`` names the raw inputs, e.g.
        ``{"N": ..., "D": ..., "D'": ..., "domain": ...}``, each broadcastable to the last
        axes of ``log_l`` (leading axes are draws); the first bad point is named.
        Built-in laws are not checked (they are finite on valid inputs by construction).
        """
        if self.builtin:
            return
        import numpy as np

        log_l = np.asarray(log_l, dtype=float)
        bad = np.isnan(log_l) if allow_inf else ~np.isfinite(log_l)
        if not bad.any():
            return
        shape = np.broadcast_shapes(bad.shape, *(np.shape(v) for v in points.values()))
        cols = {k: np.broadcast_to(np.asarray(v), shape) for k, v in points.items()}
        log_l, bad = np.broadcast_to(log_l, shape), np.broadcast_to(bad, shape)
        i = tuple(np.argwhere(bad)[0])
        v = log_l[i]
        what = "NaN" if np.isnan(v) else ("inf" if v > 0 else "0 (log mean -inf)")
        at = ", ".join(f"{k}={_point_text(c[i])}" for k, c in cols.items())
        n_bad = int(bad.sum())
        kinds = "NaN" if allow_inf else "NaN or inf"
        count = f" ({n_bad} of {bad.size} evaluations are {kinds})" if bad.size > 1 else ""
        raise BayesplitError(f"law {self.name!r}: its mean is {what} at {at}{count}")

    def __repr__(self) -> str:
        # the dataclass default spells out every Param and the log_mean function object
        return (
            f"<Law {self.name}: {self.formula}; per domain: {', '.join(self.per_domain) or '-'}; "
            f"shared: {', '.join(self.shared) or '-'}>"
        )

    def describe(self) -> dict[str, Any]:
        """Multi-line text for ``bayesplit laws``: formula, pooling, priors."""
        return {
            "name": self.name,
            "formula": self.formula,
            "description": self.description,
            "uses_spec_tokens": self.uses_spec_tokens,
            "per_domain": self.per_domain,
            "shared": self.shared,
            "priors": {p.name: p.prior_text() for p in self.params},
            "reference": self.reference,
        }


def _where(exc: BaseException, fn) -> str:
    """`` (file:line)`` of the deepest frame of ``exc`` in the file that defines ``fn``."""
    import traceback

    code = getattr(fn, "__code__", None)
    if code is None or exc.__traceback__ is None:
        return ""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == code.co_filename]
    return f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def _point_text(v) -> str:
    return f"{v:.3g}" if isinstance(v, numbers.Real) else str(v)
