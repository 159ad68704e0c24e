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

The FSDP peak is an **estimate** (the step's order of gathers, reduce-scatters and
activations modelled unit by unit, below); ``peak_bytes`` of FSDP is marked so.
Candidates, the largest wins:

* backward, at unit ``k``'s reduce-scatter (the last unit first): the resident
  shards, the gradients of the units already reduced, the root's unsharded
  parameters (the root is never resharded in the step), the next unit's
  prefetched ones (``fsdp``) or every unit not yet reduced (``fsdp-no-reshard``),
  the reduce-scatter input (unit ``k``'s padded unsharded gradients), gloo's copy
  of it (gloo reduce-scatters through a full-size temporary: a gloo effect, none
  on NCCL) and its output, and the activations kept for backward;
* the update: the resident shards, every gradient and the optimizer's
  temporaries on the local shards.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from torch import nn

from complexity.cost.parallel.layout import PARALLEL, shard_numel, unit_of_params, units
from complexity.errors import OptionError

#: Per-rank quantities (bytes); the first three are exact for every layout.
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
    """One dict per rank: :data:`RANK_KEYS`, ``peak_exact`` (False for FSDP's
    estimate) and ``parts`` (what the rank holds, by what it is)."""
    from complexity.cost.predict.prediction import predict_step
    from complexity.cost.step.options import StepOptions

    options = options or StepOptions()
    p = predict_step(model, input_shape, input_dtype=input_dtype, input_high=input_high,
                     options=options)
    if not layout.sharded:
        buckets = p.values["grad_bytes"] if layout.parallel == "ddp" and layout.world_size > 1 else 0
        one = {k: p.values[k] for k in RANK_KEYS if k in p.values}
        one.update(bucket_bytes=buckets, peak_bytes=p.values["peak_bytes"] + buckets,
                   peak_exact=True,
                   parts={"weights": p.weights, "grads": p.values["grad_bytes"],
                          "ddp buckets": buckets,
                          "optimizer": p.values["optimizer_bytes"]})
        return [dict(one) for _ in range(layout.world_size)]
    found = units(model, layout.shard)
    return [_fsdp_rank(model, found, p, layout, r, options) for r in range(layout.world_size)]


def _fsdp_rank(model, found, p, layout: Layout, rank: int, options) -> Dict:
    n = layout.world_size
    params = list(model.parameters())
    owner = unit_of_params(model, found)
    k_units = len(found) + 1  # the units, then the root
    padded = [0] * k_units     # padded shard bytes per unit (stored; the gradient too)
    trained = [0] * k_units
    local_sizes = []           # unpadded local shard bytes of each trainable parameter
    for param, k in zip(params, owner):
        size = param.element_size()
        padded[k] += shard_numel(param.shape, n, rank, padded=True) * size
        if param.requires_grad:
            trained[k] += shard_numel(param.shape, n, rank, padded=True) * size
            local_sizes.append(shard_numel(param.shape, n, rank, padded=False) * size)
    optimizer = options.optimizer.state_bytes(local_sizes, "cpu")
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    resident = sum(padded) + buffers + optimizer + p.io
    grads = sum(trained)
    unsharded = [b * n for b in padded]
    root = k_units - 1
    saved = p.values["saved_activation_bytes"]
    candidates = []
    for k in range(root - 1, -1, -1):  # backward: the last unit first
        done = sum(trained[j] for j in range(k + 1, root))
        if layout.parallel == "fsdp":
            gathered = unsharded[root] + (unsharded[k - 1] if k > 0 else 0)
        else:
            gathered = unsharded[root] + sum(unsharded[:k])
        rs_in = trained[k] * n
        candidates.append(resident + done + gathered + 2 * rs_in + trained[k] + saved)
    update = resident + grads + options.optimizer.step_temporaries(local_sizes)
    candidates.append(update)
    return {"param_bytes": sum(padded), "grad_bytes": grads, "optimizer_bytes": optimizer,
            "bucket_bytes": 0, "peak_bytes": max(candidates), "peak_exact": False,
            "parts": {"weights (local shards)": sum(padded), "buffers": buffers,
                      "grads (local shards)": grads, "optimizer (local shards)": optimizer,
                      "gathered (root + one unit)": max(unsharded[:root] or [0])
                      + unsharded[root]}}
