"""Indexing, splitting and integer casts (no FLOPs counted).

Kept (``tools/autograd/derivatives.yaml``):

* ``x[i]`` (``__getitem__``): with slices, ints, ``None`` and ``...`` only, a view
  that keeps nothing and hands its output gradient on where it has the input's
  size; with a tensor index (advanced indexing, ``index.Tensor``), a new tensor
  whose backward is ``index_backward(zeros, indices, grad)``: the index tensors
  are kept (MViT's relative-position tables ``rel_pos_h[dist.long()]``).
* ``x[i] = v`` (``__setitem__``, which ``x[i] += v`` ends in): ``copy_`` into a view
  (``CopySlices``) keeps nothing; ``index_put_`` with a tensor index keeps the
  index tensors (``grad.index(indices)``).
* ``tensor_split`` (and ``hsplit``/``vsplit``/``dsplit``, ``split_with_sizes``):
  views of the input, nothing kept (each part's backward needs only sizes).
* integer and bool casts (``long``, ``int`` …): their result requires no grad, no
  node is made.
* ``repeat_interleave``: by a number of repeats, an expanded copy (its backward
  sums: sizes only); by a tensor of repeats, ``index_select`` by the int64 index
  it builds, one per output element along the dimension, which is kept
  (MViT v1's positional encoding repeats by a number).
"""
from __future__ import annotations

import torch

from complexity.cost.predict.rules.registry import Context, rule

#: Calls that split a tensor into views: nothing kept.
SPLITS = ("tensor_split", "hsplit", "vsplit", "dsplit", "split_with_sizes")

#: Casts to an integer or bool dtype (float ones: :mod:`.elementwise`).
INTEGER_CASTS = ("long", "int", "short", "byte", "char", "bool")


def _index_tensors(index) -> list:
    """The tensors of an index (a tensor, or a tuple or list holding some)."""
    items = index if isinstance(index, (tuple, list)) else (index,)
    return [t for t in items if isinstance(t, torch.Tensor)]


def _kept_indices(ctx: Context, index) -> list:
    """Storages of the index tensors among the call's tensor arguments."""
    tensors = {id(t) for t in _index_tensors(index)}
    return [ctx.input_storage(i) for i, t in enumerate(ctx.ins) if id(t) in tensors]


@rule("__getitem__")
def getitem(ctx: Context) -> None:
    """A basic index: a view (its gradient handed on, :attr:`Call.shares_grad`); a
    tensor index: the index tensors kept, a new gradient of the input's size."""
    kept = _kept_indices(ctx, ctx.args[1] if len(ctx.args) > 1 else ())
    if kept:
        ctx.call.kept = kept
    else:
        ctx.call.shares_grad = True


@rule("__setitem__")
def setitem(ctx: Context) -> None:
    """A write into a view keeps nothing; one through a tensor index keeps it."""
    ctx.call.kept = _kept_indices(ctx, ctx.args[1] if len(ctx.args) > 1 else ())


@rule(*SPLITS, *INTEGER_CASTS)
def keep_nothing(ctx: Context) -> None:
    """Nothing kept."""


@rule("repeat_interleave")
def repeat_interleave(ctx: Context) -> None:
    """Repeats by a tensor: its int64 index (output length along ``dim``) kept."""
    repeats = ctx.arg(1, "repeats")
    if not isinstance(repeats, torch.Tensor) or repeats.numel() == 1:
        return
    dim = ctx.arg(2, "dim")
    out = ctx.outs[0]
    ctx.call.kept = [ctx.new_storage(8 * (out.numel() if dim is None else out.shape[dim]))]
