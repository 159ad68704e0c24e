"""The steps traced while a formula in B was made (its two or three logs, its
checks), kept with the formula so that a proof at one of those batches reads the
trace already made instead of tracing the same step again: each proof's trace is
still a concrete trace at that batch, made in the same run.

A step is reused only for the very model object it was traced on (a weak
reference: a model that died matches nothing), with the same trainable flags,
parameter dtypes and shapes, the same input kind, options and device, at the
same input shape.

>>> import torch
>>> from torch import nn
>>> net = nn.Linear(3, 2)
>>> t = Traced(net, "cpu")
>>> t.add(net, (4, 3), {"peak_bytes": 1})
>>> t.values(net, (4, 3), "cpu"), t.values(net, (5, 3), "cpu"), t.values(nn.Linear(3, 2), (4, 3), "cpu")
({'peak_bytes': 1}, None, None)
>>> _ = net.weight.requires_grad_(False)  # other flags: another step
>>> t.values(net, (4, 3), "cpu") is None
True
"""
from __future__ import annotations

import weakref
from typing import Dict, Optional, Sequence

__all__ = ["Traced", "for_step"]


def _fingerprint(model) -> tuple:
    """What of ``model``'s parameters a trace depends on beyond its code: which
    train, their dtypes and shapes, in order."""
    return tuple((p.requires_grad, p.dtype, tuple(p.shape)) for p in model.parameters())


class Traced:
    """Steps of one model traced at concrete input shapes: a
    :class:`~complexity.cost.predict.log.StepLog` or the prediction's values, by
    shape. ``how``: everything else the trace was made with (device, input dtype
    and bound, options), compared whole."""

    def __init__(self, model, *how):
        self._model = weakref.ref(model)
        self._fingerprint = _fingerprint(model)
        self._how = how
        self._steps: Dict[tuple, object] = {}

    def add(self, model, shape: Sequence[int], step) -> None:
        """Keep ``step`` (a StepLog or a values dict) of ``model`` at ``shape``."""
        if self._matches(model, self._how):
            self._steps[tuple(shape)] = step

    def _matches(self, model, how) -> bool:
        return (self._model() is model and how == self._how
                and _fingerprint(model) == self._fingerprint)

    def log(self, model, shape: Sequence[int], *how):
        """The StepLog traced at ``shape`` (None when none was, or it differs)."""
        step = self._steps.get(tuple(shape)) if self._matches(model, how) else None
        return step if hasattr(step, "events") else None

    def values(self, model, shape: Sequence[int], *how) -> Optional[Dict[str, int]]:
        """The prediction's values at ``shape`` (None when no step was traced there)."""
        step = self._steps.get(tuple(shape)) if self._matches(model, how) else None
        return step.values if hasattr(step, "events") else step


def for_step(model, device_type, kw) -> Traced:
    """A record for the steps of ``model`` traced on ``device_type`` with ``kw``
    (``input_dtype``, ``input_high``, ``options``), as
    :func:`~complexity.cost.fit.step_formula.step_formula` traces them."""
    return Traced(model, device_type or None, kw["input_dtype"], kw["input_high"],
                  kw["options"])
