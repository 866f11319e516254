"""Replay memories for Avalanche: a distilled one, and the real-image baselines it is
compared with, all built by name with :func:`make_buffer`.

Every memory here is counted in images. ``ipc`` is the fixed budget per class (the papers'
setting, "10 images per class"); the total is ``ipc * num_classes``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset
from avalanche.training.storage_policy import (
    ClassBalancedBuffer,
    ExemplarsBuffer,
    HerdingSelectionStrategy,
    ParametricBuffer,
)
from torch import nn
from torch.utils.data import DataLoader

import datadam
from datadam.data.base import ImageDataset
from datadam.distill.base import derive_seed
from datadam.errors import ConfigError, UnknownNameError
from datadam.synthetic import SyntheticSet


class DistilledBuffer(ExemplarsBuffer):
    """A replay memory of condensed images: after each experience, the classes of that
    experience are distilled from that experience's data alone (earlier data is gone)
    and their synthetic images join those of earlier classes.

    Args:
        max_size: memory in images, over all classes.
        adaptive_size: divide ``max_size`` over the classes seen so far (Avalanche's
            convention); earlier classes then lose their last images when new ones come.
            ``False`` gives each class ``max_size // total_num_classes`` images for good.
        total_num_classes: the number of classes of the whole stream (with
            ``adaptive_size=False``).
        method: ``datadam`` or ``dm`` (any :func:`datadam.distill` method works).
        synthetic: a precomputed :class:`~datadam.synthetic.SyntheticSet` whose labels are
            the stream's class ids; its images of each experience's classes are used
            instead of distilling.
        dataset: the dataset's registry name (``mnist``, ``mhist``): picks the DSA preset.
        device: where to distill (``auto``, ``cpu``, ``cuda``).
        progress: show a progress bar per distillation (None: only on a terminal).
        cache_dir: keep each distilled set here, keyed by a hash of the experience's
            images and every setting, so an identical experience is condensed once.
        seed: seeds every distillation (with the experience's classes).
        **distill_options: any :class:`~datadam.distill.DistillConfig` field
            (``iterations``, ``batch_real``, ``attention_power``...).

    The images are stored as the learner sees them (the benchmark's normalisation), so
    the synthetic set lives in the same space as the real minibatches it is replayed with.

    Example::

        from avalanche.training import Naive
        from avalanche.training.plugins import ReplayPlugin
        from datadam.apps.continual import DistilledBuffer

        memory = DistilledBuffer(100, adaptive_size=False, total_num_classes=10,
                                 dataset="mnist", iterations=500)
        strategy = Naive(model, optimizer, criterion,
                         plugins=[ReplayPlugin(mem_size=100, storage_policy=memory)])
        for experience in benchmark.train_stream:
            strategy.train(experience)
    """

    def __init__(self, max_size: int, *, adaptive_size: bool = True,
                 total_num_classes: int | None = None, method: str = "datadam",
                 synthetic: SyntheticSet | None = None, dataset: str = "continual",
                 device: str = "auto", progress: bool | None = None,
                 cache_dir: str | Path | None = None, seed: int = 0, **distill_options: Any):
        super().__init__(max_size)
        if not adaptive_size and not total_num_classes:
            raise ConfigError("a fixed per-class budget (adaptive_size=False) needs total_num_classes")
        if total_num_classes and max_size < total_num_classes:
            raise ConfigError(f"a memory of {max_size} images cannot hold one image for each of "
                              f"{total_num_classes} classes")
        self.adaptive_size = adaptive_size
        self.total_num_classes = total_num_classes
        self.method = method
        self.synthetic = synthetic
        self.dataset = dataset
        self.device = device
        self.progress = progress
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.seed = seed
        self.distill_options = distill_options
        self.images: dict[int, torch.Tensor] = {}  # class id -> [n_c, C, H, W]
        self.distilled: list[dict[str, Any]] = []  # what each post_adapt condensed, for reports

    # -- budgets ------------------------------------------------------------------------
    def class_budgets(self, classes: list[int]) -> dict[int, int]:
        """Images per class for ``classes`` (all classes held after an update)."""
        if not self.adaptive_size:
            return {c: self.max_size // self.total_num_classes for c in classes}
        base, extra = divmod(self.max_size, max(len(classes), 1))
        return {c: base + (1 if i < extra else 0) for i, c in enumerate(sorted(classes))}

    # -- Avalanche hooks ----------------------------------------------------------------
    def post_adapt(self, agent: Any, exp: Any) -> None:
        """Condense the classes of ``exp`` from ``exp.dataset`` and add them to the memory."""
        images, labels = _tensors_of(exp.dataset)
        new_classes = sorted(set(labels.tolist()))
        budgets = self.class_budgets(sorted(set(self.images) | set(new_classes)))
        if min(budgets.values()) < 1:
            raise ConfigError(f"a memory of {self.max_size} images cannot hold one image for each of "
                              f"{len(budgets)} classes")
        ipc = max(budgets[c] for c in new_classes)
        condensed = self._condense(images, labels, new_classes, ipc)
        for c in new_classes:
            self.images[c] = condensed[c]
        self._shrink_to(budgets)

    def resize(self, strategy: Any, new_size: int) -> None:
        """Change the memory to ``new_size`` images; each class keeps its first images."""
        self.max_size = new_size
        self._shrink_to(self.class_budgets(sorted(self.images)))

    # -- internals ----------------------------------------------------------------------
    def _condense(self, images: torch.Tensor, labels: torch.Tensor, classes: list[int],
                  ipc: int) -> dict[int, torch.Tensor]:
        if self.synthetic is not None:
            return self._from_precomputed(images, classes, ipc)
        local = torch.searchsorted(torch.tensor(classes), labels)
        data = ImageDataset(
            images, local, [str(c) for c in classes],
            # the images are already normalised by the benchmark: distil in that space
            mean=(0.0,) * images.shape[1], std=(1.0,) * images.shape[1],
            split="train", name=self.dataset, source="avalanche experience")
        seed = derive_seed(self.seed, *classes)
        syn = self._cached(data, ipc, seed)
        self.distilled.append({"classes": classes, "ipc": ipc, "method": self.method,
                               "seconds": syn.metadata.get("wall_time_s"),
                               "final_loss": (syn.metadata.get("loss_history") or [None])[-1]})
        return {c: syn.images[syn.labels == k] for k, c in enumerate(classes)}

    def _cached(self, data: ImageDataset, ipc: int, seed: int) -> SyntheticSet:
        settings = {"method": self.method, "ipc": ipc, "seed": seed, "dataset": self.dataset,
                    **self.distill_options}

        def run() -> SyntheticSet:
            return datadam.distill(data, method=self.method, ipc=ipc, seed=seed, device=self.device,
                                   progress=self.progress, **self.distill_options)

        if self.cache_dir is None:
            return run()
        digest = hashlib.sha256()
        digest.update(data.images.contiguous().numpy().tobytes())
        digest.update(data.labels.numpy().tobytes())
        digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
        path = self.cache_dir / f"{self.method}-{digest.hexdigest()[:24]}.safetensors"
        if path.exists():
            return SyntheticSet.load(path)
        syn = run()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        syn.save(path)
        return syn

    def _from_precomputed(self, images: torch.Tensor, classes: list[int],
                          ipc: int) -> dict[int, torch.Tensor]:
        syn = self.synthetic
        if tuple(syn.image_shape) != tuple(images.shape[1:]):
            raise ConfigError(f"the synthetic set's images are {tuple(syn.image_shape)}, the "
                              f"experience's are {tuple(images.shape[1:])}")
        out = {}
        for c in classes:
            mine = syn.images[syn.labels == c]
            if len(mine) < ipc:
                raise ConfigError(f"the synthetic set has {len(mine)} image(s) of class {c}; the "
                                  f"memory wants {ipc}")
            out[c] = mine[:ipc]
        return out

    def _shrink_to(self, budgets: dict[int, int]) -> None:
        for c in list(self.images):
            self.images[c] = self.images[c][: budgets.get(c, 0)]
        self.buffer = as_avalanche_dataset(*self._stacked())

    def _stacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.images:
            return torch.zeros(0), torch.zeros(0, dtype=torch.int64)
        classes = sorted(self.images)
        x = torch.cat([self.images[c] for c in classes])
        y = torch.cat([torch.full((len(self.images[c]),), c, dtype=torch.int64) for c in classes])
        return x, y


def as_avalanche_dataset(images: torch.Tensor, labels: torch.Tensor) -> Any:
    """An Avalanche classification dataset of ``(image, label, task 0)`` triples, the form
    every stream built by :mod:`datadam.apps.continual.benchmarks` has, so real and
    replayed minibatches collate together."""
    return _make_taskaware_tensor_classification_dataset(images, labels, targets=labels,
                                                         task_labels=0)


def _tensors_of(dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """All ``(images [N, C, H, W], labels [N])`` of an Avalanche dataset, without its
    training augmentation."""
    plain = dataset.eval() if hasattr(dataset, "eval") else dataset
    xs, ys = [], []
    for batch in DataLoader(plain, batch_size=2048, shuffle=False):
        xs.append(batch[0])
        ys.append(torch.as_tensor(batch[1]))
    return torch.cat(xs), torch.cat(ys).to(torch.int64)


# -- the real-image baselines ---------------------------------------------------------------

class _LearnerEmbedding(nn.Module):
    """The feature vector of whichever model is ``target`` (the strategy's model at the
    moment of selection): the last-layer embedding of a datadam ConvNet, else the logits."""

    def __init__(self) -> None:
        super().__init__()
        self.target: nn.Module | None = None
        self.embedding = nn.Identity()  # the layer Avalanche's feature extractor hooks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.target
        features = net.forward_features(x).embedding if hasattr(net, "forward_features") else net(x)
        return self.embedding(features.flatten(1))


class LearnerHerding(HerdingSelectionStrategy):
    """Avalanche's iCaRL herding on the features of the strategy's current model.

    Avalanche's :class:`HerdingSelectionStrategy` binds one model at construction; a
    strategy that retrains from scratch replaces its model, so this one looks it up at
    every selection. The model's train/eval mode is restored afterwards.
    """

    def __init__(self) -> None:
        self.view = _LearnerEmbedding()
        super().__init__(self.view, "embedding")

    def make_sorted_indices(self, strategy: Any, data: Any) -> list[int]:
        model = strategy.model
        was_training = model.training
        self.view.target = model
        try:
            return super().make_sorted_indices(strategy, data)
        finally:
            self.view.target = None
            model.train(was_training)


class ClassBalancedHerdingBuffer(ParametricBuffer):
    """Avalanche's :class:`ParametricBuffer` grouped by class with :class:`LearnerHerding`;
    with ``total_num_classes`` each class keeps a fixed ``max_size // total_num_classes``
    images (Avalanche's ParametricBuffer only divides over the classes seen so far)."""

    def __init__(self, max_size: int, total_num_classes: int | None = None):
        super().__init__(max_size, groupby="class", selection_strategy=LearnerHerding())
        if total_num_classes:
            self.adaptive_size = False
            self.total_num_groups = total_num_classes


BufferFactory = Callable[..., ExemplarsBuffer]


def _random(ipc: int, num_classes: int, **_: Any) -> ExemplarsBuffer:
    return ClassBalancedBuffer(ipc * num_classes, adaptive_size=False, total_num_classes=num_classes)


def _herding(ipc: int, num_classes: int, **_: Any) -> ExemplarsBuffer:
    return ClassBalancedHerdingBuffer(ipc * num_classes, total_num_classes=num_classes)


def _distilled(method: str) -> BufferFactory:
    def factory(ipc: int, num_classes: int, **options: Any) -> ExemplarsBuffer:
        return DistilledBuffer(ipc * num_classes, adaptive_size=False, total_num_classes=num_classes,
                               method=method, **options)
    return factory


BUFFERS: dict[str, BufferFactory] = {
    "random": _random,        # Avalanche's class-balanced reservoir
    "herding": _herding,      # Avalanche's ParametricBuffer + herding selection
    "dm": _distilled("dm"),
    "datadam": _distilled("datadam"),
}


def available_buffers() -> list[str]:
    """Names :func:`make_buffer` knows."""
    return list(BUFFERS)


def make_buffer(name: str, ipc: int, num_classes: int, **options: Any) -> ExemplarsBuffer:
    """A class-balanced replay memory of ``ipc`` images per class, by name.

    Args:
        name: ``random``, ``herding``, ``dm`` or ``datadam``.
        ipc: images per class; the memory holds ``ipc * num_classes`` images in the end.
        num_classes: classes of the whole stream.
        **options: for the distilled memories, :class:`DistilledBuffer` options
            (``dataset``, ``device``, ``cache_dir``, ``seed``, ``iterations``...); the real
            baselines ignore them.
    """
    if name not in BUFFERS:
        raise UnknownNameError("buffer", name, list(BUFFERS))
    if ipc < 1:
        raise ConfigError(f"a memory needs at least one image per class, not ipc={ipc}")
    return BUFFERS[name](ipc, num_classes, **options)
