"""``rms_norm`` (``torch.nn.functional.rms_norm``, ``nn.RMSNorm``).

On the CPU ``rms_norm`` is ``CompositeImplicitAutograd``
(``aten/src/ATen/native/layer_norm.cpp``: ``x * rsqrt(mean(x²) + eps)``, then
times the weight), so autograd sees its inner ops: ``pow`` keeps the input,
``rsqrt`` its result (one value per row), ``mul`` the input and that result, and
with a weight, the normalized input (for the weight's gradient). As for
:mod:`.composite`'s calls, the rule runs the call on meta tensors of the same
sizes, dtypes and ``requires_grad`` and reads off what autograd saves
(``saved_tensors_hooks``) and what ``FlopCounterMode`` counts
(:func:`.composite.emulate`). Hugging Face's ``LlamaRMSNorm`` and kin are written
out in Python (``pow``, ``mean``, ``rsqrt``, ``mul``): their calls meet their own
rules.
"""
from __future__ import annotations

from typing import Optional

import torch

from complexity.cost.predict.rules.composite import emulate
from complexity.cost.predict.rules.registry import Context, rule


@rule("rms_norm")
def rms_norm(ctx: Context) -> Optional[bool]:
    """What the decomposition keeps, read off a meta run."""
    if ctx.graph.device_type != "cpu":
        return False  # CUDA has a fused kernel (input and rstd kept): not restated here
    return emulate(ctx, torch.nn.functional.rms_norm)
