"""Architecture search with NNI strategies over :class:`~datadam.apps.nas.space.ConvNetSpace`.

By default trials run one after another in this process (``NasExperimentConfig
("sequential", "simplified")``): no NNI manager, no web portal, no port. ``engine="ts"``
starts NNI's manager and web portal (trials in subprocesses); datadam then binds the
portal to loopback and keeps the experiment directory inside the output folder.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from datadam import __version__
from datadam.apps.nas._nni import import_nni
from datadam.apps.nas.architecture import SearchSpace, arch_key
from datadam.apps.nas.evaluator import TRIAL_LISTENERS, Task, load_task_data, make_evaluator
from datadam.apps.nas.proxy import note_validation_overlap
from datadam.errors import ConfigError, UnknownNameError
from datadam.synthetic import write_json
from datadam.training import TrainConfig

STRATEGIES = ("random", "evolution", "grid")
ENGINES = ("sequential", "ts")


@dataclass
class SearchResult:
    """Every trial of a search in NNI's ranking (best first), the best one and all settings."""

    best: dict[str, Any]
    trials: list[dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())


def make_strategy(name: str, seed: int, population: int = 10, sample_size: int = 3,
                  mutation_prob: float = 0.2):
    """An NNI strategy by name: ``random``, ``evolution`` (regularized evolution) or ``grid``."""
    nni = import_nni()
    strategy = nni.nas.strategy
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
def _listening(callback: Callable[[dict[str, Any]], None] | None):
    if callback is not None:
        TRIAL_LISTENERS.append(callback)
    try:
        yield
    finally:
        if callback is not None:
            TRIAL_LISTENERS.remove(callback)


def _experiment_class():
    """NasExperiment whose experiment manifest lives in its working directory.

    In-process, NNI would otherwise add each run to ``~/nni-experiments/.experiment``
    (the list ``nnictl`` reads); datadam keeps everything inside the output folder.
    """
    import_nni()
    from nni.nas.experiment import NasExperiment
    from nni.tools.nnictl.config_utils import Experiments

    class Experiment(NasExperiment):
        def _manifest(self) -> Experiments:
            return Experiments(home_dir=str(Path(self.config.experiment_working_directory)))

        def _start_without_nni_manager(self) -> None:
            self._manifest().add_experiment(self.id, "N/A", int(time.time() * 1000), "N/A",
                                            self.config.experiment_name, "N/A", status="RUNNING",
                                            tag=["retiarii"],
                                            logDir=str(self.config.experiment_working_directory))

        def _stop_without_nni_manager(self) -> None:
            self._manifest().update_experiment(self.id, "status", "STOPPED")
            self._manifest().update_experiment(self.id, "endTime", int(time.time() * 1000))

    return Experiment


def search(dataset: str, proxy: str, out_dir: str | Path, *, strategy: str = "evolution",
           trials: int | None = 30, space: SearchSpace | None = None, train: dict[str, Any] | None = None,
           validation: int = 5000, ipc: int = 10, reports: int = 4, seed: int = 0,
           root: str | Path | None = None, dataset_options: dict[str, Any] | None = None,
           device: str = "cpu", engine: str = "sequential", port: int = 8080,
           population: int = 10, sample_size: int = 3,
           on_trial: Callable[[dict[str, Any]], None] | None = None) -> SearchResult:
    """Search ``space`` for the architecture with the best real validation accuracy after
    training on ``proxy`` (a synthetic set's path, ``random`` or ``full``).

    Args:
        trials: trials to run (``None`` with ``grid``: the whole space).
        train: :class:`~datadam.evaluate.TrainConfig` fields of every trial's training
            that differ from ``PROXY_TRAIN`` of :mod:`datadam.apps.nas.evaluator` (or
            ``FULL_TRAIN`` for ``proxy="full"``).
        validation: real training images held out to score every trial.
        ipc: images per class of the ``random`` proxy.
        reports: validation evaluations per trial (the last is the final result).
        engine: ``sequential`` (in-process) or ``ts`` (NNI manager and web portal on
            ``port``, bound to 127.0.0.1).
        on_trial: called in-process with each finished trial's record.

    Writes ``out_dir/search.json`` (atomically) and NNI's experiment folder
    ``out_dir/nni/``; returns the :class:`SearchResult`.
    """
    from datadam.apps.nas.evaluator import FULL_TRAIN, PROXY_TRAIN

    space = space or SearchSpace()
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
    train = asdict(FULL_TRAIN if proxy == "full" else PROXY_TRAIN) | (train or {})
    TrainConfig(**train)  # a bad value fails here, in one line, not inside every trial
    task = Task(dataset=dataset, proxy=str(proxy), train=train, root=str(root) if root else None,
                dataset_options=dataset_options or None, validation=validation, ipc=ipc, seed=seed,
                reports=reports, device=device)
    # Load and check the data before NNI starts, so bad input fails in one line, here.
    split, proxy_data = load_task_data(task)
    space.check_image_size(tuple(proxy_data.images.shape[2:]))
    note_validation_overlap(proxy_data, split)

    nni = import_nni()
    from nni.nas.experiment import NasExperimentConfig

    from datadam.apps.nas.space import ConvNetSpace, space_size

    model_space = ConvNetSpace(int(proxy_data.images.shape[1]), split.train.num_classes,
                               list(proxy_data.images.shape[2:]), space.to_dict())
    out_dir = Path(out_dir)
    workdir = (out_dir / "nni").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    config = NasExperimentConfig(engine, "simplified", "local" if engine == "ts" else None)
    config.max_trial_number = trials
    config.trial_concurrency = 1  # one CPU job at a time; the sequential engine allows no other
    config.experiment_working_directory = str(workdir)
    config.experiment_name = f"datadam-nas-{dataset}-{strategy}"
    experiment = _experiment_class()(model_space, make_evaluator(task),
                                     make_strategy(strategy, seed, population, sample_size), config)
    details: dict[str, dict[str, Any]] = {}

    def record(trial: dict[str, Any]) -> None:
        details[trial["key"]] = trial
        if on_trial is not None:
            on_trial(trial)

    start = time.perf_counter()
    from nni.runtime.log import silence_stdout

    silence_stdout()  # NNI logs to out_dir/nni/<id>/log; the CLI shows progress
    with _listening(record), _loopback_portal(workdir) if engine == "ts" else _nothing():
        try:
            completed = experiment.run(port=port)
        except BaseException:  # a failed trial: NNI leaves the experiment running
            experiment.stop()
            raise
        if not completed:  # NNI caught Ctrl-C and stopped the experiment itself
            raise KeyboardInterrupt
        models = experiment.export_top_models(top_k=trials)  # best first (NNI's ranking)
        experiment.stop()
    seconds = time.perf_counter() - start
    trials_out = []
    for model in models:
        arch = dict(model.sample)
        key = arch_key(arch)
        entry = details.get(key, {"arch": arch, "key": key})
        entry = dict(entry, accuracy=model.metrics.final,
                     intermediate=list(model.metrics.intermediates))
        trials_out.append(entry)
    if not trials_out:
        raise ConfigError("the search finished without one successful trial")
    best = trials_out[0]
    settings = {
        "dataset": dataset, "proxy": proxy_data.details | {"name": proxy_data.name, "kind": proxy_data.kind},
        "split": split.details, "strategy": strategy, "trials": trials, "engine": engine,
        "space": space.to_dict(), "space_size": space_size(model_space), "task": task.to_dict(),
        "population": population if strategy == "evolution" else None,
        "sample_size": sample_size if strategy == "evolution" else None,
        "experiment_id": experiment.id, "experiment_dir": str(workdir / experiment.id),
        "seconds": round(seconds, 3), "seed": seed, "device": device,
        "versions": {"datadam": __version__, "torch": torch.__version__, "nni": nni.__version__,
                     "python": platform.python_version()},
    }
    result = SearchResult(best=best, trials=trials_out, settings=settings)
    result.save(out_dir / "search.json")
    return result


@contextmanager
def _nothing():
    yield


# A preload for NNI's Node manager: its REST server calls listen(port) with no host,
# i.e. every interface. This pins every server the process starts to loopback.
_LOOPBACK_JS = """\
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && (args.length < 2 || typeof args[1] !== 'string')) {
    args.splice(1, 0, '127.0.0.1');
  } else if (args[0] && typeof args[0] === 'object' && !args[0].path) {
    args[0] = Object.assign({}, args[0], {host: '127.0.0.1'});
  }
  return listen.apply(this, args);
};
"""


@contextmanager
def _loopback_portal(workdir: Path):
    """Make the NNI manager started inside this block listen on 127.0.0.1 only."""
    import os

    preload = workdir / "loopback.cjs"
    preload.write_text(_LOOPBACK_JS)
    before = os.environ.get("NODE_OPTIONS")
    os.environ["NODE_OPTIONS"] = f"{before or ''} --require {json.dumps(str(preload))}".strip()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("NODE_OPTIONS", None)
        else:
            os.environ["NODE_OPTIONS"] = before
