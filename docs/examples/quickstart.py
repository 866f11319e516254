"""The first hour in Python: condense MNIST, look at it, evaluate it.

    python docs/examples/quickstart.py                      # real MNIST, about 3 minutes on 2 cores
    python docs/examples/quickstart.py --root data --ipc 1 --iterations 5 --epochs 2 --out /tmp/q

Writes OUT/mnist_ipc{IPC}.safetensors, a grid of the images, the loss curve and the
evaluation as JSON: the same files as `make demo`, so `datadam report OUT` works on them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import datadam
from datadam.evaluate import TrainConfig, evaluate
from datadam.plots import plot_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="data folder (default: $DATADAM_DATA, ./data)")
    parser.add_argument("--ipc", type=int, default=10, help="synthetic images per class")
    parser.add_argument("--iterations", type=int, default=100, help="distillation iterations")
    parser.add_argument("--epochs", type=int, default=100, help="epochs of each evaluation network")
    parser.add_argument("--runs", type=int, default=2, help="evaluation networks")
    parser.add_argument("--out", type=Path, default=Path("out/quickstart"), help="output folder")
    args = parser.parse_args()

    train = datadam.data.load("mnist", args.root, split="train")  # uint8 [N, 1, 28, 28] + labels
    test = datadam.data.load("mnist", args.root, split="test")
    print(train)

    syn = datadam.distill(train, method="datadam", ipc=args.ipc, iterations=args.iterations, seed=0)
    stem = args.out / f"mnist_ipc{args.ipc}"
    syn.save(stem.with_suffix(".safetensors"))  # one file: images, labels, every setting, the loss
    syn.save_grid(f"{stem}.png")  # one row per digit
    plot_loss(syn.metadata["loss_history"], f"{stem}_loss.png")
    print(syn, f"final loss {syn.metadata['loss_history'][-1]:.4g}")

    result = evaluate(syn, test, ["convnet3"], runs=args.runs, train=TrainConfig(epochs=args.epochs))
    summary = result.summary["convnet3"]
    print(f"convnet3 trained on {len(syn)} synthetic images: "
          f"{100 * summary['accuracy_mean']:.2f} ± {100 * summary['accuracy_std']:.2f} % test accuracy")
    report = dict(result.to_dict(), synthetic=stem.with_suffix(".safetensors").name)
    Path(f"{stem}_eval.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
