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
as the real step does on the same batch. A value that depends on a parameter
(mixture-of-experts routing) is read off the parameters' values as the real step
holds them (a meta model's as the measurement draws them:
:func:`complexity.cost.step.state.fill_as_step`): exact for those values, an
estimate for any other (the trace says which calls read them). A tensor the
trace did not see made has no shadow: the call fails as before (:class:`Unknown`).

>>> shadows = Shadows()
>>> ids = torch.empty(2, 3, dtype=torch.long, device="meta")
>>> shadows.leaf(ids, lambda: torch.tensor([[1, 2, 3], [4, 5, 0]]))
>>> mask = ids.eq(0)
>>> shadows.record(torch.Tensor.eq, (ids, 0), {}, mask)
>>> shadows.run(torch.Tensor.any, (mask,), {})
(tensor(True), False)
"""
from __future__ import annotations

import weakref
from typing import Callable, Optional

import torch
from torch.utils._pytree import tree_flatten, tree_map

from complexity.cost.predict.leaves import leaves, map_leaves

#: Errors a call raises on the meta device (or fake tensors) for want of values.
DATA_ERRORS = ("cannot be called on meta tensors", "data-dependent", "data dependent",
               "DataDependentOutputException", "register_meta function", "unbacked",
               "run this operator with Meta tensors")  # unique_consecutive: no meta kernel


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
    are computed once. ``weights``: they depend on a parameter's values."""

    __slots__ = ("func", "args", "kwargs", "index", "make", "value", "weights")

    def __init__(self, func=None, args=(), kwargs=None, index=0,
                 make: Optional[Callable] = None, weights: bool = False):
        self.func, self.args, self.kwargs, self.index = func, args, kwargs or {}, index
        self.make, self.value = make, None
        self.weights = weights or any(isinstance(a, Shadow) and a.weights
                                      for a in leaves((args, self.kwargs)))

    def get(self) -> torch.Tensor:
        if self.value is None:
            if self.make is not None:
                self.value = self.make()
            else:
                args, kwargs = _concrete((self.args, self.kwargs))
                out = self.func(*args, **kwargs)
                if out is None:  # in place: the first argument as the call left it
                    out = leaves(args)[0]
                self.value = [t for t in leaves(out)
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
    return map_leaves(one, tree)


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

    def leaf(self, t: torch.Tensor, make: Callable[[], torch.Tensor],
             weights: bool = False) -> None:
        """``t``'s values are ``make()`` (called only if needed); ``weights``: a
        parameter's."""
        self._set(t, Shadow(make=make, weights=weights))

    def _symbolic(self, tree):
        return map_leaves(lambda x: (self.of(x) or _UNKNOWN) if isinstance(x, torch.Tensor)
                        else x, tree)

    def record(self, func, args, kwargs, out) -> None:
        """The tensors of ``out`` (or, for ``out`` None, the first argument, written
        in place) are ``func(*args, **kwargs)``."""
        args_, kwargs_ = self._symbolic((args, kwargs))
        outs = [t for t in leaves(out) if isinstance(t, torch.Tensor)]
        if out is None:
            outs = [t for t in leaves(args) if isinstance(t, torch.Tensor)][:1]
        for i, t in enumerate(outs):
            self._set(t, Shadow(func, args_, kwargs_, i))

    def run(self, func, args, kwargs):
        """``(result, weights)``: ``func(*args, **kwargs)`` on the arguments' CPU
        values (:class:`Unknown` when one has none), with every mode off — its
        result as the real step computes it (tensors on the CPU) —, and whether it
        depends on a parameter's values."""
        from torch.utils._python_dispatch import _disable_current_modes

        symbolic = self._symbolic((args, kwargs))
        weights = Shadow(None, *symbolic).weights
        with _disable_current_modes(), torch._C.DisableTorchFunction(), torch.no_grad():
            cargs, ckwargs = _concrete(symbolic)
            return func(*cargs, **ckwargs), weights

    def answer(self, func, args, kwargs, error: BaseException):
        """``(result, ran on values, weights)`` of a call that failed with ``error``
        for want of values. Where an argument after the first is a 0-dim integer
        tensor (an index, ``w[expert]``), the call runs on the traced tensors with that argument's
        value in its place (autograd records it as usual); otherwise it runs on the
        arguments' values (:meth:`run`), its tensors given back as traced ones of
        the same shape, strides and dtype, their values kept as their shadows — not
        for a result autograd would differentiate (no node can be made for it:
        ``error`` is raised again). ``weights``: the answer depends on a
        parameter's values."""
        picked = []

        def scalar(t):
            s = self.of(t) if isinstance(t, torch.Tensor) and t.dim() == 0 \
                and not (t.is_floating_point() or t.is_complex()) else None
            if s is None:
                return t
            picked.append(s)
            return _concrete(s).item()
        # not the first argument: the tensor a method (item, __bool__) is called on
        with_values = (args[:1] + tree_map(scalar, tuple(args[1:])), tree_map(scalar, kwargs))
        if picked:
            return func(*with_values[0], **with_values[1]), False, any(s.weights for s in picked)
        masked = self._by_positions(func, args)
        if masked is not None:
            return masked
        real, weights = self.run(func, args, kwargs)
        ins = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        if torch.is_grad_enabled() and any(t.requires_grad for t in ins) and any(
                isinstance(t, torch.Tensor) and t.is_floating_point()
                for t in tree_flatten(real)[0]):
            raise error
        device = ins[0].device if ins else torch.device("meta")

        def traced(t):
            if not isinstance(t, torch.Tensor):
                return t
            made = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=device)
            self.leaf(made, lambda: t, weights)
            return made
        return tree_map(traced, real), True, weights

    def _by_positions(self, func, args):
        """``(result, False, weights)`` of ``x[mask]`` (a boolean tensor in the index
        of ``__getitem__``, Bart's ``hidden_states[eos_mask, :]``), run on the traced
        tensors with each mask replaced by its positions (``mask.nonzero()``'s
        columns, from the mask's values), as ATen indexes by a mask
        (``expandTensors``): the same result and autograd node, which keeps the
        mask (the rule of ``__getitem__``); None for any other call, or a mask
        whose values are unknown."""
        if getattr(func, "__name__", "") != "__getitem__" or len(args) != 2:
            return None
        items = args[1] if isinstance(args[1], tuple) else (args[1],)
        masks = [t for t in items if isinstance(t, torch.Tensor) and t.dtype is torch.bool]
        if not masks or any(self.of(m) is None for m in masks):
            return None
        index, weights = [], False
        for t in items:
            if isinstance(t, torch.Tensor) and t.dtype is torch.bool:
                s = self.of(t)
                weights = weights or s.weights
                index += [torch.empty(n.shape, dtype=n.dtype, device=args[0].device)
                          for n in _concrete(s).nonzero().unbind(1)]
            else:
                index.append(t)
        return func(args[0], tuple(index)), False, weights
