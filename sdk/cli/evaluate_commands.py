"""``datadam evaluate``, ``merge-evaluations`` and ``compare-evaluations``: judge a
synthetic set with the protocol, and two sets against each other."""

from __future__ import annotations

import functools
import glob
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from datadam.cli.options import (
    DATA_PANEL,
    RUN_PANEL,
    TRAINING_PANEL,
    Device,
    Force,
    Progress,
    Root,
    Seed,
    load_data,
    parse_list,
    parse_options,
    with_settings,
)
from datadam.errors import ConfigError, DatadamError, Interrupted
from datadam.evaluation_settings import FULL_DATA_TRAINING, EvaluationSettings
from datadam.outputs import FIGURE_SUFFIXES, Output, check_outputs, holds_provenance, provenance
from datadam.training_settings import TrainSettings


def _test_split(syn, dataset: str | None, root: Path | None) -> tuple:
    """``(test split, dataset name, load options)`` of the data a set was distilled from."""
    name = dataset or syn.metadata.get("dataset")
    if not name or name == "imported":
        raise ConfigError("the synthetic set does not say its dataset: pass --dataset")
    options = {}
    if name != "mnist" and syn.image_shape[1] != 224:
        options["image_size"] = syn.image_shape[1]
    return load_data(name, root, "test", **options), name, options


def print_evaluation(result, console, title: str) -> None:
    """The table of an :class:`~datadam.evaluate.EvaluationResult`."""
    from rich.table import Table

    with_auc = any("auc_mean" in s for s in result.summary.values())
    table = Table("model", "runs", "accuracy %", "balanced %", *(["AUC"] if with_auc else []),
                  "train s", "test s", title=title)
    for name, s in result.summary.items():
        auc = [f"{s['auc_mean']:.3f} ± {s['auc_std']:.3f}"] if with_auc else []
        # "-": a file written before testing was timed apart (its train s counted it too)
        test_s = f"{s['test_seconds_mean']:.1f}" if "test_seconds_mean" in s else "-"
        table.add_row(name, str(len(result.runs[name])),
                      f"{100 * s['accuracy_mean']:.2f} ± {100 * s['accuracy_std']:.2f}",
                      f"{100 * s['balanced_accuracy_mean']:.2f} ± {100 * s['balanced_accuracy_std']:.2f}",
                      *auc, f"{s['train_seconds_mean']:.1f}", test_s)
    console.print(table)


@with_settings(EvaluationSettings, into="protocol")
@with_settings(TrainSettings, into="train")
def evaluate_command(
    ctx: typer.Context,
    synthetic: Annotated[Path, typer.Argument(metavar="SET", help="Synthetic set (.safetensors) to evaluate, or the checkpoint of a run in progress (SET.ckpt.safetensors).")],
    *,
    models: Annotated[str, typer.Option("--models", metavar="NAMES", help="Comma-separated networks, e.g. convnet3,alexnet,vgg11,resnet18 (auto: the ConvNet of the image size, convnet3 for MNIST).")] = "auto",
    protocol: dict[str, Any],  # every option of EvaluationSettings (with_settings)
    train: dict[str, Any],  # every option of TrainSettings
    json_out: Annotated[Path | None, typer.Option("--json", metavar="PATH", show_default="not written", help="Write every number and setting to this JSON file, updated after every network.")] = None,
    seed: Seed = 0,
    device: Device = "auto",
    force: Force = False,
    model_option: Annotated[list[str] | None, typer.Option("--model-option", metavar="OPTION=VALUE", rich_help_panel=TRAINING_PANEL, show_default="the registry's network", help="Constructor option of every evaluated network, e.g. first_padding=3 (repeatable).")] = None,
    full_data: Annotated[bool, typer.Option("--full-data", metavar="", rich_help_panel=TRAINING_PANEL, help=f"Also train on the whole training split (SGD, cosine, {FULL_DATA_TRAINING['epochs']} epochs) for the upper bound and cost.")] = False,
    full_epochs: Annotated[int, typer.Option("--full-epochs", min=1, metavar="N", rich_help_panel=TRAINING_PANEL, help="Epochs of the full-data run.")] = FULL_DATA_TRAINING["epochs"],
    dataset: Annotated[str | None, typer.Option("--dataset", metavar="NAME", rich_help_panel=DATA_PANEL, show_default="the set's own", help="Test dataset.")] = None,
    root: Root = None,
    at_iteration: Annotated[int | None, typer.Option("--at-iteration", min=0, metavar="N", show_default="the final images", help="Evaluate the images as they were after N iterations (a snapshot of distill --snapshot-every).")] = None,
    resume: Annotated[bool, typer.Option("--resume", metavar="", rich_help_panel=RUN_PANEL, help="Keep the networks already in --json (an evaluation stopped by Ctrl-C, or one with fewer --runs) and train only the others.")] = False,
    progress: Progress = None,
) -> None:
    """Train fresh networks on a synthetic set and test them on the real test split.

    --json is checked before any work: an existing file is replaced only by the same evaluation (the same set, networks, protocol and seed), or with --force. It is rewritten after every network, and the network in training is saved every 50 epochs beside it (JSON's name with .network.pt; with --jobs, .network.MODEL.runN.pt), so Ctrl-C loses at most 50 epochs: the same command with --resume trains the rest, and the result equals an uninterrupted evaluation.
    """
    from rich.console import Console

    from datadam.evaluate import evaluate
    from datadam.files import write_json
    from datadam.training import TrainConfig

    done = _earlier_evaluation(json_out, resume)
    syn = _synthetic_set(synthetic, at_iteration)
    train_cfg = TrainConfig(**train)
    runs = protocol["runs"]
    names = _model_names(models, syn)
    net_options = parse_options(model_option or [])
    model_options = {name: net_options for name in names} if net_options else {}
    if json_out is not None and not resume:
        _check_same_evaluation(json_out, syn.sha256(), force, models=names, runs=runs, seed=seed,
                               train=asdict(train_cfg), model_options=model_options)
    test, name, options = _test_split(syn, dataset, root)
    report_of = functools.partial(_report, synthetic.name, ctx.params)
    try:
        result = evaluate(syn, test, names, **protocol, train=train_cfg, seed=seed, device=device,
                          progress=progress, done=done, model_options=model_options,
                          on_network=_partial_writer(json_out, report_of, runs * len(names), full_data),
                          network_checkpoint=network_checkpoint(json_out) if json_out else None)
    except KeyboardInterrupt:
        raise _interrupted(json_out) from None
    console = Console()
    print_evaluation(result, console, _evaluation_title(synthetic, syn, at_iteration, result, name, test))
    report = report_of(result)
    if full_data:
        report["full_data"] = _full_data_bound(syn, result, test, load_data(name, root, "train", **options),
                                               console, full_epochs, train_cfg, seed=seed, device=device,
                                               progress=progress, model_options=net_options)
    if json_out:
        write_json(json_out, report)
        typer.echo(f"wrote {json_out}")


def _synthetic_set(path: Path, at_iteration: int | None):
    """The set at ``path``, as it was after ``at_iteration`` iterations if given."""
    from datadam.synthetic import SyntheticSet

    syn = SyntheticSet.load(path)
    return syn if at_iteration is None else syn.at_iteration(at_iteration)


def _model_names(models: str, syn) -> list[str]:
    """The networks of --models: ``auto`` is the ConvNet of the set's image size."""
    from datadam.distill.config import default_model

    return [default_model(tuple(syn.image_shape[1:]))] if models == "auto" else parse_list(models)


def _report(set_name: str, params: dict[str, Any], result) -> dict:
    """The --json record of an evaluation ``result`` of the set ``set_name``."""
    report = result.to_dict()
    report["synthetic"] = set_name  # lets `datadam report` pair it with its set
    # the options as resolved (defaults included): enough to run the same evaluation again
    report["cli_options"] = {k: str(v) if isinstance(v, Path) else v for k, v in params.items()}
    return report


def _partial_writer(json_out: Path | None, report_of: Callable, networks: int,
                    full_data: bool) -> Callable | None:
    """The callback that rewrites --json after every network but the last (which the
    command writes with the full-data run, if any), marked ``in_progress``."""
    if json_out is None:
        return None
    from datadam.files import write_json

    def write(result) -> None:
        trained = sum(len(r) for r in result.runs.values())
        if trained < networks or full_data:  # the full-data run comes last
            write_json(json_out, {**report_of(result), "in_progress": {"networks": trained, "of": networks}})

    return write


def _evaluation_title(path: Path, syn, at_iteration: int | None, result, test_name: str, test) -> str:
    """The title of the table: the set (and when its images are from), the data, the
    departures of training from the protocol."""
    from datadam.training import describe_departures

    at = "" if at_iteration is None else f" at iteration {at_iteration}"
    if at_iteration is None and "in_progress" in syn.metadata:
        at = f" (run in progress: {syn.describe_progress()})"
    trained = "".join(f", {departure}" for departure in describe_departures(result.settings["train"]))
    return (f"{path.name}{at}: {result.describe_set()}, "
            f"on {test_name} test ({len(test)} images){trained}")


def _interrupted(json_out: Path | None) -> Interrupted:
    """What an evaluation stopped by Ctrl-C kept, and how to go on."""
    from datadam.training import TrainingCheckpoint

    every, saved = TrainingCheckpoint.every, []
    if json_out and json_out.exists():
        saved.append(f"the finished networks are in {json_out}")
    in_training = network_saves(json_out) if json_out else []
    if len(in_training) == 1:
        saved.append(f"the network in training is saved as of its last {every} epochs ({in_training[0].name})")
    elif in_training:
        saved.append(f"the {len(in_training)} networks in training are saved as of their last {every} epochs "
                     f"({', '.join(p.name for p in in_training)})")
    where = (" and ".join(saved) + "; the same command with --resume goes on" if saved
             else f"nothing was saved (--json keeps every finished network and every {every} epochs)")
    return Interrupted(f"evaluation interrupted: {where}")


def _full_data_bound(syn, result, test, train_data, console, epochs: int, protocol, **options) -> dict:
    """The full-data upper bound (:func:`datadam.evaluate.evaluate_full_data`) of the first
    model, ``epochs`` of cosine SGD without augmentation in ``protocol``'s precision and
    compilation, printed beside the synthetic set's accuracy, time and FLOPs."""
    from datadam.evaluate import evaluate_full_data
    from datadam.training import TrainConfig

    train = TrainConfig(**{**FULL_DATA_TRAINING, "epochs": epochs}, precision=protocol.precision,
                        compile=protocol.compile)
    first = next(iter(result.summary))
    full = evaluate_full_data(train_data, test, first, train=train, **options)
    syn_s = result.summary[first]
    console.print(
        f"full data ({len(train_data)} images, {epochs} epochs): {100 * full['accuracy']:.2f}% in "
        f"{full['train_seconds']:.1f} s, {full['train_flops'] / 1e12:.2f} TFLOP | synthetic "
        f"({len(syn)} images): {100 * syn_s['accuracy_mean']:.2f}% in "
        f"{syn_s['train_seconds_mean']:.1f} s, {syn_s['train_flops'] / 1e12:.2f} TFLOP "
        f"({full['train_flops'] / max(syn_s['train_flops'], 1):.1f}x fewer FLOPs)")
    return full


def network_checkpoint(json_out: Path) -> Path:
    """Where an evaluation written to ``json_out`` keeps the network in training."""
    return json_out.with_name(json_out.stem + ".network.pt")


def network_saves(json_out: Path) -> list[Path]:
    """The saves of networks in training that exist: ``.network.pt`` (one at a time) and
    ``.network.MODEL.runN.pt`` (several at once, --jobs)."""
    single = network_checkpoint(json_out)
    several = single.parent.glob(f"{glob.escape(single.stem)}.*.run*{single.suffix}")
    return sorted(path for path in [single, *several] if path.exists())


def _check_same_evaluation(json_out: Path, sha256: str, force: bool, **wanted) -> None:
    """Refuse to replace --json unless it holds a finished evaluation of the set ``sha256``
    with the ``wanted`` settings (models, runs, seed, training protocol, network options),
    or with --force."""
    from datadam.evaluate import EvaluationResult

    def same(path: Path) -> bool:
        try:
            settings = EvaluationResult.load(path).settings
        except DatadamError:
            return False
        return ((settings.get("synthetic") or {}).get("sha256") == sha256
                and all(settings.get(key) == value for key, value in wanted.items()))

    check_outputs([Output(json_out, "--json", "evaluation", (".json",), same)], force=force)


def _earlier_evaluation(json_out: Path | None, resume: bool):
    """The :class:`~datadam.evaluate.EvaluationResult` that --resume goes on from, after
    checking the path of --json itself; refuses to overwrite an unfinished one."""
    from datadam.evaluate import EvaluationResult, read_report

    if json_out is not None:  # before any work
        check_outputs([Output(json_out, "--json", "evaluation", (".json",))], force=True)
    if resume and json_out is None:
        raise ConfigError("--resume goes on from the networks in --json: give the file")
    if json_out is None or not json_out.exists():
        if resume and not network_saves(json_out):
            raise ConfigError(f"cannot resume: no evaluation at {json_out}")
        return None  # a resumed first network goes on from its own save
    if resume:
        return EvaluationResult.load(json_out)
    try:
        earlier = read_report(json_out)
    except ConfigError:
        return None  # not an evaluation: check_outputs refuses to replace it without --force
    unfinished = earlier.get("in_progress") if isinstance(earlier, dict) else None
    if unfinished:
        raise ConfigError(f"{json_out} holds an unfinished evaluation ({unfinished.get('networks')} of "
                          f"{unfinished.get('of')} networks): add --resume to go on, or remove the file")
    return None


def merge_evaluations_command(
    parts: Annotated[list[Path], typer.Argument(metavar="FILES", help="`datadam evaluate --json` files of one set, evaluated apart (e.g. --runs 1 with seeds 0..4).")],
    json_out: Annotated[Path | None, typer.Option("--json", metavar="PATH", show_default="only printed", help="Write the merged result to this JSON file.")] = None,
    replicates: Annotated[bool, typer.Option("--replicates", metavar="", help="The files evaluate sets that one recipe distilled with different --seed: merge them as replicate distillations.")] = False,
    force: Force = False,
) -> None:
    """Merge evaluations of one set run apart (other seeds, cores, machines), or of one recipe's replicates.

    The protocol's networks train one after another; to use several cores or machines,
    evaluate with --runs 1 and a different --seed in each process and merge the JSON
    files: the table and the file then hold every network and the mean ± std over all of
    them. Parts of another set, test split, model list or training protocol, and a
    network given twice, are refused. Full-data runs (--full-data) are not merged.

    With --replicates the files may evaluate sets that differ in their distillation
    seed only: the mean ± std is then over the networks of every distillation, and
    compare-evaluations counts each distillation as one sample.
    """
    from rich.console import Console

    from datadam.evaluate import EvaluationResult, merge_results, read_report
    from datadam.files import write_json

    token = provenance("merge", parts=[_digest(path) for path in parts], replicates=replicates)
    if json_out is not None:
        check_outputs([Output(json_out, "--json", "merged evaluation", (".json",),
                              lambda path: holds_provenance(path, token))], force=force)
    reports = [read_report(path) for path in parts]
    merged = merge_results([EvaluationResult.from_dict(report, source=path)
                            for path, report in zip(parts, reports)], replicates=replicates)
    names = sorted({report.get("synthetic") for report in reports if report.get("synthetic")})
    set_name = names[0] if len(names) == 1 else None
    s = merged.settings
    what = f"{len(s['distill_seeds'])} distillations" if replicates else set_name or "synthetic set"
    print_evaluation(merged, Console(), f"{what}: {merged.describe_set()}, "
                                        f"on {s.get('test_dataset')} test ({s.get('test_images')} images), "
                                        f"{len(parts)} evaluations merged (evaluation seeds {', '.join(map(str, s['seed']))})")
    if json_out:
        report = merged.to_dict()
        if replicates:
            report["synthetic"] = names
        elif set_name:
            report["synthetic"] = set_name
        # each part's command options, so that every network can be trained again
        report["parts"] = [{"file": str(path), "cli_options": part.get("cli_options")}
                           for path, part in zip(parts, reports)]
        report["provenance"] = token
        write_json(json_out, report)
        typer.echo(f"wrote {json_out}")


def compare_evaluations_command(
    first: Annotated[Path, typer.Argument(metavar="A", help="`datadam evaluate --json` (or merge-evaluations) file of set A.")],
    second: Annotated[Path, typer.Argument(metavar="B", help="The same of set B, evaluated with the same --seed.")],
    metric: Annotated[str, typer.Option("--metric", metavar="METRIC", help="accuracy, balanced_accuracy or auc.")] = "accuracy",
    confidence: Annotated[float, typer.Option("--confidence", min=0.5, max=0.999, metavar="LEVEL", help="Level of the interval of the mean difference.")] = 0.95,
    json_out: Annotated[Path | None, typer.Option("--json", metavar="PATH", show_default="only printed", help="Write the comparison, every pair included, to this JSON file.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", metavar="PATH", show_default="not drawn", help="Draw every pair of networks to this picture, one line from A to B each.")] = None,
    force: Force = False,
) -> None:
    """Compare two synthetic sets network by network: B minus A, with a confidence interval.

    Evaluations with the same --seed train network i of either set from the same initial
    weights, minibatch order and augmentation, so the two differ only by the images. The
    table gives both means over the paired networks, the mean and std of the differences,
    the interval of the mean difference (Student's t), the paired t-test's p and on how
    many networks each set did better. Evaluations of another test split are refused, and
    so are two sets under different protocols; one set evaluated under two protocols
    (--precision, --epochs, --lr...) pairs the same way and measures the protocol's
    effect. Networks without a twin are left out and counted.

    That compares two sets. To compare two recipes (methods, settings), distil each with
    several --seed values, evaluate every set with the same evaluation seeds, merge each
    recipe's evaluations with merge-evaluations --replicates and compare the two merged
    files: networks then pair by distillation seed too, and each distillation (the mean
    of its networks) is one sample of the interval and the test.
    """
    from rich.console import Console

    from datadam.evaluate import EvaluationResult, compare_results
    from datadam.files import write_json

    token = provenance("compare", a=_digest(first), b=_digest(second), metric=metric, confidence=confidence)
    check_outputs([Output(json_out, "--json", "comparison", (".json",), lambda p: holds_provenance(p, token))
                   if json_out else None,
                   Output(plot, "--plot", "comparison picture", FIGURE_SUFFIXES,
                          lambda p: holds_provenance(p, token)) if plot else None], force=force)
    a, b = EvaluationResult.load(first), EvaluationResult.load(second)
    comparison = compare_results(a, b, metric=metric, confidence=confidence)
    described = [f"{path.name}: {r.describe_set()}" for path, r in ((first, a), (second, b))]
    Console().print(_comparison_table(comparison, metric, confidence, *described))
    unpaired = sum(c["unpaired"] for c in comparison.values())
    if unpaired:
        typer.echo(f"{unpaired} network(s) without a twin in the other evaluation were left out")
    labels = [f"{(r.settings.get('synthetic') or {}).get('method')}\n{path.stem}"
              for path, r in ((first, a), (second, b))]
    if json_out:
        write_json(json_out, {"a": str(first), "b": str(second), "a_set": described[0], "b_set": described[1],
                              "labels": labels, "models": comparison, "provenance": token})
        typer.echo(f"wrote {json_out}")
    if plot:
        from datadam.plots import plot_comparison

        typer.echo(f"wrote {plot_comparison(comparison, plot, *labels, provenance=token)}")


def _comparison_table(comparison: dict, metric: str, confidence: float, set_a: str, set_b: str):
    """The rich table of :func:`datadam.evaluate.compare_results`, one row per model,
    titled with what was paired and the two sets (and their protocols if they differ)."""
    from rich.table import Table

    from datadam.evaluate import comparison_text

    first = next(iter(comparison.values()))
    by = ("network by network" if first["unit"] == "network"
          else "distillation by distillation (the mean of its networks)")
    title = f"{metric}, {by}\nA = {set_a}\nB = {set_b}"
    if first["protocol_differences"]:
        title += "\none set under two protocols, A vs B: " + ", ".join(first["protocol_differences"])
    table = Table("model", "pairs", "A %", "B %", "B - A", f"{100 * confidence:g}% interval", "p", "B ahead",
                  title=title)
    for name, c in comparison.items():
        text = comparison_text(c)
        table.add_row(name, text["pairs"], f"{100 * c['a_mean']:.2f}", f"{100 * c['b_mean']:.2f}",
                      text["difference"], text["interval"], text["p"],
                      text["ahead"] + (f" ({c['ties']} tied)" if c["ties"] else ""))
    return table


def _digest(path: Path) -> str:
    """The sha256 of a file's bytes (a missing file is left to the reader to report)."""
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return str(path)
