"""Your tensors in, a synthetic set out, your own training loop on it.

    python docs/examples/own_tensors.py                  # 10,000 MNIST images as plain tensors
    python docs/examples/own_tensors.py --root data --train 200 --ipc 1 --iterations 2 --epochs 1

datadam takes images as they are in your code: ``uint8 [N, C, H, W]`` pixels (or floats
in ``[0, 1]``, as ``ToTensor`` gives them) with labels ``0..K-1``, as an ``(x, y)`` pair,
a ``TensorDataset`` or any map-style Dataset (torchvision's). MNIST only supplies the
tensors here; nothing below depends on what they are.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms import Normalize

import datadam


def your_network(channels: int, classes: int) -> nn.Module:
    """Any network: datadam does not need to know it."""
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1), nn.GroupNorm(4, 32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.GroupNorm(8, 64), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
        nn.Flatten(), nn.Linear(64 * 16, classes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="MNIST folder (default: $DATADAM_DATA, ./data)")
    parser.add_argument("--train", type=int, default=10_000, help="training images taken")
    parser.add_argument("--ipc", type=int, default=10, help="synthetic images per class")
    parser.add_argument("--iterations", type=int, default=200, help="distillation iterations")
    parser.add_argument("--epochs", type=int, default=300, help="epochs of your network on the set")
    args = parser.parse_args()

    mnist = datadam.data.load("mnist", args.root, split="train")
    x, y = mnist.images[:args.train], mnist.labels[:args.train]  # uint8 [N, 1, 28, 28], int64 [N]
    test = datadam.data.load("mnist", args.root, split="test")
    x_test, y_test = test.images, test.labels

    smallest_class = int(torch.bincount(y).min())
    syn = datadam.distill(TensorDataset(x, y), ipc=args.ipc, iterations=args.iterations,
                          batch_real=min(64, smallest_class), seed=0)
    print(syn, "|", syn.metadata["augmentation_rule"])

    # The set is a Dataset of (normalised image [C, H, W], label): straight into a DataLoader.
    torch.manual_seed(0)
    net = your_network(x.shape[1], len(syn.classes))
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    for _ in range(args.epochs):
        for images, labels in DataLoader(syn, batch_size=256, shuffle=True):
            opt.zero_grad()
            nn.functional.cross_entropy(net(images), labels).backward()
            opt.step()

    # Real images are normalised as the set is: with its mean and std.
    normalize = Normalize(syn.mean, syn.std)
    with torch.no_grad():
        predicted = torch.cat([net(normalize(chunk.float() / 255)).argmax(1) for chunk in x_test.split(1000)])
    accuracy = (predicted == y_test).float().mean().item()
    print(f"your network, trained on {len(syn)} synthetic images: {100 * accuracy:.2f} % test accuracy")

    # The images on the [0, 1] scale, for code that normalises them itself (or saves them).
    pixels = syn.to_tensor_dataset(denormalize=True)
    images, _ = pixels.tensors
    print(f"to_tensor_dataset(denormalize=True): {tuple(images.shape)} in "
          f"[{images.min():.2f}, {images.max():.2f}]")


if __name__ == "__main__":
    main()
