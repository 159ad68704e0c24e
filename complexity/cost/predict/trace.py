"""Trace one training step's forward: the functional calls, as a :class:`Graph`.

The structure is read off one forward pass on the meta device (shapes only, no
data, no autograd instrumentation) under a ``TorchFunctionMode``: the sequence of
functional calls (``conv2d``, ``batch_norm``, ``relu``, ``cat``, ``add_``,
``interpolate`` …), their tensor arguments, result shapes, and which arguments
derive from a trainable parameter. Each call is handed to its rule in
:mod:`complexity.cost.predict.rules`; cross-entropy, the loss, is handled here (two
autograd nodes: log-softmax, then nll_loss), whether the step calls it on the
logits or the model calls it itself (its own loss, ``labels=``:
:func:`complexity.cost.step.batch.loss_of`; ``Graph.loss`` is then the model's loss).

>>> from torch import nn
>>> g = trace(nn.Sequential(nn.Conv2d(2, 3, 1), nn.ReLU()), (1, 2, 4, 4))
>>> [c.name for c in g.calls]
['conv2d', 'relu', 'log_softmax', 'nll_loss']
>>> g.calls[0].forward_flops == 2 * (3 * 16) * 2
True
"""
from __future__ import annotations

import contextlib
import functools
from typing import List, Optional, Sequence

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

from complexity.cost.step.checkpointing import checkpoint_modules
from complexity.cost.predict.custom import functions
from complexity.cost.predict.graph import Call, Graph, Segment
from complexity.cost.predict.leaves import tensors
from complexity.cost.predict import meta_cache
from complexity.cost.predict.meta_cache import MetaCache
from complexity.cost.predict.shadow import Shadows, Unknown, wants_values
from complexity.cost.step.autocast import autocast_region
from complexity.cost.step.batch import loss_of, loss_target, logits, make_input, own_loss
from complexity.cost.step.state import known_values, stand_ins, tensor_attributes
from complexity.cost.predict.rules import Context, lookup
from complexity.cost.predict.rules.attention import upcasts_on_cpu
from complexity.counting.hooks import mode

#: Calls that only read sizes: not recorded.
_SIZES = ("dim", "size", "numel", "shape")


#: Python functionals that hide their inner calls from a ``TorchFunctionMode``
#: (PyTorch disables the mode while a handled function runs): the tracer runs
#: their body with itself active, so ``linear``, ``scaled_dot_product_attention``
#: or ``bmm``/``softmax``/``dropout``, views and copies are recorded one by one.
#: ``normalize`` (``x / x.norm(p, dim, keepdim=True).clamp_min(eps).expand_as(x)``)
#: likewise: its ``norm``, ``clamp_min``, ``expand_as`` and division meet their rules.
DESCEND = frozenset({"multi_head_attention_forward", "normalize"})

#: Calls that cast their own half-precision arguments up, autocast or not: the CPU
#: math path of ``scaled_dot_product_attention`` (``_scaled_dot_product_attention_math``)
#: runs a bfloat16/float16 query, key and value as float32 copies (``query_.to(kFloat)``,
#: an autograd node each: the copies are what its products keep). The tracer records
#: those casts as it records autocast's (:meth:`Tracer._casts`), whatever the step's
#: autocast: GPT-2 with bfloat16 weights keeps float32 attention tensors (real step).
#: Call name → whether this call (a :class:`~complexity.cost.predict.rules.Context`-like
#: view of its arguments) upcasts on the step's CPU.
UPCASTS = {"scaled_dot_product_attention": upcasts_on_cpu}


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
    return tensors(obj)


def _arg(args, kwargs, i, name, default=None):
    if name in kwargs:
        return kwargs[name]
    return args[i] if len(args) > i else default


class _Args:
    """A call's arguments read as a rule reads them (``arg(i, name)``, ``kwargs``)."""

    def __init__(self, args, kwargs):
        self.args, self.kwargs = args, kwargs

    def arg(self, i, name, default=None):
        return _arg(self.args, self.kwargs, i, name, default)


class Casts(TorchDispatchMode):
    """The dtype casts (``aten._to_copy``) made while one functional call runs, as
    ``(source, cast)`` pairs, and the ids of every tensor an aten op read: under
    ``torch.autocast`` these are the copies autocast makes of the call's arguments
    (and whether a cached copy was read again). Holds them only while the call runs.

    >>> with Casts() as rec:
    ...     _ = torch.ones(2).to(torch.float16)
    >>> [(a.dtype, b.dtype) for a, b in rec.casts]
    [(torch.float32, torch.float16)]
    """

    def __init__(self):
        super().__init__()
        self.casts: list = []
        self.read: set = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten._to_copy.default and isinstance(out, torch.Tensor) \
                and out.dtype != args[0].dtype:
            self.casts.append((args[0], out))
        else:
            self.read.update(id(t) for t in _tensors((args, kwargs)))
        return out


def _cast(src: int, dst: int, node: bool) -> Call:
    """A dtype cast the trace records itself (``_to_copy`` of value ``src`` into the
    new value ``dst``): keeps nothing; with a ``node``, it makes ``src``'s gradient."""
    return Call("_to_copy", [src], [dst], node=node, grad_inputs=[src] if node else [])


class Tracer(TorchFunctionMode):
    """Records every functional call into ``graph``, costed by its rule.

    ``autocast``: the calls run under ``torch.autocast``; the casts it inserts are
    recorded (one ``_to_copy`` call each: a new storage of the cast dtype, an
    autograd node that keeps nothing and makes the source's gradient) before the
    call, and the rule sees the cast copies in place of the arguments, so that it
    keeps what the real call keeps. A leaf parameter's copy is made once per
    autocast region (autocast's weight cache) and read again by later calls."""

    def __init__(self, graph: Graph, autocast: bool = False):
        super().__init__()
        self.g = graph
        self.autocast = autocast
        # id(source) -> (weak source, weak cast): autocast's cache, as seen; weak
        # only, so that the graph sees each copy freed when the real cache drops it.
        self.cached: dict = {}
        self.shadows = Shadows()  # the CPU values of what depends on no weight
        # a custom Function's backward being costed (predict/custom.py): not recorded
        self.paused = False
        self.dropping = False   # inside a checkpointed segment: autograd keeps nothing

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.paused:
            return func(*args, **kwargs)
        name = getattr(func, "__name__", str(func))
        if name == "__get__":
            # a property read (``x.shape``, ``w.T``, ``x.mT``, ``x.data``): named by
            # the property; one giving a tensor is a call like any other (Falcon's
            # ``input @ self.weight.T``: the transpose is how the weight is reached)
            name = getattr(getattr(func, "__self__", None), "__name__", name)
        if name in DESCEND:  # record the calls inside instead of the one call
            with self:
                return undispatched(func)(*args, **kwargs)
        casts = self.autocast or (name in UPCASTS and self.g.device_type == "cpu"
                                  and UPCASTS[name](_Args(args, kwargs)))
        if casts:
            with Casts() as rec:
                out, answered = self._run(name, func, args, kwargs)
        else:
            out, answered = self._run(name, func, args, kwargs)
        if name == "fn":  # torch.nn.functional's boolean_dispatch (max_pool2d)
            name = "max_pool2d"
        if name == "__setitem__" and isinstance(args[0], torch.Tensor):
            # ``x[i] = v`` (and ``x[i] += v``, which ends in it) returns None but
            # writes into ``x``: a new value of ``x``, whose gradient reaches ``v``
            # (MViT's relative positions and shortcut reach the loss only so).
            outs = [args[0]]
            self.shadows.record(func, args, kwargs, None)
        elif name in _SIZES or not _tensors(out):
            return out
        else:
            outs = _tensors(out)
            if not answered:
                self.shadows.record(func, args, kwargs, out)
        ins = _tensors((args, kwargs))
        if casts:
            args, kwargs, ins = self._casts(rec, ins, outs, args, kwargs)
            del rec
        if name == "cross_entropy":
            self._cross_entropy(args, kwargs, out)
            return out
        in_vals = [self.g.value(t) for t in ins]
        # Autograd makes a node when an argument requires grad and so does a result
        # (not for comparisons, not under no_grad).
        grad = (any(t.requires_grad for t in ins) and any(t.requires_grad for t in outs)
                and (out is not None or torch.is_grad_enabled()))
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

    def _run(self, name, func, args, kwargs):
        """``(func(*args, **kwargs), False)``; for a call that needs values the traced
        tensors lack (``Tensor.item()``, ``nonzero``, ``w[expert]``), its answer
        from the values (:meth:`Shadows.answer`; True where the call itself ran on
        them, not on the traced tensors). Recorded in ``Graph.data_reads`` (and
        ``weight_reads`` where the answer depends on a parameter's values)."""
        try:
            return func(*args, **kwargs), False
        except Exception as e:
            if not wants_values(e):
                raise
            try:
                out, answered, weights = self.shadows.answer(func, args, kwargs, e)
            except Unknown:
                raise e from None
            self.g.data_reads.add(name)
            if weights:
                self.g.weight_reads.add(name)
            return out, answered

    def _casts(self, rec: Casts, ins, outs, args, kwargs):
        """Record the casts autocast made of this call's arguments (a ``_to_copy``
        call each), and return ``args``, ``kwargs`` and ``ins`` with the copies in
        place of the arguments. A cast that is the call's own result (``x.to(...)``)
        is the call, not a cast of autocast's. A cached copy (a leaf that requires
        grad, cast by an earlier call of the region) is made by no op here: it is
        found again when an op of this call read it."""
        import weakref

        made = {id(o) for o in outs}
        swap = {}
        for src, dst in rec.casts:
            if id(dst) in made or not any(src is t for t in ins) or id(src) in swap:
                continue
            sv = self.g.value(src)
            node = src.requires_grad and dst.requires_grad
            self.g.calls.append(_cast(sv, self.g.value(dst, new=True), node))
            swap[id(src)] = dst
            if src.is_leaf and src.requires_grad:
                self.cached[id(src)] = (weakref.ref(src), weakref.ref(dst))
        for t in ins:
            src_ref, dst_ref = self.cached.get(id(t), (None, None))
            if id(t) not in swap and src_ref is not None and src_ref() is t:
                dst = dst_ref()
                if dst is not None and id(dst) in rec.read:
                    swap[id(t)] = dst
        if not swap:
            return args, kwargs, ins
        sub = lambda t: swap.get(id(t), t) if isinstance(t, torch.Tensor) else t  # noqa: E731
        args, kwargs = tree_map(sub, (args, kwargs))
        return args, kwargs, [sub(t) for t in ins]

    def _cross_entropy(self, args, kwargs, loss):
        """cross_entropy = log_softmax then nll_loss: two autograd nodes, whatever
        ``ignore_index`` (the ignored targets change no storage). Class-probability
        targets, class weights, label smoothing or a reduction other than the mean
        call more than these two: recorded as two, and reported unmodelled."""
        scores, target = args[0], _arg(args, kwargs, 1, "target")
        g = self.g
        if (target.is_floating_point() or _arg(args, kwargs, 2, "weight") is not None
                or _arg(args, kwargs, 7, "label_smoothing", 0.0)):
            g.unmodelled.add("cross_entropy")
        lv, tv = g.value(scores), g.value(target)
        grad = scores.requires_grad
        log_p = torch.empty_like(scores)  # the log-softmax output, a storage of its own
        pv = g.value(log_p, new=True)
        g.calls.append(Call("log_softmax", [lv], [pv], node=grad,
                            kept=[g.value_storage[pv]] if grad else [],
                            grad_inputs=[lv] if grad else []))
        if loss.dtype != scores.dtype:
            # autocast's float32 list holds nll_loss but not log_softmax (CUDA's): the
            # log-probabilities are cast, a storage of the loss's dtype nll_loss keeps
            cast = torch.empty_like(scores, dtype=loss.dtype)
            cv = g.value(cast, new=True)
            g.calls.append(_cast(pv, cv, grad))
            pv = cv
        # nll_loss's total_weight: a scalar of the (log-probabilities') dtype
        kept = ([g.value_storage[pv], g.value_storage[tv], g.new_storage(loss.element_size())]
                if grad else [])
        g.calls.append(Call("nll_loss", [pv, tv], [g.value(loss, new=True)], node=grad,
                            kept=kept, grad_inputs=[pv] if grad else []))


def trace(model: nn.Module, input_shape: Sequence[int], target=None,
          device_type: Optional[str] = None, *, input_dtype=None,
          input_high=None, dtype=None, autocast=None, checkpoint=None) -> Graph:
    """Run ``model`` (train mode) and its loss on meta tensors, recording calls: the
    model's own (``model(x, labels=labels).loss``, labels of ``target``'s shape or
    drawn as :meth:`complexity.cost.step.batch.Loss.labels` draws them) where
    :func:`complexity.cost.step.batch.loss_of` says it has one, cross-entropy on
    its logits otherwise.
    The input: float32 of ``input_shape`` by default, or ``input_dtype`` (e.g.
    ``torch.long`` token ids; ``input_high``, their bound, as
    :func:`complexity.cost.step.batch.make_input` takes it).

    Parameters are replaced by meta stand-ins with the same ``requires_grad``; the
    model itself is not modified (its train/eval modes are restored). ``dtype``:
    the floating-point parameters, buffers and a float input stored in that type
    instead (``model.to(dtype)``). ``autocast``: a dtype, forward and loss under
    ``torch.autocast`` of the step's device with it; autocast does not act on meta
    tensors, so the trace then runs on fake tensors of that device (the casts it
    inserts are recorded: :class:`Tracer`). ``checkpoint``: a glob of module names
    (:func:`complexity.cost.step.checkpointing.checkpoint_modules`); each call of a
    matched module is recorded as a :class:`complexity.cost.predict.graph.Segment`.

    >>> g = trace(nn.Sequential(nn.Linear(3, 2)), (4, 3), autocast=torch.bfloat16)
    >>> [(c.name, g.value_bytes[c.outputs[0]]) for c in g.calls][:4]  # bias, weight, input
    [('_to_copy', 4), ('_to_copy', 12), ('_to_copy', 24), ('linear', 16)]
    """
    if autocast is None:
        # meta tensors: their kernels' results remembered (predict/meta_cache.py),
        # unless another dispatch mode (a fake or symbolic trace) is below the tracer
        tensors = MetaCache() if meta_cache.active() else contextlib.nullcontext()
    else:  # fake tensors: autocast does not act on meta ones
        from torch._subclasses.fake_tensor import FakeTensorMode

        tensors = FakeTensorMode()
    with tensors:
        g = _trace(model, input_shape, target, device_type, input_dtype, input_high, dtype,
                   autocast, checkpoint)
    g.close()
    return g


def _trace(model, input_shape, target, device_type, input_dtype, input_high, dtype,
           autocast=None, checkpoint=None) -> Graph:
    g = Graph()
    # Where the real step runs: the parameters' device, and the CPU for a meta model
    # (the measurement steps it on fake CPU tensors; kernels differ by device).
    where = next(model.parameters()).device.type
    g.device_type = device_type or ("cpu" if where == "meta" else where)
    dev = "meta" if autocast is None else g.device_type  # fake tensors under autocast
    state = {}
    def stand_in(t, dtype=dtype):  # what model.to(dtype) would hold, on meta
        cast = dtype if dtype is not None and t.dtype.is_floating_point else t.dtype
        if dev == "meta":
            return torch.empty_like(t, device="meta", dtype=cast)
        # fake: as the measurement copies it (no empty_like of a real tensor there)
        return torch.empty_strided(t.shape, t.stride(), dtype=cast, device=dev)

    for n, p in model.named_parameters():
        state[n] = stand_in(p).requires_grad_(p.requires_grad)
        g.add_state(state[n], trainable=p.requires_grad)
    for n, b in model.named_buffers():
        state[n] = stand_in(b)
        g.add_state(state[n])
    # Plain tensor attributes (neither parameter nor buffer): meta stand-ins,
    # resident like buffers (the measurement copies them to the step's device).
    attributes = {k: stand_in(t, None) for k, t in tensor_attributes(model).items()}
    for t in attributes.values():
        g.add_state(t)
    x_dtype = input_dtype if input_dtype is not None else dtype
    x = make_input(input_shape, x_dtype, input_high, device=dev)
    g.resident.add(g.value_storage[g.value(x)])
    tracer = Tracer(g, autocast=autocast is not None)
    _known(tracer.shadows, model, state, attributes, dtype)
    tracer.shadows.leaf(x, lambda: make_input(input_shape, x_dtype, input_high))
    # A module's caller holds the module's arguments until it returns, whatever
    # the module does with them: record that as a read at the module's last call.
    held: list = []

    # Checkpointed modules: each call of one is a segment. Inside it autograd keeps
    # nothing (checkpoint's saved-tensor hooks hand it a placeholder), so the trace
    # drops what its nodes save too, and sees when Python frees what is left.
    matched = ({id(m): n for n, m in checkpoint_modules(model, checkpoint)}
               if checkpoint else {})
    segment: list = []  # the open segment: (module, Segment, saved-tensor hooks)

    def pre(m, args):
        held.append([g.value(t) for t in _tensors(args)])
        if id(m) in matched and not segment:
            sg = Segment(matched[id(m)], len(g.calls),
                         saved=[g.value_storage[g.value(a)] for a in args
                                if isinstance(a, torch.Tensor)],
                         held=[g.value_storage[v] for v in held[-1]])
            drop = torch.autograd.graph.saved_tensors_hooks(lambda _t: None, lambda _h: None)
            drop.__enter__()
            tracer.dropping = True  # a custom Function's saved tensors dropped too
            segment.append((m, sg, drop))

    def pre_kwargs(m, _args, kwargs):
        # torch gives a global pre-hook the positional arguments only: the tensors
        # passed by keyword (a transformers decoder layer's position_ids and rotary
        # position_embeddings) are held as well, by the caller and by checkpoint
        more = [g.value(t) for t in _tensors(kwargs)]
        if held and more:
            held[-1].extend(more)
            if segment and segment[-1][0] is m:
                segment[-1][1].held.extend(g.value_storage[v] for v in more)

    def post(m, _args, _out):
        for v in held.pop():
            g.held_until[g.value_storage[v]] = len(g.calls) - 1
        if segment and segment[-1][0] is m:
            _, sg, drop = segment.pop()
            drop.__exit__(None, None, None)
            tracer.dropping = False
            sg.end = len(g.calls)
            g.segments.append(sg)

    hooks = [nn.modules.module.register_module_forward_pre_hook(pre),
             nn.modules.module.register_module_forward_hook(post)]
    hooks += [m.register_forward_pre_hook(pre_kwargs, with_kwargs=True)
              for m in model.modules()]
    loss = loss_of(model)
    try:
        # Forward and loss in one autocast region, as a training loop writes it: the
        # cached weight copies live until it closes.
        with autocast_region(g.device_type, autocast):
            if loss.own:  # the model's own loss: its calls are the forward's
                labels = (loss.labels(x) if target is None
                          else torch.empty(target.shape, dtype=target.dtype, device=dev))
                g.resident.add(g.value_storage[g.value(labels)])
                if target is None:
                    tracer.shadows.leaf(labels, lambda: loss.labels(make_input(
                        input_shape, x_dtype, input_high)))
                with mode(model, True), torch.enable_grad(), \
                        stand_ins(model, state, attributes), tracer, functions(tracer):
                    value = own_loss(model, x, labels)
                g.loss = _loss_value(g, value)
                return g
            with mode(model, True), torch.enable_grad(), \
                    stand_ins(model, state, attributes), tracer, functions(tracer):
                out = logits(model(x))
            if target is None:
                target = torch.empty(out.shape[0], *out.shape[2:], dtype=torch.long, device=dev)
            target = loss_target(out, torch.empty(target.shape, dtype=target.dtype, device=dev))
            g.resident.add(g.value_storage[g.value(target)])
            with torch.enable_grad(), tracer:
                torch.nn.functional.cross_entropy(out, target)
    finally:
        for h in hooks:
            h.remove()
        for _, _, drop in segment:  # a forward that raised inside a segment
            drop.__exit__(None, None, None)
    return g


def _known(shadows: Shadows, model, state, attributes, dtype) -> None:
    """The stand-ins' CPU values as the real step holds them
    (:func:`complexity.cost.step.state.known_values`), as leaves of ``shadows``;
    the parameters' marked as weights (a value read from them is an estimate)."""
    for i, (n, t) in enumerate(model.named_parameters()):
        shadows.leaf(state[n], known_values(t, dtype, seed=i), weights=True)
    for n, t in model.named_buffers():
        shadows.leaf(state[n], known_values(t, dtype))
    for k, t in tensor_attributes(model).items():
        shadows.leaf(attributes[k], known_values(t))


def _loss_value(g: Graph, loss) -> int:
    """The value of the model's own ``loss``, which must be the last call's result
    (backward starts there: :func:`complexity.cost.predict.schedule.peak`)."""
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise ValueError("the model's own loss (labels=) gave no scalar loss")
    v = g.value(loss)
    if not g.calls or v not in g.calls[-1].outputs:
        raise ValueError(f"the model's own loss is not the result of its last call "
                         f"({g.calls[-1].name if g.calls else 'none'})")
    return v


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
    with torch.enable_grad(), Tracer(g) as tracer, functions(tracer):
        fn(*args, **kwargs)
    return g
