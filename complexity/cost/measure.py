"""The cost of one training step, measured on a CPU copy of the model: fake tensors
(the default) or real ones (``how="real"``), equal byte for byte
(``tests/test_cost_measure.py``).

One step is what a training loop does once the Adam state exists: forward,
cross-entropy loss, backward, ``optimizer.step()``. It runs under PyTorch's
``FakeTensorMode`` (tensors carry shape, dtype and storage identity but no data),
so deeplabv3_resnet101 at 448×448 costs seconds, not gigabytes. Three independent
instruments watch the step:

* FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` (PyTorch's own counter:
  2 per multiply-accumulate of convolutions and matrix products; element-wise
  ops — BatchNorm, ReLU, pooling, loss, Adam — count 0), once around forward +
  loss, once around backward; with the grouped-convolution backward rule corrected
  (:mod:`complexity.cost.flops`).
* Saved activations: ``torch.autograd.graph.saved_tensors_hooks`` sees every
  tensor autograd keeps for backward; each storage is counted once, and storages
  of parameters and buffers are left out (they are counted as parameters).
* Peak: :class:`LiveBytes`, a ``TorchDispatchMode`` that registers every storage
  an aten op creates and drops it when Python frees it (a weak-reference
  callback, as ``torch.distributed._tools.mem_tracker.MemTracker`` does);
  parameters, buffers, Adam state, input and target are registered at the start.

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
import weakref
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from complexity.cost.autocast import autocast_region
from complexity.errors import reason

#: The quantities of one training step, in bytes or FLOPs (all exact integers).
KEYS = ("param_bytes", "grad_bytes", "optimizer_bytes", "saved_activation_bytes",
        "peak_bytes", "forward_flops", "backward_flops")


class LiveBytes(TorchDispatchMode):
    """Bytes of tensor storage alive, and the most ever alive, while the mode is on.

    Every storage is counted once, when the op that made it returns; views and
    in-place results share a storage and add nothing. The peak is read after each
    op, when its inputs are still alive: the moment an allocator needs both.
    """

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: Dict[int, weakref.ref] = {}

    def track(self, *tensors) -> None:
        """Register storages that exist already (parameters, state, inputs)."""
        for t in tree_flatten(tensors)[0]:
            if isinstance(t, torch.Tensor):
                self._add(t)
        self.peak = max(self.peak, self.live)

    def ignore(self, *tensors) -> None:
        """Register storages that exist already and are no memory of the device
        watched (a CUDA optimizer's step counters on the CPU): they count 0 bytes."""
        for t in tree_flatten(tensors)[0]:
            if isinstance(t, torch.Tensor):
                self._add(t, counted=False)

    def _add(self, t: torch.Tensor, counted: bool = True) -> None:
        st = t.untyped_storage()
        key = id(st)
        if key in self._refs and self._refs[key]() is st:
            return
        nbytes = st.nbytes() if counted else 0

        def freed(_ref, key=key, nbytes=nbytes):
            if self._refs.get(key) is _ref:
                del self._refs[key]
                self.live -= nbytes

        self._refs[key] = weakref.ref(st, freed)
        self.live += nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._add(t)
        self.peak = max(self.peak, self.live)
        return out


def logits(output):
    """The tensor the loss is taken on, classes on dim 1: the output,
    ``output["out"]`` (torchvision segmentation models return a dict), or a tuple's
    ``.logits`` or first element (GoogLeNet and Inception v3 add auxiliary logits
    in train mode).

    A Hugging Face ``ModelOutput`` (a dict with a ``.logits`` attribute): its
    ``.logits``; token logits ``(N, L, V)`` (classes last, as Hugging Face's own
    losses take them) are flattened to ``(N·L, V)`` — a view of the contiguous
    logits — so the loss is one cross-entropy over ``N·L`` tokens against a target
    of ``N·L`` class indices (an ``(N, L)`` target is reshaped to that).

    >>> from collections import OrderedDict
    >>> class Out(OrderedDict):  # a ModelOutput stand-in
    ...     logits = property(lambda self: self["logits"])
    >>> logits(Out(logits=torch.zeros(2, 5, 7))).shape
    torch.Size([10, 7])
    >>> logits({"out": torch.zeros(2, 3, 4, 4)}).shape
    torch.Size([2, 3, 4, 4])
    """
    if isinstance(output, dict) and hasattr(output, "logits"):  # transformers' ModelOutput
        out = output.logits
        return out.flatten(0, -2) if out.dim() > 2 else out
    if isinstance(output, dict):
        return output["out"]
    if isinstance(output, tuple):  # GoogLeNet/Inception in train mode: a namedtuple
        return output.logits if hasattr(output, "logits") else output[0]
    return output


def make_input(input_shape: Sequence[int], input_dtype=None, input_high=None,
               device="cpu") -> torch.Tensor:
    """The batch fed to the model: ``torch.randn(*input_shape)`` by default (float32);
    for an integer ``input_dtype`` (token ids), ``torch.randint(0, input_high, shape)``;
    on the meta device, an empty tensor of that shape and dtype.

    >>> make_input((2, 3), torch.long, 10).dtype, make_input((2, 3)).dtype
    (torch.int64, torch.float32)
    >>> make_input((2, 3), torch.long, 10, device="meta").device.type
    'meta'
    """
    dtype = input_dtype if input_dtype is not None else torch.get_default_dtype()
    shape = tuple(input_shape)
    integer = not (dtype.is_floating_point or dtype.is_complex)
    if integer and dtype is not torch.bool and input_high is None:
        raise ValueError(f"input_dtype={dtype}: give input_high (e.g. the vocabulary size), "
                         "the exclusive upper bound of the input's values")
    if torch.device(device).type == "meta":
        return torch.empty(shape, dtype=dtype, device=device)
    if dtype is torch.bool:
        return torch.randint(0, 2, shape, device=device).bool()
    if integer:
        return torch.randint(0, int(input_high), shape, dtype=dtype, device=device)
    return torch.randn(shape, dtype=dtype, device=device)


def loss_target(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``target`` with the shape of ``out`` less its class dim: an ``(N, L)`` token
    target for logits flattened to ``(N·L, V)`` (:func:`logits`) is reshaped."""
    shape = (out.shape[0], *out.shape[2:])
    if tuple(target.shape) != shape and target.numel() == out.numel() // out.shape[1]:
        target = target.reshape(shape)
    return target


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def tensor_attributes(model: nn.Module) -> Dict[tuple, torch.Tensor]:
    """``{(module, name): tensor}``: the plain tensors ``model``'s modules hold as
    attributes, neither parameter nor buffer (a cached mask, a constant table), which
    ``functional_call`` does not replace: the step needs them on its own device.

    >>> m = nn.Linear(2, 2); m.table = torch.zeros(3)
    >>> [(type(k[0]).__name__, k[1], tuple(v.shape)) for k, v in tensor_attributes(m).items()]
    [('Linear', 'table', (3,))]
    """
    return {(mod, k): v for mod in model.modules() for k, v in vars(mod).items()
            if isinstance(v, torch.Tensor) and not isinstance(v, nn.Parameter)}


@contextlib.contextmanager
def stand_ins(model: nn.Module, state: Dict[str, torch.Tensor], attributes=None):
    """``model`` with each parameter and buffer replaced by ``state[name]`` (names
    as ``named_parameters()``/``named_buffers()`` give them) and each plain tensor
    attribute by ``attributes[(module, name)]``, restored on exit.

    Unlike ``torch.func.functional_call``, a module reached by several paths (timm
    CoaT's shared ``cpe``/``crpe``) or a parameter held by several modules (tied
    embeddings) is swapped once per holder and restored to its original tensor:
    ``functional_call`` swaps a shared module once per path, reads the stand-in
    back as the "original" at the second path, and leaves it there on exit.

    >>> lin = nn.Linear(2, 2)
    >>> shared = nn.Sequential(lin, lin)
    >>> w = lin.weight
    >>> with stand_ins(shared, {"0.weight": torch.zeros(2, 2)}):
    ...     float(shared[1].weight.sum())
    0.0
    >>> shared[1].weight is w
    True
    """
    new = {}
    for name, t in (*model.named_parameters(), *model.named_buffers()):
        if name in state:
            new[id(t)] = state[name]
    undo = []
    try:
        for mod in model.modules():  # each module once, however many paths reach it
            for table in (mod._parameters, mod._buffers):
                for k, t in table.items():
                    if t is not None and id(t) in new:
                        undo.append((table, k, t))
                        table[k] = new[id(t)]
        for (mod, k), t in (attributes or {}).items():
            undo.append((mod.__dict__, k, mod.__dict__[k]))
            mod.__dict__[k] = t
        yield model
    finally:
        for table, k, t in reversed(undo):
            table[k] = t


#: How :func:`measure` runs the step: on fake CPU tensors, or on real ones.
HOWS = ("fake", "real")


def measure(model: nn.Module, input_shape: Sequence[int], *, how: str = "fake",
            batch_target=None, input_dtype=None, input_high=None,
            options=None) -> Dict[str, int]:
    """Measure one Adam training step of ``model`` on a batch of ``input_shape``.

    Trainable = parameters with ``requires_grad``. The loss is cross-entropy on the
    output (or ``output["out"]``) against class indices: ``batch_target`` if given
    (any tensor of the right shape), random otherwise. The step runs in train mode
    (batch statistics, dropout), on CPU copies of the parameters and buffers:
    ``how="fake"`` (the default) fake tensors of the CPU device (no memory, any
    size), ``how="real"`` real ones (random values; it must fit in memory).
    ``model`` keeps its weights, buffers, ``requires_grad`` flags and train/eval
    mode, and may live on the meta device. Returns the :data:`KEYS`. The batch:
    :func:`make_input` (float32 ``randn`` by default; ``input_dtype=torch.long,
    input_high=vocab_size`` for token ids).

    Three steps, each with one instrument on, so that none perturbs another's
    figure: the FLOP counter (the warm-up step: its update creates the Adam
    state), then, from the same state (gradients set to None), the live-bytes
    tracker (peak; forward, backward and Adam's update) and the saved-tensor hooks
    (forward only). The garbage collector is off meanwhile.

    ``options`` (:class:`complexity.cost.options.StepOptions`): the optimizer
    (state and update as ``torch.optim`` builds it), the parameters' dtype
    (floating parameters, buffers and a float input cast, as ``model.to(dtype)``),
    ``set_to_none=False`` (the peak step starts with zeroed gradient buffers) and
    ``grad_accum=K`` (the peak is watched over K micro-batches and the update;
    FLOPs are K forward and backward passes). A float16 autocast step is CUDA's: its
    forward is recorded on fake CUDA tensors and replayed on the step's fake CPU ones
    (:mod:`complexity.cost.cuda_replay`; ``how="fake"`` only, no checkpointing), and
    Adam's step counters, host memory on CUDA, are left out.
    """
    from complexity.cost.options import StepOptions
    from complexity.counting.hooks import mode

    if how not in HOWS:
        raise ValueError(f"how={how!r}: choose one of {', '.join(HOWS)}")
    options = options or StepOptions()
    _check_measurable(how, options)
    step = _Step(model, how, options)
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
            fwd_flops, bwd_flops, grad_bytes, target = _count_flops(step, x, target, opt)
            # a float16 (CUDA) step's counters on the host are no device memory
            opt_state, host = [], []
            for s in opt.state.values():
                for k, t in s.items():
                    if isinstance(t, torch.Tensor):
                        on_host = step.replay is not None and _on_host(opt, k)
                        (host if on_host else opt_state).append(t)
            peak = _watch_peak(step, x, target, opt, opt_state + step.scaler_state(), host)
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
    return {
        "param_bytes": _nbytes(step.params.values()),
        "grad_bytes": grad_bytes,
        "optimizer_bytes": _nbytes(opt_state),
        "saved_activation_bytes": saved_bytes,
        "peak_bytes": peak,
        "forward_flops": options.grad_accum * fwd_flops,
        "backward_flops": options.grad_accum * bwd_flops,
    }


class _Step:
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
                params = {n: _cpu_copy(p, fake, dtype, device)
                          for n, p in self.model.named_parameters()}
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
        from complexity.cost.checkpointing import checkpoint_modules, checkpointed

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
                return _forward_loss(self.model, x, target)
            with stand_ins(self.model, self.state, self.attributes):
                return _forward_loss(self.model, x, target)


def _forward_loss(model: nn.Module, x, target) -> tuple:
    """``(loss, target)``: cross-entropy of ``model(x)``'s logits against ``target``,
    drawn at random (class indices of the output's shape) when None."""
    out = logits(model(x))
    if target is None:  # warm-up: learn the output's shape
        target = torch.randint(0, out.shape[1], (out.shape[0], *out.shape[2:]),
                               device=out.device)
    target = loss_target(out, target)
    return F.cross_entropy(out, target), target


def _replay(model: nn.Module, state: dict, attributes: dict):
    """The float16 autocast forward of ``model``, traced on fake CUDA tensors and
    replayed on ``state`` and ``attributes`` (:class:`complexity.cost.cuda_replay.CudaReplay`)."""
    from complexity.cost.cuda_replay import CudaReplay

    def forward_loss(state, attributes, x, target):
        with stand_ins(model, state, attributes):
            return _forward_loss(model, x, target)

    return CudaReplay(forward_loss, state, attributes)


def _check_measurable(how: str, options) -> None:
    """``ValueError`` (one line) for a step ``how`` cannot measure: a float16 autocast
    step is CUDA's (replayed on fake tensors, :mod:`complexity.cost.cuda_replay`, which
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


def _on_host(opt, key: str) -> bool:
    """Whether the optimizer keeps state ``key`` of a CUDA parameter on the CPU:
    Adam's ``step`` counters, unless fused or capturable (``torch.optim.adam``'s
    ``_init_group``). They are no device memory."""
    return key == "step" and not (opt.defaults.get("fused") or opt.defaults.get("capturable"))


def _count_flops(step: _Step, x, target, opt) -> tuple:
    """Pass 1, FLOPs: the counter alone, around forward + loss, then backward;
    ``(forward FLOPs, backward FLOPs, gradient bytes, target)``."""
    from complexity.cost.flops import flop_counter

    # This is also the warm-up step: its Adam update creates the optimizer state
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


def _watch_peak(step: _Step, x, target, opt, opt_state, host=()) -> int:
    """Pass 2, the peak: the live-bytes tracker alone, around forward, backward
    (``grad_accum`` micro-batches) and the update, from the state pass 1 left;
    ``host``: state that is no device memory."""
    live = LiveBytes()
    live.ignore(list(host))
    live.track(list(step.state.values()), list(step.attributes.values()), opt_state, x, target,
               [p.grad for p in step.trainable if p.grad is not None])  # set_to_none=False
    with live:
        for _ in range(step.options.grad_accum):  # as a training loop writes it
            loss, _ = step.run(x, target)
            step.backward(loss)
        step.update(opt)
    del loss
    opt.zero_grad(set_to_none=True)
    return live.peak


def _saved_bytes(step: _Step, x, target) -> int:
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


def _cpu_copy(t: torch.Tensor, fake, dtype=None, device="cpu") -> torch.Tensor:
    """A CPU tensor of ``t``'s shape, strides, dtype and ``requires_grad``: fake
    (under ``fake``, already entered) or real. A real copy of a real tensor keeps
    its values; of a meta tensor it is initialised (weights ~ N(0, 0.01),
    ``running_var`` and other float buffers 1, integer buffers 0: values change
    neither bytes nor FLOPs). ``dtype``: floating tensors in that type instead."""
    cast = dtype if dtype is not None and t.dtype.is_floating_point else t.dtype
    if fake is not None:  # ``device``: fake CUDA tensors too
        copy = torch.empty_strided(t.shape, t.stride(), dtype=cast, device=device)
    elif t.device.type == "meta":
        copy = torch.empty_strided(t.shape, t.stride(), dtype=cast, device="cpu")
        with torch.no_grad():
            if not t.dtype.is_floating_point:
                copy.zero_()
            elif isinstance(t, nn.Parameter):
                copy.normal_(0, 0.01)
            else:
                copy.fill_(1)
    else:
        copy = t.detach().to("cpu", cast, copy=True)
    return copy.requires_grad_(t.requires_grad) if t.requires_grad else copy
