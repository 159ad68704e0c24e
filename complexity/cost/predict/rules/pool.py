"""Pooling (no FLOPs counted).

Kept (``derivatives.yaml``): ``max_pool*d_with_indices`` and
``adaptive_max_pool*d`` keep their input and the int64 indices of the maxima (one
per output element); average pooling, adaptive or not, keeps its input — except
an adaptive average pool to one element per channel (``AdaptiveAvgPool2d(1)``,
the global pool of EfficientNet, ConvNeXt, MobileNet, GoogLeNet), which ATen
runs as ``input.mean((-1, -2), keepdim=True)``
(``aten/src/ATen/native/AdaptiveAveragePooling.cpp``) and which keeps nothing.
"""
from __future__ import annotations

from complexity.cost.predict.rules.registry import Context, rule


@rule(*(p + w for p in ("max_pool1d", "max_pool2d", "max_pool3d", "adaptive_max_pool1d",
                         "adaptive_max_pool2d", "adaptive_max_pool3d")
        for w in ("", "_with_indices")))
def max_pool(ctx: Context) -> None:
    """Input kept, and 8 bytes of index per output element (the indices returned,
    with ``return_indices=True``)."""
    index = (ctx.output_storage(1) if len(ctx.outs) > 1
             else ctx.new_storage(8 * ctx.outs[0].numel()))
    ctx.call.kept = [ctx.input_storage(0), index]


@rule("avg_pool1d", "avg_pool2d", "avg_pool3d")
def avg_pool(ctx: Context) -> None:
    """Input kept."""
    ctx.call.kept = [ctx.input_storage(0)]


@rule("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d")
def adaptive_avg_pool(ctx: Context) -> None:
    """Input kept; nothing for a pool to one element per channel (a mean)."""
    pooled = ctx.name[-2:-1]  # '1', '2', '3': the trailing dimensions pooled
    if all(s == 1 for s in ctx.outs[0].shape[-int(pooled):]):
        return
    ctx.call.kept = [ctx.input_storage(0)]
