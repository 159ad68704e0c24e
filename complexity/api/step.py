"""``complexity.step_cost``: memory and FLOPs of one training step with every
option of the ``finetune`` command, predicted and measured, as a :class:`StepCost`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Union

from complexity.api.models import input_shape_of, resolve_model




@dataclass
class StepCost:
    """Memory and FLOPs of one training step (forward, cross-entropy, backward,
    ``optimizer.step()``; ``step`` names its options, ``options`` holds them as
    ``finetune``'s JSON does): ``predicted`` from the model's structure and
    ``measured`` on fake or real tensors (``measured_how``; None when not
    measured), each with the keys of
    :data:`complexity.cost.keys.KEYS`, in bytes and FLOPs. ``unmodelled``: calls
    with no rule; when non-empty, the predicted saved, peak and FLOP values are
    approximate (≈), not bounds.

    >>> from models.stack import Stack
    >>> c = step_cost(Stack(2, 4), (1, 4, 8, 8), trainable="last", measure=False)
    >>> c.trainable_params, c.predicted["grad_bytes"], c.measured
    (10, 40, None)
    """

    model: str
    input: List[int]
    trainable: Optional[str]
    trainable_params: int
    predicted: Dict[str, int]
    measured: Optional[Dict[str, int]]
    unmodelled: List[str]
    step: str = "adam, float32"
    options: Optional[Dict[str, Any]] = None
    measured_how: Optional[str] = None

    def errors(self) -> Optional[Dict[str, float]]:
        """(predicted − measured) / measured per quantity, in percent (None if not measured)."""
        if self.measured is None:
            return None
        out = {}
        for q, m in self.measured.items():
            p = self.predicted[q]
            out[q] = (0.0 if p == 0 else float("inf")) if m == 0 else 100.0 * (p - m) / m
        return out

    def to_dict(self) -> Dict[str, Any]:
        return {"model": self.model, "input": list(self.input), "trainable": self.trainable,
                "trainable_params": self.trainable_params, "predicted": dict(self.predicted),
                "unmodelled": list(self.unmodelled),
                "measured": None if self.measured is None else dict(self.measured),
                "step": self.step, "options": self.options, "measured_how": self.measured_how}

    def table(self, tablefmt: str = "simple") -> str:
        """One row per quantity: predicted, measured, error."""
        from tabulate import tabulate

        from complexity.cost.predict.prediction import mark

        errors = self.errors() or {}
        rows = []
        for q, p in self.predicted.items():
            bound = mark(q, self.unmodelled)
            m = self.measured[q] if self.measured else None
            rows.append([q, bound + f"{p:,}", "" if m is None else f"{m:,}",
                         "" if m is None else f"{errors[q]:+.2f}%"])
        return tabulate(rows, headers=["quantity", "predicted", "measured", "error"],
                        tablefmt=tablefmt, disable_numparse=True,
                        colalign=("left", "right", "right", "right"))

    def __str__(self) -> str:
        what = self.trainable if self.trainable is not None else "requires_grad as set"
        on = "real CPU tensors" if self.measured_how == "real" else "fake tensors"
        how = (f"predicted from structure, measured on {on}" if self.measured
               else "predicted from structure (not measured)")
        head = (f"{self.model}, input {'×'.join(map(str, self.input))}, trainable: {what} "
                f"({self.trainable_params:,} parameters) — one step ({self.step}), bytes and "
                "FLOPs; " + how)
        if self.unmodelled:
            head += (f"\n≈ (unmodelled: {', '.join(self.unmodelled)}): the predicted "
                     "values marked ≈ are approximate, not bounds")
        return head + "\n\n" + self.table()


def step_cost(model, input_shape: Optional[Sequence[int]] = None,
              trainable: Optional[str] = "full", measure: Union[bool, str, None] = True, *,
              input_dtype=None, input_high=None, model_args: Optional[Dict[str, Any]] = None,
              optimizer: str = "adam", foreach: Optional[bool] = None, fused: bool = False,
              dtype: str = "float32", autocast: Optional[str] = None,
              checkpoint: Optional[str] = None, lora=None, grad_accum: int = 1,
              grad_scaler: bool = False, set_to_none: bool = True) -> StepCost:
    """Predicted and measured cost of one training step of ``model`` on a batch
    of ``input_shape`` (``N, C, H, W``; loss = cross-entropy on the output, or on
    ``output["out"]``, against random class indices).

    ``model``: an ``nn.Module`` (left as found: weights, ``requires_grad`` flags,
    train/eval mode) or a spec string as ``finetune`` takes (``"stack"``,
    ``"torchvision:resnet18"``, ``"timm:NAME"``, ``"pkg.mod:factory"``,
    ``"file.py:Class"``) built on the meta device with ``model_args``; a spec's
    default input is :func:`profile`'s. ``trainable``: ``"full"`` (every
    parameter), ``"last"`` (the module owning the last parameter), a
    parameter-name glob (``"backbone.layer4.*"``), or None (the ``requires_grad``
    flags as set). ``measure``: ``"fake"`` (or True: a step on fake tensors),
    ``"real"`` (a real CPU step) or None/False (prediction only).

    The step's options, as ``finetune``'s: ``optimizer`` (``"sgd"``,
    ``"sgd-momentum"``, ``"adam"``, ``"adamw"``, ``"adafactor"``), ``foreach``/``fused`` (the
    update; None: the CPU's for-loop), ``dtype`` of the parameters, ``autocast``
    (``"bfloat16"``, ``"float16"``), ``checkpoint`` (a glob of module names),
    ``lora`` (``"r=8,alpha=16,targets=GLOB"`` or a
    :class:`~complexity.cost.step.lora.LoRA`: adapters on a copy, the base frozen;
    ``trainable`` is then the adapters), ``grad_accum``, ``grad_scaler``,
    ``set_to_none`` (False: ``zero_grad(set_to_none=False)``). ``ValueError``
    (an :class:`~complexity.errors.OptionError` naming the parameter) when
    nothing would train, a glob matches nothing or options do not go together.

    ``input_dtype``, ``input_high``: a batch of another dtype than float32, e.g.
    token ids ``(N, L)`` with ``input_dtype=torch.long, input_high=vocab_size`` for
    a Hugging Face model (its ``.logits``; ``(N, L, V)`` token logits are taken as
    ``N·L`` rows of cross-entropy). Left out, a spec that knows its input (``"hf:ARCH"``
    text models: token ids below ``vocab_size``) gives them; otherwise the model says: one whose
    ``main_input_name`` is ``"input_ids"`` or whose first layer is an
    ``nn.Embedding`` gets int64 ids below its vocabulary
    (:func:`~complexity.cost.step.batch.token_vocabulary`), any other float32.
    ``input_shape`` may have any rank (``(4, 16000)`` audio, ``(2, 3, 16, 112, 112)``
    video).

    >>> import torch
    >>> from models.stack import Stack
    >>> c = step_cost(Stack(2, 4), (2, 4, 8, 8))
    >>> c.measured == c.predicted | {"peak_bytes": c.measured["peak_bytes"]}
    True
    >>> c.measured["param_bytes"] == 4 * sum(p.numel() for p in Stack(2, 4).parameters())
    True
    >>> s = step_cost("stack", (2, 4, 8, 8), model_args={"layers": 2, "width": 4},
    ...               optimizer="sgd-momentum", checkpoint="0", measure=None)
    >>> s.step, s.predicted["optimizer_bytes"] == s.predicted["param_bytes"]
    ('sgd-momentum, float32, checkpoint 0', True)
    """
    from complexity.cost.step.lora import lora_modes
    from complexity.cost.step.options import check_measurement, step_options

    options = step_options(optimizer, foreach=foreach, fused=fused, dtype=dtype,
                           autocast=autocast, checkpoint=checkpoint, set_to_none=set_to_none,
                           grad_accum=grad_accum, grad_scaler=grad_scaler)
    how = _measure_how(measure)
    check_measurement(options, how)
    mode = _lora_mode(lora_modes(lora), trainable)
    spec, name, shape, module = _step_model(model, input_shape, model_args)
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        net, params = _trained(module, spec, mode, options)
        if input_dtype is None and spec is not None and spec.input_dtype is not None:
            input_dtype, input_high = spec.input_dtype, spec.input_high  # hf: token ids
        dtypes = dict(input_dtype=input_dtype, input_high=input_high)
        if input_dtype is None and input_high is None:  # the model says: token ids?
            from complexity.cost.step.batch import input_kind

            dtypes = input_kind(module, shape)
        predicted, unmodelled, measured = _costed(net, shape, options, how, dtypes)
        from complexity.cost.step.batch import loss_of

        loss = loss_of(net)  # the model's own (labels=) where it has one: named in step
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    return StepCost(model=name, input=list(shape), trainable=mode, trainable_params=params,
                    predicted=dict(predicted), measured=measured, unmodelled=list(unmodelled),
                    step=options.label(loss), options=options.to_dict(), measured_how=how)


def _measure_how(measure) -> Optional[str]:
    """``measure`` as the measurement's ``how``: True → ``"fake"``, False → None."""
    if measure is True:
        return "fake"
    return None if measure is False else measure


def _lora_mode(modes: List[str], trainable: Optional[str]) -> Optional[str]:
    """The trainable set: ``trainable``, or the one LoRA mode (with ``trainable``
    left at ``"full"``)."""
    from complexity.errors import NAMED, OptionError

    if not modes:
        return trainable
    if len(modes) > 1:
        raise OptionError("{lora}: give one set of adapters for one step", lora=NAMED)
    if trainable != "full":
        raise OptionError("{lora} trains the adapters only; leave {trainable} at 'full'",
                          lora=NAMED, trainable=NAMED)
    return modes[0]


def _step_model(model, input_shape, model_args):
    """``(spec or None, name, input shape, module)``: a module as given, a spec built
    on the meta device (only shapes are needed: fake tensors stand in for values)."""
    from torch import nn

    if isinstance(model, nn.Module):
        if model_args:
            raise TypeError("model_args applies to a spec or a factory, not to a built module")
        return None, type(model).__name__, input_shape_of(None, input_shape), model
    if not isinstance(model, str):
        raise TypeError(f"model must be an nn.Module or a spec string, not {type(model).__name__}")
    return resolve_model(model, input_shape, model_args, device="meta")


def _trained(module, spec, mode, options):
    """``(the module the step trains, its trainable parameter count)``: ``mode`` set
    on ``module`` (None: its flags as they are), or LoRA adapters on a fresh build
    (a copy of a module given); the checkpoint glob checked against it."""
    import copy

    from complexity.cost.step.lora import trainable_model

    if mode is None:
        net = module
    else:
        rebuild = spec.build if spec is not None else (lambda: copy.deepcopy(module))
        net, _ = trainable_model(module, mode, rebuild)
    if options.checkpoint:
        from complexity.cost.step.checkpointing import checkpoint_modules

        checkpoint_modules(net, options.checkpoint)
    return net, sum(p.numel() for p in net.parameters() if p.requires_grad)


def _costed(net, shape, options, how, dtypes):
    """``(predicted, unmodelled, measured or None)`` of one step of ``net``."""
    from complexity.cost.measure.cpu_step import measure as _measure
    from complexity.cost.predict.prediction import predict_with_unmodelled

    predicted, unmodelled = predict_with_unmodelled(net, shape, options=options, **dtypes)
    measured = _measure(net, shape, how=how, options=options, **dtypes) if how else None
    return predicted, unmodelled, measured
