"""einsum, gather, norm, normalize, swapaxes and the in-place activations that
keep their result, each against real autograd (the helpers of
``tests/test_cost_rules.py``)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from complexity.cost.predict.trace import trace_calls
from test_cost_rules import _check, _label, _x, autograd_oracle


@pytest.mark.parametrize("eq,shapes", [
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bhid,bhjd->bhij", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("ij,j->i", [(3, 4), (4,)]),
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bj->bi", [(2, 3, 4), (2, 4)]),
    ("bhij,bhjd->bhid", [(2, 3, 4, 5), (2, 3, 5, 6)]),
    ("bi,bj->bij", [(2, 3), (2, 4)]),          # nothing contracted: a mul
    ("ii->i", [(4, 4)]),
    ("bij,jk,bkl->bil", [(2, 3, 4), (4, 5), (2, 5, 6)]),
])
@pytest.mark.parametrize("grads", ["all", "first frozen"])
def test_einsum(eq, shapes, grads):
    xs = [_x(*s, grad=not (grads == "first frozen" and i == 0)) for i, s in enumerate(shapes)]
    _check(lambda *t: torch.einsum(eq, *t), xs, "einsum")


def test_einsum_maxvit_relative_attention():
    # maxvit_t's attention: q·kᵀ and attn·v over a permuted (non-contiguous) qkv split
    qkv = _x(2, 16, 3 * 8).view(2, 16, 3, 2, 4).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
    _check(lambda a, b: torch.einsum("bhid,bhjd->bhij", a, b), [q, k], "einsum")
    attn = _x(2, 2, 16, 16)
    _check(lambda a, b: torch.einsum("bhij,bhjd->bhid", a, b), [attn, v], "einsum")
    _check(lambda a, b: torch.einsum("bhij,bhjd->bhid", a, b), [attn, v.transpose(-2, -1).contiguous().transpose(-2, -1)], "einsum")


@pytest.mark.parametrize("x_grad", [True, False])
def test_gather(x_grad):
    idx = torch.randint(0, 5, (3, 4))
    _check(lambda x, i: torch.gather(x, 1, i), [_x(3, 5, grad=x_grad), idx], "gather")


@pytest.mark.parametrize("p", [2, 1, float("inf")])
def test_norm(p):
    _check(lambda x: x.norm(p, 1, keepdim=True), [_x(3, 5)], "norm")


def test_swapaxes():
    kept, _, _ = _check(lambda x: torch.swapaxes(x, 0, 1).exp(), [_x(3, 5)], "exp")
    assert kept == [("out", 60)]


def _all_calls(fn, inputs):
    """(kept, fwd, bwd) of every call of ``fn(*inputs)`` under the tracer."""
    g = trace_calls(fn, *inputs)
    assert not g.unmodelled, g.unmodelled
    ins = [g.value_storage[g.value(t)] for t in inputs]
    o = g.value_storage[g.calls[-1].outputs[0]]
    kept = dict.fromkeys(s for c in g.calls for s in c.kept if g.storage_bytes[s])
    return (sorted((_label(s, ins, o), g.storage_bytes[s]) for s in kept),
            sum(c.forward_flops for c in g.calls), sum(c.backward_flops for c in g.calls)), g


@pytest.mark.parametrize("p,dim", [(2.0, 1), (2.0, -1), (1.0, 0)])
def test_normalize_descends(p, dim):
    x = _x(3, 5, 4)
    fn = lambda t: F.normalize(t, p=p, dim=dim)  # noqa: E731
    got, g = _all_calls(fn, [x])
    assert [c.name for c in g.calls] == ["norm", "clamp_min", "expand_as", "div"]
    assert got == autograd_oracle(fn, [x])


@pytest.mark.parametrize("name,fn,keeps", [
    ("leaky_relu", lambda t: F.leaky_relu(t, 0.01, True), "in0"),     # the result: same storage
    ("leaky_relu", lambda t: F.leaky_relu(t, 0.01, inplace=True), "in0"),
    ("elu", lambda t: F.elu(t, 1.0, True), "in0"),
    ("leaky_relu_", lambda t: F.leaky_relu_(t, 0.01), "in0"),
    ("hardtanh", lambda t: F.hardtanh(t, -1.0, 1.0, True), "new"),  # a copy of the input
    ("relu6", lambda t: F.relu6(t, True), "new"),
    ("hardswish", lambda t: F.hardswish(t, True), "new"),
    ("silu", lambda t: F.silu(t, True), "new"),
    ("leaky_relu", lambda t: F.leaky_relu(t, 0.01), "in0"),
])
def test_in_place_activation(name, fn, keeps):
    base = _x(4, 5)
    y = base * 1
    kept, _, _ = _check(fn, [y], name)
    assert [k for k, _ in kept] == [keeps]


def test_cspresnet_block_leaky_relu_inplace():
    # timm's BatchNormAct2d: batch_norm then LeakyReLU(inplace=True), then a conv:
    # the activation keeps the (overwritten) batch-norm output, which the conv keeps too
    m = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4),
                      nn.LeakyReLU(inplace=True), nn.Conv2d(4, 4, 1, bias=False)).train()
    x = _x(2, 3, 5, 5)
    state = [*m.parameters(), *m.buffers()]
    g = trace_calls(m, x, state=state)
    seen = {}
    for c in g.calls:
        for s in c.kept:
            if s not in g.params_storages() and g.storage_bytes[s]:
                seen[s] = g.storage_bytes[s]
    want = autograd_oracle(m, [x], state)[0]
    assert sorted(seen.values()) == sorted(n for _, n in want)
