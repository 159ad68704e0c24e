"""The step log: every allocation, release and peak reading of one predicted
training step, in order, as typed events — what the liveness schedule
(:mod:`complexity.cost.predict.schedule`) writes and what the formulas in ``B`` and
in ``(B, H, W)`` and the CUDA allocator model (:mod:`complexity.cost.fit`) read, by
field. :func:`complexity.cost.predict.prediction.step_log` traces a step and returns
its :class:`StepLog`.

>>> ev = Event(Kind.ALLOC, 1024, Key(What.ACTIVATION, 7), Category.ACTIVATIONS)
>>> ev.kind is Kind.ALLOC, ev.size, ev.key.what.value, ev.category.value
(True, 1024, 'activation', 'activations')
>>> ev.resized(2048).size
2048
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Sequence

from complexity.cost.keys import Category


class Kind(enum.Enum):
    """What happens: bytes allocated, bytes released, or the moment the live
    bytes are read (a candidate for the peak; the event's size is then the live
    bytes)."""

    ALLOC = "alloc"
    FREE = "free"
    MARK = "mark"


class What(enum.Enum):
    """What an allocation is."""

    ACTIVATION = "activation"   # a forward result or a tensor a node keeps (ident: storage)
    RECOMPUTED = "recomputed"   # made again by a checkpointed segment's replay (ident: storage)
    GRAD = "grad"               # a gradient buffer (ident: its number; of: the value)
    WORKSPACE = "workspace"     # a call's transient memory (ident: the call's index;
                                # ("backward", index) for its backward's)
    UPDATE = "update"           # the optimizer's update: its temporaries, its state made
    SCALER = "scaler"           # a GradScaler temporary (ident: its name)
    EXTRA = "extra"             # bytes alive through the forward only (the previous loss)


class Key(NamedTuple):
    """Names one allocation, so that its release (and an allocator model) can find
    it; equal keys in two traces name the same thing."""

    what: What
    ident: object = 0
    of: Optional[int] = None    # GRAD: the value the gradient is of


class Event(NamedTuple):
    """One event of the step log. ``size``: bytes (for a :attr:`Kind.MARK`, the
    live bytes then) — or, in a formula, the coefficients of its size in the
    batch and the input's size. ``key`` and ``category``: None for a reading."""

    kind: Kind
    size: object
    key: Optional[Key] = None
    category: Optional[Category] = None

    def resized(self, size) -> "Event":
        """The same event with another size (a formula's coefficients, or its value
        at a batch)."""
        return self._replace(size=size)

    @property
    def shape(self) -> tuple:
        """What must be equal between two traces for their logs to be one schedule:
        the event without its size."""
        return self.kind, self.key, self.category


def shapes(events: Sequence[Event]) -> List[tuple]:
    """:attr:`Event.shape` of each event: two logs with equal shapes differ only
    in their sizes."""
    return [e.shape for e in events]


@dataclass
class StepLog:
    """One traced step at a concrete input size, as the formulas and the allocator
    model read it.

    ``values``: the :data:`~complexity.cost.keys.KEYS`, as
    :func:`~complexity.cost.predict.prediction.predict` gives them; ``events``: the
    schedule's log; ``weights``: parameter and buffer bytes; ``io``: input and
    target bytes; ``optimizer``: the optimizer's state bytes; ``step_counter_bytes``:
    the part of it that Adam keeps in 4-byte ``step`` counters on the CPU (none on a
    GPU unless fused); ``resident_grads``: ``.grad`` buffers alive before the step
    (``zero_grad(set_to_none=False)``, gradient accumulation); ``scaler``: the
    GradScaler's resident bytes; ``resident_blocks``: the bytes of each storage alive
    before the step, in the order made (parameters, buffers, input, target, resident
    gradients, the scaler's two scalars); ``trainable_sizes``: the bytes of each
    trainable tensor the loss reaches, in the optimizer's order; ``unmodelled``: the
    calls no rule covers."""

    values: Dict[str, int]
    events: List[Event]
    weights: int
    io: int
    optimizer: int
    step_counter_bytes: int
    resident_grads: int
    scaler: int
    resident_blocks: List[int]
    trainable_sizes: List[int]
    unmodelled: List[str]

    #: the numbers besides the events that must not change with the batch (nor
    #: with the input's size)
    FIXED = ("weights", "optimizer", "step_counter_bytes", "resident_grads", "scaler")

    def fixed(self) -> Dict[str, int]:
        """The :attr:`FIXED` numbers by name."""
        return {k: getattr(self, k) for k in self.FIXED}

    def resident_bytes(self) -> int:
        """The bytes held before the step begins, but the input and target: the
        weights, the optimizer's state, resident ``.grad`` buffers and the
        GradScaler's."""
        return self.weights + self.optimizer + self.resident_grads + self.scaler
