"""ImageFolder-style trees: ROOT/{train,test}/<class>/*.png."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from helpers import write_png
from PIL import Image

from datadam import data
from datadam.data import channel_stats
from datadam.errors import ConfigError, DataFormatError, DataNotFoundError


def test_load_train_and_test(make_folder):
    root = make_folder(classes=("eel", "cat", "dog"), n_train=4, n_test=2, size=16)
    train = data.load("folder", root, "train")
    test = data.load("folder", root, "test")
    assert train.classes == ["cat", "dog", "eel"]  # sorted folder names
    assert train.images.shape == (12, 3, 16, 16) and train.images.dtype == torch.uint8
    assert test.images.shape == (6, 3, 16, 16)
    assert train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert test.class_counts() == {"cat": 2, "dog": 2, "eel": 2}
    assert test.classes == train.classes
    assert train.mean == channel_stats(train.images)[0]
    assert test.mean == train.mean and test.std == train.std
    assert train.name == "folder" and train.source == f"the image folders in {root / 'train'}"
    assert test.describe() == ("loaded folder test: 6 images of 3x16x16, 3 classes, "
                               f"from the image folders in {root / 'test'}")
    # file names and pixels line up with labels
    for i in (0, 5, 11):
        path = train.extras["files"][i]
        assert f"/train/{train.classes[int(train.labels[i])]}/" in path
        np.testing.assert_array_equal(train.images[i].permute(1, 2, 0).numpy(),
                                      np.asarray(Image.open(path)))


def test_grey_images(make_folder):
    root = make_folder(channels=1, size=12)
    train = data.load("folder", root)
    assert train.images.shape == (12, 1, 12, 12) and len(train.mean) == 1
    rgb = data.load("folder", root, channels=3)
    assert rgb.images.shape == (12, 3, 12, 12)
    assert torch.equal(rgb.images[:, 0], rgb.images[:, 2])  # grey copied to every channel


def test_channels_one_from_rgb(make_folder):
    root = make_folder()
    assert data.load("folder", root, "test", channels=1).images.shape == (6, 1, 16, 16)


@pytest.mark.parametrize("channels", [0, 2, 4])
def test_bad_channels_is_config_error(make_folder, channels):
    root = make_folder()
    with pytest.raises(ConfigError, match="channels"):
        data.load("folder", root, channels=channels)
    with pytest.raises(ConfigError, match="channels"):
        data.check("folder", root, channels=channels)


def test_test_split_may_hold_fewer_classes(make_folder):
    root = make_folder(test_classes=("dog",))
    test = data.load("folder", root, "test")
    assert test.classes == ["cat", "dog", "eel"]
    assert test.labels.tolist() == [1, 1]
    assert test.class_counts() == {"cat": 0, "dog": 2, "eel": 0}
    assert data.check("folder", root) == []


def test_unknown_class_in_test(make_folder):
    root = make_folder(test_classes=("cat", "fox", "ant"))
    with pytest.raises(DataFormatError, match="ant, fox not in train") as info:
        data.load("folder", root, "test")
    assert str(root / "test") in str(info.value)
    assert data.load("folder", root, "train").num_classes == 3
    problems = data.check("folder", root)
    assert len(problems) == 1 and "ant, fox" in problems[0]


def test_mismatched_sizes_need_image_size(make_folder):
    root = make_folder()
    odd = root / "train" / "dog" / "dog_big.png"
    write_png(odd, np.random.default_rng(1), (20, 24))
    with pytest.raises(DataFormatError, match="image is 20x24, others are 16x16") as info:
        data.load("folder", root)
    assert str(odd) in str(info.value) and "image_size" in str(info.value)
    problems = data.check("folder", root)
    assert any(str(odd) in p for p in problems)
    ds = data.load("folder", root, image_size=8)
    assert ds.images.shape == (13, 3, 8, 8)
    assert data.check("folder", root, image_size=8) == []


def test_test_split_of_another_size(make_folder):
    root = make_folder()
    shutil.rmtree(root / "test")
    for i in range(2):
        write_png(root / "test" / "cat" / f"c{i}.png", np.random.default_rng(i), 32)
    with pytest.raises(DataFormatError, match=r"train images \(3, 16, 16\)"):
        data.load("folder", root, "test")
    problems = data.check("folder", root)
    assert len(problems) == 1 and "(3, 32, 32)" in problems[0]
    assert data.load("folder", root, "test", image_size=16).images.shape == (2, 3, 16, 16)


@pytest.mark.parametrize("missing", ["train", "test"])
def test_missing_split(make_folder, missing):
    root = make_folder()
    shutil.rmtree(root / missing)
    with pytest.raises(DataNotFoundError, match="folder not found") as info:
        data.load("folder", root, "test")
    assert str(root / missing) in str(info.value)
    problems = data.check("folder", root)
    assert problems and all(str(root / missing) in p for p in problems)


def test_missing_root(tmp_path):
    with pytest.raises(DataNotFoundError):
        data.load("folder", tmp_path / "nowhere")


def test_train_without_class_folders(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    with pytest.raises(DataFormatError) as info:
        data.load("folder", tmp_path)
    assert str(tmp_path / "train") in str(info.value)


def test_empty_train_class_folder(make_folder):
    root = make_folder()
    (root / "train" / "fox").mkdir()
    with pytest.raises(DataFormatError, match="fox"):
        data.load("folder", root)


def test_unreadable_file(make_folder):
    root = make_folder()
    bad = root / "train" / "eel" / "eel_1.png"
    bad.write_bytes(b"\x00garbage" * 20)
    with pytest.raises(DataFormatError, match="unreadable image") as info:
        data.load("folder", root, "train")
    assert str(bad) in str(info.value)
    with pytest.raises(DataFormatError, match="unreadable image"):
        data.load("folder", root, "test")  # test needs the train statistics
    problems = data.check("folder", root)
    assert len(problems) == 1 and problems[0].startswith(str(bad))


def test_non_image_files_are_ignored(make_folder):
    root = make_folder()
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    (root / "train" / "README").write_text("a file beside the class folders")
    assert len(data.load("folder", root)) == 12
