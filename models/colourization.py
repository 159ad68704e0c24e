"""The colourization networks of the course assignment: the plain CNN and the UNet
with skip connections.

Written as the course wrote them (``nn.Sequential`` blocks, constructor
``(kernel, num_filters, num_colours, num_in_channels)``), independently of the
symbolic description in :mod:`complexity.counting.symbolic`; the cross-check tests are what
keeps the two from drifting apart.

>>> import torch
>>> CNN(3, 8, 24, 1)(torch.zeros(2, 1, 32, 32)).shape
torch.Size([2, 24, 32, 32])
>>> UNet(3, 8, 24, 1)(torch.zeros(2, 1, 32, 32)).shape
torch.Size([2, 24, 32, 32])
"""
from __future__ import annotations

import torch
from torch import nn


def _check(kernel: int, num_filters: int, num_colours: int, num_in_channels: int) -> None:
    for name, v in (("num_filters", num_filters), ("num_colours", num_colours),
                    ("num_in_channels", num_in_channels)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be a positive odd integer, got {kernel!r}")


def _block(cin: int, cout: int, kernel: int, resize: nn.Module | None) -> nn.Sequential:
    """Conv → (MaxPool2d(2) | Upsample(2) | nothing) → BatchNorm2d → ReLU."""
    layers = [nn.Conv2d(cin, cout, kernel_size=kernel, padding=kernel // 2)]
    if resize is not None:
        layers.append(resize)
    layers += [nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*layers)


class CNN(nn.Module):
    """The plain colourization CNN: six convolutions, no skip connections."""

    def __init__(self, kernel: int, num_filters: int, num_colours: int, num_in_channels: int):
        super().__init__()
        _check(kernel, num_filters, num_colours, num_in_channels)
        nf, nc = num_filters, num_colours
        self.downconv1 = _block(num_in_channels, nf, kernel, nn.MaxPool2d(2))
        self.downconv2 = _block(nf, 2 * nf, kernel, nn.MaxPool2d(2))
        self.rfconv = _block(2 * nf, 2 * nf, kernel, None)
        self.upconv1 = _block(2 * nf, nf, kernel, nn.Upsample(scale_factor=2))
        self.upconv2 = _block(nf, nc, kernel, nn.Upsample(scale_factor=2))
        self.finalconv = nn.Conv2d(nc, nc, kernel_size=kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downconv2(self.downconv1(x))
        x = self.upconv2(self.upconv1(self.rfconv(x)))
        return self.finalconv(x)


class UNet(nn.Module):
    """The CNN with skip connections (channel concatenation).

    Takes H and W divisible by 4 only: the skip concatenations need the pooled and
    upsampled sizes to agree.
    """

    def __init__(self, kernel: int, num_filters: int, num_colours: int, num_in_channels: int):
        super().__init__()
        _check(kernel, num_filters, num_colours, num_in_channels)
        nf, nc, nic = num_filters, num_colours, num_in_channels
        self.downconv1 = _block(nic, nf, kernel, nn.MaxPool2d(2))
        self.downconv2 = _block(nf, 2 * nf, kernel, nn.MaxPool2d(2))
        self.rfconv = _block(2 * nf, 2 * nf, kernel, None)
        self.upconv1 = _block(4 * nf, nf, kernel, nn.Upsample(scale_factor=2))
        self.upconv2 = _block(2 * nf, nc, kernel, nn.Upsample(scale_factor=2))
        self.finalconv = nn.Conv2d(nc + nic, nc, kernel_size=kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % 4 or x.shape[-1] % 4:
            raise ValueError(
                f"UNet needs H and W divisible by 4, got {x.shape[-2]}x{x.shape[-1]}")
        d1 = self.downconv1(x)
        d2 = self.downconv2(d1)
        rf = self.rfconv(d2)
        u1 = self.upconv1(torch.cat([rf, d2], dim=1))
        u2 = self.upconv2(torch.cat([u1, d1], dim=1))
        return self.finalconv(torch.cat([u2, x], dim=1))


MODELS = {"cnn": CNN, "unet": UNet}


def build(model: str, kernel: int = 3, num_filters: int = 32, num_colours: int = 24,
          num_in_channels: int = 1) -> nn.Module:
    """Instantiate ``'cnn'`` or ``'unet'`` by name.

    >>> type(build("unet")).__name__
    'UNet'
    """
    try:
        cls = MODELS[model]
    except KeyError:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}") from None
    return cls(kernel, num_filters, num_colours, num_in_channels)
