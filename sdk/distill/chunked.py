"""The real images' class means through a ConvNet in chunks, in memory bounded by the chunk.

DataDAM and DM take from the real images nothing but per-class means (of the inner
blocks' attention maps and of the embedding); inside the network, training-mode
BatchNorm normalises with the moments of the whole batch (or of each class). Both are
sums, so the batch can go through in chunks: block by block, one pass over the chunks
accumulates a BatchNorm layer's moments, recomputing the chunk from its input images
through the blocks whose moments are already known, and a last pass accumulates the
class sums. Nothing larger than a chunk's activations is ever held, whatever the batch.

Blocks without batch statistics (instance, group or layer norm, none, or BatchNorm in
eval mode) normalise each image on its own and need no pass of their own, so such a
network takes a single pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

from datadam.errors import ConfigError
from datadam.kernels import CHUNK_ELEMENTS, Reduce, accumulation_dtype, batch_norm_affine, normalize
from datadam.models.convnet import ConvNet

# At most this many elements in the largest activation of one chunk of real images
# (the first block's: 4 GiB in float32). Large enough that the published batch (64 per
# class) of every image size datadam ships goes through in one piece and keeps the
# one-shot forward, its speed and its exact numbers: MHIST at 224 px, the largest,
# needs 2 x 64 x 128 x 224 x 224 = 0.82 G. A larger batch then holds this much at a
# time, however large it is, at the price of recomputing the earlier blocks once per
# BatchNorm layer. (A bound on memory, unlike datadam.kernels.CHUNK_ELEMENTS, the size of
# the kernels' temporaries.)
REAL_CHUNK_ELEMENTS = 1 << 30

AttentionMap = Callable[[torch.Tensor], torch.Tensor]


def chunk_images(net: nn.Module, image_shape: torch.Size | tuple[int, ...]) -> int | None:
    """Real images per chunk for ``net`` on ``[C, H, W]`` images (at least 1), or None if
    ``net`` cannot be forwarded in chunks (any model but a :class:`ConvNet`)."""
    if not isinstance(net, ConvNet):
        return None
    return images_per_chunk(largest_activation(net, image_shape))


def images_per_chunk(elements_per_image: int) -> int:
    """Real images per chunk when each image's largest activation has this many elements."""
    return max(1, REAL_CHUNK_ELEMENTS // elements_per_image)


def largest_activation(net: ConvNet, image_shape: torch.Size | tuple[int, ...]) -> int:
    """Elements per image of ``net``'s largest activation, its first convolution's output
    (every later block has as many channels and at most as many pixels)."""
    conv = net.blocks[0][0]
    h, w = ((size + 2 * pad - dil * (k - 1) - 1) // stride + 1 for size, pad, dil, k, stride
            in zip(image_shape[-2:], conv.padding, conv.dilation, conv.kernel_size, conv.stride))
    return conv.out_channels * h * w


def needs_chunks(net: nn.Module, real: torch.Tensor, reduce: Reduce | None = None) -> bool:
    """Whether ``real`` ``[B, C, H, W]`` is more than one chunk for ``net``.

    With ``reduce`` every process must take the same path (their collectives differ), so
    all of them chunk if any has to: one small all-reduce.
    """
    step = chunk_images(net, real.shape[1:])
    over = step is not None and real.shape[0] > step
    if reduce is None:
        return over
    return bool(reduce(torch.tensor([float(over)], device=real.device)).item() > 0)


@torch.no_grad()
def chunked_class_means(net: ConvNet, real: torch.Tensor, classes: int, norm_groups: int = 1,
                        attention_map: AttentionMap | None = None, reduce: Reduce | None = None,
                        step: int | None = None) -> list[torch.Tensor]:
    """Per-class means of ``net``'s features of ``real``, forwarded ``step`` images at a time.

    What :func:`~datadam.distill.loss.matching_targets` returns for
    ``net.forward_features(real, groups=norm_groups, reduce=reduce)``, up to rounding:
    ``attention_map`` of every block but the last (``[B, ...] -> [B, M_l]``, per image)
    as class means ``[classes, M_l]`` (none without it), then the mean embedding
    ``[classes, D]``; all in at least float32.

    Args:
        net: a ConvNet (in training mode, its BatchNorm layers use batch statistics).
        real: ``[classes * n, C, H, W]``, grouped by class.
        norm_groups: 1 (BatchNorm over the whole batch) or ``classes`` (per class).
        reduce: an in-place sum over processes; each holds a slice of every class.
        step: images per chunk (None: :func:`chunk_images`).
    """
    rows = real.shape[0]
    if rows % classes or rows % norm_groups:
        raise ConfigError(f"batch of {rows} does not split into {classes} classes "
                          f"and {norm_groups} equal groups")
    step = step or chunk_images(net, real.shape[1:])
    affines: list[tuple[torch.Tensor, torch.Tensor] | None] = []
    for level in range(len(net.blocks)):
        affines.append(_batch_affine(net, real, level, affines, norm_groups, step, reduce)
                       if _has_batch_statistics(net, level) else None)
    depth = len(net.blocks)
    sums = _ClassSums(classes, rows // classes)
    for start, x in _chunks(real, step):
        for level in range(depth):
            activation, x = _block(net, level, x, affines[level], start, rows // norm_groups)
            if attention_map is not None and level < depth - 1:
                sums.add(level, attention_map(activation), start)
            del activation  # not held through the next block: the chunk's peak is one block's
        sums.add(depth - 1, x.flatten(1), start)
    return sums.means(reduce)


def _has_batch_statistics(net: ConvNet, level: int) -> bool:
    return net.training and isinstance(net.blocks[level][1], nn.BatchNorm2d)


def _chunks(real: torch.Tensor, step: int) -> Iterator[tuple[int, torch.Tensor]]:
    for start in range(0, real.shape[0], step):
        yield start, real[start:start + step]


def _segments(start: int, stop: int, size: int) -> Iterator[tuple[int, int, int]]:
    """``(group, lo, hi)``: rows ``start:stop`` of a batch of contiguous groups of ``size``
    rows, cut where the groups change; ``lo, hi`` count from ``start``."""
    at = start
    while at < stop:
        group = at // size
        end = min(stop, (group + 1) * size)
        yield group, at - start, end - start
        at = end


def _block(net: ConvNet, level: int, x: torch.Tensor, affine: tuple[torch.Tensor, torch.Tensor] | None,
           start: int, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Block ``level`` on the chunk ``x`` whose first row is row ``start`` of the batch:
    ``(activation, pooled)``, as :meth:`ConvNet.forward_features` computes them without
    autograd, with the batch's BatchNorm ``affine`` (``scale, shift`` ``[G, C]``)."""
    conv, norm, act = net.blocks[level]
    x = conv(x)
    if affine is None:
        x = normalize(norm, x)
    else:
        scale, shift = (t.to(x.dtype)[:, :, None, None] for t in affine)
        for group, lo, hi in _segments(start, start + x.shape[0], group_size):
            part = x[lo:hi]
            torch.addcmul(shift[group], part, scale[group], out=part)
    x = x.relu_() if isinstance(act, nn.ReLU) else act(x)
    return x, net.pools[level](x)


def _batch_affine(net: ConvNet, real: torch.Tensor, level: int, affines: list, norm_groups: int,
                  step: int, reduce: Reduce | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``scale, shift`` ``[G, C]`` of block ``level``'s BatchNorm over the whole batch:
    one pass over the chunks through the blocks before it, whose ``affines`` are known."""
    group_size = real.shape[0] // norm_groups
    moments = _Moments(norm_groups)
    for start, x in _chunks(real, step):
        for done in range(level):
            x = _block(net, done, x, affines[done], start, group_size)[1]
        x = net.blocks[level][0](x)
        for group, lo, hi in _segments(start, start + x.shape[0], group_size):
            moments.add(group, x[lo:hi])
    mean, var = moments.result(reduce)
    return batch_norm_affine(net.blocks[level][1], mean, var)


class _Moments:
    """Per group and channel: the count, mean and centred sum of squares of activations
    ``[n, C, H, W]`` added piece by piece, merged with Chan et al.'s pairwise update: as
    accurate as the two-pass formula of the whole batch, in one pass."""

    def __init__(self, groups: int) -> None:
        self.groups = groups
        self.count = [0.0] * groups
        self.mean: torch.Tensor | None = None  # [G, C], created at the first add
        self.m2: torch.Tensor | None = None

    def add(self, group: int, x: torch.Tensor) -> None:
        if self.mean is None:
            shape = (self.groups, x.shape[1])
            self.mean = torch.zeros(shape, dtype=accumulation_dtype(x), device=x.device)
            self.m2 = torch.zeros_like(self.mean)
        # slices small enough that the float32 temporaries stay small beside the chunk
        per_image = x[0].numel()
        size = max(1, CHUNK_ELEMENTS // per_image)
        for lo in range(0, x.shape[0], size):
            self._merge(group, x[lo:lo + size])

    def _merge(self, group: int, x: torch.Tensor) -> None:
        n_b = float(x.shape[0] * x.shape[2] * x.shape[3])
        mean_b = x.sum(dim=(0, 2, 3), dtype=self.mean.dtype) / n_b
        m2_b = (x.to(self.mean.dtype) - mean_b[None, :, None, None]).square_().sum(dim=(0, 2, 3))
        n_a = self.count[group]
        n = n_a + n_b
        delta = mean_b - self.mean[group]
        self.mean[group] += delta * (n_b / n)
        self.m2[group] += m2_b + delta.square() * (n_a * n_b / n)
        self.count[group] = n

    def result(self, reduce: Reduce | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``mean, var`` ``[G, C]`` (biased variance, as BatchNorm's), over all processes
        with ``reduce``."""
        count = torch.tensor(self.count, dtype=self.mean.dtype, device=self.mean.device)[:, None]
        if reduce is None:
            return self.mean, self.m2 / count
        packed = reduce(torch.cat([(self.mean * count).flatten(), count.flatten()]))
        total_count = packed[-self.groups:, None]
        mean = packed[:-self.groups].view_as(self.mean) / total_count
        m2 = reduce(self.m2 + count * (self.mean - mean).square())
        return mean, m2 / total_count


class _ClassSums:
    """Running per-class sums of per-image features ``[n, M]`` of several kinds (one per
    block), in at least float32, of a batch of contiguous classes of ``per_class`` rows."""

    def __init__(self, classes: int, per_class: int) -> None:
        self.classes, self.per_class = classes, per_class
        self.sums: dict[int, torch.Tensor] = {}

    def add(self, kind: int, features: torch.Tensor, start: int) -> None:
        if kind not in self.sums:
            self.sums[kind] = torch.zeros(self.classes, features.shape[1],
                                          dtype=accumulation_dtype(features), device=features.device)
        total = self.sums[kind]
        for k, lo, hi in _segments(start, start + features.shape[0], self.per_class):
            total[k] += features[lo:hi].sum(dim=0, dtype=total.dtype)

    def means(self, reduce: Reduce | None = None) -> list[torch.Tensor]:
        """The class means, by kind in order; with ``reduce`` over all processes' rows,
        in one collective."""
        sums = [self.sums[kind] for kind in sorted(self.sums)]
        if reduce is None:
            return [s / self.per_class for s in sums]
        packed = reduce(torch.cat([*(s.flatten() for s in sums), sums[0].new_tensor([self.per_class])]))
        count, at, means = packed[-1], 0, []
        for s in sums:
            means.append(packed[at:at + s.numel()].view_as(s) / count)
            at += s.numel()
        return means


__all__ = ["REAL_CHUNK_ELEMENTS", "chunk_images", "chunked_class_means", "images_per_chunk",
           "largest_activation", "needs_chunks"]
