"""A fitted law: the ArviZ InferenceData plus what is needed to use it.

:class:`Posterior` wraps the InferenceData produced by :func:`bayesplit.fit`
(groups ``posterior``, ``sample_stats``, ``log_likelihood``, ``observed_data``,
``constant_data``) and remembers the law, the model settings and the
diagnostics gate, so a posterior saved to netCDF can be reloaded and used by
``predict``, ``allocate``, ``suggest`` and ``report`` without refitting.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesplit import _arviz
from bayesplit._io import atomic_path
from bayesplit._parse import (
    _shown,
    check_flag,
    check_level,
    check_max_draws,
    check_path,
    check_seed,
    is_number,
    kind_of,
)
from bayesplit._parse import names as name_list
from bayesplit.diagnostics import Diagnostics, Thresholds
from bayesplit.errors import BayesplitError
from bayesplit.laws import Inputs, Law, get_law, get_ops
from bayesplit.model import ModelSpec, Reference

_META_KEY = "bayesplit"
#: SHA-256 of the metadata text: HDF5 checksums the numeric arrays, not attributes, and a
#: flipped byte there moved the reference scale or turned a failed gate into a passed one.
_META_SHA_KEY = "bayesplit_sha256"
#: Metadata key: SHA-256 of the arrays HDF5 cannot checksum (text, such as the fitted rows'
#: domains and run ids, and scalars); a changed eval domain read as another domain's run.
_TEXT_SHA_KEY = "text_arrays_sha256"
#: The layout of a posterior file; a file of another format is refused, not misread.
POSTERIOR_FORMAT = "bayesplit-posterior/1"
_ROW_COLUMNS = (
    "run_id",
    "params",
    "pretrain_tokens",
    "spec_tokens",
    "train_domain",
    "eval_domain",
    "loss",
    "seed",
    # which rows share a run effect (a branch: its trunk's), so `predict --run` can check N
    "trunk_id",
    # the trainer's vocabulary: with-embeddings N of a ladder size depends on it (suggest --ladder)
    "vocab_size",
)


class Posterior:
    """A fitted hierarchical law.

    Attributes
    ----------
    idata : arviz.InferenceData
        Draws with named dims (``chain``, ``draw``, ``domain``, ``run``, ``obs``).
    law : Law
        The law, with the pooling it was fitted with.
    spec : ModelSpec
        Domains, runs, reference scales and likelihood settings.
    diagnostics : Diagnostics
        Convergence and identifiability gate.
    info : dict
        How the fit was run (backend, device, chains, draws, seed, seconds).
    """

    def __init__(
        self, idata, law: Law, spec: ModelSpec, diagnostics: Diagnostics, info: dict[str, Any]
    ):
        self.idata = idata
        self.law = law
        self.spec = spec
        self.diagnostics = diagnostics
        self.info = dict(info)

    # -- basic facts --------------------------------------------------------
    @property
    def domains(self) -> list[str]:
        """Domain names, in the order of the ``domain`` coordinate."""
        return list(self.spec.domains)

    @property
    def ok(self) -> bool:
        """Whether the posterior passed its diagnostics gate."""
        return self.diagnostics.ok

    @property
    def n_draws(self) -> int:
        """Total draws (chains × draws per chain)."""
        return int(self.idata.posterior.sizes["chain"] * self.idata.posterior.sizes["draw"])

    @property
    def runs(self) -> pd.DataFrame:
        """The run-table rows the law was fitted to."""
        cd = self.idata.constant_data
        df = pd.DataFrame({c: cd[f"row_{c}"].values for c in _ROW_COLUMNS if f"row_{c}" in cd})
        for c in ("train_domain", "trunk_id"):
            if c in df:
                df[c] = df[c].astype(object).where(df[c] != "", None)
        return df

    def require_ok(self, force: bool = False) -> None:
        """Refuse (``DiagnosticsError``) if the gate failed, unless ``force``."""
        self.diagnostics.require_ok(force)

    def domain_index(self, domain: str | list[str] | None) -> np.ndarray:
        """Index of each domain name (BayesplitError for an unknown one, a repeat, or none)."""
        # [] predicted nothing, 5 was a TypeError and ["web", "web"] two "web" coordinates
        names = self.domains if domain is None else name_list(domain, "domain")
        if not names:
            raise BayesplitError(
                "domain is empty: give a domain name, a list of them, or None for every domain"
            )
        idx = []
        for d in names:
            if d not in self.spec.domains:
                raise BayesplitError(
                    f"unknown domain {d!r}; the posterior has {', '.join(self.domains)}"
                )
            idx.append(self.spec.domains.index(d))
        return np.asarray(idx, dtype=int)

    # -- draws --------------------------------------------------------------
    def draws(
        self, names: list[str] | None = None, max_draws: int | None = None, seed: int = 0
    ) -> dict[str, np.ndarray]:
        """Flattened posterior draws: shape (S,) for shared, (S, K) for per-domain values.

        ``names`` are posterior variables (default: the law's parameters); one name may be
        a string; an empty list, and a name the posterior does not have, are refused
        (listing the names it has).
        ``max_draws`` thins to an evenly spaced subset (deterministic: ``seed`` is unused
        unless thinning must break ties), so results are reproducible; it must be a whole
        number >= 1 (None: all draws).
        """
        check_seed(seed)  # unused (thinning is even), but checked as every seed is
        names = name_list(names, "names")
        if names == []:  # [] gave every parameter, as None does
            raise BayesplitError(
                "names is empty: give variable names, or None for the law's parameters"
            )
        if names:  # an unknown name was left out: ["nope"] gave {}
            known = list(self.idata.posterior.data_vars)
            unknown = [n for n in names if n not in known]
            if unknown:
                raise BayesplitError(
                    f"the posterior has no variable {', '.join(map(repr, unknown))}; "
                    f"it has {', '.join(known)}"
                )
        return self._draws(names, max_draws)

    def _draws(self, names: list[str] | None, max_draws: int | None) -> dict[str, np.ndarray]:
        """:meth:`draws` of those of ``names`` the posterior has (the noise terms a fit
        may lack are left out, for the callers to fill in)."""
        max_draws = check_max_draws(max_draws)
        post = self.idata.posterior
        names = names or self.law.param_names
        total = self.n_draws
        take = np.arange(total)
        if max_draws is not None and max_draws < total:
            take = np.linspace(0, total - 1, max_draws).round().astype(int)
        out = {}
        for name in names:
            if name not in post:
                continue
            da = post[name].stack(sample=("chain", "draw")).transpose("sample", ...)
            out[name] = np.asarray(da.values, dtype=float)[take]
        return out

    def noise_draws(self, max_draws: int | None = None) -> dict[str, np.ndarray]:
        """σ, σ_run (0 without a run effect) and ν per draw, for predictive bands."""
        d = self._draws(["sigma", "run_sd", "nu"], max_draws)
        s = len(d["sigma"])
        d.setdefault("run_sd", np.zeros(s))
        d.setdefault("nu", np.full(s, float(self.spec.student_df)))
        return d

    def run_effect_group(self, run: str) -> str | None:
        """The id whose run effect the fit estimated for ``run``, or None.

        A trunk id, or a run id of a trunk's own rows or of any branch from it, gives the
        trunk (every row of a trunk shares its effect); a run without a trunk gives itself.
        """
        if not self.spec.run_effect or "run_z" not in self.idata.posterior:
            return None
        if run in self.spec.runs:
            return run
        from bayesplit.model import run_groups

        rows = self.runs
        rows = rows[rows["run_id"].astype(str) == str(run)]
        group = run_groups(rows).iloc[0] if len(rows) else None
        return group if group in self.spec.runs else None

    def run_effect_draws(self, run: str, max_draws: int | None = None) -> np.ndarray | None:
        """Draws (S,) of the log-loss effect of a run, branch or trunk the fit has seen
        (see :meth:`run_effect_group`); else None."""
        group = self.run_effect_group(run)
        if group is None:
            return None
        d = self._draws(["run_sd", "run_z"], max_draws)
        return d["run_sd"] * d["run_z"][:, self.spec.runs.index(group)]

    def log_mean(
        self,
        params,
        pretrain_tokens,
        spec_tokens,
        domain_idx,
        *,
        draws: dict[str, np.ndarray] | None = None,
        max_draws: int | None = None,
        fast: bool = False,
    ) -> np.ndarray:
        """``log L`` of the law at M points, for every draw: array (S, M).

        Inputs are in natural units (N, D, D' as raw counts); ``domain_idx`` gives
        each point's domain index (an int for all points). ``fast=True`` evaluates a
        jitted JAX kernel in float32 and returns float32 (for large ensembles such as
        the candidates of ``suggest``: several times faster, relative error ~1e-7).
        """
        fast = check_flag(fast, "fast")
        p = draws if draws is not None else self.draws(max_draws=max_draws)
        x = self.spec.reference.scale(params, pretrain_tokens, spec_tokens)
        m = np.broadcast(x.n, x.d, x.dp, np.asarray(domain_idx)).shape
        dom = np.broadcast_to(np.asarray(domain_idx, dtype=int), m)
        if fast:
            f32 = np.float32
            flat = [np.broadcast_to(a, m).reshape(-1).astype(f32) for a in (x.n, x.d, x.dp)]
            p32 = {par.name: np.asarray(p[par.name], dtype=f32) for par in self.law.params}
            out = _jax_log_mean(self.law.log_mean)(p32, *flat, dom.reshape(-1))
            return np.asarray(out).reshape((-1,) + m)
        rows = {}
        for par in self.law.params:
            v = p[par.name]
            rows[par.name] = v[:, dom] if v.ndim == 2 else v.reshape((-1,) + (1,) * len(m))
        xin = Inputs(
            n=np.broadcast_to(x.n, m), d=np.broadcast_to(x.d, m), dp=np.broadcast_to(x.dp, m)
        )
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            return self.law.evaluate(get_ops("numpy"), rows, xin)

    def predict(
        self,
        params,
        pretrain_tokens,
        spec_tokens=0.0,
        domain=None,
        *,
        level: float = 0.9,
        seed: int = 0,
        max_draws: int | None = None,
        run: str | None = None,
    ) -> xr.Dataset:
        """Loss predictions with both bands; see :func:`bayesplit.prediction.predict`."""
        from bayesplit.prediction import predict

        return predict(
            self,
            params,
            pretrain_tokens,
            spec_tokens,
            domain,
            level=level,
            seed=seed,
            max_draws=max_draws,
            run=run,
        )

    # -- tables -------------------------------------------------------------
    def summary(self, level: float = 0.9) -> pd.DataFrame:
        """Median and central interval of each law parameter (``name[domain]`` per domain)."""
        level = check_level(level)  # 1.5 was numpy's "Quantiles must be in the range [0, 1]"
        lo, hi = (1 - level) / 2, (1 + level) / 2
        rows = []
        for name, v in self.draws().items():
            if v.ndim == 1:
                rows.append((name, *np.quantile(v, [0.5, lo, hi])))
            else:
                for k, dom in enumerate(self.domains):
                    rows.append((f"{name}[{dom}]", *np.quantile(v[:, k], [0.5, lo, hi])))
        for name in ("sigma", "run_sd", "nu"):
            if name in self.idata.posterior:
                v = self.idata.posterior[name].values.ravel()
                rows.append((name, *np.quantile(v, [0.5, lo, hi])))
        return pd.DataFrame(
            rows, columns=["param", "median", quantile_label(lo), quantile_label(hi)]
        ).set_index("param")

    # -- persistence --------------------------------------------------------
    def _meta(self) -> dict:
        return {
            "format": POSTERIOR_FORMAT,
            "law": self.law.name,
            "law_fingerprint": self.law.fingerprint(),
            "per_domain": self.law.per_domain,
            "spec": self.spec.to_dict(),
            "diagnostics": self.diagnostics.to_dict(),
            "info": self.info,
        }

    def save(self, path: str | Path) -> Path:
        """Write to netCDF atomically; :meth:`load` restores it, gate included. ``path``
        ends in ``.nc``, as the commands that read posteriors expect."""
        if isinstance(path, str) and path.endswith(("/", os.sep)):  # Path drops the slash
            raise BayesplitError(f"{path} names a folder; give a file name ending in .nc")
        path = check_path(path)
        if path.suffix.lower() != ".nc":  # it wrote netCDF under any name, which fit refuses
            got = path.suffix or "no extension"
            raise BayesplitError(f"{path}: posterior files are netCDF (.nc), got {got}")
        meta = {**self._meta(), _TEXT_SHA_KEY: text_arrays_sha256(self.idata)}
        text = json.dumps(meta, allow_nan=True)
        self.idata.posterior.attrs[_META_KEY] = text
        self.idata.posterior.attrs[_META_SHA_KEY] = _sha256(text)
        with atomic_path(path) as tmp:
            _arviz.to_netcdf(self.idata, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Posterior:
        """Read a posterior written by :meth:`save` (the law must be registered)."""
        p = check_path(path)
        if not p.exists():
            raise BayesplitError(f"no such posterior file: {p}")
        if p.is_dir():  # netCDF's own message is a page of HDF5 internals
            raise BayesplitError(f"{p} is a folder, not a posterior file")

        def not_ours(exc: Exception) -> BayesplitError:
            return BayesplitError(f"{p} is not a bayesplit posterior ({type(exc).__name__}: {exc})")

        try:
            idata = _arviz.from_netcdf(p)
            text = idata.posterior.attrs[_META_KEY]
            stored = idata.posterior.attrs.get(_META_SHA_KEY)  # absent from older files
        # RuntimeError: HDF5's own, for some damaged bytes ("H5DSget_num_scales")
        except (OSError, KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
            raise not_ours(exc) from None
        # before parsing: a changed byte that breaks the JSON is damage too
        if stored is not None and stored != _sha256(str(text)):
            raise BayesplitError(
                f"{p} is damaged: its metadata (law, scales, diagnostics) does not match "
                "the checksum written with it; refit, or restore the file from a copy"
            )
        try:
            meta = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise not_ours(exc) from None
        # every file that holds the text digest was written with the metadata checksum too:
        # without it, a file whose checksum went missing read as one from before checksums
        if stored is None and isinstance(meta, dict) and _TEXT_SHA_KEY in meta:
            raise BayesplitError(
                f"{p} is damaged: the checksum of its metadata is missing; refit, or restore "
                "the file from a copy"
            )
        _read_all(p, idata)
        law = _check_file(p, idata, meta)
        stored_text = meta.get(_TEXT_SHA_KEY)  # absent from older files
        if stored_text is not None and stored_text != text_arrays_sha256(idata):
            raise BayesplitError(
                f"{p} is damaged: its text arrays (the fitted runs' domains and ids) do not "
                "match the checksum written with them; refit, or restore the file from a copy"
            )
        diag = dict(meta["diagnostics"])
        diag["thresholds"] = Thresholds(**diag.get("thresholds", {}))
        return cls(
            idata,
            law,
            ModelSpec.from_dict(meta["spec"]),
            Diagnostics(**diag),
            meta.get("info", {}),
        )

    def __repr__(self) -> str:
        gate = "ok" if self.ok else "FAILED: " + "; ".join(self.diagnostics.failures)
        return f"<Posterior law={self.law.name} domains={len(self.domains)} draws={self.n_draws} gate={gate}>"


def check_posterior(posterior) -> None:
    """Refuse, in words, what is not a :class:`Posterior` where a decision needs one.

    Passing the run table (or a file name, or a ground truth) failed with an AttributeError
    such as "'DataFrame' object has no attribute 'require_ok'".
    """
    if isinstance(posterior, Posterior):
        return
    if isinstance(posterior, pd.DataFrame):
        hint = "; fit the runs first: post = bayesplit.fit(runs, law)"
    elif isinstance(posterior, (str, Path)):
        hint = "; read a saved one with bayesplit.load_posterior(path)"
    elif hasattr(posterior, "as_posterior"):
        hint = "; for a known truth, pass truth.as_posterior()"
    else:
        hint = ""
    plain = posterior is None or isinstance(posterior, (str, Path, int, float))
    got = _shown(posterior) if plain else kind_of(posterior)  # not a table's repr
    raise BayesplitError(
        "posterior must be a fitted Posterior (bayesplit.fit, or load_posterior of a .nc "
        f"file), got {got}{hint}"
    )


def quantile_label(q: float) -> str:
    """Column name of a quantile: 0.05 → ``q05``, 0.975 → ``q97.5``."""
    pct = q * 100
    if abs(pct - round(pct)) < 1e-9:
        return f"q{round(pct):02d}"
    return f"q{pct:g}"


def load_posterior(path: str | Path) -> Posterior:
    """Load a posterior saved with :meth:`Posterior.save` (alias of :meth:`Posterior.load`)."""
    return Posterior.load(path)


def rows_as_constant_data(rows: pd.DataFrame) -> xr.Dataset:
    """The fitted rows, stored with the posterior so reports can show the data."""
    out = {}
    for c in _ROW_COLUMNS:
        if c not in rows:
            continue
        v = rows[c]
        if c in ("run_id", "train_domain", "eval_domain", "trunk_id"):
            out[f"row_{c}"] = np.asarray(
                [
                    ("" if x is None or (isinstance(x, float) and np.isnan(x)) else str(x))
                    for x in v
                ],
                dtype=str,
            )
        elif c == "vocab_size":  # provenance, not fitted: an unreadable entry is just unknown
            out[f"row_{c}"] = pd.to_numeric(v, errors="coerce").to_numpy(dtype=float)
        else:
            out[f"row_{c}"] = np.asarray(v, dtype=float if c != "seed" else np.int64)
    return xr.Dataset({k: ("obs", v) for k, v in out.items()}, coords={"obs": np.arange(len(rows))})


def _read_all(path: Path, idata) -> None:
    """Read every variable of ``idata`` (opened lazily) into memory, and close the file.

    Reading is when HDF5 verifies each chunk's Fletcher32 checksum (and zlib its own), so a
    file whose bytes changed after it was written is refused here, in one line, rather
    than by an OSError traceback in whichever command first touches the damaged variable.
    """
    for group in idata.groups():
        ds = idata[group]
        for name, var in ds.variables.items():
            try:
                var.load()
            except (OSError, ValueError, RuntimeError) as exc:  # h5py: "Can't ... read data"
                raise BayesplitError(
                    f"{path} is damaged: {group}/{name} cannot be read ({exc}); "
                    "restore it from a copy or fit again"
                ) from None
        ds.close()


def _is_names(x) -> bool:
    return isinstance(x, list) and all(isinstance(v, str) for v in x)


#: What the metadata of a saved posterior holds: key -> (required, check, expected).
_SPEC_KEYS = {
    "domains": (True, lambda x: _is_names(x) and len(x) > 0, "a non-empty list of names"),
    "runs": (True, _is_names, "a list of names"),
    "reference": (True, lambda x: isinstance(x, dict), "a mapping of params, tokens, loss"),
    "run_effect": (True, lambda x: isinstance(x, bool), "true or false"),
    # as fit takes it: a ν of 0 or below stopped predict with numpy's "df <= 0" traceback
    "student_df": (
        False,
        lambda x: x is None or (is_number(x) and math.isfinite(x) and x > 0),
        "a finite number > 0 or null",
    ),
    "centered": (False, lambda x: isinstance(x, bool), "true or false"),
    "sigma_scale": (False, is_number, "a number"),
    "run_sd_scale": (False, is_number, "a number"),
}
_DIAG_KEYS = {
    "r_hat_max": (True, is_number, "a number"),
    "ess_bulk_min": (True, is_number, "a number"),
    "ess_tail_min": (True, is_number, "a number"),
    "divergences": (True, is_number, "a number"),
    "bfmi_min": (True, is_number, "a number"),
    "max_depth_share": (False, is_number, "a number"),
    "ok": (True, lambda x: isinstance(x, bool), "true or false"),
    "failures": (False, _is_names, "a list of strings"),
    "warnings": (False, _is_names, "a list of strings"),
    "thresholds": (False, lambda x: isinstance(x, dict), "a mapping"),
    "worst": (False, lambda x: isinstance(x, dict), "a mapping"),
}
_THRESHOLD_KEYS = {f: (False, is_number, "a number") for f in Thresholds.__dataclass_fields__}
_REFERENCE_KEYS = {
    k: (True, lambda x: is_number(x) and math.isfinite(x) and x > 0, "a number > 0")
    for k in ("params", "tokens", "loss")
}
#: run-table columns the decision commands read back from ``constant_data``
_REQUIRED_ROWS = ("run_id", "params", "pretrain_tokens", "spec_tokens", "eval_domain", "loss")


def _key_problems(where: str, d: Any, keys: dict, fields: Any) -> list[str]:
    """What is wrong with the mapping ``d`` against ``keys`` (see ``_SPEC_KEYS``).

    ``fields``: the dataclass ``d`` becomes; a key it does not take is unknown.
    """
    if not isinstance(d, dict):
        return [f"{where} is not a mapping"]
    out = []
    for k, (required, ok, expected) in keys.items():
        if k not in d:
            if required:
                out.append(f"{where} lacks {k!r}")
        elif not ok(d[k]):
            out.append(f"{where}.{k} is not {expected}")
    unknown = sorted(set(d) - set(keys) - set(fields.__dataclass_fields__))
    if unknown:
        out.append(f"{where} has unknown key(s) {', '.join(map(repr, unknown))}")
    return out


def _noise_ok(name: str, draws) -> bool:
    v = np.asarray(draws, dtype=float)
    return bool(np.all(np.isfinite(v) & ((v > 0) if name == "nu" else (v >= 0))))


def text_arrays_sha256(idata) -> str:
    """SHA-256 of every variable and coordinate that the netCDF writer leaves without a
    Fletcher32 checksum (:func:`bayesplit._arviz.unfiltered`), by group, name and value.

    Values are hashed as text, so a ``<U`` array in memory and the object array read back
    from the file give the same digest.
    """
    h = hashlib.sha256()
    for group in sorted(idata.groups()):
        ds = idata[group]
        for name in sorted(map(str, ds.variables)):
            var = ds.variables[name]
            if not _arviz.unfiltered(var):
                continue
            values = [str(v) for v in np.asarray(var.values).ravel()]
            record = [group, name, list(map(str, var.dims)), list(var.shape), values]
            h.update(json.dumps(record).encode("utf-8"))
            h.update(b"\n")
    return h.hexdigest()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _check_file(path: Path, idata, meta: Any) -> Law:
    """The law of a posterior file read back, after checking the file is complete.

    The one place that decides whether ``idata`` and its metadata ``meta`` make a usable
    posterior; raises BayesplitError naming everything that is missing or malformed.
    """

    def refuse(problems: list[str]):
        raise BayesplitError(f"{path} is not a complete bayesplit posterior: {'; '.join(problems)}")

    if not isinstance(meta, dict):
        refuse([f"its {_META_KEY!r} metadata is a {type(meta).__name__}, not a mapping"])
    fmt = meta.get("format", POSTERIOR_FORMAT)  # files from before the tag are format 1
    if fmt != POSTERIOR_FORMAT:
        raise BayesplitError(
            f"{path} is in posterior format {fmt!r}; this bayesplit reads "
            f"{POSTERIOR_FORMAT!r}: upgrade bayesplit, or refit with this version"
        )
    problems = []
    for k in ("law", "per_domain", "spec", "diagnostics"):
        if k not in meta:
            problems.append(f"metadata lacks {k!r}")
    if "law" in meta and not isinstance(meta["law"], str):
        problems.append("metadata law is not a name")
    if "per_domain" in meta and not _is_names(meta["per_domain"]):
        problems.append("metadata per_domain is not a list of parameter names")
    if "info" in meta and not isinstance(meta["info"], dict):
        problems.append("metadata info is not a mapping")
    if "spec" in meta:
        problems += _key_problems("spec", meta["spec"], _SPEC_KEYS, ModelSpec)
        ref = meta["spec"].get("reference") if isinstance(meta["spec"], dict) else None
        if isinstance(ref, dict):
            problems += _key_problems("spec.reference", ref, _REFERENCE_KEYS, Reference)
    if "diagnostics" in meta:
        problems += _key_problems("diagnostics", meta["diagnostics"], _DIAG_KEYS, Diagnostics)
        thr = (
            meta["diagnostics"].get("thresholds") if isinstance(meta["diagnostics"], dict) else None
        )
        if isinstance(thr, dict):
            problems += _key_problems("diagnostics.thresholds", thr, _THRESHOLD_KEYS, Thresholds)
        diag = meta["diagnostics"] if isinstance(meta["diagnostics"], dict) else {}
        if diag.get("ok") is True and diag.get("failures"):
            # a passed gate with failures listed: the decisions would not refuse it
            problems.append("diagnostics say ok but list failures")
    if problems:
        refuse(problems)
    try:
        law = get_law(meta["law"])
    except BayesplitError:
        raise BayesplitError(
            f"{path} was fitted with law {meta['law']!r}, which is not registered here; import the module that defines it (on the command line: --law-module)"
        ) from None
    fitted_with = meta.get("law_fingerprint")  # absent from older files
    now = law.fingerprint() if isinstance(fitted_with, str) else None
    # compiled code differs between Python versions: only a digest of this one compares
    redefined = (
        now is not None and fitted_with.split("-")[0] == now.split("-")[0] and fitted_with != now
    )
    names = set(law.param_names)
    lost = [
        *sorted(set(meta["per_domain"]) - names),
        *(q.name for q in law.params if q.name not in getattr(idata, "posterior", {})),
    ]
    if redefined and lost and not law.builtin:  # renamed since the fit: not a damaged file
        raise BayesplitError(
            f"{path} was fitted with another definition of law {law.name!r} than the one "
            f"registered now (parameter(s) {', '.join(dict.fromkeys(lost))} do not match); "
            "refit, or register the law as it was fitted"
        )
    unknown = sorted(set(meta["per_domain"]) - names)
    if unknown:
        refuse(
            [
                f"per-domain parameter(s) {', '.join(unknown)} are not parameters of law "
                f"{law.name} ({', '.join(law.param_names)})"
            ]
        )
    law = law.with_pooling(meta["per_domain"])

    post = idata.posterior
    domains = meta["spec"]["domains"]
    if "chain" not in post.dims or "draw" not in post.dims:
        problems.append("the posterior group lacks chain and draw dimensions")
    elif post.sizes["chain"] == 0 or post.sizes["draw"] == 0:  # a ZeroDivisionError later
        problems.append("the posterior has no draws")
    lacking = [p.name for p in law.params if p.name not in post]
    if lacking:
        problems.append(f"the posterior lacks law parameter(s) {', '.join(lacking)}")
    misshaped = [
        p.name
        for p in law.params
        if p.name in post
        and tuple(post[p.name].dims)
        != (("chain", "draw", "domain") if p.per_domain else ("chain", "draw"))
    ]
    if misshaped:
        problems.append(
            f"law parameter(s) {', '.join(misshaped)} do not match the metadata's pooling "
            f"(per-domain: {', '.join(law.per_domain) or 'none'})"
        )
    inside = {"positive": lambda v: np.isfinite(v) & (v > 0), "unit": lambda v: (v > 0) & (v < 1)}
    # NaN or out-of-support draws (a hand-edited or damaged file) gave empty bands
    outside = [
        p.name
        for p in law.params
        if p.name in post
        and not bool(np.all(inside.get(p.support, np.isfinite)(post[p.name].values)))
    ]
    if outside:
        problems.append(f"law parameter(s) {', '.join(outside)} have draws outside their support")
    if "domain" in post.dims and [str(d) for d in post["domain"].values] != domains:
        problems.append("the posterior's domains differ from those in its metadata")
    # run names are strings, which HDF5 cannot checksum, and predict --run looks runs up by them
    if "run" in post.coords and [str(r) for r in post["run"].values] != list(meta["spec"]["runs"]):
        problems.append("the posterior's runs differ from those in its metadata")
    if "sigma" not in post:
        problems.append("the posterior lacks the noise scale 'sigma'")
    if meta["spec"]["student_df"] is None and "nu" not in post:  # a TypeError in predict
        problems.append("spec.student_df is null (ν was sampled) but the posterior lacks 'nu'")
    # a NaN noise draw gave predictive bands of [null, null] with exit 0
    bad_noise = [n for n in ("sigma", "run_sd", "nu") if n in post and not _noise_ok(n, post[n])]
    if bad_noise:
        problems.append(
            f"noise draws {', '.join(bad_noise)} are not all finite and > 0 (σ and σ_run may be 0)"
        )
    if "run_z" in post and (
        "run_sd" not in post or post["run_z"].shape[2:] != (len(meta["spec"]["runs"]),)
    ):
        problems.append("the run effects 'run_z' do not match run_sd and the metadata's runs")
    # predict ignores run_z when run_effect is false, so --run said "no run effect" for a
    # file that carries one (run_sd alone is fine: a ground truth without seed noise has 0)
    if "run_z" in post and not meta["spec"]["run_effect"]:
        problems.append("spec.run_effect is false but the posterior has run effects 'run_z'")
    if "constant_data" not in idata.groups():
        problems.append("the file lacks its constant_data group (the fitted run table)")
    else:
        cd = idata.constant_data
        lost = [c for c in _REQUIRED_ROWS if f"row_{c}" not in cd]
        if lost:
            problems.append(f"constant_data lacks the run-table column(s) {', '.join(lost)}")
    if problems:
        refuse(problems)
    if redefined:
        # re-registering a law under its name (overwrite=True in a notebook) changed every
        # prediction of a posterior fitted with the earlier one, unsaid
        warnings.warn(
            f"{path} was fitted with another definition of law {law.name!r} than the one "
            "registered now (its mean function or priors changed since the fit): predictions "
            "and decisions use the law registered now; refit to use it consistently",
            stacklevel=4,
        )
    return law


_JAX_LOG_MEAN: dict = {}


def _jax_log_mean(log_mean):
    """A jitted ``log L`` kernel for one law mean function (compiled once per shape)."""
    fn = _JAX_LOG_MEAN.get(log_mean)
    if fn is None:
        import jax

        from bayesplit._jax import configure

        configure()

        def run(p, n, d, dp, dom):
            # the per-domain gather happens inside the kernel, so XLA fuses it away
            rows = {k: v[:, dom] if v.ndim == 2 else v[:, None] for k, v in p.items()}
            return log_mean(get_ops("jax"), rows, Inputs(n=n, d=d, dp=dp))

        fn = _JAX_LOG_MEAN[log_mean] = jax.jit(run)
    return fn
