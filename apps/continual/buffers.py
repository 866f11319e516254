"""Replay memories for Avalanche: a distilled one, and the real-image baselines it is
compared with, all built by name with :func:`make_buffer`.

Every memory here is counted in images. ``ipc`` is the fixed budget per class (the papers'
setting, "10 images per class"); the total is ``ipc * num_classes``.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from avalanche.benchmarks.utils import DataAttribute, TaskAwareSupervisedClassificationDataset
from avalanche.training.storage_policy import (
    ClassBalancedBuffer,
    ExemplarsBuffer,
    HerdingSelectionStrategy,
    ParametricBuffer,
)
from torch import nn
from torch.utils.data import DataLoader, Dataset

import datadam
from datadam.augment import preset_for
from datadam.data.base import ImageDataset
from datadam.distill.base import derive_seed
from datadam.errors import ConfigError, UnknownNameError
from datadam.synthetic import SyntheticSet

#: Distillation iterations per experience. A published distillation runs 20,000 once;
#: a continual memory distils after every experience, so its budget is a few hundred.
DEFAULT_ITERATIONS = 200

Group = tuple[int, int]  # (task label, class id): the memory keeps images of each group


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
            ``adaptive_size=False``); on a task-aware stream whose class ids restart in
            each task, a class counts once per task.
        method: ``datadam`` or ``dm`` (any :func:`datadam.distill` method works).
        iterations: distillation iterations per experience (default
            :data:`DEFAULT_ITERATIONS`, 200; the papers' 20,000 would take hours per
            experience on a CPU). docs/continual.md gives the measured cost.
        augmentation: the DSA preset of the distillation (``digits``, ``natural``,
            ``none`` or families). None: from the experience's images
            (:func:`datadam.augment.preset_for`): no flips for 1-channel images of at
            most 32 pixels a side (digits, characters), every family otherwise.
        synthetic: a precomputed :class:`~datadam.synthetic.SyntheticSet` whose labels are
            the stream's class ids; its images of each experience's classes are used
            instead of distilling, brought to the stream's normalisation (``normalize``).
        normalize: ``(mean, std)``, one value per channel on the ``[0, 1]`` scale: the
            normalisation of the stream's images, for ``synthetic``. None: read from the
            first experience's images: within ``[0, 1]``, the stream is taken as
            unnormalised; spanning the set's own normalised range, as normalised with the
            set's ``mean``/``std``; any other range is refused (pass ``normalize``).
        dataset: a name for the data in each distilled set's metadata (default
            ``experience``); the augmentation follows the images, not this name.
        device: where to distill (``auto``, ``cpu``, ``cuda``).
        progress: show a progress bar per distillation (None: only on a terminal).
        cache_dir: keep each distilled set here, keyed by a hash of the experience's
            images and every setting, so an identical experience is condensed once.
        seed: seeds every distillation (with the experience's classes).
        **distill_options: any other :class:`~datadam.distill.DistillConfig` field
            (``batch_real``, ``attention_power``...).

    The images are stored as the learner sees them (the stream's normalisation), ``[n_c,
    C, H, W]`` per (task label, class id) in :attr:`images`, and replayed with the task
    label of the experience they came from.

    Before an experience trains, :meth:`pre_adapt` refuses (a one-line ``ConfigError``) a
    memory it cannot fill: more images per class than the experience has of a class, or
    a precomputed set with too few. :class:`~datadam.apps.continual.protocols.DistilledReplayPlugin`
    calls it; Avalanche's own ``ReplayPlugin`` does not, so there the refusal comes when
    the experience has trained.

    Example::

        from avalanche.training import Naive
        from datadam.apps.continual import DistilledBuffer, DistilledReplayPlugin

        memory = DistilledBuffer(100, adaptive_size=False, total_num_classes=10)
        strategy = Naive(model, optimizer, criterion, plugins=[DistilledReplayPlugin(memory)])
        for experience in benchmark.train_stream:
            strategy.train(experience)
    """

    def __init__(self, max_size: int, *, adaptive_size: bool = True,
                 total_num_classes: int | None = None, method: str = "datadam",
                 iterations: int = DEFAULT_ITERATIONS, augmentation: str | None = None,
                 synthetic: SyntheticSet | None = None,
                 normalize: tuple[Sequence[float], Sequence[float]] | None = None,
                 dataset: str | None = None, device: str = "auto", progress: bool | None = None,
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
        self.iterations = iterations
        self.augmentation = augmentation
        self.synthetic = synthetic
        self.normalize = normalize
        self.dataset = dataset
        self.device = device
        self.progress = progress
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.seed = seed
        self.distill_options = distill_options
        self.images: dict[Group, torch.Tensor] = {}  # (task, class) -> [n_c, C, H, W]
        self.distilled: list[dict[str, Any]] = []  # what each post_adapt condensed, for reports
        self._read: tuple[Any, _Experience] | None = None  # pre_adapt's read, for post_adapt
        self._synthetic_images: torch.Tensor | None = None  # the set in the stream's space

    # -- budgets ------------------------------------------------------------------------
    def class_budgets(self, groups: list[Group]) -> dict[Group, int]:
        """Images per (task label, class id) for ``groups`` (all held after an update)."""
        if not self.adaptive_size:
            return {g: self.max_size // self.total_num_classes for g in groups}
        base, extra = divmod(self.max_size, max(len(groups), 1))
        return {g: base + (1 if i < extra else 0) for i, g in enumerate(sorted(groups))}

    # -- Avalanche hooks ----------------------------------------------------------------
    def pre_adapt(self, agent: Any, exp: Any) -> None:
        """Refuse, before ``exp`` trains, an experience this memory cannot condense."""
        self._plan(self._experience(exp))

    def post_adapt(self, agent: Any, exp: Any) -> None:
        """Condense the classes of ``exp`` from ``exp.dataset`` and add them to the memory."""
        data = self._experience(exp)
        ipc, budgets = self._plan(data)
        for task in data.tasks.unique().tolist():
            part = data.of_task(task)
            for c, images in self._condense(part, task, ipc).items():
                self.images[(task, c)] = images
        self._read = None
        self._shrink_to(budgets)

    def update(self, strategy: Any, **kwargs: Any) -> None:
        """:meth:`post_adapt` on the strategy's experience. Avalanche 0.6's own
        ``ReplayPlugin`` calls ``update``, which the base class marks deprecated with a
        warning on every experience; this one goes straight to ``post_adapt``."""
        self.post_adapt(strategy, strategy.experience)

    def resize(self, strategy: Any, new_size: int) -> None:
        """Change the memory to ``new_size`` images; each class keeps its first images."""
        self.max_size = new_size
        self._shrink_to(self.class_budgets(sorted(self.images)))

    # -- checks -------------------------------------------------------------------------
    def _experience(self, exp: Any) -> _Experience:
        # pre_adapt and post_adapt of one experience read its data once
        if self._read is None or self._read[0] is not exp.dataset:
            self._read = (exp.dataset, _Experience.read(exp))
        return self._read[1]

    def _plan(self, data: _Experience) -> tuple[int, dict[Group, int]]:
        """``(ipc, budgets)``: the images per class to condense ``data``'s classes into,
        and every group's budget after it; a ``ConfigError`` if they cannot be had."""
        counts = Counter(zip(data.tasks.tolist(), data.labels.tolist()))
        budgets = self.class_budgets(sorted(set(self.images) | set(counts)))
        if min(budgets.values()) < 1:
            raise ConfigError(f"a memory of {self.max_size} images cannot hold one image for each of "
                              f"{len(budgets)} classes")
        ipc = max(budgets[g] for g in counts)
        if self.synthetic is not None:
            self._check_synthetic(data, sorted({c for _, c in counts}), ipc)
            return ipc, budgets
        real_init = self.distill_options.get("init", "real") == "real"
        needed = ipc * (self.distill_options.get("factor", 1) ** 2 if real_init else 1)
        (task, c), have = min(counts.items(), key=lambda kv: kv[1])
        if have < needed:
            raise ConfigError(f"{data.name}: a memory of {ipc} image(s) per class is larger than class "
                              f"{c}{_of_task(task)}, which has {have} image(s) to condense from")
        return ipc, budgets

    def _check_synthetic(self, data: _Experience, classes: list[int], ipc: int) -> None:
        syn = self.synthetic
        if tuple(syn.image_shape) != tuple(data.images.shape[1:]):
            raise ConfigError(f"the synthetic set's images are {tuple(syn.image_shape)}, the "
                              f"experience's are {tuple(data.images.shape[1:])}")
        for c in classes:
            have = int((syn.labels == c).sum())
            if have < ipc:
                raise ConfigError(f"the synthetic set has {have} image(s) of class {c}; the "
                                  f"memory wants {ipc}")
        if self._synthetic_images is None:
            self._synthetic_images = to_stream_space(syn, data.images, self.normalize)

    # -- condensing ---------------------------------------------------------------------
    def _condense(self, data: _Experience, task: int, ipc: int) -> dict[int, torch.Tensor]:
        """Class id -> ``[ipc, C, H, W]`` for the classes of ``data`` (one task's)."""
        classes = sorted(set(data.labels.tolist()))
        if self.synthetic is not None:
            return {c: self._synthetic_images[self.synthetic.labels == c][:ipc] for c in classes}
        local = torch.searchsorted(torch.tensor(classes), data.labels)
        channels = data.images.shape[1]
        real = ImageDataset(
            data.images, local, [str(c) for c in classes],
            # the images are already in the stream's space: distil in that space
            mean=(0.0,) * channels, std=(1.0,) * channels,
            split="train", name=self.dataset or "experience", source=f"Avalanche {data.name}")
        augmentation = self.augmentation or preset_for(real)
        syn = self._cached(real, ipc, derive_seed(self.seed, *classes), augmentation)
        self.distilled.append({"classes": classes, "task": task, "ipc": ipc, "method": self.method,
                               "iterations": self.iterations, "augmentation": augmentation,
                               "seconds": syn.metadata.get("wall_time_s"),
                               "final_loss": (syn.metadata.get("loss_history") or [None])[-1]})
        return {c: syn.images[syn.labels == k] for k, c in enumerate(classes)}

    def _cached(self, data: ImageDataset, ipc: int, seed: int, augmentation: str) -> SyntheticSet:
        options = {"iterations": self.iterations, **self.distill_options}
        # the preset read from the images is a function of the hashed images: only a given
        # one belongs in the key (which then matches sets cached before it existed)
        explicit = {"augmentation": self.augmentation} if self.augmentation else {}
        settings = {"method": self.method, "ipc": ipc, "seed": seed, "dataset": self.dataset,
                    **options, **explicit}

        def run() -> SyntheticSet:
            return datadam.distill(data, method=self.method, ipc=ipc, seed=seed, device=self.device,
                                   progress=self.progress, augmentation=augmentation, **options)

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

    def _shrink_to(self, budgets: dict[Group, int]) -> None:
        for g in list(self.images):
            self.images[g] = self.images[g][: budgets.get(g, 0)]
        self.buffer = as_avalanche_dataset(*self._stacked())

    def _stacked(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(images [M, C, H, W], labels [M], task labels [M])`` of the whole memory."""
        if not self.images:
            return torch.zeros(0), torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
        groups = sorted(self.images)
        sizes = [len(self.images[g]) for g in groups]
        x = torch.cat([self.images[g] for g in groups])
        y = torch.tensor([c for (_, c), n in zip(groups, sizes) for _ in range(n)], dtype=torch.int64)
        t = torch.tensor([t for (t, _), n in zip(groups, sizes) for _ in range(n)], dtype=torch.int64)
        return x, y, t


def _of_task(task: int) -> str:
    return f" of task {task}" if task else ""


@dataclass(frozen=True)
class _Experience:
    """An experience's data as tensors: images ``[N, C, H, W]`` as the learner sees them
    at evaluation (no training augmentation), labels ``[N]``, task labels ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor
    tasks: torch.Tensor
    name: str

    @classmethod
    def read(cls, exp: Any) -> _Experience:
        dataset = exp.dataset.eval() if hasattr(exp.dataset, "eval") else exp.dataset
        xs, ys, ts = [], [], []
        for batch in DataLoader(dataset, batch_size=2048, shuffle=False):
            xs.append(batch[0])
            ys.append(torch.as_tensor(batch[1]))
            # a dataset without task labels in its items is a single task, 0
            ts.append(torch.as_tensor(batch[2]) if len(batch) > 2 else torch.zeros_like(ys[-1]))
        index = getattr(exp, "current_experience", None)
        name = "the experience" if index is None else f"experience {index}"
        return cls(torch.cat(xs), torch.cat(ys).to(torch.int64), torch.cat(ts).to(torch.int64), name)

    def of_task(self, task: int) -> _Experience:
        keep = self.tasks == task
        return _Experience(self.images[keep], self.labels[keep], self.tasks[keep], self.name)


#: how far (in the stream's units) a range may miss [0, 1] or a normalised range and
#: still be taken for it: rounding of the mean and std the stream was normalised with
SCALE_TOLERANCE = 0.05


def to_stream_space(syn: SyntheticSet, stream_images: torch.Tensor,
                    normalize: tuple[Sequence[float], Sequence[float]] | None = None) -> torch.Tensor:
    """The set's images ``[N, C, H, W]`` in the space of ``stream_images`` ``[M, C, H,
    W]``: :meth:`~datadam.synthetic.SyntheticSet.denormalized` (the ``[0, 1]`` scale), then
    normalised with ``normalize = (mean, std)`` when given.

    Without ``normalize`` the stream's range decides: within ``[0, 1]`` per channel, the
    stream is unnormalised; from the set's normalised minimum ``-mean / std`` to at most
    ``(1 - mean) / std``, it is normalised as the set is; anything else is a
    ``ConfigError`` asking for ``normalize``.
    """
    raw = syn.denormalized()
    lo, hi = stream_images.amin(dim=(0, 2, 3)), stream_images.amax(dim=(0, 2, 3))
    if normalize is None:
        if bool((lo >= -SCALE_TOLERANCE).all() and (hi <= 1 + SCALE_TOLERANCE).all()):
            return raw
        mean, std = _per_channel((syn.mean, syn.std), raw.shape[1])
        set_lo, set_hi = -mean / std, (1 - mean) / std
        if not bool(((lo - set_lo).abs() <= SCALE_TOLERANCE).all()
                    and (hi <= set_hi + SCALE_TOLERANCE).all()):
            raise ConfigError(
                f"the stream's images span [{float(lo.min()):.3g}, {float(hi.max()):.3g}], neither "
                f"[0, 1] nor the synthetic set's normalisation [{float(set_lo.min()):.3g}, "
                f"{float(set_hi.max()):.3g}]: pass normalize=(mean, std), the stream's own")
    else:
        mean, std = _per_channel(normalize, raw.shape[1])
    return (raw - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def _per_channel(normalize: tuple[Sequence[float], Sequence[float]],
                 channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = (torch.tensor([float(v) for v in values]) for values in normalize)
    if len(mean) != channels or len(std) != channels:
        raise ConfigError(f"normalize needs one mean and one std for each of the {channels} channel(s)")
    return mean, std


class _LabelledImages(Dataset):
    """``(image [C, H, W], label)`` items with an int label, as Avalanche's own tensor
    datasets give them."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


def as_avalanche_dataset(images: torch.Tensor, labels: torch.Tensor,
                         task_labels: int | torch.Tensor = 0) -> TaskAwareSupervisedClassificationDataset:
    """An Avalanche classification dataset of ``(image [C, H, W], label, task label)``
    items with ``targets`` and ``targets_task_labels``: the form of the experiences of
    every Avalanche benchmark, so that real and replayed minibatches collate together.

    Args:
        images: ``[N, C, H, W]``.
        labels: ``[N]`` class ids.
        task_labels: one task label for all, or ``[N]``.

    Avalanche 0.6 has no public function that makes one from tensors (its
    ``_make_taskaware_tensor_classification_dataset`` is private), so this adapter builds
    it from Avalanche's public classes (``TaskAwareSupervisedClassificationDataset`` and
    ``DataAttribute``); tests/test_continual_library.py pins that form on Avalanche 0.6.
    """
    tasks = torch.as_tensor(task_labels, dtype=torch.int64).expand(len(labels))
    return TaskAwareSupervisedClassificationDataset(
        [_LabelledImages(images, labels)],
        data_attributes=[DataAttribute(labels.tolist(), "targets"),
                         DataAttribute(tasks.tolist(), "targets_task_labels", use_in_getitem=True)])


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
