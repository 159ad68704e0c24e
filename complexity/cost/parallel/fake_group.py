"""The second instrument at sizes that cannot run here: one rank of an FSDP2 step
on a fake process group (``torch.testing._internal.distributed.fake_pg``: every
collective a no-op) with fake tensors (``FakeTensorMode``: shapes, no memory), so
that an 8B-parameter model on 8 or 64 ranks is watched in one process.

:func:`fake_rank` runs the same step as the gloo truth
(:func:`complexity.cost.parallel.gloo_step.measure_job`: two warm-up steps, then
one watched by :class:`~complexity.cost.parallel.tracker.RankBytes`, then one by
``FSDPMemTracker``). A fake collective allocates nothing of its own: what gloo's
reduce-scatter copies is absent, as on NCCL.
"""
from __future__ import annotations

import copy
import warnings
from typing import Dict, Sequence

from torch import nn

from complexity.cost.parallel.gloo_step import Job, measure_job


def fake_rank(model: nn.Module, input_shape: Sequence[int], parallel: str, world_size: int, *,
              shard=None, rank: int = 0, options=None, input_dtype=None,
              input_high=None, mixed=None, offload: bool = False) -> Dict:
    """Rank ``rank``'s figures (:func:`~complexity.cost.parallel.gloo_step.measure_ranks`'
    keys) for ``model`` (on any device, the meta device too) under ``parallel``
    over ``world_size`` ranks, measured on fake tensors in this process; ``mixed``
    and ``offload``: FSDP2's policies (:class:`~complexity.cost.parallel.gloo_step.Job`).

    >>> from models.stack import Stack
    >>> r = fake_rank(Stack(2, 4), (2, 4, 8, 8), "fsdp", 2, shard="0")
    >>> 2 * r["param_bytes"] == 4 * sum(p.numel() for p in Stack(2, 4).parameters())
    True
    """
    import torch.distributed as dist
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed.device_mesh import init_device_mesh
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if dist.is_initialized():
        raise RuntimeError("fake_rank: this process has joined a process group already")
    dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=world_size)
    try:
        mesh = init_device_mesh("cpu", (world_size,))  # outside fake mode
        copied = copy.deepcopy(model)  # a model on the meta device copies nothing
        with FakeTensorMode(allow_non_fake_inputs=True), warnings.catch_warnings():
            # FSDP2 asks a fake tensor for its data pointer, and PyTorch warns
            warnings.filterwarnings("ignore", "Accessing the data pointer of FakeTensor")
            fake = copied.to_empty(device="cpu")
            job = Job(fake, tuple(input_shape), parallel, shard, options, input_dtype,
                      input_high, mixed=mixed, offload=offload)
            return measure_job(job, rank, world_size, mesh)
    finally:
        dist.destroy_process_group()
