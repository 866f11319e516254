"""``datadam distill``, ``evaluate``, ``show`` and ``convert``: make a synthetic set and judge it."""

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
    parse_list,
    parse_options,
)
from datadam.distill import DistillConfig, available_methods, distill
from datadam.distill.balance import TermBalance, term_balance
from datadam.distill.config import default_model, saved_settings
from datadam.distill.distributed import init_from_environment
from datadam.distill.multiformation import describe_ipc
from datadam.errors import ConfigError, Interrupted
from datadam.evaluate import (
    EvaluationResult,
    TrainConfig,
    compare_results,
    evaluate,
    evaluate_full_data,
    merge_results,
    read_report,
)
from datadam.monitor import TensorBoardLogger
from datadam.synthetic import SyntheticSet, write_json

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
            model=model, model_choices=choices, init=init, augmentation=augmentation, net_steps=net_steps, net_lr=net_lr,
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


def _test_split(syn: SyntheticSet, dataset: str | None, root: Path | None) -> data.ImageDataset:
    name = dataset or syn.metadata.get("dataset")
    if not name or name == "imported":
        raise ConfigError("the synthetic set does not say its dataset: pass --dataset")
    options = {}
    if name != "mnist" and syn.image_shape[1] != 224:
        options["image_size"] = syn.image_shape[1]
    return data.load(name, root, "test", **options), name, options


def _progress_text(in_progress: dict) -> str:
    return f"iteration {in_progress.get('iteration')} of {in_progress.get('iterations')}"


def print_evaluation(result: EvaluationResult, console: Console, title: str) -> None:
    with_auc = any("auc_mean" in s for s in result.summary.values())
    table = Table("model", "runs", "accuracy %", "balanced %", *(["AUC"] if with_auc else []),
                  "train s", title=title)
    for name, s in result.summary.items():
        auc = [f"{s['auc_mean']:.3f} ± {s['auc_std']:.3f}"] if with_auc else []
        table.add_row(name, str(len(result.runs[name])),
                      f"{100 * s['accuracy_mean']:.2f} ± {100 * s['accuracy_std']:.2f}",
                      f"{100 * s['balanced_accuracy_mean']:.2f} ± {100 * s['balanced_accuracy_std']:.2f}",
                      *auc, f"{s['train_seconds_mean']:.1f}")
    console.print(table)


def evaluate_command(
    ctx: typer.Context,
    synthetic: Path = typer.Argument(..., help="Synthetic set (.safetensors) to evaluate, or the "
                                           "checkpoint of a run in progress (S.ckpt.safetensors)."),
    models: str = typer.Option(
        "auto", "--models", help="Comma-separated networks, e.g. convnet3,alexnet,vgg11,resnet18 "
                                 "[auto: the ConvNet of the image size, convnet3 for MNIST]."),
    runs: int = typer.Option(5, "--runs", min=1, help="Fresh networks per model (mean ± std reported)."),
    epochs: int = typer.Option(1000, "--epochs", min=1, help="Training epochs (protocol: 1000)."),
    batch: int = typer.Option(256, "--batch", min=1, help="Training minibatch."),
    lr: float = typer.Option(0.01, "--lr", help="SGD learning rate (x0.1 at half the epochs)."),
    augmentation: str | None = typer.Option(None, "--augmentation",
                                            help="DSA during training [default: as distilled]."),
    full_data: bool = typer.Option(False, "--full-data", help="Also train on the whole training "
                                   "split (SGD, cosine, 20 epochs) for the upper bound and cost."),
    full_epochs: int = typer.Option(20, "--full-epochs", min=1, help="Epochs of the full-data run."),
    model_option: list[str] = typer.Option(
        [], "--model-option", help="Constructor option of every evaluated network: OPTION=VALUE, "
                                   "e.g. first_padding=3 (the old code's MNIST ConvNet) "
                                   "(repeatable) [default: the registry's network].",
        show_default=False),
    together: bool | None = typer.Option(
        None, "--together/--one-at-a-time", show_default=False,
        help="Train a model's runs at once as one stacked network (torch.func.vmap; the same "
             "weights up to rounding) or one after another [default: together on a GPU, for "
             "models without BatchNorm or dropout]."),
    dataset: str | None = typer.Option(None, "--dataset", help="Test dataset [default: the set's own]."),
    at_iteration: int | None = typer.Option(
        None, "--at-iteration", min=0, help="Evaluate the images as they were after N iterations "
                                            "(a snapshot of distill --snapshot-every) [default: the final images]."),
    json_out: Path | None = typer.Option(None, "--json", help="Write every number and setting to this JSON file, "
                                         "updated after every network [default: not written]."),
    resume: bool = typer.Option(False, "--resume", help="Keep the networks already in --json (an evaluation "
                                "stopped by Ctrl-C, or one with fewer --runs) and train only the others."),
    root: Path | None = ROOT,
    device: str = DEVICE,
    seed: int = SEED,
    progress: bool | None = PROGRESS,
) -> None:
    """Train fresh networks on a synthetic set and test them on the real test split.

    With --json the file is rewritten after every network, so Ctrl-C loses only the
    network in training: the same command with --resume trains the rest, and the result
    equals an uninterrupted evaluation.
    """
    done = _earlier_evaluation(json_out, resume)
    syn = SyntheticSet.load(synthetic)
    if at_iteration is not None:
        syn = syn.at_iteration(at_iteration)
    test, name, options = _test_split(syn, dataset, root)
    train_cfg = TrainConfig(epochs=epochs, batch=batch, lr=lr, augmentation=augmentation)
    names = [default_model(tuple(syn.image_shape[1:]))] if models == "auto" else parse_list(models)
    net_options = parse_options(model_option)

    def report_of(result: EvaluationResult) -> dict:
        report = result.to_dict()
        report["synthetic"] = synthetic.name  # lets `datadam report` pair it with its set
        # the options as resolved (defaults included): enough to run the same evaluation again
        report["cli_options"] = {k: str(v) if isinstance(v, Path) else v for k, v in ctx.params.items()}
        return report

    def save_partial(result: EvaluationResult) -> None:
        trained = sum(len(r) for r in result.runs.values())
        if trained < runs * len(names) or full_data:  # the full-data run comes last
            write_json(json_out, {**report_of(result), "in_progress": {"networks": trained,
                                                                       "of": runs * len(names)}})

    try:
        result = evaluate(syn, test, names, runs=runs, train=train_cfg, seed=seed, device=device,
                          progress=progress, together=together, done=done,
                          on_network=save_partial if json_out else None,
                          model_options={name: net_options for name in names} if net_options else None)
    except KeyboardInterrupt:
        where = (f"the finished networks are in {json_out}; the same command with --resume trains the rest"
                 if json_out else "nothing was saved (--json keeps every finished network)")
        raise Interrupted(f"evaluation interrupted: {where}") from None
    console = Console()
    at = "" if at_iteration is None else f" at iteration {at_iteration}"
    if at_iteration is None and "in_progress" in syn.metadata:
        at = f" (run in progress: {_progress_text(syn.metadata['in_progress'])})"
    print_evaluation(result, console, f"{synthetic.name}{at}: {syn.metadata.get('method')} "
                                      f"{syn.describe_ipc()} on {name} test ({len(test)} images)")
    report = report_of(result)
    if full_data:
        train = data.load(name, root, "train", **options)
        first = next(iter(result.summary))
        full = evaluate_full_data(train, test, first, seed=seed, device=device,
                                  progress=progress, model_options=net_options,
                                  train=TrainConfig(epochs=full_epochs, schedule="cosine",
                                                    augmentation="none"))
        report["full_data"] = full
        syn_s = result.summary[first]
        console.print(
            f"full data ({len(train)} images, {full_epochs} epochs): {100 * full['accuracy']:.2f}% in "
            f"{full['train_seconds']:.1f} s, {full['train_flops'] / 1e12:.2f} TFLOP | synthetic "
            f"({len(syn)} images): {100 * syn_s['accuracy_mean']:.2f}% in "
            f"{syn_s['train_seconds_mean']:.1f} s, {syn_s['train_flops'] / 1e12:.2f} TFLOP "
            f"({full['train_flops'] / max(syn_s['train_flops'], 1):.1f}x fewer FLOPs)")
    if json_out:
        write_json(json_out, report)
        typer.echo(f"wrote {json_out}")


def _earlier_evaluation(json_out: Path | None, resume: bool) -> EvaluationResult | None:
    """The evaluation that --resume goes on from; refuses to overwrite an unfinished one."""
    if resume and json_out is None:
        raise ConfigError("--resume goes on from the networks in --json: give the file")
    if json_out is None or not json_out.exists():
        if resume:
            raise ConfigError(f"cannot resume: no evaluation at {json_out}")
        return None
    if resume:
        return EvaluationResult.load(json_out)
    try:
        earlier = read_report(json_out)
    except ConfigError:
        return None  # not an evaluation of ours: --json overwrites it, as any output
    unfinished = earlier.get("in_progress") if isinstance(earlier, dict) else None
    if unfinished:
        raise ConfigError(f"{json_out} holds an unfinished evaluation ({unfinished.get('networks')} of "
                          f"{unfinished.get('of')} networks): add --resume to go on, or remove the file")
    return None


def merge_evaluations_command(
    parts: list[Path] = typer.Argument(..., help="`datadam evaluate --json` files of one set, "
                                                 "evaluated apart (e.g. --runs 1 with seeds 0..4)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the merged result to this JSON file "
                                         "[default: only printed]."),
) -> None:
    """Merge evaluations of one set that were run apart (other seeds, cores or machines) into one result.

    The protocol's networks train one after another; to use several cores or machines,
    evaluate with --runs 1 and a different --seed in each process and merge the JSON
    files: the table and the file then hold every network and the mean ± std over all of
    them. Parts of another set, test split, model list or training protocol, and a
    network given twice, are refused. Full-data runs (--full-data) are not merged.
    """
    reports = [read_report(path) for path in parts]
    merged = merge_results([EvaluationResult.from_dict(report, source=path)
                            for path, report in zip(parts, reports)])
    names = {report.get("synthetic") for report in reports}
    set_name = names.pop() if len(names) == 1 else None
    s = merged.settings
    syn = s.get("synthetic") or {}
    size = describe_ipc(s.get("ipc"), syn.get("config"))
    print_evaluation(merged, Console(), f"{set_name or 'synthetic set'}: {syn.get('method')} {size} "
                                        f"on {s.get('test_dataset')} test ({s.get('test_images')} images), "
                                        f"{len(parts)} evaluations merged (seeds {', '.join(map(str, s['seed']))})")
    if json_out:
        report = merged.to_dict()
        if set_name:
            report["synthetic"] = set_name
        # each part's command options, so that every network can be trained again
        report["parts"] = [{"file": str(path), "cli_options": part.get("cli_options")}
                           for path, part in zip(parts, reports)]
        write_json(json_out, report)
        typer.echo(f"wrote {json_out}")


def _describe_evaluated_set(path: Path, result: EvaluationResult) -> str:
    syn = result.settings.get("synthetic") or {}
    return (f"{path.name}: {syn.get('method')} {describe_ipc(result.settings.get('ipc'), syn.get('config'))}, "
            f"{syn.get('iterations_done')} iterations")


def compare_evaluations_command(
    first: Path = typer.Argument(..., help="`datadam evaluate --json` (or merge-evaluations) file of set A."),
    second: Path = typer.Argument(..., help="The same of set B, evaluated with the same --seed."),
    metric: str = typer.Option("accuracy", "--metric", help="accuracy, balanced_accuracy or auc."),
    confidence: float = typer.Option(0.95, "--confidence", min=0.5, max=0.999,
                                     help="Level of the interval of the mean difference."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the comparison, every pair included, "
                                         "to this JSON file [default: only printed]."),
    plot: Path | None = typer.Option(None, "--plot", help="Draw every pair of networks to this PNG, one "
                                     "line from A to B each [default: not drawn]."),
) -> None:
    """Compare two synthetic sets network by network: B minus A, with a confidence interval.

    Evaluations with the same --seed train network i of either set from the same initial
    weights, minibatch order and augmentation, so the two differ only by the images. The
    table gives both means over the paired networks, the mean and std of the differences,
    the interval of the mean difference (Student's t), the paired t-test's p and on how
    many networks each set did better. Evaluations of another test split or protocol are
    refused; networks without a twin are left out and counted.
    """
    a, b = EvaluationResult.load(first), EvaluationResult.load(second)
    comparison = compare_results(a, b, metric=metric, confidence=confidence)
    table = Table("model", "pairs", "A %", "B %", "B - A", f"{100 * confidence:g}% interval", "p", "B ahead",
                  title=f"{metric}, network by network\nA = {_describe_evaluated_set(first, a)}\n"
                        f"B = {_describe_evaluated_set(second, b)}")
    for name, c in comparison.items():
        interval = (f"[{100 * c['interval'][0]:+.2f}, {100 * c['interval'][1]:+.2f}]"
                    if c["interval"] else "-")
        table.add_row(name, str(c["pairs"]), f"{100 * c['a_mean']:.2f}", f"{100 * c['b_mean']:.2f}",
                      f"{100 * c['difference_mean']:+.2f} ± {100 * c['difference_std']:.2f}", interval,
                      "-" if c["p_value"] is None else f"{c['p_value']:.2g}",
                      f"{c['b_ahead']} of {c['pairs']}" + (f" ({c['ties']} tied)" if c["ties"] else ""))
    Console().print(table)
    unpaired = sum(c["unpaired"] for c in comparison.values())
    if unpaired:
        typer.echo(f"{unpaired} network(s) without a twin in the other evaluation were left out")
    if json_out:
        write_json(json_out, {"a": str(first), "b": str(second), "models": comparison})
        typer.echo(f"wrote {json_out}")
    if plot:
        from datadam.plots import plot_comparison

        def label(path: Path, result: EvaluationResult) -> str:
            syn = result.settings.get("synthetic") or {}
            return f"{syn.get('method')}\n{path.stem}"

        typer.echo(f"wrote {plot_comparison(comparison, plot, label(first, a), label(second, b))}")


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
    cfg = saved_settings(meta.get("config", {}))
    for key, value in [("method", meta.get("method")), ("dataset", meta.get("dataset")),
                       ("images", f"{len(syn)} ({syn.describe_ipc()}, {len(syn.classes)} classes)"),
                       ("shape", "x".join(map(str, syn.image_shape))),
                       ("iterations", meta.get("iterations_done") if "in_progress" not in meta
                        else f"{_progress_text(meta['in_progress'])} (a checkpoint of a run in progress)"),
                       ("seed", meta.get("seed")),
                       ("wall time", f"{meta.get('wall_time_s', 0):.1f} s"),
                       ("snapshots", ", ".join(map(str, meta.get("snapshot_iterations") or [])) or "none"),
                       *([("loss terms", syn.describe_loss_terms())] if syn.loss_terms else []),
                       ("settings", ", ".join(f"{k}={v}" for k, v in cfg.items()
                                              if k not in ("method", "ipc", "seed")))]:
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
        plots.plot_loss(history, loss, title=f"{meta.get('method')} {syn.describe_ipc()} on {meta.get('dataset')}",
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
