"""Your own NNI model space, searched by NNI's Random strategy, every candidate scored by
datadam's proxy evaluator: trained on a condensed set, tested on real validation images.

    python docs/examples/nas_own_space.py                  # MNIST, a 100-image DataDAM proxy
    python docs/examples/nas_own_space.py --root data --validation 10 --ipc 1 --iterations 2 --epochs 1

All but the evaluator is NNI's: a ``ModelSpace`` with two ``LayerChoice``s (four
networks), the ``Random`` strategy, an experiment of three trials run one after another
in this process (the ``sequential`` engine). ``nas.Experiment`` is NNI's
``NasExperiment`` that keeps its files in the folder given and its web portal, with the
``ts`` engine, on 127.0.0.1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# datadam.apps.nas first (or after `import nni`, before nni.nas.nn): it tells NNI to use
# no deep-learning framework, which nni 3.0 would otherwise import pytorch_lightning for.
from datadam.apps import nas  # isort: skip

from nni.nas.nn.pytorch import LayerChoice, ModelSpace
from nni.nas.strategy import Random
from torch import nn


def conv_block(channels_in: int, channels_out: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels_in, channels_out, 3, padding=1),
                         nn.GroupNorm(4, channels_out), nn.ReLU())


class TwoChoices(ModelSpace):
    """Images ``[B, C, H, W]`` to logits ``[B, K]``: one or two conv blocks, then average
    or max pooling to 4 x 4, then a linear layer."""

    def __init__(self, channels: int = 1, classes: int = 10, width: int = 16):
        super().__init__()
        self.features = LayerChoice({
            "one_block": conv_block(channels, width),
            "two_blocks": nn.Sequential(conv_block(channels, width), conv_block(width, width)),
        }, label="features")
        self.pool = LayerChoice({"avg": nn.AdaptiveAvgPool2d(4), "max": nn.AdaptiveMaxPool2d(4)},
                                label="pool")
        self.head = nn.Linear(width * 16, classes)

    def forward(self, x):
        return self.head(self.pool(self.features(x)).flatten(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="MNIST folder (default: $DATADAM_DATA, ./data)")
    parser.add_argument("--validation", type=int, default=5000, help="real images that score every candidate")
    parser.add_argument("--ipc", type=int, default=10, help="images per class of the proxy")
    parser.add_argument("--iterations", type=int, default=200, help="DataDAM iterations of the proxy")
    parser.add_argument("--epochs", type=int, default=nas.PROXY_BUDGET["epochs"],
                        help="epochs of every candidate on the proxy")
    parser.add_argument("--out", type=Path, default=Path("runs/nas_own_space"), help="output folder")
    args = parser.parse_args()

    # The proxy: condensed from the training images outside the validation split, so it
    # has never seen an image the candidates are scored on.
    proxy = nas.distill_proxy("mnist", ipc=args.ipc, iterations=args.iterations, validation=args.validation,
                              root=args.root, progress=False)
    proxy_file = proxy.save(args.out / "proxy.safetensors")

    # What every trial does: the proxy budget (fewer epochs if asked), scored on the
    # same validation split the proxy was condensed without.
    task = nas.Task("mnist", proxy=str(proxy_file), root=args.root, validation=args.validation,
                    train=nas.PROXY_BUDGET | {"epochs": args.epochs})
    config = nas.experiment_config(args.out, engine="sequential", trials=3)
    experiment = nas.Experiment(TwoChoices(), nas.make_evaluator(task), Random(seed=0), config)
    experiment.run()
    for model in experiment.export_top_models(top_k=3):  # best first
        print(f"{model.sample}: {100 * model.metrics.final:.2f} % validation accuracy")
    experiment.stop()


if __name__ == "__main__":
    main()
