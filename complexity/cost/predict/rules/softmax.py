"""Softmax and log-softmax (no FLOPs counted, as in ``FlopCounterMode``).

Kept (``derivatives.yaml``: ``_softmax``, ``_log_softmax``): the result only,
``_softmax_backward_data(grad, result, dim, dtype)``. With ``dtype=`` the input
is converted first; the conversion keeps nothing. ``softmin`` is the softmax of
the negated input: its result is kept the same way. ``logsumexp`` keeps its input
and its result (``logsumexp_backward(grad, self, result, dim, keepdim)``: the
softmax ``exp(self - result)`` is recomputed in backward).
"""
from __future__ import annotations

from complexity.cost.predict.rules.registry import Context, rule


@rule("softmax", "log_softmax", "softmin", "_softmax", "_log_softmax", "_safe_softmax")
def softmax(ctx: Context) -> None:
    """The result kept."""
    ctx.call.kept = [ctx.output_storage(0)]


@rule("logsumexp")
def logsumexp(ctx: Context) -> None:
    """The input and the result kept."""
    ctx.call.kept = [ctx.input_storage(0), ctx.output_storage(0)]
