"""The cost of one training step, measured on a CPU copy of the model: fake tensors
(the default) or real ones (``how="real"``), equal byte for byte
(``tests/test_cost_measure.py``).

One step is what a training loop does once the optimizer's state exists: forward,
loss (the model's own where it has one, cross-entropy otherwise:
:func:`complexity.cost.step.batch.loss_of`), backward, ``optimizer.step()``. It runs under PyTorch's
``FakeTensorMode`` (tensors carry shape, dtype and storage identity but no data),
so deeplabv3_resnet101 at 448×448 costs seconds, not gigabytes. Three independent
instruments watch the step:

* FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` (PyTorch's own counter:
  2 per multiply-accumulate of convolutions and matrix products; element-wise
  ops — BatchNorm, ReLU, pooling, loss, the optimizer's update — count 0), once around forward +
  loss, once around backward; with the grouped-convolution backward rule corrected
  (:mod:`complexity.cost.flops`).
* Saved activations: ``torch.autograd.graph.saved_tensors_hooks`` sees every
  tensor autograd keeps for backward; each storage is counted once, and storages
  of parameters and buffers are left out (they are counted as parameters).
* Peak: :class:`LiveBytes`, a ``TorchDispatchMode`` that registers every storage
  an aten op creates and drops it when Python frees it (a weak-reference
  callback, as ``torch.distributed._tools.mem_tracker.MemTracker`` does);
  parameters, buffers, optimizer state, input and target are registered at the start.

>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
>>> m = measure(net, (2, 3, 8, 8))
>>> m["forward_flops"] == 2 * 2 * 64 * (4 * 27 + 2 * 4)   # 2·B·H·W·(Cout·fan-in) per conv
True
>>> m["grad_bytes"] == m["param_bytes"] == 4 * (4 * 27 + 4 + 2 * 4 + 2)
True
"""
from __future__ import annotations

import contextlib
import gc
from typing import Dict, Sequence

import torch
from torch import nn
from torch.autograd.graph import get_gradient_edge

from complexity.cost.keys import Category
from complexity.cost.measure.live_bytes import LiveBytes
from complexity.cost.step.autocast import autocast_region
from complexity.cost.step.batch import forward_loss, make_input
from complexity.cost.step.state import fill_as_step, stand_ins, tensor_attributes
from complexity.errors import reason


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


#: How :func:`measure` runs the step: on fake CPU tensors, or on real ones.
HOWS = ("fake", "real")


def measure(model: nn.Module, input_shape: Sequence[int], *, how: str = "fake",
            batch_target=None, input_dtype=None, input_high=None,
            options=None, parts: bool = False) -> Dict[str, int]:
    """Measure one training step of ``model`` on a batch of ``input_shape``.

    Trainable = parameters with ``requires_grad``. The loss is the model's own
    where it has one (a Hugging Face model given ``labels=``:
    :func:`complexity.cost.step.batch.loss_of`), else cross-entropy on the
    output (or ``output["out"]``) against class indices: ``batch_target`` (the
    labels, or the class indices) if given (any tensor of the right shape), random
    otherwise. The step runs in train mode
    (batch statistics, dropout), on CPU copies of the parameters and buffers:
    ``how="fake"`` (the default) fake tensors of the CPU device (no memory, any
    size), ``how="real"`` real ones (random values; it must fit in memory).
    ``model`` keeps its weights, buffers, ``requires_grad`` flags and train/eval
    mode, and may live on the meta device. Returns the :data:`complexity.cost.keys.KEYS`. The batch:
    :func:`make_input` (float32 ``randn`` by default; ``input_dtype=torch.long,
    input_high=vocab_size`` for token ids).

    Three steps, each with one instrument on, so that none perturbs another's
    figure: the FLOP counter (the warm-up step: its update creates the optimizer's
    state), then, from the same state (gradients set to None), the live-bytes
    tracker (peak; forward, backward and the optimizer's update) and the saved-tensor hooks
    (forward only). The garbage collector is off meanwhile.

    ``options`` (:class:`complexity.cost.step.options.StepOptions`): the optimizer
    (state and update as ``torch.optim`` builds it), the parameters' dtype
    (floating parameters, buffers and a float input cast, as ``model.to(dtype)``),
    ``set_to_none=False`` (the peak step starts with zeroed gradient buffers) and
    ``grad_accum=K`` (the peak is watched over K micro-batches and the update;
    FLOPs are K forward and backward passes). A float16 autocast step is CUDA's: its
    forward is recorded on fake CUDA tensors and replayed on the step's fake CPU ones
    (:mod:`complexity.cost.measure.cuda_replay`; ``how="fake"`` only, no checkpointing), and
    Adam's step counters, host memory on CUDA, are left out.
    ``parts``: also ``"peak_parts"``, the storages alive at the peak by
    :class:`~complexity.cost.keys.Category` (weights, grads, optimizer,
    activations, transient; :meth:`LiveBytes.parts`), to compare with the
    predicted parts (:meth:`complexity.cost.fit.step_formula.StepFormula.parts`).
    """
    from complexity.cost.step.options import StepOptions
    from complexity.counting.hooks import mode

    if how not in HOWS:
        raise ValueError(f"how={how!r}: choose one of {', '.join(HOWS)}")
    options = options or StepOptions()
    _check_measurable(how, options)
    step = _CpuStep(model, how, options)
    whole = contextlib.ExitStack()  # entered with the step, left when it ends
    gc_was_enabled = gc.isenabled()
    try:
        with mode(model, True), step.context, whole:
            for cm in step.segments:
                whole.enter_context(cm)
            x, target, opt = step.batch(input_shape, input_dtype, input_high, batch_target)
            gc.collect()  # a cycle freed by the collector mid-step would move the peak
            gc.disable()
            # the three instruments, one step each: FLOPs (the warm-up), peak, saved
            start = _values(step)
            fwd_flops, bwd_flops, grad_bytes, target = _count_flops(step, x, target, opt)
            _restore(step, start)
            opt_state, host = _optimizer_state(step, opt)
            live = _watch_peak(step, x, target, opt, opt_state + step.scaler_state(), host)
            _restore(step, start)
            saved_bytes = _saved_bytes(step, x, target)
    except RuntimeError as e:
        if step.fake is None and "alloc" in str(e).lower():
            raise MemoryError(f"measure(how='real'): one real step of a {tuple(input_shape)} "
                              f"batch does not fit in memory ({reason(e)}); "
                              "use how='fake'") from None
        raise
    finally:
        if gc_was_enabled:
            gc.enable()
    out = {
        "param_bytes": _nbytes(step.params.values()),
        "grad_bytes": grad_bytes,
        "optimizer_bytes": _nbytes(opt_state),
        "saved_activation_bytes": saved_bytes,
        "peak_bytes": live.peak,
        "forward_flops": options.grad_accum * fwd_flops,
        "backward_flops": options.grad_accum * bwd_flops,
    }
    if parts:
        out["peak_parts"] = live.parts()
    return out


class _CpuStep:
    """What :func:`measure`'s three passes share: the step's device, CPU copies of
    ``model``'s parameters, buffers and tensor attributes on it (fake or real), the
    context that makes its tensors (``FakeTensorMode`` or none), the checkpointing
    contexts, and :meth:`run`, one forward and loss as a training loop writes it."""

    def __init__(self, model: nn.Module, how: str, options):
        self.model, self.options = model, options
        self.dtype = options.torch_dtype() if options.dtype != "float32" else None
        self.amp = options.autocast_dtype()
        self.device = torch.device("cpu")  # a float16 (CUDA) step too: replayed here
        if how == "fake":
            from torch._subclasses.fake_tensor import FakeTensorMode

            self.context = self.fake = FakeTensorMode()
        else:
            self.context, self.fake = contextlib.nullcontext(), None
        self._copy_state()
        self.replay = (_replay(model, self.state, self.attributes)
                       if self.amp is torch.float16 else None)
        self.segments = self._checkpointing()
        # loss scaling: the scaler's scale and growth tracker are made by the warm-up
        self.scaler = (torch.amp.GradScaler(self.device.type) if options.grad_scaler
                       else None)

    def scaler_state(self) -> list:
        """The GradScaler's resident tensors (``_scale``, ``_growth_tracker``), once
        the warm-up step has made them; none without loss scaling."""
        if self.scaler is None:
            return []
        return [t for t in (self.scaler._scale, self.scaler._growth_tracker)
                if t is not None]

    def backward(self, loss) -> None:
        """``loss.backward()``, or ``scaler.scale(loss).backward()``."""
        if self.scaler is None:
            loss.backward()
        else:
            self.scaler.scale(loss).backward()

    def update(self, opt) -> None:
        """``opt.step()``, or ``scaler.step(opt); scaler.update()``."""
        from complexity.cost.step.adafactor import fake_scalars

        with fake_scalars(opt, self.fake):  # Adafactor's .item() on fake tensors
            if self.scaler is None:
                opt.step()
            else:
                self.scaler.step(opt)
                self.scaler.update()

    def _copy_state(self) -> None:
        """The parameters (``params``, ``trainable``), buffers and plain tensor
        attributes, copied to the step's device in the step's dtype; ``state``
        (parameters and buffers by name) and the ids of their storages, which the
        saved-tensor count leaves out. A real copy that does not fit is a
        ``MemoryError``."""
        fake, dtype, device = self.fake, self.dtype, self.device
        try:
            with self.context:
                params = {n: _cpu_copy(p, fake, dtype, device, seed=i)
                          for i, (n, p) in enumerate(self.model.named_parameters())}
                buffers = {n: _cpu_copy(b, fake, dtype, device)
                           for n, b in self.model.named_buffers()}
                # Plain tensor attributes: on the step's device too, resident like buffers.
                attributes = {k: _cpu_copy(t, fake, None, device)
                              for k, t in tensor_attributes(self.model).items()}
        except RuntimeError as e:  # a real copy that does not fit
            raise MemoryError(f"measure(how='real'): the model's weights do not fit in "
                              f"memory ({reason(e)})") from None
        self.params, self.attributes = params, attributes
        self.trainable = [p for p in params.values() if p.requires_grad]
        if not self.trainable:
            raise ValueError("no parameter of the model requires grad: nothing to train")
        self.state = {**params, **buffers}
        self.param_storages = {id(t.untyped_storage())
                               for t in [*self.state.values(), *attributes.values()]}

    def _checkpointing(self) -> tuple:
        """The contexts the whole step runs in when ``options.checkpoint`` is set:
        the stand-ins and the checkpointed modules (none otherwise)."""
        if not self.options.checkpoint:
            return ()
        from complexity.cost.step.checkpointing import checkpoint_modules, checkpointed

        # Checkpointing recomputes segments during backward, so the stand-ins must stay
        # in place for forward, backward and the update: one context around all passes.
        # a glob matching nothing: ValueError
        checkpoint_modules(self.model, self.options.checkpoint)
        return (stand_ins(self.model, self.state, self.attributes),
                checkpointed(self.model, self.options.checkpoint))

    def batch(self, input_shape, input_dtype, input_high, batch_target) -> tuple:
        """The input, the target (None: the first forward draws one) and the
        optimizer over the trainable copies, made on the step's device; call it
        inside :attr:`context`."""
        device = self.device
        x = make_input(input_shape, input_dtype if input_dtype is not None else self.dtype,
                       input_high, device)
        target = None
        if batch_target is not None:  # class indices, on the CPU, of that shape
            target = (torch.empty(batch_target.shape, dtype=torch.long, device=device)
                      if self.fake is not None or batch_target.device.type == "meta"
                      else batch_target.to(device, torch.long))
            if self.fake is None and batch_target.device.type == "meta":
                target.zero_()
        if self.replay is not None:  # recorded here, before any instrument is on
            target = self.replay.prepare(x, target)
        return x, target, self.options.optimizer.make(self.trainable)

    def run(self, x, target):
        """Forward and loss; returns the loss and the target it was taken against."""
        if self.replay is not None:  # float16 autocast: CUDA's policy, replayed
            return self.replay(x, target)
        # Forward and loss under autocast (its weight cache cleared on exit), as
        # people write it; each caller runs backward outside.
        with autocast_region(self.device.type, self.amp):
            if self.options.checkpoint:  # the stand-ins are in place for the whole step
                return forward_loss(self.model, x, target)
            with stand_ins(self.model, self.state, self.attributes):
                return forward_loss(self.model, x, target)


def _replay(model: nn.Module, state: dict, attributes: dict):
    """The float16 autocast forward of ``model``, traced on fake CUDA tensors and
    replayed on ``state`` and ``attributes`` (:class:`complexity.cost.measure.cuda_replay.CudaReplay`)."""
    from complexity.cost.measure.cuda_replay import CudaReplay

    def run(state, attributes, x, target):
        with stand_ins(model, state, attributes):
            return forward_loss(model, x, target)

    return CudaReplay(run, state, attributes)


def _check_measurable(how: str, options) -> None:
    """``ValueError`` (one line) for a step ``how`` cannot measure: a float16 autocast
    step is CUDA's (replayed on fake tensors, :mod:`complexity.cost.measure.cuda_replay`, which
    recomputes no checkpointed segment); a GradScaler step reads ``found_inf.item()``."""
    if options.autocast == "float16" and how == "real":
        raise ValueError("autocast float16 is a CUDA step: measure it with how='fake' "
                         "(its forward recorded on fake CUDA tensors), or use autocast "
                         "bfloat16 on the CPU")
    if options.autocast == "float16" and options.checkpoint:
        raise ValueError("autocast float16 with checkpointing: the float16 step is "
                         "measured by replaying its recorded CUDA forward, which "
                         "cannot recompute checkpointed segments")
    if options.grad_scaler and how == "fake":
        raise ValueError("grad_scaler: GradScaler.step reads found_inf.item(), which fake "
                         "tensors cannot give; measure it with how='real'")


def _values(step: _CpuStep):
    """A real step's trainable values before the warm-up (None for a fake one): each
    pass starts from them (:func:`_restore`), so that a forward whose path reads the
    weights (a mixture-of-experts router's choice) takes the same path in every
    pass, and the one the prediction reads (the update moves near-tied choices)."""
    return None if step.fake is not None else [p.detach().clone() for p in step.trainable]


def _restore(step: _CpuStep, values) -> None:
    if values is not None:
        with torch.no_grad():
            for p, v in zip(step.trainable, values):
                p.copy_(v)


def _optimizer_state(step: _CpuStep, opt) -> tuple:
    """``(device state, host state)``: the optimizer's state tensors, those a CUDA
    step keeps on the host (a float16 step's counters, :func:`_on_host`) apart:
    they are no device memory."""
    device, host = [], []
    for s in opt.state.values():
        for k, t in s.items():
            if isinstance(t, torch.Tensor):
                on_host = step.replay is not None and _on_host(opt, k)
                (host if on_host else device).append(t)
    return device, host


def _on_host(opt, key: str) -> bool:
    """Whether the optimizer keeps state ``key`` of a CUDA parameter on the CPU:
    Adam's ``step`` counters, unless fused or capturable (``torch.optim.adam``'s
    ``_init_group``). They are no device memory."""
    return key == "step" and not (opt.defaults.get("fused") or opt.defaults.get("capturable"))


def _count_flops(step: _CpuStep, x, target, opt) -> tuple:
    """Pass 1, FLOPs: the counter alone, around forward + loss, then backward;
    ``(forward FLOPs, backward FLOPs, gradient bytes, target)``."""
    from complexity.cost.flops import flop_counter

    # This is also the warm-up step: its update creates the optimizer state
    # (FLOPs count forward and backward only, which that state does not touch).
    with flop_counter() as fwd_counter:
        loss, target = step.run(x, target)
    with flop_counter() as bwd_counter:
        step.backward(loss)
    del loss
    grad_bytes = _nbytes(p.grad for p in step.trainable if p.grad is not None)
    step.update(opt)
    opt.zero_grad(set_to_none=step.options.set_to_none)
    return fwd_counter.get_total_flops(), bwd_counter.get_total_flops(), grad_bytes, target


def _watch_peak(step: _CpuStep, x, target, opt, opt_state, host=()) -> LiveBytes:
    """Pass 2, the peak: the live-bytes tracker alone, around forward, backward
    (``grad_accum`` micro-batches) and the update, from the state pass 1 left;
    ``host``: state that is no device memory. Storages are tagged as they come:
    weights, optimizer state, the batch and the forward's results as activations,
    backward's and the update's as transient, and every gradient autograd hands to
    a parameter's ``.grad`` (a pre-hook on its AccumulateGrad node) as grads."""
    live = LiveBytes()
    live.ignore(list(host))
    live.track(list(step.state.values()), list(step.attributes.values()),
               category=Category.WEIGHTS)
    live.track(opt_state, category=Category.OPTIMIZER)
    live.track(x, target, category=Category.ACTIVATIONS)
    live.track([p.grad for p in step.trainable if p.grad is not None],  # set_to_none=False
               category=Category.GRADS)
    # A leaf's AccumulateGrad node lives only while something holds it: hold them
    # all through the pass, or the forward makes new ones without the hooks.
    accumulators = [get_gradient_edge(p).node for p in step.trainable]
    hooks = [node.register_prehook(
        lambda grads: live.retag(grads[0], Category.GRADS) if grads[0] is not None else None)
        for node in accumulators]
    try:
        with live:
            for _ in range(step.options.grad_accum):  # as a training loop writes it
                live.category = Category.ACTIVATIONS
                loss, _ = step.run(x, target)
                live.category = Category.TRANSIENT
                step.backward(loss)
            step.update(opt)
        del loss
    finally:
        for h in hooks:
            h.remove()
        del accumulators
    opt.zero_grad(set_to_none=True)
    return live


def _saved_bytes(step: _CpuStep, x, target) -> int:
    """Pass 3, saved for backward: the saved-tensor hooks alone, around the
    forward; each storage counted once, parameters' and buffers' left out."""
    # Each storage is held until the end, so that no id is reused.
    saved: Dict[int, torch.UntypedStorage] = {}

    def pack(t):
        st = t.untyped_storage()
        if id(st) not in step.param_storages:
            saved[id(st)] = st
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, _ = step.run(x, target)
    del loss
    saved_bytes = sum(st.nbytes() for st in saved.values())
    saved.clear()
    return saved_bytes


def _cpu_copy(t: torch.Tensor, fake, dtype=None, device="cpu", seed: int = 0) -> torch.Tensor:
    """A CPU tensor of ``t``'s shape, strides, dtype and ``requires_grad``: fake
    (under ``fake``, already entered) or real. A real copy of a real tensor keeps
    its values; of a meta tensor it is initialised (weights ~ N(0, 0.01) seeded
    with ``seed``, ``running_var`` and other float buffers 1, integer buffers 0:
    :func:`~complexity.cost.step.state.fill_as_step`). ``dtype``: floating tensors in that type instead."""
    cast = dtype if dtype is not None and t.dtype.is_floating_point else t.dtype
    if fake is not None:  # ``device``: fake CUDA tensors too
        copy = torch.empty_strided(t.shape, t.stride(), dtype=cast, device=device)
    elif t.device.type == "meta":
        copy = torch.empty_strided(t.shape, t.stride(), dtype=cast, device="cpu")
        fill_as_step(copy, t, seed)
    else:
        copy = t.detach().to("cpu", cast, copy=True)
    return copy.requires_grad_(t.requires_grad) if t.requires_grad else copy
