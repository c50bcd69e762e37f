"""The ``bayesplit`` command line: a thin shell over the Python API.

Every command prints a readable table by default and one JSON document (an object; a
list for ``suggest`` and ``train ladder``) with ``--json``. Input errors
(:class:`bayesplit.errors.BayesplitError`), file-system refusals (``OSError``) and a
mistyped command line (click's usage errors) become a one-line message on stderr and exit
code 2, with no traceback.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import warnings
from typing import Annotated

import click
import typer
import typer.core

from bayesplit.errors import BayesplitError, Terminated, missing_extra


def _usage_error_types() -> tuple[type[Exception], ...]:
    # typer >= 0.2x parses with its own copy of click, whose UsageError is not click's
    types: list[type[Exception]] = [click.UsageError]
    try:
        from typer._click.exceptions import UsageError
    except ImportError:
        pass
    else:
        types.append(UsageError)
    return tuple(types)


USAGE_ERRORS = _usage_error_types()


def _usage_error(exc) -> None:
    if type(exc).__name__ == "NoArgsIsHelpError":  # a group named alone: its help is the answer
        text = exc.format_message()  # typer's rich help is printed already and this is empty
        if text.strip():
            click.echo(text)
        raise typer.Exit(2) from None
    message = " ".join(exc.format_message().split())
    where = exc.ctx.command_path if exc.ctx is not None else "bayesplit"
    click.echo(f"error: {message} (see `{where} --help`)", err=True)
    raise typer.Exit(2) from None


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _one_line_warning(fallback, message, category, filename, lineno, line=None) -> str:
    """bayesplit's own warnings as one ``warning:`` line, as the trainer's are: Python's
    form names a file and line of bayesplit's code, which tell a command-line user
    nothing. Other libraries' warnings keep Python's form."""
    if issubclass(category, UserWarning) and os.path.abspath(filename).startswith(_PACKAGE):
        return f"warning: {' '.join(str(message).split())}\n"
    return fallback(message, category, filename, lineno, line)


#: Exit code when the reader of stdout has gone: 1, as rich's console (which prints the
#: help screens) and Python's own advice for SIGPIPE have it.
BROKEN_PIPE_EXIT = 1


def _reader_gone() -> None:
    """The reader of stdout left (``bayesplit ... --json | head``): stop quietly, as Unix
    tools do. stdout goes to /dev/null so Python's own flush at exit does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(BROKEN_PIPE_EXIT)


#: Exit code of a command stopped by SIGTERM (128 + 15, as the shell reports it).
TERMINATED_EXIT = 128 + signal.SIGTERM


class _Group(typer.core.TyperGroup):
    """Root group: turns user errors into one line and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            # the text of a printed warning only: warnings recorded (pytest.warns) stay so
            before = warnings.formatwarning
            warnings.formatwarning = functools.partial(_one_line_warning, before)
            try:
                return super().invoke(ctx)
            finally:
                warnings.formatwarning = before
        except USAGE_ERRORS as exc:
            # a typo in an option's value, an unknown option or command, a missing argument:
            # one line like every other input error, not click's boxed usage screen
            _usage_error(exc)
        except BrokenPipeError:
            _reader_gone()
        except KeyboardInterrupt as exc:
            # Typer turns Ctrl-C into a silent exit 130; one line says it was not a crash.
            # Output files are written atomically, so none is left half-written.
            if isinstance(exc, Terminated):
                click.echo("terminated", err=True)
                raise typer.Exit(TERMINATED_EXIT) from None
            click.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except BayesplitError as exc:
            message = " ".join(str(exc).split())  # always one line
            click.echo(f"error: {message}", err=True)
            raise typer.Exit(2) from None
        except ModuleNotFoundError as exc:
            # the core install has no [train] extra: `train pretrain` was a 45-line traceback
            error = missing_extra(exc.name or "")
            if error is None:
                raise
            click.echo(f"error: {error}", err=True)
            raise typer.Exit(2) from None
        except OSError as exc:
            # The file system said no (permissions, a full disk, a file where a folder
            # should be): the user's to fix, so one line, not a traceback.
            where = f": {exc.filename}" if exc.filename else ""
            click.echo(f"error: {exc.strerror or exc}{where}", err=True)
            raise typer.Exit(2) from None


def _is_path(param) -> bool:
    """Whether a command's parameter is typed ``Path`` (typer turns ``""`` into ``.``)."""
    descriptor = getattr(param, "type_descriptor", None)  # typer >= 0.2x
    if descriptor is not None:
        return bool(descriptor.is_path)
    return isinstance(getattr(param, "type", None), click.Path)


def _label(param) -> str:
    """How the user typed the parameter: ``--out`` for an option, ``POSTERIOR`` for an argument."""
    if param.param_type_name == "option":
        return max(param.opts, key=len)
    return param.name.upper()


class _Command(typer.core.TyperCommand):
    """Every command: refuses an empty path before typer reads it.

    ``Path("")`` is ``Path(".")``, so ``--out ""`` (``--out "$OUT"`` with ``OUT`` unset)
    reached the command as the current folder: a confusing message about ``.`` at best,
    something read from or written to it at worst. The raw text is only seen here.
    """

    refuses_empty_paths = True

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not ctx.resilient_parsing and not set(args) & set(ctx.help_option_names):
            opts, _, _ = self.make_parser(ctx).parse_args(args=list(args))
            for param in self.get_params(ctx):
                raw = opts.get(param.name)
                values = raw if isinstance(raw, (list, tuple)) else [raw]
                if _is_path(param) and any(isinstance(v, str) and not v for v in values):
                    leave_out = "" if param.required else ", or leave the option out"
                    raise BayesplitError(
                        f"{_label(param)} is empty: give a file or folder name{leave_out}"
                    )
        return super().parse_args(ctx, args)


def _use_command_class(typer_app: typer.Typer) -> None:
    """Make every command of ``typer_app`` (and of its sub-apps) a :class:`_Command`."""
    for info in typer_app.registered_commands:
        if info.cls in (None, typer.core.TyperCommand):
            info.cls = _Command
        elif not getattr(info.cls, "refuses_empty_paths", False):
            # (not issubclass: `typer bayesplit.cli utils docs` imports this module twice)
            raise TypeError(f"command {info.name!r}: its class must derive from _Command")
    for group in typer_app.registered_groups:
        _use_command_class(group.typer_instance)


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        from bayesplit import __version__

        # not the installed metadata: a checkout on PYTHONPATH has none (a traceback)
        click.echo(f"bayesplit {__version__}")
        raise typer.Exit()


_HELP = (
    "Bayesian scaling laws for splitting a training budget between pretraining and "
    "specialization.\n\n"
    "Every command prints a readable table (on stderr) or, with --json, one JSON document on "
    "stdout (an object; a list for `suggest` and `train ladder`). Bad input (a typo, a "
    "missing file, an output path that cannot be written) exits with code 2 and one `error:` "
    "line, before any slow work and without writing anything."
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
    _use_command_class(app)  # registered last: every command, a new one too


_register()


def main() -> None:
    """Console-script entry point."""
    from bayesplit import _io

    _io.SIGTERM_CLEANS_UP = True  # SIGTERM while writing an output: its temp file removed
    try:
        # not standalone: the root's own parse errors (an unknown option before the
        # command) reach the one-line handler too; the commands' are caught in _Group
        code = app(standalone_mode=False, prog_name="bayesplit")
    except USAGE_ERRORS as exc:
        try:
            _usage_error(exc)
        except typer.Exit as stop:
            code = stop.exit_code
    except (click.exceptions.Abort, typer.Abort):
        click.echo("Aborted!", err=True)
        code = 1
    except BrokenPipeError:
        _reader_gone()
    try:
        sys.stdout.flush()  # a reader that left after the last write shows up here
    except BrokenPipeError:
        _reader_gone()
    if code in (130, TERMINATED_EXIT) and "jax" in sys.modules:
        # an interrupted fit leaves XLA's threads computing, and the interpreter's shutdown
        # under them ended in "Fatal Python error: Segmentation fault" (exit -11) in 8 of 9
        # tries; the outputs' temp files are gone by now, so leave without that shutdown
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code or 0)
