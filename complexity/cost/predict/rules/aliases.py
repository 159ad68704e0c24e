"""Other names text models call (no FLOPs counted, as in ``FlopCounterMode``).

Kept (``tools/autograd/derivatives.yaml``):

* ``multiply`` (ConvBERT), ``torch.mul``'s alias: :func:`.elementwise.mul`'s rule,
  each tensor operand kept if another requires grad.
* ``acos`` (``grad * -((-self * self + 1).rsqrt())``), ``asin``: the input.
* ``as_strided`` (Longformer's chunks), a view: its backward
  (``as_strided_backward(grad, TensorGeometry(self), ...)``) needs the input's
  geometry only; nothing kept.
* ``diff`` (a difference of two slices, ``SubBackward0``): nothing kept; with
  ``n > 1``, ``prepend`` or ``append`` (intermediate tensors) declined.
* ``exponential_`` (Phi-MoE's sampling noise), a random fill: nothing kept.
* ``requires_grad_`` and the ``torch.nn.init`` fills a forward may call on a new
  tensor (``kaiming_uniform_``, ``xavier_uniform_`` …, under ``no_grad``): no
  node, nothing kept.
"""
from __future__ import annotations

from typing import Optional

from complexity.cost.predict.rules.elementwise import mul
from complexity.cost.predict.rules.registry import Context, rule

rule("multiply")(mul)

#: A view by strides, in-place initialisers and flags: nothing kept.
INITS = ("as_strided", "exponential_", "requires_grad_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
         "xavier_normal_", "trunc_normal_", "orthogonal_", "constant_", "ones_", "zeros_")


@rule(*INITS)
def keep_nothing(ctx: Context) -> None:
    """Nothing kept."""


@rule("acos", "asin")
def keep_input(ctx: Context) -> None:
    """The input kept."""
    ctx.call.kept = [ctx.input_storage(0)]


@rule("diff")
def diff(ctx: Context) -> Optional[bool]:
    """``x[1:] - x[:-1]`` along ``dim``: nothing kept; more than one difference, or
    a tensor prepended or appended, declined (their temporaries)."""
    if ctx.arg(1, "n", 1) != 1 or len(ctx.ins) > 1:
        return False
    return None
