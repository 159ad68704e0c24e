"""Sampling and patch extraction: ``grid_sample``, ``unfold``/``fold``, ``meshgrid``
(no FLOPs counted: ``FlopCounterMode`` has no formula for them).

Kept (``derivatives.yaml``): ``grid_sampler_2d``/``grid_sampler_3d`` keep the input
and the grid, whichever of them requires grad (``grid_sampler_2d_backward(grad,
input, grid, …)``: RAFT's correlation lookup, whose grid is detached);
``im2col``/``col2im`` (``unfold``, ``fold``: RAFT's convex upsampling) need only
sizes; ``meshgrid``'s results are expanded views of its inputs.
"""
from __future__ import annotations

from complexity.cost.predict.rules.registry import Context, rule


@rule("grid_sample")
def grid_sample(ctx: Context) -> None:
    """The input and the grid kept."""
    ctx.call.kept = [ctx.input_storage(0), ctx.input_storage(1)]


@rule("unfold", "fold", "meshgrid")
def keep_nothing(ctx: Context) -> None:
    """Nothing kept."""
