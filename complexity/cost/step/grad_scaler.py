"""Loss scaling with ``torch.amp.GradScaler``, as a step's memory sees it.

The scaler keeps two resident scalars between steps, made by the first
``scaler.scale(loss)``: ``_scale`` (float32) and ``_growth_tracker`` (int32)
(:data:`SCALER_BLOCKS`). ``scaler.step(opt)`` first unscales the gradients
(``unscale_`` in ``torch/amp/grad_scaler.py``), making a few scalars around the
update: :data:`UNSCALE` lists them in order, the script the liveness schedule
plays (:mod:`complexity.cost.predict.schedule`).

>>> SCALER_BYTES
8
>>> [name for op, _, name in UNSCALE if op == "alloc"]
['double', 'reciprocal', 'inv_scale', 'found_inf', 'inv_scale copy', 'found_inf copy']
"""
from __future__ import annotations

#: The GradScaler's resident state: ``_scale`` (float32) and ``_growth_tracker``
#: (int32), one element each: two storages, and their bytes.
SCALER_BLOCKS = (4, 4)
SCALER_BYTES = sum(SCALER_BLOCKS)

#: ``scaler.step`` -> ``unscale_``, before the update: ``inv_scale =
#: scale.double().reciprocal().float()`` (two float64 scalars at once), then
#: ``found_inf`` and the per-device copies of both float32 scalars
#: (``_MultiDeviceReplicator.get``), alive while
#: ``_amp_foreach_non_finite_check_and_unscale_`` works on the gradients in place.
#: ``(op, bytes, name)`` with op ``alloc``, ``free`` or ``mark`` (a moment the
#: peak is read); the copy of ``found_inf`` stays through the update
#: (:data:`AFTER_UPDATE` frees it).
UNSCALE = (
    ("alloc", 8, "double"),            # scale.double()
    ("alloc", 8, "reciprocal"),
    ("mark", 0, ""),
    ("free", 8, "double"),
    ("alloc", 4, "inv_scale"),         # .float()
    ("free", 8, "reciprocal"),
    ("alloc", 4, "found_inf"),
    ("alloc", 4, "inv_scale copy"),
    ("alloc", 4, "found_inf copy"),
    ("mark", 0, ""),                   # _amp_foreach_non_finite_check_and_unscale_
    ("free", 4, "inv_scale copy"),
    ("free", 4, "inv_scale"),
    ("free", 4, "found_inf"),
)

#: After the update, ``scaler.update()`` works in place; the copy of ``found_inf``
#: goes.
AFTER_UPDATE = (("free", 4, "found_inf copy"),)
