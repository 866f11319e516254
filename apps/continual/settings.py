"""The settings of a continual-learning comparison, without torch: the fields of
:class:`datadam.apps.continual.experiment.ContinualConfig`, which adds what needs torch and Avalanche.
``datadam continual`` reads them (help, bounds, options) when the command line starts,
before either is imported."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datadam.settings import setting


@dataclass(frozen=True)
class ContinualSettings:
    """Every setting of a comparison, field by field (see
    :class:`~datadam.apps.continual.experiment.ContinualConfig`, whose attributes they are)."""

    buffers: tuple[str, ...] = setting(
        ("random", "herding", "dm", "datadam"), flags=("--buffers", "-b"), metavar="NAMES",
        help="Comma-separated memories: random, herding, dm, datadam (and none, no replay, with "
             "--protocol replay).")
    ipc: int = setting(10, low=1, metavar="N", help="Memory in images per class.")
    orders: int = setting(3, low=1, metavar="N",
                          help="Class orders: the natural one, then seeded permutations (mean and spread "
                               "are over these).")
    protocol: str = setting("retrain", metavar="NAME",
                            help="retrain: a model trained from scratch on the memory at each step (the "
                                 "papers' protocol); replay: fine-tuning with replay.")
    experiences: int | None = setting(None, low=1, metavar="N", show_default="5 for mnist, 2 for mhist",
                                      help="Experiences of the stream.")
    model: str = setting("convnet3", metavar="NAME", help="The learner network (a datadam model name).")
    model_options: dict[str, Any] = setting(default_factory=dict)
    epochs: int | None = setting(None, low=1, metavar="N", show_default="150 retrain, 1 replay",
                                 help="Training epochs per experience.")
    batch: int | None = setting(None, low=1, metavar="N", show_default="256 retrain, 128 replay",
                                help="Learner minibatch.")
    lr: float = setting(0.01, low=0.0, low_allowed=False)
    train_per_class: int | None = setting(None, low=1, metavar="N", show_default="all",
                                          help="Use at most this many training images per class.")
    test_per_class: int | None = setting(None, low=1, metavar="N", show_default="all",
                                         help="Test on at most this many images per class.")
    distill: dict[str, Any] = setting(default_factory=lambda: {"iterations": 200})
    seed: int = 0
