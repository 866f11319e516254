"""The full-data results of proxy studies, kept in a JSON file so each is paid once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from datadam import records
from datadam.apps.nas.architecture import Architecture, arch_key
from datadam.apps.nas.record_kinds import FULL_DATA_CACHE
from datadam.errors import DataFormatError
from datadam.files import write_json
from datadam.training import TrainConfig

#: The ``format`` that names a file as a full-data cache (its version is its ``schema``).
CACHE_FORMAT = "datadam.nas.full-data-cache/1"


class FullDataCache:
    """Full-data results in a JSON file, keyed by dataset, split, architecture, budget and seed.

    Every new entry is written at once (atomically), so an interrupted study keeps
    what it paid for. A cache written by an earlier datadam is read through the
    ``nas_full_data_cache`` record steps (:mod:`datadam.apps.nas.record_kinds`).
    """

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path is not None and self.path.exists():
            self.entries = _read(self.path)["entries"]

    @staticmethod
    def key(dataset: str, dataset_options: dict[str, Any] | None, split: dict[str, Any],
            arch: Architecture, train: TrainConfig, seed: int) -> str:
        """The entry of ``arch`` trained with ``train`` and ``seed`` on ``dataset`` (a
        registry name, or ``data:<fingerprint>`` for data given in Python) less ``split``'s
        validation images."""
        return json.dumps({"dataset": dataset, "options": dataset_options or {},
                           "validation": split["validation_images"], "split_seed": split["split_seed"],
                           "arch": arch_key(arch), "train": train.key(), "seed": seed}, sort_keys=True)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        self.entries[key] = record
        if self.path is not None:
            write_json(self.path, records.stamp(FULL_DATA_CACHE,
                                                {"format": CACHE_FORMAT, "entries": self.entries}))


def _read(path: Path) -> dict[str, Any]:
    """The cache at ``path`` in today's form; :class:`DataFormatError` for another file."""
    try:
        blob = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataFormatError(f"{path}: not a JSON cache ({e})") from None
    if not (isinstance(blob, dict) and blob.get("format") == CACHE_FORMAT
            and isinstance(blob.get("entries"), dict)):
        raise DataFormatError(f"{path}: not a datadam full-data cache")
    return records.migrate(FULL_DATA_CACHE, blob)
