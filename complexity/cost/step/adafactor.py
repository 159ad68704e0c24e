"""``torch.optim.Adafactor``'s memory: its state and the temporaries of its update,
read off ``torch/optim/_adafactor.py`` (PyTorch 2.14; default hyper-parameters, so
no weight decay and no ``maximize``).

State per parameter of shape ``(..., m, n)`` and item size ``e`` (the parameter's
dtype): a float32 ``step`` scalar, on the CPU whatever the parameter's device
(``_init_group``: "deliberately host `step` on CPU"); ``row_var`` of shape
``(..., m, 1)`` and ``col_var`` of ``(..., 1, n)`` when it has two or more
dimensions, else ``variance`` of its own shape.

The update's temporaries are played out on :class:`_Bindings`, a model of Python's
names and the tensors they hold: a tensor is freed when nothing binds it, and the
step's live bytes are read after every op that allocates (as
:class:`complexity.cost.measure.live_bytes.LiveBytes` reads them: the op's inputs
still alive). ``_single_tensor_adafactor`` (the for-loop, PyTorch's default for
Adafactor on every device) binds ``row_mean``, ``col_mean``, ``var_estimate``,
``update`` and ``grad_squared`` per parameter; a name stays bound into the next
iteration until it is bound again, and ``update`` is bound to the previous
``var_estimate`` until the new one is made. ``_multi_tensor_adafactor`` (foreach)
makes each list at once for a group (one device and dtype; the matrices and the
vectors are separate groups, in the order their first member comes) and deletes
all but ``var_estimates``/``updates``, which stay bound into the next group.

Checked against a real ``step()`` under ``LiveBytes`` (``tests/test_cost_optimizers.py``).

>>> from complexity.cost.step.optimizers import TensorBytes
>>> w, b = TensorBytes(8192, (64, 32)), TensorBytes(512, (128,))
>>> state_bytes([w, b])  # rows 256 + columns 128; variance 512; two steps
904
>>> # w: row_mean 256, col_mean 128, var_estimate 8192; then b's grad_squared 512 and
>>> # var_estimate 512 while w's var_estimate is still bound to `update`
>>> step_temporaries([w, b], foreach=False)
9600
"""
from __future__ import annotations

import contextlib
from typing import Dict, List, Optional, Sequence

#: Bytes of the ``step`` counter: a float32 scalar per parameter, on the CPU.
STEP_BYTES = 4


def _shaped(sizes: Sequence[int]):
    for t in sizes:
        if not hasattr(t, "shape"):
            raise ValueError("adafactor's state depends on each parameter's shape: give "
                             "sizes as TensorBytes (bytes and shape)")
    return sizes


def _prod(dims) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def _factors(t):
    """``(row bytes, column bytes, bytes of row_var.mean(dim=-2))`` of a matrix-like
    parameter (two or more dimensions); None for a vector or a scalar."""
    sh, e = t.shape, t.itemsize
    if len(sh) < 2:
        return None
    return e * _prod(sh[:-1]), e * _prod(sh[:-2]) * sh[-1], e * _prod(sh[:-2])


def state_bytes(sizes: Sequence[int], device_type: str = "cpu") -> int:
    """Bytes of Adafactor's state for trainable tensors ``sizes``
    (:class:`~complexity.cost.step.optimizers.TensorBytes`) on ``device_type``: the
    ``step`` counters count only on the CPU, where they live."""
    total = 0
    for t in _shaped(sizes):
        f = _factors(t)
        total += int(t) if f is None else f[0] + f[1]
        total += STEP_BYTES if device_type == "cpu" else 0
    return total


class _Bindings:
    """Python names bound to objects (a tensor, or a list of tensors), the bytes
    alive and the most ever read: an object lives while a name binds it (or while
    the statement that makes it runs). ``events``: the tensors made and freed, in
    order (``("malloc", block, bytes)``, ``("free", block, bytes)``), for an
    allocator to replay."""

    def __init__(self):
        self.names: Dict[str, int] = {}
        self.blocks: Dict[int, List[tuple]] = {}
        self.events: List[tuple] = []
        self.live = self.peak = 0

    def read(self, extra: int = 0, kind: str = "scalar") -> None:
        """A scalar of ``extra`` bytes made and dropped by one op (``kind`` "host":
        in host memory whatever the parameters' device)."""
        self.peak = max(self.peak, self.live + extra)
        if extra:
            block = (kind, len(self.events))
            self.events += [("malloc", block, extra), ("free", block, extra)]

    def new(self, nbytes: Optional[int] = None) -> int:
        """An object (a tensor of ``nbytes``; None: an empty list to :meth:`grow`)."""
        obj = len(self.blocks) + 1
        self.blocks[obj] = []
        if nbytes is not None:
            self.grow(obj, nbytes)
        return obj

    def grow(self, obj: int, nbytes: int) -> None:
        """``obj`` holds one more tensor of ``nbytes``: read after the op that made it."""
        block = (obj, len(self.blocks[obj]))
        self.blocks[obj].append((block, nbytes))
        self.events.append(("malloc", block, nbytes))
        self.live += nbytes
        self.read()

    def bind(self, name: str, obj) -> None:
        old = self.names.pop(name, None)
        if obj is not None:
            self.names[name] = obj
        if old is not None and old not in self.names.values():
            self.free(old)

    def free(self, obj: int) -> None:
        """``obj`` dropped: no name binds it, or its statement ended."""
        for block, nbytes in self.blocks[obj]:
            self.events.append(("free", block, nbytes))
            self.live -= nbytes

    def end(self) -> "_Bindings":
        """The function returns: its locals go."""
        for name in list(self.names):
            self.bind(name, None)
        return self


def _loop(sizes: Sequence[int]) -> _Bindings:
    """The for-loop update, played."""
    b = _Bindings()
    for t in sizes:
        e, f = t.itemsize, _factors(t)
        b.read(e)  # param.norm(2).item(): a scalar of the parameter's dtype
        if f is not None:
            b.bind("row_mean", b.new(f[0]))  # vector_norm(grad, dim=-1, keepdim=True)
            b.bind("col_mean", b.new(f[1]))  # vector_norm(grad, dim=-2, keepdim=True)
            b.bind("var_estimate", b.new(int(t)))  # row_var @ col_var
            b.read(f[2])  # var_estimate.div_(row_var.mean(dim=-2, keepdim=True)...)
        else:
            b.bind("grad_squared", b.new(int(t)))  # grad * grad
            b.bind("var_estimate", b.new(int(t)))  # variance.clone()
        b.bind("update", b.names["var_estimate"])  # var_estimate.clamp_(...).rsqrt_()
        b.read(e)  # update.norm(2).item()
    return b.end()


def _groups(sizes: Sequence[int]) -> List[List[int]]:
    """The foreach update's groups: per item size (dtype), matrices and vectors
    apart, in the order their first member comes."""
    groups: Dict[tuple, List[int]] = {}
    for t in sizes:
        groups.setdefault((t.itemsize, len(t.shape) > 1), []).append(t)
    by_dtype: Dict[int, List[List[int]]] = {}
    for (e, _), g in groups.items():
        by_dtype.setdefault(e, []).append(g)
    return [g for gs in by_dtype.values() for g in gs]


def _foreach(sizes: Sequence[int]) -> _Bindings:
    """The multi-tensor (foreach) update, played."""
    b = _Bindings()
    for group in _groups(sizes):
        b.read(STEP_BYTES, "host")  # torch.tensor(1.0) added to the CPU step counters
        for t in group:
            b.read(t.itemsize)  # p.norm(2).item() per parameter
        if _factors(group[0]) is not None:
            for k in (0, 1):  # row_means, then col_means: made, used in place, deleted
                means = b.new()
                for t in group:
                    b.grow(means, _factors(t)[k])
                b.free(means)
            estimates = b.new()
            for t in group:
                b.grow(estimates, int(t))  # row_var @ col_var
            row_var_means = b.new()
            for t in group:
                b.grow(row_var_means, _factors(t)[2])
            b.free(row_var_means)
        else:
            squared = b.new()  # torch._foreach_mul(grads, grads): one op makes them all
            b.blocks[squared] = [((squared, i), int(t)) for i, t in enumerate(group)]
            b.events += [("malloc", k, n) for k, n in b.blocks[squared]]
            b.live += sum(int(t) for t in group)
            b.read()
            b.free(squared)
            estimates = b.new()
            for t in group:
                b.grow(estimates, int(t))  # v.clone()
        b.bind("var_estimates", estimates)
        b.bind("updates", estimates)
        for t in group:
            b.read(t.itemsize)  # update.norm(2).item() per parameter
    return b.end()


def step_temporaries(sizes: Sequence[int], foreach: bool = False) -> int:
    """The most bytes Adafactor's update allocates beyond its state and the
    gradients, for trainable tensors ``sizes`` (:class:`TensorBytes`) in the
    optimizer's order."""
    return (_foreach if foreach else _loop)(_shaped(sizes)).peak


def step_events(sizes: Sequence[int], foreach: bool = False) -> List[tuple]:
    """The tensors Adafactor's update makes and frees, in order, as
    ``("malloc" | "free", block, bytes)``: what a caching allocator sees
    (:func:`complexity.cost.fit.allocator.replay_step`). The ``step`` increment's
    ``torch.tensor(1.0)`` of the foreach update is host memory and left out."""
    b = (_foreach if foreach else _loop)(_shaped(sizes))
    return [e for e in b.events if e[1][0] != "host"]


def state_blocks(sizes: Sequence[int]) -> List[int]:
    """The state's tensors on a GPU, in the order the first step makes them:
    ``row_var`` and ``col_var`` per matrix, ``variance`` per vector (the ``step``
    counters stay on the host)."""
    out: List[int] = []
    for t in _shaped(sizes):
        f = _factors(t)
        out += [int(t)] if f is None else [f[0], f[1]]
    return out


@contextlib.contextmanager
def fake_scalars(opt, fake: bool):
    """Around ``opt.step()`` on fake tensors: Adafactor reads Python numbers off its
    tensors (``step_t.item()``, ``param.norm(2).item()``: the relative step size,
    the update's clipping), which fake tensors do not hold; each reads 1.0 there.
    The tensors its update makes do not depend on those numbers, only their values
    do. Nothing changes for another optimizer or for real tensors."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensor

    if not fake or not isinstance(opt, getattr(torch.optim, "Adafactor", ())):
        yield
        return
    item = torch.Tensor.item

    def read(t):
        return 1.0 if isinstance(t, FakeTensor) else item(t)

    torch.Tensor.item = read
    try:
        yield
    finally:
        torch.Tensor.item = item
