"""Models as the API takes them: an ``nn.Module``, or a spec string built on a
device, with the input shape a spec gets by default."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

#: The input a spec gets when none is given (as ``profile``/``derive`` on the command line).
DEFAULT_INPUT = (1, 3, 224, 224)
DEFAULT_VIDEO_INPUT = (1, 3, 16, 112, 112)


def input_shape_of(spec, input_shape) -> Tuple[int, ...]:
    """The input shape: given (a sequence or ``"1,3,224,224"``), or the spec's default."""
    from complexity.zoo import ModelSpecError, parse_input

    if input_shape is None:
        if spec is None:
            raise ModelSpecError("input_shape is needed for a module (e.g. (1, 3, 224, 224))")
        if spec.default_input:  # hf: token ids (1, 128), a ViT's image size, audio samples
            return tuple(spec.default_input)
        if spec.input_links:  # cnn/unet: their own input channels, the course's 32×32
            return (1, spec.args["num_in_channels"], 32, 32)
        return DEFAULT_VIDEO_INPUT if spec.rank == 5 else DEFAULT_INPUT
    if isinstance(input_shape, str):
        return parse_input(input_shape)
    shape = tuple(input_shape)
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ModelSpecError(f"input_shape {shape!r}: need integers >= 1 (e.g. (1, 3, 224, 224))")
    return shape


def spec_of(model, model_args: Optional[Dict[str, Any]]):
    """A :class:`complexity.zoo.ModelSpec` for a spec string, a spec or a factory."""
    import dataclasses

    from complexity.zoo import ModelSpec, parse_spec

    model_args = dict(model_args or {})
    if isinstance(model, str):
        return parse_spec(model, model_args)
    if isinstance(model, ModelSpec):
        return dataclasses.replace(model, args={**model.args, **model_args})
    if callable(model):
        name = getattr(model, "__qualname__", None) or type(model).__name__
        return ModelSpec(name, model, model_args)
    raise TypeError(f"model must be an nn.Module, a spec string or a factory, "
                    f"not {type(model).__name__}")


def build(spec, shape, device: str):
    """Build ``spec`` on ``device`` after checking ``shape`` against it (as the CLI does)."""
    import torch

    from complexity.errors import Given, literal
    from complexity.zoo import ModelSpecError, check_input

    check_input(spec, shape)
    with torch.device(device):
        try:
            return spec.build()
        except ModelSpecError as e:
            text = str(e)
            if device == "meta" and "failed" in text and ("NotImplementedError" in text
                                                          or "meta" in text.lower()):
                raise ModelSpecError(literal(text) + "; try {device}",
                                     device=Given("cpu", "cpu")) from None
            raise ModelSpecError(text) from None


def resolve_model(model, input_shape, model_args=None, device: str = "meta"):
    """``(spec or None, name, input shape, module)`` for any accepted model: an
    ``nn.Module``, a spec string (:func:`complexity.zoo.parse_spec`), a
    :class:`~complexity.zoo.ModelSpec` or a factory, built on ``device``; the input
    shape given (a sequence or ``"1,3,224,224"``) or the spec's default. ``ValueError``
    (one line) for a spec, argument or input that cannot be used."""
    from torch import nn

    if isinstance(model, nn.Module):
        if model_args:
            raise TypeError("model_args applies to a spec or a factory, not to a built module")
        return None, type(model).__name__, input_shape_of(None, input_shape), model
    spec = spec_of(model, model_args)
    shape = input_shape_of(spec, input_shape)
    return spec, spec.name, shape, build(spec, shape, device)
