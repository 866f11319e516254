"""``datadam continual``: compare replay memories on a class-incremental stream.

Registered through the ``datadam.commands`` entry point. Only typer and the core are
imported here; Avalanche loads when the command runs, so a missing extra is one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from datadam.apps.continual.settings import ContinualSettings
from datadam.cli.options import (
    Device,
    ImageSize,
    Progress,
    Root,
    Seed,
    dataset_options,
    load_data,
    parse_list,
    setting_option,
)
from datadam.errors import ConfigError
from datadam.outputs import Output, check_outputs

_DEFAULT = ContinualSettings()


# the options of ContinualSettings' fields: names, defaults, bounds and help are the fields'
Buffers = setting_option(ContinualSettings, "buffers", str)  # comma-separated
Ipc = setting_option(ContinualSettings, "ipc", int | None, show_default=str(_DEFAULT.ipc))  # None: --memory decides
Orders = setting_option(ContinualSettings, "orders")
Protocol = setting_option(ContinualSettings, "protocol")
Experiences = setting_option(ContinualSettings, "experiences")
Epochs = setting_option(ContinualSettings, "epochs")
Model = setting_option(ContinualSettings, "model")
Batch = setting_option(ContinualSettings, "batch")
TrainPerClass = setting_option(ContinualSettings, "train_per_class")
TestPerClass = setting_option(ContinualSettings, "test_per_class")


def continual_command(
    dataset: Annotated[str, typer.Argument(help="Dataset of the stream: mnist, mhist or folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR",
                                      help="Output folder: results.json, accuracy.png, distilled memories.")],
    buffers: Buffers = ",".join(_DEFAULT.buffers),
    ipc: Ipc = None,
    memory: Annotated[int | None, typer.Option(
        "--memory", metavar="N", min=1, show_default="--ipc per class",
        help="Memory in images in all, divided evenly over the classes (instead of --ipc).")] = None,
    orders: Orders = _DEFAULT.orders,
    protocol: Protocol = _DEFAULT.protocol,
    experiences: Experiences = _DEFAULT.experiences,
    epochs: Epochs = _DEFAULT.epochs,
    model: Model = _DEFAULT.model,
    width: Annotated[int | None, typer.Option("--width", metavar="N", min=1, show_default="the model's, 128",
                                              help="Width of a ConvNet learner.")] = None,
    batch: Batch = _DEFAULT.batch,
    iterations: Annotated[int, typer.Option(
        "--iterations", "-n", metavar="N", min=0,
        help="Distillation iterations per experience (dm, datadam).")] = _DEFAULT.distill["iterations"],
    train_per_class: TrainPerClass = _DEFAULT.train_per_class,
    test_per_class: TestPerClass = _DEFAULT.test_per_class,
    root: Root = None,
    image_size: ImageSize = None,
    device: Device = "auto",
    seed: Seed = _DEFAULT.seed,
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
    return _DEFAULT.ipc if ipc is None else ipc


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
