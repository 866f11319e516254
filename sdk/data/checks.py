"""Checks and readers behind :meth:`ImageDataset.from_tensors` and
:meth:`ImageDataset.from_dataset`: images, labels and class names made sound, or one line
that says what is wrong (a :class:`~datadam.errors.DataFormatError` for the data, a
:class:`~datadam.errors.ConfigError` for the arguments about it). Plain tensors in and
out: this module knows nothing of :class:`ImageDataset`, which builds on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from datadam.errors import ConfigError, DataFormatError, DataTypeError

# Rounding in a resize or a colour conversion can leave [0, 1] images a hair outside it.
_RANGE_SLACK = 1e-5


def checked_fields(images: Any, labels: Any, classes: Sequence[str] | None,
                   mean: Sequence[float] | None, std: Sequence[float] | None) -> dict[str, Any]:
    """``images``, ``labels``, ``classes``, ``mean`` and ``std`` of an ImageDataset, checked,
    the statistics computed where not given."""
    images = checked_images(images)
    labels, classes = checked_labels(labels, len(images), classes)
    mean, std = statistics(images, mean, std)
    return {"images": images, "labels": labels, "classes": classes, "mean": mean, "std": std}


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


def checked_images(images: Any) -> torch.Tensor:
    """``images`` as ``uint8`` or ``float32`` ``[N, C, H, W]`` on the CPU, pixels in
    ``[0, 255]`` or ``[0, 1]``; :class:`DataFormatError` otherwise."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise DataFormatError(f"images must be a tensor or a numpy array, not a {type(images).__name__}")
    images = images.detach().cpu()
    if images.ndim == 3:
        images = images.unsqueeze(1)
    shape = tuple(images.shape)
    if images.ndim != 4 or 0 in shape[1:]:
        raise DataFormatError(f"images must be [N, C, H, W] or [N, H, W], not of shape {shape}")
    if shape[3] in (1, 3, 4) and shape[1] not in (1, 3, 4):
        raise DataFormatError(f"images of shape {shape} look channels-last [N, H, W, C]: "
                              "pass images.permute(0, 3, 1, 2)")
    if shape[0] == 0:
        raise DataFormatError("no images: the data is empty")
    if images.dtype == torch.uint8:
        return images
    if images.dtype == torch.bool or images.is_complex():
        raise DataFormatError(f"images must be uint8 pixels or floats in [0, 1], not {images.dtype}")
    if not images.is_floating_point():
        lo, hi = int(images.min()), int(images.max())
        if lo < 0 or hi > 255:
            raise DataFormatError(f"integer images must be pixels in [0, 255], these span [{lo}, {hi}]")
        return images.to(torch.uint8)
    images = images.float()
    if not bool(torch.isfinite(images).all()):
        raise DataFormatError("images hold NaN or infinite values")
    lo, hi = float(images.min()), float(images.max())
    if lo < -_RANGE_SLACK or hi > 1 + _RANGE_SLACK:
        raise DataFormatError(f"float images must be in [0, 1], these span [{lo:.4g}, {hi:.4g}]: pass "
                              "raw uint8 pixels or ToTensor-scaled images, not normalised ones")
    return images.clamp_(0, 1) if lo < 0 or hi > 1 else images


def checked_labels(labels: Any, n: int, classes: Sequence[str] | None) -> tuple[torch.Tensor, list[str]]:
    """``labels`` as ``int64 [n]`` class indices, with the class names: ``classes`` (each
    label below ``len(classes)``), or ``"0"``..``"K-1"`` when every one of ``0..K-1`` occurs."""
    labels = _label_tensor(labels)
    if labels.ndim != 1:
        one_hot = " (one-hot? pass labels.argmax(1))" if labels.ndim == 2 else ""
        raise DataFormatError(f"labels must be [N], one class index per image, not of shape "
                              f"{tuple(labels.shape)}{one_hot}")
    if len(labels) != n:
        raise DataFormatError(f"{n} images but {len(labels)} labels: give one label per image")
    if labels.is_floating_point():
        if not bool((labels == labels.round()).all()):
            raise DataFormatError("labels must be whole class indices 0..K-1, not fractions")
    elif labels.dtype == torch.bool or labels.is_complex():
        raise DataFormatError(f"labels must be integer class indices 0..K-1, not {labels.dtype}")
    labels = labels.to(torch.int64)
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0:
        raise DataFormatError(f"labels must be class indices 0..K-1, found {lo}")
    if classes is not None:
        names = _class_list(classes)
        if hi >= len(names):
            raise DataFormatError(f"labels must be in 0..{len(names) - 1} for the {len(names)} "
                                  f"classes given, found {hi}")
        return labels, names
    missing = sorted(set(range(hi + 1)) - set(torch.unique(labels).tolist()))
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
        raise DataFormatError(f"labels must be 0..K-1 with every class present, but {shown} of "
                              f"0..{hi} never occur (name the K classes with classes=[...])")
    return labels, [str(k) for k in range(hi + 1)]


def _label_tensor(labels: Any) -> torch.Tensor:
    if isinstance(labels, torch.Tensor):
        return labels.detach().cpu()
    if isinstance(labels, (np.ndarray, Sequence, range)) and not isinstance(labels, (str, bytes)):
        try:
            return torch.as_tensor(np.asarray(labels))
        except (TypeError, ValueError, RuntimeError):
            pass
    raise DataFormatError(f"labels must be integer class indices (a tensor, an array or a list), "
                          f"not {type(labels).__name__}")


def _class_list(classes: Any) -> list[str]:
    if isinstance(classes, (str, bytes, Mapping)) or not isinstance(classes, Sequence) or not classes:
        raise ConfigError(f"classes must be a non-empty list of names, not {classes!r}")
    names = [str(c) for c in classes]
    if len(set(names)) != len(names):
        raise ConfigError("classes must have distinct names")
    return names


def statistics(images: torch.Tensor, mean: Sequence[float] | None,
               std: Sequence[float] | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` per channel on the ``[0, 1]`` scale: those given, else over ``images``."""
    if mean is None or std is None:
        computed_mean, computed_std = channel_stats(images)
        # a constant channel has nothing to normalise; 1 keeps its values finite
        computed_std = tuple(s if s > 0 else 1.0 for s in computed_std)
        mean = computed_mean if mean is None else mean
        std = computed_std if std is None else std
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    channels = images.shape[1]
    if len(mean) != channels or len(std) != channels:
        raise ConfigError(f"mean and std need one value per channel ({channels}), "
                          f"got {len(mean)} and {len(std)}")
    if not all(s > 0 for s in std):
        raise ConfigError(f"std must be positive in every channel, not {std}")
    return mean, std


def class_names(dataset: Any, labels: torch.Tensor) -> list[str] | None:
    """The dataset's own class names (torchvision's ``classes``, also through a
    ``Subset``) when they cover ``labels``; else None."""
    while dataset is not None:
        names = getattr(dataset, "classes", None)
        if isinstance(names, Sequence) and not isinstance(names, str) and len(names) > int(labels.max()):
            return [str(c) for c in names]
        dataset = getattr(dataset, "dataset", None)
    return None


class _Indexed(Dataset):
    """Items of ``dataset`` with their index, so that an error can name the item."""

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, Any]:
        return index, self.dataset[index]


def _collate(items: list[tuple[int, Any]]) -> list[tuple[int, torch.Tensor, int]]:
    return [(index, *_pair(index, item)) for index, item in items]


def _pair(index: int, item: Any) -> tuple[torch.Tensor, int]:
    """``(image [C, H, W], label)`` of the dataset's item ``index``."""
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise DataFormatError(f"item {index} of the dataset is a {type(item).__name__}, "
                              "not an (image, label) pair")
    image, label = item[0], item[1]
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
    else:  # PIL images and numpy arrays are [H, W, C] or [H, W], as ToTensor takes them
        array = np.asarray(image)
        if array.dtype == object or array.ndim not in (2, 3):
            raise DataFormatError(f"the image of item {index} is a {type(image).__name__} that is no "
                                  "image (a tensor, a PIL image or a numpy array is needed)")
        if array.ndim == 3 and not (array.shape[0] in (1, 3) and array.shape[2] not in (1, 3, 4)):
            array = array.transpose(2, 0, 1)
        if array.dtype not in (np.uint8, np.float32, np.float64):
            array = array.astype(np.int64)
        image = torch.from_numpy(np.ascontiguousarray(array))
    if image.ndim == 2:
        image = image.unsqueeze(0)
    if image.ndim != 3:
        raise DataFormatError(f"the image of item {index} must be [C, H, W] or [H, W], not of shape "
                              f"{tuple(image.shape)}")
    if isinstance(label, torch.Tensor) and label.numel() == 1:
        label = label.item()
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
        raise DataFormatError(f"the label of item {index} is {label!r}, not an integer class index")
    return image, int(label)


def read_items(dataset: Any, batch_size: int = 256,
               num_workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ``(image, label)`` of a map-style ``dataset``, in order: images ``[N, C, H, W]``
    (of the items' dtype) and labels ``int64 [N]``."""
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__len__"):
        raise DataTypeError(f"a map-style dataset (with __len__ and __getitem__) is needed, "
                            f"not a {type(dataset).__name__}")
    n = len(dataset)
    if n == 0:
        raise DataFormatError("the dataset is empty")
    loader = DataLoader(_Indexed(dataset), batch_size=batch_size, num_workers=num_workers,
                        collate_fn=_collate)
    images: torch.Tensor | None = None
    labels = torch.empty(n, dtype=torch.int64)
    for batch in loader:
        for index, image, label in batch:
            if images is None:  # one allocation: a list of items and a stack would need twice the memory
                images = torch.empty((n, *image.shape), dtype=image.dtype)
            elif image.shape != images.shape[1:] or image.dtype != images.dtype:
                raise DataFormatError(
                    f"item {index} is a {'x'.join(map(str, image.shape))} {image.dtype} image, item 0 "
                    f"{'x'.join(map(str, images.shape[1:]))} {images.dtype}: every image must be of one "
                    "size and type (resize them, e.g. transforms.Resize)")
            images[index] = image
            labels[index] = label
    assert images is not None
    return images, labels
