"""The record of one traced training step: values, storages and calls.

:func:`complexity.cost.predict.trace.trace` fills a :class:`Graph` with one :class:`Call`
per functional call of the forward pass; the rules of
:mod:`complexity.cost.predict.rules` fill in what each call keeps for backward and what
it costs; :func:`complexity.cost.predict.schedule.peak` walks the calls to find the
peak memory. A *value* is one version of a tensor (an in-place call makes a new
value on the same storage); a *storage* is the memory a value lives in.

>>> import torch
>>> g = Graph()
>>> x = torch.empty(2, 3, device="meta")
>>> v = g.value(x)
>>> g.value(x) == v, g.value_bytes[v], g.storage_bytes[g.value_storage[v]]
(True, 24, 24)
>>> g.value(x.view(6)) == v, g.value_storage[g.value(x.view(6))] == g.value_storage[v]
(False, True)
"""
from __future__ import annotations

from dataclasses import dataclass, field
import weakref
from typing import Dict, List, Optional

import torch

from complexity.cost.step.optimizers import TensorBytes

#: Calls whose result is a view or the argument itself: no new storage, nothing kept.
ALIASING = frozenset({"view", "reshape", "flatten", "__getitem__", "contiguous", "squeeze",
                      "expand", "unsqueeze", "permute", "transpose", "narrow", "detach",
                      "expand_as", "view_as", "swapaxes", "swapdims", "movedim", "moveaxis",
                      "reshape_as", "t", "T", "mT", "H", "mH", "adjoint", "data", "real"})

#: Calls whose backward hands the output gradient (or views of it) to the inputs
#: without allocating: add passes it through, cat and views slice or reshape it.
#: Their rule (:mod:`complexity.cost.predict.rules.shape`) sets :attr:`Call.shares_grad`.
SHARES_GRAD = ALIASING | {"cat", "add", "add_", "__add__", "__iadd__", "__radd__"}


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
    backward_transient: int = 0       # bytes alive only while its backward runs
    shares_grad: bool = False         # its backward hands the output gradient on (identity)


@dataclass
class Segment:
    """A checkpointed module's call (:mod:`complexity.cost.step.checkpointing`): the
    calls ``start`` to ``end - 1`` run inside it; ``saved`` are the storages of its
    positional tensor arguments (checkpoint saves them, as autograd saves tensors:
    the saved-tensor hooks see them), ``held`` every tensor argument's storage
    (the checkpoint holds them all until its recomputation can no longer happen)."""

    name: str
    start: int
    end: int = -1
    saved: List[int] = field(default_factory=list)
    held: List[int] = field(default_factory=list)


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
        self.data_reads: set = set()              # calls answered from the values
        self.weight_reads: set = set()            # ... of which from the parameters'
        self._ids: Dict[int, tuple] = {}          # id(tensor) -> (weakref, latest value)
        self._storages: Dict[int, tuple] = {}     # id(storage) -> (weakref, storage id)
        self._last_storage = 0                    # storage ids: 1, 2, … (made ones: -1, -2, …)
        self._state_storages: set = set()
        self.device_type = "cpu"                  # where the real step would run
        self.held_until: Dict[int, int] = {}      # storage -> last call of the module it entered
        self.freed_after: Dict[int, int] = {}     # storage -> last call before Python freed it
        self.outlives: set = set()                # storages Python still held after the trace
        self._closed = False
        self.segments: List[Segment] = []         # checkpointed module calls, in order
        self.loss: Optional[int] = None           # the loss's value (None: the last call's)

    def value(self, t: torch.Tensor, new: bool = False) -> int:
        """The value id of ``t``: its latest one, or (``new``) a fresh one, as for
        the result of a call (an in-place result is a new value on the same storage)."""
        key = id(t)
        ref, v = self._ids.get(key, (None, None))
        if ref is not None and ref() is t and not new:
            return v
        # Weak references only: the trace must not keep alive what the real step
        # frees (an id whose object died may come back for another tensor).
        v = len(self.value_bytes)
        self._ids[key] = (weakref.ref(t), v)
        st = t.untyped_storage()
        sref, s = self._storages.get(id(st), (None, None))
        if sref is None or sref() is not st:
            self._last_storage += 1
            s = self._last_storage
            self._storages[id(st)] = (weakref.ref(st, self._freed(s)), s)
            self.storage_bytes[s] = st.nbytes()
        self.value_bytes[v] = t.numel() * t.element_size()
        self.value_storage[v] = s
        return v

    def _freed(self, s: int):
        """The callback of storage ``s``'s weak reference: Python freed it after the
        last call recorded so far (PyTorch keeps a storage's Python object as long
        as any tensor, view or autograd node holds the storage)."""
        def freed(_ref):
            if not self._closed:  # a later step's rebinding is no part of this one
                self.freed_after[s] = len(self.calls) - 1
        return freed

    def close(self) -> None:
        """The trace is over and its locals are gone: a storage made in it that
        Python still holds is held by something that outlives the step (a module
        attribute: torchvision RAFT's ``self.corr_pyramid``, rebound only by the
        next forward), so it is alive to the end of the step (:attr:`outlives`)."""
        self._closed = True
        self.outlives = {s for ref, s in self._storages.values()
                         if ref() is not None and s not in self.resident}

    def add_state(self, t: torch.Tensor, trainable: bool = False) -> int:
        """Register a parameter or buffer: resident throughout the step, never an
        activation; a ``trainable`` one gets a gradient and optimizer state. Its value id."""
        v = self.value(t)
        self.resident.add(self.value_storage[v])
        self._state_storages.add(self.value_storage[v])
        if trainable:  # bytes with the shape (Adafactor's state is factored by shape)
            n = self.value_bytes[v]
            self.params[v] = TensorBytes(n, t.shape) if isinstance(n, int) else n
        return v

    def loss_call(self) -> int:
        """The index of the call that makes the loss, which stays bound to its name
        to the end of the step: the last call, unless calls on the loss follow it
        (``scaler.scale(loss)``).

        >>> g = Graph()
        >>> g.calls = [Call("sum", [0], [1]), Call("mul", [1], [2])]
        >>> g.loss_call(), (setattr(g, "loss", 1), g.loss_call())[1]
        (1, 0)
        """
        if self.loss is None:
            return len(self.calls) - 1
        return next(i for i, c in enumerate(self.calls) if self.loss in c.outputs)

    def params_storages(self) -> set:
        """Storages of parameters and buffers (not activations)."""
        return self._state_storages

    def new_storage(self, nbytes: int) -> int:
        """A storage made inside a call and kept for backward (indices, masks, stats)."""
        key = -len(self.storage_bytes) - 1
        self.storage_bytes[key] = nbytes
        return key
