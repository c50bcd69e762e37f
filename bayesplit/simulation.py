"""Simulated campaigns: does choosing runs by their value for the decision pay?

A campaign starts from a small seed design drawn from a known :class:`GroundTruth`,
then repeats: fit → recommend a plan for the target budget → pick the next batch of
runs by a *policy* → observe simulated losses → refit, until the experiment budget is
spent. Along the way it records the decision regret (how much worse the recommended
plan is than the true optimum, under the true law), the error of the predicted loss at
the target, and whether its credible interval covered the truth.

Policies (all draw from the same candidate grid with the same tree-aware costs):

* ``active``: :func:`bayesplit.design.suggest` with its default ``objective="regret"``
  (knowledge gradient: how much a run is expected to lower the plan's expected regret,
  per FLOP);
* ``active-decision``: the same with ``objective="decision"`` (how much a run shrinks the
  sd of the objective at the plan, per FLOP);
* ``grid``: a full factorial ladder N × D × D' run in a fixed order, smallest models
  first, as a paper would (the baseline);
* ``random``: uniformly random unmeasured candidates;
* ``cost-random``: random with probability ∝ 1/cost;
* ``uncertainty``: the largest predictive variance of the candidate's own loss per FLOP.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import islice

import numpy as np
import pandas as pd

from bayesplit._parse import (
    _shown,
    check_level,
    check_max_draws,
    check_seed,
    counts,
    derived_seed,
    is_number,
    progress_messages,
    short_repr,
)
from bayesplit.design import (
    CostModel,
    TrunkState,
    already_measured,
    candidate_costs,
    candidate_grid,
    observable_matrix,
    suggest,
)
from bayesplit.errors import BayesplitError
from bayesplit.truth import GroundTruth

POLICIES = ("active", "active-decision", "grid", "random", "cost-random", "uncertainty")


def check_stop_regret(value: float | None) -> None:
    """``--stop-regret`` is a share of the optimum's objective, strictly between 0 and 1."""
    if value is not None and not 0 < value < 1:
        raise BayesplitError(
            f"--stop-regret (in Python: stop_regret=) must be between 0 and 1 (e.g. 0.01), "
            f"got {value}"
        )


@dataclass
class CampaignConfig:
    """What a campaign may do and how it is scored.

    ``budget`` is the target compute of the decision; ``experiment_budget`` the FLOPs
    the campaign may spend on runs. ``params``, ``pretrain_tokens``, ``spec_tokens`` span
    the candidate grid (a D' of 0 adds nothing: every (N, D) general run is a candidate);
    ``seed_design`` is the first batch every policy starts from.
    ``stop_regret``: end the campaign once the fit's own expected relative regret of its
    plan is at or below this (``bayesplit loop --stop-regret``); None runs every round.
    """

    budget: float
    experiment_budget: float
    params: list[float]
    pretrain_tokens: list[float]
    spec_tokens: list[float]
    seed_design: pd.DataFrame
    batch: int = 4
    trunk: str = "shared"
    max_rounds: int = 12
    chains: int = 2
    draws: int = 300
    warmup: int = 300
    level: float = 0.9
    max_draws: int = 600
    cost_model: CostModel = field(default_factory=CostModel)
    stop_regret: float | None = None

    def __post_init__(self) -> None:
        # checked here: a budget of "1e21" or -1 was refused only after simulate had
        # compiled the sampler, and a batch of 0 or a level of 90 got into the campaign
        from bayesplit.compute import ComputeModel

        if not (is_number(self.budget) and 0 < self.budget < math.inf):
            raise BayesplitError(
                f"budget must be a positive number of FLOPs, got {short_repr(self.budget)}"
            )
        if not (is_number(self.experiment_budget) and self.experiment_budget > 0):  # inf: no cap
            raise BayesplitError(
                "experiment_budget must be a positive number of FLOPs (inf for no limit), "
                f"got {self.experiment_budget!r}"
            )
        # kept as lists of floats: one number (params=1e8) was taken, and failed in the
        # first campaign with "'float' object is not iterable"
        self.params = counts(self.params, "params").tolist()
        self.pretrain_tokens = counts(self.pretrain_tokens, "pretrain_tokens").tolist()
        if len(np.atleast_1d(np.asarray(self.spec_tokens, dtype=object))):  # none: no D' grid
            # 0 is no specialization, as suggest takes it: the general runs are always there
            self.spec_tokens = counts(self.spec_tokens, "spec_tokens", zero_ok=True).tolist()
        else:
            self.spec_tokens = []
        for name, least in (("batch", 1), ("max_rounds", 0), ("chains", 1), ("draws", 10)):
            check_max_draws(getattr(self, name), name, minimum=least, none_ok=False)
        check_max_draws(self.warmup, "warmup", minimum=10, none_ok=False)
        check_max_draws(self.max_draws, "max_draws", minimum=10)
        ComputeModel(self.trunk)  # shared or independent
        check_level(self.level)
        check_stop_regret(self.stop_regret)
        # an AttributeError inside the first campaign ("'NoneType' object has no attribute
        # 'iterrows'") for a seed design or cost model of the wrong kind
        if not isinstance(self.seed_design, pd.DataFrame) or not len(self.seed_design):
            raise BayesplitError(
                "seed_design must be a run table (a DataFrame of params, pretrain_tokens, "
                f"spec_tokens, train_domain), got {_shown(self.seed_design)}"
            )
        if not isinstance(self.cost_model, CostModel):
            raise BayesplitError(
                f"cost_model must be a bayesplit.design.CostModel, got {_shown(self.cost_model)}"
            )


def design_cost(design: pd.DataFrame, trunks: TrunkState, cost: CostModel) -> float:
    """Tree-aware FLOPs of running a design, in order (updates ``trunks``)."""
    total = 0.0
    for _, row in design.iterrows():
        one = pd.DataFrame([row])
        total += float(candidate_costs(one, trunks, cost)[0])
        trunks.extend(float(row["params"]), float(row["pretrain_tokens"]))
    return total


def _trunk_ids(design: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Every run of size N in a campaign branches from the one trunk of that size."""
    out = design.copy()
    out["trunk_id"] = [f"trunk-N{_exact(n)}-s{seed}" for n in out["params"]]
    out["seed"] = seed
    out["run_id"] = [
        f"N{_exact(r.params)}-D{_exact(r.pretrain_tokens)}"
        + (f"-{r.train_domain}-Dp{_exact(r.spec_tokens)}" if r.spec_tokens > 0 else "")
        for r in out.itertuples()
    ]
    return out


def _exact(value: float) -> str:
    """The shortest ``g`` format (3 digits at least) that reads back as ``value``: the same
    label for a value in every batch, and distinct labels for distinct values (``.6g`` gave
    1e7 and 1.0000001e7 one run id, and the campaign a duplicate-rows error)."""
    value = float(value)
    for digits in range(3, 18):
        label = f"{value:.{digits}g}"
        if float(label) == value:
            return label
    return repr(value)


def grid_order(candidates: pd.DataFrame) -> np.ndarray:
    """The grid policy's fixed order: smallest model first, then D, then D'."""
    return np.lexsort(
        (
            candidates["spec_tokens"].to_numpy(),
            candidates["pretrain_tokens"].to_numpy(),
            candidates["params"].to_numpy(),
        )
    )


def pick(
    policy: str,
    posterior,
    candidates: pd.DataFrame,
    runs: pd.DataFrame,
    trunks: TrunkState,
    config: CampaignConfig,
    rng: np.random.Generator,
    *,
    remaining: float = math.inf,
) -> list[int]:
    """Indices of the candidates a policy runs next (at most ``config.batch``).

    Every policy chooses among the candidates not yet run whose cost (given ``trunks``)
    fits in ``remaining``, the experiment FLOPs left: a baseline that drew runs it cannot
    pay for would end its campaign with budget unspent. Empty when nothing fits.
    """
    if policy not in POLICIES:
        raise BayesplitError(f"unknown policy {policy!r}; choose from {', '.join(POLICIES)}")
    done = already_measured(candidates, runs)
    costs = candidate_costs(candidates, trunks, config.cost_model)
    open_ = ~done & (costs <= remaining)
    if not open_.any():
        return []
    if policy in ("active", "active-decision"):
        sug = suggest(
            posterior,
            budget=config.budget,
            n=config.batch,
            objective="decision" if policy == "active-decision" else "regret",
            candidates=candidates,
            runs=runs,
            max_draws=config.max_draws,
            allocate_kwargs={"trunk": config.trunk},
            cost_model=config.cost_model,
            max_run_flops=remaining if math.isfinite(remaining) else None,
            force=True,
        )
        index_of: dict[tuple, int] = {}
        for i, r in enumerate(candidates.itertuples()):
            key = (
                r.params,
                r.pretrain_tokens,
                r.spec_tokens,
                r.train_domain if r.spec_tokens > 0 else None,
            )
            index_of.setdefault(key, i)
        # in suggest's rank order: take_batch commits in this order and skips what no longer
        # fits the budget, so the best run must come first (grid order dropped it)
        ranked = [
            (r["params"], r["pretrain_tokens"], r["spec_tokens"], r["train_domain"])
            for r in sug.to_list()
        ]
        idx = [index_of[k] for k in ranked if k in index_of]
        return idx[: config.batch]
    free = np.flatnonzero(open_)
    if policy == "grid":
        order = [i for i in grid_order(candidates) if open_[i]]
        return order[: config.batch]
    if policy == "random":
        return list(rng.choice(free, size=min(config.batch, len(free)), replace=False))
    if policy == "cost-random":
        w = 1.0 / costs[free]
        return list(
            rng.choice(free, size=min(config.batch, len(free)), replace=False, p=w / w.sum())
        )
    if policy == "uncertainty":
        draws = posterior.draws(max_draws=config.max_draws)
        Y, obs_of = observable_matrix(posterior, candidates, draws, posterior.domains)
        noise = posterior.noise_draws(max_draws=config.max_draws)
        var = Y.var(axis=0) + float(np.median(noise["sigma"] ** 2))
        score = np.array([var[o].sum() for o in obs_of]) / costs
        score[~open_] = -np.inf
        chosen = []
        for _ in range(config.batch):  # no fantasies: the baseline just takes the top scores
            j = int(np.argmax(score))
            if not np.isfinite(score[j]):
                break
            chosen.append(j)
            score[j] = -np.inf
        return chosen
    raise AssertionError(f"policy {policy!r} is in POLICIES but has no rule")


def evaluate_decision(posterior, truth: GroundTruth, optimum, config: CampaignConfig) -> dict:
    """Regret of the posterior's plan under the true law, and how well it predicted its own loss.

    ``expected_regret`` is the posterior's own estimate of ``regret`` (mean over draws of the
    plan's relative regret against each draw's optimum); ``p_within_1pct`` the posterior
    probability that the regret is at most 1%.
    """
    from bayesplit.allocation import allocate

    alloc = allocate(
        posterior,
        budget=config.budget,
        trunk=config.trunk,
        force=True,
        max_draws=config.max_draws,
        level=config.level,
    )
    n, d, dp = alloc.plan.arrays(alloc.domains)
    true_obj = float(np.mean([truth.loss(n, d, dp[i], k) for i, k in enumerate(alloc.domains)]))
    best = optimum.to_dict()["objective"]["median"]
    pred = alloc.to_dict()["objective"]
    return {
        "regret": true_obj / best - 1,
        "true_objective": true_obj,
        "predicted_median": pred["median"],
        "predicted_lo": pred["credible"][0],
        "predicted_hi": pred["credible"][1],
        "covered": pred["credible"][0] <= true_obj <= pred["credible"][1],
        "pred_error": pred["median"] / true_obj - 1,
        "plan_params": alloc.plan.params,
        "plan_pretrain_fraction": alloc.pretrain_fraction,
        "expected_regret": alloc.expected_regret_rel,
        "p_within_1pct": float(np.mean(alloc.relative_regret <= 0.01)),
    }


def run_campaign(
    truth: GroundTruth,
    policy: str,
    config: CampaignConfig,
    *,
    seed: int = 0,
    refitter=None,
    progress: bool | Callable[[str], None] | None = None,
    candidates: pd.DataFrame | None = None,
    observe: Callable[[pd.DataFrame, int], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Simulate one campaign; one row per round (after each refit).

    Parameters
    ----------
    truth
        The ground-truth law that generates losses.
    policy
        One of :data:`POLICIES`.
    config
        Budgets, candidate grid, seed design, batch size and fit settings.
    seed
        Seed of the simulated losses, the sampler and the random policies.
    refitter
        A :class:`bayesplit.fitting.Refitter` to reuse (compiled once); built if None.
    progress
        True prints a one-line summary to stderr after each round; a callable receives it.
    candidates
        The runs a policy may choose from (columns params, pretrain_tokens, spec_tokens,
        train_domain); default the factorial grid of ``config``.
    observe
        ``observe(design, seed)`` returns the run-table rows of a batch of runs; default
        losses simulated from ``truth``. Replaying a measured campaign passes a lookup into
        the measured pool here (``truth`` then only scores the decisions).
    """
    from bayesplit.allocation import allocate

    check_campaign(truth, config)  # the seed design ran over the experiment budget
    if policy not in POLICIES:
        raise BayesplitError(f"unknown policy {policy!r}; choose from {', '.join(POLICIES)}")
    seed = check_seed(seed)
    progress = progress_messages(progress)
    rng = np.random.default_rng(seed)
    domains = list(truth.domains)
    if candidates is None:
        candidates = candidate_grid(
            config.params, config.pretrain_tokens, config.spec_tokens, domains
        )
    candidates = candidates.reset_index(drop=True)
    trunks = TrunkState()
    shifts: dict = {}
    if observe is None:

        def observe(design: pd.DataFrame, s: int) -> pd.DataFrame:
            return truth.simulate(design, seed=s, trunk_shifts=shifts)

    design = _trunk_ids(config.seed_design, seed)
    spent = design_cost(design, trunks, config.cost_model)
    runs = observe(design, noise_seed(seed, 0))
    optimum = allocate(truth.as_posterior(), budget=config.budget, trunk=config.trunk)
    if refitter is None:
        refitter = make_refitter(truth, config)
    rows = []
    for rnd in range(config.max_rounds + 1):
        start = time.perf_counter()
        post = refitter.fit(runs, seed=derived_seed(seed, rnd, scale=1000))
        fit_s = time.perf_counter() - start
        rec = {
            "policy": policy,
            "seed": seed,
            "round": rnd,
            "spent_flops": spent,
            "n_runs": runs["run_id"].nunique(),
            "n_rows": len(runs),
            "fit_seconds": fit_s,
            "gate_ok": post.ok,
        }
        rec.update(evaluate_decision(post, truth, optimum, config))
        rows.append(rec)
        if progress:
            progress(
                f"{policy} seed {seed} round {rnd}: spent {spent:.3g} FLOPs, regret {rec['regret']:.3%}, covered {rec['covered']}"
            )
        if spent >= config.experiment_budget or rnd == config.max_rounds:
            break
        if config.stop_regret is not None and rec["expected_regret"] <= config.stop_regret:
            break
        chosen = pick(
            policy, post, candidates, runs, trunks, config, rng,
            remaining=config.experiment_budget - spent,
        )  # fmt: skip
        new, spent = take_batch(chosen, candidates, trunks, config, spent, seed)
        if new is None:
            break
        runs = pd.concat([runs, observe(new, noise_seed(seed, rnd + 1))], ignore_index=True)
    return pd.DataFrame(rows)


def noise_seed(seed: int, batch: int) -> int:
    """The noise seed of batch ``batch`` (0: the seed design) of campaign ``seed``.

    One stream per (campaign, batch), from :class:`numpy.random.SeedSequence`. The earlier
    ``seed * 1000 + batch`` gave campaign 0's batches the seed-design noise of campaigns 1,
    2, ...: campaigns a paired bootstrap over seeds takes as independent.
    """
    hi, lo = np.random.SeedSequence([check_seed(seed), int(batch)]).generate_state(2)
    return (int(hi) << 31) ^ int(lo)  # below 2**63


def take_batch(
    chosen,
    candidates: pd.DataFrame,
    trunks: TrunkState,
    config: CampaignConfig,
    spent: float,
    seed: int,
) -> tuple[pd.DataFrame | None, float]:
    """Commit the picked candidates, in order, while the experiment budget allows.

    Each run is charged at its tree-aware cost given the trunks committed so far (``trunks``
    is extended in place). Returns the batch's design with trunk ids (None if nothing fit
    the budget) and the FLOPs spent after it.
    """
    batch = []
    for j in chosen:
        one = candidates.iloc[[j]]
        c = float(candidate_costs(one, trunks, config.cost_model)[0])
        if spent + c > config.experiment_budget:
            continue
        spent += c
        trunks.extend(float(one["params"].iloc[0]), float(one["pretrain_tokens"].iloc[0]))
        batch.append(one)
    if not batch:
        return None, spent
    return _trunk_ids(pd.concat(batch, ignore_index=True), seed), spent


def compute_to_reach(history: pd.DataFrame, threshold: float = 0.01) -> float:
    """Experiment FLOPs after which the regret stays at or below ``threshold`` (inf if never)."""
    h = history.sort_values("round")
    ok = (h["regret"] <= threshold).to_numpy()
    for i in range(len(ok)):
        if ok[i:].all():
            return float(h["spent_flops"].iloc[i])
    return float("inf")


def make_refitter(truth: GroundTruth, config: CampaignConfig):
    """A :class:`~bayesplit.fitting.Refitter` sized for every run a campaign could make."""
    from bayesplit.fitting import Refitter
    from bayesplit.model import reference_scales

    k = len(truth.domains)
    n_spec = sum(v > 0 for v in config.spec_tokens)  # a D' of 0 adds no candidate
    n_cand = len(config.params) * len(config.pretrain_tokens) * (1 + n_spec * k)
    seed_rows = truth.simulate(config.seed_design)
    return Refitter(
        truth.law,
        list(truth.domains),
        reference_scales(seed_rows),
        max_rows=n_cand * k + len(seed_rows),
        max_runs=len(config.params) + 1,
        chains=config.chains,
        draws=config.draws,
        warmup=config.warmup,
        run_effect=truth.noise.seed_sd > 0,
    )


#: More campaigns per policy than this is a typo: each one fits a model several times.
MAX_SEEDS = 10_000


def check_campaign(truth: GroundTruth, config: CampaignConfig) -> None:
    """Refuse a campaign that cannot run, before its first fit: not a truth or a config
    ("'NoneType' object has no attribute 'domains'"), a seed design over the experiment
    budget, or a target budget below the seed design's smallest run."""
    from bayesplit.allocation import check_budget_buys_a_run
    from bayesplit.compute import ComputeModel

    if not isinstance(truth, GroundTruth):
        raise BayesplitError(
            "truth must be a bayesplit.truth.GroundTruth (example_truth, truth_from_posterior, "
            f"truth_from_prior), got {_shown(truth)}"
        )
    if not isinstance(config, CampaignConfig):
        raise BayesplitError(f"config must be a CampaignConfig, got {_shown(config)}")
    check_seed_design_fits(config)
    # the first fit is of the seed design alone: a budget below its smallest run failed
    # in the first round's allocate, after that fit
    check_budget_buys_a_run(
        config.budget, config.seed_design, len(truth.domains), ComputeModel(config.trunk)
    )


def check_seed_design_fits(config: CampaignConfig) -> None:
    """Refuse an experiment budget the seed design alone overspends: every campaign would
    start above it, so no policy could choose a run and the budget would not hold."""
    cost = design_cost(config.seed_design, TrunkState(), config.cost_model)
    if cost > config.experiment_budget:
        raise BayesplitError(
            f"the seed design costs {cost:.3g} FLOPs, more than the experiment budget "
            f"{config.experiment_budget:.3g}; raise it or give smaller --params/--pretrain-tokens "
            "(in Python: a cheaper seed_design)"
        )


def simulate(
    truth: GroundTruth,
    config: CampaignConfig,
    *,
    policies: Sequence[str] = POLICIES,
    seeds: Sequence[int] = (0,),
    progress: bool | Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Run one campaign per (policy, seed); the rounds of all of them in one table.

    Parameters
    ----------
    truth
        The known law that gives the simulated losses and scores each decision: a
        :class:`~bayesplit.truth.GroundTruth` (:func:`~bayesplit.truth.example_truth`,
        :func:`~bayesplit.truth.truth_from_posterior`, :func:`~bayesplit.truth.truth_from_prior`).
    config
        A :class:`CampaignConfig`: target and experiment budgets, the grid of candidate
        runs, the seed design, batch size, rounds and the short fits' settings.
    policies
        Which of :data:`POLICIES` to run.
    seeds
        One campaign per policy and seed; a seed fixes the noise streams of its seed design
        and of each batch, the same for every policy (so policies are compared paired).
    progress
        True prints a line to stderr after each round; a callable receives it.

    Returns
    -------
    pandas.DataFrame
        One row per round of every campaign: ``policy``, ``seed``, ``round``,
        ``spent_flops``, ``n_runs``, ``regret`` (relative, of the recommended plan under
        the true law), ``true_objective``, ``predicted_median``/``predicted_lo``/
        ``predicted_hi`` (the fitted objective and its credible interval at
        ``config.level``), ``covered``, ``pred_error``, ``gate_ok``, ``expected_regret``
        and ``p_within_1pct`` (the fit's own view of its regret), ...

    The sampler is compiled once and reused by every campaign.
    """
    check_campaign(truth, config)
    policies = [policies] if isinstance(policies, str) else list(policies)  # not its letters
    if not policies:
        raise BayesplitError(f"give at least one policy ({', '.join(POLICIES)})")
    bad = [p for p in policies if p not in POLICIES]
    if bad:
        raise BayesplitError(f"unknown policy {bad[0]!r}; choose from {', '.join(POLICIES)}")
    twice = sorted({p for p in policies if list(policies).count(p) > 1})
    if twice:  # each campaign would run twice and its seeds count double
        raise BayesplitError(f"policy {', '.join(twice)} named twice")
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise BayesplitError(
            f"seeds must be a list of whole numbers, e.g. [0, 1, 2], got {seeds!r}"
        )
    # islice: range(10**23) was made into a list (memory grew without a word)
    seeds = [check_seed(s, "each seed") for s in islice(seeds, MAX_SEEDS + 1)]  # 1.5: seed 1
    if len(seeds) > MAX_SEEDS:
        raise BayesplitError(f"at most {MAX_SEEDS:,} seeds (campaigns per policy)")
    if not seeds:
        raise BayesplitError("simulate needs at least one seed")
    counted = Counter(seeds)
    twice = sorted(s for s, c in counted.items() if c > 1)
    if twice:  # the same campaigns twice, counted as two seeds
        raise BayesplitError(f"seed {', '.join(map(str, twice))} given twice")
    progress = progress_messages(progress)
    refitter = make_refitter(truth, config)
    out = []
    for s in seeds:
        for p in policies:
            out.append(run_campaign(truth, p, config, seed=s, refitter=refitter, progress=progress))
    return pd.concat(out, ignore_index=True)


#: The columns of a campaign history that :func:`summarize` reads.
SUMMARIZED_COLUMNS = ("policy", "seed", "round", "regret", "spent_flops", "pred_error", "covered")
#: ... and that :func:`bayesplit.plots.plot_campaigns` draws.
PLOTTED_COLUMNS = ("policy", "round", "regret", "spent_flops", "covered")


def check_history(history, columns: Sequence[str]) -> None:
    """Refuse, in words, what is not a campaign history (:func:`simulate`'s table) with
    ``columns``: a wrong table failed with a KeyError such as 'policy'."""
    if not isinstance(history, pd.DataFrame):
        raise BayesplitError(
            f"history must be the DataFrame simulate() returns, got {_shown(history)}"
        )
    missing = [c for c in columns if c not in history.columns]
    if missing:
        raise BayesplitError(
            "history must be the DataFrame simulate() returns; it lacks column(s) "
            + ", ".join(missing)
        )
    if len(history) == 0:
        raise BayesplitError("history is empty: it holds no round of any campaign")


def check_threshold(threshold) -> float:
    """A regret threshold: a number >= 0 (a share: 0.01 is 1%)."""
    if not (is_number(threshold) and 0 <= threshold < math.inf):
        raise BayesplitError(f"threshold must be a regret >= 0, got {_shown(threshold)}")
    return float(threshold)


def summarize(history: pd.DataFrame, threshold: float = 0.01) -> pd.DataFrame:
    """Per policy: median compute to reach ``threshold`` regret, final regret, coverage,
    and the share of the campaign's fits that passed the diagnostics gate."""
    check_history(history, SUMMARIZED_COLUMNS)
    check_threshold(threshold)
    rows = []
    for policy, g in history.groupby("policy", sort=False):
        reach = np.array([compute_to_reach(h, threshold) for _, h in g.groupby("seed")])
        final = g.sort_values("round").groupby("seed").tail(1)
        rows.append(
            {
                "policy": policy,
                "seeds": int(g["seed"].nunique()),
                "compute_to_reach": float(np.median(reach)),
                "reached": float(np.isfinite(reach).mean()),
                "final_regret": float(final["regret"].median()),
                "final_pred_error": float(final["pred_error"].abs().median()),
                "coverage": float(g["covered"].mean()),
                # round 0 is the seed design alone, where the prior speaks loudest
                "coverage_first_round": float(g.loc[g["round"] == 0, "covered"].mean()),
                "coverage_later_rounds": float(g.loc[g["round"] > 0, "covered"].mean()),
                "spent_flops": float(final["spent_flops"].median()),
                # campaigns refit with short chains: say how many fits the gate would refuse
                "gate_passed": float(g["gate_ok"].astype(bool).mean())
                if "gate_ok" in g
                else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def _median_ratio(a: np.ndarray, b: np.ndarray) -> float:
    """median(a) / median(b) for compute-to-reach values, where inf means "never"."""
    ma, mb = float(np.median(a)), float(np.median(b))
    if np.isinf(mb):
        return float("nan") if np.isinf(ma) else 0.0
    return ma / mb


#: The columns of a campaign history that :func:`compare_policies` reads.
_COMPARED_COLUMNS = ("policy", "seed", "round", "regret", "spent_flops")


def compare_policies(
    history: pd.DataFrame,
    baseline: str = "grid",
    *,
    threshold: float = 0.01,
    level: float = 0.9,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Each policy against ``baseline`` on the seeds both ran, with a bootstrap interval.

    Campaigns with the same seed share their seed design and simulated noise, so the
    comparison is paired: seeds are resampled jointly. Columns: ``policy``, ``seeds``,
    ``median`` and ``baseline_median`` (compute to reach ``threshold`` regret; inf = most
    campaigns never did), ``ratio`` = median / baseline median (0 when only the baseline
    never reached it, nan when neither did) with its percentile-bootstrap interval
    ``ratio_lo``/``ratio_hi`` at ``level`` over the resamples where it is defined, and
    ``win_share`` (share of seeds where the policy got there with less compute; ties
    count half).
    """
    # each was a TypeError or KeyError from pandas or numpy, or (n_boot=0) a NaN interval
    check_history(history, _COMPARED_COLUMNS)
    if not isinstance(baseline, str):
        raise BayesplitError(f"baseline must be a policy name, got {_shown(baseline)}")
    check_threshold(threshold)
    level = check_level(level)
    n_boot = check_max_draws(n_boot, "n_boot", none_ok=False)
    seed = check_seed(seed)
    if baseline not in set(history["policy"]):
        raise BayesplitError(f"baseline policy {baseline!r} is not in the history")
    reach = (
        history.groupby(["policy", "seed"])
        .apply(lambda h: compute_to_reach(h, threshold), include_groups=False)
        .unstack("policy")
    )
    rng = np.random.default_rng(seed)
    rows = []
    for policy in reach.columns:
        if policy == baseline:
            continue
        pair = reach[[policy, baseline]].dropna()
        a, b = pair[policy].to_numpy(), pair[baseline].to_numpy()
        if len(a) == 0:
            continue
        idx = rng.integers(0, len(a), size=(n_boot, len(a)))
        boot = np.array([_median_ratio(a[i], b[i]) for i in idx])
        boot = boot[~np.isnan(boot)]
        lo, hi = (
            np.quantile(boot, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
            if len(boot)
            else (np.nan, np.nan)
        )
        rows.append(
            {
                "policy": policy,
                "seeds": len(a),
                "median": float(np.median(a)),
                "baseline_median": float(np.median(b)),
                "ratio": _median_ratio(a, b),
                "ratio_lo": float(lo),
                "ratio_hi": float(hi),
                "win_share": float(np.mean(a < b) + 0.5 * np.mean(a == b)),
            }
        )
    return pd.DataFrame(rows)
