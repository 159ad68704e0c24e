"""A float16 autocast CUDA step measured without a GPU: the forward on fake CUDA
tensors, replayed on fake CPU tensors for its backward.

A float16 autocast step is a CUDA step: which op runs in float16 and which in
float32, and which weight copies autocast caches, is CUDA's autocast policy
(``torch.autocast("cuda", torch.float16)``), not the CPU's. Fake CUDA tensors run
that forward anywhere (:func:`complexity.cost.step.autocast.autocast_region` opens the
region where ``torch.autocast`` would switch itself off), but not its backward:
since PyTorch 2.11 autograd's engine asks the CUDA driver whether device 0 has a
primary context, and without a GPU that check raises.

So the forward and loss run once on fake CUDA copies of the step's tensors, under
CUDA's float16 autocast, with a ``TorchDispatchMode`` recording each aten op below
autograd (autocast's casts among them, ``_to_copy`` to float16 or float32, and the
ops CUDA dispatches to: ``cudnn_batch_norm``; ``scaled_dot_product_attention`` takes
its math path, as fake CUDA tensors cannot ask the device for a fused kernel) and,
by weak references, the moment Python lets go of each tensor. Each step then runs
those ops in that order on the step's fake CPU tensors, with autograd on: every op
makes the autograd node, saved tensors and backward PyTorch gives it, in the dtypes
CUDA's autocast chose, and every tensor is let go where the eager forward let go of
it (a tensor the forward never let go of, such as autocast's cached weight copies,
when the forward ends).

What this cannot see: memory a CUDA kernel allocates inside itself (cuDNN and
cuBLAS workspaces, a fused attention's scratch), and the caching allocator's
rounding (:mod:`complexity.cost.fit.allocator` models that). And one fake kernel
differs by device: replayed on CPU tensors, ``cudnn_batch_norm`` keeps float16
statistics of a float16 input, where fake CUDA tensors and cuDNN keep float32 ones
(4 bytes per channel fewer kept; the prediction follows cuDNN). A real CUDA step
(``benchmarks/cuda_check.py``) is the check for both.

One linear layer: its ``addmm`` keeps the float16 copy of the input (its weight
needs a gradient, the input none); ``log_softmax`` runs in float16 and keeps its
result, ``nll_loss`` (CUDA's float32 list) keeps a float32 copy of it, the target
and a float32 ``total_weight``: 32 + 16 + 32 + 16 + 4 bytes.

>>> from torch import nn
>>> from complexity.cost.measure.cpu_step import measure
>>> from complexity.cost.step.options import StepOptions
>>> m = measure(nn.Sequential(nn.Linear(8, 4)), (2, 8), options=StepOptions(autocast="float16"))
>>> m["saved_activation_bytes"] == 2 * 8 * 2 + 2 * 4 * 2 + 2 * 4 * 4 + 2 * 8 + 4
True
"""
from __future__ import annotations

import weakref
from typing import Dict, List

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from complexity.cost.step.autocast import autocast_region

__all__ = ["CudaReplay"]

_CUDA = torch.device("cuda")


class CudaReplay:
    """``forward_loss(state, attributes, x, target) -> (loss, target)`` (the step's
    forward and loss on stand-ins for the model's parameters and buffers, by name,
    and plain tensor attributes, by (module, name); a None target drawn from the
    output) recorded once under CUDA's float16 autocast on fake CUDA copies of
    ``state``, ``attributes`` and the batch (:meth:`prepare`), then replayed on the
    step's own fake CPU tensors (a call).

    Use it inside the ``FakeTensorMode`` the step's tensors belong to.
    """

    def __init__(self, forward_loss, state: dict, attributes: dict):
        self.forward_loss = forward_loss
        self.state, self.attributes = state, attributes
        self.ops: List[tuple] = []

    def prepare(self, x: torch.Tensor, target):
        """Record the forward for a batch like ``x`` and ``target``; returns the
        target, drawn as the step draws it (on the step's device) when None. Called
        before the step's instruments are on: the recording is no part of the step."""
        if target is None:
            with torch.no_grad():
                _, drawn = self._on_cuda([_cuda(t) for t in self.state.values()],
                                         [_cuda(t) for t in self.attributes.values()],
                                         _cuda(x), None)
            target = torch.empty(drawn.shape, dtype=drawn.dtype, device=x.device)
        inputs = [*self.state.values(), *self.attributes.values(), x, target]
        cuda = [_cuda(t) for t in inputs]
        n, k = len(self.state), len(self.attributes)
        with _Recorder(cuda) as rec:
            loss, _ = self._on_cuda(cuda[:n], cuda[n:n + k], cuda[-2], cuda[-1])
            rec.output = rec.index(loss)
            del loss
        self.ops, self.output, self.constants = rec.ops, rec.output, rec.constants
        return target

    def _on_cuda(self, state, attributes, x, target):
        """The forward and loss on fake CUDA tensors, under CUDA's float16 autocast."""
        with autocast_region("cuda", torch.float16):
            return self.forward_loss(dict(zip(self.state, state)),
                                     dict(zip(self.attributes, attributes)), x, target)

    def __call__(self, x: torch.Tensor, target: torch.Tensor) -> tuple:
        """``(loss, target)`` of one forward on the step's tensors (after
        :meth:`prepare`), each tensor let go where the recorded forward let go of it."""
        values: Dict[int, torch.Tensor] = dict(enumerate(
            [*self.state.values(), *self.attributes.values(), x, target]))
        values.update({i: _cpu(t) for i, t in self.constants.items()})
        get = lambda a: values[a.index] if isinstance(a, _Value) else a  # noqa: E731
        for func, args, kwargs, outs, freed in self.ops:
            for i in freed:
                values.pop(i, None)
            out = func(*tree_map(get, args), **tree_map(get, kwargs))
            for i, t in zip(outs, tree_flatten(out)[0]):
                if i is not None:
                    values[i] = t
            del out
        loss = values[self.output]
        values.clear()  # what the forward held to its end (autocast's cache) goes now
        return loss, target


class _Value:
    """An argument of a recorded op: the ``index``-th tensor of the forward."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index


class _Recorder(TorchDispatchMode):
    """Records each aten op (function, arguments with :class:`_Value` for tensors,
    the indices of its tensor outputs) and which tensors Python let go of before it;
    CUDA devices in the arguments become the CPU. ``inputs`` are tensors 0, 1, …;
    a tensor made outside the recording (a constant) is kept as ``constants``."""

    def __init__(self, inputs):
        super().__init__()
        self.ops: List[tuple] = []
        self.constants: Dict[int, torch.Tensor] = {}
        self._ids: Dict[int, int] = {}
        self._freed: List[int] = []
        self._count = 0
        for t in inputs:
            self._new(t)

    def _new(self, t: torch.Tensor) -> int:
        i, self._count = self._count, self._count + 1
        self._ids[id(t)] = i
        weakref.finalize(t, self._let_go, id(t), i)
        return i

    def _let_go(self, key: int, i: int) -> None:
        if self._ids.get(key) == i:
            del self._ids[key]
        self._freed.append(i)

    def index(self, t: torch.Tensor) -> int:
        """The index of tensor ``t`` (a constant's, registered now, if unseen)."""
        i = self._ids.get(id(t))
        if i is None:
            i = self._new(t)
            self.constants[i] = t
        return i

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        flat = tree_flatten(out)[0]
        if not any(isinstance(t, torch.Tensor) for t in flat):
            return out  # prim.device and the like: nothing to replay
        arg = lambda a: (_Value(self.index(a)) if isinstance(a, torch.Tensor)  # noqa: E731
                         else _cpu_device(a))
        rec_args, rec_kwargs = tree_map(arg, args), tree_map(arg, kwargs)
        outs = [(self._ids[id(t)] if id(t) in self._ids else self._new(t))
                if isinstance(t, torch.Tensor) else None for t in flat]
        freed, self._freed = self._freed, []
        self.ops.append((func, rec_args, rec_kwargs, outs, freed))
        return out


def _like(t: torch.Tensor, device) -> torch.Tensor:
    """A tensor on ``device`` of ``t``'s shape, strides, dtype and ``requires_grad``
    (fake, under the step's ``FakeTensorMode``)."""
    copy = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=device)
    return copy.requires_grad_() if t.requires_grad else copy


def _cuda(t: torch.Tensor) -> torch.Tensor:
    return _like(t, _CUDA)


def _cpu(t: torch.Tensor) -> torch.Tensor:
    return _like(t, "cpu")


def _cpu_device(a):
    return torch.device("cpu") if isinstance(a, torch.device) and a.type == "cuda" else a
