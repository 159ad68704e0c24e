"""Activation checkpointing of a training step: which modules run under
``torch.utils.checkpoint.checkpoint(use_reentrant=False)``, for the measurement
(:func:`checkpointed` wraps their forward) and the prediction
(:func:`complexity.cost.predict.trace.trace` marks their calls as one segment each).

>>> from torch import nn
>>> net = nn.Sequential(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), nn.Linear(2, 2))
>>> [name for name, _ in checkpoint_modules(net, "*")]
['0', '1']

``checkpoint="hf"`` (:data:`HF`) is Hugging Face's own gradient checkpointing,
``model.gradient_checkpointing_enable()`` as a training script calls it: every
``GradientCheckpointingLayer`` of the model (the decoder or encoder layers) runs
its ``forward`` under ``torch.utils.checkpoint.checkpoint(use_reentrant=False)``
(transformers' default since it checkpoints ``forward``, module hooks outside), and
for a model that takes ``input_ids`` the input embeddings' output is made to
require grad (``enable_input_require_grads``: a forward hook), so that gradients
reach the first checkpointed layer even when the embeddings are frozen (LoRA).
The measurement calls transformers' method itself; the prediction marks the same
layers as segments (:func:`checkpoint_modules`) and gets the same hook
(:func:`prepare`).
"""
from __future__ import annotations

import contextlib
import fnmatch
from typing import List, Tuple

from torch import nn

from complexity.cost.step.lora import unwrapped_name
from complexity.errors import OptionError, literal

__all__ = ["checkpoint_modules", "checkpointed", "HF", "hf_model", "prepare"]

#: the ``checkpoint`` value that means Hugging Face's ``gradient_checkpointing_enable()``
HF = "hf"


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
    if glob == HF:
        return _hf_layers(model)
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
    if glob == HF:
        with _hf_enabled(model):
            yield model
        return
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


def hf_model(model: nn.Module):
    """The Hugging Face model inside ``model`` (itself, or the one a LoRA wrapper
    holds) when it supports gradient checkpointing, else None."""
    for mod in model.modules():
        if getattr(type(mod), "supports_gradient_checkpointing", False) and hasattr(
                mod, "gradient_checkpointing_enable"):
            return mod
    return None


def _hf_layers(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """The layers ``gradient_checkpointing_enable()`` checkpoints (every
    ``GradientCheckpointingLayer``, outermost); :class:`OptionError` for a model
    without Hugging Face's gradient checkpointing."""
    inner = hf_model(model)
    layers = []
    if inner is not None:
        from transformers.modeling_layers import GradientCheckpointingLayer

        for name, mod in model.named_modules():
            if isinstance(mod, GradientCheckpointingLayer) and not any(
                    name.startswith(outer + ".") for outer, _ in layers):
                layers.append((name, mod))
    if not layers:
        raise OptionError("{checkpoint} is Hugging Face's gradient checkpointing, which "
                          + literal(type(model).__name__) + " does not support (give a glob "
                          "of module names instead)", checkpoint=HF)
    return layers


def _input_grads_needed(inner) -> bool:
    """Whether ``gradient_checkpointing_enable`` hooks the input embeddings (it does
    for a model that takes ``input_ids``)."""
    return getattr(inner, "main_input_name", None) == "input_ids"


def prepare(model: nn.Module, checkpoint) -> nn.Module:
    """``model`` ready to be predicted with ``checkpoint``: for :data:`HF`, the input
    embeddings' output made to require grad as ``gradient_checkpointing_enable``
    makes it (``enable_input_require_grads``, once); nothing otherwise.

    >>> prepare(nn.Linear(2, 2), "0").weight.shape
    torch.Size([2, 2])
    """
    if checkpoint == HF:
        _hf_layers(model)
        inner = hf_model(model)
        if _input_grads_needed(inner) and getattr(inner, "_require_grads_hook", None) is None:
            inner.enable_input_require_grads()
    return model


@contextlib.contextmanager
def _hf_enabled(model: nn.Module):
    """transformers' own ``gradient_checkpointing_enable()`` on the model inside
    ``model``, undone on exit (with the input-grad hook it added)."""
    import warnings

    _hf_layers(model)
    inner = hf_model(model)
    hooked = getattr(inner, "_require_grads_hook", None) is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # renamed in transformers 5
        inner.gradient_checkpointing_enable()
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            inner.gradient_checkpointing_disable()
        if not hooked and getattr(inner, "_require_grads_hook", None) is not None:
            inner.disable_input_require_grads()
