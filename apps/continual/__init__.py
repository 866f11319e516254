"""Continual learning with Avalanche: a replay memory of condensed images.

- :class:`DistilledBuffer`: an Avalanche storage policy that distils each experience's
  classes (DataDAM or DM) into a per-class budget of synthetic images;
- :func:`make_buffer`: that memory and the real-image baselines (``random``,
  ``herding``) by name, at equal memory;
- :func:`class_incremental`: Avalanche class-incremental benchmarks from datadam datasets;
- :func:`make_strategy`: the ``replay`` and ``retrain`` protocols as Avalanche strategies;
- :func:`compare_buffers`: the whole comparison over class orders, with results and a plot.
"""

from datadam.apps.continual.benchmarks import class_incremental, class_orders, default_experiences
from datadam.apps.continual.buffers import (
    ClassBalancedHerdingBuffer,
    DistilledBuffer,
    LearnerHerding,
    available_buffers,
    make_buffer,
)
from datadam.apps.continual.experiment import ContinualConfig, compare_buffers, summarise
from datadam.apps.continual.plots import plot_accuracy
from datadam.apps.continual.protocols import (
    PROTOCOLS,
    DSAPlugin,
    LearnerConfig,
    RetrainOnMemoryPlugin,
    make_strategy,
)

__all__ = [
    "PROTOCOLS", "ClassBalancedHerdingBuffer", "ContinualConfig", "DSAPlugin", "DistilledBuffer",
    "LearnerConfig", "LearnerHerding", "RetrainOnMemoryPlugin", "available_buffers",
    "class_incremental", "class_orders", "compare_buffers", "default_experiences", "make_buffer",
    "make_strategy", "plot_accuracy", "summarise",
]
