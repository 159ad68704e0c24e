"""Matrix products: matmul/``@`` of any ranks, mm, bmm, addmm, baddbmm.

2 FLOPs per multiply-add (``torch.utils.flop_counter``: ``mm_flop``, ``bmm_flop``,
``addmm_flop``, ``baddbmm_flop``); each operand's gradient is one more product of
the same size. ``mv`` and ``dot`` (a 1-D operand) count 0, as ``FlopCounterMode``
has no formula for them.

Kept (``derivatives.yaml``: mm, bmm, addmm, baddbmm, mv, dot): each matrix operand
for the other's gradient, only when that other one requires grad. ``mm``/``bmm``
keep what they are given, views included (the whole storage stays). ``matmul`` is
composite (``aten/src/ATen/native/LinearAlgebra.cpp``, ``_matmul_impl``): it
folds an N-D × 2-D product into one ``mm`` (``reshape(-1, K)``; always when the
2-D operand requires grad, otherwise only when that reshape is a view) and
otherwise expands the batch dimensions to their broadcast and reshapes both
operands to 3-D for ``bmm``. A ``reshape`` that no view can express copies, and
the copy, not the operand's storage, is what ``mm``/``bmm`` keep: a transposed
slice of a fused qkv projection keeps a third of it, not all of it.
:func:`matmul_plan` restates that algorithm on meta tensors with the operands'
sizes and strides; :mod:`.attention` uses it for attention's math path.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch

from complexity.cost.predict.rules.registry import Context, rule

#: What :func:`matmul_plan` says of one operand: None (not kept), ``"same"`` (its
#: own storage kept) or the bytes of the copy that is kept.
Kept = Optional[object]


def as_meta(t: torch.Tensor) -> torch.Tensor:
    """A meta tensor with ``t``'s sizes, strides and dtype (no grad, no data)."""
    return torch.empty_strided(tuple(t.shape), tuple(t.stride()), dtype=t.dtype, device="meta")


def _reshaped(t: torch.Tensor, size, shape) -> Tuple[bool, int]:
    """Is ``t.expand(size).reshape(shape)`` a view of ``t``? And its bytes."""
    n = math.prod(shape)
    try:
        t.expand(size).view(shape)
        return True, n * t.element_size()
    except (RuntimeError, ValueError):  # meta raises RuntimeError, fake ValueError
        return False, n * t.element_size()


def _keep(own: bool, nbytes: int, needed: bool, copies: Optional[list] = None) -> Kept:
    if not needed:
        if not own and copies is not None:
            copies.append(nbytes)
        return None
    return "same" if own else nbytes


def matmul_plan(a: torch.Tensor, b: torch.Tensor, a_grad: bool, b_grad: bool,
                copies: Optional[list] = None) -> Optional[Tuple[int, Kept, Kept]]:
    """``(flops, kept_a, kept_b)`` of ``torch.matmul(a, b)`` as ATen runs it, the
    operands given by sizes and strides (any device), ``a_grad``/``b_grad``
    whether each requires grad; None for a case not modelled. ``copies``: a list
    that receives the bytes of each operand's copy that is made but not kept
    (alive while the product runs).

    >>> x = torch.empty(2, 3, 4, 5, device="meta")
    >>> matmul_plan(x, x.transpose(-2, -1), True, True)   # bmm over 6: views, kept as they are
    (960, 'same', 'same')
    >>> k = torch.empty(2, 4, 3, 5, device="meta").transpose(1, 2)   # heads of a fused tensor
    >>> matmul_plan(x, k.transpose(-2, -1), True, True)   # kᵀ cannot be viewed as 3-D: a copy
    (960, 'same', 480)
    >>> matmul_plan(x, torch.empty(5, 7, device="meta"), True, False)   # folded to one mm
    (1680, None, 'same')
    """
    a, b = as_meta(a), as_meta(b)
    da, db = a.dim(), b.dim()
    if da == 0 or db == 0:
        return None
    if da <= 2 and db <= 2:
        flops = 2 * a.shape[0] * a.shape[1] * b.shape[1] if da == 2 and db == 2 else \
            2 * a.shape[0] * b.shape[1] if da == 1 and db == 2 else 0  # mv, dot: not counted
        return flops, _keep(True, 0, b_grad), _keep(True, 0, a_grad)
    larger = da >= db
    t1 = a if larger else b.mT
    small_grad = b_grad if larger else a_grad
    if t1.dim() >= 3 and min(da, db) <= 2:
        fold = small_grad or (da != 2 and (t1.numel() == 0 or all(
            t1.stride(i) == t1.stride(i + 1) * t1.shape[i + 1] for i in range(t1.dim() - 2))))
    else:
        fold = False
    if fold:
        rows = t1.numel() // t1.shape[-1]
        own, nbytes = _reshaped(t1, t1.shape, (rows, t1.shape[-1]))
        t2 = b if larger else (a.t() if da == 2 else a)
        flops = 2 * rows * t1.shape[-1] * t2.shape[-1] if t2.dim() == 2 else 0
        big = _keep(own, nbytes, small_grad, copies)
        big_grad_owner = a_grad if larger else b_grad
        other = _keep(True, 0, big_grad_owner)
        return (flops, big, other) if larger else (flops, other, big)
    if da == 1:  # a vector operand takes part as a 1-row or 1-column matrix (a view)
        a = a.unsqueeze(0)
    if db == 1:
        b = b.unsqueeze(-1)
    n, k = a.shape[-2:]
    p = b.shape[-1]
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    nb = math.prod(batch)
    own_a, bytes_a = _reshaped(a, (*batch, n, k), (nb, n, k))
    own_b, bytes_b = _reshaped(b, (*batch, k, p), (nb, k, p))
    return (2 * nb * n * k * p, _keep(own_a, bytes_a, b_grad, copies),
            _keep(own_b, bytes_b, a_grad, copies))


def storages(ctx: Context, plan_kept: List[Tuple[Kept, int]]) -> List[int]:
    """Storage ids for :func:`matmul_plan`'s answers: ``(kept, input index)``."""
    out = []
    for kept, i in plan_kept:
        if kept == "same":
            out.append(ctx.input_storage(i))
        elif kept is not None:
            out.append(ctx.new_storage(kept))
    return out


@rule("matmul", "__matmul__")
def matmul(ctx: Context) -> Optional[bool]:
    """What ``mm``/``bmm`` keep after matmul's folding or batching (copies where a
    reshape cannot view); 2·out·K FLOPs per product (0 for mv and dot)."""
    if len(ctx.ins) != 2:
        return False
    a, b = ctx.ins
    copies: list = []
    plan = matmul_plan(a, b, a.requires_grad, b.requires_grad, copies)
    if plan is None:
        return False
    flops, ka, kb = plan
    ctx.call.transient = sum(copies)  # an expanded operand's copy that no node keeps
    ctx.call.forward_flops = flops
    ctx.call.backward_flops = flops * (int(a.requires_grad) + int(b.requires_grad))
    ctx.call.kept = storages(ctx, [(ka, 0), (kb, 1)])
    return None


@rule("mm", "bmm", "addmm", "baddbmm")
def mm(ctx: Context) -> Optional[bool]:
    """The two matrix operands kept as given (each for the other's gradient);
    2·out·K FLOPs, the same again per operand gradient. ``addmm``/``baddbmm``'s
    added term needs nothing."""
    first = 1 if ctx.name.startswith("add") or ctx.name.startswith("badd") else 0
    if len(ctx.ins) != first + 2:
        return False
    a, b = ctx.ins[first], ctx.ins[first + 1]
    ctx.call.forward_flops = 2 * ctx.outs[0].numel() * a.shape[-1]
    ctx.call.backward_flops = ctx.call.forward_flops * (int(a.requires_grad) + int(b.requires_grad))
    ctx.call.kept = [ctx.input_storage(i) for i, other in ((first, b), (first + 1, a))
                     if other.requires_grad]
    return None
