"""The continual-learning picture: accuracy against classes seen, one line per buffer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datadam.pictures import save_figure


def plot_accuracy(result: dict[str, Any], path: str | Path, title: str | None = None,
                  provenance: str | None = None) -> Path:
    """Accuracy on the classes seen so far after each experience: the mean over class
    orders as a line, mean ± std as a band, one colour per buffer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    settings = result["settings"]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, summary in result["summary"].items():
        x = np.asarray(summary["classes_seen"])
        mean = 100 * np.asarray(summary["accuracy_mean"])
        std = 100 * np.asarray(summary["accuracy_std"])
        line, = ax.plot(x, mean, marker="o", lw=1.8,
                        label=f"{name}  ({mean[-1]:.1f} ± {std[-1]:.1f})")
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.18, lw=0)
    ax.set_xlabel("classes seen")
    ax.set_ylabel("test accuracy on classes seen (%)")
    ax.set_xticks(result["summary"][next(iter(result["summary"]))]["classes_seen"])
    ax.grid(alpha=0.3)
    orders = len(settings.get("class_orders", []))
    ax.set_title(title or f"{settings['dataset']}, {settings['ipc']} images per class, "
                          f"{settings['protocol']} protocol, {orders} class orders", fontsize=10)
    ax.legend(title="buffer (final, mean ± std)", fontsize=8, title_fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, provenance)
