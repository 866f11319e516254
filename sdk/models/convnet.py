"""ConvNet, the standard backbone of dataset distillation (DC, DSA, DM, DataDAM)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from datadam.errors import ConfigError
from datadam.kernels import Reduce, grouped_batch_norm, normalize

NORMS = ("batchnorm", "instancenorm", "groupnorm", "layernorm", "none")
ACTIVATIONS = ("relu", "leakyrelu", "sigmoid", "gelu")
POOLINGS = ("avgpooling", "maxpooling", "none")


class Features(NamedTuple):
    """What one forward pass of :meth:`ConvNet.forward_features` returns.

    activations: one tensor ``[B, C, H_l, W_l]`` per block, taken after norm and
        activation and before pooling (what spatial attention is computed on).
    embedding: ``[B, D]``, the flattened output of the last block after pooling
        (what the classifier reads and what last-layer mean matching compares).
    """

    activations: list[torch.Tensor]
    embedding: torch.Tensor


def _norm(kind: str, channels: int, height: int, width: int) -> nn.Module:
    if kind == "batchnorm":
        return nn.BatchNorm2d(channels, affine=True)
    if kind == "instancenorm":  # per-channel, per-image: GroupNorm with one channel per group
        return nn.GroupNorm(channels, channels, affine=True)
    if kind == "groupnorm":
        return nn.GroupNorm(4, channels, affine=True)
    if kind == "layernorm":
        return nn.LayerNorm([channels, height, width], elementwise_affine=True)
    return nn.Identity()


def _activation(kind: str) -> nn.Module:
    return {"relu": nn.ReLU, "leakyrelu": lambda: nn.LeakyReLU(0.01),
            "sigmoid": nn.Sigmoid, "gelu": nn.GELU}[kind]()


class ConvNet(nn.Module):
    """``net_depth`` blocks of Conv3x3 -> norm -> activation -> 2x2 pooling, then a linear classifier.

    The classifier's input size is computed from the real shapes, so any depth the
    image size allows works, for 1x28x28 and 3x224x224 alike.

    Args:
        channel: input channels C.
        num_classes: outputs of the classifier.
        net_width: channels of every conv block.
        net_depth: number of blocks.
        net_act: one of ``relu``, ``leakyrelu``, ``sigmoid``, ``gelu``.
        net_norm: one of ``batchnorm``, ``instancenorm`` (``GroupNorm(C, C)``),
            ``groupnorm`` (4 groups), ``layernorm`` (over C, H, W), ``none``.
        net_pooling: ``avgpooling``, ``maxpooling`` or ``none``.
        im_size: input ``(H, W)``.
        first_padding: zero padding of the first convolution. 3 is the old DC/DSA/DM
            code's MNIST network, whose first block turns 1x28x28 into 32x32 maps.

    Shapes:
        input ``[B, C, H, W]`` -> logits ``[B, num_classes]``.
    """

    def __init__(self, channel: int, num_classes: int, net_width: int = 128, net_depth: int = 3,
                 net_act: str = "relu", net_norm: str = "instancenorm",
                 net_pooling: str = "avgpooling", im_size: tuple[int, int] = (32, 32),
                 first_padding: int = 1):
        super().__init__()
        for value, allowed, what in ((net_norm, NORMS, "net_norm"), (net_act, ACTIVATIONS, "net_act"),
                                     (net_pooling, POOLINGS, "net_pooling")):
            if value not in allowed:
                raise ConfigError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
        if net_depth < 1 or net_width < 1:
            raise ConfigError("net_depth and net_width must be at least 1")
        if net_norm == "groupnorm" and net_width % 4:
            raise ConfigError("net_norm='groupnorm' needs net_width divisible by 4")
        if first_padding < 0:
            raise ConfigError("first_padding must be at least 0")
        h, w = (size + 2 * first_padding - 2 for size in im_size)
        if h < 1 or w < 1:
            raise ConfigError(f"first_padding={first_padding} leaves no output for im_size={tuple(im_size)}")
        self.blocks = nn.ModuleList()
        self.pools = nn.ModuleList()
        in_channels = channel
        for depth in range(net_depth):
            self.blocks.append(nn.Sequential(
                nn.Conv2d(in_channels, net_width, kernel_size=3, padding=first_padding if depth == 0 else 1),
                _norm(net_norm, net_width, h, w),
                _activation(net_act),
            ))
            in_channels = net_width
            if net_pooling == "none":
                self.pools.append(nn.Identity())
                continue
            if h < 2 or w < 2:
                raise ConfigError(f"net_depth={net_depth} is too deep for im_size={tuple(im_size)}: "
                                  f"block {depth + 1} sees {h}x{w}, which 2x2 pooling cannot halve")
            pool = nn.AvgPool2d if net_pooling == "avgpooling" else nn.MaxPool2d
            self.pools.append(pool(kernel_size=2, stride=2))
            h, w = h // 2, w // 2
        self.embed_dim = net_width * h * w
        self.feature_shape = (net_width, h, w)
        self.classifier = nn.Linear(self.embed_dim, num_classes)

    def forward_features(self, x: torch.Tensor, groups: int = 1, reduce: Reduce | None = None) -> Features:
        """Every block's activation and the final embedding, in one forward pass.

        Args:
            x: ``[B, C, H, W]``.
            groups: split the batch into this many equal, contiguous groups and give
                each its own BatchNorm statistics (training mode only). Forwarding K
                classes of B images at once with ``groups=K`` computes exactly what K
                separate per-class forwards would, in one batched pass.
            reduce: an in-place sum over processes (see
                :mod:`datadam.distill.distributed`): when each process forwards a slice
                of every group, the BatchNorm statistics are those of the whole batch.
                Without autograd only.
        """
        if x.shape[0] % groups:
            raise ConfigError(f"batch of {x.shape[0]} does not split into {groups} equal groups")
        activations = []
        for block, pool in zip(self.blocks, self.pools):
            conv, norm, act = block
            x = conv(x)
            # the hand-written batch norm also when nothing needs a gradient: in place,
            # and it leaves the running statistics of a probed network alone
            if (self.training and isinstance(norm, nn.BatchNorm2d)
                    and (groups > 1 or reduce is not None or not torch.is_grad_enabled())):
                x = grouped_batch_norm(norm, x, groups, reduce)
            else:
                x = normalize(norm, x)
            x = act(x) if torch.is_grad_enabled() or not isinstance(act, nn.ReLU) else x.relu_()
            activations.append(x)
            x = pool(x)
        return Features(activations, x.flatten(1))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The final embedding ``[B, embed_dim]`` without keeping block activations."""
        for block, pool in zip(self.blocks, self.pools):
            x = pool(block(x))
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
