"""Attention, softmax, embedding and matrix-product rules alone, against PyTorch.

As in ``test_cost_rules.py``: one call on small real CPU tensors under
``saved_tensors_hooks`` and ``FlopCounterMode`` (what autograd keeps, what PyTorch
counts) against the rule's prediction from the tracer; then whole attention
models, predicted against :func:`complexity.cost.measure.cpu_step.measure` and a real CPU
step.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from complexity.cost.step.batch import logits
from complexity.cost.measure.cpu_step import measure
from complexity.cost.predict.prediction import predict_with_unmodelled
from complexity.cost.predict.rules.attention import flash_on_cpu
from complexity.cost.predict.trace import trace_calls
from complexity.cost.step.trainable import set_trainable
from test_cost_rules import _check, _label, _state, _x, autograd_oracle


def rule_prediction(fn, inputs, name, state=()):
    """Like ``test_cost_rules.rule_prediction`` but for every call of ``fn``
    (the last one called ``name``): the storages all of them keep, labelled."""
    g = trace_calls(fn, *inputs, state=state)
    assert g.calls[-1].name == name, [c.name for c in g.calls]
    assert not g.unmodelled, g.unmodelled
    ins = [g.value_storage[g.value(t)] for t in inputs]
    o = g.value_storage[g.calls[-1].outputs[0]]
    kept = [s for c in g.calls if c.node for s in c.kept]
    kept = [s for s in dict.fromkeys(kept) if s not in g.params_storages() and g.storage_bytes[s]]
    return (sorted((_label(s, ins, o), g.storage_bytes[s]) for s in kept),
            sum(c.forward_flops for c in g.calls),
            sum(c.backward_flops for c in g.calls if c.node))

# ------------------------------------------------------------------ matmul, any ranks

MATMUL_CASES = {
    "2d@2d": ((3, 4), (4, 5)),
    "1d@2d": ((4,), (4, 5)),
    "2d@1d": ((3, 4), (4,)),
    "1d@1d": ((4,), (4,)),
    "3d@2d": ((2, 3, 4), (4, 5)),
    "2d@3d": ((3, 4), (2, 4, 5)),
    "3d@1d": ((2, 3, 4), (4,)),
    "1d@3d": ((4,), (2, 4, 5)),
    "3d@3d": ((2, 3, 4), (2, 4, 5)),
    "4d@4d broadcast": ((2, 3, 4, 5), (1, 3, 5, 6)),
    "4d@3d": ((2, 3, 4, 5), (3, 5, 6)),
}


@pytest.mark.parametrize("case", sorted(MATMUL_CASES))
@pytest.mark.parametrize("grads", [(True, True), (True, False), (False, True)])
def test_matmul_ranks(case, grads):
    a, b = MATMUL_CASES[case]
    _check(torch.matmul, [_x(*a, grad=grads[0]), _x(*b, grad=grads[1])], "matmul")


@pytest.mark.parametrize("grads", [(True, True), (True, False), (False, True)])
def test_matmul_of_transposed_slices_keeps_copies(grads):
    """Swin's q @ kᵀ and attn @ v on slices of one fused qkv tensor: matmul's
    reshape to 3-D copies them, and the copies, a third of qkv each, are kept."""
    def fn(qkv, a):
        qkv = qkv.reshape(2, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        return q.matmul(k.transpose(-2, -1)).sum(-1) + a.matmul(v).sum(-1)
    qkv, a = _x(2, 5, 24, grad=grads[0]), _x(2, 2, 5, 5, grad=grads[1])
    want = autograd_oracle(fn, [qkv, a])
    assert want == rule_prediction(fn, [qkv, a], "add")
    if grads == (True, True):
        assert ("in0", 4 * 240) not in want[0]            # not the whole qkv


def test_matmul_operator_folds_a_non_viewable_operand():
    fn = lambda a, b: a.transpose(0, 1) @ b  # noqa: E731  (3-D @ 2-D, b trains: mm on a copy)
    kept, _, _ = _check(fn, [_x(3, 2, 4), _x(4, 5)], "matmul")
    assert ("new", 4 * 24) in kept


@pytest.mark.parametrize("grads", [(True, True), (True, False), (False, True)])
def test_mm_bmm(grads):
    _check(torch.mm, [_x(3, 4, grad=grads[0]), _x(4, 5, grad=grads[1])], "mm")
    # bmm keeps a transposed view as it is: the whole storage
    fn = lambda a, b: torch.bmm(a, b.transpose(1, 2))  # noqa: E731
    _check(fn, [_x(2, 3, 4, grad=grads[0]), _x(2, 5, 4, grad=grads[1])], "bmm")


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_addmm_baddbmm(alpha):
    _check(lambda c, a, b: torch.addmm(c, a, b, alpha=alpha),
           [_x(5), _x(3, 4), _x(4, 5)], "addmm")
    _check(lambda c, a, b: torch.baddbmm(c, a, b, alpha=alpha),
           [_x(2, 3, 5, grad=False), _x(2, 3, 4), _x(2, 4, 5)], "baddbmm")


# ------------------------------------------------------------------ softmax, embedding

@pytest.mark.parametrize("name", ["softmax", "log_softmax", "softmin"])
def test_softmax_keeps_its_result(name):
    kept, _, _ = _check(lambda t: getattr(F, name)(t, dim=-1), [_x(2, 3, 4)], name)
    assert kept == [("out", 4 * 24)]


def test_softmax_with_dtype():
    kept, _, _ = _check(lambda t: F.softmax(t, -1, dtype=torch.float64), [_x(2, 3)], "softmax")
    assert kept == [("out", 8 * 6)]


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("frozen", [False, True])
def test_embedding(sparse, frozen):
    emb = nn.Embedding(10, 4, sparse=sparse).requires_grad_(not frozen)
    idx = torch.tensor([[1, 2, 3], [4, 1, 0]])
    fn = lambda i: emb(i).sum(-1)  # noqa: E731  (a float output to call backward on)
    want = autograd_oracle(fn, [idx], _state(emb))
    assert want == rule_prediction(fn, [idx], "sum", _state(emb))
    assert want[0] == ([] if frozen else [("in0", 8 * 6)])


# ------------------------------------------------------------------ scaled_dot_product_attention

def _qkv(B=2, H=3, L=5, S=7, E=4, Ev=None, grads=(True, True, True), dims=4):
    lead = (B, H) if dims == 4 else (H,)
    return [_x(*lead, L, E, grad=grads[0]), _x(*lead, S, E, grad=grads[1]),
            _x(*lead, S, Ev or E, grad=grads[2])]


SDPA_CASES = {
    "flash": ({}, {}),
    "flash, causal": ({"is_causal": True}, {"S": 5}),
    "flash, bool mask": ({"mask": "bool"}, {}),
    "flash, float mask": ({"mask": "float"}, {}),
    "flash, 3-D": ({}, {"dims": 3}),
    "flash, q frozen": ({}, {"grads": (False, True, True)}),
    "flash, only v": ({}, {"grads": (False, False, True)}),
    "math, v head dim": ({}, {"Ev": 6}),
    "math, dropout": ({"dropout_p": 0.3}, {}),
    "math, dropout, only v": ({"dropout_p": 0.3}, {"grads": (False, False, True)}),
    "math, float mask, causal-free": ({"mask": "float"}, {"Ev": 6}),
    "math, q frozen": ({}, {"Ev": 6, "grads": (False, True, True)}),
    "math, only v": ({}, {"Ev": 6, "grads": (False, False, True)}),
    "math, scale": ({"scale": 0.3}, {"Ev": 6}),
    "nothing trains": ({}, {"grads": (False, False, False)}),
}


@pytest.mark.parametrize("case", sorted(SDPA_CASES))
def test_scaled_dot_product_attention(case):
    kw, shape = SDPA_CASES[case]
    kw = dict(kw)
    q, k, v = _qkv(**shape)
    mask = kw.pop("mask", None)
    if mask == "bool":
        kw["attn_mask"] = torch.rand(q.shape[-2], k.shape[-2]) > 0.3
    elif mask == "float":
        kw["attn_mask"] = torch.randn(q.shape[0], 1, q.shape[-2], k.shape[-2])
    assert flash_on_cpu(q, k, v, kw.get("attn_mask"), kw.get("dropout_p", 0.0)) == \
        (case.startswith("flash") or case == "nothing trains")
    fn = lambda a, b, c: F.scaled_dot_product_attention(a, b, c, **kw)  # noqa: E731
    if not any(t.requires_grad for t in (q, k, v)):
        g = trace_calls(fn, q, k, v)
        with FlopCounterMode(display=False) as fwd:
            fn(q, k, v)
        assert not g.unmodelled and g.calls[-1].forward_flops == fwd.get_total_flops()
        return
    torch.manual_seed(0)
    want = autograd_oracle(fn, [q, k, v])
    torch.manual_seed(0)
    assert rule_prediction(fn, [q, k, v], "scaled_dot_product_attention") == want
    if case.startswith("flash"):
        assert want[1:] == (0, 0)   # FlopCounterMode has no formula for the CPU flash kernel


@settings(max_examples=12, deadline=None)
@given(dtype=st.sampled_from([torch.bfloat16, torch.float16]), B=st.integers(1, 2),
       H=st.integers(1, 3), L=st.integers(1, 6), S=st.integers(1, 6), E=st.integers(1, 5),
       dropout=st.sampled_from([0.0, 0.4]), causal=st.booleans(),
       grads=st.sampled_from([(True, True, True), (False, True, True), (False, False, True)]))
def test_sdpa_half_precision_as_autograd_keeps_it(dtype, B, H, L, S, E, dropout, causal, grads):
    """bfloat16/float16 arguments, no autocast: the CPU math path (dropout, or an
    odd mask) runs on float32 copies of q, k and v and keeps float32 tensors (the
    copy of v among them); the flash kernel keeps the arguments as given. Before
    the tracer recorded the math path's own casts, GPT-2 stepped in bfloat16
    predicted these at half their size (its saved activations 14 % low)."""
    q, k, v = (torch.randn(B, H, n, E, dtype=dtype, requires_grad=g)
               for n, g in ((L, grads[0]), (S, grads[1]), (S, grads[2])))
    causal = causal and L == S
    fn = lambda a, b, c: F.scaled_dot_product_attention(  # noqa: E731
        a, b, c, dropout_p=dropout, is_causal=causal)
    torch.manual_seed(0)
    want = autograd_oracle(fn, [q, k, v])
    torch.manual_seed(0)
    assert rule_prediction(fn, [q, k, v], "scaled_dot_product_attention") == want
    # as a model's trace sees it: on meta, where sdpa takes the math path whatever
    # the CPU would take (the rule, not the device, decides which casts are made)
    metas = [t.detach().to("meta").requires_grad_(t.requires_grad) for t in (q, k, v)]
    torch.manual_seed(0)
    assert rule_prediction(fn, metas, "scaled_dot_product_attention") == want
    if dropout and grads[1]:  # the math path's softmax result: float32, whatever the dtype
        assert ("new", 4 * B * H * L * S) in want[0]


def test_flash_output_is_laid_out_like_the_query_on_meta_too():
    """MHA's heads are views of a fused projection; the flash output follows them,
    so MHA's permute().contiguous() copies nothing (checked on meta by the trace)."""
    q = torch.empty(5, 2, 2, 4, device="meta").permute(1, 2, 0, 3).requires_grad_()
    g = trace_calls(lambda t: F.scaled_dot_product_attention(t, t, t).permute(2, 0, 1, 3)
                    .contiguous(), q)
    assert g.value_storage[g.calls[-1].outputs[0]] == g.value_storage[g.calls[0].outputs[0]]


# ------------------------------------------------------------------ nn.MultiheadAttention

MHA_CASES = ["self, sdpa", "self, weights", "self, weights, not averaged", "cross, sdpa",
             "mask, weights", "mask, sdpa", "dropout, weights", "kdim/vdim", "bias_kv",
             "seq-first", "frozen projections", "input frozen"]


@pytest.mark.parametrize("case", MHA_CASES)
def test_multihead_attention(case):
    """Every path of MultiheadAttention.forward in training: the tracer runs
    multi_head_attention_forward's body, so its linear, sdpa or bmm, baddbmm,
    softmax, dropout and copies are each costed."""
    torch.manual_seed(0)
    kw = {"batch_first": case != "seq-first"}
    if case == "kdim/vdim":
        kw.update(kdim=6, vdim=3)
    if case == "bias_kv":
        kw.update(add_bias_kv=True, add_zero_attn=True)
    if case.startswith("dropout"):
        kw.update(dropout=0.2)
    m = nn.MultiheadAttention(8, 2, **kw).train()
    if case == "frozen projections":
        m.in_proj_weight.requires_grad_(False)
        m.in_proj_bias.requires_grad_(False)
    need = "weights" in case
    call = {"need_weights": need, "average_attn_weights": "not averaged" not in case}
    if case.startswith("mask"):
        call["attn_mask"] = torch.rand(5, 5) > 0.5
        call["attn_mask"][:, 0] = True
    x = _x(2, 5, 8, grad=case != "input frozen")
    if case == "seq-first":
        x = _x(5, 2, 8)
    if case in ("cross, sdpa", "kdim/vdim"):
        kv = _x(2, 7, 6 if case == "kdim/vdim" else 8)
        vv = _x(2, 7, 3) if case == "kdim/vdim" else kv
        fn = lambda t, a, b: (m(t, a, b, **call)[0].sum(-1)  # noqa: E731
                              + (m(t, a, b, **call)[1].sum() if need else 0))
        inputs = [x, kv, vv]
    else:
        def fn(t):
            out, w = m(t, t, t, **call)
            return out.sum(-1) + (w.sum() if need else 0)
        inputs = [x]
    torch.manual_seed(0)
    want = autograd_oracle(fn, inputs, _state(m))
    torch.manual_seed(0)
    g = trace_calls(fn, *inputs, state=_state(m))
    assert "multi_head_attention_forward" not in {c.name for c in g.calls}
    torch.manual_seed(0)
    got = rule_prediction(fn, inputs, g.calls[-1].name, _state(m))
    assert got == want


# ------------------------------------------------------------------ whole models

def _real_step(model, shape):
    """Saved bytes and FLOPs of one real CPU training step (forward + loss, backward)."""
    skip = {t.untyped_storage().data_ptr() for t in _state(model)}
    saved = {}

    def pack(t):
        st = t.untyped_storage()
        if st.nbytes() and st.data_ptr() not in skip:
            saved[st.data_ptr()] = st.nbytes()
        return t

    model.train()
    with FlopCounterMode(display=False) as fwd:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = logits(model(torch.randn(*shape)))
            loss = F.cross_entropy(out, torch.randint(0, out.shape[1], (out.shape[0],)))
    with FlopCounterMode(display=False) as bwd:
        loss.backward()
    return {"saved_activation_bytes": sum(saved.values()),
            "forward_flops": fwd.get_total_flops(), "backward_flops": bwd.get_total_flops()}


def _vit():
    from torchvision.models import VisionTransformer
    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                             hidden_dim=32, mlp_dim=64, num_classes=10), (2, 3, 32, 32)


@pytest.mark.parametrize("trainable", ["full", "last"])
def test_vit_exact(trainable):
    torch.manual_seed(0)
    model, shape = _vit()
    set_trainable(model, trainable)
    predicted, unmodelled = predict_with_unmodelled(model, shape)
    assert unmodelled == []
    measured, real = measure(model, shape), _real_step(model, shape)
    for key in real:
        assert predicted[key] == measured[key] == real[key], key


@pytest.mark.parametrize("trainable", ["full", "last"])
def test_swin_attention_within_half_a_percent(trainable):
    from torchvision.models import swin_t
    torch.manual_seed(0)
    model, shape = swin_t(num_classes=10), (1, 3, 64, 64)
    set_trainable(model, trainable)
    predicted, unmodelled = predict_with_unmodelled(model, shape)
    assert not {"matmul", "softmax", "__matmul__"} & set(unmodelled)
    real = _real_step(model, shape)
    assert predicted["forward_flops"] == real["forward_flops"]
    assert predicted["backward_flops"] == real["backward_flops"]
    assert abs(predicted["saved_activation_bytes"] - real["saved_activation_bytes"]) \
        <= 0.005 * real["saved_activation_bytes"]
