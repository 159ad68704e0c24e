"""Peak memory of one training step, from a traced graph: a liveness schedule.

:func:`peak` walks the calls recorded by :func:`complexity.cost.predict.trace.trace`
three times — forward, backward in reverse, then the optimizer's update — adding each
storage when it is made and dropping it when nothing holds it any more, and
returns the most ever alive. What holds a storage: the caller of the module it
was passed to (until that module returns), a later call that reads it, an
autograd node that keeps it (until that node's backward), a parameter's
``.grad``. Gradients follow PyTorch's engine: add, cat and views hand the output
gradient on without a copy; a node's kept tensors go as soon as it has run; a
second gradient for the same tensor (a parameter used twice, as tied embeddings
are, included) is summed into a new one; a parameter's sum becomes its ``.grad``
once all its gradients have arrived (added in place into a resident ``.grad``).

A graph of one call, the loss ``sum`` of a resident 1 KiB input: the peak is the
input, the 4-byte loss and the loss's 4-byte gradient (nothing trains).

>>> import torch
>>> from complexity.cost.predict.graph import Call
>>> g = Graph()
>>> x = g.value(torch.empty(256, device="meta"))
>>> g.resident.add(g.value_storage[x])
>>> g.calls.append(Call("sum", [x], [g.value(torch.empty((), device="meta"), new=True)]))
>>> peak(g, [], resident_bytes=1024)
1032
"""
from __future__ import annotations

from typing import Dict, List, Optional

from complexity.cost.keys import Category
from complexity.cost.predict.graph import Graph
from complexity.cost.predict.log import Event, Key, Kind, What
from complexity.cost.step.grad_scaler import AFTER_UPDATE, UNSCALE
from complexity.cost.predict.recompute import Checkpoints


class _Schedule:
    """Live bytes, and their maximum, as storages come and go. With ``events`` (a
    list), every allocation, release and moment the peak is read is appended to it
    as an :class:`~complexity.cost.predict.log.Event`, in order: the sequence a
    caching-allocator model or a formula replays. Each allocation is named by a
    :class:`~complexity.cost.predict.log.Key` (what it is and which) and tagged
    with the :class:`~complexity.cost.keys.Category` of the peak it belongs to."""

    def __init__(self, resident_bytes: int, events: Optional[list] = None, maximum=max):
        self.live = self.peak = resident_bytes
        self.events = events
        self.maximum = maximum  # of two byte counts (a symbolic one for sympy sizes)

    def alloc(self, nbytes: int, key: Key, category: Category = Category.TRANSIENT) -> None:
        self.live += nbytes
        # the update is logged even when it allocates nothing: a replay makes the
        # optimizer's state there
        if self.events is not None and (nbytes or key.what is What.UPDATE):
            self.events.append(Event(Kind.ALLOC, nbytes, key, category))

    def free(self, nbytes: int, key: Key, category: Category = Category.TRANSIENT) -> None:
        self.live -= nbytes
        if self.events is not None and nbytes:
            self.events.append(Event(Kind.FREE, nbytes, key, category))

    def mark(self) -> None:
        self.peak = self.maximum(self.peak, self.live)
        if self.events is not None:
            self.events.append(Event(Kind.MARK, self.live))

    def activation(self, alloc: bool, nbytes: int, storage: int,
                   recomputed: bool = False) -> None:
        """A forward storage (or its copy made again by a checkpoint's replay) made
        or freed."""
        key = Key(What.RECOMPUTED if recomputed else What.ACTIVATION, storage)
        (self.alloc if alloc else self.free)(nbytes, key, Category.ACTIVATIONS)


def peak(g: Graph, trainable_sizes: List[int], resident_bytes: int,
         events: Optional[list] = None, *, optimizer=None, grads_resident: bool = False,
         forward_extra: int = 0, grad_scaler: bool = False, maximum=max) -> int:
    """Most bytes alive at once; ``resident_bytes`` are alive throughout (weights,
    buffers, optimizer state, input, target), ``trainable_sizes`` in the optimizer's order.
    ``events``: a list that receives the schedule's allocations, releases and peak
    readings in order (:class:`~complexity.cost.predict.log.Event`); the resident
    bytes are not in it.
    ``optimizer``: the :class:`complexity.cost.step.optimizers.Optimizer` whose update
    ends the step (default ``Adam(foreach=False)``). ``grads_resident``: the
    parameters' ``.grad`` buffers exist before the forward (``zero_grad(set_to_none=
    False)``, or a later micro-batch of gradient accumulation) and must be counted
    in ``resident_bytes``: each gradient arriving in backward is then added into
    its buffer in place and freed. ``forward_extra``: bytes alive through the
    forward only (the previous micro-batch's loss, still bound to its name until
    the new loss replaces it). Checkpointed segments (``g.segments``) keep nothing
    in the forward but their arguments; the first of their nodes to run in
    backward replays their forward up to
    :func:`~complexity.cost.predict.recompute.recomputed_calls`' early stop.
    ``grad_scaler``: the graph's last call is ``scaler.scale(loss)`` (the loss, the
    call before it, stays bound; the scaled loss goes when backward returns) and
    ``scaler.step`` unscales the gradients before the update (:meth:`_Liveness.update`).
    ``maximum``: how two byte counts' maximum is taken (the sizes may be sympy
    expressions: :mod:`complexity.cost.predict.symbolic`).

    >>> import torch
    >>> from complexity.cost.predict.trace import trace_calls
    >>> x = torch.ones(64, requires_grad=True)
    >>> g = trace_calls(lambda t: (t * 2).sum(), x, state=[x])
    >>> ev = []
    >>> peak(g, [256], 256, ev) == max(e.size for e in ev if e.kind is Kind.MARK)
    True
    >>> [e.kind.value for e in ev][:2], ev[0].key.what.value, ev[0].category.value
    (['alloc', 'mark'], 'activation', 'activations')
    """
    step = _Liveness(g, _Schedule(resident_bytes, events, maximum), grads_resident, grad_scaler)
    step.forward(forward_extra)
    step.backward()
    step.update(optimizer, trainable_sizes)
    return step.sch.peak


class _Liveness:
    """The liveness of one step over graph ``g``, phase by phase: :meth:`forward`,
    :meth:`backward` (with the replays of checkpointed segments,
    :class:`~complexity.cost.predict.recompute.Checkpoints`), then :meth:`update`,
    each logging to ``sch``. It holds what outlives a phase: who
    keeps each storage for backward (``keep_count``), each storage's last reader
    (``last_read``) and maker (``birth``), and the gradient buffers (``grads``).
    ``scaled``: the last call is ``GradScaler.scale(loss)``."""

    def __init__(self, g: Graph, sch: _Schedule, grads_resident: bool, scaled: bool = False):
        self.g, self.sch, self.grads_resident = g, sch, grads_resident
        self.scaled = scaled
        # who keeps each storage for backward: the checkpoints whose arguments it
        # is (:class:`Checkpoints`), then the nodes that save it
        self.keep_count: Dict[int, int] = {}
        self.checkpoints = Checkpoints(g, self.keep_count)
        for i, c in enumerate(g.calls):
            for s in c.kept if self.checkpoints.segment(i) is None else ():
                self.keep_count[s] = self.keep_count.get(s, 0) + 1
        self.last_read = self._last_reads()
        self.birth: Dict[int, int] = {}  # storage -> the call that made it
        self.grads = _Gradients(sch, g.params)
        # how many gradients each parameter's AccumulateGrad waits for: one per use
        self.arrivals: Dict[int, int] = {}
        for c in g.calls:
            for v in c.grad_inputs if c.node else ():
                if v in g.params:
                    self.arrivals[v] = self.arrivals.get(v, 0) + 1

    def _last_reads(self) -> Dict[int, int]:
        """Storage -> the last forward call that reads it or runs while Python
        still references it."""
        g = self.g
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
        return last_read

    def made(self, c) -> List[int]:
        """The storages call ``c`` makes, each once: its outputs' and the new
        tensors it keeps (negative ids: indices, statistics)."""
        fresh = [self.g.value_storage[v] for v in c.outputs] + [s for s in c.kept if s < 0]
        return list(dict.fromkeys(fresh))

    def run_call(self, i: int, c) -> None:
        """Call ``i`` runs: its workspace is alive with everything else for the
        moment of the call (a peak reading), then goes."""
        self.sch.alloc(c.transient, Key(What.WORKSPACE, i))
        self.sch.mark()
        self.sch.free(c.transient, Key(What.WORKSPACE, i))

    def forward(self, forward_extra: int) -> None:
        """The forward and the loss: each call's results are allocated as it runs
        and freed after their last reader, unless a node keeps them for backward
        (they go there) or they are the loss (held to the end). ``forward_extra``
        bytes are alive for the forward only."""
        g, sch = self.g, self.sch
        born = set(g.resident)
        held = g.loss_call()  # the loss (and its scaled copy) stay held
        sch.alloc(forward_extra, Key(What.EXTRA), Category.ACTIVATIONS)
        dies_at: Dict[int, List[int]] = {}
        for i, c in enumerate(g.calls):
            for s in self.made(c):
                if s not in born:
                    born.add(s)
                    self.birth[s] = i
                    sch.activation(True, g.storage_bytes[s], s)
                    # the loss stays held, and what outlives the step (g.outlives)
                    if s not in self.keep_count and i < held and s not in g.outlives:
                        dies_at.setdefault(max(i, self.last_read.get(s, i)), []).append(s)
            self.run_call(i, c)
            for s in dies_at.pop(i, []):
                sch.activation(False, g.storage_bytes[s], s)
        sch.free(forward_extra, Key(What.EXTRA), Category.ACTIVATIONS)

    def backward(self) -> None:
        """``loss.backward()``: nodes in reverse order of creation (the engine's
        order for a single device: highest sequence number first), from the loss's
        gradient, which is freed when backward returns."""
        g, grads = self.g, self.grads
        # d loss / d loss = 1: ``loss.backward()`` makes it (``_make_grads``) and holds
        # it in a local of ``torch.autograd.backward`` until the engine returns, so it
        # outlives the loss's node (one reference for the node, one for Python).
        loss = g.calls[-1].outputs[0]
        root = grads.new(g.value_bytes[loss], loss)  # ones_like(loss): the loss's dtype
        grads.of[loss] = root
        grads.refs[root] = 2
        for idx in range(len(g.calls) - 1, -1, -1):
            self._node(idx)
        grads.release(root)  # backward has returned
        if self.scaled:  # then the scaled loss, a temporary of scaler.scale(loss).backward()
            s = g.value_storage[loss]
            self.sch.activation(False, g.storage_bytes[s], s)

    def _node(self, idx: int) -> None:
        """The backward of call ``idx``: replay its checkpointed segment if it is
        the first of the segment to unpack a saved tensor, run it, let go of what
        it kept, and hand its input gradients on."""
        c = self.g.calls[idx]
        k = self.checkpoints.segment(idx)
        outs = [v for v in c.outputs if v in self.grads.of]
        if self.checkpoints.replays_now(idx, c, self.grads.of):
            self.checkpoints.replay(k, self)
        arriving = self._run_node(idx, c, outs) if c.node and outs else []
        self._drop_kept(idx, c, k)
        self._accumulate(arriving)

    def _run_node(self, idx: int, c, outs: List[int]) -> List[tuple]:
        """Node ``c`` (call ``idx``) computes its input gradients (a new buffer each, or its output
        gradient handed on) and frees its output gradients; returns the
        ``(value, gradient)`` pairs that arrive at its inputs."""
        g, grads = self.g, self.grads
        arriving = []
        for v in c.grad_inputs:
            gid = (grads.of[outs[0]] if _hands_on(g, c, v)
                   else grads.new(g.value_bytes[v], v))
            grads.refs[gid] += 1
            arriving.append((v, gid))
        # the node ran: its kept tensors, output and input grads alive, with its
        # backward's own temporaries (a custom Function's, a broadcast operand's)
        for extra in _broadcast_temporaries(g, c):
            temporary = c.backward_transient + extra
            self.sch.alloc(temporary, Key(What.WORKSPACE, ('backward', idx)))
            self.sch.mark()
            self.sch.free(temporary, Key(What.WORKSPACE, ('backward', idx)))
        for v in outs:
            grads.release(grads.of.pop(v))
        return arriving

    def _drop_kept(self, idx: int, c, k: Optional[int]) -> None:
        """Node ``idx`` has run: each tensor it kept (its recomputed copy, in a
        checkpointed segment) loses a holder, and the segment's checkpoint lets go
        of its arguments once the last of its saving nodes has run."""
        # The engine releases a node's kept tensors as soon as it has run ...
        if k is None:
            self._let_go(c.kept)
            return
        for s in self.checkpoints.used(c):  # recomputed ones, checkpointed
            self.sch.activation(False, self.g.storage_bytes[s], s, recomputed=True)
        if self.checkpoints.lets_go(k, idx):  # the checkpoint lets go of its inputs
            self._let_go(dict.fromkeys(self.g.segments[k].held))

    def _let_go(self, storages) -> None:
        """Each of ``storages`` loses a holder (:attr:`keep_count`); one that no
        holder keeps any more, unless resident or outliving the step, is freed."""
        g, keep_count = self.g, self.keep_count
        for s in storages:
            keep_count[s] -= 1
            if keep_count[s] == 0 and s not in g.resident and s not in g.outlives:
                self.sch.activation(False, g.storage_bytes[s], s)

    def _accumulate(self, arriving: List[tuple]) -> None:
        """The gradients a node made arrive at its inputs: the first gradient of a
        tensor waits in the engine's input buffer, a later one is summed with it
        into a new one. A parameter used more than once (tied embeddings) is no
        exception: its ``AccumulateGrad`` runs only when the last of its gradients
        has arrived (:attr:`arrivals`), and then makes the sum its ``.grad`` (or,
        with ``.grad`` resident, adds it in and frees it)."""
        g, grads = self.g, self.grads
        # ... then adds its outputs into the waiting gradients.
        for v, gid in arriving:
            if v not in grads.of:
                grads.of[v] = gid
            else:
                # InputBuffer::accumulate adds in place only for a plain tensor it
                # holds the last reference to (never for fake tensors): old + new.
                total = grads.new(g.value_bytes[v], v)
                grads.refs[total] += 1
                self.sch.mark()
                grads.release(grads.of[v])
                grads.release(gid)
                grads.of[v] = total
            if v in g.params:
                self.arrivals[v] -= 1
                if self.arrivals[v] == 0 and self.grads_resident:
                    grads.release(grads.of.pop(v))  # AccumulateGrad: .grad += sum

    def update(self, optimizer, trainable_sizes: List[int]) -> None:
        """``optimizer.step()``: the step's last moment, the gradients and the
        optimizer's temporaries alive at once (default ``Adam(foreach=False)``)."""
        # The update's temporaries (Adam(foreach=False): exp_avg_sq.sqrt() / c per
        # parameter while the previous denom is bound; foreach: one list-wide sqrt).
        if optimizer is None:
            from complexity.cost.step.optimizers import Optimizer

            optimizer = Optimizer()
        if self.scaled:  # scaler.step -> unscale_: its scalars, in order
            self._play(UNSCALE)
        self.sch.alloc(optimizer.step_temporaries(trainable_sizes), Key(What.UPDATE))
        self.sch.mark()
        if self.scaled:  # scaler.update() works in place; found_inf's copy goes
            self._play(AFTER_UPDATE)

    def _play(self, script) -> None:
        """Play a script of :mod:`complexity.cost.step.grad_scaler` (``(op, bytes,
        name)``: alloc, free or a reading) on the schedule."""
        for op, nbytes, name in script:
            if op == "mark":
                self.sch.mark()
            else:
                getattr(self.sch, op)(nbytes, Key(What.SCALER, name))


class _Gradients:
    """The gradient buffers of backward, counted by reference: a buffer is freed
    when the last holder lets it go. Holders are the node waiting for it (one
    reference per input it feeds), a parameter's ``.grad``, and, for the loss's
    gradient, ``torch.autograd.backward`` itself. ``of[v]``: the gradient waiting
    for value ``v`` (summed there as more arrive)."""

    def __init__(self, sch: _Schedule, params):
        self.sch = sch
        self.refs: Dict[int, int] = {}
        self.sizes: Dict[int, int] = {}
        self.keys: Dict[int, Key] = {}
        self.params = params  # the parameters' values: their gradients are .grad
        self.of: Dict[int, int] = {}

    def new(self, nbytes: int, value: int) -> int:
        """Allocate a gradient of ``nbytes`` for ``value``, held by nobody yet."""
        gid = len(self.sizes)
        self.sizes[gid], self.refs[gid] = nbytes, 0
        self.keys[gid] = Key(What.GRAD, gid, value)
        self.sch.alloc(nbytes, self.keys[gid], self._category(gid))
        return gid

    def release(self, gid: int) -> None:
        """One holder lets ``gid`` go; the last one frees it."""
        self.refs[gid] -= 1
        if self.refs[gid] == 0:
            self.sch.free(self.sizes[gid], self.keys[gid], self._category(gid))

    def _category(self, gid: int) -> Category:
        """A gradient made for a parameter is its ``.grad`` (one handed to it through
        a view is the view's: transient)."""
        return Category.GRADS if self.keys[gid].of in self.params else Category.TRANSIENT


#: Element-wise calls whose derivative for each operand is a new tensor of the
#: broadcast (output's) shape — ``grad * other``, ``grad / other``, ``where(cond,
#: grad, 0)`` — which the engine then sums down to a broadcast operand's shape
#: (``validate_outputs``: ``sum_to``), the full-size one alive while it does.
FULL_SIZE_DERIVATIVE = frozenset({"mul", "mul_", "__mul__", "__rmul__", "__imul__", "multiply",
                                  "div", "div_", "__truediv__", "__rtruediv__", "__itruediv__",
                                  "divide", "where"})


#: Calls whose derivative makes full-size temporaries before its result, by how
#: many (``derivatives.yaml``): ``pow(x, e)``'s is ``grad * (e * x.pow(e - 1))``,
#: whose ``x.pow(e - 1)`` and ``e * …`` live until the product is made (``square``
#: is ``pow(x, 2)``).
DERIVATIVE_TEMPORARIES = {"pow": 2, "__pow__": 2, "square": 2}


def _broadcast_temporaries(g: Graph, c) -> list:
    """Bytes of the temporaries ``c``'s backward makes besides its results: the
    full-size gradients for its broadcast operands (a scalar gain ``alpha * x``:
    ``grad * x`` before its sum) before they are summed down
    (:data:`FULL_SIZE_DERIVATIVE`), or its derivative's own
    (:data:`DERIVATIVE_TEMPORARIES`, a tensor to a scalar power).

    >>> import torch
    >>> from complexity.cost.predict.graph import Call
    >>> g = Graph()
    >>> a, x = g.value(torch.empty((), device="meta")), g.value(torch.empty(8, device="meta"))
    >>> out = g.value(torch.empty(8, device="meta"), new=True)
    >>> _broadcast_temporaries(g, Call("mul", [a, x], [out], grad_inputs=[a, x]))
    [32]
    """
    if c.name in DERIVATIVE_TEMPORARIES and len(c.inputs) == 1 and c.grad_inputs:
        return [DERIVATIVE_TEMPORARIES[c.name] * g.value_bytes[c.grad_inputs[0]]]
    if c.name not in FULL_SIZE_DERIVATIVE or not c.outputs:
        return [0]
    full = g.value_bytes[c.outputs[0]]
    small = [g.value_bytes[v] for v in c.grad_inputs if _smaller(g.value_bytes[v], full)]
    # summed down one by one, in order: at the i-th, the full-size ones not yet
    # summed and the small ones made so far are alive (the schedule holds the
    # small); one reading each, so that symbolic sizes need no max here
    held = sum(small)
    return [full * (len(small) - i) + sum(small[:i + 1]) - held
            for i in range(len(small))] or [0]


def _smaller(a, b) -> bool:
    """``a < b`` for two byte counts. A symbolic count (the schedule run on
    :class:`~complexity.cost.predict.symbolic.Lin` sizes) is smaller when it is not
    the same expression as ``b``: an operand's gradient has the output's sizes or
    a broadcast subset of them.

    >>> _smaller(8, 32), _smaller(32, 32)
    (True, False)
    """
    d = b - a
    terms = getattr(d, "terms", None)
    return bool(terms) if terms is not None else d > 0


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
    if not c.shares_grad:
        return False
    if c.name in ("cat", "concat"):
        return True
    return g.value_bytes[v] == g.value_bytes[c.outputs[0]]
