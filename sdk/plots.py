"""Matplotlib figures of runs (headless: the Agg backend, files only).

- :func:`plot_loss`: the matching loss per iteration, and its terms.
- :func:`plot_attention`: what DataDAM matches, the spatial attention maps of a class's
  real and synthetic images in a fresh random network.
- :func:`plot_evolution`: a class's synthetic images over the iterations (needs the
  snapshots of ``distill(snapshot_every=...)`` / ``datadam distill --snapshot-every``).
- :func:`plot_comparison`: two sets (or recipes) network by network (``compare_results``), one line
  per pair of networks.

Each ``plot_*`` writes a picture atomically, in the format of the file's suffix (PNG,
JPEG, PDF or SVG); each ``*_figure`` returns the matplotlib figure
(for a notebook, or :func:`figure_png` for the bytes).
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

import torch

from datadam.data.base import ImageDataset
from datadam.errors import ConfigError
from datadam.pictures import pyplot, save_figure
from datadam.synthetic import SyntheticSet, denormalize


def figure_png(fig: Any) -> bytes:
    """``fig`` as PNG bytes (the figure is closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    pyplot().close(fig)
    return buffer.getvalue()


def _moving_average(history: list[float]) -> tuple[Any, Any, Any, int]:
    """``(values, steps, smooth, window)``: the loss per iteration and its moving average
    over ``window`` (a 50th of the run) ending at iterations ``steps``."""
    import numpy as np

    values = np.asarray(history, dtype=float)
    window = max(1, len(values) // 50)
    smooth = np.convolve(values, np.ones(window) / window, mode="valid")
    return values, np.arange(window, len(values) + 1), smooth, window


TERM_LABELS = {"attention": "attention term (SAM)", "last_layer": "last-layer term"}


def loss_figure(history: list[float], title: str = "",
                terms: dict[str, list[float]] | None = None) -> Any:
    """The distillation loss per iteration (log scale) with a moving average, and the
    moving average of each of its ``terms`` (``SyntheticSet.loss_terms``) if given."""
    import numpy as np

    plt = pyplot()
    values, steps, smooth, window = _moving_average(history)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot(np.arange(1, len(values) + 1), values, color="0.75" if window > 1 else "C0",
            lw=0.8 if window > 1 else 1.6, label="per iteration")
    if window > 1:  # a moving average only helps once there are many iterations
        ax.plot(steps, smooth, color="C0", lw=1.6,
                label=f"mean of {window} iterations")
    for i, (name, term) in enumerate((terms or {}).items()):
        _, term_steps, term_smooth, _ = _moving_average(term)
        ax.plot(term_steps, term_smooth, color=f"C{i + 1}", lw=1.2, ls="--",
                label=TERM_LABELS.get(name, name))
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("matching loss")
    ax.set_title("\n".join(textwrap.wrap(title, 64)), fontsize=10)  # a recipe can be long
    ax.legend()
    fig.tight_layout()
    return fig


def convergence_figure(iterations: list[int], accuracy_mean: list[float],
                       accuracy_std: list[float], history: list[float] | None = None,
                       title: str = "") -> Any:
    """Test accuracy (%, mean with a ± std bar) at some distillation iterations, and
    the matching loss per iteration (moving average, log scale) on a second axis."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8), dpi=120)
    ax.errorbar(iterations, accuracy_mean, yerr=accuracy_std, marker="o", capsize=3, color="C0")
    ax.set_xlabel("distillation iteration")
    ax.set_ylabel("test accuracy % (mean ± std)", color="C0")
    ax.grid(alpha=0.3)
    if history:
        _, steps, smooth, window = _moving_average(history)
        loss_ax = ax.twinx()
        loss_ax.plot(steps, smooth, color="C1", lw=1.2)
        loss_ax.set_yscale("log")
        loss_ax.set_ylabel(f"matching loss (mean of {window} iterations)", color="C1")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def comparison_figure(comparison: dict[str, dict[str, Any]], label_a: str = "A",
                      label_b: str = "B") -> Any:
    """One panel per model of :func:`datadam.evaluate.compare_results`: each paired
    network (for replicates, each distillation: the mean of its networks, which are grey
    dots) a line from its accuracy (%) with A to that with B, green where B did better,
    red where A did, grey for a tie; the means as black diamonds. Titled with the mean
    difference and its interval."""
    from datadam.evaluate import comparison_text

    plt = pyplot()
    fig, axes = plt.subplots(1, len(comparison), figsize=(4.2 * len(comparison) + 0.4, 4.0),
                             dpi=120, squeeze=False)
    for ax, (name, c) in zip(axes[0], comparison.items()):
        by_distillation = c.get("unit") == "distillation"
        lines = c["distillations"] if by_distillation else c["networks"]
        if by_distillation:
            for pair in c["networks"]:
                ax.plot([0, 1], [100 * pair["a"], 100 * pair["b"]], ls="none", marker=".", ms=3,
                        color="0.6")
        for pair in lines:
            a, b = 100 * pair["a"], 100 * pair["b"]
            color = "C2" if b > a else "C3" if b < a else "0.5"
            ax.plot([0, 1], [a, b], color=color, marker="o", ms=4, lw=1.2, alpha=0.8)
            if by_distillation:  # name the seed of each distillation's line
                ax.annotate(f"seed {pair['distill_seed']}", (1, b), xytext=(6, 0), textcoords="offset points",
                            va="center", fontsize=7, color=color)
        ax.plot([0, 1], [100 * c["a_mean"], 100 * c["b_mean"]], color="black", marker="D", lw=2)
        ax.set_xticks([0, 1], [label_a, label_b], fontsize=8)
        ax.set_xlim(-0.25, 1.25)
        ax.set_ylabel(f"test {c['metric'].replace('_', ' ')} %")
        ax.grid(axis="y", alpha=0.3)
        text = comparison_text(c, missing="")
        span = f"\n{100 * c['confidence']:g}% interval {text['interval']}" if text["interval"] else ""
        ax.set_title(f"{name}: B - A = {100 * c['difference_mean']:+.2f} points{span}\n"
                     f"B ahead on {text['ahead']} {c.get('unit', 'network')}s", fontsize=9)
    fig.tight_layout()
    return fig


def plot_comparison(comparison: dict[str, dict[str, Any]], path: str | Path, label_a: str = "A",
                    label_b: str = "B", provenance: str | None = None) -> Path:
    """Write :func:`comparison_figure` to ``path`` (see :func:`save_figure`)."""
    return save_figure(comparison_figure(comparison, label_a, label_b), path, provenance)


def plot_loss(history: list[float], path: str | Path, title: str = "",
              terms: dict[str, list[float]] | None = None, provenance: str | None = None) -> Path:
    """Write :func:`loss_figure` to ``path`` (see :func:`save_figure`)."""
    return save_figure(loss_figure(history, title, terms), path, provenance)


def class_index(syn: SyntheticSet, name_or_index: str | int) -> int:
    """The label of a class given by its name (``"3 - three"``), a unique prefix of its
    name (``"3"``) or its index; :class:`~datadam.errors.ConfigError` otherwise."""
    text = str(name_or_index)
    if not isinstance(name_or_index, int):
        if text in syn.classes:
            return syn.classes.index(text)
        matches = [i for i, c in enumerate(syn.classes) if c.startswith(text)]
        if len(matches) == 1:
            return matches[0]
        if matches or not text.isdigit():
            raise ConfigError(f"class {text!r} is {'ambiguous' if matches else 'unknown'}; "
                              f"classes: {', '.join(syn.classes)}")
    index = int(text)
    if not 0 <= index < len(syn.classes):
        raise ConfigError(f"class index {index} out of range 0..{len(syn.classes) - 1}")
    return index


def attention_maps(net: torch.nn.Module, images: torch.Tensor, power: float) -> list[torch.Tensor]:
    """Spatial attention ``[B, H_l, W_l]`` of every block DataDAM matches (all but the last),
    each map L2-normalised as in the loss."""
    from datadam.distill.matching import spatial_attention

    with torch.no_grad():
        activations = net.forward_features(images).activations[:-1]
    return [spatial_attention(a, power).view(a.shape[0], *a.shape[2:]) for a in activations]


def _attention_network(syn: SyntheticSet, real: ImageDataset,
                       seed: int = 0) -> tuple[torch.nn.Module, str, float]:
    """``(network, model name, attention power)``: a fresh random network (training mode,
    as at one distillation iteration) of the architecture that the set's saved settings
    draw for ``seed``, and their power p; a set without settings (an imported one) gets
    :class:`~datadam.distill.DistillConfig`'s defaults for the image size."""
    from datadam import models
    from datadam.distill.config import DistillConfig, default_model

    if real.classes != syn.classes or real.images.shape[1:] != syn.images.shape[1:]:
        raise ConfigError(f"the real data ({real.name}, {tuple(real.images.shape[1:])}) is not the "
                          f"data of this synthetic set ({tuple(syn.images.shape[1:])})")
    cfg = DistillConfig.from_saved(syn.metadata.get("config") or {})
    if cfg.model is None:
        cfg = cfg.replace(model=default_model(real.image_size))
    model, options = cfg.draw_network(seed)  # one of several architectures, if several
    net = models.create(model, real.channels, real.num_classes, real.image_size, seed=seed, **options)
    if not hasattr(net, "forward_features"):
        raise ConfigError(f"model {model!r} has no attention maps; use a ConvNet")
    net.train()  # BatchNorm on batch statistics, as during distillation
    return net, model, cfg.attention_power


def attention_figure(syn: SyntheticSet, real: ImageDataset, label: int, n_images: int = 6,
                     seed: int = 0) -> Any:
    """Real and synthetic images of class ``label`` and their attention maps in one fresh
    random network of the run's architecture, with its attention power (its saved settings).

    Rows: the real images, their maps per block, then the same for the synthetic images;
    the last column is the class mean of each row, which is what the loss matches.
    """
    net, model, power = _attention_network(syn, real, seed)
    g = torch.Generator().manual_seed(seed)
    real_idx = real.indices_of(label)
    real_idx = real_idx[torch.randperm(len(real_idx), generator=g)[:n_images]]
    groups = [("real", real.normalized(real_idx, syn.mean, syn.std)),
              ("synthetic", syn.images[syn.labels == label][:n_images].float())]
    rows = []
    for name, images in groups:
        maps = attention_maps(net, images, power)
        rows.append((f"{name}\nimages", denormalize(images, syn.mean, syn.std), None))
        rows += [(f"{name}\nblock {b + 1}", m, m.mean(0)) for b, m in enumerate(maps)]
    fig = _tile_rows(rows, max(len(images) for _, images in groups) + 1)
    fig.suptitle(f"attention (sum over channels of |f|^{power:g}) of class {syn.classes[label]!r}, "
                 f"{model}, seed {seed}", fontsize=9)
    fig.tight_layout()
    return fig


def _tile_rows(rows: list[tuple[str, Any, Any]], cols: int) -> Any:
    """A figure of ``rows`` of ``(title, tiles, mean)``: the tiles (images ``[C, H, W]`` in
    [0, 1], or maps ``[H, W]``) in the first columns, the mean map (or nothing) in the last."""
    plt = pyplot()
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.25 * cols + 0.6, 1.25 * len(rows)),
                             dpi=120, squeeze=False)
    for r, (title, tiles, mean) in enumerate(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c == cols - 1:
                if mean is not None:
                    ax.imshow(mean.numpy(), cmap="inferno")
                    if r in (1, 1 + len(rows) // 2):
                        ax.set_title("class mean", fontsize=8)
            elif c < len(tiles):
                tile = tiles[c]
                if tile.ndim == 3:  # an image [C, H, W]
                    ax.imshow(tile.permute(1, 2, 0).squeeze(-1).numpy(),
                              cmap="gray" if tile.shape[0] == 1 else None, vmin=0, vmax=1)
                else:
                    ax.imshow(tile.numpy(), cmap="inferno")
        axes[r, 0].set_ylabel(title, fontsize=8, rotation=0, ha="right", va="center")
    return fig


def plot_attention(syn: SyntheticSet, real: ImageDataset, label: int, path: str | Path,
                   n_images: int = 6, seed: int = 0, provenance: str | None = None) -> Path:
    """Write :func:`attention_figure` to ``path`` (see :func:`save_figure`)."""
    return save_figure(attention_figure(syn, real, label, n_images, seed), path, provenance)


def evolution_figure(syn: SyntheticSet, label: int, max_images: int = 10, max_steps: int = 12) -> Any:
    """A strip of class ``label``'s synthetic images over the iterations: one column per
    snapshot (at most ``max_steps``, evenly spaced, always the first and the final
    images), one row per image (at most ``max_images``)."""
    import numpy as np

    plt = pyplot()
    iterations = syn.snapshot_iterations
    if syn.snapshots is None or not iterations:
        raise ConfigError("this synthetic set has no snapshots: distill with --snapshot-every N "
                          "(Python: distill(..., snapshot_every=N))")
    steps = list(syn.snapshots.unbind(0))
    final = syn.metadata.get("iterations_done")
    if final is not None and iterations[-1] != final:
        steps.append(syn.images)
        iterations.append(final)
    keep = sorted(set(np.linspace(0, len(steps) - 1, min(max_steps, len(steps))).round().astype(int)))
    mask = syn.labels == label
    fig, axes = plt.subplots(min(int(mask.sum()), max_images), len(keep),
                             figsize=(1.1 * len(keep) + 0.4, 1.1 * min(int(mask.sum()), max_images) + 0.5),
                             dpi=120, squeeze=False)
    for c, step in enumerate(keep):
        images = denormalize(steps[step][mask][:max_images], syn.mean, syn.std)
        for r, image in enumerate(images):
            ax = axes[r, c]
            ax.imshow(image.permute(1, 2, 0).squeeze(-1).numpy(),
                      cmap="gray" if image.shape[0] == 1 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, c].set_title(f"it {iterations[step]}", fontsize=8)
    fig.suptitle(f"class {syn.classes[label]!r}: {syn.metadata.get('method')} images over iterations",
                 fontsize=9)
    fig.tight_layout()
    return fig


def plot_evolution(syn: SyntheticSet, label: int, path: str | Path, max_images: int = 10,
                   max_steps: int = 12, provenance: str | None = None) -> Path:
    """Write :func:`evolution_figure` to ``path`` (see :func:`save_figure`)."""
    return save_figure(evolution_figure(syn, label, max_images, max_steps), path, provenance)
