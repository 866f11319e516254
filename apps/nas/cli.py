"""``datadam nas``: architecture search and proxy-quality studies from the command line.

Imports only typer and the core at module level: NNI loads inside the commands, so
``datadam --help`` stays fast and a missing extra is a one-line error.

The issue sketched ``datadam nas mnist ...`` for the search; a dataset name cannot
share a level with the ``study`` command, so the search is ``datadam nas search mnist``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from datadam.apps.nas.budgets import FULL_BUDGET, PROXY_BUDGET
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
    positive,
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

app = typer.Typer(help="Neural architecture search with NNI, a condensed set as the proxy.",
                  no_args_is_help=True)

_DATASET = typer.Argument(..., help="Dataset to search on: mnist, mhist or folder.")
_DEPTHS = typer.Option("1,2,3", "--depths", metavar="DEPTHS", help="Comma-separated ConvNet depths to search.")
_WIDTHS = typer.Option("8,16,32", "--widths", metavar="WIDTHS", help="Comma-separated ConvNet widths (channels) to search.")
_NORMS = typer.Option("batchnorm,instancenorm,none", "--norms", metavar="NAMES",
                      help="Normalisations to search: batchnorm, instancenorm, groupnorm, layernorm, none.")
_ACTS = typer.Option("relu,gelu,sigmoid", "--activations", metavar="NAMES",
                     help="Activations to search: relu, leakyrelu, sigmoid, gelu.")
_POOLS = typer.Option("avgpooling,maxpooling", "--poolings", metavar="NAMES",
                      help="Poolings to search: avgpooling, maxpooling, none.")
_EPOCHS = typer.Option(PROXY_BUDGET["epochs"], "--epochs", metavar="N", min=1, help="Training epochs of every network on a small proxy.")
_FULL_EPOCHS = typer.Option(FULL_BUDGET["epochs"], "--full-epochs", metavar="N", min=1,
                            help="Training epochs of every network on the full data.")
_BATCH = typer.Option(PROXY_BUDGET["batch"], "--batch", metavar="N", min=1,
                      help="Training minibatch of every network on a small proxy.")
_FULL_BATCH = typer.Option(FULL_BUDGET["batch"], "--full-batch", metavar="N", min=1,
                           help="Training minibatch of every network on the full data.")
_LR = typer.Option(0.01, "--lr", metavar="LR", parser=positive, help="SGD learning rate (cosine annealing to 0).")
_VALIDATION = typer.Option(5000, "--validation", metavar="N", min=1,
                           help="Real training images held out to score every network.")
_IPC = typer.Option(None, "--ipc", metavar="N", min=1, help="Images per class of the random proxy.",
                    show_default="as many as the synthetic proxy, else 10")

# Options of the search alone
_SEARCH_PROXY = typer.Option(..., "--proxy", metavar="PROXY",
                             help="What every candidate trains on: a synthetic set (.safetensors), "
                                  "'random' or 'random:K' (real images, --ipc per class; K picks another "
                                  "draw) or 'full'.")
_ENGINE = typer.Option("sequential", "--engine", metavar="ENGINE",
                       help="sequential (trials in this process) or ts (NNI manager and web portal "
                            "on 127.0.0.1:PORT, trials in subprocesses).")
_SEARCH_EPOCHS = typer.Option(None, "--epochs", metavar="N", min=1, help="Training epochs of every candidate.",
                              show_default=f"{PROXY_BUDGET['epochs']} on a small proxy, "
                                           f"{FULL_BUDGET['epochs']} on the full data")
_SEARCH_BATCH = typer.Option(None, "--batch", metavar="N", min=1, help="Training minibatch of every candidate.",
                             show_default=f"{PROXY_BUDGET['batch']} on a small proxy, "
                                          f"{FULL_BUDGET['batch']} on the full data")


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
    dataset: str = typer.Argument(..., help="Dataset to condense: mnist, mhist or folder."),
    out: Path = typer.Option(..., "--out", "-o", metavar="PATH", help="Proxy to write (.safetensors)."),
    ipc: int = typer.Option(10, "--ipc", metavar="N", min=1, help="Synthetic images per class."),
    iterations: int = typer.Option(1000, "--iterations", "-n", metavar="N", min=0,
                                   help="Image updates (a proxy needs a ranking, not top accuracy: the "
                                        "studies in docs/nas.md used 1,000)."),
    networks: str = typer.Option("convnet", "--networks", metavar="WHICH",
                                 help="Each iteration's random network: 'convnet' (the published "
                                      "method's ConvNet-3) or 'space' (drawn from the search space "
                                      "below; it ranked MNIST architectures worse, see docs/nas.md)."),
    validation: int = _VALIDATION,
    depths: str = _DEPTHS, widths: str = _WIDTHS, norms: str = _NORMS, activations: str = _ACTS,
    poolings: str = _POOLS,
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
    from datadam.apps.nas.proxy import PROXY_NETWORKS, distill_proxy

    if networks not in PROXY_NETWORKS:  # before any data is read
        raise ConfigError(f"--networks must be {' or '.join(PROXY_NETWORKS)}, not {networks!r}")
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
    dataset: str = _DATASET,
    proxy: str = _SEARCH_PROXY,
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="Output folder (search.json and NNI's files)."),
    strategy: str = typer.Option("evolution", "--strategy", "-s", metavar="NAME",
                                 help="NNI strategy: random, evolution (regularized evolution) or grid."),
    trials: int | None = typer.Option(None, "--trials", metavar="N", min=1,
                                      help="Architectures to try (grid: the whole space).",
                                      show_default="30"),
    population: int = typer.Option(10, "--population", metavar="N", min=2, help="Evolution: population size."),
    sample_size: int = typer.Option(3, "--sample-size", metavar="N", min=1, help="Evolution: tournament size."),
    engine: str = _ENGINE,
    port: int = typer.Option(8080, "--port", metavar="PORT", min=1, max=65535,
                             help="Port of NNI's web portal (--engine ts)."),
    epochs: int | None = _SEARCH_EPOCHS,
    batch: int | None = _SEARCH_BATCH,
    lr: float = _LR,
    precision: TrainPrecision = "fp32",
    reports: int = typer.Option(4, "--reports", metavar="N", min=1,
                                help="Validation accuracies per trial reported to NNI (the last is final)."),
    validation: int = _VALIDATION,
    ipc: int | None = _IPC,
    depths: str = _DEPTHS, widths: str = _WIDTHS, norms: str = _NORMS, activations: str = _ACTS,
    poolings: str = _POOLS,
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
    from datadam.apps.nas.architecture_search import STRATEGIES, search

    if strategy not in STRATEGIES:  # before any data is read
        raise ConfigError(f"unknown strategy {strategy!r}; available: {', '.join(STRATEGIES)}")
    space = _space(depths, widths, norms, activations, poolings)
    if trials is None and strategy != "grid":
        trials = 30
    typer.echo(f"space: {space.describe()}")
    with _trial_progress(progress, strategy, trials or space.size) as on_trial:
        result = search(dataset, proxy, out, strategy=strategy, trials=trials, space=space,
                        train=_search_training(lr, precision, epochs, batch), validation=validation,
                        ipc=ipc or 10, reports=reports, seed=seed, root=root,
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
    dataset: str = _DATASET,
    proxies: str = typer.Option(..., "--proxies", metavar="PROXIES",
                                help="Comma-separated proxies to judge: synthetic sets (.safetensors) "
                                     "and/or 'random' (real images, as many per class; random:K is the "
                                     "K-th further random draw, to see how much random subsets vary)."),
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR",
                             help="Output folder: study.json, study.md, study_scatter.png."),
    archs: int = typer.Option(20, "--archs", "-k", metavar="N", min=2, help="Architectures sampled from the space."),
    cache: Path | None = typer.Option(None, "--cache", metavar="PATH", help="Full-data results file, reused across "
                                      "studies.", show_default="OUT/full_data_cache.json"),
    top_k: int = typer.Option(5, "--top-k", metavar="K", min=1, help="Size of the top sets compared."),
    epochs: int = _EPOCHS,
    full_epochs: int = _FULL_EPOCHS,
    batch: int = _BATCH,
    full_batch: int = _FULL_BATCH,
    lr: float = _LR,
    precision: TrainPrecision = "fp32",
    validation: int = _VALIDATION,
    ipc: int | None = _IPC,
    depths: str = _DEPTHS, widths: str = _WIDTHS, norms: str = _NORMS, activations: str = _ACTS,
    poolings: str = _POOLS,
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
