"""Scoring one architecture: train it on a proxy for a set budget, test it on real
validation images; and the NNI ``FunctionalEvaluator`` that does so inside a search.

:func:`train_and_validate` is plain PyTorch (the study calls it directly);
:func:`evaluate_trial` wraps it for NNI: it reports intermediate and final validation
accuracy with ``nni.report_intermediate_result`` / ``nni.report_final_result``, which
is what every NNI strategy ranks on.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from datadam import data
from datadam.apps.nas.architecture import Architecture, arch_code, arch_key, build_network
from datadam.apps.nas.budgets import FULL_BUDGET, PROXY_BUDGET
from datadam.apps.nas.proxy import Proxy, Split, make_proxy, split_validation
from datadam.augment import DSA
from datadam.distill.base import derive_seed, resolve_device
from datadam.evaluate import TrainConfig, predict, train_network

#: The budgets of :mod:`datadam.apps.nas.budgets` as training settings.
PROXY_TRAIN = TrainConfig(**PROXY_BUDGET)
FULL_TRAIN = TrainConfig(**FULL_BUDGET)


@dataclass(frozen=True)
class Task:
    """Everything a trial needs, as JSON-able values (NNI may run trials in another process).

    ``proxy`` is ``full``, ``random`` or a synthetic set's path; ``ipc`` sizes the random
    proxy; ``augmentation`` None means the dataset's DSA preset for a small proxy and none
    for the full data.
    """

    dataset: str
    proxy: str
    train: dict[str, Any]
    root: str | None = None
    dataset_options: dict[str, Any] | None = None
    validation: int = 5000
    ipc: int = 10
    seed: int = 0
    reports: int = 4
    device: str = "cpu"

    def data_key(self) -> str:
        """What the data of a trial depends on (the cache key of :func:`load_task_data`)."""
        return json.dumps({k: getattr(self, k) for k in
                           ("dataset", "proxy", "root", "dataset_options", "validation", "ipc", "seed")},
                          sort_keys=True)

    def train_config(self) -> TrainConfig:
        return TrainConfig(**self.train)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_augmentation(proxy: Proxy, dataset: str) -> str:
    """The dataset's DSA preset for a small proxy (the evaluation protocol's), none for full data."""
    from datadam.augment import preset_for

    return "none" if proxy.kind == "full" else preset_for(dataset)


def accuracy(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((predict(net, images).argmax(1).cpu() == labels.cpu()).float().mean())


def train_and_validate(arch: Architecture, proxy: Proxy, split: Split, train: TrainConfig, seed: int, *,
                       reports: int = 1, on_report: Callable[[float], None] | None = None,
                       device: str | torch.device = "cpu") -> dict[str, Any]:
    """Train a fresh network of ``arch`` on ``proxy``; return its validation accuracy and times.

    The network's initial weights and the minibatch order depend on ``seed`` and the
    architecture only, so every proxy starts the same network from the same weights.
    ``reports`` validation accuracies are taken at evenly spaced epochs (the last after
    training); each but the last goes to ``on_report``. ``train_seconds`` excludes the
    intermediate evaluations; ``seconds`` is the whole trial but the one-time kernel
    set-up (``warm_up_seconds``, one step on a copy of the network).
    """
    start = time.perf_counter()
    dev = resolve_device(device)
    train.check_device(dev)
    images, labels = proxy.images.to(dev), proxy.labels.to(dev)
    val_x, val_y = split.validation_images.to(dev), split.validation_labels
    channel, *im_size = proxy.images.shape[1:]
    net_seed = derive_seed(seed, arch_code(arch))
    net = build_network(arch, channel, int(split.train.num_classes), tuple(im_size), seed=net_seed).to(dev)
    aug = train.augmentation or default_augmentation(proxy, split.details["dataset"])
    dsa = DSA.from_name(aug)
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

    warm_up = _warm_up(net, images, labels, val_x, train, dsa)
    t_train = time.perf_counter()
    train_network(net, images, labels, train, dsa, net_seed, progress=after_epoch)
    train_seconds = time.perf_counter() - t_train - eval_seconds
    t = time.perf_counter()
    final = accuracy(net, val_x, val_y)
    final_eval = time.perf_counter() - t
    curve.append([train.epochs, final])
    return {"arch": dict(arch), "key": arch_key(arch), "proxy": proxy.name, "accuracy": final,
            "curve": curve, "train_seconds": round(train_seconds, 4),
            "eval_seconds": round(final_eval, 4), "warm_up_seconds": round(warm_up, 4),
            "seconds": round(time.perf_counter() - start - warm_up, 4),
            "train_images": len(proxy), "augmentation": aug, "seed": seed}


def _warm_up(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, val_x: torch.Tensor,
             train: TrainConfig, dsa: DSA) -> float:
    """One training step and one scoring pass of a throwaway copy of ``net``; returns its seconds.

    The first pass of new shapes through a network sets up the CPU kernels' plans.
    Without this, whichever proxy trains an architecture first in a process pays that
    one-time cost and looks slower than the next; on a copy, the network itself (its
    BatchNorm statistics included) is untouched.
    """
    start = time.perf_counter()
    probe = copy.deepcopy(net)
    x = images[:train.batch]
    if dsa.enabled:
        x = dsa(x, torch.Generator().manual_seed(0))
    with train.autocast(x.device):  # the kernels of the training's own precision
        loss = torch.nn.functional.cross_entropy(probe(x), labels[:train.batch])
    loss.backward()
    predict(probe, val_x[:1024])
    return time.perf_counter() - start


@lru_cache(maxsize=4)
def _load(key: str) -> tuple[Split, Proxy]:
    spec = json.loads(key)
    train = data.load(spec["dataset"], Path(spec["root"]) if spec["root"] else None, "train",
                      **(spec["dataset_options"] or {}))
    split = split_validation(train, spec["validation"], spec["seed"])
    return split, make_proxy(spec["proxy"], split.train, spec["ipc"], derive_seed(spec["seed"], 1))


def load_task_data(task: Task) -> tuple[Split, Proxy]:
    """The validation split and the proxy of ``task``, loaded once per process."""
    return _load(task.data_key())


#: Called in-process with each finished trial's record (progress bars, detailed results).
TRIAL_LISTENERS: list[Callable[[dict[str, Any]], None]] = []


def evaluate_trial(model: Any, task: dict[str, Any]) -> float:
    """NNI evaluation function: train ``model.arch`` as ``task`` says, report to NNI.

    ``model`` is a frozen :class:`~datadam.apps.nas.space.ConvNetSpace`; the network is
    rebuilt from its architecture with a seeded initialisation.
    """
    import nni

    spec = Task(**task)
    split, proxy = load_task_data(spec)
    record = train_and_validate(model.arch, proxy, split, spec.train_config(), spec.seed,
                                reports=spec.reports, on_report=nni.report_intermediate_result,
                                device=spec.device)
    nni.report_final_result(record["accuracy"])
    for listener in TRIAL_LISTENERS:
        listener(record)
    return record["accuracy"]


def make_evaluator(task: Task):
    """An NNI ``FunctionalEvaluator`` running :func:`evaluate_trial` with ``task``."""
    from datadam.apps.nas._nni import import_nni

    nni = import_nni()
    return nni.nas.evaluator.FunctionalEvaluator(evaluate_trial, task=task.to_dict())
