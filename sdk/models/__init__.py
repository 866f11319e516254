"""Networks: the ConvNet family and small-image AlexNet, VGG-11, ResNet-18, by name.

>>> from datadam import models
>>> net = models.create("convnet3", channel=1, num_classes=10, im_size=(28, 28))
>>> feats = net.forward_features(torch.zeros(2, 1, 28, 28))   # doctest: +SKIP
>>> [a.shape for a in feats.activations], feats.embedding.shape  # doctest: +SKIP

``convnetD`` is a ConvNet of depth D (1-8); ``convnet`` is ``convnet3``. Keyword
arguments of :func:`create` go to the model's constructor (``net_norm``,
``net_pooling``, ``net_width``...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from datadam.errors import ConfigError, UnknownNameError
from datadam.models.alexnet import AlexNet
from datadam.models.convnet import ACTIVATIONS, NORMS, POOLINGS, ConvNet, Features
from datadam.models.resnet import resnet18
from datadam.models.vgg import VGG

__all__ = ["ACTIVATIONS", "NORMS", "POOLINGS", "AlexNet", "ConvNet", "Features", "VGG",
           "available", "create", "get_factory", "register_model", "resnet18"]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``factory(channel, num_classes, im_size, **kwargs)`` as ``name``."""
    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = factory
        return factory
    return decorate


def _convnet_of_depth(depth: int) -> Callable[..., nn.Module]:
    def factory(channel: int, num_classes: int, im_size: tuple[int, int], **kwargs: Any) -> ConvNet:
        if kwargs.pop("net_depth", depth) != depth:
            raise ConfigError(f"convnet{depth} has depth {depth}: ask for convnetD to get depth D")
        return ConvNet(channel, num_classes, net_depth=depth, im_size=im_size, **kwargs)
    factory.__doc__ = f"ConvNet of depth {depth}."
    return factory


for _depth in range(1, 9):
    register_model(f"convnet{_depth}")(_convnet_of_depth(_depth))
register_model("convnet")(_convnet_of_depth(3))
register_model("alexnet")(AlexNet)
register_model("vgg11")(VGG)
register_model("resnet18")(resnet18)


def available() -> list[str]:
    """Names accepted by :func:`create`, sorted."""
    return sorted(_REGISTRY)


def get_factory(name: str) -> Callable[..., nn.Module]:
    """The factory registered as ``name``; :class:`~datadam.errors.UnknownNameError` otherwise."""
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise UnknownNameError("model", name, available()) from None


def create(name: str, channel: int, num_classes: int, im_size: tuple[int, int] = (32, 32),
           seed: int | None = None, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name`` for ``channel x im_size`` inputs.

    With ``seed`` the initial weights depend on it alone (the global RNG is left as it
    was). Raises :class:`~datadam.errors.UnknownNameError` for a name not in :func:`available`
    and :class:`~datadam.errors.ConfigError` for an option its constructor does not take.
    """
    factory = get_factory(name)
    if seed is None:
        return _build(name, factory, channel, num_classes, im_size, kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _build(name, factory, channel, num_classes, im_size, kwargs)


def _build(name: str, factory: Callable[..., nn.Module], channel: int, num_classes: int,
           im_size: tuple[int, int], kwargs: dict[str, Any]) -> nn.Module:
    try:
        return factory(channel, num_classes, im_size=tuple(im_size), **kwargs)
    except TypeError as e:
        if "keyword argument" not in str(e):
            raise
        # an option the constructor does not take: the user's input, not a bug
        raise ConfigError(f"model {name!r} does not take that option: {e}") from None
