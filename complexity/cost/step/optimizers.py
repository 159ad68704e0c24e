"""The optimizer's part of one training step: the state it keeps per trainable
tensor and the temporaries its update allocates.

Read off ``torch/optim/sgd.py``, ``adam.py`` and ``adamw.py`` (PyTorch 2.x), with
their default hyper-parameters (SGD and Adam: no weight decay; AdamW: decoupled
weight decay, ``param.mul_(1 - lr·wd)``, in place):

* **state** (kept between steps): SGD none; SGD with momentum one
  ``momentum_buffer`` per parameter (a clone of the first gradient); Adam and
  AdamW ``exp_avg`` and ``exp_avg_sq`` (a parameter's size each) and a float32
  scalar ``step`` — on the CPU unless the update is fused (``_init_group``: the
  step lives on the parameter's device only for ``fused`` or ``capturable``).
* **temporaries** of the update, once the state exists: none for SGD (in-place
  ``add_``/``mul_``) and for the fused Adam kernels; the for-loop Adam
  (``foreach=False``) computes ``denom = (exp_avg_sq.sqrt() / c).add_(eps)`` per
  parameter — two tensors of its size alive at once, while the previous
  parameter's ``denom`` is still bound; the multi-tensor Adam (``foreach=True``,
  PyTorch's default on CUDA) takes ``exp_avg_sq_sqrt = torch._foreach_sqrt(...)``
  over the whole list — one list-wide temporary the size of every trainable
  tensor together (per dtype and device group; one group is assumed).
* **Adafactor** (``torch/optim/_adafactor.py``, PyTorch >= 2.5; defaults, so no
  weight decay; no fused update): a float32 ``step`` per parameter, always on the
  CPU, and factored second moments in the parameter's dtype — for a parameter of
  two or more dimensions ``row_var`` (its shape, the last size made 1) and
  ``col_var`` (the last but one made 1), else ``variance`` (its own shape). The
  state depends on shapes, not byte counts: Adafactor takes :class:`TensorBytes`.
  Its update's temporaries are played statement by statement
  (:mod:`complexity.cost.step.adafactor`), Python's bindings included: the
  for-loop's locals (``row_mean``, ``col_mean``, ``var_estimate``, ``update``,
  ``grad_squared``) stay bound into the next parameter's iteration.

Each figure is checked against a real ``optimizer.step()`` watched by
:class:`complexity.cost.measure.live_bytes.LiveBytes` (``tests/test_cost_optimizers.py``).

>>> adam = Optimizer("adam")
>>> adam.state_bytes([400, 40]), adam.step_temporaries([400, 40])
(888, 800)
>>> Optimizer("adam", foreach=True).step_temporaries([400, 40])
440
>>> Optimizer("sgd-momentum").state_bytes([400, 40]), Optimizer("sgd").state_bytes([400, 40])
(440, 0)
>>> ada = Optimizer("adafactor")  # a float32 10x4 matrix: 10 rows + 4 columns + step
>>> ada.state_bytes([TensorBytes(160, (10, 4)), TensorBytes(40, (10,))])
104
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

#: The optimizers a step can be predicted and measured with.
NAMES = ("sgd", "sgd-momentum", "adam", "adamw", "adafactor")

#: Bytes of Adam's ``step`` counter: a float32 scalar tensor per parameter.
STEP_BYTES = 4


class TensorBytes(int):
    """A trainable tensor's bytes that also carry its ``shape``: all most optimizers
    need is the byte count, Adafactor's state also needs the shape.

    >>> t = TensorBytes(160, (10, 4))
    >>> t + 0, t.shape, t.itemsize
    (160, (10, 4), 4)
    """

    def __new__(cls, nbytes: int, shape: Sequence[int]):
        self = super().__new__(cls, nbytes)
        self.shape = tuple(int(d) for d in shape)
        return self

    def __getnewargs__(self):
        return int(self), self.shape

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def itemsize(self) -> int:
        return int(self) // self.numel if self.numel else 0


@dataclass(frozen=True)
class Optimizer:
    """One optimizer as a training loop builds it: ``name`` (:data:`NAMES`),
    ``foreach`` (the multi-tensor update) and ``fused`` (one kernel per step; SGD
    and Adam(W) have one on CPU and CUDA). ``lr`` only matters for SGD, which has
    no default."""

    name: str = "adam"
    foreach: bool = False
    fused: bool = False

    def __post_init__(self):
        if self.name not in NAMES:
            raise ValueError(f"optimizer {self.name!r}: choose one of {', '.join(NAMES)}")
        if self.foreach and self.fused:
            raise ValueError("an optimizer is foreach or fused, not both")
        if self.fused and self.name == "adafactor":
            raise ValueError("adafactor has no fused update: use foreach or the for-loop")

    @property
    def adam(self) -> bool:
        return self.name in ("adam", "adamw")

    def label(self) -> str:
        """``'adam'``, ``'adamw (foreach)'``, ``'sgd-momentum (fused)'`` …"""
        how = " (foreach)" if self.foreach else " (fused)" if self.fused else ""
        return self.name + how

    def state_bytes(self, sizes: Sequence[int], device_type: str = "cpu") -> int:
        """Bytes of state kept for trainable tensors of ``sizes`` bytes each, on
        ``device_type`` (Adam's ``step`` counters sit on the CPU unless fused)."""
        if self.name == "sgd":
            return 0
        if self.name == "sgd-momentum":
            return sum(sizes)
        if self.name == "adafactor":
            from complexity.cost.step.adafactor import state_bytes

            return state_bytes(sizes, device_type)
        steps = STEP_BYTES * len(sizes) if (device_type == "cpu" or self.fused) else 0
        return 2 * sum(sizes) + steps

    def step_temporaries(self, sizes: Sequence[int]) -> int:
        """The most bytes the update allocates beyond the state and the gradients,
        for trainable tensors of ``sizes`` bytes each in the optimizer's order."""
        if self.name == "adafactor":
            from complexity.cost.step.adafactor import step_temporaries

            return step_temporaries(sizes, self.foreach)
        if not self.adam or self.fused:
            return 0
        if self.foreach:
            return sum(sizes)
        prev, worst = 0, 0
        for n in sizes:  # sqrt and its quotient, while the previous denom is bound
            worst, prev = max(worst, prev + 2 * n), n
        return worst

    def make(self, params, lr: float = 1e-3):
        """The ``torch.optim`` optimizer over ``params``."""
        import torch

        how = {"foreach": self.foreach, "fused": self.fused or None}
        if self.name == "sgd":
            return torch.optim.SGD(params, lr=lr, **how)
        if self.name == "sgd-momentum":
            return torch.optim.SGD(params, lr=lr, momentum=0.9, **how)
        if self.name == "adafactor":  # lr only sets Adafactor's largest relative step
            return torch.optim.Adafactor(params, foreach=self.foreach)
        cls = torch.optim.Adam if self.name == "adam" else torch.optim.AdamW
        return cls(params, lr=lr, **how)


def parse(text: str, foreach: bool = False, fused: bool = False) -> Optimizer:
    """An :class:`Optimizer` from the command line's words; ``ValueError`` (one line)
    for an unknown name or both ``foreach`` and ``fused``.

    >>> parse("adamw", foreach=True).label()
    'adamw (foreach)'
    """
    return Optimizer(text.strip().lower(), foreach=foreach, fused=fused)
