"""How a training step is run: the choices people make when they fine-tune, one
object that :func:`complexity.cost.predict.prediction.predict` and
:func:`complexity.cost.measure.cpu_step.measure` both take.

* ``optimizer`` — :class:`complexity.cost.step.optimizers.Optimizer` (SGD, SGD with
  momentum, Adam, AdamW, Adafactor; for-loop, ``foreach`` or ``fused``);
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

    def label(self, loss=None) -> str:
        """A short text naming every setting that differs from the course's step;
        with ``loss`` (:class:`complexity.cost.step.batch.Loss`, the model's:
        :func:`~complexity.cost.step.batch.loss_of`), the model's own loss too
        (cross-entropy, the default, goes without saying).

        >>> from complexity.cost.step.batch import Loss
        >>> StepOptions().label(Loss(own=True, task="causal-lm", high=10))
        "adam, float32, loss: the model's own (labels=)"
        >>> StepOptions().label(Loss())
        'adam, float32'
        """
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
        if loss is not None and loss.own:
            words.append("loss: " + loss.label())
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


def step_options(optimizer: str = "adam", *, foreach: Optional[bool] = None, fused: bool = False,
                 dtype: str = "float32", autocast: Optional[str] = None,
                 checkpoint: Optional[str] = None, set_to_none: bool = True,
                 grad_accum: int = 1, grad_scaler: bool = False,
                 device: str = "cpu") -> StepOptions:
    """The :class:`StepOptions` of a step's settings as ``finetune`` and ``fit`` take
    them: ``optimizer`` by name (``"sgd"``, ``"sgd-momentum"``, ``"adam"``,
    ``"adamw"``, ``"adafactor"``), ``foreach`` None for PyTorch's default on ``device`` (the
    multi-tensor update on CUDA unless ``fused``, the for-loop on the CPU).
    :class:`~complexity.errors.OptionError` naming the parameter for settings that
    do not go together.

    >>> step_options("sgd-momentum", checkpoint="0").label()
    'sgd-momentum, float32, checkpoint 0'
    >>> step_options(device="cuda").optimizer.foreach
    True
    >>> step_options(dtype="bfloat16", autocast="float16")
    Traceback (most recent call last):
    ...
    complexity.errors.OptionError: autocast='float16': autocast float16 keeps float32 master weights: it does not combine with dtype bfloat16
    """
    from complexity.errors import NAMED, Given, OptionError, literal

    if foreach is None:  # Adafactor runs its for-loop unless told (torch/optim/_adafactor.py)
        foreach = device == "cuda" and not fused and optimizer != "adafactor"
    try:
        options = StepOptions(optimizer=Optimizer(optimizer, foreach=bool(foreach), fused=fused),
                              dtype=dtype, autocast=autocast, checkpoint=checkpoint,
                              set_to_none=set_to_none, grad_accum=grad_accum,
                              **({"grad_scaler": True} if grad_scaler else {}))
    except ValueError as e:
        if not autocast:
            raise
        raise OptionError("{autocast}: " + literal(str(e)),
                          autocast=Given(autocast, str(autocast))) from None
    if checkpoint is not None and not checkpoint.strip():
        raise OptionError("{checkpoint}: give a glob of module names, e.g. 'layer*'",
                          checkpoint=NAMED)
    return options


def check_measurement(options: StepOptions, how: Optional[str]) -> None:
    """Can a step with ``options`` be measured ``how`` (``"fake"``, ``"real"`` or None
    for prediction only)? :class:`~complexity.errors.OptionError` naming the
    parameters when not.

    >>> check_measurement(StepOptions(grad_scaler=True), "fake")
    Traceback (most recent call last):
    ...
    complexity.errors.OptionError: grad_scaler cannot run on fake tensors (GradScaler.step reads found_inf.item()); use measure='real' or measure=None
    """
    from complexity.errors import NAMED, Given, OptionError

    if how not in ("fake", "real", None):
        raise OptionError("{measure}: choose 'fake', 'real' or None", measure=how)
    f16 = Given("float16", "float16")
    if options.autocast == "float16" and how == "real":
        raise OptionError("{autocast} cannot run for real on the CPU (no float16 autocast "
                          "kernels there); use {measure} (its forward recorded on fake CUDA "
                          "tensors) or {bf16}", autocast=f16, measure=Given("fake", "fake"),
                          bf16=Given("bfloat16", "bfloat16", parameter="autocast"))
    if options.autocast == "float16" and options.checkpoint and how is not None:
        raise OptionError("{autocast} with {checkpoint} can be predicted only (use {measure}): "
                          "the float16 step is measured by replaying its recorded CUDA forward, "
                          "which recomputes no checkpointed segment", autocast=f16,
                          checkpoint=NAMED, measure=Given(None, "none"))
    if options.grad_scaler and how == "fake":
        raise OptionError("{grad_scaler} cannot run on fake tensors (GradScaler.step reads "
                          "found_inf.item()); use {measure} or {none}", grad_scaler=NAMED,
                          measure=Given("real", "real"),
                          none=Given(None, "none", parameter="measure"))
