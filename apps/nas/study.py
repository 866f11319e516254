"""Proxy quality: does training on a proxy rank architectures as the full data does?

For K architectures sampled from the NNI space, train each on the full training split
(the ground truth, cached in a JSON file so it is paid once) and on every proxy, score
all of them on the same real validation images, then measure per proxy: Spearman and
Kendall rank correlation with the full-data accuracies, the full-data accuracy of the
architecture the proxy would pick, the overlap of the top-k sets, and the time.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from datadam import __version__, data
from datadam.apps.nas.architecture import Architecture, SearchSpace, arch_key
from datadam.apps.nas.evaluator import FULL_TRAIN, PROXY_TRAIN, train_and_validate
from datadam.apps.nas.proxy import (
    FULL,
    RANDOM,
    make_proxy,
    matching_ipc,
    note_validation_overlap,
    split_validation,
)
from datadam.distill.base import derive_seed
from datadam.errors import ConfigError, DataFormatError
from datadam.evaluate import TrainConfig
from datadam.files import atomic_path, write_json

CACHE_FORMAT = "datadam.nas.full-data-cache/1"


def rank_quality(proxy_accuracy: list[float], full_accuracy: list[float], top_k: int = 5) -> dict[str, Any]:
    """How well ``proxy_accuracy`` ranks architectures compared with ``full_accuracy``.

    Returns Spearman's rho and Kendall's tau-b (scipy, ties averaged) with their
    p-values, the index and full-data accuracy of the proxy's best architecture, that
    architecture's rank by full-data accuracy (1 = truly best), the best full-data
    accuracy of all (what a perfect proxy would pick), and how many of the proxy's
    top ``top_k`` are in the full data's top ``top_k``. Ties in picking and top-k
    sets go to the earlier architecture.
    """
    import warnings

    from scipy.stats import kendalltau, spearmanr

    if len(proxy_accuracy) != len(full_accuracy) or len(full_accuracy) < 2:
        raise ConfigError("rank quality needs two equally long lists of at least 2 accuracies")
    k = min(top_k, len(full_accuracy))
    with warnings.catch_warnings():  # a constant list has no ranking: recorded as None below
        warnings.simplefilter("ignore")
        rho, rho_p = spearmanr(proxy_accuracy, full_accuracy)
        tau, tau_p = kendalltau(proxy_accuracy, full_accuracy)

    def order(values: list[float]) -> list[int]:  # best first, stable on ties
        return sorted(range(len(values)), key=lambda i: -values[i])

    by_proxy, by_full = order(proxy_accuracy), order(full_accuracy)
    chosen = by_proxy[0]
    return {
        "spearman": _finite(rho), "spearman_p": _finite(rho_p),
        "kendall": _finite(tau), "kendall_p": _finite(tau_p),
        "chosen_index": chosen, "chosen_full_accuracy": full_accuracy[chosen],
        "chosen_full_rank": 1 + sum(a > full_accuracy[chosen] for a in full_accuracy),
        "best_full_accuracy": max(full_accuracy),
        "top_k": k, "top_k_overlap": len(set(by_proxy[:k]) & set(by_full[:k])),
    }


def _finite(x: float) -> float | None:
    """JSON has no NaN: a constant list has no rank correlation, recorded as null."""
    x = float(x)
    return x if x == x else None


@dataclass
class StudyResult:
    """Per-architecture accuracies and times, per-proxy quality, and all settings."""

    architectures: list[dict[str, Any]]
    proxies: dict[str, dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())


class FullDataCache:
    """Full-data results in a JSON file, keyed by dataset, split, architecture, budget and seed.

    Every new entry is written at once (atomically), so an interrupted study keeps
    what it paid for.
    """

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path is not None and self.path.exists():
            try:
                blob = json.loads(self.path.read_text())
            except json.JSONDecodeError as e:
                raise DataFormatError(f"{self.path}: not a JSON cache ({e})") from None
            if not isinstance(blob, dict) or blob.get("format") != CACHE_FORMAT:
                raise DataFormatError(f"{self.path}: not a datadam full-data cache")
            self.entries = blob["entries"]

    @staticmethod
    def key(dataset: str, dataset_options: dict[str, Any] | None, split: dict[str, Any],
            arch: Architecture, train: TrainConfig, seed: int) -> str:
        return json.dumps({"dataset": dataset, "options": dataset_options or {},
                           "validation": split["validation_images"], "split_seed": split["split_seed"],
                           "arch": arch_key(arch), "train": train.key(), "seed": seed}, sort_keys=True)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        self.entries[key] = record
        if self.path is not None:
            write_json(self.path, {"format": CACHE_FORMAT, "entries": self.entries})


def sample_architectures(space: SearchSpace, count: int, seed: int, channel: int, num_classes: int,
                         im_size: tuple[int, int]) -> list[Architecture]:
    """``count`` distinct architectures drawn from the NNI model space with ``seed``."""
    import numpy as np

    from datadam.apps.nas.space import ConvNetSpace

    if not 2 <= count <= space.size:
        raise ConfigError(f"the study needs between 2 and {space.size} architectures "
                          f"(the size of the space), not {count}")
    model_space = ConvNetSpace(channel, num_classes, list(im_size), space.to_dict())
    mutables = model_space.simplify()
    rng = np.random.RandomState(seed % (2 ** 32))
    chosen: dict[str, Architecture] = {}
    while len(chosen) < count:
        sample: dict[str, Any] = {}
        for mutable in mutables.values():
            mutable.random(sample, rng)  # NNI's own sampler, seeded
        arch = {k: (v.item() if hasattr(v, "item") else v) for k, v in sample.items()}
        chosen.setdefault(arch_key(arch), arch)
    return list(chosen.values())


def study(dataset: str, proxies: list[str], *, archs: int = 20, space: SearchSpace | None = None,
          proxy_train: dict[str, Any] | None = None, full_train: dict[str, Any] | None = None,
          validation: int = 5000, ipc: int | None = None, top_k: int = 5, seed: int = 0,
          root: str | Path | None = None, dataset_options: dict[str, Any] | None = None,
          device: str = "cpu", cache: str | Path | None = None,
          on_step: Callable[[str, dict[str, Any]], None] | None = None) -> StudyResult:
    """Measure how well each proxy ranks ``archs`` sampled architectures.

    Args:
        proxies: synthetic set paths and/or ``random`` (a class-balanced real subset
            with as many images per class as the first synthetic set, or ``ipc``).
        proxy_train: :class:`~datadam.evaluate.TrainConfig` fields of proxy training
            that differ from ``PROXY_TRAIN`` (:mod:`datadam.apps.nas.evaluator`).
        full_train: the same for full-data training, against ``FULL_TRAIN``.
        validation: real training images held out to score every network.
        cache: JSON file of full-data results (read, and extended as they come).
        on_step: called with ``(proxy name, record)`` after each training.
    """
    if not proxies:
        raise ConfigError("name at least one proxy (a synthetic set or 'random')")
    if FULL in proxies:
        raise ConfigError("'full' is the ground truth of every study, not a proxy to list")
    if len(set(proxies)) != len(proxies):
        raise ConfigError(f"a proxy is listed twice: {proxies}")
    space = space or SearchSpace()
    proxy_cfg = TrainConfig(**(asdict(PROXY_TRAIN) | (proxy_train or {})))
    full_cfg = TrainConfig(**(asdict(FULL_TRAIN) | (full_train or {})))
    train = data.load(dataset, root, "train", **(dataset_options or {}))
    space.check_image_size(train.image_size)
    split = split_validation(train, validation, seed)
    ipc = ipc or matching_ipc(proxies, split.train, 10)
    made = [make_proxy(spec, split.train, ipc, derive_seed(seed, 1)) for spec in proxies]
    for proxy in made:
        note_validation_overlap(proxy, split)
    if len({p.name for p in made}) != len(made):
        raise ConfigError("two proxies have the same name (a file name, or random and random:0); "
                          "rename or drop one")
    full = make_proxy(FULL, split.train, ipc, seed)
    arch_list = sample_architectures(space, archs, seed, train.channels, train.num_classes,
                                     train.image_size)
    store = FullDataCache(cache)
    start = time.perf_counter()
    rows = [{"arch": a, "key": arch_key(a)} for a in arch_list]
    cached = 0
    for row in rows:
        key = store.key(dataset, dataset_options, split.details, row["arch"], full_cfg, seed)
        record = store.get(key)
        if record is None:
            record = train_and_validate(row["arch"], full, split, full_cfg, seed, device=device)
            record["machine"] = platform.processor() or platform.machine()
            store.put(key, record)
        else:
            cached += 1
        row["full"] = _timed(record)
        if on_step is not None:
            on_step(FULL, row)
    for proxy in made:
        for row in rows:
            record = train_and_validate(row["arch"], proxy, split, proxy_cfg, seed, device=device)
            row[proxy.name] = _timed(record)
            if on_step is not None:
                on_step(proxy.name, row)
    full_acc = [r["full"]["accuracy"] for r in rows]
    full_seconds = sum(r["full"]["seconds"] for r in rows) / len(rows)
    cost = [image_flops(r["arch"], train.channels, train.num_classes, train.image_size) for r in rows]

    def flops_per_arch(images: int, cfg: TrainConfig) -> float:  # training + scoring the validation split
        return sum(t * images * cfg.epochs + f * validation for t, f in cost) / len(cost)

    full_flops = flops_per_arch(len(full), full_cfg)
    quality: dict[str, dict[str, Any]] = {}
    for proxy in made:
        acc = [r[proxy.name]["accuracy"] for r in rows]
        q = rank_quality(acc, full_acc, top_k)
        q["chosen_arch"] = rows[q["chosen_index"]]["key"]
        seconds = sum(r[proxy.name]["seconds"] for r in rows) / len(rows)
        flops = flops_per_arch(len(proxy), proxy_cfg)
        q.update(seconds_per_arch=round(seconds, 4), total_seconds=round(seconds * len(rows), 3),
                 speedup_vs_full=round(full_seconds / seconds, 2) if seconds else None,
                 flops_per_arch=flops, flops_speedup_vs_full=round(full_flops / flops, 2),
                 accuracy_mean=sum(acc) / len(acc), accuracy_min=min(acc), accuracy_max=max(acc),
                 details=proxy.details | {"kind": proxy.kind})
        quality[proxy.name] = q
    settings = {
        "dataset": dataset, "dataset_options": dataset_options or {}, "split": split.details,
        "archs": archs, "space": space.to_dict(), "space_size": space.size,
        "proxy_train": asdict(proxy_cfg), "full_train": asdict(full_cfg), "ipc": ipc, "top_k": top_k,
        "seed": seed, "device": device, "cache": str(cache) if cache else None,
        "full_data": {"images": len(full), "seconds_per_arch": round(full_seconds, 4),
                      "flops_per_arch": full_flops,
                      "cached_archs": cached, "accuracy_mean": statistics.fmean(full_acc),
                      "accuracy_std": statistics.pstdev(full_acc),
                      "accuracy_min": min(full_acc), "accuracy_max": max(full_acc)},
        "study_seconds": round(time.perf_counter() - start, 3),
        "versions": {"datadam": __version__, "torch": torch.__version__,
                     "python": platform.python_version()},
    }
    result = StudyResult(rows, quality, settings)
    settings["random_draws"] = random_draws_summary(result)
    return result


def image_flops(arch: Architecture, channel: int, num_classes: int,
                im_size: tuple[int, int]) -> tuple[int, int]:
    """FLOPs per image of ``arch``: one training step (forward + backward) and one forward.

    The machine-independent cost of a trial, next to its seconds (which another job on
    the same cores can stretch). Augmentation and optimiser arithmetic are left out.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from datadam.apps.nas.architecture import build_network
    from datadam.evaluate import training_flops

    net = build_network(arch, channel, num_classes, im_size, seed=0)
    train = training_flops(net, (channel, *im_size), num_classes, 1)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net.eval()
        net(torch.zeros(2, channel, *im_size))
    return train, counter.get_total_flops() // 2


def _timed(record: dict[str, Any]) -> dict[str, Any]:
    # warm_up_seconds: absent from caches written before it was measured
    return {k: record[k] for k in ("accuracy", "seconds", "train_seconds", "eval_seconds", "warm_up_seconds")
            if k in record}


def markdown_table(result: StudyResult) -> str:
    """One row per proxy (and the full data): the numbers a user checks before trusting a proxy."""
    s = result.settings
    full = s["full_data"]
    lines = [
        "| training set | images | Spearman | Kendall | chosen arch: full-data acc % (rank) "
        f"| top-{min(s['top_k'], len(result.architectures))} overlap | s per arch | speed-up (time) "
        "| speed-up (FLOPs) |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]

    def num(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    n = len(result.architectures)
    k = min(s["top_k"], n)
    for name, q in result.proxies.items():
        lines.append(
            f"| {name} | {q['details'].get('images')} | {num(q['spearman'])} | {num(q['kendall'])} "
            f"| {100 * q['chosen_full_accuracy']:.2f} ({q['chosen_full_rank']} of {n}) "
            f"| {q['top_k_overlap']}/{q['top_k']} | {q['seconds_per_arch']:.2f} | {q['speedup_vs_full']}x "
            f"| {q['flops_speedup_vs_full']}x |")
    lines.append(f"| full data (ground truth) | {full['images']} | 1 | 1 "
                 f"| {100 * full['accuracy_max']:.2f} (1 of {n}) | {k}/{k} "
                 f"| {full['seconds_per_arch']:.2f} | 1x | 1x |")
    draws = random_draws_summary(result)
    if draws is not None:
        lines += ["", f"Random subsets, {draws['draws']} draws: Spearman {draws['spearman_mean']:.3f} "
                  f"± {draws['spearman_std']:.3f} (min {draws['spearman_min']:.3f}, max "
                  f"{draws['spearman_max']:.3f}); Kendall {draws['kendall_mean']:.3f} "
                  f"± {draws['kendall_std']:.3f}."]
    return "\n".join(lines) + "\n"


def random_draws_summary(result: StudyResult) -> dict[str, float] | None:
    """Mean, std (sample), min and max of the random proxies' Spearman and Kendall.

    None unless the study has at least two random draws (``random``, ``random:K``...) with
    defined correlations: the spread a synthetic proxy's correlation should be read against.
    """
    qs = [q for q in result.proxies.values() if q["details"].get("kind") == RANDOM
          and q["spearman"] is not None and q["kendall"] is not None]
    if len(qs) < 2:
        return None
    summary: dict[str, float] = {"draws": len(qs)}
    for key in ("spearman", "kendall"):
        values = [q[key] for q in qs]
        summary |= {f"{key}_mean": statistics.fmean(values), f"{key}_std": statistics.stdev(values),
                    f"{key}_min": min(values), f"{key}_max": max(values)}
    return summary


def plot_scatter(result: StudyResult, path: str | Path, names: list[str] | None = None) -> Path:
    """Proxy accuracy against full-data accuracy, one panel per proxy (PNG).

    ``names``: the proxies to draw, in order (None: every proxy but the further random
    draws ``random:K``, whose spread the table summarises).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if names is None:
        names = [n for n, q in result.proxies.items()
                 if q["details"].get("kind") != RANDOM or not q["details"].get("draw")]
    unknown = [n for n in names if n not in result.proxies]
    if unknown:
        raise ConfigError(f"no proxy named {unknown[0]!r} in this study: {', '.join(result.proxies)}")
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4), dpi=120, squeeze=False)
    full = [100 * r["full"]["accuracy"] for r in result.architectures]
    for ax, name in zip(axes[0], names):
        q = result.proxies[name]
        acc = [100 * r[name]["accuracy"] for r in result.architectures]
        ax.scatter(acc, full, s=22, alpha=0.8)
        chosen = q["chosen_index"]
        ax.scatter([acc[chosen]], [full[chosen]], s=80, facecolors="none", edgecolors="C3",
                   label="proxy's pick")
        rho = "n/a" if q["spearman"] is None else f"{q['spearman']:.2f}"
        tau = "n/a" if q["kendall"] is None else f"{q['kendall']:.2f}"
        ax.set_title(f"{name}\nSpearman {rho}, Kendall {tau}", fontsize=9)
        ax.set_xlabel(f"validation accuracy % after training on the proxy "
                      f"({q['details'].get('images')} images)", fontsize=8)
        ax.set_ylabel("validation accuracy % after training on the full data", fontsize=8)
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
