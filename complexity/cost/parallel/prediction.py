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

from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence

from torch import nn

from complexity.cost.parallel.layout import PARALLEL, shard_numel, unit_of_params, units
from complexity.cost.parallel.policy import Precision, cast_copy, cast_hooks, input_cast
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
    mixed: Optional[Precision] = None
    offload: bool = False

    def __post_init__(self):
        if not isinstance(self.world_size, int) or self.world_size < 1:
            raise OptionError("{gpus} must be a whole number ≥ 1", gpus=self.world_size)
        if self.parallel not in PARALLEL:
            raise OptionError("{parallel} is none of " + ", ".join(PARALLEL),
                              parallel=self.parallel)
        for name, on in (("mixed_precision", self.mixed is not None),
                         ("offload", self.offload)):
            if on and self.parallel == "ddp":
                raise OptionError("{%s} is FSDP2's policy; {parallel} has none" % name,
                                  **{name: getattr(self, name.replace("_precision", ""))},
                                  parallel=self.parallel)

    @property
    def sharded(self) -> bool:
        """FSDP on more than one rank, or with a policy (FSDP2 applies it on one)."""
        policy = self.mixed is not None or self.offload
        return self.parallel != "ddp" and (self.world_size > 1 or policy)

    def at(self, world_size: int) -> "Layout":
        """This layout over ``world_size`` ranks."""
        return replace(self, world_size=world_size)


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
                       input_high=input_high, mixed=layout.mixed)
    return [traced.rank(layout, r) for r in range(layout.world_size)]


class RankModel:
    """One single-process step of ``model`` at ``input_shape``, traced once, from
    which any rank of any layout is predicted (:meth:`rank`). ``sharded``: record
    where the FSDP units of ``shard`` run (their calls), for FSDP layouts.
    ``mixed``: FSDP2's mixed precision (a
    :class:`~complexity.cost.parallel.policy.Precision`): the step is traced with
    the parameters in the gather dtype and floating inputs cast to it, as FSDP2's
    forward and backward run; the caller's batch stays resident besides."""

    def __init__(self, model: nn.Module, input_shape: Sequence[int], *,
                 shard: Optional[str] = None, sharded: bool = True, options=None,
                 input_dtype=None, input_high=None, mixed: Optional[Precision] = None):
        from complexity.cost.predict.prediction import predict_step
        from complexity.cost.step.options import StepOptions

        self.model, self.options, self.mixed = model, options or StepOptions(), mixed
        if sharded:
            check_sharded_options(self.options)
        run = self.run = cast_copy(model, mixed)  # what FSDP2's forward and backward see
        self.traced_params = sum(q.numel() * q.element_size() for q in run.parameters())
        inside = input_cast(mixed, input_dtype)
        self.caller_input = 0 if inside is input_dtype else _bytes_of(input_shape, input_dtype)
        self.found = units(run, shard) if sharded else []
        self.events: list = []
        self.ranges, handles = call_ranges(run, [m for _, m in self.found])
        handles += cast_hooks(run, [m for _, m in self.found], mixed)
        try:
            self.p = predict_step(run, input_shape, input_dtype=inside,
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
        if layout.mixed != self.mixed:
            raise ValueError(f"traced with mixed={self.mixed}, asked for {layout.mixed}")
        return _fsdp_rank(self, layout, rank, backend == "gloo")

    @property
    def unmodelled(self) -> List[str]:
        """The calls no rule covers (the peak is then approximate, ``≈``)."""
        return self.p.unmodelled


def _bytes_of(shape, dtype) -> int:
    import math

    import torch

    return math.prod(shape) * torch.empty((), dtype=dtype or torch.get_default_dtype()
                                          ).element_size()


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


def _fsdp_rank(traced: "RankModel", layout: Layout, rank: int, gloo_copy: bool) -> Dict:
    """Rank ``rank`` of an FSDP ``layout``: what it stores and its peak, replayed.
    Offloaded (``layout.offload``), the shards, their gradients, the optimizer's
    state and its update live on the host: the peak is the device's, and
    ``host_bytes`` / ``host_peak_bytes`` say what the host holds."""
    p, options, offload = traced.p, traced.options, layout.offload
    root = len(traced.found)  # the units, then the root
    sizes = _unit_sizes(traced, layout.world_size, rank, layout.mixed, offload)
    optimizer = options.optimizer.state_bytes(sizes["local"], "cpu")
    update = options.optimizer.step_temporaries(sizes["local"])
    shards, grads = sum(sizes["padded"]), sum(sizes["trained"])
    buffers = p.weights - traced.traced_params
    resident = buffers + p.io + traced.caller_input + (0 if offload else shards + optimizer)
    plan = [Unit(sizes["gathered"][k], sizes["reduced"][k], sizes["out"][k],
                 *traced.ranges[k], cast=sizes["cast"][k], upcast=sizes["upcast"][k],
                 offloaded=offload) for k in range(root + 1)]
    replayer = Replay(resident, sizes["unit_of"], 0 if offload else update)
    peak = replay(traced.events, traced.times, plan, root, len(p.graph.calls),
                  layout.parallel == "fsdp", replayer, gloo_copy)
    grad_bytes = sizes["host_grads"] if offload else grads
    parts = {"weights (local shards)": shards, "buffers": buffers,
             "grads (local shards)": grad_bytes, "optimizer (local shards)": optimizer,
             "gathered (root + largest unit)": max(sizes["gathered"][:root] or [0])
             + sizes["gathered"][root]}
    out = {"param_bytes": shards, "grad_bytes": grad_bytes, "optimizer_bytes": optimizer,
           "bucket_bytes": 0, "peak_bytes": peak, "peak_exact": False, "parts": parts}
    if offload:  # the host's peak: everything it holds, and the update's temporaries
        out.update(host_bytes=shards + grad_bytes + optimizer,
                   host_peak_bytes=shards + grad_bytes + optimizer + update)
    return out


def _unit_sizes(traced: "RankModel", n: int, rank: int, mixed, offload: bool) -> Dict:
    """Per unit (the units, then the root), on rank ``rank`` of ``n``, bytes: the
    stored padded shards (``padded``: the parameters' own dtype); the all-gather's
    flat buffer, which is also the unsharded parameters' size (``gathered``: the
    gather dtype); the copies the all-gather reads (``cast``: each shard cast to
    the gather dtype, or copied to the device when offloaded,
    ``FSDPParam.all_gather_inputs``); the reduce-scatter's input and output
    (``reduced``, ``out``: the reduce dtype); the output cast back to the
    parameters' dtype (``upcast``, ``foreach_reduce``'s ``_to_dtype_if_needed``;
    0 when the dtypes agree); ``trained`` (the padded sharded gradients). And
    ``local`` (unpadded local shard of each trained parameter, the optimizer's),
    ``host_grads`` (what offloaded gradients copy to the host: the local shards)
    and ``unit_of``."""
    from complexity.cost.parallel.policy import dtypes

    owner = unit_of_params(traced.run, traced.found)
    p, found = traced.p, traced.found
    keys = ("padded", "gathered", "cast", "reduced", "out", "upcast", "trained")
    per = {key: [0] * (len(found) + 1) for key in keys}
    local, unit_of = [], {}
    for i, (param, k) in enumerate(zip(traced.model.parameters(), owner)):
        gd, rd = dtypes(mixed, param.dtype)
        g, r, size = _itemsize(gd), _itemsize(rd), param.element_size()
        padded = shard_numel(param.shape, n, rank, padded=True)
        per["padded"][k] += padded * size
        per["gathered"][k] += padded * n * g
        if gd != param.dtype or offload:
            per["cast"][k] += padded * g
        if i in p.graph.params:  # trainable, reached by the loss
            per["reduced"][k] += padded * n * r
            per["out"][k] += padded * r
            per["upcast"][k] += padded * size if rd != param.dtype else 0
            per["trained"][k] += padded * size
            local.append(shard_numel(param.shape, n, rank, padded=False) * size)
            unit_of[i] = k
    return dict(per, local=local, host_grads=sum(local), unit_of=unit_of)


def _itemsize(dtype) -> int:
    import torch

    return torch.empty((), dtype=dtype).element_size()
