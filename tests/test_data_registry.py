"""The dataset registry and the shared ImageDataset."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from datadam import data
from datadam.data import DatasetSource, ImageDataset, channel_stats
from datadam.errors import ConfigError, DatadamError, UnknownNameError


def test_available():
    assert data.available() == ["folder", "mhist", "mnist"]
    for name in data.available():
        source = data.get_source(name)
        assert source.name == name and source.description
        assert callable(source.load) and callable(source.check)


def test_names_are_case_insensitive(mnist_idx_root):
    assert data.get_source("MNIST").name == "mnist"
    assert len(data.load("Mnist", mnist_idx_root, "test")) == 20


def test_unknown_name():
    with pytest.raises(UnknownNameError) as info:
        data.load("cifar10", root="anywhere")
    error = info.value
    assert isinstance(error, DatadamError) and isinstance(error, KeyError)
    assert str(error) == "unknown dataset 'cifar10'; available: folder, mhist, mnist"
    assert error.available == ["folder", "mhist", "mnist"] and error.name == "cifar10"
    with pytest.raises(UnknownNameError, match="available: folder, mhist, mnist"):
        data.check("imagenet")


def test_option_a_source_does_not_take(mnist_idx_root):
    message = r"'mnist' takes no option image_size \(its options: none\)"
    with pytest.raises(ConfigError, match=message):
        data.load("mnist", mnist_idx_root, image_size=32)
    with pytest.raises(ConfigError, match="no option channels"):
        data.check("mnist", mnist_idx_root, channels=1)
    with pytest.raises(ConfigError, match=r"no option channels \(its options: image_size\)"):
        data.load("mhist", "anywhere", channels=3)
    with pytest.raises(ConfigError, match="no option colour"):
        data.load("folder", "anywhere", colour=3)


@pytest.mark.parametrize("size", [0, -4, 2.5, "64", True])
def test_bad_image_size(mhist_root, size):
    with pytest.raises(ConfigError, match="image_size must be a positive integer"):
        data.load("mhist", mhist_root, image_size=size)
    with pytest.raises(ConfigError, match="image_size"):
        data.check("folder", mhist_root, image_size=size)


@pytest.mark.parametrize("split", ["val", "validation", "TRAIN", "", None])
def test_bad_split(mnist_idx_root, split):
    with pytest.raises(ConfigError, match="split must be 'train' or 'test'"):
        data.load("mnist", mnist_idx_root, split=split)


def test_default_root(monkeypatch, mnist_idx_root, tmp_path):
    monkeypatch.setenv("DATADAM_DATA", str(mnist_idx_root))
    assert data.default_root() == mnist_idx_root
    assert len(data.load("mnist", split="test")) == 20
    monkeypatch.delenv("DATADAM_DATA")
    assert str(data.default_root()) == "data"
    monkeypatch.chdir(tmp_path)
    write = tmp_path / "data"
    (write / "MNIST").mkdir(parents=True)
    (mnist_idx_root / "MNIST" / "raw").rename(write / "MNIST" / "raw")
    assert len(data.load("mnist")) == 50


def test_register_a_source(monkeypatch):
    monkeypatch.setattr(data, "_REGISTRY", dict(data._REGISTRY))
    ds = _toy()

    def load(root, split="train"):
        return ds

    def check(root):
        return [f"{root}: fine"]

    data.register(DatasetSource("toy", load, check, "a toy"))
    assert "toy" in data.available()
    assert data.load("toy", "r") is ds
    assert data.check("toy", "r") == ["r: fine"]


# --- ImageDataset -------------------------------------------------------------------------


def _toy() -> ImageDataset:
    images = torch.arange(6 * 2 * 2 * 2, dtype=torch.uint8).view(6, 2, 2, 2) * 5
    labels = torch.tensor([0, 2, 2, 0, 2, 0], dtype=torch.int32)
    extras = {"votes": torch.arange(6) * 10, "files": [f"f{i}" for i in range(6)]}
    return ImageDataset(images, labels, ["a", "b", "c"], (0.5, 0.25), (0.2, 0.4), "train", "toy",
                        extras, "somewhere")


def test_dataset_basics():
    ds = _toy()
    assert len(ds) == 6 and ds.channels == 2 and ds.image_size == (2, 2)
    assert ds.num_classes == 3
    assert ds.labels.dtype == torch.int64  # converted
    assert ds.class_counts() == {"a": 3, "b": 0, "c": 3}
    assert ds.indices_of(2).tolist() == [1, 2, 4]
    assert repr(ds) == "ImageDataset(name='toy', split='train', n=6, shape=2x2x2, classes=3)"


def test_as_float_and_normalized():
    ds = _toy()
    x = ds.as_float()
    assert x.dtype == torch.float32 and x.shape == (6, 2, 2, 2)
    assert torch.allclose(x, ds.images.float() / 255)
    assert ds.images.dtype == torch.uint8  # not modified in place
    n = ds.normalized()
    assert torch.allclose(n[:, 0], (x[:, 0] - 0.5) / 0.2)
    assert torch.allclose(n[:, 1], (x[:, 1] - 0.25) / 0.4)
    assert torch.equal(ds.normalized([1, 3]), n[[1, 3]])
    # float images are taken as already on the [0, 1] scale
    f = ImageDataset(x, ds.labels, ds.classes, ds.mean, ds.std, "train", "toy")
    assert torch.equal(f.as_float(), x) and torch.allclose(f.normalized(), n)


def test_getitem_and_dataloader():
    ds = _toy()
    image, label = ds[4]
    assert isinstance(label, int) and label == 2
    assert image.shape == (2, 2, 2) and image.dtype == torch.float32
    assert torch.allclose(image, ds.normalized()[4])
    batch = next(iter(DataLoader(ds, batch_size=4, shuffle=False)))
    assert batch[0].shape == (4, 2, 2, 2) and batch[1].tolist() == [0, 2, 2, 0]


def test_subset():
    ds = _toy()
    sub = ds.subset(torch.tensor([4, 0]))
    assert len(sub) == 2 and sub.labels.tolist() == [2, 0]
    assert torch.equal(sub.images, ds.images[[4, 0]])
    assert sub.extras["votes"].tolist() == [40, 0] and sub.extras["files"] == ["f4", "f0"]
    assert sub.classes == ds.classes and sub.classes is not ds.classes
    assert (sub.mean, sub.std, sub.split, sub.name, sub.source) == \
        (ds.mean, ds.std, ds.split, ds.name, ds.source)
    assert sub.class_counts() == {"a": 1, "b": 0, "c": 1}
    assert len(ds.subset([])) == 0


def test_validation():
    images = torch.zeros(3, 1, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        ImageDataset(images[0], torch.zeros(3), ["x"], (0.0,), (1.0,), "train", "t")
    with pytest.raises(ValueError, match="one label per image"):
        ImageDataset(images, torch.zeros(2), ["x"], (0.0,), (1.0,), "train", "t")
    with pytest.raises(ValueError, match="one value per channel"):
        ImageDataset(images, torch.zeros(3), ["x"], (0.0, 0.0), (1.0,), "train", "t")


def test_channel_stats():
    images = torch.randint(0, 256, (37, 3, 5, 7), dtype=torch.uint8)
    mean, std = channel_stats(images, chunk=8)
    x = images.double() / 255
    assert mean == pytest.approx(x.mean(dim=(0, 2, 3)).tolist(), abs=1e-6)
    assert std == pytest.approx(x.std(dim=(0, 2, 3), unbiased=False).tolist(), abs=1e-6)
    fmean, fstd = channel_stats(x.float())
    assert fmean == pytest.approx(mean, abs=2e-6) and fstd == pytest.approx(std, abs=2e-6)
