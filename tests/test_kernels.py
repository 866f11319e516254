"""Every fast path of datadam.kernels against its plain reference: values and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from datadam.errors import ConfigError
from datadam.kernels import (
    CHUNK_ELEMENTS,
    batch_norm_affine,
    channel_power_sum,
    channel_power_sum_reference,
    chunked_channel_power_sum,
    grouped_batch_norm,
    grouped_batch_norm_reference,
    normalize,
)


def _norm(channels: int, seed: int = 0, affine: bool = True) -> nn.BatchNorm2d:
    torch.manual_seed(seed)
    norm = nn.BatchNorm2d(channels, affine=affine)
    if affine:
        norm.weight.data.uniform_(0.5, 1.5)
        norm.bias.data.uniform_(-1, 1)
    return norm


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.clone().contiguous(memory_format=torch.channels_last)


# -- grouped batch norm -------------------------------------------------------------------------


def test_the_reference_normalises_each_group_by_its_own_moments():
    norm = _norm(3, affine=False)
    x = torch.randn(2 * 4, 3, 5, 5, dtype=torch.float64) * 3 + 2
    out = grouped_batch_norm_reference(norm, x, 2)
    zeros, ones = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    for part in out.chunk(2):
        torch.testing.assert_close(part.mean(dim=(0, 2, 3)), zeros)
        # eps in the denominator keeps the variance a little below 1
        torch.testing.assert_close(part.var(dim=(0, 2, 3), unbiased=False), ones, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("affine", [True, False])
def test_in_place_channels_last_batch_norm_equals_the_reference(groups, affine):
    norm = _norm(8, affine=affine)
    x = torch.randn(groups * 5, 8, 6, 7) * 2 + 0.5
    with torch.no_grad():
        expected = grouped_batch_norm_reference(norm, x.clone(), groups)
        fast_input = _channels_last(x)
        got = grouped_batch_norm(norm, fast_input, groups)
    assert got.data_ptr() == fast_input.data_ptr()  # in place
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_the_in_place_path_takes_its_statistics_in_chunks(monkeypatch):
    """Chunks of 1 and of 3 rows (one row: an image's channels at one location, 13 rows
    per group, so the last chunk is short) give the one-chunk result."""
    from datadam import kernels

    norm = _norm(4)
    x = torch.randn(2 * 13, 4, 1, 1, dtype=torch.float64)
    with torch.no_grad():
        expected = grouped_batch_norm_reference(norm.double(), x.clone(), 2)
        for chunk in (4, 12):
            monkeypatch.setattr(kernels, "CHUNK_ELEMENTS", chunk)
            got = grouped_batch_norm(norm, _channels_last(x), 2)
            torch.testing.assert_close(got, expected)


def test_bfloat16_activations_are_normalised_with_float32_statistics():
    norm = _norm(8)
    x = (torch.randn(2 * 6, 8, 5, 5) * 4 + 20).bfloat16()
    with torch.no_grad():
        expected = grouped_batch_norm_reference(norm, x.float(), 2)
        got = grouped_batch_norm(norm, _channels_last(x), 2)
    assert got.dtype == torch.bfloat16
    # the affine map itself runs in bfloat16 (spacing 1/8 around 20): that rounding, no more
    torch.testing.assert_close(got.float(), expected, rtol=0, atol=0.1)


def test_the_synchronised_channels_first_path_equals_the_reference():
    norm = _norm(4, seed=1)
    x = torch.randn(3 * 4, 4, 6, 6)
    with torch.no_grad():
        expected = grouped_batch_norm_reference(norm, x.clone(), 3)
        got = grouped_batch_norm(norm, x.clone(), 3, reduce=lambda t: t)  # one process
    assert got.is_contiguous()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_with_autograd_the_native_kernels_give_the_gradients():
    norm = _norm(4)
    x = torch.randn(2 * 5, 4, 3, 3, dtype=torch.float64)
    weights = torch.randn(2 * 5, 4, 3, 3, dtype=torch.float64)
    for layout in (torch.contiguous_format, torch.channels_last):
        a = x.clone().contiguous(memory_format=layout).requires_grad_(True)
        (grouped_batch_norm(norm.double(), a, 2) * weights).sum().backward()
        # the reference's gradient, each group by itself through the plain formula
        b = x.clone().requires_grad_(True)
        parts = b.view(2, 5, 4, 3, 3)
        mean = parts.mean(dim=(1, 3, 4), keepdim=True)
        var = parts.var(dim=(1, 3, 4), unbiased=False, keepdim=True)
        plain = ((parts - mean) / torch.sqrt(var + norm.eps) * norm.weight.view(1, 1, 4, 1, 1)
                 + norm.bias.view(1, 1, 4, 1, 1)).view_as(b)
        (plain * weights).sum().backward()
        torch.testing.assert_close(a.grad, b.grad)


def test_statistics_across_processes_need_no_autograd():
    norm = _norm(4)
    x = torch.randn(4, 4, 3, 3, requires_grad=True)
    with pytest.raises(ConfigError, match="without autograd"):
        grouped_batch_norm(norm, x, 2, lambda t: t)


def test_the_affine_form_is_the_layer():
    norm = _norm(5).eval()
    norm.running_mean.uniform_(-1, 1)
    norm.running_var.uniform_(0.5, 2)
    x = torch.randn(3, 5, 4, 4)
    scale, shift = batch_norm_affine(norm, norm.running_mean[None], norm.running_var[None])
    with torch.no_grad():
        torch.testing.assert_close(x * scale[0, :, None, None] + shift[0, :, None, None], norm(x))


# -- group and layer norm ------------------------------------------------------------------------


@pytest.mark.parametrize("norm", [nn.GroupNorm(4, 8), nn.GroupNorm(8, 8), nn.LayerNorm([8, 5, 5]),
                                  nn.BatchNorm2d(8), nn.Identity()])
def test_normalize_in_channels_last_equals_the_module(norm):
    x = torch.randn(3, 8, 5, 5, dtype=torch.float64)
    norm = norm.double()
    a = x.clone().requires_grad_(True)
    b = _channels_last(x).requires_grad_(True)
    expected, got = norm(a), normalize(norm, b)
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, expected)
    weights = torch.randn_like(x)
    (expected * weights).sum().backward()
    (got * weights).sum().backward()
    torch.testing.assert_close(b.grad, a.grad)


# -- channel power sum ---------------------------------------------------------------------------


@pytest.mark.parametrize("power", [1.0, 2.0, 3.0, 4.0, 2.5])
def test_the_chunked_power_sum_equals_the_reference(power):
    x = torch.randn(4, 6, 5, 3, dtype=torch.float64)
    expected = channel_power_sum_reference(x, power)
    torch.testing.assert_close(expected, x.abs().pow(power).sum(dim=1))  # the definition
    for chunk in (6, 18, 6 * 60, CHUNK_ELEMENTS):  # 1, 3, all 60 rows of 6 channels
        torch.testing.assert_close(chunked_channel_power_sum(_channels_last(x), power, chunk), expected)
    with torch.no_grad():
        torch.testing.assert_close(channel_power_sum(_channels_last(x), power), expected)


@pytest.mark.parametrize("power", [1.0, 2.0, 3.0, 4.0, 2.5])
def test_the_chunked_power_sums_gradient_equals_the_references(power):
    x = torch.randn(3, 5, 4, 3, dtype=torch.float64)
    weights = torch.randn(3, 4, 3, dtype=torch.float64)
    plain = x.clone().requires_grad_(True)
    (channel_power_sum_reference(plain, power) * weights).sum().backward()
    fast = _channels_last(x).requires_grad_(True)
    (channel_power_sum(fast, power) * weights).sum().backward()
    torch.testing.assert_close(fast.grad, plain.grad)
    assert fast.grad.is_contiguous(memory_format=torch.channels_last)
    assert torch.autograd.gradcheck(lambda t: channel_power_sum(_channels_last(t), power),
                                    (x.clone().requires_grad_(True),))


def test_the_power_sum_of_bfloat16_is_float32():
    x = torch.randn(2, 8, 3, 3).bfloat16()
    expected = channel_power_sum_reference(x, 4.0)
    assert expected.dtype == torch.float32
    got = channel_power_sum(_channels_last(x), 4.0)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected)
