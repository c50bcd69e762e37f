"""The closed loop: fit → suggest → train → append → refit.

``run_loop`` drives the Bayesian core and the trainer together on one corpus and one run
store. An empty store is first filled with a small seed design (the two smallest ladder
models at two pretraining lengths, each specialized briefly on every domain); after that
every round fits the law to everything in the store, asks :func:`bayesplit.design.suggest`
for the batch of runs worth most to the decision per FLOP, trains them (reusing trunks and
checkpoints) and appends their rows. It stops after ``rounds`` rounds, when the next
batch would overspend ``experiment_budget``, or, with ``stop_regret``, once the fit expects
its plan to be within that share of the optimum.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from bayesplit._parse import derived_seed, is_finite_number
from bayesplit.errors import BayesplitError
from bayesplit.train.rows import check_store_corpus


def seed_suggestions(
    ladder: list[dict], domains: list[str], tokens: float | None = None
) -> list[dict]:
    """The first runs of an empty store, as suggestion objects the trainer executes.

    The two smallest ladder models, pretrained to ``tokens`` and ``4·tokens`` (default
    10 tokens per parameter of the smallest model), each branch specialized on every
    domain for ``tokens / 2``.
    """
    sizes = sorted(ladder, key=lambda e: e["params"])[:2]
    if tokens is not None and not (is_finite_number(tokens) and tokens > 0):
        # 0 was taken as "the default", 10 tokens per parameter
        raise BayesplitError(f"seed_tokens must be a positive number, got {tokens!r}")
    d0 = float(tokens) if tokens is not None else 10.0 * sizes[0]["params"]
    out = []
    for entry in sizes:
        for d in (d0, 4 * d0):
            base = {"params": entry["params"], "model": entry["name"], "pretrain_tokens": d}
            out.append({**base, "spec_tokens": 0.0, "train_domain": None, "reason": "seed design"})
            out.extend(
                {**base, "spec_tokens": d0 / 2, "train_domain": k, "reason": "seed design"}
                for k in domains
            )
    return out


def count_models(runs: pd.DataFrame) -> int:
    """Trained models in a run table: one per (run id, D, D'). A general model at a longer
    D keeps its trunk's run id, so counting run ids stayed flat while models were added."""
    return len(runs[["run_id", "pretrain_tokens", "spec_tokens"]].drop_duplicates())


def seed_design_problem(ladder: list[dict], tokens: float | None) -> str | None:
    """Why the trainer would refuse the seed design at ``tokens`` (None: it trains), checked
    as it checks: every D and D' whole steps of a plausible count, every general model's
    cooldown at least one step."""
    from bayesplit.train.config import TrainConfig, exact_steps
    from bayesplit.train.trunk import decay_steps

    for s in seed_suggestions(ladder, ["domain"], tokens):
        entry = next(e for e in ladder if e["name"] == s["model"])
        tc = TrainConfig.from_entry(entry)
        tps = tc.batch_size * int(entry["seq_len"])
        try:
            steps = exact_steps(s["pretrain_tokens"], tps, "D", model=entry["name"])
            if s["spec_tokens"]:
                exact_steps(s["spec_tokens"], tps, "the seed specialists' D'", model=entry["name"])
            else:
                decay_steps(tc.cooldown_fraction, steps, tps, entry["name"])
        except BayesplitError as exc:
            return str(exc)
    return None


def least_seed_tokens(ladder: list[dict]) -> int | None:
    """The smallest seed-design D the trainer takes (whether it trains grows with D), or
    None when none does (a cooldown of 0 gives no general model a decay step)."""
    from bayesplit.train.config import MAX_TOKENS

    top = MAX_TOKENS // 4  # the seed design trains 4·D
    if seed_design_problem(ladder, top) is not None:
        return None
    lo, hi = 1, 1
    while hi < top and seed_design_problem(ladder, hi) is not None:
        lo, hi = hi, min(hi * 2, top)
    while hi - lo > 1:  # invariant: lo fails (or is 1), hi trains
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if seed_design_problem(ladder, mid) is None else (mid, hi)
    return hi if seed_design_problem(ladder, lo) is not None else lo


def check_loop_options(rounds: int, batch: int, objective: str) -> None:
    """Refuse rounds, batch or objective the loop cannot run (the CLI calls it first, so a
    bad one is an input error, not a loop stopped in its first round)."""
    from bayesplit.design import OBJECTIVES

    if rounds < 1 or batch < 1:
        raise BayesplitError(
            "--rounds and --batch (in Python: rounds= and batch=) must be at least 1"
        )
    if objective not in OBJECTIVES or objective == "point":
        choices = ", ".join(o for o in OBJECTIVES if o != "point")
        raise BayesplitError(
            f"--objective (in Python: objective=) must be one of {choices}, got {objective!r}"
        )


def refused_before_work(exc: BaseException) -> bool:
    """Whether ``run_loop`` raised ``exc`` before it trained or wrote anything (a budget no
    plan can meet, a store of another corpus, a ladder of one size, ...): the command line
    takes it as an input error, with no "loop stopped" document on stdout under ``--json``.
    The exception keeps its own type (a ``RunTableError`` stays one)."""
    return bool(getattr(exc, "loop_not_started", False))


@contextmanager
def _refused_before_work() -> Iterator[None]:
    try:
        yield
    except BayesplitError as exc:
        exc.loop_not_started = True
        raise


def run_loop(
    corpus: str | Path,
    store: str | Path,
    *,
    budget: float,
    rounds: int = 2,
    batch: int = 4,
    objective: str = "regret",
    experiment_budget: float | None = None,
    ladder: str | Path | None = None,
    law: str = "additive",
    seed_tokens: float | None = None,
    workdir: str | Path | None = None,
    fit_kwargs: dict[str, Any] | None = None,
    train_overrides: dict[str, Any] | None = None,
    max_run_flops: float | None = None,
    stop_regret: float | None = None,
    force: bool = False,
    seed: int = 0,
    progress: bool = True,
    report: Callable[[dict], None] | None = None,
) -> pd.DataFrame:
    """Run the closed loop; one summary row per round.

    Parameters
    ----------
    corpus, store
        Corpus directory (``bayesplit corpus build``) and run store (created if missing).
    budget
        Target compute (FLOPs) of the decision the runs should inform.
    rounds, batch
        How many fit → suggest → train rounds, and runs suggested per round. A rerun on the
        same store goes on from the rounds and compute of the loops before it, kept in
        ``workdir/loop-state.json``: its first round is numbered after theirs, and
        ``experiment_budget`` counts what they were charged.
    objective
        What the suggested runs should inform (``"regret"``, ``"decision"`` or ``"split"``;
        see :func:`bayesplit.design.suggest`).
    experiment_budget
        Most FLOPs the loop may spend on runs (seed design included); None = no cap.
    ladder
        Model ladder (file or name); candidates are its sizes.
    law
        Law fitted every round.
    seed_tokens
        Pretraining tokens of the seed design's shorter runs on an empty store (see
        :func:`seed_suggestions`; default 10 per parameter of the smallest model).
    workdir
        Where trunks and checkpoints are kept (default: next to the store,
        ``runs.db`` → ``runs-checkpoints``, as ``bayesplit train`` does).
    fit_kwargs
        Sampler settings for :func:`bayesplit.fit` (chains, draws, warmup, ...; default
        2 chains × 500 draws after 500 warmup steps).
    train_overrides
        :class:`~bayesplit.train.config.TrainConfig` fields that replace the ladder's own
        for every run trained (e.g. ``{"batch_size": 8}``).
    max_run_flops
        Cap on the compute of any one suggested run (as ``suggest --max-run-flops``).
    stop_regret
        Stop before training a round once the fit's expected relative regret of its plan
        (the mean over posterior draws of how far the plan is from each draw's optimum) is
        at most this, e.g. 0.01: more runs are not expected to improve the plan by more.
        Checked in simulation in experiments/benchmarks/regret_calibration.md.
    force
        Keep going with a posterior that failed its diagnostics gate (otherwise stop
        with the failed checks).
    seed
        Round r fits and suggests with ``seed + r``; runs trained without a seed of their
        own are trained with ``seed``.
    progress
        Show the trainer's progress bars.
    report
        Called with each round's summary dict (the CLI prints it).

    Returns
    -------
    DataFrame with ``round``, ``runs``, ``rows``, ``spent_flops``, ``gate_ok``,
    ``plan_params``, ``plan_pretrain_fraction``, ``objective_median``, ``objective_lo``,
    ``objective_hi`` (a credible interval at ``level``), ``level``, ``expected_regret``
    (relative), ``stopped`` (why the loop ended
    there, or None), ``suggested``, ``trained_rows``, ``resumed`` (the round finished an
    interrupted one's runs rather than picking new ones).
    """
    from bayesplit._parse import check_flag, check_path
    from bayesplit.allocation import allocate, check_budget_buys_a_run
    from bayesplit.design import NoCandidateFits, suggest
    from bayesplit.fitting import fit
    from bayesplit.runs import load_runs
    from bayesplit.simulation import check_stop_regret
    from bayesplit.store import RunStore, check_new_store_name
    from bayesplit.train.corpus import Corpus
    from bayesplit.train.execute import plan_suggestions
    from bayesplit.train.ladder import load_ladder, resolve_ladder
    from bayesplit.train.trunk import trunk_checkpoints

    # every refusal up to here comes before anything is trained or written
    with _refused_before_work():
        force = check_flag(force, "force")
        corpus, store = check_path(corpus, "corpus"), check_path(store, "store")
        if workdir is not None:
            workdir = check_path(workdir, "workdir")
        progress = check_flag(progress, "progress")
        check_loop_options(rounds, batch, objective)
        check_stop_regret(stop_regret)
        data = Corpus(corpus)
        ladder_path = resolve_ladder(ladder)
        entries = load_ladder(ladder_path)
        store = Path(store)
        workdir = (
            Path(workdir) if workdir is not None else store.parent / f"{store.stem}-checkpoints"
        )
        seed_design = seed_suggestions(entries, list(data.domains), seed_tokens)
        # a budget no plan can meet is refused before any training or fit: the first fit sees
        # the store's runs, or the seed design on an empty store (opening would create it)
        # an empty file is a store not made yet, as the train commands take it
        fresh = not store.exists() or (store.is_file() and store.stat().st_size == 0)
        if not store.exists():  # refused before the seed design trains, not at its rows
            check_new_store_name(store)
        known = pd.DataFrame() if fresh else RunStore(store, read_only=True).read()
        check_store_corpus(known, data, store)
        check_budget_buys_a_run(
            budget, known if len(known) else pd.DataFrame(seed_design), len(data.domains)
        )
        cap = float("inf") if experiment_budget is None else float(experiment_budget)
        exec_kw = dict(
            ladder=entries, workdir=workdir, seed=seed, progress=progress,
            train_overrides=train_overrides,
        )  # fmt: skip
        plan_kw = {k: exec_kw[k] for k in ("ladder", "workdir", "seed", "train_overrides")}
        if not len(known) and len(entries) < 2:
            # one size leaves the size exponent unidentified: every fit fails its gate, which
            # was said after the whole seed design had trained
            raise BayesplitError(
                f"the ladder {ladder_path} has one model size; the loop's seed design trains the "
                "two smallest, and a law needs two sizes to be fitted: give a ladder with two or more"
            )
        if not len(known):
            # what the trainer would refuse in the seed design (a D' under half a step, a domain
            # too short for a row) is refused before the store is created, not after
            try:
                plan_suggestions(seed_design, data, store, **plan_kw)
            except BayesplitError as exc:
                raise BayesplitError(f"the seed design: {exc}") from None
        # the budget covers the whole campaign: a rerun (after an interrupt, or to go on)
        # starts from what the store's runs already cost, not from zero
        spent = _runs_flops(known) if len(known) else 0.0

        # a rerun goes on from the rounds an earlier loop on this store did (it numbered them
        # from 1 again and refitted with their seeds), and from what it was charged, retrains
        # of trunk stretches included, which the store's rows alone do not show
        # an interrupted round is resumed only where its runs train on the trunks it was
        # charged for (another --seed, ladder or trainer setting makes other trunks)
        def trunks_of(suggestions: list[dict]) -> set[str]:
            return _planned_trunks(suggestions, data, store, plan_kw)

        done_rounds, charged, resumed = (
            _read_loop_state(workdir, store, known, trunks_of)
            if len(known)
            else LoopState(0, 0.0, [])
        )
        spent = max(spent, charged)
        # a seed design is finished once a loop recorded its state (round 0 is written right
        # after it): a rerun with another --seed-tokens, whose design shared one run with the
        # store, trained all of that design too, past --experiment-budget
        unfinished = bool(len(known)) and spent < cap
        unfinished = unfinished and _loop_entry(workdir, store, known) is None
        unfinished = unfinished and _seed_design_unfinished(seed_design, data, store, plan_kw)
        if not len(known) or unfinished:
            # checked before any training: finishing an interrupted seed design ran past the
            # budget, then failed on a negative --max-run-flops
            seed_cost = _design_flops(seed_design)
            if seed_cost > cap:
                raise BayesplitError(
                    f"the seed design costs {seed_cost:.3g} FLOPs, more than --experiment-budget "
                    f"{cap:.3g} (in Python: experiment_budget=); raise it or lower --seed-tokens "
                    "(in Python: seed_tokens=)"
                )
        if unfinished:  # and what the store's runs cost already counts too
            rest = _plan_flops(seed_design, data, store, plan_kw, train_overrides)
            if spent + rest > cap:
                raise BayesplitError(
                    f"finishing the seed design costs {rest:.3g} FLOPs more; with the "
                    f"{spent:.3g} the store's runs cost that passes --experiment-budget "
                    f"{cap:.3g} (in Python: experiment_budget=): raise it"
                )
        if len(known) and spent >= cap and not resumed:
            raise BayesplitError(
                f"the runs in {store} already cost {spent:.3g} FLOPs, the whole --experiment-budget "
                f"{cap:.3g} (in Python: experiment_budget=); raise it to go on"
            )
    if not len(known):
        # the trainer creates the store with the first rows: a seed design that fails
        # (diverges, is interrupted) leaves no empty store behind
        seed_charge = _plan_flops(seed_design, data, store, plan_kw, train_overrides)
        _train(seed_design, data, store, exec_kw)
        spent += seed_charge
        _write_loop_state(workdir, store, 0, spent)
    elif unfinished:
        # an earlier loop was interrupted inside its seed design: finish it (what is in the
        # store is skipped), or every round would fit a part of it
        _train(seed_design, data, store, exec_kw)
        spent = max(_runs_flops(RunStore(store, read_only=True).read()), charged)
        # recorded now, as after a seed design on a fresh store: a rerun whose first round
        # stopped (its gate, a Ctrl-C in its fit) took the store for an unfinished design
        _write_loop_state(workdir, store, done_rounds, spent)
    db = RunStore(store)
    fit_kw = {"chains": 2, "draws": 500, "warmup": 500, "progress": False, **(fit_kwargs or {})}
    history = []
    for rnd in range(done_rounds + 1, done_rounds + rounds + 1):
        runs = load_runs(db.read())
        post = fit(runs, law=law, seed=derived_seed(seed, rnd), **fit_kw)
        if not post.diagnostics.ok and not force:
            raise BayesplitError(
                f"round {rnd}: the fit failed its diagnostics ({'; '.join(post.diagnostics.failures)}); "
                "rerun with --force (in Python: force=True) to continue anyway"
            )
        alloc = allocate(post, budget=budget, force=True)
        obj = alloc.to_dict()["objective"]
        expected_regret = alloc.expected_regret_rel
        summary = {
            "round": rnd,
            "runs": int(runs["run_id"].nunique()),
            "models": count_models(runs),
            "rows": len(runs),
            "gate_ok": bool(post.diagnostics.ok),
            "plan_params": alloc.plan.params,
            "plan_pretrain_fraction": alloc.pretrain_fraction,
            "objective_median": obj["median"],
            "objective_lo": obj["credible"][0],
            "objective_hi": obj["credible"][1],
            "level": alloc.level,  # of objective_lo/hi (--json had no word of it)
            "expected_regret": expected_regret,
            "stopped": None,
            "resumed": False,
        }
        if resumed:
            # an interrupted round (charged before it trained): its runs, not a new pick, so
            # the rerun neither charges them twice nor leaves them half trained
            chosen, resumed = resumed, []
            rows = _train(chosen, data, store, exec_kw)
            summary.update(
                suggested=len(chosen), trained_rows=len(rows), spent_flops=spent, resumed=True
            )
        elif stop_regret is not None and expected_regret <= stop_regret:
            summary.update(
                suggested=0,
                trained_rows=0,
                spent_flops=spent,
                stopped=f"expected regret {expected_regret:.2%} <= --stop-regret {stop_regret:.2%}",
            )
        else:
            remaining = cap - spent
            own_cap = max_run_flops or float("inf")
            workdir.mkdir(parents=True, exist_ok=True)  # no trunk trained here yet: none
            try:
                records = (
                    suggest(
                        post,
                        budget=budget,
                        n=batch,
                        objective=objective,
                        runs=runs,
                        ladder=str(ladder_path),
                        max_run_flops=min(own_cap, remaining),
                        # priced as this trainer will train them, not by the design's rule
                        # (no workdir yet: every trunk is trained from scratch)
                        checkpoints=trunk_checkpoints(
                            workdir, runs, ladder_path, train_overrides, seed
                        ),
                        force=True,
                        seed=derived_seed(seed, rnd),
                    ).to_list()
                    if remaining > 0
                    else []
                )
            except NoCandidateFits:
                # the rest of the budget, not the user's --max-run-flops, ruled every run out:
                # the loop is done (it was an error naming an option never given)
                if remaining >= own_cap:
                    raise
                records = []
            # charged for what the trainer will train, not what suggest priced: a suggestion
            # the store has (after rounding to whole steps) costs nothing, and a branch off a
            # trunk that is not on disk (another --seed or --workdir) retrains its trunk
            chosen, cost = [], 0.0
            for rec in records:
                trial = _plan_flops([*chosen, rec], data, store, plan_kw, train_overrides)
                if trial <= remaining:
                    chosen, cost = [*chosen, rec], trial
            if chosen:  # charged before training: an interrupted round's charge is not lost
                _write_loop_state(
                    workdir, store, rnd - 1, spent + cost, cost, chosen, trunks_of(chosen)
                )
            rows = _train(chosen, data, store, exec_kw)
            spent += cost
            summary.update(suggested=len(chosen), trained_rows=len(rows), spent_flops=spent)
            if not chosen:
                summary["stopped"] = "no suggestion fits the rest of --experiment-budget"
        history.append(summary)
        _write_loop_state(workdir, store, rnd, spent)
        if report is not None:
            report(summary)
        if summary["stopped"]:
            break
    return pd.DataFrame(history)


def _train(runs: list[dict], corpus, store: Path, exec_kw: dict) -> pd.DataFrame:
    """Train ``runs`` with Python's garbage-collection callbacks off.

    JAX (imported for the round's fit) adds a Python callback to every collection, and a
    Ctrl-C that lands inside a callback is dropped by Python ("Exception ignored in
    _xla_gc_callback"); training makes garbage fast, so most Ctrl-Cs were lost and the
    round trained on. Nothing of JAX runs while the trainer does.
    """
    import gc

    from bayesplit.train.execute import execute_suggestions

    if not runs:
        return pd.DataFrame()
    callbacks = list(gc.callbacks)
    gc.callbacks.clear()
    try:
        return execute_suggestions(runs, corpus, store, **exec_kw)
    finally:
        gc.callbacks.extend(c for c in callbacks if c not in gc.callbacks)


def _seed_design_unfinished(seed_design, corpus, store: Path, plan_kw: dict) -> bool:
    """Whether the store holds a part of the seed design but not all of it.

    A store with none of it holds runs of the user's own (imported, or trained by hand),
    which stand in for a seed design; one with all of it is past the seed design.
    """
    from bayesplit.train.execute import plan_suggestions

    try:
        plan = plan_suggestions(seed_design, corpus, store, **plan_kw)
    except BayesplitError:  # a seed design this corpus or ladder cannot train: not begun
        return False
    return bool(plan.done) and bool(plan.jobs)


LOOP_STATE = "loop-state.json"


def _store_fingerprint(rows: pd.DataFrame) -> list:
    """The first stored row (run, domain, loss): a store made anew at the same path (deleted
    to start over) has another, or fewer rows than the state recorded."""
    first = rows.iloc[0]
    return [str(first["run_id"]), str(first["eval_domain"]), float(first["loss"])]


def _loop_entry(workdir: Path, store: Path, rows: pd.DataFrame) -> dict | None:
    """The loop state recorded for the store holding ``rows``, or None (none recorded, or
    recorded for another store at that path).

    Found by the store's first row, not only its path: a project folder moved or copied
    (its workdir with it) kept its state under the old path, and its loop numbered its
    rounds from 1 again with their seeds. Of the entries for that first row that the
    store's rows allow, the furthest on among its own and those of paths no store is at
    any more (where it was moved from: a move back found a stale entry under its path);
    entries of stores still there (a copy in the same workdir) only where it has none.
    """
    from bayesplit._io import read_json

    f = workdir / LOOP_STATE
    if not f.is_file():
        return None
    fingerprint, own = _store_fingerprint(rows), str(store.resolve())
    try:
        found, ours = [], []
        for key, entry in read_json(f).items():
            if entry.get("first_row") != fingerprint or int(entry["rows"]) > len(rows):
                continue
            found.append(
                {
                    "rounds": _whole(entry.get("rounds", 0), "rounds"),
                    "spent_flops": float(entry.get("spent_flops", 0.0)),
                    "pending_flops": float(entry.get("pending_flops", 0.0)),
                    "pending_runs": list(entry.get("pending_runs", [])),
                    "pending_trunks": set(entry.get("pending_trunks") or []),
                    "rows": int(entry["rows"]),
                }
            )
            if not all(isinstance(r, dict) for r in found[-1]["pending_runs"]):
                raise ValueError("pending_runs holds a value that is no run")
            if key == own or not Path(key).exists():
                ours.append(found[-1])
    except (OSError, ValueError, AttributeError, TypeError, OverflowError, KeyError) as exc:
        raise BayesplitError(
            f"{f} cannot be read ({type(exc).__name__}: {exc}); it holds the rounds done and "
            "compute spent by earlier loops: restore or delete it"
        ) from None
    return max(
        ours or found, key=lambda e: (e["rows"], e["rounds"], e["spent_flops"]), default=None
    )


def _whole(value, what: str) -> int:
    # a hand-edited "rounds": -5 numbered the next round -4
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a whole number >= 0, got {value!r}")
    return value


class LoopState(NamedTuple):
    rounds: int  #: rounds done by earlier loops on the store
    charged: float  #: FLOPs charged to them
    pending_runs: list[dict]  #: an interrupted round's runs, charged, to train first


def _read_loop_state(
    workdir: Path,
    store: Path,
    rows: pd.DataFrame,
    trunks_of: Callable[[list[dict]], set[str]] | None = None,
) -> LoopState:
    """What earlier loops on the store holding ``rows`` did (nothing when none, or when
    the state was written for another store at that path).

    ``trunks_of``: the trunks runs would train on now. An interrupted round whose runs
    would train on other trunks than it was charged for (another seed, ladder or trainer
    setting) is not resumed, and its charge gives way to what reached the store.
    """
    entry = _loop_entry(workdir, store, rows)
    if entry is None:
        return LoopState(0, 0.0, [])
    charged, seen, pending = entry["spent_flops"], entry["rows"], entry["pending_flops"]
    # runs trained since (by hand, between loops) are the campaign's too: added at the
    # rows' tree-aware cost (the store appends, so they are the rows after the first seen)
    added = _runs_flops(rows) - _runs_flops(rows.iloc[:seen]) if seen < len(rows) else 0.0
    runs = entry["pending_runs"]
    if runs and trunks_of is not None and not _same_trunks(trunks_of, runs, entry):
        return LoopState(entry["rounds"], charged - pending + added, [])
    # an interrupted round's rows are in its charge (the rerun trains the rest of it first)
    return LoopState(entry["rounds"], charged + max(added - pending, 0.0), runs)


def _same_trunks(trunks_of, runs: list[dict], entry: dict) -> bool:
    try:
        return trunks_of(runs) <= entry["pending_trunks"]
    except BayesplitError:  # a ladder without their sizes now, say
        return False


def _planned_trunks(suggestions: list[dict], corpus, store: Path, plan_kw: dict) -> set[str]:
    """The trunks the trainer would train ``suggestions`` on (what the store lacks)."""
    from bayesplit.train.execute import plan_suggestions

    return {job.trunk_id for job in plan_suggestions(suggestions, corpus, store, **plan_kw).jobs}


def _write_loop_state(
    workdir: Path,
    store: Path,
    rounds: int,
    spent: float,
    pending: float = 0.0,
    pending_runs: list[dict] | None = None,
    pending_trunks: set[str] | None = None,
) -> None:
    """Record the rounds done and FLOPs charged; ``pending``: the part of ``spent`` charged
    for a round about to train ``pending_runs`` on ``pending_trunks``, whose rows are not in
    the store yet (an interrupted round's rows are in that charge, not runs added by
    hand)."""
    from bayesplit._io import atomic_write_text, jsonable, read_json
    from bayesplit.store import RunStore

    f = workdir / LOOP_STATE
    try:
        held = read_json(f) if f.is_file() else {}
    except (OSError, ValueError):  # unreadable, as a new store does not read it: start anew
        held = {}
    if not isinstance(held, dict):
        held = {}
    rows = RunStore(store, read_only=True).read()
    held[str(store.resolve())] = {
        "rounds": rounds,
        "spent_flops": spent,
        "pending_flops": pending,
        "pending_runs": jsonable(pending_runs or []),
        "pending_trunks": sorted(pending_trunks or []),
        "rows": len(rows),
        "first_row": _store_fingerprint(rows),
    }
    workdir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(f, json.dumps(held, indent=2, sort_keys=True) + "\n")


def _runs_flops(runs: pd.DataFrame) -> float:
    """Tree-aware FLOPs of the runs in a store, one tree per trunk.

    Rows the trainer wrote name their trunk (``trunk_id``): two trunks of one size (another
    seed, or another configuration) were each trained, and are each counted. Rows without
    one (imported) are taken as one trunk per size, as suggest prices them.
    """
    cols = ["params", "pretrain_tokens", "spec_tokens", "train_domain"]
    ids = runs["trunk_id"] if "trunk_id" in runs else pd.Series(None, index=runs.index)
    trunk = [
        t if isinstance(t, str) and t else f"size:{float(n)!r}"
        for t, n in zip(ids, runs["params"], strict=True)
    ]
    specs = runs[cols].astype({"train_domain": object}).assign(trunk=trunk).drop_duplicates()
    return sum(
        _tree_flops(t.drop(columns="trunk").to_dict("records")) for _, t in specs.groupby("trunk")
    )


def _design_flops(suggestions: list[dict]) -> float:
    """Tree-aware FLOPs of a list of suggestions on no trunk yet, as the trainer trains
    them (as suggest prices them given an empty workdir): one trunk per size."""
    by_size: dict[float, list[dict]] = {}
    for s in suggestions:
        by_size.setdefault(float(s["params"]), []).append(s)
    return sum(_tree_flops(group) for group in by_size.values())


def _tree_flops(
    runs: list[dict],
    checkpoints: list[float] = (),
    tokens_per_step: float | None = None,
    cooldown_fraction: float | None = None,
) -> float:
    """FLOPs of runs on one trunk with stable-phase checkpoints on disk at ``checkpoints``
    (tokens): each branch point the runs need is trained from the furthest checkpoint at or
    before it (one on disk, or the point before it, saved on the way), as the trainer does;
    plus every branch (a general model's cooldown, or a specialist's D'). With
    ``tokens_per_step``, in the trainer's whole steps (:func:`bayesplit.design.trainer_branch`);
    else as :class:`bayesplit.design.CostModel` counts them."""
    from bayesplit.design import CostModel, branch_point, trainer_branch

    if not runs:
        return 0.0
    cost = CostModel()
    total = 0.0
    points = set()
    branches = set()  # a run asked for twice (or two that round to one step) trains once
    for r in runs:
        n, d, dp = float(r["params"]), float(r["pretrain_tokens"]), float(r["spec_tokens"] or 0)
        if tokens_per_step is not None:
            cf = cost.cooldown_fraction if cooldown_fraction is None else cooldown_fraction
            at, branch = (float(v[()]) for v in trainer_branch(d, dp, tokens_per_step, cf))
        else:
            at = float(branch_point(d, dp, cost)[()])
            branch = dp if dp > 0 else cost.cooldown_fraction * d
        key = (at, branch, r.get("train_domain") if dp > 0 else None)
        if key not in branches:
            branches.add(key)
            total += cost.flops_per_param_token * n * branch
        points.add(at)
    n = float(runs[0]["params"])
    before = 0.0  # the last point trained for these runs: saved, so the next starts there
    for d in sorted(points):
        start = max([before, *(c for c in checkpoints if c <= d)])
        total += cost.flops_per_param_token * n * max(d - start, 0.0)
        before = d
    return total


def _plan_flops(
    suggestions: list[dict], corpus, store: Path, plan_kw: dict, train_overrides: dict | None
) -> float:
    """FLOPs the trainer will spend on ``suggestions``: nothing for what the store already
    has, and each trunk from its furthest checkpoint on disk (a trunk of another seed, or
    in another workdir, is trained from scratch, whatever the store holds)."""
    from bayesplit.train.checkpoint import resumable_steps
    from bayesplit.train.config import TrainConfig
    from bayesplit.train.execute import plan_suggestions

    if not suggestions:
        return 0.0
    plan = plan_suggestions(suggestions, corpus, store, **plan_kw)
    total = 0.0
    for job in plan.jobs:
        tc = TrainConfig.from_entry(job.entry, **(train_overrides or {}))
        tps = tc.batch_size * job.entry["seq_len"]
        # each needed D resumes from the furthest checkpoint at or before it, not from the
        # furthest on disk: a shorter D is trained again from an earlier one
        steps = resumable_steps(Path(plan_kw["workdir"]) / "trunks" / job.trunk_id)
        total += _tree_flops(
            [suggestions[i] for i in job.suggestions],
            [s * tps for s in steps],
            tokens_per_step=tps,
            cooldown_fraction=tc.cooldown_fraction,
        )
    return total
