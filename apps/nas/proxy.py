"""Proxies: the training sets a candidate architecture is judged on, and the real
validation split that judges it.

A proxy is a condensed :class:`~datadam.synthetic.SyntheticSet`, a random class-balanced
subset of real training images (``random``; ``random:K`` is the K-th independent draw,
``random:0`` the same as ``random``), or every training image (``full``). The
validation split is carved from the training split before anything else, so the
random subset and the full proxy never contain a validation image and the test split
stays untouched for the final report of whatever architecture a search picks.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from datadam.apps.nas.architecture import SearchSpace, distill_family
from datadam.apps.nas.settings import PROXY_NETWORKS, ProxySettings, TrialSettings
from datadam.data import as_image_dataset
from datadam.data import load as load_dataset
from datadam.data.base import ImageDataset
from datadam.distill import distill
from datadam.distill.base import derive_seed
from datadam.errors import ConfigError, DatadamWarning
from datadam.evaluate import check_compatible
from datadam.synthetic import SyntheticSet

FULL, RANDOM = "full", "random"


@dataclass(eq=False)
class Proxy:
    """Training images of one proxy, normalised with the dataset's training mean/std.

    Attributes:
        name: ``full``, ``random`` or the synthetic set's file name.
        kind: ``full``, ``random`` or ``synthetic``.
        images: float32 ``[N, C, H, W]``; labels: int64 ``[N]``.
        details: what it is made of (source file, method, IPC, indices seed...).
    """

    name: str
    kind: str
    images: torch.Tensor
    labels: torch.Tensor
    details: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass(eq=False)
class Split:
    """The dataset cut for a search: real validation images and what remains to train on."""

    train: ImageDataset
    validation_images: torch.Tensor  # float32, normalised
    validation_labels: torch.Tensor
    details: dict[str, Any]


def split_validation(train: ImageDataset, size: int, seed: int) -> Split:
    """Hold out ``size`` random training images (the same ones for a given ``seed``)."""
    if not 0 < size < len(train):
        raise ConfigError(f"validation size must be between 1 and {len(train) - 1} "
                          f"(the training split has {len(train)} images), not {size}")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    held, rest = order[:size].sort().values, order[size:].sort().values
    validation = train.subset(held)
    return Split(train.subset(rest), validation.normalized(), validation.labels,
                 {"validation_images": size, "train_images": len(rest), "split_seed": seed,
                  "dataset": train.name})


def random_subset(pool: ImageDataset, ipc: int, seed: int, draw: int = 0) -> Proxy:
    """``ipc`` random real images of every class of ``pool``; ``draw`` K > 0 is another subset."""
    name = RANDOM if draw == 0 else f"{RANDOM}:{draw}"
    if draw:
        seed = derive_seed(seed, draw)
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for label in range(pool.num_classes):
        members = pool.indices_of(label)
        if len(members) < ipc:
            raise ConfigError(f"random proxy: class {pool.classes[label]!r} has {len(members)} "
                              f"training images, fewer than {ipc} per class")
        chosen.append(members[torch.randperm(len(members), generator=g)[:ipc]])
    idx = torch.cat(chosen)
    return Proxy(name, RANDOM, pool.normalized(idx), pool.labels[idx],
                 {"ipc": ipc, "images": len(idx), "seed": seed, "draw": draw})


def synthetic_proxy(path: str | Path, pool: ImageDataset) -> Proxy:
    """A condensed set as a proxy; :class:`ConfigError` when it is not of ``pool``'s dataset."""
    syn = SyntheticSet.load(path)
    check_compatible(syn, pool)
    # The set is normalised with its own statistics; bring it onto the dataset's so one
    # validation tensor serves every proxy.
    mean_s, std_s = (torch.tensor(v).view(1, -1, 1, 1) for v in (syn.mean, syn.std))
    mean_d, std_d = (torch.tensor(v).view(1, -1, 1, 1) for v in (pool.mean, pool.std))
    images = (syn.images.float() * std_s + mean_s - mean_d) / std_d
    return Proxy(Path(path).name, "synthetic", images, syn.labels.long(),
                 {"file": str(path), "method": syn.metadata.get("method"), "ipc": syn.ipc,
                  "images": len(syn), "iterations": syn.metadata.get("iterations_done"),
                  "source_dataset": syn.metadata.get("dataset"),
                  "condensed_from_images": syn.metadata.get("dataset_images"),
                  "nas_split": syn.metadata.get("nas_split")})


class ValidationOverlapWarning(DatadamWarning):
    """A proxy was condensed from images that include the validation split."""


def validation_overlap(proxy: Proxy, split: Split) -> str | None:
    """Why ``proxy`` has seen validation images of ``split``, or None when it has not.

    A set made by :func:`distill_proxy` for the same split never saw them. One made
    for another split, or condensed from more images than the split leaves to train on
    (``datadam distill`` of the whole training split), did: the validation accuracy of
    the architectures trained on it is then measured partly on images it was made from.
    """
    if proxy.kind != "synthetic":
        return None
    made_for = proxy.details.get("nas_split")
    keys = ("dataset", "validation_images", "split_seed")
    if made_for is not None:
        if all(made_for.get(k) == split.details[k] for k in keys):
            return None
        theirs = ", ".join(f"{k} {made_for.get(k)}" for k in keys)
        ours = ", ".join(f"{k} {split.details[k]}" for k in keys)
        return (f"{proxy.name} was condensed for another validation split ({theirs}; this one: {ours}), "
                "so it has seen validation images")
    seen = proxy.details.get("condensed_from_images")
    if seen is not None and seen > len(split.train):
        return (f"{proxy.name} was condensed from {seen} training images, more than the {len(split.train)} "
                "outside the validation split, so it has seen validation images; make the proxy "
                "with 'datadam nas distill' (distill_proxy) instead")
    return None


def note_validation_overlap(proxy: Proxy, split: Split) -> None:
    """Warn (:class:`ValidationOverlapWarning`) if ``proxy`` has seen validation images of
    ``split``, and record why in ``proxy.details["validation_overlap"]`` (None when not)."""
    reason = validation_overlap(proxy, split)
    proxy.details["validation_overlap"] = reason
    if reason:
        warnings.warn(reason, ValidationOverlapWarning, stacklevel=2)


def distill_proxy(dataset: str | None = None, *, data: Any = None, ipc: int = ProxySettings.ipc,
                  iterations: int = ProxySettings.iterations, space: SearchSpace | None = None,
                  networks: str = ProxySettings.networks, validation: int = TrialSettings.validation,
                  seed: int = 0, root: str | Path | None = None, device: str = "cpu",
                  dataset_options: dict[str, Any] | None = None, progress: bool | None = None,
                  checkpoint: str | Path | None = None, resume: bool = False, **options: Any) -> SyntheticSet:
    """A DataDAM set made to rank the architectures of ``space``.

    It is condensed from the training images left after the validation split of
    ``seed`` (the split :func:`~datadam.apps.nas.rank_study.study` and
    :func:`~datadam.apps.nas.architecture_search.search` score every candidate on, with the same
    ``validation`` and ``seed``), so the proxy has never seen a validation image.
    ``networks="convnet"`` is the published method's ConvNet-3; ``"space"`` draws each
    iteration's random network from ``space``
    (:func:`~datadam.apps.nas.architecture.distill_family`). ``options`` go to
    :func:`datadam.distill`. The metadata's ``nas_split`` records the split.
    ``data`` instead of ``dataset``: the training data itself, as a
    :class:`~datadam.apps.nas.evaluator.Task` takes it (anything
    :func:`datadam.data.as_image_dataset` takes).
    """
    if networks not in PROXY_NETWORKS:
        raise ConfigError(f"networks must be {' or '.join(PROXY_NETWORKS)}, not {networks!r}")
    space = space or SearchSpace()
    if data is not None:
        train = as_image_dataset(data)
    elif dataset:
        train = load_dataset(dataset, Path(root) if root else None, "train", **(dataset_options or {}))
    else:
        raise ConfigError("distill_proxy needs a dataset: a registered name, or data=...")
    space.check_image_size(train.image_size)
    split = split_validation(train, validation, seed)
    family = distill_family(space) if networks == "space" else {}
    syn = distill(split.train, "datadam", ipc, iterations=iterations, seed=seed, device=device,
                  progress=progress, checkpoint=checkpoint, resume=resume, **family, **options)
    syn.metadata["nas_split"] = dict(split.details, networks=networks, space=space.to_dict())
    return syn


def random_draw(spec: str) -> int | None:
    """K of a ``random`` (0) or ``random:K`` spec; None for any other spec."""
    if spec == RANDOM:
        return 0
    head, sep, tail = spec.partition(":")
    if head != RANDOM or not sep:
        return None
    if not tail.isdigit():
        raise ConfigError(f"proxy {spec!r}: write random:K with K a whole number (the K-th random draw)")
    return int(tail)


def make_proxy(spec: str, pool: ImageDataset, ipc: int, seed: int) -> Proxy:
    """``full``, ``random`` / ``random:K`` (``ipc`` per class) or the path of a synthetic set."""
    if spec == FULL:
        return Proxy(FULL, FULL, pool.normalized(), pool.labels, {"images": len(pool)})
    draw = random_draw(spec)
    if draw is not None:
        return random_subset(pool, ipc, seed, draw)
    return synthetic_proxy(spec, pool)


def matching_ipc(specs: list[str], pool: ImageDataset, default: int) -> int:
    """IPC of the random proxy: that of the (first) synthetic proxy, so both hold as many images."""
    for spec in specs:
        if spec != FULL and random_draw(spec) is None:
            return SyntheticSet.load(spec).ipc
    return default
