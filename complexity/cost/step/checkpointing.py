"""Activation checkpointing of a training step: which modules run under
``torch.utils.checkpoint.checkpoint(use_reentrant=False)``, for the measurement
(:func:`checkpointed` wraps their forward) and the prediction
(:func:`complexity.cost.predict.trace.trace` marks their calls as one segment each).

>>> from torch import nn
>>> net = nn.Sequential(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), nn.Linear(2, 2))
>>> [name for name, _ in checkpoint_modules(net, "*")]
['0', '1']
"""
from __future__ import annotations

import contextlib
import fnmatch
from typing import List, Tuple

from torch import nn

from complexity.cost.step.lora import unwrapped_name
from complexity.errors import OptionError, literal

__all__ = ["checkpoint_modules", "checkpointed"]


def checkpoint_modules(model: nn.Module, glob: str) -> List[Tuple[str, nn.Module]]:
    """``[(name, module)]``: the modules whose qualified name matches ``glob``
    (``fnmatch.fnmatchcase``), outermost only — a match inside a matched module is
    part of its segment. The root (no name) never matches. No match: ValueError
    naming the glob and a few module names.

    >>> from torchvision.models import resnet18
    >>> [n for n, _ in checkpoint_modules(resnet18(), "layer*")]
    ['layer1', 'layer2', 'layer3', 'layer4']
    >>> checkpoint_modules(resnet18(), "block*")
    Traceback (most recent call last):
    ...
    complexity.errors.OptionError: checkpoint='block*' matches no module (modules: conv1, bn1, relu, maxpool, layer1, …)
    """
    found: List[Tuple[str, nn.Module]] = []
    for name, mod in model.named_modules():
        if not name or not fnmatch.fnmatchcase(unwrapped_name(name), glob):
            continue
        if any(name.startswith(outer + ".") for outer, _ in found):
            continue  # inside a matched module: part of its segment
        found.append((name, mod))
    if not found:
        names = [n for n, _ in model.named_modules() if n]
        few = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
        raise OptionError("{checkpoint} matches no module (modules: " + literal(few or "none")
                          + ")", checkpoint=glob)
    return found


@contextlib.contextmanager
def checkpointed(model: nn.Module, glob: str):
    """``model`` with each module of :func:`checkpoint_modules` running its forward
    under ``torch.utils.checkpoint.checkpoint(forward, *args, use_reentrant=False)``
    (PyTorch's default early stop of the recomputation), restored on exit. The
    wrapper is an instance attribute ``forward``, so module hooks still run around it.

    >>> import torch
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    >>> with checkpointed(net, "0"):
    ...     "forward" in vars(net[0])
    True
    >>> "forward" in vars(net[0])
    False
    """
    from torch.utils.checkpoint import checkpoint

    undo = []
    try:
        for _, mod in checkpoint_modules(model, glob):
            own = mod.__dict__.get("forward", None)  # an instance forward already there
            inner = mod.forward

            def forward(*args, _inner=inner, **kwargs):
                return checkpoint(_inner, *args, use_reentrant=False, **kwargs)

            undo.append((mod, own))
            mod.forward = forward
        yield model
    finally:
        for mod, own in reversed(undo):
            if own is None:
                del mod.__dict__["forward"]
            else:
                mod.__dict__["forward"] = own
