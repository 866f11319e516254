"""The evaluation result: its schema (:class:`EvaluationResult`), reading a
``datadam evaluate --json`` file, the summary of a model's runs, and what makes two
evaluations parts of one. A file of any earlier version is read in today's form
(:func:`datadam.records.migrate`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from datadam.distill.config import describe_recipe
from datadam.errors import ConfigError
from datadam.files import EVALUATION, describe_json, is_evaluation, not_a
from datadam.records import RecordVersionError, migrate, stamp


@dataclass
class EvaluationResult:
    """Per-model accuracies of every run and their summary, with all settings."""

    runs: dict[str, list[dict[str, Any]]]
    summary: dict[str, dict[str, float]]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data, stamped with its record version (:mod:`datadam.records`)."""
        return stamp("evaluation", asdict(self))

    @classmethod
    def from_dict(cls, report: Any, source: str | Path | None = None) -> EvaluationResult:
        """The result in ``report`` (``to_dict``'s output, or a ``datadam evaluate --json``
        file's content, of any version: :func:`datadam.records.migrate` brings an earlier
        one to today's form); :class:`ConfigError`, naming ``source`` if given, if it is not
        one, :class:`~datadam.records.RecordVersionError` if a later datadam wrote it."""
        if not is_evaluation(report):
            if source is not None:
                raise ConfigError(not_a(source, EVALUATION, describe_json(report)))
            raise ConfigError("not an evaluation result (no runs, summary and settings)")
        try:
            report = migrate("evaluation", report)
        except RecordVersionError as e:
            raise RecordVersionError(f"{source}: {e}" if source is not None else str(e)) from None
        return cls(report["runs"], report["summary"], report["settings"])

    @classmethod
    def load(cls, path: str | Path) -> EvaluationResult:
        """Read a ``datadam evaluate --json`` file (plain JSON: nothing is executed)."""
        return cls.from_dict(read_report(path), source=path)

    def describe_set(self) -> str:
        """What made the evaluated set, or the replicate sets of a recipe, from the
        settings recorded: ``"datadam p = 4, IPC 10, 1,500 iterations, from noise, seed 0"``
        (:func:`~datadam.distill.config.describe_recipe`)."""
        syn = self.settings.get("synthetic") or {}
        config = syn.get("config") or {}
        seeds = self.settings.get("distill_seeds") or syn.get("seed", config.get("seed"))
        ipc, factor = self.settings.get("ipc"), int(config.get("factor", 1))
        return describe_recipe(syn.get("method"), ipc * factor ** 2 if isinstance(ipc, int) else ipc,
                               config, iterations=syn.get("iterations_done"), seeds=seeds)


def read_report(path: str | Path) -> Any:
    """The JSON content of an evaluation file, with the keys beside the result
    (``synthetic``, ``cli_options``, ``in_progress``...); :class:`ConfigError` if it is no
    JSON, saying what the file is instead (:func:`datadam.files.not_a`)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigError(not_a(path, EVALUATION)) from None


# What makes two evaluations parts of one: the same set, test split, networks and protocol.
# The seed, the number of runs, the device and the versions may differ.
_SAME_EVALUATION = ("synthetic", "ipc", "test_dataset", "test_images", "models", "train",
                    "augmentation", "model_options")


def _all_differences(path: str, a: Any, b: Any) -> list[str]:
    """``'path.to.key' (a vs b)`` for every nested setting where ``a`` and ``b`` differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [found for key in [*a, *(k for k in b if k not in a)]
                for found in _all_differences(f"{path}.{key}", a.get(key), b.get(key))]
    return [] if a == b else [f"{path!r} ({a!r} vs {b!r})"]


def _first_difference(path: str, a: Any, b: Any) -> str | None:
    """The first of :func:`_all_differences`, ``None`` when they are the same."""
    return next(iter(_all_differences(path, a, b)), None)


def _differences(key: str, mine: Any, theirs: Any) -> str | None:
    """:func:`_first_difference` of one setting of two evaluations. An evaluation written
    before sets had a digest (``synthetic.sha256``) is matched on the rest of the set's
    settings."""
    if key == "synthetic":
        if isinstance(mine, dict) and isinstance(theirs, dict) \
                and not ("sha256" in mine and "sha256" in theirs):
            mine, theirs = ({k: v for k, v in d.items() if k != "sha256"} for d in (mine, theirs))
    return _first_difference(key, mine, theirs)


def distillations(result: EvaluationResult) -> list[Any]:
    """The distillation seeds of a replicate evaluation (``merge_results(...,
    replicates=True)``); an empty list for the evaluation of one set."""
    return sorted({r["distill_seed"] for records in result.runs.values() for r in records
                   if "distill_seed" in r}, key=str)


def _summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in ("accuracy", "balanced_accuracy", "auc"):
        values = torch.tensor([r[key] for r in runs if key in r], dtype=torch.float64)
        if len(values):
            out[f"{key}_mean"] = float(values.mean())
            out[f"{key}_std"] = float(values.std(correction=0)) if len(values) > 1 else 0.0
    out["train_seconds_mean"] = sum(r["train_seconds"] for r in runs) / len(runs)
    # Runs written before testing was timed apart have no test_seconds (their train_seconds
    # counted it too): the mean is over the runs that have it, absent when none has.
    tested = [r["test_seconds"] for r in runs if "test_seconds" in r]
    if tested:
        out["test_seconds_mean"] = sum(tested) / len(tested)
    out["train_flops"] = runs[0]["train_flops"]
    return out
