"""Trace one training step's forward: the functional calls, as a :class:`Graph`.

The structure is read off one forward pass on the meta device (shapes only, no
data, no autograd instrumentation) under a ``TorchFunctionMode``: the sequence of
functional calls (``conv2d``, ``batch_norm``, ``relu``, ``cat``, ``add_``,
``interpolate`` …), their tensor arguments, result shapes, and which arguments
derive from a trainable parameter. Each call is handed to its rule in
:mod:`complexity.cost.rules`; cross-entropy, the loss, is handled here (two
autograd nodes: log-softmax, then nll_loss).

>>> from torch import nn
>>> g = trace(nn.Sequential(nn.Conv2d(2, 3, 1), nn.ReLU()), (1, 2, 4, 4))
>>> [c.name for c in g.calls]
['conv2d', 'relu', 'log_softmax', 'nll_loss']
>>> g.calls[0].forward_flops == 2 * (3 * 16) * 2
True
"""
from __future__ import annotations

import functools
from typing import List, Optional, Sequence

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from complexity.cost.graph import Call, Graph
from complexity.cost.measure import loss_target, logits, make_input, stand_ins, tensor_attributes
from complexity.cost.rules import Context, lookup
from complexity.counting.hooks import mode

#: Calls that only read sizes: not recorded.
_SIZES = ("dim", "size", "__get__", "numel", "shape")


#: Python functionals that hide their inner calls from a ``TorchFunctionMode``
#: (PyTorch disables the mode while a handled function runs): the tracer runs
#: their body with itself active, so ``linear``, ``scaled_dot_product_attention``
#: or ``bmm``/``softmax``/``dropout``, views and copies are recorded one by one.
#: ``normalize`` (``x / x.norm(p, dim, keepdim=True).clamp_min(eps).expand_as(x)``)
#: likewise: its ``norm``, ``clamp_min``, ``expand_as`` and division meet their rules.
DESCEND = frozenset({"multi_head_attention_forward", "normalize"})


@functools.lru_cache(maxsize=None)
def undispatched(func):
    """``func``'s own body, with its ``has_torch_function*`` checks answering False
    (a copy of the function over a copy of its globals): run under the tracer, its
    inner calls dispatch to the tracer instead of the function itself.

    >>> import torch.nn.functional as F
    >>> undispatched(F.multi_head_attention_forward).__code__ is F.multi_head_attention_forward.__code__
    True
    """
    import types

    never = lambda *_: False  # noqa: E731
    scope = dict(func.__globals__, has_torch_function=never, has_torch_function_unary=never,
                 has_torch_function_variadic=never)
    body = types.FunctionType(func.__code__, scope, func.__name__, func.__defaults__,
                              func.__closure__)
    body.__kwdefaults__ = func.__kwdefaults__
    return body


def _tensors(obj) -> List[torch.Tensor]:
    return [t for t in tree_flatten(obj)[0] if isinstance(t, torch.Tensor)]


def _arg(args, kwargs, i, name, default=None):
    if name in kwargs:
        return kwargs[name]
    return args[i] if len(args) > i else default


class Tracer(TorchFunctionMode):
    """Records every functional call into ``graph``, costed by its rule."""

    def __init__(self, graph: Graph):
        super().__init__()
        self.g = graph

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if name in DESCEND:  # record the calls inside instead of the one call
            with self:
                return undispatched(func)(*args, **kwargs)
        out = func(*args, **kwargs)
        if name == "fn":  # torch.nn.functional's boolean_dispatch (max_pool2d)
            name = "max_pool2d"
        if name in _SIZES or not _tensors(out):
            return out
        ins = _tensors((args, kwargs))
        outs = _tensors(out)
        if name == "cross_entropy":
            self._cross_entropy(args, kwargs, out)
            return out
        in_vals = [self.g.value(t) for t in ins]
        # Autograd makes a node when an argument requires grad and so does a result
        # (not for comparisons, not under no_grad).
        grad = any(t.requires_grad for t in ins) and any(t.requires_grad for t in outs)
        call = Call(name, in_vals, [self.g.value(t, new=True) for t in outs], node=grad)
        rule = lookup(name)  # factories (torch.empty, randn …) too: no call passes unseen
        if rule is None or rule(Context(name, args, kwargs, ins, outs, call, self.g, grad)) is False:
            # No rule (or declined): keeps nothing and costs no FLOPs here, on the
            # gradient path or off it (its forward FLOPs may be missing either way).
            call.kept, call.forward_flops, call.backward_flops, call.transient = [], 0, 0, 0
            self.g.unmodelled.add(name)
        if not call.node:
            call.kept, call.backward_flops = [], 0
        call.grad_inputs = [v for t, v in zip(ins, in_vals) if t.requires_grad]
        self.g.calls.append(call)
        return out

    def _cross_entropy(self, args, kwargs, loss):
        """cross_entropy = log_softmax then nll_loss: two autograd nodes."""
        scores, target = args[0], _arg(args, kwargs, 1, "target")
        g = self.g
        lv, tv = g.value(scores), g.value(target)
        grad = scores.requires_grad
        log_p = torch.empty_like(scores)  # the log-softmax output, a storage of its own
        pv = g.value(log_p, new=True)
        g.calls.append(Call("log_softmax", [lv], [pv], node=grad,
                            kept=[g.value_storage[pv]] if grad else [],
                            grad_inputs=[lv] if grad else []))
        # nll_loss's total_weight: a scalar of the scores' dtype
        kept = ([g.value_storage[pv], g.value_storage[tv], g.new_storage(scores.element_size())]
                if grad else [])
        g.calls.append(Call("nll_loss", [pv, tv], [g.value(loss, new=True)], node=grad,
                            kept=kept, grad_inputs=[pv] if grad else []))


def trace(model: nn.Module, input_shape: Sequence[int], target=None,
          device_type: Optional[str] = None, *, input_dtype=None,
          input_high=None, dtype=None) -> Graph:
    """Run ``model`` (train mode) and cross-entropy on meta tensors, recording calls.
    The input: float32 of ``input_shape`` by default, or ``input_dtype`` (e.g.
    ``torch.long`` token ids; ``input_high``, their bound, as
    :func:`complexity.cost.measure.make_input` takes it).

    Parameters are replaced by meta stand-ins with the same ``requires_grad``; the
    model itself is not modified (its train/eval modes are restored). ``dtype``:
    the floating-point parameters, buffers and a float input stored in that type
    instead (``model.to(dtype)``)."""
    g = Graph()
    # Where the real step runs: the parameters' device, and the CPU for a meta model
    # (the measurement steps it on fake CPU tensors; kernels differ by device).
    where = next(model.parameters()).device.type
    g.device_type = device_type or ("cpu" if where == "meta" else where)
    state = {}
    def stand_in(t):  # what model.to(dtype) would hold, on meta
        cast = dtype if dtype is not None and t.dtype.is_floating_point else t.dtype
        return torch.empty_like(t, device="meta", dtype=cast)

    for n, p in model.named_parameters():
        state[n] = stand_in(p).requires_grad_(p.requires_grad)
        g.add_state(state[n], trainable=p.requires_grad)
    for n, b in model.named_buffers():
        state[n] = stand_in(b)
        g.add_state(state[n])
    # Plain tensor attributes (neither parameter nor buffer): meta stand-ins,
    # resident like buffers (the measurement copies them to the step's device).
    attributes = {k: torch.empty_like(t, device="meta")
                  for k, t in tensor_attributes(model).items()}
    for t in attributes.values():
        g.add_state(t)
    x = make_input(input_shape, input_dtype if input_dtype is not None else dtype,
                   input_high, device="meta")
    g.resident.add(g.value_storage[g.value(x)])
    # A module's caller holds the module's arguments until it returns, whatever
    # the module does with them: record that as a read at the module's last call.
    held: list = []

    def pre(_m, args):
        held.append([g.value(t) for t in _tensors(args)])

    def post(_m, _args, _out):
        for v in held.pop():
            g.held_until[g.value_storage[v]] = len(g.calls) - 1

    hooks = [nn.modules.module.register_module_forward_pre_hook(pre),
             nn.modules.module.register_module_forward_hook(post)]
    try:
        with mode(model, True), torch.enable_grad(), stand_ins(model, state, attributes), \
                Tracer(g):
            out = logits(model(x))
        if target is None:
            target = torch.empty(out.shape[0], *out.shape[2:], dtype=torch.long, device="meta")
        target = loss_target(out, target.to("meta"))
        g.resident.add(g.value_storage[g.value(target)])
        with torch.enable_grad(), Tracer(g):
            torch.nn.functional.cross_entropy(out, target)
    finally:
        for h in hooks:
            h.remove()
    return g


def trace_calls(fn, *args, device_type: str = "cpu", state=(), **kwargs) -> Graph:
    """Record the calls of ``fn(*args, **kwargs)`` alone: no loss, no model, the
    tensors as given (real or meta, with their own ``requires_grad``). ``state``:
    tensors to register as parameters or buffers (never counted as kept).
    For checking a rule on one call.

    >>> import torch
    >>> x = torch.ones(2, 3, requires_grad=True)
    >>> g = trace_calls(torch.relu, x)
    >>> [(c.name, [g.storage_bytes[s] for s in c.kept]) for c in g.calls]
    [('relu', [24])]
    """
    g = Graph()
    g.device_type = device_type
    for t in state:
        g.add_state(t, trainable=t.requires_grad)
    with torch.enable_grad(), Tracer(g):
        fn(*args, **kwargs)
    return g
