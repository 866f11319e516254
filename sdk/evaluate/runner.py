"""Running the evaluation protocol: train fresh networks of each model on a synthetic
set (one at a time, stacked together, or in worker processes), test them on real data,
and keep every network's record, going on from an earlier evaluation if asked."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from rich.progress import Progress, TaskID
from torch import nn

from datadam import models as model_registry
from datadam.augment import DSA, preset_for
from datadam.data.base import ImageDataset
from datadam.data.convert import as_image_dataset
from datadam.distill.base import derive_seed, resolve_device
from datadam.distill.config import default_model
from datadam.errors import ConfigError
from datadam.evaluate.cost import training_flops
from datadam.evaluate.metrics import _metrics
from datadam.evaluate.results import EvaluationResult, _summary
from datadam.evaluate.resume import _hand_over_to_runs, _networks_to_keep, _run_checkpoint
from datadam.evaluation_settings import EvaluationSettings
from datadam.memory import check_training_memory
from datadam.progress import progress_bar
from datadam.records import software_versions
from datadam.synthetic import SyntheticSet
from datadam.training import (
    TrainConfig,
    TrainingCheckpoint,
    can_train_together,
    predict,
    train_network,
    train_networks_together,
    wait_for,
)
from datadam.training_processes import NetworkJob, train_in_processes


def check_compatible(synthetic: SyntheticSet, test: ImageDataset) -> None:
    """Raise :class:`ConfigError` when ``synthetic`` cannot be tested on ``test``."""
    if list(synthetic.classes) != list(test.classes):
        raise ConfigError(f"synthetic set has classes {synthetic.classes[:4]}..., "
                          f"{test.name} has {test.classes[:4]}...: not the same dataset")
    if tuple(synthetic.image_shape) != tuple(test.images.shape[1:]):
        raise ConfigError(f"synthetic images are {'x'.join(map(str, synthetic.image_shape))}, "
                          f"{test.name} images {'x'.join(map(str, test.images.shape[1:]))} "
                          "(load the data with the same --image-size)")


def _name_code(name: str) -> int:
    """A stable integer per model name (``hash`` of a str changes between processes)."""
    return int.from_bytes(name.lower().encode()[:8].ljust(8, b"\0"), "little")


def evaluate(synthetic: SyntheticSet, test: ImageDataset, models: list[str] | None = None, *,
             runs: int = EvaluationSettings.runs, train: TrainConfig | None = None, seed: int = 0,
             device: str = "auto", progress: bool | None = None,
             model_options: dict[str, dict[str, Any]] | None = None,
             together: bool | None = EvaluationSettings.together, done: EvaluationResult | None = None,
             on_network: Callable[[EvaluationResult], None] | None = None,
             network_checkpoint: str | Path | None = None, jobs: int = EvaluationSettings.jobs,
             ) -> EvaluationResult:
    """Train ``runs`` fresh networks of each model on ``synthetic``; test on ``test``.

    Args:
        synthetic: the condensed set.
        test: the real test split (normalised with the synthetic set's mean/std).
        models: registry names (default: the ConvNet of the image size, ``convnet3`` up to
            32 px, instance norm, average pooling); ``alexnet``, ``vgg11``, ``resnet18``
            give the cross-architecture numbers.
        runs: fresh networks per model; the summary is mean and std of their *final*
            accuracy. The defaults and bounds of ``runs``, ``jobs`` and ``together``
            are those of :class:`datadam.evaluation_settings.EvaluationSettings`.
        train: the training protocol (:class:`TrainConfig`).
        model_options: constructor options per model name.
        together: train a model's ``runs`` networks at once as one stacked network
            (:func:`datadam.training.train_networks_together`: the same weights up to
            floating-point order). ``None``: on a GPU, for models without BatchNorm or
            dropout; a CPU is compute-bound and measured slower stacked.
        done: an earlier evaluation of the same set with the same settings and seed, cut
            short (e.g. by Ctrl-C) or with fewer ``runs``: its networks are kept and only
            the others are trained, so the result equals an uninterrupted evaluation.
        on_network: called with the result so far after every trained network (after a
            model's stacked networks when they train together), e.g. to save it.
        network_checkpoint: a file where the network in training is saved every 50
            epochs; an evaluation that finds the save of the same network goes on from it
            with the same result (with ``done`` and ``on_network``, an interruption costs
            at most 50 epochs). With ``jobs`` > 1, one file per network (``.MODEL.runN``).
        jobs: on a CPU, train this many networks at once, each in its own process with
            its share of the threads (:mod:`datadam.training_processes`); the same
            networks as one at a time, up to floating-point order.

    Returns:
        :class:`EvaluationResult` with accuracy, balanced accuracy, per-class accuracy
        (and AUC for two classes) of every run, and their mean and std; each run's
        ``train_seconds`` and ``test_seconds``, and their means. The progress bar counts
        each model's training epochs and its test images scored, as two tasks.

    Raises:
        ConfigError: ``runs`` or ``jobs`` below 1, an unknown model, a set of other
            classes or image shape than ``test``, ``together`` for a model with BatchNorm
            or dropout, ``jobs`` > 1 off the CPU or with ``together``, or a ``done`` of
            another evaluation.
    """
    test = as_image_dataset(test, split="test")  # tensors, (x, y) pairs and Datasets too
    train = train or TrainConfig()
    EvaluationSettings(runs=runs, jobs=jobs, together=together)  # the command line's bounds
    names, dev = _checked_request(synthetic, test, models, train, device, together, jobs)
    settings = _evaluation_settings(synthetic, test, names, runs, train, model_options or {}, seed, dev, jobs)
    kept = _networks_to_keep(done, settings) if done is not None else {}
    _check_networks_fit(synthetic, settings, train, dev, together)
    evaluation = _Evaluation.on_device(synthetic, test, train, settings, dev, progress, on_network,
                                       Path(network_checkpoint) if network_checkpoint else None)
    return evaluation.run(kept, together, done)


def _checked_request(synthetic: SyntheticSet, test: ImageDataset, models: list[str] | None,
                     train: TrainConfig, device: str, together: bool | None,
                     jobs: int) -> tuple[list[str], torch.device]:
    """The names of the models to evaluate (the default ConvNet if ``models`` is empty)
    and the device; :class:`ConfigError` for an unknown model, a set that ``test`` cannot
    test, a device ``train`` cannot run on, or ``jobs`` that cannot be had."""
    names = list(models or [default_model(tuple(synthetic.image_shape[1:]))])
    for name in names:
        model_registry.get_factory(name)  # unknown names fail before any training
    check_compatible(synthetic, test)
    dev = resolve_device(device)
    train.check_device(dev)
    if jobs > 1 and (dev.type != "cpu" or together):
        raise ConfigError("jobs > 1 trains networks in CPU processes: on a GPU, train them together")
    return names, dev


def _evaluation_settings(synthetic: SyntheticSet, test: ImageDataset, names: list[str], runs: int,
                         train: TrainConfig, options: dict[str, dict[str, Any]], seed: int,
                         dev: torch.device, jobs: int) -> dict[str, Any]:
    """Every setting of the evaluation, as its result records them: the set (with its
    digest), the test split, the models, the protocol (the augmentation the set was
    distilled with unless ``train`` names one), the seed and where it ran."""
    aug = train.augmentation or synthetic.metadata.get("config", {}).get("augmentation") \
        or preset_for(test)
    return {
        "synthetic": {**{k: synthetic.metadata.get(k) for k in
                         ("method", "dataset", "config", "iterations_done", "seed")},
                      "sha256": synthetic.sha256()},
        "ipc": synthetic.ipc, "test_dataset": test.name, "test_images": len(test),
        "models": names, "runs": runs, "train": asdict(train), "augmentation": aug,
        "model_options": options, "seed": seed, "device": str(dev), "jobs": jobs,
        "trained_together": {},
        "versions": software_versions(),
    }


def _check_networks_fit(synthetic: SyntheticSet, settings: dict[str, Any], train: TrainConfig,
                        dev: torch.device, together: bool | None) -> None:
    """Refuse, before any training (a late refusal would waste the earlier models'), a
    model of ``settings`` whose networks cannot train ``together`` as asked, or would not
    fit in ``dev``'s memory (all ``runs`` of it together, or ``jobs`` at once)."""
    options = settings["model_options"]
    for name in settings["models"]:
        probe = model_registry.create(name, synthetic.image_shape[0], len(synthetic.classes),
                                      synthetic.image_shape[1:], **options.get(name, {}))
        if together and not can_train_together(probe):
            raise ConfigError(f"{name} has BatchNorm or dropout: its networks cannot be trained "
                              "together; train them one at a time")
        check_training_memory(probe, tuple(synthetic.image_shape), min(train.batch, len(synthetic)), dev,
                              networks=settings["runs"] if together else settings["jobs"])


class _Evaluation:
    """An evaluation under way: its data on the device, its progress bar and the records
    of the networks tested so far, shared by the three ways of training a model's networks
    (one at a time, stacked together, in worker processes).

    Every network's record holds its training and its testing time apart
    (``train_seconds``, ``test_seconds``); the bar has a ``train MODEL`` task counting
    epochs and a ``test MODEL`` task counting the test images scored.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 synthetic: SyntheticSet, train: TrainConfig, augmentation: str,
                 options: dict[str, dict[str, Any]], settings: dict[str, Any], bar: Progress,
                 on_network: Callable[[EvaluationResult], None] | None, network_checkpoint: Path | None):
        self.images, self.labels = images, labels  # [N, C, H, W] normalised, [N], on the device
        self.test_x, self.test_y = test_x, test_y.cpu()  # [M, C, H, W] on the device, [M]
        self.synthetic, self.train, self.augmentation = synthetic, train, augmentation
        self.dsa = DSA.from_name(augmentation)
        self.options, self.settings, self.bar = options, settings, bar
        self.on_network, self.network_checkpoint = on_network, network_checkpoint
        self.device = images.device
        self.out: dict[str, list[dict[str, Any]]] = {}
        self.trained_together: dict[str, bool] = settings["trained_together"]
        self.test_tasks: dict[str, TaskID] = {}

    @classmethod
    def on_device(cls, synthetic: SyntheticSet, test: ImageDataset, train: TrainConfig,
                  settings: dict[str, Any], dev: torch.device, progress: bool | None,
                  on_network: Callable[[EvaluationResult], None] | None,
                  network_checkpoint: Path | None) -> _Evaluation:
        """The evaluation of ``synthetic`` on ``test`` with ``settings``
        (:func:`_evaluation_settings`), their images moved to ``dev``."""
        images, labels = synthetic.images.float().to(dev), synthetic.labels.to(dev)
        test_x = test.normalized(mean=synthetic.mean, std=synthetic.std).to(dev)
        return cls(images, labels, test_x, test.labels, synthetic, train, settings["augmentation"],
                   settings["model_options"], settings, progress_bar(progress), on_network,
                   network_checkpoint)

    def run(self, kept: dict[str, dict[int, dict[str, Any]]], together: bool | None,
            done: EvaluationResult | None) -> EvaluationResult:
        """Train and test the networks of every model but those ``kept`` from ``done``, the
        earlier evaluation (if any) that is gone on from."""
        runs, seed, jobs = self.settings["runs"], self.settings["seed"], self.settings["jobs"]
        with self.bar:
            for name in self.settings["models"]:
                earlier_together = bool(done and done.settings.get("trained_together", {}).get(name))
                self.model(name, runs, kept.get(name, {}), seed, together, jobs, earlier_together)
        return self.result()

    def result(self) -> EvaluationResult:
        finished = {name: sorted(records, key=lambda r: r["run"]) for name, records in self.out.items()}
        return EvaluationResult(finished, {name: _summary(r) for name, r in finished.items() if r},
                                dict(self.settings, trained_together=dict(self.trained_together)))

    def finished(self) -> None:
        """Hand the result so far to ``on_network``, after a network or a stacked group."""
        if self.on_network:
            self.on_network(self.result())

    def record(self, name: str, run: int, logits: torch.Tensor, train_seconds: float, test_seconds: float,
               flops: int) -> None:
        """Score ``logits [M, K]`` of ``name``'s network ``run`` and keep its record."""
        metrics = _metrics(logits.cpu(), self.test_y, len(self.synthetic.classes))
        metrics.update(run=run, train_seconds=round(train_seconds, 3), test_seconds=round(test_seconds, 3),
                       train_flops=flops)
        self.out[name].append(metrics)

    def network_key(self, name: str, run: int | list[int]) -> str:
        """What a mid-network save must match to be gone on from."""
        return json.dumps([self.settings["synthetic"]["sha256"], name, self.options.get(name, {}), run],
                          sort_keys=True, default=str)

    def tested(self, name: str, images: int) -> None:
        """Count ``images`` more test images scored by a network of ``name``."""
        task = self.test_tasks[name]
        self.bar.start_task(task)  # its clock starts at the first test image, not while training
        self.bar.advance(task, images)

    def score(self, name: str, net: nn.Module) -> tuple[torch.Tensor, float]:
        """``net``'s logits ``[M, K]`` on the test images and the seconds they took."""
        start = time.perf_counter()
        logits = predict(net, self.test_x, progress=lambda n: self.tested(name, n))
        wait_for(self.device)
        return logits, time.perf_counter() - start

    def model(self, name: str, runs: int, kept: dict[int, dict[str, Any]], seed: int, together: bool | None,
              jobs: int, earlier_together: bool) -> None:
        """Train and test the ``runs`` networks of model ``name`` but those ``kept`` from an
        earlier evaluation (``earlier_together``: whether that one stacked them)."""
        self.out[name] = [kept[run] for run in sorted(kept)]
        todo = [run for run in range(runs) if run not in kept]
        epochs, test_images = self.train.epochs, len(self.test_x)
        task = self.bar.add_task(f"train {name}", total=runs * epochs, completed=len(kept) * epochs)
        self.test_tasks[name] = self.bar.add_task(f"test {name}", total=runs * test_images,
                                                  completed=len(kept) * test_images, start=False)
        if not todo:
            self.trained_together[name] = earlier_together
            return
        shape, classes = tuple(self.synthetic.image_shape), len(self.synthetic.classes)
        seeds = [derive_seed(seed, run, _name_code(name)) for run in todo]
        nets = [model_registry.create(name, shape[0], classes, shape[1:], seed=s,
                                      **self.options.get(name, {})).to(self.device) for s in seeds]
        flops = training_flops(nets[0], shape, classes, len(self.images) * epochs)
        stacked = len(todo) > 1 and can_train_together(nets[0]) and (
            together if together is not None else self.device.type != "cpu")
        self.trained_together[name] = stacked
        if stacked:
            self.stacked(name, todo, nets, seeds, flops, task)
        elif jobs > 1:
            self.in_processes(name, todo, seeds, flops, task, jobs)
        else:
            self.one_at_a_time(name, todo, nets, seeds, flops, task)

    def one_at_a_time(self, name: str, todo: list[int], nets: list[nn.Module], seeds: list[int], flops: int,
                      task: TaskID) -> None:
        for run, net, net_seed in zip(todo, nets, seeds):
            own = _run_checkpoint(self.network_checkpoint, name, run)
            path = own if own and own.exists() else self.network_checkpoint  # own: saved by jobs
            saves = TrainingCheckpoint(path, self.network_key(name, run)) if path else None
            start = time.perf_counter()
            train_network(net, self.images, self.labels, self.train, self.dsa, net_seed,
                          progress=lambda: self.bar.advance(task), checkpoint=saves)
            wait_for(self.device)
            train_seconds = (saves.earlier_seconds if saves else 0.0) + time.perf_counter() - start
            logits, test_seconds = self.score(name, net)
            self.record(name, run, logits, train_seconds, test_seconds, flops)
            self.finished()

    def stacked(self, name: str, todo: list[int], nets: list[nn.Module], seeds: list[int], flops: int,
                task: TaskID) -> None:
        saves = (TrainingCheckpoint(self.network_checkpoint, self.network_key(name, todo))
                 if self.network_checkpoint else None)
        start = time.perf_counter()
        train_networks_together(nets, self.images, self.labels, self.train, self.dsa, seeds, checkpoint=saves,
                                progress=lambda: self.bar.advance(task, len(todo)))
        wait_for(self.device)
        # one stacked training: each network's share of it
        train_seconds = ((saves.earlier_seconds if saves else 0.0) + time.perf_counter() - start) / len(todo)
        for run, net in zip(todo, nets):
            logits, test_seconds = self.score(name, net)
            self.record(name, run, logits, train_seconds, test_seconds, flops)
        self.finished()

    def in_processes(self, name: str, todo: list[int], seeds: list[int], flops: int, task: TaskID,
                     jobs: int) -> None:
        if self.network_checkpoint:
            _hand_over_to_runs(self.network_checkpoint, name,
                               {run: self.network_key(name, run) for run in todo})
        limits = {"epochs": self.train.epochs, "images": len(self.test_x)}
        reported = {run: dict.fromkeys(limits, 0) for run in todo}

        def report(run: int, what: str, count: int) -> None:
            # A worker's progress comes on a queue of its own and may trail its network's
            # result: count each network's epochs and test images once, whenever they come.
            count = min(count, limits[what] - reported[run][what])
            if count <= 0:
                return
            reported[run][what] += count
            if what == "epochs":
                self.bar.advance(task, count)
            else:
                self.tested(name, count)

        def trained(job: NetworkJob, train_seconds: float, test_seconds: float, logits: torch.Tensor) -> None:
            for what, limit in limits.items():
                report(job.tag[1], what, limit)
            self.record(name, job.tag[1], logits, train_seconds, test_seconds, flops)
            self.finished()

        shape = tuple(self.synthetic.image_shape)
        train_in_processes(
            [NetworkJob((name, run), name, shape[0], len(self.synthetic.classes), shape[1:], net_seed,
                        self.options.get(name, {}), _run_checkpoint(self.network_checkpoint, name, run),
                        self.network_key(name, run)) for run, net_seed in zip(todo, seeds)],
            jobs, self.images, self.labels, self.test_x, self.train, self.augmentation,
            on_epoch=lambda tag: report(tag[1], "epochs", 1), on_trained=trained,
            on_tested=lambda tag, n: report(tag[1], "images", n))
