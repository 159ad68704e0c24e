"""The values of the traced tensors that depend on no weight, computed on the CPU
only when a call needs them.

A forward on the meta device has shapes but no values, and a few models read
values to choose their path: Hugging Face decoders check the token ids for
padding (``pad_token_id in input_ids[:, [-1, 0]]``, ``padding_mask.all()``
before skipping a causal mask), and such a check ends in ``Tensor.item()``,
which meta tensors refuse. The values they read come from the batch, the
buffers and constants (``arange``, ``full``), not from the weights, so the
tracer keeps for each tensor it sees a :class:`Shadow`: how to compute its
values on the CPU from its call's arguments, down to the leaves whose values are
known (the batch as :func:`complexity.cost.step.batch.make_input` draws it for the
real step, the model's buffers as the measurement holds them). Nothing is
computed until a call fails for want of values; then that call runs on the CPU
values (``Shadows.run``) and the traced forward goes on with its answer, exactly
as the real step does on the same batch. A value that depends on a weight
(mixture-of-experts routing) has no shadow: the call fails as before
(:class:`Unknown`).

>>> shadows = Shadows()
>>> ids = torch.empty(2, 3, dtype=torch.long, device="meta")
>>> shadows.leaf(ids, lambda: torch.tensor([[1, 2, 3], [4, 5, 0]]))
>>> mask = ids.eq(0)
>>> shadows.record(torch.Tensor.eq, (ids, 0), {}, mask)
>>> shadows.run(torch.Tensor.any, (mask,), {})
tensor(True)
"""
from __future__ import annotations

import weakref
from typing import Callable, Optional

import torch
from torch.utils._pytree import tree_flatten, tree_map

#: Errors a call raises on the meta device (or fake tensors) for want of values.
DATA_ERRORS = ("cannot be called on meta tensors", "data-dependent", "data dependent",
               "DataDependentOutputException", "register_meta function", "unbacked")


def wants_values(error: BaseException) -> bool:
    """Whether ``error`` is a call's refusal to run without values.

    >>> wants_values(RuntimeError("Tensor.item() cannot be called on meta tensors"))
    True
    >>> wants_values(RuntimeError("shape mismatch"))
    False
    """
    text = f"{type(error).__name__}: {error}"
    return any(k in text for k in DATA_ERRORS)


class Unknown(Exception):
    """A value depends on a tensor whose values are unknown (a weight's)."""


class Shadow:
    """How to compute one tensor's CPU values: ``make()`` (a leaf), or ``func`` on
    ``args``/``kwargs`` whose tensors are Shadows (None where unknown), the
    ``index``-th tensor of its result (a call's result, or, for a call that returns
    nothing, its first argument as the call left it: ``x[i] = v``). The values
    are computed once."""

    __slots__ = ("func", "args", "kwargs", "index", "make", "value")

    def __init__(self, func=None, args=(), kwargs=None, index=0,
                 make: Optional[Callable] = None):
        self.func, self.args, self.kwargs, self.index = func, args, kwargs or {}, index
        self.make, self.value = make, None

    def get(self) -> torch.Tensor:
        if self.value is None:
            if self.make is not None:
                self.value = self.make()
            else:
                args, kwargs = _concrete((self.args, self.kwargs))
                out = self.func(*args, **kwargs)
                if out is None:  # in place: the first argument as the call left it
                    out = tree_flatten(args)[0][0]
                self.value = [t for t in tree_flatten(out)[0]
                              if isinstance(t, torch.Tensor)][self.index]
        return self.value


def _concrete(tree):
    """``tree`` with each Shadow replaced by a copy of its values (a call that writes
    into an argument writes into the copy) and the meta device by the CPU."""
    def one(leaf):
        if isinstance(leaf, Shadow):
            return leaf.get().clone()
        if leaf is _UNKNOWN:
            raise Unknown("a value computed from a weight")
        if isinstance(leaf, torch.device) and leaf.type == "meta":
            return torch.device("cpu")
        if leaf == "meta" and isinstance(leaf, str):
            return "cpu"
        return leaf
    return tree_map(one, tree)


_UNKNOWN = object()


class Shadows:
    """The :class:`Shadow` of each tensor the trace saw, by the tensor (weakly: a
    Shadow holds no traced tensor, so the trace sees each freed when the real step
    frees it)."""

    def __init__(self):
        self._of: dict = {}

    def of(self, t: torch.Tensor) -> Optional[Shadow]:
        ref, s = self._of.get(id(t), (None, None))
        return s if ref is not None and ref() is t else None

    def _set(self, t: torch.Tensor, s: Shadow) -> None:
        self._of[id(t)] = (weakref.ref(t), s)

    def leaf(self, t: torch.Tensor, make: Callable[[], torch.Tensor]) -> None:
        """``t``'s values are ``make()`` (called only if needed)."""
        self._set(t, Shadow(make=make))

    def _symbolic(self, tree):
        return tree_map(lambda x: (self.of(x) or _UNKNOWN) if isinstance(x, torch.Tensor)
                        else x, tree)

    def record(self, func, args, kwargs, out) -> None:
        """The tensors of ``out`` (or, for ``out`` None, the first argument, written
        in place) are ``func(*args, **kwargs)``."""
        args_, kwargs_ = self._symbolic((args, kwargs))
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if out is None:
            outs = [t for t in tree_flatten(args)[0] if isinstance(t, torch.Tensor)][:1]
        for i, t in enumerate(outs):
            self._set(t, Shadow(func, args_, kwargs_, i))

    def run(self, func, args, kwargs):
        """``func(*args, **kwargs)`` on the arguments' CPU values (:class:`Unknown`
        when one depends on a weight), with every mode off: its result as the
        real step computes it (tensors on the CPU)."""
        from torch.utils._python_dispatch import _disable_current_modes

        with _disable_current_modes(), torch._C.DisableTorchFunction(), torch.no_grad():
            cargs, ckwargs = _concrete(self._symbolic((args, kwargs)))
            return func(*cargs, **ckwargs)
