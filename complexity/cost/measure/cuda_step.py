"""One real training step on a GPU, as people write the loop: what
``torch.cuda.max_memory_allocated`` and ``max_memory_reserved`` say of it.

The truth the CUDA predictions (:mod:`complexity.cost.fit.allocator`, and the
float16 autocast step of :mod:`complexity.cost.measure.cuda_replay`) are checked against
where a GPU is at hand (``benchmarks/cuda_check.py``, ``finetune --cuda``). It sees
what no CPU measurement can: the caching allocator's rounding and the memory CUDA
kernels allocate inside themselves (cuDNN and cuBLAS workspaces, fused attention).
Needs a CUDA device; no test depends on one.
"""
from __future__ import annotations

import contextlib
from typing import Dict, Sequence

import torch
from torch import nn

from complexity.cost.step.batch import forward_loss, make_input

__all__ = ["measure_cuda", "measure_cuda_peak"]


def measure_cuda(model: nn.Module, input_shape: Sequence[int], options=None,
                 steps: int = 3, *, input_dtype=None, input_high=None) -> Dict[str, int]:
    """``{"allocated", "reserved"}``: ``torch.cuda.max_memory_allocated`` and
    ``max_memory_reserved`` of the last of ``steps`` real training steps on the GPU
    (the caching allocator's view: 512-byte rounding, cuDNN workspaces and cuDNN's
    own saved tensors included, unlike :func:`measure`), less what was held before
    the model was made. The loop is the one people write, with ``options``
    (:class:`~complexity.cost.step.options.StepOptions`: optimizer, dtype, autocast,
    checkpointing, accumulation, ``set_to_none``, loss scaling); the peaks are reset before the
    last step, after the earlier ones made the optimizer's state. On a copy of
    ``model`` (meta models too) with random weights; needs a CUDA device."""
    import copy

    from complexity.cost.step.checkpointing import checkpointed
    from complexity.cost.step.options import StepOptions

    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA device is available")
    options = options or StepOptions()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base_alloc, base_res = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
    dev = torch.device("cuda")
    net = copy.deepcopy(model).to_empty(device=dev)  # works for meta models too
    for (_, p), (_, q) in zip(model.named_parameters(), net.named_parameters()):
        q.requires_grad_(p.requires_grad)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.01)
        for name, b in net.named_buffers():
            b.fill_(1 if name.endswith("running_var") else 0)
    net.train()
    if options.dtype != "float32":
        net.to(options.torch_dtype())
    x = (torch.randn(*input_shape, device=dev, dtype=options.torch_dtype())
         if input_dtype is None else make_input(input_shape, input_dtype, input_high, dev))
    opt = options.optimizer.make([p for p in net.parameters() if p.requires_grad])
    region = ((lambda: torch.autocast("cuda", options.autocast_dtype())) if options.autocast
              else contextlib.nullcontext)
    scaler = torch.amp.GradScaler("cuda") if options.grad_scaler else None
    target = None
    with (checkpointed(net, options.checkpoint) if options.checkpoint
          else contextlib.nullcontext()):
        for step in range(steps):
            if step == steps - 1:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            for _ in range(options.grad_accum):
                with region():  # the model's own loss where it has one (labels=)
                    loss, target = forward_loss(net, x, target)
                (scaler.scale(loss) if scaler else loss).backward()
            if scaler:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            opt.zero_grad(set_to_none=options.set_to_none)
            del loss
    torch.cuda.synchronize()
    got = {"allocated": torch.cuda.max_memory_allocated() - base_alloc,
           "reserved": torch.cuda.max_memory_reserved() - base_res}
    del net, opt, x, target
    torch.cuda.empty_cache()
    return got


def measure_cuda_peak(model: nn.Module, input_shape: Sequence[int], options=None, *,
                      input_dtype=None, input_high=None) -> int:
    """The step's ``torch.cuda.max_memory_allocated`` (:func:`measure_cuda`; token
    ids for an integer ``input_dtype``, below ``input_high``)."""
    return measure_cuda(model, input_shape, options, input_dtype=input_dtype,
                        input_high=input_high)["allocated"]
