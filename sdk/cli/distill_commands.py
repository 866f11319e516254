"""``datadam distill``, ``show``, ``report`` and ``convert``: make a synthetic set and look at it.

Torch and the library load inside the commands, so that ``datadam --help`` starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from datadam.cli.options import (
    RUN_PANEL,
    CheckpointEvery,
    Device,
    Force,
    ImageSize,
    Progress,
    Resume,
    Root,
    checkpoint_path,
    dataset_options,
    load_data,
    with_settings,
)
from datadam.distill.config import DistillConfig
from datadam.errors import ConfigError
from datadam.files import datadam_metadata
from datadam.outputs import (
    Output,
    check_checkpoint,
    check_outputs,
    holds_provenance,
    provenance,
    same_synthetic_set,
)


@with_settings(DistillConfig, into="settings")
def distill_command(
    dataset: Annotated[str, typer.Argument(metavar="DATASET", help="Dataset to condense: mnist, mhist or folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="PATH", help="Synthetic set to write (.safetensors).")],
    settings: dict[str, Any],  # every option of DistillConfig's settings (with_settings)
    device: Device = "auto",
    force: Force = False,
    root: Root = None,
    image_size: ImageSize = None,
    checkpoint_every: CheckpointEvery = 500,
    resume: Resume = False,
    keep_checkpoint: Annotated[bool, typer.Option("--keep-checkpoint", metavar="", rich_help_panel=RUN_PANEL, help="Keep OUT's checkpoint after the run, so that --resume with more --iterations extends it later.")] = False,
    snapshot_every: Annotated[int, typer.Option("--snapshot-every", min=0, metavar="N", rich_help_panel=RUN_PANEL, help="Keep the images at iteration 0 and every N iterations inside OUT, for show --evolution (0 = none).")] = 0,
    tensorboard: Annotated[Path | None, typer.Option("--tensorboard", metavar="DIR", rich_help_panel=RUN_PANEL, show_default="no logging", help="Write TensorBoard events here (needs the tensorboard extra of datadam).")] = None,
    tensorboard_every: Annotated[int, typer.Option("--tensorboard-every", min=1, metavar="N", rich_help_panel=RUN_PANEL, help="Iterations between two image grids in TensorBoard.")] = 100,
    progress: Progress = None,
) -> None:
    """Condense DATASET into IPC synthetic images per class and save them to OUT.

    OUT is checked first and replaced only by a set of the same settings and data (else --force). Ctrl-C keeps a checkpoint (OUT.ckpt.safetensors) that --resume goes on from; --keep-checkpoint lets --resume --iterations M extend a finished run. Several processes: torchrun --nproc-per-node N -m datadam distill ...
    """
    checkpoint = checkpoint_path(out)
    # the paths themselves, before the data is read (a log folder may hold earlier runs)
    check_outputs([Output(out, "--out", "synthetic set", (".safetensors",)),
                   Output(tensorboard, "--tensorboard", "TensorBoard log", folder=True)
                   if tensorboard else None], force=True)
    cfg = DistillConfig(**settings)
    from datadam.distill import get_method

    get_method(cfg.method)
    train = load_data(dataset, root, "train", **dataset_options(image_size))
    resolved = cfg.resolve(train)
    _check_distill_outputs(out, checkpoint, resolved, train, force=force, resume=resume)
    syn = _run_distill(train, resolved, out, checkpoint, device=device, progress=progress,
                       checkpoint_every=checkpoint_every, resume=resume, snapshot_every=snapshot_every,
                       tensorboard=tensorboard, tensorboard_every=tensorboard_every)
    if syn is None:
        return  # not the main process of a torchrun group: rank 0 writes
    syn.save(out)
    if not keep_checkpoint:
        checkpoint.unlink(missing_ok=True)
    meta = syn.metadata
    final = f", final loss {meta['loss_history'][-1]:.4g}" if meta["loss_history"] else ""
    typer.echo(f"wrote {out}: {len(syn)} images ({syn.describe_ipc()}) by {meta['method']}, "
               f"{meta['iterations_done']} iterations in {meta['wall_time_s']:.1f} s{final}")


def _check_distill_outputs(out: Path, checkpoint: Path, cfg: DistillConfig, train, force: bool,
                           resume: bool) -> None:
    """OUT may be replaced by a set of the same settings and data (with --resume, of any
    iterations: the run is extended); a checkpoint left by another run is never started over
    without --force, for it holds that run's progress."""
    same = same_synthetic_set(cfg.to_dict(), train.name, len(train), ignore=("iterations",) if resume else ())
    check_outputs([Output(out, "--out", "synthetic set", (".safetensors",), same)], force=force)
    check_checkpoint(checkpoint, resume, force)


def _run_distill(train, cfg: DistillConfig, out: Path, checkpoint: Path, *, device: str,
                 progress: bool | None, checkpoint_every: int, resume: bool, snapshot_every: int,
                 tensorboard: Path | None, tensorboard_every: int):
    """The distillation, alone or as one process of a torchrun group; the set, or ``None``
    on a process that does not write it."""
    from datadam.distill import distill
    from datadam.distill.distributed import init_from_environment
    from datadam.monitor import TensorBoardLogger

    shard = init_from_environment(device)  # several processes under torchrun; else one
    # rank 0 alone logs; a missing tensorboard fails here, before the first iteration
    logger = (TensorBoardLogger(tensorboard, image_every=tensorboard_every)
              if tensorboard and shard.is_main else None)
    try:
        syn = distill(train, config=cfg, device=device, progress=progress, checkpoint=checkpoint,
                      checkpoint_every=checkpoint_every, resume=resume, snapshot_every=snapshot_every,
                      callbacks=[logger] if logger else ())
    finally:
        if logger:
            logger.close()
        shard.close()
    return syn if shard.is_main else None


def show_command(
    synthetic: Annotated[Path, typer.Argument(metavar="SET", help="Synthetic set (.safetensors) or the checkpoint of a run in progress.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", metavar="PATH", show_default="not drawn", help="Draw the images, one row per class, to this picture (.png, .jpg, .pdf or .svg).")] = None,
    folder: Annotated[Path | None, typer.Option("--folder", metavar="DIR", show_default="not exported", help="Export the images as an ImageFolder tree of PNGs here.")] = None,
    loss: Annotated[Path | None, typer.Option("--loss", metavar="PATH", show_default="not drawn", help="Plot the loss curve to this picture.")] = None,
    attention: Annotated[Path | None, typer.Option("--attention", metavar="PATH", show_default="not drawn", help="Draw the attention maps of --class, real vs synthetic, in a fresh random network to this picture; reads the real training data.")] = None,
    evolution: Annotated[Path | None, typer.Option("--evolution", metavar="PATH", show_default="not drawn", help="Draw --class's images over the iterations to this picture (needs a set distilled with --snapshot-every).")] = None,
    balance: Annotated[int, typer.Option("--balance", min=0, metavar="N", show_default="0, not measured", help="Measure DataDAM's two loss terms and their gradients at the images in N fresh random networks; reads the real training data.")] = 0,
    class_name: Annotated[str, typer.Option("--class", "-c", metavar="CLASS", help="Class of --attention and --evolution: a name, a unique prefix of one (MNIST: 3) or an index.")] = "0",
    root: Root = None,
    image_size: ImageSize = None,
    seed: Annotated[int, typer.Option("--seed", min=0, metavar="N", help="Seed of the random networks of --attention and --balance and of their choice of real images.")] = 0,
    device: Device = "auto",
    force: Force = False,
) -> None:
    """Describe a synthetic set and draw its images, loss curve, attention maps and evolution."""
    figures = {"--out": out, "--loss": loss, "--attention": attention, "--evolution": evolution}
    outputs = [Output(folder, "--folder", "image folder", folder=True) if folder else None]
    check_outputs([*outputs, *(Output.figure(path, option, "picture", "") for option, path in figures.items()
                               if path)], force=True)
    from rich.console import Console

    from datadam.synthetic import SyntheticSet

    syn = SyntheticSet.load(synthetic)
    digest = syn.sha256()
    token = {option: provenance(option, set=digest, cls=class_name, seed=seed) for option in figures}
    check_outputs([*outputs, *(Output.figure(path, option, "picture of this set", token[option])
                               for option, path in figures.items() if path)], force=force)
    console = Console()
    _print_facts(syn, synthetic, console)
    from datadam import plots

    label = plots.class_index(syn, class_name) if attention or evolution else 0
    if out:
        typer.echo(f"wrote {syn.save_grid(out, provenance=token['--out'])}")
    if folder:
        typer.echo(f"wrote {syn.export_folder(folder)}")
    if loss:
        history = syn.metadata.get("loss_history") or []
        if not history:
            raise ConfigError(f"{synthetic}: no loss history (method {syn.metadata.get('method')})")
        plots.plot_loss(history, loss, title=f"{syn.describe()} on {syn.metadata.get('dataset')}",
                        terms=syn.loss_terms, provenance=token["--loss"])
        typer.echo(f"wrote {loss}")
    if evolution:
        plots.plot_evolution(syn, label, evolution, provenance=token["--evolution"])
        typer.echo(f"wrote {evolution}")
    if attention or balance:
        train = _real_images_of(syn, synthetic, "--attention" if attention else "--balance", root, image_size)
    if attention:
        plots.plot_attention(syn, train, label, attention, seed=seed, provenance=token["--attention"])
        typer.echo(f"wrote {attention}")
    if balance:
        from datadam.distill.balance import term_balance

        print_balance(term_balance(syn, train, networks=balance, seed=seed, device=device), console)


def _print_facts(syn, path: Path, console) -> None:
    from rich.table import Table

    from datadam.distill.methods import settings_used

    meta = syn.metadata
    table = Table(show_header=False, title=str(path))
    table.add_column()
    table.add_column(overflow="fold")  # a digest is one long word: fold it, never cut it
    cfg = settings_used(meta.get("method"), meta.get("config") or {})
    for key, value in [*syn.facts(),
                       ("snapshots", ", ".join(map(str, meta.get("snapshot_iterations") or [])) or "none"),
                       ("settings", ", ".join(f"{k}={v}" for k, v in cfg.items()
                                              if k not in ("method", "ipc", "seed")) or "none")]:
        table.add_row(key, str(value))
    console.print(table)


def _real_images_of(syn, path: Path, option: str, root: Path | None, image_size: int | None):
    """The real training images a set was distilled from, for the pictures that need them."""
    name = syn.metadata.get("dataset")
    if not name or name == "imported":
        raise ConfigError(f"{path}: the set does not say its dataset, so {option} "
                          "cannot find the real images")
    options = dataset_options(image_size)
    if name != "mnist" and image_size is None and syn.image_shape[1] != 224:
        options["image_size"] = syn.image_shape[1]
    return load_data(name, root, "train", **options)


def print_balance(balance, console) -> None:
    """The table of :func:`datadam.distill.balance.term_balance`'s :class:`TermBalance`."""
    from rich.table import Table

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
    run_dir: Annotated[Path, typer.Argument(metavar="DIR", help="Folder with synthetic sets (.safetensors) and their `datadam evaluate --json` files.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", metavar="PATH", show_default="DIR/report.html", help="HTML file to write.")] = None,
    image_scale: Annotated[int, typer.Option("--image-scale", min=1, max=16, metavar="N", help="Enlarge the image grid N times (nearest pixel).")] = 3,
    force: Force = False,
) -> None:
    """Write one self-contained HTML page on a run (settings, curves, images, evaluations)."""
    from datadam.report import write_report

    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such folder")
    path = out if out is not None else run_dir / "report.html"
    token = provenance("report", folder=str(run_dir.resolve()))
    check_outputs([Output(path, "--out", "report of this folder", (".html", ".htm"),
                          lambda p: holds_provenance(p, token))], force=force)
    typer.echo(f"wrote {write_report(run_dir, path, image_scale=image_scale, provenance=token)}")


def convert_command(
    official: Annotated[Path, typer.Argument(metavar="FILE", help="A .pt result of the official DataDAM/DC/DM code.")],
    dataset: Annotated[str, typer.Option("--dataset", metavar="NAME", help="The dataset it was distilled from (mnist...).")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="PATH", help="Synthetic set to write (.safetensors).")],
    root: Root = None,
    image_size: ImageSize = None,
    force: Force = False,
) -> None:
    """Import an official-code .pt file (read with weights_only=True) as a synthetic set."""
    from datadam.synthetic import SyntheticSet

    def same(path: Path) -> bool:  # the same file imported again
        meta = datadam_metadata(path) or {}
        return meta.get("source_file") == str(official) and meta.get("dataset") == dataset

    check_outputs([Output(out, "--out", "synthetic set", (".safetensors",), same)], force=force)
    from datadam.files import OFFICIAL, identify, not_a
    from datadam.synthetic import SyntheticSetFormatError

    if identify(official) != OFFICIAL:  # before the data is read for its classes
        raise SyntheticSetFormatError(not_a(official, OFFICIAL))
    test = load_data(dataset, root, "test", **dataset_options(image_size))
    syn = SyntheticSet.from_official(official, test.classes, test.mean, test.std)
    syn.metadata["dataset"] = dataset
    syn.save(out)
    typer.echo(f"wrote {out}: {len(syn)} images")
