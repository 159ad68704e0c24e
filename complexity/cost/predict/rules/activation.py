"""Element-wise activations (no FLOPs counted, as in ``FlopCounterMode``).

Kept (``derivatives.yaml``): relu, sigmoid and tanh compute their gradient from
their result and keep it; the others below compute it from their input and keep
that. An in-place form of those (``inplace=True`` or a trailing ``_``) would
overwrite the input, so autograd keeps a copy of it: a storage of its own --
except ``leaky_relu_`` and ``elu_``, whose in-place derivatives are written on
the result (``leaky_relu_backward(grad, result, ..., true)``,
``elu_backward(..., is_result=true, result)``): they keep the result, the very
storage they overwrote, and no copy.
"""
from __future__ import annotations

from complexity.cost.predict.rules.elementwise import keep_output
from complexity.cost.predict.rules.registry import Context, rule

#: Element-wise activations whose backward reads their input.
KEEP_INPUT = ("hardswish", "hardsigmoid", "silu", "gelu", "glu", "elu", "leaky_relu", "hardtanh",
              "relu6", "hardswish_", "hardsigmoid_", "silu_", "hardtanh_", "leaky_relu_", "elu_")


# Their backward reads the result, as exp's and sqrt's do: elementwise's rule.
rule("relu", "relu_", "sigmoid", "tanh")(keep_output)


#: Position of ``inplace`` in each functional's signature (``F.leaky_relu(x, slope,
#: inplace)``: ``nn.LeakyReLU`` passes it by position).
INPLACE_AT = {"leaky_relu": 2, "elu": 2, "hardtanh": 3, "relu6": 1, "hardswish": 1,
              "hardsigmoid": 1, "silu": 1}

#: In-place forms whose backward reads the result (the overwritten storage): no copy.
INPLACE_KEEPS_RESULT = ("leaky_relu", "elu")


def in_place(ctx: Context) -> bool:
    """``inplace=True`` (by keyword or by position) or a trailing ``_``."""
    if ctx.name.endswith("_"):
        return True
    at = INPLACE_AT.get(ctx.name)
    return bool(ctx.arg(at, "inplace", False)) if at is not None else False


@rule(*KEEP_INPUT)
def keep_input(ctx: Context) -> None:
    """The input kept; for the in-place forms, a copy of it (``leaky_relu_`` and
    ``elu_``: the result, which is the input's storage)."""
    if not in_place(ctx):
        ctx.call.kept = [ctx.input_storage(0)]
    elif ctx.name.rstrip("_") in INPLACE_KEEPS_RESULT:
        ctx.call.kept = [ctx.output_storage(0)]
    else:
        ctx.call.kept = [ctx.new_storage(ctx.input_bytes(0))]
