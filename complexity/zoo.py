"""Model specs: turn ``torchvision:NAME``, ``package.module:factory``, ``cnn`` or
``unet`` into something that builds an ``nn.Module``, plus ``--input`` parsing;
and :func:`build_model`, the models of ``finetune`` by name.

:func:`parse_spec` is shared by ``profile`` and ``derive`` (and any later command
that takes "any model"). Building happens on whatever device is the default when
:meth:`ModelSpec.build` is called; ``profile`` calls it under
``torch.device("meta")`` so that no weights are allocated or initialised.
Nothing here downloads weights: torchvision builders get ``weights=None`` (and
``weights_backbone=None`` where they take it).

Errors are :class:`ModelSpecError` (a ``ValueError``) with one line naming the
problem; the CLI turns them into exit code 2.

>>> spec = parse_spec("unet", {"num_filters": 8})
>>> spec.name, spec.args["num_filters"], spec.args["num_colours"]
('unet', 8, 24)
>>> parse_input("1,3,224,224")
(1, 3, 224, 224)
"""
from __future__ import annotations

from complexity.errors import reason

import importlib
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

#: The report's names for the colourization nets' constructor arguments (the
#: course assignment's NF filters, NC colours, kernel k and NIC input channels).
COLOURIZATION_ALIASES = {"NF": "num_filters", "NC": "num_colours", "k": "kernel",
                         "NIC": "num_in_channels"}
COLOURIZATION_DEFAULTS = {"kernel": 3, "num_filters": 32, "num_colours": 24, "num_in_channels": 1}


class ModelSpecError(ValueError):
    """A model spec, argument or input that cannot be used; one line."""


@dataclass
class ModelSpec:
    """How to build one model: a factory, its keyword arguments and what they mean."""

    name: str
    factory: Callable[..., Any]
    args: Dict[str, Any] = field(default_factory=dict)
    #: symbol aliases accepted by ``derive`` (``NF`` → ``num_filters``)
    aliases: Dict[str, str] = field(default_factory=dict)
    #: constructor arguments that also fix an input dimension (NIC → channels)
    input_links: Dict[str, int] = field(default_factory=dict)
    #: the input rank the model takes, when known (None: any)
    rank: Optional[int] = None

    def build(self, **overrides):
        """Call the factory with ``args`` updated by ``overrides``; check it is a module."""
        from torch import nn

        kwargs = {**self.args, **overrides}
        try:
            module = self.factory(**kwargs)
        except ModelSpecError:
            raise
        except Exception as e:
            raise ModelSpecError(f"{self.name}({_kwargs_text(kwargs)}) failed: {reason(e)}") from None
        if not isinstance(module, nn.Module):
            raise ModelSpecError(f"{self.name} returned {type(module).__name__}, not a "
                                 "torch.nn.Module (the factory must return the model)")
        return module

    def argument_default(self, argument: str, module=None):
        """The value ``argument`` has when not overridden: from ``args``, else the
        factory's signature, else the signature of the built module's class (for
        factories that pass ``**kwargs`` on, like torchvision's ``resnet18``)."""
        if argument in self.args:
            return self.args[argument]
        for fn in (self.factory, type(module).__init__ if module is not None else None):
            if fn is None:
                continue
            try:
                params = inspect.signature(fn).parameters
            except (TypeError, ValueError):
                continue
            if argument in params and params[argument].default is not inspect.Parameter.empty:
                return params[argument].default
        raise ModelSpecError(
            f"{argument!r} names no argument of {self.name} with a default "
            f"(arguments: {', '.join(self.argument_names(module)) or 'none'}); "
            "give its value in --model-args or pick another symbol")

    def argument_names(self, module=None):
        """Named keyword arguments of the factory (and of the module class it builds)."""
        names = list(self.args)
        for fn in (self.factory, type(module).__init__ if module is not None else None):
            if fn is None:
                continue
            try:
                params = inspect.signature(fn).parameters.values()
            except (TypeError, ValueError):
                continue
            names += [p.name for p in params if p.name != "self"
                      and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        return list(dict.fromkeys(names))



def _kwargs_text(kwargs: Dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def parse_input(text: str) -> Tuple[int, ...]:
    """``"1,3,224,224"`` → ``(1, 3, 224, 224)``; every size an integer ≥ 1.

    >>> parse_input("2, 3, 32, 48")
    (2, 3, 32, 48)
    """
    parts = [t.strip() for t in text.split(",")]
    if not parts or not all(re.fullmatch(r"[+-]?\d+", p) for p in parts):
        raise ModelSpecError(f"--input {text!r} is not a comma-separated list of integers "
                             "(e.g. 1,3,224,224)")
    sizes = tuple(int(p) for p in parts)
    if any(s < 1 for s in sizes):
        raise ModelSpecError(f"--input {text!r} has a size < 1 (every size must be >= 1)")
    return sizes


def check_input(spec: ModelSpec, shape: Tuple[int, ...]) -> None:
    """Reject an input of the wrong rank, or whose channels contradict the model."""
    if spec.rank is not None and len(shape) != spec.rank:
        dims = "N,C,H,W" if spec.rank == 4 else "N,C,T,H,W" if spec.rank == 5 else f"rank {spec.rank}"
        raise ModelSpecError(f"--input {','.join(map(str, shape))} has rank {len(shape)}; "
                             f"{spec.name} takes {dims} (rank {spec.rank})")
    for argument, dim in spec.input_links.items():
        if shape[dim] != spec.args[argument]:
            raise ModelSpecError(f"--input {','.join(map(str, shape))} has {shape[dim]} channels "
                                 f"but {spec.name} was built with {argument}={spec.args[argument]}")


def _colourization(name: str, model_args: Dict[str, Any]) -> ModelSpec:
    from models import colourization

    unknown = set(model_args) - set(COLOURIZATION_DEFAULTS)
    if unknown:
        raise ModelSpecError(f"{name} takes no argument {sorted(unknown)[0]!r} "
                             f"(arguments: {', '.join(COLOURIZATION_DEFAULTS)})")
    cls = colourization.MODELS[name]
    return ModelSpec(name, cls, {**COLOURIZATION_DEFAULTS, **model_args},
                     aliases=dict(COLOURIZATION_ALIASES),
                     input_links={"num_in_channels": 1}, rank=4)


def _torchvision(name: str, model_args: Dict[str, Any]) -> ModelSpec:
    import torchvision

    try:
        builder = torchvision.models.get_model_builder(name)
    except ValueError:
        raise ModelSpecError(f"torchvision has no model {name!r} (see "
                             "torchvision.models.list_models())") from None
    for key in ("weights", "weights_backbone"):
        if model_args.get(key) is not None:
            raise ModelSpecError(f"--model-args {key}={model_args[key]!r}: pretrained weights "
                                 "cannot be downloaded here and do not change the counts; drop it")
    args = {"weights": None}
    if "weights_backbone" in inspect.signature(builder).parameters:
        args["weights_backbone"] = None
    args.update(model_args)
    # Video models take N,C,T,H,W; detection and optical-flow models take lists or
    # pairs of images, which a single --input cannot describe.
    why = multi_input_reason(builder)
    if why:
        raise ModelSpecError(f"torchvision:{name} {why}; profile supports single-tensor models")
    rank = 5 if ".video" in builder.__module__ else 4
    return ModelSpec(f"torchvision:{name}", builder, args, rank=rank)


def multi_input_reason(builder) -> Optional[str]:
    """Why a torchvision builder's model cannot take one N,C,H,W tensor, or None:
    detection and optical-flow models take lists or pairs of images."""
    module = builder.__module__
    if ".detection" in module or ".optical_flow" in module:
        return "takes a list of images or a pair, not one input tensor"
    return None


def _importable(text: str, model_args: Dict[str, Any]) -> ModelSpec:
    module_name, _, attr = text.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or anything the module raises on import
        raise ModelSpecError(f"cannot import {module_name!r}: {reason(e)}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelSpecError(f"{module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelSpecError(f"{text} is a {type(obj).__name__}, not a callable that returns "
                             "an nn.Module")
    return ModelSpec(text, obj, dict(model_args))


_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def parse_spec(text: str, model_args: Optional[Dict[str, Any]] = None) -> ModelSpec:
    """A :class:`ModelSpec` for ``cnn``, ``unet``, ``torchvision:NAME`` or
    ``package.module:factory``.

    >>> parse_spec("torchvision:resnet18").args
    {'weights': None}
    >>> parse_spec("resnet18")
    Traceback (most recent call last):
    ...
    complexity.zoo.ModelSpecError: MODEL 'resnet18' is not cnn, unet, torchvision:NAME or package.module:factory
    """
    model_args = dict(model_args or {})
    text = text.strip()
    if text in ("cnn", "unet"):
        return _colourization(text, model_args)
    if re.fullmatch(rf"torchvision:{_IDENT}", text):
        return _torchvision(text.split(":", 1)[1], model_args)
    if re.fullmatch(rf"{_IDENT}(\.{_IDENT})*:{_IDENT}(\.{_IDENT})*", text):
        return _importable(text, model_args)
    raise ModelSpecError(f"MODEL {text!r} is not cnn, unet, torchvision:NAME or "
                         "package.module:factory")


#: Models of :func:`build_model` with a name of their own; any torchvision
#: classification or segmentation model name is accepted too.
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
            # the assignment's defaults: kernel 3, NF 32, NC 24, NIC 1
            return build(name), 1
        from models import segmentation
        if name in segmentation.ARCHS:
            return segmentation.deeplab(name), 3
        import torchvision.models as tvm
        try:
            builder = tvm.get_model_builder(name)
        except ValueError:
            raise ValueError(f"unknown model {name!r}; choose stack, cnn, unet, "
                             "deeplabv3_resnet101 or a torchvision model name") from None
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


def parse_model_args(text: Optional[str]) -> Dict[str, Any]:
    """``--model-args`` JSON → dict (must be a JSON object).

    >>> parse_model_args('{"num_classes": 10}')
    {'num_classes': 10}
    """
    import json

    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelSpecError(f"--model-args is not valid JSON ({e.msg} at character {e.pos})") from None
    if not isinstance(value, dict):
        raise ModelSpecError("--model-args must be a JSON object of constructor arguments, "
                             'e.g. {"num_classes": 10}')
    return value
