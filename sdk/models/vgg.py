"""VGG-11 adapted to small images (one 512-d embedding, one linear classifier)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.vgg import cfgs

from datadam.errors import ConfigError
from datadam.models.convnet import NORMS, _norm


class VGG(nn.Module):
    """VGG from a torchvision layer configuration, adapted to small inputs.

    A 2x2 max-pool is skipped where the feature map is already smaller than 2x2 (so
    28x28 MNIST works without padding tricks) and an adaptive average pool to 1x1
    ends the features, so the classifier is ``Linear(512, num_classes)`` for any size.

    Args:
        cfg: a torchvision VGG config name: ``"A"`` is VGG-11.
        net_norm: ``batchnorm`` (default), ``instancenorm``, ``groupnorm`` or ``none``.

    Shapes:
        input ``[B, channel, H, W]`` -> logits ``[B, num_classes]``.
    """

    def __init__(self, channel: int, num_classes: int, im_size: tuple[int, int] = (32, 32),
                 cfg: str = "A", net_norm: str = "batchnorm"):
        super().__init__()
        if net_norm not in NORMS:
            raise ConfigError(f"net_norm must be one of {', '.join(NORMS)}, not {net_norm!r}")
        layers: list[nn.Module] = []
        h, w = im_size
        in_channels = channel
        for v in cfgs[cfg]:
            if v == "M":
                if h >= 2 and w >= 2:
                    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                    h, w = h // 2, w // 2
                continue
            layers += [nn.Conv2d(in_channels, int(v), kernel_size=3, padding=1),
                       _norm(net_norm, int(v), h, w), nn.ReLU(inplace=True)]
            in_channels = int(v)
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.embed_dim = in_channels
        self.classifier = nn.Linear(in_channels, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
