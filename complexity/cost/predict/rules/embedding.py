"""Embedding lookup (no FLOPs counted: a gather).

Kept (``derivatives.yaml``: ``embedding``, weight: ``embedding_backward(grad,
indices, num_weights, padding_idx, scale_grad_by_freq, sparse)``): the indices,
and only when the weight requires grad; the indices never get a gradient. The
weight's gradient is dense (the weight's size, as any parameter's) or, with
``sparse=True``, a sparse tensor of one row per index: the saved tensors are the
same either way.
"""
from __future__ import annotations

from complexity.cost.predict.rules.registry import Context, rule


@rule("embedding")
def embedding(ctx: Context) -> None:
    """The indices kept, if the weight trains."""
    if len(ctx.ins) >= 2 and ctx.ins[1].requires_grad:
        ctx.call.kept = [ctx.input_storage(0)]
