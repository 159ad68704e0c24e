"""The cost of one Adam training step: memory and FLOPs, predicted and measured.

Lowest first: :mod:`~complexity.cost.graph` (the record of a traced step),
:mod:`~complexity.cost.rules` (per-call rules, a registry),
:mod:`~complexity.cost.trace` (the tracer), :mod:`~complexity.cost.schedule`
(peak memory), :mod:`~complexity.cost.predict`; :mod:`~complexity.cost.measure`
and :mod:`~complexity.cost.flops` (the measurement); :mod:`~complexity.cost.closed_forms`
(formulas); :mod:`~complexity.cost.trainable` (which parameters train) and
:mod:`~complexity.cost.sweep` (grids of configurations, fitted slopes).
"""
