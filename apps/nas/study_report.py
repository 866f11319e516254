"""A proxy study as a reader checks it: a Markdown table and a scatter plot."""

from __future__ import annotations

from pathlib import Path

from datadam.apps.nas.proxy import RANDOM
from datadam.apps.nas.rank_study import StudyResult
from datadam.apps.nas.ranking import random_draws_summary
from datadam.errors import ConfigError
from datadam.files import atomic_path


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
    draws = random_draws_summary(result.proxies)
    if draws is not None:
        lines += ["", f"Random subsets, {draws['draws']} draws: Spearman {draws['spearman_mean']:.3f} "
                  f"± {draws['spearman_std']:.3f} (min {draws['spearman_min']:.3f}, max "
                  f"{draws['spearman_max']:.3f}); Kendall {draws['kendall_mean']:.3f} "
                  f"± {draws['kendall_std']:.3f}."]
    return "\n".join(lines) + "\n"


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
