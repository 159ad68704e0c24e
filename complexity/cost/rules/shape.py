"""Calls that keep nothing for backward and cost no FLOPs.

Views (:data:`complexity.cost.graph.ALIASING`) make no storage; the calls of
:data:`KEEP_NOTHING` need only sizes for their backward (``derivatives.yaml``):
concatenation, addition, nearest/bilinear upsampling, sums and means, and the
factories (which, called with no tensor argument, never reach a rule).
"""
from __future__ import annotations

from complexity.cost.graph import ALIASING
from complexity.cost.rules.registry import Context, rule

#: Calls that keep nothing for backward (their backward needs only sizes).
KEEP_NOTHING = ("cat", "add", "add_", "__add__", "__iadd__", "__radd__", "interpolate",
                "upsample", "sum", "mean", "zeros", "ones", "empty", "randn")


@rule(*sorted(ALIASING), *KEEP_NOTHING)
def keep_nothing(ctx: Context) -> None:
    """Nothing kept, no FLOPs."""
