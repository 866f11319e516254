"""What training a network costs, in FLOPs (torch's flop counter)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def training_flops(net: nn.Module, image_shape: tuple[int, ...], num_classes: int,
                   samples: int) -> int:
    """FLOPs of forward + backward over ``samples`` images (torch's flop counter)."""
    device = next(net.parameters()).device
    x = torch.zeros(2, *image_shape, device=device)
    y = torch.zeros(2, dtype=torch.long, device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(net(x), y).backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops() // 2 * samples
