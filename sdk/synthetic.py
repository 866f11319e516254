"""SyntheticSet: a condensed dataset and everything needed to trust and reuse it.

Stored as one safetensors file: tensors ``images`` (float32 ``[N, C, H, W]``,
normalised with the source's training mean/std) and ``labels`` (int64 ``[N]``), and
a ``datadam`` JSON metadata entry with the class names, the normalisation, the
method, every hyperparameter, the seed, the iterations done, the loss history and
the versions. Loading runs no pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset, TensorDataset

from datadam.errors import ConfigError, DatadamError
from datadam.files import (
    DATADAM_FILE,
    FORMAT,
    OFFICIAL,
    SYNTHETIC_SET,
    atomic_path,
    describe_torch,
    not_a,
)
from datadam.records import RecordVersionError, migrate, stamp


class SyntheticSetFormatError(DatadamError, ValueError):
    """A file is not a readable datadam synthetic set (or official ``.pt`` result)."""


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> None:
    """Write tensors and JSON metadata to a safetensors file atomically."""
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp),
                  metadata={"format": FORMAT, "datadam": json.dumps(metadata)})


def load_tensors(path: str | Path,
                 expected: str = DATADAM_FILE) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by :func:`save_tensors`; :class:`SyntheticSetFormatError`
    otherwise, saying what the file is instead of ``expected`` (:func:`datadam.files.not_a`)."""
    path = Path(path)
    if not path.is_file():
        raise SyntheticSetFormatError(not_a(path, expected))
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError):
        raise SyntheticSetFormatError(not_a(path, expected)) from None
    if header.get("format") != FORMAT:
        raise SyntheticSetFormatError(not_a(path, expected))
    try:
        return tensors, json.loads(header["datadam"])
    except (KeyError, json.JSONDecodeError) as e:
        raise SyntheticSetFormatError(f"{path}: damaged datadam metadata ({e})") from None


def denormalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Normalised images ``[..., C, H, W]`` back on the ``[0, 1]`` scale, clipped, on the CPU."""
    mean_t = torch.tensor(mean).view(-1, 1, 1)
    std_t = torch.tensor(std).view(-1, 1, 1)
    return (images.detach().cpu().float() * std_t + mean_t).clamp_(0, 1)


def _losses_until(meta: dict[str, Any], iteration: int) -> dict[str, Any]:
    """The loss history and loss terms of ``meta`` up to ``iteration``."""
    kept = {"loss_history": list(meta.get("loss_history") or [])[:iteration]}
    if meta.get("loss_terms"):
        kept["loss_terms"] = {name: list(v)[:iteration] for name, v in meta["loss_terms"].items()}
    return kept


@dataclass(eq=False)
class SyntheticSet(Dataset):
    """A condensed dataset, and a map-style ``torch.utils.data.Dataset`` of it.

    ``len(syn)`` is N and ``syn[i]`` is ``(image, label)``: the normalised float image
    ``[C, H, W]`` and its class index, as an :class:`~datadam.data.ImageDataset` gives
    them, so a network trains on the set through ``DataLoader(syn, batch_size=...,
    shuffle=True)`` and is then tested on the real data normalised with the same
    ``mean``/``std``. :meth:`denormalized` gives the images on the ``[0, 1]`` scale and
    :meth:`to_tensor_dataset` a ``TensorDataset`` of either.

    Attributes:
        images: float32 ``[N, C, H, W]``, normalised with ``mean``/``std``.
        labels: int64 ``[N]``, sorted by class, :attr:`images_per_class` per class.
        classes: class names of the source dataset.
        mean: per-channel mean of the source's training split (the normalisation).
        std: per-channel standard deviation of the source's training split.
        metadata: method, dataset, every hyperparameter, seed, iterations done, loss
            history (and ``loss_terms``, see :attr:`loss_terms`), versions, wall time;
            ``snapshot_iterations`` when there are snapshots.
        snapshots: float32 ``[S, N, C, H, W]``, the images (normalised) at the iterations
            ``metadata["snapshot_iterations"]``, or None (``distill(snapshot_every=...)``).
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    snapshots: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """``(image, label)``: the normalised float image ``[C, H, W]`` and its class index."""
        return self.images[index], int(self.labels[index])

    def to_tensor_dataset(self, denormalize: bool = False) -> TensorDataset:
        """``TensorDataset(images, labels)``: images float32 ``[N, C, H, W]``, normalised
        with :attr:`mean`/:attr:`std` (they share this set's memory), or with
        ``denormalize`` on the ``[0, 1]`` scale (:meth:`denormalized`, a copy), the form
        ``ToTensor`` gives and :func:`datadam.data.as_image_dataset` takes; labels int64
        ``[N]``."""
        images = self.denormalized() if denormalize else self.images.detach().float()
        return TensorDataset(images, self.labels.long())

    @property
    def images_per_class(self) -> int:
        """Training images per class (of the smallest class, should they differ): the
        images a network trains on, ``ipc * factor**2`` for a multi-formation set."""
        return int(torch.bincount(self.labels, minlength=len(self.classes)).min())

    @property
    def ipc(self) -> int:
        """Images stored per class, the distillation's ``ipc``: :attr:`images_per_class`
        over ``factor**2`` for a multi-formation set, whose stored images each decode into
        ``factor**2`` training images (this set's ``images`` are the decoded ones)."""
        factor = int((self.metadata.get("config") or {}).get("factor", 1))
        return self.images_per_class // (factor * factor)

    def describe_ipc(self) -> str:
        """``"IPC 10"``, or ``"IPC 1 x factor 2 = 4 per class"`` for a multi-formation set."""
        from datadam.distill.multiformation import describe_ipc

        return describe_ipc(self.images_per_class, self.metadata.get("config"))

    def describe(self) -> str:
        """What made the set, from its metadata, e.g. ``"datadam p = 4, IPC 10, 1,500
        iterations, from noise, seed 0"`` (:func:`~datadam.distill.config.describe_recipe`)."""
        from datadam.distill.config import describe_recipe

        meta = self.metadata
        return describe_recipe(meta.get("method"), self.images_per_class, meta.get("config"),
                               iterations=meta.get("iterations_done"), seeds=meta.get("seed"))

    def describe_progress(self) -> str:
        """``"iteration 400 of 1000"`` for the checkpoint of a run in progress, else ``""``."""
        done = self.metadata.get("in_progress")
        return f"iteration {done.get('iteration')} of {done.get('iterations')}" if done else ""

    def facts(self) -> list[tuple[str, str]]:
        """``(name, value)`` rows that describe the set, for a table: its recipe
        (:meth:`describe`), method, dataset, images, shape, iterations (of a run in
        progress, for a checkpoint), seed, wall time, loss terms and digest."""
        meta = self.metadata
        iterations = meta.get("iterations_done")
        if "in_progress" in meta:
            iterations = f"{self.describe_progress()} (a checkpoint of a run in progress)"
        rows = [("recipe", self.describe()), ("method", meta.get("method")), ("dataset", meta.get("dataset")),
                ("images", f"{len(self)} ({self.describe_ipc()}, {len(self.classes)} classes)"),
                ("shape", "x".join(map(str, self.image_shape))), ("iterations", iterations),
                ("seed", meta.get("seed")), ("wall time", f"{meta.get('wall_time_s', 0):.1f} s")]
        if self.loss_terms:
            rows.append(("loss terms", self.describe_loss_terms()))
        rows.append(("sha256", self.sha256()))
        return [(name, str(value)) for name, value in rows]

    def sha256(self) -> str:
        """The SHA-256 of the images (float32) and labels (int64) with their shapes: two
        files hold the same set exactly when their digests agree, whatever their metadata.
        Evaluations record it, so a result names the very set it measured."""
        digest = hashlib.sha256()
        for tensor in (self.images.detach().float(), self.labels.detach().long()):
            digest.update(repr(tuple(tensor.shape)).encode())
            digest.update(tensor.cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    @property
    def loss_terms(self) -> dict[str, list[float]]:
        """The loss's parts per iteration, each with its weight, by name: DataDAM's
        ``attention`` (SAM) and ``last_layer`` terms, which add up to
        ``metadata["loss_history"]``. Empty for a method with one term (DM) and for sets
        made before the terms were recorded."""
        return {name: list(v) for name, v in (self.metadata.get("loss_terms") or {}).items()}

    def final_loss_terms(self) -> dict[str, float]:
        """Each of :attr:`loss_terms` averaged over the last 2 % of the iterations (at
        least one): how the two terms stand at the end of the run."""
        terms = self.loss_terms
        return {name: statistics.fmean(v[-max(1, len(v) // 50):]) for name, v in terms.items() if v}

    def describe_loss_terms(self) -> str:
        """``"attention 15.9 (53%), last layer 14.1 (47%), mean of the last 2% of
        iterations"`` (:meth:`final_loss_terms` and their shares), or ``""`` without terms."""
        terms = self.final_loss_terms()
        if not terms:
            return ""
        total = sum(terms.values()) or 1.0
        parts = ", ".join(f"{name.replace('_', ' ')} {value:.4g} ({100 * value / total:.0f}%)"
                          for name, value in terms.items())
        return f"{parts}, mean of the last 2% of iterations"

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def snapshot_iterations(self) -> list[int]:
        """Iterations at which :attr:`snapshots` were taken (empty without snapshots)."""
        return [int(i) for i in self.metadata.get("snapshot_iterations") or []]

    def at_iteration(self, iteration: int) -> SyntheticSet:
        """The set as it was after ``iteration`` image updates, from its snapshots.

        The returned set has the snapshot's images ``[N, C, H, W]``, the same labels and
        normalisation, and metadata whose ``iterations_done`` and ``loss_history`` stop
        at ``iteration``; it has no snapshots of its own. Raises :class:`ConfigError`
        when no snapshot was taken at that iteration.
        """
        if iteration == self.metadata.get("iterations_done"):
            return SyntheticSet(self.images, self.labels, list(self.classes), self.mean, self.std,
                                dict(self.metadata))
        kept = self.snapshot_iterations
        if self.snapshots is None or iteration not in kept:
            where = (f"snapshots at iterations {', '.join(map(str, kept))}" if kept
                     else "no snapshots (distill with --snapshot-every N)")
            raise ConfigError(f"no images at iteration {iteration}: this set has {where}")
        meta = dict(self.metadata, iterations_done=iteration, snapshot_of=self.metadata.get(
            "iterations_done"))
        meta.pop("snapshot_iterations", None)
        meta.update(_losses_until(meta, iteration))
        return SyntheticSet(self.snapshots[kept.index(iteration)].clone(), self.labels,
                            list(self.classes), self.mean, self.std, meta)

    def denormalized(self) -> torch.Tensor:
        """Images float32 ``[N, C, H, W]`` on the ``[0, 1]`` scale (``images * std +
        mean``), clipped, on the CPU: a new tensor, for pictures or for code that
        normalises images itself."""
        return denormalize(self.images, self.mean, self.std)

    def save(self, path: str | Path) -> Path:
        """Write one safetensors file (atomically: a crash leaves no half-written file),
        its metadata stamped with today's schema version (:mod:`datadam.records`)."""
        meta = stamp("synthetic", dict(self.metadata, classes=list(self.classes),
                                       mean=list(self.mean), std=list(self.std)))
        tensors = {"images": self.images.float(), "labels": self.labels.long()}
        if self.snapshots is not None:
            tensors["snapshots"] = self.snapshots.float()
        save_tensors(path, tensors, meta)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> SyntheticSet:
        """Read a file written by :meth:`save`, or a distillation checkpoint (no pickle involved).

        A checkpoint (``S.ckpt.safetensors``, written while ``datadam distill`` runs) loads
        as the set at the checkpoint's iteration, snapshots included, so a long run can be
        evaluated before it ends; its metadata then holds ``in_progress``: the checkpoint's
        iteration and the run's planned iterations. A file of an earlier datadam is read in
        today's form (:func:`datadam.records.migrate`); one of a later datadam, whose schema
        is newer than this one knows, raises :class:`~datadam.records.RecordVersionError`.
        """
        tensors, meta = load_tensors(path, expected=SYNTHETIC_SET)
        if meta.get("kind") == "checkpoint":
            return cls._from_checkpoint(path, tensors, _migrated(path, "checkpoint", meta))
        if "kind" in meta and meta["kind"] != "synthetic":
            raise SyntheticSetFormatError(not_a(path, SYNTHETIC_SET, f"a datadam {meta['kind']}"))
        meta = _migrated(path, "synthetic", meta)
        try:
            images, labels = tensors["images"], tensors["labels"]
            classes, mean, std = meta.pop("classes"), meta.pop("mean"), meta.pop("std")
        except KeyError as e:
            raise SyntheticSetFormatError(f"{path}: missing {e} in a datadam file") from None
        snapshots = tensors.get("snapshots")
        if snapshots is not None and (snapshots.ndim != 5 or snapshots.shape[1:] != images.shape
                                      or len(snapshots) != len(meta.get("snapshot_iterations", []))):
            raise SyntheticSetFormatError(f"{path}: snapshots {tuple(snapshots.shape)} do not fit the "
                                          f"images {tuple(images.shape)} and their iterations")
        return cls(images, labels, classes, tuple(mean), tuple(std), meta, snapshots=snapshots)

    @classmethod
    def _from_checkpoint(cls, path: str | Path, tensors: dict[str, torch.Tensor],
                         meta: dict[str, Any]) -> SyntheticSet:
        try:
            images, config, source = tensors["syn"].float(), meta["config"], meta["dataset"]
            iteration, classes = int(meta["iteration"]), list(source["classes"])
        except KeyError as e:
            raise SyntheticSetFormatError(f"{path}: missing {e} in a datadam checkpoint") from None
        if meta.get("mean") is None or meta.get("std") is None:
            raise SyntheticSetFormatError(
                f"{path}: a checkpoint that predates recorded normalisation; resume the run "
                "(datadam distill ... --resume) until it writes a new one, then load that")
        ipc, factor = int(config["ipc"]), int(config.get("factor", 1))
        if images.ndim != 4 or images.shape[0] != ipc * len(classes) or images.shape[-1] % factor:
            raise SyntheticSetFormatError(f"{path}: images {tuple(images.shape)} do not fit "
                                          f"{len(classes)} classes x {ipc} per class")
        # a checkpoint holds what the run optimises; a set holds what a network trains on
        from datadam.distill.multiformation import decode, decode_snapshots

        images = decode(images, factor)
        kept = [int(i) for i in meta.get("snapshot_iterations") or []]
        metadata = stamp("synthetic", {
            "kind": "synthetic", "method": meta.get("method"), "dataset": source.get("name"),
            "dataset_images": source.get("n"), "image_shape": list(images.shape[1:]),
            "config": config, "seed": config.get("seed"), "iterations_done": iteration,
            **_losses_until(meta, iteration),
            "wall_time_s": meta.get("wall_time_s"),
            "in_progress": {"checkpoint": Path(path).name, "iteration": iteration,
                            "iterations": config.get("iterations")},
        })
        snapshots = tensors.get("snapshots")
        if snapshots is not None and len(snapshots) == len(kept):
            metadata["snapshot_iterations"] = kept
        else:
            snapshots = None
        labels = torch.arange(len(classes)).repeat_interleave(ipc * factor ** 2)
        return cls(images, labels, classes, tuple(meta["mean"]), tuple(meta["std"]), metadata,
                   snapshots=None if snapshots is None else decode_snapshots(snapshots.float(), factor))

    @classmethod
    def from_official(cls, path: str | Path, classes: list[str], mean: tuple[float, ...],
                      std: tuple[float, ...], experiment: int = -1) -> SyntheticSet:
        """Import a ``.pt`` result of the official DataDAM / DC / DM code.

        Those files hold ``{'data': [[images, labels], ...], ...}`` (one pair per
        experiment), images normalised with the dataset's mean/std. Read with
        ``torch.load(weights_only=True)``: no code from the file runs. Any other file
        is refused with :class:`SyntheticSetFormatError`, saying what it is.
        """
        try:
            blob = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - any unpickling failure means "not such a file"
            raise SyntheticSetFormatError(not_a(path, OFFICIAL)) from None
        images, labels = _official_pair(path, blob, experiment)
        if images.ndim != 4 or labels.shape != (images.shape[0],) or images.shape[1] != len(mean):
            raise SyntheticSetFormatError(f"{path}: images {tuple(images.shape)} and labels "
                                          f"{tuple(labels.shape)} do not fit {len(mean)} channels")
        order = torch.argsort(labels, stable=True)
        return cls(images[order].float(), labels[order].long(), list(classes), tuple(mean),
                   tuple(std), {"method": "imported", "source_file": str(path)})

    def save_grid(self, path: str | Path, pad: int = 2, provenance: str | None = None) -> Path:
        """A picture with one row per class, de-normalised and clipped to ``[0, 1]``, in the
        format of ``path``'s suffix (png, jpg, pdf, svg; see :func:`datadam.pictures.save_picture`)."""
        from torchvision.utils import make_grid

        from datadam.pictures import save_picture

        order = torch.argsort(self.labels, stable=True)
        counts = torch.bincount(self.labels, minlength=len(self.classes))
        grid = make_grid(self.denormalized()[order], nrow=max(int(counts.max()), 1),
                         padding=pad, pad_value=1.0)
        return save_picture(grid, path, provenance)

    def export_folder(self, root: str | Path) -> Path:
        """Write ``root/<class>/<index>.png`` (an ImageFolder tree), all or nothing."""
        from torchvision.utils import save_image

        root = Path(root)
        if root.exists() and any(root.iterdir()):
            raise DatadamError(f"{root}: folder exists and is not empty")
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
        try:
            images = self.denormalized()
            for i, (image, label) in enumerate(zip(images, self.labels.tolist())):
                folder = tmp / _safe_name(self.classes[label])
                folder.mkdir(exist_ok=True)
                save_image(image, str(folder / f"{i:05d}.png"), format="png")
            if root.exists():
                root.rmdir()
            os.replace(tmp, root)
        except BaseException:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return root

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.image_shape)
        return (f"SyntheticSet(method={self.metadata.get('method')!r}, "
                f"dataset={self.metadata.get('dataset')!r}, n={len(self)}, ipc={self.ipc}, "
                f"shape={shape})")


def _migrated(path: str | Path, kind: str, meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` (a file's record of ``kind``) in today's form; a record of a later datadam
    raises :class:`RecordVersionError` naming the file."""
    try:
        return migrate(kind, meta)
    except RecordVersionError as e:
        raise RecordVersionError(f"{path}: {e}") from None


def _official_pair(path: str | Path, blob: Any, experiment: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The images and labels of ``experiment`` in an official result read from ``path``."""
    if describe_torch(blob) != OFFICIAL:
        # identified anew from the bytes: torch.load reads a safetensors file too
        raise SyntheticSetFormatError(not_a(path, OFFICIAL))
    try:
        images, labels = blob["data"][experiment][:2]
    except (IndexError, KeyError, TypeError, ValueError):
        images = labels = None
    if not (isinstance(images, torch.Tensor) and isinstance(labels, torch.Tensor)):
        raise SyntheticSetFormatError(f"{path}: an official result without images and labels in "
                                      f"experiment {experiment} of its {len(blob['data'])}")
    return images, labels


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_. " else "_" for c in name).strip() or "class"
