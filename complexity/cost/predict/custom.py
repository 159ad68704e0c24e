"""Custom ``torch.autograd.Function``\ s in a traced forward (Bloom's GeLU): no
``TorchFunctionMode`` sees their ``apply``, so while the tracer runs,
:func:`functions` routes it through :func:`record`, which records the forward's
calls, then the Function's own node — what ``ctx.save_for_backward`` saved, and
its backward's FLOPs and temporaries read off one run of that backward
(:func:`backward_cost`).
"""
from __future__ import annotations

import contextlib
import functools

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from complexity.cost.predict.graph import Call


def _tensors(obj):
    return [t for t in tree_flatten(obj)[0] if isinstance(t, torch.Tensor)]


class Workspace(TorchDispatchMode):
    """The most bytes of new storages alive at once while it is active (weak
    references: a storage counts until Python frees it; a view or an in-place
    result, whose storage an argument has, is none)."""

    def __init__(self):
        super().__init__()
        self.live = self.most = 0
        self._seen: dict = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        import weakref

        out = func(*args, **(kwargs or {}))
        read = {id(t.untyped_storage()) for t in _tensors((args, kwargs))}
        for t in _tensors(out):
            st = t.untyped_storage()
            if id(st) in read or (id(st) in self._seen and self._seen[id(st)]() is st):
                continue  # a view, or an in-place result: no new storage
            self._seen[id(st)] = weakref.ref(st, functools.partial(self._free, st.nbytes()))
            self.live += st.nbytes()
            self.most = max(self.most, self.live)
        return out

    def _free(self, nbytes, _ref):
        self.live -= nbytes


def backward_cost(cls, args, kwargs):
    """``(FLOPs, workspace)`` of the backward of custom Function ``cls`` applied to
    ``args``: run once on detached copies of its tensor arguments (the traced
    application stays untouched), under :func:`complexity.cost.flops.flop_counter`
    and a count of the storages the backward makes; the workspace is their most
    bytes alive at once less the gradients it returns (the schedule allocates those)."""
    from complexity.cost.flops import flop_counter

    fresh = tree_map(lambda t: t.detach().requires_grad_(t.requires_grad)
                     if isinstance(t, torch.Tensor) else t, (args, kwargs))
    with torch.enable_grad():
        out = cls.apply(*fresh[0], **fresh[1])
    outs = [t for t in _tensors(out) if t.requires_grad]
    wants = [t for t in _tensors(fresh) if t.requires_grad]
    seeds = [torch.empty_like(t) for t in outs]
    with flop_counter() as flops, Workspace() as ws:
        grads = torch.autograd.grad(outs, wants, seeds, allow_unused=True)
        returned = sum(g.untyped_storage().nbytes() for g in grads if g is not None)
    return flops.get_total_flops(), max(0, ws.most - returned)


@contextlib.contextmanager
def functions(tracer):
    """While active, ``apply`` of every custom ``torch.autograd.Function`` defined
    outside torch goes through :func:`record` (PyTorch's own, such as a
    reentrant checkpoint's, run as they are).

    >>> class Twice(torch.autograd.Function):
    ...     forward = staticmethod(lambda ctx, x: x * 2)
    ...     backward = staticmethod(lambda ctx, g: g * 2)
    >>> from complexity.cost.predict.trace import Graph, Tracer
    >>> g, x = Graph(), torch.ones(3, requires_grad=True)
    >>> with torch.enable_grad(), Tracer(g) as t, functions(t):
    ...     _ = Twice.apply(x)
    >>> [(c.name, c.node) for c in g.calls]
    [('mul', False), ('Twice', True)]
    """
    base = torch.autograd.Function
    original = base.__dict__["apply"]

    def apply(cls, *args, **kwargs):
        bound = original.__get__(None, cls)
        if tracer.paused or cls.__module__.split(".")[0] == "torch":
            return bound(*args, **kwargs)
        return record(tracer, cls, bound, args, kwargs)
    base.apply = classmethod(apply)
    try:
        yield
    finally:
        base.apply = original


def record(tracer, cls, apply, args, kwargs):
    """``cls.apply(*args, **kwargs)`` (``apply``: bound to ``cls``) into
    ``tracer``'s graph: its forward's calls are
    recorded one by one (under no_grad: no nodes), then the Function's own node,
    one call named after the class, from its tensor arguments to its results. It
    keeps what ``ctx.save_for_backward`` saved (the saved-tensor hooks see it);
    its backward's FLOPs and the most bytes its temporaries hold beyond the
    gradients it returns are read off one run of that backward
    (:func:`backward_cost`)."""
    saved: list = []

    def pack(t):
        saved.append(t)
        return None if tracer.dropping else t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = apply(*args, **kwargs)
    ins, outs = _tensors((args, kwargs)), _tensors(out)
    in_vals = [tracer.g.value(t) for t in ins]
    grad = any(t.requires_grad for t in ins) and any(t.requires_grad for t in outs)
    call = Call(cls.__name__, in_vals, [tracer.g.value(t, new=True) for t in outs], node=grad,
                kept=list(dict.fromkeys(tracer.g.value_storage[tracer.g.value(t)]
                                        for t in saved)) if grad else [])
    if grad:
        tracer.paused = True
        try:
            call.backward_flops, call.backward_transient = backward_cost(
                cls, args, kwargs)
        finally:
            tracer.paused = False
    call.grad_inputs = [v for t, v in zip(ins, in_vals) if t.requires_grad] if grad else []
    tracer.g.calls.append(call)
    return out
