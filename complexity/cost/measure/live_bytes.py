"""The peak of a step's memory, watched: :class:`LiveBytes`, a
``TorchDispatchMode`` that registers every storage an aten op creates and drops it
when Python frees it (a weak-reference callback, as
``torch.distributed._tools.mem_tracker.MemTracker`` does).

>>> import torch
>>> live = LiveBytes()
>>> with live:
...     a = torch.ones(256)          # 1 KiB
...     b = a * 2                    # 1 KiB more, while a lives
...     del a
>>> live.peak, live.live
(2048, 1024)
"""
from __future__ import annotations

import weakref
from typing import Dict

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveBytes(TorchDispatchMode):
    """Bytes of tensor storage alive, and the most ever alive, while the mode is on.

    Every storage is counted once, when the op that made it returns; views and
    in-place results share a storage and add nothing. The peak is read after each
    op, when its inputs are still alive: the moment an allocator needs both.
    """

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: Dict[int, weakref.ref] = {}

    def track(self, *tensors) -> None:
        """Register storages that exist already (parameters, state, inputs)."""
        for t in tree_flatten(tensors)[0]:
            if isinstance(t, torch.Tensor):
                self._add(t)
        self.peak = max(self.peak, self.live)

    def ignore(self, *tensors) -> None:
        """Register storages that exist already and are no memory of the device
        watched (a CUDA optimizer's step counters on the CPU): they count 0 bytes."""
        for t in tree_flatten(tensors)[0]:
            if isinstance(t, torch.Tensor):
                self._add(t, counted=False)

    def _add(self, t: torch.Tensor, counted: bool = True) -> None:
        st = t.untyped_storage()
        key = id(st)
        if key in self._refs and self._refs[key]() is st:
            return
        nbytes = st.nbytes() if counted else 0

        def freed(_ref, key=key, nbytes=nbytes):
            if self._refs.get(key) is _ref:
                del self._refs[key]
                self.live -= nbytes

        self._refs[key] = weakref.ref(st, freed)
        self.live += nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._add(t)
        self.peak = max(self.peak, self.live)
        return out
