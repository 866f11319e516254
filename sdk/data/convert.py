"""Data of your own as an :class:`ImageDataset`: tensors, numpy arrays, ``(images,
labels)`` pairs and map-style Datasets (torchvision's among them).

>>> import torch
>>> from datadam.data import as_image_dataset
>>> x = torch.randint(0, 256, (30, 3, 32, 32), dtype=torch.uint8)
>>> train = as_image_dataset((x, torch.arange(3).repeat(10)))
>>> train
ImageDataset(name='tensors', split='train', n=30, shape=3x32x32, classes=3)

Every check fails with one line that says what is wrong: a
:class:`~datadam.errors.DataFormatError` for the data, a
:class:`~datadam.errors.ConfigError` for the arguments about it, a
:class:`~datadam.errors.DataTypeError` for an object that is no data at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, TensorDataset

from datadam.data.base import ImageDataset
from datadam.errors import DataFormatError, DataTypeError

ACCEPTED = ("an ImageDataset, an (images, labels) pair of tensors or arrays, a "
            "TensorDataset(images, labels) or a map-style Dataset of (image, label) items")


def as_image_dataset(data: Any, split: str = "train") -> ImageDataset:
    """``data`` as an :class:`ImageDataset`, whichever of the accepted kinds it is.

    Args:
        data: an :class:`ImageDataset` (returned as it is); a tuple or list ``(images,
            labels)`` of tensors or arrays, or a ``TensorDataset(images, labels)``
            (:meth:`ImageDataset.from_tensors`: ``uint8 [N, C, H, W]`` or float in
            ``[0, 1]``, labels ``0..K-1``); any other map-style Dataset of ``(image,
            label)`` items, read through (:meth:`ImageDataset.from_dataset`).
        split: the split the data is (``"train"`` or ``"test"``), for what is new.

    Raises:
        DataTypeError: ``data`` is none of those (a ``TypeError``); the message names them.
        DataFormatError: the data is malformed (see :meth:`ImageDataset.from_tensors`).
    """
    from datadam.synthetic import SyntheticSet

    if isinstance(data, ImageDataset):
        return data
    if isinstance(data, SyntheticSet):  # a Dataset too, but of normalised images
        raise DataTypeError("a SyntheticSet holds normalised images: pass "
                            "syn.to_tensor_dataset(denormalize=True) to use it as data")
    if isinstance(data, TensorDataset):
        if len(data.tensors) != 2:
            raise DataFormatError(f"a TensorDataset of (images, labels) is needed, this one holds "
                                  f"{len(data.tensors)} tensors")
        return ImageDataset.from_tensors(*data.tensors, split=split)
    if isinstance(data, (tuple, list)):
        if data and _is_item(data[0]):
            return ImageDataset.from_dataset(data, split=split)  # a list of (image, label) items
        if len(data) == 2:
            return ImageDataset.from_tensors(data[0], data[1], split=split)
    elif _is_map_style(data):
        return ImageDataset.from_dataset(data, split=split)
    raise DataTypeError(f"cannot use {_what(data)} as data: pass {ACCEPTED}")


def _is_item(item: Any) -> bool:
    """Whether ``item`` looks like one ``(image, label)`` item rather than a list of images."""
    return isinstance(item, (tuple, list)) and len(item) == 2 and not isinstance(item[0], (tuple, list))


def _is_map_style(data: Any) -> bool:
    """Whether ``data`` is read by index: a map-style Dataset, or any sized object with
    ``__getitem__`` that is not a tensor, an array, a string or a mapping."""
    if isinstance(data, IterableDataset):
        return False
    if isinstance(data, Dataset):
        return hasattr(data, "__len__")
    return (hasattr(data, "__getitem__") and hasattr(data, "__len__")
            and not isinstance(data, (str, bytes, Mapping, torch.Tensor, np.ndarray)))


def _what(data: Any) -> str:
    if isinstance(data, str):
        return f"the string {data!r} (datadam.data.load({data!r}) loads a registered dataset)"
    if isinstance(data, (torch.Tensor, np.ndarray)):
        return "a tensor alone (it has no labels)"
    if isinstance(data, IterableDataset):
        return "an IterableDataset (its length and order are unknown)"
    if isinstance(data, (tuple, list)):
        return (f"a {type(data).__name__} of {len(data)} items, neither (images, labels) nor "
                "(image, label) items")
    return f"an object of type {type(data).__name__}"
