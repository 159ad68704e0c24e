"""complexity — what a convolutional network costs, exactly, and proof.

The Python API, named like the commands:

* :func:`formulas`, :func:`layer_formulas`, :func:`evaluate` — the exact weights,
  outputs and connections of the course's colourization CNN and UNet (``report``);
* :func:`count`, :func:`count_layers` — the same three quantities counted with
  forward hooks on any real module;
* :func:`profile`, :func:`derive` — per-layer params, outputs and MACs of any
  PyTorch model, and verified formulas for them (``profile``, ``derive``);
* :func:`step_cost` — memory and FLOPs of one training step (the course's: Adam,
  float32), predicted and measured (``finetune``, whose options choose others).

``import complexity`` is light: formulas import sympy on first use, counting and
costing import torch when first called.

>>> import complexity
>>> complexity.formulas("cnn", convention="lecture")["weights"]
NC**2*k**2 + NC*NF*k**2 + 8*NF**2*k**2 + NF*NIC*k**2
>>> from models.colourization import UNet
>>> complexity.count(UNet(3, 32, 24, 1), (1, 1, 32, 32), convention="course")
{'weights': 112344, 'outputs': 131072, 'connections': 18886656}
>>> complexity.profile("unet").totals()["params"] == complexity.count(
...     UNet(3, 32, 24, 1), (1, 1, 32, 32), convention="torch")["weights"]
True
"""
from __future__ import annotations

from complexity.counting.conventions import CONVENTIONS, DEFAULT_CONVENTION, QUANTITIES

__all__ = ["CONVENTIONS", "QUANTITIES", "formulas", "layer_formulas", "evaluate",
           "count", "count_layers", "profile", "derive", "step_cost",
           "Profile", "ProfileLayer", "Derivation", "StepCost"]
__version__ = "0.1.0"

_SYMBOLIC = ("formulas", "layer_formulas", "evaluate")
_API = ("profile", "derive", "step_cost", "Profile", "ProfileLayer", "Derivation", "StepCost")


def __getattr__(name):
    # sympy is imported on first use of a formula, so that commands which need no
    # formula (profile, finetune) start without it; complexity.api imports torch
    # inside its functions only.
    if name in _SYMBOLIC:
        from complexity.counting import symbolic

        return getattr(symbolic, name)
    if name in _API:
        from complexity import api

        return getattr(api, name)
    raise AttributeError(f"module 'complexity' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


def count(module, input_shape, convention: str = DEFAULT_CONVENTION):
    """Weights, outputs and connections of a real module, measured with hooks on
    the meta device. See :func:`complexity.counting.hooks.count`."""
    from complexity.counting.hooks import count as _count

    return _count(module, input_shape, convention)


def count_layers(module, input_shape, convention: str = DEFAULT_CONVENTION):
    """Per-layer counts of a real module. See :func:`complexity.counting.hooks.count_layers`."""
    from complexity.counting.hooks import count_layers as _count_layers

    return _count_layers(module, input_shape, convention)
