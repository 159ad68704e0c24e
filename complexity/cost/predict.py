"""The cost of one training step, predicted from the model's structure.

Three steps: :func:`complexity.cost.trace.trace` records the functional calls of
one forward pass on the meta device; the per-call rules of
:mod:`complexity.cost.rules` (PyTorch's derivative definitions and
``torch.utils.flop_counter``'s formulas, restated) say what each call keeps for
backward and what it costs; :func:`complexity.cost.schedule.peak` finds the
peak memory.

Memory is the sum of resident storages (parameters, buffers, Adam's two moments
and step counter per trainable tensor, input and target) plus a liveness
schedule: forward outputs live until their last use or, if kept, until their
node's backward; backward runs the nodes in reverse order, each allocating its
input gradients before it frees its output gradient and kept tensors;
``Adam(foreach=False)`` then needs two temporaries the size of a parameter
(``exp_avg_sq.sqrt() / c``) plus the previous parameter's ``denom``.

>>> from models.stack import Stack
>>> p = predict(Stack(2, 4), (1, 4, 8, 8))
>>> p["forward_flops"] == 2 * 64 * (2 * 4 * 36 + 2 * 4)
True
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

from torch import nn

from complexity.cost.schedule import peak
from complexity.cost.trace import trace

__all__ = ["mark", "predict", "predict_with_unmodelled"]

#: The quantities no call of the forward can change: parameters, their gradients
#: and Adam's state. Every other prediction depends on every call having a rule.
CALL_FREE = ("param_bytes", "grad_bytes", "optimizer_bytes")


def mark(quantity: str, unmodelled) -> str:
    """The sign before a predicted value: ``'≈ '`` when a call without a rule may
    move it (counted as keeping nothing and costing no FLOPs — which is no proven
    bound either way: such a call may return a view a ruled call then keeps twice),
    ``''`` when every call has a rule or the quantity depends on no call.

    >>> mark("forward_flops", ["pad"]), mark("peak_bytes", ["pad"]), mark("peak_bytes", [])
    ('≈ ', '≈ ', '')
    >>> mark("param_bytes", ["pad"])
    ''
    """
    if not unmodelled or quantity in CALL_FREE:
        return ""
    return "≈ "


def predict(model: nn.Module, input_shape: Sequence[int], target=None,
            device_type: Optional[str] = None, *, input_dtype=None,
            input_high=None) -> Dict[str, int]:
    """Predict one Adam training step of ``model`` on a batch of ``input_shape``:
    the same keys as :func:`complexity.cost.measure.measure`. Trainable =
    parameters with ``requires_grad``; ``model`` is not modified. A call with no
    rule (see :func:`predict_with_unmodelled`) gives a ``UserWarning``: the values
    are then approximate (:func:`mark`). ``device_type``: where the real step runs (default: the
    device of the model's parameters), e.g. ``'cuda'`` for bool dropout masks.
    ``input_dtype``, ``input_high``: the input's dtype (float32 by default) and, for
    integer token ids, their bound (:func:`complexity.cost.measure.make_input`)."""
    values, unmodelled = predict_with_unmodelled(model, input_shape, target, device_type,
                                                 input_dtype=input_dtype,
                                                 input_high=input_high)
    if unmodelled:
        import warnings
        warnings.warn("finetune.predict: no rule for " + ", ".join(unmodelled)
                      + " (counted as keeping nothing and costing no FLOPs)", stacklevel=2)
    return values


def predict_with_unmodelled(model: nn.Module, input_shape: Sequence[int], target=None,
                            device_type: Optional[str] = None, *, input_dtype=None,
                            input_high=None):
    """``(values, unmodelled)``: :func:`predict`'s values and the sorted names of
    the calls that no rule covers (on the gradient path or off it). Those calls
    are counted as keeping nothing and costing no FLOPs, so with a non-empty list
    the saved, peak and FLOP values are approximate (:func:`mark`)."""
    g = trace(model, input_shape, target, device_type, input_dtype=input_dtype,
              input_high=input_high)
    params = list(model.parameters())
    trainable = [p.numel() * p.element_size() for p in params if p.requires_grad]
    if not trainable:
        raise ValueError("no parameter of the model requires grad: nothing to train")
    # Only what the loss reaches gets a gradient (GoogLeNet's auxiliary heads in
    # train mode, an unused parameter: no .grad, no Adam state, no backward).
    needed = {g.calls[-1].outputs[0]}
    for c in reversed(g.calls):
        if c.node and any(v in needed for v in c.outputs):
            needed.update(c.grad_inputs)
        else:
            c.backward_flops = 0
    trainable = [b for v, b in g.params.items() if v in needed]
    # Adam keeps exp_avg and exp_avg_sq (one parameter's size each) and a float32
    # step counter per trainable tensor (torch.optim.Adam, PyTorch >= 1.12).
    optimizer = 2 * sum(trainable) + 4 * len(trainable)
    resident = sum(g.storage_bytes[s] for s in g.resident) + optimizer
    kept = {s for c in g.calls for s in c.kept if s not in g.params_storages()}
    return ({
        "param_bytes": sum(p.numel() * p.element_size() for p in params),
        "grad_bytes": sum(trainable),
        "optimizer_bytes": optimizer,
        "saved_activation_bytes": sum(g.storage_bytes[s] for s in kept),
        "peak_bytes": peak(g, trainable, resident),
        "forward_flops": sum(c.forward_flops for c in g.calls),
        "backward_flops": sum(c.backward_flops for c in g.calls),
    }, sorted(g.unmodelled))
