"""Errors that mean "the input is wrong", as opposed to bugs.

The CLI turns a :class:`BayesplitError` into a one-line message and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class BayesplitError(ValueError):
    """Bad input or a refused request; the message is one line a user can act on."""


class Terminated(KeyboardInterrupt):
    """SIGTERM while the command line writes an output (see ``_io.sigterm_cleans_up``):
    raised there, so that the temp file goes as on Ctrl-C, and the command says
    "terminated" and exits 143."""


class DiagnosticsError(BayesplitError):
    """A decision was asked of a posterior that failed its convergence gate."""


#: The extra that brings each optional module a command may need.
EXTRAS = {
    "torch": "train",
    "tokenizers": "train",
    "sklearn": "train",
    "submitit": "train",
    "pymc": "pymc",
    "nutpie": "pymc",
}


def missing_extra(module: str) -> BayesplitError | None:
    """The one-line error for an optional module that is not installed (None if ``module``
    is not one of bayesplit's extras, or is one that is installed, so that a submodule is
    what is missing: a broken install or a bug, which keeps its traceback)."""
    import importlib.util

    if module not in EXTRAS or importlib.util.find_spec(module) is not None:
        return None
    return BayesplitError(
        f"this needs {module}, which is not installed: pip install 'bayesplit[{EXTRAS[module]}]'"
    )


def require(module: str) -> None:
    """Refuse now, before any slow work, when an optional module is not installed."""
    error = missing_extra(module)
    if error is not None:
        raise error
