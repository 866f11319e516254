"""The record kind of the continual-learning results file, and its frozen steps.

``continual_results``: ``results.json`` of :func:`~datadam.apps.continual.experiment.compare_buffers`
(settings, runs, summary), written through :func:`datadam.records.stamp` and read back
(to resume) through :func:`datadam.records.migrate`.
"""

from __future__ import annotations

from typing import Any

from datadam.records import register_kind

RESULTS = "continual_results"


def _schema_only(record: dict[str, Any]) -> dict[str, Any]:
    """Version 2 is version 1 with a ``schema`` key: the form did not change."""
    return dict(record)


register_kind(RESULTS, 2, {1: _schema_only})
