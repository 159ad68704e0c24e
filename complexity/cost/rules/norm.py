"""Normalisations: ``batch_norm``, ``layer_norm``, ``group_norm`` (no FLOPs counted:
element-wise).

Kept (``derivatives.yaml``): ``native_batch_norm`` in training keeps its input
and two float32 C-vectors, ``save_mean`` and ``save_invstd`` (in eval mode the
input only: the running statistics are buffers); ``native_layer_norm`` keeps its
input and one float32 mean and one rstd per normalised row; ``native_group_norm``
keeps its input and a mean and an rstd per (sample, group), in the input's dtype
(``aten/src/ATen/native/group_norm.cpp``). Weight, bias and
running statistics are parameters or buffers, counted as such.
"""
from __future__ import annotations

import torch

from complexity.cost.rules.registry import Context, rule


@rule("batch_norm")
def batch_norm(ctx: Context) -> None:
    """Input kept; in training also save_mean and save_invstd (4·C bytes each)."""
    if ctx.arg(5, "training", False):
        c = ctx.ins[0].shape[1]
        ctx.call.kept = [ctx.input_storage(0), ctx.new_storage(4 * c), ctx.new_storage(4 * c)]
    else:
        ctx.call.kept = [ctx.input_storage(0)]


@rule("layer_norm")
def layer_norm(ctx: Context) -> None:
    """Input kept, and a float32 mean and rstd per row."""
    shape = ctx.arg(1, "normalized_shape")
    rows = ctx.ins[0].numel() // max(1, int(torch.Size(shape).numel()))
    ctx.call.kept = [ctx.input_storage(0), ctx.new_storage(4 * rows), ctx.new_storage(4 * rows)]


@rule("group_norm")
def group_norm(ctx: Context) -> None:
    """Input kept, and a mean and rstd per (sample, group)."""
    x, groups = ctx.ins[0], ctx.arg(1, "num_groups")
    stats = x.shape[0] * groups * x.element_size()
    ctx.call.kept = [ctx.input_storage(0), ctx.new_storage(stats), ctx.new_storage(stats)]
