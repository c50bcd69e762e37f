"""The law library: built-in laws, the registry, and how to add your own.

Add a law by building a :class:`Law` and calling :func:`register`, or, from an
installed package, by declaring an entry point in the ``bayesplit.laws`` group
that points at a :class:`Law` object::

    [project.entry-points."bayesplit.laws"]
    mylaw = "mypackage.laws:MY_LAW"

The CLI also takes ``--law-module mypackage.laws`` to import a module that calls
:func:`register`.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types
from importlib.metadata import entry_points
from pathlib import PurePath

from bayesplit._parse import check_flag
from bayesplit.errors import BayesplitError
from bayesplit.laws.base import Inputs, Law, Param
from bayesplit.laws.library import ADDITIVE, BUILTIN, CHINCHILLA, SATURATING, TRANSFER
from bayesplit.laws.ops import Ops, get_ops

__all__ = [
    "ADDITIVE",
    "CHINCHILLA",
    "SATURATING",
    "TRANSFER",
    "Inputs",
    "Law",
    "Ops",
    "Param",
    "available_laws",
    "get_law",
    "get_ops",
    "import_law_module",
    "register",
]

_REGISTRY: dict[str, Law] = {law.name: law for law in BUILTIN}
_ENTRY_POINTS_LOADED = False


def register(law: Law, *, overwrite: bool = False) -> Law:
    """Make ``law`` available by name to :func:`bayesplit.fit` and the CLI.

    Parameters
    ----------
    law
        The law to add.
    overwrite
        Replace an existing law of the same name (never a built-in one).

    Returns
    -------
    Law
        The registered law, so ``MY_LAW = register(Law(...))`` reads naturally.
    """
    if not isinstance(law, Law):
        raise BayesplitError(f"register() takes a bayesplit.laws.Law, got {type(law).__name__}")
    overwrite = check_flag(overwrite, "overwrite")
    if law.name in {b.name for b in BUILTIN} and _REGISTRY.get(law.name) is not law:
        raise BayesplitError(f"{law.name!r} is a built-in law; choose another name")
    if law.name in _REGISTRY and not overwrite and _REGISTRY[law.name] is not law:
        raise BayesplitError(
            f"a law named {law.name!r} is already registered (pass overwrite=True)"
        )
    _REGISTRY[law.name] = law
    return law


def _load_entry_points() -> None:
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    for ep in entry_points(group="bayesplit.laws"):
        try:
            with _prints_to_stderr():
                law = ep.load()
        except (Exception, SystemExit) as exc:  # a broken plugin must not break the built-in laws
            raise BayesplitError(
                f"cannot load law plugin {ep.name!r} ({ep.value}): {exc}"
            ) from None
        if isinstance(law, types.ModuleType):
            continue  # a module whose import registered its laws
        # was skipped without a word: a plugin's law then read as "unknown law"
        where = f"law plugin {ep.name!r} ({ep.value})"
        if not isinstance(law, Law):
            raise BayesplitError(f"{where} is a {type(law).__name__}, not a bayesplit.laws.Law")
        if _REGISTRY.get(law.name) not in (None, law):
            builtin = law.name in {b.name for b in BUILTIN}
            raise BayesplitError(
                f"{where} is named {law.name!r}, "
                + ("a built-in law" if builtin else "as a law registered before it")
                + "; choose another name"
            )
        _REGISTRY[law.name] = law
    # only once every plugin loaded: a refused one is refused again, not passed over later
    _ENTRY_POINTS_LOADED = True


def _prints_to_stderr() -> contextlib.AbstractContextManager:
    # a module that prints while it registers its laws would break `--json` on stdout
    return contextlib.redirect_stdout(sys.stderr)


def import_law_module(module: str) -> None:
    """Import a module whose import registers laws (``--law-module``)."""
    if isinstance(module, str) and not module.strip():
        # was "failed on import: ValueError: Empty module name", at a line of importlib
        raise BayesplitError(
            "--law-module (in Python: module=) is empty: give a module name, or leave it out"
        )
    if isinstance(module, str) and (module.endswith(".py") or "/" in module):
        # "./my_laws.py" was reported as the module failing on import, at importlib's line
        path = PurePath(module)
        raise BayesplitError(
            f"law module {module!r} is a file path; --law-module (in Python: module=) takes "
            f"a module name: put {str(path.parent)!r} on PYTHONPATH and give {path.stem!r}"
        )
    if isinstance(module, str) and module.startswith("."):
        # was "failed on import: TypeError: the 'package' argument is required ..."
        raise BayesplitError(
            f"law module {module!r} is a relative name; --law-module (in Python: module=) "
            "takes a full module name (e.g. 'my_laws' or 'mypkg.laws')"
        )
    try:
        with _prints_to_stderr():
            importlib.import_module(module)
    except ImportError as exc:
        raise BayesplitError(f"cannot import law module {module!r}: {exc}") from None
    except SystemExit as exc:  # sys.exit() in the module ended the command with its own code
        raise BayesplitError(
            f"law module {module!r} called sys.exit({exc.code!r}) on import"
        ) from None
    except Exception as exc:  # the user's module broke on import: say where, in one line
        import traceback

        where = ""
        if isinstance(exc, SyntaxError) and exc.filename:
            where = f" ({exc.filename}:{exc.lineno})"
        elif exc.__traceback__ is not None:
            frames = traceback.extract_tb(exc.__traceback__)
            # the line of the user's module, not the check inside bayesplit that refused it
            # (a bad Param(...) was reported at bayesplit/laws/base.py)
            try:
                origin = getattr(importlib.util.find_spec(module), "origin", None)
            except Exception:  # a package whose own import failed: no origin to match
                origin = None
            mine = [f for f in frames if origin and f.filename == origin]
            frame = (mine or frames)[-1]
            where = f" ({frame.filename}:{frame.lineno})"
        raise BayesplitError(
            f"law module {module!r} failed on import: {type(exc).__name__}: {exc}{where}"
        ) from None


def get_law(law: str | Law) -> Law:
    """Look a law up by name (a :class:`Law` is returned as is)."""
    if isinstance(law, Law):
        same_name = _REGISTRY.get(law.name)
        if same_name is not None and same_name.log_mean is not law.log_mean:
            # a posterior is saved with its law's name and loaded by that name: this one
            # would come back as the registered law, with another mean, without a word
            raise BayesplitError(
                f"a law named {law.name!r} is already registered with another mean "
                "function; give yours another name"
            )
        return law
    if not isinstance(law, str):  # a list was "unhashable type"
        raise BayesplitError(f"law must be a law name or a Law, got {law!r}")
    if law not in _REGISTRY:
        _load_entry_points()
    try:
        return _REGISTRY[law]
    except KeyError:
        raise BayesplitError(
            f"unknown law {law!r}; available: {', '.join(available_laws())}"
        ) from None


def available_laws() -> list[str]:
    """Names of all registered laws, built-in first."""
    _load_entry_points()
    return list(_REGISTRY)
