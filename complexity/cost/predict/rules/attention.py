"""Attention: ``scaled_dot_product_attention`` (and the views attention uses).

``nn.MultiheadAttention`` needs no rule of its own: its functional,
``multi_head_attention_forward``, is one call that hides its ``linear``,
``bmm``/``baddbmm``, ``softmax``, ``dropout`` or ``scaled_dot_product_attention``
calls, so :mod:`complexity.cost.predict.trace` runs its body under the tracer
(``DESCEND``) and each inner call meets its own rule.

``scaled_dot_product_attention`` picks a kernel (``aten/src/ATen/native/
transformers/sdp_utils_cpp.cpp``, ``select_sdp_backend_cpp``). On the CPU:

* **flash** (``_scaled_dot_product_flash_attention_for_cpu``) when the runtime
  flag allows it, ``dropout_p == 0``, q, k, v are 3- or 4-D with equal batch and
  head counts and equal head dimensions, non-empty, with unit last stride, of
  float32/64, bfloat16 or float16, and the mask (if any) needs no grad and has a
  2-D or broadcastable 4-D shape. Its backward (``derivatives.yaml``) keeps
  query, key, value and output as they are (their storages), ``logsumexp`` (one
  value per query row, float32 for the reduced types) and the mask: a float mask
  itself, a boolean (or causal-free) one converted to the query's dtype first.
  ``FlopCounterMode`` has no formula for this kernel: 0 FLOPs both ways.
* **math** (``_scaled_dot_product_attention_math``) otherwise, composite:
  ``q·√s`` and ``kᵀ·√s`` (new tensors), ``matmul``, the mask added, a softmax
  (its result kept), ``dropout`` (CPU: the float noise kept, and the dropped
  weights fed to the next product), ``matmul`` with v. Each ``matmul`` keeps what
  :func:`.matmul.matmul_plan` says (copies where a reshape cannot view) and costs
  its bmm FLOPs. A bfloat16/float16 query, key and value (half-precision
  weights, or autocast) are first copied to float32 (``query_.to(kFloat)``, an
  autograd node each), so everything the path keeps is float32, v's copy
  included, and the output is cast back: the tracer records those casts before
  the call where the CPU takes this path
  (:data:`complexity.cost.predict.trace.UPCASTS`, :func:`upcasts_on_cpu`) and the rule sees the
  copies as its arguments (GPT-2 in bfloat16: exact against a real step).

Grouped-query attention (``enable_gqa=True``, fewer key/value heads than query
heads, a divisor of them): the CPU flash kernel takes k and v as they are and
keeps them so (``ScaledDotProductFlashAttentionForCpuBackward0`` saves the
grouped k and v, the query-headed output and logsumexp); the math path first
repeats k and v to the query's heads (``repeat_interleave`` along the head
dimension: new tensors, alive to the end of the call), and then proceeds as above
on the copies: v's copy is what the second product keeps.

On other devices (flash/efficient/cuDNN kernels with their own saved tensors)
the call is declined: unmodelled, and reported.
"""
from __future__ import annotations

from typing import Optional

import torch

from complexity.cost.predict.rules.matmul import as_meta, matmul_plan
from complexity.cost.predict.rules.registry import RULES, Context, rule

_FLASH_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def flash_on_cpu(q, k, v, mask, dropout_p: float, enable_gqa: bool = False) -> bool:
    """Would ``select_sdp_backend_cpp`` pick the CPU flash kernel?"""
    if not torch.backends.cuda.flash_sdp_enabled() or dropout_p > 0:
        return False
    if not (q.dim() == k.dim() == v.dim() and q.dim() in (3, 4)):
        return False
    lead = q.dim() - 2
    if q.shape[:lead] != k.shape[:lead] or q.shape[:lead] != v.shape[:lead]:
        if not enable_gqa:
            return False
    if mask is not None and not _mask_fits(q, k, mask):
        return False
    if not q.shape[-1] == k.shape[-1] == v.shape[-1]:
        return False
    # an empty dimension, each compared with 0 (a min() would compare symbolic sizes
    # with each other: a guard on the batch in a symbolic trace)
    if any(d == 0 for d in (q.shape[-2], k.shape[-2], q.shape[-1], *q.shape[:lead])):
        return False
    if any(t.stride(-1) != 1 for t in (q, k, v)):
        return False
    return q.dtype in _FLASH_DTYPES and q.dtype == k.dtype == v.dtype


def _mask_fits(q, k, mask) -> bool:
    """``check_attn_mask_shape``: no grad; 2-D, or 4-D broadcasting to (batch,
    heads). The CPU first unsqueezes 3-D q, k, v to (1, …) and a mask of up to
    3 dimensions with them to 4-D (a 3-D mask then passes: SAM's decomposed
    relative-position bias)."""
    shape = tuple(mask.shape)
    lead = tuple(q.shape[:-2])
    if q.dim() == 3:
        lead = (1, *lead)
        if mask.dim() in (2, 3):
            shape = (1,) * (4 - mask.dim()) + shape
    if mask.requires_grad or len(shape) not in (2, 4):
        return False
    if shape[-2] not in (1, q.shape[-2]) or shape[-1] not in (1, k.shape[-2]):
        return False
    return len(shape) == 2 or (shape[0] in (1, lead[0]) and shape[1] in (1, lead[1]))


def _layout_like(out: torch.Tensor, q: torch.Tensor) -> None:
    """The CPU flash kernel allocates its output like the query (``empty_like``:
    a (B, L, H, E) layout for heads sliced from a fused projection), so that a
    later ``permute(...).contiguous()`` may copy nothing; a meta tensor's output is
    contiguous instead. Restride a meta result as the CPU's would be."""
    want = torch.empty_like(as_meta(q)).stride()
    if out.device.type == "meta" and out.shape == q.shape and out.stride() != want:
        with torch.no_grad():
            out.as_strided_(out.shape, want)


def _sdpa_args(ctx) -> tuple:
    """``(query, key, value, attn_mask, dropout_p, enable_gqa)`` of the call
    (``ctx``: anything with ``arg`` and ``kwargs``, as :class:`Context`)."""
    return (ctx.arg(0, "query"), ctx.arg(1, "key"), ctx.arg(2, "value"),
            ctx.arg(3, "attn_mask"), float(ctx.arg(4, "dropout_p", 0.0)),
            bool(ctx.kwargs.get("enable_gqa", False)))


def upcasts_on_cpu(ctx) -> bool:
    """Does the CPU math path run this call on float32 copies of a bfloat16/float16
    query, key and value (the casts the tracer then records)? Decided as the CPU
    does (:func:`flash_on_cpu`), not by the traced tensors' device: on meta, sdpa
    takes the math path even where the CPU takes the flash kernel (a Llama in
    bfloat16, no dropout: its q, k, v kept as given, not as float32 copies)."""
    q, k, v, mask, p, gqa = _sdpa_args(ctx)
    if not all(isinstance(t, torch.Tensor) for t in (q, k, v)):
        return False
    return (q.dtype in (torch.float16, torch.bfloat16)
            and not flash_on_cpu(q, k, v, mask, p, gqa))


@rule("scaled_dot_product_attention")
def scaled_dot_product_attention(ctx: Context) -> Optional[bool]:
    """The CPU flash kernel's or the math path's kept tensors and FLOPs."""
    if ctx.graph.device_type != "cpu":
        return False
    q, k, v, mask, p, gqa = _sdpa_args(ctx)
    grouped = gqa and q.dim() >= 3 and q.shape[-3] != k.shape[-3]
    if grouped and (k.shape[-3] == 0 or q.shape[-3] % k.shape[-3] or k.shape[-3] != v.shape[-3]):
        return False  # not a grouping sdpa accepts: it raises
    iq, ik, iv = (next(i for i, t in enumerate(ctx.ins) if t is x) for x in (q, k, v))
    if flash_on_cpu(q, k, v, mask, p, gqa):
        acc = 4 if q.dtype in (torch.float16, torch.bfloat16) else q.element_size()
        rows = q.numel() // q.shape[-1]
        kept = [ctx.input_storage(iq), ctx.input_storage(ik), ctx.input_storage(iv),
                ctx.output_storage(0), ctx.new_storage(acc * rows)]
        if mask is not None:
            if mask.dtype == torch.bool:
                kept.append(ctx.new_storage(mask.numel() * q.element_size()))
            else:
                kept.append(ctx.input_storage(next(i for i, t in enumerate(ctx.ins) if t is mask)))
        ctx.call.kept = kept
        _layout_like(ctx.outs[0], q)
        return None
    # The math path.
    gq, gk, gv = q.requires_grad, k.requires_grad, v.requires_grad
    repeated = 0
    if grouped:  # k and v repeated to the query's heads first: new tensors
        n = q.shape[-3] // k.shape[-3]
        k = as_meta(k).repeat_interleave(n, dim=-3)
        v = as_meta(v).repeat_interleave(n, dim=-3)
        repeated = _nbytes(k) + _nbytes(v)
    qs = as_meta(q) * 1.0
    kt = as_meta(k).transpose(-2, -1) * 1.0
    first = matmul_plan(qs, kt, gq, gk)
    scores = torch.matmul(qs, kt)
    second = matmul_plan(scores, v, gq or gk, gv)
    if first is None or second is None:
        return False
    kept = []
    # q·√s and kᵀ·√s are new tensors: whatever the first product keeps of them is new.
    for plan, t in ((first[1], qs), (first[2], kt)):
        if plan is not None:
            kept.append(ctx.new_storage(_nbytes(t) if plan == "same" else plan))
    nbytes = _nbytes(scores)
    if gq or gk:
        kept.append(ctx.new_storage(nbytes))          # the softmax result
        if p > 0:
            kept.append(ctx.new_storage(nbytes))      # dropout's noise (CPU: a float tensor)
    if second[1] is not None:  # the weights (the softmax result, or dropped), for v's gradient
        reuse = p == 0 and (gq or gk)
        kept.append(kept[-1] if reuse else ctx.new_storage(nbytes))
    if second[2] is not None:
        if second[2] != "same":
            kept.append(ctx.new_storage(second[2]))
        else:  # v itself, or its repeated copy
            kept.append(ctx.new_storage(_nbytes(v)) if grouped else ctx.input_storage(iv))
    ctx.call.kept = kept
    made = sum(ctx.graph.storage_bytes[s] for s in dict.fromkeys(kept) if s < 0)
    ctx.call.transient = max(0, repeated + _math_high_water(
        qs, kt, scores, v, mask, p, first, second, bool(ctx.arg(5, "is_causal", False)),
        ctx.outs[0].dtype) - _nbytes(ctx.outs[0]) - made)
    ctx.call.forward_flops = first[0] + second[0]
    ctx.call.backward_flops = first[0] * (int(gq) + int(gk)) + second[0] * (int(gq or gk) + int(gv))
    return None


def _nbytes(t) -> int:
    return t.numel() * t.element_size()


def _math_high_water(qs, kt, scores, v, mask, p: float, first, second, causal: bool,
                     origin=None) -> int:
    """The most bytes the math path has alive at once beyond its arguments, its
    output included (``_scaled_dot_product_attention_math``, op by op as a
    dispatch log shows it on the CPU): the float mask made from a boolean or causal
    one; ``q·√s`` (a local, alive to the end); ``kᵀ·√s`` and the copies
    ``matmul`` makes to fold each operand to 3-D (freed when the product returns,
    unless kept); the scores; ``scores + mask`` (out of place); the softmax; on
    dropout, its noise and the dropped weights (alive to the end: returned as the
    call's second result); the copies of the second product and its output.
    ``origin``: the call's result dtype. A bfloat16/float16 call on the CPU runs
    the math in float32 (its arguments as float32 copies, which the trace records
    as casts before the call) and returns ``(matmul(attn, v).to(origin),
    attn.to(origin))``, the second cast made first (right-to-left argument
    evaluation): the weights in ``origin`` are alive beside the float32 product,
    and then so is the product cast down (BERT with LoRA under bfloat16 autocast
    peaks there).
    ``first``, ``second``: :func:`.matmul.matmul_plan` of each product, kept-for-
    backward answers (``"same"``, bytes of a copy, None); what they keep stays
    alive to the end. Without a gradient nothing is kept, but the intermediates
    still exist: this is the call's transient peak (BERT, GPT-2 with attention
    dropout, ``last`` mode)."""
    q_b, k_b, s_b = _nbytes(qs), _nbytes(kt), _nbytes(scores)
    out_b = s_b // scores.shape[-1] * v.shape[-1]
    copy1 = matmul_plan(qs, kt, True, True)        # copies made whether or not kept
    copy2 = matmul_plan(scores, v, True, True)
    copies1 = sum(c for c in copy1[1:] if c != "same")
    copies2 = sum(c for c in copy2[1:] if c != "same")
    moments = []
    mask_b = 0
    if causal:  # ones(L, S).tril() (bool), then where() to a float mask, after q·√s
        ls = scores.shape[-2] * scores.shape[-1]
        moments += [q_b + 2 * ls, q_b + ls + 8 + ls * qs.element_size()]
        mask_b = ls * qs.element_size()
    elif mask is not None and mask.dtype == torch.bool:  # where(mask, 0, -inf): two scalars
        mask_b = mask.numel() * qs.element_size()
        moments.append(mask_b + 8)
    base = q_b + mask_b
    # After the first product: what it keeps of kᵀ·√s or the copies (q·√s is alive anyway).
    after1 = sum(c for c in first[1:] if c not in (None, "same"))
    after1 += k_b if first[2] == "same" else 0
    moments.append(base + k_b + copies1 + s_b)
    if mask is not None or causal:
        moments.append(base + after1 + 2 * s_b)    # scores + mask, out of place
    moments.append(base + after1 + 2 * s_b)        # the softmax beside its argument
    grad_w = first[1] is not None or first[2] is not None  # q or k receives a gradient
    after2 = 0
    if p > 0:
        moments.append(base + after1 + 3 * s_b)    # softmax, noise, dropped weights
        after2 = 2 * s_b if grad_w else 0           # softmax result and noise, kept
    moments.append(base + after1 + after2 + s_b + copies2 + out_b)
    if origin is not None and origin != scores.dtype:
        down = scores.numel() * origin.itemsize            # attn.to(origin), alive to the end
        kept2 = sum(c for c in second[1:] if c not in (None, "same"))  # kept copies stay
        moments.append(base + after1 + after2 + s_b + down + copies2 + out_b)
        moments.append(base + after1 + after2 + s_b + down + kept2 + out_b
                       + out_b // scores.element_size() * origin.itemsize)
    return max(moments)


def _keep_mask(ctx: Context) -> None:
    """``masked_fill``: the mask kept (``derivatives.yaml``: grad.masked_fill(mask, 0))."""
    if len(ctx.ins) > 1:
        ctx.call.kept = [ctx.input_storage(1)]


# Calls multi_head_attention_forward makes besides the ones above: views and
# ``repeat`` (bias_k, bias_v; its backward needs sizes only) keep nothing, and
# ``masked_fill_`` (a boolean mask made additive) keeps its mask. A rule another
# family registers for these names takes precedence (that module is imported first).
for _name, _fn in (("unflatten", lambda ctx: None), ("repeat", lambda ctx: None),
                   ("masked_fill_", _keep_mask)):
    if _name not in RULES:
        rule(_name)(_fn)
