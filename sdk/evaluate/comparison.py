"""The paired comparison of two evaluations, network by network (or distillation by
distillation for replicates): the statistics of the differences and their text."""

from __future__ import annotations

from typing import Any

import torch

from datadam.errors import ConfigError
from datadam.evaluate.results import (
    _SAME_EVALUATION,
    EvaluationResult,
    _all_differences,
    _differences,
    distillations,
)

# What two evaluations must share for their networks to pair up (compare_results): the
# same but the set and the model list; the sets differ, of course, and so may their size.
_SAME_PROTOCOL = tuple(k for k in _SAME_EVALUATION if k not in ("synthetic", "ipc", "models"))

# What one set evaluated under two protocols may differ in, for compare_results to
# measure a protocol's effect (bf16 against fp32 training, fewer epochs...).
_PROTOCOL_CHOICES = ("train", "augmentation", "model_options")


METRICS = ("accuracy", "balanced_accuracy", "auc")

# What pairs a network of one evaluation with its twin in the other: its set's distillation
# seed (None but for replicates), its evaluation seed and its run.
_Network = tuple[Any, Any, Any]


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
    protocol = _protocol_differences(a, b)
    unit = _comparison_unit(a, b)
    out: dict[str, dict[str, Any]] = {}
    for name in [m for m in a.runs if m in b.runs]:
        runs_a, runs_b = _by_network(a, name, metric), _by_network(b, name, metric)
        keys = sorted(set(runs_a) & set(runs_b), key=lambda k: tuple(map(str, k)))
        if keys:
            out[name] = _model_comparison(runs_a, runs_b, keys, metric, unit, protocol, confidence)
    if not out:
        raise _no_twins(a, b, metric, unit)
    return out


def _protocol_differences(a: EvaluationResult, b: EvaluationResult) -> list[str]:
    """The protocol settings in which two evaluations of one set differ (empty for two
    sets); :class:`ConfigError` if they cannot pair: another test split, or two sets
    under two protocols."""
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
    return protocol


def _comparison_unit(a: EvaluationResult, b: EvaluationResult) -> str:
    """What a sample of the comparison is: ``"distillation"`` for two replicate
    evaluations, ``"network"`` for two of one set; :class:`ConfigError` for one of each."""
    replicated = [len(distillations(r)) for r in (a, b)]
    if (replicated[0] > 0) != (replicated[1] > 0):
        held = [f"{n} distillations" if n else "one set" for n in replicated]
        raise ConfigError(f"the first evaluation holds {held[0]}, the second {held[1]}: compare replicates "
                          "with replicates (merge-evaluations --replicates)")
    return "distillation" if replicated[0] else "network"


def _by_network(result: EvaluationResult, name: str, metric: str) -> dict[_Network, dict[str, Any]]:
    """``name``'s records in ``result`` that have ``metric``, by what pairs them: distillation
    seed, evaluation seed and run."""
    return {(r.get("distill_seed"), r.get("seed", result.settings.get("seed")), r.get("run")): r
            for r in result.runs.get(name, []) if metric in r}


def _model_comparison(runs_a: dict[_Network, dict[str, Any]], runs_b: dict[_Network, dict[str, Any]],
                      keys: list[_Network], metric: str, unit: str, protocol: list[str],
                      confidence: float) -> dict[str, Any]:
    """One model's entry of :func:`compare_results` over its networks ``keys`` in both."""
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
    out = {"metric": metric, "pairs": len(keys), "unit": unit, "units": len(samples),
           "protocol_differences": protocol, **_paired_statistics(samples, confidence),
           "unpaired": len(runs_a) + len(runs_b) - 2 * len(keys), "networks": networks}
    if unit == "distillation":
        out["distillations"] = [
            {"distill_seed": seed, "pairs": len(g), "a": x, "b": y}
            for seed, g, (x, y) in zip(groups, groups.values(), samples)]
    return out


def _no_twins(a: EvaluationResult, b: EvaluationResult, metric: str, unit: str) -> ConfigError:
    """Why no network of ``a`` pairs with one of ``b``: neither has ``metric``, or no
    network has a twin (the same model, seeds and run)."""
    if not any(metric in r for result in (a, b) for runs in result.runs.values() for r in runs):
        return ConfigError(f"the evaluations have no {metric}" +
                           (" (it is measured for two classes only)" if metric == "auc" else ""))
    if unit == "distillation":
        return ConfigError("no network of the first evaluation has a twin in the second (the same model, "
                           "distillation seed, evaluation seed and run): distil and evaluate both with "
                           "the same seeds")
    return ConfigError("no network of the first evaluation has a twin in the second (the same model, "
                       "seed and run): evaluate both with the same --seed")


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
