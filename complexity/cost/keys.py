"""The names every layer of :mod:`complexity.cost` shares: the quantities of one
training step (:data:`KEYS`), and the parts its memory is made of
(:class:`Category`, :data:`PARTS`) — what the prediction's step log tags each
allocation with, what ``fit`` shows, what a measurement can sort its storages into.

>>> KEYS[0], KEYS[-1]
('param_bytes', 'backward_flops')
>>> PARTS
('weights', 'grads', 'optimizer', 'activations', 'transient')
"""
from __future__ import annotations

import enum

#: The quantities of one training step, in bytes or FLOPs (all exact integers).
KEYS = ("param_bytes", "grad_bytes", "optimizer_bytes", "saved_activation_bytes",
        "peak_bytes", "forward_flops", "backward_flops")


class Category(enum.Enum):
    """What a storage of the step is (as ``torch.distributed._tools.mem_tracker``
    tags its storages), in the order tables show the parts of the peak.

    * ``WEIGHTS``: every parameter and buffer (trainable or not);
    * ``GRADS``: parameters' ``.grad`` buffers;
    * ``OPTIMIZER``: the optimizer's state (SGD's momentum; Adam's ``exp_avg``,
      ``exp_avg_sq`` and ``step``), and a GradScaler's ``scale`` and ``growth_tracker``;
    * ``ACTIVATIONS``: forward storages — kept for backward, or not yet freed —
      and the input and the target;
    * ``TRANSIENT``: activation gradients, a call's workspace, the update's and the
      GradScaler's temporaries.
    """

    WEIGHTS = "weights"
    GRADS = "grads"
    OPTIMIZER = "optimizer"
    ACTIVATIONS = "activations"
    TRANSIENT = "transient"


#: The parts of the peak, in the order tables show them.
PARTS = tuple(c.value for c in Category)
