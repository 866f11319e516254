"""Condensation methods behind one entry point, :func:`distill`.

>>> import datadam
>>> train = datadam.data.load("mnist")                          # doctest: +SKIP
>>> syn = datadam.distill(train, method="datadam", ipc=10)      # doctest: +SKIP
>>> syn.images.shape                                            # doctest: +SKIP
torch.Size([100, 1, 28, 28])
"""

from datadam.distill import coreset, matching  # noqa: F401  (registers the methods)
from datadam.distill.base import (
                                  IterationCallback,
                                  IterationState,
                                  Method,
                                  available_methods,
                                  distill,
                                  get_method,
                                  register_method,
                                  resolve_device,
)
from datadam.distill.config import DistillConfig, default_model, describe_recipe
from datadam.distill.coreset import CoresetMethod, Herding, KCenter, RandomCoreset
from datadam.distill.matching import (
                                  DM,
                                  DataDAM,
                                  MatchingMethod,
                                  matching_loss,
                                  matching_targets,
                                  spatial_attention,
)

__all__ = ["DM", "CoresetMethod", "DataDAM", "DistillConfig", "Herding", "IterationCallback",
           "IterationState", "KCenter",
           "MatchingMethod", "Method", "RandomCoreset", "available_methods", "default_model",
           "describe_recipe", "distill", "get_method", "matching_loss", "matching_targets",
           "register_method", "resolve_device", "spatial_attention"]
