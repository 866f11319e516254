"""Any ImageFolder-style tree, so users can bring their own data.

Layout::

    ROOT/train/<class>/*.png|jpg
    ROOT/test/<class>/*.png|jpg

Classes are the sorted folder names of ``train`` (torchvision's ``find_classes``);
``test`` may hold a subset of them. All images must share one size unless
``image_size`` resizes them; ``channels`` (1 or 3) defaults to that of the first image.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as TF

from datadam.data.base import ImageDataset
from datadam.data.checks import channel_stats
from datadam.errors import ConfigError, DataFormatError, DataNotFoundError

SPLITS = ("train", "test")
_SUPPORTED = tuple(e for e in IMG_EXTENSIONS if e in {".png", ".jpg", ".jpeg", ".gif", ".webp"})


def _index(root: Path, split: str) -> tuple[list[str], list[tuple[str, int]]]:
    train_dir, split_dir = root / "train", root / split
    for d in {train_dir, split_dir}:
        if not d.is_dir():
            raise DataNotFoundError(f"{d}: folder not found (expected ROOT/train/<class>/*.png)")
    try:
        classes, _ = find_classes(str(train_dir))
    except FileNotFoundError as e:
        raise DataFormatError(f"{train_dir}: {e}") from e
    split_classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    unknown = [c for c in split_classes if c not in classes]
    if unknown:
        raise DataFormatError(f"{split_dir}: class folder(s) {', '.join(unknown)} not in train")
    mapping = {c: i for i, c in enumerate(classes)}
    try:
        samples = make_dataset(str(split_dir), mapping, extensions=_SUPPORTED,
                               allow_empty=split != "train")
    except FileNotFoundError as e:
        raise DataFormatError(str(e).splitlines()[0]) from e
    return classes, samples


def _decode(path: str, channels: int | None) -> torch.Tensor:
    mode = {None: ImageReadMode.UNCHANGED, 1: ImageReadMode.GRAY, 3: ImageReadMode.RGB}[channels]
    try:
        image = decode_image(path, mode=mode)
    except (RuntimeError, ValueError, OSError) as e:
        raise DataFormatError(f"{path}: unreadable image ({str(e).splitlines()[0]})") from e
    if channels is None and image.shape[0] in (2, 4):  # drop alpha
        image = image[: image.shape[0] - 1]
    return image


def _read(root: Path, split: str, image_size: int | None, channels: int | None):
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1 (grey) or 3 (RGB), not {channels!r}")
    classes, samples = _index(root, split)
    if not samples:
        raise DataFormatError(f"{root / split}: no images")
    if channels is None:
        channels = _decode(samples[0][0], None).shape[0]
    images, problems, size = [], [], None
    for path, _ in samples:
        try:
            image = _decode(path, channels)
        except DataFormatError as e:
            problems.append(str(e))
            continue
        if image_size is not None:
            image = TF.resize(image, [image_size, image_size], antialias=True)
        size = size or tuple(image.shape[1:])
        if tuple(image.shape[1:]) != size:
            h, w = image.shape[1:]
            problems.append(f"{path}: image is {h}x{w}, others are {size[0]}x{size[1]} "
                            "(pass image_size to resize)")
            continue
        images.append(image)
    if problems:
        raise DataFormatError(problems[0] + (
            f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""), problems)
    labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
    return classes, torch.stack(images), labels, [p for p, _ in samples], channels


def load(root: str | Path, split: str = "train", image_size: int | None = None,
         channels: int | None = None) -> ImageDataset:
    """Load one split of an ImageFolder-style tree.

    Args:
        root: folder holding ``train/`` and ``test/``.
        split: ``"train"`` or ``"test"``.
        image_size: resize every image to ``image_size x image_size``.
        channels: 1 (grey) or 3 (RGB); ``None`` takes the first training image's.

    Returns:
        :class:`ImageDataset` with ``images`` uint8 ``[N, C, H, W]``, file paths in
        ``extras["files"]`` and ``source`` naming the split's folder.
    """
    root = Path(root)
    classes, images, labels, files, channels = _read(root, "train", image_size, channels)
    mean, std = channel_stats(images)
    if split != "train":
        train_shape = tuple(images.shape[1:])
        _, images, labels, files, _ = _read(root, split, image_size, channels)
        if tuple(images.shape[1:]) != train_shape:
            raise DataFormatError(f"{root / split}: images are {tuple(images.shape[1:])}, "
                                  f"train images {train_shape} (pass image_size to resize)")
    return ImageDataset(images, labels, classes, mean, std, split, "folder",
                        {"files": files}, source=f"the image folders in {root / split}")


def check(root: str | Path, image_size: int | None = None, channels: int | None = None) -> list[str]:
    """Every problem found in both splits of the tree (empty when all is well)."""
    problems = []
    shapes = {}
    for split in SPLITS:
        try:
            _, images, _, _, channels = _read(Path(root), split, image_size, channels)
            shapes[split] = tuple(images.shape[1:])
        except (DataFormatError, DataNotFoundError) as e:
            problems.extend(getattr(e, "problems", [str(e)]))
    if len(set(shapes.values())) > 1:
        problems.append(f"{root}: train images are {shapes['train']}, test images {shapes['test']}")
    return problems
