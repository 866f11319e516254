"""The pictures of the method page: what DataDAM matches, and how images change.

    python docs/examples/pictures.py --out docs/img              # real MNIST: the committed figures
    python docs/examples/pictures.py --root data --iterations 4 --every 2 --out /tmp/p

Distils one set while keeping a snapshot of the images every --every iterations and
logging to TensorBoard (if installed), then draws the attention maps of a class (real
vs synthetic) and the evolution of that class's images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import datadam
from datadam.errors import MissingDependencyError
from datadam.plots import class_index, plot_attention, plot_evolution


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="data folder (default: $DATADAM_DATA, ./data)")
    parser.add_argument("--ipc", type=int, default=5, help="synthetic images per class")
    parser.add_argument("--iterations", type=int, default=150, help="distillation iterations")
    parser.add_argument("--every", type=int, default=15, help="iterations between two snapshots")
    parser.add_argument("--init", default="noise", help="real or noise (noise shows the evolution best)")
    parser.add_argument("--class", dest="label", default="3", help="the class to draw")
    parser.add_argument("--out", type=Path, default=Path("out/pictures"), help="output folder")
    args = parser.parse_args()

    train = datadam.data.load("mnist", args.root, split="train")
    callbacks = []
    try:
        from datadam.monitor import TensorBoardLogger

        callbacks.append(TensorBoardLogger(args.out / "tensorboard", image_every=args.every))
    except MissingDependencyError as e:  # TensorBoard is optional
        print(f"no TensorBoard log: {e}")
    syn = datadam.distill(train, method="datadam", ipc=args.ipc, iterations=args.iterations,
                          init=args.init, snapshot_every=args.every, callbacks=callbacks, seed=0)
    for callback in callbacks:
        callback.close()
    syn.save(args.out / "pictures.safetensors")

    label = class_index(syn, args.label)
    print("wrote", plot_attention(syn, train, label, args.out / "attention_mnist.png", n_images=args.ipc))
    print("wrote", plot_evolution(syn, label, args.out / "evolution_mnist.png"))


if __name__ == "__main__":
    main()
