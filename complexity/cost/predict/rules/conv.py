"""Convolutions (1-, 2-, 3-D, plain and transposed) and ``linear``.

FLOPs follow ``torch.utils.flop_counter`` (``conv_flop_count``, ``mm_flop``): 2 per
multiply-add. A plain convolution or linear makes ``out.numel()`` outputs of
``w[0].numel()`` products each; a transposed one multiplies each input element by
``w[0].numel()`` weights (its weight is C_in × C_out/groups × k…). The input
gradient and the weight gradient each cost the forward again; the bias gradient
(a sum) costs nothing.

Kept (``tools/autograd/derivatives.yaml``): ``convolution_backward`` reads the
input and the weight; ``linear``'s ``addmm``/``mm`` keeps its input only for the
weight's gradient, folded to 2-D (a copy when no view can), and the weight only
for the input's. A parameter kept is counted as a parameter; autocast's
half-precision copy of it (:class:`complexity.cost.predict.trace.Tracer`) is an
activation.

Layout (:func:`layout_as_cpu`): a traced convolution's meta result is laid out
channels-last where the CPU's would be (the group norm's too, :mod:`.norm`).
"""
from __future__ import annotations

import torch

from complexity.cost.predict.rules.registry import Context, rule


def _channels_last(t) -> bool:
    """Are ``t``'s strides like channels-last (``suggest_memory_format``)?"""
    from torch._prims_common import suggest_memory_format

    return suggest_memory_format(t) != torch.contiguous_format


def layout_as_cpu(ctx: Context, *operands) -> None:
    """Restride a meta result channels-last where the CPU's would be: the CPU's
    convolution (oneDNN's and the slow path alike: ``mkldnn_conv_use_channels_last``,
    ``thnn_conv_use_channels_last``) returns one when its input or its weight has
    channels-last strides (not in float64), its group norm when its input has; the
    meta kernels return contiguous results. What follows (a ``flatten(2).transpose``,
    an attention's last-dimension stride, which picks its kernel) then sees the
    CPU's layout (timm's cpubone: a 1×1 convolution of a channels-last input, a
    group norm, attention)."""
    out = ctx.outs[0]
    if ctx.graph.device_type != "cpu" or out.device.type != "meta" or out.dim() not in (4, 5):
        return
    if out.dtype == torch.float64 or not any(_channels_last(t) for t in operands):
        return
    fmt = torch.channels_last if out.dim() == 4 else torch.channels_last_3d
    want = torch.empty(tuple(out.shape), device="meta").to(memory_format=fmt).stride()
    if out.stride() != want:
        with torch.no_grad():
            out.as_strided_(out.shape, want)


@rule("conv1d", "conv2d", "conv3d", "linear",
      "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
def conv(ctx: Context) -> None:
    """A convolution or linear layer: its input kept, 2·MACs per pass."""
    x, w = ctx.ins[0], ctx.arg(1, "weight")
    if ctx.name.startswith("conv_transpose"):
        flops = 2 * x.numel() * w[0].numel()
    else:
        flops = 2 * ctx.outs[0].numel() * w[0].numel()
    ctx.call.forward_flops = flops
    ctx.call.backward_flops = flops * (int(x.requires_grad) + int(w.requires_grad))
    # The weight is kept too (for the input's gradient): a parameter, counted as
    # such, unless it was computed or cast (autocast's half-precision copy).
    if ctx.name != "linear":
        ctx.call.kept = [ctx.input_storage(0), ctx.input_storage(1)]
        layout_as_cpu(ctx, x, w)
    else:
        ctx.call.kept = (([ctx.folded(0)] if w.requires_grad else [])
                         + ([ctx.input_storage(1)] if x.requires_grad else []))
        # ATen's linear on an N-D input that is not contiguous (a transposed
        # attention input): matmul, then the bias added out of place (its
        # composite-compliant path, taken whenever a dispatch mode is on, as in
        # every measurement), so matmul's result lives beside the output.
        if x.dim() > 2 and ctx.arg(2, "bias") is not None and not x.is_contiguous():
            ctx.call.transient = ctx.outs[0].numel() * ctx.outs[0].element_size()
