"""Bad input to allocate, frontier, report, suggest and simulate: exit 2, one line, nothing written.

Each case is refused before the slow work (allocation, ranking, campaigns), so a typo costs
seconds and leaves no half-written file behind.
"""

from __future__ import annotations

import json

import pytest
from support import good_table, refused, unusable_outputs
from typer.testing import CliRunner

from bayesplit.cli import app

runner = CliRunner()


def _put(path, content: str | bytes | None) -> None:
    """Text, bytes, or (None) a folder where a file is expected."""
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def _written(tmp_path) -> set[str]:
    return {p.name for p in tmp_path.rglob("*")} - {"a-file", "a-folder"}


@pytest.mark.parametrize("command", ["allocate", "frontier"])
@pytest.mark.parametrize(
    "case", ["under a file", "a folder", "in /proc", "no extension", "bad", "needs LaTeX"]
)
def test_plot_paths_are_checked_before_the_work(post_path, tmp_path, command, case):
    cases = unusable_outputs(tmp_path, "fig.png")
    cases["no extension"] = (str(tmp_path / "fig"), "must end in")
    cases["bad"] = (str(tmp_path / "fig.docx"), "must end in")
    # matplotlib lists .pgf, then runs LaTeX to write it: a traceback after the work
    cases["needs LaTeX"] = (str(tmp_path / "fig.pgf"), "must end in")
    plot, message = cases[case]
    budget = ["--budget", "1e20"] if command == "allocate" else ["--budgets", "1e19,1e20"]
    result = runner.invoke(app, [command, str(post_path), *budget, "--force", "--plot", plot])
    refused(result, message)
    assert _written(tmp_path) == set()


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_plot_is_written_in_the_format_its_extension_names(post_path, tmp_path, suffix):
    plot = tmp_path / "sub" / f"split{suffix}"
    args = ["allocate", str(post_path), "--budget", "1e20", "--force", "--plot", str(plot)]
    assert runner.invoke(app, args).exit_code == 0
    head = plot.read_bytes()[:8]
    magic = {".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF"}[suffix]
    assert head.startswith(magic)
    assert [p.name for p in plot.parent.iterdir()] == [plot.name]  # no temp file left


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('"just a string"', "want a plan object"),
        ("[1, 2]", "want a plan object"),
        ("[]", "want a plan object"),
        ('{"plan": 5}', "want a plan object"),  # was a TypeError traceback
        ('[{"plan": [3e8, 4e10]}]', "want a plan object"),
        (b"\x89PNG\r\n\x1a\n\x00\xff", "not valid JSON"),
        (None, "is not a file"),
    ],
)
def test_allocate_compare_refuses_what_is_not_a_plan(post_path, tmp_path, content, message):
    path = tmp_path / "plan.json"
    _put(path, content)
    args = ["allocate", str(post_path), "--budget", "1e20", "--force", "--compare", str(path)]
    refused(runner.invoke(app, args), message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # the option's name, and no "(or None for all draws)", which an option cannot take
        (["--max-draws", "0"], "--max-draws must be >= 10 (the ranking needs draws), got 0"),
        (["--max-draws", "5"], "--max-draws must be >= 10 (the ranking needs draws), got 5"),
        (["--budget", "-1"], "--budget must be a positive number"),
        (["--max-run-flops", "0"], "--max-run-flops must be a positive number"),
        (["--weights", "web=-1"], "must be finite and >= 0"),
        (["--weights", "web=nan"], "must be finite and >= 0"),
        (["--weights", "web=0,code=0"], "all zero"),
        (
            ["--point", "params=1e8,pretrain_tokens=1e9,domain=web"],
            "only used with --objective point",
        ),
        (["--out", "s.txt"], "must end in .json"),
        (["--weights", "web=1,web=2"], "--weights gives 'web' twice"),
        # an empty item was "wants domain=weight pairs, got ''"
        (["--weights", "web=1,"], "--weights has an empty item in 'web=1,'"),
        (
            ["--objective", "point", "--point", "params=1e8,pretrain_tokens=1e9,domain=web,"],
            "--point has an empty item",
        ),
        (["-n", "0"], "-n (in Python: n=) must be >= 1"),
        (
            ["--objective", "point", "--point", "params=-1e9,pretrain_tokens=1e9,domain=web"],
            "--point params must be a finite number > 0",
        ),
        (
            ["--objective", "point", "--point", "params=1e8,pretrain_tokens=nan,domain=web"],
            "--point pretrain_tokens must be a finite number > 0",
        ),
        (
            [
                "--objective",
                "point",
                "--point",
                "params=1e8,pretrain_tokens=1e9,spec_tokens=-5,domain=web",
            ],
            "--point spec_tokens must be a finite number >= 0",
        ),
        (
            [
                "--objective",
                "point",
                "--point",
                "params=1e8,params=2e8,pretrain_tokens=1e9,domain=web",
            ],
            "--point gives params twice",
        ),
    ],
)
def test_suggest_refuses_bad_options(post_path, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    base = ["suggest", str(post_path), "--force"]
    if "--budget" not in args and "point" not in args:  # --objective point takes no budget
        base += ["--budget", "1e20"]
    refused(runner.invoke(app, [*base, *args]), message)
    assert _written(tmp_path) == set()


@pytest.mark.parametrize("case", ["under a file", "a folder", "in /proc"])
def test_suggest_out_is_checked_before_ranking(post_path, tmp_path, case):
    out, message = unusable_outputs(tmp_path, "s.json")[case]
    args = ["suggest", str(post_path), "--budget", "1e20", "--force", "--out", out]
    refused(runner.invoke(app, args), message)
    assert _written(tmp_path) == set()


@pytest.mark.parametrize("via", ["the same name", "a symlink"])
def test_suggest_out_that_is_the_runs_file_is_refused(post_path, tmp_path, via):
    runs = tmp_path / "runs.json"
    runs.write_text('[{"run_id": "a"}]\n')
    out = runs if via == "the same name" else tmp_path / "link.json"
    if via == "a symlink":
        out.symlink_to(runs)
    args = ["suggest", str(post_path), "--budget", "1e20", "--force"]
    refused(
        runner.invoke(app, [*args, "--runs", str(runs), "--out", str(out)]),
        "is the --runs file: writing there would overwrite",
    )
    assert runs.read_text() == '[{"run_id": "a"}]\n'


def _linked_output_cases(post, tmp):
    """(command, the input a link points at, the option named) per writer: each wrote
    through a link named like its output, over its own input, with exit 0."""
    import shutil

    from bayesplit.store import RunStore

    runs = tmp / "runs.csv"
    runs.write_text("run_id\n")
    store = tmp / "runs.db"
    RunStore(store)
    posterior = tmp / "post.nc"
    shutil.copy(post, posterior)
    truth = tmp / "truth.yaml"
    truth.write_text("law: additive\n")
    budget = ["--budget", "1e20"]
    return {
        "fit --out": (["fit", "--runs", str(runs), "--out"], runs, "--runs", ".nc"),
        "report --out": (["report", str(posterior), *budget, "--force", "--out"], posterior,
                         "POSTERIOR", ".html"),
        "report --out (runs)": (["report", str(posterior), *budget, "--force", "--runs",
                                 str(runs), "--out"], runs, "--runs", ".html"),
        "runs export --out": (["runs", "export", str(store), "--out"], store, "STORE", ".csv"),
        "runs import --store": (["runs", "import", str(runs), "--store"], runs, "PATH", ".db"),
        "allocate --plot": (["allocate", str(posterior), *budget, "--force", "--plot"],
                            posterior, "POSTERIOR", ".png"),
        "frontier --plot": (["frontier", str(posterior), "--force", "--plot"], posterior,
                            "POSTERIOR", ".png"),
        "simulate --plot": (["simulate", "--truth", str(truth), *budget,
                             "--experiment-budget", "1e18", "--plot"], truth, "--truth", ".png"),
    }  # fmt: skip


@pytest.mark.parametrize(
    "case",
    ["fit --out", "report --out", "report --out (runs)", "runs export --out",
     "runs import --store", "allocate --plot", "frontier --plot", "simulate --plot"],
)  # fmt: skip
def test_an_output_linked_to_an_input_is_refused(post_path, tmp_path, case):
    # `runs export s.db --out link.csv` (link.csv -> s.db) turned the store into CSV text
    args, target, name, suffix = _linked_output_cases(post_path, tmp_path)[case]
    link = tmp_path / f"link{suffix}"
    link.symlink_to(target)
    before = target.read_bytes()
    refused(runner.invoke(app, [*args, str(link)]), f"is the {name} file: writing there")
    assert target.read_bytes() == before and link.is_symlink()


def test_report_out_under_a_file_isrefused(post_path, tmp_path):
    out, message = unusable_outputs(tmp_path, "r.html")["under a file"]
    args = ["report", str(post_path), "--budget", "1e20", "--force", "--out", out]
    refused(runner.invoke(app, args), message)


SIM = ["simulate", "--truth", "example:additive", "--budget", "1e20"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--experiment-budget", "-1"], "--experiment-budget must be a positive number"),
        (["--experiment-budget", "0"], "--experiment-budget must be a positive number"),
        (["--experiment-budget", "1e18", "--out", "o.parquet"], "must end in .csv"),
        (["--experiment-budget", "1e18", "--plot", "fig.docx"], "must end in"),
    ],
)
def test_simulate_refuses_bad_options(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    refused(runner.invoke(app, [*SIM, *args]), message)
    assert _written(tmp_path) == set()


@pytest.mark.parametrize(
    ("truth", "message"),
    [
        ("law: additive\ndomains: web\nparams: {}\n", "domains must be a list"),
        (
            "law: additive\ndomains: [web]\nparams: {}\nreference: x\n",
            "reference must be a mapping",
        ),
        ("law: additive\ndomains: [web]\nparams: {}\nnoise: {sigma: -1}\n", "lacks parameter"),
        ("- just\n- a list\n", "expected a mapping"),
        (b"\x00\xff\xfe binary", "not a YAML text file"),
        (None, "is not a file"),
    ],
)
def test_simulate_refuses_a_bad_truth_file(tmp_path, truth, message):
    path = tmp_path / "truth.yaml"
    _put(path, truth)
    args = ["simulate", "--truth", str(path), "--budget", "1e20", "--experiment-budget", "1e18"]
    refused(runner.invoke(app, args), message)


def test_simulate_refuses_a_truth_parameter_that_is_not_a_number(tmp_path):
    import yaml

    from bayesplit.truth import example_truth

    good = example_truth("additive", ("web", "code")).to_dict()
    path = tmp_path / "truth.yaml"
    path.write_text(yaml.safe_dump({**good, "params": {**good["params"], "alpha": "high"}}))
    args = ["simulate", "--truth", str(path), "--budget", "1e20", "--experiment-budget", "1e18"]
    refused(runner.invoke(app, args), "parameter alpha is not a number: 'high'")


def test_truth_noise_must_be_non_negative():
    from bayesplit.errors import BayesplitError
    from bayesplit.truth import GroundTruth, example_truth

    good = example_truth("additive", ("web", "code")).to_dict()
    GroundTruth.from_dict(good)
    with pytest.raises(BayesplitError, match="noise sigma must be a finite number >= 0"):
        GroundTruth.from_dict({**good, "noise": {"sigma": -0.1}})
    with pytest.raises(BayesplitError, match="2 values, one per domain"):
        GroundTruth.from_dict({**good, "domains": ["web", "code", "law"][:2], "params": {
            **good["params"], "E": [1.0, 1.0, 1.0]}})  # fmt: skip


def test_version(monkeypatch):
    import importlib.metadata
    from importlib.metadata import version

    import bayesplit

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"bayesplit {version('bayesplit')}"
    assert version("bayesplit") == bayesplit.__version__  # pyproject reads it from there

    # a checkout on PYTHONPATH has no installed metadata: that was a traceback
    def none(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", none)
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"bayesplit {bayesplit.__version__}"


@pytest.mark.parametrize("module", ["torch", "sklearn"])
def test_a_missing_optional_module_is_one_line_naming_its_extra(monkeypatch, tmp_path, module):
    # the core install (the README's first command) has no trainer: `train pretrain` and
    # `corpus build` ended in a 45-line ModuleNotFoundError traceback
    import importlib.util

    import bayesplit.train.corpus

    def missing(*a, **k):
        raise ModuleNotFoundError(f"No module named '{module}'", name=module)

    monkeypatch.setattr(bayesplit.train.corpus, "build_corpus", missing)
    (tmp_path / "src" / "a").mkdir(parents=True)
    args = ["corpus", "build", str(tmp_path / "src"), "--out", str(tmp_path / "out")]
    # installed (as here), a module that cannot be imported is a broken install or a bug
    result = runner.invoke(app, args)
    assert isinstance(result.exception, ModuleNotFoundError)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a)
    )
    refused(runner.invoke(app, args), f"this needs {module}, which is not installed: pip install 'bayesplit[train]'")  # fmt: skip


@pytest.mark.parametrize("name", ["numpy.linalg.x", "torch._C", "sklearn.no_such_module"])
def test_a_missing_module_that_is_no_extra_keeps_its_traceback(monkeypatch, tmp_path, name):
    # a submodule of an installed extra is a broken install or a typo, not a missing extra
    import bayesplit.train.corpus

    def missing(*a, **k):
        raise ModuleNotFoundError(f"No module named '{name}'", name=name)

    monkeypatch.setattr(bayesplit.train.corpus, "build_corpus", missing)
    args = ["corpus", "build", str(tmp_path), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, args)
    assert isinstance(result.exception, ModuleNotFoundError)  # a bug: not the user's to fix


def test_corpus_build_says_a_missing_tokenizer_before_reading_anything(monkeypatch, tmp_path):
    import importlib.util

    from bayesplit.errors import BayesplitError
    from bayesplit.train.corpus import build_corpus

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tokenizers" else real(name, *a),
    )
    (tmp_path / "src" / "a").mkdir(parents=True)
    (tmp_path / "src" / "a" / "t.txt").write_text("some text\n")
    with pytest.raises(BayesplitError, match=r"needs tokenizers, .*bayesplit\[train\]"):
        build_corpus(tmp_path / "src", tmp_path / "out", vocab_size=300, progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("risk", ["cvar0", "q0", "q00"])
def test_allocate_refuses_a_zero_risk_level(post_path, risk):
    args = ["allocate", str(post_path), "--budget", "1e20", "--force", "--risk", risk]
    refused(runner.invoke(app, args), "risk level must be 1-99")


def test_frontier_budgets_take_counts_with_suffixes(post_path):
    import json

    args = ["frontier", str(post_path), "--budgets", "100000T,1e18:1e19:2", "--force", "--json"]
    # a list or a range, not both
    refused(runner.invoke(app, args), "--budgets (in Python: budgets=) wants")
    args = ["frontier", str(post_path), "--budgets", "100000T,1000000T", "--force", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert [r["budget"] for r in json.loads(result.stdout)["frontier"]] == [1e17, 1e18]


@pytest.mark.parametrize(
    ("budgets", "message"),
    [("1e18:1e20:0", "COUNT must be 1-100"), ("1e18:1e20:1000", "COUNT must be 1-100"),
     ("1e18,-1", "positive FLOPs"), (",", "positive FLOPs"),
     ("", "positive FLOPs")],  # used to fall back to the default budgets quietly
)  # fmt: skip
def test_frontier_refuses_bad_budgets(post_path, budgets, message):
    args = ["frontier", str(post_path), "--budgets", budgets, "--force"]
    refused(runner.invoke(app, args), message)


def test_an_empty_comma_list_isrefused(tmp_path):
    runs = tmp_path / "runs.csv"
    runs.write_text("run_id,params,pretrain_tokens,eval_domain,loss\nr,1e7,1e9,web,3.0\n")
    args = ["fit", "--runs", str(runs), "--domains", ",", "--out", str(tmp_path / "p.nc")]
    refused(runner.invoke(app, args), "empty list ','")


def _comma_list_commands(tmp_path, post_path) -> dict[str, list[str]]:
    runs = tmp_path / "runs.csv"
    runs.write_text("run_id,params,pretrain_tokens,eval_domain,loss\nr,1e7,1e9,web,3.0\n")
    fit = ["fit", "--runs", str(runs), "--out", str(tmp_path / "p.nc")]
    sim = ["simulate", "--truth", "example:additive", "--budget", "1e20",
           "--experiment-budget", "1e18", "--out", str(tmp_path / "sim.csv")]  # fmt: skip
    return {
        "fit --domains": [*fit, "--domains"],
        "fit --per-domain": [*fit, "--per-domain"],
        "compare --laws": ["compare", "--runs", str(runs), "--laws"],
        "allocate --domains": [
            "allocate",
            str(post_path),
            "--budget",
            "1e20",
            "--force",
            "--domains",
        ],  # fmt: skip
        "simulate --domains": [*sim, "--domains"],
        "simulate --policies": [*sim, "--policies"],
    }


@pytest.mark.parametrize(
    "command",
    ["fit --domains", "fit --per-domain", "compare --laws", "allocate --domains",
     "simulate --domains", "simulate --policies"],
)  # fmt: skip
@pytest.mark.parametrize("items", ["web,", ",web", "web,,code", "web, ,code"])
def test_a_comma_list_with_an_empty_item_is_refused(tmp_path, post_path, command, items):
    # the empty item was dropped: "web," fitted web alone, as if nothing were missing
    if command == "compare --laws":
        items = items.replace("web", "chinchilla").replace("code", "additive")
    elif command == "simulate --policies":
        items = items.replace("web", "grid").replace("code", "random")
    args = _comma_list_commands(tmp_path, post_path)[command]
    option = command.split()[1]
    refused(runner.invoke(app, [*args, items]), f"{option} has an empty item in {items!r}")
    assert {p.name for p in tmp_path.iterdir()} == {"runs.csv"}  # nothing written


def test_a_file_system_refusal_is_one_line_not_a_traceback(post_path, monkeypatch):
    import bayesplit.posterior

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(bayesplit.posterior, "load_posterior", refuse)
    args = ["predict", str(post_path), "--params", "1e8", "--pretrain-tokens", "1e9"]
    refused(runner.invoke(app, [*args, "--domain", "web"]), f"Permission denied: {post_path}")


def test_law_module_registers_a_law_or_fails_in_one_line(tmp_path, monkeypatch):
    import json
    import shutil
    from pathlib import Path

    snippet = Path(__file__).parents[1] / "docs" / "snippets" / "weighted_law.py"
    shutil.copy(snippet, tmp_path / "my_laws.py")
    (tmp_path / "broken_laws.py").write_text("x = 1\nraise RuntimeError('no such prior')\n")
    (tmp_path / "typo_laws.py").write_text("def law(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    result = runner.invoke(app, ["laws", "--json", "--law-module", "my_laws"])
    assert result.exit_code == 0, result.output
    assert "weighted" in [law["name"] for law in json.loads(result.stdout)["laws"]]
    refused(
        runner.invoke(app, ["laws", "--law-module", "no_such_laws"]), "cannot import law module"
    )
    refused(
        runner.invoke(app, ["laws", "--law-module", "broken_laws"]),
        "RuntimeError: no such prior (",
    )
    refused(runner.invoke(app, ["laws", "--law-module", "typo_laws"]), "SyntaxError")
    # a law bayesplit refuses is reported at the user's line, not at bayesplit's check
    (tmp_path / "bad_param_laws.py").write_text(
        "from bayesplit.laws import Param\n\nE = Param('E', 'positive', '0.5', 1.0)\n"
    )
    refused(
        runner.invoke(app, ["laws", "--law-module", "bad_param_laws"]),
        f"prior loc must be a finite number, got '0.5' ({tmp_path / 'bad_param_laws.py'}:3)",
    )


@pytest.mark.parametrize(
    ("given", "folder"), [("my_laws.py", "."), ("./my_laws.py", "."), ("/x/y/my_laws.py", "/x/y")]
)
def test_law_module_given_as_a_file_path_says_to_give_its_name(given, folder):
    # "./my_laws.py" was "failed on import: TypeError: the 'package' argument is required
    # ... (importlib/__init__.py:121)", as if the user's module had broken
    refused(
        runner.invoke(app, ["laws", "--law-module", given]),
        f"is a file path; --law-module (in Python: module=) takes a module name: put {folder!r} "
        "on PYTHONPATH "
        "and give 'my_laws'",
    )


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("", "--law-module (in Python: module=) is empty: give a module name"),
        (" ", "--law-module (in Python: module=) is empty: give a module name"),
        (
            ".my_laws",
            "law module '.my_laws' is a relative name; --law-module (in Python: module=) takes",
        ),
        ("..", "law module '..' is a relative name"),
    ],
)
def test_law_module_empty_or_relative_is_refused_in_one_line(given, message):
    # "" was "failed on import: ValueError: Empty module name (<frozen importlib...>)" and
    # ".my_laws" a TypeError at importlib's line, as if the user's module had broken
    refused(runner.invoke(app, ["laws", "--law-module", given]), message)


def test_frontier_defaults_to_budgets_from_the_data_and_carries_notes(
    post_path, additive_posterior
):
    import json

    import numpy as np

    from bayesplit.runs import compute_flops

    result = runner.invoke(app, ["frontier", str(post_path), "--force", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["frontier"]
    largest = compute_flops(additive_posterior.runs).max()
    budgets = [r["budget"] for r in rows]
    assert len(budgets) == 9
    assert np.allclose([budgets[0], budgets[-1]], [largest, 1e4 * largest])
    assert all(isinstance(r["notes"], list) for r in rows)
    assert any("extrapolation" in n for n in rows[-1]["notes"])  # 10,000x the data


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prior", "--runs", "x.csv", "--draws", "abc"], "Invalid value for '--draws'"),
        (["suggest", "post.nc", "-n", "abc"], "Invalid value for '-n'"),
        (["laws", "--bogus"], "No such option"),  # click words the rest by version
        (["nosuchcmd"], "No such command 'nosuchcmd'"),
        (["runs", "list"], "Missing argument"),
        (["prior"], "Missing option '--runs'"),
    ],
)
def test_a_mistyped_command_line_is_one_error_line_too(args, message):
    result = runner.invoke(app, args)
    refused(result, message)
    assert result.stderr.startswith("error: ")
    assert "--help" in result.stderr  # where to look next


def test_the_console_script_turns_root_usage_errors_into_one_line(monkeypatch, capsys):
    from bayesplit.cli import main

    monkeypatch.setattr("sys.argv", ["bayesplit", "--bogus"])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
    err = capsys.readouterr().err
    (line,) = err.splitlines()  # click words it by version: "No such option: --bogus"
    assert line.startswith("error: No such option") and "--bogus" in line
    assert line.endswith("(see `bayesplit --help`)")
    monkeypatch.setattr("sys.argv", ["bayesplit", "laws", "--json"])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 0
    assert '"laws"' in capsys.readouterr().out


def test_suggest_refuses_done_runs_on_none_of_the_posteriors_domains(post_path, tmp_path):
    other = tmp_path / "other.csv"  # another project's table: no domain in common
    other.write_text("run_id,params,pretrain_tokens,eval_domain,loss\nr,1e7,1e9,math,3.0\n")
    args = ["suggest", str(post_path), "--budget", "1e20", "--force", "--runs", str(other)]
    refused(runner.invoke(app, args), "none of the runs already done is on a domain")


def test_simulate_refuses_domains_for_a_truth_file(tmp_path):
    import yaml

    from bayesplit.truth import example_truth

    path = tmp_path / "truth.yaml"
    path.write_text(yaml.safe_dump(example_truth("additive", ("web", "code")).to_dict()))
    args = ["simulate", "--truth", str(path), "--domains", "a,b", "--budget", "1e20",
            "--experiment-budget", "1e18"]  # fmt: skip
    refused(runner.invoke(app, args), "--domains only applies to an example:LAW truth")


@pytest.mark.parametrize("truth", ["", " "])
def test_simulate_refuses_an_empty_truth(tmp_path, truth):
    # "" was the folder ".": "ground truth . is not a file"
    args = ["simulate", "--truth", truth, "--budget", "1e20", "--experiment-budget", "1e18",
            "--out", str(tmp_path / "sim.csv")]  # fmt: skip
    refused(runner.invoke(app, args), "--truth is empty: give a truth file")
    assert list(tmp_path.iterdir()) == []


def test_compare_refuses_a_law_named_twice(tmp_path):
    runs = tmp_path / "runs.csv"
    runs.write_text("run_id,params,pretrain_tokens,eval_domain,loss\nr,1e7,1e9,web,3.0\n")
    args = ["compare", "--runs", str(runs), "--laws", "chinchilla,additive,chinchilla"]
    # the message names the option now ("law(s) named more than once: chinchilla" did not)
    refused(runner.invoke(app, args), "--laws names chinchilla more than once")


@pytest.mark.parametrize("seed", ["-1", str(2**63), "99999999999999999999"])
def test_a_seed_beyond_64_bits_is_refused_before_any_work(tmp_path, seed):
    # torch.manual_seed overflowed past 2^64, and the store keeps seeds as int64
    out = tmp_path / "post.nc"
    args = ["fit", "--runs", "bundled:gadre2024", "--law", "chinchilla", "--out", str(out)]
    refused(runner.invoke(app, [*args, "--seed", seed]), "--seed must be between 0 and 2^63 - 1")
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--params", "nan"], "--params must be a positive number, got 'nan'"),
        (["--max-spec-tokens", "web=nan"], "must be a finite number >= 0"),
        (["--max-spec-tokens", "web=inf"], "must be a finite number >= 0"),
        (["--max-spec-tokens", "web=1e9,web=2e9"], "--max-spec-tokens gives 'web' twice"),
        (["--weights", "web=1,web=2"], "--weights gives 'web' twice"),
        (["--max-spec-tokens", "web=1e9,"], "--max-spec-tokens has an empty item"),
    ],
)
def test_allocate_refuses_what_is_not_a_number_once(post_path, args, message):
    # nan N was a traceback; nan or inf limits gave a plan of nan losses with exit 0
    base = ["allocate", str(post_path), "--budget", "1e20", "--force"]
    refused(runner.invoke(app, [*base, *args]), message)


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("predict", ["--params", "0"], "--params must be a positive number, got '0'"),
        ("predict", ["--pretrain-tokens", "inf"], "--pretrain-tokens must be a positive number"),
        ("predict", ["--spec-tokens", "-1"], "--spec-tokens must be a number >= 0, got '-1'"),
        ("allocate", ["--budget", "0"], "--budget must be a positive number, got '0'"),
        ("report", ["--budget", "-1e20"], "--budget must be a positive number, got '-1e20'"),
    ],
)
def test_bad_numbers_are_refused_by_their_option_names(post_path, tmp_path, command, args, message):
    # the library's wording came through: "params must be finite and > 0", no option named
    base = {
        "predict": ["--params", "1e8", "--pretrain-tokens", "1e9", "--domain", "web"],
        "allocate": ["--budget", "1e20", "--force"],
        "report": ["--budget", "1e20", "--force", "--out", str(tmp_path / "r.html")],
    }[command]
    refused(runner.invoke(app, [command, str(post_path), *base, *args]), message)
    assert not (tmp_path / "r.html").exists()


def test_frontier_refuses_an_infinite_end_in_one_line(post_path):
    # numpy's warning about it came first, so stderr had three lines
    args = ["frontier", str(post_path), "--force", "--budgets", "1e19:inf:3"]
    refused(runner.invoke(app, args), "--budgets (in Python: budgets=) wants LO:HI:COUNT")


@pytest.mark.parametrize("command", ["allocate", "frontier"])
def test_a_zero_weight_prints_no_numpy_warning(post_path, command):
    budget = ["--budget", "1e20"] if command == "allocate" else ["--budgets", "1e19,1e20"]
    args = [
        command,
        str(post_path),
        *budget,
        "--force",
        "--json",
        "--weights",
        "web=1,code=0,law=0",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.stderr, result.stderr


@pytest.mark.parametrize("group", [[], ["runs"], ["train"], ["corpus"]])
def test_a_command_group_named_alone_shows_its_help_and_no_empty_error(group):
    result = runner.invoke(app, group)
    assert result.exit_code == 2  # as click answers a group without its command
    lines = result.output.splitlines()
    assert any("Usage: " in line for line in lines)
    assert not any(line.startswith("error:") for line in lines), result.output


def test_one_chain_has_no_r_hat_and_says_so():
    from types import SimpleNamespace

    from bayesplit.cli.core import diagnostics_lines
    from bayesplit.diagnostics import Thresholds

    diag = SimpleNamespace(
        ok=False, r_hat_max=float("nan"), ess_bulk_min=30.0, ess_tail_min=20.0,
        divergences=0, bfmi_min=0.9, failures=[], warnings=[], thresholds=Thresholds(),
    )  # fmt: skip
    assert "R-hat max n/a," in diagnostics_lines(diag)[0]
    assert (
        "R-hat max 1.004,"
        in diagnostics_lines(SimpleNamespace(**{**vars(diag), "r_hat_max": 1.0042}))[0]
    )


def test_fit_says_before_sampling_what_the_design_cannot_identify(tmp_path):
    from bayesplit.truth import example_truth, factorial_design

    truth = example_truth("additive", ("web", "code"))
    runs = truth.simulate(factorial_design([1e7, 3e7], [3e8, 1e9], [], truth.domains), seed=0)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    out = tmp_path / "post.nc"
    args = ["fit", "--runs", str(tmp_path / "runs.csv"), "--law", "additive", "--out", str(out)]
    result = runner.invoke(app, [*args, "--chains", "1", "--draws", "20", "--warmup", "20"])
    assert result.exit_code == 0, result.output  # a warning, not a refusal: it is the user's call
    text = " ".join(result.output.split())
    warning = "no row has spec_tokens > 0: the fit will fail its diagnostics gate"
    assert warning in text and text.index(warning) < text.index("diagnostics FAILED")


GADRE_ADDITIVE = ["--runs", "bundled:gadre2024", "--law", "additive"]  # warns: no D' rows


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", *GADRE_ADDITIVE, "--chains", "0"], "chains must be >= 1, got 0"),
        (["fit", *GADRE_ADDITIVE, "--device", "tpu"], "device must be one of auto, cpu, gpu"),
        (["fit", *GADRE_ADDITIVE, "--run-effect", "maybe"], "--run-effect must be auto, on or off"),
        (["fit", *GADRE_ADDITIVE, "--backend", "pymc", "--device", "gpu"], "runs on CPU"),
        (["compare", "--runs", "bundled:gadre2024", "--warmup", "5"], "warmup must be >= 10"),
        (["compare", "--runs", "bundled:gadre2024", "--device", "tpu"], "device must be one of"),
        (["demo", "--chains", "0"], "chains must be >= 1, got 0"),
        (["demo", "--draws", "5", "--data", "gadre2024"], "draws must be >= 10, got 5"),
        # past int64 these were a JAX traceback; under it, a hang allocating the draws
        (["fit", *GADRE_ADDITIVE, "--draws", "9" * 20], "draws must be at most 10,000,000"),
        (["fit", *GADRE_ADDITIVE, "--warmup", "10000001"], "warmup must be at most 10,000,000"),
        (["compare", "--runs", "bundled:gadre2024", "--chains", "9" * 20], "chains must be at"),
        (["demo", "--draws", "9" * 20], "draws must be at most 10,000,000"),
        (["prior", *GADRE_ADDITIVE, "--draws", "9" * 20], "draws must be at most 10,000,000"),
    ],
)
def test_a_sampler_typo_is_the_only_line_printed(tmp_path, monkeypatch, args, message):
    # the design warning (fit), the first law's progress line (compare) or the data set's
    # summary (demo) came first: two lines on stderr for one typo
    monkeypatch.chdir(tmp_path)
    out = ["--out", "post.nc"] if args[0] == "fit" else []
    refused(runner.invoke(app, [*args, *out]), message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["allocate", "POST", "--budget", "1e20", "--weights", ""], "--weights"),
        (["allocate", "POST", "--budget", "1e20", "--max-spec-tokens", " "], "--max-spec-tokens"),
        (["allocate", "POST", "--budget", "1e20", "--params", ""], "--params"),
        (["frontier", "POST", "--budgets", "1e19,1e20", "--weights", ""], "--weights"),
        (["report", "POST", "--budget", "1e20", "--out", "r.html", "--runs", ""], "--runs"),
        (["suggest", "POST", "--budget", "1e20", "--runs", ""], "--runs"),
        (["suggest", "POST", "--budget", "1e20", "--max-run-flops", ""], "--max-run-flops"),
        ([*SIM, "--experiment-budget", "1e18", "--params", ""], "--params"),
        (["demo", "--budget", ""], "--budget"),
        (["demo", "--law", ""], "--law"),
        (["fit", "--runs", "", "--out", "p.nc"], "--runs"),
        # "no such model ladder: " (the name printed as nothing)
        (["allocate", "POST", "--budget", "1e20", "--ladder", ""], "--ladder"),
        (["suggest", "POST", "--budget", "1e20", "--ladder", " "], "--ladder"),
        (["train", "ladder", ""], "LADDER"),
    ],
)
def test_an_empty_option_value_is_refused_not_read_as_left_out(tmp_path, monkeypatch, args, option):
    # `--weights "$W"` with W unset gave equal weights, `--runs ""` left the report's
    # held-out check out and `demo --budget ""` used the data set's budget, all silently
    from bayesplit.truth import example_truth

    monkeypatch.chdir(tmp_path)
    post = example_truth("additive", ("web", "code")).as_posterior().save(tmp_path / "t.nc")
    args = [str(post) if a == "POST" else a for a in args]
    refused(runner.invoke(app, args), f"{option} is empty")
    assert [p.name for p in tmp_path.iterdir()] == ["t.nc"]


@pytest.mark.parametrize("command", ["allocate", "suggest"])
def test_a_folder_given_as_ladder_is_called_a_folder(tmp_path, monkeypatch, command):
    # allocate and suggest said "no such model ladder: models" of a folder that exists
    from bayesplit.truth import example_truth

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    post = example_truth("additive", ("web", "code")).as_posterior().save(tmp_path / "t.nc")
    refused(
        runner.invoke(app, [command, str(post), "--budget", "1e20", "--ladder", "models"]),
        "models is a folder, not a model ladder",
    )


@pytest.mark.parametrize("command", [["allocate"], ["suggest"], ["train", "pretrain"]])
def test_ladder_help_names_the_bundled_ladders(command):
    from bayesplit.train.ladder import BUNDLED_LADDERS

    text = " ".join(_help(command).split())
    names = sorted(f.stem for f in BUNDLED_LADDERS.glob("*.yaml"))
    assert len(names) >= 2
    assert f"bundled ({', '.join(names)})" in text


def _help(command: list[str]) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    return result.output


def _path_params():
    """(command words, parameter) for every Path-typed option and argument of every
    command, found in the app itself: a new one is covered without a new test."""
    import typer.main

    from bayesplit.cli import _is_path

    found = []

    def walk(command, words):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, [*words, name])
            return
        for param in command.params:
            if _is_path(param):
                found.append((words, param))

    walk(typer.main.get_command(app), [])
    return found


PATH_PARAMS = _path_params()


def test_the_path_parameters_are_found():
    names = {(" ".join(words), param.name) for words, param in PATH_PARAMS}
    assert {("fit", "out"), ("report", "posterior"), ("train execute", "workdir")} <= names
    assert len(names) >= 25


def _empty_path_cases():
    """(command words, the empty value as typed, the label the error names)."""
    for words, param in PATH_PARAMS:
        if param.param_type_name == "argument":
            yield pytest.param(
                words, [""], param.name.upper(), id=f"{' '.join(words)} {param.name}"
            )
            continue
        flag = max(param.opts, key=len)
        for given in ([flag, ""], [f"{flag}="]):
            yield pytest.param(words, given, flag, id=f"{' '.join(words)} {' '.join(given)}")


@pytest.mark.parametrize("words, given, label", list(_empty_path_cases()))
def test_an_empty_path_is_refused_as_empty(tmp_path, monkeypatch, words, given, label):
    # Path("") is Path("."): `--out ""` reached the command as the current folder
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [*words, *given])
    refused(result, f"{label} is empty: give a file or folder name")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_path_does_not_hide_the_help():
    result = runner.invoke(app, ["fit", "--out", "", "--help"])
    assert result.exit_code == 0, result.output
    assert "--out" in result.output


def test_a_law_module_that_prints_or_exits_on_import_keeps_the_rules(tmp_path, monkeypatch):
    import json
    from pathlib import Path

    snippet = Path(__file__).parents[1] / "docs" / "snippets" / "weighted_law.py"
    text = snippet.read_text()
    (tmp_path / "chatty_laws.py").write_text(text + "\nprint('registered my laws')\n")
    (tmp_path / "exit_laws.py").write_text("import sys\nsys.exit('bye')\n")
    (tmp_path / "quiet_exit_laws.py").write_text("raise SystemExit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    # the print went to stdout ahead of the JSON document
    result = runner.invoke(app, ["laws", "--json", "--law-module", "chatty_laws"])
    assert result.exit_code == 0, result.output
    assert "weighted" in [law["name"] for law in json.loads(result.stdout)["laws"]]
    assert "registered my laws" in result.stderr
    # sys.exit ended the command with the module's own code and no `error:` line
    refused(
        runner.invoke(app, ["laws", "--law-module", "exit_laws"]),
        "law module 'exit_laws' called sys.exit('bye') on import",
    )
    refused(
        runner.invoke(app, ["laws", "--law-module", "quiet_exit_laws"]),
        "law module 'quiet_exit_laws' called sys.exit(3) on import",
    )


@pytest.mark.parametrize("command", ["allocate", "frontier", "report"])
def test_weights_for_some_domains_only_are_refused(post_path, command, tmp_path):
    # `--weights web=2` (meaning "web twice") silently gave code and law weight 0
    budget = ["--budgets", "1e19,1e20"] if command == "frontier" else ["--budget", "1e20"]
    out = ["--out", str(tmp_path / "r.html")] if command == "report" else []
    args = [command, str(post_path), *budget, "--force", "--weights", "web=2", *out]
    refused(
        runner.invoke(app, args),
        "weights leave out code, law: give every domain a weight (0 leaves one out",
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["fit", "--runs", "RUNS", "--out", "OUT", "--domains", "web,web"], "--domains"),
        (["fit", "--runs", "RUNS", "--out", "OUT", "--per-domain", "E,E"], "--per-domain"),
        (["allocate", "POST", "--budget", "1e20", "--domains", "web,code,web"], "--domains"),
        (["compare", "--runs", "RUNS", "--laws", "additive,additive"], "--laws"),
    ],
)
def test_a_name_given_twice_names_its_option(post_path, tmp_path, args, option):
    # "domains name web more than once" did not say which option held the repeat
    runs = tmp_path / "runs.csv"
    good_table().to_csv(runs, index=False)
    subs = {"RUNS": str(runs), "OUT": str(tmp_path / "p.nc"), "POST": str(post_path)}
    result = runner.invoke(app, [subs.get(a, a) for a in args])
    refused(result, f"error: {option} names")
    assert not (tmp_path / "p.nc").exists()


def test_suggest_workdir_must_be_a_folder_and_an_empty_one_is_said(post_path, tmp_path):
    args = ["suggest", str(post_path), "--budget", "1e20", "--force", "-n", "1"]
    args += ["--max-draws", "50"]
    (tmp_path / "afile").write_text("")
    refused(
        runner.invoke(app, [*args, "--workdir", str(tmp_path / "afile")]),
        "afile is not a folder",
    )
    # none yet, before the first training (the how-to's first suggest was refused): said
    with pytest.warns(UserWarning, match="nowhere does not exist \\(yet\\): every run is priced"):
        res = runner.invoke(app, [*args, "--workdir", str(tmp_path / "nowhere"), "--json"])
    assert res.exit_code == 0, res.output
    assert "no trunk of the runs already done" not in res.stderr  # said once, above
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "work").mkdir()
    res = runner.invoke(app, [*args, "--workdir", str(tmp_path / "work"), "--json"])
    assert res.exit_code == 0, res.output
    assert "no trunk of the runs already done has checkpoints in" in res.stderr
    # with no checkpoint, its trunk is trained from scratch: to D (or to D less its cooldown)
    rec = json.loads(res.stdout)[0]
    n, d, dp = rec["params"], rec["pretrain_tokens"], rec["spec_tokens"]
    assert rec["cost_flops"] == pytest.approx(6 * n * (d + dp if dp > 0 else d))


def test_suggest_train_seed_picks_the_trunks_the_trainer_resumes(post_path, tmp_path, monkeypatch):
    import bayesplit.train.trunk

    args = ["suggest", str(post_path), "--budget", "1e20", "--force", "-n", "1"]
    args += ["--max-draws", "50", "--json"]
    refused(
        runner.invoke(app, [*args, "--train-seed", "3"]),
        "in --workdir the trainer resumes: give --workdir",
    )
    (tmp_path / "work").mkdir()
    work = ["--workdir", str(tmp_path / "work")]
    refused(runner.invoke(app, [*args, *work, "--train-seed", "-1"]), "--train-seed must be")
    seen = []
    real = bayesplit.train.trunk.trunk_checkpoints
    monkeypatch.setattr(bayesplit.train.trunk, "trunk_checkpoints",
                        lambda *a, **k: seen.append(k["seed"]) or real(*a, **k))  # fmt: skip
    for given, seed in [([], None), (["--train-seed", "3"], 3)]:
        res = runner.invoke(app, [*args, *work, *given])
        assert res.exit_code == 0, res.output
        assert seen[-1] == seed
        assert "trained with seeds" not in res.stderr  # one trunk per run, each seed 0


def test_suggest_says_when_trunks_of_one_size_have_several_seeds(
    post_path, tmp_path, additive_runs
):
    runs = additive_runs.copy()
    # two trunks of each size, seeds 0 and 1: the trainer resumes only its own seed's
    far = runs["pretrain_tokens"] >= 3e9
    runs["seed"] = far.astype(int)
    runs["trunk_id"] = runs["params"].map("{:.0e}".format) + far.map({True: "-s1", False: "-s0"})
    table = tmp_path / "runs.csv"
    runs.to_csv(table, index=False)
    (tmp_path / "work").mkdir()
    args = ["suggest", str(post_path), "--budget", "1e20", "--force", "-n", "1", "--json",
            "--max-draws", "50", "--runs", str(table), "--workdir", str(tmp_path / "work")]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())
    assert "trunks of one size trained with seeds 0, 1" in said and "give --train-seed" in said
    json.loads(res.stdout)  # the note stays off stdout
    res = runner.invoke(app, [*args, "--train-seed", "0"])
    assert res.exit_code == 0 and "trained with seeds" not in res.stderr


def test_suggest_names_the_trainer_workdir_beside_a_store(post_path, tmp_path, additive_runs):
    from bayesplit.store import RunStore

    store = tmp_path / "runs.db"
    RunStore(store).append(additive_runs)
    args = ["suggest", str(post_path), "--budget", "1e20", "--force", "-n", "1",
            "--max-draws", "50", "--runs", str(store), "--json"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0 and "trainer's workdir" not in res.stderr
    (tmp_path / "runs-checkpoints" / "trunks").mkdir(parents=True)
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())  # rich wraps long lines
    assert "give --workdir " in said and "runs-checkpoints to price each run" in said
    json.loads(res.stdout)  # the note stays off stdout
    res = runner.invoke(app, [*args, "--workdir", str(tmp_path / "runs-checkpoints")])
    assert res.exit_code == 0 and "give --workdir" not in res.stderr


def test_a_domain_name_with_an_equals_sign_can_be_weighted_and_limited():
    # "数学=law=2" was read as domain 数学 with weight "law=2", refused as not a number
    from bayesplit.cli.decide import parse_limits
    from bayesplit.cli.suggest import parse_weights
    from bayesplit.errors import BayesplitError

    assert parse_weights("web=1,数学=law=2") == {"web": 1.0, "数学=law": 2.0}
    assert parse_limits("数学=law=1e9") == {"数学=law": 1e9}
    with pytest.raises(BayesplitError, match="weight for 'web' is not a number: 'x'"):
        parse_weights("web=x")
