"""The root ``datadam`` command: the core's commands, the applications' command groups
(found through the ``datadam.commands`` entry points), one-line errors and ``--version``."""

from __future__ import annotations

import sys
import warnings
from importlib.metadata import PackageNotFoundError, entry_points, version

import typer
from typer.core import TyperGroup

from datadam._version import __version__
from datadam.cli import distill_commands, evaluate_commands
from datadam.cli.data_commands import data_app
from datadam.errors import DatadamError, DatadamWarning, Interrupted


def _show_warning(message, category, filename, lineno, file=None, line=None):
    if issubclass(category, DatadamWarning):
        typer.echo(f"warning: {message}", err=True)
    elif sys.warnoptions:  # the user asked for warnings (-W, PYTHONWARNINGS): Python's own form
        _python_show_warning(message, category, filename, lineno, file, line)
    # Other libraries' warnings (a QP solver Avalanche does not need, NNI's, torch's)
    # speak to their own developers, with source paths; they are not the user's to act on.


_python_show_warning = warnings.showwarning


class _OneLineErrors(TyperGroup):
    """Turns a :class:`DatadamError` (or an OS error such as an unwritable output) anywhere
    below into ``error: ...`` and exit 1, and a :class:`DatadamWarning` into ``warning: ...``;
    Ctrl-C exits 130 (a distillation or evaluation says what it kept)."""

    def invoke(self, ctx):
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except Interrupted as e:  # Ctrl-C, what was done is saved: not a failure of the input
            typer.echo(str(e), err=True)
            raise typer.Exit(130) from None
        except DatadamError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None
        except OSError as e:  # unwritable output, full disk...: the OS's words, one line
            typer.echo(f"error: {e.strerror or e}" + (f": {e.filename}" if e.filename else ""), err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None


app = typer.Typer(
    name="datadam",
    cls=_OneLineErrors,
    help="Condense a labelled image dataset into a few synthetic images per class (DataDAM).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # rich: option panels and whole one-line summaries (defaults are declared with
    # show_default, so no help text holds a bracket that rich would read as markup)
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(data_app, name="data")
app.command("distill")(distill_commands.distill_command)
app.command("evaluate")(evaluate_commands.evaluate_command)
app.command("merge-evaluations")(evaluate_commands.merge_evaluations_command)
app.command("compare-evaluations")(evaluate_commands.compare_evaluations_command)
app.command("show")(distill_commands.show_command)
app.command("convert")(distill_commands.convert_command)
app.command("report")(distill_commands.report_command)


def _add_application_commands(root: typer.Typer) -> None:
    # An application's CLI module imports only typer and the core; its heavy
    # dependencies (avalanche, nni) load inside its commands, so `datadam --help` stays fast.
    # An entry point names a Typer app (a command group) or a function (one command).
    for entry in sorted(entry_points(group="datadam.commands"), key=lambda e: e.name):
        target = entry.load()
        if isinstance(target, typer.Typer):
            root.add_typer(target, name=entry.name)
        else:
            root.command(entry.name)(target)


_add_application_commands(app)


def _print_version(value: bool) -> None:
    if value:
        try:  # the installed distribution's version: importing torch would take seconds
            torch_version = version("torch")
        except PackageNotFoundError:
            torch_version = "not installed"
        typer.echo(f"datadam {__version__} (torch {torch_version}, python {sys.version.split()[0]})")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", metavar="", callback=_print_version, is_eager=True,
                                 help="Print the version of datadam, torch and python, then exit."),
) -> None:
    """Condense a labelled image dataset into a few synthetic images per class (DataDAM)."""


def main() -> None:
    """Entry point of the ``datadam`` console script and ``python -m datadam``."""
    app(prog_name="datadam")
