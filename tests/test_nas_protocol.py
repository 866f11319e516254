"""NAS: a candidate is trained on exactly the proxy's images, for exactly the stated
budget, and scored on exactly the validation split.

Spies stand in for ``train_network`` and ``predict`` as the evaluator imports them (and
for the minibatches the training draws), record what they receive and call through."""

from __future__ import annotations

import pytest
import torch

from datadam import data
from datadam.apps.nas import evaluator
from datadam.apps.nas.proxy import make_proxy, split_validation
from datadam.evaluate import TrainConfig
from datadam.training import epoch_batches as real_epoch_batches

ARCH = {"depth": 2, "width": 4, "norm": "instancenorm", "activation": "relu", "pooling": "avgpooling"}


@pytest.fixture
def spied(monkeypatch):
    calls = {"train": [], "predict": [], "batches": []}
    real_train, real_predict = evaluator.train_network, evaluator.predict

    def train_network(net, images, labels, config, dsa, seed, progress=None, **kwargs):
        calls["train"].append({"images": images.clone(), "labels": labels.clone(), "config": config,
                               "net": net})
        return real_train(net, images, labels, config, dsa, seed, progress=progress, **kwargs)

    def predict(net, images, *args, **kwargs):
        logits = real_predict(net, images, *args, **kwargs)
        calls["predict"].append({"images": images.clone(), "logits": logits.clone(), "net": net})
        return logits

    def epoch_batches(images, labels, batch, dsa, g):
        for x, y in real_epoch_batches(images, labels, batch, dsa, g):
            calls["batches"].append(len(y))
            yield x, y

    monkeypatch.setattr(evaluator, "train_network", train_network)
    monkeypatch.setattr(evaluator, "predict", predict)
    monkeypatch.setattr("datadam.training.epoch_batches", epoch_batches)
    return calls


@pytest.mark.parametrize("reports", [1, 3])
def test_train_and_validate_trains_on_the_proxy_and_scores_the_validation_split(mnist_idx_root, spied,
                                                                                 reports):
    train = data.load("mnist", mnist_idx_root)
    split = split_validation(train, 10, seed=3)
    proxy = make_proxy("random", split.train, 2, seed=5)  # 20 images, none of them held out
    budget = TrainConfig(epochs=6, batch=8, lr=0.01, schedule="cosine")
    got = []
    record = evaluator.train_and_validate(ARCH, proxy, split, budget, seed=0, reports=reports,
                                          on_report=got.append)

    # trained once, on the proxy's images and labels, with the budget given
    [trained] = spied["train"]
    assert torch.equal(trained["images"], proxy.images) and torch.equal(trained["labels"], proxy.labels)
    assert trained["config"] == budget
    # the budget: 6 epochs of the 20 images in minibatches of 8 (8, 8, 4), nothing more
    # (the warm-up step runs on a throwaway copy, outside train_network)
    assert spied["batches"] == [8, 8, 4] * 6
    assert record["train_images"] == len(proxy) == 20

    # scored on the validation split, by the network that was trained
    final = spied["predict"][-1]
    assert final["net"] is trained["net"]
    assert torch.equal(final["images"], split.validation_images)
    expected = float((final["logits"].argmax(1) == split.validation_labels).float().mean())
    assert record["accuracy"] == expected
    # every scoring pass is of validation images: the intermediate ones and the warm-up's
    for call in spied["predict"]:
        assert torch.equal(call["images"], split.validation_images[:len(call["images"])])
    scored = [c for c in spied["predict"] if c["net"] is trained["net"]]
    assert len(scored) == reports  # reports - 1 intermediate, then the final one
    assert [epoch for epoch, _ in record["curve"]] == [round(6 * (i + 1) / reports) for i in range(reports)]
    assert record["curve"][-1][1] == record["accuracy"] and len(got) == reports - 1
    # and the validation images are not among the proxy's
    held = {bytes(x.numpy()) for x in split.validation_images}
    assert not any(bytes(x.numpy()) in held for x in trained["images"])


def test_the_task_loads_the_split_and_proxy_it_names(mnist_idx_root, spied):
    task = evaluator.Task(dataset="mnist", proxy="random", train={"epochs": 2, "batch": 10},
                          root=str(mnist_idx_root), validation=10, ipc=2, seed=3)
    split, proxy = evaluator.load_task_data(task)
    assert len(split.validation_labels) == 10 and len(proxy) == 20
    assert torch.equal(split.validation_images,
                       split_validation(data.load("mnist", mnist_idx_root), 10, 3).validation_images)
    record = evaluator.train_and_validate(ARCH, proxy, split, task.train_config(), task.seed)
    [trained] = spied["train"]
    assert torch.equal(trained["images"], proxy.images)
    assert trained["config"] == TrainConfig(epochs=2, batch=10)
    assert spied["batches"] == [10, 10] * 2
    assert torch.equal(spied["predict"][-1]["images"], split.validation_images)
    assert record["accuracy"] == float(
        (spied["predict"][-1]["logits"].argmax(1) == split.validation_labels).float().mean())
