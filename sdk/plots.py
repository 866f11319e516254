"""Matplotlib figures of runs (headless: the Agg backend, files only)."""

from __future__ import annotations

from pathlib import Path

from datadam.synthetic import atomic_path


def plot_loss(history: list[float], path: str | Path, title: str = "") -> Path:
    """The distillation loss per iteration (log scale) with a moving average."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = np.asarray(history, dtype=float)
    window = max(1, len(values) // 50)
    smooth = np.convolve(values, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot(np.arange(1, len(values) + 1), values, color="0.75" if window > 1 else "C0",
            lw=0.8 if window > 1 else 1.6, label="per iteration")
    if window > 1:  # a moving average only helps once there are many iterations
        ax.plot(np.arange(window, len(values) + 1), smooth, color="C0", lw=1.6,
                label=f"mean of {window} iterations")
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("matching loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
