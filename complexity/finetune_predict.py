"""The cost of one training step, predicted from the model's structure.

The structure is read off one forward pass on the meta device (shapes only, no
data, no autograd instrumentation) under a ``TorchFunctionMode``: the sequence of
functional calls (``conv2d``, ``batch_norm``, ``relu``, ``cat``, ``add_``,
``interpolate`` …), their tensor arguments, result shapes, and which arguments
derive from a trainable parameter. Per-call rules then say what one Adam step
costs; they restate PyTorch's derivative definitions
(``tools/autograd/derivatives.yaml``) and ``torch.utils.flop_counter``'s formulas:

=================  ==================================  =============================
call               kept for backward (if a grad flows)  FLOPs (forward; backward)
=================  ==================================  =============================
conv2d, linear     input (weight is a parameter)        2·out·fan-in; same again for
                                                         input grad, for weight grad
batch_norm, train  input, save_mean, save_invstd (2C)   0
relu               output                               0
max_pool2d         input, int64 indices (output size)   0
adaptive_avg_pool  input                                0
dropout, train     mask: bool on CUDA, else float noise 0
cross_entropy      log-softmax output, target,          0
                   total_weight (a 4-byte scalar)
cat, add, views,   nothing                              0
interpolate
=================  ==================================  =============================

A call makes an autograd node only if one of its tensor arguments requires grad
("input gradients only where something upstream trains"). Memory is the sum of
resident storages (parameters, buffers, Adam's two moments and step counter per
trainable tensor, input and target) plus a liveness schedule: forward outputs
live until their last use or, if kept, until their node's backward; backward
runs the nodes in reverse order, each allocating its input gradients before it
frees its output gradient and kept tensors; ``Adam(foreach=False)`` then needs two
temporaries the size of a parameter (``exp_avg_sq.sqrt() / c``) plus the
previous parameter's ``denom``.

>>> from models.stack import Stack
>>> p = predict(Stack(2, 4), (1, 4, 8, 8))
>>> p["forward_flops"] == 2 * 64 * (2 * 4 * 36 + 2 * 4)
True
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

#: Calls whose result is a view or the argument itself: no new storage, nothing kept.
_ALIASING = {"view", "reshape", "flatten", "__getitem__", "contiguous", "squeeze",
             "unsqueeze", "permute", "transpose", "narrow", "detach"}
#: Calls that keep nothing for backward (derivatives.yaml needs only sizes).
_KEEP_NOTHING = {"cat", "add", "add_", "__add__", "__iadd__", "__radd__", "interpolate",
                 "upsample", "sum", "mean", "zeros", "ones", "empty", "randn"}


@dataclass
class Call:
    """One functional call of the forward pass, with what it costs."""

    name: str
    inputs: List[int]                 # value ids read
    outputs: List[int]                # value ids made
    node: bool = False                # an autograd node is created
    kept: List[int] = field(default_factory=list)        # storage ids kept for backward
    grad_inputs: List[int] = field(default_factory=list)  # values that receive a gradient
    forward_flops: int = 0
    backward_flops: int = 0


class Graph:
    """Values (tensor versions) and storages seen in the forward, and the calls."""

    def __init__(self):
        self.calls: List[Call] = []
        self.value_bytes: Dict[int, int] = {}     # value -> bytes of its gradient
        self.value_storage: Dict[int, int] = {}
        self.storage_bytes: Dict[int, int] = {}
        self.resident: set = set()                # storages alive throughout the step
        self.params: Dict[int, int] = {}          # value -> bytes, trainable parameters
        self.unmodelled: set = set()
        self._ids: Dict[int, int] = {}            # id(tensor) -> latest value
        self._hold: list = []                     # keeps ids unique while tracing
        self._state_storages: set = set()
        self.device_type = "cpu"                  # where the real step would run
        self.held_until: Dict[int, int] = {}      # storage -> last call of the module it entered

    def value(self, t: torch.Tensor, new: bool = False) -> int:
        key = id(t)
        if key in self._ids and not new:
            return self._ids[key]
        self._hold.append(t)
        v = len(self.value_bytes)
        self._ids[key] = v
        st = t.untyped_storage()
        self._hold.append(st)
        self.value_bytes[v] = t.numel() * t.element_size()
        self.value_storage[v] = id(st)
        self.storage_bytes.setdefault(id(st), st.nbytes())
        return v

    def params_storages(self) -> set:
        """Storages of parameters and buffers (not activations)."""
        return self._state_storages

    def new_storage(self, nbytes: int) -> int:
        """A storage made inside a call and kept for backward (indices, masks, stats)."""
        key = -len(self.storage_bytes) - 1
        self.storage_bytes[key] = nbytes
        return key


def _tensors(obj) -> List[torch.Tensor]:
    return [t for t in tree_flatten(obj)[0] if isinstance(t, torch.Tensor)]


def _arg(args, kwargs, i, name, default=None):
    if name in kwargs:
        return kwargs[name]
    return args[i] if len(args) > i else default


def _fan_in_flops(out: torch.Tensor, weight: torch.Tensor) -> int:
    # torch.utils.flop_counter.conv_flop_count / mm_flop: 2 FLOPs per multiply-add.
    return 2 * out.numel() * weight[0].numel()


class _Tracer(TorchFunctionMode):
    def __init__(self, graph: Graph):
        super().__init__()
        self.g = graph

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", str(func))
        if name == "fn":  # torch.nn.functional's boolean_dispatch (max_pool2d)
            name = "max_pool2d"
        if name in ("dim", "size", "__get__", "numel", "shape") or not _tensors(out):
            return out
        ins = _tensors((args, kwargs))
        outs = _tensors(out)
        if name == "cross_entropy":
            self._cross_entropy(args, kwargs, out)
            return out
        in_vals = [self.g.value(t) for t in ins]
        grad = any(t.requires_grad for t in ins)
        call = Call(name, in_vals, [self.g.value(t, new=True) for t in outs], node=grad)
        x = ins[0]
        if name in ("conv2d", "linear"):
            w = _arg(args, kwargs, 1, "weight")
            call.forward_flops = _fan_in_flops(outs[0], w)
            call.backward_flops = call.forward_flops * (int(x.requires_grad) + int(w.requires_grad))
            call.kept = [self.g.value_storage[in_vals[0]]]
        elif name == "batch_norm":
            if _arg(args, kwargs, 5, "training", False):
                c = x.shape[1]
                call.kept = [self.g.value_storage[in_vals[0]],
                             self.g.new_storage(4 * c), self.g.new_storage(4 * c)]
            else:
                call.kept = [self.g.value_storage[in_vals[0]]]
        elif name in ("relu", "relu_"):
            call.kept = [self.g.value_storage[call.outputs[0]]]
        elif name == "max_pool2d":
            call.kept = [self.g.value_storage[in_vals[0]], self.g.new_storage(8 * outs[0].numel())]
        elif name == "adaptive_avg_pool2d":
            call.kept = [self.g.value_storage[in_vals[0]]]
        elif name == "dropout":
            p = _arg(args, kwargs, 1, "p", 0.5)
            if _arg(args, kwargs, 2, "training", True) and p > 0:
                # CUDA runs the fused native_dropout and keeps a bool mask; other
                # devices (aten/native/Dropout.cpp, _dropout_impl) multiply by a
                # float noise tensor and keep that.
                per = 1 if self.g.device_type == "cuda" else outs[0].element_size()
                call.kept = [self.g.new_storage(per * outs[0].numel())]
        elif name not in _KEEP_NOTHING and name not in _ALIASING:
            self.g.unmodelled.add(name)
        if not call.node:
            call.kept, call.backward_flops = [], 0
        call.grad_inputs = [v for t, v in zip(ins, in_vals) if t.requires_grad]
        self.g.calls.append(call)
        return out

    def _cross_entropy(self, args, kwargs, loss):
        """cross_entropy = log_softmax then nll_loss: two autograd nodes."""
        logits, target = args[0], _arg(args, kwargs, 1, "target")
        g = self.g
        lv, tv = g.value(logits), g.value(target)
        grad = logits.requires_grad
        log_p = torch.empty_like(logits)  # the log-softmax output, a storage of its own
        pv = g.value(log_p, new=True)
        g.calls.append(Call("log_softmax", [lv], [pv], node=grad,
                            kept=[g.value_storage[pv]] if grad else [],
                            grad_inputs=[lv] if grad else []))
        kept = [g.value_storage[pv], g.value_storage[tv], g.new_storage(4)] if grad else []
        g.calls.append(Call("nll_loss", [pv, tv], [g.value(loss, new=True)], node=grad,
                            kept=kept, grad_inputs=[pv] if grad else []))


def trace(model: nn.Module, input_shape: Sequence[int], target=None) -> Graph:
    """Run ``model`` (train mode) and cross-entropy on meta tensors, recording calls.

    Parameters are replaced by meta stand-ins with the same ``requires_grad``; the
    model itself is not modified (its train/eval modes are restored)."""
    from torch.func import functional_call

    from .finetune_measure import _logits

    g = Graph()
    g.device_type = next(model.parameters()).device.type
    state = {}
    for n, p in model.named_parameters():
        state[n] = torch.empty_like(p, device="meta").requires_grad_(p.requires_grad)
        v = g.value(state[n])
        g.resident.add(g.value_storage[v])
        if p.requires_grad:
            g.params[v] = g.value_bytes[v]
    for n, b in model.named_buffers():
        state[n] = torch.empty_like(b, device="meta")
        g.resident.add(g.value_storage[g.value(state[n])])
    g._state_storages = set(g.resident)
    x = torch.empty(*input_shape, device="meta")
    g.resident.add(g.value_storage[g.value(x)])
    modes = {m: m.training for m in model.modules()}
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
        model.train()
        with torch.enable_grad(), _Tracer(g):
            out = _logits(functional_call(model, state, (x,)))
        if target is None:
            target = torch.empty(out.shape[0], *out.shape[2:], dtype=torch.long, device="meta")
        target = target.to("meta")
        g.resident.add(g.value_storage[g.value(target)])
        with torch.enable_grad(), _Tracer(g):
            torch.nn.functional.cross_entropy(out, target)
    finally:
        for h in hooks:
            h.remove()
        for m, mode in modes.items():
            m.train(mode)
    return g


#: Backward of these hands the output gradient (or views of it) to the inputs:
#: add passes it through, cat and views slice or reshape it; nothing is allocated.
_SHARES_GRAD = _ALIASING | {"cat", "add", "add_", "__add__", "__iadd__", "__radd__"}


class _Schedule:
    """Live bytes, and their maximum, as storages come and go."""

    def __init__(self, resident_bytes: int):
        self.live = self.peak = resident_bytes

    def alloc(self, nbytes: int) -> None:
        self.live += nbytes

    def free(self, nbytes: int) -> None:
        self.live -= nbytes

    def mark(self) -> None:
        self.peak = max(self.peak, self.live)


def _peak(g: Graph, trainable_sizes: List[int], resident_bytes: int) -> int:
    sch = _Schedule(resident_bytes)
    keep_count: Dict[int, int] = {}
    for c in g.calls:
        for s in c.kept:
            keep_count[s] = keep_count.get(s, 0) + 1
    # Forward: a storage lives from the call that makes it to its last read,
    # or, if a node keeps it, until that node's backward.
    last_read: Dict[int, int] = {}
    for i, c in enumerate(g.calls):
        for v in c.inputs:
            last_read[g.value_storage[v]] = i
    for s, i in g.held_until.items():
        last_read[s] = max(last_read.get(s, i), i)
    born = set(g.resident)
    dies_at: Dict[int, List[int]] = {}
    for i, c in enumerate(g.calls):
        fresh = [g.value_storage[v] for v in c.outputs] + [s for s in c.kept if s < 0]
        for s in dict.fromkeys(fresh):
            if s not in born:
                born.add(s)
                sch.alloc(g.storage_bytes[s])
                if s not in keep_count and i < len(g.calls) - 1:  # the loss stays held
                    dies_at.setdefault(max(i, last_read.get(s, i)), []).append(s)
        sch.mark()
        for s in dies_at.pop(i, []):
            sch.free(g.storage_bytes[s])
    # Backward: nodes in reverse order of creation (the engine's order for a
    # single device: highest sequence number first).
    refs: Dict[int, int] = {}
    sizes: Dict[int, int] = {}
    grad_of: Dict[int, int] = {}

    def new_grad(nbytes):
        gid = len(sizes)
        sizes[gid], refs[gid] = nbytes, 0
        sch.alloc(nbytes)
        return gid

    def release(gid):
        refs[gid] -= 1
        if refs[gid] == 0:
            sch.free(sizes[gid])

    grad_of[g.calls[-1].outputs[0]] = new_grad(4)  # d loss / d loss = 1
    refs[grad_of[g.calls[-1].outputs[0]]] = 1
    for c in reversed(g.calls):
        outs = [v for v in c.outputs if v in grad_of]
        if c.node and outs:
            arriving = []
            for v in c.grad_inputs:
                gid = grad_of[outs[0]] if c.name in _SHARES_GRAD else new_grad(g.value_bytes[v])
                refs[gid] += 1
                arriving.append((v, gid))
            sch.mark()
            for v, gid in arriving:
                if v in grad_of:  # a second consumer: accumulated in place
                    release(gid)
                else:
                    grad_of[v] = gid
                    if v in g.params:
                        refs[gid] += 1  # .grad keeps it
            for v in outs:
                release(grad_of.pop(v))
        for s in c.kept:
            keep_count[s] -= 1
            if keep_count[s] == 0 and s not in g.resident:
                sch.free(g.storage_bytes[s])
    # Adam(foreach=False), per parameter: denom = exp_avg_sq.sqrt() / c holds
    # two temporaries while the previous parameter's denom is still bound.
    prev, worst = 0, 0
    for n in trainable_sizes:
        worst, prev = max(worst, prev + 2 * n), n
    sch.alloc(worst)
    sch.mark()
    return sch.peak


def predict(model: nn.Module, input_shape: Sequence[int], target=None) -> Dict[str, int]:
    """Predict one Adam training step of ``model`` on a batch of ``input_shape``:
    the same keys as :func:`complexity.finetune_measure.measure`. Trainable =
    parameters with ``requires_grad``; ``model`` is not modified."""
    g = trace(model, input_shape, target)
    params = list(model.parameters())
    trainable = [p.numel() * p.element_size() for p in params if p.requires_grad]
    if not trainable:
        raise ValueError("no parameter of the model requires grad: nothing to train")
    # Adam keeps exp_avg and exp_avg_sq (one parameter's size each) and a float32
    # step counter per trainable tensor (torch.optim.Adam, PyTorch >= 1.12).
    optimizer = 2 * sum(trainable) + 4 * len(trainable)
    resident = sum(g.storage_bytes[s] for s in g.resident) + optimizer
    kept = {s for c in g.calls for s in c.kept if s not in g.params_storages()}
    return {
        "param_bytes": sum(p.numel() * p.element_size() for p in params),
        "grad_bytes": sum(trainable),
        "optimizer_bytes": optimizer,
        "saved_activation_bytes": sum(g.storage_bytes[s] for s in kept),
        "peak_bytes": _peak(g, trainable, resident),
        "forward_flops": sum(c.forward_flops for c in g.calls),
        "backward_flops": sum(c.backward_flops for c in g.calls),
    }
