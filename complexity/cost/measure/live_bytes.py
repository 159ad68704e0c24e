"""The peak of a step's memory, watched: :class:`LiveBytes`, a
``TorchDispatchMode`` that registers every storage an aten op creates and drops it
when Python frees it (a weak-reference callback, as
``torch.distributed._tools.mem_tracker.MemTracker`` does).

Each storage is tagged with a :class:`~complexity.cost.keys.Category` (weights,
grads, optimizer, activations, transient): the one given when it is registered,
or the tracker's current :attr:`LiveBytes.category` when an op makes it; a tag can
change later (:meth:`LiveBytes.retag`: a gradient that becomes a parameter's
``.grad``; an op's result that dies before the next op runs is its workspace,
transient). :meth:`LiveBytes.parts` sorts the storages alive at the peak by their
final tags: the measured counterpart of the predicted parts of the peak.

>>> import torch
>>> from complexity.cost.keys import Category
>>> live = LiveBytes()
>>> w = torch.ones(128)                      # 512 bytes
>>> live.track(w, category=Category.WEIGHTS)
>>> with live:
...     a = torch.ones(256)          # 1 KiB
...     b = a * 2                    # 1 KiB more, while a lives
...     del a
>>> live.peak, live.live
(2560, 1536)
>>> live.parts()["weights"], live.parts()["activations"]
(512, 2048)
"""
from __future__ import annotations

import weakref
from typing import Dict

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from complexity.cost.keys import PARTS, Category


class LiveBytes(TorchDispatchMode):
    """Bytes of tensor storage alive, and the most ever alive, while the mode is on.

    Every storage is counted once, when the op that made it returns; views and
    in-place results share a storage and add nothing. The peak is read after each
    op, when its inputs are still alive: the moment an allocator needs both.
    ``category``: the tag of the storages ops make from now on.
    """

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self.category = Category.ACTIVATIONS
        self._refs: Dict[int, weakref.ref] = {}
        self._serial: Dict[int, int] = {}        # storage id -> its registration number
        self._alive: Dict[int, int] = {}         # registration number -> counted bytes
        self._tags: Dict[int, Category] = {}     # registration number -> category
        self._at_peak: Dict[int, int] = {}       # _alive when the peak was first reached
        self._last_made: list = []               # registration numbers the last op made

    def track(self, *tensors, category: Category = Category.ACTIVATIONS) -> None:
        """Register storages that exist already (parameters, state, inputs)."""
        for t in tree_flatten(tensors)[0]:
            if isinstance(t, torch.Tensor):
                self._add(t, category=category)
        self._read()

    def ignore(self, *tensors) -> None:
        """Register storages that exist already and are no memory of the device
        watched (a CUDA optimizer's step counters on the CPU): they count 0 bytes."""
        for t in tree_flatten(tensors)[0]:
            if isinstance(t, torch.Tensor):
                self._add(t, counted=False)

    def retag(self, t: torch.Tensor, category: Category) -> None:
        """``t``'s storage is of ``category`` from now on, and was all along in
        :meth:`parts` (a gradient is made before autograd makes it a ``.grad``)."""
        key = id(t.untyped_storage())
        if key in self._serial and self._refs[key]() is t.untyped_storage():
            self._tags[self._serial[key]] = category

    def parts(self) -> Dict[str, int]:
        """The storages alive at the (first) peak, summed by their tags: the
        :data:`~complexity.cost.keys.PARTS`, in bytes; they sum to :attr:`peak`."""
        out = dict.fromkeys(PARTS, 0)
        for serial, nbytes in self._at_peak.items():
            out[self._tags[serial].value] += nbytes
        return out

    def _add(self, t: torch.Tensor, counted: bool = True, category=None) -> None:
        st = t.untyped_storage()
        key = id(st)
        if key in self._refs and self._refs[key]() is st:
            return
        nbytes = st.nbytes() if counted else 0
        serial = len(self._tags)
        self._tags[serial] = category or self.category

        def freed(_ref, key=key, nbytes=nbytes, serial=serial):
            if self._refs.get(key) is _ref:
                del self._refs[key]
                self.live -= nbytes
                self._alive.pop(serial, None)

        self._refs[key] = weakref.ref(st, freed)
        self._serial[key] = serial
        self._alive[serial] = nbytes
        self.live += nbytes

    def _read(self) -> None:
        if self.live > self.peak:
            self.peak = self.live
            self._at_peak = dict(self._alive)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        # What the last op made and nobody kept until this one (statistics a frozen
        # BatchNorm returns and Python drops at once) was the op's workspace.
        for serial in self._last_made:
            if serial not in self._alive and self._tags[serial] is Category.ACTIVATIONS:
                self._tags[serial] = Category.TRANSIENT
        out = func(*args, **(kwargs or {}))
        before = len(self._tags)
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._add(t)
        self._last_made = list(range(before, len(self._tags)))
        self._read()
        return out
