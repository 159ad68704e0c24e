"""Calls that keep nothing for backward and cost no FLOPs.

Views (:data:`complexity.cost.predict.graph.ALIASING`) make no storage (``contiguous`` or
``reshape`` of a tensor no view can express copies: the trace sees the new
storage, and the copy's backward keeps nothing); the calls of
:data:`KEEP_NOTHING` need only sizes for their backward (``derivatives.yaml``):
concatenation, addition, nearest/bilinear upsampling, sums and means,
``roll``, ``flip``, ``tile``/``repeat``, ``chunk``/``split``; ``one_hot`` (an
integer result, no node); ``broadcast_to``, a view, as ``expand``; ``pad`` in ``constant`` or ``circular`` mode
(``reflect``/``replicate`` padding keeps its input). The factories of
:data:`FACTORIES` allocate their result and make no autograd node.
"""
from __future__ import annotations

from complexity.cost.predict.graph import ALIASING, SHARES_GRAD
from complexity.cost.predict.rules.registry import Context, rule

#: Calls that keep nothing for backward (their backward needs only sizes).
KEEP_NOTHING = ("cat", "concat", "stack", "add", "add_", "__add__", "__iadd__", "__radd__",
                "interpolate", "upsample", "sum", "mean", "roll", "chunk", "split", "unbind",
                "clone", "flip", "tile", "repeat", "one_hot")

#: Calls that make a new tensor from sizes (and a dtype), not from values.
FACTORIES = ("zeros", "ones", "empty", "full", "randn", "rand", "randint", "arange", "eye",
             "linspace", "empty_strided", "zeros_like", "ones_like", "empty_like", "full_like",
             "rand_like", "randn_like", "new_zeros", "new_ones", "new_full", "new_empty",
             "tensor", "as_tensor", "scalar_tensor", "new_tensor")


@rule(*sorted(ALIASING - {"__getitem__"}), *KEEP_NOTHING, *FACTORIES)  # x[i]: .index
def keep_nothing(ctx: Context) -> None:
    """Nothing kept, no FLOPs; the calls of :data:`complexity.cost.predict.graph.SHARES_GRAD`
    hand the output gradient on (``Call.shares_grad``)."""
    if ctx.name in SHARES_GRAD:
        # expand's backward is sum_to_size, which sums away the leading dimensions
        # an expand adds (a new tensor, even of the input's size: MViT's class token
        # ``class_token.expand(B, -1)`` at B = 1); without new ones, at equal sizes,
        # it hands the gradient itself on.
        ctx.call.shares_grad = not (ctx.name in ("expand", "expand_as")
                                    and ctx.ins[0].dim() != ctx.outs[0].dim())


@rule("pad")
def pad(ctx: Context) -> None:
    """Constant and circular padding keep nothing; reflect and replicate keep the
    input (``reflection_pad*d_backward(grad, self, padding)``)."""
    if ctx.arg(2, "mode", "constant") in ("reflect", "replicate"):
        ctx.call.kept = [ctx.input_storage(0)]


@rule("broadcast_to")
def broadcast_to(ctx: Context) -> None:
    """An ``expand``: its gradient handed on unless it adds dimensions (summed away)."""
    ctx.call.shares_grad = ctx.ins[0].dim() == ctx.outs[0].dim()
