"""The method against references worked out by hand on tensors small enough to read.

Every expected value here is a literal or comes from the plain-Python loops below
(``_attention``, ``_mean``, ``_squared_distance``), never from the library's own helpers:
a test that recomputed the loss with :func:`spatial_attention` would pass whatever that
function did. What is checked, in the paper's words (DataDAM, ICCV 2023):

- spatial attention of one image: ``a = sum_c |f_c|^p`` per location, flattened and
  divided by its L2 norm (p = 1 and p = 4);
- the SAM term: the squared L2 distance between the mean attention map of class k's real
  images and that of its synthetic images, summed over classes and over every block but
  the last;
- the last-layer term: the squared L2 distance between the class means of the embedding,
  summed over classes;
- ``L = scale * (sam_weight * L_SAM + task_balance * L_last)`` with scale 100; DM is the
  last-layer term alone;
- the evaluation metrics: accuracy, balanced accuracy, per-class accuracy and AUC.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from datadam.distill.config import DistillConfig
from datadam.distill.matching import (
    DM,
    DataDAM,
    class_means,
    loss_terms,
    matching_loss,
    matching_targets,
    spatial_attention,
)
from datadam.evaluate.metrics import _metrics, binary_auc
from datadam.models.convnet import Features

# -- plain-Python references --------------------------------------------------------------


def _attention(image: list, p: float) -> list[float]:
    """``image`` [C][H][W] -> the L2-normalised ``sum_c |f|^p``, row-major over H x W."""
    channels, height, width = len(image), len(image[0]), len(image[0][0])
    summed = [sum(abs(image[c][i][j]) ** p for c in range(channels))
              for i in range(height) for j in range(width)]
    norm = math.sqrt(sum(v * v for v in summed))
    return [v / norm for v in summed]


def _mean(rows: list[list[float]]) -> list[float]:
    return [sum(column) / len(rows) for column in zip(*rows)]


def _squared_distance(a: list[float], b: list[float]) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b))


def _flatten(image: list) -> list[float]:
    return [v for channel in image for row in channel for v in row]


def _reference_terms(real: dict, syn: dict, classes: int, p: float) -> tuple[float, float]:
    """(L_SAM, L_last) by the paper's definition. ``real``/``syn``: {"blocks": [per block a
    list of images [C][H][W], grouped by class], "embedding": [per image a list]}; the
    last block is left out of the attention term."""
    sam = 0.0
    for block_real, block_syn in zip(real["blocks"][:-1], syn["blocks"][:-1]):
        n_real, n_syn = len(block_real) // classes, len(block_syn) // classes
        for k in range(classes):
            r = _mean([_attention(x, p) for x in block_real[k * n_real:(k + 1) * n_real]])
            s = _mean([_attention(x, p) for x in block_syn[k * n_syn:(k + 1) * n_syn]])
            sam += _squared_distance(r, s)
    last = 0.0
    n_real, n_syn = len(real["embedding"]) // classes, len(syn["embedding"]) // classes
    for k in range(classes):
        r = _mean(real["embedding"][k * n_real:(k + 1) * n_real])
        s = _mean(syn["embedding"][k * n_syn:(k + 1) * n_syn])
        last += _squared_distance(r, s)
    return sam, last


def _tensor(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# Two classes, two real and two synthetic images each, two attention blocks of other
# sizes (C=2, 2x2 and C=3, 1x2) and a last block, whose attention must not count. Signs
# are mixed so that |f| matters for odd p; the numbers differ from class to class and
# from block to block so that a sum, a mean or a missing block give other totals.
REAL = {
    "blocks": [
        [  # block 1: [4 images][C=2][2][2]
            [[[1, -2], [0, 3]], [[2, 0], [-1, 1]]],
            [[[0, 1], [2, -1]], [[1, 1], [0, 2]]],
            [[[3, 0], [1, 0]], [[-1, 2], [0, 0]]],
            [[[1, 1], [1, 1]], [[0, -3], [2, 0]]],
        ],
        [  # block 2: [4 images][C=3][1][2]
            [[[1, 0]], [[-1, 2]], [[0, 1]]],
            [[[2, 1]], [[0, 0]], [[1, -1]]],
            [[[0, 3]], [[1, 1]], [[-2, 0]]],
            [[[1, 1]], [[1, 0]], [[0, 2]]],
        ],
        [  # last block: [4 images][C=1][1][2] (its attention must not count)
            [[[5.0, 1.0]]], [[[-7.0, 2.0]]], [[[0.5, 3.0]]], [[[9.0, -9.0]]],
        ],
    ],
    "embedding": [[1.0, 2.0, -1.0], [3.0, 0.0, 1.0], [0.0, -2.0, 4.0], [2.0, 2.0, 2.0]],
}
SYN = {
    "blocks": [
        [
            [[[2, 0], [1, 1]], [[0, 1], [1, -2]]],
            [[[1, 1], [0, 0]], [[-1, 0], [3, 1]]],
            [[[0, 2], [2, 1]], [[1, 0], [0, -1]]],
            [[[1, -1], [0, 2]], [[2, 2], [1, 0]]],
        ],
        [
            [[[0, 1]], [[2, 0]], [[1, 1]]],
            [[[1, 2]], [[0, -1]], [[0, 0]]],
            [[[2, 0]], [[0, 1]], [[1, 3]]],
            [[[-1, 1]], [[2, 2]], [[0, 1]]],
        ],
        [[[[-3.0, 0.0]]], [[[4.0, 4.0]]], [[[1.0, 0.0]]], [[[0.25, 2.0]]]],
    ],
    "embedding": [[0.0, 1.0, 1.0], [1.0, 1.0, -2.0], [2.0, 0.0, 3.0], [-1.0, 1.0, 0.0]],
}


def _features(side: dict) -> Features:
    return Features([_tensor(block) for block in side["blocks"]], _tensor(side["embedding"]))


# -- spatial attention ------------------------------------------------------------------------


def test_attention_of_one_image_worked_out_by_hand():
    # channel sums of |f| at the four locations: 1+2, 0+0, 4+0, 0+0 -> (3, 0, 4, 0), norm 5
    image = _tensor([[[[1, 0], [-4, 0]], [[-2, 0], [0, 0]]]])
    assert spatial_attention(image, 1).tolist() == [[0.6, 0.0, 0.8, 0.0]]
    # p = 4: |f|^4 summed: 1+16, 0, 256, 0 -> divided by sqrt(17^2 + 256^2)
    norm = math.sqrt(17 ** 2 + 256 ** 2)
    assert spatial_attention(image, 4)[0].tolist() == pytest.approx([17 / norm, 0, 256 / norm, 0], rel=1e-12)


@pytest.mark.parametrize("p", [1, 4, 2, 3])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "channels_last_grad"])
def test_attention_matches_the_definition(p, layout):
    images = REAL["blocks"][0] + SYN["blocks"][0]
    x = _tensor(images)
    if layout != "contiguous":
        x = x.contiguous(memory_format=torch.channels_last)  # the CPU's layout: chunked kernels
    if layout == "channels_last_grad":
        x.requires_grad_(True)  # the hand-written backward's path
    got = spatial_attention(x, p)
    assert got.shape == (8, 4)
    expected = [_attention(image, p) for image in images]
    assert got.detach().tolist() == [pytest.approx(row, rel=1e-12) for row in expected]


def test_the_channels_last_sum_is_the_same_over_chunk_boundaries():
    """The CPU path sums ``|f|^p`` over channels in chunks of rows (one row per image and
    location: 8 x 2 x 2 = 32 here); chunks of 1, 3, 5 and 32 rows, the odd ones leaving a
    short last chunk, give the sums of the definition."""
    from datadam.kernels import chunked_channel_power_sum

    images = REAL["blocks"][0] + SYN["blocks"][0]
    x = _tensor(images).contiguous(memory_format=torch.channels_last)
    for p in (1, 4):
        expected = [[sum(abs(image[c][i][j]) ** p for c in range(2)) for i in range(2) for j in range(2)]
                    for image in images]
        for chunk_elements in (2, 6, 10, 64, 1 << 21):  # 1, 3, 5, 32 rows of 2 channels, all at once
            got = chunked_channel_power_sum(x, p, chunk_elements=chunk_elements)
            assert got.flatten(1).tolist() == [pytest.approx(row, rel=1e-12) for row in expected]


def test_attention_gradient_of_the_channels_last_path_is_the_plain_expressions():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 3, 2, generator=g, dtype=torch.float64)
    for p in (1, 4, 3):
        plain = x.clone().requires_grad_(True)
        fast = x.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
        weights = torch.randn(3, 6, generator=g, dtype=torch.float64)
        (spatial_attention(plain, p) * weights).sum().backward()
        (spatial_attention(fast, p) * weights).sum().backward()
        torch.testing.assert_close(fast.grad, plain.grad, rtol=1e-10, atol=1e-12)
        # and both against finite differences
        assert torch.autograd.gradcheck(lambda t, p=p: spatial_attention(t, p),
                                        (x.clone().requires_grad_(True),))
        assert torch.autograd.gradcheck(
            lambda t, p=p: spatial_attention(t.contiguous(memory_format=torch.channels_last), p),
            (x.clone().requires_grad_(True),))


# -- class means --------------------------------------------------------------------------------


def test_class_means_are_the_means_of_contiguous_groups():
    x = _tensor([[1, 2], [3, 6], [5, 10],  # class 0
                 [0, -1], [0, 1], [3, 3]])  # class 1
    assert class_means(x, 2).tolist() == [[3.0, 6.0], [1.0, 1.0]]
    assert class_means(x, 3).tolist() == [[2.0, 4.0], [2.5, 4.5], [1.5, 2.0]]
    # half precision is accumulated and returned in float32
    half = class_means(x.to(torch.bfloat16), 2)
    assert half.dtype == torch.float32 and half.tolist() == [[3.0, 6.0], [1.0, 1.0]]
    # over processes: a reduce that adds a second process's identical slice (sums and counts)
    doubled = class_means(x, 2, reduce=lambda t: t.mul_(2))
    assert doubled.tolist() == [[3.0, 6.0], [1.0, 1.0]]
    # a second process holding three other images of each class: the packed sums
    # [class 0's (x, y), class 1's (x, y)] and the count per class, 3, are added in
    other = _tensor([7 + 9 + 11, 8 + 10 + 12, 1 + 1 + 1, 1 + 1 + 1, 3])
    assert class_means(x, 2, reduce=lambda t: t.add_(other)).tolist() == [
        [(9 + 27) / 6, (18 + 30) / 6], [(3 + 3) / 6, (3 + 3) / 6]]


# -- the loss -------------------------------------------------------------------------------------


def test_the_loss_of_a_worked_example_is_written_out():
    """One class, one attention block, p = 1: every number below by hand."""
    real_images = _tensor([
        [[[1, 0], [-4, 0]], [[-2, 0], [0, 0]]],  # attention (3, 0, 4, 0)/5 = (.6, 0, .8, 0)
        [[[0, 3], [0, 0]], [[0, 0], [0, 4]]],  # (0, 3, 0, 4)/5 = (0, .6, 0, .8)
    ])
    syn_images = _tensor([
        [[[2, 0], [0, 0]], [[0, 0], [0, 0]]],  # (1, 0, 0, 0)
        [[[-1, 0], [0, 0]], [[5, 0], [0, 0]]],  # (6, 0, 0, 0)/6 = (1, 0, 0, 0)
    ])
    # mean attention: real (.3, .3, .4, .4), synthetic (1, 0, 0, 0);
    # squared distance .49 + .09 + .16 + .16 = 0.90
    # embeddings: real mean (2, 0) of (1, 1) and (3, -1); synthetic mean (0, 0) of (1, -1), (-1, 1);
    # squared distance 4
    real = Features([real_images, real_images[:, :1]], _tensor([[1, 1], [3, -1]]))
    syn = Features([syn_images, syn_images[:, :1]], _tensor([[1, -1], [-1, 1]]))
    r, s = matching_targets(real, 1, 1), matching_targets(syn, 1, 1)
    terms = loss_terms(r, s, sam_weight=1.0, task_balance=0.01, scale=100.0)
    assert terms["attention"].item() == pytest.approx(100 * 0.90, rel=1e-12)
    assert terms["last_layer"].item() == pytest.approx(100 * 0.01 * 4, rel=1e-12)
    assert matching_loss(r, s, 1.0, 0.01, 100.0).item() == pytest.approx(90 + 4, rel=1e-12)


def test_matching_targets_hold_the_class_mean_attention_of_every_block_but_the_last():
    for p in (1, 4):
        targets = matching_targets(_features(REAL), 2, p)
        assert len(targets) == 3  # two attention blocks and the embedding; the last block has none
        for block, target in zip(REAL["blocks"][:2], targets):
            expected = [_mean([_attention(x, p) for x in block[k * 2:(k + 1) * 2]]) for k in range(2)]
            assert target.tolist() == [pytest.approx(row, rel=1e-12) for row in expected]
        assert targets[-1].tolist() == [[2.0, 1.0, 0.0], [1.0, 0.0, 3.0]]
        assert [t.shape for t in matching_targets(_features(REAL), 2, p, attention=False)] == [(2, 3)]


@pytest.mark.parametrize("p", [1, 4])
@pytest.mark.parametrize("sam_weight,task_balance", [(1.0, 0.01), (0.5, 0.25), (0.0, 1.0)])
def test_datadam_loss_is_the_papers_sum_over_classes_and_blocks(p, sam_weight, task_balance):
    sam, last = _reference_terms(REAL, SYN, classes=2, p=p)
    assert sam > 0.01 and last > 1  # the example exercises both terms
    r, s = matching_targets(_features(REAL), 2, p), matching_targets(_features(SYN), 2, p)
    terms = loss_terms(r, s, sam_weight, task_balance, scale=100.0)
    assert terms["attention"].item() == pytest.approx(100 * sam_weight * sam, rel=1e-12, abs=1e-12)
    assert terms["last_layer"].item() == pytest.approx(100 * task_balance * last, rel=1e-12)
    total = matching_loss(r, s, sam_weight, task_balance, 100.0).item()
    assert total == pytest.approx(100 * (sam_weight * sam + task_balance * last), rel=1e-12)


def test_the_example_tells_the_definitions_variants_apart():
    """The example is not degenerate: another power, no normalisation, an unsquared
    distance, a mean over classes or blocks, or the last block counted would each give
    another loss (so the tests above would see them)."""
    sam4, last = _reference_terms(REAL, SYN, 2, 4)
    sam1, _ = _reference_terms(REAL, SYN, 2, 1)
    assert abs(sam4 - sam1) > 0.01

    def unnormalised(image, p):
        return [sum(abs(image[c][i][j]) ** p for c in range(len(image)))
                for i in range(len(image[0])) for j in range(len(image[0][0]))]

    for p, sam in ((1, sam1), (4, sam4)):
        per_block = []
        for block in range(3):
            per_class, unsquared, raw = [], 0.0, 0.0
            for k in range(2):
                real, syn = REAL["blocks"][block][2 * k:2 * k + 2], SYN["blocks"][block][2 * k:2 * k + 2]
                r, s = _mean([_attention(x, p) for x in real]), _mean([_attention(x, p) for x in syn])
                per_class.append(_squared_distance(r, s))
                unsquared += math.sqrt(_squared_distance(r, s))
                raw += _squared_distance(_mean([unnormalised(x, p) for x in real]),
                                         _mean([unnormalised(x, p) for x in syn]))
            per_block.append((sum(per_class), unsquared, raw))
        assert sum(b[0] for b in per_block[:2]) == pytest.approx(sam)
        for variant in (sum(b[1] for b in per_block[:2]),  # L2 distance, not squared
                        sum(b[2] for b in per_block[:2]),  # no L2 normalisation
                        sam / 2,  # a mean over classes or over the two blocks
                        sum(b[0] for b in per_block)):  # the last block counted
            assert abs(variant - sam) > 1e-3 * sam
    assert last / 2 < last - 1


class _FixedFeatures(nn.Module):
    """A stand-in network whose features are the hand-written ones: a batch filled with
    0 stands for the real images, one filled with 1 for the synthetic ones."""

    def __init__(self):
        super().__init__()
        self.by_tag = {0: _features(REAL), 1: _features(SYN)}
        self.groups: list[int] = []

    def forward_features(self, x: torch.Tensor, groups: int = 1, reduce=None) -> Features:
        self.groups.append(groups)
        return self.by_tag[int(x.flatten()[0])]


def _method_terms(method: type, **config) -> dict[str, float]:
    cfg = DistillConfig(method=method.name, **config)
    runner = method(cfg, torch.device("cpu"), progress=False)
    net = _FixedFeatures()
    real, syn = torch.zeros(4, 1, 1, 1), torch.ones(4, 1, 1, 1)
    terms = runner.loss_terms(net, real, syn, 2)
    assert runner.loss(net, real, syn, 2).item() == pytest.approx(
        sum(t.item() for t in terms.values()), rel=1e-12)
    return {name: t.item() for name, t in terms.items()}


@pytest.mark.parametrize("p", [1, 4])
def test_datadam_and_dm_take_power_weights_and_scale_from_their_settings(p):
    sam, last = _reference_terms(REAL, SYN, 2, p)
    settings = {"attention_power": p, "sam_weight": 0.5, "task_balance": 0.25, "loss_scale": 100.0}
    assert _method_terms(DataDAM, **settings) == {
        "attention": pytest.approx(100 * 0.5 * sam, rel=1e-12),
        "last_layer": pytest.approx(100 * 0.25 * last, rel=1e-12)}
    # DM: the last-layer term alone, whatever the attention settings say
    assert _method_terms(DM, **settings) == {"attention": 0.0,
                                             "last_layer": pytest.approx(100 * 0.25 * last, rel=1e-12)}
    # the published defaults: sam_weight 1, scale 100 (task_balance is the data's: given here)
    assert _method_terms(DataDAM, attention_power=p, task_balance=0.01) == {
        "attention": pytest.approx(100 * sam, rel=1e-12),
        "last_layer": pytest.approx(100 * 0.01 * last, rel=1e-12)}


def test_dm_loss_by_hand():
    # class means of the embedding: real (2, 1, 0) and (1, 0, 3); synthetic (.5, 1, -.5) and (.5, .5, 1.5)
    # squared distances: 1.5^2 + 0 + .5^2 = 2.5 and .5^2 + .5^2 + 1.5^2 = 2.75; sum 5.25
    assert _method_terms(DM, task_balance=0.01) == {"attention": 0.0,
                                                    "last_layer": pytest.approx(100 * 0.01 * 5.25)}


# -- the networks' features --------------------------------------------------------------------


def test_activations_are_taken_after_norm_and_activation_and_before_pooling():
    from datadam import models

    net = models.create("convnet3", 1, 10, (28, 28), seed=0, net_width=8).train()
    seen: list[torch.Tensor] = []
    hooks = [block[2].register_forward_hook(lambda m, i, out: seen.append(out.detach().clone()))
             for block in net.blocks]
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    features = net.forward_features(x)  # with autograd on: the activation modules run as such
    logits = net(x)
    for hook in hooks:
        hook.remove()
    assert [tuple(a.shape) for a in features.activations] == [(4, 8, 28, 28), (4, 8, 14, 14), (4, 8, 7, 7)]
    assert len(seen) == 6  # forward_features, then the plain forward
    for activation, hooked in zip(features.activations, seen[:3]):
        torch.testing.assert_close(activation.detach(), hooked)
    pooled = net.pools[-1](features.activations[-1]).flatten(1)
    torch.testing.assert_close(features.embedding, pooled)
    assert (features.activations[0] >= 0).all()  # ReLU's output
    torch.testing.assert_close(net.classifier(features.embedding).detach(), logits.detach())


# -- evaluation metrics ----------------------------------------------------------------------------


def _logits_for(predictions: list[int], classes: int) -> torch.Tensor:
    logits = torch.zeros(len(predictions), classes)
    logits[torch.arange(len(predictions)), torch.tensor(predictions)] = 1.0
    return logits


def test_accuracy_balanced_accuracy_and_per_class_accuracy_by_hand():
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    predicted = [0, 0, 0, 1, 1, 0, 2, 0]
    # per class, the share of its test images predicted as it (recall): class 0: 3 of 4,
    # class 1: 1 of 2, class 2: 1 of 2; class 3 has no test image. (Precision would differ:
    # class 0 is predicted 5 times, right 3 times; class 2 once, right.)
    m = _metrics(_logits_for(predicted, 4), labels, 4)
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["per_class_accuracy"][:3] == pytest.approx([3 / 4, 1 / 2, 1 / 2])
    assert math.isnan(m["per_class_accuracy"][3])
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 1 / 2 + 1 / 2) / 3)  # over the classes present
    assert "auc" not in m  # two classes only


def test_auc_by_hand_with_a_tie():
    # positives 0.9, 0.4, 0.6 against negatives 0.1, 0.4, 0.7:
    # 0.9 beats all 3; 0.4 beats 0.1, ties 0.4 (1/2), loses to 0.7; 0.6 beats 2 -> 6.5 of 9 pairs
    scores = torch.tensor([0.9, 0.1, 0.4, 0.4, 0.6, 0.7])
    labels = torch.tensor([1, 0, 1, 0, 1, 0])
    assert binary_auc(scores, labels) == pytest.approx(6.5 / 9)
    assert binary_auc(-scores, labels) == pytest.approx(2.5 / 9)
    assert math.isnan(binary_auc(scores, torch.ones(6, dtype=torch.long)))
    # the evaluation's AUC scores the probability of class 1
    logits = torch.stack([torch.zeros(6), torch.logit(scores)], 1)
    m = _metrics(logits, labels, 2)
    assert m["auc"] == pytest.approx(6.5 / 9)
    # predictions (class 1 above 0.5): 1,0,0,0,1,1 -> class 0: 2 of 3, class 1: 2 of 3
    assert m["per_class_accuracy"] == pytest.approx([2 / 3, 2 / 3])
    assert m["accuracy"] == pytest.approx(4 / 6) and m["balanced_accuracy"] == pytest.approx(2 / 3)


def test_auc_agrees_with_scikit_learn_on_random_scores():
    metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(0)
    for n in (7, 50, 400):
        scores = torch.round(torch.rand(n, generator=g, dtype=torch.float64) * 20) / 20  # with ties
        labels = torch.randint(0, 2, (n,), generator=g)
        labels[0], labels[1] = 0, 1
        assert binary_auc(scores, labels) == pytest.approx(
            metrics.roc_auc_score(labels.numpy(), scores.numpy()), rel=1e-12)
