"""Activation checkpointing, as the schedule and the prediction see it: which calls
of a checkpointed segment keep a tensor (:func:`saving_calls`), whether a backward
node unpacks one (:func:`unpacks`, the moment the segment is replayed), which
calls the replay runs before PyTorch's early stop (:func:`recomputed_calls`), and
the bookkeeping of the replays during the liveness schedule's backward
(:class:`Checkpoints`).
"""
from __future__ import annotations

from typing import Dict, List, Optional

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


class Checkpoints:
    """The checkpointed segments of graph ``g`` during the liveness schedule's
    backward (:mod:`complexity.cost.predict.schedule`): which segment each call
    belongs to, when a segment is replayed (the first of its nodes that unpacks a
    saved tensor), which recomputed tensors its nodes still need, and when the
    checkpoint lets go of the segment's arguments.

    Made with the schedule's ``keep_count`` (storage -> holders for backward): a
    segment's calls keep nothing in the forward; its arguments are held by the
    checkpoint until the last of its nodes that saves a tensor has run in backward
    (the first of them in forward order), if any node saves one."""

    def __init__(self, g: Graph, keep_count: Dict[int, int]):
        self.g = g
        self.seg_of: Dict[int, int] = {}      # call -> its segment
        self.let_go: Dict[int, int] = {}      # segment -> the node after which its inputs go
        self.replayed: set = set()
        self.rkeep: Dict[int, int] = {}       # recomputed storage -> nodes still to use it
        for k, sg in enumerate(g.segments):
            saving = saving_calls(g, sg)
            self.seg_of.update((i, k) for i in range(sg.start, sg.end))
            if saving:
                self.let_go[k] = saving[0]
                for s in dict.fromkeys(sg.held):
                    keep_count[s] = keep_count.get(s, 0) + 1

    def segment(self, idx: int) -> Optional[int]:
        """The segment call ``idx`` belongs to (None: not checkpointed)."""
        return self.seg_of.get(idx)

    def replays_now(self, idx: int, c, with_grad) -> bool:
        """Whether node ``idx`` (call ``c``) is the first of its segment to unpack a
        saved tensor (``with_grad``: the values a gradient has reached): the
        segment is replayed now, once."""
        k = self.seg_of.get(idx)
        if k is None or k in self.replayed or not unpacks(c, with_grad):
            return False
        self.replayed.add(k)
        return True

    def replay(self, k: int, step) -> None:
        """Checkpoint's recomputation of segment ``k`` on the liveness schedule
        ``step`` (its ``sch``, ``birth``, ``last_read``, ``made`` and ``run_call``):
        the forward's liveness, up to the early stop; what the segment's nodes keep
        stays (until :meth:`used` lets it go), the rest goes at the stop."""
        g, sch, segment = self.g, step.sch, self.g.segments[k]
        calls = recomputed_calls(g, segment)
        stop = saving_calls(g, segment)[-1]
        inside = set(calls)
        kept = [s for i in range(segment.start, stop + 1) for s in g.calls[i].kept
                if step.birth.get(s, -1) in inside]
        for s in kept:
            self.rkeep[s] = self.rkeep.get(s, 0) + 1
        ends: Dict[int, List[int]] = {}
        for i in calls:
            c = g.calls[i]
            for s in step.made(c):
                if step.birth.get(s) == i:
                    sch.activation(True, g.storage_bytes[s], s, recomputed=True)
                    if s not in self.rkeep:
                        ends.setdefault(min(calls[-1], max(i, step.last_read.get(s, i))),
                                        []).append(s)
            step.run_call(i, c)
            for s in ends.pop(i, []):
                sch.activation(False, g.storage_bytes[s], s, recomputed=True)

    def used(self, c) -> List[int]:
        """Node ``c`` of a segment has run: each recomputed tensor it kept loses a
        holder; returns those no node needs any more (to free)."""
        gone = []
        for s in c.kept:
            if s in self.rkeep:
                self.rkeep[s] -= 1
                if self.rkeep[s] == 0:
                    del self.rkeep[s]
                    gone.append(s)
        return gone

    def lets_go(self, k: int, idx: int) -> bool:
        """Whether the checkpoint of segment ``k`` lets go of its arguments after
        node ``idx``: the last of its saving nodes to run."""
        return self.let_go.get(k) == idx
