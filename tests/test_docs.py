"""The docs build, the CLI reference is current, and the docs' user-law example works."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current(tmp_path):
    out = tmp_path / "cli.md"
    subprocess.run(
        [sys.executable, "-m", "typer", "bayesplit.cli", "utils", "docs", "--name", "bayesplit",
         "--title", "CLI reference", "--output", str(out)],
        check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip
    assert out.read_text() == (ROOT / "docs" / "cli.md").read_text(), (
        "docs/cli.md is stale: python -m typer bayesplit.cli utils docs --name bayesplit "
        "--title 'CLI reference' --output docs/cli.md"
    )


def test_user_law_example_registers_and_evaluates():
    spec = importlib.util.spec_from_file_location(
        "weighted_law", ROOT / "docs" / "snippets" / "weighted_law.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from bayesplit.laws import Inputs, get_law
    from bayesplit.laws.ops import get_ops

    law = get_law("weighted")
    p = {"E": 1.5, "A": 0.5, "alpha": 0.3, "B": 0.8, "beta": 0.3, "w": 2.0}
    x = Inputs(np.array([0.5]), np.array([2.0]), np.array([0.25]))
    got = np.exp(law.evaluate(get_ops("numpy"), p, x))
    want = 1.5 + 0.5 * 0.5**-0.3 + 0.8 * (2.0 + 2.0 * 0.25) ** -0.3
    assert got == pytest.approx(want, rel=1e-12)
    assert [q.name for q in law.params if q.per_domain] == ["E", "B", "w"]


@pytest.mark.skipif(shutil.which("mkdocs") is None, reason="mkdocs not installed (docs extra)")
def test_mkdocs_build_strict(tmp_path):
    res = subprocess.run(
        ["mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]


def test_the_api_reference_documents_what_the_notebooks_call():
    # the notebooks called plots.plot_fit, simulation.CampaignConfig, truth.Noise and
    # bayesplit.register_law, which docs/api.md did not list
    import json
    import re

    api = (ROOT / "docs" / "api.md").read_text()
    documented = set(re.findall(r"^::: ([\w.]+)", api, flags=re.M))
    leaves = {name.rsplit(".", 1)[1] for name in documented}
    used = set()
    for book in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(book.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            src = "".join(cell["source"])
            for module, names in re.findall(r"from (bayesplit\.[\w.]+) import ([\w, ]+)", src):
                used |= {f"{module}.{n.strip()}" for n in names.split(",")}
            used |= {f"bayesplit.plots.{n}" for n in re.findall(r"\bplots\.(\w+)\(", src)}
            used |= {f"bayesplit.{n}" for n in re.findall(r"\bbayesplit\.(\w+)\(", src)}
    assert len(used) > 10
    missing = []
    for name in sorted(used):
        top = name.count(".") == 1  # bayesplit.fit: documented under its module
        leaf = name.rsplit(".", 1)[1]
        if name in documented or (top and (leaf in leaves or f"`{name}`" in api)):
            continue
        missing.append(name)
    assert not missing, f"docs/api.md lacks {missing}"


def test_the_truth_file_in_concepts_is_the_example_truth(tmp_path):
    # the documented format, read back: the same truth as the example it is said to be
    from bayesplit.truth import example_truth, load_truth

    text = (ROOT / "docs" / "concepts.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "t.yaml").write_text(block)
    assert load_truth(tmp_path / "t.yaml").to_dict() == example_truth("additive", ("web", "code")).to_dict()  # fmt: skip
