"""Every file datadam writes is a *record* of one kind with a schema version.

A record is the JSON-like metadata of a file: the header of a synthetic set or a
checkpoint, an evaluation's JSON, a study's JSON. Writers :func:`stamp` it with the
kind's current version; readers pass what they load through :func:`migrate`, which
brings a record of any earlier version to today's form one step at a time. All
knowledge of older files lives in those steps, so the rest of the library sees one
form only.

A record without a ``schema`` key is version 1: everything written before records
were versioned. A step is frozen history: it says what changed between two versions
in constants of its own, never by asking today's code what a default is.

Core kinds register their steps in this module; an application registers its own
kinds with :func:`register_kind` (the core never imports an application).

>>> kind = register_kind("example", 2, {1: lambda r: {**r, "added": 0}})
>>> migrate("example", {"a": 1})
{'a': 1, 'added': 0, 'schema': 2}
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from datadam._version import __version__
from datadam.errors import DatadamError

SCHEMA_KEY = "schema"

Step = Callable[[dict[str, Any]], dict[str, Any]]


class RecordVersionError(DatadamError, ValueError):
    """A record's schema version is newer than this installation knows, or not a version."""


@dataclass(frozen=True)
class RecordKind:
    """One kind of record: its current ``version`` and the ``steps`` from each earlier
    version ``v`` to ``v + 1``."""

    name: str
    version: int
    steps: dict[int, Step] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [v for v in range(1, self.version) if v not in self.steps]
        if missing:
            raise ValueError(f"record kind {self.name!r}: no step from version(s) {missing}")


_KINDS: dict[str, RecordKind] = {}


def register_kind(name: str, version: int, steps: dict[int, Step] | None = None) -> RecordKind:
    """Make ``name`` a record kind at ``version``; ``steps[v]`` turns a version-``v``
    record into a version ``v + 1`` one (every ``v`` below ``version`` needs one)."""
    kind = RecordKind(name, version, dict(steps or {}))
    _KINDS[name] = kind
    return kind


def record_kind(name: str) -> RecordKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise KeyError(f"no record kind {name!r}; known: {', '.join(sorted(_KINDS))}") from None


def current_version(kind: str) -> int:
    """The schema version that ``kind`` is written with today."""
    return record_kind(kind).version


def stamp(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with today's schema version of ``kind``, for writing."""
    return {**record, SCHEMA_KEY: current_version(kind)}


def schema_version(record: dict[str, Any]) -> int:
    """The schema version ``record`` was written with (1: written before versions)."""
    version = record.get(SCHEMA_KEY, 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RecordVersionError(f"schema version {version!r} is not a positive integer")
    return version


def migrate(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` of ``kind``, written by any earlier datadam, in today's form.

    Returns a new dict (``record`` is not changed) with today's ``schema``. Raises
    :class:`RecordVersionError` for a record newer than this installation: upgrading
    datadam is the remedy, and guessing would mislead.
    """
    spec = record_kind(kind)
    version = schema_version(record)
    if version > spec.version:
        raise RecordVersionError(
            f"this {kind} record has schema version {version}, newer than the {spec.version} "
            f"datadam {__version__} reads: upgrade datadam")
    record = dict(record)
    for v in range(version, spec.version):
        record = spec.steps[v](record)
    record[SCHEMA_KEY] = spec.version
    return record


def software_versions(**extra: str) -> dict[str, str]:
    """The versions of datadam, torch and Python (and ``extra`` ones, e.g. ``nni=...``)
    that every record notes."""
    import torch

    return {"datadam": __version__, "torch": torch.__version__,
            "python": platform.python_version(), **extra}


# -- core kinds --------------------------------------------------------------------------
# Each kind's steps follow here; bump the version and add a step when a record's form
# changes.

# What version 2 (the first versioned form, 2026-12) knows of the files written before it.
# Settings whose default changed, with the value a version-1 file without the key was made
# with: per-class BatchNorm statistics until 2026-12-05, attention power 4 until p = 1.
_V1_SETTINGS = {"bn_statistics": "class", "attention_power": 4.0}
# The options the coresets' feature network always had before their files recorded them.
_V1_FIXED_OPTIONS = {"herding": {"net_norm": "instancenorm"}, "kcenter": {"net_norm": "instancenorm"}}
# Training fields added after evaluations were first written, at the value every earlier
# network trained with.
_V1_TRAINING = {"precision": "fp32", "compile": False}


def _settings_v2(config: Any, method: Any) -> Any:
    """A version-1 set's distillation settings (``config``) in version 2's form: a missing
    setting at its value of the time; a model choice of one value as the fixed option it is,
    and a coreset's fixed feature-network options among the options. ``{}`` (an imported
    set) stays empty."""
    if not isinstance(config, dict) or not config:
        return config
    config = {**config, **{k: v for k, v in _V1_SETTINGS.items() if k not in config}}
    choices = config.get("model_choices") or {}
    fixed = {key: values[0] for key, values in choices.items()
             if isinstance(values, (list, tuple)) and len(values) == 1}
    if fixed or "model_options" in config:
        fixed.update(_V1_FIXED_OPTIONS.get(method, {}))
    if not fixed:
        return config
    return {**config, "model_options": {**(config.get("model_options") or {}), **fixed},
            "model_choices": {key: values for key, values in choices.items() if key not in fixed}}


def _synthetic_v1_to_v2(record: dict[str, Any]) -> dict[str, Any]:
    if "config" not in record:
        return record
    return {**record, "config": _settings_v2(record["config"], record.get("method"))}


def _checkpoint_v1_to_v2(record: dict[str, Any]) -> dict[str, Any]:
    # None: the run's normalisation is unknown (a resumed run writes it); no loss terms:
    # none were recorded, so the resumed run records none either.
    return {"wall_time_s": 0.0, "loss_terms": {}, "mean": None, "std": None,
            **_synthetic_v1_to_v2(record)}


def _evaluation_v1_to_v2(record: dict[str, Any]) -> dict[str, Any]:
    settings = record.get("settings")
    if not isinstance(settings, dict):
        return record
    settings = dict(settings)
    if isinstance(settings.get("train"), dict):
        settings["train"] = {**_V1_TRAINING, **settings["train"]}
    synthetic = settings.get("synthetic")
    config = synthetic.get("config") if isinstance(synthetic, dict) else None
    if isinstance(config, dict):
        settings["synthetic"] = {**synthetic, "config": _settings_v2(config, synthetic.get("method"))}
        # version 1's ipc counted the training images per class: factor**2 per stored image
        factor = config.get("factor", 1)
        if isinstance(settings.get("ipc"), int) and isinstance(factor, int) and factor > 1:
            settings["ipc"] //= factor * factor
    return {**record, "settings": settings}


def _network_save_v1_to_v2(record: dict[str, Any]) -> dict[str, Any]:
    identity = record.get("identity")
    if not (isinstance(identity, dict) and isinstance(identity.get("train"), dict)):
        return record
    return {**record, "identity": {**identity, "train": {**_V1_TRAINING, **identity["train"]}}}


register_kind("synthetic", 2, {1: _synthetic_v1_to_v2})
register_kind("checkpoint", 2, {1: _checkpoint_v1_to_v2})
register_kind("evaluation", 2, {1: _evaluation_v1_to_v2})
register_kind("network_save", 2, {1: _network_save_v1_to_v2})


def migrate_settings(config: dict[str, Any], method: str | None = None) -> dict[str, Any]:
    """A set's distillation settings (``metadata["config"]``), read from a file of any
    version, in today's form: what :func:`migrate` does to the ``config`` of a set."""
    return migrate("synthetic", {"method": method, "config": config})["config"]
