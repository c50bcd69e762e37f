"""The ``bayesplit`` command line: a thin shell over the Python API.

Every command prints a readable table by default and one JSON object with
``--json``. Input errors (:class:`bayesplit.errors.BayesplitError`) and file-system
refusals (``OSError``) become a one-line message on stderr and exit code 2, with
no traceback.
"""

from __future__ import annotations

from typing import Annotated

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
        except OSError as exc:
            # The file system said no (permissions, a full disk, a file where a folder
            # should be): the user's to fix, so one line, not a traceback.
            where = f": {exc.filename}" if exc.filename else ""
            click.echo(f"error: {exc.strerror or exc}{where}", err=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        click.echo(f"bayesplit {version('bayesplit')}")
        raise typer.Exit()


_HELP = (
    "Bayesian scaling laws for splitting a training budget between pretraining and "
    "specialization.\n\n"
    "Every command prints a readable table (on stderr) or, with --json, one JSON object on "
    "stdout. Bad input (a typo, a missing file, an output path that cannot be written) exits "
    "with code 2 and one `error:` line, before any slow work and without writing anything."
)


@app.callback(help=_HELP)
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """The root options (the commands are registered below)."""


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
