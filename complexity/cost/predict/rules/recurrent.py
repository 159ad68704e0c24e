"""Recurrent layers: ``lstm``, ``gru``, ``rnn_tanh``, ``rnn_relu`` (``torch._VF``,
what ``nn.LSTM``/``nn.GRU``/``nn.RNN`` call).

On the CPU, ``aten::lstm`` (``aten/src/ATen/native/RNN.cpp``) hands float inputs to
oneDNN when ``use_mkldnn`` holds: one ``mkldnn_rnn_layer`` per layer and
direction, which keeps the layer's input (a seq-first copy when ``batch_first``),
its weights, ``hx``/``cx``, its output, ``hy``/``cy`` and a ``workspace``: an
opaque ``uint8`` buffer whose size oneDNN decides from the sizes (its gates and
states, each region page-aligned: 28,672 bytes for 5 steps of 3 × 6). The meta
and fake kernels make that workspace empty, so no run without data sizes it.
GRU and the plain RNNs decompose into ``linear``, gates and element-wise calls.
Either way the rule runs the call itself once on zero CPU tensors of the
arguments' sizes and strides (:func:`.composite.emulate`, ``device="cpu"``) and
reads off what autograd saves and what ``FlopCounterMode`` counts: the same kernel
the real CPU step runs (``FlopCounterMode`` has no formula for
``mkldnn_rnn_layer``: 0 FLOPs, as measured). Declined (unmodelled) for other
devices (cuDNN keeps a reserve of its own) and for calls whose tensors exceed
:data:`MOST_BYTES`.
"""
from __future__ import annotations

from typing import Optional

import torch

from complexity.cost.predict.rules.composite import emulate
from complexity.cost.predict.rules.registry import Context, rule

#: The most bytes of arguments a CPU emulation takes (its activations are as many
#: again): above, the call is declined rather than run.
MOST_BYTES = 256 * 2**20

_CALLS = {"lstm": "lstm", "gru": "gru", "rnn_tanh": "rnn_tanh", "rnn_relu": "rnn_relu"}


@rule(*_CALLS)
def recurrent(ctx: Context) -> Optional[bool]:
    """What the CPU kernel keeps (oneDNN's workspace included) and counts, read off
    one run on zero CPU tensors."""
    if ctx.graph.device_type != "cpu":
        return False
    if sum(t.numel() * t.element_size() for t in ctx.ins) > MOST_BYTES:
        return False
    # oneDNN's backward allocates its own buffers beside the gradients it returns
    # (exact for one direction; the decomposed GRU/RNN free theirs as they go)
    return emulate(ctx, getattr(torch._VF, _CALLS[ctx.name]), device="cpu",
                   backward_workspace=ctx.name == "lstm")
