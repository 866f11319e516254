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
from typing import Any

from datadam.lazy import lazy_exports

_EXPORTS = {
    "IterationCallback": "base", "IterationState": "base", "Method": "base",
    "available_methods": "base", "distill": "base", "get_method": "base",
    "register_method": "base", "resolve_device": "base",
    "DistillConfig": "config", "default_model": "config", "describe_recipe": "config",
    "CoresetMethod": "coreset", "Herding": "coreset", "KCenter": "coreset", "RandomCoreset": "coreset",
    "DM": "matching", "DataDAM": "matching", "MatchingMethod": "matching",
    "matching_loss": "matching", "matching_targets": "matching", "spatial_attention": "matching",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


class _CallablePackage(types.ModuleType):
    """This package, callable as :func:`distill`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from datadam.distill.base import distill

        return distill(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
