"""Element-wise calls of text models' activations and gates (no FLOPs counted, as
in ``FlopCounterMode``).

Kept (``derivatives.yaml``):

* ``softplus`` (``softplus_backward(grad, self, beta, threshold)``), ``square``
  (``pow(self, 2)``: ``pow_backward(grad, self, 2)``), ``erf``, ``log1p``,
  ``mish`` (``mish_backward(grad, self)``): the input.
* ``expm1`` (``grad * (result.conj() + 1)``), ``reciprocal``: the result.
* ``logsigmoid``: the input and its ``buffer`` (``log_sigmoid_forward``'s second
  result, the input's size; on the CPU a storage of its own).
* ``mul_`` in place: by a number, nothing; by a tensor ``b``, ``b`` for the
  gradient of ``a`` and, if ``b`` requires grad, ``a``'s value before the call (a
  copy: the call overwrites it).
"""
from __future__ import annotations

from typing import Optional

from complexity.cost.predict.rules.registry import Context, rule


@rule("softplus", "square", "erf", "log1p", "mish")
def keep_input(ctx: Context) -> None:
    """The input kept."""
    ctx.call.kept = [ctx.input_storage(0)]


@rule("expm1", "reciprocal")
def keep_output(ctx: Context) -> None:
    """The result kept."""
    ctx.call.kept = [ctx.output_storage(0)]


@rule("logsigmoid", "log_sigmoid")
def logsigmoid(ctx: Context) -> None:
    """The input and a buffer of its size."""
    ctx.call.kept = [ctx.input_storage(0), ctx.new_storage(ctx.input_bytes(0))]


@rule("mul_", "__imul__")
def mul_(ctx: Context) -> Optional[bool]:
    """By a number: nothing; by a tensor: it, and a copy of the old value if it trains."""
    if len(ctx.ins) == 1:
        return None if ctx.ins[0] is ctx.args[0] else False
    a, b = ctx.ins[0], ctx.ins[1]
    # ``a`` is overwritten: whether its old value required grad is read off the
    # node the call made (its first edge is None when it did not).
    node = ctx.outs[0].grad_fn
    a_grad = node is not None and node.next_functions[0][0] is not None
    kept = []
    if a_grad:
        kept.append(ctx.input_storage(1))
    if b.requires_grad:
        kept.append(ctx.new_storage(ctx.input_bytes(0)))
    ctx.call.kept = kept
    return None
