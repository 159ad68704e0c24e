"""Dropout (no FLOPs counted).

In training with p > 0 dropout keeps its mask. CUDA runs the fused
``native_dropout`` and keeps a bool mask (1 byte an element); other devices
(``aten/native/Dropout.cpp``, ``_dropout_impl``) multiply by a noise tensor of
the input's dtype and keep that. With no gradient to compute, the mask is made,
used and dropped inside the call. In eval mode, or with p = 0, dropout is the
identity: ``at::dropout`` returns its input itself (no kernel, no node of its
own), so the gradient passes through without a new buffer (torchvision's ViT runs
``Dropout(0.0)`` in every MLP block: +2.7% on the peak when this was a copy).
"""
from __future__ import annotations

from complexity.cost.predict.rules.registry import Context, rule


@rule("dropout")
def dropout(ctx: Context) -> None:
    """The mask kept (bool on CUDA, the input's dtype elsewhere), or transient."""
    p = ctx.arg(1, "p", 0.5)
    if ctx.arg(2, "training", True) and p > 0:
        out = ctx.outs[0]
        per = 1 if ctx.graph.device_type == "cuda" else out.element_size()
        if ctx.grad:
            ctx.call.kept = [ctx.new_storage(per * out.numel())]
        else:
            ctx.call.transient = per * out.numel()
    else:
        ctx.call.shares_grad = True
