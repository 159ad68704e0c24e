"""Each cost rule alone, against PyTorch itself.

One call runs on small real CPU tensors twice: once under
``torch.autograd.graph.saved_tensors_hooks`` and ``FlopCounterMode`` (the oracle:
what autograd really keeps, each storage once, parameters and buffers left out,
and the FLOPs PyTorch counts forward and backward), once under the tracer of
:mod:`complexity.cost.predict.trace` (:func:`trace_calls`: the rule's prediction for that
call). Kept storages are compared by size and by what they are: an input of the
call (``in0``, ``in1``), its result (``out``) or a storage of its own (``new``:
indices, masks, statistics, copies).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from complexity.cost.predict.prediction import predict_with_unmodelled
from complexity.cost.predict.rules import RULES, lookup, rule
from complexity.cost.predict.trace import trace_calls


def _label(key, inputs, out) -> str:
    for i, k in enumerate(inputs):
        if key == k:
            return f"in{i}"
    return "out" if key == out else "new"


def autograd_oracle(fn, inputs, state=()):
    """``(kept, forward_flops, backward_flops)`` of ``fn(*inputs)`` as PyTorch runs
    it: kept = sorted ``(label, nbytes)`` of every distinct storage autograd saves
    (not those of ``state``, the parameters and buffers; not empty ones)."""
    state_ptrs = {t.untyped_storage().data_ptr() for t in state}
    saved = {}

    def pack(t):
        st = t.untyped_storage()
        if st.nbytes() and st.data_ptr() not in state_ptrs:
            saved[st.data_ptr()] = st.nbytes()
        return t

    with FlopCounterMode(display=False) as fwd:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = fn(*inputs)
    backward = 0
    if out.requires_grad:
        with FlopCounterMode(display=False) as bwd:
            out.backward(torch.ones_like(out))
        backward = bwd.get_total_flops()
    ins = [t.untyped_storage().data_ptr() for t in inputs]
    o = out.untyped_storage().data_ptr()
    return (sorted((_label(p, ins, o), n) for p, n in saved.items()),
            fwd.get_total_flops(), backward)


def rule_prediction(fn, inputs, name, state=(), device_type="cpu"):
    """The same triple from the rule for the last call of ``fn(*inputs)``, which
    must be called ``name`` (earlier calls, such as a copy made so that an in-place
    op does not hit a leaf, or BatchNorm's counter, keep nothing and cost nothing)."""
    g = trace_calls(fn, *inputs, state=state, device_type=device_type)
    call = g.calls[-1]
    assert call.name == name, [c.name for c in g.calls]
    assert not g.unmodelled, g.unmodelled
    ins = [g.value_storage[g.value(t)] for t in inputs]
    o = g.value_storage[call.outputs[0]]
    kept = [s for s in dict.fromkeys(call.kept)
            if s not in g.params_storages() and g.storage_bytes[s]]
    return (sorted((_label(s, ins, o), g.storage_bytes[s]) for s in kept),
            sum(c.forward_flops for c in g.calls), sum(c.backward_flops for c in g.calls))


def _x(*shape, grad=True):
    return torch.randn(*shape, requires_grad=grad)


def _state(module):
    return [*module.parameters(), *module.buffers()]


def _check(fn, inputs, name, state=()):
    torch.manual_seed(0)
    want = autograd_oracle(fn, inputs, state)
    got = rule_prediction(fn, inputs, name, state)
    assert got == want
    return want


# ------------------------------------------------------------------ conv, linear

@pytest.mark.parametrize("x_grad", [True, False])
def test_conv2d(x_grad):
    conv = nn.Conv2d(3, 4, 3, padding=1)
    kept, fwd, bwd = _check(conv, [_x(2, 3, 5, 5, grad=x_grad)], "conv2d", _state(conv))
    assert kept == [("in0", 2 * 3 * 25 * 4)]          # the input, for the weight's grad
    assert bwd == fwd * (2 if x_grad else 1)


def test_conv_transpose2d():
    conv = nn.ConvTranspose2d(3, 2, 2, stride=2)
    _check(conv, [_x(1, 3, 3, 3)], "conv_transpose2d", _state(conv))


@pytest.mark.parametrize("case", ["2d", "2d, input frozen", "3d", "3d transposed", "weight frozen"])
def test_linear(case):
    lin = nn.Linear(5, 3)
    if case == "weight frozen":
        lin.weight.requires_grad_(False)
    fn, x = lin, _x(4, 5, grad=case != "2d, input frozen")
    if case == "3d":
        x = _x(2, 4, 5)
    elif case == "3d transposed":  # not viewable as 2-D: matmul copies it
        fn, x = (lambda t: lin(t.transpose(1, 2))), _x(2, 5, 4)
    _check(fn, [x], "linear", _state(lin))


@pytest.mark.parametrize("a,b", [((2, 3, 4), (2, 4, 5)), ((2, 3, 4), (4, 5)), ((3, 4), (4, 5))])
def test_matmul(a, b):
    _check(torch.matmul, [_x(*a), _x(*b)], "matmul")


def test_bmm_one_operand_frozen():
    _check(torch.bmm, [_x(2, 3, 4), _x(2, 4, 5, grad=False)], "bmm")


# ------------------------------------------------------------------ norm

def test_batch_norm_train():
    bn = nn.BatchNorm2d(3).train()
    kept, _, _ = _check(bn, [_x(2, 3, 4, 4)], "batch_norm", _state(bn))
    assert sorted(n for _, n in kept) == [4 * 3, 4 * 3, 4 * 96]  # save_mean, save_invstd, input


def test_batch_norm_eval():
    bn = nn.BatchNorm2d(3).eval()
    _check(bn, [_x(2, 3, 4, 4)], "batch_norm", _state(bn))


@pytest.mark.parametrize("shape,normalized", [((2, 3, 8), 8), ((2, 3, 4), (3, 4))])
def test_layer_norm(shape, normalized):
    ln = nn.LayerNorm(normalized)
    _check(ln, [_x(*shape)], "layer_norm", _state(ln))


# ------------------------------------------------------------------ activations

def test_relu():
    kept, _, _ = _check(F.relu, [_x(2, 3, 4, 4)], "relu")
    assert kept == [("out", 4 * 96)]


def test_relu_inplace():
    _check(lambda t: F.relu(t * 1, inplace=True), [_x(2, 3, 4, 4)], "relu")


@pytest.mark.parametrize("fn", [torch.sigmoid, torch.tanh])
def test_keep_output(fn):
    _check(fn, [_x(2, 3)], fn.__name__)


@pytest.mark.parametrize("name", ["gelu", "silu", "hardswish", "hardsigmoid", "elu",
                                  "leaky_relu", "hardtanh", "relu6"])
def test_keep_input_activation(name):
    kept, _, _ = _check(getattr(F, name), [_x(2, 3, 4)], name)
    assert kept == [("in0", 4 * 24)]


@pytest.mark.parametrize("name", ["silu", "hardswish", "hardsigmoid", "hardtanh", "relu6"])
def test_keep_input_activation_inplace(name):
    kept, _, _ = _check(lambda t: getattr(F, name)(t * 1, inplace=True), [_x(2, 3, 4)], name)
    assert kept == [("new", 4 * 24)]   # a copy of the input made before it is overwritten


# ------------------------------------------------------------------ pooling

def test_max_pool2d():
    kept, _, _ = _check(nn.MaxPool2d(2), [_x(2, 3, 4, 4)], "max_pool2d")
    assert ("new", 8 * 2 * 3 * 2 * 2) in kept       # int64 indices


def test_avg_pool2d():
    _check(nn.AvgPool2d(2), [_x(2, 3, 4, 4)], "avg_pool2d")


def test_adaptive_avg_pool2d():
    _check(nn.AdaptiveAvgPool2d(2), [_x(2, 3, 4, 4)], "adaptive_avg_pool2d")


@pytest.mark.parametrize("size", [1, (1, 1)])
def test_adaptive_avg_pool2d_to_one_pixel(size):
    # ATen runs it as a mean over H, W: nothing kept (EfficientNet, ConvNeXt, MobileNet).
    kept, _, _ = _check(nn.AdaptiveAvgPool2d(size), [_x(2, 3, 4, 4)], "adaptive_avg_pool2d")
    assert kept == []


@pytest.mark.parametrize("pool,name", [(nn.AdaptiveAvgPool1d(1), "adaptive_avg_pool1d"),
                                       (nn.AdaptiveAvgPool1d(2), "adaptive_avg_pool1d"),
                                       (nn.AvgPool1d(2), "avg_pool1d"),
                                       (nn.MaxPool1d(2), "max_pool1d")])
def test_pool1d(pool, name):
    _check(pool, [_x(2, 3, 4)], name)


@pytest.mark.parametrize("size", [1, 2, (3, 1)])
def test_adaptive_max_pool2d(size):
    kept, _, _ = _check(nn.AdaptiveMaxPool2d(size), [_x(2, 3, 4, 4)], "adaptive_max_pool2d")
    assert ("in0", 4 * 96) in kept and len(kept) == 2   # input and int64 indices


def test_adaptive_max_pool2d_returning_indices():
    _check(lambda t: F.adaptive_max_pool2d(t, 2, return_indices=True)[0],
           [_x(2, 3, 4, 4)], "adaptive_max_pool2d_with_indices")


# ------------------------------------------------------------------ group norm

@pytest.mark.parametrize("x_grad", [True, False])
def test_group_norm(x_grad):
    gn = nn.GroupNorm(2, 4)
    kept, _, _ = _check(gn, [_x(3, 4, 5, 5, grad=x_grad)], "group_norm", _state(gn))
    assert sorted(n for _, n in kept) == [4 * 3 * 2, 4 * 3 * 2, 4 * 300]  # mean, rstd, input


def test_group_norm_frozen_affine():
    gn = nn.GroupNorm(2, 4).requires_grad_(False)
    _check(gn, [_x(3, 4, 5, 5)], "group_norm", _state(gn))


# ------------------------------------------------------------------ padding, roll, masks, factories

@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad(mode):
    kept, _, _ = _check(lambda t: F.pad(t, (1, 1, 2, 0), mode=mode), [_x(2, 3, 4, 4)], "pad")
    assert kept == ([("in0", 4 * 96)] if mode in ("reflect", "replicate") else [])


def test_roll():
    assert _check(lambda t: torch.roll(t, (1, -2), (1, 2)), [_x(2, 3, 4, 4)], "roll")[0] == []


@pytest.mark.parametrize("fn,name", [
    (lambda t: (t == 0), "__eq__"), (lambda t: t.ne(0), "ne"), (lambda t: t > 0, "gt"),
    (lambda t: torch.logical_not(t > 0), "logical_not"),
])
def test_comparisons_make_no_node(fn, name):
    g = trace_calls(fn, _x(2, 3))
    assert g.calls[-1].name == name and not g.calls[-1].node and not g.unmodelled


@pytest.mark.parametrize("case", ["tensors", "a number", "mask given", "b frozen"])
def test_where(case):
    if case == "mask given":
        _check(lambda c, a, b: torch.where(c, a, b),
               [torch.rand(2, 3) > 0.5, _x(2, 3), _x(2, 3)], "where")
        return
    b = 0.0 if case == "a number" else _x(2, 3, grad=case != "b frozen")
    inputs = [_x(2, 3)] + ([b] if isinstance(b, torch.Tensor) else [])
    kept, _, _ = _check(lambda a, *bb: torch.where(a > 0, a, bb[0] if bb else b), inputs, "where")
    assert kept == [("new", 6)]       # the bool condition


@pytest.mark.parametrize("inplace", [False, True])
def test_masked_fill(inplace):
    def fn(t, m):
        return (t * 1).masked_fill_(m, -1.0) if inplace else t.masked_fill(m, -1.0)
    kept, _, _ = _check(fn, [_x(2, 3), torch.rand(2, 3) > 0.5],
                        "masked_fill_" if inplace else "masked_fill")
    assert kept == [("in1", 6)]       # the mask


@pytest.mark.parametrize("fn,name", [
    (lambda t: t + t.new_zeros(t.shape), "add"),
    (lambda t: t + t.new_full(t.shape, 2.0), "add"),
    (lambda t: t + torch.zeros_like(t), "add"),
    (lambda t: t * torch.ones_like(t), "mul"),
    (lambda t: t + torch.full((2, 3), 2.0), "add"),
    (lambda t: t * torch.tensor(2.0), "mul"),          # GPT-2's scale
    (lambda t: t + t.new_tensor([1.0, 2.0, 3.0]), "add"),
])
def test_factories(fn, name):
    g = trace_calls(fn, _x(2, 3))
    assert not g.unmodelled and not g.calls[0].node, [c.name for c in g.calls]
    _check(fn, [_x(2, 3)], name)


def test_stochastic_depth_keeps_its_noise():
    from torchvision.ops import stochastic_depth
    for mode, n in (("row", 2), ("batch", 1)):
        kept, _, _ = _check(lambda t: stochastic_depth(t, 0.2, mode, True), [_x(2, 3, 4, 4)], "mul")
        assert kept == [("new", 4 * n)]   # empty().bernoulli_().div_(), kept by mul


@pytest.mark.parametrize("fn,name", [
    (lambda t: t.flatten(1) * 1, "mul"),
    (lambda t: t.permute(0, 2, 3, 1).contiguous(), "contiguous"),   # a copy
    (lambda t: t.contiguous(), "contiguous"),                       # the tensor itself
    (lambda t: t.permute(0, 2, 3, 1).reshape(2, -1), "reshape"),    # a copy
    (lambda t: t.chunk(2, 1)[1] * 1, "mul"),
    (lambda t: t.reshape_as(t.new_empty(2, 36)) * 1, "mul"),       # levit: a view
    (lambda t: t.permute(0, 2, 3, 1).reshape_as(t.new_empty(2, 36)), "reshape_as"),  # a copy
])
def test_views_and_copies(fn, name):
    _check(fn, [_x(2, 4, 3, 3)], name)


# ------------------------------------------------------------------ element-wise

@pytest.mark.parametrize("fn,name,kept", [
    (torch.exp, "exp", "out"), (torch.sqrt, "sqrt", "out"), (torch.rsqrt, "rsqrt", "out"),
    (torch.log, "log", "in0"), (torch.abs, "abs", "in0"), (lambda t: t ** 2, "pow", "in0"),
    (lambda t: t.pow(3), "pow", "in0"), (lambda t: t.clamp(0.5, 2), "clamp", "in0"),
    (lambda t: (t * 1).clamp_(0.5, 2), "clamp_", "new"),
    (lambda t: -t, "neg", None), (lambda t: 1 - t, "__rsub__", None),
    (lambda t: t.to(torch.float64), "to", None), (lambda t: t.double().float(), "float", None),
])
def test_elementwise(fn, name, kept):
    got, _, _ = _check(fn, [torch.rand(2, 3).add(0.5).requires_grad_()], name)
    assert [k for k, _ in got] == ([kept] if kept else [])


@pytest.mark.parametrize("grads", [(True, True), (True, False), (False, True)])
def test_div(grads):
    _check(torch.div, [_x(2, 3, grad=grads[0]), torch.rand(2, 3).add(1).requires_grad_(grads[1])],
           "div")


def test_div_by_a_number():
    assert _check(lambda t: t / 3, [_x(2, 3)], "div")[0] == []


# ------------------------------------------------------------------ element-wise, dropout

@pytest.mark.parametrize("grads", [(True, True), (True, False), (False, True)])
def test_mul(grads):
    _check(torch.mul, [_x(2, 3, grad=grads[0]), _x(2, 3, grad=grads[1])], "mul")


def test_mul_by_a_number():
    _check(lambda t: t * 2.0, [_x(2, 3)], "mul")


def test_dropout_train():
    kept, _, _ = _check(lambda t: F.dropout(t, 0.3, training=True), [_x(2, 3, 4)], "dropout")
    assert kept == [("new", 4 * 24)]   # CPU: a float noise tensor, not a bool mask


def test_dropout_module_train():
    _check(nn.Dropout(0.3).train(), [_x(2, 3, 4)], "dropout")


@pytest.mark.parametrize("case", ["eval", "inplace", "p=0"])
def test_dropout_cases(case):
    if case == "eval":
        fn = lambda t: F.dropout(t, 0.3, training=False)  # noqa: E731
    elif case == "inplace":
        fn = lambda t: F.dropout(t * 1, 0.3, training=True, inplace=True)  # noqa: E731
    else:
        fn = lambda t: F.dropout(t, 0.0, training=True)  # noqa: E731
    kept, _, _ = _check(fn, [_x(2, 3, 4)], "dropout")
    assert kept == ([("new", 4 * 24)] if case == "inplace" else [])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_dropout_train_cuda_keeps_a_bool_mask():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, device="cuda", requires_grad=True)
    fn = lambda t: F.dropout(t, 0.3, training=True)  # noqa: E731
    want = autograd_oracle(fn, [x])
    assert want == rule_prediction(fn, [x], "dropout", device_type="cuda")
    assert want[0] == [("new", 24)]


@pytest.mark.parametrize("fn,name", [
    (lambda a, b: torch.cat([a, b], 1), "cat"),
    (lambda a, b: a + b, "add"),
    (lambda a: F.interpolate(a, scale_factor=2), "interpolate"),
    (lambda a: a.sum(), "sum"),
])
def test_keep_nothing(fn, name):
    inputs = [_x(1, 2, 3, 3) for _ in range(fn.__code__.co_argcount)]
    kept, _, _ = _check(fn, inputs, name)
    assert kept == []


# ------------------------------------------------------------------ the registry

def test_every_registered_name_maps_to_a_callable():
    assert len(RULES) > 50
    for name, fn in RULES.items():
        assert callable(fn), name
        assert lookup(name) is fn


def test_a_name_cannot_get_two_rules():
    with pytest.raises(ValueError, match="conv2d"):
        rule("conv2d")(lambda ctx: None)
    assert RULES["conv2d"].__module__ == "complexity.cost.predict.rules.conv"


def made_up_op(x):
    """A call no rule knows, visible to a TorchFunctionMode as PyTorch's own are."""
    if torch.overrides.has_torch_function((x,)):
        return torch.overrides.handle_torch_function(made_up_op, (x,), x)
    return x.clone()


class _MadeUp(nn.Module):
    def __init__(self, frozen_conv: bool):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        self.head = nn.Conv2d(2, 2, 1)
        self.conv.requires_grad_(not frozen_conv)

    def forward(self, x):
        return self.head(made_up_op(torch.exp(self.conv(x))))


@pytest.mark.parametrize("frozen_conv", [False, True])
def test_made_up_call_is_unmodelled(frozen_conv):
    # Reported on the gradient path and off it: a call with no rule never passes
    # silently; exp has a rule (its result kept).
    assert lookup("made_up_op") is None and lookup("exp") is not None
    g = trace_calls(made_up_op, _x(2, 3))
    assert [c.name for c in g.calls] == ["made_up_op"] and g.unmodelled == {"made_up_op"}
    _, unmodelled = predict_with_unmodelled(_MadeUp(frozen_conv), (2, 3, 4, 4))
    assert unmodelled == ["made_up_op"]


def test_a_declined_call_is_unmodelled_and_counts_nothing():
    # pow_ by a tensor, in place: declined (the base's old value is overwritten)
    g = trace_calls(lambda t, e: (t * 1).pow_(e), _x(2, 3), _x(2, 3))
    assert g.unmodelled == {"pow_"} and g.calls[-1].kept == []


def test_a_factory_goes_through_the_registry():
    g = trace_calls(lambda t: t + torch.arange(3.0), _x(2, 3))
    assert [c.name for c in g.calls] == ["arange", "add"] and not g.unmodelled
    g = trace_calls(lambda t: t + torch.hann_window(3), _x(2, 3))
    assert g.unmodelled == {"hann_window"}
