"""Closed-form cost of one training step (the course's: Adam), symbolic in the model's sizes and the batch B.

* ``stack`` (n blocks Conv k×k C→C, BN, ReLU, then a 1×1 head C→K): formulas in
  n, C, k, K, B, H, W written out by hand (:func:`stack_formulas`);
* the colourization CNN and UNet: summed over the symbolic layer list of
  :mod:`complexity.counting.symbolic` (:func:`colourization_formulas`), in NF, NC, k,
  NIC, H, W and B.

Both follow the same derivative rules as :mod:`complexity.cost.predict.rules`,
restated here rather than imported, for float32 tensors (4 bytes) and int64
targets (8 bytes). Peak memory has no closed form here (it is a maximum over a
schedule); the other six quantities do. :func:`evaluate` (that of
:mod:`complexity.counting.symbolic`) gives a formula's exact value.

Sources: saved tensors — ``tools/autograd/derivatives.yaml`` (convolution keeps
its input, native_batch_norm its input and two C-vectors save_mean/save_invstd,
relu its result, log_softmax its result, nll_loss the target and a scalar
total_weight); FLOPs — ``torch.utils.flop_counter.conv_flop_count`` (2 per
multiply-add) and ``conv_backward_flop`` (input and weight gradient each cost
the forward again; the bias gradient is not counted).

>>> f = stack_formulas("last")
>>> f["backward_flops"]
2*B*C*H*K*W
>>> stack_formulas("full")["grad_bytes"]
4*C**2*k**2*n + 4*C*K + 12*C*n + 4*K
>>> from complexity.counting.symbolic import evaluate
>>> evaluate(f["backward_flops"], dict(B=2, C=16, H=8, K=2, W=8))
8192
"""
from __future__ import annotations

from typing import Dict

import sympy as sp

from complexity.counting import symbolic as sym

__all__ = ["SYMBOLS", "stack_formulas", "colourization_formulas"]

_pos = dict(integer=True, positive=True)
n, C, k, K, B, H, W = (sp.Symbol(s, **_pos) for s in ("n", "C", "k", "K", "B", "H", "W"))
SYMBOLS = {s.name: s for s in (n, C, k, K, B, H, W)}


def stack_formulas(mode: str) -> Dict[str, sp.Expr]:
    """The six additive quantities for ``mode`` ``'full'`` or ``'last'``."""
    block = C * C * k**2 + C + 2 * C          # conv weight + bias, BN γ + β
    head = C * K + K
    act = 4 * B * C * H * W                   # one C×H×W float32 activation, whole batch
    f_block = 2 * B * H * W * C * C * k**2    # forward FLOPs of one block's conv
    f_head = 2 * B * H * W * C * K
    loss_kept = 4 * B * K * H * W + 8 * B * H * W + 4  # log-softmax, target, total_weight
    trainable = {"full": n * block + head, "last": head}[mode]
    if mode == "full":
        # x (first conv's input), and per block the BN input, save_mean/invstd and the
        # ReLU result (which is also the next conv's input: one storage).
        saved = act * (1 + 2 * n) + 8 * C * n + loss_kept
        backward = n * f_block + f_head + (n - 1) * f_block + f_head  # weights + inputs
    else:
        saved = act + loss_kept               # the head's input only
        backward = f_head                     # the head's weight gradient only
    return {
        "param_bytes": sp.expand(4 * (n * block + head)),
        "grad_bytes": sp.expand(4 * trainable),
        # Adam: exp_avg and exp_avg_sq per parameter, a float32 step per tensor
        # (n blocks × 4 tensors + 2 for the head when everything trains).
        "optimizer_bytes": sp.expand(8 * trainable + 4 * ({"full": 4 * n + 2, "last": 2}[mode])),
        "saved_activation_bytes": sp.expand(saved),
        "forward_flops": sp.expand(n * f_block + f_head),
        "backward_flops": sp.expand(backward),
    }


def colourization_formulas(model: str, mode: str) -> Dict[str, sp.Expr]:
    """The six additive quantities of the course assignment's colourization CNN or
    UNet (:func:`complexity.counting.symbolic.architecture`) for ``mode``
    ``'full'`` or ``'last'`` (only ``finalconv`` trains), in NF, NC, k, NIC, H, W, B.

    >>> f = colourization_formulas("unet", "last")
    >>> f["backward_flops"]
    2*B*H*NC**2*W*k**2 + 2*B*H*NC*NIC*W*k**2
    """
    layers = sym.architecture(model)
    last = layers[-1].name
    trains = (lambda l: True) if mode == "full" else (lambda l: l.name == last)
    first_trained = next(i for i, l in enumerate(layers) if trains(l) and l.params)

    def units(shape):
        c, h, w = shape
        return B * c * h * w

    params = sum((sum(l.params.values(), sp.Integer(0)) for l in layers), sp.Integer(0))
    trainable = sum((sum(l.params.values(), sp.Integer(0)) for l in layers if trains(l)),
                    sp.Integer(0))
    tensors = sum(len(l.params) for l in layers if trains(l))
    nc, h, w = layers[-1].out_shape  # the CNN's output is 4⌊H/4⌋ × 4⌊W/4⌋
    saved = 4 * B * nc * h * w + 8 * B * h * w + 4  # log-softmax, int64 target, total_weight
    forward = backward = sp.Integer(0)
    prev = None
    for i, l in enumerate(layers):
        grad_flows = i >= first_trained           # something at or upstream of l trains
        input_needs_grad = i > first_trained
        if l.kind == "conv":
            f = 2 * units(l.out_shape) * l.fan_in
            forward += f
            backward += f * (int(trains(l)) + int(input_needs_grad))
            # conv keeps its input; after a ReLU that storage is kept already (one
            # storage), after a concatenation or for the network input it is new.
            fresh = prev is None or prev.kind != "relu" or tuple(prev.out_shape) != tuple(l.in_shape)
            if grad_flows and (fresh or not input_needs_grad):
                saved += 4 * units(l.in_shape)
        elif grad_flows and input_needs_grad:
            if l.kind == "maxpool":               # input and int64 indices
                saved += 4 * units(l.in_shape) + 8 * units(l.out_shape)
            elif l.kind == "batchnorm":           # input, save_mean and save_invstd
                saved += 4 * units(l.in_shape) + 8 * l.in_shape[0]
            elif l.kind == "relu":                # its result
                saved += 4 * units(l.out_shape)
        prev = l
    return {
        "param_bytes": sp.expand(4 * params),
        "grad_bytes": sp.expand(4 * trainable),
        "optimizer_bytes": sp.expand(8 * trainable + 4 * tensors),
        "saved_activation_bytes": sp.expand(saved),
        "forward_flops": sp.expand(forward),
        "backward_flops": sp.expand(backward),
    }

