"""The cost of one training step of a segmentation model, for the chosen
``--train``: :func:`complexity.cost.measure.cpu_step` (fake tensors; FLOPs from PyTorch's
counter with the grouped-convolution backward rule corrected, saved activations,
peak live bytes), plus the trainable parameters' bytes.

>>> import torch
>>> from complexity.cost.step.trainable import set_trainable
>>> from models.segmentation import deeplab
>>> with torch.device("meta"):
...     net = deeplab("deeplabv3_mobilenet_v3_large")
>>> _ = set_trainable(net, "last")
>>> c = step_cost(net, (2, 3, 64, 64))
>>> c["grad_bytes"] == c["trainable_param_bytes"] == (256 * 2 + 2) * 4
True
"""
from __future__ import annotations

from torch import nn

SOURCE = ("complexity.cost.measure.cpu_step: one Adam step on fake tensors; FLOPs from "
          "FlopCounterMode (grouped-conv backward corrected), saved activations from "
          "saved_tensors_hooks, peak from live storage bytes")


def step_cost(model: nn.Module, input_shape: tuple) -> dict:
    """``{"source": ..., "trainable_param_bytes": ..., **measure(...)}`` of one training
    step at ``input_shape``."""
    from complexity.cost.measure.cpu_step import measure

    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return {"source": SOURCE, "trainable_param_bytes": trainable,
            **measure(model, tuple(input_shape))}
