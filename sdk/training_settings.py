"""The settings of training an evaluation network, without torch: the fields of
:class:`datadam.training.TrainConfig`, which adds what needs torch. The command line
reads them (help, bounds, options) when it starts, before torch is imported."""

from __future__ import annotations

from dataclasses import dataclass

from datadam.errors import ConfigError
from datadam.settings import TRAINING_PANEL, check_bounds, setting

TRAIN_PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class TrainSettings:
    """The protocol's recipe, field by field (see :class:`datadam.training.TrainConfig`).

    Attributes:
        epochs: training epochs (the protocol: 1,000).
        batch: minibatch size.
        lr: SGD learning rate.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        schedule: ``step`` (lr x0.1 at half the epochs) or ``cosine``.
        augmentation: DSA preset or families; ``None``: the dataset's preset, ``none``: no DSA.
        precision: ``fp32``, or ``bf16``: forward and backward under bfloat16 autocast,
            weights in fp32.
        compile: run each network's step through ``torch.compile``.
    """

    epochs: int = setting(1000, low=1, metavar="N", help="Training epochs (protocol: 1000).")
    batch: int = setting(256, low=1, metavar="N", panel=TRAINING_PANEL, help="Training minibatch.")
    lr: float = setting(0.01, low=0.0, low_allowed=False, metavar="LR", panel=TRAINING_PANEL,
                        help="SGD learning rate (x0.1 at half the epochs).")
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "step"
    augmentation: str | None = setting(None, metavar="NAME", panel=TRAINING_PANEL,
                                       show_default="as distilled", help="DSA during training.")
    precision: str = setting("fp32", metavar="PRECISION", panel=TRAINING_PANEL,
                             help="Arithmetic of training: fp32 (the protocol) or bf16 (bfloat16 autocast, "
                                  "weights in fp32: faster where the CPU or GPU has bfloat16 units; "
                                  "measure first).")
    compile: bool = setting(False, flags=("--compile/--no-compile",), panel=TRAINING_PANEL,
                            help="Compile each network's training step with torch.compile (TorchInductor): "
                                 "the same training up to rounding, faster after a compilation of tens of "
                                 "seconds per process (on a CPU it needs a C++ compiler).")

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.precision not in TRAIN_PRECISIONS:
            raise ConfigError(f"precision must be {' or '.join(TRAIN_PRECISIONS)}, not {self.precision!r}")
