"""The evaluation protocol: train fresh networks on a synthetic set, test
on real data, report mean and std of the final accuracy.

Examples:
    >>> result = evaluate(syn, test, models=["convnet3"], runs=5)    # doctest: +SKIP
    >>> result.summary["convnet3"]["accuracy_mean"]                  # doctest: +SKIP
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.progress import Progress, TaskID
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from datadam import __version__
from datadam import models as model_registry
from datadam.augment import DSA, preset_for
from datadam.data.base import ImageDataset
from datadam.data.convert import as_image_dataset
from datadam.distill.base import derive_seed, resolve_device
from datadam.distill.config import default_model, describe_recipe
from datadam.distill.methods import recorded_settings
from datadam.errors import ConfigError
from datadam.files import EVALUATION, describe_json, is_evaluation, not_a
from datadam.memory import check_training_memory
from datadam.progress import progress_bar
from datadam.synthetic import SyntheticSet
from datadam.training import (
    LATER_FIELDS,
    TrainConfig,
    TrainingCheckpoint,
    can_train_together,
    predict,
    train_network,
    train_networks_together,
    wait_for,
)
from datadam.training_processes import NetworkJob, train_in_processes


@dataclass
class EvaluationResult:
    """Per-model accuracies of every run and their summary, with all settings."""

    runs: dict[str, list[dict[str, Any]]]
    summary: dict[str, dict[str, float]]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, report: Any, source: str | Path | None = None) -> EvaluationResult:
        """The result in ``report`` (``to_dict``'s output, or a ``datadam evaluate --json``
        file's content); :class:`ConfigError`, naming ``source`` if given, if it is not one."""
        if not is_evaluation(report):
            if source is not None:
                raise ConfigError(not_a(source, EVALUATION, describe_json(report)))
            raise ConfigError("not an evaluation result (no runs, summary and settings)")
        settings = report["settings"]
        if isinstance(settings.get("train"), dict):
            # written before a field existed, when every network trained with its default
            settings = {**settings, "train": {**LATER_FIELDS, **settings["train"]}}
        return cls(report["runs"], report["summary"], settings)

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
        return describe_recipe(syn.get("method"), self.settings.get("ipc"), config,
                               iterations=syn.get("iterations_done"), seeds=seeds)


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
# What two evaluations must share for their networks to pair up (compare_results): the
# same but the set and the model list; the sets differ, of course, and so may their size.
_SAME_PROTOCOL = tuple(k for k in _SAME_EVALUATION if k not in ("synthetic", "ipc", "models"))


# What one set evaluated under two protocols may differ in, for compare_results to
# measure a protocol's effect (bf16 against fp32 training, fewer epochs...).
_PROTOCOL_CHOICES = ("train", "augmentation", "model_options")


def _all_differences(path: str, a: Any, b: Any) -> list[str]:
    """``'path.to.key' (a vs b)`` for every nested setting where ``a`` and ``b`` differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [found for key in [*a, *(k for k in b if k not in a)]
                for found in _all_differences(f"{path}.{key}", a.get(key), b.get(key))]
    return [] if a == b else [f"{path!r} ({a!r} vs {b!r})"]


def _first_difference(path: str, a: Any, b: Any) -> str | None:
    """The first of :func:`_all_differences`, ``None`` when they are the same."""
    return next(iter(_all_differences(path, a, b)), None)


def _folded(synthetic: Any) -> Any:
    """The set's settings with its recipe in the form its method records today
    (:func:`~datadam.distill.base.recorded_settings`), so that a file written when a choice
    of one value was kept as a choice, or before a coreset recorded its feature network,
    compares equal to one that made the same set."""
    if isinstance(synthetic, dict) and isinstance(synthetic.get("config"), dict):
        return {**synthetic, "config": recorded_settings(synthetic.get("method"), synthetic["config"])}
    return synthetic


def _differences(key: str, mine: Any, theirs: Any) -> str | None:
    """:func:`_first_difference` of one setting of two evaluations. An evaluation written
    before sets had a digest (``synthetic.sha256``) is matched on the rest of the set's
    settings."""
    if key == "synthetic":
        mine, theirs = _folded(mine), _folded(theirs)
        if isinstance(mine, dict) and isinstance(theirs, dict) \
                and not ("sha256" in mine and "sha256" in theirs):
            mine, theirs = ({k: v for k, v in d.items() if k != "sha256"} for d in (mine, theirs))
    return _first_difference(key, mine, theirs)


def _distill_seed(settings: dict[str, Any]) -> Any:
    """The seed the evaluated set was distilled with (``None`` for an older file)."""
    return (settings.get("synthetic") or {}).get("seed")


def _without_distill_seed(synthetic: Any) -> Any:
    """The set's settings but its seed and digest: what sets of one recipe have in common."""
    if not isinstance(synthetic, dict):
        return synthetic
    out = {k: v for k, v in _folded(synthetic).items() if k not in ("seed", "sha256")}
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
    first = results[0].settings
    # Every part is held against one that records its set's digest, where one does: parts
    # written before the digest match it on the rest, and the others on the digest too.
    reference = next((r.settings for r in results if "sha256" in (r.settings.get("synthetic") or {})), first)
    for other in results:
        if other.settings is reference:
            continue
        for key in _SAME_EVALUATION:
            mine, theirs = reference.get(key), other.settings.get(key)
            if replicates and key == "synthetic":
                mine, theirs = _without_distill_seed(mine), _without_distill_seed(theirs)
            difference = _differences(key, mine, theirs)
            if difference:
                hint = ""
                if not replicates and key == "synthetic" and _without_distill_seed(mine) == \
                        _without_distill_seed(theirs):
                    hint = (" (sets distilled with other seeds merge as replicates: --replicates)"
                            if _distill_seed(reference) != _distill_seed(other.settings) else
                            " (one recipe and seed made two different sets: on another machine or "
                            "torch version?)")
                raise ConfigError(f"the evaluations differ in {difference}: "
                                  f"they are not parts of one evaluation{hint}")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in first.get("models", results[0].runs)}
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

    def seeds_of(key: str) -> list[Any]:
        return sorted({r[key] for records in runs.values() for r in records}, key=str)

    settings = {**first, "runs": max(len(records) for records in runs.values()), "seed": seeds_of("seed"),
                "merged_from": [{k: r.settings.get(k) for k in
                                 ("seed", "runs", "device", "jobs", "trained_together", "versions")}
                                for r in results]}
    if replicates:
        distill_seeds = seeds_of("distill_seed")
        settings["distill_seeds"] = distill_seeds
        synthetic = _folded(dict(settings.get("synthetic") or {}))
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
    elif reference is not first:  # the set's settings with the digest an older first part lacks
        settings["synthetic"] = reference["synthetic"]
    return EvaluationResult(runs, {name: _summary(records) for name, records in runs.items()}, settings)


def distillations(result: EvaluationResult) -> list[Any]:
    """The distillation seeds of a replicate evaluation (``merge_results(...,
    replicates=True)``); an empty list for the evaluation of one set."""
    return sorted({r["distill_seed"] for records in result.runs.values() for r in records
                   if "distill_seed" in r}, key=str)


METRICS = ("accuracy", "balanced_accuracy", "auc")


def _paired_statistics(samples: list[tuple[float, float]], confidence: float) -> dict[str, Any]:
    """Means, the difference b - a (mean, sample std, Student's t interval and the paired
    t-test's p) and the counts of each side ahead over ``samples`` of paired ``(a, b)``."""
    from scipy import stats

    diffs = torch.tensor([y - x for x, y in samples], dtype=torch.float64)
    n, mean = len(samples), float(diffs.mean())
    std = float(diffs.std()) if n > 1 else 0.0
    interval, p_value = None, None
    if n > 1 and std > 0:
        test = stats.ttest_rel([y for _, y in samples], [x for x, _ in samples])
        interval = [float(v) for v in test.confidence_interval(confidence)]
        p_value = float(test.pvalue)
    elif n > 1:  # every sample moved by the same amount: no spread to test against
        interval, p_value = [mean, mean], 1.0 if mean == 0 else 0.0
    return {"a_mean": sum(x for x, _ in samples) / n, "b_mean": sum(y for _, y in samples) / n,
            "difference_mean": mean, "difference_std": std,
            "confidence": confidence, "interval": interval, "p_value": p_value,
            "b_ahead": int((diffs > 0).sum()), "a_ahead": int((diffs < 0).sum()),
            "ties": int((diffs == 0).sum())}


def compare_results(a: EvaluationResult, b: EvaluationResult, metric: str = "accuracy",
                    confidence: float = 0.95) -> dict[str, dict[str, Any]]:
    """Compare two sets network by network: ``b`` minus ``a``, per model.

    Two evaluations with the same ``seed`` train their networks from the same initial
    weights, with the same minibatch order and augmentation draws, so network *i* of one
    set and network *i* of the other differ only by the images they learnt from. Their
    differences cancel the spread of the initialisations, which is most of the spread of
    either mean: a paired comparison settles what two means with overlapping standard
    deviations cannot. Networks pair by model, evaluation seed and run, so evaluations
    merged from ``--runs 1 --seed S`` parts pair as well.

    The same set evaluated under two training protocols (``precision``, epochs, learning
    rate, augmentation, network options) pairs the same way, and the difference is then
    the protocol's effect; evaluations that differ in both set and protocol are refused.

    That compares two sets. To compare two recipes, compare replicate evaluations
    (:func:`merge_results` with ``replicates=True``) of sets distilled with the same
    seeds: networks then pair by distillation seed too, and the sample is the
    distillation (the mean difference of its networks), so the interval and p cover the
    spread of the distillation as well as that of the networks.

    Returns:
        ``{model: {...}}`` for every model that both evaluated, with ``pairs`` (the
        number of paired networks), ``unit`` (``"network"``, or ``"distillation"`` for
        replicates) and ``units`` (their number), ``a_mean``, ``b_mean``,
        ``difference_mean`` and ``difference_std`` (the sample std over the units), the
        ``confidence`` interval of the mean difference (Student's t; ``None`` for a
        single unit), the two-sided ``p_value`` of the paired t-test,
        ``b_ahead``/``a_ahead``/``ties`` (units on which each did better),
        ``protocol_differences`` (the protocol settings that differ, one set's two
        evaluations; empty for two sets), ``unpaired``
        (networks without a twin), every pair (``networks``: seed, run, a, b, and
        ``distill_seed`` for replicates) and, for replicates, ``distillations`` (seed,
        pairs, a, b: the means of its networks). Values are fractions, as in the results.

    Raises:
        ConfigError: an unknown metric or one the evaluations lack (AUC is for two
            classes), evaluations of another test split, of two sets under two protocols
            (the first setting that differs is named), a replicate evaluation against one set, or no network
            with a twin.
    """
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    one_set = (_differences("synthetic", a.settings.get("synthetic"), b.settings.get("synthetic")) is None
               and a.settings.get("distill_seeds") == b.settings.get("distill_seeds"))
    protocol: list[str] = []
    for key in _SAME_PROTOCOL:
        differences = _all_differences(key, a.settings.get(key), b.settings.get(key))
        if differences and one_set and key in _PROTOCOL_CHOICES:
            protocol += differences
        elif differences:
            allowed = "" if one_set else " (only one set may be compared under two training protocols)"
            raise ConfigError(f"the evaluations differ in {differences[0]}: their networks do not pair up"
                              + (allowed if key in _PROTOCOL_CHOICES else ""))
    replicated = [len(distillations(r)) for r in (a, b)]
    if (replicated[0] > 0) != (replicated[1] > 0):
        held = [f"{n} distillations" if n else "one set" for n in replicated]
        raise ConfigError(f"the first evaluation holds {held[0]}, the second {held[1]}: compare replicates "
                          "with replicates (merge-evaluations --replicates)")
    unit = "distillation" if replicated[0] else "network"

    def by_network(result: EvaluationResult, name: str) -> dict[tuple[Any, Any, Any], dict[str, Any]]:
        return {(r.get("distill_seed"), r.get("seed", result.settings.get("seed")), r.get("run")): r
                for r in result.runs.get(name, []) if metric in r}

    out: dict[str, dict[str, Any]] = {}
    for name in [m for m in a.runs if m in b.runs]:
        runs_a, runs_b = by_network(a, name), by_network(b, name)
        keys = sorted(set(runs_a) & set(runs_b), key=lambda k: tuple(map(str, k)))
        if not keys:
            continue
        pairs = [(runs_a[k][metric], runs_b[k][metric]) for k in keys]
        networks = [{**({"distill_seed": k[0]} if unit == "distillation" else {}), "seed": k[1], "run": k[2],
                     "a": x, "b": y} for k, (x, y) in zip(keys, pairs)]
        samples = pairs  # what the test is over: networks, or each distillation's mean
        if unit == "distillation":
            groups: dict[Any, list[tuple[float, float]]] = {}
            for k, pair in zip(keys, pairs):
                groups.setdefault(k[0], []).append(pair)
            samples = [(sum(x for x, _ in g) / len(g), sum(y for _, y in g) / len(g))
                       for g in groups.values()]
        out[name] = {"metric": metric, "pairs": len(keys), "unit": unit, "units": len(samples),
                     "protocol_differences": protocol, **_paired_statistics(samples, confidence),
                     "unpaired": len(runs_a) + len(runs_b) - 2 * len(keys), "networks": networks}
        if unit == "distillation":
            out[name]["distillations"] = [
                {"distill_seed": seed, "pairs": len(g), "a": x, "b": y}
                for seed, g, (x, y) in zip(groups, groups.values(), samples)]
    if not out:
        if not any(metric in r for result in (a, b) for runs in result.runs.values() for r in runs):
            raise ConfigError(f"the evaluations have no {metric}" +
                              (" (it is measured for two classes only)" if metric == "auc" else ""))
        if unit == "distillation":
            raise ConfigError("no network of the first evaluation has a twin in the second (the same model, "
                              "distillation seed, evaluation seed and run): distil and evaluate both with "
                              "the same seeds")
        raise ConfigError("no network of the first evaluation has a twin in the second (the same model, "
                          "seed and run): evaluate both with the same --seed")
    return out


def comparison_text(c: dict[str, Any], missing: str = "-") -> dict[str, str]:
    """One model's entry of :func:`compare_results` as text, in points: ``difference``
    (``+0.12 ± 0.08``, mean ± std), ``interval`` (``[-0.22, -0.03]``), ``p`` (``0.025``) and
    ``ahead`` (``4 of 5``: networks, or distillations, on which B did better) and ``pairs``
    (``5``, or ``20 in 4 distillations``); ``missing`` stands for the interval and p of a
    single unit."""
    interval = c["interval"]
    return {"difference": f"{100 * c['difference_mean']:+.2f} ± {100 * c['difference_std']:.2f}",
            "interval": f"[{100 * interval[0]:+.2f}, {100 * interval[1]:+.2f}]" if interval else missing,
            "p": missing if c["p_value"] is None else f"{c['p_value']:.2g}",
            "ahead": f"{c['b_ahead']} of {c['units']}",
            "pairs": f"{c['pairs']}" + (f" in {c['units']} distillations"
                                        if c["unit"] == "distillation" else "")}


def _metrics(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, Any]:
    pred = logits.argmax(1)
    per_class = []
    for c in range(num_classes):
        mask = labels == c
        per_class.append(float((pred[mask] == c).float().mean()) if mask.any() else float("nan"))
    present = [a for a in per_class if a == a]
    out = {"accuracy": float((pred == labels).float().mean()),
           "balanced_accuracy": sum(present) / len(present),
           "per_class_accuracy": per_class}
    if num_classes == 2:
        out["auc"] = binary_auc(logits.softmax(1)[:, 1], labels)
    return out


def binary_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    scores, labels = scores.double(), labels.bool()
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if not n_pos or not n_neg:
        return float("nan")
    order = torch.argsort(scores)
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    uniq, inverse = torch.unique(scores, return_inverse=True)
    avg = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, ranks)
    avg /= torch.bincount(inverse, minlength=len(uniq)).double()
    u = avg[inverse][labels].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def training_flops(net: nn.Module, image_shape: tuple[int, ...], num_classes: int,
                   samples: int) -> int:
    """FLOPs of forward + backward over ``samples`` images (torch's flop counter)."""
    device = next(net.parameters()).device
    x = torch.zeros(2, *image_shape, device=device)
    y = torch.zeros(2, dtype=torch.long, device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(net(x), y).backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops() // 2 * samples


def check_compatible(synthetic: SyntheticSet, test: ImageDataset) -> None:
    """Raise :class:`ConfigError` when ``synthetic`` cannot be tested on ``test``."""
    if list(synthetic.classes) != list(test.classes):
        raise ConfigError(f"synthetic set has classes {synthetic.classes[:4]}..., "
                          f"{test.name} has {test.classes[:4]}...: not the same dataset")
    if tuple(synthetic.image_shape) != tuple(test.images.shape[1:]):
        raise ConfigError(f"synthetic images are {'x'.join(map(str, synthetic.image_shape))}, "
                          f"{test.name} images {'x'.join(map(str, test.images.shape[1:]))} "
                          "(load the data with the same --image-size)")


def _name_code(name: str) -> int:
    """A stable integer per model name (``hash`` of a str changes between processes)."""
    return int.from_bytes(name.lower().encode()[:8].ljust(8, b"\0"), "little")


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


def evaluate(synthetic: SyntheticSet, test: ImageDataset, models: list[str] | None = None, *,
             runs: int = 5, train: TrainConfig | None = None, seed: int = 0,
             device: str = "auto", progress: bool | None = None,
             model_options: dict[str, dict[str, Any]] | None = None,
             together: bool | None = None, done: EvaluationResult | None = None,
             on_network: Callable[[EvaluationResult], None] | None = None,
             network_checkpoint: str | Path | None = None, jobs: int = 1) -> EvaluationResult:
    """Train ``runs`` fresh networks of each model on ``synthetic``; test on ``test``.

    Args:
        synthetic: the condensed set.
        test: the real test split (normalised with the synthetic set's mean/std).
        models: registry names (default: the ConvNet of the distillation's depth for
            the image size, ``convnet3`` up to 32 px, with the standard evaluation
            settings: instance norm, average pooling); ``alexnet``, ``vgg11``,
            ``resnet18`` give the cross-architecture numbers.
        runs: fresh networks per model; the summary is mean and std of their *final*
            accuracy (never a maximum over checkpoints).
        train: the training protocol (:class:`TrainConfig`).
        model_options: constructor options per model name.
        together: train a model's ``runs`` networks at once as one stacked network
            (:func:`datadam.training.train_networks_together`: the same weights up to
            floating-point order). ``None``: on a GPU, for models without BatchNorm or
            dropout; a CPU is compute-bound and measured slower stacked.
        done: an earlier evaluation of the same set with the same settings and seed, cut
            short (e.g. by Ctrl-C) or with fewer ``runs``: its networks are kept and only
            the others are trained, so the result equals an uninterrupted evaluation.
        on_network: called with the result so far after every trained network (after a
            model's stacked networks when they train together), e.g. to save it.
        network_checkpoint: a file for the network in training (or the networks trained
            together): its state is saved every 50 epochs, and an evaluation that finds the
            save of the same network (set, model, run, seed and protocol) goes on from it
            with the same result.
            With ``done`` and ``on_network``, a long evaluation loses at most 50 epochs
            to an interruption. With ``jobs`` > 1 each network has its own file, the name
            with ``.MODEL.runN`` before the suffix.
        jobs: on a CPU, train this many networks at once, each in its own process with
            its share of the threads (:mod:`datadam.training_processes`); the same
            networks as one at a time, up to floating-point order.

    Returns:
        :class:`EvaluationResult` with accuracy, balanced accuracy, per-class accuracy
        (and AUC for two classes) of every run, and their mean and std; each run's
        ``train_seconds`` and ``test_seconds`` (training, then scoring the test images),
        and their means. The progress bar (``progress``) counts each model's training
        epochs and its test images scored, as two tasks.

    Raises:
        ConfigError: an unknown model, a set of other classes or image shape than
            ``test``, ``together`` for a model with BatchNorm or dropout, ``jobs`` > 1
            off the CPU or with ``together``, or a ``done`` of another evaluation.
    """
    test = as_image_dataset(test, split="test")  # tensors, (x, y) pairs and Datasets too
    names = list(models or [default_model(tuple(synthetic.image_shape[1:]))])
    for name in names:
        model_registry.get_factory(name)  # unknown names fail before any training
    train = train or TrainConfig()
    check_compatible(synthetic, test)
    dev = resolve_device(device)
    train.check_device(dev)
    if jobs < 1:
        raise ConfigError(f"jobs must be at least 1, not {jobs}")
    if jobs > 1 and (dev.type != "cpu" or together):
        raise ConfigError("jobs > 1 trains networks in CPU processes: on a GPU, train them together")
    aug = train.augmentation or synthetic.metadata.get("config", {}).get("augmentation") \
        or preset_for(test)
    options = model_options or {}
    trained_together: dict[str, bool] = {}
    settings = {
        "synthetic": {**{k: synthetic.metadata.get(k) for k in
                         ("method", "dataset", "config", "iterations_done", "seed")},
                      "sha256": synthetic.sha256()},
        "ipc": synthetic.ipc, "test_dataset": test.name, "test_images": len(test),
        "models": names, "runs": runs, "train": asdict(train), "augmentation": aug,
        "model_options": options, "seed": seed, "device": str(dev), "jobs": jobs,
        "trained_together": trained_together,
        "versions": {"datadam": __version__, "torch": torch.__version__,
                     "python": platform.python_version()},
    }
    kept = _networks_to_keep(done, settings) if done is not None else {}
    for name in names:  # before any training: a late refusal would waste the earlier models'
        probe = model_registry.create(name, synthetic.image_shape[0], len(synthetic.classes),
                                      synthetic.image_shape[1:], **options.get(name, {}))
        if together and not can_train_together(probe):
            raise ConfigError(f"{name} has BatchNorm or dropout: its networks cannot be trained "
                              "together; train them one at a time")
        check_training_memory(probe, tuple(synthetic.image_shape), min(train.batch, len(synthetic)), dev,
                              networks=runs if together else jobs)
    images, labels = synthetic.images.float().to(dev), synthetic.labels.to(dev)
    test_x = test.normalized(mean=synthetic.mean, std=synthetic.std).to(dev)
    evaluation = _Evaluation(images, labels, test_x, test.labels, synthetic, train, aug, options, settings,
                             progress_bar(progress), on_network,
                             Path(network_checkpoint) if network_checkpoint else None)
    with evaluation.bar:
        for name in names:
            earlier_together = bool(done and done.settings.get("trained_together", {}).get(name))
            evaluation.model(name, runs, kept.get(name, {}), seed, together, jobs, earlier_together)
    return evaluation.result()


class _Evaluation:
    """An evaluation under way: its data on the device, its progress bar and the records
    of the networks tested so far, shared by the three ways of training a model's networks
    (one at a time, stacked together, in worker processes).

    Every network's record holds its training and its testing time apart
    (``train_seconds``, ``test_seconds``); the bar has a ``train MODEL`` task counting
    epochs and a ``test MODEL`` task counting the test images scored.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 synthetic: SyntheticSet, train: TrainConfig, augmentation: str,
                 options: dict[str, dict[str, Any]], settings: dict[str, Any], bar: Progress,
                 on_network: Callable[[EvaluationResult], None] | None, network_checkpoint: Path | None):
        self.images, self.labels = images, labels  # [N, C, H, W] normalised, [N], on the device
        self.test_x, self.test_y = test_x, test_y.cpu()  # [M, C, H, W] on the device, [M]
        self.synthetic, self.train, self.augmentation = synthetic, train, augmentation
        self.dsa = DSA.from_name(augmentation)
        self.options, self.settings, self.bar = options, settings, bar
        self.on_network, self.network_checkpoint = on_network, network_checkpoint
        self.device = images.device
        self.out: dict[str, list[dict[str, Any]]] = {}
        self.trained_together: dict[str, bool] = settings["trained_together"]
        self.test_tasks: dict[str, TaskID] = {}

    def result(self) -> EvaluationResult:
        finished = {name: sorted(records, key=lambda r: r["run"]) for name, records in self.out.items()}
        return EvaluationResult(finished, {name: _summary(r) for name, r in finished.items() if r},
                                dict(self.settings, trained_together=dict(self.trained_together)))

    def finished(self) -> None:
        """Hand the result so far to ``on_network``, after a network or a stacked group."""
        if self.on_network:
            self.on_network(self.result())

    def record(self, name: str, run: int, logits: torch.Tensor, train_seconds: float, test_seconds: float,
               flops: int) -> None:
        """Score ``logits [M, K]`` of ``name``'s network ``run`` and keep its record."""
        metrics = _metrics(logits.cpu(), self.test_y, len(self.synthetic.classes))
        metrics.update(run=run, train_seconds=round(train_seconds, 3), test_seconds=round(test_seconds, 3),
                       train_flops=flops)
        self.out[name].append(metrics)

    def network_key(self, name: str, run: int | list[int]) -> str:
        """What a mid-network save must match to be gone on from."""
        return json.dumps([self.settings["synthetic"]["sha256"], name, self.options.get(name, {}), run],
                          sort_keys=True, default=str)

    def tested(self, name: str, images: int) -> None:
        """Count ``images`` more test images scored by a network of ``name``."""
        task = self.test_tasks[name]
        self.bar.start_task(task)  # its clock starts at the first test image, not while training
        self.bar.advance(task, images)

    def score(self, name: str, net: nn.Module) -> tuple[torch.Tensor, float]:
        """``net``'s logits ``[M, K]`` on the test images and the seconds they took."""
        start = time.perf_counter()
        logits = predict(net, self.test_x, progress=lambda n: self.tested(name, n))
        wait_for(self.device)
        return logits, time.perf_counter() - start

    def model(self, name: str, runs: int, kept: dict[int, dict[str, Any]], seed: int, together: bool | None,
              jobs: int, earlier_together: bool) -> None:
        """Train and test the ``runs`` networks of model ``name`` but those ``kept`` from an
        earlier evaluation (``earlier_together``: whether that one stacked them)."""
        self.out[name] = [kept[run] for run in sorted(kept)]
        todo = [run for run in range(runs) if run not in kept]
        epochs, test_images = self.train.epochs, len(self.test_x)
        task = self.bar.add_task(f"train {name}", total=runs * epochs, completed=len(kept) * epochs)
        self.test_tasks[name] = self.bar.add_task(f"test {name}", total=runs * test_images,
                                                  completed=len(kept) * test_images, start=False)
        if not todo:
            self.trained_together[name] = earlier_together
            return
        shape, classes = tuple(self.synthetic.image_shape), len(self.synthetic.classes)
        seeds = [derive_seed(seed, run, _name_code(name)) for run in todo]
        nets = [model_registry.create(name, shape[0], classes, shape[1:], seed=s,
                                      **self.options.get(name, {})).to(self.device) for s in seeds]
        flops = training_flops(nets[0], shape, classes, len(self.images) * epochs)
        stacked = len(todo) > 1 and can_train_together(nets[0]) and (
            together if together is not None else self.device.type != "cpu")
        self.trained_together[name] = stacked
        if stacked:
            self.stacked(name, todo, nets, seeds, flops, task)
        elif jobs > 1:
            self.in_processes(name, todo, seeds, flops, task, jobs)
        else:
            self.one_at_a_time(name, todo, nets, seeds, flops, task)

    def one_at_a_time(self, name: str, todo: list[int], nets: list[nn.Module], seeds: list[int], flops: int,
                      task: TaskID) -> None:
        for run, net, net_seed in zip(todo, nets, seeds):
            own = _run_checkpoint(self.network_checkpoint, name, run)
            path = own if own and own.exists() else self.network_checkpoint  # own: saved by jobs
            saves = TrainingCheckpoint(path, self.network_key(name, run)) if path else None
            start = time.perf_counter()
            train_network(net, self.images, self.labels, self.train, self.dsa, net_seed,
                          progress=lambda: self.bar.advance(task), checkpoint=saves)
            wait_for(self.device)
            train_seconds = (saves.earlier_seconds if saves else 0.0) + time.perf_counter() - start
            logits, test_seconds = self.score(name, net)
            self.record(name, run, logits, train_seconds, test_seconds, flops)
            self.finished()

    def stacked(self, name: str, todo: list[int], nets: list[nn.Module], seeds: list[int], flops: int,
                task: TaskID) -> None:
        saves = (TrainingCheckpoint(self.network_checkpoint, self.network_key(name, todo))
                 if self.network_checkpoint else None)
        start = time.perf_counter()
        train_networks_together(nets, self.images, self.labels, self.train, self.dsa, seeds, checkpoint=saves,
                                progress=lambda: self.bar.advance(task, len(todo)))
        wait_for(self.device)
        # one stacked training: each network's share of it
        train_seconds = ((saves.earlier_seconds if saves else 0.0) + time.perf_counter() - start) / len(todo)
        for run, net in zip(todo, nets):
            logits, test_seconds = self.score(name, net)
            self.record(name, run, logits, train_seconds, test_seconds, flops)
        self.finished()

    def in_processes(self, name: str, todo: list[int], seeds: list[int], flops: int, task: TaskID,
                     jobs: int) -> None:
        if self.network_checkpoint:
            _hand_over_to_runs(self.network_checkpoint, name,
                               {run: self.network_key(name, run) for run in todo})
        limits = {"epochs": self.train.epochs, "images": len(self.test_x)}
        reported = {run: dict.fromkeys(limits, 0) for run in todo}

        def report(run: int, what: str, count: int) -> None:
            # A worker's progress comes on a queue of its own and may trail its network's
            # result: count each network's epochs and test images once, whenever they come.
            count = min(count, limits[what] - reported[run][what])
            if count <= 0:
                return
            reported[run][what] += count
            if what == "epochs":
                self.bar.advance(task, count)
            else:
                self.tested(name, count)

        def trained(job: NetworkJob, train_seconds: float, test_seconds: float, logits: torch.Tensor) -> None:
            for what, limit in limits.items():
                report(job.tag[1], what, limit)
            self.record(name, job.tag[1], logits, train_seconds, test_seconds, flops)
            self.finished()

        shape = tuple(self.synthetic.image_shape)
        train_in_processes(
            [NetworkJob((name, run), name, shape[0], len(self.synthetic.classes), shape[1:], net_seed,
                        self.options.get(name, {}), _run_checkpoint(self.network_checkpoint, name, run),
                        self.network_key(name, run)) for run, net_seed in zip(todo, seeds)],
            jobs, self.images, self.labels, self.test_x, self.train, self.augmentation,
            on_epoch=lambda tag: report(tag[1], "epochs", 1), on_trained=trained,
            on_tested=lambda tag, n: report(tag[1], "images", n))


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


def evaluate_full_data(train_data: ImageDataset, test: ImageDataset, model: str = "convnet3", *,
                       train: TrainConfig | None = None, seed: int = 0, device: str = "auto",
                       progress: bool | None = None,
                       model_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The full-data upper bound of the handout: the whole training split, SGD with
    cosine annealing, lr 0.01, 20 epochs, no augmentation. Returns the test metrics with
    the wall time and FLOPs of training, to set against a synthetic set's, and the wall
    time of testing apart (``test_seconds``)."""
    train_data, test = as_image_dataset(train_data), as_image_dataset(test, split="test")
    train = train or TrainConfig(epochs=20, schedule="cosine", augmentation="none")
    dev = resolve_device(device)
    train.check_device(dev)
    net = model_registry.create(model, train_data.channels, train_data.num_classes, train_data.image_size,
                                seed=seed, **(model_options or {})).to(dev)
    check_training_memory(net, tuple(train_data.images.shape[1:]), min(train.batch, len(train_data)), dev)
    images = train_data.normalized().to(dev)
    flops = training_flops(net, tuple(images.shape[1:]), train_data.num_classes,
                           len(images) * train.epochs)
    test_x = test.normalized(mean=train_data.mean, std=train_data.std).to(dev)
    bar = progress_bar(progress)
    with bar:
        task = bar.add_task(f"full data {model}", total=train.epochs)
        testing = bar.add_task(f"test full data {model}", total=len(test_x), start=False)
        start = time.perf_counter()
        train_network(net, images, train_data.labels.to(dev), train,
                      DSA.from_name(train.augmentation or "none"), seed,
                      progress=lambda: bar.advance(task))
        wait_for(dev)
        tested = time.perf_counter()
        bar.start_task(testing)
        logits = predict(net, test_x, progress=lambda n: bar.advance(testing, n)).cpu()
        done = time.perf_counter()
    record = _metrics(logits, test.labels, test.num_classes)
    record.update(model=model, train_seconds=round(tested - start, 3), test_seconds=round(done - tested, 3),
                  train_flops=flops, train_images=len(images), train=asdict(train), seed=seed,
                  device=str(dev))
    return record
