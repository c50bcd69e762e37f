"""Turn a batch of suggested runs into trained models and run-store rows.

A suggestion (from ``bayesplit suggest``) names a model size and (D, D', k). Suggestions of
the same model and seed share one pretraining *trunk*: it is trained once, to the largest
D any of them needs, with a stable checkpoint at every D a specialist branches from and a
short decay at every D a general model is asked for. Work already done is not redone:
rows already in the store are skipped, and a trunk already trained far enough in the
workdir is reused (or extended from its furthest checkpoint).

Launchers: ``local`` runs the trunk jobs one after another in this process; ``torchrun``
runs each job with DDP across ``nproc`` processes (gloo on CPU, nccl on CUDA); ``slurm``
submits every trunk job through ``submitit`` (they run in parallel; rows are appended by
the jobs themselves, the store takes concurrent writers). When a job ends, the launcher
removes what it wrote to run it (the job file, torchrun's rows file and log folder,
submitit's pickles and script); a failed slurm job's logs are kept, and named in the error.
"""

from __future__ import annotations

import json
import math
import os
import re
import reprlib
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bayesplit._io import atomic_write_text, jsonable, parse_json, read_json, remove_if_empty
from bayesplit._parse import check_flag, check_path, check_seed
from bayesplit.errors import BayesplitError
from bayesplit.train.config import TrainConfig, exact_steps, steps_for
from bayesplit.train.corpus import Corpus
from bayesplit.train.ladder import at_vocab, find_model, load_ladder
from bayesplit.train.rows import check_store_corpus
from bayesplit.train.specialist import SpecConfig, effective_spec, spec_run_id, spec_sampler
from bayesplit.train.trunk import (
    check_trunk_meta,
    decay_steps,
    general_run_id,
    general_sampler,
    model_config,
    names_a_folder,
    read_trunk_meta,
    trunk_id_for,
    trunk_meta,
)

LAUNCHERS = ("local", "torchrun", "slurm")

#: The two ways of counting N a suggestion's ``params`` can be in: the scaling-law N of
#: bayesplit's ladders (no token embedding), or the count with the tied embedding matrix
#: (what a table loaded with ``params="with_embeddings"`` was fitted on).
PARAMS_CONVENTIONS = ("non_embedding", "with_embeddings")

#: Largest relative gap between a suggestion's ``params`` and the ladder size trained for it.
PARAMS_REL_TOL = 0.05


@dataclass
class TrunkJob:
    """One trunk and everything that branches from it; the unit a launcher runs."""

    trunk_id: str
    entry: dict[str, Any]
    seed: int
    eval_at: list[int] = field(default_factory=list)  # D of general rows (exact tokens)
    specs: list[tuple[int, str, int]] = field(default_factory=list)  # (D, domain, D')
    suggestions: list[int] = field(default_factory=list)  # indices into the input list
    trunk_step: int = 0  # furthest checkpoint already in the workdir, in steps
    resume_step: int | None = 0  # the checkpoint its first missing stable step trains from

    def describe(self) -> str:
        """One line for ``--dry-run``: the trunk, its branch points and branches."""
        parts = [f"{self.trunk_id}: {len(self.eval_at)} general, {len(self.specs)} specialist"]
        if self.trunk_step:
            # not where it resumes: each step it needs starts from the furthest checkpoint
            # at or before it, which may be an earlier one, or step 0
            parts.append(
                f"(trunk checkpoints up to step {self.trunk_step} exist; each step it needs "
                "is trained from the furthest one at or before it: "
                + (
                    f"the first from step {self.resume_step})"
                    if self.resume_step is not None
                    else "all are there)"
                )
            )
        return " ".join(parts)


@dataclass
class Plan:
    """Trunk jobs to run and the suggestions that need nothing (already in the store)."""

    jobs: list[TrunkJob]
    done: list[int]
    notes: list[str]

    def to_dict(self) -> dict:
        """The execution plan as a JSON-ready dict."""
        return {
            "jobs": [
                {
                    "trunk_id": j.trunk_id,
                    "model": j.entry["name"],
                    "params": j.entry["params"],
                    "seed": j.seed,
                    "eval_at": j.eval_at,
                    "specs": [list(s) for s in j.specs],
                    "suggestions": j.suggestions,
                    # the first stable step it needs is trained from here (a checkpoint
                    # past that step is not used for it)
                    "trunk_resumes_from_step": j.resume_step,
                    "trunk_furthest_checkpoint_step": j.trunk_step,
                }
                for j in self.jobs
            ],
            "already_done": self.done,
            "notes": self.notes,
        }


#: The keys of a suggestion that execute reads.
SUGGESTION_KEYS = (
    "params",
    "pretrain_tokens",
    "spec_tokens",
    "train_domain",
    "model",
    "seed",
    "branch_from",
    "params_convention",
)
#: What ``suggest`` also writes for people, and the other columns of
#: ``Suggestions.table`` (its records may be passed too): execute ignores them, and refuses
#: any other key.
_SUGGEST_KEYS = (
    "cost_flops",
    "value",
    "value_per_flop",
    "predicted_loss",
    "reason",
    "rank",
    "sd_after",
)


def load_suggestions(path: str | Path) -> list[dict]:
    """Read a suggestions JSON file (a list of objects, or ``{"suggestions": [...]}``);
    ``"-"`` reads standard input (``bayesplit suggest --json | ...``), as does a pipe.

    UTF-8, with or without a byte-order mark. A key given twice in an object, a key that is
    neither one execute reads nor one ``suggest`` writes, and a file with no suggestion are
    refused naming the file.
    """
    stdin = str(path) == "-"
    p = "standard input" if stdin else check_path(path)
    if not stdin and not p.exists():
        raise BayesplitError(f"no such suggestions file: {p}")
    if not stdin and p.is_dir():
        raise BayesplitError(f"{p} is a folder, not a suggestions file")
    if stdin and (sys.stdin is None or sys.stdin.isatty()):  # it waited for typing, silently
        raise BayesplitError(
            "- reads the suggestions from stdin, which is a terminal here: pipe them in "
            "(bayesplit suggest ... --json | bayesplit train execute - ...) or name the file"
        )
    try:  # a repeated key: json kept the last value silently
        data = parse_json(sys.stdin.buffer.read().decode("utf-8-sig")) if stdin else read_json(p)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, a repeated key
        raise BayesplitError(f"{p}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("suggestions"), list):
        data = data["suggestions"]
    if not isinstance(data, list) or not all(isinstance(s, dict) for s in data):
        raise BayesplitError(f"{p}: expected a JSON list of suggestion objects")
    if not data:  # it trained nothing and said nothing
        raise BayesplitError(f"{p}: holds no suggestion to train")
    for i, s in enumerate(data):
        try:
            _check_keys(s, i)
        except BayesplitError as exc:
            raise BayesplitError(f"{p}: {exc}") from None
    return data


def _check_keys(s: dict, i: int) -> None:
    """Refuse a key that is neither one execute reads nor one ``suggest`` writes: a typo
    (``"spec_token": 1e9``, or ``"spec": 1e9``) silently trained a general model, with
    ``spec_tokens`` taken as 0."""
    import difflib

    for k in s:
        if isinstance(k, str) and (k in SUGGESTION_KEYS or k in _SUGGEST_KEYS):
            continue
        near = difflib.get_close_matches(str(k), SUGGESTION_KEYS, n=1, cutoff=0.7)
        hint = f"did you mean {near[0]!r}?" if near else "it reads " + ", ".join(SUGGESTION_KEYS)
        raise BayesplitError(f"suggestion #{i + 1}: unknown key {k!r} ({hint})")


def _number(s: dict, key: str, i: int, default: float | None = None) -> float:
    if key not in s and default is None:  # "must be a number, got None" for a missing key
        raise BayesplitError(f"suggestion #{i + 1}: needs {key}")
    v = s.get(key, default)
    try:
        # float(True) is 1.0 and float("2560") is 2560.0: a typo, or a number written as
        # text, would become a count (as a seed written as text is refused)
        if isinstance(v, (bool, str)):
            raise TypeError
        x = float(v)
    except OverflowError:  # a JSON integer of 400 digits: refused as not finite below
        x = math.inf
    except (TypeError, ValueError):
        raise BayesplitError(f"suggestion #{i + 1}: {key} must be a number, got {v!r}") from None
    if not math.isfinite(x) or x < 0:
        raise BayesplitError(
            f"suggestion #{i + 1}: {key} must be finite and >= 0, got {reprlib.repr(v)}"
        )
    return x


def _seed(s: dict, i: int, default: int) -> int:
    """A suggestion's seed: a whole number in [0, 2^63 - 1] (JSON may write it as 3.0)."""
    v = s.get("seed")
    if v is None:
        return default
    try:
        return check_seed(int(v) if isinstance(v, float) and v.is_integer() else v)
    except BayesplitError:
        raise BayesplitError(
            f"suggestion #{i + 1}: seed must be a whole number from 0 to 2^63 - 1, got {v!r}"
        ) from None


def _size_counts(entry: dict[str, Any], vocab_size: int) -> dict[str, int]:
    """N of a ladder entry in both conventions, with the corpus's vocabulary."""
    built = at_vocab(entry, vocab_size)
    return {"non_embedding": built["params"], "with_embeddings": built["params_with_embeddings"]}


def _check_model_is_params(s: dict, i: int, entry: dict, vocab_size: int) -> None:
    """A suggestion that names its ``model`` and gives ``params`` must mean one size: the
    model was trained, and its rows recorded another N than the file asked for, unsaid."""
    n = _number(s, "params", i)
    sizes = _size_counts(entry, vocab_size)
    if not any(math.isclose(c, n, rel_tol=PARAMS_REL_TOL) for c in sizes.values()):
        raise BayesplitError(
            f"suggestion #{i + 1}: model {entry['name']} has N={sizes['non_embedding']:,} "
            f"({sizes['with_embeddings']:,} with embeddings), not params={n:.4g}; drop one "
            "or make them agree"
        )


def match_ladder_sizes(
    suggestions: list[dict],
    entries: list[dict[str, Any]],
    vocab_size: int,
    params_convention: str | None = None,
    rel_tol: float = PARAMS_REL_TOL,
) -> tuple[dict[int, dict[str, Any]], str | None]:
    """The ladder size each suggestion without a ``model`` name asks for, by its ``params``.

    ``bayesplit suggest`` writes ``params`` in the N convention of the table the law was
    fitted on: non-embedding N (bayesplit's ladders), or N with the tied embedding matrix
    (e.g. the bundled campaign loaded with ``params="with_embeddings"``). The file does not
    say which, so every suggestion must match a ladder size to within ``rel_tol`` in *one*
    convention shared by the whole file (with-embeddings counts use the corpus's
    vocabulary, the count the trained rows will record), unless the suggestions carry
    ``"params_convention"`` or the caller says which. Refused, naming the closest
    sizes: a ``params`` no size matches, a file no single convention explains, and a file
    that two conventions explain with different sizes.

    Parameters
    ----------
    suggestions
        Suggestion objects; those with a ``model`` name are left out.
    entries
        The loaded ladder.
    vocab_size
        Vocabulary of the corpus the runs will be trained on.
    params_convention
        ``"non_embedding"`` or ``"with_embeddings"`` to say which; None = the suggestions'
        own ``"params_convention"`` if they carry one, else find out.
    rel_tol
        Largest relative gap between ``params`` and the size's count.

    Returns
    -------
    (dict, str or None)
        Suggestion index → ladder entry, and the convention used (None when every
        suggestion names its model).
    """
    given = [
        (f"suggestion #{i + 1}: ", s.get("params_convention")) for i, s in enumerate(suggestions)
    ]
    given.append(("", params_convention))
    said = set()
    for where, c in given:
        if c is None:
            continue
        if c not in PARAMS_CONVENTIONS:
            raise BayesplitError(
                f"{where}params_convention must be {' or '.join(PARAMS_CONVENTIONS)}, got {c!r}"
            )
        said.add(c)
    if len(said) > 1:
        raise BayesplitError(
            f"the suggestions give two params conventions: {', '.join(sorted(said))}"
        )
    params_convention = said.pop() if said else None
    wanted = {
        i: _number(s, "params", i) for i, s in enumerate(suggestions) if s.get("model") is None
    }
    if not wanted:
        return {}, None
    for i, n in wanted.items():
        if n <= 0:
            raise BayesplitError(f"suggestion #{i + 1}: params must be > 0")
    counts = [(e, _size_counts(e, vocab_size)) for e in entries]
    conventions = [params_convention] if params_convention else list(PARAMS_CONVENTIONS)

    def nearest(n: float, conv: str) -> tuple[dict, int]:
        return min(((e, c[conv]) for e, c in counts), key=lambda ec: abs(math.log(ec[1] / n)))

    def within(n: float, conv: str) -> dict | None:
        e, c = nearest(n, conv)
        return e if math.isclose(c, n, rel_tol=rel_tol) else None

    matches = {conv: {i: within(n, conv) for i, n in wanted.items()} for conv in conventions}
    viable = [conv for conv in conventions if all(matches[conv].values())]
    label = {"non_embedding": "non-embedding", "with_embeddings": "with embeddings"}
    if not viable:
        for i, n in wanted.items():
            if not any(matches[conv][i] for conv in conventions):
                closest = ", ".join(
                    f"{e['name']} (N={c:,} {label[conv]})"
                    for conv in conventions
                    for e, c in [nearest(n, conv)]
                )
                raise BayesplitError(
                    f"suggestion #{i + 1}: no ladder size has N={n:.4g} (within "
                    f"{rel_tol:.0%}); closest: {closest}. Name the size in the suggestion's "
                    '"model" or add it to the ladder'
                )
        a, b = conventions
        only = {
            conv: next(i for i in wanted if matches[conv][i] and not matches[other][i])
            for conv, other in ((a, b), (b, a))
        }
        parts = " but ".join(
            f"#{i + 1} matches only {label[conv]} ({matches[conv][i]['name']})"
            for conv, i in sorted(only.items(), key=lambda ci: ci[1])
        )
        raise BayesplitError(
            f"the suggestions mix N conventions: {parts}; one file is in one convention, "
            'so name the sizes in "model"'
        )
    if len(viable) == 2:
        a, b = (matches[conv] for conv in viable)
        differ = [i for i in wanted if a[i]["name"] != b[i]["name"]]
        if differ:
            i = differ[0]
            raise BayesplitError(
                f"suggestion #{i + 1}: params={wanted[i]:.4g} is {a[i]['name']} counted "
                f"without embeddings but {b[i]['name']} counted with them; name the size in "
                '"model" or set "params_convention" (non_embedding or with_embeddings)'
            )
    conv = viable[0]
    return {i: e for i, e in matches[conv].items() if e is not None}, conv


def _named_trunk(branch_from: Any, i: int) -> str | None:
    """The trunk a suggestion names, or None; a hand-edited ``5`` or ``["t"]`` is refused,
    not read as "no trunk named"."""
    if branch_from is None or isinstance(branch_from, str):
        return branch_from or None
    if isinstance(branch_from, dict):
        trunk = branch_from.get("trunk")
        if trunk is None or isinstance(trunk, str):
            return trunk or None
        what = f"branch_from.trunk must be a trunk id (text) or null, got {reprlib.repr(trunk)}"
    else:
        what = (
            "branch_from must be null, a trunk id (text) or an object with a trunk, got "
            + reprlib.repr(branch_from)
        )
    raise BayesplitError(f"suggestion #{i + 1}: {what}")


def _ladder_model(entries: list[dict], name, i: int) -> dict:
    # the one refusal of an item that did not say which suggestion it was
    if not isinstance(name, str) or not name:
        raise BayesplitError(
            f"suggestion #{i + 1}: model must be a ladder size's name (text), got {name!r}"
        )
    try:
        return find_model(entries, name)
    except BayesplitError as exc:
        raise BayesplitError(f"suggestion #{i + 1}: {exc}") from None


def plan_suggestions(
    suggestions: list[dict],
    corpus: str | Path | Corpus,
    store: Any,
    *,
    ladder: str | Path | list[dict] | None,
    workdir: str | Path,
    seed: int = 0,
    train_overrides: dict[str, Any] | None = None,
    spec: SpecConfig | None = None,
    params_convention: str | None = None,
) -> Plan:
    """Group suggestions into trunk jobs, leaving out what the store already has.

    Parameters
    ----------
    suggestions
        Objects with ``params``, ``pretrain_tokens``, ``spec_tokens``, ``train_domain``,
        optional ``model`` (ladder name; it wins over ``params``), ``seed`` and
        ``branch_from`` (null, a trunk id, or ``{"trunk": id, ...}``). The keys ``suggest``
        also writes (``cost_flops``, ``value``, ``reason``, ...) are ignored; any other key
        is refused (a typo such as ``spec_token`` trained a general model).
        Without ``model``, ``params`` must name a ladder size to within
        :data:`PARAMS_REL_TOL`, see :func:`match_ladder_sizes`.
    corpus, store, ladder, workdir, seed, train_overrides, spec, params_convention
        As for :func:`execute_suggestions`.
    """
    if not isinstance(suggestions, list):
        raise BayesplitError("suggestions must be a list of objects")
    spec = spec or SpecConfig()
    corpus = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    entries = ladder if isinstance(ladder, list) else load_ladder(ladder)
    planning = _store_for_planning(store)
    have = _store_keys(planning)
    if len(planning):  # rows of another corpus are refused, as the train commands refuse them
        check_store_corpus(
            planning.read(), corpus, getattr(planning, "path", store), unhashed_ok=True
        )
    workdir = Path(workdir)
    jobs: dict[str, TrunkJob] = {}
    checked: set[tuple[str, str]] = set()  # (trunk, domain) of specialists checked
    done: list[int] = []
    notes: list[str] = []
    general: list[tuple[int, float, int, int, str]] = []  # general rows: their decays
    for i, s in enumerate(suggestions):
        if not isinstance(s, dict):
            raise BayesplitError(f"suggestion #{i + 1} is not an object")
        _check_keys(s, i)
        if s.get("model") is None and s.get("params") is None:
            raise BayesplitError(f"suggestion #{i + 1}: needs params or model")
    by_params, convention = match_ladder_sizes(
        suggestions, entries, corpus.vocab_size, params_convention
    )
    if convention == "with_embeddings" and by_params:
        picked = ", ".join(f"#{i + 1} → {e['name']}" for i, e in by_params.items())
        notes.append(
            f"params read as N with embeddings (vocabulary {corpus.vocab_size:,}): {picked}"
        )
    for i, s in enumerate(suggestions):
        name = s.get("model")
        entry = by_params[i] if name is None else _ladder_model(entries, name, i)
        if name is not None and s.get("params") is not None:
            _check_model_is_params(s, i, entry, corpus.vocab_size)
        d = _number(s, "pretrain_tokens", i)
        dp = _number(s, "spec_tokens", i, 0.0)
        if d <= 0:
            raise BayesplitError(f"suggestion #{i + 1}: pretrain_tokens must be > 0")
        domain = s.get("train_domain")
        if dp == 0 and not (domain is None or domain == "" or domain != domain):  # NaN
            # a general run trains on all domains: the domain, or the missing spec_tokens,
            # is a mistake either way
            raise BayesplitError(
                f"suggestion #{i + 1}: train_domain {domain!r} needs spec_tokens > 0 "
                "(a general run has train_domain null)"
            )
        if dp > 0:
            if domain is None or domain == "":
                raise BayesplitError(f"suggestion #{i + 1}: spec_tokens > 0 needs a train_domain")
            if not isinstance(domain, str):
                raise BayesplitError(
                    f"suggestion #{i + 1}: train_domain must be a domain name (text), got {domain!r}"
                )
            try:
                corpus.check_domain(domain)
            except BayesplitError as exc:  # which of the suggestions, as every other refusal
                raise BayesplitError(f"suggestion #{i + 1}: {exc}") from None
        run_seed = _seed(s, i, seed)
        tc = TrainConfig.from_entry(entry, **(train_overrides or {}))
        cfg = model_config(entry, corpus)
        trunk_id = trunk_id_for(entry, cfg, tc, run_seed, corpus)
        named = _named_trunk(s.get("branch_from"), i)
        if named and not names_a_folder(named):
            # an imported run's id ("EleutherAI/pythia-160m") or a path: no trunk of the
            # workdir, and a path must not reach one of another workdir
            notes.append(
                f"suggestion #{i + 1}: trunk {named!r} is not a trunk in {workdir}; using {trunk_id}"
            )
        elif named and named != trunk_id:
            wanted = trunk_meta(entry, cfg, tc, run_seed, corpus, named)
            if _compatible_trunk(workdir / "trunks" / named, wanted):
                trunk_id = named
            elif named != "suggested":
                notes.append(
                    f"suggestion #{i + 1}: trunk {named!r} is not in {workdir} with this configuration; using {trunk_id}"
                )
        tps = tc.batch_size * cfg.seq_len
        where = f"suggestion #{i + 1}:"
        d_exact = exact_steps(d, tps, f"{where} pretrain_tokens", model=entry["name"]) * tps
        if dp == 0:
            general.append((i, tc.cooldown_fraction, d_exact // tps, tps, entry["name"]))
            if (general_run_id(trunk_id, tc), d_exact) in have:
                done.append(i)
                continue
        else:
            dp_exact = exact_steps(dp, tps, f"{where} spec_tokens", model=entry["name"]) * tps
            phase = effective_spec(spec, dp_exact // tps, tc.batch_size, tc.lr)
            rid = spec_run_id(trunk_id, d_exact, domain, dp_exact, phase)
            if any(k[0] == rid for k in have):
                done.append(i)
                continue
        if trunk_id not in jobs:
            # what training would refuse (a domain too short for a row, token ids beyond the
            # vocabulary, a replay fraction the batch cannot hold, a trunk folder of another
            # configuration or with an unreadable trunk.json) is refused while planning,
            # before execute creates the store
            general_sampler(corpus, tc, cfg, run_seed)
            check_trunk_meta(
                workdir / "trunks" / trunk_id, entry, cfg, tc, run_seed, corpus, trunk_id
            )
        if dp > 0 and (trunk_id, domain) not in checked:
            spec_sampler(corpus, tc, cfg, domain, spec, run_seed)
            checked.add((trunk_id, domain))
        job = jobs.setdefault(trunk_id, TrunkJob(trunk_id, entry, run_seed))
        job.suggestions.append(i)
        if dp == 0:
            if d_exact not in job.eval_at:
                job.eval_at.append(d_exact)
        else:
            key = (d_exact, domain, dp_exact)
            if key not in job.specs:
                job.specs.append(key)
    # a cooldown that rounds to no decay step is refused, as pretraining would; after the
    # other checks of every suggestion, which say what is wrong with a count itself
    for i, fraction, n, tps, name in general:
        try:
            decay_steps(fraction, n, tps, name)
        except BayesplitError as exc:
            raise BayesplitError(f"suggestion #{i + 1}: {exc}") from None
    for job in jobs.values():
        job.eval_at.sort()
        job.specs.sort()
        job.trunk_step = _furthest_checkpoint(workdir / "trunks" / job.trunk_id)
        job.resume_step = _resume_step(job, corpus, workdir, train_overrides)
    return Plan(list(jobs.values()), done, notes)


def _compatible_trunk(trunk_dir: Path, wanted: dict) -> bool:
    """A named trunk in the workdir built with the configuration we would use: its
    ``trunk.json`` is ``wanted`` (the trunk described under that name; whether the
    default trunk exists does not matter). A folder renamed from another trunk says
    another id, and pretraining would refuse it."""
    f = trunk_dir / "trunk.json"
    try:
        present = f.is_file()
    except OSError:  # a name too long for the file system: no trunk of the workdir
        return False
    # an unreadable one is refused as pretraining refuses it, not a JSONDecodeError
    return present and read_trunk_meta(f) == wanted


def _resume_step(
    job: TrunkJob, corpus: Corpus, workdir: Path, overrides: dict | None
) -> int | None:
    """The checkpoint step the trunk's first missing stable step (a specialist's D, or a
    general model's D less its cooldown) is trained from, 0 when nothing before it is kept;
    None when every step it needs has its stable checkpoint (no trunk step is trained)."""
    from bayesplit.train.checkpoint import list_checkpoints, resumable_steps

    tc = TrainConfig.from_entry(job.entry, **(overrides or {}))
    tps = tc.batch_size * model_config(job.entry, corpus).seq_len
    needed = [d // tps for d, _, _ in job.specs]
    needed += [d // tps - decay_steps(tc.cooldown_fraction, d // tps, tps) for d in job.eval_at]
    trunk_dir = workdir / "trunks" / job.trunk_id
    missing = [s for s in needed if s not in list_checkpoints(trunk_dir)["stable"]]
    if not missing:
        return None
    first = min(missing)
    return max((s for s in resumable_steps(trunk_dir) if s <= first), default=0)


def _furthest_checkpoint(trunk_dir: Path) -> int:
    from bayesplit.train.checkpoint import resumable_steps

    return max(resumable_steps(trunk_dir), default=0)


# -- running a job ----------------------------------------------------------------------------
def job_to_dict(job: TrunkJob, **context: Any) -> dict:
    """A job plus context (corpus, store, settings) as a picklable dict for a worker process."""
    return {**asdict(job), "specs": [list(s) for s in job.specs], **context}


def run_job(job: dict) -> pd.DataFrame:
    """Run one trunk job (a dict from :func:`job_to_dict`): the trunk, its decays, its branches.

    Runs under whatever process group the environment sets up (torchrun); only rank 0
    writes rows and returns them.
    """
    from bayesplit.train.checkpoint import ckpt_path
    from bayesplit.train.specialist import specialize
    from bayesplit.train.trunk import pretrain

    corpus = Corpus(job["corpus"])
    entry = job["entry"]
    tc = TrainConfig.from_entry(entry, **(job.get("train_overrides") or {}))
    spec = SpecConfig(**(job.get("spec") or {}))
    workdir = Path(job["workdir"])
    tps = tc.batch_size * entry["seq_len"]
    specs = [tuple(s) for s in job["specs"]]
    frames = [
        pretrain(
            corpus,
            entry,
            workdir=workdir,
            eval_at=job["eval_at"],
            save_at=[s[0] for s in specs],
            seed=job["seed"],
            store=job.get("store"),
            train=tc,
            trunk_id=job["trunk_id"],
            progress=job.get("progress", True),
        )
    ]
    trunk_dir = workdir / "trunks" / job["trunk_id"]
    for d, domain, dp in specs:
        frames.append(
            specialize(
                corpus,
                ckpt_path(trunk_dir, "stable", steps_for(d, tps)),
                domain,
                dp,
                spec=spec,
                store=job.get("store"),
                workdir=workdir,
                seed=job["seed"],
                train=tc,
                entry=entry,
                progress=job.get("progress", True),
            )
        )
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def run_job_file(path: str) -> list[dict]:
    """Entry point of a submitted job: read the job file, run it, return the rows as records."""
    job = json.loads(Path(path).read_text())
    return rows_as_records(run_job(job))


def rows_as_records(df: pd.DataFrame) -> list[dict]:
    """A job's rows as JSON records, every float exact (``DataFrame.to_json`` keeps 10
    significant digits, so a loss came back as 5.9340264797 from torchrun and slurm jobs)."""
    return jsonable(df.to_dict(orient="records")) if len(df) else []


# -- launchers --------------------------------------------------------------------------------
def execute_suggestions(
    suggestions: list[dict],
    corpus: str | Path | Corpus,
    store: Any,
    *,
    ladder: str | Path | list[dict] | None = None,
    workdir: str | Path,
    launcher: str = "local",
    seed: int = 0,
    progress: bool = True,
    nproc: int | None = None,
    launcher_options: dict[str, Any] | None = None,
    train_overrides: dict[str, Any] | None = None,
    spec: SpecConfig | None = None,
    params_convention: str | None = None,
) -> pd.DataFrame:
    """Train every suggested run that is not in the store yet and append its rows.

    Parameters
    ----------
    suggestions
        Suggestion objects (see :func:`plan_suggestions`).
    corpus
        Corpus directory.
    store
        Run store path (or :class:`bayesplit.store.RunStore`).
    ladder
        Ladder file, name or loaded entries; None = ``models/ladder.yaml``.
    workdir
        Directory of trunk checkpoints, reused across calls.
    launcher
        ``"local"``, ``"torchrun"`` or ``"slurm"``.
    seed
        Seed of suggestions that do not carry their own.
    progress
        Progress bars on stderr.
    nproc
        Processes per job for ``torchrun`` (default: the GPU count, or 2 on CPU); refused
        with another launcher, which runs each job in one process.
    launcher_options
        For ``slurm``: ``cluster`` (``"local"`` runs the jobs as local processes, for tests),
        ``timeout_min``, ``partition``, ``gpus_per_node``, ``cpus_per_task``, ``mem_gb``.
    train_overrides
        :class:`~bayesplit.train.config.TrainConfig` fields to override (``device``,
        ``eval_tokens``, ``cooldown_fraction``, ...).
    spec
        Specialization settings (replay, re-warmup, decay).
    params_convention
        How the suggestions' ``params`` count N: ``"non_embedding"``, ``"with_embeddings"``
        or None (find out; see :func:`match_ladder_sizes`).

    Returns
    -------
    pandas.DataFrame
        The rows written (empty when there was nothing to do).
    """
    progress = check_flag(progress, "progress")
    workdir = check_path(workdir, "workdir")  # before any run is planned
    if launcher not in LAUNCHERS:
        raise BayesplitError(f"unknown launcher {launcher!r} (use {', '.join(LAUNCHERS)})")
    check_nproc(launcher, nproc)
    spec = spec or SpecConfig()
    plan = plan_suggestions(
        suggestions,
        corpus,
        store,
        ladder=ladder,
        workdir=workdir,
        seed=seed,
        train_overrides=train_overrides,
        spec=spec,
        params_convention=params_convention,
    )
    if not plan.jobs:
        return pd.DataFrame()
    # the store is created by the first job that writes rows, once its run has trained:
    # a plan refused here, or a run that fails, leaves no empty store behind
    store_path = _store_path(store)
    corpus_path = str(corpus.path if isinstance(corpus, Corpus) else Path(corpus).resolve())
    context = {
        "corpus": corpus_path,
        "store": str(store_path.resolve()),
        "workdir": str(Path(workdir).resolve()),
        "train_overrides": train_overrides or {},
        "spec": asdict(spec),
        "progress": progress,
    }
    jobs = [job_to_dict(j, **context) for j in plan.jobs]
    if launcher == "local":
        frames = [run_job(j) for j in jobs]
    elif launcher == "torchrun":
        nproc = check_launch(plan, launcher, nproc, train_overrides)
        frames = [_torchrun(j, Path(workdir), nproc) for j in jobs]
    else:
        frames = _slurm(jobs, Path(workdir), launcher_options or {})
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _job_file(job: dict, workdir: Path) -> Path:
    from bayesplit.train.config import config_hash

    # the pid: two launches of one job must not remove each other's file when they end
    path = workdir / "jobs" / f"{job['trunk_id']}-{config_hash(job)[:8]}-{os.getpid()}.json"
    atomic_write_text(path, json.dumps(job, indent=2))
    return path


def check_nproc(launcher: str, nproc: int | None) -> None:
    """Refuse ``nproc`` for a launcher that does not use it.

    ``local`` runs each job in this process and ``slurm`` submits each as one task, so a
    count given with them was silently dropped: a user who asked for parallel processes
    got one, and found out only from the rows' world size.
    """
    if nproc is not None and launcher != "torchrun":
        raise BayesplitError(
            "--nproc is for --launcher torchrun only (in Python: nproc= with "
            f'launcher="torchrun"): --launcher {launcher} runs each job in one process; '
            "drop --nproc, or use --launcher torchrun"
        )


def check_launch(
    plan: Plan, launcher: str, nproc: int | None, train_overrides: dict | None
) -> int | None:
    """Refuse a plan the launcher cannot run (a batch ``nproc`` processes cannot share);
    the processes per torchrun job, or None for the other launchers.

    Called by a dry run too, which showed a plan the real run then refused.
    """
    if launcher != "torchrun":
        return None
    nproc = _torchrun_nproc(nproc)
    for j in plan.jobs:  # each process's ranks would refuse it after the launch
        _check_splits(j.entry, train_overrides, nproc)
    return nproc


def _torchrun_nproc(nproc: int | None) -> int:
    """Processes per torchrun job: as given, else one per GPU, or 2 on CPU."""
    if nproc is not None:
        return nproc
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 2


def _check_splits(entry: dict, train_overrides: dict | None, nproc: int) -> None:
    """Refuse, before launching, a batch that ``nproc`` processes cannot share evenly."""
    tc = TrainConfig.from_entry(entry, **(train_overrides or {}))
    if tc.batch_size % nproc:
        raise BayesplitError(
            f"model {entry['name']}: batch_size {tc.batch_size} is not divisible by "
            f"--nproc {nproc} (in Python: nproc=); choose a divisor of it"
        )
    rows, micro = tc.batch_size // nproc, tc.micro_batch_size or tc.batch_size // nproc
    if rows % micro:
        raise BayesplitError(
            f"model {entry['name']}: {rows} rows per process (--nproc {nproc}; in Python: "
            f"nproc=) are not divisible by micro_batch_size {micro}"
        )


def _torchrun(job: dict, workdir: Path, nproc: int) -> pd.DataFrame:
    """Run one job under torchrun; its job file, rows file and torchrun's log folder go
    when it ends (the log folder is kept, and named, if a failed job left files in it)."""
    path = _job_file(job, workdir)
    result = path.with_suffix(".rows.json")
    # torchrun's own folder, in a torchelastic_* folder under /tmp per launch otherwise
    logs = path.with_suffix(".torchrun")
    result.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        f"--log-dir={logs}",
        "-m",
        "bayesplit.train._worker",
        str(path),
        str(result),
    ]
    env = dict(os.environ)
    # one thread per process on CPU, or the processes fight over the cores
    env.setdefault("OMP_NUM_THREADS", "1")
    try:
        proc = subprocess.run(cmd, env=env)
        if proc.returncode != 0:  # its processes printed why, above this line
            kept = f"; torchrun's logs are kept in {logs}" if _has_files(logs) else ""
            raise BayesplitError(
                f"torchrun job {job['trunk_id']} failed with exit code {proc.returncode} "
                f"(its processes' messages are above{kept})"
            )
        return pd.DataFrame(json.loads(result.read_text()))
    finally:
        path.unlink(missing_ok=True)
        result.unlink(missing_ok=True)
        if not _has_files(logs):  # only empty per-rank folders: nothing to read
            shutil.rmtree(logs, ignore_errors=True)
        remove_if_empty(path.parent)


def _slurm(jobs: list[dict], workdir: Path, options: dict[str, Any]) -> list[pd.DataFrame]:
    """Submit every job, wait for all of them, and remove the files written for each once
    it has ended: its job file, and submitit's pickles and script; the logs of a job that
    failed are kept and named in the error."""
    try:
        import submitit
        from submitit.core.utils import UncompletedJobError
    except ImportError:
        raise BayesplitError(
            "the slurm launcher needs submitit: pip install bayesplit[train]"
        ) from None
    try:
        ex = submitit.AutoExecutor(folder=workdir / "submitit", cluster=options.get("cluster"))
    except ValueError as exc:  # an unknown --slurm-cluster name
        raise BayesplitError(f"slurm launcher: {exc}") from None
    params: dict[str, Any] = {"timeout_min": int(options.get("timeout_min", 60 * 24))}
    for key in ("gpus_per_node", "cpus_per_task", "mem_gb", "nodes", "tasks_per_node"):
        if options.get(key) is not None:
            params[key] = options[key]
    if options.get("partition"):
        params["slurm_partition"] = options["partition"]
    ex.update_parameters(name="bayesplit-train", **params)
    submitted = []
    for j in jobs:
        path = _job_file(j, workdir)
        submitted.append((j, path, ex.submit(run_job_file, str(path))))
    frames, failed = [], []
    for j, path, s in submitted:
        # the jobs run (and append their rows) on their own: a failure waits for the others
        try:
            frames.append(pd.DataFrame(s.result()))
            ok = True
        except UncompletedJobError as exc:  # it failed, or was killed
            ok = False
            failed.append(
                f"slurm job {j['trunk_id']} failed: {_job_error(exc)}; its logs are kept: "
                f"{s.paths.stderr}, {s.paths.stdout}"
            )
        _remove_submitted(s, path, logs=ok)
    remove_if_empty(workdir / "jobs")
    remove_if_empty(workdir / "submitit")
    if failed:
        more = f" ({len(failed)} of {len(jobs)} jobs failed)" if len(failed) > 1 else ""
        raise BayesplitError(failed[0] + more)
    return frames


def _job_error(exc: Exception) -> str:
    """The last line of a failed job's traceback, from submitit's message, which holds it
    between two dashed lines; else the message's first two lines (a job killed, timed out)."""
    parts = re.split(r"\n-{10,}\n", str(exc))
    lines = [ln.strip() for ln in (parts[1] if len(parts) > 2 else "").splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else " ".join(str(exc).splitlines()[:2])


def _remove_submitted(job, path: Path, *, logs: bool) -> None:
    """Remove what was written to run one submitit job: its job file, its pickles, its
    sbatch script (and the link to it under its temporary name), and with ``logs`` its logs."""
    p = job.paths
    script = p.submission_file
    links = [
        f
        for f in p.folder.glob(".submission_file_*.sh")
        if f.is_symlink() and Path(os.readlink(f)) == script
    ]
    files = [path, p.submitted_pickle, p.result_pickle, script, *links]
    for f in files + ([p.stdout, p.stderr] if logs else []):
        f.unlink(missing_ok=True)


def _has_files(folder: Path) -> bool:
    """Whether a folder holds any file (torchrun's log folder holds empty ones per rank)."""
    return folder.is_dir() and any(f.is_file() for f in folder.rglob("*"))


def _store_path(store: Any) -> Path:
    if store is None:
        raise BayesplitError("executing suggestions needs a run store")
    return Path(store.path) if hasattr(store, "append") else Path(store)


class _NoStoreYet:
    """A run store that does not exist yet, for planning: a refused plan must not create it."""

    def __len__(self) -> int:
        return 0


def _store_for_planning(store: Any):
    """The store to plan against, read without creating or changing anything."""
    if store is None:
        raise BayesplitError("executing suggestions needs a run store")
    if hasattr(store, "append"):
        return store
    from bayesplit.store import RunStore, check_new_store_name

    path = Path(store)
    if not path.exists():
        check_new_store_name(path)  # before the training, not at its rows' writing
        return _NoStoreYet()
    RunStore.check(path, allow_empty=True)  # a foreign file is refused, untouched
    try:
        return RunStore(path, read_only=True)
    except BayesplitError:  # an empty SQLite file: a store not made yet
        return _NoStoreYet()


def _store_keys(store) -> set[tuple[str, int]]:
    """(run_id, step) of every row in the store."""
    if len(store) == 0:
        return set()
    df = store.read()
    steps = df["step"] if "step" in df else pd.Series(-1, index=df.index)
    return {
        (str(r), int(s) if pd.notna(s) else -1) for r, s in zip(df["run_id"], steps, strict=True)
    }
