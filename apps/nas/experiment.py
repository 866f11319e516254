"""NNI experiments kept to the user's folder and to this machine.

:class:`Experiment` is NNI's ``NasExperiment`` (same arguments, same ``run``) with
these differences, for :func:`~datadam.apps.nas.architecture_search.search` and for experiments of your own:

- its working directory is the one its config names (:func:`experiment_config`: the
  output folder's ``nni/``), and in-process runs keep NNI's experiment list there too
  instead of ``~/nni-experiments/.experiment`` (with the ``ts`` engine NNI's launcher
  and its Node manager still add their line to that file: both take the path from the
  home folder, and NNI 3.0 has no setting for it);
- with the ``ts`` engine, NNI's manager and web portal listen on 127.0.0.1 only (NNI
  itself listens on every interface, and has no setting for it);
- when trials run in subprocesses, which run nothing of this process's script, data
  given to a :class:`~datadam.apps.nas.evaluator.Task` in Python, or a dataset registered
  by the script, is saved into the working directory for them (and a dataset unknown
  here too fails before NNI starts);
- a run whose every trial failed raises :class:`TrialsFailedError` with the first failed
  trial's error, where NNI would end with an empty list of models.

>>> config = experiment_config("runs/own", engine="sequential", trials=3)   # doctest: +SKIP
>>> experiment = Experiment(MySpace(), make_evaluator(task), Random(), config)  # doctest: +SKIP
>>> experiment.run()                                                        # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from datadam.apps.nas._nni import import_nni
from datadam.apps.nas.evaluator import Task, evaluate_trial, load_training_data
from datadam.apps.nas.settings import ENGINES, SearchSettings
from datadam.errors import DatadamError, UnknownNameError

import_nni()
from nni.nas.experiment import NasExperiment, NasExperimentConfig  # noqa: E402 - after import_nni's check
from nni.nas.space import ModelStatus  # noqa: E402
from nni.tools.nnictl.config_utils import Experiments  # noqa: E402

LOOPBACK = "127.0.0.1"


class TrialsFailedError(DatadamError):
    """Every trial of an experiment failed; the message is the first failed trial's error."""


def experiment_config(out_dir: str | Path, *, engine: str = SearchSettings.engine, trials: int | None = None,
                      name: str | None = None) -> NasExperimentConfig:
    """NNI's configuration of an experiment that writes under ``out_dir/nni``.

    Args:
        out_dir: the output folder; NNI's working directory is its ``nni/`` (absolute).
        engine: ``sequential`` (trials one after another in this process: no NNI
            manager, no web portal, no port) or ``ts`` (NNI's manager and web portal,
            trials in subprocesses of the local training service, one at a time, the
            manager's address for them ``127.0.0.1``).
        trials: the most trials to run (None: until the strategy stops).
        name: the experiment's name in NNI's web portal and list.
    """
    if engine not in ENGINES:
        raise UnknownNameError("engine", engine, list(ENGINES))
    config = NasExperimentConfig(engine, "simplified", "local" if engine == "ts" else None)
    config.max_trial_number = trials
    config.trial_concurrency = 1  # one CPU job at a time; the sequential engine allows no other
    config.experiment_working_directory = str((Path(out_dir) / "nni").resolve())
    config.experiment_name = name
    if engine == "ts":
        config.nni_manager_ip = LOOPBACK
    return config


class Experiment(NasExperiment):
    """NNI's ``NasExperiment``, kept to its working directory and to loopback (see the module)."""

    _stopped = False

    @property
    def workdir(self) -> Path:
        return Path(self.config.experiment_working_directory).expanduser().resolve()

    def start(self, *args: Any, **kwargs: Any) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._nni_manager_required():
            self._persist_task_data()
        super().start(*args, **kwargs)

    def stop(self) -> None:
        """Stop the experiment (once: a second call, as from an error handler, does nothing)."""
        if not self._stopped:
            self._stopped = True
            super().stop()

    def failed_trials_error(self) -> str | None:
        """What the first failed trial said, when every trial that ended failed; else None."""
        if self._engine is None or any(True for _ in self._engine.list_models(status=ModelStatus.Trained)):
            return None
        failed = list(self._engine.list_models(status=ModelStatus.Failed))
        if not failed:
            return None
        said = first_trial_error(self.workdir / self.id)
        if said is None:
            said = f"see NNI's log, {self.workdir / self.id / 'log'}"
        return f"all {len(failed)} trials failed; the first: {said}"

    def _wait_completion(self) -> bool:
        done = super()._wait_completion()
        error = self.failed_trials_error()
        if error is not None:
            self.stop()
            raise TrialsFailedError(error)
        return done

    def _persist_task_data(self) -> None:
        """Give trial subprocesses data they can read: held data, or a dataset registered
        by this process only (not by datadam, which every process imports), is saved in
        the working directory. A dataset unknown here too fails now, in one line."""
        arguments = getattr(self.evaluator, "arguments", None)
        if getattr(self.evaluator, "function", None) is not evaluate_trial or not isinstance(arguments, dict):
            return
        task = Task(**arguments["task"])
        if not task.data and not _known_to_every_process(task.dataset):
            task = replace(task, data=load_training_data(task))
        arguments["task"] = task.persisted(self.workdir).to_dict()

    def _start_nni_manager(self, port: int, *args: Any, **kwargs: Any) -> None:
        portal = logging.getLogger("nni.experiment")  # the logger of nni.experiment.experiment
        urls = _LoopbackUrls(port)
        portal.addFilter(urls)
        try:
            with loopback_node(self.workdir):
                super()._start_nni_manager(port, *args, **kwargs)
        finally:
            portal.removeFilter(urls)

    # The experiment list of in-process runs, in the working directory.
    def _manifest(self) -> Experiments:
        return Experiments(home_dir=str(self.workdir))

    def _start_without_nni_manager(self) -> None:
        self._manifest().add_experiment(self.id, "N/A", int(time.time() * 1000), "N/A",
                                        self.config.experiment_name, "N/A", status="RUNNING",
                                        tag=["retiarii"], logDir=str(self.workdir))

    def _stop_without_nni_manager(self) -> None:
        self._manifest().update_experiment(self.id, "status", "STOPPED")
        self._manifest().update_experiment(self.id, "endTime", int(time.time() * 1000))


def _known_to_every_process(dataset: str) -> bool:
    """Whether a new Python process knows ``dataset`` by name: datadam registers its own
    sources on import; a source registered by the user's script is this process's alone."""
    from datadam.data import get_source

    return getattr(get_source(dataset).load, "__module__", "").startswith("datadam.")


def first_trial_error(experiment_dir: Path) -> str | None:
    """The last line a trial wrote to its stderr, of the first trial that wrote one (NNI's
    local training service keeps it in ``environments/*/trials/<id>/trial.stderr``)."""
    logs = sorted((p for p in experiment_dir.glob("environments/*/trials/*/trial.stderr")
                   if p.stat().st_size), key=lambda p: p.stat().st_mtime)
    for log in logs:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
        if lines:
            return f"{lines[-1]} ({log})"
    return None


class _LoopbackUrls(logging.Filter):
    """NNI names a portal URL per network interface; with the portal on loopback only
    the first is reachable."""

    def __init__(self, port: int):
        super().__init__()
        self.port = port

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Web portal URLs"):
            record.msg, record.args = f"Web portal URL (loopback only): http://{LOOPBACK}:{self.port}", ()
        return True


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
def loopback_node(workdir: Path) -> Iterator[None]:
    """Make the Node.js processes started inside this block (NNI's manager) listen on
    127.0.0.1 only: ``NODE_OPTIONS`` preloads :data:`_LOOPBACK_JS` from ``workdir``."""
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
