"""datadam's NAS proxy inside an ordinary NNI experiment: the user's own ModelSpace, NNI's
own strategy and experiment, datadam's evaluator, in either import order; the proxy
budget by default; data that reaches trial subprocesses; one clear error when trials
fail; the ts engine's configuration kept to loopback and the output folder."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn

from datadam import data
from datadam.apps import nas
from datadam.apps.nas import evaluator, experiment, taskdata
from datadam.apps.nas.architecture_search import search
from datadam.apps.nas.proxy import split_validation, validation_overlap
from datadam.errors import DatadamError, UnknownNameError
from datadam.evaluate import TrainConfig

# NNI after datadam.apps.nas, which tells it to use no framework
from nni.nas.evaluator import FunctionalEvaluator  # isort: skip
from nni.nas.experiment import NasExperiment, NasExperimentConfig  # isort: skip
from nni.nas.nn.pytorch import LayerChoice, ModelSpace  # isort: skip
from nni.nas.space import SimplifiedModelSpace  # isort: skip
from nni.nas.strategy import Random  # isort: skip

REPO = Path(__file__).resolve().parents[1]
FAST = nas.PROXY_BUDGET | {"epochs": 2, "batch": 8}


class TwoChoices(ModelSpace):
    """``[B, 1, 28, 28]`` to ``[B, 10]``: one or two convolutions, average or max pooling."""

    def __init__(self):
        super().__init__()
        self.features = LayerChoice({
            "one": nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU()),
            "two": nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                                 nn.ReLU()),
        }, label="features")
        self.pool = LayerChoice({"avg": nn.AdaptiveAvgPool2d(2), "max": nn.AdaptiveMaxPool2d(2)},
                                label="pool")
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(self.pool(self.features(x)).flatten(1))


@pytest.fixture(autouse=True)
def nni_home(tmp_path, monkeypatch):
    """NNI's own NasExperiment lists every run in ~/nni-experiments: a test's go to its tmp_path."""
    import nni.nas.experiment.experiment as nni_experiment
    from nni.tools.nnictl.config_utils import Experiments

    home = str(tmp_path / "nni-home")
    monkeypatch.setattr(nni_experiment, "Experiments", partial(Experiments, home_dir=home))


def nni_random_search(task: nas.Task, folder: Path) -> list:
    """NNI's own experiment: Random over TwoChoices, 3 trials in this process."""
    config = NasExperimentConfig("sequential", "simplified")
    config.max_trial_number = 3
    config.experiment_working_directory = str(folder)
    run = NasExperiment(TwoChoices(), nas.make_evaluator(task), Random(seed=0), config)
    run.run()
    models = run.export_top_models(top_k=3)
    run.stop()
    return models


@pytest.fixture
def condensed(mnist_idx_root, tmp_path) -> Path:
    """A DataDAM proxy of 1 image per class, condensed without the 10 validation images."""
    syn = nas.distill_proxy("mnist", ipc=1, iterations=2, validation=10, root=mnist_idx_root,
                            progress=False, batch_real=4)
    return syn.save(tmp_path / "proxy.safetensors")


def test_nni_random_search_over_a_users_space_scored_by_the_proxy_evaluator(mnist_idx_root, condensed,
                                                                             tmp_path, monkeypatch):
    task = nas.Task("mnist", proxy=str(condensed), train=FAST, root=str(mnist_idx_root), validation=10,
                    reports=2)
    records = []
    monkeypatch.setattr(evaluator, "TRIAL_LISTENERS", [records.append])
    models = nni_random_search(task, tmp_path / "first")

    assert len(models) == 3 == len(records)
    samples = [m.sample for m in models]
    assert len({json.dumps(s, sort_keys=True) for s in samples}) == 3
    assert all(s["features"] in ("one", "two") and s["pool"] in ("avg", "max") for s in samples)
    finals = [m.metrics.final for m in models]
    assert finals == sorted(finals, reverse=True) and all(0 <= a <= 1 for a in finals)
    by_key = {r["key"]: r for r in records}
    for model in models:
        record = by_key[evaluator.sample_key(model.sample)]
        assert record["arch"] == model.sample and record["accuracy"] == model.metrics.final
        assert record["train_images"] == 10 and record["proxy"] == "proxy.safetensors"
        assert len(model.metrics.intermediates) == 1  # reports=2: one before the final
    # every network starts from weights seeded by (seed, sample): the same search again
    # gives the same accuracies
    again = nni_random_search(task, tmp_path / "second")
    assert [(m.sample, m.metrics.final) for m in again] == [(m.sample, m.metrics.final) for m in models]


@pytest.fixture
def spied(monkeypatch):
    calls = {"train": [], "predict": []}
    real_train, real_predict = evaluator.train_network, evaluator.predict

    def train_network(net, images, labels, config, *args, **kwargs):
        calls["train"].append({"net": net, "images": images.clone(), "labels": labels.clone(),
                               "config": config})
        return real_train(net, images, labels, config, *args, **kwargs)

    def predict(net, images, *args, **kwargs):
        logits = real_predict(net, images, *args, **kwargs)
        calls["predict"].append({"net": net, "images": images.clone(), "logits": logits})
        return logits

    monkeypatch.setattr(evaluator, "train_network", train_network)
    monkeypatch.setattr(evaluator, "predict", predict)
    return calls


def test_the_evaluator_trains_the_users_network_on_the_proxy_and_scores_the_validation_split(
        mnist_idx_root, spied, monkeypatch):
    import nni.trial

    # NNI keeps the last in-process trial's parameter after an experiment (of an earlier
    # test), and mock_runtime refuses to run beside it
    monkeypatch.setattr(nni.trial, "_params", None)
    task = nas.Task("mnist", proxy="random", train=FAST, root=str(mnist_idx_root), validation=10, ipc=2)
    space = SimplifiedModelSpace.from_model(TwoChoices(), nas.make_evaluator(task))
    trial = space.freeze({"features": "two", "pool": "max"})
    with FunctionalEvaluator.mock_runtime(trial):  # as NNI runs a trial
        trial.execute()

    split, proxy = evaluator.load_task_data(task)
    [trained] = spied["train"]
    net = trained["net"]
    assert isinstance(net, TwoChoices) and isinstance(net.pool, nn.AdaptiveMaxPool2d)
    assert len(net.features) == 4  # the two-convolution choice
    assert torch.equal(trained["images"], proxy.images) and torch.equal(trained["labels"], proxy.labels)
    assert len(trained["images"]) == 20 and trained["config"] == TrainConfig(**FAST)
    final = spied["predict"][-1]
    assert final["net"] is net and torch.equal(final["images"], split.validation_images)
    expected = float((final["logits"].argmax(1) == split.validation_labels).float().mean())
    assert trial.metrics.final == expected


def test_a_network_of_the_wrong_shape_fails_in_one_line(mnist_idx_root):
    task = nas.Task("mnist", root=str(mnist_idx_root), validation=10, ipc=1)
    split, proxy = evaluator.load_task_data(task)
    wrong = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 3))
    with pytest.raises(DatadamError, match=r"maps 8 images to outputs of shape \(8, 3\); the data has 10 cl"):
        evaluator.train_and_validate(wrong, proxy, split, TrainConfig(**FAST), seed=0)


def test_a_task_trains_with_the_proxy_budget_by_default():
    task = nas.Task("mnist")
    assert task.proxy == "random" and task.train == nas.PROXY_BUDGET
    assert task.train_config() == TrainConfig(**nas.PROXY_BUDGET) == nas.PROXY_TRAIN
    assert task.train_config().epochs == nas.PROXY_BUDGET["epochs"] != TrainConfig().epochs
    assert nas.Task("mnist", "full").train_config() == TrainConfig(**nas.FULL_BUDGET)
    # a budget given is the whole budget: PROXY_BUDGET | {...} changes one field
    assert nas.Task("mnist", train=nas.PROXY_BUDGET | {"epochs": 7}).train_config() == \
        TrainConfig(**(nas.PROXY_BUDGET | {"epochs": 7}))
    with pytest.raises(DatadamError, match="a task needs data"):
        nas.Task()


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "NNI_FRAMEWORK"} | {"OMP_NUM_THREADS": "1"} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ,
                          timeout=300)


SPACE_CODE = """
from torch import nn
from nni.nas.nn.pytorch import LayerChoice, ModelSpace
class Space(ModelSpace):
    def __init__(self):
        super().__init__()
        self.pick = LayerChoice([nn.ReLU(), nn.GELU()], label="pick")
Space()
import os, nni.common.framework as f
print(os.environ["NNI_FRAMEWORK"], f.get_default_framework())
"""


@pytest.mark.parametrize("first", ["from datadam.apps import nas",  # datadam first
                                   "import nni\nfrom datadam.apps import nas"])  # nni first
def test_either_import_order_works_without_nni_framework_set(first):
    proc = run_python(first + SPACE_CODE)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["none", "none"]  # the variable reaches NNI's trial subprocesses too
    assert "is found to be not a nn.Module" not in proc.stderr


def test_data_given_in_python_reaches_trials_in_other_processes(tmp_path):
    x = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8)
    y = torch.arange(40) % 4
    task = nas.Task(data=(x, y), validation=8, ipc=2, train=FAST)
    assert task.dataset == "tensors" and task.data.startswith("memory:")
    json.dumps(task.to_dict())  # NNI sends a trial's arguments as JSON
    split, proxy = evaluator.load_task_data(task)
    assert len(split.validation_labels) == 8 and len(proxy) == 8

    check = ("import json, sys\nfrom datadam.apps.nas import evaluator\n"
             "split, proxy = evaluator.load_task_data(evaluator.Task(**json.loads(sys.argv[1])))\n"
             "print(len(split.validation_labels), proxy.images.shape[0], float(proxy.images.sum()))")
    # another process cannot see data held here: one line says what to do
    proc = run_python(check.replace("sys.argv[1]", repr(json.dumps(task.to_dict()))))
    assert proc.returncode != 0
    assert "make_evaluator(task, folder=...)" in proc.stderr.strip().splitlines()[-1]
    # saved in the experiment folder, it is the same data there
    saved = nas.make_evaluator(task, tmp_path / "nni").arguments["task"]
    assert Path(saved["data"]).parent == (tmp_path / "nni").resolve() and Path(saved["data"]).is_file()
    proc = run_python(check.replace("sys.argv[1]", repr(json.dumps(saved))))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["8", "8", str(float(proxy.images.sum()))]


def test_tensors_of_your_own_are_condensed_and_searched_without_a_registered_name(mnist_idx_root, tmp_path):
    mnist = data.load("mnist", mnist_idx_root)
    x, y = mnist.images, mnist.labels  # uint8 [50, 1, 28, 28], int64 [50]: plain tensors from here on
    syn = nas.distill_proxy(data=(x, y), ipc=1, iterations=1, validation=10, progress=False, batch_real=4)
    assert syn.metadata["nas_split"]["dataset"] == "tensors"
    proxy_file = syn.save(tmp_path / "proxy.safetensors")
    task = nas.Task(data=(x, y), proxy=str(proxy_file), validation=10, train=FAST)
    split, proxy = evaluator.load_task_data(task)
    assert proxy.kind == "synthetic" and len(proxy) == 10
    assert validation_overlap(proxy, split) is None  # condensed without the validation images
    models = nni_random_search(task, tmp_path / "nni")
    assert len(models) == 3 and all(0 <= m.metrics.final <= 1 for m in models)


def test_the_experiment_saves_held_data_for_subprocess_trials(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(NasExperiment, "start", lambda self, *a, **k: started.append(self))
    task = nas.Task(data=(torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8), torch.arange(12) % 3))
    config = nas.experiment_config(tmp_path / "out", engine="ts", trials=2)
    run = nas.Experiment(TwoChoices(), nas.make_evaluator(task), Random(), config)
    run.start()
    assert started == [run]
    path = Path(run.evaluator.arguments["task"]["data"])
    assert path.parent == (tmp_path / "out" / "nni").resolve()
    assert torch.equal(taskdata.load_data(path).images, taskdata.resolve(task.data).images)


def test_the_ts_engine_is_configured_for_loopback_and_the_output_folder(tmp_path, monkeypatch):
    config = nas.experiment_config(tmp_path / "out", engine="ts", trials=3, name="mine").canonical_copy()
    assert config.nni_manager_ip == "127.0.0.1"
    assert config.experiment_working_directory == str((tmp_path / "out" / "nni").resolve())
    assert config.training_service.platform == "local" and config.trial_concurrency == 1
    assert config.max_trial_number == 3 and config.experiment_name == "mine"
    # the manager is started with the preload that binds its servers to 127.0.0.1
    seen = {}

    def start_manager(self, port, *args, **kwargs):
        seen["NODE_OPTIONS"], seen["port"] = os.environ["NODE_OPTIONS"], port
        # NNI then names a URL per network interface; only the loopback one answers
        logging.getLogger("nni.experiment").info("Web portal URLs: http://127.0.0.1:18080 http://10.0.0.7:18080")

    monkeypatch.setattr(NasExperiment, "_start_nni_manager", start_manager)
    monkeypatch.delenv("NODE_OPTIONS", raising=False)
    config = nas.experiment_config(tmp_path / "out", engine="ts")
    run = nas.Experiment(TwoChoices(), FunctionalEvaluator(len), Random(), config)
    run.workdir.mkdir(parents=True)
    logged = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    logging.getLogger("nni.experiment").addHandler(handler)
    try:
        run._start_nni_manager(18080, False)
    finally:
        logging.getLogger("nni.experiment").removeHandler(handler)
    preload = (tmp_path / "out" / "nni" / "loopback.cjs").resolve()
    assert seen == {"NODE_OPTIONS": f'--require "{preload}"', "port": 18080}
    assert logged == ["Web portal URL (loopback only): http://127.0.0.1:18080"]
    assert "127.0.0.1" in preload.read_text() and "NODE_OPTIONS" not in os.environ


def test_search_with_the_ts_engine_builds_that_config_and_carries_the_data(mnist_idx_root, tmp_path,
                                                                          monkeypatch):
    # a dataset the test registers: a trial subprocess would not know it by name
    mine = data.DatasetSource("mine", lambda root, split, **kw: data.load("mnist", mnist_idx_root, split),
                              lambda root, **kw: [], "MNIST, registered by this process")
    monkeypatch.setitem(data._REGISTRY, "mine", mine)
    started = {}

    def start(self, port=8080, *args, **kwargs):
        started.update(config=self.config.canonical_copy(), task=self.evaluator.arguments["task"], port=port)
        raise KeyboardInterrupt  # stop here: no NNI manager starts

    monkeypatch.setattr(NasExperiment, "start", start)
    monkeypatch.setattr(experiment.Experiment, "stop", lambda self: None)
    with pytest.raises(KeyboardInterrupt):
        search("mine", "random", tmp_path / "s", strategy="random", trials=2, engine="ts", port=18081,
                   validation=10, ipc=1, space=nas.SearchSpace(depth=(1, 2), width=(4,)))
    workdir = (tmp_path / "s" / "nni").resolve()
    assert started["config"].nni_manager_ip == "127.0.0.1" and started["port"] == 18081
    assert started["config"].experiment_working_directory == str(workdir)
    # trials read the data this process loaded, from the experiment folder
    path = Path(started["task"]["data"])
    assert path.parent == workdir and started["task"]["dataset"] == "mine"
    assert torch.equal(taskdata.load_data(path).images, data.load("mnist", mnist_idx_root).images)


def test_an_unknown_dataset_fails_the_experiment_with_its_error(mnist_idx_root, tmp_path, monkeypatch):
    with pytest.raises(UnknownNameError, match="unknown dataset 'nosuch'"):
        nni_random_search(nas.Task("nosuch", train=FAST), tmp_path / "nni")
    # with trials in subprocesses, before NNI's manager starts
    monkeypatch.setattr(NasExperiment, "start", lambda self, *a, **k: pytest.fail("NNI started"))
    config = nas.experiment_config(tmp_path / "ts", engine="ts", trials=2)
    run = nas.Experiment(TwoChoices(), nas.make_evaluator(nas.Task("nosuch")), Random(), config)
    with pytest.raises(UnknownNameError, match="unknown dataset 'nosuch'"):
        run.run(port=18082)
    with pytest.raises(UnknownNameError, match="unknown dataset 'nosuch'"):
        search("nosuch", "random", tmp_path / "s", strategy="random", trials=1)


def test_when_every_trial_fails_the_experiment_raises_instead_of_returning_nothing(mnist_idx_root, tmp_path):
    task = nas.Task("mnist", train=FAST, root=str(mnist_idx_root), validation=10, ipc=1, reports=1)
    config = nas.experiment_config(tmp_path / "out", trials=2)
    config.execution_engine.continue_on_failure = True  # as trials in subprocesses: the search goes on

    class Broken(TwoChoices):
        def forward(self, x):
            raise RuntimeError("this network is broken")

    run = nas.Experiment(Broken(), nas.make_evaluator(task), Random(seed=0), config)
    with pytest.raises(nas.TrialsFailedError, match="all 2 trials failed"):
        run.run()
    # with the ts engine, the error is the first failed trial's last line of stderr
    trial = tmp_path / "exp" / "environments" / "local-env" / "trials" / "Ab1"
    trial.mkdir(parents=True)
    (trial / "trial.stderr").write_text("Traceback (most recent call last):\n  ...\n"
                                        "datadam.errors.UnknownNameError: unknown dataset 'mine'\n\n")
    said = experiment.first_trial_error(tmp_path / "exp")
    assert said.startswith("datadam.errors.UnknownNameError: unknown dataset 'mine' (")


def test_the_own_space_example_runs_and_keeps_nni_to_its_folder(mnist_idx_root, tmp_path):
    home = tmp_path / "home"  # where NNI would keep its experiment list: it must not
    args = ["--root", mnist_idx_root, "--validation", 10, "--ipc", 1, "--iterations", 2, "--epochs", 1,
            "--out", tmp_path / "out"]
    environ = {k: v for k, v in os.environ.items() if k != "NNI_FRAMEWORK"}
    script = REPO / "docs" / "examples" / "nas_own_space.py"
    proc = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=environ | {"HOME": str(home), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = [line for line in proc.stdout.splitlines() if line.endswith("% validation accuracy")]
    assert len(results) == 3 and all("'features'" in line and "'pool'" in line for line in results)
    assert (tmp_path / "out" / "proxy.safetensors").is_file()
    assert (tmp_path / "out" / "nni" / ".experiment").is_file()
    assert not (home / "nni-experiments").exists()


def test_the_validation_split_of_held_data_is_the_registrys(mnist_idx_root):
    """Data handed over in Python is split as the same data loaded by name."""
    train = data.load("mnist", mnist_idx_root)
    by_name = evaluator.load_task_data(nas.Task("mnist", root=str(mnist_idx_root), validation=10, ipc=1))
    held = evaluator.load_task_data(nas.Task(data=train, validation=10, ipc=1))
    assert torch.equal(by_name[0].validation_images, held[0].validation_images)
    assert torch.equal(by_name[1].images, held[1].images)
    assert torch.equal(held[0].validation_images, split_validation(train, 10, 0).validation_images)
