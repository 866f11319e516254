"""Coreset baselines: pick real images instead of learning synthetic ones."""

from __future__ import annotations

import torch

from datadam import models
from datadam.data.base import ImageDataset
from datadam.distill.base import Method, derive_seed, register_method

_SELECT = 5


class CoresetMethod(Method):
    """Selects ``ipc`` real images per class; subclasses implement :meth:`select`.

    Feature-space methods compare images by the embedding of a randomly initialised
    ConvNet (instance norm, seeded from the run seed), so no training is needed. The
    config they keep, and their file records, names that network's norm.
    """

    uses_features = True
    uses_settings = ("model", "model_options", "model_choices")  # the feature network's
    # an untrained network's BatchNorm has no statistics but its initial ones (mean 0, variance
    # 1), so it would normalise nothing: the feature network normalises each image instead
    fixed_model_options = {"net_norm": "instancenorm"}

    def select(self, features: torch.Tensor, ipc: int, generator: torch.Generator) -> torch.Tensor:
        """Indices ``[ipc]`` into ``features [n, D]`` of one class."""
        raise NotImplementedError

    def condense(self, dataset: ImageDataset) -> torch.Tensor:
        cfg = self.config
        g = torch.Generator().manual_seed(derive_seed(cfg.seed, 0, _SELECT))
        chosen = []
        embed = self._embedder(dataset) if self.uses_features else None
        for c in range(dataset.num_classes):
            idx = dataset.indices_of(c)
            feats = self._embed(embed, dataset, idx) if embed is not None else idx.view(-1, 1)
            chosen.append(idx[self.select(feats, cfg.ipc, g)])
        return dataset.normalized(torch.cat(chosen))

    def _embedder(self, dataset: ImageDataset):
        cfg = self.config
        seed = derive_seed(cfg.seed, 1, _SELECT)
        name, options = cfg.draw_network(seed)
        net = models.create(name, dataset.channels, dataset.num_classes, dataset.image_size,
                            seed=seed, **options)
        return net.to(self.device).eval().requires_grad_(False)

    @torch.no_grad()
    def _embed(self, net, dataset: ImageDataset, idx: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
        return torch.cat([net.embed(dataset.normalized(idx[s:s + chunk]).to(self.device)).cpu()
                          for s in range(0, len(idx), chunk)])


@register_method
class RandomCoreset(CoresetMethod):
    """Random real images of each class (the baseline every method must beat)."""

    name = "random"
    uses_features = False
    uses_settings = ()
    fixed_model_options = {}

    def select(self, features, ipc, generator):
        return torch.randperm(features.shape[0], generator=generator)[:ipc]


@register_method
class Herding(CoresetMethod):
    """Herding (Welling, 2009): greedily add the image that brings the running mean of
    the chosen features closest to the class mean."""

    name = "herding"

    def select(self, features, ipc, generator):
        features = features.double()
        target = features.mean(0)
        chosen: list[int] = []
        total = torch.zeros_like(target)
        available = torch.ones(features.shape[0], dtype=torch.bool)
        for step in range(1, ipc + 1):
            dist = ((total + features) / step - target).pow(2).sum(1)
            dist[~available] = float("inf")
            best = int(dist.argmin())
            chosen.append(best)
            available[best] = False
            total += features[best]
        return torch.tensor(chosen)


@register_method
class KCenter(CoresetMethod):
    """k-center greedy (Sener & Savarese, 2018): start from the image nearest the class
    mean, then repeatedly add the image farthest from everything chosen."""

    name = "kcenter"

    def select(self, features, ipc, generator):
        features = features.double()
        first = int((features - features.mean(0)).pow(2).sum(1).argmin())
        chosen = [first]
        nearest = (features - features[first]).pow(2).sum(1)
        for _ in range(ipc - 1):
            nxt = int(nearest.argmax())
            chosen.append(nxt)
            nearest = torch.minimum(nearest, (features - features[nxt]).pow(2).sum(1))
        return torch.tensor(chosen)
