"""Networks: every registered model on MNIST-like and MHIST-like inputs, ConvNet internals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from datadam import models
from datadam.errors import ConfigError, DatadamError, UnknownNameError
from datadam.models import ACTIVATIONS, NORMS, POOLINGS, ConvNet

CONVNETS = {f"convnet{d}": d for d in range(1, 9)} | {"convnet": 3}
OTHERS = ["alexnet", "resnet18", "vgg11"]


def _max_depth(size: int) -> int:
    """Deepest ConvNet with 2x2 pooling that ``size x size`` input allows."""
    depth = 0
    while size >= 2:
        size //= 2
        depth += 1
    return depth


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_available():
    assert models.available() == sorted([*CONVNETS, *OTHERS])


@pytest.mark.parametrize("name", models.available())
@pytest.mark.parametrize("channel,size,num_classes", [(1, 28, 10), (3, 64, 2)],
                         ids=["mnist-1x28x28", "mhist-3x64x64"])
def test_output_shape(name, channel, size, num_classes):
    depth = CONVNETS.get(name)
    if depth is not None and depth > _max_depth(size):
        with pytest.raises(ConfigError, match=f"net_depth={depth} is too deep"):
            models.create(name, channel=channel, num_classes=num_classes, im_size=(size, size))
        return
    net = models.create(name, channel=channel, num_classes=num_classes, im_size=(size, size))
    assert isinstance(net, nn.Module)
    with torch.no_grad():
        out = net.eval()(torch.randn(2, channel, size, size))
    assert out.shape == (2, num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["convnet3", "alexnet"])
def test_gradients_reach_every_parameter(name):
    net = models.create(name, channel=1, num_classes=10, im_size=(28, 28))
    net(torch.randn(2, 1, 28, 28)).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    # and the input, as distillation needs
    x = torch.randn(2, 1, 28, 28, requires_grad=True)
    net(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_max_depths():
    assert [_max_depth(s) for s in (28, 32, 64, 224)] == [4, 5, 6, 7]


@pytest.mark.parametrize("name", ["convnet7", "alexnet", "resnet18"])
def test_output_shape_at_224(name):
    net = models.create(name, channel=3, num_classes=2, im_size=(224, 224)).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 2) and torch.isfinite(out).all()


def test_convnet7_at_224_builds():
    net = models.create("convnet7", channel=3, num_classes=2, im_size=(224, 224),
                        net_norm="batchnorm", net_pooling="maxpooling")
    assert len(net.blocks) == 7
    assert net.feature_shape == (128, 1, 1) and net.embed_dim == 128
    assert net.classifier.in_features == 128 and net.classifier.out_features == 2
    assert isinstance(net.blocks[0][1], nn.BatchNorm2d)
    assert all(isinstance(p, nn.MaxPool2d) for p in net.pools)
    with pytest.raises(ConfigError, match="block 8 sees 1x1"):
        models.create("convnet8", channel=3, num_classes=2, im_size=(224, 224))


@pytest.mark.parametrize("channel,size,depth", [(1, 28, 3), (3, 64, 4), (3, 32, 5), (1, 28, 4)])
def test_forward_features(channel, size, depth):
    net = ConvNet(channel, 10, net_width=16, net_depth=depth, net_norm="batchnorm",
                  net_pooling="maxpooling", im_size=(size, size)).eval()
    x = torch.randn(4, channel, size, size)
    with torch.no_grad():
        feats = net.forward_features(x)
        embedding = net.embed(x)
        logits = net(x)
    expected, h = [], size
    for _ in range(depth):
        expected.append((4, 16, h, h))  # before pooling
        h //= 2
    assert [tuple(a.shape) for a in feats.activations] == expected
    assert net.feature_shape == (16, h, h)
    assert net.embed_dim == 16 * h * h
    assert feats.embedding.shape == (4, net.embed_dim)
    assert torch.equal(feats.embedding, embedding)
    assert torch.allclose(net.classifier(feats.embedding), logits, atol=1e-6)
    assert (feats.activations[0] >= 0).all()  # taken after the ReLU


def test_forward_features_default_mnist_convnet():
    net = models.create("convnet3", channel=1, num_classes=10, im_size=(28, 28))
    feats = net.forward_features(torch.randn(2, 1, 28, 28))
    assert [tuple(a.shape[1:]) for a in feats.activations] == [(128, 28, 28), (128, 14, 14),
                                                                (128, 7, 7)]
    assert feats.embedding.shape == (2, 128 * 3 * 3) == (2, net.embed_dim)


def test_first_padding_three_is_the_old_codes_mnist_network():
    net = models.create("convnet3", channel=1, num_classes=10, im_size=(28, 28), first_padding=3)
    x = torch.randn(2, 1, 28, 28)
    feats = net.forward_features(x)
    assert [tuple(a.shape[1:]) for a in feats.activations] == [(128, 32, 32), (128, 16, 16),
                                                                (128, 8, 8)]
    assert net.embed_dim == 128 * 4 * 4 and net(x).shape == (2, 10)
    # padding the input by 2 and convolving with padding 1 is the same network
    plain = models.create("convnet3", channel=1, num_classes=10, im_size=(32, 32))
    plain.load_state_dict(net.state_dict())
    assert torch.allclose(plain(torch.nn.functional.pad(x, (2, 2, 2, 2))), net(x), atol=1e-5)


@pytest.mark.parametrize("name", ["alexnet", "vgg11"])
def test_embed_then_classifier_is_forward(name):
    net = models.create(name, channel=1, num_classes=10, im_size=(28, 28)).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        embedding = net.embed(x)
        assert embedding.shape == (2, net.embed_dim)
        assert torch.allclose(net.classifier(embedding), net(x), atol=1e-6)


@pytest.mark.parametrize("size,stem", [(28, 3), (64, 3), (224, 7)])
def test_resnet18_stem(size, stem):
    net = models.create("resnet18", channel=1, num_classes=10, im_size=(size, size))
    assert net.conv1.in_channels == 1 and net.conv1.kernel_size == (stem, stem)
    assert isinstance(net.maxpool, nn.Identity) == (stem == 3)
    assert net.fc.in_features == 512 and net.fc.out_features == 10


EXPECTED_NORM = {"batchnorm": nn.BatchNorm2d, "instancenorm": nn.GroupNorm,
                 "groupnorm": nn.GroupNorm, "layernorm": nn.LayerNorm, "none": nn.Identity}


@pytest.mark.parametrize("norm", NORMS)
def test_every_norm(norm):
    net = ConvNet(3, 5, net_width=8, net_depth=2, net_norm=norm, im_size=(12, 12))
    layer = net.blocks[1][1]
    assert type(layer) is EXPECTED_NORM[norm]
    if norm == "instancenorm":
        assert layer.num_groups == layer.num_channels == 8
    if norm == "groupnorm":
        assert layer.num_groups == 4
    if norm == "layernorm":
        assert tuple(layer.normalized_shape) == (8, 6, 6)  # block 2 sees 6x6
    out = net(torch.randn(3, 3, 12, 12))
    assert out.shape == (3, 5) and torch.isfinite(out).all()


@pytest.mark.parametrize("norm", NORMS)
def test_channels_last_features_equal_contiguous_ones(norm):
    # the distiller forwards channels-last on a CPU; GroupNorm and LayerNorm then take a
    # contiguous detour (for speed), which must change neither values, layout nor gradients
    net = ConvNet(1, 10, net_width=16, net_depth=3, net_norm=norm, im_size=(28, 28)).train()
    x = torch.randn(6, 1, 28, 28)
    a = x.clone().requires_grad_(True)
    b = x.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    plain = net.forward_features(a)
    fast = net.to(memory_format=torch.channels_last).forward_features(b)
    for p, f in zip([*plain.activations, plain.embedding], [*fast.activations, fast.embedding]):
        torch.testing.assert_close(f, p, rtol=1e-4, atol=1e-5)
    assert all(f.is_contiguous(memory_format=torch.channels_last) for f in fast.activations[:2])
    plain.embedding.square().sum().backward()
    fast.embedding.square().sum().backward()
    torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_every_activation(act):
    net = ConvNet(1, 4, net_width=8, net_depth=2, net_act=act, im_size=(8, 8))
    expected = {"relu": nn.ReLU, "leakyrelu": nn.LeakyReLU, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}
    assert type(net.blocks[0][2]) is expected[act]
    feats = net.forward_features(torch.randn(2, 1, 8, 8))
    assert net.classifier(feats.embedding).shape == (2, 4)
    if act == "sigmoid":
        assert ((feats.activations[0] > 0) & (feats.activations[0] < 1)).all()


@pytest.mark.parametrize("pool", POOLINGS)
def test_every_pooling(pool):
    net = ConvNet(1, 4, net_width=8, net_depth=3, net_pooling=pool, im_size=(16, 16))
    side = 16 if pool == "none" else 2
    assert net.feature_shape == (8, side, side) and net.embed_dim == 8 * side * side
    feats = net.forward_features(torch.randn(2, 1, 16, 16))
    sides = [a.shape[-1] for a in feats.activations]
    assert sides == ([16, 16, 16] if pool == "none" else [16, 8, 4])
    assert net(torch.randn(2, 1, 16, 16)).shape == (2, 4)


def test_no_pooling_allows_any_depth():
    net = ConvNet(1, 3, net_width=4, net_depth=6, net_pooling="none", im_size=(4, 4))
    assert net(torch.randn(1, 1, 4, 4)).shape == (1, 3)


def test_non_square_input():
    net = ConvNet(3, 2, net_width=8, net_depth=3, im_size=(32, 20))
    assert net.feature_shape == (8, 4, 2)
    assert net(torch.randn(2, 3, 32, 20)).shape == (2, 2)


@pytest.mark.parametrize("size,depth", [(28, 5), (64, 7), (224, 8), (8, 4), (1, 1)])
def test_too_deep_for_image(size, depth):
    match = rf"net_depth={depth} is too deep for im_size=\({size}, {size}\)"
    with pytest.raises(ConfigError, match=match):
        ConvNet(1, 10, net_width=4, net_depth=depth, im_size=(size, size))
    if depth > 1:  # one block less fits, down to 1x1
        assert ConvNet(1, 10, net_width=4, net_depth=depth - 1, im_size=(size, size)).embed_dim == 4


@pytest.mark.parametrize("kwargs,match", [
    ({"net_norm": "batch"}, "net_norm must be one of batchnorm, instancenorm"),
    ({"net_act": "tanh"}, "net_act must be one of relu"),
    ({"net_pooling": "maxpool"}, "net_pooling must be one of avgpooling"),
    ({"net_width": 0}, "net_depth and net_width must be at least 1"),
    ({"net_norm": "groupnorm", "net_width": 6}, "divisible by 4"),
    ({"first_padding": -1}, "first_padding must be at least 0"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ConvNet(1, 10, im_size=(28, 28), **kwargs)
    with pytest.raises(ConfigError, match=match):
        models.create("convnet", channel=1, num_classes=10, im_size=(28, 28), **kwargs)


def test_zero_depth():
    with pytest.raises(ConfigError, match="net_depth and net_width must be at least 1"):
        ConvNet(1, 10, net_depth=0, im_size=(28, 28))


def test_convnet_names_fix_the_depth():
    assert len(models.create("convnet", 1, 10, (28, 28), net_depth=3).blocks) == 3
    assert len(models.create("convnet4", 1, 10, (28, 28)).blocks) == 4
    with pytest.raises(ConfigError, match="convnet3 has depth 3"):
        models.create("convnet", 1, 10, (28, 28), net_depth=2)


def test_vgg_norms():
    for norm, kind in (("batchnorm", nn.BatchNorm2d), ("instancenorm", nn.GroupNorm),
                       ("none", nn.Identity)):
        net = models.create("vgg11", channel=1, num_classes=10, im_size=(28, 28), net_norm=norm)
        assert type(net.features[1]) is kind
    with pytest.raises(ConfigError, match="net_norm"):
        models.create("vgg11", channel=1, num_classes=10, im_size=(28, 28), net_norm="batch")


def test_unknown_model():
    with pytest.raises(UnknownNameError) as info:
        models.create("resnet50", channel=3, num_classes=2)
    assert isinstance(info.value, DatadamError)
    assert str(info.value).startswith("unknown model 'resnet50'; available: alexnet, convnet,")
    assert info.value.available == models.available()


def test_names_are_case_insensitive():
    assert isinstance(models.create("ConvNet3", channel=1, num_classes=10, im_size=(28, 28)),
                      ConvNet)


def test_register_model(monkeypatch):
    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))

    @models.register_model("tiny")
    def tiny(channel, num_classes, im_size=(32, 32)):
        features = channel * im_size[0] * im_size[1]
        return nn.Sequential(nn.Flatten(), nn.Linear(features, num_classes))

    assert "tiny" in models.available()
    net = models.create("tiny", channel=1, num_classes=3, im_size=[4, 4])
    assert net(torch.zeros(2, 1, 4, 4)).shape == (2, 3)


def test_create_with_seed_is_reproducible_and_leaves_the_global_rng_alone():
    import torch

    from datadam import models as registry
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = registry.create("convnet3", 1, 10, (28, 28), seed=5)
    assert torch.equal(torch.rand(1), expected_next)  # global RNG state untouched
    b = registry.create("convnet3", 1, 10, (28, 28), seed=5)
    c = registry.create("convnet3", 1, 10, (28, 28), seed=6)
    wa, wb, wc = (m.classifier.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_get_factory_names_the_unknown_model():
    from datadam import models as registry
    from datadam.errors import UnknownNameError
    with pytest.raises(UnknownNameError, match="unknown model 'lenet'"):
        registry.get_factory("lenet")
