"""The quantities DataDAM and DM match, and the loss between them.

For every class, the mean spatial attention map of each inner block (DataDAM only) and the
mean last-layer embedding, of the real images and of the synthetic ones; the loss is the
squared L2 distance between the two, summed over classes and blocks, weighted and scaled.
The CPU kernel of the attention maps (a chunked, channels-last power sum with its own
backward) is in :mod:`datadam.kernels`, beside the plain definition it must equal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from datadam.distill.chunked import chunked_class_means, needs_chunks
from datadam.kernels import Reduce, accumulation_dtype, channel_power_sum, reduce_sum_and_count
from datadam.models.convnet import Features


def spatial_attention(activation: torch.Tensor, power: float) -> torch.Tensor:
    """Spatial attention ``[B, H*W]``: ``sum_c |f|^p`` per location, L2-normalised per image.

    The sum is accumulated and returned in at least float32, also for bfloat16 input
    (:func:`datadam.kernels.channel_power_sum`, chunked for channels-last activations).
    """
    return F.normalize(channel_power_sum(activation, power).flatten(1), p=2, dim=1)


def class_means(x: torch.Tensor, groups: int, reduce: Reduce | None = None) -> torch.Tensor:
    """``[groups * n, ...]`` (contiguous groups) -> per-group means ``[groups, ...]``, in
    at least float32.

    With ``reduce`` (an in-place sum over processes) each process holds a slice of every
    group and the means are over all slices.
    """
    grouped = x.view(groups, -1, *x.shape[1:])
    dtype = accumulation_dtype(x)
    if reduce is None:
        return grouped.mean(dim=1, dtype=dtype)
    total, count = reduce_sum_and_count(reduce, grouped.sum(dim=1, dtype=dtype), float(grouped.shape[1]))
    return total / count


def matching_targets(features: Features, groups: int, power: float,
                     attention: bool = True, reduce: Reduce | None = None) -> list[torch.Tensor]:
    """What gets matched, per class: the mean attention map of every block but the last
    (``[K, H_l * W_l]`` each, only if ``attention``) and the mean embedding ``[K, D]``."""
    targets = []
    if attention:
        targets = [class_means(spatial_attention(a, power), groups, reduce)
                   for a in features.activations[:-1]]
    return targets + [class_means(features.embedding, groups, reduce)]


def real_matching_targets(net: nn.Module, real: torch.Tensor, classes: int, norm_groups: int,
                          power: float, attention: bool = True,
                          reduce: Reduce | None = None) -> list[torch.Tensor]:
    """:func:`matching_targets` of the real images ``[classes * n, C, H, W]`` (grouped by
    class) through ``net``, without autograd.

    A batch larger than one chunk (:func:`~datadam.distill.chunked.chunk_images`) of a
    ConvNet goes through in chunks, in memory that does not grow with it, to the same
    targets up to rounding; one chunk, or another model, in a single forward.
    """
    if needs_chunks(net, real, reduce):
        attention_map = (lambda a: spatial_attention(a, power)) if attention else None
        return chunked_class_means(net, real, classes, norm_groups, attention_map, reduce)
    return matching_targets(net.forward_features(real, groups=norm_groups, reduce=reduce),
                            classes, power, attention, reduce)


def loss_terms(real: list[torch.Tensor], syn: list[torch.Tensor], sam_weight: float,
               task_balance: float, scale: float) -> dict[str, torch.Tensor]:
    """The two parts of :func:`matching_loss`, each with its weight, so they add up to it:
    ``{"attention": scale * sam_weight * L_SAM, "last_layer": scale * task_balance * L_last}``
    (0-dim tensors; ``attention`` is zero when nothing but the embedding is matched).

    ``real``/``syn`` come from :func:`matching_targets`; the last entry is the embedding.
    Each L is a squared L2 distance summed over classes (and blocks).
    """
    last = (real[-1] - syn[-1]).pow(2).sum()
    sam = sum(((r - s).pow(2).sum() for r, s in zip(real[:-1], syn[:-1])),
              start=torch.zeros((), device=last.device))
    return {"attention": scale * sam_weight * sam, "last_layer": scale * task_balance * last}


def matching_loss(real: list[torch.Tensor], syn: list[torch.Tensor], sam_weight: float,
                  task_balance: float, scale: float) -> torch.Tensor:
    """``scale * (sam_weight * L_SAM + task_balance * L_last)``: the sum of :func:`loss_terms`."""
    terms = loss_terms(real, syn, sam_weight, task_balance, scale)
    return terms["attention"] + terms["last_layer"]
