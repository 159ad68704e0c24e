"""Normalisations: ``batch_norm``, ``layer_norm``, ``group_norm`` (no FLOPs counted:
element-wise).

Kept (``derivatives.yaml``): ``native_batch_norm`` in training keeps its input
and two C-vectors, ``save_mean`` and ``save_invstd`` (in eval mode the input only:
the running statistics are buffers); ``native_layer_norm`` keeps its input and one
mean and one rstd per normalised row; ``native_group_norm`` keeps its input and a
mean and an rstd per (sample, group) (``aten/src/ATen/native/group_norm.cpp``).
Weight, bias and running statistics are parameters or buffers, counted as such.

The statistics' dtype (:func:`stat_size`): the input's on the CPU (a bfloat16
batch norm keeps bfloat16 statistics — checked against a real step), float32 for a
half-precision input on CUDA (the kernels accumulate, and keep, ``acc_type``).
"""
from __future__ import annotations

import torch

from complexity.cost.predict.rules.conv import layout_as_cpu
from complexity.cost.predict.rules.registry import Context, rule


def stat_size(ctx: Context, weight=None) -> int:
    """Bytes of one saved mean or rstd element for this call's input; ``weight``:
    the call's affine weight, if any (a half-precision input with a float32 weight,
    as autocast leaves a norm, keeps float32 statistics on the CPU too — checked
    against a real step).

    >>> from types import SimpleNamespace as N
    >>> x = torch.empty(2, dtype=torch.bfloat16)
    >>> stat_size(N(ins=[x], graph=N(device_type="cpu"))), stat_size(N(ins=[x], graph=N(device_type="cuda")))
    (2, 4)
    >>> stat_size(N(ins=[x], graph=N(device_type="cpu")), torch.empty(2))
    4
    """
    x = ctx.ins[0]
    if ctx.graph.device_type == "cuda" and x.element_size() < 4:
        return 4
    if isinstance(weight, torch.Tensor) and weight.element_size() > x.element_size():
        return weight.element_size()
    return x.element_size()


@rule("batch_norm")
def batch_norm(ctx: Context) -> None:
    """Input kept; in training also save_mean and save_invstd (C elements each)."""
    if ctx.arg(5, "training", False):
        c = ctx.ins[0].shape[1] * stat_size(ctx, ctx.arg(3, "weight"))
        ctx.call.kept = [ctx.input_storage(0), ctx.new_storage(c), ctx.new_storage(c)]
        _stats_dropped(ctx, 2 * c)
    else:
        ctx.call.kept = [ctx.input_storage(0)]


def _stats_dropped(ctx: Context, nbytes: int) -> None:
    """With no gradient to compute (a frozen layer), the kernel still returns its
    statistics, dropped as soon as the call returns: working memory of the call
    (a frozen BatchNorm2d(64) in train mode: 512 bytes at its moment, real step)."""
    if not ctx.grad:
        ctx.call.transient = nbytes


@rule("layer_norm")
def layer_norm(ctx: Context) -> None:
    """Input kept, and a mean and rstd per row."""
    shape = ctx.arg(1, "normalized_shape")
    rows = (ctx.ins[0].numel() // max(1, int(torch.Size(shape).numel()))
            * stat_size(ctx, ctx.arg(2, "weight")))
    ctx.call.kept = [ctx.input_storage(0), ctx.new_storage(rows), ctx.new_storage(rows)]
    _stats_dropped(ctx, 2 * rows)


@rule("group_norm")
def group_norm(ctx: Context) -> None:
    """Input kept, and a mean and rstd per (sample, group)."""
    x, groups = ctx.ins[0], ctx.arg(1, "num_groups")
    stats = x.shape[0] * groups * stat_size(ctx, ctx.arg(2, "weight"))
    ctx.call.kept = [ctx.input_storage(0), ctx.new_storage(stats), ctx.new_storage(stats)]
    _stats_dropped(ctx, 2 * stats)
    layout_as_cpu(ctx, x)
