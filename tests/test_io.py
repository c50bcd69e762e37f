"""Atomic writes of files and folders: all or nothing, through symlinks."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from bayesplit._io import atomic_folder, atomic_path, atomic_write_text


def test_a_write_lands_whole_and_a_failure_leaves_the_old_file(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temp file left


def test_a_symlink_is_written_through_not_replaced(tmp_path):
    # the link became a regular file and its target kept the old content
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "s.json"
    real.write_text("x")
    link = tmp_path / "l.json"
    link.symlink_to(real)
    atomic_write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    assert sorted(os.listdir(tmp_path / "real")) == ["s.json"]
    dangling = tmp_path / "d.json"
    dangling.symlink_to(tmp_path / "real" / "later.json")
    atomic_write_text(dangling, "made")
    assert dangling.is_symlink() and (tmp_path / "real" / "later.json").read_text() == "made"


def test_a_full_disk_names_the_file(tmp_path):
    # the CLI printed "error: No space left on device" without saying which write failed
    target = tmp_path / "post.nc"
    with pytest.raises(OSError) as info, atomic_path(target):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(target))
    with pytest.raises(PermissionError) as info, atomic_path(target):
        raise PermissionError(errno.EACCES, "Permission denied")  # the kind is kept
    assert info.value.filename == str(target)
    assert not list(tmp_path.iterdir())


def test_figure_folder_is_left_as_it_was_on_failure(tmp_path):
    folder = tmp_path / "report_files"
    folder.mkdir()
    (folder / "split.png").write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_folder(folder) as tmp:
        (tmp / "split.png").write_bytes(b"new")
        raise RuntimeError("a figure failed")
    assert [p.name for p in tmp_path.iterdir()] == ["report_files"]
    assert [p.name for p in folder.iterdir()] == ["split.png"]
    assert (folder / "split.png").read_bytes() == b"old"


def test_text_is_written_as_utf8_whatever_the_locale(tmp_path):
    # a report holds "≤" and "Σ" and says charset=utf-8; under a C (or cp1252) locale the
    # write raised UnicodeEncodeError after the report had been computed
    import subprocess
    import sys

    target = tmp_path / "r.html"
    code = f"from bayesplit._io import atomic_write_text; atomic_write_text({str(target)!r}, 'R-hat \\u2264 1.01, \\u03a3')"
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert target.read_bytes().decode("utf-8") == "R-hat ≤ 1.01, Σ"


def test_sigterm_is_caught_only_while_an_output_is_written(tmp_path, monkeypatch):
    # installed for the whole command, a Python handler waited for JAX's compiled code:
    # `timeout 60 bayesplit fit` stopped a fit minutes late. Only a write's window needs it.
    import signal

    from bayesplit import _io

    monkeypatch.setattr(_io, "SIGTERM_CLEANS_UP", True)
    before = signal.getsignal(signal.SIGTERM)
    with _io.atomic_path(tmp_path / "a.txt") as tmp:
        assert signal.getsignal(signal.SIGTERM) is _io._terminated
        tmp.write_text("x")
    assert signal.getsignal(signal.SIGTERM) is before
    with _io.atomic_folder(tmp_path / "f"):
        assert signal.getsignal(signal.SIGTERM) is _io._terminated
    assert signal.getsignal(signal.SIGTERM) is before
    monkeypatch.setattr(_io, "SIGTERM_CLEANS_UP", False)  # a notebook: its handler is kept
    with _io.atomic_path(tmp_path / "b.txt") as tmp:
        assert signal.getsignal(signal.SIGTERM) is before
        tmp.write_text("y")


def test_files_that_belong_together_land_together(tmp_path, monkeypatch):
    # the demo saved its posterior first and its report minutes later: an interrupt in
    # between left a new posterior beside the last run's report
    import signal

    from bayesplit import _io
    from bayesplit._io import atomic_files
    from bayesplit.errors import Terminated

    folder = tmp_path / "new" / "out"
    with pytest.raises(KeyboardInterrupt), atomic_files(folder, ["a", "b"]) as tmp:
        (tmp / "a").write_text("1")
        raise KeyboardInterrupt
    assert not (tmp_path / "new").exists()  # the folders it made went too
    folder.mkdir(parents=True)
    (folder / "keep").write_text("mine")
    for name in ("a", "b"):
        (folder / name).write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_files(folder, ["a", "b"]) as tmp:
        (tmp / "a").write_text("new")
        raise KeyboardInterrupt
    assert {p.name: p.read_text() for p in folder.iterdir()} == {
        "a": "old",
        "b": "old",
        "keep": "mine",
    }
    # a SIGTERM that comes while the files are moved in waits until both are
    monkeypatch.setattr(_io, "SIGTERM_CLEANS_UP", True)
    real_replace = os.replace

    def replace(src, dst):
        real_replace(src, dst)
        if str(dst).endswith("a"):
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(_io.os, "replace", replace)
    with pytest.raises(Terminated), atomic_files(folder, ["a", "b"]) as tmp:
        for name in ("a", "b"):
            (tmp / name).write_text("new")
    assert {p.name: p.read_text() for p in folder.iterdir()} == {
        "a": "new",
        "b": "new",
        "keep": "mine",
    }


def test_files_that_belong_together_are_put_back_when_one_cannot_land(tmp_path):
    # the second rename failing (its name became a folder meanwhile) left the new first
    # file beside nothing of its run, the earlier one gone
    from bayesplit._io import atomic_files

    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "a").write_text("old")
    with pytest.raises(OSError), atomic_files(folder, ["a", "b", "c"]) as tmp:
        for name in ("a", "b", "c"):
            (tmp / name).write_text("new")
        (folder / "c").mkdir()  # c cannot be replaced: a and b go back as they were
    assert (folder / "a").read_text() == "old" and not (folder / "b").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["a", "c"]


def test_files_that_belong_together_are_written_through_symlinks(tmp_path):
    from bayesplit._io import atomic_files

    real = tmp_path / "real.txt"
    real.write_text("old")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "a").symlink_to(real)
    with atomic_files(folder, ["a"]) as tmp:
        (tmp / "a").write_text("new")
    assert (folder / "a").is_symlink() and real.read_text() == "new"
    assert [p.name for p in folder.iterdir()] == ["a"]


def test_files_that_belong_together_survive_a_file_system_without_hard_links(tmp_path, monkeypatch):
    # the earlier files were kept as hard links only; where none could be made, a failed
    # rename left the new first file beside the earlier second one
    from bayesplit import _io
    from bayesplit._io import atomic_files

    folder = tmp_path / "out"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / name).write_text("old")

    def no_links(src, dst):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(_io.os, "link", no_links)
    with pytest.raises(OSError), atomic_files(folder, ["a", "b"]) as tmp:
        (tmp / "a").write_text("new")
        (tmp / "b").mkdir()  # b cannot land: a goes back
    assert {p.name: p.read_text() for p in folder.iterdir()} == {"a": "old", "b": "old"}


def test_files_that_belong_together_land_through_a_link_to_another_file_system(tmp_path):
    # a rename into another file system fails (EXDEV): written beside the link's target
    from bayesplit._io import atomic_files

    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second file system")
    elsewhere = Path(tempfile.mkdtemp(dir=shm))
    try:
        (elsewhere / "r.html").write_text("old")
        folder = tmp_path / "out"
        folder.mkdir()
        (folder / "r.html").symlink_to(elsewhere / "r.html")
        with atomic_files(folder, ["p.nc", "r.html"]) as tmp:
            (tmp / "p.nc").write_text("new")
            (tmp / "r.html").write_text("new")
        assert (folder / "r.html").is_symlink() and (elsewhere / "r.html").read_text() == "new"
        assert (folder / "p.nc").read_text() == "new"
        assert sorted(p.name for p in elsewhere.iterdir()) == ["r.html"]
    finally:
        shutil.rmtree(elsewhere)
