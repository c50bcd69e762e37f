"""The ``bayesplit`` command line: a thin shell over the Python API.

Every command prints a readable table by default and one JSON object with
``--json``. Input errors (:class:`bayesplit.errors.BayesplitError`) become a
one-line message on stderr and exit code 2, with no traceback.
"""

from __future__ import annotations

import click
import typer
import typer.core

from bayesplit.errors import BayesplitError


class _Group(typer.core.TyperGroup):
    """Root group: turns user errors into one line and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BayesplitError as exc:
            message = " ".join(str(exc).split())  # always one line
            click.echo(f"error: {message}", err=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Group,
    help="Bayesian scaling laws for splitting a training budget between pretraining and specialization.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _register() -> None:
    from bayesplit.cli import core, corpus, decide, runs, simulate, suggest, train

    core.register(app)
    decide.register(app)
    suggest.register(app)
    simulate.register(app)
    app.command("loop")(train.loop_cmd)
    app.add_typer(runs.app, name="runs", help="Validate, import, export and list run tables.")
    app.add_typer(
        corpus.app, name="corpus", help="Build and inspect tokenized multi-domain corpora."
    )
    app.add_typer(
        train.app, name="train", help="Train and specialize models with the bundled trainer."
    )


_register()


def main() -> None:
    """Console-script entry point."""
    app()
