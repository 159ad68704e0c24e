"""Element-wise activations (no FLOPs counted, as in ``FlopCounterMode``).

Kept (``derivatives.yaml``): relu, sigmoid and tanh compute their gradient from
their result and keep it; the others below compute it from their input and keep
that. An in-place form of those (``inplace=True`` or a trailing ``_``) would
overwrite the input, so autograd keeps a copy of it: a storage of its own.
"""
from __future__ import annotations

from complexity.cost.rules.registry import Context, rule

#: Element-wise activations whose backward reads their input.
KEEP_INPUT = ("hardswish", "hardsigmoid", "silu", "gelu", "elu", "leaky_relu", "hardtanh",
              "relu6", "hardswish_", "hardsigmoid_", "silu_", "hardtanh_")


@rule("relu", "relu_", "sigmoid", "tanh")
def keep_output(ctx: Context) -> None:
    """The result kept."""
    ctx.call.kept = [ctx.output_storage(0)]


@rule(*KEEP_INPUT)
def keep_input(ctx: Context) -> None:
    """The input kept; for the in-place forms, a copy of it."""
    if ctx.kwargs.get("inplace", False) or ctx.name.endswith("_"):
        ctx.call.kept = [ctx.new_storage(ctx.input_bytes(0))]
    else:
        ctx.call.kept = [ctx.input_storage(0)]
