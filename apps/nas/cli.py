"""``datadam nas``: architecture search and proxy-quality studies from the command line.

Imports only typer and the core at module level: NNI loads inside the commands, so
``datadam --help`` stays fast and a missing extra is a one-line error.

The issue sketched ``datadam nas mnist ...`` for the search; a dataset name cannot
share a level with the ``study`` command, so the search is ``datadam nas search mnist``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from datadam.apps.nas.settings import (
    PROXY_NETWORKS,
    RANDOM_IPC,
    STRATEGIES,
    TRIALS,
    ProxySettings,
    SearchSettings,
    SpaceSettings,
    StudySettings,
    TrialSettings,
)
from datadam.cli.options import (
    CheckpointEvery,
    Device,
    Force,
    ImageSize,
    Progress,
    Resume,
    Root,
    Seed,
    TrainPrecision,
    checkpoint_path,
    dataset_options,
    load_data,
    parse_list,
    setting_option,
)
from datadam.errors import ConfigError
from datadam.outputs import (
    Output,
    check_checkpoint,
    check_outputs,
    command_provenance,
    holds_provenance,
    stamp_provenance,
)
from datadam.training_settings import TrainSettings

app = typer.Typer(help="Neural architecture search with NNI, a condensed set as the proxy.",
                  no_args_is_help=True)

# Every option of a setting takes its default, bounds, help and placeholder from the
# setting's field (datadam.apps.nas.settings), where the library takes its defaults.
Dataset = Annotated[str, typer.Argument(help="Dataset to search on: mnist, mhist or folder.")]
Validation = setting_option(TrialSettings, "validation")
Ipc = setting_option(TrialSettings, "ipc")
Lr = setting_option(TrialSettings, "lr")


def _listed(values: tuple[Any, ...]) -> str:
    return ",".join(map(str, values))


# the search space's choices, each given as a comma-separated list
_choices = partial(setting_option, SpaceSettings, given_as=str)
Depths, Widths, Norms = _choices("depth"), _choices("width"), _choices("norm")
Activations, Poolings = _choices("activation"), _choices("pooling")
DEPTHS, WIDTHS, NORMS = _listed(SpaceSettings.depth), _listed(SpaceSettings.width), _listed(SpaceSettings.norm)
ACTIVATIONS, POOLINGS = _listed(SpaceSettings.activation), _listed(SpaceSettings.pooling)

# Options of the search alone
_search = partial(setting_option, SearchSettings)
Strategy, Trials, Engine, Reports = _search("strategy"), _search("trials"), _search("engine"), _search("reports")
Population, SampleSize = _search("population"), _search("sample_size")
SearchEpochs, SearchBatch = _search("epochs"), _search("batch")
Port = _search("port")

# Options of the study alone
_study = partial(setting_option, StudySettings)
Archs, TopK = _study("archs"), _study("top_k")
Epochs, FullEpochs, Batch, FullBatch = _study("epochs"), _study("full_epochs"), _study("batch"), _study("full_batch")

# Options of the proxy's distillation alone
_proxy = partial(setting_option, ProxySettings)
ProxyIpc, Iterations, Networks = _proxy("ipc"), _proxy("iterations"), _proxy("networks")


def _space(depths: str, widths: str, norms: str, activations: str, poolings: str):
    from datadam.apps.nas.architecture import SearchSpace

    def ints(name: str, value: str) -> tuple[int, ...]:
        try:
            return tuple(int(v) for v in parse_list(value))
        except ValueError:
            raise ConfigError(f"{name} must be comma-separated integers, not {value!r}") from None

    return SearchSpace(depth=ints("--depths", depths), width=ints("--widths", widths),
                       norm=tuple(parse_list(norms)), activation=tuple(parse_list(activations)),
                       pooling=tuple(parse_list(poolings)))


def _percent(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


@app.command("distill")
def distill_command(
    dataset: Annotated[str, typer.Argument(help="Dataset to condense: mnist, mhist or folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="PATH", help="Proxy to write (.safetensors).")],
    ipc: ProxyIpc = ProxySettings.ipc,
    iterations: Iterations = ProxySettings.iterations,
    networks: Networks = ProxySettings.networks,
    validation: Validation = TrialSettings.validation,
    depths: Depths = DEPTHS, widths: Widths = WIDTHS, norms: Norms = NORMS, activations: Activations = ACTIVATIONS,
    poolings: Poolings = POOLINGS,
    checkpoint_every: CheckpointEvery = 500,
    resume: Resume = False,
    root: Root = None,
    image_size: ImageSize = None,
    device: Device = "auto",
    seed: Seed = 0,
    progress: Progress = None,
    force: Force = False,
) -> None:
    """Condense DATASET into a proxy for `nas search` and `nas study`.

    DataDAM on the training images left after the validation split (the same --validation and --seed as the search or study that uses it), so the proxy never sees an image candidates are scored on. A checkpoint (OUT with .ckpt before the suffix) is written every --checkpoint-every iterations and on Ctrl-C; --resume continues from it.
    """
    if networks not in PROXY_NETWORKS:  # before any data is read
        raise ConfigError(f"--networks must be {' or '.join(PROXY_NETWORKS)}, not {networks!r}")
    from datadam.apps.nas.proxy import distill_proxy

    space = _space(depths, widths, norms, activations, poolings)
    checkpoint = checkpoint_path(out)
    _check_proxy_outputs(out, checkpoint, force=force, resume=resume)
    train = load_data(dataset, root, "train", **dataset_options(image_size))
    syn = distill_proxy(data=train, ipc=ipc, iterations=iterations, space=space, networks=networks,
                        validation=validation, seed=seed, device=device, progress=progress,
                        checkpoint=checkpoint, resume=resume, checkpoint_every=checkpoint_every)
    syn.save(out)
    checkpoint.unlink(missing_ok=True)
    meta = syn.metadata
    typer.echo(f"wrote {out}: {len(syn)} images ({ipc} per class) condensed from {meta['dataset_images']} "
               f"training images ({validation} held out for validation), {meta['iterations_done']} "
               f"iterations, networks: {meta['config']['model']}"
               + (" with choices drawn from the space" if meta["config"]["model_choices"] else ""))


def _check_proxy_outputs(out: Path, checkpoint: Path, force: bool, resume: bool) -> None:
    """A proxy is never written over another file, nor a run's checkpoint started over,
    without --force (a proxy's settings are known only once its data is split, so an
    existing OUT is always refused)."""
    check_outputs([Output(out, "--out", "proxy", (".safetensors",))], force=force)
    check_checkpoint(checkpoint, resume, force)


def _check_results_folder(ctx: typer.Context, out: Path, name: str, force: bool) -> str:
    """The provenance of this command's results; refuses an OUT whose ``name`` holds the
    results of other inputs (the same command again may write over its own)."""
    token = command_provenance(ctx.command.name or "", ctx.params)
    check_outputs([Output(out, "--out", "results folder", folder=True)], force=True)  # may hold runs
    check_outputs([Output(out / name, "--out", f"results of this {ctx.command.name}", (".json",),
                          lambda path: holds_provenance(path, token))], force=force)
    return token


@app.command("search")
def search_command(
    ctx: typer.Context,
    dataset: Dataset,
    proxy: Annotated[str, typer.Option("--proxy", metavar="PROXY", help="What every candidate trains on: a synthetic set (.safetensors), 'random' or 'random:K' (real images, --ipc per class; K picks another draw) or 'full'.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Output folder (search.json and NNI's files).")],
    strategy: Strategy = SearchSettings.strategy,
    trials: Trials = SearchSettings.trials,
    population: Population = SearchSettings.population,
    sample_size: SampleSize = SearchSettings.sample_size,
    engine: Engine = SearchSettings.engine,
    port: Port = SearchSettings.port,
    epochs: SearchEpochs = SearchSettings.epochs,
    batch: SearchBatch = SearchSettings.batch,
    lr: Lr = TrialSettings.lr,
    precision: TrainPrecision = TrainSettings.precision,
    reports: Reports = SearchSettings.reports,
    validation: Validation = TrialSettings.validation,
    ipc: Ipc = TrialSettings.ipc,
    depths: Depths = DEPTHS, widths: Widths = WIDTHS, norms: Norms = NORMS, activations: Activations = ACTIVATIONS,
    poolings: Poolings = POOLINGS,
    root: Root = None,
    image_size: ImageSize = None,
    device: Device = "auto",
    seed: Seed = 0,
    progress: Progress = None,
    force: Force = False,
) -> None:
    """Search the ConvNet space for the architecture a proxy rates best (NNI, in-process by default)."""
    token = _check_results_folder(ctx, out, "search.json", force)
    from datadam.apps.nas._nni import import_nni

    import_nni()
    from datadam.apps.nas.architecture_search import search

    if strategy not in STRATEGIES:  # before any data is read
        raise ConfigError(f"unknown strategy {strategy!r}; available: {', '.join(STRATEGIES)}")
    space = _space(depths, widths, norms, activations, poolings)
    if trials is None and strategy != "grid":
        trials = TRIALS
    typer.echo(f"space: {space.describe()}")
    with _trial_progress(progress, strategy, trials or space.size) as on_trial:
        result = search(dataset, proxy, out, strategy=strategy, trials=trials, space=space,
                        train=_search_training(lr, precision, epochs, batch), validation=validation,
                        ipc=ipc or RANDOM_IPC, reports=reports, seed=seed, root=root,
                        dataset_options=dataset_options(image_size), device=device, engine=engine,
                        port=port, population=population, sample_size=sample_size, on_trial=on_trial)
    stamp_provenance(out / "search.json", token)
    b = result.best
    typer.echo(f"best of {len(result.trials)} trials: {b['key']} at {_percent(b['accuracy'])} validation "
               f"accuracy; wrote {out / 'search.json'}")


def _search_training(lr: float, precision: str, epochs: int | None, batch: int | None) -> dict[str, Any]:
    """The training settings a search's options change (epochs and batch: only when given,
    their defaults depend on the proxy)."""
    train: dict[str, Any] = {"lr": lr, "precision": precision}
    if epochs is not None:
        train["epochs"] = epochs
    if batch is not None:
        train["batch"] = batch
    return train


@contextmanager
def _trial_progress(progress: bool | None, strategy: str, total: int) -> Iterator[Callable[[dict[str, Any]], None]]:
    """A search's progress: yields the callback of each finished trial, which advances a
    bar with the best accuracy so far (one line per trial without a bar)."""
    from datadam.progress import progress_bar

    bar = progress_bar(progress)
    best: list[float] = []
    with bar:
        task = bar.add_task(f"{strategy} search", total=total)

        def on_trial(record: dict[str, Any]) -> None:
            best.append(max(record["accuracy"], best[-1] if best else 0.0))
            bar.advance(task)
            bar.update(task, description=f"{strategy} search, best {_percent(best[-1])}")
            if bar.disable:
                typer.echo(f"trial {len(best)}/{total}: {record['key']} {_percent(record['accuracy'])} "
                           f"({record['seconds']:.1f} s)")

        yield on_trial


@app.command("study")
def study_command(
    ctx: typer.Context,
    dataset: Dataset,
    proxies: Annotated[str, typer.Option("--proxies", metavar="PROXIES", help="Comma-separated proxies to judge: synthetic sets (.safetensors) and/or 'random' (real images, as many per class; random:K is the K-th further random draw, to see how much random subsets vary).")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Output folder: study.json, study.md, study_scatter.png.")],
    archs: Archs = StudySettings.archs,
    cache: Annotated[Path | None, typer.Option("--cache", metavar="PATH", show_default="OUT/full_data_cache.json", help="Full-data results file, reused across studies.")] = None,
    top_k: TopK = StudySettings.top_k,
    epochs: Epochs = StudySettings.epochs,
    full_epochs: FullEpochs = StudySettings.full_epochs,
    batch: Batch = StudySettings.batch,
    full_batch: FullBatch = StudySettings.full_batch,
    lr: Lr = TrialSettings.lr,
    precision: TrainPrecision = TrainSettings.precision,
    validation: Validation = TrialSettings.validation,
    ipc: Ipc = TrialSettings.ipc,
    depths: Depths = DEPTHS, widths: Widths = WIDTHS, norms: Norms = NORMS, activations: Activations = ACTIVATIONS,
    poolings: Poolings = POOLINGS,
    root: Root = None,
    image_size: ImageSize = None,
    device: Device = "auto",
    seed: Seed = 0,
    progress: Progress = None,
    force: Force = False,
) -> None:
    """How well each proxy ranks architectures against full-data training: Spearman, Kendall, top-k, time."""
    token = _check_results_folder(ctx, out, "study.json", force)
    from datadam.apps.nas._nni import import_nni

    import_nni()
    from datadam.apps.nas.rank_study import study

    names = parse_list(proxies)
    space = _space(depths, widths, norms, activations, poolings)
    typer.echo(f"space: {space.describe()}")
    with _step_progress(progress, archs * (1 + len(names))) as on_step:
        result = study(dataset, names, archs=archs, space=space,
                       proxy_train={"epochs": epochs, "batch": batch, "lr": lr, "precision": precision},
                       full_train={"epochs": full_epochs, "batch": full_batch, "lr": lr,
                                   "precision": precision},
                       validation=validation, ipc=ipc, top_k=top_k, seed=seed, root=root,
                       dataset_options=dataset_options(image_size), device=device,
                       cache=cache or out / "full_data_cache.json", on_step=on_step)
    table = _write_study(result, out, token)
    typer.echo(table.rstrip())
    typer.echo(f"wrote {out / 'study.json'}, {out / 'study.md'}, {out / 'study_scatter.png'}")


@contextmanager
def _step_progress(progress: bool | None, total: int) -> Iterator[Callable[[str, dict[str, Any]], None]]:
    """A study's progress: yields the callback of each trained network, which advances a
    bar (one line per network without a bar)."""
    from datadam.progress import progress_bar

    bar = progress_bar(progress)
    with bar:
        task = bar.add_task("study", total=total)

        def on_step(proxy: str, row: dict[str, Any]) -> None:
            bar.advance(task)
            bar.update(task, description=f"study: {proxy}")
            if bar.disable:
                typer.echo(f"{proxy}: {row['key']} {_percent(row[proxy]['accuracy'])} "
                           f"({row[proxy]['seconds']:.1f} s)")

        yield on_step


def _write_study(result: Any, out: Path, token: str) -> str:
    """Write ``out``'s study.json (with the command's provenance ``token``), study.md and
    study_scatter.png; returns the Markdown table."""
    from datadam.apps.nas.study_report import markdown_table, plot_scatter
    from datadam.files import atomic_path

    out.mkdir(parents=True, exist_ok=True)
    result.save(out / "study.json")
    stamp_provenance(out / "study.json", token)
    table = markdown_table(result)
    with atomic_path(out / "study.md") as tmp:
        tmp.write_text(table)
    plot_scatter(result, out / "study_scatter.png")
    return table
