"""``instance_norm`` (no FLOPs counted: element-wise).

ATen runs it as a training ``batch_norm`` over ``(1, N·C, …)``
(``aten/src/ATen/native/Normalization.cpp``, ``instance_norm``): the input is
kept (a contiguous copy when it is not contiguous: ``input.contiguous().view``),
with a ``save_mean`` and a ``save_invstd`` of N·C elements, and — since batch
norm's backward reads them — the affine weight and the running statistics as
``repeat(N)`` copies of N·C elements each (new tensors, not the parameters).
"""
from __future__ import annotations

import torch

from complexity.cost.predict.rules.norm import stat_size
from complexity.cost.predict.rules.registry import Context, rule


@rule("instance_norm")
def instance_norm(ctx: Context) -> None:
    """Input (or its contiguous copy), two N·C statistics, the repeated weight and
    running statistics kept."""
    x = ctx.ins[0]
    nc = x.shape[0] * x.shape[1]
    stats = nc * stat_size(ctx, ctx.arg(3, "weight"))
    kept = [ctx.input_storage(0) if x.is_contiguous() else ctx.new_storage(ctx.input_bytes(0))]
    for i, name in ((3, "weight"), (1, "running_mean"), (2, "running_var")):
        t = ctx.arg(i, name)
        if isinstance(t, torch.Tensor):
            kept.append(ctx.new_storage(nc * t.element_size()))
    if not ctx.arg(5, "use_input_stats", True):  # eval with running statistics
        ctx.call.kept = kept
        return
    ctx.call.kept = kept + [ctx.new_storage(stats), ctx.new_storage(stats)]
    if not ctx.grad:
        ctx.call.transient = 2 * stats
