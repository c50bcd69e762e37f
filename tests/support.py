"""Helpers shared by test modules (import as ``from support import ...``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pandas as pd

#: The repository's experiments folder (benchmark and replication scripts).
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"

#: Sampler settings for tests: enough to pass sanity checks, small enough for CI.
QUICK = dict(chains=2, draws=300, warmup=300, progress=False)


def good_table() -> pd.DataFrame:
    """A small valid run table with two domains and one specialized run."""
    return pd.DataFrame(
        {
            "run_id": ["r1", "r1", "r2", "r2", "r3"],
            "params": [1e7, 1e7, 3e7, 3e7, 1e7],
            "pretrain_tokens": [2e8, 2e8, 6e8, 6e8, 2e8],
            "spec_tokens": [0, 0, 0, 0, 5e7],
            "train_domain": [None, None, None, None, "code"],
            "eval_domain": ["web", "code", "web", "code", "code"],
            "loss": [3.9, 2.8, 3.5, 2.5, 2.3],
            "seed": [0, 0, 0, 0, 0],
        }
    )


def two_run_table() -> pd.DataFrame:
    """Two general runs on one domain: too few to identify any law, so every fit fails the gate."""
    return pd.DataFrame(
        {
            "run_id": ["a", "b"],
            "params": [1e7, 3e7],
            "pretrain_tokens": [1e9, 3e9],
            "eval_domain": ["web", "web"],
            "loss": [3.4, 3.1],
        }
    )


def recovery_design(law_name: str, domains) -> pd.DataFrame:
    """About 40 runs: a general ladder, plus specialists on every domain for two-stage laws."""
    from bayesplit.truth import factorial_design

    if law_name == "chinchilla":
        return factorial_design(
            [1e7, 3e7, 1e8, 3e8], [1e8, 3e8, 1e9, 3e9, 1e10], [], domains
        ).assign(trunk_id=None)
    ladder = factorial_design([1e7, 3e7, 1e8], [3e8, 1e9, 3e9], [], domains)
    spec = factorial_design([1e7, 3e7, 1e8], [1e9], [3e7, 3e8, 3e9], domains)
    spec = spec[spec["spec_tokens"] > 0]
    return pd.concat([ladder, spec], ignore_index=True).assign(trunk_id=None)


def coverage(posterior, truth, level: float = 0.95) -> tuple[float, list[str]]:
    """Fraction of true law parameters inside the central credible interval, and the misses."""
    import numpy as np

    lo, hi = (1 - level) / 2, (1 + level) / 2
    draws = posterior.draws()
    inside, missed = [], []
    for name, true in truth.param_arrays().items():
        true = true.ravel()
        d = draws[name].reshape(len(draws[name]), -1)
        for i, t in enumerate(true):
            # per-domain columns follow the posterior's (sorted) domain order
            col = posterior.domains.index(truth.domains[i]) if true.size > 1 else 0
            q = np.quantile(d[:, col], [lo, hi])
            ok = bool(q[0] <= t <= q[1])
            inside.append(ok)
            if not ok:
                missed.append(
                    f"{name}[{truth.domains[i] if true.size > 1 else ''}] true {t:.3g} not in [{q[0]:.3g}, {q[1]:.3g}]"
                )
    return float(np.mean(inside)), missed


def unusable_outputs(tmp_path, name: str) -> dict[str, tuple[str, str]]:
    """Output paths a command must refuse up front, each with the phrase its error names.

    Makes ``a-file`` and ``a-folder`` in ``tmp_path``.
    """
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    return {
        "under a file": (str(blocker / name), "is a file, not a folder"),
        "a folder": (str(folder), "is a folder"),
        "in /proc": (f"/proc/{name}", "cannot write in /proc"),
    }


def refused(result, message: str) -> None:
    """A CLI result refused as the rules ask: exit 2, one stderr line holding ``message``,
    no traceback."""
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr


def load_script(relative: str) -> ModuleType:
    """A script under ``experiments/`` imported as a module (they are not a package)."""
    path = EXPERIMENTS / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
