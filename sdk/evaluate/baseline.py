"""The full-data upper bound: one network trained on the whole training split."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from datadam import models as model_registry
from datadam.augment import DSA
from datadam.data.base import ImageDataset
from datadam.data.convert import as_image_dataset
from datadam.distill.base import resolve_device
from datadam.evaluate.cost import training_flops
from datadam.evaluate.metrics import _metrics
from datadam.evaluation_settings import FULL_DATA_TRAINING
from datadam.memory import check_training_memory
from datadam.progress import progress_bar
from datadam.training import TrainConfig, predict, train_network, wait_for


def evaluate_full_data(train_data: ImageDataset, test: ImageDataset, model: str = "convnet3", *,
                       train: TrainConfig | None = None, seed: int = 0, device: str = "auto",
                       progress: bool | None = None,
                       model_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The full-data upper bound: a network trained on the whole training split, by default
    (``train=None``) with SGD and cosine annealing, lr 0.01, 20 epochs, no augmentation
    (:data:`datadam.evaluation_settings.FULL_DATA_TRAINING`). Returns the test metrics with
    the wall time and FLOPs of training, to set against a synthetic set's, and the wall
    time of testing apart (``test_seconds``)."""
    train_data, test = as_image_dataset(train_data), as_image_dataset(test, split="test")
    train = train or TrainConfig(**FULL_DATA_TRAINING)
    dev = resolve_device(device)
    train.check_device(dev)
    net = model_registry.create(model, train_data.channels, train_data.num_classes, train_data.image_size,
                                seed=seed, **(model_options or {})).to(dev)
    check_training_memory(net, tuple(train_data.images.shape[1:]), min(train.batch, len(train_data)), dev)
    images = train_data.normalized().to(dev)
    flops = training_flops(net, tuple(images.shape[1:]), train_data.num_classes,
                           len(images) * train.epochs)
    test_x = test.normalized(mean=train_data.mean, std=train_data.std).to(dev)
    bar = progress_bar(progress)
    with bar:
        task = bar.add_task(f"full data {model}", total=train.epochs)
        testing = bar.add_task(f"test full data {model}", total=len(test_x), start=False)
        start = time.perf_counter()
        train_network(net, images, train_data.labels.to(dev), train,
                      DSA.from_name(train.augmentation or "none"), seed,
                      progress=lambda: bar.advance(task))
        wait_for(dev)
        tested = time.perf_counter()
        bar.start_task(testing)
        logits = predict(net, test_x, progress=lambda n: bar.advance(testing, n)).cpu()
        done = time.perf_counter()
    record = _metrics(logits, test.labels, test.num_classes)
    record.update(model=model, train_seconds=round(tested - start, 3), test_seconds=round(done - tested, 3),
                  train_flops=flops, train_images=len(images), train=asdict(train), seed=seed,
                  device=str(dev))
    return record
