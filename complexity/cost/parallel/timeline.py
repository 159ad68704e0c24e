"""The peak of one FSDP2 rank, replayed: the single-process step's log of
allocations and releases (:func:`complexity.cost.predict.prediction.predict_step`,
``events=``) with the parameters, gradients and optimizer state sharded, and
FSDP2's own allocations inserted where its hooks run.

Where the hooks run, in the single-process log. The forward: a unit's pre-forward
hook before its first call, its post-forward hook after its last (the calls
between are counted while the trace runs, by hooks on the unit modules). The
backward: autograd runs the nodes in reverse order of creation, so a unit's
pre-backward hook (on its outputs) runs before the node of its last forward call,
and its post-backward (``RegisterPostBackwardFunction``, made before its first
call) after the node of its first call. Each event of the log is placed at the
node it belongs to: a peak reading at the node whose run or gradient sum it is (the
schedule's own order, replayed without sizes), an allocation at the next reading,
a release of a kept tensor at the last node that keeps it.

What FSDP2 allocates (``torch.distributed.fsdp._fully_shard``, read from its
sources and checked against a real gloo run): a unit's all-gather fills one flat
buffer (its padded shards × N), then copies out into one unsharded tensor per
parameter (padded rows × N); in the forward the flat buffer lives until the next
unit's copy-out is done (``all_gather_state``, then a local of
``wait_for_unshard``) and the last one until the root's post-forward; in the backward it goes at once, and the next unit's all-gather is
issued early (prefetch: its flat buffer). Resharding frees the unsharded tensors;
the root keeps its own from forward to backward. A unit's post-backward frees its
parameters, copies its gradients into a reduce-scatter input (padded, × N), frees
them (the last one when the reduction returns: ``foreach_reduce``'s loop variable
holds it), and reduce-scatters into its sharded gradient (the input is kept until the
next unit's reduce-scatter, ``reduce_scatter_max_input_buffers=1``). gloo
reduce-scatters through a temporary copy of the input: counted here, as on the
gloo run; NCCL has none.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from complexity.cost.keys import Category
from complexity.cost.predict.graph import Graph
from complexity.cost.predict.log import Kind, What


def call_ranges(model, modules) -> Tuple[list, list]:
    """Hooks that record, for each of ``modules`` (and ``model``, last), the calls
    the trace had recorded when it entered and when it left: ``(ranges, handles)``;
    ``ranges[k]`` is ``[start, end]`` once the trace has run (first call only)."""
    ranges: List[list] = [[None, None] for _ in range(len(modules) + 1)]
    handles = []
    for k, mod in enumerate([*modules, model]):
        def pre(_m, _args, k=k):
            if ranges[k][0] is None:
                ranges[k][0] = _recorded()

        def post(_m, _args, _out, k=k):
            if ranges[k][1] is None:
                ranges[k][1] = _recorded()

        handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    return ranges, handles


def _recorded() -> int:
    """The number of calls the running trace has recorded (its graph, found on
    the function-mode stack), 0 outside a trace."""
    from torch.overrides import _get_current_function_mode_stack

    for mode in reversed(_get_current_function_mode_stack()):
        g = getattr(mode, "g", None)
        if isinstance(g, Graph):
            return len(g.calls)
    return 0


def mark_owners(g: Graph, grads_resident: bool = False) -> List[int]:
    """The backward's peak readings, in order, each as the index of the call whose
    node makes it: one when a node runs, one more for each gradient it sums with
    an earlier one (the schedule's ``_run_node`` and ``_accumulate``, without sizes)."""
    has = {g.calls[-1].outputs[0]}
    owners: List[int] = []
    for idx in range(len(g.calls) - 1, -1, -1):
        c = g.calls[idx]
        outs = [v for v in c.outputs if v in has]
        if not (c.node and outs):
            continue
        owners.append(idx)
        has.difference_update(outs)
        for v in c.grad_inputs:  # a parameter's too: summed out of place (tied weights)
            if v not in has:
                has.add(v)
            else:
                owners.append(idx)
    return owners


def event_times(g: Graph, events: list, grads_resident: bool = False) -> List[int]:
    """For each event of the log, when it happens, counted in calls: ``i`` for
    forward call ``i``, ``2n − 1 − idx`` for the backward node of call ``idx``
    (``n`` calls: the nodes run from the last call down), ``2n`` for the update.
    Non-decreasing. Raises ``ValueError`` when the log's readings do not match
    the graph's nodes (a schedule this replay does not know)."""
    n = len(g.calls)
    back = mark_owners(g, grads_resident)
    marks = [i for i, e in enumerate(events) if e.kind is Kind.MARK]
    if len(marks) != n + len(back) + 1:
        raise ValueError(f"the step log has {len(marks)} readings, the graph "
                         f"{n} calls, {len(back)} node readings and the update")
    keepers: Dict[int, int] = {}
    for idx, c in enumerate(g.calls):
        for st in c.kept:
            keepers[st] = min(keepers.get(st, idx), idx)
    at_mark = {m: i for i, m in enumerate(marks[:n])}
    at_mark.update({m: 2 * n - 1 - idx for m, idx in zip(marks[n:], back)})
    at_mark[marks[-1]] = 2 * n
    times = [2 * n] * len(events)
    nxt = 2 * n
    for i in range(len(events) - 1, -1, -1):  # an allocation: at the next reading
        nxt = at_mark.get(i, nxt)
        times[i] = nxt
    prev = 0
    for i, e in enumerate(events):  # a release: at the last reading, or its keeper
        if i in at_mark:
            prev = at_mark[i]
        elif e.kind is Kind.FREE:
            times[i] = prev
            if n <= prev < 2 * n and e.key.what is What.ACTIVATION and e.key.ident in keepers:
                times[i] = max(prev, 2 * n - 1 - keepers[e.key.ident])
    return times


def at(times: Sequence[int], when: int) -> int:
    """The index of the first event at or after ``when`` (``len`` if none)."""
    return next((i for i, t in enumerate(times) if t >= when), len(times))


class Unit:
    """One FSDP unit's bytes on a rank: ``gathered`` (its unsharded parameters, the
    padded shards × N, which is also its flat all-gather buffer), ``reduced`` (the
    reduce-scatter input: its trained padded shards × N) and ``shard`` (the
    reduce-scatter output, which becomes its sharded gradients); ``start``,
    ``end``: its first call and one past its last. Mixed precision and offload:
    ``cast`` (the all-gather's inputs, each shard cast to the gather dtype or
    copied to the device, alive until the gathered copy-in is done), ``upcast``
    (the reduce output cast back to the parameters' dtype, which becomes the
    gradient; the reduce-dtype output goes), ``offloaded`` (the sharded gradient
    is copied to the host: none stays on the device)."""

    def __init__(self, gathered: int, reduced: int, shard: int, start: int, end: int, *,
                 cast: int = 0, upcast: int = 0, offloaded: bool = False):
        self.gathered, self.reduced, self.shard = gathered, reduced, shard
        self.start, self.end = start, end
        self.cast, self.upcast, self.offloaded = cast, upcast, offloaded


class Replay:
    """The rank's live bytes as the log is replayed with FSDP's hooks inserted;
    :attr:`peak` the most. ``unit_of``: the unit of each trainable parameter's
    value; ``update``: the optimizer's temporaries on the local shards."""

    def __init__(self, resident: int, unit_of: Dict[int, int], update: int):
        self.live = self.peak = resident
        self.unit_of, self.update = unit_of, update
        self.grads: Dict[int, Dict[int, int]] = {}  # unit -> parameter -> its gradient
        self.flat: Dict[int, int] = {}    # unit -> its all-gather buffer alive
        self.outs: Dict[int, int] = {}    # unit -> its unsharded parameters alive
        self.kept_input = 0               # the last reduce-scatter input
        self.last_flat: Optional[int] = None

    def add(self, nbytes: int) -> None:
        self.live += nbytes
        self.peak = max(self.peak, self.live)

    def event(self, e) -> None:
        """One event of the single-process log, as this rank sees it."""
        if e.kind is Kind.MARK:
            self.peak = max(self.peak, self.live)
            return
        size = self.update if e.key.what is What.UPDATE else e.size
        sign = 1 if e.kind is Kind.ALLOC else -1
        if e.key.what is What.GRAD and e.category is Category.GRADS and e.key.of in self.unit_of:
            mine = self.grads.setdefault(self.unit_of[e.key.of], {})
            mine[e.key.of] = mine.get(e.key.of, 0) + sign * size
        self.live += sign * size

    def gather(self, k: int, u: Unit, forward: bool) -> None:
        """Unit ``k``'s pre-forward or pre-backward all-gather (none if gathered)."""
        if k in self.outs:
            return
        if k not in self.flat:  # not prefetched
            self._all_gather(k, u)
        self.outs[k] = u.gathered
        self.add(u.gathered)
        if forward:
            # the previous unit's buffer goes when wait_for_unshard returns (its
            # walrus-bound local holds it through the copy-out)
            if self.last_flat is not None:
                self.live -= self.flat.pop(self.last_flat)
            self.last_flat = k
        else:
            self.live -= self.flat.pop(k)

    def prefetch(self, k: int, u: Unit) -> None:
        if k not in self.outs and k not in self.flat:
            self._all_gather(k, u)

    def _all_gather(self, k: int, u: Unit) -> None:
        """The inputs cast (or copied to the device), the flat buffer made and
        filled, the inputs let go (``foreach_all_gather`` returns)."""
        self.add(u.cast)
        self.flat[k] = u.gathered
        self.add(u.gathered)
        self.live -= u.cast

    def reshard(self, k: int) -> None:
        self.live -= self.outs.pop(k, 0)

    def drop_last_flat(self) -> None:
        if self.last_flat is not None:
            self.live -= self.flat.pop(self.last_flat)
            self.last_flat = None

    def reduce(self, k: int, u: Unit, gloo_copy: bool = True) -> None:
        """Unit ``k``'s post-backward: reshard, then reduce-scatter its gradients."""
        self.reshard(k)
        self.live -= self.kept_input
        self.kept_input = 0
        if not u.reduced:
            return
        self.add(u.reduced)
        grads = self.grads.pop(k, {})
        # foreach_reduce's loop variable still holds the last gradient until it returns
        last = grads.pop(max(grads), 0) if grads else 0
        self.live -= sum(grads.values())
        self.add(u.shard)
        if gloo_copy:
            self.add(u.reduced)
            self.live -= u.reduced
        if u.upcast:  # _to_dtype_if_needed(reduce_output, orig_dtype)
            self.add(u.upcast)
            self.live -= u.shard
        if u.offloaded:  # copied to the host; the device's copy goes with the reduce
            self.live -= u.upcast or u.shard
        self.live -= last
        self.kept_input = u.reduced

    def finish_backward(self) -> None:
        self.live -= self.kept_input
        self.kept_input = 0


def hooks(units: List[Unit], root: int, n: int, reshard: bool,
          gloo_copy: bool = True) -> List[tuple]:
    """FSDP2's hooks over one step, in the order they run: ``(when, method,
    args)``, ``when`` in :func:`event_times`' count (the hook runs before the
    first event at or after it). ``units[root]`` is the root."""
    order = sorted((k for k in range(len(units)) if k != root), key=lambda k: units[k].start)
    r = units[root]
    out = [(r.start, "gather", (root, r, True))]
    for k in order:
        u = units[k]
        out.append((u.start, "gather", (k, u, True)))
        if reshard:
            out.append((u.end, "reshard", (k,)))
    out.append((r.end, "drop_last_flat", ()))
    # backward: the root's pre-backward prefetches the last unit; each unit's
    # prefetches the one before it (the post-forward order)
    chain = order + [root]
    for pos in range(len(chain) - 1, -1, -1):
        k = chain[pos]
        u = units[k]
        out.append((2 * n - u.end, "gather", (k, u, False)))
        if pos > 0 and u.gathered:  # a root without parameters has no hooks
            out.append((2 * n - u.end, "prefetch", (chain[pos - 1], units[chain[pos - 1]])))
        out.append((2 * n - u.start if k != root else 2 * n, "reduce", (k, u, gloo_copy)))
    out.append((2 * n, "finish_backward", ()))
    return out


def replay(events, times, units: List[Unit], root: int, n: int, reshard: bool,
           replayer: Replay, gloo_copy: bool = True) -> int:
    """The peak of the log ``events`` (at ``times``) with the hooks inserted;
    ``gloo_copy``: reduce-scatters copy their input (gloo's)."""
    pending = sorted(hooks(units, root, n, reshard, gloo_copy), key=lambda h: h[0])
    j = 0
    for i, e in enumerate(events):
        while j < len(pending) and pending[j][0] <= times[i]:
            _, method, args = pending[j]
            getattr(replayer, method)(*args)
            j += 1
        replayer.event(e)
    for _, method, args in pending[j:]:
        getattr(replayer, method)(*args)
    return replayer.peak
