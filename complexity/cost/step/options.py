"""How a training step is run: the choices people make when they fine-tune, one
object that :func:`complexity.cost.predict.prediction.predict` and
:func:`complexity.cost.measure.cpu_step.measure` both take.

* ``optimizer`` — :class:`complexity.cost.step.optimizers.Optimizer` (SGD, SGD with
  momentum, Adam, AdamW; for-loop, ``foreach`` or ``fused``);
* ``dtype`` — the type parameters (and the input) are stored in;
* ``autocast`` — ``torch.autocast`` around forward and loss: float32 master
  weights, matrix products in bfloat16 or float16 (the casted weight copies are
  cached for the forward);
* ``checkpoint`` — a glob of module names run under
  ``torch.utils.checkpoint.checkpoint(use_reentrant=False)``: their activations
  are recomputed during backward instead of kept;
* ``set_to_none`` — ``optimizer.zero_grad(set_to_none=...)``: with False the
  gradient buffers stay allocated (zeros) through the next forward and backward;
* ``grad_accum`` — K micro-batches of the given batch per optimizer step: the
  gradients live through every micro-batch after the first, and one optimizer
  step costs K forward and backward passes;
* ``grad_scaler`` — loss scaling with ``torch.amp.GradScaler``:
  ``scaler.scale(loss).backward(); scaler.step(opt); scaler.update()`` (its
  ``scale`` and ``growth_tracker`` resident, the scaled loss and the unscaling's
  two scalars around backward and the update).

>>> StepOptions().label()
'adam, float32'
>>> StepOptions(autocast="bfloat16", checkpoint="layer*", grad_accum=4).label()
'adam, float32, autocast bfloat16, checkpoint layer*, grad-accum 4'
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

from complexity.cost.step.optimizers import Optimizer

#: Parameter dtypes and autocast dtypes a step can be run in.
DTYPES = ("float32", "bfloat16", "float16")
AUTOCAST = ("bfloat16", "float16")


@dataclass(frozen=True)
class StepOptions:
    """One training step's settings; the default is the course's: Adam(foreach=False),
    float32, no autocast, no checkpointing, gradients set to None, no accumulation."""

    optimizer: Optimizer = field(default_factory=Optimizer)
    dtype: str = "float32"
    autocast: Optional[str] = None
    checkpoint: Optional[str] = None
    set_to_none: bool = True
    grad_accum: int = 1
    grad_scaler: bool = False

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")
        if self.autocast is not None and self.autocast not in AUTOCAST:
            raise ValueError(f"autocast {self.autocast!r}: choose one of {', '.join(AUTOCAST)}")
        if self.autocast is not None and self.dtype != "float32":
            raise ValueError(f"autocast {self.autocast} keeps float32 master weights: "
                             f"it does not combine with dtype {self.dtype}")
        if isinstance(self.grad_accum, bool) or not isinstance(self.grad_accum, int) \
                or self.grad_accum < 1:
            raise ValueError(f"grad_accum {self.grad_accum!r}: give an integer >= 1")
        if not isinstance(self.grad_scaler, bool):
            raise ValueError(f"grad_scaler {self.grad_scaler!r}: give True or False")

    @property
    def grads_resident(self) -> bool:
        """Whether gradient buffers exist before the measured forward begins."""
        return not self.set_to_none or self.grad_accum > 1

    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    def autocast_dtype(self):
        import torch

        return None if self.autocast is None else getattr(torch, self.autocast)

    def label(self) -> str:
        """A short text naming every setting that differs from the course's step."""
        words = [self.optimizer.label(), self.dtype]
        if self.autocast:
            words.append(f"autocast {self.autocast}")
        if self.checkpoint:
            words.append(f"checkpoint {self.checkpoint}")
        if not self.set_to_none:
            words.append("zero-grad (set_to_none=False)")
        if self.grad_accum > 1:
            words.append(f"grad-accum {self.grad_accum}")
        if self.grad_scaler:
            words.append("grad-scaler")
        return ", ".join(words)

    def to_dict(self) -> dict:
        """The JSON form: every setting by name.

        >>> StepOptions().to_dict()["optimizer"]
        {'name': 'adam', 'foreach': False, 'fused': False}
        """
        extra = {"grad_scaler": True} if self.grad_scaler else {}  # the default adds no key
        return {"optimizer": {"name": self.optimizer.name, "foreach": self.optimizer.foreach,
                              "fused": self.optimizer.fused},
                "dtype": self.dtype, "autocast": self.autocast, "checkpoint": self.checkpoint,
                "set_to_none": self.set_to_none, "grad_accum": self.grad_accum, **extra}

    def with_(self, **changes) -> "StepOptions":
        """A copy with ``changes``.

        >>> StepOptions().with_(dtype="bfloat16").dtype
        'bfloat16'
        """
        return replace(self, **changes)
