"""Which runs to train next: candidates, tree-aware costs, and the value of a run for the decision.

**Candidates** are run specs (N, D, D', k) from a size ladder and log-spaced grids of
D and D'. A spec with D' = 0 is a general model evaluated on every domain; one with
D' > 0 is a specialist on domain k, evaluated on k.

**Costs** follow the tree a warmup–stable–decay (WSD) schedule makes possible: one
pretraining trunk of size N run to D_max yields a branch checkpoint at any D ≤ D_max.

* a specialist branched from a trunk that already reached D costs 6·N·D';
* a general evaluation at D (a short decay off the trunk) costs 6·N·c·D, where c is
  the cooldown fraction (default 0.1);
* if the trunk of size N has only reached D_have < D, it is continued: + 6·N·(D − D_have);
  with no trunk of that size, a new one costs 6·N·D.

Trunks are those in the existing runs, then those already suggested in the batch. A run
whose ``schedule`` label says it was not trained on a WSD schedule (a label not starting
with ``wsd``, e.g. ``cosine``) left no stable-phase checkpoints to branch from: it is no
trunk. Runs without a label are taken as WSD runs.

Where the trainer's checkpoints are known (``checkpoints=``, from
:func:`bayesplit.train.trunk.trunk_checkpoints`), a size's existing trunk is priced from them
instead: a run resumes from the last checkpoint at or before its branch point (D for a
specialist, D less its cooldown for a general model) and trains the gap again, as the
bundled trainer does; the branch points this batch already passes through are free.

**Value** is the expected reduction of the posterior uncertainty of a decision
quantity Q (e.g. the objective at the recommended allocation), computed from
posterior draws with a linear-Gaussian (ensemble) approximation: for a run whose
law value at the candidate is y, observed with noise variance r,
``Var(Q | y) = Var(Q) − Cov(Q, y)² / (Var(y) + r)``. The value reported is the drop in
the standard deviation of Q. A batch is chosen greedily by value per FLOP; after each
pick the draws are updated as if its outcome were observed (a deterministic ensemble
square-root update), so the next pick accounts for what the batch already learns and a
batch does not repeat itself.

With ``objective="regret"`` Q is a vector: the objective of the recommended plan and of
competing plans (optima of posterior draws). A run's value is then its knowledge
gradient, E[min_p E[Q_p] − min_p E[Q_p | outcome]], under the same linear-Gaussian
update: how much lower the best plan's expected objective is expected to be once the
outcome is known. Knowing the objective's level precisely is worth nothing here unless
it could change which plan is best.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesplit._parse import (
    _shown,
    check_kwargs,
    check_level,
    check_max_draws,
    check_seed,
    counts,
    is_number,
    names,
    short_repr,
)
from bayesplit.errors import BayesplitError
from bayesplit.runs import load_runs, on_domains

FLOPS_PER_PARAM_TOKEN = 6.0


@dataclass(frozen=True)
class CostModel:
    """How much compute a candidate needs, given the trunks already trained.

    ``cooldown_fraction``: tokens of the short decay that turns a stable-phase
    checkpoint at D into an evaluable general model, as a fraction of D.
    """

    cooldown_fraction: float = 0.1
    flops_per_param_token: float = FLOPS_PER_PARAM_TOKEN

    def __post_init__(self):
        # A cooldown of 0 would make every general checkpoint of a trained trunk free, and
        # suggest would rank a free candidate's value per FLOP as infinite.
        if not (
            isinstance(self.cooldown_fraction, (int, float)) and 0 < self.cooldown_fraction <= 1
        ):
            raise BayesplitError(
                f"cooldown_fraction must be in (0, 1], got {self.cooldown_fraction!r}"
            )
        f = self.flops_per_param_token
        if not (isinstance(f, (int, float)) and math.isfinite(f) and f > 0):
            raise BayesplitError(f"flops_per_param_token must be a positive number, got {f!r}")


def branch_point(
    pretrain_tokens: np.ndarray, spec_tokens: np.ndarray, cost: CostModel
) -> np.ndarray:
    """Where on its trunk a run leaves the stable phase: D for a specialist, D less its
    cooldown for a general model (the trainer decays the last ``cooldown_fraction`` of D)."""
    d = np.asarray(pretrain_tokens, float)
    return np.where(np.asarray(spec_tokens, float) > 0, d, d * (1.0 - cost.cooldown_fraction))


def whole_steps(tokens, tokens_per_step: float) -> np.ndarray:
    """Optimizer steps the bundled trainer trains for a token count: the nearest whole
    step, at least one (:func:`bayesplit.train.config.steps_for`, on arrays)."""
    return np.maximum(1.0, np.rint(np.asarray(tokens, float) / float(tokens_per_step)))


def trainer_branch(
    pretrain_tokens: np.ndarray,
    spec_tokens: np.ndarray,
    tokens_per_step: float,
    cooldown_fraction: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(branch point, branch tokens) as the bundled trainer trains a run, in whole steps:
    D and D' round to the nearest step (at least one), and a general model at n steps
    decays for ``round(cooldown_fraction · n)`` of them (at least one) from step n − k."""
    tps = float(tokens_per_step)
    n = whole_steps(pretrain_tokens, tps)
    dp = np.asarray(spec_tokens, float)
    k = np.minimum(n, np.maximum(1.0, np.rint(cooldown_fraction * n)))
    spec = dp > 0
    point = np.where(spec, n, n - k) * tps
    branch = np.where(spec, whole_steps(dp, tps), k) * tps
    return point, branch


def trunks_by_size(runs: pd.DataFrame | None) -> dict[float, list[tuple[str, float]]]:
    """Per model size of ``runs``, its trunks (trunk id, else the run id of a run without
    one) and the furthest D each reached, furthest first. Only warmup-stable-decay runs: a
    cosine run's only checkpoint is its end, decayed, and nothing branches from it (a
    branch off it was priced as 6·N·D', a tenth of what it costs)."""
    if runs is None or len(runs) == 0:
        return {}
    if "schedule" in runs:
        label = runs["schedule"]
        wsd = label.isna() | label.astype(str).str.strip().str.lower().str.startswith("wsd")
        runs = runs[wsd.to_numpy()]
    runs = runs[runs["pretrain_tokens"].notna().to_numpy()]
    out: dict[float, list[tuple[str, float]]] = {}
    for n, grp in runs.groupby("params"):
        trunk = grp["trunk_id"] if "trunk_id" in grp else pd.Series(None, grp.index, object)
        named = trunk.map(lambda t: isinstance(t, str)).astype(bool)
        # a run without a trunk id is its own trunk (run_id is only needed there)
        ids = trunk.where(named, grp["run_id"] if not named.all() else None)
        ids = ids.astype(str).to_numpy()
        d = grp["pretrain_tokens"].astype(float).to_numpy()
        # furthest first; among equals, the trunk whose furthest row comes first in the
        # table (the row idxmax picked when one trunk per size was looked at)
        best: dict[str, tuple[float, int]] = {}
        for i, (t, x) in enumerate(zip(ids, d, strict=True)):
            if t not in best or x > best[t][0]:
                best[t] = (x, i)
        order = sorted(best, key=lambda t: (-best[t][0], best[t][1]))
        out[float(n)] = [(t, float(best[t][0])) for t in order]
    return out


@dataclass
class TrunkState:
    """How far (in pretraining tokens) a trunk of each model size has been trained.

    Where the trainer's checkpoints are known (``by_checkpoints``): ``stops``, the tokens
    at which each size's trunk can be resumed (none for a size not listed; they replace the
    rule "a checkpoint at every D reached"); ``planned``, the branch points the batch's
    picks train through; ``steps`` and ``cooldowns``, each listed size's tokens per step
    and cooldown fraction, where known, so that runs are priced in the trainer's whole
    steps (:func:`trainer_branch`).
    """

    reached: dict[float, float] = field(default_factory=dict)
    source: dict[float, str] = field(default_factory=dict)  #: run id (existing) or "suggested"
    stops: dict[float, tuple[float, ...]] = field(default_factory=dict)
    planned: dict[float, tuple[float, ...]] = field(default_factory=dict)
    by_checkpoints: bool = False
    steps: dict[float, float] = field(default_factory=dict)
    cooldowns: dict[float, float] = field(default_factory=dict)

    @classmethod
    def from_runs(
        cls, runs: pd.DataFrame | None, checkpoints: dict[float, Any] | None = None
    ) -> TrunkState:
        """Trunks implied by existing runs: per size, the furthest D and its trunk (or run) id;
        ``checkpoints`` (size → tokens of resumable checkpoints, or a dict with ``tokens``,
        ``tokens_per_step``, ``cooldown_fraction`` and ``trunk``, the id of the trunk they
        belong to, branched from instead of the furthest; None: no trunk of the size is
        resumed, its runs start a new one) where they are known."""
        state = cls(by_checkpoints=checkpoints is not None)
        for n, at in (checkpoints or {}).items():
            info = at if isinstance(at, Mapping) else {"tokens": at}
            state.stops[float(n)] = tuple(sorted(float(x) for x in info["tokens"]))
            if info.get("tokens_per_step") is not None:
                state.steps[float(n)] = float(info["tokens_per_step"])
            if info.get("cooldown_fraction") is not None:
                state.cooldowns[float(n)] = float(info["cooldown_fraction"])
        named = {float(n): at["trunk"] for n, at in (checkpoints or {}).items()
                 if isinstance(at, Mapping) and "trunk" in at}  # fmt: skip
        for n, trunks in trunks_by_size(runs).items():
            if n in named and named[n] is None:
                continue  # no trunk of the size is resumed: its runs start a new one
            # the trunk whose checkpoints were given is the one branched from, where the runs
            # have it; else the furthest
            trunk, reached = next(((t, d) for t, d in trunks if t == named.get(n)), trunks[0])
            state.reached[n] = reached
            state.source[n] = trunk
        return state

    def copy(self) -> TrunkState:
        """An independent copy (greedy batches extend a copy, not the original)."""
        return TrunkState(
            dict(self.reached),
            dict(self.source),
            dict(self.stops),
            dict(self.planned),
            self.by_checkpoints,
            dict(self.steps),
            dict(self.cooldowns),
        )

    def trunk_cost(
        self,
        params: np.ndarray,
        pretrain_tokens: np.ndarray,
        cost: CostModel,
        spec_tokens: np.ndarray | None = None,
    ) -> np.ndarray:
        """FLOPs to bring each size's trunk to D (0 where it is already there); for a size
        with known ``stops``, to the run's branch point from the checkpoint before it."""
        params = np.asarray(params, float)
        d = np.asarray(pretrain_tokens, float)
        have = np.array([self.reached.get(float(n), 0.0) for n in params])
        out = cost.flops_per_param_token * params * np.maximum(d - have, 0.0)
        if self.by_checkpoints:
            dp = np.zeros_like(d) if spec_tokens is None else np.asarray(spec_tokens, float)
            for n in np.unique(params):
                at = params == n
                t, _ = self.branch(float(n), d[at], dp[at], cost)
                out[at] = cost.flops_per_param_token * n * self._retrained(float(n), t)
        return out

    def branch(
        self, params: float, pretrain_tokens: np.ndarray, spec_tokens: np.ndarray, cost: CostModel
    ) -> tuple[np.ndarray, np.ndarray]:
        """(branch point, branch tokens) of runs on the trunk of size ``params``: in the
        trainer's whole steps where they are known, else as the design counts them (D' for a
        specialist, the cooldown's share of D for a general model)."""
        d = np.asarray(pretrain_tokens, float)
        dp = np.asarray(spec_tokens, float)
        if params in self.steps:
            cooldown = self.cooldowns.get(params, cost.cooldown_fraction)
            return trainer_branch(d, dp, self.steps[params], cooldown)
        return branch_point(d, dp, cost), np.where(dp > 0, dp, cost.cooldown_fraction * d)

    def resume_point(
        self, params: float, pretrain_tokens: float, spec_tokens: float, cost: CostModel
    ) -> float | None:
        """Where the trainer resumes the trunk for this run (tokens of its last checkpoint or
        planned point at or before the branch point; 0 from scratch); None by the design's
        rule (no checkpoints known)."""
        if not self.by_checkpoints:
            return None
        t, _ = self.branch(params, np.array([pretrain_tokens]), np.array([spec_tokens]), cost)
        before = [x for x in (*self.stops.get(params, ()), *self.planned.get(params, ()))
                  if x <= t[0]]  # fmt: skip
        return max(before, default=0.0)

    def _retrained(self, params: float, t: np.ndarray) -> np.ndarray:
        """Tokens of trunk the trainer adds to train through branch points ``t`` besides the
        batch's own: each point is trained from the furthest checkpoint or planned point
        before it, and a new point can shorten the stretch to the planned point after it."""
        stops = np.array(sorted({0.0, *self.stops.get(params, ())}))
        planned = np.array(sorted(self.planned.get(params, ())))

        def resume(y: np.ndarray) -> np.ndarray:  # the last checkpoint at or before y
            return stops[np.searchsorted(stops, y, side="right") - 1]

        if not len(planned):
            return t - resume(t)
        i = np.searchsorted(planned, t, side="right")
        before = np.where(i > 0, planned[np.maximum(i - 1, 0)], -np.inf)
        after = planned[np.minimum(i, len(planned) - 1)]
        own = t - np.maximum(before, resume(t))
        saved = np.where(
            i < len(planned),
            np.maximum(t, resume(after)) - np.maximum(before, resume(after)),
            0.0,
        )
        return own - saved

    def extend(
        self,
        params: float,
        pretrain_tokens: float,
        spec_tokens: float = 0.0,
        cost: CostModel = CostModel(),
    ) -> None:
        """Record that the trunk of size ``params`` will reach ``pretrain_tokens`` (and, for
        a size with known checkpoints, pass the run's branch point)."""
        if pretrain_tokens > self.reached.get(params, 0.0):
            self.reached[params] = pretrain_tokens
            # an existing trunk carried further keeps its id: renamed "suggested", the
            # batch's later branches off it were trained on a new trunk by `train execute`
            self.source.setdefault(params, "suggested")
        if self.by_checkpoints:
            t, _ = self.branch(params, np.array([pretrain_tokens]), np.array([spec_tokens]), cost)
            self.planned[params] = (*self.planned.get(params, ()), float(t[0]))


def candidate_grid(
    params: Sequence[float],
    pretrain_tokens: Sequence[float],
    spec_tokens: Sequence[float],
    domains: Sequence[str],
    models: Sequence[str] | None = None,
) -> pd.DataFrame:
    """All run specs: every (N, D) general model and every (N, D, D' > 0, k) specialist.

    ``models`` names the ladder entry of each size (carried to the trainer).
    """
    if not len(params) or not len(pretrain_tokens) or not len(domains):
        raise BayesplitError("candidates need at least one model size, one D and one domain")
    names = list(models) if models is not None else [None] * len(params)
    rows = []
    for n, name in zip(params, names, strict=True):
        for d in pretrain_tokens:
            rows.append((float(n), float(d), 0.0, None, name))
            for dp in spec_tokens:
                if dp > 0:
                    rows.extend((float(n), float(d), float(dp), k, name) for k in domains)
    return pd.DataFrame(
        rows, columns=["params", "pretrain_tokens", "spec_tokens", "train_domain", "model"]
    )


def trainable(candidates: pd.DataFrame, entries: Sequence[dict]) -> pd.DataFrame:
    """The candidates the bundled trainer can train as asked on their ladder model.

    The trainer counts tokens in whole optimizer steps of ``batch_size × seq_len`` and
    refuses a D or D' under half a step (it would train a whole one, twice what was asked
    or more) or under ``MIN_PLAUSIBLE_COUNT`` tokens. The D' grid comes from the fitted
    runs, so for a larger model with a larger batch it can fall below that: such
    candidates are dropped here rather than stopping ``train execute`` or ``loop``.
    """
    from bayesplit.runs import MIN_PLAUSIBLE_COUNT

    per_step = {e["name"]: float(e["batch_size"]) * float(e["seq_len"]) for e in entries}
    tps = candidates["model"].map(per_step).to_numpy(dtype=float)

    def exact(x: np.ndarray) -> np.ndarray:
        steps = np.round(x / tps)
        return (steps >= 1) & (steps * tps >= MIN_PLAUSIBLE_COUNT)

    d = candidates["pretrain_tokens"].to_numpy(dtype=float)
    dp = candidates["spec_tokens"].to_numpy(dtype=float)
    keep = exact(d) & ((dp == 0) | exact(dp))
    if not keep.any():
        raise BayesplitError(
            "no candidate run is whole optimizer steps of its ladder model: the D and D' "
            "grids lie below half a step of every size"
        )
    return candidates[keep].reset_index(drop=True)


def ladder_count(entries: Sequence[dict], observed_params: Sequence[float]) -> str:
    """Which of a ladder's counts is N in a run table: ``params`` or ``params_with_embeddings``.

    Runs trained on a ladder report one of its two counts; the one that the observed N
    values sit on (within 1%) is the table's convention. Suggested sizes must be in it,
    or the trainer would build a different model than the one the law was asked about.
    """
    observed = np.unique(np.asarray(observed_params, dtype=float))

    def hits(key: str) -> int:
        counts = np.array([float(e[key]) for e in entries if e.get(key)])
        if not len(counts) or not len(observed):
            return 0
        rel = np.abs(observed[:, None] / counts[None, :] - 1)
        return int((rel.min(axis=1) < 0.01).sum())

    return "params_with_embeddings" if hits("params_with_embeddings") > hits("params") else "params"


def ladder_as_fitted(ladder, runs: pd.DataFrame) -> tuple[list[dict], str]:
    """A ladder file's entries as built at the fitted runs' vocabulary, and which count
    (``params`` or ``params_with_embeddings``) is N in those runs (see :func:`ladder_count`)."""
    from bayesplit.train.ladder import at_vocab, load_ladder

    entries = load_ladder(ladder)
    vocab = fitted_vocab(runs)
    if vocab is not None:
        entries = [at_vocab(e, vocab) for e in entries]
    return entries, ladder_count(entries, runs["params"])


def fitted_vocab(runs: pd.DataFrame) -> int | None:
    """The one tokenizer vocabulary of the fitted runs, or None (not recorded, or several).

    A ladder's with-embeddings counts are at its default vocabulary; runs trained on a
    corpus with another one record other counts, and only at their own vocabulary do the
    ladder's sizes line up with the N the law was fitted on.
    """
    if "vocab_size" not in runs:
        return None
    v = pd.to_numeric(runs["vocab_size"], errors="coerce").dropna().unique()
    return int(v[0]) if len(v) == 1 else None


def log_grid(lo: float, hi: float, num: int) -> np.ndarray:
    """``num`` log-spaced values from lo to hi, inclusive."""
    if not (0 < lo <= hi) or num < 1:
        raise BayesplitError(f"bad grid {lo}:{hi}:{num}")
    return np.geomspace(lo, hi, num)


def candidate_costs(
    candidates: pd.DataFrame, trunks: TrunkState, cost: CostModel = CostModel()
) -> np.ndarray:
    """Incremental FLOPs of every candidate given the trunks (vectorized)."""
    n = candidates["params"].to_numpy(float)
    d = candidates["pretrain_tokens"].to_numpy(float)
    dp = candidates["spec_tokens"].to_numpy(float)
    branch = np.where(dp > 0, dp, cost.cooldown_fraction * d)
    for size in trunks.steps:  # in the trainer's whole steps where they are known
        at = n == size
        if at.any():
            branch[at] = trunks.branch(size, d[at], dp[at], cost)[1]
    return trunks.trunk_cost(n, d, cost, dp) + cost.flops_per_param_token * n * branch


#: Two run specs within this relative difference in each of N, D and D' are the same run
#: (a trainer records whole steps of tokens, so a run lands near, not on, its spec).
SAME_SPEC_RTOL = 0.01


def already_measured(
    candidates: pd.DataFrame,
    runs: pd.DataFrame | None,
    steps: Mapping[float, float] | None = None,
) -> np.ndarray:
    """Candidates whose (N, D, D', k) was already run: N, D and D' each within 1%
    (:data:`SAME_SPEC_RTOL`) of a run's, on the same train domain (D' = 0 only matches 0).

    ``steps`` (tokens per step by model size, :attr:`TrunkState.steps`): two rows of one
    such size are one run when the trainer trains them in the same whole steps of D and D'
    (exactly: 202 steps is not the stored 200, though within 1%). A D of 24.46 steps is
    the stored run of 24, which the trainer skips; 1.9% apart, it was suggested again.
    """
    out = np.zeros(len(candidates), dtype=bool)
    if runs is None or len(runs) == 0 or len(candidates) == 0:
        return out
    cols = ["params", "pretrain_tokens", "spec_tokens"]
    have = runs[[*cols, "train_domain"]].drop_duplicates()
    step_c, step_h = _trainer_steps(candidates, steps), _trainer_steps(have, steps)
    dom_c, dom_h = _branch_domain(candidates), _branch_domain(have)
    for dom in np.unique(dom_h):
        rows = dom_c == dom
        if not rows.any():
            continue
        mine = dom_h == dom
        close = np.ones((int(rows.sum()), int(mine.sum())), dtype=bool)
        for col in cols:
            a = candidates[col].to_numpy(float)[rows][:, None]
            b = have[col].to_numpy(float)[mine][None, :]
            close &= np.abs(a - b) <= SAME_SPEC_RTOL * np.abs(b)  # 0 matches only 0
        # one size whose steps are known on both sides: the same whole steps, exactly
        sc, sh = step_c[rows][:, None, :], step_h[mine][None, :, :]
        both = ~np.isnan(sc[..., 0]) & ~np.isnan(sh[..., 0])
        same_steps = (sc == sh).all(axis=-1)
        close = np.where(both, same_steps, close)
        out[rows] = close.any(axis=1)
    return out


def _trainer_steps(df: pd.DataFrame, steps: Mapping[float, float] | None) -> np.ndarray:
    """Per row, (N, D steps, D' steps) as the trainer trains it where its size's tokens per
    step are known (NaN elsewhere): D and D' to the nearest whole step, at least one."""
    out = np.full((len(df), 3), np.nan)
    if not steps:
        return out
    n = df["params"].to_numpy(float)
    d = df["pretrain_tokens"].to_numpy(float)
    dp = df["spec_tokens"].to_numpy(float)
    for size, tps in steps.items():
        at = n == size
        out[at, 0] = size
        out[at, 1] = whole_steps(d[at], tps)
        out[at, 2] = np.where(dp[at] > 0, whole_steps(dp[at], tps), 0.0)
    return out


def _spec_frame(df: pd.DataFrame) -> pd.DataFrame:
    """(N, D, D', train domain of a specialized row) per row: what makes two runs one."""
    return pd.DataFrame(
        {
            "params": df["params"].to_numpy(float),
            "pretrain_tokens": df["pretrain_tokens"].to_numpy(float),
            "spec_tokens": df["spec_tokens"].to_numpy(float),
            "train_domain": _branch_domain(df),
        }
    )


def _branch_domain(df: pd.DataFrame) -> np.ndarray:
    """The train domain of a specialized row, "" for a general one."""
    spec = df["spec_tokens"].to_numpy(float) > 0
    dom = df["train_domain"].astype(object).where(df["train_domain"].notna(), "").astype(str)
    return np.where(spec, dom.to_numpy(), "")


# -- the acquisition ------------------------------------------------------------
# Nodes of E[f(z)], z ~ N(0, 1), for the value of a run that measures one observable.
_GH_Z, _GH_W = np.polynomial.hermite_e.hermegauss(24)
_GH_W = _GH_W / _GH_W.sum()
# Standard normal vectors (antithetic, fixed seed) for a general model's K observables.
_MC_DRAWS = 256


@dataclass
class Ensemble:
    """Centred draws of the decision quantity and of every candidate's observables.

    ``q``: (S,) decision quantity, or (S, P) objectives of P competing plans (column 0
    the recommended plan; see ``objective="regret"``); ``Y``: (S, M) law value (log
    loss) of every observable; ``obs_of``: for each candidate, the columns of Y it
    observes (one for a specialist, K for a general model); ``noise``: observation noise
    variance; ``q_mean``: the draws' mean of q (the ensemble itself is centred).
    """

    q: np.ndarray
    Y: np.ndarray
    obs_of: list[np.ndarray]
    noise: float
    q_mean: np.ndarray | float = 0.0

    @classmethod
    def build(
        cls, q: np.ndarray, Y: np.ndarray, obs_of: list[np.ndarray], noise: float
    ) -> Ensemble:
        """Centre the draws, dropping draws with non-finite values (needs ≥ 10 left)."""
        q = np.asarray(q, dtype=float)
        Y = np.asarray(Y)
        if Y.dtype != np.float32:  # float32 (the fast kernel) is kept: it halves the work
            Y = Y.astype(float)
        ok = np.isfinite(q.reshape(len(q), -1)).all(axis=1) & np.all(np.isfinite(Y), axis=1)
        if len(ok) < 10:  # a known truth's one draw: nothing to learn, and finite
            raise BayesplitError(
                f"suggest needs at least 10 posterior draws to rank candidates, the posterior "
                f"has {len(ok)} (a known truth's posterior has one: there is nothing to learn)"
            )
        if ok.sum() < 10:
            raise BayesplitError(
                "fewer than 10 posterior draws give finite values; cannot rank candidates"
            )
        q = q[ok]
        Y = Y[ok] if not ok.all() else Y
        Y = Y - Y.mean(axis=0, dtype=float).astype(Y.dtype)
        q_mean = q.mean(axis=0)
        return cls(q - q_mean, Y, obs_of, float(noise), q_mean)

    @property
    def n_draws(self) -> int:
        """Number of ensemble members (posterior draws kept)."""
        return len(self.q)

    @property
    def plans(self) -> bool:
        """True when q holds competing plans (the regret objective)."""
        return self.q.ndim == 2

    def var_q(self) -> float:
        """Current variance of the decision quantity across the ensemble."""
        return float(self.q @ self.q / (self.n_draws - 1))

    def uncertainty(self) -> float:
        """What the acquisition lowers: sd(Q), or the expected regret of the plan.

        The expected regret is E[Q_plan − min_p Q_p] over the draws, with the plans'
        posterior means held where they are (a fantasized outcome moves them by zero on
        average): the objective a decision now is expected to give away.
        """
        if not self.plans:
            return float(np.sqrt(self.var_q()))
        full = self.q + self.q_mean
        return float(np.mean(full[:, 0] - full.min(axis=1)))

    def values(self) -> np.ndarray:
        """Expected value of each candidate's outcome for the decision.

        For a scalar Q: the expected drop in sd(Q). For competing plans: the knowledge
        gradient, the expected drop in the posterior mean objective of the best plan
        once the outcome is known (= the expected drop of the plan's expected regret).
        """
        s1 = self.n_draws - 1
        v = np.einsum("ij,ij->j", self.Y, self.Y, dtype=float) / s1  # Var(y_j)
        if self.plans:
            return self._knowledge_gradient(v)
        var_q = self.var_q()
        c = (self.q.astype(self.Y.dtype) @ self.Y).astype(float) / s1  # Cov(Q, y_j)
        single = c**2 / (v + self.noise)  # variance reduction from one observable
        out = np.empty(len(self.obs_of))
        for i, cols in enumerate(self.obs_of):
            if len(cols) == 1:
                red = single[cols[0]]
            else:  # a general model observes K domains at once: joint Gaussian update
                Yc = self.Y[:, cols].astype(float)
                C = Yc.T @ Yc / s1 + self.noise * np.eye(len(cols))
                red = float(c[cols] @ np.linalg.solve(C, c[cols]))
            out[i] = np.sqrt(var_q) - np.sqrt(max(var_q - red, 0.0))
        return out

    def _knowledge_gradient(self, v: np.ndarray) -> np.ndarray:
        """E[best mean now − best mean after observing], linear-Gaussian in the outcome.

        After observing y (standardized outcome u ~ N(0, I)) plan p's mean moves to
        m_p + b_p·u with b_p = Cov(Q_p, y) chol(Var y + noise)⁻ᵀ. Measured against the
        current best plan b (the min over plans minus plan b's own move, which is zero
        on average), the integrand is ≤ 0 and smooth in the nodes, so 24 Gauss–Hermite
        nodes (one observable) or 256 antithetic normal vectors (a general model's K)
        suffice.
        """
        s1 = self.n_draws - 1
        m = np.asarray(self.q_mean, dtype=float)
        best = int(np.argmin(m))
        gap = m - m[best]  # (P,) >= 0
        C = (self.q.T.astype(self.Y.dtype) @ self.Y).astype(float) / s1  # (P, M) Cov(Q_p, y_j)
        C -= C[best]  # moves relative to the best plan's
        out = np.empty(len(self.obs_of))
        single = [i for i, cols in enumerate(self.obs_of) if len(cols) == 1]
        if single:
            cols = np.array([self.obs_of[i][0] for i in single])
            b = C[:, cols] / np.sqrt(v[cols] + self.noise)  # (P, n)
            e = np.zeros(len(cols))
            for z, w in zip(_GH_Z, _GH_W, strict=True):
                e += w * np.min(gap[:, None] + b * z, axis=0)
            out[single] = -e
        rng = np.random.default_rng(0)
        u = None
        for i, cols in enumerate(self.obs_of):
            if len(cols) == 1:
                continue
            if u is None or u.shape[1] != len(cols):
                half = rng.standard_normal((_MC_DRAWS // 2, len(cols)))
                u = np.vstack([half, -half])
            Yc = self.Y[:, cols].astype(float)
            L = np.linalg.cholesky(Yc.T @ Yc / s1 + self.noise * np.eye(len(cols)))
            B = np.linalg.solve(L, C[:, cols].T).T  # (P, K): C L^-T
            out[i] = -np.mean(np.min(gap[None, :] + u @ B.T, axis=1))
        return np.maximum(out, 0.0)

    def condition(self, candidate: int) -> None:
        """Update the draws as if the candidate's observables were measured (serial square-root EnKF)."""
        s1 = self.n_draws - 1
        for col in self.obs_of[candidate]:
            z = self.Y[:, col].astype(float)
            v = z @ z / s1
            if v <= 0:
                continue
            gamma = 1.0 - np.sqrt(self.noise / (v + self.noise))
            self.q = self.q - np.multiply.outer(gamma / s1 / v * z, z @ self.q)
            # python floats keep a float32 ensemble in float32 (NumPy scalars would promote it)
            zy = (z.astype(self.Y.dtype) @ self.Y) * float(gamma / s1 / v)
            self.Y -= np.outer(z.astype(self.Y.dtype), zy)


#: values at or below this fraction of the first pick's are rounding error, not information
NEGLIGIBLE_VALUE = 1e-9


def greedy_batch(
    ensemble: Ensemble,
    candidates: pd.DataFrame,
    trunks: TrunkState,
    n: int,
    *,
    cost_model: CostModel = CostModel(),
    max_run_flops: float | None = None,
    exclude: np.ndarray | None = None,
) -> list[dict]:
    """Pick up to ``n`` candidates greedily by value per FLOP, conditioning on each pick.

    Stops early once no candidate's value is above :data:`NEGLIGIBLE_VALUE` times the first
    pick's: the outcomes of the runs already picked leave nothing for the rest to learn,
    and ranking by value per FLOP would then just list runs by cost.
    """
    if n < 1:
        raise BayesplitError(f"-n (in Python: n=) must be >= 1, got {n}")
    trunks = trunks.copy()
    reached = dict(trunks.reached)  # before the batch: past it, a pick rests on an earlier one
    blocked = np.zeros(len(candidates), dtype=bool) if exclude is None else exclude.copy()
    sd_before = ensemble.uncertainty()
    picks = []
    for _ in range(n):
        costs = candidate_costs(candidates, trunks, cost_model)
        allowed = ~blocked
        if max_run_flops is not None:
            allowed &= costs <= max_run_flops
        if not allowed.any():
            break
        values = ensemble.values()
        if picks:
            allowed &= values > NEGLIGIBLE_VALUE * picks[0]["value"]
            if not allowed.any():
                break
        score = np.where(allowed, values / costs, -np.inf)
        j = int(np.argmax(score))
        row = candidates.iloc[j]
        n_j, d_j = float(row["params"]), float(row["pretrain_tokens"])
        dp_j = float(row["spec_tokens"])
        have = trunks.reached.get(n_j, 0.0)
        retrain = float(trunks.trunk_cost(np.array([n_j]), np.array([d_j]), cost_model,
                                          np.array([dp_j]))[0])  # fmt: skip
        resumes_at = trunks.resume_point(n_j, d_j, dp_j, cost_model)
        if have >= d_j:
            branch_from = {"trunk": trunks.source.get(n_j), "params": n_j, "pretrain_tokens": d_j}
        elif have > 0:
            branch_from = {
                "trunk": trunks.source.get(n_j),
                "params": n_j,
                "pretrain_tokens": d_j,
                "extend_from": have,
            }
        else:
            branch_from = None
        sd_pre = ensemble.uncertainty()
        picks.append(
            {
                "index": j,
                "cost_flops": float(costs[j]),
                "value": float(values[j]),
                "value_per_flop": float(values[j] / costs[j]),
                "branch_from": branch_from,
                "trunk_flops": retrain,
                "resumes_at": resumes_at,
                # a branch of an existing trunk past where it stood: an earlier pick takes it there
                "carried": n_j in reached and d_j > reached[n_j] and have >= d_j,
                "sd_before": float(sd_pre),
            }
        )
        ensemble.condition(j)
        picks[-1]["sd_after"] = ensemble.uncertainty()
        # the pick and any candidate within SAME_SPEC_RTOL of it: sizes 3e8 and 3.01e8 put
        # the same run in a batch twice, one of them priced as a second trunk
        blocked |= already_measured(candidates, candidates.iloc[[j]], trunks.steps)
        blocked[j] = True
        trunks.extend(n_j, d_j, dp_j, cost_model)
    for p in picks:
        p["sd_initial"] = float(sd_before)
    return picks


# -- suggest --------------------------------------------------------------------
OBJECTIVES = ("regret", "decision", "split", "point")


@dataclass
class Suggestions:
    """A ranked batch of run specs with their cost, value and predicted loss.

    ``table`` is a DataFrame (one row per suggestion); :meth:`to_list` gives the
    JSON records the trainer executes (``bayesplit train execute``). ``sd_initial`` and
    the table's ``sd_after`` are what the acquisition lowers: the sd of the decision
    quantity, or for ``objective="regret"`` the plan's expected regret (nats). For the sd,
    a pick's ``value`` is its before-minus-after exactly; for the regret, ``value`` is the
    knowledge gradient and before/after the ensemble's own estimate of the same drop, which
    agree in size, not digit for digit.
    """

    table: pd.DataFrame
    objective: str
    quantity: str
    sd_initial: float
    n_candidates: int
    budget: float | None
    #: what the caller should know about the batch (e.g. fewer runs than asked for)
    notes: list[str] = field(default_factory=list)

    def to_list(self) -> list[dict]:
        """The suggestions as JSON-ready dicts (the file ``bayesplit train execute`` reads)."""
        keys = [
            "params",
            "pretrain_tokens",
            "spec_tokens",
            "train_domain",
            "model",
            "cost_flops",
            "value",
            "value_per_flop",
            "predicted_loss",
            "branch_from",
            "reason",
            "rank",
            "sd_after",
        ]
        out = []
        for r in self.table.to_dict("records"):
            rec = {k: r.get(k) for k in keys}
            if rec["train_domain"] is not None and not isinstance(rec["train_domain"], str):
                rec["train_domain"] = None
            out.append(rec)
        return out

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        # each row's reason already says what the run is, what it costs and what it buys
        what = self.quantity if self.objective == "regret" else f"the sd of {self.quantity}"
        head = (
            f"<Suggestions: {len(self)} of {self.n_candidates:,} candidates, to cut {what} "
            f"(now {self.sd_initial:.4g})"
        )
        reasons = [f"  {r}" for r in self.table.get("reason", [])]
        return "\n".join([head, *reasons, *(f"  ! {n}" for n in self.notes)]) + ">"


def default_grids(
    posterior, ladder_params: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate grids around the data: sizes, D (8 values) and D' (6 values, plus 0)."""
    runs = posterior.runs
    n_obs = np.sort(runs["params"].unique())
    sizes = (
        np.asarray(ladder_params, dtype=float)
        if ladder_params is not None
        else np.unique(np.concatenate([n_obs, [n_obs.max() * 3]]))
    )
    d_lo, d_hi = runs["pretrain_tokens"].min(), runs["pretrain_tokens"].max()
    dgrid = log_grid(d_lo, d_hi * 4, 8)
    sp = runs.loc[runs["spec_tokens"] > 0, "spec_tokens"]
    dp_lo = sp.min() if len(sp) else d_lo / 100
    dp_hi = sp.max() * 4 if len(sp) else d_hi / 4
    dpgrid = log_grid(dp_lo, dp_hi, 6)
    return sizes, dgrid, dpgrid


def observable_matrix(
    posterior, candidates: pd.DataFrame, draws: dict, domains: Sequence[str]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Law values (log loss) per draw for every observable of every candidate."""
    n = candidates["params"].to_numpy(float)
    d = candidates["pretrain_tokens"].to_numpy(float)
    dp = candidates["spec_tokens"].to_numpy(float)
    spec = dp > 0
    dom_index = {k: posterior.domains.index(k) for k in domains}
    # specialists: one observable each; general models: one per domain
    sp_idx = np.flatnonzero(spec)
    gen_idx = np.flatnonzero(~spec)
    k_sp = np.array(
        [dom_index[k] for k in candidates["train_domain"].to_numpy()[sp_idx]], dtype=int
    )
    kk = np.array(list(dom_index.values()), dtype=int)
    pts_n = np.concatenate([n[sp_idx], np.repeat(n[gen_idx], len(kk))])
    pts_d = np.concatenate([d[sp_idx], np.repeat(d[gen_idx], len(kk))])
    pts_dp = np.concatenate([dp[sp_idx], np.zeros(len(gen_idx) * len(kk))])
    pts_k = np.concatenate([k_sp, np.tile(kk, len(gen_idx))])
    Y = posterior.log_mean(pts_n, pts_d, pts_dp, pts_k, draws=draws, fast=True)
    obs_of: list[np.ndarray] = [np.empty(0, dtype=int)] * len(candidates)
    for col, i in enumerate(sp_idx):
        obs_of[i] = np.array([col])
    base = len(sp_idx)
    for g, i in enumerate(gen_idx):
        obs_of[i] = base + g * len(kk) + np.arange(len(kk))
    return Y, obs_of


def decision_quantity(
    posterior,
    objective: str,
    draws: dict,
    *,
    budget: float | None,
    point: dict | None = None,
    allocate_kwargs: dict | None = None,
    max_draws: int | None = None,
) -> tuple[np.ndarray, str]:
    """Q per draw, and a label: the objective at the recommended plan, the optimal split, or a point's loss."""
    if objective not in OBJECTIVES:
        raise BayesplitError(
            f"--objective (in Python: objective=) must be one of {', '.join(OBJECTIVES)}, "
            f"got {objective!r}"
        )
    if objective == "point":
        point = _check_point(point)
        k = posterior.domain_index(point["domain"])[0]
        y = posterior.log_mean(
            point["params"], point["pretrain_tokens"], point.get("spec_tokens", 0.0), k, draws=draws
        )
        return (
            np.exp(np.asarray(y).reshape(-1)),
            f"loss on {point['domain']} at N={point['params']:.3g}, D={point['pretrain_tokens']:.3g}, D'={point.get('spec_tokens', 0.0):.3g}",
        )
    if budget is None:
        raise BayesplitError(
            f"--objective {objective} needs --budget, the target compute (in Python: budget=)"
        )
    from bayesplit.allocation import allocate

    kwargs = {k: v for k, v in (allocate_kwargs or {}).items() if v is not None}
    alloc = allocate(posterior, budget=budget, force=True, max_draws=max_draws, **kwargs)
    return alloc.decision_quantity(objective, draws), alloc.describe_quantity(objective)


class NoCandidateFits(BayesplitError):
    """Every candidate costs more than ``max_run_flops`` (the loop ends on it when the cap
    is the budget it has left)."""


#: The columns of a candidate table (``model``, the ladder model's name, is optional).
CANDIDATE_COLUMNS = ("params", "pretrain_tokens", "spec_tokens", "train_domain")


def _check_candidates(candidates, domains: Sequence[str]) -> pd.DataFrame:
    """A ready-made candidate table checked as the grids are: positive N and D, D' >= 0,
    a specialist's train domain among ``domains``. Returns a copy with a fresh index, a
    ``model`` column and no train domain on a general row."""
    if not isinstance(candidates, pd.DataFrame):
        raise BayesplitError(
            f"candidates must be a DataFrame with columns {', '.join(CANDIDATE_COLUMNS)}, "
            f"got {_shown(candidates)}"
        )
    missing = [c for c in CANDIDATE_COLUMNS if c not in candidates.columns]
    if missing:
        raise BayesplitError(f"candidates has no column {', '.join(missing)}")
    out = candidates.reset_index(drop=True).copy()
    if len(out) == 0:
        raise BayesplitError("candidates is empty: no candidates to rank")
    for col in ("params", "pretrain_tokens", "spec_tokens"):
        out[col] = counts(out[col].to_numpy(object), f"candidates[{col!r}]", col == "spec_tokens")
    spec = out["spec_tokens"].to_numpy() > 0
    dom = out["train_domain"].astype(object)
    for i in np.flatnonzero(spec):
        if dom[i] not in domains:
            raise BayesplitError(
                f"candidates row {i}: a specialist (spec_tokens > 0) needs a train_domain "
                f"among {', '.join(domains)}, got {_shown(dom[i])}"
            )
    out["train_domain"] = dom.where(spec, None)
    if "model" not in out:
        out["model"] = None
    return out


def _check_checkpoints(checkpoints) -> dict[float, dict] | None:
    """``checkpoints=``: a dict of model size → token counts (numbers >= 0), or → a dict
    of ``tokens``, ``tokens_per_step``, ``cooldown_fraction`` and ``trunk``."""
    if checkpoints is None:
        return None
    if not isinstance(checkpoints, dict):
        raise BayesplitError(
            "checkpoints must be a dict of model size -> tokens of its trunk's checkpoints, "
            f"got {_shown(checkpoints)}"
        )
    out = {}
    for n, at in checkpoints.items():
        if not (is_number(n) and 0 < n < math.inf):
            raise BayesplitError(f"checkpoints: a model size must be a positive number, got {n!r}")
        info = dict(at) if isinstance(at, Mapping) else {"tokens": at}
        extra = set(info) - {"tokens", "tokens_per_step", "cooldown_fraction", "trunk"}
        if extra or "tokens" not in info:
            raise BayesplitError(
                f"checkpoints[{n!r}] must be a list of token counts or a dict with tokens and "
                f"optional tokens_per_step, cooldown_fraction and trunk, got {_shown(at)}"
            )
        if not (info.get("trunk") is None or isinstance(info["trunk"], str)):
            raise BayesplitError(
                f"checkpoints[{n!r}]: trunk must be a trunk id (text), got {_shown(info['trunk'])}"
            )
        tokens = info["tokens"]
        if isinstance(tokens, (str, bytes)) or not isinstance(tokens, (Sequence, np.ndarray)):
            raise BayesplitError(
                f"checkpoints[{n!r}] must be a list of token counts, got {_shown(tokens)}"
            )
        for x in tokens:
            if not (is_number(x) and 0 <= x < math.inf):
                raise BayesplitError(
                    f"checkpoints[{n!r}]: token counts must be numbers >= 0, got {x!r}"
                )
        tps, cooldown = info.get("tokens_per_step"), info.get("cooldown_fraction")
        if tps is not None and not (is_number(tps) and 0 < tps < math.inf):
            raise BayesplitError(
                f"checkpoints[{n!r}]: tokens_per_step must be a positive number, got {tps!r}"
            )
        if cooldown is not None and not (is_number(cooldown) and 0 < cooldown <= 1):
            raise BayesplitError(
                f"checkpoints[{n!r}]: cooldown_fraction must be in (0, 1], got {cooldown!r}"
            )
        out[float(n)] = {**info, "tokens": [float(x) for x in tokens]}
    return out


def _check_point(point) -> dict:
    """The target of ``objective="point"``: params, pretrain_tokens, domain and optional
    spec_tokens, each checked as predict checks them."""
    if not isinstance(point, dict) or not point:
        raise BayesplitError(
            "--objective point needs --point (in Python: point=), a target point (params, "
            "pretrain_tokens, spec_tokens, domain)"
        )
    missing = [k for k in ("params", "pretrain_tokens", "domain") if k not in point]
    if missing:
        raise BayesplitError(f"point needs {', '.join(missing)} (and spec_tokens, default 0)")
    unknown = sorted(set(point) - {"params", "pretrain_tokens", "spec_tokens", "domain"})
    if unknown:
        raise BayesplitError(
            f"point has no key {', '.join(map(repr, unknown))} (it takes params, "
            "pretrain_tokens, spec_tokens, domain)"
        )
    if not isinstance(point["domain"], str) or not point["domain"].strip():
        # None or a list ranked runs for the first domain, labelled "loss on None"
        raise BayesplitError(
            f"point['domain'] must be one domain name, got {_shown(point['domain'])}"
        )
    checked = {"domain": point["domain"]}
    for key in ("params", "pretrain_tokens", "spec_tokens"):
        value = point.get(key, 0.0)
        arr = counts(value, f"point[{key!r}]", zero_ok=key == "spec_tokens")
        if arr.size != 1:
            raise BayesplitError(f"point[{key!r}] must be one number, got {arr.size}")
        checked[key] = float(arr[0])
    return checked


def _empty(value) -> bool:
    """An empty list or array (not text, which :func:`counts` refuses)."""
    return not isinstance(value, (str, bytes)) and hasattr(value, "__len__") and not len(value)


def suggest(
    posterior,
    *,
    budget: float | None = None,
    n: int = 4,
    objective: str = "regret",
    runs: pd.DataFrame | str | Path | None = None,
    ladder: str | None = None,
    params: Sequence[float] | None = None,
    pretrain_tokens: Sequence[float] | None = None,
    spec_tokens: Sequence[float] | None = None,
    candidates: pd.DataFrame | None = None,
    domains: Sequence[str] | None = None,
    point: dict | None = None,
    max_run_flops: float | None = None,
    cost_model: CostModel = CostModel(),
    checkpoints: dict[float, Any] | None = None,
    allocate_kwargs: dict | None = None,
    max_draws: int | None = 2000,
    level: float = 0.9,
    force: bool = False,
    seed: int = 0,
) -> Suggestions:
    """Rank candidate runs by how much they are expected to improve the decision, per FLOP
    (by default: how much they cut the plan's expected regret).

    Parameters
    ----------
    posterior
        A fitted :class:`~bayesplit.posterior.Posterior` (refused if it failed its gate, unless ``force``).
    budget
        Target compute (FLOPs) of the decision the runs should inform.
    n
        Batch size.
    objective
        ``"regret"`` (the default): the expected regret of the recommended plan against the
        optima of 40 posterior draws — a run is worth the expected drop of the best plan's
        expected objective once its outcome is known (the knowledge gradient), so only what
        can change the plan counts; ``"decision"``: the sd of the objective Σ w_k L_k at the
        recommended allocation (its level too, e.g. the irreducible losses, which no plan
        changes); ``"split"``: the optimal pretraining fraction; ``"point"``: the loss at
        ``point``.
    runs
        Runs already done, as a DataFrame or anything :func:`~bayesplit.runs.load_runs`
        reads (default: the posterior's own rows); they define existing trunks and are
        not suggested again.
    ladder
        Model ladder file whose sizes are candidate N (default: sizes around the data), in
        the N convention of the fitted runs (:func:`ladder_count`) and, where the runs
        record one, at their tokenizer vocabulary (:func:`fitted_vocab`); each suggestion
        names its ladder model, which is what the trainer builds.
    params, pretrain_tokens, spec_tokens
        Candidate grids (override the defaults).
    candidates
        A ready-made candidate table (columns params, pretrain_tokens, spec_tokens, train_domain).
    domains
        Domains to consider (default: all).
    point
        For ``objective="point"``: dict with params, pretrain_tokens, spec_tokens, domain.
    max_run_flops
        Cap on the compute of any one suggestion.
    cost_model
        Tree-aware cost settings.
    checkpoints
        Per model size, the tokens at which its trunk can be resumed, as the bundled trainer
        keeps them, or a dict of ``tokens`` with the size's ``tokens_per_step``,
        ``cooldown_fraction`` and ``trunk`` (the id of the trunk of ``runs`` they belong
        to, which ``branch_from`` then names, default the furthest; None where no trunk of
        the size will be resumed: its runs start a new one)
        (:func:`bayesplit.train.trunk.trunk_checkpoints` reads them from a workdir); a size
        not listed has none. A run is then priced from the
        checkpoint before its branch point, as the trainer will train it (in its whole
        steps where they are given). Default (None): the design's rule, a checkpoint at
        every D a trunk has reached.
    allocate_kwargs
        Passed to :func:`bayesplit.allocate` (trunk, weights, ...) for the decision objectives.
    max_draws
        Posterior draws used (thinned evenly).
    level
        Probability of the predictive interval reported for each suggestion.
    force
        Use a posterior that failed its diagnostics gate.
    seed
        Seed of the predictive draws (the ranking itself is deterministic).

    Returns
    -------
    Suggestions
    """
    from bayesplit.posterior import check_posterior

    check_posterior(posterior)
    posterior.require_ok(force)
    seed = check_seed(seed)
    level = check_level(level)  # before the allocation and the ranking, not after
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise BayesplitError(f"n must be a whole number of runs >= 1, got {n!r}")
    if n < 1:  # before the allocation, which takes seconds
        raise BayesplitError(f"-n (in Python: n=) must be >= 1, got {n}")
    if max_run_flops is not None and not (is_number(max_run_flops) and max_run_flops > 0):
        raise BayesplitError(
            f"max_run_flops must be a positive number of FLOPs, got {short_repr(max_run_flops)}"
        )
    # the grids as predict takes points: a negative or NaN size was blamed on the posterior
    # ("fewer than 10 posterior draws give finite values"), and "1e8" was read as a number
    if params is not None:
        params = counts(params, "params")
    if pretrain_tokens is not None:
        pretrain_tokens = counts(pretrain_tokens, "pretrain_tokens")
    if spec_tokens is not None and not _empty(spec_tokens):  # [] : no specialists
        spec_tokens = counts(spec_tokens, "spec_tokens", zero_ok=True)
    checkpoints = _check_checkpoints(checkpoints)
    if not isinstance(cost_model, CostModel):
        raise BayesplitError(
            f"cost_model must be a bayesplit.design.CostModel, got {_shown(cost_model)}"
        )
    if allocate_kwargs is not None and not isinstance(allocate_kwargs, dict):
        raise BayesplitError(
            f"allocate_kwargs must be a dict of allocate's arguments, got {_shown(allocate_kwargs)}"
        )
    if allocate_kwargs:
        from bayesplit.allocation import allocate

        # suggest sets these for the decision itself: "got multiple values" TypeErrors
        taken = ("posterior", "budget", "force", "max_draws")
        check_kwargs(allocate_kwargs, allocate, "allocate_kwargs", taken, "suggest")
    if ladder is not None and not isinstance(ladder, (str, os.PathLike)):
        # allocate takes a list of sizes as its ladder: here that is params
        if params is not None:
            raise BayesplitError("give params or ladder, not both")
        params, ladder = counts(ladder, "ladder"), None
    max_draws = check_max_draws(max_draws, minimum=10)  # the ranking needs draws
    domains = names(domains) if domains is not None else posterior.domains
    posterior.domain_index(domains)  # validates names
    if runs is not None:
        runs = load_runs(runs)  # a path too, as fit takes it; validated before the work
        inside = on_domains(runs, posterior.domains, "the runs already done")
    done = posterior.runs if runs is None else runs
    # a domain renamed since the fit: its specialists were not counted as done, unsaid
    elsewhere = [] if runs is None else sorted(set(runs.loc[~inside, "eval_domain"].astype(str)))
    model_names = None
    from_table = candidates is not None
    if candidates is None:
        sizes = params
        if ladder is not None and params is None:
            entries, count = ladder_as_fitted(ladder, posterior.runs)
            sizes = [float(e[count]) for e in entries]
            model_names = [e["name"] for e in entries]
        s_def, d_def, dp_def = default_grids(posterior, sizes)
        d_grid = np.asarray(pretrain_tokens, float) if pretrain_tokens is not None else d_def
        dp_grid = np.asarray(spec_tokens, float) if spec_tokens is not None else dp_def
        if not posterior.law.uses_spec_tokens:
            dp_grid = np.array([])
        candidates = candidate_grid(s_def, d_grid, dp_grid, domains, model_names)
        if ladder is not None and params is None:
            candidates = trainable(candidates, entries)
    else:
        candidates = _check_candidates(candidates, domains)
    if len(candidates) == 0:
        raise BayesplitError("no candidates to rank")
    # one spec once: repeated rows (a candidate table, or a size given twice) put the same
    # run in a batch twice, as picks are blocked by row, not by spec
    candidates = candidates[~_spec_frame(candidates).duplicated().to_numpy()].reset_index(drop=True)

    draws = posterior.draws(max_draws=max_draws)
    q, label = decision_quantity(
        posterior,
        objective,
        draws,
        budget=budget,
        point=point,
        allocate_kwargs=allocate_kwargs,
        max_draws=max_draws,
    )
    if np.ndim(q) == 1 and np.ptp(q) == 0:
        # a law without D' has one optimal split in every draw: each run was "worth" 0,
        # and a batch of one was returned, "cutting the sd from 0 to 0"
        raise BayesplitError(
            f"{label} is the same in every posterior draw: no run can inform it; "
            + (
                f"law {posterior.law.name} has no specialization term: rank runs by the "
                "regret or decision objective"
                if objective == "split" and not posterior.law.uses_spec_tokens
                else "choose another objective"
            )
        )
    Y, obs_of = observable_matrix(posterior, candidates, draws, domains)
    noise_d = posterior.noise_draws(max_draws=max_draws)
    noise = float(np.median(noise_d["sigma"] ** 2 + noise_d["run_sd"] ** 2))
    ensemble = Ensemble.build(q, Y, obs_of, noise)
    trunks = TrunkState.from_runs(done, checkpoints)
    measured = already_measured(candidates, done, trunks.steps)
    picks = greedy_batch(
        ensemble,
        candidates,
        trunks,
        n,
        cost_model=cost_model,
        max_run_flops=max_run_flops,
        exclude=measured,
    )
    if not picks and measured.all():
        raise BayesplitError(
            f"all {len(candidates):,} candidates have been run already; give other sizes or "
            "token counts to choose from (--ladder; in Python: ladder=, or params= / "
            "pretrain_tokens= / spec_tokens=)"
        )
    if not picks:
        cheapest = float(candidate_costs(candidates, trunks, cost_model)[~measured].min())
        smaller = (
            "give cheaper candidates"
            if from_table
            else "add smaller sizes to the ladder"
            if ladder is not None and params is None
            else "give smaller sizes or token counts (--ladder; in Python: ladder=, or "
            "params= / pretrain_tokens= / spec_tokens=)"
        )
        raise NoCandidateFits(
            f"no candidate fits under --max-run-flops {max_run_flops:.3g} (in Python: "
            f"max_run_flops=): the cheapest not yet run costs {cheapest:.3g} FLOPs; raise the "
            f"cap or {smaller}"
        )
    forced = posterior.diagnostics.forced_note()  # --force: say so, as allocate does
    notes = [] if forced is None else [forced]
    sizes = set(candidates["params"].astype(float))
    unmatched = sorted(n for n, c in (checkpoints or {}).items() if c["tokens"] and n not in sizes)
    if unmatched:
        # a size keyed in another N convention was priced as a trunk from scratch, unsaid
        notes.append(
            "checkpoints were given for model sizes no candidate has "
            f"({', '.join(f'{n:.6g}' for n in unmatched)}); candidates of a size not listed "
            "are priced as new trunks: key them by the candidates' N"
        )
    if elsewhere:
        notes.append(
            f"the runs already done have rows on domains the posterior does not model "
            f"({', '.join(elsewhere)}); those rows do not count as done"
        )
    if len(picks) < n:
        after = trunks.copy()
        for p in picks:
            row = candidates.iloc[p["index"]]
            after.extend(
                float(row["params"]),
                float(row["pretrain_tokens"]),
                float(row["spec_tokens"]),
                cost_model,
            )
        # a pick and its twins (one run once rounded) are not "other candidates"
        chosen = candidates.iloc[[p["index"] for p in picks]]
        left = ~measured & ~already_measured(candidates, chosen, trunks.steps)
        if max_run_flops is not None:
            left &= candidate_costs(candidates, after, cost_model) <= max_run_flops
        k = int(left.sum())
        why = (
            f"{f'the {k:,} other candidates add' if k > 1 else 'the one other candidate adds'} "
            f"nothing to {label} once these runs' outcomes are known"
            if k
            else "no other candidate is left"
            + (
                " under --max-run-flops (in Python: max_run_flops=)"
                if max_run_flops is not None
                else ""
            )
        )
        notes.append(f"{len(picks)} runs suggested, not {n}: {why}")

    rows = []
    for rank, p in enumerate(picks, start=1):
        c = candidates.iloc[p["index"]]
        spec = float(c["spec_tokens"]) > 0
        dom = c["train_domain"] if spec else None
        pred = posterior.predict(
            c["params"],
            c["pretrain_tokens"],
            c["spec_tokens"],
            domain=[dom] if spec else domains,
            level=level,
            seed=seed,
        )
        if spec:
            s = pred.isel(point=0, domain=0)
            predicted = {
                "domain": dom,
                "median": s["median"].item(),
                "predictive": [s["predictive_lo"].item(), s["predictive_hi"].item()],
            }
        else:  # a general model: the mean loss over the domains it is evaluated on
            new = pred["new_run"].isel(point=0).mean("domain").values
            law = pred["law"].isel(point=0).mean("domain").values
            lo, hi = np.quantile(new, [(1 - level) / 2, (1 + level) / 2])
            predicted = {
                "domain": "mean over domains",
                "median": float(np.median(law)),
                "predictive": [float(lo), float(hi)],
            }
        where = (
            "a new trunk"
            if p["branch_from"] is None
            else (
                f"continuing the N={c['params']:.3g} trunk"
                if "extend_from" in p["branch_from"]
                else f"a branch of the {'suggested' if p['branch_from'].get('trunk') == 'suggested' else 'existing'} N={c['params']:.3g} trunk"
                + (" as an earlier pick carries it past its D" if p.get("carried") else "")
                + (
                    f", {p['trunk_flops']:.3g} FLOPs of it trained again "
                    + (
                        f"from D={p['resumes_at']:.3g}"
                        if p["resumes_at"]
                        else "from scratch (no checkpoint of it before the branch point)"
                    )
                    if p["trunk_flops"] > 0
                    else ""
                )
            )
        )
        kind = (
            f"specialize N={c['params']:.3g} on {dom} for D'={c['spec_tokens']:.3g} from the D={c['pretrain_tokens']:.3g} checkpoint"
            if spec
            else f"general N={c['params']:.3g} model at D={c['pretrain_tokens']:.3g}, evaluated on all domains"
        )
        reason = (
            f"#{rank}: {kind}; expected to cut {'' if objective == 'regret' else 'the sd of '}{label} from {p['sd_before']:.4g} to {p['sd_after']:.4g} "
            f"for {p['cost_flops']:.3g} FLOPs ({where})"
        )
        rows.append(
            {
                "rank": rank,
                "params": float(c["params"]),
                "pretrain_tokens": float(c["pretrain_tokens"]),
                "spec_tokens": float(c["spec_tokens"]),
                "train_domain": dom,
                "model": c.get("model"),
                "cost_flops": p["cost_flops"],
                "value": p["value"],
                "value_per_flop": p["value_per_flop"],
                "predicted_loss": predicted,
                "branch_from": p["branch_from"],
                "reason": reason,
                "sd_after": p["sd_after"],
            }
        )
    return Suggestions(
        table=pd.DataFrame(rows),
        objective=objective,
        quantity=label,
        sd_initial=picks[0]["sd_initial"],
        n_candidates=len(candidates),
        budget=budget,
        notes=notes,
    )
