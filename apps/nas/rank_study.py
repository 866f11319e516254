"""Proxy quality: does training on a proxy rank architectures as the full data does?

For K architectures sampled from the NNI space, train each on the full training split
(the ground truth, cached in a JSON file so it is paid once) and on every proxy, score
all of them on the same real validation images, then measure per proxy: Spearman and
Kendall rank correlation with the full-data accuracies, the full-data accuracy of the
architecture the proxy would pick, the overlap of the top-k sets, and the time.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from datadam import data, records
from datadam.apps.nas import taskdata
from datadam.apps.nas.architecture import Architecture, SearchSpace, arch_key
from datadam.apps.nas.evaluator import FULL_TRAIN, PROXY_TRAIN, Task, load_training_data, train_and_validate
from datadam.apps.nas.full_data_cache import FullDataCache
from datadam.apps.nas.proxy import (
    FULL,
    Proxy,
    Split,
    make_proxy,
    matching_ipc,
    note_validation_overlap,
    split_validation,
)
from datadam.apps.nas.ranking import random_draws_summary, rank_quality
from datadam.apps.nas.record_kinds import STUDY, JsonRecord
from datadam.apps.nas.settings import RANDOM_IPC, StudySettings, TrialSettings
from datadam.data.base import ImageDataset
from datadam.distill.base import derive_seed
from datadam.errors import ConfigError
from datadam.training import TrainConfig

OnStep = Callable[[str, dict[str, Any]], None]


@dataclass
class StudyResult(JsonRecord):
    """Per-architecture accuracies and times, per-proxy quality, and all settings; saved as
    a ``nas_study`` record (``study.json``)."""

    KIND: ClassVar[str] = STUDY
    WHAT: ClassVar[str] = "NAS study"

    architectures: list[dict[str, Any]]
    proxies: dict[str, dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)


def sample_architectures(space: SearchSpace, count: int, seed: int, channel: int, num_classes: int,
                         im_size: tuple[int, int]) -> list[Architecture]:
    """``count`` distinct architectures drawn from the NNI model space with ``seed``."""
    import numpy as np

    from datadam.apps.nas.space import ConvNetSpace

    if not 2 <= count <= space.size:
        raise ConfigError(f"the study needs between 2 and {space.size} architectures "
                          f"(the size of the space), not {count}")
    model_space = ConvNetSpace(channel, num_classes, list(im_size), space.to_dict())
    mutables = model_space.simplify()
    rng = np.random.RandomState(seed % (2 ** 32))
    chosen: dict[str, Architecture] = {}
    while len(chosen) < count:
        sample: dict[str, Any] = {}
        for mutable in mutables.values():
            mutable.random(sample, rng)  # NNI's own sampler, seeded
        arch = {k: (v.item() if hasattr(v, "item") else v) for k, v in sample.items()}
        chosen.setdefault(arch_key(arch), arch)
    return list(chosen.values())


def study(dataset: Any, proxies: list[str], *, archs: int = StudySettings.archs,
          space: SearchSpace | None = None, proxy_train: dict[str, Any] | None = None,
          full_train: dict[str, Any] | None = None, validation: int = TrialSettings.validation,
          ipc: int | None = TrialSettings.ipc, top_k: int = StudySettings.top_k, seed: int = 0,
          root: str | Path | None = None, dataset_options: dict[str, Any] | None = None,
          device: str = "cpu", cache: str | Path | None = None, on_step: OnStep | None = None) -> StudyResult:
    """Measure how well each proxy ranks ``archs`` sampled architectures.

    Args:
        dataset: a registered dataset's name, or the training data itself: anything
            :func:`datadam.data.as_image_dataset` takes, or the path of a data file
            (``datadam.apps.nas.save_data``), as :class:`~datadam.apps.nas.evaluator.Task`
            takes it.
        proxies: synthetic set paths and/or ``random`` (a class-balanced real subset
            with as many images per class as the first synthetic set, or ``ipc``).
        proxy_train: :class:`~datadam.evaluate.TrainConfig` fields of proxy training
            that differ from ``PROXY_TRAIN`` (:mod:`datadam.apps.nas.evaluator`).
        full_train: the same for full-data training, against ``FULL_TRAIN``.
        validation: real training images held out to score every network.
        root: where a registered dataset is read from (its default place when None).
        dataset_options: options of a registered dataset's loader.
        cache: JSON file of full-data results (read, and extended as they come); data
            given in Python is keyed there by a fingerprint of its images and labels.
        on_step: called with ``(proxy name, record)`` after each training.
    """
    _check_proxy_list(proxies)
    space = space or SearchSpace()
    proxy_cfg = TrainConfig(**(asdict(PROXY_TRAIN) | (proxy_train or {})))
    full_cfg = TrainConfig(**(asdict(FULL_TRAIN) | (full_train or {})))
    train, name, fingerprint = _training_data(dataset, root, dataset_options)
    space.check_image_size(train.image_size)
    split = split_validation(train, validation, seed)
    ipc = ipc or matching_ipc(proxies, split.train, RANDOM_IPC)
    made = _made_proxies(proxies, split, ipc, seed)
    full = make_proxy(FULL, split.train, ipc, seed)
    rows = [{"arch": a, "key": arch_key(a)} for a in
            sample_architectures(space, archs, seed, train.channels, train.num_classes, train.image_size)]
    store = FullDataCache(cache)
    start = time.perf_counter()
    keys = [store.key(fingerprint or name, dataset_options, split.details, row["arch"], full_cfg, seed)
            for row in rows]
    cached = _train_on_full_data(rows, keys, store, full, split, full_cfg, seed, device, on_step)
    for proxy in made:
        _train_on_proxy(rows, proxy, split, proxy_cfg, seed, device, on_step)
    cost = _Cost(rows, train, validation)
    full_flops = cost.per_arch(len(full), full_cfg)
    quality = {proxy.name: _proxy_quality(rows, proxy, proxy_cfg, top_k, cost, full_flops) for proxy in made}
    settings = {
        "dataset": name, "dataset_options": dataset_options or {},
        "data_fingerprint": fingerprint, "split": split.details,
        "archs": archs, "space": space.to_dict(), "space_size": space.size,
        "proxy_train": asdict(proxy_cfg), "full_train": asdict(full_cfg), "ipc": ipc, "top_k": top_k,
        "seed": seed, "device": device, "cache": str(cache) if cache else None,
        "full_data": _full_data_summary(rows, len(full), full_flops, cached),
        "study_seconds": round(time.perf_counter() - start, 3),
        "versions": records.software_versions(),
    }
    settings["random_draws"] = random_draws_summary(quality)
    return StudyResult(rows, quality, settings)


def _check_proxy_list(proxies: list[str]) -> None:
    if not proxies:
        raise ConfigError("name at least one proxy (a synthetic set or 'random')")
    if FULL in proxies:
        raise ConfigError("'full' is the ground truth of every study, not a proxy to list")
    if len(set(proxies)) != len(proxies):
        raise ConfigError(f"a proxy is listed twice: {proxies}")


def _training_data(dataset: Any, root: str | Path | None, dataset_options: dict[str, Any] | None
                   ) -> tuple[ImageDataset, str, str | None]:
    """The training split of ``dataset``, its name, and for data given in Python
    ``data:<fingerprint>`` (what names it in the full-data cache instead of the name)."""
    if isinstance(dataset, str):
        return data.load(dataset, root, "train", **(dataset_options or {})), dataset, None
    train = load_training_data(Task(data=dataset))
    return train, train.name, f"data:{taskdata.fingerprint(train)}"


def _made_proxies(specs: list[str], split: Split, ipc: int, seed: int) -> list[Proxy]:
    made = [make_proxy(spec, split.train, ipc, derive_seed(seed, 1)) for spec in specs]
    for proxy in made:
        note_validation_overlap(proxy, split)
    if len({p.name for p in made}) != len(made):
        raise ConfigError("two proxies have the same name (a file name, or random and random:0); "
                          "rename or drop one")
    return made


def _train_on_full_data(rows: list[dict[str, Any]], keys: list[str], store: FullDataCache, full: Proxy,
                        split: Split, train: TrainConfig, seed: int, device: str,
                        on_step: OnStep | None) -> int:
    """Fill ``row["full"]`` of every row, from ``store`` or by training (then stored);
    returns how many came from ``store``."""
    cached = 0
    for row, key in zip(rows, keys):
        record = store.get(key)
        if record is None:
            record = train_and_validate(row["arch"], full, split, train, seed, device=device)
            record["machine"] = platform.processor() or platform.machine()
            store.put(key, record)
        else:
            cached += 1
        row[FULL] = _timed(record)
        if on_step is not None:
            on_step(FULL, row)
    return cached


def _train_on_proxy(rows: list[dict[str, Any]], proxy: Proxy, split: Split, train: TrainConfig, seed: int,
                    device: str, on_step: OnStep | None) -> None:
    """Fill ``row[proxy.name]`` of every row by training on ``proxy``."""
    for row in rows:
        record = train_and_validate(row["arch"], proxy, split, train, seed, device=device)
        row[proxy.name] = _timed(record)
        if on_step is not None:
            on_step(proxy.name, row)


class _Cost:
    """The FLOPs of training and scoring the study's architectures (the same for every
    training set but for its size and epochs)."""

    def __init__(self, rows: list[dict[str, Any]], train: ImageDataset, validation: int):
        self.per_image = [image_flops(r["arch"], train.channels, train.num_classes, train.image_size)
                          for r in rows]
        self.validation = validation

    def per_arch(self, images: int, train: TrainConfig) -> float:
        """Mean FLOPs per architecture of training on ``images`` and scoring the validation split."""
        return sum(t * images * train.epochs + f * self.validation
                   for t, f in self.per_image) / len(self.per_image)


def _proxy_quality(rows: list[dict[str, Any]], proxy: Proxy, train: TrainConfig, top_k: int,
                   cost: _Cost, full_flops: float) -> dict[str, Any]:
    """How well ``proxy`` ranks ``rows`` against the full data, and what it costs against
    the full data's ``full_flops`` per architecture."""
    acc = [r[proxy.name]["accuracy"] for r in rows]
    q = rank_quality(acc, [r[FULL]["accuracy"] for r in rows], top_k)
    q["chosen_arch"] = rows[q["chosen_index"]]["key"]
    seconds = sum(r[proxy.name]["seconds"] for r in rows) / len(rows)
    full_seconds = sum(r[FULL]["seconds"] for r in rows) / len(rows)
    flops = cost.per_arch(len(proxy), train)
    q.update(seconds_per_arch=round(seconds, 4), total_seconds=round(seconds * len(rows), 3),
             speedup_vs_full=round(full_seconds / seconds, 2) if seconds else None,
             flops_per_arch=flops, flops_speedup_vs_full=round(full_flops / flops, 2),
             accuracy_mean=sum(acc) / len(acc), accuracy_min=min(acc), accuracy_max=max(acc),
             details=proxy.details | {"kind": proxy.kind})
    return q


def _full_data_summary(rows: list[dict[str, Any]], images: int, flops: float, cached: int) -> dict[str, Any]:
    full_acc = [r[FULL]["accuracy"] for r in rows]
    return {"images": images, "seconds_per_arch": round(sum(r[FULL]["seconds"] for r in rows) / len(rows), 4),
            "flops_per_arch": flops, "cached_archs": cached, "accuracy_mean": statistics.fmean(full_acc),
            "accuracy_std": statistics.pstdev(full_acc), "accuracy_min": min(full_acc),
            "accuracy_max": max(full_acc)}


def image_flops(arch: Architecture, channel: int, num_classes: int,
                im_size: tuple[int, int]) -> tuple[int, int]:
    """FLOPs per image of ``arch``: one training step (forward + backward) and one forward.

    The machine-independent cost of a trial, next to its seconds (which another job on
    the same cores can stretch). Augmentation and optimiser arithmetic are left out.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from datadam.apps.nas.architecture import build_network
    from datadam.evaluate import training_flops

    net = build_network(arch, channel, num_classes, im_size, seed=0)
    train = training_flops(net, (channel, *im_size), num_classes, 1)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net.eval()
        net(torch.zeros(2, channel, *im_size))
    return train, counter.get_total_flops() // 2


def _timed(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("accuracy", "seconds", "train_seconds", "eval_seconds", "warm_up_seconds")}
