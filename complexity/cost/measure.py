"""The cost of one training step, measured on a fake copy of the model.

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

import weakref
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

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

    def _add(self, t: torch.Tensor) -> None:
        st = t.untyped_storage()
        key = id(st)
        if key in self._refs and self._refs[key]() is st:
            return
        nbytes = st.nbytes()

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
    """The tensor the loss is taken on: the output, ``output["out"]``
    (torchvision segmentation models return a dict), or a tuple's ``.logits`` or
    first element (GoogLeNet and Inception v3 add auxiliary logits in train mode)."""
    if isinstance(output, dict):
        return output["out"]
    if isinstance(output, tuple):  # GoogLeNet/Inception in train mode: a namedtuple
        return output.logits if hasattr(output, "logits") else output[0]
    return output


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def measure(model: nn.Module, input_shape: Sequence[int], *, batch_target=None) -> Dict[str, int]:
    """Measure one Adam training step of ``model`` on a batch of ``input_shape``.

    Trainable = parameters with ``requires_grad``. The loss is cross-entropy on the
    output (or ``output["out"]``) against class indices: ``batch_target`` if given
    (any tensor of the right shape), random otherwise. The step runs in train mode
    (batch statistics, dropout), after one warm-up step that creates the Adam state,
    on fake copies of the parameters: ``model`` keeps its weights, buffers,
    ``requires_grad`` flags and train/eval mode. Returns the :data:`KEYS`.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.func import functional_call

    from complexity.cost.flops import flop_counter
    from complexity.counting.hooks import mode

    fake = FakeTensorMode()
    params = {n: fake.from_tensor(p) for n, p in model.named_parameters()}
    buffers = {n: fake.from_tensor(b) for n, b in model.named_buffers()}
    trainable = [p for p in params.values() if p.requires_grad]
    if not trainable:
        raise ValueError("no parameter of the model requires grad: nothing to train")
    state = {**params, **buffers}
    param_storages = {id(t.untyped_storage()) for t in state.values()}

    def step(x, target):
        out = logits(functional_call(model, state, (x,)))
        if target is None:  # warm-up: learn the output's shape
            target = torch.randint(0, out.shape[1], (out.shape[0], *out.shape[2:]),
                                   device=out.device)
        target = target.to(out.device, torch.long)  # class indices
        return F.cross_entropy(out, target), target

    with mode(model, True), fake:
        # on the device of the model's parameters ('meta' for a meta model)
        x = torch.randn(*input_shape, device=trainable[0].device)
        opt = torch.optim.Adam(trainable, lr=1e-3, foreach=False)
        target = fake.from_tensor(batch_target) if batch_target is not None else None
        loss, target = step(x, target)  # warm-up step: Adam state exists afterwards
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        del loss

        saved: Dict[int, int] = {}

        def pack(t):
            st = t.untyped_storage()
            if id(st) not in param_storages:
                saved[id(st)] = st.nbytes()
            return t

        opt_state = [t for s in opt.state.values() for t in s.values()
                     if isinstance(t, torch.Tensor)]
        live = LiveBytes()
        live.track(list(state.values()), opt_state, x, target)
        with live:
            with flop_counter() as fwd_counter:
                with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                    loss, _ = step(x, target)
            with flop_counter() as bwd_counter:
                loss.backward()
            opt.step()
        grads = [p.grad for p in trainable]
    return {
        "param_bytes": _nbytes(params.values()),
        "grad_bytes": _nbytes(g for g in grads if g is not None),
        "optimizer_bytes": _nbytes(opt_state),
        "saved_activation_bytes": sum(saved.values()),
        "peak_bytes": live.peak,
        "forward_flops": fwd_counter.get_total_flops(),
        "backward_flops": bwd_counter.get_total_flops(),
    }


def measure_cuda_peak(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Peak bytes of one real Adam step on the GPU, ``torch.cuda.max_memory_allocated``
    (the caching allocator's view: 512-byte rounding, cuDNN workspaces and cuDNN's
    own saved tensors included, unlike :func:`measure`). Steps as :func:`measure`
    does, on a copy of ``model`` with uninitialised weights; needs a CUDA device."""
    import copy

    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA device is available")
    device = torch.device("cuda")
    net = copy.deepcopy(model).to_empty(device=device)  # works for meta models too
    for (_, p), (_, q) in zip(model.named_parameters(), net.named_parameters()):
        q.requires_grad_(p.requires_grad)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.01)
        for name, b in net.named_buffers():
            b.fill_(1 if name.endswith("running_var") else 0)
    net.train()
    trainable = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=1e-3, foreach=False)
    x = torch.randn(*input_shape, device=device)
    target = None
    for step in range(2):  # the first creates the Adam state; the second is measured
        if step == 1:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        out = logits(net(x))
        if target is None:
            target = torch.randint(0, out.shape[1], (out.shape[0], *out.shape[2:]), device=device)
        loss = F.cross_entropy(out, target)
        del out
        loss.backward()
        opt.step()
        if step == 0:
            opt.zero_grad(set_to_none=True)
            del loss
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del net, opt, x, target, trainable
    torch.cuda.empty_cache()
    return peak
