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
