"""Multi-formation (IDC, Kim et al., ICML 2022): one stored image holds ``factor x factor``
smaller images.

A stored image ``[C, H, W]`` is cut into ``factor**2`` tiles of ``H/factor x W/factor``,
and each tile, upsampled back to ``H x W``, is one training image. The pixel budget of
``ipc`` stored images then buys ``ipc * factor**2`` training images per class, at a
lower resolution: on digits, four 14 x 14 prototypes per class carry more than one
28 x 28 image. With ``factor = 1`` both functions are the identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F


def describe_ipc(images_per_class: int, config: Mapping[str, Any] | None = None) -> str:
    """``"IPC 10"``, or for a multi-formation set of ``images_per_class`` training images
    per class (``config``: its distillation settings, as the set's metadata records them)
    ``"IPC 10 x factor 2 = 40 per class"``: the words every report uses for a set's size
    (its ``ipc``, the images stored per class, is ``images_per_class / factor**2``)."""
    factor = int((config or {}).get("factor", 1))
    if factor == 1:
        return f"IPC {images_per_class}"
    return f"IPC {images_per_class // (factor * factor)} x factor {factor} = {images_per_class} per class"


def decode(stored: torch.Tensor, factor: int) -> torch.Tensor:
    """``[N, C, H, W]`` stored images -> ``[N * factor**2, C, H, W]`` training images.

    The tiles of stored image ``i`` are rows ``i * factor**2`` to ``(i + 1) * factor**2 - 1``
    (row-major over the tile grid), so class-ordered stored images decode to
    class-ordered training images. Differentiable (bilinear upsampling).
    """
    if factor == 1:
        return stored
    n, c, h, w = stored.shape
    th, tw = h // factor, w // factor
    tiles = (stored.reshape(n, c, factor, th, factor, tw)
             .permute(0, 2, 4, 1, 3, 5)  # n, tile row, tile column, c, th, tw
             .reshape(n * factor * factor, c, th, tw))
    return F.interpolate(tiles, size=(h, w), mode="bilinear", align_corners=False)


def decode_snapshots(snapshots: torch.Tensor, factor: int) -> torch.Tensor:
    """``[S, N, C, H, W]`` stored images at S iterations -> ``[S, N * factor**2, C, H, W]``."""
    if factor == 1:
        return snapshots
    return torch.stack([decode(s, factor) for s in snapshots])


def encode(images: torch.Tensor, factor: int) -> torch.Tensor:
    """``[N * factor**2, C, H, W]`` full-size images -> ``[N, C, H, W]`` stored images: each
    group of ``factor**2`` consecutive images, downsampled by ``factor`` (area average),
    tiled row-major into one. The real-image initialisation of a multi-formation run."""
    if factor == 1:
        return images
    m, c, h, w = images.shape
    if m % (factor * factor):
        raise ValueError(f"{m} images do not group into tiles of {factor * factor}")
    n, th, tw = m // (factor * factor), h // factor, w // factor
    small = F.adaptive_avg_pool2d(images, (th, tw))
    return (small.reshape(n, factor, factor, c, th, tw)
            .permute(0, 3, 1, 4, 2, 5)  # n, c, tile row, th, tile column, tw
            .reshape(n, c, h, w))


__all__ = ["decode", "decode_snapshots", "encode"]
