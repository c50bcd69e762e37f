"""File writes: atomic (a reader never sees half a file, a failure leaves nothing behind),
and JSON-ready values; JSON files read as every hand-written one is."""

from __future__ import annotations

import contextlib
import datetime
import decimal
import errno
import json
import math
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bayesplit.errors import BayesplitError, Terminated

#: Set by the command line's entry point: only there does SIGTERM during a write raise
#: :class:`~bayesplit.errors.Terminated` (a notebook or host program keeps its own handler).
SIGTERM_CLEANS_UP = False


def _terminated(signum, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_cleans_up() -> Iterator[None]:
    """While an output's temp file exists, SIGTERM raises instead of killing on the spot,
    so the temp file is removed (a SIGTERM left it beside the output).

    Only around writes: a Python handler runs between bytecodes, so one installed for the
    whole command let a fit in JAX's compiled code ignore ``timeout`` for minutes.
    """
    if not SIGTERM_CLEANS_UP or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_file_target(path: str | Path) -> Path:
    """Refuse a file name that no write can succeed at: an existing folder, or a path under
    a file. Writers call it before the work, not at the final rename."""
    target = Path(path)
    if target.is_dir():
        raise BayesplitError(f"{path} is a folder; give a file name")
    ancestor = nearest_existing(_through_link(target).parent)  # where the write lands
    if not ancestor.is_dir():
        raise BayesplitError(f"{path}: {ancestor} is a file, not a folder")
    return target


def nearest_existing(folder: Path) -> Path:
    """``folder`` or its closest ancestor that exists: where a write would create folders
    from (``Path("")`` is the current one)."""
    ancestor = folder if str(folder) else Path(".")
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    return ancestor


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    The temporary file keeps the target's suffix so that writers which choose a
    format by extension (pandas, xarray) behave the same. A symlink is written through
    (its target is replaced, the link kept), and the file is flushed to disk before the
    rename, so that a power cut leaves the old file or the new one, not an empty one.
    """
    target = _through_link(Path(path))
    check_file_target(target)
    made = _missing_folders(target.parent)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with sigterm_cleans_up():
            yield from _atomic_path(path, target)
    except BaseException:
        # a refused write (a table pandas cannot write, an interrupt) leaves no new folders
        for folder in made:
            remove_if_empty(folder)
        raise


def _missing_folders(folder: Path) -> list[Path]:
    """The folders a write into ``folder`` would create, deepest first."""
    missing = []
    while str(folder) and not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _atomic_path(path: str | Path, target: Path) -> Iterator[Path]:
    suffix = "".join(target.suffixes) or ".tmp"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp makes 0600 files; a report or posterior should get the usual umask permissions
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno is not None and not exc.filename:
            # a full disk or a quota says only "No space left on device": name the file
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write text to ``path`` atomically, as UTF-8."""
    with atomic_path(path) as tmp:
        # not the locale's encoding: the report declares UTF-8 and holds "≤", "Σ", "×",
        # which a cp1252 or C locale cannot encode (the write failed after all the work)
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


@contextlib.contextmanager
def atomic_folder(path: Path):
    """Yield an empty temporary folder next to ``path``, put in place of ``path`` on success.

    On failure the temporary folder goes and ``path`` is left as it was. A symlink is
    written through, as :func:`atomic_path` does for files.
    """
    target = _through_link(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with sigterm_cleans_up():
        yield from _atomic_folder(target)


@contextlib.contextmanager
def atomic_files(folder: Path, names: Sequence[str]) -> Iterator[Path]:
    """Yield a temporary folder inside ``folder`` to write the files ``names`` in; on
    success move them all into ``folder``, with Ctrl-C and SIGTERM held off between the
    renames, and the earlier files put back if a rename fails. Outputs that belong
    together (a posterior and the report made of it) are all the new ones or all the
    earlier ones, never a mix; other files in ``folder`` stay. A symlink is written
    through, as :func:`atomic_path` does.
    """
    made = _missing_folders(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bayesplit-", dir=folder))
    try:
        with sigterm_cleans_up():
            yield tmp
            targets = {name: _through_link(folder / name) for name in names}
            kept = {}  # hard links to the earlier files, to put back
            new = [name for name, target in targets.items() if not os.path.lexists(target)]
            for name, target in targets.items():
                if target.is_file():
                    kept[name] = tmp / f".earlier-{name}"
                    try:
                        os.link(target, kept[name])
                    except OSError:  # no hard links there, or another file system: a copy
                        shutil.copy2(target, kept[name])
            moved = []
            with _signals_held():
                try:
                    for name, target in targets.items():
                        _move_in(tmp / name, target)
                        moved.append(name)
                except BaseException:
                    for name in moved:
                        if name in kept:
                            _move_in(kept[name], targets[name])
                        elif name in new:  # there was none
                            targets[name].unlink(missing_ok=True)
                    raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for f in made:
            remove_if_empty(f)
        raise
    shutil.rmtree(tmp)  # the earlier files' links


def _move_in(src: Path, target: Path) -> None:
    """Rename ``src`` to ``target``; a target on another file system (through a symlink)
    gets a copy written beside it and renamed there, as :func:`atomic_path` writes."""
    try:
        os.replace(src, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        with atomic_path(target) as beside:
            shutil.copyfile(src, beside)
        src.unlink()


def _through_link(path: Path) -> Path:
    """Where a write to ``path`` lands: a symlink's target (the link is kept)."""
    return Path(os.path.realpath(path)) if os.path.islink(path) else path


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done, then act as they would have.

    Python handlers, not a signal mask: a mask holds one thread, and with other threads
    (JAX's) the kernel hands the signal to one of them, whose flag the main thread acts on
    at once. Only the main thread can set handlers; elsewhere nothing is held.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    # a handler installed from C reads as None and could not be put back: left alone
    held = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not None]
    before = {s: signal.signal(s, lambda signum, _frame: came.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(came):
            signal.raise_signal(s)  # the restored handler acts on it now


def _atomic_folder(target: Path) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700 folders; figures are for sharing
        yield tmp
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(new: Path, target: Path) -> None:
    """Rename folder ``new`` to ``target``, replacing a folder already there.

    A rename can replace only an empty folder, so the old one is first moved aside (and
    moved back if the second rename fails): a reader finds the old figures or the new
    ones, never a mix of both.
    """
    if not target.exists():
        os.replace(new, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    try:
        os.replace(target, old)
    except BaseException:
        old.rmdir()
        raise
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def jsonable(obj: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays become Python ones, tuples lists, keys
    strings, NaN or infinite floats and missing values None (JSON has no such numbers),
    dates and times ISO 8601 text, decimals floats.

    A value nested too deeply to convert (``[[[...]]]`` hundreds deep, which a JSON file
    can hold) raises :class:`~bayesplit.errors.BayesplitError`, not a RecursionError.

    >>> import datetime, decimal
    >>> jsonable({"t": datetime.date(2026, 1, 2), "x": float("nan"), "d": decimal.Decimal("0.5")})
    {'t': '2026-01-02', 'x': None, 'd': 0.5}
    """
    try:
        return _jsonable(obj)
    except RecursionError:
        from bayesplit.errors import BayesplitError

        raise BayesplitError(
            "a value is nested too deeply (lists or mappings hundreds of levels deep) to be "
            "kept or written as JSON"
        ) from None


def _jsonable(obj: Any) -> Any:
    jsonable = _jsonable  # recursion stays inside the one try of the public function
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, float):
        return obj
    if isinstance(obj, decimal.Decimal):
        return jsonable(float(obj))
    if _is_missing(obj):  # pandas' NA and NaT, which are not None
        return None
    if isinstance(obj, (datetime.date, datetime.time)):
        return obj.isoformat()
    return obj


def _is_missing(obj: Any) -> bool:
    try:
        return bool(obj != obj) or type(obj).__name__ in ("NAType", "NaTType")
    except (TypeError, ValueError):  # pandas' NA refuses bool(); arrays compare elementwise
        return type(obj).__name__ in ("NAType", "NaTType")


def remove_if_empty(folder: str | Path) -> None:
    """Remove a folder made for a run's or a launch's files once nothing is left in it."""
    with contextlib.suppress(OSError):  # not empty (someone else's files), or gone
        Path(folder).rmdir()


def strict_yaml_loader(base: type | None = None) -> type:
    """A ``yaml.SafeLoader`` (or its subclass ``base``) that refuses a mapping key given
    twice: PyYAML keeps the later value silently. Keys merged in with ``<<`` may be
    overridden, as YAML allows. The error is a ``yaml.YAMLError`` naming the line."""
    import yaml

    class StrictLoader(base or yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen: set = set()
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        repeated = key in seen
                    except TypeError:  # an unhashable key: the base refuses it
                        continue
                    if repeated:
                        raise yaml.constructor.ConstructorError(
                            "while reading a mapping",
                            node.start_mark,
                            f"found the key {key!r} twice",
                            key_node.start_mark,
                        )
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def no_repeated_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object, refusing a key given twice (json keeps the last value silently, as
    pandas renames a CSV's repeated column)."""
    row = dict(pairs)
    if len(row) < len(pairs):
        seen: set[str] = set()
        repeated = sorted({k for k, _ in pairs if k in seen or seen.add(k)})
        raise ValueError(f"repeated key(s) {', '.join(map(repr, repeated))} in one object")
    return row


def read_json(path: str | Path) -> Any:
    """A JSON file as bayesplit reads every hand-written one: UTF-8 with or without a
    byte-order mark (Notepad writes one), a key given twice refused. Raises ``ValueError``
    (``json.JSONDecodeError``, a repeated key, nesting too deep) or ``UnicodeDecodeError``
    for the caller to name the file."""
    with open(path, encoding="utf-8-sig") as fh:
        return parse_json(fh.read())


def parse_json(text: str) -> Any:
    """JSON text as :func:`read_json` reads a file (a byte-order mark already decoded)."""
    try:
        return json.loads(text, object_pairs_hook=no_repeated_keys)
    except RecursionError:  # [[[[...]]]] thousands deep: a traceback from every reader
        raise ValueError("nested too deeply to be read") from None
