"""Peak memory of one training step, from a traced graph: a liveness schedule.

:func:`peak` walks the calls recorded by :func:`complexity.cost.trace.trace`
three times — forward, backward in reverse, then the Adam update — adding each
storage when it is made and dropping it when nothing holds it any more, and
returns the most ever alive. What holds a storage: the caller of the module it
was passed to (until that module returns), a later call that reads it, an
autograd node that keeps it (until that node's backward), a parameter's
``.grad``. Gradients follow PyTorch's engine: add, cat and views hand the output
gradient on without a copy; a node's kept tensors go as soon as it has run; a
second gradient for the same tensor is summed into a new one (in place only for
a parameter's ``.grad``).

A graph of one call, the loss ``sum`` of a resident 1 KiB input: the peak is the
input, the 4-byte loss and the loss's 4-byte gradient (nothing trains).

>>> import torch
>>> from complexity.cost.graph import Call
>>> g = Graph()
>>> x = g.value(torch.empty(256, device="meta"))
>>> g.resident.add(g.value_storage[x])
>>> g.calls.append(Call("sum", [x], [g.value(torch.empty((), device="meta"), new=True)]))
>>> peak(g, [], resident_bytes=1024)
1032
"""
from __future__ import annotations

from typing import Dict, List, Optional

from complexity.cost.graph import SHARES_GRAD, Graph


class _Schedule:
    """Live bytes, and their maximum, as storages come and go. With ``events`` (a
    list), every allocation ``("alloc", nbytes, key)``, release ``("free", nbytes,
    key)`` and moment the peak is read ``("mark", live, None)`` is appended to it, in
    order: the sequence a caching-allocator model or a symbolic peak replays. A key
    names what was allocated: ``("activation", storage)`` (a forward result or a
    tensor a node keeps), ``("grad", n, value)`` (a gradient buffer; ``value`` is the
    tensor it is the gradient of, a parameter's value id for ``.grad``),
    ``("transient", call index)`` (a call's workspace) or ``("optimizer", 0)``
    (the update's temporaries). With checkpointing, a tensor made again by a
    segment's recomputation during backward is ``("activation", storage,
    "recomputed")`` (the storage id of the forward tensor it repeats)."""

    def __init__(self, resident_bytes: int, events: Optional[list] = None):
        self.live = self.peak = resident_bytes
        self.events = events

    def alloc(self, nbytes: int, key=None) -> None:
        self.live += nbytes
        # the update is logged even when it allocates nothing: a replay makes the
        # optimizer's state there
        if self.events is not None and (nbytes or key == ("optimizer", 0)):
            self.events.append(("alloc", nbytes, key))

    def free(self, nbytes: int, key=None) -> None:
        self.live -= nbytes
        if self.events is not None and nbytes:
            self.events.append(("free", nbytes, key))

    def mark(self) -> None:
        self.peak = max(self.peak, self.live)
        if self.events is not None:
            self.events.append(("mark", self.live, None))


def peak(g: Graph, trainable_sizes: List[int], resident_bytes: int,
         events: Optional[list] = None, *, optimizer=None, grads_resident: bool = False,
         forward_extra: int = 0) -> int:
    """Most bytes alive at once; ``resident_bytes`` are alive throughout (weights,
    buffers, Adam state, input, target), ``trainable_sizes`` in Adam's order.
    ``events``: a list that receives the schedule's allocations, releases and peak
    readings in order (see :class:`_Schedule`); the resident bytes are not in it.
    ``optimizer``: the :class:`complexity.cost.optimizers.Optimizer` whose update
    ends the step (default ``Adam(foreach=False)``). ``grads_resident``: the
    parameters' ``.grad`` buffers exist before the forward (``zero_grad(set_to_none=
    False)``, or a later micro-batch of gradient accumulation) and must be counted
    in ``resident_bytes``: each gradient arriving in backward is then added into
    its buffer in place and freed. ``forward_extra``: bytes alive through the
    forward only (the previous micro-batch's loss, still bound to its name until
    the new loss replaces it). Checkpointed segments (``g.segments``) keep nothing
    in the forward but their arguments; the first of their nodes to run in
    backward replays their forward up to :func:`recomputed_calls`' early stop.

    >>> import torch
    >>> from complexity.cost.trace import trace_calls
    >>> x = torch.ones(64, requires_grad=True)
    >>> g = trace_calls(lambda t: (t * 2).sum(), x, state=[x])
    >>> ev = []
    >>> peak(g, [256], 256, ev) == max(v for k, v, _ in ev if k == "mark")
    True
    >>> [e[0] for e in ev][:2], ev[0][2][0]
    (['alloc', 'mark'], 'activation')
    """
    sch = _Schedule(resident_bytes, events)
    keep_count: Dict[int, int] = {}
    # Checkpointed segments: their calls keep nothing in the forward; the segment's
    # arguments are held by the checkpoint until the last of its nodes that saves a
    # tensor has run (the first of them in forward order), if any node saves one.
    seg_of: Dict[int, int] = {}
    let_go: Dict[int, int] = {}  # segment -> the node after which its inputs go
    for k, sg in enumerate(g.segments):
        saving = [i for i in range(sg.start, sg.end) if g.calls[i].kept]
        seg_of.update((i, k) for i in range(sg.start, sg.end))
        if saving:
            let_go[k] = saving[0]
            for s in dict.fromkeys(sg.held):
                keep_count[s] = keep_count.get(s, 0) + 1
    for i, c in enumerate(g.calls):
        for s in c.kept if i not in seg_of else ():
            keep_count[s] = keep_count.get(s, 0) + 1
    # Forward: a storage lives from the call that makes it to its last read,
    # or, if a node keeps it, until that node's backward.
    last_read: Dict[int, int] = {}
    for i, c in enumerate(g.calls):
        for v in c.inputs:
            last_read[g.value_storage[v]] = i
    # What Python still references stays alive too: a module's caller holds its
    # arguments until it returns, and a forward's locals (DenseBlock's list of
    # features, DenseLayer's bottleneck output) hold what they name until it
    # returns. The trace saw, for each storage, the last call before its Python
    # object was freed.
    for held in (g.held_until, g.freed_after):
        for s, i in held.items():
            last_read[s] = max(last_read.get(s, i), i)
    born = set(g.resident)
    birth: Dict[int, int] = {}  # storage -> the call that made it
    sch.alloc(forward_extra, ("activation", 0))
    dies_at: Dict[int, List[int]] = {}
    for i, c in enumerate(g.calls):
        fresh = [g.value_storage[v] for v in c.outputs] + [s for s in c.kept if s < 0]
        for s in dict.fromkeys(fresh):
            if s not in born:
                born.add(s)
                birth[s] = i
                sch.alloc(g.storage_bytes[s], ("activation", s))
                if s not in keep_count and i < len(g.calls) - 1:  # the loss stays held
                    dies_at.setdefault(max(i, last_read.get(s, i)), []).append(s)
        sch.alloc(c.transient, ("transient", i))
        sch.mark()
        sch.free(c.transient, ("transient", i))
        for s in dies_at.pop(i, []):
            sch.free(g.storage_bytes[s], ("activation", s))
    sch.free(forward_extra, ("activation", 0))
    # Backward: nodes in reverse order of creation (the engine's order for a
    # single device: highest sequence number first).
    refs: Dict[int, int] = {}
    sizes: Dict[int, int] = {}
    keys: Dict[int, tuple] = {}
    grad_of: Dict[int, int] = {}

    def new_grad(nbytes, value):
        gid = len(sizes)
        sizes[gid], refs[gid] = nbytes, 0
        keys[gid] = ("grad", gid, value)
        sch.alloc(nbytes, keys[gid])
        return gid

    def release(gid):
        refs[gid] -= 1
        if refs[gid] == 0:
            sch.free(sizes[gid], keys[gid])

    # d loss / d loss = 1: ``loss.backward()`` makes it (``_make_grads``) and holds
    # it in a local of ``torch.autograd.backward`` until the engine returns, so it
    # outlives the loss's node (one reference for the node, one for Python).
    loss = g.calls[-1].outputs[0]
    root = new_grad(g.value_bytes[loss], loss)  # ones_like(loss): the loss's dtype
    grad_of[g.calls[-1].outputs[0]] = root
    refs[root] = 2
    replayed: set = set()
    rkeep: Dict[int, int] = {}  # recomputed storage -> nodes still to use it

    def replay(k):
        """Checkpoint's recomputation of segment ``k``, run when the engine first
        unpacks one of its saved tensors: the forward's liveness, up to the early
        stop; what the segment's nodes keep stays, the rest goes at the stop."""
        calls = recomputed_calls(g, g.segments[k])
        stop = max(i for i in range(g.segments[k].start, g.segments[k].end) if g.calls[i].kept)
        inside = set(calls)
        kept = [s for i in range(g.segments[k].start, stop + 1) for s in g.calls[i].kept
                if birth.get(s, -1) in inside]
        for s in kept:
            rkeep[s] = rkeep.get(s, 0) + 1
        ends: Dict[int, List[int]] = {}
        for i in calls:
            c = g.calls[i]
            fresh = [g.value_storage[v] for v in c.outputs] + [s for s in c.kept if s < 0]
            for s in dict.fromkeys(fresh):
                if birth.get(s) == i:
                    sch.alloc(g.storage_bytes[s], ("activation", s, "recomputed"))
                    if s not in rkeep:
                        ends.setdefault(min(calls[-1], max(i, last_read.get(s, i))),
                                        []).append(s)
            sch.alloc(c.transient, ("transient", i))
            sch.mark()
            sch.free(c.transient, ("transient", i))
            for s in ends.pop(i, []):
                sch.free(g.storage_bytes[s], ("activation", s, "recomputed"))

    for idx in range(len(g.calls) - 1, -1, -1):
        c = g.calls[idx]
        k = seg_of.get(idx)
        outs = [v for v in c.outputs if v in grad_of]
        arriving = []
        if k is not None and c.kept and c.node and outs and k not in replayed:
            replayed.add(k)  # this node unpacks a saved tensor first
            replay(k)
        if c.node and outs:
            for v in c.grad_inputs:
                gid = (grad_of[outs[0]] if _hands_on(g, c, v)
                       else new_grad(g.value_bytes[v], v))
                refs[gid] += 1
                arriving.append((v, gid))
            sch.mark()  # the node ran: its kept tensors, output and input grads alive
            for v in outs:
                release(grad_of.pop(v))
        # The engine releases a node's kept tensors as soon as it has run ...
        for s in c.kept if k is None else ():
            keep_count[s] -= 1
            if keep_count[s] == 0 and s not in g.resident:
                sch.free(g.storage_bytes[s], ("activation", s))
        for s in c.kept if k is not None else ():  # recomputed ones, checkpointed
            if s in rkeep:
                rkeep[s] -= 1
                if rkeep[s] == 0:
                    del rkeep[s]
                    sch.free(g.storage_bytes[s], ("activation", s, "recomputed"))
        if k is not None and let_go.get(k) == idx:  # the checkpoint lets go of its inputs
            for s in dict.fromkeys(g.segments[k].held):
                keep_count[s] -= 1
                if keep_count[s] == 0 and s not in g.resident:
                    sch.free(g.storage_bytes[s], ("activation", s))
        # ... then adds its outputs into the waiting gradients.
        for v, gid in arriving:
            if v in g.params and (grads_resident or v in grad_of):
                # AccumulateGrad: .grad exists, so .grad += new, in place
                release(gid)
            elif v not in grad_of:
                grad_of[v] = gid
                if v in g.params:
                    refs[gid] += 1  # .grad keeps it
            else:
                # InputBuffer::accumulate adds in place only for a plain tensor it
                # holds the last reference to (never for fake tensors): old + new.
                total = new_grad(g.value_bytes[v], v)
                refs[total] += 1
                sch.mark()
                release(grad_of[v])
                release(gid)
                grad_of[v] = total
    release(root)  # backward has returned
    # The update's temporaries (Adam(foreach=False): exp_avg_sq.sqrt() / c per
    # parameter while the previous denom is bound; foreach: one list-wide sqrt).
    if optimizer is None:
        from complexity.cost.optimizers import Optimizer

        optimizer = Optimizer()
    sch.alloc(optimizer.step_temporaries(trainable_sizes), ("optimizer", 0))
    sch.mark()
    return sch.peak


def _hands_on(g: Graph, c, v: int) -> bool:
    """Whether ``c``'s backward hands its output gradient (or a view of it) to input
    ``v`` without allocating. ``cat`` always does (each input's gradient is a slice
    of the output's). A view, an add or an identity does only where the input has
    the output's size and dtype (equal bytes): otherwise the gradient made for it is
    a new tensor of the input's size — ``select_backward``/``slice_backward`` (an
    indexed or narrowed tensor: zeros of the input's shape, the gradient copied
    in), ``sum_to_size`` (an expanded or broadcast input, a class token or position
    embedding: the engine's ``validate_outputs`` reduces it) or a cast to the
    input's dtype (an autocast add of a bfloat16 and a float32 tensor)."""
    if not (c.name in SHARES_GRAD or c.shares_grad):
        return False
    if c.name in ("cat", "concat"):
        return True
    return g.value_bytes[v] == g.value_bytes[c.outputs[0]]


def recomputed_calls(g: Graph, segment) -> List[int]:
    """The calls (indices) that checkpoint's recomputation of ``segment`` (a
    :class:`complexity.cost.graph.Segment`) runs during backward: from its first
    call to the last that keeps a tensor, where PyTorch's early stop raises as
    that tensor is saved. Autograd saves a call's inputs before it computes and
    what it makes (an output, indices, statistics) after, so that last call runs
    only if it keeps something it makes. Empty when no call of the segment keeps
    anything: there is nothing to recompute.

    >>> from complexity.cost.graph import Segment
    >>> from complexity.cost.trace import trace
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Sequential(nn.Conv2d(2, 2, 1), nn.ReLU()), nn.Conv2d(2, 2, 1))
    >>> g = trace(net, (1, 2, 4, 4), checkpoint="0")
    >>> [g.calls[i].name for i in recomputed_calls(g, g.segments[0])]  # relu keeps its output
    ['conv2d', 'relu']
    >>> g = trace(net, (1, 2, 4, 4), checkpoint="1")
    >>> recomputed_calls(g, g.segments[0])  # conv keeps its input: stops before computing
    []
    """
    saving = [i for i in range(segment.start, segment.end) if g.calls[i].kept]
    if not saving:
        return []
    stop = saving[-1]
    c = g.calls[stop]
    made = {g.value_storage[v] for v in c.outputs}  # in place: a new value, saved after
    runs = any(s < 0 or s in made for s in c.kept)
    return list(range(segment.start, stop + 1 if runs else stop))
