"""Merging evaluations run apart: parts of one evaluation of a set, or replicate
evaluations of sets one recipe distilled with different seeds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datadam.errors import ConfigError
from datadam.evaluate.results import (
    _SAME_EVALUATION,
    EvaluationResult,
    _differences,
    _summary,
)


def _distill_seed(settings: dict[str, Any]) -> Any:
    """The seed the evaluated set was distilled with (``None`` for an older file)."""
    return (settings.get("synthetic") or {}).get("seed")


def _without_distill_seed(synthetic: Any) -> Any:
    """The set's settings but its seed and digest: what sets of one recipe have in common."""
    if not isinstance(synthetic, dict):
        return synthetic
    out = {k: v for k, v in synthetic.items() if k not in ("seed", "sha256")}
    if isinstance(out.get("config"), dict):
        out["config"] = {k: v for k, v in out["config"].items() if k != "seed"}
    return out


def merge_results(results: Sequence[EvaluationResult], replicates: bool = False) -> EvaluationResult:
    """One result from evaluations of the same set that were run apart, or with
    ``replicates`` of sets that one recipe distilled with different seeds.

    The protocol's networks train one after another; on a machine with several cores or
    several machines they can instead be evaluated apart, e.g. ``datadam evaluate --runs 1
    --seed S`` for S = 0..4 side by side, and merged here. Every run keeps its evaluation
    seed (``run["seed"]``) and the summary is over all runs; ``settings["seed"]`` becomes
    the list of seeds and ``settings["merged_from"]`` what differed between the parts
    (seed, runs, device, versions). The parts must have measured the very same set: where
    they record its digest (``settings["synthetic"]["sha256"]``, :meth:`SyntheticSet.sha256`)
    the digests must agree.

    A seed fixes a distillation, so one set says little about its method: another seed
    makes another set. With ``replicates=True`` the parts may evaluate sets that differ
    in their distillation seed only (every other setting of the recipe alike); every run
    also keeps its set's seed (``run["distill_seed"]``), ``settings["distill_seeds"]``
    lists them, ``merged_from`` each part's set digest, and :func:`compare_results` then
    counts each distillation as one sample.

    Raises:
        ConfigError: no results, results of another set (of another recipe with
            ``replicates``), test split, model list or training protocol (the first
            setting that differs is named), or a network that is in two results (the
            same distillation seed, evaluation seed and run).
    """
    if not results:
        raise ConfigError("no evaluation results to merge")
    # Every part is held against one that records its set's digest, where one does: parts
    # written before the digest match it on the rest, and the others on the digest too.
    reference = next((r.settings for r in results if "sha256" in (r.settings.get("synthetic") or {})),
                     results[0].settings)
    _check_parts_of_one(results, reference, replicates)
    runs = _merged_runs(results, replicates)
    settings = _merged_settings(results, runs, reference, replicates)
    return EvaluationResult(runs, {name: _summary(records) for name, records in runs.items()}, settings)


def _check_parts_of_one(results: Sequence[EvaluationResult], reference: dict[str, Any],
                        replicates: bool) -> None:
    """Refuse ``results`` that are not parts of one evaluation (of one recipe's sets with
    ``replicates``) as the settings ``reference`` records it, naming the first setting
    that differs."""
    for other in results:
        if other.settings is reference:
            continue
        for key in _SAME_EVALUATION:
            mine, theirs = reference.get(key), other.settings.get(key)
            if replicates and key == "synthetic":
                mine, theirs = _without_distill_seed(mine), _without_distill_seed(theirs)
            difference = _differences(key, mine, theirs)
            if difference:
                hint = "" if replicates or key != "synthetic" else \
                    _why_the_sets_differ(reference, other.settings, mine, theirs)
                raise ConfigError(f"the evaluations differ in {difference}: "
                                  f"they are not parts of one evaluation{hint}")


def _why_the_sets_differ(reference: dict[str, Any], other: dict[str, Any], mine: Any, theirs: Any) -> str:
    """A hint for two evaluated sets ``mine`` and ``theirs`` that differ: ``""`` unless
    one recipe made both, with other seeds (replicates) or with the same seed."""
    if _without_distill_seed(mine) != _without_distill_seed(theirs):
        return ""
    if _distill_seed(reference) != _distill_seed(other):
        return " (sets distilled with other seeds merge as replicates: --replicates)"
    return " (one recipe and seed made two different sets: on another machine or torch version?)"


def _merged_runs(results: Sequence[EvaluationResult], replicates: bool) -> dict[str, list[dict[str, Any]]]:
    """Every network's record of ``results`` per model, each with its evaluation seed
    (and with ``replicates`` its set's seed); refuses a network that is in two of them."""
    first = results[0]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in first.settings.get("models", first.runs)}
    seen: set[tuple[str, Any, Any, Any]] = set()
    for result in results:
        for name, records in result.runs.items():
            for record in records:
                record = {**record, "seed": record.get("seed", result.settings.get("seed"))}
                if replicates:
                    record["distill_seed"] = record.get("distill_seed", _distill_seed(result.settings))
                network = (name, record.get("distill_seed"), record["seed"], record.get("run"))
                if network in seen:
                    made = f" of the set distilled with seed {network[1]}" if replicates else ""
                    raise ConfigError(f"{name} run {record.get('run')} with seed {record['seed']}{made} is "
                                      "in two of the evaluations: merge each network once")
                seen.add(network)
                runs.setdefault(name, []).append(record)
    return runs


def _seeds_of(runs: dict[str, list[dict[str, Any]]], key: str) -> list[Any]:
    """The distinct ``key`` seeds of the records in ``runs``, sorted."""
    return sorted({r[key] for records in runs.values() for r in records}, key=str)


def _merged_settings(results: Sequence[EvaluationResult], runs: dict[str, list[dict[str, Any]]],
                     reference: dict[str, Any], replicates: bool) -> dict[str, Any]:
    """The first part's settings with the merged runs and seeds and ``merged_from``: what
    differed between the parts."""
    first = results[0].settings
    settings = {**first, "runs": max(len(records) for records in runs.values()),
                "seed": _seeds_of(runs, "seed"),
                "merged_from": [{k: r.settings.get(k) for k in
                                 ("seed", "runs", "device", "jobs", "trained_together", "versions")}
                                for r in results]}
    if replicates:
        _as_replicates(settings, results, _seeds_of(runs, "distill_seed"))
    elif reference is not first:  # the set's settings with the digest an older first part lacks
        settings["synthetic"] = reference["synthetic"]
    return settings


def _as_replicates(settings: dict[str, Any], results: Sequence[EvaluationResult],
                   distill_seeds: list[Any]) -> None:
    """Make merged ``settings`` those of replicates: the set's recipe with the list of its
    ``distill_seeds`` and no digest, each part's set seed and digest in ``merged_from``."""
    settings["distill_seeds"] = distill_seeds
    synthetic = dict(settings.get("synthetic") or {})
    synthetic["seed"] = distill_seeds
    synthetic.pop("sha256", None)  # one per set: each part's is in merged_from
    if isinstance(synthetic.get("config"), dict):
        synthetic["config"] = {**synthetic["config"], "seed": distill_seeds}
    settings["synthetic"] = synthetic
    for r, merged in zip(results, settings["merged_from"]):
        merged["distill_seed"] = r.settings.get("distill_seeds", _distill_seed(r.settings))
        digest = (r.settings.get("synthetic") or {}).get("sha256")
        if digest:
            merged["sha256"] = digest
