"""The named counting conventions (lecture, course, torch), as data.

A convention answers three questions about every layer, in the style of NNI's
FLOPs/params profiler (small per-module rules with explicit switches):

* which parameters are *weights* (``weight_params``: ``(kind, parameter name)``
  pairs, or ``None`` for "every parameter");
* whose output units are *outputs* (``output_kinds``);
* whether a convolution's bias counts as one more *connection* per output unit
  (``connection_bias``).

Both the symbolic layer algebra (:mod:`complexity.counting.symbolic`) and the hook
counter (:mod:`complexity.counting.hooks`) apply them through one function,
:meth:`Convention.layer_quantities`; they obtain the sizes it combines in independent
ways (formulas versus real tensors). docs/conventions.md states the conventions.

>>> CONVENTIONS["lecture"].counts_weight("conv", "bias")
False
>>> CONVENTIONS["course"].counts_output("maxpool")
True
>>> CONVENTIONS["torch"].counts_weight("batchnorm", "weight")
True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import FrozenSet, Optional, Tuple

#: Layer kinds the colourization nets are built from (conv, max-pool, upsample, BN, ReLU).
LAYER_KINDS = ("conv", "maxpool", "upsample", "batchnorm", "relu")

QUANTITIES = ("weights", "outputs", "connections")


@dataclass(frozen=True)
class Convention:
    name: str
    summary: str
    weight_params: Optional[FrozenSet[Tuple[str, str]]]  # None: every parameter
    output_kinds: FrozenSet[str]
    connection_bias: bool

    def counts_weight(self, kind: str, param: str) -> bool:
        """Whether parameter ``param`` of a ``kind`` layer counts as weights."""
        return self.weight_params is None or (kind, param) in self.weight_params

    def counts_output(self, kind: str) -> bool:
        """Whether the output units of a ``kind`` layer count as outputs."""
        return kind in self.output_kinds

    def layer_quantities(self, kind: str, params, out_units, fan_in=0, has_bias: bool = False,
                         zero=0):
        """Weights, outputs and connections of one layer, whatever the number type:
        sympy expressions (the symbolic algebra) or integers (the hook counter).
        ``params`` maps parameter names to sizes; ``fan_in`` and ``has_bias`` matter
        for convolutions only (a connection is one input unit feeding one output
        unit; the bias is one more under a convention with ``connection_bias``).

        >>> CONVENTIONS["course"].layer_quantities("conv", {"weight": 36, "bias": 4}, 64, 9, True)
        {'weights': 40, 'outputs': 64, 'connections': 640}
        """
        weights = sum((n for p, n in params.items() if self.counts_weight(kind, p)), zero)
        outputs = out_units if self.counts_output(kind) else zero
        connections = zero
        if kind == "conv":
            connections = out_units * (fan_in + int(self.connection_bias and has_bias))
        return {"weights": weights, "outputs": outputs, "connections": connections}


CONVENTIONS = {
    # The lecture's definition: a weight is a kernel entry, an output a conv unit,
    # a connection one multiply of a kernel entry with an input unit.
    "lecture": Convention(
        name="lecture",
        summary="conv kernels only; conv output units; conv units x k^2*Cin",
        weight_params=frozenset({("conv", "weight")}),
        output_kinds=frozenset({"conv"}),
        connection_bias=False,
    ),
    # What the course's answer key counts (the default).
    "course": Convention(
        name="course",
        summary="conv kernel + bias, BN gamma/beta; conv + pool + upsample units; "
        "conv units x (k^2*Cin + 1)",
        weight_params=frozenset(
            {("conv", "weight"), ("conv", "bias"), ("batchnorm", "weight"), ("batchnorm", "bias")}
        ),
        output_kinds=frozenset({"conv", "maxpool", "upsample"}),
        connection_bias=True,
    ),
    # What PyTorch itself reports: sum of numel, every leaf output, conv MACs.
    "torch": Convention(
        name="torch",
        summary="every parameter; every leaf module's output units; conv MACs",
        weight_params=None,
        output_kinds=frozenset(LAYER_KINDS),
        connection_bias=False,
    ),
}

DEFAULT_CONVENTION = "course"


def get(name: str) -> Convention:
    """The convention called ``name``; ``ValueError`` naming the choices otherwise.

    >>> get("course").name
    'course'
    """
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown convention {name!r}; choose one of {', '.join(CONVENTIONS)}"
        ) from None
