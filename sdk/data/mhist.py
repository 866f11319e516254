"""MHIST, the colorectal polyp histology set, read straight from its release layout.

Layout (as distributed by its authors)::

    ROOT/annotations.csv    columns: Image Name, Majority Vote Label (HP/SSA),
                            Number of Annotators who Selected SSA (Out of 7),
                            Partition (train/test)
    ROOT/images/*.png       224x224 RGB

``ROOT`` may also be a folder holding an ``MHIST/`` folder of that layout. The split
comes from the ``Partition`` column; nothing is copied. Labels are ``HP = 0``,
``SSA = 1`` (:data:`CLASSES`). The annotator agreement is kept in
``extras["ssa_votes"]`` (int64 ``[N]``, 0-7) and the file names in ``extras["files"]``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as TF

from datadam.data.base import ImageDataset
from datadam.data.checks import channel_stats
from datadam.errors import DataFormatError, DataNotFoundError

CLASSES = ["HP", "SSA"]
PARTITIONS = ("train", "test")
IMAGE_SIZE = (224, 224)
COL_NAME = "Image Name"
COL_LABEL = "Majority Vote Label"
COL_VOTES = "Number of Annotators who Selected SSA (Out of 7)"
COL_PARTITION = "Partition"
COLUMNS = [COL_NAME, COL_LABEL, COL_VOTES, COL_PARTITION]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def resolve_root(root: str | Path) -> Path:
    """The folder holding ``annotations.csv``: ``root`` itself or ``root/MHIST``."""
    root = Path(root)
    for candidate in (root, root / "MHIST", root / "mhist"):
        if (candidate / "annotations.csv").is_file():
            return candidate
    raise DataNotFoundError(
        f"MHIST not found: no annotations.csv in {root} or {root / 'MHIST'} "
        "(request the data at https://bmirds.github.io/MHIST/ and unpack it there)"
    )


def read_annotations(root: Path) -> tuple[pd.DataFrame, list[str]]:
    """The annotation table and every problem found in it or in the image listing.

    Rows with a problem are reported by their CSV line number (header is line 1).
    """
    csv = root / "annotations.csv"
    try:
        table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataFormatError(f"{csv}: cannot parse ({e})") from e
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise DataFormatError(f"{csv}: missing column(s) {', '.join(repr(c) for c in missing)}")
    images_dir = root / "images"
    if not images_dir.is_dir():
        raise DataNotFoundError(f"{images_dir}: images folder not found")

    problems = []
    on_disk = {p.name for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    seen = set()
    rows = table[COLUMNS].itertuples(index=False, name=None)
    for i, (name, label, votes, partition) in enumerate(rows, start=2):
        where = f"{csv.name} line {i} ({name or 'no name'})"
        if not name:
            problems.append(f"{where}: empty image name")
        elif name in seen:
            problems.append(f"{where}: image listed twice")
        elif name not in on_disk:
            problems.append(f"{where}: image listed but not in {images_dir}")
        seen.add(name)
        if label not in CLASSES:
            problems.append(f"{where}: unknown label {label!r} (expected HP or SSA)")
        if partition not in PARTITIONS:
            problems.append(f"{where}: unknown partition {partition!r} (expected train or test)")
        if not (votes.isdigit() and 0 <= int(votes) <= 7):
            problems.append(f"{where}: annotator count {votes!r} is not an integer 0-7")
    for name in sorted(on_disk - seen):
        problems.append(f"{images_dir / name}: image present but not listed in {csv.name}")
    return table, problems


def decode(path: Path) -> tuple[torch.Tensor | None, str | None]:
    """``uint8 [3, 224, 224]`` or a problem naming the file."""
    try:
        image = decode_image(str(path), mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError, OSError) as e:
        return None, f"{path}: unreadable image ({str(e).splitlines()[0]})"
    if tuple(image.shape[1:]) != IMAGE_SIZE:
        h, w = image.shape[1:]
        return None, f"{path}: image is {h}x{w}, expected {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}"
    return image, None


def _read(root: Path, split: str, image_size: int | None):
    table, problems = read_annotations(root)
    if problems:
        raise DataFormatError(f"{root}: {problems[0]}" + (
            f" (and {len(problems) - 1} more problem(s); run `datadam data check mhist`)"
            if len(problems) > 1 else ""), problems)
    rows = table[table[COL_PARTITION] == split]
    images = []
    for name in rows[COL_NAME]:
        image, problem = decode(root / "images" / name)
        if problem:
            problems.append(problem)
            continue
        if image_size is not None:
            image = TF.resize(image, [image_size, image_size], antialias=True)
        images.append(image)
    if problems:
        raise DataFormatError(problems[0] + (
            f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""), problems)
    if not images:
        raise DataFormatError(f"{root}: no {split} images listed in annotations.csv")
    labels = torch.tensor([CLASSES.index(v) for v in rows[COL_LABEL]], dtype=torch.int64)
    votes = torch.tensor([int(v) for v in rows[COL_VOTES]], dtype=torch.int64)
    return torch.stack(images), labels, {"ssa_votes": votes, "files": list(rows[COL_NAME])}


def load(root: str | Path, split: str = "train", image_size: int | None = None) -> ImageDataset:
    """Load one partition of MHIST, validated first: a malformed release raises
    :class:`~datadam.errors.DataFormatError` naming the file or CSV line, and nothing
    is returned half-loaded.

    Args:
        root: folder with ``annotations.csv`` and ``images/`` (or its parent).
        split: ``"train"`` (2,175 images in the release) or ``"test"`` (977).
        image_size: resize to ``image_size x image_size`` (antialiased); 224 is heavy
            on a CPU, 64 or 112 are practical. ``None`` keeps 224.

    Returns:
        :class:`ImageDataset` with ``images`` uint8 ``[N, 3, S, S]``, labels HP=0, SSA=1
        and ``source`` naming the folder.
    """
    root = resolve_root(root)
    images, labels, extras = _read(root, split, image_size)
    train_images = images if split == "train" else _read(root, "train", image_size)[0]
    mean, std = channel_stats(train_images)
    return ImageDataset(images, labels, list(CLASSES), mean, std, split, "mhist", extras,
                        source=f"MHIST annotations.csv and images/ in {root}")


def check(root: str | Path, image_size: int | None = None) -> list[str]:
    """Every problem with an MHIST folder: the table, the listing and every image decoded."""
    try:
        root = resolve_root(root)
        table, problems = read_annotations(root)
    except (DataFormatError, DataNotFoundError) as e:
        return list(e.problems) if isinstance(e, DataFormatError) else [str(e)]
    listed = set(table[COL_NAME])
    for name in sorted(listed):
        path = root / "images" / name
        if path.is_file():
            problems.extend(p for p in [decode(path)[1]] if p)
    return problems
