"""Going on from an interrupted evaluation: the networks of an earlier one to keep, and the
saves of the networks in training (one file, or one per network trained in processes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datadam.errors import ConfigError
from datadam.evaluate.results import _SAME_EVALUATION, EvaluationResult, _differences
from datadam.training import TrainingCheckpoint


def _run_checkpoint(path: str | Path | None, model: str, run: int) -> Path | None:
    """The save of one of several networks trained at once: ``E.network.pt`` becomes
    ``E.network.convnet3.run2.pt``."""
    if path is None:
        return None
    path = Path(path)
    return path.with_name(f"{path.stem}.{model}.run{run}{path.suffix}")


def _hand_over_to_runs(single: Path, model: str, keys: dict[int, str]) -> None:
    """Rename the one-at-a-time save ``single`` to its run's own file, if it is the save of
    one of the runs ``keys`` names, so that an evaluation with jobs goes on from it."""
    owner = TrainingCheckpoint(single, "").saved_key()
    for run, key in keys.items():
        if owner == key:
            single.replace(_run_checkpoint(single, model, run))
            return


def _networks_to_keep(done: EvaluationResult, settings: dict[str, Any]) -> dict[str, dict[int, dict]]:
    """``{model: {run: record}}`` of ``done``'s networks that an evaluation with ``settings``
    would train again (the same set, test split, models, protocol and seed)."""
    for key in (*_SAME_EVALUATION, "seed"):
        difference = _differences(key, done.settings.get(key), settings.get(key))
        if difference:
            raise ConfigError(f"the earlier evaluation differs in {difference}: cannot go on from it")
    return {name: {r["run"]: r for r in records if r.get("run", settings["runs"]) < settings["runs"]}
            for name, records in done.runs.items()}
