"""Continual learning with Avalanche: a replay memory of condensed images.

- :class:`DistilledBuffer`: an Avalanche storage policy that distils each experience's
  classes (DataDAM or DM) into a per-class budget of synthetic images, for any
  Avalanche benchmark (``nc_benchmark``, ``class_incremental_benchmark``...);
- :class:`DistilledReplayPlugin`: Avalanche's ``ReplayPlugin`` that checks each
  experience against the memory before it trains and updates it through ``post_adapt``;
- :func:`make_buffer`: that memory and the real-image baselines (``random``,
  ``herding``) by name, at equal memory;
- :func:`class_incremental`: Avalanche class-incremental benchmarks from datadam datasets;
- :func:`make_strategy`: the ``replay`` and ``retrain`` protocols as Avalanche strategies;
- :func:`compare_buffers`: the whole comparison over class orders, with results and a plot.
"""

from __future__ import annotations

from datadam.lazy import lazy_exports

# Names are loaded on first use: `datadam --help` imports this package (for the
# `continual` command's module) and must not pay for Avalanche, or fail without it.
_EXPORTS = {
    "class_incremental": "benchmarks", "class_orders": "benchmarks",
    "default_experiences": "benchmarks",
    "ClassBalancedHerdingBuffer": "buffers", "DistilledBuffer": "buffers",
    "DEFAULT_ITERATIONS": "buffers", "as_avalanche_dataset": "buffers", "to_stream_space": "buffers",
    "LearnerHerding": "buffers", "available_buffers": "buffers", "make_buffer": "buffers",
    "ContinualConfig": "experiment", "compare_buffers": "experiment", "summarise": "experiment",
    "plot_accuracy": "plots",
    "PROTOCOLS": "protocols", "DSAPlugin": "protocols", "LearnerConfig": "protocols",
    "RetrainOnMemoryPlugin": "protocols",
    "DistilledReplayPlugin": "protocols", "make_strategy": "protocols",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
