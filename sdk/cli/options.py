"""Options shared by several commands, so they read the same everywhere."""

from __future__ import annotations

import typer

ROOT = typer.Option(None, "--root", "-r", help="Data folder [default: $DATADAM_DATA or ./data].",
                    show_default=False)
IMAGE_SIZE = typer.Option(None, "--image-size", min=1,
                          help="Resize to SIZE x SIZE on load (mhist, folder) [default: the files' own size].")
DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda or mps.")
SEED = typer.Option(0, "--seed", help="Seed: the same seed gives the same result.")
PROGRESS = typer.Option(None, "--progress/--no-progress",
                        help="Progress bars [default: only on a terminal].", show_default=False)


def dataset_options(image_size: int | None, channels: int | None = None) -> dict:
    """Source options for :func:`datadam.data.load`, leaving out the unset ones."""
    return {k: v for k, v in {"image_size": image_size, "channels": channels}.items() if v is not None}


def parse_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]
