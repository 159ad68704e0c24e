"""The truth for many GPUs, on the CPU: a real training step of N processes over
the gloo backend, each rank's memory watched by two instruments.

:func:`measure_ranks` spawns N processes (``torch.multiprocessing``), each joins a
gloo process group, wraps its copy of the model — ``DistributedDataParallel``, or
``fully_shard`` on every unit (:func:`complexity.cost.parallel.layout.units`) then
on the root, resharding after forward or not — and trains: two warm-up steps (the
first makes the optimizer's state; DDP rebuilds its gradient buckets in the order
the first backward made the gradients, at the second forward), then

* the step watched by :class:`~complexity.cost.parallel.tracker.RankBytes`
  (every storage made or resized, from the parameters, buffers, optimizer state,
  DDP's bucket buffers, the batch and its target on): the peak per rank;
* a step watched by PyTorch's own ``FSDPMemTracker`` (FSDP) or ``MemTracker``
  (DDP), the second instrument.

Each rank draws its own batch (``torch.manual_seed(rank)``). What gloo allocates
inside its collectives is outside the dispatcher and in neither figure.
"""
from __future__ import annotations

import copy
import gc
import json
import os
import socket
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from complexity.cost.keys import Category
from complexity.cost.parallel.layout import PARALLEL, units
from complexity.cost.parallel.tracker import RankBytes


@dataclass
class Job:
    """One step to measure on every rank: ``model`` (copied per rank), the per-rank
    ``input_shape``, the layout (``parallel``: one of
    :data:`~complexity.cost.parallel.layout.PARALLEL`; ``shard``: the units' glob),
    the step's ``options`` (:class:`complexity.cost.step.options.StepOptions`;
    default Adam) and DDP's ``bucket_cap_mb``; FSDP's ``mixed`` precision (a
    :class:`~complexity.cost.parallel.policy.Precision`) and CPU ``offload``
    (``CPUOffloadPolicy(pin_memory=False)``: no pinned memory without a GPU);
    ``profile``: one more step under ``torch.profiler`` with ``profile_memory``
    (:func:`profiler_peak`, a third instrument)."""

    model: nn.Module
    input_shape: Sequence[int]
    parallel: str
    shard: Optional[str] = None
    options: object = None
    input_dtype: object = None
    input_high: Optional[int] = None
    bucket_cap_mb: float = 25.0
    extra: dict = field(default_factory=dict)
    mixed: object = None
    offload: bool = False
    profile: bool = False


def measure_ranks(jobs: List[Job], world_size: int) -> List[List[Dict]]:
    """Run every job on ``world_size`` gloo processes; for each job, each rank's
    figures: ``param_bytes``, ``grad_bytes``, ``optimizer_bytes`` (what the rank
    stores: FSDP's padded shards, the local gradient and state),
    ``grad_local_bytes`` (the gradients' unpadded local shards), ``held_on`` (the
    device types of what it stores between steps), ``bucket_bytes``
    (DDP's bucket buffers), ``peak_bytes`` (:class:`RankBytes`), ``peak_parts``,
    and ``torch_peak_bytes`` (``FSDPMemTracker`` / ``MemTracker``)."""
    for job in jobs:
        if job.parallel not in PARALLEL:
            raise ValueError(f"parallel={job.parallel!r}: choose one of {', '.join(PARALLEL)}")
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_rank_main, args=(world_size, _free_port(), jobs, out), nprocs=world_size,
                 join=True)
        results = []
        for r in range(world_size):
            with open(os.path.join(out, f"rank{r}.json")) as f:
                results.append(json.load(f))
    return [[results[r][j] for r in range(world_size)] for j in range(len(jobs))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world_size: int, port: int, jobs: List[Job], out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                           world_size=world_size)
    try:
        found = [measure_job(job, rank, world_size) for job in jobs]
    finally:
        dist.destroy_process_group()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(found, f)


class _RankStep:
    """One rank's wrapped model, optimizer, batch, and the storages it holds
    between steps."""

    def __init__(self, job: Job, rank: int, mesh=None):
        from complexity.cost.step.batch import loss_of, make_input
        from complexity.cost.step.options import StepOptions

        torch.manual_seed(rank)
        self.job, self.options = job, job.options or StepOptions()
        model = copy.deepcopy(job.model)
        self.loss = loss_of(model)
        self.buckets: List[torch.Tensor] = []
        self.mesh = mesh  # None: the default process group's
        self.model = self._wrap(model)
        self.opt = self.options.optimizer.make(list(self.model.parameters()))
        self.x = make_input(job.input_shape, job.input_dtype, job.input_high, "cpu")
        self.target = None

    def _wrap(self, model: nn.Module) -> nn.Module:
        job = self.job
        if job.parallel == "ddp":
            from torch.nn.parallel import DistributedDataParallel as DDP

            ddp = DDP(model, bucket_cap_mb=job.bucket_cap_mb)
            ddp.register_comm_hook(None, self._recording_hook)
            return ddp
        from torch.distributed.fsdp import fully_shard

        reshard = job.parallel == "fsdp"
        kw = {"mesh": self.mesh}
        if job.mixed is not None:
            kw["mp_policy"] = job.mixed.policy()
        if job.offload:
            from torch.distributed.fsdp import CPUOffloadPolicy

            kw["offload_policy"] = CPUOffloadPolicy(pin_memory=False)
        for _, mod in units(model, job.shard):
            fully_shard(mod, reshard_after_forward=reshard, **kw)
        # the root as people wrap it: by default it keeps its parameters gathered
        # from forward to backward (fully_shard's reshard_after_forward=None)
        return fully_shard(model, reshard_after_forward=None if reshard else False, **kw)

    def _recording_hook(self, state, bucket):
        """DDP's default all-reduce, noting each bucket's flat buffer (resident
        memory the reducer made in C++)."""
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

        if bucket.index() == 0:
            self.buckets = []
        self.buckets.append(bucket.buffer())
        return allreduce_hook(None, bucket)

    def step(self) -> None:
        from complexity.cost.step.batch import forward_loss

        loss, self.target = forward_loss(self.model, self.x, self.target, self.loss)
        loss.backward()
        self.opt.step()  # the loss still bound, as a training loop writes it

    def held(self) -> Dict[str, list]:
        """The local storages held between steps, by what they are."""
        params = [_local(p) for p in self.model.parameters()]
        buffers = list(self.model.buffers())
        state = [_local(t) for s in self.opt.state.values() for t in s.values()
                 if isinstance(t, torch.Tensor)]
        grads = [_local(p.grad) for p in self.model.parameters() if p.grad is not None]
        return {"params": params, "buffers": buffers, "state": state, "grads": grads}


def _local(t: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    return t.to_local() if isinstance(t, DTensor) else t


def _storage_bytes(tensors) -> int:
    seen = {}
    for t in tensors:
        seen[id(t.untyped_storage())] = t.untyped_storage().nbytes()
    return sum(seen.values())


def measure_job(job: Job, rank: int, world_size: int, mesh=None) -> Dict:
    """One rank's figures for ``job`` (:func:`measure_ranks`' dicts), in a process
    whose default process group is joined (``mesh``: a device mesh over it, made
    outside any fake-tensor mode, for ``fully_shard``)."""
    step = _RankStep(job, rank, mesh)
    for _ in range(2):  # the optimizer's state; DDP's rebuilt buckets
        step.step()
        step.opt.zero_grad(set_to_none=True)
    held = step.held()
    gc.collect()
    gc.disable()
    try:
        live = RankBytes()
        live.track(held["params"], held["buffers"], category=Category.WEIGHTS)
        live.track(held["state"], category=Category.OPTIMIZER)
        live.track(step.buckets, category=Category.GRADS)
        live.track(step.x, step.target, category=Category.ACTIVATIONS)
        with live:
            step.step()
        after = step.held()
        for g in after["grads"]:
            live.retag(g, Category.GRADS)
        grads = _storage_bytes(after["grads"])
        # what an offloaded gradient copies to the host: each local shard, unpadded
        grad_local = sum(g.numel() * g.element_size() for g in after["grads"])
        step.opt.zero_grad(set_to_none=True)
    finally:
        gc.enable()
    out = {"rank": rank, "world_size": world_size,
           "param_bytes": _storage_bytes(held["params"]),
           "buffer_bytes": _storage_bytes(held["buffers"]),
           "grad_bytes": grads, "grad_local_bytes": grad_local,
           "optimizer_bytes": sum(t.untyped_storage().nbytes() for t in held["state"]),
           "bucket_bytes": _storage_bytes(step.buckets),
           "peak_bytes": live.peak, "peak_parts": live.parts(),
           "held_on": sorted({t.device.type for v in held.values() for t in v})}
    out["torch_peak_bytes"] = _torch_peak(step)
    if job.profile:
        out["profiler_peak_bytes"] = profiler_peak(step)
    return out


def profiler_peak(step: _RankStep) -> int:
    """The peak of one more step as ``torch.profiler`` sees it (``profile_memory``:
    a ``[memory]`` event for each allocation and free the CPU allocator makes, on
    any thread, FSDP2's storage resizes and gloo's copies included): the storages
    held when it starts, plus the most their running sum of events reaches."""
    from torch.profiler import ProfilerActivity, profile

    held = step.held()
    start = _storage_bytes([*held["params"], *held["buffers"], *held["state"],
                            *step.buckets, step.x, step.target])
    gc.collect()
    gc.disable()
    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step.step()
    finally:
        gc.enable()
    step.opt.zero_grad(set_to_none=True)
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return start + peak


def _torch_peak(step: _RankStep) -> int:
    """The peak of one more step by PyTorch's own tracker: ``FSDPMemTracker`` for
    an FSDP model, ``MemTracker`` otherwise (its device total, in bytes)."""
    if step.job.parallel == "ddp":
        from torch.distributed._tools.mem_tracker import MemTracker

        tracker = MemTracker()
        tracker.track_external(step.model, step.opt)
    else:
        from torch.distributed._tools.fsdp2_mem_tracker import FSDPMemTracker

        tracker = FSDPMemTracker(step.model, step.opt)
    tracker.track_external(step.x, step.target)
    with tracker:
        step.step()
    step.opt.zero_grad(set_to_none=True)
    peak = tracker.get_tracker_snapshot("peak")
    return int(sum(v.get("Total", 0) for v in peak.values()))
