"""The comparison of replay memories at equal memory, over several class orders.

Examples:
    >>> config = ContinualConfig(buffers=("random", "datadam"))                 # doctest: +SKIP
    >>> result = compare_buffers(train, test, config)                           # doctest: +SKIP
    >>> result["summary"]["datadam"]["final_accuracy_mean"]                     # doctest: +SKIP

Every (class order, buffer) run is one Avalanche stream: the learner sees the
experiences in turn and is tested after each on the test data of the classes seen so
far. Runs with the same class order share the initial weights of the learner and the
augmentation seed, so buffers are compared on paired runs.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from datadam import models as model_registry
from datadam import records
from datadam.apps.continual.benchmarks import (
    balanced_subset,
    class_incremental,
    class_orders,
    default_experiences,
)
from datadam.apps.continual.buffers import available_buffers, make_buffer
from datadam.apps.continual.protocols import PROTOCOLS, LearnerConfig, make_strategy
from datadam.apps.continual.record_kinds import RESULTS
from datadam.apps.continual.settings import ContinualSettings
from datadam.augment import DSA, preset_for
from datadam.data import as_image_dataset
from datadam.data.base import ImageDataset
from datadam.distill.base import derive_seed, resolve_device
from datadam.errors import ConfigError, UnknownNameError
from datadam.files import write_json
from datadam.progress import progress_bar
from datadam.settings import check_bounds

NO_REPLAY = "none"  # fine-tuning without memory, the replay protocol's lower bound


@dataclass(frozen=True)
class ContinualConfig(ContinualSettings):
    """Every setting of a comparison; ``None`` means the protocol's default.

    Attributes:
        buffers: memories to compare (``random``, ``herding``, ``dm``, ``datadam``; and
            ``none``, no replay, in the replay protocol).
        ipc: memory per class in images (the total is ``ipc * classes``).
        orders: class orders (the natural order, then seeded permutations).
        protocol: ``retrain`` (a model trained from scratch on the memory at each step,
            the papers' protocol) or ``replay`` (fine-tuning with replay).
        experiences: experiences of the stream (default: 5 for MNIST, 2 for MHIST).
        model: the learner (a datadam registry name).
        model_options: its constructor options, e.g. ``{"net_width": 64}``.
        epochs: training epochs per experience (default: 1 for replay, 150 for retrain).
        batch: minibatch (default: 128 for replay, 256 for retrain).
        lr: SGD learning rate (momentum 0.9, weight decay 5e-4).
        train_per_class, test_per_class: use at most this many images of each class
            (a seeded, class-balanced draw; None: all).
        distill: options of the distilled memories (``iterations``, ``batch_real``...).
        seed: fixes class orders, initial weights, augmentation and distillation.

    Its fields, each with its help and bounds, are
    :class:`~datadam.apps.continual.settings.ContinualSettings`'s.
    """

    def learner(self) -> LearnerConfig:
        retrain = self.protocol == "retrain"
        return LearnerConfig(epochs=self.epochs or (150 if retrain else 1),
                             batch=self.batch or (256 if retrain else 128), lr=self.lr)

    def validate(self, train: ImageDataset) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"unknown protocol {self.protocol!r}; choose from {', '.join(PROTOCOLS)}")
        known = available_buffers() + ([NO_REPLAY] if self.protocol == "replay" else [])
        for name in self.buffers:
            if name not in known:
                raise UnknownNameError("buffer", name, known)
        if not self.buffers:
            raise ConfigError("name at least one buffer")
        if self.ipc < 1:
            raise ConfigError(f"a memory of {self.ipc * train.num_classes} images cannot hold one "
                              f"image for each of {train.num_classes} classes")
        if self.orders < 1:
            raise ConfigError("orders must be at least 1")
        check_bounds(self)  # experiences, epochs, batch, lr, train_per_class, test_per_class
        smallest = min(train.class_counts().items(), key=lambda kv: kv[1])
        if smallest[1] < self.ipc:
            raise ConfigError(f"ipc={self.ipc} is larger than class {smallest[0]!r}, which has "
                              f"{smallest[1]} training image(s) in its experience")
        model_registry.create(self.model, train.channels, train.num_classes, train.image_size,
                              **self.model_options)  # a bad name or option fails before any run


def compare_buffers(train: Any, test: Any, config: ContinualConfig | None = None, *,
                    device: str = "auto", progress: bool | None = None,
                    results: str | Path | None = None, cache_dir: str | Path | None = None
                    ) -> dict[str, Any]:
    """Run every buffer on every class order and summarise.

    Args:
        train: the training split: an :class:`~datadam.data.base.ImageDataset`, or anything
            :func:`datadam.data.as_image_dataset` takes (``(images, labels)`` tensors, a
            ``TensorDataset``, a torchvision-style dataset).
        test: the test split of the same dataset, likewise.
        config: the settings (:class:`ContinualConfig`).
        results: a JSON file to write after every run; if it exists with the same
            settings, the runs it holds are kept and only the missing ones run (resume).
        cache_dir: where distilled memories keep their synthetic sets (see
            :class:`~datadam.apps.continual.buffers.DistilledBuffer`), so the two protocols
            condense each experience once.

    Returns:
        ``{"settings", "runs", "summary"}``: per run, the accuracy on the classes seen
        after each experience, per-experience accuracy and forgetting; per buffer, the
        mean and std over orders of the final accuracy and of every step.
    """
    config = config or ContinualConfig()
    train, test = as_image_dataset(train), as_image_dataset(test, split="test")
    train = balanced_subset(train, config.train_per_class, seed=config.seed)
    test = balanced_subset(test, config.test_per_class, seed=config.seed + 1)
    config = replace(config, experiences=config.experiences or default_experiences(train))
    config.validate(train)
    dev = resolve_device(device)
    orders = class_orders(train.num_classes, config.orders, seed=config.seed)
    settings = _settings(config, train, test, orders)
    path = Path(results) if results else None
    runs = _resume(path, settings)
    settings["buffers"] = list(dict.fromkeys([*(r["buffer"] for r in runs), *config.buffers]))
    done = {(r["order_index"], r["buffer"]) for r in runs}
    todo = [(i, b) for i in range(len(orders)) for b in config.buffers if (i, b) not in done]
    bar = progress_bar(progress)
    with bar:
        task = bar.add_task("continual", total=len(todo) * config.experiences)
        for order_index, name in todo:
            bar.update(task, description=f"order {order_index + 1}/{len(orders)} · {name}")
            runs.append(_run_stream(train, test, name, order_index, orders[order_index], config, dev,
                                    cache_dir, advance=lambda: bar.advance(task)))
            if path:
                write_json(path, _results(settings, runs))
    out = _results(settings, runs)
    if path:
        write_json(path, out)
    return out


def _run_stream(train: ImageDataset, test: ImageDataset, name: str, order_index: int,
                order: list[int], config: ContinualConfig, device: torch.device,
                cache_dir: str | Path | None, advance: Any) -> dict[str, Any]:
    bench = class_incremental(train, test, experiences=config.experiences, class_order=order)
    run_seed = derive_seed(config.seed, order_index)
    # Avalanche draws the random memory and the minibatch order from torch's global
    # generator: seeding it per run makes each run a function of its seed.
    torch.manual_seed(run_seed)
    net = model_registry.create(config.model, train.channels, train.num_classes, train.image_size,
                                seed=run_seed, **config.model_options).to(device)
    memory = None if name == NO_REPLAY else make_buffer(
        name, config.ipc, train.num_classes, dataset=train.name, device=str(device), progress=False,
        cache_dir=cache_dir, seed=config.seed, **config.distill)
    strategy = make_strategy(config.protocol, net, memory, config.learner(),
                             DSA.from_name(preset_for(train)), device=device, seed=run_seed)
    steps = []
    start = time.perf_counter()
    for t, experience in enumerate(bench.train_stream):
        strategy.train(experience)
        metrics = strategy.eval(bench.test_stream[: t + 1])
        seen = sorted(c for e in bench.train_stream[: t + 1] for c in e.classes_in_this_experience)
        steps.append({
            "experience": t,
            "classes": sorted(experience.classes_in_this_experience),
            "classes_seen": len(seen),
            "accuracy": _metric(metrics, "Top1_Acc_Stream/"),
            "accuracy_per_experience": [
                _metric(metrics, f"Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp{j:03d}")
                for j in range(t + 1)],
            "forgetting": _metric(metrics, "StreamForgetting/"),
            "memory_images": len(memory.buffer) if memory is not None else 0,
        })
        advance()
    return {
        "order_index": order_index,
        "class_order": order,
        "buffer": name,
        "final_accuracy": steps[-1]["accuracy"],
        "final_forgetting": steps[-1]["forgetting"],
        "steps": steps,
        "distilled": getattr(memory, "distilled", []),
        "seconds": round(time.perf_counter() - start, 1),
    }


def _metric(metrics: dict[str, Any], prefix: str) -> float | None:
    for key, value in metrics.items():
        if key.startswith(prefix):
            return round(float(value), 6)
    return None


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per buffer: mean and (population) std over class orders of the final accuracy
    and forgetting, and of the accuracy after every experience."""
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["buffer"] for r in runs):
        mine = [r for r in runs if r["buffer"] == name]
        finals = [r["final_accuracy"] for r in mine]
        steps = list(zip(*[[s["accuracy"] for s in r["steps"]] for r in mine]))
        out[name] = {
            "orders": len(mine),
            "final_accuracy_mean": statistics.fmean(finals),
            "final_accuracy_std": statistics.pstdev(finals),
            "final_forgetting_mean": statistics.fmean(r["final_forgetting"] or 0.0 for r in mine),
            "classes_seen": [s["classes_seen"] for s in mine[0]["steps"]],
            "accuracy_mean": [statistics.fmean(v) for v in steps],
            "accuracy_std": [statistics.pstdev(v) for v in steps],
            "seconds_mean": statistics.fmean(r["seconds"] for r in mine),
        }
    return out


def _settings(config: ContinualConfig, train: ImageDataset, test: ImageDataset,
              orders: list[list[int]]) -> dict[str, Any]:
    return {
        **asdict(config),
        "learner": asdict(config.learner()),
        "dataset": train.name, "classes": list(train.classes),
        "train_images": len(train), "test_images": len(test),
        "class_orders": orders,
        "augmentation": preset_for(train),
        "versions": records.software_versions(),
    }


def _results(settings: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``continual_results`` record of ``runs`` (what ``results.json`` holds)."""
    return records.stamp(RESULTS, {"settings": settings, "runs": runs, "summary": summarise(runs)})


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    # the buffer list may grow between resumed runs; versions do not change the results' meaning
    return {k: v for k, v in settings.items() if k not in ("buffers", "versions")}


def _resume(path: Path | None, settings: dict[str, Any]) -> list[dict[str, Any]]:
    if path is None or not path.exists():
        return []
    try:
        old = json.loads(path.read_text())
        if not isinstance(old, dict):
            raise TypeError("not a JSON object")
        old = records.migrate(RESULTS, old)
        old_settings, runs = old["settings"], list(old["runs"])
    except records.RecordVersionError:
        raise  # written by a newer datadam: its own message says so
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path} is not a continual-learning result file ({e})") from None
    # the new settings go through JSON once so that tuples compare equal to the file's lists
    if _comparable(old_settings) != _comparable(json.loads(json.dumps(settings))):
        raise ConfigError(f"{path} holds runs with other settings; choose another output")
    return runs


