"""The cost of one training step, predicted from the model's structure.

Three steps: :func:`complexity.cost.predict.trace.trace` records the functional calls of
one forward pass on the meta device; the per-call rules of
:mod:`complexity.cost.predict.rules` (PyTorch's derivative definitions and
``torch.utils.flop_counter``'s formulas, restated) say what each call keeps for
backward and what it costs; :func:`complexity.cost.predict.schedule.peak` finds the
peak memory.

Memory is the sum of resident storages (parameters, buffers, the optimizer's state
— Adam's two moments and step counter per trainable tensor —, input and target)
plus a liveness
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

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from complexity.cost.predict.log import Event, StepLog
from complexity.cost.step.grad_scaler import SCALER_BLOCKS, SCALER_BYTES
from complexity.cost.step.optimizers import Optimizer
from complexity.cost.step.options import StepOptions
from complexity.cost.predict.recompute import recomputed_calls, saving_calls, unpacks
from complexity.cost.predict.schedule import peak
from complexity.cost.predict.trace import trace

__all__ = ["mark", "predict", "predict_with_unmodelled", "predict_step", "StepPrediction",
           "step_graph", "step_log"]

#: The quantities no call of the forward can change: parameters, their gradients
#: and the optimizer's state. Every other prediction depends on every call having a rule.
CALL_FREE = ("param_bytes", "grad_bytes", "optimizer_bytes")

#: Ends an entry of the unmodelled calls that names a call answered from the
#: parameters' values (a router choosing experts: :mod:`complexity.cost.predict.shadow`):
#: the step's path, so every quantity but the parameters' bytes (an expert no token
#: reaches gets no gradient), holds for those values only — an estimate for others.
READS_WEIGHTS = " (reads the weights' values)"


def mark(quantity: str, unmodelled) -> str:
    """The sign before a predicted value: ``'≈ '`` when a call without a rule may
    move it (counted as keeping nothing and costing no FLOPs — which is no proven
    bound either way: such a call may return a view a ruled call then keeps twice),
    or when the step's path depends on the weights' values (:data:`READS_WEIGHTS`);
    ``''`` when every call has a rule or the quantity depends on no call.

    >>> mark("forward_flops", ["pad"]), mark("peak_bytes", ["pad"]), mark("peak_bytes", [])
    ('≈ ', '≈ ', '')
    >>> mark("param_bytes", ["pad"]), mark("grad_bytes", ["nonzero" + READS_WEIGHTS])
    ('', '≈ ')
    """
    if any(u.endswith(READS_WEIGHTS) for u in unmodelled or ()) and quantity != "param_bytes":
        return "≈ "
    if not unmodelled or quantity in CALL_FREE:
        return ""
    return "≈ "


def predict(model: nn.Module, input_shape: Sequence[int], target=None,
            device_type: Optional[str] = None, *, input_dtype=None,
            input_high=None, options: Optional[StepOptions] = None) -> Dict[str, int]:
    """Predict one training step of ``model`` on a batch of ``input_shape``:
    the same keys as :func:`complexity.cost.measure.cpu_step.measure`. Trainable =
    parameters with ``requires_grad``; ``model`` is not modified. A call with no
    rule (see :func:`predict_with_unmodelled`) gives a ``UserWarning``: the values
    are then approximate (:func:`mark`). ``device_type``: where the real step runs (default: the
    device of the model's parameters), e.g. ``'cuda'`` for bool dropout masks.
    ``input_dtype``, ``input_high``: the input's dtype (float32 by default) and, for
    integer token ids, their bound (:func:`complexity.cost.step.batch.make_input`).
    ``options``: how the step runs (:class:`complexity.cost.step.options.StepOptions`)."""
    values, unmodelled = predict_with_unmodelled(model, input_shape, target, device_type,
                                                 input_dtype=input_dtype,
                                                 input_high=input_high, options=options)
    import warnings

    reads = [u for u in unmodelled if u.endswith(READS_WEIGHTS)]
    if len(reads) < len(unmodelled):
        warnings.warn("finetune.predict: no rule for "
                      + ", ".join(u for u in unmodelled if u not in reads)
                      + " (counted as keeping nothing and costing no FLOPs)", stacklevel=2)
    if reads:
        warnings.warn("finetune.predict: the step's path depends on the weights' values ("
                      + ", ".join(reads) + "): an estimate for weights other than these",
                      stacklevel=2)
    return values


def predict_with_unmodelled(model: nn.Module, input_shape: Sequence[int], target=None,
                            device_type: Optional[str] = None, *, input_dtype=None,
                            input_high=None, options: Optional[StepOptions] = None,
                            events: Optional[list] = None):
    """``(values, unmodelled)``: :func:`predict`'s values and the sorted names of
    the calls that no rule covers (on the gradient path or off it). Those calls
    are counted as keeping nothing and costing no FLOPs, so with a non-empty list
    the saved, peak and FLOP values are approximate (:func:`mark`); after them,
    each call that read the weights' values to choose the step's path, ending in
    :data:`READS_WEIGHTS`. ``options``:
    how the step runs (:class:`complexity.cost.step.options.StepOptions`: optimizer,
    dtype, gradient buffers, accumulation); ``events``: a list that receives the
    liveness schedule's events (:func:`complexity.cost.predict.schedule.peak`)."""
    p = predict_step(model, input_shape, target, device_type, input_dtype=input_dtype,
                     input_high=input_high, options=options, events=events)
    return p.values, p.unmodelled


@dataclass
class StepPrediction:
    """Everything :func:`predict_step` worked out: the :data:`KEYS` ``values``, the
    ``unmodelled`` calls, the traced ``graph``, the bytes of each trainable tensor
    the loss reaches (``trainable_sizes``, in the optimizer's order), and the
    ``weights`` (parameters, buffers) and ``io`` (input, target) bytes resident
    through the step."""

    values: Dict[str, int]
    unmodelled: List[str]
    graph: object
    trainable_sizes: List[int]
    weights: int
    io: int


def _scale_loss(g) -> None:
    """Record ``scaler.scale(loss)`` as the graph's last call: ``loss * scale``, a
    new float32 scalar (a 0-dim product promotes to float32) whose autograd node
    keeps only the resident scale and makes the loss's gradient. FlopCounterMode
    counts no FLOPs for it."""
    from complexity.cost.predict.graph import Call

    loss = g.calls[-1].outputs[0]
    grad = g.calls[-1].node
    scaled = g.value(torch.empty((), dtype=torch.float32, device="meta"), new=True)
    g.calls.append(Call("mul", [loss], [scaled], node=grad,
                        grad_inputs=[loss] if grad else []))


def predict_step(model: nn.Module, input_shape: Sequence[int], target=None,
                 device_type: Optional[str] = None, *, input_dtype=None, input_high=None,
                 options: Optional[StepOptions] = None,
                 events: Optional[list] = None, graph=None, maximum=max) -> StepPrediction:
    """:func:`predict_with_unmodelled`, with the parts it is made of
    (:class:`StepPrediction`). ``graph``: the step's graph traced already (with
    sizes that may be sympy expressions, and ``maximum`` their maximum:
    :mod:`complexity.cost.predict.symbolic`).

    >>> from models.stack import Stack
    >>> net = Stack(2, 4)
    >>> p = predict_step(net, (1, 4, 8, 8))
    >>> p.values["grad_bytes"] == sum(p.trainable_sizes)
    True
    >>> p.weights == sum(t.numel() * t.element_size() for t in [*net.parameters(), *net.buffers()])
    True
    """
    options = options or StepOptions()
    dtype = options.torch_dtype() if options.dtype != "float32" else None
    g = graph if graph is not None else step_graph(model, input_shape, target, device_type,
                                                   input_dtype, input_high, options)
    loss_value = g.loss
    params = list(model.parameters())
    size = lambda p: p.numel() * (dtype.itemsize if dtype is not None and  # noqa: E731
                                  p.dtype.is_floating_point else p.element_size())
    if not any(p.requires_grad for p in params):
        raise ValueError("no parameter of the model requires grad: nothing to train")
    needed = _reached(g)
    trainable = [g.params[v] for v in g.params if v in needed]
    # The optimizer's state (cost/step/optimizers.py: Adam keeps exp_avg, exp_avg_sq and
    # a float32 step counter per trainable tensor, SGD with momentum one buffer).
    optimizer = options.optimizer.state_bytes(trainable, g.device_type)
    state = g.params_storages()
    weights = sum(g.storage_bytes[s] for s in g.resident if s in state)
    io = sum(g.storage_bytes[s] for s in g.resident if s not in state)
    resident = weights + io + optimizer
    if options.grads_resident:
        resident += sum(trainable)
    if options.grad_scaler:
        resident += SCALER_BYTES
    # K micro-batches per optimizer step: K forward and backward passes.
    passes = options.grad_accum
    values = {
        "param_bytes": sum(size(p) for p in params),
        "grad_bytes": sum(trainable),
        "optimizer_bytes": optimizer,
        "saved_activation_bytes": sum(g.storage_bytes[s] for s in _kept(g) - state),
        "peak_bytes": peak(g, trainable, resident, events, optimizer=options.optimizer,
                           grads_resident=options.grads_resident,
                           # the previous micro-batch's loss, bound until the next is made
                           forward_extra=(g.value_bytes[loss_value]
                                          if options.grad_accum > 1 else 0),
                           grad_scaler=options.grad_scaler, maximum=maximum),
        "forward_flops": passes * sum(c.forward_flops for c in g.calls),
        "backward_flops": passes * (sum(c.backward_flops for c in g.calls)
                                    + _replayed_flops(g, needed)),
    }
    unmodelled = sorted(g.unmodelled) + sorted(n + READS_WEIGHTS for n in g.weight_reads)
    return StepPrediction(values, unmodelled, g, trainable, weights, io)


def step_graph(model, input_shape, target, device_type, input_dtype, input_high, options):
    """The step's graph: the forward and loss traced with the options' dtype, autocast
    and checkpointing, the loss marked (:attr:`Graph.loss`) and, with loss scaling,
    ``scaler.scale(loss)`` recorded after it."""
    dtype = options.torch_dtype() if options.dtype != "float32" else None
    amp = options.autocast_dtype()
    if amp is not None and device_type is None:
        # where the measurement runs an autocast step: float16 on (fake) CUDA
        device_type = "cuda" if amp is torch.float16 else "cpu"
    g = trace(model, input_shape, target, device_type, input_dtype=input_dtype,
              input_high=input_high, dtype=dtype, autocast=amp, checkpoint=options.checkpoint)
    if g.loss is None:  # cross-entropy on the logits: the last call (the model's own: marked)
        g.loss = g.calls[-1].outputs[0]
    if options.grad_scaler:
        _scale_loss(g)
    return g


def _reached(g) -> set:
    """The values backward gives a gradient: what the loss (or the scaled loss)
    reaches through nodes; a call it does not reach does no backward (GoogLeNet's
    auxiliary heads in train mode, an unused parameter: no .grad, no optimizer
    state, no backward FLOPs)."""
    needed = {g.calls[-1].outputs[0]}
    for c in reversed(g.calls):
        if c.node and any(v in needed for v in c.outputs):
            needed.update(c.grad_inputs)
        else:
            c.backward_flops = 0
    return needed


def _kept(g) -> set:
    """The storages kept for backward. Checkpointed segments keep nothing of their
    own: checkpoint saves each segment's positional tensor arguments instead (the
    saved-tensor hooks see them) and replays the segment's forward in backward."""
    inside = {i for sg in g.segments for i in range(sg.start, sg.end)}
    kept = {s for i, c in enumerate(g.calls) if i not in inside for s in c.kept}
    kept.update(s for sg in g.segments for s in sg.saved)
    return kept


def _replayed_flops(g, needed: set) -> int:
    """The forward FLOPs checkpoint's replays add to backward: a segment replays,
    up to its early stop, if a saving node of it runs (``needed``: the values the
    schedule's backward gives a gradient)."""
    return sum(g.calls[i].forward_flops for sg in g.segments
               if any(unpacks(g.calls[j], needed) for j in saving_calls(g, sg))
               for i in recomputed_calls(g, sg))


def step_log(model, input_shape: Sequence[int], device_type: Optional[str] = None, *,
             input_dtype=None, input_high=None, options=None) -> StepLog:
    """Trace one step of ``model`` at a concrete ``input_shape`` (arguments as
    :func:`~complexity.cost.predict.prediction.predict` takes them) and return its
    :class:`StepLog`.

    >>> from models.stack import Stack
    >>> log = step_log(Stack(2, 4), (2, 4, 8, 8))
    >>> log.values == predict(Stack(2, 4), (2, 4, 8, 8))
    True
    >>> max(e.size for e in log.events if e.kind.value == "mark") == log.values["peak_bytes"]
    True
    """
    events: List[Event] = []
    p = predict_step(model, input_shape, None, device_type, input_dtype=input_dtype,
                     input_high=input_high, events=events, options=options)
    g = p.graph
    # One block per resident storage, in the order they were made (parameters,
    # buffers, input, target): what a caching-allocator model allocates first;
    # then the gradient buffers that outlive a step (zero_grad(set_to_none=False),
    # gradient accumulation).
    blocks = [g.storage_bytes[s] for s in sorted(g.resident)]
    grads = p.values["grad_bytes"] if options is not None and options.grads_resident else 0
    if grads:
        blocks += p.trainable_sizes
    # The GradScaler's scale (float32) and growth tracker (int32), made by the first
    # step's scaler.scale(loss) and resident from then on.
    scaler = SCALER_BYTES if options is not None and options.grad_scaler else 0
    if scaler:
        blocks += SCALER_BLOCKS
    # Adam's 4-byte step counters, where the state holds them (on the CPU device):
    # the state less what the same optimizer keeps on a GPU
    optimizer = options.optimizer if options is not None else Optimizer()
    counters = p.values["optimizer_bytes"] - optimizer.state_bytes(p.trainable_sizes, "cuda")
    return StepLog(values=p.values, events=events, weights=p.weights, io=p.io,
                   optimizer=p.values["optimizer_bytes"], step_counter_bytes=counters, resident_grads=grads,
                   scaler=scaler, resident_blocks=blocks, trainable_sizes=p.trainable_sizes,
                   unmodelled=p.unmodelled)
