"""ResNet-18 from torchvision, with the small-image stem for inputs under 100 pixels."""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet18 as tv_resnet18
from torchvision.models.resnet import ResNet


def resnet18(channel: int, num_classes: int, im_size: tuple[int, int] = (32, 32)) -> ResNet:
    """torchvision's ResNet-18, adapted to ``channel`` inputs and small images.

    For images under 100 pixels a side the 7x7 stride-2 stem and the max-pool are
    replaced by one 3x3 stride-1 conv (the CIFAR adaptation), otherwise the ImageNet
    stem is kept with ``channel`` input channels.

    Shapes:
        input ``[B, channel, H, W]`` -> logits ``[B, num_classes]``.
    """
    model = tv_resnet18(weights=None, num_classes=num_classes)
    if min(im_size) < 100:
        model.conv1 = nn.Conv2d(channel, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif channel != 3:
        model.conv1 = nn.Conv2d(channel, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model
