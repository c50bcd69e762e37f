"""Shared fixtures: small simulated run tables and fits reused across test modules."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from support import QUICK, good_table

from bayesplit.truth import example_truth, factorial_design


@pytest.fixture
def table() -> pd.DataFrame:
    return good_table()


@pytest.fixture(scope="session")
def additive_truth():
    return example_truth("additive", domains=("web", "code", "law"))


@pytest.fixture(scope="session")
def additive_runs(additive_truth) -> pd.DataFrame:
    design = factorial_design(
        [1e7, 3e7, 1e8], [3e8, 1e9, 3e9], [1e7, 1e8, 1e9], additive_truth.domains
    )
    return additive_truth.simulate(design, seed=11)


@pytest.fixture(scope="session")
def additive_posterior(additive_runs, additive_truth, tmp_path_factory):
    """A quick fit of ``additive_runs``, made once per test session.

    Under pytest-xdist every worker has its own session, and this fit (about 1,000 leapfrog
    steps per transition, near NUTS's maximum of 1,023) took 130-170 s of each worker's
    time in a cold run, so the first worker to need it fits and saves it and the others
    load the file. Every worker, the first included, gets the loaded copy, so no test sees
    a different object on another worker.
    """
    from filelock import FileLock

    from bayesplit.fitting import fit
    from bayesplit.posterior import Posterior

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the folder all workers' base folders sit in
    path = shared / "additive_posterior.nc"
    with FileLock(f"{path}.lock"):
        if not path.is_file():
            fit(
                additive_runs, "additive", reference=additive_truth.reference, seed=1, **QUICK
            ).save(path)
    return Posterior.load(path)


@pytest.fixture(scope="session")
def post_path(tmp_path_factory, additive_posterior):
    """``additive_posterior`` saved to a file, for the CLI commands that read one."""
    path = tmp_path_factory.mktemp("posterior") / "post.nc"
    additive_posterior.save(path)
    return path
