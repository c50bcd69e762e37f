"""Incomplete posterior files and bad ground truths: refused with one line, no traceback."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil

import arviz as az
import h5py
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from bayesplit.cli import app
from bayesplit.errors import BayesplitError
from bayesplit.posterior import Posterior
from bayesplit.truth import GroundTruth, example_truth, load_truth

runner = CliRunner()

PREDICT = ["--params", "1e6", "--pretrain-tokens", "1e8", "--domain", "code", "--json"]
SIMULATE = ["--budget", "1e15", "--experiment-budget", "1e14", "--json"]


def _refused(result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    """A complete posterior file, cheaply: the additive example truth as a one-draw posterior."""
    path = tmp_path_factory.mktemp("good") / "post.nc"
    example_truth("additive").as_posterior().save(path)
    return path


def _rewrite(good, path, *, meta=None, raw=None, drop=(), groups=None, edit=None):
    """A copy of ``good`` with changed metadata, dropped or edited posterior variables, or
    dropped groups."""
    idata = az.from_netcdf(good)
    post = idata.posterior.drop_vars(list(drop))
    if edit is not None:
        post = edit(post)
    if raw is not None:
        post.attrs["bayesplit"] = raw
    elif meta is not None:
        m = json.loads(idata.posterior.attrs["bayesplit"])
        meta(m)
        post.attrs["bayesplit"] = json.dumps(m)
    if raw is not None or meta is not None:
        # a file written so (its checksum matches): what its metadata says is checked
        text = post.attrs["bayesplit"]
        post.attrs["bayesplit_sha256"] = hashlib.sha256(str(text).encode()).hexdigest()
    keep = [g for g in idata.groups() if g != "posterior" and (groups is None or g in groups)]
    az.InferenceData(posterior=post, **{g: getattr(idata, g) for g in keep}).to_netcdf(path)
    return path


def _set(key, value):
    return lambda m: m.__setitem__(key, value)


def _law(m):
    m["law"], m["per_domain"] = "transfer", ["E", "tau"]


def _with_run_z(post):
    """``post`` with one run effect per run of the file's spec (its single run "truth")."""
    return post.assign(run_z=(("chain", "draw", "run"), np.zeros((*post["sigma"].shape, 1))))


def _run_effect(on: bool):
    return lambda m: m["spec"].__setitem__("run_effect", on)


BAD_POSTERIORS = {
    "no constant_data": (dict(groups=()), "lacks its constant_data group"),
    "no diagnostics": (dict(meta=lambda m: m.pop("diagnostics")), "metadata lacks 'diagnostics'"),
    "metadata a list": (dict(raw=json.dumps([1, 2])), "metadata is a list, not a mapping"),
    "metadata not text": (dict(raw=5), "is not a bayesplit posterior"),
    "empty spec": (dict(meta=_set("spec", {})), "spec lacks 'domains'"),
    "law variable dropped": (dict(drop=["A"]), "the posterior lacks law parameter(s) A"),
    "other law's names": (dict(meta=_law), "the posterior lacks law parameter(s) tau, kappa"),
    "unknown pooled name": (dict(meta=_set("per_domain", ["zeta"])), "zeta are not parameters"),
    "pooling differs": (
        dict(meta=_set("per_domain", ["E"])),
        "do not match the metadata's pooling",
    ),
    "diagnostics ok not bool": (
        dict(meta=lambda m: m["diagnostics"].__setitem__("ok", "yes")),
        "diagnostics.ok is not true or false",
    ),
    "student_df not > 0": (
        dict(meta=lambda m: m["spec"].__setitem__("student_df", -1)),
        "spec.student_df is not a finite number > 0 or null",
    ),
    "bad reference": (
        dict(meta=lambda m: m["spec"]["reference"].__setitem__("tokens", 0)),
        "spec.reference.tokens is not a number > 0",
    ),
    # a ZeroDivisionError traceback in predict
    "no draws": (dict(edit=lambda p: p.isel(draw=slice(0, 0))), "the posterior has no draws"),
    # empty bands, without a word
    "NaN draws": (
        dict(edit=lambda p: p.assign(alpha=p["alpha"] * float("nan"))),
        "law parameter(s) alpha have draws outside their support",
    ),
    "negative draws": (
        dict(edit=lambda p: p.assign(E=-p["E"])),
        "law parameter(s) E have draws outside their support",
    ),
    # a TypeError traceback in predict (float(None) for ν)
    "nu sampled but missing": (
        dict(meta=lambda m: m["spec"].__setitem__("student_df", None)),
        "spec.student_df is null (ν was sampled) but the posterior lacks 'nu'",
    ),
    # predictive bands of [null, null], exit 0
    "NaN sigma": (
        dict(edit=lambda p: p.assign(sigma=p["sigma"] * float("nan"))),
        "noise draws sigma are not all finite and > 0",
    ),
    # loaded, and predict --run answered "the fit has no run effect"
    "run_z without run_effect": (
        dict(edit=_with_run_z, meta=_run_effect(False)),
        "spec.run_effect is false but the posterior has run effects 'run_z'",
    ),
    # run names carry no checksum; predict --run looked up the changed name
    "run names differ": (
        dict(edit=lambda p: _with_run_z(p).assign_coords(run=["renamed"]), meta=_run_effect(True)),
        "the posterior's runs differ from those in its metadata",
    ),
}


def test_a_complete_posterior_file_loads(good_file):
    post = Posterior.load(good_file)
    assert post.domains == ["web", "code", "law"] and len(post.runs) == 3


@pytest.mark.parametrize("case", list(BAD_POSTERIORS))
def test_incomplete_posterior_files_are_refused(good_file, tmp_path, case):
    change, message = BAD_POSTERIORS[case]
    path = _rewrite(good_file, tmp_path / "bad.nc", **change)
    with pytest.raises(BayesplitError, match="bayesplit posterior") as err:
        Posterior.load(path)
    assert message in str(err.value) and "\n" not in str(err.value)
    _refused(runner.invoke(app, ["predict", str(path), *PREDICT]), message)


@pytest.mark.parametrize("fmt", ["bayesplit-posterior/99", "", 2])
def test_a_posterior_of_another_format_is_refused_not_misread(good_file, tmp_path, fmt):
    # the tag was written but read nowhere
    path = _rewrite(good_file, tmp_path / "other.nc", meta=_set("format", fmt))
    message = f"is in posterior format {fmt!r}; this bayesplit reads 'bayesplit-posterior/1'"
    with pytest.raises(BayesplitError, match=re.escape(message)):
        Posterior.load(path)
    _refused(runner.invoke(app, ["predict", str(path), *PREDICT]), message)
    # files written before the tag existed have none, and load
    untagged = _rewrite(good_file, tmp_path / "untagged.nc", meta=lambda m: m.pop("format"))
    assert Posterior.load(untagged).domains == ["web", "code", "law"]


def test_run_z_with_run_effect_on_loads(good_file, tmp_path):
    """The run_z case above is refused for its spec alone, not for the run_z it adds."""
    path = _rewrite(good_file, tmp_path / "p.nc", edit=_with_run_z, meta=_run_effect(True))
    assert Posterior.load(path).run_effect_group("truth") == "truth"


def _checksums(path) -> list[bool]:
    """Whether each numeric variable of the netCDF file ``path`` has a Fletcher32 checksum."""
    out = []
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda _, x: (
                out.append(x.fletcher32)
                if isinstance(x, h5py.Dataset) and x.dtype.kind in "biuf"
                else None
            )
        )
    return out


def test_saved_posteriors_carry_checksums(good_file):
    flags = _checksums(good_file)
    assert len(flags) > 10 and all(flags)


def _damage(good, path, variable):
    """A copy of ``good`` with bytes in the middle of ``variable``'s first stored chunk
    zeroed, as a bad disk block or a failed copy would leave it."""
    shutil.copy(good, path)
    with h5py.File(path, "r") as f:
        chunk = f[variable].id.get_chunk_info(0)
    with open(path, "r+b") as f:
        f.seek(chunk.byte_offset + chunk.size // 4)
        f.write(bytes(chunk.size // 2))
    return path


# posterior/alpha is read by load's own checks: that was an OSError traceback at load;
# constant_data/row_loss is not: the file loaded, and the damage met a later command
@pytest.mark.parametrize("variable", ["posterior/alpha", "constant_data/row_loss"])
@pytest.mark.parametrize("written", ["now", "before checksums"])
def test_damaged_posterior_files_are_refused(good_file, tmp_path, variable, written):
    good = good_file
    if written != "now":  # as earlier versions wrote it: no checksums (zlib's own check only)
        good = _rewrite(good_file, tmp_path / "old.nc")
        assert not any(_checksums(good))
        Posterior.load(good)  # still loads
    path = _damage(good, tmp_path / "damaged.nc", variable)
    with pytest.raises(BayesplitError, match="is damaged") as err:
        Posterior.load(path)
    assert f"{variable} cannot be read" in str(err.value) and "\n" not in str(err.value)
    report = ["report", str(path), "--budget", "1e20", "--out", str(tmp_path / "r.html")]
    _refused(runner.invoke(app, report), "is damaged")
    _refused(runner.invoke(app, ["allocate", str(path), "--budget", "1e20"]), "is damaged")


def test_commands_refuse_a_posterior_without_constant_data(good_file, tmp_path):
    path = _rewrite(good_file, tmp_path / "p_postonly.nc", groups=())
    res = runner.invoke(app, ["allocate", str(path), "--budget", "1e15", "--force", "--json"])
    _refused(res, "lacks its constant_data group")
    bad = _rewrite(good_file, tmp_path / "p_noA.nc", drop=["A"])
    _refused(
        runner.invoke(app, ["simulate", "--truth", str(bad), *SIMULATE]), "lacks law parameter"
    )


def _ref(key, value):
    return lambda d: d["reference"].__setitem__(key, value)


BAD_TRUTHS = {
    "reference tokens 0": (_ref("tokens", 0), "reference tokens must be a finite number > 0"),
    "reference params -1": (_ref("params", -1), "reference params must be a finite number > 0"),
    "reference loss nan": (_ref("loss", float("nan")), "reference loss must be a finite number"),
    # true was read as N = 1, then refused as run-table rows "in the wrong unit"
    "reference params true": (
        _ref("params", True),
        "reference params must be a finite number > 0, got True",
    ),
    "reference tokens text": (
        _ref("tokens", "many"),
        "reference tokens must be a finite number > 0, got 'many'",
    ),
    # a misspelt key used to be dropped, and its default (1e8, 1e10, 3.0) used instead
    "reference key misspelt": (_ref("token", 1e9), "reference has unknown keys ['token']"),
    "top-level key misspelt": (
        lambda d: d.__setitem__("refrence", d.pop("reference")),
        "ground truth has unknown keys ['refrence']",
    ),
    "unknown parameter": (
        lambda d: d["params"].__setitem__("zeta", 1),
        "unknown parameter(s) zeta; law additive has E, A, alpha",
    ),
    "negative positive": (
        lambda d: d["params"].__setitem__("E", [1.8, -1.0, 2.0]),
        "parameter E must be > 0",
    ),
    "zero positive": (lambda d: d["params"].__setitem__("gamma", 0), "parameter gamma must be > 0"),
    "unit above 1": (
        lambda d: d["params"].__setitem__("alpha", 1.5),
        "parameter alpha must be in (0, 1)",
    ),
    "negative noise": (
        lambda d: d["noise"].__setitem__("seed_sd", -0.1),
        "noise seed_sd must be a finite number >= 0",
    ),
    "zero compute_ref": (
        lambda d: d["noise"].__setitem__("compute_ref", 0),
        "noise compute_ref must be a finite number > 0",
    ),
}


@pytest.mark.parametrize("case", list(BAD_TRUTHS))
def test_bad_ground_truths_are_refused_at_load(tmp_path, case):
    change, message = BAD_TRUTHS[case]
    d = copy.deepcopy(example_truth("additive").to_dict())
    change(d)
    with pytest.raises(BayesplitError, match="ground truth") as err:
        GroundTruth.from_dict(d)
    assert message in str(err.value)
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(BayesplitError):
        load_truth(path)
    _refused(runner.invoke(app, ["simulate", "--truth", str(path), *SIMULATE]), message)


@pytest.mark.parametrize("law", ["chinchilla", "additive", "transfer", "saturating"])
def test_example_truths_pass_their_own_checks(law):
    truth = example_truth(law)
    assert GroundTruth.from_dict(truth.to_dict()).params.keys() == truth.params.keys()


def test_a_ground_truth_key_given_twice_is_refused(tmp_path):
    # PyYAML kept the later value silently: the first parameters were lost without a word
    text = yaml.safe_dump(example_truth("additive").to_dict())
    path = tmp_path / "t.yaml"
    path.write_text(text + "law: additive\n")
    with pytest.raises(BayesplitError, match=f"^{path}: not valid YAML .* the key 'law' twice"):
        load_truth(path)
    _refused(
        runner.invoke(app, ["simulate", "--truth", str(path), *SIMULATE]), "the key 'law' twice"
    )
    path.write_text(text)  # written once, as bayesplit writes it, it loads
    assert load_truth(path).law.name == "additive"


def test_a_ground_truth_is_read_as_utf8_whatever_the_locale(tmp_path):
    # read in the locale's encoding, a non-ASCII comment was "not a YAML text file" under C
    import os
    import subprocess
    import sys

    path = tmp_path / "t.yaml"
    text = "# the café truth\n" + yaml.safe_dump(example_truth("additive").to_dict())
    path.write_text(text, encoding="utf-8")
    env = {**os.environ, "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    code = f"from bayesplit.truth import load_truth; print(load_truth({str(path)!r}).law.name)"
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "additive"


def test_a_changed_byte_in_the_metadata_is_refused_as_damage(good_file, tmp_path):
    # HDF5 checksums the arrays, not the attributes: a flipped byte moved the reference
    # scale (and every prediction) with exit 0, or turned a failed gate into a passed one
    idata = az.from_netcdf(good_file)
    text = idata.posterior.attrs["bayesplit"]
    assert idata.posterior.attrs["bayesplit_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    ref = json.loads(text)["spec"]["reference"]["tokens"]
    bad = text.replace(repr(float(ref)), repr(float(ref) * 1.1), 1)
    assert bad != text
    post = idata.posterior.copy()
    post.attrs["bayesplit"] = bad
    path = tmp_path / "flipped.nc"
    az.InferenceData(posterior=post, **{g: idata[g] for g in idata.groups() if g != "posterior"}).to_netcdf(path)  # fmt: skip
    with pytest.raises(
        BayesplitError, match="is damaged: its metadata .* does not match the checksum"
    ):
        Posterior.load(path)
    # a changed byte that breaks the JSON is damage as well (it read "not a posterior")
    post.attrs["bayesplit"] = text.replace('{"format"', '["format"', 1)
    az.InferenceData(posterior=post, **{g: idata[g] for g in idata.groups() if g != "posterior"}).to_netcdf(path)  # fmt: skip
    with pytest.raises(BayesplitError, match="is damaged"):
        Posterior.load(path)
    # a file that lost its checksum is damaged: it was read as one from before checksums
    del post.attrs["bayesplit_sha256"]
    post.attrs["bayesplit"] = text
    az.InferenceData(posterior=post, **{g: idata[g] for g in idata.groups() if g != "posterior"}).to_netcdf(path)  # fmt: skip
    with pytest.raises(BayesplitError, match="is damaged: the checksum of its metadata is missing"):
        Posterior.load(path)
    _refused(runner.invoke(app, ["allocate", str(path), "--budget", "1e20"]), "checksum")
    # a file from before the checksum (and so before the text digest) is still read
    old = json.loads(text)
    del old["text_arrays_sha256"]
    post.attrs["bayesplit"] = json.dumps(old)
    path = tmp_path / "older.nc"
    az.InferenceData(posterior=post, **{g: idata[g] for g in idata.groups() if g != "posterior"}).to_netcdf(path)  # fmt: skip
    assert Posterior.load(path).law.name == "additive"


@pytest.mark.parametrize(
    ("variable", "index", "value"),
    [("row_eval_domain", 0, "code"), ("row_run_id", 1, "other"), ("domain", 0, "wxyz")],
)
def test_a_changed_text_array_is_refused_as_damage(good_file, tmp_path, variable, index, value):
    # HDF5 cannot checksum variable-length strings: an edited eval domain or run id of the
    # fitted rows loaded with exit 0, and allocate, report and suggest used it
    idata = az.from_netcdf(good_file)
    meta = json.loads(idata.posterior.attrs["bayesplit"])
    assert len(meta["text_arrays_sha256"]) == 64
    group = "posterior" if variable == "domain" else "constant_data"
    ds = idata[group]
    values = np.asarray(ds[variable].values).astype(object)
    assert values[index] != value
    values[index] = value
    edited = ds.assign_coords({variable: values}) if variable in ds.coords else ds.assign({variable: (ds[variable].dims, values)})  # fmt: skip
    groups = {g: idata[g] for g in idata.groups()}
    groups[group] = edited
    path = tmp_path / "edited.nc"
    az.InferenceData(**groups).to_netcdf(path)
    match = "is damaged: its text arrays"
    if variable == "domain":  # the metadata's own domain list catches it first
        match = "posterior's domains differ from those in its metadata"
    with pytest.raises(BayesplitError, match=match):
        Posterior.load(path)
    _refused(runner.invoke(app, ["allocate", str(path), "--budget", "1e20"]), match)
    # unchanged, the same rewrite loads: the digest reads text arrays as text, whatever dtype
    az.InferenceData(**{g: idata[g] for g in idata.groups()}).to_netcdf(path)
    assert Posterior.load(path).domains == meta["spec"]["domains"]


def test_a_passed_gate_that_lists_failures_is_refused(good_file, tmp_path):
    def passed_with_failures(m):
        m["diagnostics"].update(ok=True, failures=["1 divergent transition (allowed 0)"])

    path = _rewrite(good_file, tmp_path / "ok.nc", meta=passed_with_failures)
    with pytest.raises(BayesplitError, match="diagnostics say ok but list failures"):
        Posterior.load(path)


def test_a_posterior_of_a_law_redefined_since_the_fit_warns(good_file, tmp_path):
    # a law re-registered under its name (overwrite=True in a notebook) changed every
    # prediction of a posterior fitted with the earlier definition, unsaid
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Posterior.load(good_file)  # the law it was fitted with: no warning
    other = tmp_path / "other.nc"
    python = Posterior.load(good_file).law.fingerprint().split("-")[0]  # "py3.11"
    _rewrite(good_file, other, meta=lambda m: m.update(law_fingerprint=f"{python}-{'0' * 16}"))
    with pytest.warns(UserWarning, match="fitted with another definition of law 'additive'"):
        Posterior.load(other)
    # on the command line, one `warning:` line, not Python's "core.py:392: UserWarning:"
    # (a process of its own: pytest records warnings rather than printing them)
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "bayesplit", "predict", str(other), *PREDICT]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    said = [line for line in result.stderr.splitlines() if "another definition" in line]
    assert len(said) == 1 and said[0].startswith("warning: ") and "UserWarning" not in said[0]
    json.loads(result.stdout)  # stdout is still the one JSON document
    # and recorded where warnings are recorded, as pytest.warns does
    with pytest.warns(UserWarning, match="another definition"):
        assert runner.invoke(app, ["predict", str(other), *PREDICT]).exit_code == 0
    # compiled code differs between Python versions: a digest of another one tells nothing
    _rewrite(good_file, other, meta=lambda m: m.update(law_fingerprint=f"py2.7-{'0' * 16}"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Posterior.load(other)


def test_a_damaged_file_that_hdf5_fails_on_is_one_line(good_file, monkeypatch):
    # one flipped byte of 150 escaped as "RuntimeError: Unspecified error in H5DSget_num_scales"
    from bayesplit import _arviz

    def broken(path):
        raise RuntimeError("Unspecified error in H5DSget_num_scales (return value <0)")

    monkeypatch.setattr(_arviz, "from_netcdf", broken)
    with pytest.raises(BayesplitError, match="is not a bayesplit posterior .RuntimeError"):
        Posterior.load(good_file)
