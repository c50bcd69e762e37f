"""CLI contract of allocate, frontier, report and suggest."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pandas as pd
import pytest
from support import refused, two_run_table
from typer.testing import CliRunner

from bayesplit.cli import app
from bayesplit.errors import BayesplitError

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
        "near_optimal",
        "alternatives",
    } <= set(out)
    lo, hi = out["near_optimal"]["pretrain_fraction"]
    assert lo <= out["pretrain_fraction"] <= hi and out["near_optimal"]["tolerance"] == 0.001
    n_lo, n_hi = out["near_optimal"]["params"]
    assert n_lo <= out["plan"]["params"] <= n_hi
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


def test_allocate_compares_a_list_of_allocate_outputs(post_path, tmp_path):
    base = ["allocate", str(post_path), "--force", "--json"]
    docs = [_json(runner.invoke(app, [*base, "--budget", b])) for b in ("1e20", "3e20")]
    plans = tmp_path / "earlier.json"
    plans.write_text(json.dumps(docs))
    out = _json(runner.invoke(app, [*base, "--budget", "1e20", "--compare", str(plans)]))
    names = [a["name"] for a in out["alternatives"]]
    assert "earlier #1" in names and "earlier #2" in names
    # a single number of D' names no domain: one line, not "'float' object is not iterable"
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"params": 3e8, "pretrain_tokens": 4e10, "spec_tokens": 1e10}))
    result = runner.invoke(app, [*base, "--budget", "1e20", "--compare", str(one)])
    assert result.exit_code == 2
    assert "a plan's spec_tokens must map domains to tokens" in result.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # each was read: the text as a number, the typo ignored, the later key kept
        ('{"params": "3e8", "pretrain_tokens": 4e10}', "params must be a number, got '3e8'"),
        ('{"params": 3e8, "pretrain_token": 4e10}', "unknown key(s) 'pretrain_token'"),
        ('{"params": 3e8, "params": 1e8, "pretrain_tokens": 4e10}', "repeated key(s) 'params'"),
        ('{"params": NaN, "pretrain_tokens": 4e10}', "got params=nan"),
        ('{"params": 3e8, "pretrain_tokens": 1e400}', "got pretrain_tokens=inf"),
        ('[{"params": 3e8, "pretrain_tokens": 4e10}, {"params": true}]', " plan #2: "),
        ("", "not valid JSON"),
        # known only once the posterior is read: the error did not name the file
        ('{"params": 3e8, "pretrain_tokens": 4e10, "spec_tokens": {"zz": 1}}', "domain(s) zz"),
    ],
)
def test_allocate_refuses_a_bad_compare_file_naming_it(post_path, tmp_path, text, message):
    plan = tmp_path / "plan.json"
    plan.write_text(text)
    args = ["allocate", str(post_path), "--budget", "1e20", "--force", "--compare", str(plan)]
    result = runner.invoke(app, args)
    refused(result, f"--compare {plan}")
    assert message in result.stderr


def test_allocate_reads_a_compare_file_with_a_byte_order_mark(post_path, tmp_path):
    # as Notepad saves UTF-8: it was "not valid JSON (Unexpected UTF-8 BOM)"
    plan = tmp_path / "plan.json"
    text = json.dumps({"name": "ours", "params": 3e8, "pretrain_tokens": 4e10})
    plan.write_bytes(b"\xef\xbb\xbf" + text.encode())
    args = ["allocate", str(post_path), "--budget", "1e20", "--force", "--json"]
    out = _json(runner.invoke(app, [*args, "--compare", str(plan)]))
    assert "ours" in [a["name"] for a in out["alternatives"]]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--budget", "1e5"], "below the smallest run"),
        (["--budget", "1e20", "--domains", "web,math"], "unknown domain"),
        (["--budget", "1e20", "--weights", "web=abc"], "not a number"),
        (["--budget", "1e20", "--weights", "=1"], "--weights: no domain name before '='"),
        (["--budget", "1e20", "--max-spec-tokens", " =1e9"], "--max-spec-tokens: no domain name"),
        (["--budget", "1e20", "--max-spec-tokens", "math=1e9"], "unknown domain"),
        (["--budget", "1e20", "--risk", "worst"], "risk"),
        (["--budget", "lots"], "not a number"),
        # without --max-spec-tokens it used to be ignored
        (["--budget", "1e20", "--repetitions", "-1"], "--repetitions must be a positive"),
        (["--budget", "1e20", "--repetitions", "0"], "--repetitions must be a positive"),
        (["--budget", "1e20", "--tolerance", "-0.1"], "tolerance must be a relative slack"),
    ],
)
def test_allocate_bad_requests_exit_2(post_path, args, words):
    result = runner.invoke(app, ["allocate", str(post_path), *args, "--force"])
    assert result.exit_code == 2, result.output
    assert words in result.output


POINT = ["--params", "1e8", "--pretrain-tokens", "1e9", "--domain", "web"]
BIG = ["--budget", "1e20", "--force"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["allocate", "POST", "--budget", "", "--force"], "--budget is not a number: ''"),
        (["allocate", "POST", *BIG, "--params", "1e9x"], "--params is not a number: '1e9x'"),
        (["allocate", "POST", *BIG, "--max-spec-tokens", "web=x"], "--max-spec-tokens web is"),
        (["report", "POST", "--budget", "", "--out", "r.html"], "--budget is not a number"),
        (["suggest", "POST", "--budget", "", "--force"], "--budget is not a number: ''"),
        (["predict", "POST", *POINT, "--spec-tokens", ""], "--spec-tokens is not a number: ''"),
    ],
)
def test_a_number_that_is_not_one_names_its_option(post_path, tmp_path, args, message):
    # `--budget "$B"` with B unset said "not a number: ''" without saying which option
    args = [str(post_path) if a == "POST" else a for a in args]
    args = [str(tmp_path / a) if a == "r.html" else a for a in args]
    refused(runner.invoke(app, args), message)
    assert list(tmp_path.iterdir()) == []


def test_allocate_refuses_failed_posterior_without_force(tmp_path):
    from bayesplit.fitting import fit

    two = two_run_table()
    path = fit(two, "chinchilla", chains=2, draws=30, warmup=30, progress=False).save(
        tmp_path / "bad.nc"
    )
    result = runner.invoke(app, ["allocate", str(path), "--budget", "1e19"])
    assert (
        result.exit_code == 2 and "diagnostics gate" in result.output and "--force" in result.output
    )


def test_forced_results_of_a_failed_posterior_say_so(tmp_path, capsys):
    """allocate and frontier said "these numbers were forced"; suggest --force and
    simulate --truth POST.nc --force said nothing of the failed gate."""
    from bayesplit.cli.simulate import load_truth_arg
    from bayesplit.fitting import fit

    path = fit(two_run_table(), "chinchilla", chains=2, draws=30, warmup=30, progress=False).save(
        tmp_path / "bad.nc"
    )
    args = ["suggest", str(path), "--budget", "1e19", "-n", "1", "--max-draws", "40", "--force"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "! the posterior failed its diagnostics gate (" in said
    assert "these numbers were forced" in said
    capsys.readouterr()
    load_truth_arg(str(path), force=True)
    said = " ".join(capsys.readouterr().err.split())
    assert f"! --truth {path}: the posterior failed its diagnostics gate (" in said
    assert "its medians, the truth here, were forced" in said
    # predict said "posterior failed diagnostics:", in other words than every other command
    point = ["--params", "1e8", "--pretrain-tokens", "2e9", "--domain", "web", "--json"]
    result = runner.invoke(app, ["predict", str(path), *point])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["warning"].startswith(
        "the posterior failed its diagnostics gate: "
    )


def test_allocate_a_law_without_d_prime_compares_sizes_or_says_there_is_nothing(tmp_path):
    from bayesplit.truth import example_truth

    path = example_truth("chinchilla", ("web", "code")).as_posterior().save(tmp_path / "c.nc")
    free = runner.invoke(app, ["allocate", str(path), "--budget", "1e20"])
    assert free.exit_code == 0, free.output
    for name in ("20 tokens per parameter", "half the size", "twice the size"):
        assert name in free.output
    assert "all pretraining" not in free.output
    fixed = runner.invoke(app, ["allocate", str(path), "--budget", "1e20", "--params", "3e8"])
    assert fixed.exit_code == 0, fixed.output
    text = " ".join(fixed.output.split())  # no empty table, a line that says why
    assert "no alternatives: with N fixed" in text and text.count("alternatives") == 1
    assert (
        _json(
            runner.invoke(
                app, ["allocate", str(path), "--budget", "1e20", "--params", "3e8", "--json"]
            )
        )["alternatives"]
        == []
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
                "--tolerance",
                "0.01",
                "--json",
                "--plot",
                str(png),
            ],
        )
    )
    rows = out["frontier"]
    assert [r["budget"] for r in rows] == pytest.approx([1e18, 1e19, 1e20])
    assert out["tolerance"] == 0.01  # --tolerance reaches every budget's plan
    assert all(r["near_optimal_lo"] <= r["pretrain_fraction"] <= r["near_optimal_hi"] for r in rows)
    assert all(
        r["near_optimal_params_lo"] <= r["params"] <= r["near_optimal_params_hi"] for r in rows
    )
    assert rows[0]["params"] < rows[-1]["params"]  # bigger budgets, bigger models
    assert png.stat().st_size > 10_000


def test_frontier_json_says_the_law_and_weights_as_allocate_does(post_path, additive_posterior):
    # allocate --json said its law and weights; frontier --json said neither, so a saved
    # frontier could not tell which objective it traced
    first, *rest = additive_posterior.domains
    weights = ",".join([f"{first}=3", *(f"{d}=1" for d in rest)])
    common = [str(post_path), "--weights", weights, "--force", "--json"]
    front = _json(runner.invoke(app, ["frontier", *common, "--budgets", "1e19"]))
    alloc = _json(runner.invoke(app, ["allocate", *common, "--budget", "1e19"]))
    assert front["law"] == alloc["law"] == additive_posterior.law.name
    assert front["weights"] == pytest.approx(alloc["weights"])
    assert front["weights"][first] == pytest.approx(3 * front["weights"][rest[0]])


SECTIONS = (
    "Decision",
    "Frontier",
    "Data and fitted law",
    "Extrapolation",
    "Diagnostics",
    "Reporting checklist",
    "priors",
)
PNG = b"\x89PNG\r\n\x1a\n"


def _report(post_path, runs_table, out, *extra):
    runs = out.parent / "runs.csv"
    runs_table.to_csv(runs, index=False)
    args = ["report", str(post_path), "--budget", "1e20", "--runs", str(runs), "--out", str(out)]
    return runner.invoke(app, [*args, "--force", *extra])


def _with_medical(additive_runs):
    # two rows on a domain the fit lacks: they were dropped without a word
    extra = additive_runs.iloc[:2].assign(run_id=["m1", "m2"], eval_domain="medical")
    return pd.concat([additive_runs, extra])


def test_report_is_self_contained(post_path, tmp_path, additive_runs):
    out = tmp_path / "report.html"
    spec = additive_runs[additive_runs["spec_tokens"] > 0].iloc[:1]
    domains = sorted(set(additive_runs["eval_domain"]) - set(spec["train_domain"]))
    off = spec.assign(eval_domain=domains[0])  # a specialist off its own domain
    result = _report(post_path, pd.concat([_with_medical(additive_runs), off]), out)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    for section in SECTIONS:
        assert section in text
    assert text.count("data:image/png;base64,") >= 8
    assert "2 rows on domains the fit does not model (medical) were left out" in text
    assert "1 row of specialists evaluated off their own domain was left out" in text
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert not (tmp_path / "report_files").exists()


@pytest.fixture(scope="module")
def md_report(tmp_path_factory, post_path, additive_runs):
    """A Markdown report whose held-out table has a run named ``a|b`` (a run the fit lacks)."""
    out = tmp_path_factory.mktemp("md") / "report.md"
    pipe = additive_runs[additive_runs["eval_domain"] == "web"].iloc[:1].assign(run_id="a|b")
    result = _report(post_path, pd.concat([_with_medical(additive_runs), pipe]), out)
    assert result.exit_code == 0, result.output
    return out


def test_report_md_is_plain_markdown(md_report):
    text = md_report.read_text()
    for section in SECTIONS:
        assert section in text
    assert "2 rows on domains the fit does not model (medical) were left out" in text
    assert "base64" not in text
    assert not re.search(r"<(table|img|div|p|b|code|br)\b", text)
    assert re.search(r"^\|( *:?-{3,}:? *\|)+$", text, re.M), "no GFM table separator line"
    assert "**The posterior FAILED its diagnostics gate (" in text  # the fixture's fit is forced
    decision = text.split("## Decision", 1)[1].split("\n## ", 1)[0]
    assert decision.lower().count("failed its diagnostics gate") == 1  # said once, not twice
    assert re.search(r"any pretraining share in \d+%(–\d+%)? is within 0\.1% of the best", decision)
    assert "pretraining shares within 0.1% of the best (this N)" in decision
    assert re.search(
        r"model sizes N within 0\.1% of the best \(this split\) +\| +[\d.e+]+–[\d.e+]+", decision
    )
    assert "loss vs model size at this split" in decision
    assert "optimum distribution and joint near-optimal region" in decision
    assert "also outlines the plans within 0.1% when N and the split move together" in decision
    links = re.findall(r"!\[[^\]]+\]\(([^)\s]+)\)", text)
    assert len(links) == 8
    for link in links:
        assert link.startswith("report_files/") and link.endswith(".png")
        png = (md_report.parent / link).read_bytes()
        assert png.startswith(PNG) and len(png) > 1000
    assert sorted(p.name for p in (md_report.parent / "report_files").iterdir()) == sorted(
        [".bayesplit-report", *(link.removeprefix("report_files/") for link in links)]
    )
    assert "http://" not in text and "https://" not in text


def test_report_frontier_table_matches_the_frontier_command(md_report):
    # it left-aligned its budgets and lacked the command's range of near-optimal N
    text = md_report.read_text().split("## Frontier", 1)[1].split("\n## ", 1)[0]
    header, rule, *rows = [line for line in text.splitlines() if line.startswith("|")]

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip("|").split("|")]

    assert cells(header) == [
        "budget (FLOPs)",
        "N",
        "D",
        "pretraining share",
        "shares within 0.1%",
        "N within 0.1%",
        "loss (90% credible)",
    ]
    assert all(c.endswith(":") for c in cells(rule)), "numbers are aligned right"
    assert len(rows) == 7
    for row in rows:
        n, lo_hi = float(cells(row)[1]), cells(row)[5]
        lo, hi = (float(x) for x in lo_hi.split("–"))
        assert lo <= n <= hi, row


def test_report_md_escapes_pipes_in_cells(md_report):
    lines = md_report.read_text().splitlines()
    (row,) = [line for line in lines if line.startswith("| a\\|b ")]
    header = lines[lines.index(row) - 2]  # the held-out table has one row: header, rule, row
    assert header.startswith("| run ")
    separators = re.compile(r"(?<!\\)\|")
    assert len(separators.findall(row)) == len(separators.findall(header)) == 10  # 9 columns


def test_report_md_replaces_its_figure_folder(post_path, tmp_path, additive_runs):
    """A figure folder from an earlier run is replaced whole: no stale figure stays in it."""
    folder = tmp_path / "report_files"
    folder.mkdir()
    (folder / ".bayesplit-report").write_text("figures of report.md, written by bayesplit\n")
    (folder / "stale.png").write_bytes(PNG)
    (folder / "split.png").write_bytes(b"old")
    out = tmp_path / "report.md"
    result = _report(post_path, additive_runs, out, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"out": str(out), "format": "md", "figures": str(folder)}
    names = sorted(p.name for p in folder.iterdir())
    assert "stale.png" not in names and len(names) == 9  # 8 figures and the mark
    assert (folder / "split.png").read_bytes().startswith(PNG)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "report_files", "runs.csv"]


def test_report_md_refuses_a_folder_it_did_not_write(post_path, tmp_path, additive_runs):
    # Jupyter, pandoc and Quarto make <stem>_files/ folders too: their files were deleted
    folder = tmp_path / "report_files"
    folder.mkdir()
    (folder / "important.txt").write_text("keep")
    out = tmp_path / "report.md"
    result = _report(post_path, additive_runs, out)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert "report_files holds files a report did not write (important.txt)" in errors[0]
    assert [p.name for p in folder.iterdir()] == ["important.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report_files", "runs.csv"]
    # an empty folder of that name is taken, and marked as the report's from then on
    (folder / "important.txt").unlink()
    assert _report(post_path, additive_runs, out).exit_code == 0
    assert (folder / ".bayesplit-report").exists() and (folder / "split.png").exists()


def test_report_refuses_runs_on_no_domain_of_the_fit_before_the_work(
    post_path, additive_runs, monkeypatch
):
    # refused only after the decision, the frontier and 8 figures (about 20 s)
    import bayesplit.allocation
    from bayesplit.posterior import load_posterior
    from bayesplit.reporting import build_report

    def no_work(*args, **kwargs):
        raise AssertionError("the decision was computed before the runs were checked")

    monkeypatch.setattr(bayesplit.allocation, "allocate", no_work)
    general = additive_runs[additive_runs["spec_tokens"] == 0]
    other = general.drop_duplicates("run_id").assign(eval_domain="medical")
    with pytest.raises(BayesplitError, match="none of the runs to check is on a domain"):
        build_report(load_posterior(post_path), budget=1e20, runs=other, force=True)


def test_report_md_refuses_a_file_where_its_folder_goes(post_path, tmp_path, additive_runs):
    (tmp_path / "report_files").write_text("not a folder")
    out = tmp_path / "report.md"
    result = _report(post_path, additive_runs, out)
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "report_files is a file" in errors[0], result.output
    assert not out.exists() and (tmp_path / "report_files").read_text() == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report_files", "runs.csv"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc (Linux)")
def test_an_output_through_a_symlink_is_checked_where_it_lands(post_path, tmp_path, monkeypatch):
    # a dangling link into a folder no one can write in was refused after the work (12 s),
    # leaving the Markdown report's figure folder beside the link
    import bayesplit.allocation

    def no_work(*args, **kwargs):
        raise AssertionError("the decision was computed before the output was checked")

    monkeypatch.setattr(bayesplit.allocation, "allocate", no_work)
    link = tmp_path / "r.md"
    link.symlink_to("/proc/nope/r.md")
    result = runner.invoke(app, ["report", str(post_path), "--budget", "1e20", "--out", str(link)])
    assert result.exit_code == 2, result.output
    assert f"--out {link}: cannot write in /proc" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.md"]


def test_report_json_names_the_figure_folder_it_wrote_through_a_symlink(post_path, tmp_path):
    # it named a folder beside the link, never made: the figures are beside the target
    (tmp_path / "other").mkdir()
    link = tmp_path / "r.md"
    link.symlink_to(tmp_path / "other" / "real.md")
    args = ["report", str(post_path), "--budget", "1e20", "--force", "--out", str(link), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)["figures"]
    assert figures == str(tmp_path / "other" / "real_files")
    assert (tmp_path / "other" / "real_files" / "split.png").is_file()


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
    assert "`allocate` measures it against every draw's own optimum" in text
    sd = runner.invoke(
        app,
        ["suggest", str(post_path), "--budget", "1e20", "-n", "2", "--objective", "decision"]
        + ["--force", "--max-draws", "300"],
    )
    assert sd.exit_code == 0 and "sd now" in " ".join(sd.output.split())
    assert "`allocate` measures" not in " ".join(sd.output.split())
    bad = runner.invoke(
        app, ["suggest", str(post_path), "--budget", "1e20", "--objective", "bogus", "--force"]
    )
    assert bad.exit_code == 2 and "--objective (in Python: objective=) must be one of" in bad.output


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


def test_suggest_json_carries_the_tables_fields_and_says_what_runs_it_ignored(
    post_path, additive_runs, tmp_path
):
    # --json lacked rank and sd_after (the table's "after" column); a --runs table with a
    # renamed domain was taken silently, so specialists on it were not counted as done
    runs = tmp_path / "runs.csv"
    additive_runs.assign(eval_domain=additive_runs["eval_domain"].replace("law", "legal")).assign(
        train_domain=additive_runs["train_domain"].replace("law", "legal")
    ).to_csv(runs, index=False)
    args = ["suggest", str(post_path), "--budget", "1e20", "-n", "2", "--force"]
    args += ["--max-draws", "300", "--runs", str(runs), "--json", "--out", str(tmp_path / "s.json")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [r["rank"] for r in records] == [1, 2]
    assert all(r["sd_after"] >= 0 for r in records)
    assert json.loads((tmp_path / "s.json").read_text()) == records
    assert "rows on domains the posterior does not model (legal)" in " ".join(result.stderr.split())


def test_suggest_point_refuses_the_decisions_options(post_path):
    # --weights, --trunk and --budget were ignored without a word under --objective point
    point = ["--objective", "point", "--point", "params=1e8,pretrain_tokens=1e9,domain=web"]
    extras = (["--weights", "web=1,code=1,law=1"], ["--trunk", "independent"], ["--budget", "1e20"])
    for extra in extras:
        result = runner.invoke(app, ["suggest", str(post_path), *point, "--force", *extra])
        refused(result, "--budget, --weights and --trunk set the decision; --objective point")


def test_suggest_seed_sets_the_predictive_draws_not_the_ranking(post_path):
    # the API took a seed but the command did not: its predictive bands were seed 0's only
    def recs(seed):
        args = ["suggest", str(post_path), "--budget", "1e20", "-n", "2", "--force",
                "--max-draws", "300", "--json", "--seed", str(seed)]  # fmt: skip
        return _json(runner.invoke(app, args))

    a, again, b = recs(1), recs(1), recs(2)
    assert a == again
    key = ["params", "pretrain_tokens", "spec_tokens", "train_domain"]
    assert [[r[k] for k in key] for r in a] == [[r[k] for k in key] for r in b]
    assert [r["predicted_loss"]["predictive"] for r in a] != [
        r["predicted_loss"]["predictive"] for r in b
    ]
    res = runner.invoke(app, ["suggest", str(post_path), "--budget", "1e20", "--seed", "-1"])
    assert res.exit_code == 2 and "--seed" in res.stderr
