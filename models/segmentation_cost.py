"""The cost of one training step of a segmentation model, for the chosen
``--train``: from :func:`complexity.finetune.measure` when it exists, otherwise a
smaller measurement made here, labelled as such.

The fallback runs one forward and backward pass on a copy of the model on
PyTorch's meta device (shapes only; nothing is computed or allocated), counting
FLOPs with ``torch.utils.flop_counter.FlopCounterMode`` (PyTorch's own per-operator
formulas: 2 FLOPs per multiply-accumulate of convolutions and matrix products;
element-wise work is not counted), with one correction: torch 2.14's formula for
``convolution_backward`` ignores ``groups`` and so counts a depthwise convolution's
backward as if it were dense (65× its forward for 64 groups instead of 2×;
MobileNetV3 is mostly depthwise). :func:`conv_backward_flops` counts each
requested gradient (input, weight) as one pass of the forward's
multiply-accumulates, the standard "backward ≈ 2 × forward" of Kaplan et al. 2020
(§2.1), which holds exactly per convolution. Bytes of parameters and gradients are exact
(every trainable parameter gets one gradient of its own shape and dtype). Adam's
state is a prediction from ``torch.optim.Adam``'s layout — ``exp_avg`` and
``exp_avg_sq`` of each trainable parameter's shape and dtype, plus one float32
``step`` scalar each — which the tests check against a real optimizer. It does not
measure activation memory or peak memory.

>>> import torch
>>> from models.segmentation import deeplab, set_trainable
>>> with torch.device("meta"):
...     net = deeplab("deeplabv3_mobilenet_v3_large")
>>> _ = set_trainable(net, "last")
>>> c = fallback_measure(net, (2, 3, 64, 64))
>>> c["grad_bytes"] == c["trainable_param_bytes"] == (256 * 2 + 2) * 4
True
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

FALLBACK = ("fallback (complexity.finetune is not available): FLOPs from FlopCounterMode on "
            "the meta device; parameter and gradient bytes exact; optimizer bytes predicted "
            "from Adam's state layout; activation and peak memory not measured")


def conv_backward_flops(grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation,
                        transposed, output_padding, groups, output_mask, out_shape=None,
                        **kwargs) -> int:
    """FLOPs of ``aten.convolution_backward`` (shapes in, as FlopCounterMode passes
    them). Forward multiply-accumulates of a convolution = output elements ×
    (C_in / groups) × kernel area, and ``w_shape`` is (C_out, C_in / groups, *k); each
    gradient in ``output_mask`` (input, weight) costs that many again."""
    if transposed:  # not in DeepLab; keep PyTorch's formula there
        from torch.utils.flop_counter import conv_backward_flop

        return conv_backward_flop(grad_out_shape, x_shape, w_shape, bias, stride, padding,
                                  dilation, transposed, output_padding, groups, output_mask,
                                  out_shape)
    macs = math.prod(grad_out_shape) * math.prod(w_shape[1:])
    return 2 * macs * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def fallback_measure(model: nn.Module, input_shape: tuple) -> dict:
    """FLOPs of one forward and one backward pass and bytes of parameters,
    gradients and Adam state, for the parameters with ``requires_grad``."""
    from torch.utils.flop_counter import FlopCounterMode

    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    net = copy.deepcopy(model).to("meta")  # keeps requires_grad; frees nothing real
    net.train()
    x = torch.empty(input_shape, device="meta")
    target = torch.zeros((input_shape[0], *input_shape[2:]), dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as fwd:
        out = net(x)
        out = out["out"] if isinstance(out, dict) else out
        loss = nn.functional.cross_entropy(out, target)
    backward_flops = 0
    if loss.requires_grad:  # nothing trainable → no backward pass at all
        fix = {torch.ops.aten.convolution_backward: conv_backward_flops}
        with FlopCounterMode(display=False, custom_mapping=fix) as bwd:
            loss.backward()
        backward_flops = bwd.get_total_flops()
    nbytes = (lambda ps: sum(p.numel() * p.element_size() for p in ps))
    return {
        "param_bytes": nbytes(params),
        "trainable_param_bytes": nbytes(trainable),
        "grad_bytes": nbytes(trainable),
        "optimizer_bytes": 2 * nbytes(trainable) + 4 * len(trainable),
        "forward_flops": fwd.get_total_flops(),
        "backward_flops": backward_flops,
    }


def step_cost(model: nn.Module, input_shape: tuple) -> dict:
    """``{"source": ..., **costs}`` of one training step at ``input_shape``."""
    try:
        from complexity.finetune import measure
    except ImportError:
        measure = None
    if measure is not None:
        return {"source": "complexity.finetune.measure", **measure(model, tuple(input_shape))}
    return {"source": FALLBACK, **fallback_measure(model, tuple(input_shape))}
