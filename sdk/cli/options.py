"""Options shared by several commands, so they read the same everywhere.

Each is an ``Annotated`` type (Typer's style): a command declares ``root: Root = None``.
Nothing here imports torch, so ``datadam --help`` starts fast.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from datadam.errors import ConfigError

# Help panels, in the order a new user reads them: the options without a panel come first.
METHOD_PANEL = "Method"
DATA_PANEL = "Data"
RUN_PANEL = "Run control"
TRAINING_PANEL = "Training"

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
TrainPrecision = Annotated[str, typer.Option(
    "--precision", metavar="PRECISION", rich_help_panel=TRAINING_PANEL,
    help="Arithmetic of training: fp32 (the protocol) or bf16 (bfloat16 autocast, weights in fp32: "
         "faster where the CPU or GPU has bfloat16 units; measure first).")]
TrainCompile = Annotated[bool, typer.Option(
    "--compile/--no-compile", rich_help_panel=TRAINING_PANEL,
    help="Compile each network's training step with torch.compile (TorchInductor): the same training "
         "up to rounding, faster after a compilation of tens of seconds per process (on a CPU it "
         "needs a C++ compiler).")]
CheckpointEvery = Annotated[int, typer.Option(
    "--checkpoint-every", min=1, metavar="N", rich_help_panel=RUN_PANEL,
    help="Write a checkpoint every N iterations.")]
Resume = Annotated[bool, typer.Option("--resume", metavar="", rich_help_panel=RUN_PANEL,
                                      help="Continue from OUT's checkpoint.")]


def positive(text: str) -> float:
    """Typer parser of an option that must be a finite number above 0 (a learning rate)."""
    value = _number(text)
    if not value > 0:
        raise typer.BadParameter(f"{text} is not above 0")
    return value


def below_one(text: str) -> float:
    """Typer parser of a number in [0, 1) (a momentum)."""
    value = _number(text)
    if not 0 <= value < 1:
        raise typer.BadParameter(f"{text} is not in [0, 1)")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise typer.BadParameter(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise typer.BadParameter(f"{text} is not a finite number")
    return value


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
