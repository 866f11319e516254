"""The settings of an evaluation beside its training recipe, without torch: how many fresh
networks each model gets and how they share the machine. :func:`datadam.evaluate.evaluate`
takes its defaults and bounds from here, and ``datadam evaluate`` its options, when the
command line starts and before torch is imported."""

from __future__ import annotations

from dataclasses import dataclass

from datadam.settings import RUN_PANEL, check_bounds, setting

FULL_DATA_TRAINING = {"epochs": 20, "schedule": "cosine", "augmentation": "none"}
"""The full-data upper bound's training (:func:`datadam.evaluate.evaluate_full_data`):
SGD with a cosine schedule for a few epochs, no augmentation; ``datadam evaluate
--full-epochs`` changes the epochs."""


@dataclass(frozen=True)
class EvaluationSettings:
    """How an evaluation trains its networks, field by field (the arguments of
    :func:`datadam.evaluate.evaluate` of the same names).

    Attributes:
        runs: fresh networks per model; the result is the mean and std of their final
            accuracy.
        jobs: on a CPU, networks trained at once, each in its own process with its share
            of the threads (the same networks as one at a time, up to rounding).
        together: train a model's ``runs`` networks at once as one stacked network
            (``torch.func.vmap``); ``None``: on a GPU, for models without BatchNorm or dropout.
    """

    runs: int = setting(5, low=1, metavar="N", help="Fresh networks per model (mean ± std reported).")
    jobs: int = setting(1, low=1, flags=("--jobs", "-j"), metavar="N", panel=RUN_PANEL,
                        help="Train N networks at once on the CPU, each in its own process with its share "
                             "of the threads (the same networks as one at a time).")
    together: bool | None = setting(
        None, flags=("--together/--one-at-a-time",), metavar="", panel=RUN_PANEL,
        show_default="together on a GPU, for models without BatchNorm or dropout",
        help="Train a model's runs at once as one stacked network (torch.func.vmap; the same weights "
             "up to rounding) or one after another.")

    def __post_init__(self) -> None:
        check_bounds(self)
