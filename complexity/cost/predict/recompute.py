"""Activation checkpointing, as the schedule and the prediction see it: which calls
of a checkpointed segment keep a tensor (:func:`saving_calls`), whether a backward
node unpacks one (:func:`unpacks`, the moment the segment is replayed), and which
calls the replay runs before PyTorch's early stop (:func:`recomputed_calls`).
"""
from __future__ import annotations

from typing import List

from complexity.cost.predict.graph import Graph


def saving_calls(g: Graph, segment) -> List[int]:
    """The calls (indices) of checkpointed ``segment`` that keep a tensor for
    backward, in forward order: the checkpoint holds the segment's arguments until
    the first of them has run in backward, its recomputation stops at the last."""
    return [i for i in range(segment.start, segment.end) if g.calls[i].kept]


def unpacks(c, with_grad) -> bool:
    """Whether call ``c`` of a checkpointed segment unpacks a saved tensor in
    backward: its node keeps one and runs (an output of ``c`` is in ``with_grad``,
    the values a gradient reaches). The segment's forward is replayed when the
    first such node runs, and not at all if none does."""
    return bool(c.kept) and c.node and any(v in with_grad for v in c.outputs)


def recomputed_calls(g: Graph, segment) -> List[int]:
    """The calls (indices) that checkpoint's recomputation of ``segment`` (a
    :class:`complexity.cost.predict.graph.Segment`) runs during backward: from its first
    call to the last that keeps a tensor, where PyTorch's early stop raises as
    that tensor is saved. Autograd saves a call's inputs before it computes and
    what it makes (an output, indices, statistics) after, so that last call runs
    only if it keeps something it makes. Empty when no call of the segment keeps
    anything: there is nothing to recompute.

    >>> from complexity.cost.predict.graph import Segment
    >>> from complexity.cost.predict.trace import trace
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU()), nn.Conv2d(2, 2, 1))
    >>> g = trace(net, (1, 2, 4, 4), checkpoint="0")
    >>> [g.calls[i].name for i in recomputed_calls(g, g.segments[0])]  # relu keeps its output
    ['conv2d', 'relu']
    >>> g = trace(net, (1, 2, 4, 4), checkpoint="1")
    >>> recomputed_calls(g, g.segments[0])  # conv keeps its input: stops before computing
    []
    """
    saving = saving_calls(g, segment)
    if not saving:
        return []
    stop = saving[-1]
    c = g.calls[stop]
    made = {g.value_storage[v] for v in c.outputs}  # in place: a new value, saved after
    runs = any(s < 0 or s in made for s in c.kept)
    return list(range(segment.start, stop + 1 if runs else stop))
