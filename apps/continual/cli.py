"""``datadam continual``: compare replay memories on a class-incremental stream.

Registered through the ``datadam.commands`` entry point. Only typer and the core are
imported here; Avalanche loads when the command runs, so a missing extra is one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from datadam.cli.options import (
    Device,
    ImageSize,
    Progress,
    Root,
    Seed,
    dataset_options,
    load_data,
    parse_list,
)
from datadam.errors import ConfigError
from datadam.outputs import Output, check_outputs

_BUFFERS = typer.Option("random,herding,dm,datadam", "--buffers", "-b", metavar="NAMES",
                        help="Comma-separated memories: random, herding, dm, datadam "
                             "(and none, no replay, with --protocol replay).")
_MEMORY = typer.Option(None, "--memory", metavar="N", min=1, show_default="--ipc per class",
                       help="Memory in images in all, divided evenly over the classes (instead of --ipc).")
_ORDERS = typer.Option(3, "--orders", metavar="N", min=1,
                       help="Class orders: the natural one, then seeded permutations (mean and spread "
                            "are over these).")
_PROTOCOL = typer.Option("retrain", "--protocol", metavar="NAME",
                         help="retrain: a model trained from scratch on the memory at each step "
                              "(the papers' protocol); replay: fine-tuning with replay.")

def continual_command(
    dataset: str = typer.Argument(..., help="Dataset of the stream: mnist, mhist or folder."),
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR",
                             help="Output folder: results.json, accuracy.png, distilled memories."),
    buffers: str = _BUFFERS,
    ipc: int | None = typer.Option(None, "--ipc", metavar="N", min=1, show_default="10",
                                   help="Memory in images per class."),
    memory: int | None = _MEMORY,
    orders: int = _ORDERS,
    protocol: str = _PROTOCOL,
    experiences: int | None = typer.Option(None, "--experiences", metavar="N", min=1, show_default="5 for mnist, 2 for mhist",
                                           help="Experiences of the stream."),
    epochs: int | None = typer.Option(None, "--epochs", metavar="N", min=1,
                                      help="Training epochs per experience.", show_default="150 retrain, 1 replay"),
    model: str = typer.Option("convnet3", "--model", metavar="NAME", help="The learner network (a datadam model name)."),
    width: int | None = typer.Option(None, "--width", metavar="N", min=1,
                                     help="Width of a ConvNet learner.", show_default="the model's, 128"),
    batch: int | None = typer.Option(None, "--batch", metavar="N", min=1,
                                     help="Learner minibatch.", show_default="256 retrain, 128 replay"),
    iterations: int = typer.Option(200, "--iterations", "-n", metavar="N", min=0,
                                   help="Distillation iterations per experience (dm, datadam)."),
    train_per_class: int | None = typer.Option(None, "--train-per-class", metavar="N", min=1,
                                               help="Use at most this many training images per class.", show_default="all"),
    test_per_class: int | None = typer.Option(None, "--test-per-class", metavar="N", min=1,
                                              help="Test on at most this many images per class.", show_default="all"),
    root: Root = None,
    image_size: ImageSize = None,
    device: Device = "auto",
    seed: Seed = 0,
    progress: Progress = None,
) -> None:
    """Compare replay memories at equal memory on a class-incremental stream of DATASET.

    Each memory is run on every class order with Avalanche (Naive strategy, accuracy and forgetting from its EvaluationPlugin). Results go to OUT/results.json after every run; running the same command again resumes. OUT/accuracy.png plots accuracy against classes seen, one line per memory.
    """
    ContinualConfig, compare_buffers, plot_accuracy = _with_avalanche()
    # a folder of results: the same command again resumes from its results.json
    check_outputs([Output(out, "--out", "results folder", folder=True)], force=True)
    train = load_data(dataset, root, "train", **dataset_options(image_size))
    test = load_data(dataset, root, "test", **dataset_options(image_size))
    per_class = _per_class(ipc, memory, train.num_classes)
    config = ContinualConfig(
        buffers=tuple(parse_list(buffers)), ipc=per_class, orders=orders, protocol=protocol,
        experiences=experiences, model=model, model_options={"net_width": width} if width else {},
        epochs=epochs, batch=batch, train_per_class=train_per_class,
        test_per_class=test_per_class, distill={"iterations": iterations}, seed=seed)
    result = compare_buffers(train, test, config, device=device, progress=progress,
                             results=out / "results.json", cache_dir=out / "memories")
    plot_accuracy(result, out / "accuracy.png")
    _print_summary(result)
    typer.echo(f"wrote {out / 'results.json'} and {out / 'accuracy.png'}")


def _with_avalanche() -> tuple[Any, Any, Any]:
    """``ContinualConfig``, ``compare_buffers`` and ``plot_accuracy``, loading Avalanche;
    a one-line error naming the extra when it is missing."""
    try:
        from datadam.apps.continual import ContinualConfig, compare_buffers, plot_accuracy
    except ImportError as e:
        raise ConfigError(f"datadam continual needs Avalanche: pip install 'datadam[continual]' ({e})") from None
    return ContinualConfig, compare_buffers, plot_accuracy


def _per_class(ipc: int | None, memory: int | None, num_classes: int) -> int:
    if ipc is not None and memory is not None:
        raise ConfigError("give --ipc or --memory, not both")
    if memory is not None:
        if memory < num_classes:
            raise ConfigError(f"a memory of {memory} images cannot hold one image for each of "
                              f"{num_classes} classes")
        return memory // num_classes
    if ipc is not None and ipc < 1:
        raise ConfigError(f"--ipc must be at least 1, not {ipc}")
    return 10 if ipc is None else ipc


def _print_summary(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    settings = result["settings"]
    table = Table(title=f"{settings['dataset']}: {settings['ipc']} images per class, "
                        f"{settings['protocol']} protocol, {len(settings['class_orders'])} class order(s)")
    for column in ("buffer", "final accuracy (%)", "forgetting (%)", "s / order"):
        table.add_column(column, justify="left" if column == "buffer" else "right")
    for name, s in result["summary"].items():
        table.add_row(name, f"{100 * s['final_accuracy_mean']:.2f} ± {100 * s['final_accuracy_std']:.2f}",
                      f"{100 * s['final_forgetting_mean']:.2f}", f"{s['seconds_mean']:.0f}")
    Console().print(table)
