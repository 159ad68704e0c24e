"""The names of the quantities of one training step, which every layer of
:mod:`complexity.cost` shares (prediction, measurement, fit, the renderings).

>>> KEYS[0], KEYS[-1]
('param_bytes', 'backward_flops')
"""

#: The quantities of one training step, in bytes or FLOPs (all exact integers).
KEYS = ("param_bytes", "grad_bytes", "optimizer_bytes", "saved_activation_bytes",
        "peak_bytes", "forward_flops", "backward_flops")
