"""Training cost, fine-tuning every layer versus only the last: predicted and
measured, over a grid of configurations (the question: what memory and compute
does one training step cost when all n layers train, and when only the last does,
and how does that grow with n and with the input's height and width?).

The public API:

* :func:`measure` (:mod:`complexity.cost.measure.cpu_step`) — one real step (the step's optimizer) on a fake copy;
* :func:`predict` (:mod:`complexity.cost.predict.prediction`) — the same quantities from structure;
* :func:`sweep` — both, over models, depths n, sizes, batches and modes (or
  input shapes of any rank: token ids, audio, video, images);
* :func:`slopes` — fitted log-log slopes against n and against H·W.

Both functions take the model as it is: trainable = parameters with
``requires_grad``, set by :func:`complexity.cost.step.trainable.set_trainable`
(``full``, ``last`` or a parameter-name glob); models by name come from
:func:`complexity.zoo.build_model`.

>>> from models.stack import Stack
>>> from complexity.cost.predict.prediction import predict
>>> net = Stack(4, 8)
>>> set_trainable(net, "last")
18
>>> m, p = measure(net, (2, 8, 16, 16)), predict(net, (2, 8, 16, 16))
>>> [q for q in KEYS if m[q] != p[q]]
[]
>>> sorted(m) == sorted(KEYS)
True
"""
from __future__ import annotations

import itertools
import math
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from complexity.cost.measure.cuda_step import measure_cuda_peak
from complexity.cost.step.lora import lora_of, trainable_model
from complexity.cost.keys import KEYS
from complexity.cost.measure.cpu_step import measure
from complexity.cost.step.options import StepOptions
from complexity.cost.predict.prediction import predict_with_unmodelled
from complexity.cost.step.trainable import last_layer, set_trainable
from complexity.errors import Given, OptionError, literal, reason
from complexity.zoo import build_model

__all__ = ["sweep", "slopes", "fit_slope", "ConfigurationError", "preflight", "trainable_parts",
           "Configuration", "configurations", "build_for_input", "extent"]


class ConfigurationError(OptionError):
    """One configuration of a sweep failed; the message names it and the cause (and,
    as an :class:`~complexity.errors.OptionError`, the parameter at fault, if one is)."""


def trainable_parts(model) -> dict:
    """What trains under the model's current ``requires_grad``:
    ``{"trainable_tensors": k, "frozen": [names], "head": name}`` — ``frozen`` the
    outermost modules (or the model's own parameters) none of whose parameters
    train, in model order; ``head`` the last layer (:func:`last_layer`), the one
    a pattern most easily leaves out by mistake.

    >>> from models.stack import Stack
    >>> net = Stack(3, 4)
    >>> _ = set_trainable(net, "1.*")
    >>> trainable_parts(net)
    {'trainable_tensors': 4, 'frozen': ['0', '2', 'head'], 'head': 'head'}
    """
    trains = {n: p.requires_grad for n, p in model.named_parameters()}
    frozen: List[str] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(f + ".") for f in frozen):
            continue
        own = [trains[f"{name}.{n}"] for n, _ in module.named_parameters()]
        if own and not any(own):
            frozen.append(name)
    frozen += [n for n, t in trains.items() if "." not in n and not t]  # the model's own
    order = {n: i for i, n in enumerate(trains)}  # first parameter's position
    first = {f: min(i for n, i in order.items() if n == f or n.startswith(f + "."))
             for f in frozen}
    from complexity.cost.step.lora import unwrapped_name

    return {"trainable_tensors": sum(trains.values()),
            "frozen": [unwrapped_name(f) for f in sorted(frozen, key=first.get)],
            "head": unwrapped_name(last_layer(model))}


def extent(input_shape: Sequence[int]) -> List[int]:
    """The ``size`` a result reports for an input: the sizes after the batch and the
    channels (``H, W`` of an image, ``T, H, W`` of a clip, ``T`` of ``N, C, T``
    audio), or after the batch alone for a rank-2 input (``L`` of ``N, L`` token ids
    or ``T`` of ``N, T`` samples).

    >>> extent((8, 3, 64, 48)), extent((8, 512)), extent((2, 3, 16, 112, 112))
    ([64, 48], [512], [16, 112, 112])
    """
    shape = list(input_shape)
    return shape[2:] if len(shape) >= 3 else shape[1:]


def build_for_input(name: str, layers: int = 1, width: int = 16,
                    model_args: Optional[dict] = None,
                    input_shape: Optional[Sequence[int]] = None):
    """``(model on the meta device, input channels)`` as
    :func:`complexity.zoo.build_model` builds it; with ``input_shape`` (an input of
    any rank, as ``--input`` gives it), the shape is first checked against the spec
    (:func:`complexity.zoo.check_input`: its rank, channels linked to an argument)
    and a video model (``N, C, T, H, W``) is built too.

    >>> build_for_input("stack", 1, 4, input_shape=(2, 3, 8, 8))
    Traceback (most recent call last):
    ...
    complexity.zoo.ModelSpecError: input_shape=(2, 3, 8, 8) has 3 channels but stack was built with width=4
    """
    if input_shape is None:
        return build_model(name, layers, width, model_args)
    import torch

    from complexity.zoo import check_input, parse_spec

    args = dict(model_args or {})
    spec = parse_spec(name, {**args, "layers": layers, "width": width} if name == "stack"
                      else args)
    check_input(spec, tuple(input_shape))
    if spec.rank != 5:
        return build_model(name, layers, width, model_args)
    with torch.device("meta"):  # build_model takes image models only
        return spec.build(), spec.input_channels


def is_value_dependent(e: BaseException) -> bool:
    """Did ``e`` come from code that needs a tensor's values (``.item()``, a
    data-dependent branch or shape), which meta and fake tensors do not have?"""
    text = f"{type(e).__name__}: {e}"
    return any(w in text for w in ("DataDependent", "on meta tensors", "data-dependent",
                                   "cannot be called on meta", "has no data"))


def preflight(name: str, modes: Sequence[str], shape: Tuple[int, int, int, int],
              width: int = 16, layers: int = 1, model_args: Optional[dict] = None,
              options: Optional[StepOptions] = None, given: bool = False) -> None:
    """Can ``name`` take a training step here, in every mode? Built on the meta
    device (nothing allocated), each mode must train some parameter and one
    forward of a ``shape`` batch (its channels replaced by the model's; with
    ``given``, the input as given, of any rank, token ids if the model takes them:
    :func:`~complexity.cost.step.batch.input_kind`) must run on shapes alone; a LoRA mode (:func:`~complexity.cost.step.lora.lora_of`) must find its target layers and
    ``options.checkpoint`` some module to checkpoint. Cheap next to :func:`sweep`,
    so a command calls it first; :class:`ConfigurationError` with one line naming
    the model otherwise.

    >>> preflight("stack", ["full", "last"], (2, 16, 8, 8), width=4)
    >>> preflight("stack", ["nomatch.*"], (2, 4, 8, 8), width=4)
    Traceback (most recent call last):
    ...
    complexity.cost.finetune.ConfigurationError: model stack: trainable='nomatch.*' matches no parameter name (e.g. '0.0.weight' … 'head.bias')
    """
    import torch

    from complexity.cost.step.batch import input_kind, make_input

    try:
        model, channels = build_for_input(name, layers, width, model_args,
                                          shape if given else None)
    except ValueError as e:  # ModelSpecError: one line that names the model already
        raise ConfigurationError(str(e)) from None
    except Exception as e:
        raise ConfigurationError(f"model {name}: {reason(e)}") from None
    if options is not None and options.checkpoint:
        from complexity.cost.step.checkpointing import checkpoint_modules

        try:
            checkpoint_modules(model, options.checkpoint)
        except ValueError as e:
            raise ConfigurationError(f"model {name}: {e}") from None
    for mode in modes:
        try:
            if lora_of(mode) is not None:
                from complexity.cost.step.lora import target_modules

                target_modules(model, lora_of(mode))
                continue
            count = set_trainable(model, mode)
        except ValueError as e:
            raise ConfigurationError(f"model {name}: {e}") from None
        if count == 0:
            key = "mode" if mode in ("full", "last") else "trainable"
            raise ConfigurationError(
                "model " + literal(name) + ": {" + key + "} trains no parameter (the parameters "
                "it selects hold no values); nothing to fine-tune",
                **{key: Given(mode, mode if key == "mode" else None)})
    batch = tuple(shape) if given else (shape[0], channels, *shape[2:])
    kind = input_kind(model, batch)
    what = ("token-id input" if kind["input_dtype"] is not None else "input") if given \
        else "image batch"
    try:
        with torch.no_grad():
            model(make_input(batch, device="meta", **kind))
    except Exception as e:
        if is_value_dependent(e):
            raise ConfigurationError(
                f"model {name}: its forward reads tensor values ({reason(e)}), which the "
                "shape-only step of finetune (meta and fake tensors) does not have") from None
        raise ConfigurationError(f"model {name} cannot take a "
                                 f"{'×'.join(map(str, batch))} {what}: {reason(e)}") from None


class Configuration(NamedTuple):
    """One step :func:`sweep` predicts: a model by name at depth ``layers`` (built
    once per name and depth, shared by its configurations), a size, a batch and a
    mode; ``trained`` caches, per mode, what that model trains (shared likewise).
    ``input``: the batch's shape, ``(batch, channels, *size)`` or, when ``given``,
    an input shape as given (``size`` its :func:`extent`)."""

    name: str
    layers: int
    model: object
    channels: int
    size: Tuple[int, int]
    batch: int
    mode: str
    trained: dict
    input: Tuple[int, ...] = ()
    given: bool = False

    @property
    def label(self) -> str:
        if self.given:
            return (f"model {self.name} n={self.layers} input {'x'.join(map(str, self.input))} "
                    f"mode {self.mode}")
        h, w = self.size
        return (f"model {self.name} n={self.layers} size {h}x{w} batch {self.batch} "
                f"mode {self.mode}")


def configurations(models: Sequence[str], layers: Sequence[int],
                   sizes: Sequence[Tuple[int, int]], batches: Sequence[int],
                   modes: Sequence[str], width: int = 16,
                   model_args: Optional[dict] = None,
                   inputs: Optional[Sequence[Sequence[int]]] = None) -> Iterator[Configuration]:
    """Every (model, depth, size, batch, mode) in :func:`sweep`'s order: each
    model built when its first configuration is reached (``layers`` applies to
    ``stack``; other models report their number of conv/linear layers), then the
    product of sizes, batches and modes — or, with ``inputs`` (input shapes of any
    rank, ``sizes`` and ``batches`` unused), of inputs and modes.

    >>> [(c.layers, c.size, c.batch, c.mode) for c in configurations(
    ...     ["stack"], [1, 2], [(8, 8)], [2], ["full", "last"], width=4)]
    [(1, (8, 8), 2, 'full'), (1, (8, 8), 2, 'last'), (2, (8, 8), 2, 'full'), (2, (8, 8), 2, 'last')]
    """
    for name in models:
        for n in (layers if name == "stack" else [None]):
            try:
                model, channels = build_for_input(name, n or 1, width, model_args,
                                                  inputs[0] if inputs else None)
            except Exception as e:
                raise ConfigurationError(f"model {name}: {reason(e)}") from e
            if n is None:
                n = _weight_layers(model)
            # what each mode trains, worked out once per model (a LoRA mode builds
            # and wraps a model of its own)
            trained: dict = {}
            if inputs:
                for shape, mode in itertools.product(inputs, modes):
                    yield Configuration(name, n, model, channels, tuple(extent(shape)),
                                        shape[0], mode, trained, tuple(shape), True)
                continue
            for size, b, mode in itertools.product(sizes, batches, modes):
                yield Configuration(name, n, model, channels, tuple(size), b, mode, trained,
                                    (b, channels, *size))


def _predicted(c: Configuration, width: int, model_args: Optional[dict],
               options: Optional[StepOptions], step: dict):
    """``(label, model, mode, shape, kind, result)`` of one configuration, its
    prediction in ``result`` and ``measured`` None, ``kind`` the input's dtype
    (:func:`~complexity.cost.step.batch.input_kind`); :class:`ConfigurationError`
    naming it."""
    from complexity.cost.step.batch import input_kind, loss_of
    from complexity.cost.step.checkpointing import prepare

    shape = c.input
    try:
        if "input" not in c.trained:  # the model says whether it takes token ids
            c.trained["input"] = input_kind(c.model, shape)
        kind = c.trained["input"]
        if c.mode not in c.trained:
            net, trainable = trainable_model(
                c.model, c.mode, lambda: build_model(c.name, c.layers, width, model_args)[0])
            c.trained[c.mode] = net, trainable, trainable_parts(net)
        net, trainable, parts = c.trained[c.mode]
        if lora_of(c.mode) is None:  # the model is shared by the modes
            set_trainable(net, c.mode)
        prepare(net, options and options.checkpoint)  # --checkpoint hf: as transformers sets it up
        pred, unmodelled = predict_with_unmodelled(net, shape, options=options, **kind)
    except Exception as e:
        raise ConfigurationError(f"{c.label}: {reason(e)}") from e
    loss = loss_of(net)  # the model's own (labels=) where it has one: the step names it
    step = {**step, "step": (options or StepOptions()).label(loss), "loss": loss.label()}
    return (c.label, net, c.mode, shape, kind, {
        "model": c.name, "layers": c.layers, "size": list(c.size), "batch": c.batch,
        "input": list(shape), "mode": c.mode, "trainable_params": trainable, **parts, **step,
        "predicted": pred, "unmodelled": unmodelled, "measured": None})


def sweep(models: Sequence[str], layers: Sequence[int], sizes: Sequence[Tuple[int, int]],
          batches: Sequence[int], modes: Sequence[str], width: int = 16,
          measured: bool = True, cuda: bool = False, progress=None,
          how: str = "fake", model_args: Optional[dict] = None,
          options: Optional[StepOptions] = None,
          inputs: Optional[Sequence[Sequence[int]]] = None) -> List[dict]:
    """One result per (model, layers, size, batch, mode): the JSON objects that
    ``finetune --format json`` prints, ``{"model", "layers", "size", "batch",
    "input", "mode", "trainable_params", "trainable_tensors", "frozen", "head",
    "options", "step", "loss", "predicted": {KEYS}, "unmodelled": [call names],
    "measured": {KEYS} or None}`` (``loss``: ``"cross-entropy"`` on the logits, or
    ``"the model's own (labels=)"``, :func:`~complexity.cost.step.batch.loss_of`,
    which ``step`` then names too)
    (``frozen`` and ``head``: :func:`trainable_parts`), and with a measurement
    ``"measured_how"``:
    ``how``, ``"fake"`` (fake CPU tensors, any size) or ``"real"`` (a real CPU
    step; it must fit in memory), see :func:`measure`.
    ``layers`` applies to ``stack``; other models report their number of conv/linear
    layers. With ``cuda``, each result also holds ``"cuda_peak_bytes"``: one real
    step's ``torch.cuda.max_memory_allocated`` (:func:`measure_cuda_peak`) and
    ``"cuda_predicted_peak_bytes"``, the peak predicted for a CUDA step.
    ``model_args``: constructor keyword arguments given to every model
    (:func:`complexity.zoo.build_model`). ``options``: how every step runs
    (:class:`complexity.cost.step.options.StepOptions`: optimizer, dtype, autocast,
    checkpointing, gradient buffers, accumulation); a mode ``"lora:r=…,targets=…"``
    trains LoRA adapters (:func:`~complexity.cost.step.lora.lora_of`).
    ``inputs``: input shapes of any rank (``--input``: ``(8, 512)`` token ids,
    ``(4, 16000)`` audio, ``(2, 3, 16, 112, 112)`` video, ``(4, 3, 224, 224)``
    images), taken as given in place of ``sizes`` × ``batches``; ``input`` is the
    batch's shape, ``size`` its :func:`extent` and ``batch`` its first size. A model
    that takes token ids (:func:`~complexity.cost.step.batch.token_vocabulary`) gets
    int64 ids below its vocabulary.

    Every configuration is predicted (a meta-device forward) before any is
    measured or reported to ``progress``, so a model that cannot take an input
    fails first. Any failure is a :class:`ConfigurationError` naming the configuration."""
    step = {"options": (options or StepOptions()).to_dict(),
            "step": (options or StepOptions()).label()}
    configs = [_predicted(c, width, model_args, options, step)
               for c in configurations(models, layers, sizes, batches, modes, width, model_args,
                                       inputs)]
    results = []
    for label, model, mode, shape, kind, result in configs:
        try:
            if lora_of(mode) is None:
                set_trainable(model, mode)
            if measured:
                result["measured"] = measure(model, shape, how=how, options=options, **kind)
                result["measured_how"] = how
            if cuda:
                # On CUDA dropout keeps a bool mask (a float one elsewhere).
                result["cuda_predicted_peak_bytes"] = predict_with_unmodelled(
                    model, shape, device_type="cuda", options=options, **kind)[0]["peak_bytes"]
                result["cuda_peak_bytes"] = measure_cuda_peak(model, shape, options, **kind)
        except Exception as e:
            raise ConfigurationError(f"{label}: {reason(e)}") from e
        results.append(result)
        if progress:
            progress(result)
    return results


def _weight_layers(model) -> int:
    """Number of Conv2d and Linear modules: the ``layers`` reported for a named model
    (Conv1d and Conv3d too when it has no Conv2d: an audio or video model)."""
    from torch import nn
    n = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        n += sum(isinstance(m, (nn.Conv1d, nn.Conv3d)) for m in model.modules())
    return n


def fit_slope(xs: Iterable[float], ys: Iterable[float]) -> Optional[float]:
    """Least-squares slope of log y against log x (None with < 2 distinct x or y ≤ 0).

    >>> round(fit_slope([1, 2, 4], [3, 6, 12]), 6)
    1.0
    """
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y > 0]
    if len({p[0] for p in pts}) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx


def slopes(results: Sequence[dict], against: str = "layers", source: str = "measured",
           tail: bool = False) -> List[dict]:
    """Fitted log-log slope of each quantity against n (``'layers'``) or H·W
    (``'pixels'``: the product of ``size``, H·W of an image), one row per group of
    results that differ only in that variable.
    ``tail``: the slope between the two largest x only (the asymptotic exponent; a
    constant term, such as the loss or the head, drags the whole-range fit below it)."""
    def x_of(r):
        return r["layers"] if against == "layers" else math.prod(r["size"])

    groups: Dict[tuple, List[dict]] = {}
    for r in results:
        fixed = (r["model"], r["batch"], r["mode"],
                 tuple(r["size"]) if against == "layers" else r["layers"])
        groups.setdefault(fixed, []).append(r)
    rows = []
    for (model, batch, mode, fixed), rs in groups.items():
        if tail:
            rs = sorted(rs, key=x_of)[-2:]
        values = [r[source] or r["predicted"] for r in rs]
        row = {"model": model, "batch": batch, "mode": mode, "against": against,
               "range": [x_of(rs[0]), x_of(rs[-1])] if tail else [min(map(x_of, rs)), max(map(x_of, rs))],
               "fixed": list(fixed) if isinstance(fixed, tuple) else fixed}
        row.update({q: fit_slope([x_of(r) for r in rs], [v[q] for v in values]) for q in KEYS})
        if any(row[q] is not None for q in KEYS):
            rows.append(row)
    return rows
