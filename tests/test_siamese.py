"""SiameseBatches: real and synthetic images of a class get the same augmentation draw,
and real class c is matched against synthetic class c.

The images are made so that the answer can be read off them: every image of class k is
the same pattern P_k (different for every class), so a class's real images and its
synthetic ones, given the same draw, must come out identical; and with no augmentation,
two pixels of each image say its class and which image of the class it is.
"""

from __future__ import annotations

import pytest
import torch

from datadam.data.base import ImageDataset
from datadam.distill.distributed import Shard
from datadam.distill.matching import SiameseBatches

CLASSES, PER_CLASS, SIZE = 3, 6, 12
MEAN, STD = (0.3, 0.4, 0.5), (0.2, 0.25, 0.3)


def _patterns() -> torch.Tensor:
    """One uint8 pattern per class ``[K, 3, S, S]``, with structure that every family
    (colour, crop, cutout, flip, scale, rotate) changes."""
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (CLASSES, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)


def _interleaved_labels() -> torch.Tensor:
    # classes interleaved in the split (0, 1, 2, 0, 1, 2, ...), so that grouping by class is work
    return torch.arange(CLASSES).repeat(PER_CLASS)


def _dataset(images: torch.Tensor, labels: torch.Tensor) -> ImageDataset:
    return ImageDataset(images, labels, [f"c{k}" for k in range(CLASSES)], MEAN, STD, "train", "toy")


def _batches(dataset: ImageDataset, augmentation: str, batch_real: int = 4, syn_per_class: int = 2,
             shard: Shard = Shard()) -> SiameseBatches:
    return SiameseBatches(dataset, batch_real, augmentation, syn_per_class, torch.device("cpu"),
                          torch.contiguous_format, shard)


def _normalised(images: torch.Tensor) -> torch.Tensor:
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (MEAN, STD))
    return (images.float() / 255 - mean) / std


@pytest.mark.parametrize("augmentation", ["natural", "digits", "color", "crop", "cutout", "flip",
                                          "scale", "rotate"])
def test_a_class_real_and_synthetic_images_get_the_same_draw(augmentation):
    patterns = _patterns()
    labels = _interleaved_labels()
    batches = _batches(_dataset(patterns[labels], labels), augmentation)
    # the synthetic images are the real ones: class k's are P_k, two of them, grouped by class
    syn = _normalised(patterns).repeat_interleave(2, dim=0).requires_grad_(True)
    changed = 0
    for seed in range(12):
        real, syn_out = batches.draw(syn, torch.Generator().manual_seed(seed))
        assert real.shape == (CLASSES * 4, 3, SIZE, SIZE) and syn_out.shape == (CLASSES * 2, 3, SIZE, SIZE)
        for k in range(CLASSES):
            for r in real[4 * k:4 * (k + 1)]:
                for s in syn_out[2 * k:2 * (k + 1)]:
                    torch.testing.assert_close(r, s.detach(), rtol=1e-5, atol=1e-5)
        changed += not torch.allclose(syn_out.detach(), syn.detach())
    # the draws did augment (or the comparison above would prove nothing)
    assert changed >= 6, changed
    # and the synthetic images keep their graph: the gradient reaches them
    syn_out.sum().backward()
    assert syn.grad is not None and syn.grad.abs().sum() > 0


def test_each_class_gets_its_own_draw():
    """One draw per class, not one for the whole batch: P_0 in every class's place, and
    the classes' outputs differ."""
    patterns = _patterns()[:1].expand(CLASSES, -1, -1, -1)
    labels = _interleaved_labels()
    batches = _batches(_dataset(patterns[labels].contiguous(), labels), "natural")
    syn = _normalised(patterns).repeat_interleave(2, dim=0)
    differ = 0
    for seed in range(8):
        real, syn_out = batches.draw(syn, torch.Generator().manual_seed(seed))
        differ += not torch.allclose(real[0], real[4], atol=1e-4)
        torch.testing.assert_close(real[::4], syn_out[::2], rtol=1e-5, atol=1e-5)
    assert differ >= 6


def _coded_dataset() -> ImageDataset:
    """Pixel (0, 0) of every image holds 10 * (its class + 1), pixel (0, 1) its number
    within the class; the classes interleaved in the split."""
    labels = _interleaved_labels()
    images = torch.zeros(len(labels), 3, SIZE, SIZE, dtype=torch.uint8)
    for i, label in enumerate(labels.tolist()):
        images[i, :, 0, 0] = 10 * (label + 1)
        images[i, :, 0, 1] = i // CLASSES
    return _dataset(images, labels)


def _decode(real: torch.Tensor) -> list[tuple[int, int]]:
    """(class, number within the class) of each normalised image, from its coded pixels."""
    pixels = torch.round((real[:, 0, 0, :2] * STD[0] + MEAN[0]) * 255).long()
    return [(int(p[0]) // 10 - 1, int(p[1])) for p in pixels]


def test_real_class_c_is_drawn_in_class_cs_place():
    batches = _batches(_coded_dataset(), "none", batch_real=4)
    syn = torch.zeros(CLASSES * 2, 3, SIZE, SIZE)
    seen = set()
    for seed in range(10):
        real, _ = batches.draw(syn, torch.Generator().manual_seed(seed))
        codes = _decode(real)
        for k in range(CLASSES):
            block = codes[4 * k:4 * (k + 1)]
            assert [c for c, _ in block] == [k] * 4, codes
            assert len({n for _, n in block}) == 4  # four different images of the class
            seen.update(block)
    assert len(seen) == CLASSES * PER_CLASS  # the draws vary: every image comes up


def test_the_batch_is_capped_by_the_smallest_class():
    batches = _batches(_coded_dataset(), "none", batch_real=64)
    real, _ = batches.draw(torch.zeros(CLASSES * 2, 3, SIZE, SIZE), torch.Generator().manual_seed(0))
    assert batches.per_class == PER_CLASS and real.shape[0] == CLASSES * PER_CLASS
    assert [c for c, _ in _decode(real)] == [k for k in range(CLASSES) for _ in range(PER_CLASS)]


def test_two_processes_share_every_class_draw_between_them():
    dataset = _coded_dataset()
    whole, _ = _batches(dataset, "none").draw(torch.zeros(6, 3, SIZE, SIZE), torch.Generator().manual_seed(3))
    parts = [_batches(dataset, "none", shard=Shard(rank, 2)).draw(
        torch.zeros(6, 3, SIZE, SIZE), torch.Generator().manual_seed(3))[0] for rank in range(2)]
    assert [p.shape[0] for p in parts] == [CLASSES * 2, CLASSES * 2]
    for k in range(CLASSES):
        mine = _decode(whole[4 * k:4 * (k + 1)])
        shared = _decode(parts[0][2 * k:2 * (k + 1)]) + _decode(parts[1][2 * k:2 * (k + 1)])
        assert sorted(shared) == sorted(mine)
