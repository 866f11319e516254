"""``datadam data``: list, inspect and validate datasets."""

from __future__ import annotations

from typing import Annotated

import typer

from datadam.cli.options import ImageSize, Root, dataset_options

data_app = typer.Typer(help="List, inspect and validate datasets.", no_args_is_help=True)

Name = Annotated[str, typer.Argument(metavar="NAME", help="Dataset name: mnist, mhist or folder (see `datadam data list`).")]
Channels = Annotated[int | None, typer.Option("--channels", min=1, max=3, metavar="N", show_default="as the first image",
                                              help="1 (grey) or 3 (RGB) for folder datasets.")]


@data_app.command("list")
def list_datasets() -> None:
    """List the dataset sources datadam can read."""
    from rich.console import Console
    from rich.table import Table

    from datadam import data

    table = Table("name", "description")
    for name in data.available():
        table.add_row(name, data.get_source(name).description)
    Console().print(table)


@data_app.command()
def info(
    name: Name,
    root: Root = None,
    image_size: ImageSize = None,
    channels: Channels = None,
) -> None:
    """Show images per class and split, the image shape and the training mean/std."""
    from rich.console import Console
    from rich.table import Table

    from datadam import data

    options = dataset_options(image_size, channels)
    train = data.load(name, root, "train", **options)
    test = data.load(name, root, "test", **options)
    console = Console()
    console.print(f"[bold]{name}[/bold] from {train.source}")
    table = Table("class", "train", "test")
    train_counts, test_counts = train.class_counts(), test.class_counts()
    for cls in train.classes:
        table.add_row(cls, f"{train_counts[cls]:,}", f"{test_counts[cls]:,}")
    table.add_section()
    table.add_row("total", f"{len(train):,}", f"{len(test):,}", style="bold")
    console.print(table)
    shape = "x".join(str(s) for s in train.images.shape[1:])
    console.print(f"image shape: {shape} ({train.images.dtype})")
    console.print("mean: " + ", ".join(f"{m:.4f}" for m in train.mean)
                  + "   std: " + ", ".join(f"{s:.4f}" for s in train.std) + "   (training split)")


@data_app.command()
def check(
    name: Name,
    root: Root = None,
    image_size: ImageSize = None,
    channels: Channels = None,
) -> None:
    """Validate a dataset and report every problem found; exit 1 if there is any."""
    from datadam import data

    problems = data.check(name, root, **dataset_options(image_size, channels))
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        typer.echo(f"{len(problems)} problem(s) found in {name}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{name}: no problems found")
