"""The interface every condensation method shares, and its registry."""

from __future__ import annotations

import statistics
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import torch

from datadam.augment import describe_augmentation
from datadam.data.base import ImageDataset
from datadam.distill.config import DistillConfig, with_fixed_options
from datadam.distill.distributed import current_shard
from datadam.distill.multiformation import decode_snapshots
from datadam.errors import ConfigError
from datadam.records import software_versions, stamp
from datadam.synthetic import SyntheticSet, denormalize

_METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make ``cls`` available as ``distill(..., method=cls.name)``."""
    _METHODS[cls.name] = cls
    return cls


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; a named device must exist."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ConfigError(f"unknown device {device!r} (use auto, cpu, cuda or mps)") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda requested but no CUDA GPU is available")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None)
                                  and torch.backends.mps.is_available()):
        raise ConfigError("device mps requested but MPS is not available")
    return dev


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers, so every (run seed, iteration, stream) gets its own."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


@dataclass(frozen=True)
class IterationState:
    """What an iteration callback sees after each image update of an iterative method.

    Attributes:
        iteration: image updates done so far (1 after the first).
        iterations: image updates the run will do in all.
        loss: the matching loss of this update.
        images: the synthetic images now, normalised, detached, on the run's device;
            ``ipc * factor**2`` per class in class order (multi-formation images
            decoded, as the result will hold them). Copy them to keep them.
        config: the run's resolved settings.
        classes: class names.
        mean: per-channel mean of the normalisation of ``images``.
        std: per-channel standard deviation of the normalisation of ``images``.
        terms: the parts of ``loss`` by name when it has several (DataDAM:
            ``attention`` and ``last_layer``, each with its weight); else empty.
    """

    iteration: int
    iterations: int
    loss: float
    images: torch.Tensor
    config: DistillConfig
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    terms: dict[str, float] = field(default_factory=dict)

    def denormalized(self) -> torch.Tensor:
        """``images`` on the ``[0, 1]`` scale, clipped, on the CPU."""
        return denormalize(self.images, self.mean, self.std)


IterationCallback = Callable[[IterationState], None]


@dataclass
class RunLog:
    """What an iterative run records as it goes (empty for a method that does not iterate).

    Attributes:
        history: the loss of every image update so far.
        term_history: the loss's parts by name, one value per update, when
            ``records_terms`` (DataDAM with its attention term); else empty.
        records_terms: whether the run records ``term_history``.
        iteration_seconds: wall time of every iteration this process ran.
        iterations_done: image updates done, those of earlier processes included.
        earlier_seconds: a resumed run's wall time in the processes before this one.
        resumed_at: the iteration a resumed run took up (None: not resumed).
        snapshots: copies of the images (as the optimiser holds them: multi-formation
            images encoded) at ``snapshot_iterations``.
        snapshot_iterations: 0, ``snapshot_every``, 2 * ``snapshot_every``...
    """

    history: list[float] = field(default_factory=list)
    term_history: dict[str, list[float]] = field(default_factory=dict)
    records_terms: bool = False
    iteration_seconds: list[float] = field(default_factory=list)
    iterations_done: int = 0
    earlier_seconds: float = 0.0
    resumed_at: int | None = None
    snapshots: list[torch.Tensor] = field(default_factory=list)
    snapshot_iterations: list[int] = field(default_factory=list)

    def record(self, loss: float, terms: dict[str, float]) -> None:
        """One more image update, of ``loss`` with its parts ``terms``."""
        self.history.append(loss)
        if self.records_terms:
            for name, part in terms.items():
                self.term_history.setdefault(name, []).append(part)
        self.iterations_done += 1

    def last_terms(self) -> dict[str, float]:
        """The parts of the last loss by name (empty when none are recorded)."""
        return {name: values[-1] for name, values in self.term_history.items()}

    def keep_snapshot(self, images: torch.Tensor, iteration: int) -> None:
        """Keep a CPU copy of ``images`` as they are after ``iteration`` updates."""
        self.snapshots.append(images.detach().to("cpu", copy=True).contiguous())
        self.snapshot_iterations.append(iteration)

    def seconds_per_iteration(self) -> float | None:
        """The median iteration time, the first iteration left out (warm-up: allocations,
        oneDNN plans); None below two iterations."""
        if len(self.iteration_seconds) < 2:
            return None
        return round(statistics.median(self.iteration_seconds[1:]), 4)


class Method(ABC):
    """A way of condensing a dataset into ``ipc`` images per class.

    Subclasses set ``name`` and implement :meth:`condense`; :meth:`run` wraps it with
    validation and the metadata every :class:`SyntheticSet` carries.
    """

    name: ClassVar[str]
    # whether the method can learn multi-formation images (``factor`` > 1)
    multi_formation: ClassVar[bool] = False
    # the settings besides ``ipc`` and ``seed`` that shape the method's result (None: every
    # setting): a file records them all, and ``datadam show`` lists these, so that a
    # coreset does not seem to depend on an iteration budget or DM on an attention power
    uses_settings: ClassVar[tuple[str, ...] | None] = None
    # constructor options the method's networks always have, whatever the config says (a
    # coreset's feature network); the config it keeps, and so its file, records them
    fixed_model_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: DistillConfig, device: torch.device, progress: bool | None = None,
                 checkpoint: str | Path | None = None, checkpoint_every: int = 500,
                 resume: bool = False, callbacks: Sequence[IterationCallback] = (),
                 snapshot_every: int = 0):
        """The options after ``device`` drive an iterative run (see
        :class:`~datadam.distill.iterative.IterativeMethod`, which keeps them); every
        method takes them, so that :func:`~datadam.distill.distill` builds any method the
        same way, and one that does not iterate has no use for them."""
        if snapshot_every < 0:
            raise ConfigError("snapshot_every must be >= 0 (0: no snapshots)")
        if self.fixed_model_options:
            config = replace(config, **with_fixed_options(
                {"model_options": config.model_options, "model_choices": config.model_choices},
                self.fixed_model_options))
        self.config = config
        self.device = device
        self.started = time.perf_counter()

    @abstractmethod
    def condense(self, dataset: ImageDataset) -> torch.Tensor:
        """Synthetic images ``[K * ipc * factor**2, C, H, W]``, normalised, in class order
        (multi-formation images decoded)."""

    def run_log(self) -> RunLog:
        """What the run recorded as it iterated; empty for a method that does not iterate."""
        return RunLog()

    def elapsed_seconds(self) -> float:
        """Wall time of the run so far, earlier processes of a resumed run included
        (as far as their checkpoint recorded it)."""
        return self.run_log().earlier_seconds + time.perf_counter() - self.started

    def run(self, dataset: ImageDataset) -> SyntheticSet:
        cfg = self.config
        if cfg.factor > 1 and not self.multi_formation:
            raise ConfigError(f"method {self.name!r} selects real images: it has no factor "
                              "(multi-formation is for datadam and dm)")
        # a real-image start of a multi-formation run tiles factor**2 images into each
        needed = cfg.ipc * (cfg.factor ** 2 if cfg.init == "real" else 1)
        counts = torch.bincount(dataset.labels, minlength=dataset.num_classes)
        if int(counts.min()) < needed:
            k = int(counts.argmin())
            what = f"ipc={cfg.ipc}" + (f" x factor {cfg.factor}**2" if needed != cfg.ipc else "")
            raise ConfigError(f"{what} is larger than class {dataset.classes[k]!r} "
                              f"of {dataset.name}, which has {int(counts[k])} image(s)")
        self.started = time.perf_counter()
        images = self.condense(dataset).detach().cpu()
        labels = torch.arange(dataset.num_classes).repeat_interleave(cfg.images_per_class)
        log = self.run_log()
        metadata = stamp("synthetic", {
            "kind": "synthetic",
            "method": self.name,
            "dataset": dataset.name,
            "dataset_source": dataset.source,
            "dataset_images": len(dataset),  # a subset (a NAS training pool...) shows here
            "image_shape": list(dataset.images.shape[1:]),
            "config": self.config.to_dict(),
            "seed": self.config.seed,
            "iterations_done": log.iterations_done,
            "loss_history": _rounded(log.history),
            "wall_time_s": round(self.elapsed_seconds(), 3),
            "seconds_per_iteration": log.seconds_per_iteration(),
            "device": str(self.device),
            "processes": current_shard().world,
            "versions": software_versions(),
        })
        if self.uses_settings is None or "augmentation" in self.uses_settings:
            metadata["augmentation_rule"] = describe_augmentation(dataset, cfg.augmentation)
        if log.term_history:
            metadata["loss_terms"] = {name: _rounded(v) for name, v in log.term_history.items()}
        if log.resumed_at is not None:
            metadata["resumed_at_iteration"] = log.resumed_at
        snapshots = None
        if log.snapshots:
            snapshots = decode_snapshots(torch.stack(log.snapshots), cfg.factor)
            metadata["snapshot_iterations"] = list(log.snapshot_iterations)
        return SyntheticSet(images, labels, list(dataset.classes), dataset.mean, dataset.std,
                            metadata, snapshots=snapshots)


def _rounded(values: list[float]) -> list[float]:
    return [float(f"{v:.6g}") for v in values]
