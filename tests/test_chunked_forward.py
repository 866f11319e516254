"""The real images' forward in chunks: the same class means as one forward, in pieces
no larger than the chunk."""

from __future__ import annotations

import pytest
import torch
from helpers import fast_distill
from test_distributed import TwoRanks

import datadam
from datadam import models
from datadam.distill import chunked, loss
from datadam.distill.matching import matching_targets, real_matching_targets

CLASSES, PER_CLASS, SIZE = 3, 7, 16  # 21 real images: no chunk of 4 divides them


def network(depth: int = 3, norm: str = "batchnorm", **options) -> torch.nn.Module:
    net = models.create(f"convnet{depth}", 1, CLASSES, (SIZE, SIZE), seed=1, net_norm=norm,
                        net_width=8, **options)
    return net.train().requires_grad_(False).to(memory_format=torch.channels_last)


def real_images(layout: torch.memory_format = torch.channels_last) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(CLASSES * PER_CLASS, 1, SIZE, SIZE, generator=g).contiguous(memory_format=layout)


def chunks_of(monkeypatch, net: torch.nn.Module, images: int) -> None:
    """Make the chunk ``images`` real images for ``net``."""
    per_image = chunked.largest_activation(net, (1, SIZE, SIZE))
    monkeypatch.setattr(chunked, "REAL_CHUNK_ELEMENTS", images * per_image)


def one_forward(net, real, groups: int, attention: bool = True) -> list[torch.Tensor]:
    with torch.no_grad():
        return matching_targets(net.forward_features(real.clone(), groups=groups), CLASSES, 4.0, attention)


def assert_same_targets(got: list[torch.Tensor], expected: list[torch.Tensor]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype and g.shape == e.shape
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("norm", ["batchnorm", "instancenorm", "none"])
@pytest.mark.parametrize("groups", [1, CLASSES], ids=["bn_all", "bn_class"])
@pytest.mark.parametrize("depth", [3, 4])
def test_chunked_targets_equal_one_forward(monkeypatch, norm, groups, depth):
    net = network(depth, norm)
    real = real_images()
    expected = one_forward(net, real, groups)
    chunks_of(monkeypatch, net, 4)
    assert chunked.needs_chunks(net, real)
    with torch.no_grad():
        got = real_matching_targets(net, real.clone(), CLASSES, groups, 4.0)
    assert_same_targets(got, expected)


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_chunked_targets_in_either_layout_and_without_attention(monkeypatch, layout):
    net = network().to(memory_format=layout)
    real = real_images(layout)
    expected = one_forward(net, real, 1, attention=False)
    chunks_of(monkeypatch, net, 5)
    with torch.no_grad():
        got = real_matching_targets(net, real.clone(), CLASSES, 1, 4.0, attention=False)
    assert len(got) == 1  # the embedding only, as DM matches
    assert_same_targets(got, expected)


def test_chunked_targets_under_bfloat16_autocast(monkeypatch):
    net = network()
    real = real_images()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = one_forward(net, real, CLASSES)
        chunks_of(monkeypatch, net, 4)
        with torch.no_grad():
            got = real_matching_targets(net, real.clone(), CLASSES, CLASSES, 4.0)
    for g, e in zip(got, expected):
        assert g.dtype == torch.float32
        # the statistics are summed in another order, and the activations are bfloat16
        torch.testing.assert_close(g, e, rtol=1e-2, atol=1e-3)


def test_the_network_never_sees_more_than_a_chunk(monkeypatch):
    net = network()
    seen: list[int] = []
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda m, args, out: seen.append(out.shape[0]))
    chunks_of(monkeypatch, net, 4)
    with torch.no_grad():
        real_matching_targets(net, real_images(), CLASSES, 1, 4.0)
    assert max(seen) == 4
    # 3 BatchNorm layers, each one pass after the blocks before it, then the last pass
    assert len(seen) == (1 + 2 + 3 + 3) * 6  # 21 images in 6 chunks


def test_a_batch_of_one_chunk_takes_the_one_forward_bit_for_bit():
    net = network()
    real = real_images()
    assert not chunked.needs_chunks(net, real)  # the real chunk is far larger
    with torch.no_grad():
        got = real_matching_targets(net, real.clone(), CLASSES, 1, 4.0)
    for g, e in zip(got, one_forward(net, real, 1)):
        assert torch.equal(g, e)


def test_other_models_are_never_chunked(monkeypatch):
    monkeypatch.setattr(chunked, "REAL_CHUNK_ELEMENTS", 1)
    net = models.create("alexnet", 1, CLASSES, (SIZE, SIZE))
    assert chunked.chunk_images(net, (1, SIZE, SIZE)) is None
    assert not chunked.needs_chunks(net, real_images())


def test_chunked_targets_over_ranks_equal_the_whole_batch(monkeypatch):
    net = network()
    real = real_images()
    expected = one_forward(net, real, CLASSES)
    # rank r holds images r, r + 2, ... of every class: 12 and 9 images. Only rank 0's are
    # more than a chunk of 10, yet both must chunk, or their collectives would not pair up.
    rows = [torch.cat([torch.arange(k * PER_CLASS, (k + 1) * PER_CLASS)[r::2] for k in range(CLASSES)])
            for r in (0, 1)]
    chunks_of(monkeypatch, net, 10)
    parts = TwoRanks().run(lambda r, reduce: real_matching_targets(
        net, real[rows[r]].clone(), CLASSES, CLASSES, 4.0, reduce=reduce))
    assert_same_targets(parts[0], expected)
    assert all(torch.equal(a, b) for a, b in zip(*parts))


def test_a_distillation_in_chunks_learns_the_same_images(tiny, monkeypatch):
    options = fast_distill(model="convnet2,convnet3", bn_statistics="class", iterations=2,
                           model_options={"net_width": 8},
                           model_choices={"net_norm": ["batchnorm", "instancenorm"]})
    whole = datadam.distill(tiny, ipc=1, **options)
    monkeypatch.setattr(chunked, "REAL_CHUNK_ELEMENTS", 7 * 8 * 28 * 28)  # 7 of the 40 images
    calls = []
    monkeypatch.setattr(loss, "chunked_class_means", _counting(chunked.chunked_class_means, calls))
    in_chunks = datadam.distill(tiny, ipc=1, **options)
    assert calls, "the chunked forward was not used"
    torch.testing.assert_close(in_chunks.images, whole.images, rtol=1e-4, atol=1e-4)


def _counting(function, calls: list):
    def wrapper(*args, **kwargs):
        calls.append(1)
        return function(*args, **kwargs)
    return wrapper
