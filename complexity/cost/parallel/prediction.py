"""Per-rank memory of a data-parallel step, predicted: the single-process step
(:func:`complexity.cost.predict.prediction.predict_step`) plus the layout
(:mod:`complexity.cost.parallel.layout`). Never imports the measurement.

What each rank holds, exact (``tests/test_parallel_gloo.py`` checks every figure
against a real gloo run of N processes):

* **DDP** — everything, as one process does, plus the reducer's bucket buffers:
  flat copies of the gradients, one per bucket (``bucket_cap_mb``, the first
  bucket 1 MiB), which with ``gradient_as_bucket_view=False`` (the default) sum
  to the trainable parameters' bytes whatever the bucketing, and live from the
  first backward on. The peak is the single-process peak plus those buckets.
* **FSDP2** — of each parameter its dim-0 shard padded to ``ceil(d0 / N)`` rows
  (:func:`~complexity.cost.parallel.layout.shard_numel`); the gradient: each
  unit's reduce-scatter output, the unit's padded shards in one flat buffer; the
  optimizer's state on the unpadded local shard (one buffer for SGD with
  momentum, two moments for Adam or AdamW, whose 4-byte ``step`` counters are
  per parameter: a rank whose shard is empty has them too). Buffers are not
  sharded.

The FSDP peak is the single-process step's log replayed with the shards in place
of the full state and FSDP2's gathers, reduce-scatters and their buffers inserted
where its hooks run (:mod:`complexity.cost.parallel.timeline`). It is checked
against the gloo run (``tests/test_parallel_gloo.py``), but it rests on FSDP2's
internals as this PyTorch has them, so it is reported as ``peak_exact: False``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from torch import nn

from complexity.cost.parallel.layout import PARALLEL, shard_numel, unit_of_params, units
from complexity.cost.parallel.timeline import Replay, Unit, call_ranges, event_times, replay
from complexity.errors import OptionError

#: Per-rank quantities (bytes).
RANK_KEYS = ("param_bytes", "grad_bytes", "optimizer_bytes", "bucket_bytes", "peak_bytes")


@dataclass
class Layout:
    """``parallel`` over ``world_size`` ranks, FSDP units from ``shard`` (a glob;
    None: the family's default, :func:`~complexity.cost.parallel.layout.default_shard`)."""

    world_size: int
    parallel: str = "fsdp"
    shard: Optional[str] = None

    def __post_init__(self):
        if not isinstance(self.world_size, int) or self.world_size < 1:
            raise OptionError("{gpus} must be a whole number ≥ 1", gpus=self.world_size)
        if self.parallel not in PARALLEL:
            raise OptionError("{parallel} is none of " + ", ".join(PARALLEL),
                              parallel=self.parallel)

    @property
    def sharded(self) -> bool:
        return self.parallel != "ddp" and self.world_size > 1


def predict_ranks(model: nn.Module, input_shape: Sequence[int], layout: Layout, *,
                  options=None, input_dtype=None, input_high=None) -> List[Dict]:
    """One dict per rank: :data:`RANK_KEYS`, ``peak_exact`` and ``parts`` (what
    the rank holds, by what it is).

    >>> from models.stack import Stack
    >>> net = Stack(2, 4)                      # every dim 0 even: two equal halves
    >>> ranks = predict_ranks(net, (2, 4, 8, 8), Layout(2, "fsdp", "0"))
    >>> 2 * ranks[1]["param_bytes"] == 4 * sum(p.numel() for p in net.parameters())
    True
    """
    traced = RankModel(model, input_shape, shard=layout.shard if layout.sharded else None,
                       sharded=layout.sharded, options=options, input_dtype=input_dtype,
                       input_high=input_high)
    return [traced.rank(layout, r) for r in range(layout.world_size)]


class RankModel:
    """One single-process step of ``model`` at ``input_shape``, traced once, from
    which any rank of any layout is predicted (:meth:`rank`). ``sharded``: record
    where the FSDP units of ``shard`` run (their calls), for FSDP layouts."""

    def __init__(self, model: nn.Module, input_shape: Sequence[int], *,
                 shard: Optional[str] = None, sharded: bool = True, options=None,
                 input_dtype=None, input_high=None):
        from complexity.cost.predict.prediction import predict_step
        from complexity.cost.step.options import StepOptions

        self.model, self.options = model, options or StepOptions()
        if sharded:
            check_sharded_options(self.options)
        self.found = units(model, shard) if sharded else []
        self.events: list = []
        self.ranges, handles = call_ranges(model, [m for _, m in self.found])
        try:
            self.p = predict_step(model, input_shape, input_dtype=input_dtype,
                                  input_high=input_high, options=self.options,
                                  events=self.events)
        finally:
            for h in handles:
                h.remove()
        self.times = (event_times(self.p.graph, self.events, self.options.grads_resident)
                      if sharded else None)

    def rank(self, layout: Layout, rank: int = 0, backend: str = "gloo") -> Dict:
        """What rank ``rank`` of ``layout`` holds, and its peak. Rank 0 holds the
        most: ``torch.chunk`` gives the first ranks whole chunks, the last ones
        less, so its optimizer state and update temporaries are the largest and
        everything else is the same on every rank. ``backend``: ``"gloo"`` (its
        reduce-scatter copies its input) or ``"nccl"`` (and a fake process group:
        no copy)."""
        if not layout.sharded:
            return _replicated(self.p, layout)
        if self.times is None:
            raise ValueError("RankModel(sharded=False) predicts no sharded layout")
        return _fsdp_rank(self.model, self.found, self.p, layout, rank, self.options,
                          (self.events, self.times, self.ranges), backend == "gloo")

    @property
    def unmodelled(self) -> List[str]:
        """The calls no rule covers (the peak is then approximate, ``≈``)."""
        return self.p.unmodelled


def check_sharded_options(options) -> None:
    """:class:`OptionError` for a step FSDP's replay does not model (yet): gradient
    accumulation, kept gradient buffers, checkpointing, autocast, a GradScaler."""
    unmodelled = [name for name, on in (
        ("gradient accumulation", options.grad_accum > 1),
        ("gradient buffers kept (zero_grad(set_to_none=False))", not options.set_to_none),
        ("checkpointing", bool(options.checkpoint)),
        ("autocast", options.autocast is not None),
        ("a GradScaler", options.grad_scaler)) if on]
    if unmodelled:
        raise OptionError("{parallel}: FSDP's peak is not modelled with "
                          + ", ".join(unmodelled) + " yet (DDP's is)", parallel="fsdp")


def _replicated(p, layout: Layout) -> Dict:
    """A rank that holds everything: the single-process step, and DDP's buckets."""
    ddp = layout.parallel == "ddp" and layout.world_size > 1
    buckets = p.values["grad_bytes"] if ddp else 0
    one = {k: p.values[k] for k in ("param_bytes", "grad_bytes", "optimizer_bytes")}
    one.update(bucket_bytes=buckets, peak_bytes=p.values["peak_bytes"] + buckets,
               peak_exact=True,
               parts={"weights": p.weights, "grads": p.values["grad_bytes"],
                      "ddp buckets": buckets, "optimizer": p.values["optimizer_bytes"]})
    return one


def _fsdp_rank(model, found, p, layout: Layout, rank: int, options, log,
               gloo_copy: bool = True) -> Dict:
    events, times, ranges = log
    n = layout.world_size
    params = list(model.parameters())
    owner = unit_of_params(model, found)
    root = len(found)           # the units, then the root
    padded = [0] * (root + 1)   # padded shard bytes per unit (stored; the gradient too)
    trained = [0] * (root + 1)
    local_sizes = []            # unpadded local shard bytes of each trainable parameter
    unit_of = {}
    for i, (param, k) in enumerate(zip(params, owner)):
        size = param.element_size()
        padded[k] += shard_numel(param.shape, n, rank, padded=True) * size
        if i in p.graph.params:  # trainable, reached by the loss
            trained[k] += shard_numel(param.shape, n, rank, padded=True) * size
            local_sizes.append(shard_numel(param.shape, n, rank, padded=False) * size)
            unit_of[i] = k
    optimizer = options.optimizer.state_bytes(local_sizes, "cpu")
    full = sum(q.numel() * q.element_size() for q in params)
    others = p.weights - full   # buffers and tensor attributes: not sharded
    resident = sum(padded) + others + optimizer + p.io
    plan = [Unit(padded[k] * n, trained[k] * n, trained[k], *ranges[k])
            for k in range(root + 1)]
    replayer = Replay(resident, unit_of, options.optimizer.step_temporaries(local_sizes))
    peak = replay(events, times, plan, root, len(p.graph.calls),
                  layout.parallel == "fsdp", replayer, gloo_copy)
    return {"param_bytes": sum(padded), "grad_bytes": sum(trained),
            "optimizer_bytes": optimizer, "bucket_bytes": 0, "peak_bytes": peak,
            "peak_exact": False,
            "parts": {"weights (local shards)": sum(padded), "buffers": others,
                      "grads (local shards)": sum(trained),
                      "optimizer (local shards)": optimizer,
                      "gathered (root + largest unit)": max(padded[:root] or [0]) * n
                      + padded[root] * n}}
