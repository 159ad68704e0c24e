"""The model's tensors swapped for the step's own (fake or real CPU copies, fake
CUDA ones): the plain tensor attributes ``functional_call`` misses
(:func:`tensor_attributes`) and a swap that handles shared modules and tied
parameters (:func:`stand_ins`). Prediction (the tracer) and measurement both run
the model on stand-ins.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Dict

import torch
from torch import nn


def tensor_attributes(model: nn.Module) -> Dict[tuple, torch.Tensor]:
    """``{(module, name): tensor}``: the plain tensors ``model``'s modules hold as
    attributes, neither parameter nor buffer (a cached mask, a constant table), which
    ``functional_call`` does not replace: the step needs them on its own device.

    >>> m = nn.Linear(2, 2); m.table = torch.zeros(3)
    >>> [(type(k[0]).__name__, k[1], tuple(v.shape)) for k, v in tensor_attributes(m).items()]
    [('Linear', 'table', (3,))]
    """
    return {(mod, k): v for mod in model.modules() for k, v in vars(mod).items()
            if isinstance(v, torch.Tensor) and not isinstance(v, nn.Parameter)}


@contextlib.contextmanager
def stand_ins(model: nn.Module, state: Dict[str, torch.Tensor], attributes=None):
    """``model`` with each parameter and buffer replaced by ``state[name]`` (names
    as ``named_parameters()``/``named_buffers()`` give them) and each plain tensor
    attribute by ``attributes[(module, name)]``, restored on exit.

    Unlike ``torch.func.functional_call``, a module reached by several paths (timm
    CoaT's shared ``cpe``/``crpe``) or a parameter held by several modules (tied
    embeddings) is swapped once per holder and restored to its original tensor:
    ``functional_call`` swaps a shared module once per path, reads the stand-in
    back as the "original" at the second path, and leaves it there on exit.

    >>> lin = nn.Linear(2, 2)
    >>> shared = nn.Sequential(lin, lin)
    >>> w = lin.weight
    >>> with stand_ins(shared, {"0.weight": torch.zeros(2, 2)}):
    ...     float(shared[1].weight.sum())
    0.0
    >>> shared[1].weight is w
    True
    """
    new = {}
    for name, t in (*model.named_parameters(), *model.named_buffers()):
        if name in state:
            new[id(t)] = state[name]
    undo = []
    try:
        for mod in model.modules():  # each module once, however many paths reach it
            for table in (mod._parameters, mod._buffers):
                for k, t in table.items():
                    if t is not None and id(t) in new:
                        undo.append((table, k, t))
                        table[k] = new[id(t)]
        for (mod, k), t in (attributes or {}).items():
            undo.append((mod.__dict__, k, mod.__dict__[k]))
            mod.__dict__[k] = t
        yield model
    finally:
        for table, k, t in reversed(undo):
            table[k] = t



def fill_as_step(copy: torch.Tensor, t: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Fill ``copy``, a real CPU tensor made for meta tensor ``t``, as a real step
    initialises it (values change neither bytes nor FLOPs, but a model that reads
    them, a router choosing experts, takes its path from them): 0 for an integer
    or boolean tensor, 1 for a floating buffer (``running_var`` and any other),
    N(0, 0.01) for a floating parameter, drawn from a generator seeded with
    ``seed`` (its place among the model's parameters): the same values in every
    real step and where the trace reads them (:func:`known_values`).

    >>> w = nn.Parameter(torch.empty(3, device="meta"))
    >>> torch.equal(fill_as_step(torch.empty(3), w, 5), fill_as_step(torch.empty(3), w, 5))
    True
    >>> fill_as_step(torch.empty(2, dtype=torch.long), torch.empty(2, dtype=torch.long, device="meta")).tolist()
    [0, 0]
    """
    with torch.no_grad():
        if not t.dtype.is_floating_point:
            copy.zero_()
        elif isinstance(t, nn.Parameter):
            copy.normal_(0, 0.01, generator=torch.Generator().manual_seed(seed))
        else:
            copy.fill_(1)
    return copy


def known_values(t: torch.Tensor, dtype=None, seed: int = 0) -> Callable[[], torch.Tensor]:
    """A function giving the CPU values a real step holds for the model's tensor
    ``t`` (floating ones cast to ``dtype``): ``t``'s own, or for a meta tensor
    :func:`fill_as_step`'s (``seed``: a parameter's place among the model's).

    >>> known_values(torch.arange(3))().tolist(), known_values(torch.empty(2, device="meta"))().tolist()
    ([0, 1, 2], [1.0, 1.0])
    """
    cast = dtype if dtype is not None and t.dtype.is_floating_point else t.dtype
    if t.device.type != "meta":
        return lambda: t.detach().to("cpu", cast, copy=True)
    return lambda: fill_as_step(torch.empty_strided(t.shape, t.stride(), dtype=cast), t, seed)
