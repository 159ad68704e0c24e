"""The answers people need from many GPUs, per rank: does a step fit, the largest
per-rank batch that does, and the fewest GPUs that make it fit — each proved by
the prediction at the answer and one step past it.

:func:`rank_fit` answers for one model, trainable set and layout. The per-rank
peak is rank 0's (:meth:`~complexity.cost.parallel.prediction.RankModel.rank`:
it holds the most). The largest batch is searched by doubling, then halving, one
trace per batch tried, and proved by the peaks at ``B`` (fits) and ``B + 1``
(does not). The fewest GPUs: the step is traced once and each N replayed; found by
doubling, then halving (the peak shrinks as N grows), and proved at ``N`` (fits)
and ``N − 1`` (does not). DDP holds everything on every rank, so more GPUs never
make it fit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from torch import nn

from complexity.cost.parallel.prediction import Layout, RankModel

#: The most GPUs ``gpus="auto"`` tries.
MAX_GPUS = 65536


@dataclass
class RankFit:
    """One answer: ``input`` (per rank), the ``layout``, rank 0's prediction
    (``rank``: the keys of :func:`~complexity.cost.parallel.prediction.predict_ranks`),
    ``fits`` within ``budget``; ``max_batch`` (per rank) with the peaks that prove
    it (``proof``: batch → peak); ``gpus_needed`` with its proof (GPUs → peak) when
    asked for; ``units``: the FSDP units."""

    input: List[int]
    gpus: int
    parallel: str
    budget: int
    rank: Dict[str, Any]
    fits: bool
    units: List[str] = field(default_factory=list)
    max_batch: Optional[int] = None
    proof: Dict[int, int] = field(default_factory=dict)
    gpus_needed: Optional[int] = None
    gpus_proof: Dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        rank = {k: v for k, v in self.rank.items()}
        return {"input_per_rank": list(self.input), "gpus": self.gpus,
                "parallel": self.parallel, "units": list(self.units),
                "budget_bytes": self.budget, "fits": self.fits, "rank0": rank,
                "max_batch_per_rank": self.max_batch,
                "max_batch_proof": {str(b): p for b, p in self.proof.items()},
                "gpus_needed": self.gpus_needed,
                "gpus_proof": {str(n): p for n, p in self.gpus_proof.items()}}


def largest(fits: Callable[[int], bool], start: int, limit: int) -> Optional[int]:
    """The largest ``x`` in ``[1, limit]`` with ``fits(x)``, searched from ``start``
    by doubling, then halving, for a ``fits`` true up to a threshold and false
    after; None when ``fits(1)`` is false.

    >>> largest(lambda b: b <= 37, 8, 10**6), largest(lambda b: b <= 0, 8, 100)
    (37, None)
    """
    lo, hi = 0, None
    x = max(1, min(start, limit))
    while hi is None:
        if fits(x):
            lo = x
            if x >= limit:
                return x
            x = min(2 * x, limit)
        else:
            hi = x
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo or None


def smallest(fits: Callable[[int], bool], limit: int) -> Optional[int]:
    """The smallest ``x`` in ``[1, limit]`` with ``fits(x)``, for a ``fits`` false
    up to a threshold and true after; None when ``fits(limit)`` is false.

    >>> smallest(lambda n: n >= 5, 1000), smallest(lambda n: False, 64)
    (5, None)
    """
    hi = 1
    while not fits(hi):
        if hi >= limit:
            return None
        hi = min(2 * hi, limit)
    lo = hi // 2  # fits(lo) is false (or lo is 0)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi


def rank_fit(model: nn.Module, input_shape: Sequence[int], budget: int, layout: Layout, *,
             gpus_auto: bool = False, options=None, input_dtype=None, input_high=None,
             max_batch: bool = True, backend: str = "gloo") -> RankFit:
    """Does one step of ``model`` with a per-rank batch of ``input_shape`` fit in
    ``budget`` bytes per rank under ``layout``; the largest per-rank batch; with
    ``gpus_auto`` the fewest GPUs (``layout.world_size`` is then ignored and the
    answer's ``gpus`` is that number, or ``layout.world_size`` if none fits).
    ``backend``: ``"gloo"`` (the CPU's; its reduce-scatter copies its input) or
    ``"nccl"`` (none).

    >>> from models.stack import Stack
    >>> r = rank_fit(Stack(2, 32), (1, 32, 4, 4), 240_000, Layout(1, "fsdp", "0"),
    ...              gpus_auto=True)
    >>> r.gpus_needed, r.gpus_proof[r.gpus_needed] <= 240_000 < r.gpus_proof[r.gpus_needed - 1]
    (4, True)
    >>> r.proof[r.max_batch] <= 240_000 < r.proof[r.max_batch + 1]
    True
    """
    kw = dict(options=options, input_dtype=input_dtype, input_high=input_high)
    traced = _traced(model, input_shape, layout, kw)
    answer_layout, needed, gpus_proof = layout, None, {}
    if gpus_auto:
        needed, gpus_proof = _fewest_gpus(traced, layout, budget, backend)
        answer_layout = layout.at(needed or layout.world_size)
    rank = traced.rank(answer_layout, 0, backend)
    out = RankFit(list(input_shape), answer_layout.world_size, layout.parallel, budget, rank,
                  rank["peak_bytes"] <= budget,
                  units=[n for n, _ in traced.found], gpus_needed=needed, gpus_proof=gpus_proof)
    if max_batch and out.fits:
        out.max_batch, out.proof = _largest_batch(model, input_shape, budget, answer_layout,
                                                  dict(kw, backend=backend), rank["peak_bytes"])
    return out


def _traced(model, input_shape, layout: Layout, kw) -> RankModel:
    return RankModel(model, tuple(input_shape), shard=layout.shard,
                     sharded=layout.parallel != "ddp", mixed=layout.mixed, **kw)


def _fewest_gpus(traced: RankModel, layout: Layout, budget: int, backend: str):
    """(the fewest GPUs whose rank 0 fits, or None; the peaks at it and one fewer)."""
    peaks: Dict[int, int] = {}

    def peak(n: int) -> int:
        if n not in peaks:
            peaks[n] = traced.rank(layout.at(n), 0,
                                   backend)["peak_bytes"]
        return peaks[n]

    # DDP: every rank holds the whole step and more from two GPUs on
    limit = 2 if layout.parallel == "ddp" else MAX_GPUS
    n = smallest(lambda k: peak(k) <= budget, limit)
    if n is None:
        return None, {}
    return n, {k: peak(k) for k in (n - 1, n) if k >= 1}


def _largest_batch(model, input_shape, budget: int, layout: Layout, kw, first_peak: int):
    """(the largest per-rank batch that fits, the peaks at it and one more)."""
    peaks: Dict[int, int] = {input_shape[0]: first_peak}
    backend = kw.pop("backend")

    def peak(b: int) -> int:
        if b not in peaks:
            traced = _traced(model, (b, *input_shape[1:]), layout, kw)
            peaks[b] = traced.rank(layout, 0, backend)["peak_bytes"]
        return peaks[b]

    best = largest(lambda b: peak(b) <= budget, input_shape[0], 2**20)
    return best, {b: peak(b) for b in (best, best + 1)}
