"""The reports under reports/, one writer module per report, each with
``write(ctx) -> [paths]`` taking a :class:`~complexity.reproduce.context.Context`.

:data:`REPORT_STEPS` is the one list of them, in the order ``python -m complexity
reproduce`` runs them; adding a report is a module and one line here. The writer
modules import torch, sympy and matplotlib only when they write, so importing this
package stays light.
"""
from __future__ import annotations

from complexity.reproduce import (batch_size, colourization, counts, finetune,
    finetune_options, invariance, segmentation)
from complexity.reproduce.context import Context

REPORT_STEPS = [
    ("counts", counts.write),
    ("finetune", finetune.write),
    ("finetune_options", finetune_options.write),
    ("colourization", colourization.write),
    ("batch_size", batch_size.write),
    ("invariance", invariance.write),
    ("segmentation", segmentation.write),
]

#: the steps that train into the runs folder: the only ones ``--runs`` and ``--fresh`` change
USES_RUNS = ("colourization", "batch_size", "invariance")

__all__ = ["Context", "REPORT_STEPS", "USES_RUNS"]
