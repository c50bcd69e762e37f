"""A fitted law: the ArviZ InferenceData plus what is needed to use it.

:class:`Posterior` wraps the InferenceData produced by :func:`bayesplit.fit`
(groups ``posterior``, ``sample_stats``, ``log_likelihood``, ``observed_data``,
``constant_data``) and remembers the law, the model settings and the
diagnostics gate, so a posterior saved to netCDF can be reloaded and used by
``predict``, ``allocate``, ``suggest`` and ``report`` without refitting.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesplit import _arviz
from bayesplit._io import atomic_path
from bayesplit.diagnostics import Diagnostics
from bayesplit.errors import BayesplitError
from bayesplit.laws import Inputs, Law, get_law, get_ops
from bayesplit.model import ModelSpec

_META_KEY = "bayesplit"
_ROW_COLUMNS = (
    "run_id",
    "params",
    "pretrain_tokens",
    "spec_tokens",
    "train_domain",
    "eval_domain",
    "loss",
    "seed",
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
        if "train_domain" in df:
            df["train_domain"] = (
                df["train_domain"].astype(object).where(df["train_domain"] != "", None)
            )
        return df

    def require_ok(self, force: bool = False) -> None:
        """Refuse (``DiagnosticsError``) if the gate failed, unless ``force``."""
        self.diagnostics.require_ok(force)

    def domain_index(self, domain: str | list[str] | None) -> np.ndarray:
        """Index of each domain name (BayesplitError for an unknown one)."""
        names = (
            self.domains
            if domain is None
            else ([domain] if isinstance(domain, str) else list(domain))
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

        ``max_draws`` thins to an evenly spaced subset (deterministic: ``seed`` is unused
        unless thinning must break ties), so results are reproducible.
        """
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
        d = self.draws(["sigma", "run_sd", "nu"], max_draws=max_draws)
        s = len(d["sigma"])
        d.setdefault("run_sd", np.zeros(s))
        d.setdefault("nu", np.full(s, float(self.spec.student_df)))
        return d

    def run_effect_draws(self, run: str, max_draws: int | None = None) -> np.ndarray | None:
        """Draws (S,) of the log-loss effect of a run (or trunk) the fit has seen; else None."""
        post = self.idata.posterior
        if not self.spec.run_effect or "run_z" not in post or run not in self.spec.runs:
            return None
        d = self.draws(["run_sd", "run_z"], max_draws=max_draws)
        return d["run_sd"] * d["run_z"][:, self.spec.runs.index(run)]

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
            "format": "bayesplit-posterior/1",
            "law": self.law.name,
            "per_domain": self.law.per_domain,
            "spec": self.spec.to_dict(),
            "diagnostics": self.diagnostics.to_dict(),
            "info": self.info,
        }

    def save(self, path: str | Path) -> Path:
        """Write to netCDF atomically; :meth:`load` restores it, gate included."""
        self.idata.posterior.attrs[_META_KEY] = json.dumps(self._meta(), allow_nan=True)
        with atomic_path(path) as tmp:
            _arviz.to_netcdf(self.idata, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Posterior:
        """Read a posterior written by :meth:`save` (the law must be registered)."""
        p = Path(path)
        if not p.exists():
            raise BayesplitError(f"no such posterior file: {p}")
        try:
            idata = _arviz.from_netcdf(p)
            meta = json.loads(idata.posterior.attrs[_META_KEY])
        except (OSError, KeyError, ValueError, AttributeError) as exc:
            raise BayesplitError(
                f"{p} is not a bayesplit posterior ({type(exc).__name__}: {exc})"
            ) from None
        try:
            law = get_law(meta["law"]).with_pooling(meta["per_domain"])
        except BayesplitError:
            raise BayesplitError(
                f"{p} was fitted with law {meta['law']!r}, which is not registered here; import the module that defines it (--law-module)"
            ) from None
        diag = meta["diagnostics"]
        from bayesplit.diagnostics import Thresholds

        diag["thresholds"] = Thresholds(**diag["thresholds"])
        return cls(idata, law, ModelSpec.from_dict(meta["spec"]), Diagnostics(**diag), meta["info"])

    def __repr__(self) -> str:
        gate = "ok" if self.ok else "FAILED: " + "; ".join(self.diagnostics.failures)
        return f"<Posterior law={self.law.name} domains={len(self.domains)} draws={self.n_draws} gate={gate}>"


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
        if c in ("run_id", "train_domain", "eval_domain"):
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
