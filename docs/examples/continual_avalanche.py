"""DataDAM's distilled replay memory in an ordinary Avalanche experiment: split MNIST
built with Avalanche's own nc_benchmark, a Naive strategy, accuracy and forgetting.

    python docs/examples/continual_avalanche.py            # 5 experiences of 2 digits, 10 images per class
    python docs/examples/continual_avalanche.py --tiny     # 30 images per digit, 2 iterations: seconds

After each experience the memory condenses that experience's digits into IPC images per
class (200 distillation iterations by default); the learner is fine-tuned on each
experience with the memory replayed in every minibatch. Set DATADAM_EXAMPLE_TINY=1 for
the tiny run too. Needs the `continual` extra (Avalanche).
"""

from __future__ import annotations

import argparse
import os
import warnings

import torch
from avalanche.benchmarks import nc_benchmark
from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin
from torch.utils.data import TensorDataset

import datadam
from datadam.apps.continual import DistilledBuffer, DistilledReplayPlugin


def tensors(split: str, root: str | None, per_class: int | None) -> TensorDataset:
    """MNIST as plain tensors: images float [N, 1, 28, 28] in [0, 1], labels [N]."""
    data = datadam.data.load("mnist", root, split=split)
    if per_class is not None:
        data = data.subset(torch.cat([data.indices_of(k)[:per_class] for k in range(10)]))
    return TensorDataset(data.images.float() / 255, data.labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="data folder (default: $DATADAM_DATA, ./data)")
    parser.add_argument("--tiny", action="store_true", default=bool(os.environ.get("DATADAM_EXAMPLE_TINY")),
                        help="a few hundred images and 2 distillation iterations")
    args = parser.parse_args()
    ipc, per_class, iterations = (1, 30, 2) if args.tiny else (10, None, 200)

    # Avalanche's own benchmark, 2 digits per experience
    bench = nc_benchmark(tensors("train", args.root, per_class), tensors("test", args.root, per_class),
                         n_experiences=5, task_labels=False, fixed_class_order=list(range(10)))

    # the memory picks its augmentation (no flips for digits) and scale from the images
    memory = DistilledBuffer(max_size=10 * ipc, adaptive_size=False, total_num_classes=10,
                             iterations=iterations, progress=False)
    model = datadam.models.create("convnet3", 1, 10, (28, 28), seed=0)
    with warnings.catch_warnings():  # metrics are read from strategy.eval, so no logger
        warnings.filterwarnings("ignore", "No loggers specified")
        evaluator = EvaluationPlugin(accuracy_metrics(experience=True, stream=True),
                                     forgetting_metrics(experience=True, stream=True), loggers=[])
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
                     criterion=torch.nn.CrossEntropyLoss(), train_mb_size=128, train_epochs=1,
                     eval_mb_size=512, evaluator=evaluator,
                     device="cuda" if torch.cuda.is_available() else "cpu",
                     plugins=[DistilledReplayPlugin(memory)])

    for t, experience in enumerate(bench.train_stream):
        strategy.train(experience)
        metrics = strategy.eval(bench.test_stream[: t + 1])
        accuracy = metrics["Top1_Acc_Stream/eval_phase/test_stream/Task000"]
        forgetting = metrics.get("StreamForgetting/eval_phase/test_stream", 0.0)
        print(f"after experience {t}: {2 * (t + 1)} classes seen, {len(memory.buffer)} images in "
              f"memory, accuracy {100 * accuracy:.2f} %, forgetting {100 * forgetting:.2f} %")


if __name__ == "__main__":
    main()
