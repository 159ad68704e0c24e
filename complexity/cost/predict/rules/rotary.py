"""Rotary position embeddings' calls: ``cos`` and ``sin`` (no FLOPs counted, as in
``FlopCounterMode``).

Kept (``derivatives.yaml``): ``cos``: ``grad * -self.sin().conj()``; ``sin``:
``grad * self.cos().conj()``: the input, when a node is made. A rotary table is
made from the ``inv_freq`` buffer and positions (no gradient: no node, nothing
kept); a learned frequency would keep its angles. The in-place forms overwrite
the input their backward reads: autograd keeps a copy (a storage of its own).
The rest of a rotary embedding (``x * cos + rotate_half(x) * sin``: ``mul``,
``neg``, ``cat``, slices) meets the rules of :mod:`.elementwise` and :mod:`.shape`.
"""
from __future__ import annotations

from complexity.cost.predict.rules.registry import Context, rule


@rule("cos", "sin", "cos_", "sin_")
def trig(ctx: Context) -> None:
    """The input kept (in place: a copy of it)."""
    if ctx.name.endswith("_"):
        ctx.call.kept = [ctx.new_storage(ctx.input_bytes(0))]
    else:
        ctx.call.kept = [ctx.input_storage(0)]
