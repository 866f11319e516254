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
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, ClassVar

from datadam import records
from datadam.errors import DataFormatError
from datadam.files import write_json
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


class JsonRecord:
    """A dataclass saved as one JSON record of :attr:`KIND` (its fields, as they are).

    Subclasses (:class:`~datadam.apps.nas.architecture_search.SearchResult`,
    :class:`~datadam.apps.nas.rank_study.StudyResult`) set ``KIND`` and ``WHAT``, the
    words that name the file in errors.
    """

    KIND: ClassVar[str]
    WHAT: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        """Write the record to ``path`` (JSON, atomically), stamped with its schema version."""
        return write_json(path, records.stamp(self.KIND, self.to_dict()))

    @classmethod
    def from_record(cls, record: dict[str, Any]):
        """The object a record of any schema version holds (the file's JSON as a dict);
        :class:`DataFormatError` for a dict that is not one."""
        record = records.migrate(cls.KIND, record)
        try:
            return cls(**{f.name: record[f.name] for f in fields(cls)})
        except KeyError as e:
            raise DataFormatError(f"not a {cls.WHAT}: it has no {e.args[0]!r}") from None

    @classmethod
    def load(cls, path: str | Path):
        """The object :meth:`save` wrote to ``path``, by this or an earlier datadam."""
        path = Path(path)
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise DataFormatError(f"{path}: not a {cls.WHAT} ({e})") from None
        if not isinstance(record, dict):
            raise DataFormatError(f"{path}: not a {cls.WHAT}")
        return cls.from_record(record)
