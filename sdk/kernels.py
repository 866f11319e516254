"""Fast paths of the distiller's hot computations, each beside the plain reference it equals.

* :func:`grouped_batch_norm`: training-mode BatchNorm with statistics per contiguous
  group of the batch, optionally summed over processes; reference
  :func:`grouped_batch_norm_reference` (the native kernel per group).
* :func:`channel_power_sum`: ``sum_c |f|^p`` per location, the attention maps' core, with
  a chunked forward and backward for channels-last tensors; reference
  :func:`channel_power_sum_reference`.
* :func:`normalize`: a GroupNorm or LayerNorm of a channels-last tensor through a
  contiguous copy; reference: the module itself.

The fast paths exist for the CPU, where the plain expressions of a channels-last
activation (the largest tensor of an iteration) allocate, and page-fault, temporaries
as large as the activation, or hit layout-generic kernels; they compute the same values
up to rounding, and tests/test_kernels.py holds them to it, gradients included.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from datadam.errors import ConfigError

# Elements per chunk of the chunked paths: float32 temporaries of 8 MB, small enough that
# the allocator serves them again from its reused heap instead of mapping (and faulting
# in) fresh pages at every call, large enough that the per-chunk overhead of launching a
# few operations is small against the arithmetic.
CHUNK_ELEMENTS = 1 << 21

Reduce = Callable[[torch.Tensor], torch.Tensor]
"""An in-place sum over processes (:meth:`datadam.distill.distributed.Shard.all_sum`)."""


def accumulation_dtype(x: torch.Tensor) -> torch.dtype:
    """float32 for half-precision tensors (their sums lose digits fast), else the tensor's own."""
    return torch.promote_types(x.dtype, torch.float32)


def reduce_sum_and_count(reduce: Reduce, total: torch.Tensor, count: float) -> tuple[torch.Tensor, float]:
    """Sum a partial ``total`` and the ``count`` of elements behind it over processes in
    one collective (latency, not bandwidth, is what each all-reduce costs)."""
    packed = reduce(torch.cat([total.flatten(), total.new_tensor([count])]))
    return packed[:-1].view_as(total), float(packed[-1])


# -- grouped batch norm -------------------------------------------------------------------------


def batch_norm_affine(norm: nn.BatchNorm2d, mean: torch.Tensor,
                      var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``scale, shift`` ``[G, C]`` with ``norm(x) = x * scale + shift`` for the statistics
    ``mean, var`` ``[G, C]`` (biased variance)."""
    scale = torch.rsqrt(var + norm.eps)
    if norm.affine:
        scale = scale * norm.weight
        return scale, norm.bias - mean * scale
    return scale, -mean * scale


def grouped_batch_norm_reference(norm: nn.BatchNorm2d, x: torch.Tensor, groups: int) -> torch.Tensor:
    """Training-mode BatchNorm of ``x`` ``[G * n, C, H, W]`` with statistics per contiguous
    group, through the native kernels (fused forward and backward) group by group; one
    group needs no concatenated copy. Running statistics are left untouched."""
    if groups == 1:
        return F.batch_norm(x, None, None, norm.weight, norm.bias, training=True, eps=norm.eps)
    return torch.cat([F.batch_norm(part, None, None, norm.weight, norm.bias, training=True, eps=norm.eps)
                      for part in x.chunk(groups)])


def grouped_batch_norm(norm: nn.BatchNorm2d, x: torch.Tensor, groups: int,
                       reduce: Reduce | None = None) -> torch.Tensor:
    """Training-mode batch norm with separate statistics per contiguous group of the batch.

    Running statistics are left untouched: this serves networks that are only probed.
    Without autograd a channels-last ``x`` is normalised in place
    (:func:`_batch_norm_channels_last`); with autograd, the reference.

    Args:
        norm: the layer (its weight, bias and eps).
        x: ``[G * n, C, H, W]``.
        groups: G.
        reduce: an in-place sum over processes, without autograd only: the statistics are
            then those of the whole batch when each process holds a slice of every group.

    Returns:
        ``[G * n, C, H, W]``, ``x`` itself when normalised in place.
    """
    no_grad = not torch.is_grad_enabled() or not (
        x.requires_grad or any(p.requires_grad for p in norm.parameters()))
    if reduce is not None and not no_grad:
        raise ConfigError("batch statistics are synchronised across processes only without autograd")
    if no_grad and x.is_contiguous(memory_format=torch.channels_last):
        return _batch_norm_channels_last(norm, x, groups, reduce)
    if reduce is not None:
        return _batch_norm_synchronised(norm, x, groups, reduce)
    return grouped_batch_norm_reference(norm, x, groups)


def _batch_norm_channels_last(norm: nn.BatchNorm2d, x: torch.Tensor, groups: int,
                              reduce: Reduce | None) -> torch.Tensor:
    """:func:`grouped_batch_norm` in place on a channels-last ``x``, its statistics from
    chunks of :data:`CHUNK_ELEMENTS` (the plain expression's temporaries are as large as
    ``x``), bfloat16 activations' in float32."""
    c = x.shape[1]
    rows = x.permute(0, 2, 3, 1).view(groups, -1, c)  # [G, m, C], a view
    count = float(rows.shape[1])
    dtype = accumulation_dtype(x)
    step = max(1, CHUNK_ELEMENTS // c)
    if dtype == x.dtype:
        total = rows.sum(dim=1)
    else:  # converted a chunk at a time, not as one float32 copy of the whole tensor
        total = torch.stack([sum(rows[g, start:start + step].sum(dim=0, dtype=dtype)
                                 for start in range(0, rows.shape[1], step))
                             for g in range(groups)])
    if reduce is not None:
        total, count = reduce_sum_and_count(reduce, total, count)
    mean = total / count
    var = torch.empty_like(mean)
    for g in range(groups):
        acc = torch.zeros(c, dtype=dtype, device=x.device)
        for start in range(0, rows.shape[1], step):
            acc += (rows[g, start:start + step] - mean[g]).square_().sum(dim=0)
        var[g] = acc
    var = (var if reduce is None else reduce(var)) / count
    scale, shift = batch_norm_affine(norm, mean, var)
    # in the activations' own dtype: mixing dtypes would copy the whole tensor twice
    torch.addcmul(shift.unsqueeze(1).to(x.dtype), rows, scale.unsqueeze(1).to(x.dtype), out=rows)
    return x


def _batch_norm_synchronised(norm: nn.BatchNorm2d, x: torch.Tensor, groups: int,
                             reduce: Reduce) -> torch.Tensor:
    """:func:`grouped_batch_norm` of a channels-first ``x`` (a GPU's layout) with the
    statistics summed over processes: the plain expression, without autograd."""
    n, c, h, w = x.shape
    parts = x.reshape(groups, -1, c, h, w)
    dtype = accumulation_dtype(x)
    total, count = reduce_sum_and_count(reduce, parts.sum(dim=(1, 3, 4), dtype=dtype),
                                        float(parts.shape[1] * h * w))
    mean = total / count
    var = reduce((parts - mean[:, None, :, None, None]).square().sum(dim=(1, 3, 4))) / count
    scale, shift = (t.to(x.dtype)[:, None, :, None, None] for t in batch_norm_affine(norm, mean, var))
    return (parts * scale + shift).view_as(x)


# -- group and layer norm --------------------------------------------------------------------------


def normalize(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``norm(x)``, in channels-last if ``x`` is. On a CPU, GroupNorm (instance and group
    norm) and LayerNorm of a channels-last tensor take a slow path, several times slower
    than on a contiguous copy (far more so in bfloat16); the copies there and back cost less."""
    if (isinstance(norm, (nn.GroupNorm, nn.LayerNorm)) and x.device.type == "cpu"
            and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)):
        return norm(x.contiguous()).contiguous(memory_format=torch.channels_last)
    return norm(x)


# -- channel power sum -----------------------------------------------------------------------------


def abs_power(x: torch.Tensor, power: float) -> torch.Tensor:
    """``|x|^p``; the common powers by multiplication, which is several times faster than
    ``pow`` with a float exponent (forward and backward alike)."""
    if power == 4:
        sq = x * x  # not x.square(): its backward goes through pow, about twice as slow
        return sq * sq
    if power == 2:
        return x * x
    if power == 1:
        return x.abs()
    return x.abs().pow(power)


def _abs_power_derivative(x: torch.Tensor, power: float) -> torch.Tensor:
    """``d|x|^p / dx = p |x|^(p-1) sign(x)``."""
    if power == 4:
        return (x * x).mul_(x).mul_(4.0)
    if power == 2:
        return x * 2.0
    if power == 1:
        return x.sign()
    return x.abs().pow_(power - 1).mul_(x.sign()).mul_(power)


def channel_power_sum_reference(activation: torch.Tensor, power: float) -> torch.Tensor:
    """``sum_c |f|^p`` ``[B, H, W]`` of ``[B, C, H, W]``, in at least float32: the plain
    expression, whose autograd backward is the reference of the chunked one."""
    return abs_power(activation, power).sum(dim=1, dtype=accumulation_dtype(activation))


def channel_power_sum(activation: torch.Tensor, power: float) -> torch.Tensor:
    """:func:`channel_power_sum_reference`; chunked for a channels-last ``activation``
    (:func:`chunked_channel_power_sum`, :class:`_ChannelPowerSum` under autograd)."""
    if not activation.is_contiguous(memory_format=torch.channels_last):
        return channel_power_sum_reference(activation, power)
    if torch.is_grad_enabled() and activation.requires_grad:
        return _ChannelPowerSum.apply(activation, power)
    return chunked_channel_power_sum(activation, power)


def chunked_channel_power_sum(activation: torch.Tensor, power: float,
                              chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """``sum_c |f|^p`` of a channels-last ``[B, C, H, W]`` in chunks of rows of channels
    (one row per image and location), without autograd."""
    b, c, h, w = activation.shape
    rows = activation.permute(0, 2, 3, 1).reshape(-1, c)  # a view for channels-last
    out = torch.empty(rows.shape[0], dtype=accumulation_dtype(activation), device=activation.device)
    step = max(1, chunk_elements // c)
    for start in range(0, rows.shape[0], step):
        torch.sum(abs_power(rows[start:start + step], power), dim=1, dtype=out.dtype,
                  out=out[start:start + step])
    return out.view(b, h, w)


class _ChannelPowerSum(torch.autograd.Function):
    """:func:`chunked_channel_power_sum` with a chunked backward over rows of channels.

    Autograd's backward of the plain expression broadcasts the incoming ``[B, H, W]``
    gradient over the channels of a channels-last tensor, a layout the CPU kernels
    handle slowly, many times the time of the forward.
    """

    @staticmethod
    def forward(ctx, activation: torch.Tensor, power: float) -> torch.Tensor:
        ctx.save_for_backward(activation)
        ctx.power = power
        return chunked_channel_power_sum(activation, power)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (activation,) = ctx.saved_tensors
        c = activation.shape[1]
        rows = activation.permute(0, 2, 3, 1).reshape(-1, c)  # views for channels-last
        out = torch.empty_like(activation, memory_format=torch.channels_last)
        out_rows = out.permute(0, 2, 3, 1).view(-1, c)
        grad_rows = grad.reshape(-1, 1).to(activation.dtype)
        step = max(1, CHUNK_ELEMENTS // c)
        for start in range(0, rows.shape[0], step):
            chunk = slice(start, start + step)
            torch.mul(_abs_power_derivative(rows[chunk], ctx.power), grad_rows[chunk], out=out_rows[chunk])
        return out, None


__all__ = ["CHUNK_ELEMENTS", "Reduce", "abs_power", "accumulation_dtype", "batch_norm_affine",
           "channel_power_sum", "channel_power_sum_reference", "chunked_channel_power_sum",
           "grouped_batch_norm", "grouped_batch_norm_reference", "normalize", "reduce_sum_and_count"]
