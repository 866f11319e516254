"""How DataDAM's two loss terms pull on a synthetic set: each term's value and the norm of
its gradient with respect to the images, in fresh random networks.

The loss values alone do not say which term drives the images (the method weights
the last-layer term by lambda = 0.01); the gradients do. :func:`term_balance` measures both
as one distillation iteration would see them at the set's images.

Examples:
    >>> balance = term_balance(syn, train, networks=5)            # doctest: +SKIP
    >>> balance.summary()["gradient_ratio"]                       # doctest: +SKIP
    2.8
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import torch

from datadam.data.base import ImageDataset
from datadam.distill.base import derive_seed, resolve_device
from datadam.distill.config import DistillConfig
from datadam.distill.matching import DataDAM
from datadam.errors import ConfigError
from datadam.synthetic import SyntheticSet

TERMS = ("attention", "last_layer")


@dataclass(frozen=True)
class TermBalance:
    """Per network: ``seed``, each term's weighted loss (``attention``, ``last_layer``,
    adding up to the matching loss), the L2 norm of its gradient with respect to the
    synthetic images (``attention_gradient``, ``last_layer_gradient``) and their ratio
    ``gradient_ratio`` (attention over last layer; ``inf`` if the latter is zero)."""

    networks: list[dict[str, float]]
    settings: dict[str, Any]

    def summary(self) -> dict[str, float]:
        """Means over the networks, and ``gradient_ratio``: the attention term's gradient
        norm over the last-layer term's (above 1: the attention term drives the images)."""
        keys = [*TERMS, *(f"{t}_gradient" for t in TERMS)]
        means = {k: statistics.fmean(n[k] for n in self.networks) for k in keys}
        finite = [n["gradient_ratio"] for n in self.networks if n["last_layer_gradient"] > 0]
        means["gradient_ratio"] = statistics.fmean(finite) if finite else float("inf")
        return means

    def to_dict(self) -> dict[str, Any]:
        return {"networks": self.networks, "summary": self.summary(), "settings": self.settings}


def term_balance(syn: SyntheticSet, real: ImageDataset, networks: int = 5, seed: int = 0,
                 device: str | torch.device = "auto") -> TermBalance:
    """Measure DataDAM's two loss terms at ``syn`` in ``networks`` fresh random networks.

    Each network is drawn as the set's distillation draws one (its model and options),
    with ``batch_real`` real images per class of ``real`` (the training split) and one
    siamese DSA draw of the set's augmentation, like one iteration of the run. The terms
    use the set's power, lambda and scale; a set made with DM or without the attention
    term is measured with the attention term at weight 1 (what DataDAM would add).

    Args:
        syn: a synthetic set made by ``datadam`` or ``dm`` (its ``config`` is read).
        real: the real training data the set was distilled from.
        networks: how many fresh networks (>= 1).
        seed: fixes the networks, the real images and the augmentation.

    Returns:
        A :class:`TermBalance`; gradients are taken with respect to the training images
        ``[N, C, H, W]`` (the decoded ones of a multi-formation set).
    """
    if networks < 1:
        raise ConfigError("networks must be at least 1")
    saved = syn.metadata.get("config") or {}
    if syn.metadata.get("method") not in ("datadam", "dm"):
        raise ConfigError(f"the loss terms are those of datadam and dm, not of "
                          f"{syn.metadata.get('method')!r}")
    if real.classes != syn.classes or tuple(real.images.shape[1:]) != syn.image_shape:
        raise ConfigError(f"the real data ({real.name}, {tuple(real.images.shape[1:])}) is not the "
                          f"data of this synthetic set ({syn.image_shape})")
    cfg = DistillConfig.from_saved(saved).replace(method="datadam", sam_weight=saved.get("sam_weight") or 1.0)
    cfg = cfg.resolve(real)
    dev = resolve_device(device)
    method = DataDAM(cfg, dev)
    k = real.num_classes
    counts = torch.bincount(syn.labels, minlength=k)
    if int(counts.min()) != int(counts.max()):
        raise ConfigError("the loss terms need the same number of images in every class")
    batches = method.batches(real)
    order = torch.argsort(syn.labels, stable=True)  # grouped by class, as the loss expects
    # autograd.grad leaves .grad alone, so one leaf serves every network
    images = syn.images[order].float().to(dev).requires_grad_(True)
    rows = []
    for i in range(networks):
        net_seed = derive_seed(seed, i)
        net = method.network(real, net_seed)
        g = torch.Generator().manual_seed(derive_seed(net_seed, 1))
        terms = method.loss_terms(net, *batches.draw(images, g), k)
        row: dict[str, float] = {"seed": net_seed}
        for name in TERMS:
            (grad,) = torch.autograd.grad(terms[name], images, retain_graph=name != TERMS[-1])
            row[name] = float(terms[name].detach())
            row[f"{name}_gradient"] = float(grad.norm())
        last = row["last_layer_gradient"]
        row["gradient_ratio"] = row["attention_gradient"] / last if last > 0 else float("inf")
        rows.append(row)
    settings = {"networks": networks, "seed": seed, "batch_real": batches.per_class,
                "attention_power": cfg.attention_power, "task_balance": cfg.task_balance,
                "sam_weight": cfg.sam_weight, "loss_scale": cfg.loss_scale, "model": cfg.model,
                "augmentation": cfg.augmentation, "device": str(dev)}
    return TermBalance(rows, settings)


__all__ = ["TermBalance", "term_balance"]
