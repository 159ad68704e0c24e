"""Element-wise calls (no FLOPs counted, as in ``FlopCounterMode``).

What each keeps for backward, when an autograd node is made
(``tools/autograd/derivatives.yaml``):

* ``mul``: d(a·b)/da = b and d(a·b)/db = a, so each tensor operand is kept when
  another operand requires grad; ``div`` by a tensor keeps the divisor for the
  dividend's gradient and both for the divisor's (``div_tensor_other_backward``);
  by a number, nothing.
* :data:`KEEP_OUTPUT` (``exp``, ``sqrt``, ``rsqrt``): the result.
* :data:`KEEP_INPUT` (``log``, ``abs``, ``clamp``): the input (an in-place form
  keeps a copy of it).
* ``pow``: by a number, the input (``pow_backward(grad, self, exponent)``); a
  number to a tensor power (``pow(2.0, t)``, ``2.0 ** t``: ``__rpow__``), the
  exponent and the result (``pow_backward_exponent(grad, self, exponent,
  result)``); a tensor to a tensor power, both and the result, whichever
  requires grad (the node saves what either derivative reads:
  ``pow_backward_self(grad, self, exponent)``, ``pow_backward_exponent``).
* ``number / x`` (``__rdiv__``: ``x.reciprocal() * number``): the reciprocal, a
  storage of the input's size (``reciprocal``'s backward reads its result; the
  product by a number keeps nothing); without a node, the reciprocal is a
  transient while the product is made.
* :data:`KEEP_NOTHING` (subtraction, negation, dtype conversions, the in-place
  fills and random fills — stochastic depth's ``empty().bernoulli_().div_()``
  noise — and the comparisons, whose bool result makes no node).
* ``clamp`` between tensors (``clamp_backward(grad, self, min, max)``,
  ``clamp_backward_min_max``): the input and the bounds.
* ``div_`` by a tensor in place: the divisor and, if it requires grad, a copy of
  the dividend's old value (``div_tensor_other_backward(grad, self, other)``).
* ``addcmul(x, t1, t2)``: ``t1`` if ``t2`` requires grad, ``t2`` if ``t1`` does.
* ``where(cond, a, b)`` and ``masked_fill(x, mask, v)``: the bool mask
  (``where(condition, grad, 0)``, ``grad.masked_fill(mask, 0)``); ``where(cond)``
  alone, positions (no node): nothing.

``where(cond)`` alone (``nonzero``'s positions) keeps nothing. A form not covered
(``pow_`` by a tensor, ``clamp_`` between tensors, ``__rdiv__`` of a tensor) is
declined: unmodelled.
"""
from __future__ import annotations

from typing import Optional

import torch

from complexity.cost.predict.rules.registry import Context, rule

#: Element-wise calls whose backward reads their result.
KEEP_OUTPUT = ("exp", "exp_", "sqrt", "sqrt_", "rsqrt", "rsqrt_")

#: Element-wise calls whose backward reads their input.
KEEP_INPUT = ("log", "abs", "clamp", "clamp_", "clamp_min", "clamp_max")

#: Element-wise calls whose backward needs no tensor (or that make no node).
KEEP_NOTHING = ("sub", "sub_", "__sub__", "__isub__", "__rsub__", "rsub", "neg", "__neg__",
                "to", "float", "double", "half", "type_as", "fill_", "zero_", "normal_",
                "uniform_", "bernoulli_", "bernoulli",
                "eq", "ne", "gt", "lt", "ge", "le", "__eq__", "__ne__", "__gt__", "__lt__",
                "__ge__", "__le__", "logical_not", "logical_and", "logical_or", "__invert__",
                "__and__", "__or__", "isnan", "isinf", "all", "any")


@rule("mul", "__mul__", "__rmul__")
def mul(ctx: Context) -> None:
    """Each tensor operand kept if another operand requires grad."""
    ctx.call.kept = [ctx.input_storage(i) for i in range(len(ctx.ins))
                     if any(o.requires_grad for j, o in enumerate(ctx.ins) if j != i)]


@rule("div", "div_", "__truediv__", "__itruediv__")
def div(ctx: Context) -> Optional[bool]:
    """a / b: b kept for a's gradient; a and b for b's (a number: nothing)."""
    if not ctx.ins:  # torch.div(7, 2, rounding_mode=...): numbers in, a new scalar out
        return None
    if len(ctx.ins) == 1:
        return None if ctx.ins[0] is ctx.args[0] else False  # by a number; else rdiv
    a, b = ctx.ins
    if ctx.name.endswith("_") or ctx.name.startswith("__i"):
        # in place: b kept, and a copy of a's old value for b's gradient
        ctx.call.kept = [ctx.input_storage(1)]
        if b.requires_grad:
            ctx.call.kept.append(ctx.new_storage(ctx.input_bytes(0)))
        return None
    kept = [ctx.input_storage(1)] if a.requires_grad or b.requires_grad else []
    if b.requires_grad:
        kept.insert(0, ctx.input_storage(0))
    ctx.call.kept = kept
    return None


@rule(*KEEP_OUTPUT)
def keep_output(ctx: Context) -> None:
    """The result kept."""
    ctx.call.kept = [ctx.output_storage(0)]


@rule(*KEEP_INPUT)
def keep_input(ctx: Context) -> Optional[bool]:
    """The input kept (in place: a copy of it); ``clamp`` between tensors: the input
    and the bounds."""
    if len(ctx.ins) > 1:
        if not ctx.name.startswith("clamp") or ctx.name.endswith("_"):
            return False
        ctx.call.kept = [ctx.input_storage(i) for i in range(len(ctx.ins))]
        return None
    if ctx.name.endswith("_") and not ctx.name.startswith("__") or ctx.name.startswith("__i"):
        ctx.call.kept = [ctx.new_storage(ctx.input_bytes(0))]
    else:
        ctx.call.kept = [ctx.input_storage(0)]
    return None


@rule(*KEEP_NOTHING)
def keep_nothing(ctx: Context) -> None:
    """Nothing kept."""


@rule("where")
def where(ctx: Context) -> Optional[bool]:
    """The condition kept (``where(cond)`` alone, a nonzero: positions, nothing)."""
    if len(ctx.args) + len(ctx.kwargs) < 3:
        return None if all(not t.is_floating_point() for t in ctx.outs) else False
    # the condition: the first argument of torch.where, the second of the method
    # form x.where(cond, y) (Longformer's masks): the boolean tensor
    bools = [i for i, t in enumerate(ctx.ins) if t.dtype is torch.bool]
    ctx.call.kept = [ctx.input_storage(bools[0] if bools else 0)]
    return None


@rule("masked_fill", "masked_fill_")
def masked_fill(ctx: Context) -> None:
    """The mask kept."""
    ctx.call.kept = [ctx.input_storage(1)]


@rule("pow", "__pow__", "pow_", "__ipow__", "__rpow__")
def pow_(ctx: Context) -> Optional[bool]:
    """By a number: the input (in place: a copy); of a number: the exponent and the
    result; tensor by tensor: both and the result."""
    base = ctx.arg(0, "self", ctx.arg(0, "input"))
    if ctx.name == "__rpow__" or not isinstance(base, torch.Tensor):
        ctx.call.kept = [ctx.input_storage(0), ctx.output_storage(0)]
        return None
    if len(ctx.ins) == 1:
        return keep_input(ctx)
    if ctx.name in ("pow_", "__ipow__"):
        return False  # the base's old value is overwritten
    ctx.call.kept = [ctx.input_storage(0), ctx.input_storage(1), ctx.output_storage(0)]
    return None


@rule("__rdiv__", "__rtruediv__")
def rdiv(ctx: Context) -> Optional[bool]:
    """``number / x``: the reciprocal kept (a storage of the input's size); a
    tensor numerator declined."""
    if len(ctx.ins) != 1:
        return False
    out = ctx.outs[0]
    nbytes = out.numel() * out.element_size()  # the reciprocal's (an int input's: float)
    if ctx.grad:
        ctx.call.kept = [ctx.new_storage(nbytes)]
    else:
        ctx.call.transient = nbytes
    return None


@rule("addcmul", "addcmul_")
def addcmul(ctx: Context) -> Optional[bool]:
    """``x + value · t1 · t2``: each factor kept if the other requires grad (in
    place too: ``x``'s gradient is the gradient itself)."""
    t1, t2 = ctx.arg(1, "tensor1"), ctx.arg(2, "tensor2")
    if not all(isinstance(t, torch.Tensor) for t in (t1, t2)):
        return False
    at = {id(t): i for i, t in enumerate(ctx.ins)}
    ctx.call.kept = [ctx.input_storage(at[id(t)]) for t, other in ((t1, t2), (t2, t1))
                     if other.requires_grad]
    return None
