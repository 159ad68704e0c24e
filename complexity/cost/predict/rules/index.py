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
  sums: sizes only); by a tensor of repeats (one element too: ATen expands it to
  a tensor of repeats), ``index_select`` by the int64 index it builds, one per
  output element along the dimension, which is kept (MViT v1's positional
  encoding repeats by a number).
* ``cumsum`` (``cumsum_backward(grad, dim)``: a reversed cumulative sum of the
  gradient, sizes only), ``tril``/``triu`` (``grad.tril(diagonal)``), ``copy_``
  (the gradient passed to the source, zeroed for the destination), float casts
  text models make (``bfloat16``, ``type``): nothing kept.
* ``argmax``/``argmin`` (an integer result: no node), ``floor``/``ceil``/
  ``round``/``trunc``/``sign`` (a zero gradient): nothing kept; ``t``, a view.
* ``scatter``/``scatter_`` (``grad.scatter(dim, index, 0)`` for the input,
  ``grad.gather(dim, index)`` for the source), ``scatter_add``/``scatter_add_``
  (the input's gradient is the gradient itself; the source's a ``gather``): the
  index, when the input's gradient needs it or the source requires grad.
* ``index_select``: its index (``index_add`` of the gradient into zeros);
  ``topk``: its int64 indices (``value_selecting_reduction_backward``).
* ``min``/``max``/``amin``/``amax``/``minimum``/``maximum``: along a dimension,
  ``min``/``max`` keep their int64 indices (``value_selecting_reduction_backward``),
  ``amin``/``amax`` the input and their result (``scale_grad_by_count(restore_reduced_dims
  (grad, dim, keepdim), restore_reduced_dims(result, ...) == self, dim)``); over
  everything, ``min``/``max`` keep the input and the result
  (``evenly_distribute_backward(grad, self, result)``); of two tensors
  (``minimum``/``maximum``, or ``min``/``max`` given one), both operands.
"""
from __future__ import annotations

from typing import Optional

import torch

from complexity.cost.predict.rules.registry import Context, rule

#: Calls that split a tensor into views: nothing kept.
SPLITS = ("tensor_split", "hsplit", "vsplit", "dsplit", "split_with_sizes")

#: Casts to an integer or bool dtype (float ones: :mod:`.elementwise`).
INTEGER_CASTS = ("long", "int", "short", "byte", "char", "bool")

#: Other calls whose backward needs sizes only (text models' positions and masks),
#: or whose result has no gradient (integer positions; steps: a zero gradient).
SIZES_ONLY = ("cumsum", "cumsum_", "tril", "triu", "tril_", "triu_", "copy_", "bfloat16",
              "type", "argmax", "argmin", "floor", "ceil", "round", "trunc", "sign")


def _index_tensors(index) -> list:
    """The tensors of an index (a tensor, or a tuple or list holding some) that
    index by tensor: not a 0-dim integer one, which Python indexing takes as the
    integer it holds (``select``, a view: Mixtral's ``gate_up_proj[expert_idx]``)."""
    items = index if isinstance(index, (tuple, list)) else (index,)
    return [t for t in items if isinstance(t, torch.Tensor) and not (
        t.dim() == 0 and not (t.is_floating_point() or t.is_complex() or t.dtype is torch.bool))]


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


@rule(*SPLITS, *INTEGER_CASTS, *SIZES_ONLY)
def keep_nothing(ctx: Context) -> None:
    """Nothing kept."""


@rule("repeat_interleave")
def repeat_interleave(ctx: Context) -> None:
    """Nothing kept for a number of repeats; the output's index for a tensor of them
    (of one element too)."""
    repeats = ctx.arg(1, "repeats")
    if isinstance(repeats, torch.Tensor) and len(ctx.ins) > 1 and ctx.ins[0] is ctx.args[0]:
        dim = ctx.arg(2, "dim")
        out = ctx.outs[0]
        rows = out.numel() if dim is None else out.shape[dim]
        ctx.call.kept = [ctx.new_storage(8 * rows)] if ctx.ins[0].requires_grad else []


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


@rule("min", "max", "amin", "amax", "minimum", "maximum")
def extremum(ctx: Context) -> Optional[bool]:
    """Indices along a dimension; input and result over everything (and for
    ``amin``/``amax``); both operands of two tensors."""
    if len(ctx.ins) >= 2 and all(isinstance(a, torch.Tensor) for a in ctx.args[:2]):
        ctx.call.kept = [ctx.input_storage(0), ctx.input_storage(1)]
        return None
    if len(ctx.ins) != 1:
        return False
    dim = ctx.arg(1, "dim")
    if ctx.name in ("amin", "amax"):
        ctx.call.kept = [ctx.input_storage(0), ctx.output_storage(0)]
        return None
    if dim is None:  # over everything: one value, input and result kept
        ctx.call.kept = [ctx.input_storage(0), ctx.output_storage(0)]
        return None
    if len(ctx.outs) < 2:
        return False
    ctx.call.kept = [ctx.output_storage(1)]  # the indices
    return None


@rule("index_select")
def index_select(ctx: Context) -> None:
    """``index_select(x, dim, index)``: backward ``index_add`` into zeros by the
    index, which is kept."""
    index = ctx.arg(2, "index")
    ctx.call.kept = _kept_indices(ctx, index)


@rule("topk")
def topk(ctx: Context) -> Optional[bool]:
    """``topk``: ``value_selecting_reduction_backward`` scatters the gradient by the
    int64 indices it returns, which are kept."""
    if len(ctx.outs) < 2:
        return False
    ctx.call.kept = [ctx.output_storage(1)]
    return None


@rule("scatter", "scatter_", "scatter_add", "scatter_add_")
def scatter(ctx: Context) -> None:
    """The index kept (``scatter_add``: only if the source requires grad)."""
    index = ctx.arg(2, "index")
    src = ctx.arg(3, "src", ctx.kwargs.get("value"))
    src_grad = isinstance(src, torch.Tensor) and src.requires_grad
    if src_grad or not ctx.name.startswith("scatter_add"):
        ctx.call.kept = _kept_indices(ctx, index)
