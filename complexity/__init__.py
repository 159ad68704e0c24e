"""complexity — what a convolutional network costs, exactly, and proof.

The Python API. Formulas need only sympy; counting a real module imports torch
when first called.

>>> import complexity
>>> complexity.formulas("cnn", convention="lecture")["weights"]
NC**2*k**2 + NC*NF*k**2 + 8*NF**2*k**2 + NF*NIC*k**2
>>> from models.colourization import UNet
>>> complexity.count(UNet(3, 32, 24, 1), (1, 1, 32, 32), convention="course")
{'weights': 112344, 'outputs': 131072, 'connections': 18886656}
"""
from __future__ import annotations

from complexity.counting.conventions import CONVENTIONS, DEFAULT_CONVENTION, QUANTITIES

__all__ = ["CONVENTIONS", "QUANTITIES", "formulas", "layer_formulas", "evaluate",
           "count", "count_layers"]
__version__ = "0.1.0"


def __getattr__(name):
    # sympy is imported on first use of a formula, so that commands which need no
    # formula (profile, finetune) start without it.
    if name in ("formulas", "layer_formulas", "evaluate"):
        from complexity.counting import symbolic

        return getattr(symbolic, name)
    raise AttributeError(f"module 'complexity' has no attribute {name!r}")


def count(module, input_shape, convention: str = DEFAULT_CONVENTION):
    """Weights, outputs and connections of a real module, measured with hooks on
    the meta device. See :func:`complexity.counting.hooks.count`."""
    from complexity.counting.hooks import count as _count

    return _count(module, input_shape, convention)


def count_layers(module, input_shape, convention: str = DEFAULT_CONVENTION):
    """Per-layer counts of a real module. See :func:`complexity.counting.hooks.count_layers`."""
    from complexity.counting.hooks import count_layers as _count_layers

    return _count_layers(module, input_shape, convention)
