"""Condensation methods behind one entry point, :func:`distill`.

>>> import datadam
>>> train = datadam.data.load("mnist")                          # doctest: +SKIP
>>> syn = datadam.distill(train, method="datadam", ipc=10)      # doctest: +SKIP
>>> syn.images.shape                                            # doctest: +SKIP
torch.Size([100, 1, 28, 28])

``datadam.distill`` is this package, and calling it is calling :func:`distill`, so that
both ``datadam.distill(train)`` and ``import datadam.distill.matching`` work. Its names load
on first use: the command line reads :mod:`datadam.distill.config` without torch.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from datadam.lazy import lazy_exports

if TYPE_CHECKING:  # what the names are, for type checkers and the API reference
    from datadam.distill.base import (
        IterationCallback,
        IterationState,
        Method,
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
    from datadam.distill.methods import available_methods, distill, get_method

_EXPORTS = {
    "IterationCallback": "base", "IterationState": "base", "Method": "base",
    "register_method": "base", "resolve_device": "base",
    "available_methods": "methods", "distill": "methods", "get_method": "methods",
    "DistillConfig": "config", "default_model": "config", "describe_recipe": "config",
    "CoresetMethod": "coreset", "Herding": "coreset", "KCenter": "coreset", "RandomCoreset": "coreset",
    "DM": "matching", "DataDAM": "matching", "MatchingMethod": "matching",
    "matching_loss": "matching", "matching_targets": "matching", "spatial_attention": "matching",
}

__all__ = ["DM", "CoresetMethod", "DataDAM", "DistillConfig", "Herding", "IterationCallback",
           "IterationState", "KCenter", "MatchingMethod", "Method", "RandomCoreset", "available_methods",
           "default_model", "describe_recipe", "distill", "get_method", "matching_loss", "matching_targets",
           "register_method", "resolve_device", "spatial_attention"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


class _CallablePackage(types.ModuleType):
    """This package, callable as :func:`distill`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from datadam.distill.methods import distill

        return distill(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
