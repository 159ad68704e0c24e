"""Position, index and dtype calls of text models (no FLOPs counted, as in
``FlopCounterMode``).

Kept (``derivatives.yaml``):

* :data:`KEEP_NOTHING` — ``cumsum`` (``cumsum_backward(grad, dim)``: a reversed
  cumulative sum of the gradient, sizes only), ``tril``/``triu``
  (``grad.tril(diagonal)``), ``copy_`` (the gradient passed to the source,
  zeroed for the destination), ``tensor_split`` (views), ``repeat_interleave``
  with a number of repeats (``CompositeImplicitAutograd``: ``unsqueeze``,
  ``expand``, ``clone``, ``flatten``: the clone and the views keep nothing), and
  the dtype casts text models make of position ids and masks (``long``, ``int``,
  ``bool``, ...): of an integer or boolean tensor they make no node; of a float
  one (``_to_copy``'s backward is a cast back) they keep nothing either.
* ``repeat_interleave`` with a tensor of repeats: ``index_select`` of the input by
  the repeated positions, which keeps that index (int64, one per output row along
  ``dim``) when the input requires grad.
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

#: Calls whose backward needs sizes only (or that make no node).
KEEP_NOTHING = ("cumsum", "cumsum_", "tril", "triu", "tril_", "triu_", "copy_", "tensor_split",
                "long", "int", "bool", "short", "byte", "char", "bfloat16", "type")


@rule(*KEEP_NOTHING)
def keep_nothing(ctx: Context) -> None:
    """Nothing kept."""


@rule("repeat_interleave")
def repeat_interleave(ctx: Context) -> None:
    """Nothing kept for a number of repeats; the output's index for a tensor of them."""
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
