"""Pooling (no FLOPs counted).

Kept (``derivatives.yaml``): ``max_pool2d_with_indices`` keeps its input and the
int64 indices of the maxima (one per output element); average pooling, adaptive
or not, keeps its input.
"""
from __future__ import annotations

from complexity.cost.rules.registry import Context, rule


@rule("max_pool2d")
def max_pool2d(ctx: Context) -> None:
    """Input kept, and 8 bytes of index per output element."""
    ctx.call.kept = [ctx.input_storage(0), ctx.new_storage(8 * ctx.outs[0].numel())]


@rule("avg_pool2d", "adaptive_avg_pool2d")
def avg_pool2d(ctx: Context) -> None:
    """Input kept."""
    ctx.call.kept = [ctx.input_storage(0)]
