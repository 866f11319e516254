"""Class-incremental Avalanche benchmarks from datadam datasets, built with Avalanche's
own :func:`~avalanche.benchmarks.scenarios.class_incremental_benchmark`.

>>> train, test = datadam.data.load("mnist"), datadam.data.load("mnist", split="test")  # doctest: +SKIP
>>> order = [3, 1, 4, 0, 5, 9, 2, 6, 8, 7]
>>> bench = class_incremental(train, test, experiences=5, class_order=order)  # doctest: +SKIP
>>> [exp.classes_in_this_experience for exp in bench.train_stream]  # doctest: +SKIP
[[1, 3], [0, 4], [5, 9], [2, 6], [7, 8]]
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.benchmarks.scenarios import class_incremental_benchmark

from datadam.apps.continual.buffers import as_avalanche_dataset
from datadam.data.base import ImageDataset
from datadam.errors import ConfigError

#: experiences of each dataset's standard split: split MNIST has 5 of 2 classes,
#: MHIST one class per experience (HP, then SSA, or the reverse order).
DEFAULT_EXPERIENCES = {"mnist": 5, "mhist": 2}


def default_experiences(dataset: ImageDataset) -> int:
    """The standard number of experiences for ``dataset`` (one per class if unknown)."""
    return DEFAULT_EXPERIENCES.get(dataset.name, dataset.num_classes)


def class_orders(num_classes: int, count: int, seed: int = 0) -> list[list[int]]:
    """``count`` class orders: the natural one first, then seeded random permutations
    (all different while there are enough of them)."""
    orders = [list(range(num_classes))]
    g = torch.Generator().manual_seed(seed)
    attempts = 0
    while len(orders) < count:
        order = torch.randperm(num_classes, generator=g).tolist()
        attempts += 1
        if order not in orders or attempts > 100:
            orders.append(order)
    return orders[:count]


def balanced_subset(dataset: ImageDataset, per_class: int | None, seed: int = 0) -> ImageDataset:
    """At most ``per_class`` images of every class, drawn with ``seed`` (all if None)."""
    if per_class is None:
        return dataset
    g = torch.Generator().manual_seed(seed)
    keep = []
    for k in range(dataset.num_classes):
        idx = dataset.indices_of(k)
        keep.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return dataset.subset(torch.cat(keep).sort().values)


def class_incremental(train: ImageDataset, test: ImageDataset, *, experiences: int | None = None,
                      class_order: list[int] | None = None) -> Any:
    """An Avalanche class-incremental scenario with ``train_stream`` and ``test_stream``.

    Args:
        train: the training split.
        test: the test split of the same dataset (same classes and image shape).
        experiences: number of experiences; the classes are divided evenly over them
            (default: :func:`default_experiences`).
        class_order: the order in which classes arrive (default: natural order).

    Images are normalised with the training split's mean and std, once, so every
    minibatch (and every replayed image) is ``[B, C, H, W]`` in the same space.
    """
    n = experiences or default_experiences(train)
    if train.classes != test.classes or train.images.shape[1:] != test.images.shape[1:]:
        raise ConfigError("train and test splits differ in classes or image shape")
    if n < 1 or train.num_classes % n:
        raise ConfigError(f"{train.num_classes} classes do not divide into {n} experiences")
    order = list(range(train.num_classes)) if class_order is None else list(class_order)
    if sorted(order) != list(range(train.num_classes)):
        raise ConfigError(f"class order {order} is not a permutation of 0..{train.num_classes - 1}")
    streams = {
        "train": as_avalanche_dataset(train.normalized(), train.labels),
        "test": as_avalanche_dataset(test.normalized(), test.labels),
    }
    return class_incremental_benchmark(streams, class_order=order, num_experiences=n)
