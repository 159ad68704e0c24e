"""A model of PyTorch's CUDA caching allocator, replaying one training step.

What ``torch.cuda.max_memory_allocated`` and ``max_memory_reserved`` would read
for a step whose allocations and releases are the schedule's event log
(:func:`complexity.cost.predict.schedule.peak`). The rules are those of
``c10/cuda/CUDACachingAllocator.cpp`` (native backend, default configuration:
no ``max_split_size_mb``, no expandable segments, no ``empty_cache``):

* every request is rounded up to a multiple of 512 bytes (``kMinBlockSize``);
* requests ≤ 1 MiB (``kSmallSize``) use the small pool, carved from 2 MiB
  segments (``kSmallBuffer``); larger ones the large pool: requests < 10 MiB
  (``kMinLargeAlloc``) get a 20 MiB segment (``kLargeBuffer``), larger ones a
  segment of their own rounded up to 2 MiB (``kRoundLarge``);
* a request takes the smallest cached free block of its pool that holds it
  (best fit, then lowest address), else a new segment (``cudaMalloc``);
* the block is split when the rest is ≥ 512 bytes (small pool) or > 1 MiB (large
  pool), the request taking the low part; otherwise the whole block is handed out
  (and counted as allocated);
* a freed block merges with free neighbours of its segment; segments are never
  returned to the device.

``allocated`` counts the blocks handed out, ``reserved`` the segments. Neither
includes the CUDA context or the cuBLAS/cuDNN workspaces outside the allocator:
:data:`DEFAULT_RESERVE` is a stated estimate for those, kept apart.

>>> a = CachingAllocator()
>>> x = a.malloc(1000)          # rounded to 1024, a 2 MiB small segment
>>> a.allocated, a.reserved
(1024, 2097152)
>>> a.free(x); a.allocated, a.max_allocated
(0, 1024)
"""
from __future__ import annotations

import bisect
from typing import Dict, Optional, Sequence

from complexity.cost.predict.log import Event, Kind, What

__all__ = ["MIN_BLOCK", "SMALL_SIZE", "SMALL_BUFFER", "LARGE_BUFFER", "MIN_LARGE_ALLOC",
           "ROUND_LARGE", "DEFAULT_RESERVE", "Block", "CachingAllocator", "round_size",
           "segment_size", "replay_step", "cuda_step", "step_optimizer", "largest_fitting"]

MIB = 1 << 20
MIN_BLOCK = 512            # kMinBlockSize
SMALL_SIZE = MIB           # kSmallSize: largest "small" request
SMALL_BUFFER = 2 * MIB     # kSmallBuffer: small pool segments
LARGE_BUFFER = 20 * MIB    # kLargeBuffer: segments for 1–10 MiB requests
MIN_LARGE_ALLOC = 10 * MIB  # kMinLargeAlloc
ROUND_LARGE = 2 * MIB      # kRoundLarge

#: An estimate (not a measurement) of what a CUDA process holds outside the caching
#: allocator's figures: the CUDA context (a few hundred MiB, by driver and GPU) and
#: library handles. Configurable (``--reserve``); always reported apart.
DEFAULT_RESERVE = 512 * MIB


def round_size(nbytes: int) -> int:
    """A request's size in the allocator: a multiple of 512, at least 512.

    >>> round_size(1), round_size(512), round_size(513)
    (512, 512, 1024)
    """
    return MIN_BLOCK if nbytes < MIN_BLOCK else MIN_BLOCK * -(-nbytes // MIN_BLOCK)


def segment_size(size: int) -> int:
    """The ``cudaMalloc`` size for a rounded request no cached block holds.

    >>> [segment_size(s) // MIB for s in (512, MIB, MIB + 512, 10 * MIB - 512, 10 * MIB + 512)]
    [2, 2, 20, 20, 12]
    """
    if size <= SMALL_SIZE:
        return SMALL_BUFFER
    if size < MIN_LARGE_ALLOC:
        return LARGE_BUFFER
    return ROUND_LARGE * -(-size // ROUND_LARGE)


class Block:
    """A run of a segment: free (cached) or handed out."""

    __slots__ = ("addr", "size", "small", "free", "prev", "next")

    def __init__(self, addr: int, size: int, small: bool):
        self.addr, self.size, self.small = addr, size, small
        self.free = True
        self.prev: Optional[Block] = None
        self.next: Optional[Block] = None

    def __repr__(self):
        return f"Block({self.addr}, {self.size}, {'free' if self.free else 'used'})"


class CachingAllocator:
    """The caching allocator of one device and one stream; sizes in bytes.
    ``max_allocated`` and ``max_reserved`` are the peaks since the last
    :meth:`reset_peaks` (``torch.cuda.reset_peak_memory_stats``)."""

    def __init__(self):
        self.pools: Dict[bool, list] = {True: [], False: []}  # small? -> [(size, addr, block)]
        self.allocated = self.reserved = 0
        self.max_allocated = self.max_reserved = 0
        self.segments = 0
        self._next_addr = 0

    def _insert(self, b: Block) -> None:
        bisect.insort(self.pools[b.small], (b.size, b.addr, id(b), b))

    def _remove(self, b: Block) -> None:
        pool = self.pools[b.small]
        i = bisect.bisect_left(pool, (b.size, b.addr, id(b)))
        assert pool[i][3] is b
        del pool[i]

    def malloc(self, nbytes: int) -> Block:
        """Hand out a block for ``nbytes`` (see the module's rules)."""
        size = round_size(nbytes)
        small = size <= SMALL_SIZE
        pool = self.pools[small]
        i = bisect.bisect_left(pool, (size, -1))
        if i < len(pool):  # best fit: the smallest, then the lowest address
            block = pool.pop(i)[3]
        else:
            seg = segment_size(size)
            block = Block(self._next_addr, seg, small)
            self._next_addr += seg + ROUND_LARGE  # segments are not contiguous
            self.reserved += seg
            self.segments += 1
            self.max_reserved = max(self.max_reserved, self.reserved)
        rest = block.size - size
        if rest >= MIN_BLOCK if small else rest > SMALL_SIZE:
            # the request takes the low part; the rest stays cached
            remaining = Block(block.addr + size, rest, small)
            remaining.prev, remaining.next = block, block.next
            if block.next:
                block.next.prev = remaining
            block.next, block.size = remaining, size
            self._insert(remaining)
        block.free = False
        self.allocated += block.size
        self.max_allocated = max(self.max_allocated, self.allocated)
        return block

    def free(self, block: Block) -> None:
        """Return ``block`` to its pool, merged with free neighbours of its segment."""
        assert not block.free, "block freed twice"
        block.free = True
        self.allocated -= block.size
        for other in (block.prev, block.next):
            if other is not None and other.free:
                self._remove(other)
                if other is block.prev:  # other + block: other's address
                    block.addr, block.prev = other.addr, other.prev
                    if other.prev:
                        other.prev.next = block
                else:
                    block.next = other.next
                    if other.next:
                        other.next.prev = block
                block.size += other.size
        self._insert(block)

    def reset_peaks(self) -> None:
        """``torch.cuda.reset_peak_memory_stats``: the peaks restart from now."""
        self.max_allocated, self.max_reserved = self.allocated, self.reserved


def replay_step(alloc: CachingAllocator, events: Sequence[Event],
                trainable_sizes: Sequence[int], init_state: bool = False,
                state: Optional[list] = None, optimizer=None) -> None:
    """Replay one step's event log (:func:`complexity.cost.predict.schedule.peak`) on
    ``alloc``. The update (the allocation keyed ``What.UPDATE``) is replayed as
    ``Adam(foreach=False)`` runs it, parameter by parameter: ``exp_avg_sq.sqrt()``
    and ``/ c`` (two blocks of the parameter's size), the first freed at once, the
    second (``denom``) when the next parameter's replaces it. ``init_state``: the
    first step, which first makes each parameter's ``exp_avg`` and ``exp_avg_sq``
    (``_init_group``; appended to ``state``). Afterwards everything the step made is
    freed (``zero_grad(set_to_none=True)``, the loss dropped). ``optimizer``: another
    :class:`~complexity.cost.step.optimizers.Optimizer` — SGD with momentum keeps one
    buffer per parameter, plain SGD none; a fused update allocates nothing; the
    foreach Adam's ``torch._foreach_sqrt`` makes one tensor per parameter, all alive
    together (and a fused Adam keeps its ``step`` counters on the GPU).

    >>> from complexity.cost.predict.log import Event, Key, Kind, What
    >>> x = Key(What.ACTIVATION, 1)
    >>> a = CachingAllocator()
    >>> replay_step(a, [Event(Kind.ALLOC, 4096, x), Event(Kind.MARK, 0),
    ...                 Event(Kind.FREE, 4096, x)], [])
    >>> a.allocated, a.max_allocated, a.reserved
    (0, 4096, 2097152)
    """
    from complexity.cost.step.optimizers import STEP_BYTES, Optimizer

    opt = optimizer or Optimizer()
    live: Dict[object, Block] = {}
    for e in events:
        if e.kind is Kind.ALLOC and e.key.what is What.UPDATE and opt.name == "adafactor":
            _replay_adafactor(alloc, opt, trainable_sizes, init_state, state)
        elif e.kind is Kind.ALLOC and e.key.what is What.UPDATE:
            if init_state:
                for n in trainable_sizes:
                    if opt.adam:
                        state.extend([alloc.malloc(n), alloc.malloc(n)])
                        if opt.fused:
                            state.append(alloc.malloc(STEP_BYTES))
                    elif opt.name == "sgd-momentum":
                        state.append(alloc.malloc(n))
            if not opt.adam or opt.fused:
                continue
            if opt.foreach:
                temps = [alloc.malloc(n) for n in trainable_sizes]
                for t in temps:
                    alloc.free(t)
                continue
            denom = None
            for n in trainable_sizes:
                t = alloc.malloc(n)
                new_denom = alloc.malloc(n)
                alloc.free(t)
                if denom is not None:
                    alloc.free(denom)
                denom = new_denom
            if denom is not None:
                alloc.free(denom)
        elif e.kind is Kind.ALLOC:
            if e.key in live:
                raise ValueError(f"{e.key} allocated twice")
            live[e.key] = alloc.malloc(e.size)
        elif e.kind is Kind.FREE:
            alloc.free(live.pop(e.key))
    for block in live.values():
        alloc.free(block)


def _replay_adafactor(alloc: CachingAllocator, opt, sizes, init_state: bool, state) -> None:
    """Adafactor's update (:mod:`complexity.cost.step.adafactor`): the first step
    makes its ``row_var``/``col_var``/``variance`` tensors (appended to ``state``);
    then every tensor its update makes is allocated and freed, in order."""
    from complexity.cost.step.adafactor import state_blocks, step_events

    if init_state:
        state.extend(alloc.malloc(n) for n in state_blocks(sizes))
    blocks: Dict[object, Block] = {}
    for op, key, n in step_events(sizes, opt.foreach):
        if op == "malloc":
            blocks[key] = alloc.malloc(n)
        else:
            alloc.free(blocks.pop(key))


def cuda_step(resident: Sequence[int], events: Sequence[Event],
              trainable_sizes: Sequence[int], steps: int = 3,
              optimizer=None) -> Dict[str, int]:
    """``{"allocated", "reserved"}``: the predicted ``max_memory_allocated`` and
    ``max_memory_reserved`` of the last of ``steps`` identical training steps, as a
    training loop runs them: the ``resident`` blocks (parameters, buffers, input,
    target) first, the first step making the optimizer's state (Adam's ``step`` counter
    lives on the CPU for ``Adam(foreach=False)``: no GPU memory), the peaks reset
    before the last step (the cache the earlier steps left stays).

    One 4 KiB parameter, an activation of 3 MiB alive until the update: at the
    update, the parameter, its optimizer state (Adam: 2 blocks), the activation and the two
    temporaries; the small blocks share one 2 MiB segment, the activation takes a
    20 MiB one (a 1–10 MiB request) that the later steps reuse.

    >>> from complexity.cost.predict.log import Event, Key, Kind, What
    >>> events = [Event(Kind.ALLOC, 3 * MIB, Key(What.ACTIVATION, 1)), Event(Kind.MARK, 0),
    ...           Event(Kind.ALLOC, 2 * 4096, Key(What.UPDATE)), Event(Kind.MARK, 0)]
    >>> r = cuda_step([4096], events, [4096])
    >>> r["allocated"] == 4096 + 2 * 4096 + 3 * MIB + 2 * 4096
    True
    >>> r["reserved"] == SMALL_BUFFER + LARGE_BUFFER
    True
    """
    alloc = CachingAllocator()
    for n in resident:
        alloc.malloc(n)
    state: list = []
    for i in range(steps):
        if i == steps - 1:
            alloc.reset_peaks()
        replay_step(alloc, events, trainable_sizes, init_state=(i == 0), state=state,
                    optimizer=optimizer)
    return {"allocated": alloc.max_allocated, "reserved": alloc.max_reserved}


def step_optimizer(options):
    """The :class:`~complexity.cost.step.optimizers.Optimizer` of a step's
    :class:`~complexity.cost.step.options.StepOptions` (the default Adam for-loop when none are
    given).

    >>> from complexity.cost.step.optimizers import Optimizer
    >>> from complexity.cost.step.options import StepOptions
    >>> sgd = StepOptions(optimizer=Optimizer("sgd-momentum"))
    >>> step_optimizer(None).label(), step_optimizer(sgd).label()
    ('adam', 'sgd-momentum')
    """
    from complexity.cost.step.optimizers import Optimizer

    return options.optimizer if options is not None else Optimizer()


def cuda_at(f, batch: int, steps: int = 3) -> Dict[str, int]:
    """:func:`cuda_step` for a :class:`~complexity.cost.fit.step_formula.StepFormula`
    ``f`` (traced with ``device_type="cuda"``) at ``batch``.

    >>> from models.stack import Stack
    >>> from complexity.cost.fit.step_formula import step_formula
    >>> f = step_formula(Stack(2, 4), (4, 8, 8), "cuda", checks=1)
    >>> r = cuda_at(f, 8)
    >>> f.peak_at(8) - f.step_counter_bytes <= r["allocated"] <= r["reserved"]
    True
    """
    return cuda_step(f.resident_at(batch), f.events_at(batch), f.trainable_sizes, steps,
                     optimizer=step_optimizer(f.options))


def largest_fitting(lo: int, hi: int, fits) -> int:
    """The largest ``x`` in ``[lo, hi]`` with ``fits(x)``, for a ``fits`` that holds
    up to some point and not beyond: ``lo`` is taken to fit (it is not tried),
    ``hi`` is tried first, then bisection between them. ``lo`` when ``hi <= lo``.

    >>> largest_fitting(0, 100, lambda x: x * x <= 50), largest_fitting(0, 5, lambda x: True)
    (7, 5)
    >>> largest_fitting(-1, 9, lambda x: False), largest_fitting(3, 2, lambda x: True)
    (-1, 3)
    """
    if hi <= lo:
        return lo
    if fits(hi):
        return hi
    while hi - lo > 1:  # lo fits, hi does not
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def cuda_max_batch(f, budget: int, reserve: int = DEFAULT_RESERVE,
                   steps: int = 3) -> Optional[int]:
    """The largest batch whose predicted ``max_memory_reserved`` plus ``reserve``
    is at most ``budget``: found by bisection below the exact peak's bound (the
    allocator never holds less than the live bytes, less Adam's CPU step counters),
    then checked: that batch fits, one more does not. ``f.batch_min - 1`` when none
    fits; None when the peak does not grow with the batch.

    >>> from models.stack import Stack
    >>> from complexity.cost.fit.step_formula import step_formula
    >>> f = step_formula(Stack(2, 4), (4, 8, 8), "cuda", checks=1)
    >>> b = cuda_max_batch(f, 64 * MIB, reserve=0)
    >>> cuda_at(f, b)["reserved"] <= 64 * MIB < cuda_at(f, b + 1)["reserved"]
    True
    """
    room = budget - reserve
    fits = lambda b: cuda_at(f, b, steps)["reserved"] <= room  # noqa: E731
    hi = f.max_batch(room + f.step_counter_bytes)
    if hi is None:
        return None
    if hi < f.batch_min:
        return f.batch_min - 1
    lo = largest_fitting(f.batch_min - 1, hi, fits)  # batch_min - 1 fits by convention
    if lo >= f.batch_min and not fits(lo) or fits(lo + 1):
        raise ValueError(f"the allocator model is not monotone in the batch near {lo}: "
                         "no max batch is claimed")
    return lo
