"""The live bytes of one rank of a data-parallel step: :class:`RankBytes`, the
dispatch-level tracker of :mod:`complexity.cost.measure.live_bytes` made to see what
FSDP2 does outside the dispatcher.

Two things FSDP2 (``torch.distributed.fsdp.fully_shard``) does that a
``TorchDispatchMode`` alone misses:

* it frees and re-allocates the unsharded parameters by resizing their storage
  (``UntypedStorage.resize_(0)`` and back: ``_fsdp_param.free_storage`` /
  ``alloc_storage``), which bypasses the dispatcher on the CPU — the tracker wraps
  ``resize_`` while it is on, as ``torch.distributed._tools.mem_tracker`` does;
* its parameters and their gradients and optimizer state are ``DTensor``\\ s,
  wrappers whose local tensors hold the memory — the tracker lets ``DTensor``
  unwrap them first (``NotImplemented``), then sees the local ops.

>>> import torch
>>> live = RankBytes()
>>> with live:
...     a = torch.ones(256)                       # 1 KiB
...     _ = a.untyped_storage().resize_(0)        # freed by resizing
...     b = torch.ones(128)                       # 512 bytes
>>> live.peak, live.live
(1024, 512)
"""
from __future__ import annotations

import weakref

import torch

from complexity.cost.measure.live_bytes import LiveBytes


class RankBytes(LiveBytes):
    """:class:`LiveBytes` that follows storages resized in place and lets
    ``DTensor`` unwrap itself before it counts."""

    def __init__(self):
        super().__init__()
        self._resize = None

    def __enter__(self):
        self._resize = torch.UntypedStorage.resize_
        original, tracker = self._resize, self

        def resize_(storage, size):
            out = original(storage, size)
            tracker.resized(storage, size)
            return out

        torch.UntypedStorage.resize_ = resize_
        return super().__enter__()

    def __exit__(self, *exc):
        torch.UntypedStorage.resize_ = self._resize
        return super().__exit__(*exc)

    def resized(self, storage, nbytes: int) -> None:
        """``storage`` now holds ``nbytes``: the live bytes move by the difference
        (a storage never seen before is registered at its new size)."""
        key = id(storage)
        ref = self._refs.get(key)
        if ref is None or ref() is not storage:
            if nbytes:
                self._add(_Holder(storage))
            return
        serial = self._serial[key]
        self.live += nbytes - self._alive[serial]
        self._alive[serial] = nbytes
        self._read()

    def _add(self, t, counted: bool = True, category=None) -> None:
        st = t.untyped_storage()
        known = self._refs.get(id(st))
        super()._add(t, counted, category)
        if known is None or known() is not st:
            # newly registered: free what it holds when it dies, not what it held
            # when it was made (the reference LiveBytes made no longer answers)
            def freed(_ref, key=id(st), serial=self._serial[id(st)]):
                if self._refs.get(key) is _ref:
                    del self._refs[key]
                    self.live -= self._alive.pop(serial, 0)

            self._refs[id(st)] = weakref.ref(st, freed)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        from torch.distributed.tensor import DTensor

        if any(issubclass(t, DTensor) for t in types):
            return NotImplemented
        return super().__torch_dispatch__(func, types, args, kwargs)


class _Holder:
    """A storage seen only when resized, in the shape :meth:`LiveBytes.track` reads."""

    def __init__(self, storage):
        self.storage = storage

    def untyped_storage(self):
        return self.storage
