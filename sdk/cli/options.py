"""Options shared by several commands, so they read the same everywhere, and the options
of a config's settings, built from the config (:func:`with_settings`).

Each is an ``Annotated`` type (Typer's style): a command declares ``root: Root = None``.
Nothing here imports torch, so ``datadam --help`` starts fast.
"""

from __future__ import annotations

import functools
import inspect
import math
import typing
from collections.abc import Callable
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Annotated, Any

import typer

from datadam.errors import ConfigError
from datadam.settings import (  # noqa: F401 (the panels are this module's names too)
    DATA_PANEL,
    METHOD_PANEL,
    RUN_PANEL,
    TRAINING_PANEL,
    Bounds,
    Setting,
    setting_of,
)
from datadam.training_settings import TrainSettings

Root = Annotated[Path | None, typer.Option(
    "--root", "-r", metavar="DIR", rich_help_panel=DATA_PANEL, show_default="$DATADAM_DATA or ./data",
    help="Data folder. Given explicitly, it must hold the dataset.")]
ImageSize = Annotated[int | None, typer.Option(
    "--image-size", min=1, metavar="SIZE", rich_help_panel=DATA_PANEL,
    show_default="the files' own size", help="Resize to SIZE x SIZE on load (mhist, folder).")]
Device = Annotated[str, typer.Option("--device", metavar="DEVICE", help="auto, cpu, cuda or mps.")]
Seed = Annotated[int, typer.Option("--seed", min=0, metavar="N",
                                   help="Seed: the same seed gives the same result.")]
Force = Annotated[bool, typer.Option(
    "--force", metavar="", help="Replace output files that hold another result (never needed to rewrite the "
                    "same result of the same inputs).")]
Progress = Annotated[bool | None, typer.Option(
    "--progress/--no-progress", rich_help_panel=RUN_PANEL,
    show_default="a bar on a terminal, else a status line on stderr every "
                 "$DATADAM_PROGRESS_INTERVAL seconds (60; 0 = none)",
    help="Progress bars.")]
CheckpointEvery = Annotated[int, typer.Option(
    "--checkpoint-every", min=1, metavar="N", rich_help_panel=RUN_PANEL,
    help="Write a checkpoint every N iterations.")]
Resume = Annotated[bool, typer.Option("--resume", metavar="", rich_help_panel=RUN_PANEL,
                                      help="Continue from OUT's checkpoint.")]


def bounded(bounds: Bounds) -> Callable[[str], float]:
    """Typer parser of a finite number within ``bounds``, for the bounds Typer's ``min``
    cannot say (an open or an upper end): ``-1 is not above 0``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise typer.BadParameter(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise typer.BadParameter(f"{text} is not a finite number")
        if value not in bounds:
            raise typer.BadParameter(f"{text} is not {bounds.describe()}")
        return value

    parse.__name__ = "number"
    return parse


#: Typer parser of an option that must be a finite number above 0 (a learning rate).
positive = bounded(Bounds(0.0, None, low_allowed=False))


def checkpoint_path(out: Path) -> Path:
    """The checkpoint of a distillation writing ``out``: ``.ckpt`` before the suffix."""
    return out.with_name(out.stem + ".ckpt" + (out.suffix or ".safetensors"))


def dataset_options(image_size: int | None, channels: int | None = None) -> dict:
    """Source options for :func:`datadam.data.load`, leaving out the unset ones."""
    return {k: v for k, v in {"image_size": image_size, "channels": channels}.items() if v is not None}


def load_data(name: str, root: Path | None, split: str, **options):
    """:func:`datadam.data.load`, and one line on stderr saying what was loaded from where
    (:meth:`~datadam.data.ImageDataset.describe`)."""
    from datadam import data

    dataset = data.load(name, root, split, **options)
    typer.echo(dataset.describe(), err=True)
    return dataset


def parse_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _value(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _option_values(items: list[str], flag: str, example: str) -> dict[str, list[int | float | str]]:
    out: dict[str, list[int | float | str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not parse_list(values):
            raise ConfigError(f"{flag} {item!r}: write {example}")
        out[key.strip()] = [_value(v) for v in parse_list(values)]
    return out


def parse_choices(items: list[str]) -> dict[str, list[int | float | str]]:
    """``["net_norm=batchnorm,instancenorm", "net_width=64,128"]`` -> option name to values
    (numbers become numbers). :class:`ConfigError` on an item without ``=`` or values."""
    return _option_values(items, "--model-choice",
                          "OPTION=VALUE,VALUE... (e.g. net_norm=batchnorm,instancenorm)")


def parse_options(items: list[str]) -> dict[str, int | float | str]:
    """``["first_padding=3", "net_norm=batchnorm"]`` -> option name to value (numbers
    become numbers). :class:`ConfigError` on an item without ``=`` or with several values."""
    example = "OPTION=VALUE (e.g. net_norm=batchnorm)"
    options = _option_values(items, "--model-option", example)
    for key, values in options.items():
        if len(values) != 1:
            raise ConfigError(f"--model-option {key}: one value, not {len(values)}; write {example}")
    return {key: values[0] for key, values in options.items()}


def _unchanged(value: Any) -> Any:
    return value


def _is_items(kind: Any) -> bool:
    """Whether a setting of type ``kind`` is a dict, given as repeated ``OPTION=VALUE`` items."""
    return typing.get_origin(kind) is dict


def _setting_option(config_field: Field, kind: Any) -> tuple[inspect.Parameter, Callable[[Any], Any]]:
    """The option of one setting, and the function from its parsed value to the field's value."""
    record = setting_of(config_field)
    default = (config_field.default if config_field.default_factory is MISSING
               else config_field.default_factory())
    convert: Callable[[Any], Any] = _unchanged
    extra: dict[str, Any] = {}
    if _is_items(kind):
        drawn = typing.get_origin(typing.get_args(kind)[1]) is list  # OPTION=VALUES: one is drawn
        extra["show_default"] = record.show_default or ", ".join(f"{k}={v}" for k, v in default.items())
        fixed = default  # the options an item overrides
        convert = ((lambda items: parse_choices(items or [])) if drawn
                   else (lambda items: {**fixed, **parse_options(items or [])}))
        kind, default = list[str] | None, None
    option = _typer_option(config_field.name, kind, record, **extra)
    return inspect.Parameter(config_field.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[kind, option]), convert


def _typer_option(name: str, kind: Any, record: Setting, **extra: Any) -> Any:
    """The ``typer.Option`` of the setting ``name`` described by ``record``, its value given
    as ``kind``: its names, help, placeholder, panel, default words and bounds (Typer's own
    range for whole numbers and a closed lower end, else :func:`bounded`); ``extra``
    overrides any of them."""
    bounds = record.bounds
    whole = int in (kind, *typing.get_args(kind)) and float not in (kind, *typing.get_args(kind))
    numbers: dict[str, Any] = {}
    closed_low = bounds is not None and bounds.low is not None and bounds.low_allowed
    if closed_low and bounds.high is None:
        numbers = {"min": bounds.low}
    elif closed_low and whole:  # a whole number below ``high`` is one up to ``high - 1``
        numbers = {"min": int(bounds.low), "max": int(bounds.high) - 1}
    elif bounds is not None:
        numbers = {"parser": bounded(bounds)}
    options = {"help": record.help, "metavar": record.metavar, "rich_help_panel": record.panel,
               "show_default": record.show_default or True, **numbers, **extra}
    return typer.Option(*(record.flags or ["--" + name.replace("_", "-")]), **options)


def setting_options(config: type) -> dict[str, tuple[inspect.Parameter, Callable[[Any], Any]]]:
    """Field name to (option, converter) of each setting of ``config`` that has help
    (:class:`datadam.settings.Setting`), in field order."""
    kinds = typing.get_type_hints(config)
    return {f.name: _setting_option(f, kinds[f.name]) for f in fields(config) if setting_of(f).help}


def setting_option(config: type, name: str, given_as: Any = None, **option: Any) -> Any:
    """The ``Annotated`` type of one setting's option, for a command that declares it itself.

    ``given_as``: the type the command line gives the value as where the command turns it
    into the field's value itself (``str`` for a comma-separated tuple; ``int | None`` for
    a default the command resolves); ``option``: ``typer.Option`` arguments that differ
    from the setting's (e.g. ``show_default``).
    """
    if given_as is None and not option:
        return setting_options(config)[name][0].annotation
    config_field = next(f for f in fields(config) if f.name == name)
    return Annotated[given_as, _typer_option(name, given_as, setting_of(config_field), **option)]


def with_settings(config: type, into: str) -> Callable[[Callable], Callable]:
    """Decorator of a command: its parameter ``into`` becomes the options of ``config``'s
    settings (:func:`setting_options`), and receives their values as a dict, field name to
    value, ready for ``config(**values)`` (repeated ``OPTION=VALUE`` items made a dict).

    The options' help, default, bounds, placeholder, panel and names are the fields' own
    (:func:`datadam.settings.setting`), so that a new setting needs no edit here.
    """
    options = setting_options(config)

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        parameters = [option for p in signature.parameters.values()
                      for option in ([o for o, _ in options.values()] if p.name == into
                                     else [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)])]

        @functools.wraps(command)
        def run(**given: Any) -> Any:
            values = {name: convert(given.pop(name)) for name, (_, convert) in options.items()}
            return command(**given, **{into: values})

        run.__signature__ = signature.replace(parameters=parameters)  # what Typer reads
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        return run

    return decorate


# TrainSettings' --precision, for the commands that train networks with options of their own (NAS)
TrainPrecision = setting_option(TrainSettings, "precision")
