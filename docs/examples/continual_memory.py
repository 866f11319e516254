"""A distilled replay memory in an ordinary Avalanche training loop (split MNIST).

    python docs/examples/continual_memory.py                  # real MNIST, 10 images per class
    python docs/examples/continual_memory.py --root data --ipc 1 --iterations 2 --epochs 1

After each experience the memory condenses that experience's classes (DataDAM) into
IPC images per class; the learner is fine-tuned on each experience with the memory
replayed in every minibatch. Needs the `continual` extra (Avalanche).
"""

from __future__ import annotations

import argparse

import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training import Naive
from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin

import datadam
from datadam.apps.continual import DistilledBuffer, class_incremental


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="data folder (default: $DATADAM_DATA, ./data)")
    parser.add_argument("--ipc", type=int, default=10, help="memory: images per class")
    parser.add_argument("--iterations", type=int, default=500, help="distillation iterations")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs per experience")
    args = parser.parse_args()

    train = datadam.data.load("mnist", args.root, split="train")
    test = datadam.data.load("mnist", args.root, split="test")
    bench = class_incremental(train, test, experiences=5)  # 2 digits per experience

    model = datadam.models.create("convnet3", 1, 10, (28, 28), seed=0)
    memory_size = args.ipc * 10
    memory = DistilledBuffer(memory_size, adaptive_size=False, total_num_classes=10,
                             method="datadam", dataset="mnist", iterations=args.iterations,
                             progress=False)
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
                     criterion=torch.nn.CrossEntropyLoss(), train_mb_size=128,
                     train_epochs=args.epochs,
                     evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[]),
                     plugins=[ReplayPlugin(mem_size=memory_size, storage_policy=memory)])
    for t, experience in enumerate(bench.train_stream):
        strategy.train(experience)
        metrics = strategy.eval(bench.test_stream[: t + 1])
        accuracy = next(v for k, v in metrics.items() if k.startswith("Top1_Acc_Stream"))
        print(f"after experience {t}: {2 * (t + 1)} classes seen, {len(memory.buffer)} images in memory, "
              f"accuracy on the classes seen {100 * accuracy:.2f} %")


if __name__ == "__main__":
    main()
