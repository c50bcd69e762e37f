"""CLI contract of allocate, frontier, report and suggest."""

from __future__ import annotations

import json
import shutil
import subprocess

import pandas as pd
import pytest
from typer.testing import CliRunner

from bayesplit.cli import app

runner = CliRunner()


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_allocate_json_contract(post_path):
    out = _json(
        runner.invoke(
            app,
            ["allocate", str(post_path), "--budget", "1e20", "--risk", "q90", "--force", "--json"],
        )
    )
    assert {
        "budget",
        "trunk",
        "risk",
        "plan",
        "loss",
        "objective",
        "optimum_distribution",
        "alternatives",
    } <= set(out)
    assert set(out["plan"]) == {"params", "pretrain_tokens", "spec_tokens"}
    assert set(out["plan"]["spec_tokens"]) == {"web", "code", "law"}
    assert set(out["loss"]["code"]) == {"median", "credible"}
    assert (
        len(out["optimum_distribution"]["params"]) == 3
        and len(out["optimum_distribution"]["pretrain_fraction"]) == 3
    )
    assert {"name", "plan", "p_better", "expected_regret"} <= set(out["alternatives"][0])
    assert out["risk"] == "q90" and out["budget"] == 1e20
    # the plan's expected regret in nats and relative to each draw's optimum agree: the
    # optima lie below the plan's objective band's top
    rel, nats = out["expected_regret_rel"], out["expected_regret"]
    assert 0 < rel < 1 and nats / out["objective"]["credible"][1] <= rel


def test_allocate_prints_the_plans_expected_regret(post_path):
    res = runner.invoke(app, ["allocate", str(post_path), "--budget", "1e20", "--force"])
    assert res.exit_code == 0, res.output
    # the readable summary goes to stderr (stdout is kept for --json)
    assert "expected regret vs each draw's own optimum" in " ".join(res.stderr.split())


def test_allocate_compare_plan_file(post_path, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {"name": "ours", "params": 3e8, "pretrain_tokens": 4e10, "spec_tokens": {"code": 1e9}}
        )
    )
    out = _json(
        runner.invoke(
            app,
            [
                "allocate",
                str(post_path),
                "--budget",
                "1e20",
                "--compare",
                str(plan),
                "--force",
                "--json",
            ],
        )
    )
    assert "ours" in [a["name"] for a in out["alternatives"]]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--budget", "1e5"], "below the smallest run"),
        (["--budget", "1e20", "--domains", "web,math"], "unknown domain"),
        (["--budget", "1e20", "--weights", "web=abc"], "not a number"),
        (["--budget", "1e20", "--max-spec-tokens", "math=1e9"], "unknown domain"),
        (["--budget", "1e20", "--risk", "worst"], "risk"),
        (["--budget", "lots"], "not a number"),
        # without --max-spec-tokens it used to be ignored
        (["--budget", "1e20", "--repetitions", "-1"], "--repetitions must be a positive"),
        (["--budget", "1e20", "--repetitions", "0"], "--repetitions must be a positive"),
    ],
)
def test_allocate_bad_requests_exit_2(post_path, args, words):
    result = runner.invoke(app, ["allocate", str(post_path), *args, "--force"])
    assert result.exit_code == 2, result.output
    assert words in result.output


def test_allocate_refuses_failed_posterior_without_force(tmp_path):
    import pandas as pd

    from bayesplit.fitting import fit

    two = pd.DataFrame(
        {
            "run_id": ["a", "b"],
            "params": [1e7, 3e7],
            "pretrain_tokens": [1e9, 3e9],
            "eval_domain": ["web"] * 2,
            "loss": [3.4, 3.1],
        }
    )
    path = fit(two, "chinchilla", chains=2, draws=100, warmup=100, progress=False).save(
        tmp_path / "bad.nc"
    )
    result = runner.invoke(app, ["allocate", str(path), "--budget", "1e19"])
    assert (
        result.exit_code == 2 and "diagnostics gate" in result.output and "--force" in result.output
    )


def test_frontier_json(post_path, tmp_path):
    png = tmp_path / "frontier.png"
    out = _json(
        runner.invoke(
            app,
            [
                "frontier",
                str(post_path),
                "--budgets",
                "1e18:1e20:3",
                "--force",
                "--json",
                "--plot",
                str(png),
            ],
        )
    )
    rows = out["frontier"]
    assert [r["budget"] for r in rows] == pytest.approx([1e18, 1e19, 1e20])
    assert rows[0]["params"] < rows[-1]["params"]  # bigger budgets, bigger models
    assert png.stat().st_size > 10_000


@pytest.mark.parametrize("suffix", [".html", ".md"])
def test_report_is_self_contained(post_path, tmp_path, additive_runs, suffix):
    runs = tmp_path / "runs.csv"
    # two rows on a domain the fit lacks: they were dropped without a word
    extra = additive_runs.iloc[:2].assign(run_id=["m1", "m2"], eval_domain="medical")
    pd.concat([additive_runs, extra]).to_csv(runs, index=False)
    out = tmp_path / f"report{suffix}"
    result = runner.invoke(
        app,
        [
            "report",
            str(post_path),
            "--budget",
            "1e20",
            "--runs",
            str(runs),
            "--out",
            str(out),
            "--force",
        ],
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    for section in (
        "Decision",
        "Frontier",
        "Data and fitted law",
        "Extrapolation",
        "Diagnostics",
        "Reporting checklist",
        "priors",
    ):
        assert section in text
    assert text.count("data:image/png;base64,") >= 7
    assert "2 rows on domains the fit does not model (medical) were left out" in text
    assert "http://" not in text and "https://" not in text and "<script" not in text


def test_report_bad_suffix(post_path, tmp_path):
    result = runner.invoke(
        app, ["report", str(post_path), "--budget", "1e20", "--out", str(tmp_path / "r.pdf")]
    )
    assert result.exit_code == 2 and "must end in .htm, .html, .md (got .pdf)" in result.output
    assert not (tmp_path / "r.pdf").exists()


def test_suggest_json_and_out_file(post_path, tmp_path):
    out_file = tmp_path / "suggestions.json"
    recs = _json(
        runner.invoke(
            app,
            [
                "suggest",
                str(post_path),
                "--budget",
                "1e20",
                "-n",
                "3",
                "--force",
                "--max-draws",
                "300",
                "--json",
                "--out",
                str(out_file),
            ],
        )
    )
    assert len(recs) == 3 and json.loads(out_file.read_text()) == recs
    for r in recs:
        assert {
            "params",
            "pretrain_tokens",
            "spec_tokens",
            "train_domain",
            "cost_flops",
            "value",
            "value_per_flop",
            "predicted_loss",
            "branch_from",
            "reason",
        } <= set(r)
        assert set(r["predicted_loss"]) >= {"median", "predictive"}


def test_suggest_default_objective_is_regret(post_path):
    """With no --objective, suggest ranks runs by the plan's expected regret."""
    result = runner.invoke(
        app,
        ["suggest", str(post_path), "--budget", "1e20", "-n", "2", "--force", "--max-draws", "300"],
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # rich wraps long titles at word boundaries
    assert "the expected regret of the recommended plan" in text
    assert "expected regret now" in text and "sd now" not in text
    sd = runner.invoke(
        app,
        ["suggest", str(post_path), "--budget", "1e20", "-n", "2", "--objective", "decision"]
        + ["--force", "--max-draws", "300"],
    )
    assert sd.exit_code == 0 and "sd now" in " ".join(sd.output.split())
    bad = runner.invoke(
        app, ["suggest", str(post_path), "--budget", "1e20", "--objective", "bogus", "--force"]
    )
    assert bad.exit_code == 2 and "--objective must be one of" in bad.output


@pytest.mark.slow
def test_report_renders_in_headless_chromium(post_path, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed")
    out = tmp_path / "report.html"
    assert (
        runner.invoke(
            app, ["report", str(post_path), "--budget", "1e20", "--out", str(out), "--force"]
        ).exit_code
        == 0
    )
    png = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={png}",
            "--window-size=1300,1800",
            out.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert png.stat().st_size > 50_000  # a rendered page with figures, not a blank one
