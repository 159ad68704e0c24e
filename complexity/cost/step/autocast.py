"""Autocast regions, also for a device the machine does not have.

``torch.autocast("cuda", ...)`` switches itself off (with a warning) where no GPU
is available, yet fake CUDA tensors can run a forward under CUDA's autocast policy
anywhere: :func:`autocast_region` opens the region as ``torch.autocast`` does, at
the C level. The trace (:mod:`complexity.cost.predict.trace`) and the measurements
(:mod:`complexity.cost.measure.cpu_step`, :mod:`complexity.cost.measure.cuda_replay`) use it.
"""
from __future__ import annotations

import contextlib

import torch

__all__ = ["autocast_region"]


@contextlib.contextmanager
def autocast_region(device_type: str, dtype):
    """``torch.autocast(device_type, dtype)``, also for ``'cuda'`` on a machine
    without one (for a step on fake CUDA tensors): ``torch.autocast`` then disables
    itself, so the region is opened as it opens one, at the C level (enabled, dtype,
    nesting, weight cache), and closed likewise (the cache cleared, the previous
    settings back). ``dtype`` None: no autocast.

    >>> with autocast_region("cpu", torch.bfloat16):
    ...     torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype
    torch.bfloat16
    >>> with autocast_region("cuda", torch.float16):
    ...     torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda")
    (True, torch.float16)
    >>> torch.is_autocast_enabled("cuda")
    False
    """
    if dtype is None:
        yield
        return
    if device_type != "cuda" or torch.cuda.is_available():
        with torch.autocast(device_type, dtype):
            yield
        return
    before = (torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type),
              torch.is_autocast_cache_enabled())
    torch.set_autocast_enabled(device_type, True)
    torch.set_autocast_dtype(device_type, dtype)
    torch.set_autocast_cache_enabled(True)
    torch.autocast_increment_nesting()
    try:
        yield
    finally:
        if torch.autocast_decrement_nesting() == 0:
            torch.clear_autocast_cache()  # as torch.autocast.__exit__: the weight copies go
        torch.set_autocast_enabled(device_type, before[0])
        torch.set_autocast_dtype(device_type, before[1])
        torch.set_autocast_cache_enabled(before[2])
