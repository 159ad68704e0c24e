"""PyTorch's FLOP counter, with one formula corrected.

``torch.utils.flop_counter.FlopCounterMode`` is the project's FLOP oracle (2 FLOPs
per multiply-accumulate of convolutions and matrix products). In torch 2.14 its
rule for ``aten.convolution_backward`` computes the weight gradient's cost from
transposed shapes that lose the division by ``groups``, so a grouped or depthwise
convolution's weight gradient is counted ``groups`` times over (a 16-channel
depthwise 3×3 conv on 2×16×8×8: 626,688 FLOPs counted for a weight gradient of
36,864; pytorch/pytorch PR #183405 touches that line). :func:`conv_backward_flop`
counts each requested gradient (input, weight) of a non-transposed convolution as
one pass of the forward's multiply-accumulates, which is exact per convolution:
the input gradient is a transposed convolution of the output gradient with the
same weights, the weight gradient a convolution of the input with the output
gradient, each touching every (output, weight) pair once.

>>> import torch
>>> conv = torch.nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
>>> x = torch.randn(2, 16, 8, 8, requires_grad=True)
>>> with flop_counter() as c:
...     conv(x).sum().backward()
>>> c.get_total_flops() == 3 * 2 * (2 * 16 * 8 * 8 * 9)  # forward, grad input, grad weight
True
"""
from __future__ import annotations

import math


def conv_backward_flop(grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation,
                       transposed, output_padding, groups, output_mask, out_shape=None,
                       **kwargs) -> int:
    """FLOPs of ``aten.convolution_backward`` from its argument shapes (the
    signature FlopCounterMode's custom_mapping calls). Forward MACs = output elements
    × (C_in / groups) × kernel area = numel(grad_out) × numel(w[0])."""
    if transposed:
        # A transposed conv's weight is (C_in, C_out/groups, k…): every input element
        # multiplies C_out/groups · k… weights, so forward MACs = numel(x) × numel(w[0]);
        # its input gradient (a plain conv of grad_out) and weight gradient touch the
        # same (input, weight) pairs once each. (PyTorch's own rule is already wrapped
        # by shape_wrapper and cannot be called with shapes.)
        macs = math.prod(x_shape) * math.prod(w_shape[1:])
    else:
        macs = math.prod(grad_out_shape) * math.prod(w_shape[1:])
    return 2 * macs * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def flop_counter(display: bool = False, **kwargs):
    """A ``FlopCounterMode`` with :func:`conv_backward_flop` in place of PyTorch's rule."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    mapping = {torch.ops.aten.convolution_backward: conv_backward_flop,
               **kwargs.pop("custom_mapping", {})}
    return FlopCounterMode(display=display, custom_mapping=mapping, **kwargs)
