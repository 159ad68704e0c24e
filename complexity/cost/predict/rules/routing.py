"""Calls of mixture-of-experts routing and of positions read off values (no FLOPs
counted, as in ``FlopCounterMode``).

Kept (``tools/autograd/derivatives.yaml``):

* :data:`POSITIONS` (``nonzero``, ``argwhere``, ``unique``, ``unique_consecutive``,
  ``bincount``, ``where(cond)`` alone, which is ``nonzero(cond, as_tuple=True)``)
  and the comparisons' long names (``greater`` …): an integer or boolean result,
  which makes no autograd node; nothing kept. On the meta device these want
  values (:mod:`complexity.cost.predict.shadow` answers them).
* ``index_add``/``index_add_`` (an expert's output added at its tokens' rows):
  the input's gradient is the gradient itself; the source's
  ``grad.index_select(dim, index).expand_as(source)``, so the index and the source
  are kept when the source requires grad, nothing otherwise.
"""
from __future__ import annotations

from typing import Optional

import torch

from complexity.cost.predict.rules.registry import Context, rule

#: Calls whose result is positions or counts (no node; nothing kept).
POSITIONS = ("nonzero", "argwhere", "unique", "unique_consecutive", "bincount",
             "greater", "greater_equal", "less", "less_equal", "not_equal")


@rule(*POSITIONS)
def keep_nothing(ctx: Context) -> None:
    """Nothing kept."""


@rule("index_add", "index_add_")
def index_add(ctx: Context) -> Optional[bool]:
    """The index and the source kept if the source requires grad."""
    index, source = ctx.arg(2, "index"), ctx.arg(3, "source")
    if not (isinstance(index, torch.Tensor) and isinstance(source, torch.Tensor)):
        return False
    at = {id(t): i for i, t in enumerate(ctx.ins)}
    ctx.call.kept = ([ctx.input_storage(at[id(index)]), ctx.input_storage(at[id(source)])]
                     if source.requires_grad else [])
    return None
