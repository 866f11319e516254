"""``datadam distill``, ``show``, ``report`` and ``convert``: make a synthetic set and look at it."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from datadam import data
from datadam.cli.options import (
    CHECKPOINT_EVERY,
    DEVICE,
    IMAGE_SIZE,
    PROGRESS,
    RESUME,
    ROOT,
    SEED,
    checkpoint_path,
    dataset_options,
    parse_choices,
    parse_options,
)
from datadam.distill import DistillConfig, available_methods, distill
from datadam.distill.balance import TermBalance, term_balance
from datadam.distill.base import settings_used
from datadam.distill.config import saved_settings
from datadam.distill.distributed import init_from_environment
from datadam.errors import ConfigError
from datadam.monitor import TensorBoardLogger
from datadam.synthetic import SyntheticSet

_DEFAULTS = DistillConfig()


def distill_command(
    dataset: str = typer.Argument(..., help="Dataset to condense: mnist, mhist or folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Synthetic set to write (.safetensors)."),
    method: str = typer.Option("datadam", "--method", "-m",
                               help=f"Condensation method: {', '.join(available_methods())}."),
    ipc: int = typer.Option(10, "--ipc", min=1, help="Synthetic images per class."),
    iterations: int = typer.Option(_DEFAULTS.iterations, "--iterations", "-n", min=0,
                                   help="Image updates (official code: 20,000)."),
    batch_real: int = typer.Option(_DEFAULTS.batch_real, "--batch-real", min=1,
                                   help="Real images per class per iteration."),
    lr_img: float | None = typer.Option(None, "--lr-img",
                                        help="Image learning rate [default: 1.0, or 10.0 above IPC 50]."),
    momentum: float = typer.Option(_DEFAULTS.momentum, "--momentum", help="Image SGD momentum."),
    power: float = typer.Option(_DEFAULTS.attention_power, "--power", "-p",
                                help="Attention power p (paper 4, official code 1)."),
    task_balance: float | None = typer.Option(
        None, "--task-balance", help="Lambda of the last-layer term [default: 0.01, 0.02 above 64 px]."),
    sam_weight: float = typer.Option(_DEFAULTS.sam_weight, "--sam-weight",
                                     help="Weight of the attention term (0 = ablation without SAM)."),
    model: str | None = typer.Option(
        None, "--model", help="Distillation network, or several joined by commas to draw each "
                              "sampled network from [default: convnet3, deeper for large images]."),
    model_option: list[str] = typer.Option(
        [], "--model-option", help="Constructor option of the distillation network: OPTION=VALUE, "
                                   "e.g. net_norm=instancenorm or net_pooling=maxpooling (repeatable) "
                                   "[default: net_norm=batchnorm, net_pooling=avgpooling].",
        show_default=False),
    model_choice: list[str] = typer.Option(
        [], "--model-choice", help="Draw a network option per sampled network: "
                                   "OPTION=VALUE,VALUE..., e.g. net_norm=batchnorm,instancenorm "
                                   "(repeatable) [default: the same network every time].",
        show_default=False),
    init: str = typer.Option(_DEFAULTS.init, "--init", help="Initialisation: real or noise."),
    augmentation: str | None = typer.Option(
        None, "--augmentation", help="DSA preset (digits, natural, none) or families joined by _ "
                                     "[default: digits for mnist, natural otherwise]."),
    net_steps: int = typer.Option(0, "--net-steps", min=0,
                                  help="Handout variant: train the sampled network this many steps "
                                       "between image updates (0 = published method)."),
    net_lr: float = typer.Option(_DEFAULTS.net_lr, "--net-lr", help="Learning rate of those steps."),
    net_keep: int = typer.Option(1, "--net-keep", min=1,
                                 help="Keep a sampled network for this many iterations."),
    real_precision: str = typer.Option(
        _DEFAULTS.real_precision, "--real-precision",
        help="Precision of the real images' forward: fp32, or bf16 (faster on recent GPUs "
             "and on some CPUs, slower on others: measure; the synthetic images and their "
             "gradient stay fp32)."),
    bn_statistics: str = typer.Option(
        _DEFAULTS.bn_statistics, "--bn-statistics",
        help="BatchNorm statistics of the sampled networks: all (over every class's images "
             "at once, as the official DataDAM code) or class (each class on its own)."),
    factor: int = typer.Option(
        _DEFAULTS.factor, "--factor", min=1,
        help="Multi-formation (IDC): each stored image holds FACTOR x FACTOR tiles, each a "
             "training image, so the set trains on IPC x FACTOR^2 images per class at 1/FACTOR "
             "the resolution (1 = published method)."),
    checkpoint_every: int = CHECKPOINT_EVERY,
    resume: bool = RESUME,
    keep_checkpoint: bool = typer.Option(
        False, "--keep-checkpoint", help="Keep OUT's checkpoint once the run is done, so that "
                                         "--resume with more --iterations extends it later."),
    snapshot_every: int = typer.Option(
        0, "--snapshot-every", min=0, help="Keep the images at iteration 0 and every N iterations "
                                           "inside OUT, for `datadam show --evolution` (0 = none)."),
    tensorboard: Path | None = typer.Option(
        None, "--tensorboard", help="Write TensorBoard events here: the loss every iteration, the "
                                    "images every --tensorboard-every (needs datadam[tensorboard]) [default: no logging].",
        show_default=False),
    tensorboard_every: int = typer.Option(100, "--tensorboard-every", min=1,
                                          help="Iterations between two image grids in TensorBoard."),
    root: Path | None = ROOT,
    image_size: int | None = IMAGE_SIZE,
    device: str = DEVICE,
    seed: int = SEED,
    progress: bool | None = PROGRESS,
) -> None:
    """Condense DATASET into IPC synthetic images per class and save them to OUT.

    Under torchrun (torchrun --nproc-per-node N -m datadam distill ...) each process forwards a slice of every iteration's real images and the per-class sums are all-reduced (gloo on the CPU, NCCL on GPUs); rank 0 writes OUT.

    A checkpoint (OUT with .ckpt before the suffix) is written every --checkpoint-every iterations and on Ctrl-C; --resume continues from it and gives the same result as an uninterrupted run. --keep-checkpoint keeps it after the run, so that --resume --iterations M extends a finished run.
    """
    choices = parse_choices(model_choice)
    options = {**_DEFAULTS.model_options, **parse_options(model_option)}
    shard = init_from_environment(device)  # several processes under torchrun; else one
    # Fail on a missing tensorboard before any data is read; rank 0 alone logs.
    logger = (TensorBoardLogger(tensorboard, image_every=tensorboard_every)
              if tensorboard and shard.is_main else None)
    train = data.load(dataset, root, "train", **dataset_options(image_size))
    checkpoint = checkpoint_path(out)
    try:
        syn = distill(
            train, method=method, ipc=ipc, iterations=iterations, batch_real=batch_real, lr_img=lr_img,
            momentum=momentum, attention_power=power, task_balance=task_balance, sam_weight=sam_weight,
            model=model, model_options=options, model_choices=choices, init=init, augmentation=augmentation, net_steps=net_steps, net_lr=net_lr,
            net_keep=net_keep, real_precision=real_precision, bn_statistics=bn_statistics, factor=factor,
            seed=seed, device=device,
            progress=progress, checkpoint=checkpoint,
            checkpoint_every=checkpoint_every, resume=resume, snapshot_every=snapshot_every,
            callbacks=[logger] if logger else (),
        )
    finally:
        if logger:
            logger.close()
        shard.close()
    if not shard.is_main:
        return  # every rank holds the same set; rank 0 writes it
    syn.save(out)
    if not keep_checkpoint:
        checkpoint.unlink(missing_ok=True)
    meta = syn.metadata
    final = f", final loss {meta['loss_history'][-1]:.4g}" if meta["loss_history"] else ""
    typer.echo(f"wrote {out}: {len(syn)} images ({syn.describe_ipc()}) by {meta['method']}, "
               f"{meta['iterations_done']} iterations in {meta['wall_time_s']:.1f} s{final}")


def show_command(
    synthetic: Path = typer.Argument(..., help="Synthetic set (.safetensors) or the checkpoint of a run in progress."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Draw the images to this PNG, one row per class [default: not drawn].",
                                    show_default=False),
    folder: Path | None = typer.Option(None, "--folder", help="Export the images as an ImageFolder tree of PNGs here [default: not exported].",
                                       show_default=False),
    loss: Path | None = typer.Option(None, "--loss", help="Plot the loss curve to this PNG [default: not drawn].",
                                     show_default=False),
    attention: Path | None = typer.Option(
        None, "--attention", help="Draw the attention maps of --class, real vs synthetic, in a fresh "
                                  "random network to this PNG; reads the real training data [default: not drawn].",
        show_default=False),
    evolution: Path | None = typer.Option(
        None, "--evolution", help="Draw --class's images over the iterations to this PNG (needs a "
                                  "set distilled with --snapshot-every) [default: not drawn].", show_default=False),
    balance: int = typer.Option(
        0, "--balance", min=0,
        help="Measure DataDAM's two loss terms and their gradients at the images in this many fresh "
             "random networks, as one distillation iteration sees them; reads the real training "
             "data [default: 0, not measured].", show_default=False),
    class_name: str = typer.Option("0", "--class", "-c",
                                   help="Class of --attention and --evolution: a name, a unique "
                                        "prefix of one (MNIST: 3) or an index."),
    root: Path | None = ROOT,
    image_size: int | None = IMAGE_SIZE,
    seed: int = typer.Option(0, "--seed", help="Seed of the random networks of --attention and "
                                               "--balance and of their choice of real images."),
    device: str = DEVICE,
) -> None:
    """Describe a synthetic set and draw its images, loss curve, attention maps and evolution."""
    syn = SyntheticSet.load(synthetic)
    meta = syn.metadata
    console = Console()
    table = Table(show_header=False, title=str(synthetic))
    table.add_column()
    table.add_column(overflow="fold")  # a digest is one long word: fold it, never cut it
    cfg = settings_used(meta.get("method"), saved_settings(meta.get("config", {})))
    for key, value in [*syn.facts(),
                       ("snapshots", ", ".join(map(str, meta.get("snapshot_iterations") or [])) or "none"),
                       ("settings", ", ".join(f"{k}={v}" for k, v in cfg.items()
                                              if k not in ("method", "ipc", "seed")) or "none")]:
        table.add_row(key, str(value))
    console.print(table)
    from datadam import plots

    label = plots.class_index(syn, class_name) if attention or evolution else 0
    if out:
        syn.save_grid(out)
        typer.echo(f"wrote {out}")
    if folder:
        syn.export_folder(folder)
        typer.echo(f"wrote {folder}")
    if loss:
        history = meta.get("loss_history") or []
        if not history:
            raise ConfigError(f"{synthetic}: no loss history (method {meta.get('method')})")
        plots.plot_loss(history, loss, title=f"{syn.describe()} on {meta.get('dataset')}",
                        terms=syn.loss_terms)
        typer.echo(f"wrote {loss}")
    if evolution:
        plots.plot_evolution(syn, label, evolution)
        typer.echo(f"wrote {evolution}")
    if attention or balance:
        name = meta.get("dataset")
        if not name or name == "imported":
            what = "--attention" if attention else "--balance"
            raise ConfigError(f"{synthetic}: the set does not say its dataset, so {what} "
                              "cannot find the real images")
        options = dataset_options(image_size)
        if name != "mnist" and image_size is None and syn.image_shape[1] != 224:
            options["image_size"] = syn.image_shape[1]
        train = data.load(name, root, "train", **options)
    if attention:
        plots.plot_attention(syn, train, label, attention, seed=seed)
        typer.echo(f"wrote {attention}")
    if balance:
        print_balance(term_balance(syn, train, networks=balance, seed=seed, device=device), console)


def print_balance(balance: TermBalance, console: Console) -> None:
    table = Table("network", "attention", "last layer", "|grad attention|", "|grad last layer|",
                  "ratio", title="loss terms (weighted) and their gradients w.r.t. the images")
    for i, row in enumerate(balance.networks):
        table.add_row(str(i), f"{row['attention']:.4g}", f"{row['last_layer']:.4g}",
                      f"{row['attention_gradient']:.4g}", f"{row['last_layer_gradient']:.4g}",
                      f"{row['gradient_ratio']:.2f}")
    console.print(table)
    ratio = balance.summary()["gradient_ratio"]
    drives = "the attention term" if ratio > 1 else "the last-layer term"
    console.print(f"{drives} drives the images: its gradient is {max(ratio, 1 / ratio):.2f}x the "
                  f"other's (mean over {len(balance.networks)} networks)")


def report_command(
    run_dir: Path = typer.Argument(..., help="Folder with synthetic sets (.safetensors) and their "
                                             "`datadam evaluate --json` files."),
    out: Path | None = typer.Option(None, "--out", "-o", help="HTML file to write "
                                    "[default: RUN_DIR/report.html].", show_default=False),
    image_scale: int = typer.Option(3, "--image-scale", min=1, max=16,
                                    help="Enlarge the image grid this many times (nearest pixel)."),
) -> None:
    """Write one self-contained HTML page on a run (settings, curves, images, evaluation tables): images are embedded, so the page can be sent as it is."""
    from datadam.report import write_report

    path = write_report(run_dir, out, image_scale=image_scale)
    typer.echo(f"wrote {path}")


def convert_command(
    official: Path = typer.Argument(..., help="A .pt result of the official DataDAM/DC/DM code."),
    dataset: str = typer.Option(..., "--dataset", help="The dataset it was distilled from (mnist...)."),
    out: Path = typer.Option(..., "--out", "-o", help="Synthetic set to write (.safetensors)."),
    root: Path | None = ROOT,
    image_size: int | None = IMAGE_SIZE,
) -> None:
    """Import an official-code .pt file (read with weights_only=True) as a synthetic set."""
    test = data.load(dataset, root, "test", **dataset_options(image_size))
    syn = SyntheticSet.from_official(official, test.classes, test.mean, test.std)
    syn.metadata["dataset"] = dataset
    syn.save(out)
    typer.echo(f"wrote {out}: {len(syn)} images")
