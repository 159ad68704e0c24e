"""The results of meta kernels, remembered: a trace on the meta device runs the same
kernels on the same sizes over and over (every traced batch, every trainable set),
and some meta kernels are slow Python (``native_batch_norm``'s is PyTorch's
decomposition, ~5 ms a call: most of a ResNet's trace).

A meta kernel reads no data: what it returns (sizes, strides, dtype, a fresh
storage) is a function of its arguments' metadata and its other arguments alone,
which is what :class:`MetaCache` keys on. It sits below autograd (a
``TorchDispatchMode``), so autograd still records every node, saves the same
tensors and frees them when it would: only the kernel's run is saved. What it
leaves alone (runs as it is): an op whose schema says it mutates or aliases an
argument (in place, views, ``out=``); an argument that is not a plain meta tensor
(fake, CPU, sparse, conjugate, symbolic sizes) or a value of another type than
those listed in :func:`_atom`; a result that is not fresh meta tensors (a view of
an argument, a storage shared or larger than its sizes need); an exception.

>>> import torch
>>> x = torch.empty(4, 3, 8, 8, device="meta")
>>> w = torch.empty(3, device="meta")
>>> with MetaCache() as c:
...     a = torch.batch_norm(x, w, w, w, w, True, 0.1, 1e-5, False)
...     b = torch.batch_norm(x, w, w, w, w, True, 0.1, 1e-5, False)
>>> c.hits, a.shape == b.shape, a.stride() == b.stride(), a.untyped_storage() is not b.untyped_storage()
(1, True, True, True)
"""
from __future__ import annotations

import contextlib
import functools
from typing import Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["MetaCache", "cacheable", "FRESH", "SELF", "active", "uncached", "clear"]

#: results remembered across traces (a key holds no tensor, no model: metadata only)
_RESULTS: dict = {}
#: more keys than this and the table starts afresh (memory stays bounded)
_MAX = 50_000
#: a key whose result cannot be rebuilt (aliases, non-tensor results): run the kernel
_RUN = object()
#: how many :func:`uncached` blocks are open
_OFF = [0]
#: the tensor types a key holds (a parameter is a plain tensor to a kernel; the
#: type is in the key all the same)
_TENSORS = (torch.Tensor, torch.nn.Parameter)
#: values a key holds as they are (with their type: ``1``, ``1.0`` and ``True`` differ)
_PLAIN = (bool, int, str, type(None), torch.dtype, torch.device, torch.layout,
          torch.memory_format)


#: how a cached op's result is rebuilt: fresh tensors, or its first argument itself
FRESH, SELF = "fresh", "self"


@functools.lru_cache(maxsize=None)
def cacheable(func):
    """How ``func`` (an ``OpOverload``) may be cached: :data:`FRESH` when its schema
    marks no argument or result as mutated or aliased (its results are new
    tensors), :data:`SELF` for an in-place op (``add_``: tagged ``inplace``, only
    its first argument written, and returned) that changes no argument's sizes or
    strides (not tagged ``inplace_view``); None otherwise (views, ``out=``).

    >>> cacheable(torch.ops.aten.relu.default), cacheable(torch.ops.aten.relu_.default)
    ('fresh', 'self')
    >>> cacheable(torch.ops.aten.view.default), cacheable(torch.ops.aten.resize_.default)
    (None, None)
    """
    schema = getattr(func, "_schema", None)
    tags = getattr(func, "tags", ())
    if schema is None or torch.Tag.inplace_view in tags:
        return None
    aliased = [a for a in (*schema.arguments, *schema.returns) if a.alias_info is not None]
    if not aliased and not schema.is_mutable:
        return FRESH
    first = schema.arguments[0] if schema.arguments else None
    if (torch.Tag.inplace in tags and len(schema.returns) == 1 and len(aliased) == 2
            and first is aliased[0] and first.alias_info.is_write
            and schema.returns[0].alias_info is not None
            and schema.returns[0].alias_info.before_set == first.alias_info.before_set):
        return SELF
    return None


def _atom(x):
    """The key of one argument: a plain meta tensor's metadata, a plain value with
    its type, a list or tuple of those; None when there is none."""
    kind = type(x)
    if kind in _TENSORS:
        if (x.device.type != "meta" or x.layout is not torch.strided or x.is_conj()
                or x.is_neg()):
            return None
        return (kind, x.shape, x.stride(), x.storage_offset(), x.dtype, x.requires_grad)
    if kind in _PLAIN:
        return (kind, x)
    if kind is float:
        return (float, x.hex())  # -0.0 and 0.0 are two keys; nan is one
    if kind is list or kind is tuple:
        parts = []
        for y in x:
            part = _atom(y)
            if part is None:
                return None
            parts.append(part)
        return (kind, tuple(parts))
    return None


def _flat(x):
    """The tensors in ``x`` (tuples, lists and dicts of them, nested)."""
    if type(x) in _TENSORS:
        yield x
    elif type(x) in (tuple, list):
        for y in x:
            yield from _flat(y)
    elif type(x) is dict:
        for y in x.values():
            yield from _flat(y)


def _key(func, args, kwargs) -> Optional[tuple]:
    """What a meta kernel's result depends on, or None when it is not cached: the op,
    every argument (:func:`_atom`), the default dtype (read by factory-like ops)."""
    if cacheable(func) is None:
        return None
    parts = _atom(args)
    items = _atom(tuple(sorted(kwargs.items())))
    if parts is None or items is None or next(_flat((args, kwargs)), None) is None:
        return None
    return (func, parts, items, torch.get_default_dtype())


def _layout(func, key, out, args, kwargs):
    """What rebuilds ``out`` (a tensor or a tuple/list of them): ``(container type,
    [(shape, stride, dtype), ...])``, or :data:`_RUN` when a result is not a fresh
    meta tensor whose storage is exactly what ``empty_strided`` makes. An in-place
    op's: :data:`SELF`, when it returned its first argument, unchanged in every
    part of the key (``key``)."""
    if cacheable(func) == SELF:
        same = bool(args) and out is args[0] and _key(func, args, kwargs) == key
        return SELF if same else _RUN
    outs = out if type(out) in (tuple, list) else (out,)
    if not all(type(t) is torch.Tensor and t.device.type == "meta"
               and t.layout is torch.strided and t.storage_offset() == 0
               and not t.is_conj() and not t.is_neg() and not t.requires_grad for t in outs):
        return _RUN
    seen = {t.untyped_storage()._cdata for t in _flat((args, kwargs))}
    shapes = []
    for t in outs:
        st = t.untyped_storage()
        if st._cdata in seen:  # an argument's storage, or another result's
            return _RUN
        seen.add(st._cdata)
        shape = (tuple(t.shape), t.stride(), t.dtype)
        if _make(shape).untyped_storage().nbytes() != st.nbytes():
            return _RUN
        shapes.append(shape)
    return (type(out) if type(out) in (tuple, list) else None, shapes)


def _make(shape) -> torch.Tensor:
    size, stride, dtype = shape
    return torch.empty_strided(size, stride, dtype=dtype, device="meta")


class MetaCache(TorchDispatchMode):
    """While active, a meta kernel whose result is known (:func:`_key`) is not run:
    fresh meta tensors of the remembered sizes, strides and dtypes are returned.
    ``hits``/``runs``: kernels answered / run (counted for tests)."""

    def __init__(self, table: Optional[dict] = None):
        super().__init__()
        self.table = _RESULTS if table is None else table
        self.hits = self.runs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        key = _key(func, args, kwargs)
        known = self.table.get(key, _RUN) if key is not None else _RUN
        if known is not _RUN:
            self.hits += 1
            if known is SELF:
                return args[0]
            kind, shapes = known
            made = [_make(s) for s in shapes]
            return made[0] if kind is None else kind(made)
        self.runs += 1
        out = func(*args, **kwargs)
        if key is not None and key not in self.table:
            if len(self.table) >= _MAX:
                self.table.clear()
            self.table[key] = _layout(func, key, out, args, kwargs)
        return out


def active() -> bool:
    """Whether a trace should cache its meta kernels now: not inside :func:`uncached`,
    and no other dispatch mode (a fake or symbolic trace) is active beneath it."""
    return not _OFF[0] and torch._C._len_torch_dispatch_stack() == 0


@contextlib.contextmanager
def uncached():
    """Traces run every kernel while this is open (what the cache is tested against)."""
    _OFF[0] += 1
    try:
        yield
    finally:
        _OFF[0] -= 1


def clear() -> None:
    """Forget every remembered result (the next traces run their kernels afresh)."""
    _RESULTS.clear()
