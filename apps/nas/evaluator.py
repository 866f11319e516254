"""Scoring one candidate: train it on a proxy for a set budget, test it on real
validation images; and the NNI ``FunctionalEvaluator`` that does so inside a search.

A candidate is a ConvNet architecture of :class:`~datadam.apps.nas.space.ConvNetSpace`
or whatever network another NNI ``ModelSpace`` (a user's own) builds from a sample.
:func:`train_and_validate` is plain PyTorch (the study calls it directly);
:func:`evaluate_trial` wraps it for NNI: it reports intermediate and final validation
accuracy with ``nni.report_intermediate_result`` / ``nni.report_final_result``, which
is what every NNI strategy ranks on. :class:`Task` says what a trial trains on and for
how long; its default budget is the proxy budget of ``datadam.apps.nas.budgets``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from datadam import data
from datadam.apps.nas import taskdata
from datadam.apps.nas.architecture import Architecture, arch_code, arch_key, build_network, key_code
from datadam.apps.nas.budgets import FULL_BUDGET, PROXY_BUDGET
from datadam.apps.nas.proxy import FULL, RANDOM, Proxy, Split, make_proxy, split_validation
from datadam.apps.nas.settings import RANDOM_IPC, SearchSettings, TrialSettings
from datadam.augment import DSA
from datadam.data.base import ImageDataset
from datadam.distill.base import derive_seed, resolve_device
from datadam.errors import ConfigError
from datadam.evaluate import TrainConfig, predict, train_network

#: The budgets of ``datadam.apps.nas.budgets`` as training settings.
PROXY_TRAIN = TrainConfig(**PROXY_BUDGET)
FULL_TRAIN = TrainConfig(**FULL_BUDGET)


@dataclass(frozen=True)
class Task:
    """Everything a trial needs, as JSON-able values (NNI may run trials in another process).

    Args:
        dataset: a registered dataset's name (``mnist``, ``mhist``, ``folder``...); with
            ``data``, only what the data is called (default: the data's own name).
        proxy: what every candidate trains on: ``random`` (``ipc`` real images per
            class), ``random:K`` (the K-th other draw), ``full`` or a synthetic set's path.
        train: :class:`~datadam.evaluate.TrainConfig` fields of that training. Default:
            the proxy budget ``PROXY_BUDGET``
            (``FULL_BUDGET`` for ``full``). Given, it is the
            whole budget, fields left out taking ``TrainConfig``'s 1,000-epoch protocol
            defaults: write ``PROXY_BUDGET | {"epochs": 20}`` to change one field.
        data: the training data itself, instead of a registered name: anything
            :func:`datadam.data.as_image_dataset` takes (an ``ImageDataset``, an
            ``(images, labels)`` pair, a ``TensorDataset``...), held by this process, or
            the path of a data file (``datadam.apps.nas.save_data``). The
            task keeps a string naming it (``datadam.apps.nas.taskdata``).
        root: where ``dataset`` is loaded from (default: its source's).
        dataset_options: options of its loader (``image_size``...).
        validation: real training images held out to score every candidate.
        ipc: images per class of the ``random`` proxy.
        seed: of the split, the random proxy, every network's weights and minibatches.
        reports: validation accuracies reported to NNI per trial (the last is final).
        device: where trials train.

    >>> Task("mnist").train == PROXY_BUDGET                                     # doctest: +SKIP
    True
    """

    dataset: str = ""
    proxy: str = RANDOM
    train: dict[str, Any] | None = None
    root: str | None = None
    dataset_options: dict[str, Any] | None = None
    validation: int = TrialSettings.validation
    ipc: int = RANDOM_IPC
    seed: int = 0
    reports: int = SearchSettings.reports
    device: str = "cpu"
    data: Any = None

    def __post_init__(self) -> None:
        if isinstance(self.data, Path):
            object.__setattr__(self, "data", str(self.data))
        elif self.data is not None and not isinstance(self.data, str):
            from datadam.data import as_image_dataset

            given = as_image_dataset(self.data)
            object.__setattr__(self, "data", taskdata.hold(given))
            object.__setattr__(self, "dataset", self.dataset or given.name)
        if not (self.dataset or self.data):
            raise ConfigError("a task needs data: a registered dataset's name, or data=...")
        if self.train is None:
            object.__setattr__(self, "train", dict(FULL_BUDGET if self.proxy == FULL else PROXY_BUDGET))

    def data_key(self) -> str:
        """What the data of a trial depends on (the cache key of :func:`load_task_data`)."""
        return json.dumps({k: getattr(self, k) for k in
                           ("dataset", "proxy", "root", "dataset_options", "validation", "ipc", "seed",
                            "data")},
                          sort_keys=True)

    def train_config(self) -> TrainConfig:
        return TrainConfig(**self.train)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def persisted(self, folder: str | Path) -> Task:
        """This task with data held in this process written to a file in ``folder``, so
        that trials in other processes read it (``datadam.apps.nas.taskdata.persist``)."""
        if not taskdata.is_held(self.data):
            return self
        return replace(self, data=taskdata.persist(self.data, folder))


def default_augmentation(proxy: Proxy, pool: ImageDataset) -> str:
    """The DSA preset of ``pool``'s images for a small proxy (the evaluation protocol's),
    none for the full data."""
    from datadam.augment import preset_for

    return "none" if proxy.kind == FULL else preset_for(pool)


def accuracy(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((predict(net, images).argmax(1).cpu() == labels.cpu()).float().mean())


def model_key(model: torch.nn.Module) -> str:
    """A name for a network no sample describes: its class and a digest of its layers."""
    return f"{type(model).__name__}-{hashlib.sha256(repr(model).encode()).hexdigest()[:8]}"


def sample_key(sample: dict[str, Any]) -> str:
    """A readable name for one sample of an NNI space, e.g. ``features=two,pool=max``."""
    return ",".join(f"{label}={value}" for label, value in sample.items())


def train_and_validate(arch: Architecture | torch.nn.Module, proxy: Proxy, split: Split, train: TrainConfig,
                       seed: int, *, key: str | None = None, reports: int = 1,
                       on_report: Callable[[float], None] | None = None,
                       device: str | torch.device = "cpu") -> dict[str, Any]:
    """Train a network on ``proxy``; return its validation accuracy and times.

    ``arch`` is a ConvNet architecture, of which a fresh network is built with initial
    weights and minibatch order from ``seed`` and the architecture only, so every proxy
    starts the same network from the same weights; or any ``nn.Module`` taking images
    ``[B, C, H, W]`` to logits ``[B, K]``, trained as it is (in place), its minibatch
    order from ``seed`` and ``key`` (default :func:`model_key`).
    ``reports`` validation accuracies are taken at evenly spaced epochs (the last after
    training); each but the last goes to ``on_report``. ``train_seconds`` excludes the
    intermediate evaluations; ``seconds`` is the whole trial but the one-time kernel
    set-up (``warm_up_seconds``, one step on a copy of the network).
    """
    start = time.perf_counter()
    dev = resolve_device(device)
    train.check_device(dev)
    net, key, net_seed = _network(arch, key, proxy, split, seed)
    net = net.to(dev)
    images, labels = proxy.images.to(dev), proxy.labels.to(dev)
    val_x, val_y = split.validation_images.to(dev), split.validation_labels
    aug = train.augmentation or default_augmentation(proxy, split.train)
    dsa = DSA.from_name(aug)
    warm_up = _warm_up(net, images, labels, val_x, train, dsa, split.train.num_classes)
    curve, train_seconds = _train_reporting(net, images, labels, val_x, val_y, train, dsa, net_seed,
                                            reports, on_report)
    t = time.perf_counter()
    final = accuracy(net, val_x, val_y)
    final_eval = time.perf_counter() - t
    curve.append([train.epochs, final])
    return {"arch": dict(arch) if isinstance(arch, dict) else None, "key": key, "proxy": proxy.name,
            "accuracy": final, "curve": curve, "train_seconds": round(train_seconds, 4),
            "eval_seconds": round(final_eval, 4), "warm_up_seconds": round(warm_up, 4),
            "seconds": round(time.perf_counter() - start - warm_up, 4),
            "train_images": len(proxy), "augmentation": aug, "seed": seed}


def _network(arch: Architecture | torch.nn.Module, key: str | None, proxy: Proxy, split: Split,
             seed: int) -> tuple[torch.nn.Module, str, int]:
    """``(network, key, seed of its training)``: the seeded ConvNet of an architecture, or
    the module given."""
    if isinstance(arch, torch.nn.Module):
        key = key or model_key(arch)
        return arch, key, derive_seed(seed, key_code(key))
    channel, *im_size = proxy.images.shape[1:]
    net_seed = derive_seed(seed, arch_code(arch))
    net = build_network(arch, channel, int(split.train.num_classes), tuple(im_size), seed=net_seed)
    return net, key or arch_key(arch), net_seed


def _train_reporting(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, val_x: torch.Tensor,
                     val_y: torch.Tensor, train: TrainConfig, dsa: DSA, seed: int, reports: int,
                     on_report: Callable[[float], None] | None) -> tuple[list[list[float]], float]:
    """Train ``net``, scoring it on the validation images at ``reports - 1`` evenly spaced
    epochs before the last; returns those ``[epoch, accuracy]`` and the training seconds
    without the scoring."""
    report_at = {max(1, round(train.epochs * (i + 1) / reports)) for i in range(max(reports, 1))}
    curve: list[list[float]] = []
    epoch = 0
    eval_seconds = 0.0

    def after_epoch() -> None:
        nonlocal epoch, eval_seconds
        epoch += 1
        if epoch in report_at and epoch < train.epochs:
            t = time.perf_counter()
            acc = accuracy(net, val_x, val_y)
            net.train()  # predict() left it in eval mode; training goes on
            eval_seconds += time.perf_counter() - t
            curve.append([epoch, acc])
            if on_report is not None:
                on_report(acc)

    t_train = time.perf_counter()
    train_network(net, images, labels, train, dsa, seed, progress=after_epoch)
    return curve, time.perf_counter() - t_train - eval_seconds


def _warm_up(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, val_x: torch.Tensor,
             train: TrainConfig, dsa: DSA, num_classes: int) -> float:
    """One training step and one scoring pass of a throwaway copy of ``net``; returns its seconds.

    The first pass of new shapes through a network sets up the CPU kernels' plans.
    Without this, whichever proxy trains an architecture first in a process pays that
    one-time cost and looks slower than the next; on a copy, the network itself (its
    BatchNorm statistics included) is untouched. A network whose output does not fit the
    classes fails here, in one line, before any training.
    """
    start = time.perf_counter()
    probe = copy.deepcopy(net)
    x = images[:train.batch]
    if dsa.enabled:
        x = dsa(x, torch.Generator().manual_seed(0))
    with train.autocast(x.device):  # the kernels of the training's own precision
        logits = probe(x)
        if logits.ndim != 2 or logits.shape[1] != num_classes:
            raise ConfigError(f"the network maps {len(x)} images to outputs of shape {tuple(logits.shape)}; "
                              f"the data has {num_classes} classes, so [{len(x)}, {num_classes}] is needed")
        loss = torch.nn.functional.cross_entropy(logits, labels[:train.batch])
    loss.backward()
    predict(probe, val_x[:1024])
    return time.perf_counter() - start


@lru_cache(maxsize=2)
def _load_training(key: str) -> ImageDataset:
    spec = json.loads(key)
    if spec["data"]:
        return taskdata.resolve(spec["data"])
    return data.load(spec["dataset"], Path(spec["root"]) if spec["root"] else None, "train",
                     **(spec["dataset_options"] or {}))


@lru_cache(maxsize=4)
def _load(key: str) -> tuple[Split, Proxy]:
    spec = json.loads(key)
    split = split_validation(_load_training(key), spec["validation"], spec["seed"])
    return split, make_proxy(spec["proxy"], split.train, spec["ipc"], derive_seed(spec["seed"], 1))


def load_training_data(task: Task) -> ImageDataset:
    """The whole training split of ``task``'s data (the validation images included)."""
    return _load_training(task.data_key())


def load_task_data(task: Task) -> tuple[Split, Proxy]:
    """The validation split and the proxy of ``task``, loaded once per process."""
    return _load(task.data_key())


#: Called in-process with each finished trial's record (progress bars, detailed results).
TRIAL_LISTENERS: list[Callable[[dict[str, Any]], None]] = []


def evaluate_trial(model: torch.nn.Module, task: dict[str, Any]) -> float:
    """NNI evaluation function: train the sampled ``model`` as ``task`` says, score it on
    the validation split, report to NNI; returns the validation accuracy.

    ``model`` is what NNI built from a sample of the space. A frozen
    :class:`~datadam.apps.nas.space.ConvNetSpace` gives way to the core ConvNet of its
    architecture, built with weights seeded from (seed, architecture). Any other
    ``ModelSpace``'s model is trained itself: NNI builds it again from its sample under a
    seed derived from (seed, sample), so that every proxy starts the same network from
    the same weights (outside an NNI trial, where no sample is known, it is trained as given).
    """
    import nni

    spec = Task(**task)
    split, proxy = load_task_data(spec)
    candidate, key, arch = trial_candidate(model, spec.seed)
    record = train_and_validate(candidate, proxy, split, spec.train_config(), spec.seed, key=key,
                                reports=spec.reports, on_report=nni.report_intermediate_result,
                                device=spec.device)
    record["arch"] = arch
    nni.report_final_result(record["accuracy"])
    for listener in TRIAL_LISTENERS:
        listener(record)
    return record["accuracy"]


def trial_candidate(model: torch.nn.Module, seed: int) -> tuple[Architecture | torch.nn.Module, str,
                                                                    dict[str, Any] | None]:
    """``(what to train, its key, its sample)`` for the model NNI hands a trial."""
    from datadam.apps.nas.space import ConvNetSpace

    if isinstance(model, ConvNetSpace):
        return model.arch, arch_key(model.arch), dict(model.arch)
    current = _current_trial()
    sample = getattr(current, "sample", None) or getattr(model, "sample", None)
    if not sample:
        return model, model_key(model), None
    key = sample_key(sample)
    if current is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, key_code(key)))
            seeded = current.executable_model()
        if type(seeded) is type(model):
            model = seeded
    return model, key, dict(sample)


def _current_trial() -> Any:
    """The ExecutableModelSpace NNI is evaluating now, or None outside a trial.

    NNI leaves its last in-process trial's parameter behind after an experiment; that one
    is done (trained or failed), while the running one is frozen (sent to a subprocess,
    or mocked) or training (in-process).
    """
    import nni
    from nni.nas.space import ModelStatus

    current = nni.get_current_parameter()
    if getattr(current, "status", None) in (ModelStatus.Frozen, ModelStatus.Training):
        return current
    return None


def make_evaluator(task: Task, folder: str | Path | None = None):
    """An NNI ``FunctionalEvaluator`` running :func:`evaluate_trial` with ``task``.

    ``folder``: where data given to the task in Python is saved for trials that run in
    other processes (NNI's ``ts`` engine); ``datadam.apps.nas.Experiment``
    does that itself, in its working directory.
    """
    from datadam.apps.nas._nni import import_nni

    nni = import_nni()
    if folder is not None:
        task = task.persisted(folder)
    return nni.nas.evaluator.FunctionalEvaluator(evaluate_trial, task=task.to_dict())
