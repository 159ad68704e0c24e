"""``torch.utils._pytree``'s ``tree_flatten`` and ``tree_map``, the same answers
faster for what a traced call's arguments are made of: plain tuples, lists and
dicts are walked here (the trace of a Llama walks some 100,000 a step; pytree's
generic walk was a fifth of it), any other container (a namedtuple, a model's
output, an ``OrderedDict``) by pytree itself.

>>> import torch
>>> x = torch.ones(1)
>>> tree = ((x, 2), {"a": [3, x]}, torch.Size([4]))
>>> from torch.utils._pytree import tree_flatten, tree_map
>>> leaves(tree) == tree_flatten(tree)[0], len(tensors(tree))
(True, 2)
>>> map_leaves(str, tree) == tree_map(str, tree)
True
"""
from __future__ import annotations

from typing import Any, Callable, List

import torch
from torch.utils._pytree import tree_flatten, tree_map

__all__ = ["leaves", "tensors", "map_leaves"]

#: leaves that are never containers to pytree (``torch.Size`` is one: its ints)
_ATOMS = frozenset({bool, int, float, str, type(None), torch.dtype, torch.device,
                    torch.Tensor, torch.nn.Parameter})


def leaves(tree) -> List[Any]:
    """``tree_flatten(tree)[0]``."""
    found: List[Any] = []
    _walk(tree, found)
    return found


def _walk(tree, found: list) -> None:
    kind = type(tree)
    if kind is tuple or kind is list:
        for x in tree:
            _walk(x, found)
    elif kind is dict:  # pytree's order: the values, as inserted
        for x in tree.values():
            _walk(x, found)
    elif kind in _ATOMS:
        found.append(tree)
    else:
        found.extend(tree_flatten(tree)[0])


def tensors(tree) -> List[torch.Tensor]:
    """The tensors among ``tree``'s leaves, in order."""
    return [t for t in leaves(tree) if isinstance(t, torch.Tensor)]


def map_leaves(fn: Callable, tree):
    """``tree_map(fn, tree)``."""
    kind = type(tree)
    if kind is tuple:
        return tuple(map_leaves(fn, x) for x in tree)
    if kind is list:
        return [map_leaves(fn, x) for x in tree]
    if kind is dict:
        return {k: map_leaves(fn, v) for k, v in tree.items()}
    if kind in _ATOMS:
        return fn(tree)
    return tree_map(fn, tree)
