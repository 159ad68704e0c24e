"""Element-wise arithmetic (no FLOPs counted, as in ``FlopCounterMode``).

``mul``: d(a·b)/da = b and d(a·b)/db = a, so each tensor operand is kept when
another operand requires grad. The other element-wise calls listed in
:data:`POINTWISE` have a rule only off the gradient path (e.g. stochastic
depth's noise, ``empty().bernoulli_().div_()``): there they keep nothing. On the
gradient path they are declined, so they are reported as unmodelled.
"""
from __future__ import annotations

from typing import Optional

from complexity.cost.rules.registry import Context, rule

#: Element-wise calls covered only when no gradient flows through them.
POINTWISE = ("bernoulli_", "div", "div_", "__truediv__", "__itruediv__", "sub", "sub_",
             "__sub__", "__rsub__", "fill_", "zero_", "normal_", "uniform_", "clamp",
             "clamp_", "softmax", "log_softmax", "exp", "log", "neg", "abs", "pow",
             "__pow__", "sqrt", "rsqrt", "where", "masked_fill", "to", "float", "type_as")


@rule("mul", "__mul__", "__rmul__")
def mul(ctx: Context) -> None:
    """Each tensor operand kept if another operand requires grad."""
    ctx.call.kept = [ctx.input_storage(i) for i in range(len(ctx.ins))
                     if any(o.requires_grad for j, o in enumerate(ctx.ins) if j != i)]


@rule(*POINTWISE)
def pointwise(ctx: Context) -> Optional[bool]:
    """Nothing kept, no FLOPs: off the gradient path only (declined on it)."""
    return False if ctx.grad else None
