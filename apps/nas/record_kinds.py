"""The record kinds of the files the NAS application writes, and their frozen steps.

Every file is a :mod:`datadam.records` record: written through :func:`~datadam.records.stamp`
with its kind's version, read through :func:`~datadam.records.migrate`. What an older
file needs to read as today's lives in the steps below, and nowhere else.

- ``nas_search``: ``search.json`` (:class:`~datadam.apps.nas.architecture_search.SearchResult`);
- ``nas_study``: ``study.json`` (:class:`~datadam.apps.nas.rank_study.StudyResult`);
- ``nas_full_data_cache``: the full-data results of studies
  (:class:`~datadam.apps.nas.full_data_cache.FullDataCache`);
- ``nas_task_data``: the header of a data file for NNI trials
  (:func:`~datadam.apps.nas.taskdata.save_data`).
"""

from __future__ import annotations

import json
from typing import Any

from datadam.records import register_kind

SEARCH = "nas_search"
STUDY = "nas_study"
FULL_DATA_CACHE = "nas_full_data_cache"
TASK_DATA = "nas_task_data"

# Training fields added after the first caches were written, at the value every network
# of those caches trained with (version 1's keys left them out at these values).
_V1_TRAINING = {"precision": "fp32", "compile": False}


def _schema_only(record: dict[str, Any]) -> dict[str, Any]:
    """Version 2 is version 1 with a ``schema`` key: the form did not change."""
    return dict(record)


def _cache_key_v2(key: str) -> str:
    """A version-1 entry key in version 2's form: the training settings hold every field."""
    try:
        spec = json.loads(key)
    except ValueError:
        return key  # not a key any study writes: it never matches, as before
    if not (isinstance(spec, dict) and isinstance(spec.get("train"), dict)):
        return key
    spec["train"] = {**_V1_TRAINING, **spec["train"]}
    return json.dumps(spec, sort_keys=True)


def _cache_v1_to_v2(record: dict[str, Any]) -> dict[str, Any]:
    """Version 2 keys every entry by the whole training config, and every entry holds
    ``warm_up_seconds``: ``None`` where a version-1 entry was trained before it was measured."""
    entries = record.get("entries")
    if not isinstance(entries, dict):
        return dict(record)
    migrated = {_cache_key_v2(key): ({"warm_up_seconds": None, **entry} if isinstance(entry, dict) else entry)
                for key, entry in entries.items()}
    return {**record, "entries": migrated}


register_kind(SEARCH, 2, {1: _schema_only})
register_kind(STUDY, 2, {1: _schema_only})
register_kind(FULL_DATA_CACHE, 2, {1: _cache_v1_to_v2})
register_kind(TASK_DATA, 2, {1: _schema_only})
