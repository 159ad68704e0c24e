"""Small models for the profile/derive tests, importable as
``tests.profile_models:NAME`` (the ``package.module:factory`` form of MODEL)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TiedLinear(nn.Module):
    """Two linear layers sharing one weight (as tied embeddings do)."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.a = nn.Linear(width, width)
        self.b = nn.Linear(width, width)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.b(self.a(x))


class SharedConv(nn.Module):
    """One convolution registered under two names and called twice."""

    def __init__(self, channels: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.again = self.conv

    def forward(self, x):
        return self.again(self.conv(x))


class Functional(nn.Module):
    """A custom leaf module doing its work with functional ops only."""

    def __init__(self, channels: int = 8, classes: int = 10, size: int = 8):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels, 3, 3, 3))
        self.proj = nn.Parameter(torch.randn(2 * channels * (2 * size) ** 2, classes))

    def forward(self, x):
        y = F.conv2d(x, self.weight, padding=1)
        z = F.interpolate(y, scale_factor=2, mode="nearest")
        w = torch.cat([z, z], dim=1)
        return torch.matmul(w.flatten(1), self.proj)


class WithFunctionalChild(nn.Module):
    """A container whose own forward adds a matmul on top of a child's output."""

    def __init__(self):
        super().__init__()
        self.body = Functional()
        self.head = nn.Parameter(torch.randn(10, 5))

    def forward(self, x):
        return self.body(x) @ self.head


class NeedsValues(nn.Module):
    """A forward that branches on a value: impossible on the meta device."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        if x.sum().item() >= 0:
            return self.conv(x)
        return x


def tied_linear(width: int = 8):
    return TiedLinear(width)


def shared_conv(channels: int = 4):
    return SharedConv(channels)


def functional(channels: int = 8, classes: int = 10, size: int = 8):
    return Functional(channels, classes, size)


def needs_values():
    return NeedsValues()


def strided(channels: int = 8):
    """Floor effects: a stride-2 convolution gives ⌊(H − 1)/2⌋ + 1 rows."""
    return nn.Sequential(nn.Conv2d(3, channels, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(channels, channels, 3, stride=2, padding=1))


def exponential(n: int = 3):
    """Parameters grow as 2**n: no polynomial fits. Takes inputs of shape (N, 4)."""
    return nn.Sequential(nn.Linear(4, 2 ** n), nn.Linear(2 ** n, 1))


def not_a_module():
    return 42


def broken():
    raise RuntimeError("this factory always fails")
