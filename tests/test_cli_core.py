"""The CLI contract of fit, predict, laws, prior, compare and demo."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from support import unusable_outputs
from typer.testing import CliRunner

from bayesplit.cli import app
from bayesplit.cli.core import parse_count
from bayesplit.errors import BayesplitError

runner = CliRunner()


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def runs_csv(tmp_path_factory, additive_runs):
    path = tmp_path_factory.mktemp("cli") / "runs.csv"
    additive_runs.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, runs_csv):
    out = tmp_path_factory.mktemp("cli") / "post.nc"
    result = runner.invoke(
        app,
        [
            "fit",
            "--runs",
            str(runs_csv),
            "--law",
            "additive",
            "--out",
            str(out),
            "--chains",
            "2",
            # the tests read the file and the JSON, not the posterior's quality
            "--draws",
            "50",
            "--warmup",
            "50",
            "--json",
        ],
    )
    return _json(result), out


def test_fit_json_contract(fitted):
    out, path = fitted
    assert path.exists()
    assert out["law"] == "additive"
    assert set(out["diagnostics"]) >= {
        "r_hat_max",
        "ess_bulk_min",
        "ess_tail_min",
        "divergences",
        "bfmi_min",  # printed in the table, missing from --json
        "ok",
    }
    assert 0 < out["diagnostics"]["bfmi_min"] < 5
    params = out["params"]
    assert {"alpha", "beta", "gamma", "E[web]", "E[code]", "E[law]", "C[law]"} <= set(params)
    for v in params.values():
        assert set(v) == {"median", "q05", "q95"} and v["q05"] <= v["median"] <= v["q95"]


def test_predict_json_contract(fitted):
    _, path = fitted
    out = _json(
        runner.invoke(
            app,
            [
                "predict",
                str(path),
                "--params",
                "1e9",
                "--pretrain-tokens",
                "20B",
                "--spec-tokens",
                "1e9",
                "--domain",
                "code",
                "--level",
                "0.8",
                "--json",
            ],
        )
    )
    assert set(out) >= {"mean", "median", "credible", "predictive", "level"}
    assert out["level"] == 0.8
    assert (
        out["predictive"][0]
        <= out["credible"][0]
        <= out["median"]
        <= out["credible"][1]
        <= out["predictive"][1]
    )


def test_predict_unknown_domain_exits_2(fitted):
    _, path = fitted
    result = runner.invoke(
        app,
        ["predict", str(path), "--params", "1e9", "--pretrain-tokens", "1e10", "--domain", "math"],
    )
    assert result.exit_code == 2
    assert "unknown domain 'math'" in result.output


def test_fit_bad_input_writes_nothing(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("run_id,params,pretrain_tokens,eval_domain\nr,1e7,1e9,web\n")
    out = tmp_path / "post.nc"
    result = runner.invoke(app, ["fit", "--runs", str(bad), "--out", str(out)])
    assert result.exit_code == 2 and "missing column 'loss'" in result.output
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_fit_unknown_law_exits_2(runs_csv, tmp_path):
    result = runner.invoke(
        app, ["fit", "--runs", str(runs_csv), "--law", "kaplan", "--out", str(tmp_path / "p.nc")]
    )
    assert result.exit_code == 2 and "unknown law 'kaplan'" in result.output


def test_laws_lists_formulas():
    out = _json(runner.invoke(app, ["laws", "--json"]))
    names = [law["name"] for law in out["laws"]]
    assert names[:4] == ["chinchilla", "additive", "transfer", "saturating"]
    assert all(law["formula"].startswith("L") for law in out["laws"])


def test_prior_predictive_covers_the_data(runs_csv):
    out = _json(
        runner.invoke(
            app, ["prior", "--runs", str(runs_csv), "--law", "additive", "--draws", "300", "--json"]
        )
    )
    assert out["inside"] >= 0.8  # weakly informative: the prior covers realistic losses


def test_prior_and_compare_take_the_fits_domains_and_run_effect(runs_csv, monkeypatch):
    """prior had no --domains, --per-domain or --run-effect, compare no --domains or
    --run-effect, though fit has them and the Python functions pass them on;
    prior_predictive(domains=) was a TypeError."""
    import bayesplit.comparison
    import bayesplit.prior

    base = ["prior", "--runs", str(runs_csv), "--law", "additive", "--draws", "50", "--json"]
    out = _json(runner.invoke(app, [*base, "--domains", "code"]))
    assert list(out["domains"]) == ["code"]
    bad = runner.invoke(app, [*base, "--run-effect", "maybe"])
    assert bad.exit_code == 2 and "--run-effect must be auto, on or off" in bad.output
    given = {}
    real = bayesplit.prior.prior_predictive

    def spy(*args, **kwargs):
        given.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(bayesplit.prior, "prior_predictive", spy)
    out = _json(runner.invoke(app, [*base, "--per-domain", "E", "--run-effect", "off"]))
    assert set(out["domains"]) == {"web", "code", "law"}
    assert given["per_domain"] == ["E"] and given["run_effect"] is False
    given.clear()

    def fake_compare(runs, laws, **kwargs):
        given.update(kwargs)
        raise BayesplitError("stop here")

    monkeypatch.setattr(bayesplit.comparison, "compare", fake_compare)
    args = ["compare", "--runs", str(runs_csv), "--domains", "code", "--run-effect", "on"]
    assert runner.invoke(app, [*args, "--per-domain", "E"]).exit_code == 2
    assert given["domains"] == ["code"] and given["run_effect"] is True
    assert given["per_domain"] == ["E"]


@pytest.mark.parametrize("module", ["bayesplit", "bayesplit.cli"])
@pytest.mark.parametrize("args", [["laws", "--json"], ["--help"]])
def test_a_reader_that_leaves_early_ends_the_command_quietly(module, args):
    """`bayesplit laws --json | head -1`: no `error: Broken pipe`, no traceback (was exit 2)."""
    import subprocess
    import sys

    p = subprocess.Popen(
        [sys.executable, "-m", module, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    p.stdout.close()  # before the command has written anything
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 1
    assert err == ""


def test_parse_count():
    assert (
        parse_count("1.4B") == 1.4e9 and parse_count("2e21") == 2e21 and parse_count("300M") == 3e8
    )
    from bayesplit.errors import BayesplitError

    with pytest.raises(BayesplitError):
        parse_count("lots")
    # "-0" printed as D'=-0 and "spec_tokens": -0.0
    assert math.copysign(1.0, parse_count("-0")) == 1.0
    assert parse_count("1_000") == 1000 and parse_count("2_000M") == 2e9
    for typo in ("1__000e10", "_1_", "1_"):  # every "_" was dropped, so these passed
        with pytest.raises(BayesplitError, match="not a number"):
            parse_count(typo)


def test_parse_counts_refuses_an_empty_item():
    from bayesplit.cli.core import parse_counts
    from bayesplit.errors import BayesplitError

    assert parse_counts("1e6, 2M", "--params") == [1e6, 2e6]
    for text in ("1e6,,2e6", "1e6,", ",1e6"):  # the empty item was dropped without a word
        with pytest.raises(BayesplitError, match="--params has an empty item"):
            parse_counts(text, "--params")


def test_runs_import_list_export(tmp_path, runs_csv):
    store = tmp_path / "runs.db"
    out = _json(
        runner.invoke(app, ["runs", "import", str(runs_csv), "--store", str(store), "--json"])
    )
    assert out["added"] == out["total"] > 0
    again = runner.invoke(app, ["runs", "import", str(runs_csv), "--store", str(store)])
    assert again.exit_code == 2 and "already in the store" in again.output
    listed = _json(runner.invoke(app, ["runs", "list", str(store), "--json", "--limit", "3"]))
    assert listed["rows"] == out["total"] and len(listed["runs"]) == 3
    exported = tmp_path / "back.parquet"
    assert runner.invoke(app, ["runs", "export", str(store), "--out", str(exported)]).exit_code == 0
    assert exported.exists()


def test_demo_runs_end_to_end_on_the_bundled_campaign(tmp_path):
    res = runner.invoke(
        app,
        ["demo", "--out-dir", str(tmp_path), "--chains", "2", "--draws", "100",
         "--warmup", "100", "--json"],
    )  # fmt: skip
    data = _json(res)
    assert data["data"] == "debian_campaign"
    held = data["heldout"]
    # the largest model at its largest D: general model on every domain + every specialist
    assert {p["eval_domain"] for p in held} == {"code", "docs", "lexicon", "scripture"}
    assert all(p["predictive"][0] < p["median"] < p["predictive"][1] for p in held)
    assert all(p["predicted_for"] == "seen trunk" for p in held)
    plan = data["allocation"]["plan"]
    assert plan["params"] > 0 and set(plan["spec_tokens"]) == {
        "code",
        "docs",
        "lexicon",
        "scripture",
    }
    assert len(data["suggestions"]) == 4
    # the suggestions' notes (forced past a failed gate, fewer runs than asked) were dropped
    assert isinstance(data["suggestion_notes"], list)
    assert data["diagnostics"]["ok"] or any("gate" in n for n in data["suggestion_notes"])
    # the table counts N with embeddings, so suggestions do too, and each names the ladder
    # model of that size: the one `train execute` builds
    from bayesplit.train.ladder import load_ladder

    with_emb = {e["name"]: e["params_with_embeddings"] for e in load_ladder("cpu_ladder")}
    assert all(s["params"] == with_emb[s["model"]] for s in data["suggestions"])
    assert (tmp_path / "report.html").stat().st_size > 0 and (tmp_path / "posterior.nc").exists()

    # a later branch of a trunk the fit has seen is predicted with that trunk's effect
    from bayesplit.datasets import debian_campaign

    trunk = debian_campaign(split="heldout")["trunk_id"].dropna().iloc[0]
    post = str(tmp_path / "posterior.nc")
    point = ["--params", "6.4e5", "--pretrain-tokens", "6e6", "--domain", "code", "--json"]
    own = _json(runner.invoke(app, ["predict", post, *point, "--run", trunk]))
    new = _json(runner.invoke(app, ["predict", post, *point]))
    assert own["run"] == trunk and new["run"] == "new"
    assert own["predictive"][1] - own["predictive"][0] < new["predictive"][1] - new["predictive"][0]
    # the credible band of a known run includes its effect: it was labelled "(law)"
    text = runner.invoke(app, ["predict", post, *point[:-1], "--run", trunk])
    assert f"credible (law + run {trunk} effect):" in " ".join(text.stderr.split())
    res = runner.invoke(app, ["predict", post, *point, "--run", "no-such-trunk"])
    assert res.exit_code == 2 and "no-such-trunk" in res.stderr


def test_demo_header_counts_what_the_fit_sees():
    from bayesplit.cli.demo import data_counts
    from bayesplit.datasets import debian_campaign
    from bayesplit.runs import modelled_rows

    fit, held = (debian_campaign(split=s) for s in ("fit", "heldout"))
    # 218 runs (a trunk's four decayed general models are checkpoints of one run): each
    # general checkpoint on 4 domains, each specialist on its own; held out: the largest
    # model at its largest D, general (4 domains) and 12 specialists (one each)
    assert data_counts(fit[modelled_rows(fit)], held[modelled_rows(held)]) == (
        "fitting 304 (run, domain) losses of 218 runs on 4 eval domains; "
        "16 losses of the 13 largest-compute models held out"
    )


def test_demo_refuses_unknown_data():
    res = runner.invoke(app, ["demo", "--data", "pile"])
    assert res.exit_code == 2 and "unknown demo data 'pile'" in res.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "abc"], "not a number: 'abc'"),
        (["--budget", "-1"], "--budget must be a positive number"),
        (["--law", "nosuch"], "nosuch"),
        # no plan is feasible below the smallest run: found after a fit until stop 22
        (["--budget", "1"], "below the smallest run"),
        # no specialist in the table: it sampled for minutes, failed its gate, and reported
        (
            ["--data", "gadre2024", "--law", "transfer"],
            "--law transfer cannot be learned from gadre2024",
        ),  # fmt: skip
    ],
)
def test_demo_checks_its_options_before_fitting(tmp_path, args, message):
    out = tmp_path / "demo"
    res = runner.invoke(app, ["demo", "--out-dir", str(out), *args])
    assert res.exit_code == 2 and message in res.stderr
    assert not out.exists()  # refused before the fit: nothing written


@pytest.mark.parametrize("name", ["posterior.nc", "report.html"])
def test_demo_checks_the_files_it_writes_before_fitting(tmp_path, name):
    # a folder of that name in --out-dir was found after the fit (report.html: after the
    # fit, the plan, the suggestions and the posterior's write)
    (tmp_path / name).mkdir()
    res = runner.invoke(app, ["demo", "--out-dir", str(tmp_path)])
    assert res.exit_code == 2 and f"{name} is a folder; give a file name" in res.stderr
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_demo_refuses_an_out_dir_that_is_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = runner.invoke(app, ["demo", "--out-dir", str(blocker / "sub")])
    assert res.exit_code == 2 and "is a file, not a folder" in res.stderr


@pytest.mark.parametrize("case", ["under a file", "a folder", "in /proc", "wrong extension"])
def test_fit_refuses_an_unusable_out_before_fitting(runs_csv, tmp_path, case):
    cases = unusable_outputs(tmp_path, "post.nc")
    cases["wrong extension"] = (str(tmp_path / "post.csv"), "must end in .nc")
    out, message = cases[case]
    result = runner.invoke(app, ["fit", "--runs", str(runs_csv), "--out", out])
    assert result.exit_code == 2 and message in result.stderr
    assert "fitting" not in result.stderr  # refused before the sampler started
    assert not (tmp_path / "post.csv").exists()


@pytest.mark.parametrize("level", ["1.5", "nan", "0", "-1"])
def test_prior_refuses_a_level_outside_0_1(runs_csv, level):
    result = runner.invoke(app, ["prior", "--runs", str(runs_csv), "--level", level])
    assert result.exit_code == 2 and "level must be in (0, 1)" in result.stderr


def test_predict_refuses_a_negative_seed(fitted):
    _, path = fitted
    args = ["--params", "1e9", "--pretrain-tokens", "1e10", "--domain", "web", "--seed", "-1"]
    result = runner.invoke(app, ["predict", str(path), *args])
    assert result.exit_code == 2 and "--seed" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--laws", "chinchilla,nosuch"], "unknown law 'nosuch'"),
        (["--level", "3"], "level must be in (0, 1)"),
        (["--holdout-largest", "1"], "holdout fraction must be in [0, 1)"),
        # it said "or leave the option out", but --runs is required
        (["--runs", " "], "--runs is empty: give a run table file, a store or bundled:NAME"),
    ],
)
def test_compare_checks_its_options_before_the_first_fit(runs_csv, args, message):
    result = runner.invoke(app, ["compare", "--runs", str(runs_csv), *args])
    assert result.exit_code == 2 and message in result.stderr
    assert "fitting" not in result.stderr


def test_ctrl_c_says_interrupted_and_exits_130(monkeypatch, tmp_path):
    import bayesplit.fitting

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bayesplit.fitting, "fit", interrupted)
    out = tmp_path / "post.nc"
    result = runner.invoke(app, ["fit", "--runs", "bundled:gadre2024", "--out", str(out)])
    # Typer's own handling exits 130 without a word, which reads like a crash or a hang
    assert (result.exit_code, result.output.strip()) == (130, "interrupted")
    assert not out.exists()


def test_sigterm_while_writing_leaves_no_temp_file_and_exits_143(tmp_path):
    """`timeout`, `kill` and schedulers send SIGTERM, which killed the command on the spot:
    a hidden temp file of the output was left beside it (Ctrl-C removed it)."""
    import signal
    import subprocess
    import sys

    store = tmp_path / "s.db"
    assert runner.invoke(app, ["runs", "import", "bundled:gadre2024", "--store", str(store)]).exit_code == 0  # fmt: skip
    code = f"""
import os, sys, time
def slow(fd):  # the writer's flush before the rename: the temp file exists by now
    print("writing", flush=True)
    time.sleep(120)
os.fsync = slow
sys.argv = ["bayesplit", "runs", "export", {str(store)!r}, "--out", {str(tmp_path / "o.csv")!r}]
from bayesplit.cli import main
main()
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "writing"
        assert any(p.name.startswith(".o.") for p in tmp_path.iterdir())  # the temp file
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143 and err.strip() == "terminated", err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]


def test_ctrl_c_in_a_fit_exits_130_not_a_segmentation_fault(tmp_path):
    # XLA's threads were still computing when the interpreter shut down: "interrupted",
    # then "Fatal Python error: Segmentation fault", exit -11, in 8 of 9 tries
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "post.nc"
    code = f"""
import sys
import numpyro.infer
run = numpyro.infer.MCMC.run
def announced(self, *a, **k):
    print("sampling", flush=True)
    return run(self, *a, **k)
numpyro.infer.MCMC.run = announced
sys.argv = ["bayesplit", "fit", "--runs", "bundled:gadre2024", "--out", {str(out)!r},
            "--chains", "2", "--draws", "20000", "--warmup", "20000", "--no-progress"]
from bayesplit.cli import main
main()
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "sampling"
        time.sleep(4)  # inside the sampler, its threads busy
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "interrupted" and not out.exists()


def test_prior_draws_depend_on_the_seed_alone(runs_csv):
    """In a fresh process (JAX not yet set up by a fit), seeds 2**32 apart drew the same,
    and a seed drew differently before and after a fit had set JAX to 64 bits."""
    import subprocess
    import sys

    code = f"""
from bayesplit.prior import prior_predictive as pp
from bayesplit._jax import configure
lo = lambda seed: pp({str(runs_csv)!r}, "additive", draws=50, seed=seed)["lo"].values.tolist()
a, b = lo(0), lo(2**32)
configure()
print(a != b, a == lo(0))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"], out.stderr


def test_compare_scores_the_largest_runs_and_names_what_it_could_not(tmp_path, additive_runs):
    """End to end on one law: the largest runs are held out and predicted, and held-out
    rows on a domain the fitted runs lack are named (they were dropped without a word)."""
    from bayesplit.runs import compute_flops

    largest = additive_runs.loc[compute_flops(additive_runs).argmax()]
    extra = largest.to_frame().T.assign(eval_domain="medical", train_domain=None, spec_tokens=0)
    # a general model of its own: not a branch of the largest run's trunk (another N)
    extra = extra.assign(run_id="big-medical", loss=3.0, trunk_id=None)
    extra["params"] = additive_runs["params"].max() * 1.5  # larger than all: held out
    runs = tmp_path / "runs.csv"
    pd.concat([additive_runs, extra]).to_csv(runs, index=False)
    args = ["compare", "--runs", str(runs), "--laws", "additive", "--holdout-largest", "0.1"]
    args += ["--chains", "2", "--draws", "60", "--warmup", "60", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["laws"]
    assert row["law"] == "additive" and row["n_holdout"] > 0
    assert row["n_train"] > row["n_train_runs"] > 0  # rows (one per domain) and runs
    # the held-out runs as independent units: fewer than their rows (one per domain)
    assert 0 < row["n_holdout_runs"] < row["n_holdout"]
    assert 0 <= row["coverage"] <= 1 and row["median_rel_error"] < 0.05
    assert (
        "1 held-out row on domains the fitted runs lack (medical) not predicted" in row["warnings"]
    )


def test_compare_says_when_held_out_rows_share_trunks_with_the_fit(monkeypatch):
    # "held out: largest 20% of runs" read as new runs; on the bundled campaign every held-out
    # row was of a trunk the fit saw, and its coverage included that run's effect, unsaid
    import bayesplit.comparison

    row = dict(median_rel_error=0.01, max_rel_error=0.02, coverage=0.59, coverage_new_run=1.0,
               elpd_loo=1.0, elpd_loo_se=0.1, pareto_k_bad=0, gate_ok=True, warnings=[],
               n_holdout=61)  # fmt: skip
    table = pd.DataFrame([{**row, "n_seen_run": 61}, {**row, "n_seen_run": 0}],
                         index=pd.Index(["transfer", "chinchilla"], name="law"))  # fmt: skip
    monkeypatch.setattr(bayesplit.comparison, "compare", lambda *a, **k: table)
    args = ["compare", "--runs", "bundled:gadre2024", "--laws", "transfer,chinchilla"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    text = " ".join(res.stderr.split())
    assert "transfer: 61 of 61 held-out rows are of trunks the fit saw" in text
    assert "chinchilla:" not in text


def test_predict_says_when_the_point_is_far_outside_the_fitted_runs(post_path):
    # --params 1e-300 gave losses near 1e86 with no warning; allocate says this for a plan
    point = ["--pretrain-tokens", "1e9", "--domain", "web", "--json"]
    far = runner.invoke(app, ["predict", str(post_path), "--params", "1e-300", *point])
    assert far.exit_code == 0, far.output
    notes = json.loads(far.stdout)["notes"]
    assert len(notes) == 1 and notes[0].startswith("extrapolation: N = 1e-300 is below")
    near = runner.invoke(app, ["predict", str(post_path), "--params", "3e7", *point])
    assert json.loads(near.stdout)["notes"] == []
    text = runner.invoke(app, ["predict", str(post_path), "--params", "1e-300", *point[:-1]])
    assert "! extrapolation: N = 1e-300 is below the smallest" in text.stderr


@pytest.mark.parametrize("text", ["1e400", "1e300B", "-1e400"])
def test_a_count_beyond_floats_is_refused_as_typed(text):
    # it overflowed to inf, and the refusal said "got inf", a value never typed
    from bayesplit.errors import BayesplitError

    with pytest.raises(BayesplitError, match=rf"--budget '{text}' is beyond the largest number"):
        parse_count(text, "--budget")
    assert parse_count("inf", "--budget") == float("inf")  # typed as such: checked by its option


def test_per_domain_none_fits_a_law_shared_by_every_domain(runs_csv, tmp_path):
    # "" was refused as an empty option: only Python's per_domain=[] could fit it
    from bayesplit.posterior import load_posterior

    out = tmp_path / "p.nc"
    args = ["fit", "--runs", str(runs_csv), "--law", "additive", "--out", str(out), "--chains",
            "1", "--draws", "30", "--warmup", "30", "--per-domain", "None", "--json"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    post = load_posterior(out)
    assert not [p.name for p in post.law.params if p.per_domain]
    base = ["prior", "--runs", str(runs_csv), "--law", "additive", "--draws", "20", "--json"]
    assert runner.invoke(app, [*base, "--per-domain", "none"]).exit_code == 0
