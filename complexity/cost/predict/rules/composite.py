"""Calls whose saved tensors and FLOPs follow from how ATen decomposes them:
``einsum``, ``gather``, ``norm``/``linalg.vector_norm``.

``einsum`` is ``CompositeImplicitAutograd`` (``aten/src/ATen/native/Linear.cpp``:
``einsum`` → permutes and ``sumproduct_pair`` → ``reshape``/``permute`` → ``bmm``,
or ``mul`` and ``sum`` where nothing is contracted; more than two operands in the
order ``opt_einsum`` picks). Autograd sees the inner ops, so what is kept is what
those ``bmm``/``mul`` keep: an operand as given when the permute+reshape that feeds
it is a view, a copy otherwise; the FLOPs are those of the ``bmm``\\ s. Rather than
restate that algorithm (its dimension ordering, its copies, its path choice), the
rule runs the call itself on meta tensors with the arguments' sizes, strides,
dtypes and ``requires_grad``, and reads off what autograd saves
(``saved_tensors_hooks``) and what ``FlopCounterMode`` counts
(:func:`complexity.cost.flops.flop_counter`), forward and backward: exact for the decomposition the real step runs (the same code path,
shapes alone decide it). A saved storage is the call's argument ``i`` when it is
that argument's (meta) storage, the result's when it is the result's, else a
storage of its own of the saved storage's size.

``gather`` keeps its index (``gather_backward(grad, self, dim, index, ...)``,
which reads only ``self``'s sizes) when its input requires grad; ``norm`` keeps its
input and its result (``linalg_vector_norm_backward(grad, self, ord, result, ...)``).
They go through the same emulation. So does ``nll_loss`` called by a model itself
(ProphetNet's loss; the step's own cross-entropy is the tracer's): ``nll_loss_nd``
reshapes by rank (``nll_loss``, ``nll_loss2d``) and keeps the log-probabilities,
the target, the class weights if given and ``total_weight``, a scalar
(``nll_loss_backward(grad, self, target, weight, reduction, ignore_index,
total_weight)``). And ``_weight_norm(v, g, dim)`` (wav2vec 2.0's positional
convolution): on the first or last dimension the fused ``_weight_norm_interface``
keeps ``v``, ``g`` and the norms (``_weight_norm_interface_backward(grad, v, g,
result1, dim)``), elsewhere ``v * (g / norm_except_dim(v, 2, dim))`` keeps what its
division and product keep.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._pytree import tree_flatten, tree_map

from complexity.cost.flops import flop_counter
from complexity.cost.predict.custom import Workspace
from complexity.cost.predict.rules.matmul import as_meta
from complexity.cost.predict.rules.registry import Context, rule


def _key(t: torch.Tensor) -> int:
    return StorageWeakRef(t.untyped_storage()).cdata


def _stand_in(t: torch.Tensor, device: str) -> torch.Tensor:
    """``t``'s sizes, strides and dtype on ``device`` (zeros on a real device)."""
    if device == "meta":
        return as_meta(t)
    return torch.empty_strided(tuple(t.shape), tuple(t.stride()), dtype=t.dtype,
                               device=device).zero_()


def _run(func, args, kwargs, leaves=()):
    """``(results, forward FLOPs, backward FLOPs, saved {storage: bytes}, forward
    workspace, backward workspace)`` of ``func`` run under the saved-tensor hooks,
    then backward from every result that requires grad (seeded with ones). With
    ``leaves`` (the stand-ins), backward from the first result alone, and its
    workspace: the most bytes its storages reach less the gradients it returns to
    ``leaves`` (the schedule allocates those), as for a custom Function
    (:func:`complexity.cost.predict.custom.backward_cost`)."""
    saved = {}

    def pack(t):
        saved.setdefault(_key(t), t.untyped_storage().nbytes())
        return t

    with torch.enable_grad(), flop_counter() as fwd, Workspace() as ws:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = func(*args, **kwargs)
    outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
    grads = [t for t in (outs[:1] if leaves else outs) if t.requires_grad]
    backward = most = 0
    if grads:
        seeds = [torch.ones_like(t) for t in grads]
        wants = [t for t in leaves if t.requires_grad]
        with flop_counter() as bwd, Workspace() as back:
            if wants:
                got = torch.autograd.grad(grads, wants, seeds, allow_unused=True)
                most = back.most - sum(g.untyped_storage().nbytes() for g in got
                                       if g is not None)
            else:
                torch.autograd.backward(grads, seeds)
        backward = bwd.get_total_flops()
    return outs, fwd.get_total_flops(), backward, saved, ws.most, max(0, most)


def emulate(ctx: Context, func, device: str = "meta",
            backward_workspace: bool = False) -> Optional[bool]:
    """Fill ``ctx.call`` by running ``func(*args, **kwargs)`` on stand-ins of the
    call's tensors on ``device`` (meta: no data; ``cpu``: zeros, for kernels whose
    saved buffers only the CPU kernel sizes): saved storages (as input/result/new)
    and FLOPs; with ``backward_workspace``, the backward's own temporaries from the
    first result (see :func:`_run`)."""
    metas = {}

    def meta(obj):
        if not isinstance(obj, torch.Tensor):
            return obj
        if id(obj) not in metas:
            m = _stand_in(obj, device)
            if obj.requires_grad and (m.is_floating_point() or m.is_complex()):
                m.requires_grad_(True)
            metas[id(obj)] = m
        return metas[id(obj)]

    args, kwargs = tree_map(meta, ctx.args), tree_map(meta, ctx.kwargs)
    try:
        outs, forward, backward, saved, most, back = _run(
            func, args, kwargs, list(metas.values()) if backward_workspace else ())
    except Exception:  # a form meta tensors cannot run: unmodelled
        return False
    if not outs or len(outs) != len(ctx.outs):
        return False
    where = {}
    for i, t in enumerate(ctx.ins):
        if id(t) in metas:
            where.setdefault(_key(metas[id(t)]), ("in", i))
    for i, t in enumerate(outs):
        where.setdefault(_key(t), ("out", i))
    kept = []
    for k, nbytes in saved.items():
        if not nbytes:
            continue
        kind, i = where.get(k, ("new", nbytes))
        kept.append(ctx.input_storage(i) if kind == "in" else
                    ctx.output_storage(i) if kind == "out" else ctx.new_storage(nbytes))
    ctx.call.kept = kept
    # the decomposition's copies no node keeps (einsum's reshape of a permuted
    # operand, when nothing trains): alive while the call runs
    made = (sum({_key(t): t.untyped_storage().nbytes() for t in outs}.values())
            + sum(ctx.graph.storage_bytes[s] for s in kept if s < 0))
    ctx.call.transient = max(0, most - made)
    ctx.call.forward_flops = forward
    ctx.call.backward_flops = backward
    ctx.call.backward_transient = back
    return None


@rule("einsum")
def einsum(ctx: Context) -> Optional[bool]:
    """What ATen's decomposition (permutes, reshapes, ``bmm``/``mul``, ``sum``)
    keeps and counts, read off a meta run."""
    return emulate(ctx, torch.einsum)


@rule("gather")
def gather(ctx: Context) -> Optional[bool]:
    """The index kept if the input requires grad; no FLOPs."""
    return emulate(ctx, torch.gather)


@rule("norm", "vector_norm", "linalg_vector_norm")
def norm(ctx: Context) -> Optional[bool]:
    """Input and result kept (vector norms); matrix norms declined."""
    p = ctx.arg(1, "p", ctx.kwargs.get("ord", 2))
    if isinstance(p, str) and p != "fro":
        return False
    return emulate(ctx, torch.Tensor.norm if ctx.name == "norm" else torch.linalg.vector_norm)


@rule("nll_loss")
def nll_loss(ctx: Context) -> Optional[bool]:
    """The log-probabilities, the target (weights) and ``total_weight`` kept."""
    return emulate(ctx, torch.nn.functional.nll_loss)


@rule("_weight_norm")
def weight_norm(ctx: Context) -> Optional[bool]:
    """``torch.nn.utils.parametrizations.weight_norm``'s ``w = g · v / ‖v‖``: the
    direction, the magnitude and the norms kept (fused on the first or last dim)."""
    return emulate(ctx, torch._weight_norm)
