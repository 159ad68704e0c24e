"""Training cost, full versus frozen fine-tuning: predicted and measured (issue 3).

The public API:

* :func:`measure` (``finetune_measure``) — one real Adam step on a fake copy;
* :func:`predict` (``finetune_predict``) — the same quantities from structure;
* :func:`sweep` — both, over models, depths n, sizes, batches and modes;
* :func:`slopes` — fitted log-log slopes against n and against H·W.

Both functions take the model as it is: trainable = parameters with
``requires_grad``. ``full`` trains every parameter, ``last`` only the last layer
(the module owning the model's last parameter: ``head`` of ``stack``,
``finalconv`` of the CNN/UNet, ``classifier.4`` of DeepLabV3, ``fc`` of a ResNet),
a glob pattern anything in between.

>>> from models.stack import Stack
>>> net = Stack(4, 8)
>>> set_trainable(net, "last")
18
>>> m, p = measure(net, (2, 8, 16, 16)), predict(net, (2, 8, 16, 16))
>>> [q for q in KEYS if m[q] != p[q]], abs(p["peak_bytes"] / m["peak_bytes"] - 1) < 0.01
(['peak_bytes'], True)
>>> sorted(m) == sorted(KEYS)
True
"""
from __future__ import annotations

from complexity.errors import reason

import fnmatch
import math
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from complexity.cost.measure import KEYS, measure, measure_cuda_peak
from complexity.cost.predict import predict, predict_with_unmodelled

__all__ = ["KEYS", "measure", "measure_cuda_peak", "predict", "predict_with_unmodelled",
           "build_model", "set_trainable", "sweep", "slopes",
           "MODELS"]

#: Models with a name of their own; any torchvision classification or
#: segmentation model name is accepted too.
MODELS = ("stack", "cnn", "unet", "deeplabv3_resnet101")


def build_model(name: str, layers: int = 4, width: int = 16):
    """``(model, input_channels)`` for ``name``, on the meta device (no memory, no
    download). ``layers`` and ``width`` shape ``stack`` only (n blocks of C channels).

    >>> net, c = build_model("unet")
    >>> type(net).__name__, c
    ('UNet', 1)
    """
    import torch

    with torch.device("meta"):
        if name == "stack":
            from models.stack import Stack
            return Stack(layers, width), width
        if name in ("cnn", "unet"):
            from models.colourization import build
            return build(name), 1  # SPEC §1 defaults: k 3, NF 32, NC 24, NIC 1
        from models import segmentation
        if name in segmentation.ARCHS:
            return segmentation.deeplab(name), 3
        import torchvision.models as tvm
        try:
            builder = tvm.get_model_builder(name)
        except ValueError:
            raise ValueError(f"unknown model {name!r}; choose stack, cnn, unet, "
                             "deeplabv3_resnet101 or a torchvision model name") from None
        from complexity.zoo import multi_input_reason
        why = multi_input_reason(builder) or (
            "takes N,C,T,H,W video clips" if ".video" in builder.__module__ else None)
        if why:
            raise ValueError(f"model {name!r} {why}; finetune supports models that "
                             "take one N,C,H,W image batch")
        import warnings
        with warnings.catch_warnings():  # GoogLeNet/Inception warn about their init
            warnings.simplefilter("ignore", FutureWarning)
            # weights_backbone=None too: segmentation builders would download one.
            try:
                return builder(weights=None, weights_backbone=None), 3
            except TypeError:  # classification builders take no weights_backbone
                return builder(weights=None), 3


def last_layer(model) -> str:
    """The name of the module that owns the model's last parameter ('' when that
    parameter belongs to the model itself); ``ValueError`` for a model without
    parameters.

    >>> from torch import nn
    >>> last_layer(nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU(), nn.Linear(2, 2)))
    '2'
    """
    names = [n for n, _ in model.named_parameters()]
    if not names:
        raise ValueError("the model has no parameters: nothing to train")
    return names[-1].rpartition(".")[0]


def set_trainable(model, mode: str) -> int:
    """Set ``requires_grad``: ``'full'``, ``'last'`` or a parameter-name glob.
    Returns the number of trainable parameters; ``ValueError`` if none match."""
    names = [n for n, _ in model.named_parameters()]
    if not names:
        raise ValueError("the model has no parameters: nothing to train")
    if mode == "full":
        chosen = set(names)
    elif mode == "last":
        owner = last_layer(model)
        if owner:
            chosen = {n for n in names if n.startswith(owner + ".")}
        else:  # a parameter of the model itself: the top-level (dot-free) parameters
            chosen = {n for n in names if "." not in n}
    else:
        chosen = {n for n in names if fnmatch.fnmatchcase(n, mode)}
        if not chosen:
            raise ValueError(f"--trainable {mode!r} matches no parameter name "
                             f"(e.g. {names[0]!r} … {names[-1]!r})")
    count = 0
    for n, p in model.named_parameters():
        p.requires_grad_(n in chosen)
        count += p.numel() if n in chosen else 0
    return count


class ConfigurationError(ValueError):
    """One configuration of a sweep failed; the message names it and the cause."""



def sweep(models: Sequence[str], layers: Sequence[int], sizes: Sequence[Tuple[int, int]],
          batches: Sequence[int], modes: Sequence[str], width: int = 16,
          measured: bool = True, cuda: bool = False, progress=None) -> List[dict]:
    """One result per (model, layers, size, batch, mode): the JSON objects of the
    issue, ``{"model", "layers", "size", "batch", "mode", "trainable_params",
    "predicted": {KEYS}, "unmodelled": [call names], "measured": {KEYS} or None}``.
    ``layers`` applies to ``stack``; other models report their number of conv/linear
    layers. With ``cuda``, each result also holds ``"cuda_peak_bytes"``: one real
    step's ``torch.cuda.max_memory_allocated`` (:func:`measure_cuda_peak`) and
    ``"cuda_predicted_peak_bytes"``, the peak predicted for a CUDA step.

    Every configuration is predicted (a meta-device forward) before any is
    measured or reported to ``progress``, so a model that cannot take an input
    fails first. Any failure is a :class:`ConfigurationError` naming the configuration."""
    configs = []
    for name in models:
        for n in (layers if name == "stack" else [None]):
            try:
                model, channels = build_model(name, n or 1, width)
            except Exception as e:
                raise ConfigurationError(f"model {name}: {reason(e)}") from e
            if n is None:
                n = _weight_layers(model)
            for (h, w) in sizes:
                for b in batches:
                    for mode in modes:
                        label = f"model {name} n={n} size {h}x{w} batch {b} mode {mode}"
                        shape = (b, channels, h, w)
                        try:
                            trainable = set_trainable(model, mode)
                            pred, unmodelled = predict_with_unmodelled(model, shape)
                        except Exception as e:
                            raise ConfigurationError(f"{label}: {reason(e)}") from e
                        configs.append((label, model, mode, shape, {
                            "model": name, "layers": n, "size": [h, w], "batch": b,
                            "mode": mode, "trainable_params": trainable,
                            "predicted": pred, "unmodelled": unmodelled, "measured": None}))
    results = []
    for label, model, mode, shape, result in configs:
        try:
            set_trainable(model, mode)
            if measured:
                result["measured"] = measure(model, shape)
            if cuda:
                # On CUDA dropout keeps a bool mask (a float one elsewhere).
                result["cuda_predicted_peak_bytes"] = predict_with_unmodelled(
                    model, shape, device_type="cuda")[0]["peak_bytes"]
                result["cuda_peak_bytes"] = measure_cuda_peak(model, shape)
        except Exception as e:
            raise ConfigurationError(f"{label}: {reason(e)}") from e
        results.append(result)
        if progress:
            progress(result)
    return results


def _weight_layers(model) -> int:
    from torch import nn
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())


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
    (``'pixels'``), one row per group of results that differ only in that variable.
    ``tail``: the slope between the two largest x only (the asymptotic exponent; a
    constant term, such as the loss or the head, drags the whole-range fit below it)."""
    def x_of(r):
        return r["layers"] if against == "layers" else r["size"][0] * r["size"][1]

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
