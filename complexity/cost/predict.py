"""The cost of one training step, predicted from the model's structure.

The structure is read off one forward pass on the meta device (shapes only, no
data, no autograd instrumentation) under a ``TorchFunctionMode``: the sequence of
functional calls (``conv2d``, ``batch_norm``, ``relu``, ``cat``, ``add_``,
``interpolate`` …), their tensor arguments, result shapes, and which arguments
derive from a trainable parameter. Per-call rules then say what one Adam step
costs; they restate PyTorch's derivative definitions
(``tools/autograd/derivatives.yaml``) and ``torch.utils.flop_counter``'s formulas:

=================  ====================================  =============================
call               kept for backward (if a grad flows)   FLOPs (forward; backward)
=================  ====================================  =============================
conv1d/2d/3d,      input (weight is a parameter)         2·out·fan-in (transposed:
conv_transpose*d,                                        2·in·numel(w[0])); same
linear                                                   again for input grad, for
                                                         weight grad
matmul, bmm, mm    each operand, for the other's grad    2·out·K; same again per
(both ≥ 2-D)                                             operand grad
batch_norm, train  input, save_mean, save_invstd (2C)    0
relu               output                                0
max_pool2d         input, int64 indices (output size)    0
avg_pool2d (any)   input                                 0
dropout, train     mask: bool on CUDA, else float        0
layer_norm         input, mean and rstd per row          0
sigmoid, tanh      output                                0
hardswish, silu,   input (in-place forms: a copy)        0
gelu, relu6 …
mul                each operand, for the other's grad    0
cross_entropy      log-softmax output, target,           0
                   total_weight (a 4-byte scalar)
cat, add, views,   nothing                               0
interpolate
=================  ====================================  =============================

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

from complexity.counting.hooks import mode

#: Calls whose result is a view or the argument itself: no new storage, nothing kept.
_ALIASING = {"view", "reshape", "flatten", "__getitem__", "contiguous", "squeeze", "expand",
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
    transient: int = 0                # bytes alive only while the call runs


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
        if not ins:  # a factory (torch.empty, randn …): allocates, keeps nothing
            self.g.calls.append(call)
            return out
        x = ins[0]
        if name in ("conv1d", "conv2d", "conv3d", "linear", "conv_transpose1d",
                    "conv_transpose2d", "conv_transpose3d"):
            w = _arg(args, kwargs, 1, "weight")
            if name.startswith("conv_transpose"):
                # weight (C_in, C_out/groups, k…): each input element meets w[0].numel()
                call.forward_flops = 2 * x.numel() * w[0].numel()
            else:
                call.forward_flops = _fan_in_flops(outs[0], w)
            call.backward_flops = call.forward_flops * (int(x.requires_grad) + int(w.requires_grad))
            if name != "linear":  # convolution_backward reads input and weight
                call.kept = [self.g.value_storage[in_vals[0]]]
            elif w.requires_grad:  # addmm/mm keep their input for the weight's grad only
                call.kept = [self._folded(x, in_vals[0])]
        elif name in ("matmul", "__matmul__", "bmm", "mm") and len(ins) == 2 \
                and min(ins[0].dim(), ins[1].dim()) >= 2:
            # 2 FLOPs per multiply-add: out elements × the contracted size; each
            # operand's gradient is one more product of the same size, and each
            # operand is kept for the other's gradient (derivatives.yaml mm/bmm).
            a, b = ins
            call.forward_flops = 2 * outs[0].numel() * a.shape[-1]
            call.backward_flops = call.forward_flops * (int(a.requires_grad) + int(b.requires_grad))
            first = self._folded(a, in_vals[0]) if b.dim() == 2 \
                else self.g.value_storage[in_vals[0]]
            call.kept = [s for s, other in ((first, b), (self.g.value_storage[in_vals[1]], a))
                         if other.requires_grad]
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
        elif name in ("adaptive_avg_pool2d", "avg_pool2d"):
            call.kept = [self.g.value_storage[in_vals[0]]]
        elif name in _KEEP_INPUT:
            # Their backward needs the original input; the in-place forms first
            # copy it (it is about to be overwritten): a storage of its own.
            if _arg(args, kwargs, 99, "inplace", False) or name.endswith("_"):
                call.kept = [self.g.new_storage(self.g.value_bytes[in_vals[0]])]
            else:
                call.kept = [self.g.value_storage[in_vals[0]]]
        elif name in ("sigmoid", "tanh"):
            call.kept = [self.g.value_storage[call.outputs[0]]]
        elif name in ("mul", "__mul__", "__rmul__"):
            # d(a·b)/da = b and d(a·b)/db = a: each operand is kept for the other.
            pairs = list(zip(ins, in_vals))
            call.kept = [self.g.value_storage[v] for i, (t, v) in enumerate(pairs)
                         if any(o.requires_grad for j, (o, _) in enumerate(pairs) if j != i)]
        elif name == "dropout":
            p = _arg(args, kwargs, 1, "p", 0.5)
            if _arg(args, kwargs, 2, "training", True) and p > 0:
                # CUDA runs the fused native_dropout and keeps a bool mask; other
                # devices (aten/native/Dropout.cpp, _dropout_impl) multiply by a
                # float noise tensor and keep that.
                per = 1 if self.g.device_type == "cuda" else outs[0].element_size()
                if grad:
                    call.kept = [self.g.new_storage(per * outs[0].numel())]
                else:  # the mask is made, used and dropped inside the call
                    call.transient = per * outs[0].numel()
        elif name == "layer_norm":
            # native_layer_norm keeps its input and one mean and one rstd per row.
            shape = _arg(args, kwargs, 1, "normalized_shape")
            rows = x.numel() // max(1, int(torch.Size(shape).numel()))
            call.kept = [self.g.value_storage[in_vals[0]], self.g.new_storage(4 * rows),
                         self.g.new_storage(4 * rows)]
        elif not grad and name in _POINTWISE:
            pass  # element-wise, off the gradient path: no FLOPs, nothing kept
        elif name not in _KEEP_NOTHING and name not in _ALIASING:
            # No rule: keeps nothing and costs no FLOPs here. Even off the gradient
            # path its forward FLOPs (attention, matmul of other ranks) may be missing.
            self.g.unmodelled.add(name)
        if not call.node:
            call.kept, call.backward_flops = [], 0
        call.grad_inputs = [v for t, v in zip(ins, in_vals) if t.requires_grad]
        self.g.calls.append(call)
        return out

    def _folded(self, x: torch.Tensor, v: int) -> int:
        """The storage kept for an N-D × 2-D product's first operand: matmul folds
        it to 2-D with ``reshape``, a copy (a storage of its own) when no view can."""
        if x.dim() <= 2:
            return self.g.value_storage[v]
        try:
            x.view(-1, x.shape[-1])
        except RuntimeError:
            return self.g.new_storage(self.g.value_bytes[v])
        return self.g.value_storage[v]

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


def trace(model: nn.Module, input_shape: Sequence[int], target=None,
          device_type: Optional[str] = None) -> Graph:
    """Run ``model`` (train mode) and cross-entropy on meta tensors, recording calls.

    Parameters are replaced by meta stand-ins with the same ``requires_grad``; the
    model itself is not modified (its train/eval modes are restored)."""
    from torch.func import functional_call

    from complexity.cost.measure import _logits

    g = Graph()
    g.device_type = device_type or next(model.parameters()).device.type
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
        with mode(model, True), torch.enable_grad(), _Tracer(g):
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
    return g


#: Element-wise calls (0 FLOPs in FlopCounterMode): costless when no gradient flows
#: through them (e.g. stochastic depth's noise: ``empty().bernoulli_().div_()``).
_POINTWISE = {"bernoulli_", "div", "div_", "__truediv__", "__itruediv__", "sub", "sub_",
              "__sub__", "__rsub__", "fill_", "zero_", "normal_", "uniform_", "clamp",
              "clamp_", "softmax", "log_softmax", "exp", "log", "neg", "abs", "pow",
              "__pow__", "sqrt", "rsqrt", "where", "masked_fill", "to", "float", "type_as"}

#: Element-wise activations whose backward reads their input (derivatives.yaml).
_KEEP_INPUT = {"hardswish", "hardsigmoid", "silu", "gelu", "elu", "leaky_relu", "hardtanh",
               "relu6", "hardswish_", "hardsigmoid_", "silu_", "hardtanh_"}

def predict(model: nn.Module, input_shape: Sequence[int], target=None,
            device_type: Optional[str] = None) -> Dict[str, int]:
    """Predict one Adam training step of ``model`` on a batch of ``input_shape``:
    the same keys as :func:`complexity.cost.measure.measure`. Trainable =
    parameters with ``requires_grad``; ``model`` is not modified. A call with no
    rule (see :func:`predict_with_unmodelled`) gives a ``UserWarning``: the values
    are then lower bounds. ``device_type``: where the real step runs (default: the
    device of the model's parameters), e.g. ``'cuda'`` for bool dropout masks."""
    values, unmodelled = predict_with_unmodelled(model, input_shape, target, device_type)
    if unmodelled:
        import warnings
        warnings.warn("finetune.predict: no rule for " + ", ".join(unmodelled)
                      + " (counted as keeping nothing and costing no FLOPs)", stacklevel=2)
    return values


def predict_with_unmodelled(model: nn.Module, input_shape: Sequence[int], target=None,
                            device_type: Optional[str] = None):
    """``(values, unmodelled)``: :func:`predict`'s values and the sorted names of
    the calls on the gradient path that no rule covers. Those calls are counted as
    keeping nothing and costing no FLOPs, so with a non-empty list the saved,
    peak and FLOP values are lower bounds."""
    from complexity.cost.schedule import peak

    g = trace(model, input_shape, target, device_type)
    params = list(model.parameters())
    trainable = [p.numel() * p.element_size() for p in params if p.requires_grad]
    if not trainable:
        raise ValueError("no parameter of the model requires grad: nothing to train")
    # Only what the loss reaches gets a gradient (GoogLeNet's auxiliary heads in
    # train mode, an unused parameter: no .grad, no Adam state, no backward).
    needed = {g.calls[-1].outputs[0]}
    for c in reversed(g.calls):
        if c.node and any(v in needed for v in c.outputs):
            needed.update(c.grad_inputs)
        else:
            c.backward_flops = 0
    trainable = [b for v, b in g.params.items() if v in needed]
    # Adam keeps exp_avg and exp_avg_sq (one parameter's size each) and a float32
    # step counter per trainable tensor (torch.optim.Adam, PyTorch >= 1.12).
    optimizer = 2 * sum(trainable) + 4 * len(trainable)
    resident = sum(g.storage_bytes[s] for s in g.resident) + optimizer
    kept = {s for c in g.calls for s in c.kept if s not in g.params_storages()}
    return ({
        "param_bytes": sum(p.numel() * p.element_size() for p in params),
        "grad_bytes": sum(trainable),
        "optimizer_bytes": optimizer,
        "saved_activation_bytes": sum(g.storage_bytes[s] for s in kept),
        "peak_bytes": peak(g, trainable, resident),
        "forward_flops": sum(c.forward_flops for c in g.calls),
        "backward_flops": sum(c.backward_flops for c in g.calls),
    }, sorted(g.unmodelled))
