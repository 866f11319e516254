"""The command line reads like a man page: every command has help, every option a type,
a default and a sentence; shell completion is Typer's and works."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from datadam.cli import app

runner = CliRunner()
ROOT = typer.main.get_command(app)


def _commands(command, path=()):
    """(path, command) of every command below ``command``, groups included."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(ROOT))


def test_every_command_is_reached():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"distill", "evaluate", "show", "report", "convert", "continual", "data info",
            "data check", "data list"} <= names


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "datadam")
def test_help_exits_zero_and_describes_the_command(path):
    r = runner.invoke(app, [*path, "--help"])
    assert r.exit_code == 0, r.output
    assert "Usage: datadam" in r.output
    command = dict(COMMANDS)[path]
    assert (command.help or "").strip(), f"{' '.join(path)} has no description"


@pytest.mark.parametrize("path, command", [(p, c) for p, c in COMMANDS if not hasattr(c, "commands")],
                         ids=lambda x: " ".join(x) if isinstance(x, tuple) else "")
def test_every_option_has_a_metavar_a_default_and_a_sentence(path, command):
    ctx = typer.Context(command)
    for param in command.params:
        if param.param_type_name != "option" or param.name == "help":
            continue
        name = "/".join(param.opts)
        opts, text = param.get_help_record(ctx)
        assert param.help and len(param.help.split()) >= 2, f"{name}: no sentence of help"
        if param.is_flag:
            continue  # a flag is off unless given
        metavar = param.metavar or ""
        assert metavar and metavar == metavar.upper(), f"{name}: no uppercase metavar ({metavar!r})"
        assert param.required or "[default:" in text, f"{name}: no default in {text!r}"


def test_help_of_every_argument():
    for path, command in COMMANDS:
        for param in command.params:
            if param.param_type_name == "argument":
                assert getattr(param, "help", None), f"{' '.join(path)} {param.name}: no help"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_script(shell, monkeypatch):
    # Typer reads the shell from the parent process (shellingham); fix it, so the test
    # does not depend on what launched pytest and each shell gets its own script.
    import typer.completion

    monkeypatch.setattr(typer.completion, "_get_shell_name", lambda: shell)
    r = runner.invoke(app, ["--show-completion"])
    assert r.exit_code == 0, r.output
    assert "_DATADAM_COMPLETE" in r.output
    assert {"bash": "complete -o default -F", "zsh": "#compdef datadam",
            "fish": "complete --command datadam"}[shell] in r.output, r.output


@pytest.mark.parametrize("words, cword, expected", [
    ("datadam dis", "1", "distill"),
    ("datadam distill --snap", "2", "--snapshot-every"),
    ("datadam show x --att", "3", "--attention"),
])
def test_completion_completes_commands_and_options(words, cword, expected):
    """What the installed bash script asks the program at a TAB, and what it answers."""
    env = {"_DATADAM_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword,
           "_TYPER_COMPLETE_ARGS": words}
    r = runner.invoke(app, [], env=env, prog_name="datadam")
    assert expected in r.output.split(), r.output


def test_the_command_line_loads_no_application_dependency():
    """`datadam --help` and TAB completion import every command's module: an application's
    heavy dependency (Avalanche) must wait until its command runs."""
    code = ("import sys, warnings; warnings.simplefilter('error'); import datadam.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('avalanche', 'nni')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize("command, config", [
    ("distill", "datadam.distill.config:DistillConfig"),
    ("evaluate", "datadam.training_settings:TrainSettings"),
    ("evaluate", "datadam.evaluation_settings:EvaluationSettings"),
    ("continual", "datadam.apps.continual.settings:ContinualSettings"),
])
def test_the_options_of_a_command_are_its_settings(command, config):
    """A setting is written once, in its config field: the command's option takes its
    name, default, help and placeholder from there, and the API's default is the same
    (a tuple written comma-separated; a default the command resolves itself, as
    continual's --ipc beside --memory, in words)."""
    import dataclasses
    import importlib

    from datadam.settings import setting_of

    module, name = config.split(":")
    settings = getattr(importlib.import_module(module), name)
    options = {p.name: p for p in ROOT.commands[command].params}
    described = [f for f in dataclasses.fields(settings) if setting_of(f).help]
    assert described
    for field in described:
        option, record = options[field.name], setting_of(field)
        assert option.help == record.help
        if record.metavar:
            assert option.metavar == record.metavar
        if field.default is not dataclasses.MISSING and not isinstance(field.default, dict):
            default = ",".join(field.default) if isinstance(field.default, tuple) else field.default
            assert option.default == default or (option.default is None
                                                 and option.show_default == str(default)), field.name


def test_evaluate_takes_its_defaults_and_bounds_from_its_settings():
    import inspect

    from datadam.errors import ConfigError
    from datadam.evaluate import evaluate
    from datadam.evaluation_settings import EvaluationSettings

    signature = inspect.signature(evaluate).parameters
    for field in ("runs", "jobs", "together"):
        assert signature[field].default == getattr(EvaluationSettings(), field)
    for bad in ({"runs": 0}, {"jobs": 0}, {"runs": float("nan")}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            EvaluationSettings(**bad)
