"""``stack``: the "n similar layers" of the course question on the cost of
fine-tuning all n layers of a network against only the last one.

n identical blocks Conv k×k C→C (padding k//2) → BatchNorm2d → ReLU, then a 1×1
convolution C → ``classes`` as the last layer (the one that trains in ``last``
mode). The input has C channels too, so every block is the same and the cost of
each quantity is exactly linear in n.

>>> import torch
>>> net = Stack(layers=3, width=4, classes=2)
>>> net(torch.zeros(1, 4, 8, 8)).shape
torch.Size([1, 2, 8, 8])
>>> [n for n, _ in net.named_parameters()][-2:]
['head.weight', 'head.bias']
"""
from __future__ import annotations

from torch import nn

#: The parameter-name prefix of the last layer (what ``last`` mode trains).
HEAD = "head"


class Stack(nn.Sequential):
    """n blocks Conv(k×k, C→C) → BN → ReLU, then ``head``: Conv 1×1 C → classes."""

    def __init__(self, layers: int, width: int = 16, kernel: int = 3, classes: int = 2):
        for name, v in (("layers", layers), ("width", width), ("classes", classes)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"kernel must be a positive odd integer, got {kernel!r}")
        blocks = [nn.Sequential(nn.Conv2d(width, width, kernel, padding=kernel // 2),
                                nn.BatchNorm2d(width), nn.ReLU())
                  for _ in range(layers)]
        super().__init__(*blocks)
        self.add_module(HEAD, nn.Conv2d(width, classes, kernel_size=1))
        self.in_channels = width
