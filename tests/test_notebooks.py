"""Every notebook runs top to bottom: in quick mode (BAYESPLIT_QUICK=1, fewer draws, the
gate forced) by default, and as a reader runs it (full draws, the gate enforced) when slow
tests are asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    book = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in book.cells if c.cell_type == "code"), (
        f"{path.name} has outputs committed; strip them"
    )
    monkeypatch.setenv("BAYESPLIT_QUICK", "1")
    _execute(book, tmp_path, monkeypatch, timeout=900)


# a reader runs them so: two crashed there (a fit failed the gate that quick mode forces)
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_full_mode_and_its_fits_pass_the_gate(path, tmp_path, monkeypatch):
    monkeypatch.delenv("BAYESPLIT_QUICK", raising=False)
    _execute(nbformat.read(path, as_version=4), tmp_path, monkeypatch, timeout=3600)


def _execute(book, tmp_path, monkeypatch, timeout: int) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = nbclient.NotebookClient(
        book,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    errors = [
        o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]  # fmt: skip
    assert not errors
