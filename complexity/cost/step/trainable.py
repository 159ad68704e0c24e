"""Which parameters train: ``'full'``, ``'last'`` or parameter-name globs.

``full`` trains every parameter, ``last`` only the last layer (the module owning
the model's last parameter: ``head`` of ``stack``, ``finalconv`` of the
CNN/UNet, ``classifier.4`` of DeepLabV3, ``fc`` of a ResNet), a glob pattern
(``fnmatch``, on names from ``named_parameters``) anything in between.

>>> from models.stack import Stack
>>> net = Stack(2, 3)
>>> last_layer(net), set_trainable(net, "last"), set_trainable(net, "1.*")
('head', 8, 90)
"""
from __future__ import annotations

import fnmatch

from complexity.errors import OptionError, literal

__all__ = ["last_layer", "set_trainable"]


def last_layer(model) -> str:
    """The name of the module that owns the model's last parameter ('' when that
    parameter belongs to the model itself); ``ValueError`` for a model without
    parameters.

    >>> from torch import nn
    >>> last_layer(nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU(), nn.Linear(2, 2)))
    '2'
    """
    names = [n for n, _ in model.named_parameters()]
    if not names:
        raise ValueError("the model has no parameters: nothing to train")
    return names[-1].rpartition(".")[0]


def set_trainable(model, mode: str) -> int:
    """Set ``requires_grad``: ``'full'``, ``'last'`` or parameter-name globs,
    comma-separated (a parameter trains if any glob matches it). Returns the number
    of trainable parameters; ``ValueError`` if a glob matches none.

    >>> from models.stack import Stack
    >>> net = Stack(2, 3)
    >>> set_trainable(net, "0.*,head.*") == set_trainable(net, "0.*") + set_trainable(net, "head.*")
    True
    """
    names = [n for n, _ in model.named_parameters()]
    if not names:
        raise ValueError("the model has no parameters: nothing to train")
    if mode == "full":
        chosen = set(names)
    elif mode == "last":
        owner = last_layer(model)
        if owner:
            chosen = {n for n in names if n.startswith(owner + ".")}
        else:  # a parameter of the model itself: the top-level (dot-free) parameters
            chosen = {n for n in names if "." not in n}
    else:  # globs, comma-separated: a parameter trains if any of them matches it
        chosen = set()
        for pattern in (p.strip() for p in mode.split(",")):
            matched = {n for n in names if fnmatch.fnmatchcase(n, pattern)}
            if not matched:
                raise OptionError("{trainable} matches no parameter name (e.g. "
                                  + literal(f"{names[0]!r} … {names[-1]!r}") + ")",
                                  trainable=pattern)
            chosen |= matched
    count = 0
    for n, p in model.named_parameters():
        p.requires_grad_(n in chosen)
        count += p.numel() if n in chosen else 0
    return count
