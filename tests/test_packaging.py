"""A wheel built from this source carries the package's data: the bundled run tables with
their licence notes and the model ladders, so a non-editable install runs ``bayesplit demo``
and finds ``--ladder cpu_ladder`` without a source checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_the_ladders_and_data_tables(tmp_path):
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip("pyproject.toml needs setuptools >= 77 to build (no network for isolation)")
    src = tmp_path / "src"  # a copy: building in the checkout would leave build/ behind
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "bayesplit", src / "bayesplit", ignore=shutil.ignore_patterns("__pycache__")
    )
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*cmd, "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("bayesplit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    package = ROOT / "bayesplit"
    wanted = [
        *package.glob("ladders/*.yaml"),
        *package.glob("datasets/*.csv.gz"),
        *package.glob("datasets/*.md"),
        *package.glob("datasets/*.txt"),  # the license texts the .md files name
    ]
    assert (package / "datasets" / "LICENSE-APACHE-2.0.txt").is_file()
    assert len(list(package.glob("ladders/*.yaml"))) >= 2
    missing = [p.relative_to(ROOT).as_posix() for p in wanted]
    missing = [m for m in missing if m not in names]
    assert not missing, f"not in the wheel: {missing}"


def test_every_export_resolves_and_type_checkers_see_it():
    # howto-import names bayesplit.RunTableError, which was only bayesplit.runs.RunTableError;
    # allocate, suggest, simulate ... were exported but absent from the TYPE_CHECKING imports
    import ast
    from pathlib import Path

    import bayesplit
    from bayesplit.runs import RunTableError

    assert bayesplit.RunTableError is RunTableError
    for name in bayesplit.__all__:
        assert getattr(bayesplit, name) is not None, name
    tree = ast.parse(Path(bayesplit.__file__).read_text())
    checked = next(
        n
        for n in tree.body
        if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING"
    )
    seen = {a.asname or a.name for imp in checked.body for a in imp.names}
    assert seen == set(bayesplit.__all__)


def test_the_compilation_cache_follows_xdg_cache_home(monkeypatch, tmp_path):
    # it was always ~/.cache/bayesplit/jax
    from bayesplit import _jax

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _jax.default_cache_dir() == tmp_path / "bayesplit" / "jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert _jax.default_cache_dir() == Path.home() / ".cache" / "bayesplit" / "jax"
