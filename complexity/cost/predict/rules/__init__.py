"""Per-call rules: what one functional call keeps for backward and what it costs.

Each rule restates PyTorch's derivative definitions
(``tools/autograd/derivatives.yaml``) and ``torch.utils.flop_counter``'s
formulas for one family of calls, one module per family (listed below the table):

============================  ====================================  =============================
call                          kept for backward (if a grad flows)   FLOPs (forward; backward)
============================  ====================================  =============================
conv1d/2d/3d,                 input (weight is a parameter)         2·out·fan-in (transposed:
conv_transpose*d,                                                   2·in·numel(w[0])); same
linear                                                              again for input grad, for
                                                                    weight grad
matmul, bmm, mm, addmm,       each operand, for the other's grad    2·out·K; same again per
baddbmm (both ≥ 2-D)                                                operand grad
einsum, gather, norm,         what autograd saves when the call     einsum: its bmm's, both ways
nll_loss, _weight_norm        runs on meta tensors (gather: the     (FlopCounterMode); else 0
                              index; norm: input and result;
                              nll_loss: input, target, a scalar;
                              _weight_norm: v, g and the norms)
scaled_dot_product_attention  CPU flash kernel: q, k, v, output,    flash: 0; math: its
                              logsumexp, the mask; math path:       matmuls'
                              what its matmuls, softmax and
                              dropout keep; other devices:
                              declined
batch_norm, train             input, save_mean, save_invstd (2C)    0
max_pool*d,                   input, int64 indices (output size)    0
adaptive_max_pool*d
avg_pool*d,                   input (adaptive to 1×1: nothing, a    0
adaptive_avg_pool*d           mean)
group_norm                    input, mean and rstd per (N, group)   0
dropout, train                mask: bool on CUDA, else float        0
layer_norm                    input, mean and rstd per row          0
embedding                     the indices (if the weight trains)    0
relu, sigmoid, tanh, exp,     output                                0
sqrt, rsqrt
softmax, log_softmax,         output                                0
softmin
hardswish, silu, gelu, glu,   input (in-place forms: a copy)        0
relu6 …
log, abs, pow, clamp          input (in-place forms: a copy;        0
                              clamp between tensors: and them); pow
                              of a number: exponent, result; of
                              two tensors: both and the result
__rdiv__ (number / x)         the reciprocal (no node: transient)   0
div_ by a tensor              the divisor; the old dividend (a      0
                              copy) if the divisor trains
addcmul                       each factor, for the other's grad     0
logsumexp                     input, result                         0
mul                           each operand, for the other's grad    0
div                           a tensor divisor (and the dividend,   0
                              for the divisor's grad)
cross_entropy                 log-softmax output, target,           0
                              total_weight (a 4-byte scalar)
where, masked_fill            the bool mask                         0
cos, sin                      input (rotary tables: no node)        0
softplus, square, erf, log1p, input (logsigmoid: and a buffer;      0
mish, logsigmoid, mul_        mul_: its tensor operand, a copy of
                              its old value if the operand trains)
expm1, reciprocal             output                                0
rms_norm                      what autograd saves on meta tensors   0
                              (CPU: input, rstd, normalized input)
min, max, amin, amax,         along a dim: int64 indices (amin/     0
minimum, maximum              amax: input, result); over all:
                              input, result; two tensors: both
x[i] indexed by tensors,      the index tensors (by slices:         0
x[i] = v (__setitem__)        nothing)
repeat_interleave             by a tensor: its int64 index          0
index_select, topk, scatter   the index (topk: its int64 indices;   0
                              scatter_add: if the source trains)
index_add                     index and source, if the source       0
                              trains
nonzero, unique, bincount,    nothing (no node)                     0
where alone, greater …,
as_strided, diff,
exponential_, requires_grad_,
init fills
acos, asin                    input                                 0
argmax, argmin, floor, ceil,  nothing (no node, or a zero           0
round, trunc, sign            gradient)
cumsum, tril, triu, copy_,    nothing (views; integer casts: no     0
tensor_split, long, int,      node)
bool, bfloat16
instance_norm                 input, mean and invstd per (N, C),    0
                              repeat(N) copies of weight and
                              running statistics
grid_sample                   input and grid                        0
unfold, fold, meshgrid        nothing                               0
lstm, gru, rnn_tanh,          what the CPU kernel keeps, read off   FlopCounterMode's, both ways
rnn_relu                      one run on zero CPU tensors (LSTM:    (LSTM, oneDNN: 0)
                              oneDNN's inputs, outputs, workspace)
fft_fft, fft_fftn, fft_rfft   a real input to rfft*, ihfft, fft,    0
…, view_as_real,              ifft: the input; fftn/fft2 of one:
view_as_complex, polar        its complex copy, transient; polar:
                              the result; else nothing
cat, add, sub, neg, to,       nothing                               0
views, pad, roll,
interpolate, sum, mean,
comparisons, factories,
flip, tile, repeat, one_hot,
broadcast_to
============================  ====================================  =============================

The families: :mod:`.conv` (convolutions, linear), :mod:`.matmul` (mm, bmm,
addmm, baddbmm, matmul), :mod:`.composite` (einsum, gather, norm, nll_loss, _weight_norm: run on
meta tensors), :mod:`.attention` (``scaled_dot_product_attention``), :mod:`.norm`
(batch_norm, layer_norm, group_norm), :mod:`.pool`, :mod:`.dropout`,
:mod:`.embedding`, :mod:`.index` (``x[i]``, ``x[i] = v``, ``tensor_split``, integer
casts, repeat_interleave, cumsum, tril, min/max, index_select, topk, argmax,
scatter),
:mod:`.instance_norm`, :mod:`.recurrent` (lstm, gru, rnn_tanh, rnn_relu: run on
the CPU), :mod:`.sampling` (grid_sample,
unfold, fold, meshgrid), :mod:`.spectral` (the ``fft_*`` transforms, ``polar``,
``view_as_real``, ``view_as_complex``), :mod:`.softmax` (softmax, log_softmax, softmin, logsumexp),
:mod:`.activation` (relu, sigmoid, tanh, the keep-input activations and their
in-place forms), :mod:`.elementwise` (mul, div, ``number / x``, exp, log, pow, where, masked_fill, and
the element-wise calls that keep nothing) and :mod:`.shape` (views and calls that
keep nothing); and for text models, :mod:`.rotary` (cos, sin), :mod:`.pointwise`
(softplus, square, expm1, logsigmoid, ``mul_``), :mod:`.rms_norm` and :mod:`.routing`
(mixture-of-experts routing: ``index_add``, ``nonzero``, ``unique_consecutive``,
``bincount``, ``greater`` …) and :mod:`.aliases` (``multiply``, ``acos``, ``asin``,
``as_strided``, ``diff``, ``exponential_``, ``requires_grad_``, the ``nn.init`` fills). Cross-entropy, the loss, is handled by
:mod:`complexity.cost.predict.trace` (two nodes: log-softmax, nll_loss); the
registry itself is :mod:`.registry`.

A call makes an autograd node only if one of its tensor arguments requires grad
("input gradients only where something upstream trains"); with no node, nothing
is kept and no backward FLOPs are counted, whatever the rule said. A call whose
name has no rule, or whose rule declines it, is *unmodelled*, on the gradient path
or off it, factories included: counted as keeping nothing and costing no FLOPs,
and reported (there is no default rule).

>>> sorted(n for n, r in RULES.items() if r is RULES["conv2d"])[:3]
['conv1d', 'conv2d', 'conv3d']
>>> lookup("exp").__name__, lookup("no_such_call")
('keep_output', None)
"""
from __future__ import annotations

from complexity.cost.predict.rules import (  # noqa: F401  (importing a family registers its rules)
    activation,
    composite,
    conv,
    dropout,
    elementwise,
    embedding,
    index,
    instance_norm,
    matmul,
    norm,
    pool,
    sampling,
    shape,
    softmax,
    spectral,
)
from complexity.cost.predict.rules import attention  # noqa: F401,E402  (after shape: its views first)
from complexity.cost.predict.rules import pointwise, rms_norm, rotary  # noqa: F401,E402
from complexity.cost.predict.rules import recurrent  # noqa: F401,E402  (vision: LSTM, GRU, RNN)
from complexity.cost.predict.rules import aliases, routing  # noqa: F401,E402  (text zoo)
from complexity.cost.predict.rules.registry import RULES, Context, Rule, lookup, rule

__all__ = ["RULES", "Context", "Rule", "lookup", "rule"]
