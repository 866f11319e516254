"""AlexNet adapted to small images, as in the dataset-condensation literature."""

from __future__ import annotations

import torch
from torch import nn


class AlexNet(nn.Module):
    """Five conv layers (128-192-256-192-192 channels) and one linear classifier.

    The first conv pads 1-channel 28x28 input to 32x32 effective size; an adaptive
    average pool to 4x4 makes any input size work (3x224x224 included).

    Shapes:
        input ``[B, channel, H, W]`` -> logits ``[B, num_classes]``.
    """

    def __init__(self, channel: int, num_classes: int, im_size: tuple[int, int] = (32, 32)):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channel, 128, kernel_size=5, stride=1, padding=4 if channel == 1 else 2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(128, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(192, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 192, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(192, 192, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.AdaptiveAvgPool2d(4),
        )
        self.embed_dim = 192 * 4 * 4
        self.classifier = nn.Linear(self.embed_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
