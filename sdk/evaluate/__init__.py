"""The evaluation protocol: train fresh networks on a synthetic set, test
on real data, report mean and std of the final accuracy.

Its modules: ``results`` (the result, its file and summary), ``runner``
(:func:`evaluate` and its three ways of training), ``resume`` (going on from an
interrupted evaluation), ``merging``, ``comparison`` (paired statistics), ``metrics``,
``cost`` (training FLOPs) and ``baseline`` (the full-data bound).

Examples:
    >>> result = evaluate(syn, test, models=["convnet3"], runs=5)    # doctest: +SKIP
    >>> result.summary["convnet3"]["accuracy_mean"]                  # doctest: +SKIP
"""

from __future__ import annotations

from datadam.evaluate.baseline import evaluate_full_data
from datadam.evaluate.comparison import METRICS, compare_results, comparison_text
from datadam.evaluate.cost import training_flops
from datadam.evaluate.merging import merge_results
from datadam.evaluate.metrics import binary_auc
from datadam.evaluate.results import EvaluationResult, distillations, read_report
from datadam.evaluate.runner import check_compatible, evaluate

# The training protocol's names, importable from here as they always were (documented
# with datadam.training, so not in __all__).
from datadam.training import TrainConfig as TrainConfig
from datadam.training import TrainingCheckpoint as TrainingCheckpoint
from datadam.training import can_train_together as can_train_together
from datadam.training import predict as predict
from datadam.training import train_network as train_network
from datadam.training import train_networks_together as train_networks_together
from datadam.training import wait_for as wait_for

__all__ = [
    "METRICS",
    "EvaluationResult",
    "binary_auc",
    "check_compatible",
    "compare_results",
    "comparison_text",
    "distillations",
    "evaluate",
    "evaluate_full_data",
    "merge_results",
    "read_report",
    "training_flops",
]
