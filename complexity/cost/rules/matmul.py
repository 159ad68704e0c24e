"""Matrix products of operands with at least two dimensions: matmul, ``@``, bmm, mm.

2 FLOPs per multiply-add: output elements × the contracted size; each operand's
gradient is one more product of the same size, and each operand is kept for the
other's gradient (``derivatives.yaml``: mm, bmm). An N-D × 2-D matmul folds its
first operand to 2-D first (a copy when no view can). A product with a 1-D
operand is declined: unmodelled.
"""
from __future__ import annotations

from typing import Optional

from complexity.cost.rules.registry import Context, rule


@rule("matmul", "__matmul__", "bmm", "mm")
def matmul(ctx: Context) -> Optional[bool]:
    """Both operands kept (each for the other's gradient); 2·out·K FLOPs."""
    if len(ctx.ins) != 2 or min(ctx.ins[0].dim(), ctx.ins[1].dim()) < 2:
        return False
    a, b = ctx.ins
    ctx.call.forward_flops = 2 * ctx.outs[0].numel() * a.shape[-1]
    ctx.call.backward_flops = ctx.call.forward_flops * (int(a.requires_grad) + int(b.requires_grad))
    first = ctx.folded(0) if b.dim() == 2 else ctx.input_storage(0)
    ctx.call.kept = [s for s, other in ((first, b), (ctx.input_storage(1), a))
                     if other.requires_grad]
    return None
