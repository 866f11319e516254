"""Architecture search with NNI strategies over :class:`~datadam.apps.nas.space.ConvNetSpace`.

By default trials run one after another in this process (``NasExperimentConfig
("sequential", "simplified")``): no NNI manager, no web portal, no port. ``engine="ts"``
starts NNI's manager and web portal (trials in subprocesses); the
``datadam.apps.nas.Experiment`` then binds the portal to loopback, and
either way NNI's experiment directory is inside the output folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from datadam import records
from datadam.apps.nas._nni import import_nni
from datadam.apps.nas.architecture import SearchSpace, arch_key
from datadam.apps.nas.evaluator import (
    TRIAL_LISTENERS,
    Task,
    load_task_data,
    make_evaluator,
)
from datadam.apps.nas.proxy import Proxy, Split, note_validation_overlap
from datadam.apps.nas.record_kinds import SEARCH, JsonRecord
from datadam.apps.nas.settings import ENGINES, RANDOM_IPC, STRATEGIES, TRIALS, SearchSettings, TrialSettings
from datadam.errors import ConfigError, UnknownNameError
from datadam.training import TrainConfig

OnTrial = Callable[[dict[str, Any]], None]


@dataclass
class SearchResult(JsonRecord):
    """Every trial of a search in NNI's ranking (best first), the best one and all settings;
    saved as a ``nas_search`` record (``search.json``)."""

    KIND: ClassVar[str] = SEARCH
    WHAT: ClassVar[str] = "NAS search"

    best: dict[str, Any]
    trials: list[dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)


def make_strategy(name: str, seed: int, population: int = SearchSettings.population,
                  sample_size: int = SearchSettings.sample_size, mutation_prob: float = 0.2):
    """An NNI strategy by name: ``random``, ``evolution`` (regularized evolution) or ``grid``."""
    import_nni()
    from nni.nas import strategy
    if name == "random":
        return strategy.Random(seed=seed)
    if name == "evolution":
        if sample_size > population:
            raise ConfigError(f"evolution: sample size {sample_size} exceeds the population {population}")
        return strategy.RegularizedEvolution(population_size=population, sample_size=sample_size,
                                             mutation_prob=mutation_prob, seed=seed)
    if name == "grid":
        return strategy.GridSearch(shuffle=False)
    raise UnknownNameError("strategy", name, list(STRATEGIES))


@contextmanager
def _listening(callback: OnTrial | None):
    if callback is not None:
        TRIAL_LISTENERS.append(callback)
    try:
        yield
    finally:
        if callback is not None:
            TRIAL_LISTENERS.remove(callback)


def search(dataset: Any, proxy: str, out_dir: str | Path, *, strategy: str = SearchSettings.strategy,
           trials: int | None = TRIALS, space: SearchSpace | None = None, train: dict[str, Any] | None = None,
           validation: int = TrialSettings.validation, ipc: int = RANDOM_IPC, seed: int = 0,
           reports: int = SearchSettings.reports, root: str | Path | None = None, device: str = "cpu",
           dataset_options: dict[str, Any] | None = None, engine: str = SearchSettings.engine,
           port: int = SearchSettings.port, population: int = SearchSettings.population,
           sample_size: int = SearchSettings.sample_size, on_trial: OnTrial | None = None) -> SearchResult:
    """Search ``space`` for the architecture with the best real validation accuracy after
    training on ``proxy`` (a synthetic set's path, ``random`` or ``full``).

    Args:
        dataset: a registered dataset's name, or the training data itself (anything
            :func:`datadam.data.as_image_dataset` takes).
        trials: trials to run (``None`` with ``grid``: the whole space).
        train: :class:`~datadam.evaluate.TrainConfig` fields of every trial's training
            that differ from ``PROXY_TRAIN`` of :mod:`datadam.apps.nas.evaluator` (or
            ``FULL_TRAIN`` for ``proxy="full"``).
        validation: real training images held out to score every trial.
        ipc: images per class of the ``random`` proxy.
        reports: validation evaluations per trial (the last is the final result).
        engine: ``sequential`` (in-process) or ``ts`` (NNI manager and web portal on
            ``port``, bound to 127.0.0.1; the trials run in subprocesses, and a dataset
            registered only by the calling script reaches them as a data file in
            ``out_dir/nni/``).
        on_trial: called in-process with each finished trial's record.

    Writes ``out_dir/search.json`` (atomically) and NNI's experiment folder
    ``out_dir/nni/``; returns the :class:`SearchResult`. A trial that fails stops the
    search with its error (in-process), or, with ``ts``, the search raises
    ``datadam.apps.nas.TrialsFailedError`` with the first failed
    trial's last line of stderr when no trial succeeded.
    """
    space = space or SearchSpace()
    trials = _checked(strategy, engine, trials, space)
    task = _task(dataset, proxy, train, root, dataset_options, validation, ipc, seed, reports, device)
    split, proxy_data = _checked_data(task, space)
    nni = import_nni()
    from datadam.apps.nas.space import ConvNetSpace, space_size

    model_space = ConvNetSpace(int(proxy_data.images.shape[1]), split.train.num_classes,
                               list(proxy_data.images.shape[2:]), space.to_dict())
    out_dir = Path(out_dir)
    experiment = _experiment(model_space, task, out_dir, strategy, engine, trials,
                             make_strategy(strategy, seed, population, sample_size))
    start = time.perf_counter()
    trials_out = _run(experiment, trials, port, on_trial)
    evolution = strategy == "evolution"
    settings = {
        "dataset": task.dataset,
        "proxy": proxy_data.details | {"name": proxy_data.name, "kind": proxy_data.kind},
        "split": split.details, "strategy": strategy, "trials": trials, "engine": engine,
        "space": space.to_dict(), "space_size": space_size(model_space), "task": task.to_dict(),
        "population": population if evolution else None, "sample_size": sample_size if evolution else None,
        "experiment_id": experiment.id, "experiment_dir": str(experiment.workdir / experiment.id),
        "seconds": round(time.perf_counter() - start, 3), "seed": seed, "device": device,
        "versions": records.software_versions(nni=nni.__version__),
    }
    result = SearchResult(best=trials_out[0], trials=trials_out, settings=settings)
    result.save(out_dir / "search.json")
    return result


def _checked_data(task: Task, space: SearchSpace) -> tuple[Split, Proxy]:
    """The validation split and proxy of ``task``, loaded and checked before NNI starts,
    so bad input fails in one line, here."""
    split, proxy_data = load_task_data(task)
    space.check_image_size(tuple(proxy_data.images.shape[2:]))
    note_validation_overlap(proxy_data, split)
    return split, proxy_data


def _experiment(model_space: Any, task: Task, out_dir: Path, strategy: str, engine: str, trials: int,
                nni_strategy: Any) -> Any:
    """The NNI experiment of a search, its working directory ``out_dir/nni/``."""
    from datadam.apps.nas.experiment import Experiment, experiment_config

    config = experiment_config(out_dir, engine=engine, trials=trials,
                               name=f"datadam-nas-{task.dataset or 'data'}-{strategy}")
    return Experiment(model_space, make_evaluator(task), nni_strategy, config)


def _checked(strategy: str, engine: str, trials: int | None, space: SearchSpace) -> int:
    """The number of trials, once the strategy, engine and that number are checked."""
    if strategy not in STRATEGIES:
        raise UnknownNameError("strategy", strategy, list(STRATEGIES))
    if engine not in ENGINES:
        raise UnknownNameError("engine", engine, list(ENGINES))
    if trials is None:
        if strategy != "grid":
            raise ConfigError("the number of trials is needed unless the strategy is grid")
        trials = space.size
    if not 1 <= trials <= space.size:
        raise ConfigError(f"trials must be between 1 and {space.size} (the size of the space), not {trials}")
    return trials


def _task(dataset: Any, proxy: str | Path, train: dict[str, Any] | None, root: str | Path | None,
          dataset_options: dict[str, Any] | None, validation: int, ipc: int, seed: int, reports: int,
          device: str) -> Task:
    """The task of every trial, its budget the proxy's (or the full data's) with ``train``'s changes."""
    from datadam.apps.nas.evaluator import FULL_TRAIN, PROXY_TRAIN

    train = asdict(FULL_TRAIN if proxy == "full" else PROXY_TRAIN) | (train or {})
    TrainConfig(**train)  # a bad value fails here, in one line, not inside every trial
    named = isinstance(dataset, str)  # a registry name, or the data itself
    return Task(dataset=dataset if named else "", data=None if named else dataset, proxy=str(proxy),
                train=train, root=str(root) if root else None, dataset_options=dataset_options or None,
                validation=validation, ipc=ipc, seed=seed, reports=reports, device=device)


def _run(experiment: Any, trials: int, port: int, on_trial: OnTrial | None) -> list[dict[str, Any]]:
    """Run ``experiment``; every trial's record (trained in this process) with NNI's
    metrics, in NNI's ranking (best first)."""
    from nni.runtime.log import silence_stdout

    details: dict[str, dict[str, Any]] = {}

    def record(trial: dict[str, Any]) -> None:
        details[trial["key"]] = trial
        if on_trial is not None:
            on_trial(trial)

    silence_stdout()  # NNI logs to out_dir/nni/<id>/log; the CLI shows progress
    with _listening(record):
        try:
            completed = experiment.run(port=port)
        except BaseException:  # a failed trial: NNI leaves the experiment running
            experiment.stop()
            raise
        if not completed:  # NNI caught Ctrl-C and stopped the experiment itself
            raise KeyboardInterrupt
        models = experiment.export_top_models(top_k=trials)  # best first (NNI's ranking)
        experiment.stop()
    trials_out = []
    for model in models:
        arch = dict(model.sample)
        entry = details.get(arch_key(arch), {"arch": arch, "key": arch_key(arch)})
        trials_out.append(dict(entry, accuracy=model.metrics.final,
                               intermediate=list(model.metrics.intermediates)))
    if not trials_out:
        raise ConfigError("the search finished without one successful trial")
    return trials_out
