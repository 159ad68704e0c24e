"""The one model resolver: every command names its model the same way.

:func:`parse_spec` turns a model name into a :class:`ModelSpec` (a factory, its
keyword arguments and what they mean):

* a built-in network of :mod:`models` — ``cnn``, ``unet`` (the course's
  colourization nets), ``stack`` (n similar conv blocks), a DeepLabV3 with the
  foreground/background head (``deeplabv3_resnet101`` …);
* a torchvision model, ``torchvision:NAME`` or just ``NAME``;
* a timm model, ``timm:NAME`` (when timm is installed; ``pretrained=False``);
* ``package.module:factory``, any callable returning an ``nn.Module``;
* ``path/to/file.py:Name``, a class or factory defined in a Python file (the file
  is loaded with :mod:`importlib.util`, not imported from ``sys.path``);
* a Hugging Face transformers model (when transformers is installed):
  ``hf:ARCH`` (a model class, ``hf:BertForSequenceClassification``, on its config
  class's defaults), ``hf:PATH`` (a ``config.json`` or a folder holding one: the
  class is its ``architectures[0]``) or ``hf:ORG/NAME`` (that config from the
  local Hugging Face cache); ``model_args`` are config fields. The config is
  read from disk only (a path that exists is a path); no remote code is run (the
  class must be one transformers defines). Its spec knows the input: token ids
  below ``vocab_size`` (``input_dtype``, ``input_high``), an image of the config's
  ``num_channels`` and ``image_size``, or audio samples.

:func:`build_model` is the same resolver for the training-step commands: the model
built on the meta device and its input channels. Building happens on whatever device is the default when
:meth:`ModelSpec.build` is called; ``profile`` calls it under
``torch.device("meta")`` so that no weights are allocated or initialised.
Nothing here downloads weights: torchvision builders get ``weights=None`` (and
``weights_backbone=None`` where they take it), timm's ``create_model`` gets
``pretrained=False``, a transformers class is built from a config (``Model(config)``,
random initialisation, no ``from_pretrained``).

Errors are :class:`ModelSpecError` (a ``ValueError``) with one line naming the
problem; the CLI turns them into exit code 2.

>>> spec = parse_spec("unet", {"num_filters": 8})
>>> spec.name, spec.args["num_filters"], spec.args["num_colours"]
('unet', 8, 24)
>>> parse_input("1,3,224,224")
(1, 3, 224, 224)
"""
from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

from complexity.errors import NAMED, Given, OptionError, literal, reason

#: The report's names for the colourization nets' constructor arguments (the
#: course assignment's NF filters, NC colours, kernel k and NIC input channels).
COLOURIZATION_ALIASES = {"NF": "num_filters", "NC": "num_colours", "k": "kernel",
                         "NIC": "num_in_channels"}
COLOURIZATION_DEFAULTS = {"kernel": 3, "num_filters": 32, "num_colours": 24, "num_in_channels": 1}


class ModelSpecError(OptionError):
    """A model spec, argument or input that cannot be used; one line (naming the
    parameter at fault as an :class:`~complexity.errors.OptionError` does)."""


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
    #: the input's dtype when it is not float32 (``torch.long`` token ids) and, for
    #: integers, the exclusive bound of its values (the vocabulary size): what
    #: ``step_cost``'s and ``profile``'s ``input_dtype``/``input_high`` take
    input_dtype: Any = None
    input_high: Optional[int] = None
    #: the input a caller gets when it gives none (None: the image default)
    default_input: Optional[Tuple[int, ...]] = None
    #: the input's dimensions in words for messages (``"N,L token ids"``)
    input_dims: Optional[str] = None

    def build(self, **overrides):
        """Call the factory with ``args`` updated by ``overrides``; check it is a module."""
        from torch import nn

        import warnings

        kwargs = {**self.args, **overrides}
        try:
            with warnings.catch_warnings():  # GoogLeNet/Inception warn about their init
                warnings.simplefilter("ignore", FutureWarning)
                module = self.factory(**kwargs)
        except ModelSpecError:
            raise
        except Exception as e:
            raise ModelSpecError(f"{self.name}({_kwargs_text(kwargs)}) failed: {reason(e)}") from None
        if not isinstance(module, nn.Module):
            raise ModelSpecError(f"{self.name} returned {type(module).__name__}, not a "
                                 "torch.nn.Module (the factory must return the model)")
        return module

    @property
    def input_channels(self) -> int:
        """Channels of the input the model takes: a linked constructor argument
        (``num_in_channels``, ``width``) or 3 (an RGB image)."""
        for argument, dim in self.input_links.items():
            if dim == 1:
                return self.args[argument]
        return 3

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
        raise ModelSpecError(literal(
            f"{argument!r} names no argument of {self.name} with a default "
            f"(arguments: {', '.join(self.argument_names(module)) or 'none'}); ")
            + "give its value in {model_args} or pick another symbol", model_args=NAMED)

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
        raise ModelSpecError("{input_shape} is not a comma-separated list of integers "
                             "(e.g. 1,3,224,224)", input_shape=text)
    sizes = tuple(int(p) for p in parts)
    if any(s < 1 for s in sizes):
        raise ModelSpecError("{input_shape} has a size < 1 (every size must be >= 1)",
                             input_shape=text)
    return sizes


def check_input(spec: ModelSpec, shape: Tuple[int, ...]) -> None:
    """Reject an input of the wrong rank, or whose channels contradict the model."""
    given = Given(tuple(shape), ",".join(map(str, shape)))
    if spec.rank is not None and len(shape) != spec.rank:
        dims = spec.input_dims or ("N,C,H,W" if spec.rank == 4 else "N,C,T,H,W" if spec.rank == 5
                                   else f"rank {spec.rank}")
        raise ModelSpecError("{input_shape} has rank " + literal(
            f"{len(shape)}; {spec.name} takes {dims} (rank {spec.rank})"), input_shape=given)
    for argument, dim in spec.input_links.items():
        if shape[dim] != spec.args[argument]:
            raise ModelSpecError("{input_shape} has " + literal(
                f"{shape[dim]} channels but {spec.name} was built with "
                f"{argument}={spec.args[argument]}"), input_shape=given)


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
            raise ModelSpecError("{model_args} " + literal(f"{key}={model_args[key]!r}")
                                 + ": pretrained weights cannot be downloaded here and do not "
                                 "change the counts; drop it", model_args=NAMED)
    args = {"weights": None}
    if "weights_backbone" in inspect.signature(builder).parameters:
        args["weights_backbone"] = None
    args.update(model_args)
    # Video models take N,C,T,H,W; detection and optical-flow models take lists or
    # pairs of images, which a single --input cannot describe.
    why = multi_input_reason(builder)
    if why:
        raise ModelSpecError(f"torchvision:{name} {why}; only models that take one input "
                             "tensor are supported")
    rank = 5 if ".video" in builder.__module__ else 4
    return ModelSpec(f"torchvision:{name}", builder, args, rank=rank)


def multi_input_reason(builder) -> Optional[str]:
    """Why a torchvision builder's model cannot take one N,C,H,W tensor, or None:
    detection and optical-flow models take lists or pairs of images."""
    module = builder.__module__
    if ".detection" in module:
        # and in training mode it needs each image's target boxes and returns losses
        return ("is a detection model: it takes a list of images (and, to train, their target "
                "boxes) and returns losses, not one input tensor")
    if ".optical_flow" in module:
        return "takes a pair of images, not one input tensor"
    return None


def _importable(text: str, model_args: Dict[str, Any]) -> ModelSpec:
    module_name, _, attr = text.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or anything the module raises on import
        raise ModelSpecError(f"cannot import {module_name!r}: {reason(e)}") from None
    obj = _factory(obj, attr, lambda: f"{module_name!r} has no attribute {attr!r}",
                   lambda kind: f"{text} is a {kind}, not a callable that returns an nn.Module")
    return ModelSpec(text, obj, dict(model_args))


def _factory(module, attr: str, missing, not_callable):
    """``module``'s dotted attribute ``attr``, which must be callable: a
    ``ModelSpecError`` with ``missing()`` when a part is absent, with
    ``not_callable(type name)`` when it is no callable."""
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ModelSpecError(missing())
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelSpecError(not_callable(type(obj).__name__))
    return obj


_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def _timm(name: str, model_args: Dict[str, Any]) -> ModelSpec:
    import functools

    try:
        import timm
    except ImportError:
        raise ModelSpecError(f"timm:{name} needs timm, which is not installed: pip install timm "
                             "(or the [zoo] extra: pip install -e '.[zoo]')") from None
    if not timm.is_model(name):
        raise ModelSpecError(f"timm has no model {name!r} (see timm.list_models())")
    for key in ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path"):
        if model_args.get(key):
            raise ModelSpecError("{model_args} " + literal(f"{key}={model_args[key]!r}")
                                 + ": pretrained weights cannot be downloaded here and do not "
                                 "change the counts; drop it", model_args=NAMED)
    factory = functools.partial(timm.create_model, name, pretrained=False)
    factory.__name__ = f"timm.create_model({name!r})"  # for argument_names' messages
    # ``in_chans`` is timm's input-channel argument: it fixes the input's channels
    links = {"in_chans": 1} if "in_chans" in model_args else {}
    return ModelSpec(f"timm:{name}", factory, dict(model_args), input_links=links, rank=4)


def is_file_spec(text: str) -> bool:
    """Does ``text`` name a Python file (``path/to/file.py:Name``) rather than
    ``package.module:factory``? Yes when the part before the last ``:`` ends in
    ``.py``, holds a path separator, or is an existing file.

    >>> is_file_spec("nets/model.py:Net"), is_file_spec("mynet:MyNet")
    (True, False)
    """
    import os

    path, colon, _ = text.rpartition(":")
    if not colon or not path:
        return False
    return (path.endswith(".py") or "/" in path or os.sep in path
            or os.path.isfile(path))


def _file(text: str, model_args: Dict[str, Any]) -> ModelSpec:
    import hashlib
    import importlib.util
    import os
    import sys

    path, _, attr = text.rpartition(":")
    if not re.fullmatch(rf"{_IDENT}(\.{_IDENT})*", attr):
        raise ModelSpecError(f"MODEL {text!r}: {attr!r} is not a Python name "
                             "(give path/to/file.py:Class or path/to/file.py:factory)")
    if not os.path.exists(path):
        raise ModelSpecError(f"MODEL {text!r}: no such file {path}")
    if os.path.isdir(path):
        raise ModelSpecError(f"MODEL {text!r}: {path} is a folder, not a .py file")
    if not path.endswith(".py"):
        raise ModelSpecError(f"MODEL {text!r}: {path} is not a .py file "
                             "(give path/to/file.py:Class)")
    # One module per file, named after its absolute path: loading the same file
    # twice gives the same classes, and two files of the same name do not collide.
    full = os.path.abspath(path)
    module_name = ("complexity_user_" + re.sub(r"\W", "_", os.path.basename(path)[:-3]) + "_"
                   + hashlib.sha1(full.encode()).hexdigest()[:10])
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, full)
        if spec is None or spec.loader is None:
            raise ModelSpecError(f"MODEL {text!r}: cannot load {path} as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pickling look modules up
        try:
            spec.loader.exec_module(module)
        except Exception as e:  # SyntaxError, ImportError, anything the file raises
            del sys.modules[module_name]
            raise ModelSpecError(f"MODEL {text!r}: cannot load {path}: {reason(e)}") from None
    def missing():
        defined = sorted(n for n, v in vars(module).items()
                         if callable(v) and not n.startswith("_")
                         and getattr(v, "__module__", None) == module_name)
        return (f"MODEL {text!r}: {path} defines no {attr!r} (it defines: "
                f"{', '.join(defined) or 'no class or function'})")

    obj = _factory(module, attr, missing,
                   lambda kind: f"{text} is a {kind}, not a class or function that returns "
                   "an nn.Module")
    return ModelSpec(text, obj, dict(model_args))


def _builtin(name: str, model_args: Dict[str, Any]) -> ModelSpec:
    """``stack`` or a DeepLabV3 architecture of :mod:`models` (cnn/unet: :func:`_colourization`)."""
    import functools

    import models

    if name == models.STACK:
        return ModelSpec(name, models.Stack, {"layers": 4, "width": 16, **model_args},
                         input_links={"width": 1}, rank=4)
    return ModelSpec(name, functools.partial(models.build, name), {"num_classes": 2, **model_args},
                     rank=4)


#: a Hugging Face hub repository id, ORG/NAME
_REPO_ID = r"[A-Za-z0-9][\w.\-]*/[\w.\-]+"


def _hf(text: str, model_args: Dict[str, Any]) -> ModelSpec:
    """``hf:ARCH`` (a transformers model class and its config class's defaults),
    ``hf:PATH`` (a ``config.json`` or a folder holding one) or ``hf:ORG/NAME`` (the
    config of a hub model in the local cache); ``model_args`` override config fields.
    Nothing is downloaded and no remote code is run: the class must be one
    transformers defines."""
    import os

    try:
        import transformers  # noqa: F401
    except ImportError:
        raise ModelSpecError(f"hf:{text} needs transformers, which is not installed: "
                             "pip install transformers") from None
    if not text:
        raise ModelSpecError("MODEL 'hf:' names nothing: give hf:ARCH (a transformers class, "
                             "e.g. hf:BertForSequenceClassification), hf:path/to/config.json "
                             "or hf:ORG/NAME")
    if os.path.exists(text):
        return _hf_config_file(f"hf:{text}", _config_json(text), model_args)
    cached = _hf_cached(text)  # read once: a bare legacy id (gpt2) may be both
    if re.fullmatch(_IDENT, text) and not (cached and not _hf_has_class(text)):
        model_cls = _hf_class(text, lambda: f"MODEL 'hf:{text}': transformers has no model "
                              f"class {text!r} (give a class such as BertForSequenceClassification, "
                              "a config.json or ORG/NAME)")
        config_cls = getattr(model_cls, "config_class", None)
        if config_cls is None:
            raise ModelSpecError(f"MODEL 'hf:{text}': {text} names no config class; give "
                                 f"hf:path/to/config.json")
        return _hf_spec(f"hf:{text}", model_cls, config_cls, {}, model_args)
    # ORG/NAME, or a legacy id without an organisation (gpt2, bert-base-uncased)
    if re.fullmatch(rf"{_REPO_ID}|[A-Za-z0-9][\w.\-]*", text) and not text.endswith(".json"):
        path = cached
        if path is None:
            raise ModelSpecError(f"MODEL 'hf:{text}': {text} is not in the local Hugging Face "
                                 "cache (nothing is downloaded here) and no such file or folder "
                                 "exists; pass its config as hf:path/to/config.json")
        return _hf_config_file(f"hf:{text}", path, model_args)
    raise ModelSpecError(f"MODEL 'hf:{text}': no such file or folder {text} (give hf:ARCH, "
                         "hf:path/to/config.json or hf:ORG/NAME)")


def _config_json(path: str) -> str:
    """``path`` itself, or the ``config.json`` of the folder ``path``."""
    import os

    if not os.path.isdir(path):
        return path
    found = os.path.join(path, "config.json")
    if not os.path.isfile(found):
        raise ModelSpecError(f"MODEL 'hf:{path}': the folder {path} holds no config.json")
    return found


def _hub_cache() -> str:
    """The Hugging Face hub cache, read from the environment now (``HF_HUB_CACHE``,
    else ``HF_HOME``/hub, else huggingface_hub's default)."""
    import os

    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _hf_cached(repo_id: str) -> Optional[str]:
    """The cached ``config.json`` of hub model ``repo_id`` (its ``main`` revision), or
    None; only the cache on disk is read."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=_hub_cache())
    except Exception:  # a malformed id or cache: the same as not cached
        return None
    return found if isinstance(found, str) else None


def _hf_has_class(name: str) -> bool:
    try:
        _hf_class(name, str)
    except ModelSpecError:
        return False
    return True


def _hf_class(name: str, missing: Callable[[], str]):
    """transformers' model class ``name`` (a ``PreTrainedModel``), else ``missing()``."""
    import transformers

    try:
        obj = getattr(transformers, name)
    except Exception:  # AttributeError, or a lazy import's missing dependency
        obj = None
    if not (isinstance(obj, type) and issubclass(obj, transformers.PreTrainedModel)):
        raise ModelSpecError(missing())
    return obj


def _hf_config_file(name: str, path: str, model_args: Dict[str, Any]) -> ModelSpec:
    """The spec of a ``config.json``: its ``model_type``'s config class, its
    ``architectures[0]`` model class (one of transformers' own)."""
    import json

    from transformers import CONFIG_MAPPING

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ModelSpecError(f"MODEL {name!r}: cannot read {path}: {reason(e)}") from None
    if not isinstance(data, dict):
        raise ModelSpecError(f"MODEL {name!r}: {path} is not a JSON object")
    model_type = data.get("model_type")
    if model_type not in CONFIG_MAPPING:
        raise ModelSpecError(f"MODEL {name!r}: {path} has model_type {model_type!r}, which "
                             "transformers does not know (remote code is not run)")
    archs = data.get("architectures") or []
    if not archs:
        raise ModelSpecError(f"MODEL {name!r}: {path} names no architectures; give the model "
                             "class as hf:ARCH (e.g. hf:BertForSequenceClassification) and this "
                             "config's fields as model_args")
    model_cls = _hf_class(str(archs[0]), lambda: (
        f"MODEL {name!r}: {path} names architecture {archs[0]!r}, which transformers does not "
        "define (remote code is not run); give a transformers class as hf:ARCH"))
    return _hf_spec(name, model_cls, CONFIG_MAPPING[model_type], data, model_args)


def _hf_fields(config_cls, base: Dict[str, Any]) -> Dict[str, Any]:
    """Every field a config of ``config_cls`` takes, with its default (``base``'s
    values first): the constructor's parameters, the fields of a default config,
    its ``attribute_map`` aliases and settable properties (``num_labels``)."""
    names: Dict[str, Any] = {}
    try:
        defaults = config_cls().to_dict()
    except Exception:  # a config that needs arguments (sub-configs)
        defaults = {}
    try:
        params = inspect.signature(config_cls.__init__).parameters.values()
    except (TypeError, ValueError):
        params = []
    for p in params:
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
            names[p.name] = None if p.default is inspect.Parameter.empty else p.default
    names.update(defaults)
    for alias, target in getattr(config_cls, "attribute_map", {}).items():
        names.setdefault(alias, names.get(target))
    for attr in dir(config_cls):
        value = getattr(config_cls, attr, None)
        if isinstance(value, property) and value.fset is not None and not attr.startswith("_"):
            names.setdefault(attr, None)
    names["attn_implementation"] = None
    names.update(base)
    return {k: v for k, v in names.items() if re.fullmatch(_IDENT, k) and not k.startswith("_")}


class _HFFactory:
    """``Model(config)``: the config made from ``base`` and the fields given
    (``attn_implementation`` sets the attention, "sdpa" where the class has it,
    else "eager"); its signature lists the config's fields with their defaults, so
    ``derive`` can vary them as constructor arguments."""

    def __init__(self, model_cls, config_cls, base: Dict[str, Any], fields: Dict[str, Any]):
        self.model_cls, self.config_cls, self.base = model_cls, config_cls, base
        self.__name__ = model_cls.__name__
        self.fields = fields
        self.__signature__ = inspect.Signature([
            inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v)
            for k, v in fields.items()])

    def config(self, **given):
        unknown = [k for k in given if k not in self.fields]
        if unknown:
            import difflib

            near = difflib.get_close_matches(unknown[0], list(self.fields), n=3)
            raise ModelSpecError("{model_args} " + literal(
                f"{unknown[0]!r}: {self.config_cls.__name__} has no such field"
                + (f" (did you mean {', '.join(near)}?)" if near else "")), model_args=NAMED)
        attn = given.pop("attn_implementation", None) or (
            "sdpa" if getattr(self.model_cls, "_supports_sdpa", False) else "eager")
        aliases = getattr(self.config_cls, "attribute_map", {})
        merged = {**self.base, **{aliases.get(k, k): v for k, v in given.items()}}
        merged.pop("architectures", None)
        config = self.config_cls.from_dict(merged)
        config._attn_implementation = attn
        return config

    def __call__(self, **given):
        return self.model_cls(self.config(**given))


def _hf_spec(name: str, model_cls, config_cls, base: Dict[str, Any],
             model_args: Dict[str, Any]) -> ModelSpec:
    """The spec of ``model_cls`` on ``base`` (a config's fields) with ``model_args``,
    and its input (:func:`_hf_input`)."""
    factory = _HFFactory(model_cls, config_cls, base, _hf_fields(config_cls, base))
    try:
        config = factory.config(**model_args)
    except ModelSpecError:
        raise
    except Exception as e:
        raise ModelSpecError(f"{name}: its config with " + "{model_args} failed: "
                             + literal(reason(e)), model_args=NAMED) from None
    spec = ModelSpec(name, factory, dict(model_args))
    _hf_input(spec, getattr(model_cls, "main_input_name", "input_ids"), config)
    return spec


def _int(config, field: str) -> Optional[int]:
    value = getattr(config, field, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _link(spec: ModelSpec, config, links: Dict[str, int]) -> None:
    """Tie input dimensions to config fields (``--input`` checked against them,
    ``derive`` varying both), each field's value put in the spec's arguments."""
    for field, dim in links.items():
        spec.args.setdefault(field, getattr(config, field))
    spec.input_links = dict(links)


def _hf_input(spec: ModelSpec, main: str, config) -> None:
    """The input a Hugging Face model takes, by its ``main_input_name`` and config:

    * ``input_ids``: token ids ``N, L`` below ``vocab_size``;
    * ``pixel_values`` (image classification): ``N, num_channels, image_size,
      image_size`` (the vision sub-config's for CLIP and SigLIP; 3 channels, 224
      where the config names none);
    * ``input_values``: audio samples ``N, T``, or for the Audio Spectrogram
      Transformer (a config with ``num_mel_bins`` and ``max_length``) a spectrogram
      ``N, max_length, num_mel_bins``;
    * ``input_features``: Whisper's log-mel spectrogram ``N, num_mel_bins,
      2·max_source_positions`` (its encoder takes exactly that many frames), or
      wav2vec2-BERT's features ``N, T, feature_projection_input_dim``.
    """
    import torch

    if main == "input_ids" and _int(config, "vocab_size"):
        positions = _int(config, "max_position_embeddings")
        length = min(128, positions) if positions and positions > 0 else 128
        spec.rank, spec.input_dims, spec.default_input = 2, "N,L token ids", (1, length)
        spec.input_dtype, spec.input_high = torch.long, config.vocab_size
    elif main == "pixel_values":
        vision = config if _int(config, "num_channels") else getattr(config, "vision_config", None)
        channels = _int(vision, "num_channels") or 3
        size = getattr(vision, "image_size", None) or getattr(config, "image_size", None) or 224
        h, w = (size, size) if isinstance(size, int) else tuple(size)[:2]
        if vision is config:
            _link(spec, config, {"num_channels": 1})
        spec.rank, spec.default_input = 4, (1, channels, h, w)
    elif main == "input_values" and _int(config, "num_mel_bins") and _int(config, "max_length"):
        _link(spec, config, {"max_length": 1, "num_mel_bins": 2})
        spec.rank, spec.input_dims = 3, "N,frames,mel bins (a spectrogram)"
        spec.default_input = (1, config.max_length, config.num_mel_bins)
    elif main == "input_values":
        spec.rank, spec.input_dims, spec.default_input = 2, "N,T audio samples", (1, 16000)
    elif main == "input_features" and _int(config, "num_mel_bins") \
            and _int(config, "max_source_positions"):
        _link(spec, config, {"num_mel_bins": 1})
        frames = 2 * config.max_source_positions  # the encoder's two convolutions, stride 1 and 2
        spec.rank, spec.input_dims = 3, f"N,mel bins,{frames} frames (a log-mel spectrogram)"
        spec.default_input = (1, config.num_mel_bins, frames)
    elif main == "input_features" and _int(config, "feature_projection_input_dim"):
        _link(spec, config, {"feature_projection_input_dim": 2})
        spec.rank, spec.input_dims = 3, "N,T,features"
        spec.default_input = (1, 100, config.feature_projection_input_dim)


def parse_spec(text: str, model_args: Optional[Dict[str, Any]] = None) -> ModelSpec:
    """A :class:`ModelSpec` for a built-in name (``cnn``, ``unet``, ``stack``, a
    DeepLabV3 architecture), ``torchvision:NAME``, a bare torchvision model name,
    ``timm:NAME``, ``hf:ARCH``/``hf:PATH``/``hf:ORG/NAME``, ``package.module:factory``
    or ``path/to/file.py:Name``.

    >>> parse_spec("torchvision:resnet18").args
    {'weights': None}
    >>> parse_spec("resnet18").name, parse_spec("stack").input_channels
    ('torchvision:resnet18', 16)
    >>> parse_spec("resnet")
    Traceback (most recent call last):
    ...
    complexity.zoo.ModelSpecError: MODEL 'resnet' is not cnn, unet, stack, a deeplabv3_* architecture, a torchvision model name (torchvision:NAME), timm:NAME, hf:ARCH, hf:PATH, hf:ORG/NAME, package.module:factory or path/to/file.py:Class
    >>> parse_spec("nosuch/model.py:Net")
    Traceback (most recent call last):
    ...
    complexity.zoo.ModelSpecError: MODEL 'nosuch/model.py:Net': no such file nosuch/model.py
    """
    import models

    model_args = dict(model_args or {})
    text = text.strip()
    if text in models.COLOURIZATION:
        return _colourization(text, model_args)
    if text in models.NAMES:
        return _builtin(text, model_args)
    if re.fullmatch(rf"torchvision:{_IDENT}", text):
        return _torchvision(text.split(":", 1)[1], model_args)
    if text.startswith("timm:") and re.fullmatch(r"[\w.\-]+", text[5:]):
        return _timm(text[5:], model_args)
    if text.startswith("hf:"):
        return _hf(text[3:].strip(), model_args)
    if is_file_spec(text):
        return _file(text, model_args)
    if re.fullmatch(rf"{_IDENT}(\.{_IDENT})*:{_IDENT}(\.{_IDENT})*", text):
        return _importable(text, model_args)
    if re.fullmatch(_IDENT, text):
        import torchvision

        if text in torchvision.models.list_models():
            return _torchvision(text, model_args)
    raise ModelSpecError(f"MODEL {text!r} is not cnn, unet, stack, a deeplabv3_* architecture, "
                         "a torchvision model name (torchvision:NAME), timm:NAME, hf:ARCH, "
                         "hf:PATH, hf:ORG/NAME, package.module:factory or path/to/file.py:Class")


def build_model(name: str, layers: int = 4, width: int = 16,
                model_args: Optional[Dict[str, Any]] = None):
    """``(model, input_channels)`` for ``name`` (any :func:`parse_spec` name), on
    the meta device (no memory, no download). ``layers`` and ``width`` shape
    ``stack`` only (n blocks of C channels); ``model_args`` are the constructor's
    keyword arguments (``--model-args``) of any model. Video models (N,C,T,H,W) are
    refused: a training step here takes one N,C,H,W image batch. A model whose
    constructor reads values (regnet_* rounds widths computed with tensors) cannot
    be built on meta: it is built on the CPU and moved to meta, which gives the
    same model.

    >>> net, c = build_model("unet", model_args={"num_filters": 4})
    >>> type(net).__name__, c, sum(p.numel() for p in net.parameters())
    ('UNet', 1, 8772)
    >>> next(build_model("regnet_x_400mf")[0].parameters()).device  # built on the CPU
    device(type='meta')
    """
    import torch

    model_args = dict(model_args or {})
    if name == "stack":
        clash = sorted({"layers", "width"} & set(model_args))
        if clash:
            raise ModelSpecError("{model_args} " + clash[0] + ": stack's " + clash[0]
                                 + " is set by {" + clash[0] + "}; drop it from {model_args}",
                                 model_args=NAMED, **{clash[0]: NAMED})
        model_args.update(layers=layers, width=width)
    spec = parse_spec(name, model_args)
    if spec.rank == 5:
        raise ModelSpecError(f"model {name!r} takes N,C,T,H,W video clips; finetune supports "
                             "models that take one N,C,H,W image batch")
    try:
        with torch.device("meta"):
            return spec.build(), spec.input_channels
    except ModelSpecError as on_meta:
        try:
            with torch.device("cpu"):
                model = spec.build()
        except ModelSpecError:
            raise on_meta from None
        return model.to("meta"), spec.input_channels


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
        raise ModelSpecError("{model_args} is not valid JSON ("
                             + literal(f"{e.msg} at character {e.pos}") + ")",
                             model_args=NAMED) from None
    if not isinstance(value, dict):
        raise ModelSpecError("{model_args} must be a JSON object of constructor arguments, "
                             'e.g. {{"num_classes": 10}}', model_args=NAMED)
    return value
