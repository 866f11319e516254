"""Options shared by several commands, so they read the same everywhere."""

from __future__ import annotations

from pathlib import Path

import typer

from datadam.errors import ConfigError

ROOT = typer.Option(None, "--root", "-r", help="Data folder [default: $DATADAM_DATA or ./data].",
                    show_default=False)
IMAGE_SIZE = typer.Option(None, "--image-size", min=1,
                          help="Resize to SIZE x SIZE on load (mhist, folder) [default: the files' own size].")
DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda or mps.")
SEED = typer.Option(0, "--seed", help="Seed: the same seed gives the same result.")
PROGRESS = typer.Option(None, "--progress/--no-progress",
                        help="Progress bars [default: a bar on a terminal, else a status line on stderr every $DATADAM_PROGRESS_INTERVAL seconds (60; 0 = none)].",
                        show_default=False)
TRAIN_PRECISION = typer.Option(
    "fp32", "--precision",
    help="Arithmetic of training: fp32 (the protocol) or bf16 (bfloat16 autocast, weights in fp32: "
         "faster where the CPU or GPU has bfloat16 units; measure first).")
TRAIN_COMPILE = typer.Option(
    False, "--compile/--no-compile",
    help="Compile each network's training step with torch.compile (TorchInductor): the same training "
         "up to rounding, faster after a compilation of tens of seconds per process (on a CPU it "
         "needs a C++ compiler).")
CHECKPOINT_EVERY = typer.Option(500, "--checkpoint-every", min=1, help="Write a checkpoint every N iterations.")
RESUME = typer.Option(False, "--resume", help="Continue from OUT's checkpoint.")


def checkpoint_path(out: Path) -> Path:
    """The checkpoint of a distillation writing ``out``: ``.ckpt`` before the suffix."""
    return out.with_name(out.stem + ".ckpt" + (out.suffix or ".safetensors"))


def dataset_options(image_size: int | None, channels: int | None = None) -> dict:
    """Source options for :func:`datadam.data.load`, leaving out the unset ones."""
    return {k: v for k, v in {"image_size": image_size, "channels": channels}.items() if v is not None}


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
