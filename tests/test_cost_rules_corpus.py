"""The rules for calls the model corpora met unmodelled (``reports/text_zoo.md``,
``reports/timm_zoo.md``), each alone against PyTorch: what autograd keeps and what
``FlopCounterMode`` counts (``autograd_oracle`` of ``tests/test_cost_rules.py``),
and the bytes alive only while the call runs against :class:`LiveBytes` (the
transient), at odd sizes drawn by hypothesis.

``number / x`` (MPT, XLNet), ``pow`` of or by a tensor (BLOOM's ALiBi slopes),
``logsumexp`` (Granite), the Fourier transforms (FNet), ``polar``,
``view_as_complex`` and ``view_as_real`` (Llama 4's rotary embedding), ``scatter``
(Llama 4), ``nll_loss`` called by the model itself (ProphetNet).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from complexity.cost.measure.live_bytes import LiveBytes
from complexity.cost.predict.rules.spectral import FFTS
from complexity.cost.predict.trace import trace_calls
from test_cost_rules import _check, _x

sizes = st.lists(st.integers(1, 7), min_size=1, max_size=3)
FAST = settings(max_examples=8, deadline=None)


def transient_oracle(fn, inputs) -> int:
    """Bytes alive while ``fn(*inputs)`` runs beyond what is alive when it returns
    (its result and what autograd saved): LiveBytes' peak less its end."""
    live = LiveBytes()
    with live:
        out = fn(*inputs)
    transient = live.peak - live.live
    del out
    return transient


def predicted_transient(fn, inputs) -> int:
    return trace_calls(fn, *inputs).calls[-1].transient


def _transient_matches(fn, inputs):
    torch.manual_seed(0)
    want = transient_oracle(fn, inputs)
    assert predicted_transient(fn, inputs) == want
    return want


# ------------------------------------------------------------------ number / x, pow

@given(shape=sizes)
@FAST
def test_rdiv_keeps_the_reciprocal(shape):
    kept, _, _ = _check(lambda x: 1 / x, [_x(*shape)], "__rdiv__")
    n = 4 * torch.Size(shape).numel()
    assert kept == [("new", n)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.long])
def test_rdiv_without_a_node_is_a_transient(dtype):
    """Off the gradient path the reciprocal lives only while the product is made."""
    x = torch.arange(1, 16, dtype=dtype).reshape(3, 5)
    assert _transient_matches(lambda t: 2.5 / t, [x]) == 15 * (8 if dtype == torch.float64 else 4)


@pytest.mark.parametrize("form", ["tensor ** number", "pow(number, tensor)", "number ** tensor",
                                  "pow_(number)", "x ** 2"])
def test_pow_of_and_by_a_number(form):
    fn = {"tensor ** number": lambda t: torch.pow(t, 3),
          "pow(number, tensor)": lambda t: torch.pow(2.0, t),
          "number ** tensor": lambda t: 2.0 ** t,
          "pow_(number)": lambda t: (t * 1).pow_(2),
          "x ** 2": lambda t: t ** 2}[form]
    name = {"pow(number, tensor)": "pow", "number ** tensor": "__rpow__",
            "pow_(number)": "pow_"}.get(form, "pow")
    _check(fn, [_x(3, 5)], name)


@given(shape=sizes, grads=st.sampled_from([(True, True), (True, False), (False, True)]))
@FAST
def test_pow_by_a_tensor(shape, grads):
    base = torch.rand(*shape).add(0.5).requires_grad_(grads[0])
    _check(torch.pow, [base, _x(*shape, grad=grads[1])], "pow")


def test_pow_by_a_broadcast_tensor():
    """BLOOM's ALiBi slopes: ``torch.pow(base, powers)``, a tensor base and exponent."""
    base = torch.tensor(0.5, requires_grad=True)
    _check(torch.pow, [base, _x(5)], "pow")


# ------------------------------------------------------------------ logsumexp

@given(shape=sizes, keepdim=st.booleans())
@FAST
def test_logsumexp(shape, keepdim):
    kept, _, _ = _check(lambda t: torch.logsumexp(t, -1, keepdim=keepdim), [_x(*shape)],
                        "logsumexp")
    assert [k for k, _ in kept] == ["in0", "out"]


# ------------------------------------------------------------------ Fourier transforms

#: The transforms that take a complex input only (the inverse real ones).
COMPLEX_ONLY = ("fft_irfft", "fft_irfft2", "fft_irfftn")
#: The ones that take a real input only.
REAL_ONLY = ("fft_rfft", "fft_rfft2", "fft_rfftn", "fft_ihfft")


@pytest.mark.parametrize("name", FFTS)
@pytest.mark.parametrize("complex_input", [False, True])
def test_fft(name, complex_input):
    if (name in COMPLEX_ONLY and not complex_input) or (name in REAL_ONLY and complex_input):
        pytest.skip("the transform does not take this input")
    fn = getattr(torch.fft, name[4:])
    x = torch.randn(2, 3, 5, dtype=torch.complex64 if complex_input else torch.float32)
    kept, _, _ = _check(fn, [x.requires_grad_()], name)
    assert kept in ([], [("in0", 120)])
    _transient_matches(fn, [x.detach()])
    _transient_matches(fn, [x])


@given(shape=st.lists(st.integers(1, 6), min_size=2, max_size=3))
@FAST
def test_fnet_mixing_transient(shape):
    """FNet: ``fftn(x, dim=(1, 2)).real`` of a real input: its complex copy is a
    transient of twice the input's bytes."""
    x = _x(*shape)
    fn = lambda t: torch.fft.fftn(t, dim=tuple(range(1, t.dim())) or None)  # noqa: E731
    _check(fn, [x], "fft_fftn")
    assert _transient_matches(fn, [x]) == 2 * 4 * x.numel()


def test_fft_with_a_length_is_declined():
    g = trace_calls(lambda t: torch.fft.fft(t, n=8), _x(2, 5))
    assert g.unmodelled == {"fft_fft"}


# ------------------------------------------------------------------ complex numbers

@given(shape=sizes)
@FAST
def test_polar_keeps_its_result(shape):
    kept, _, _ = _check(torch.polar, [_x(*shape), _x(*shape)], "polar")
    assert kept == [("out", 8 * torch.Size(shape).numel())]


def test_llama4_rotary_views():
    """``view_as_complex(x) * freqs`` then ``view_as_real``: the views keep nothing
    (the product keeps its operands)."""
    freqs = torch.polar(torch.ones(4, 3), torch.randn(4, 3))
    fn = lambda t: torch.view_as_real(torch.view_as_complex(t) * freqs)  # noqa: E731
    from test_cost_rules import autograd_oracle
    from test_cost_rules_attention import rule_prediction

    x = _x(4, 3, 2)
    assert autograd_oracle(fn, [x]) == rule_prediction(fn, [x], "view_as_real")
    g = trace_calls(fn, x)
    assert not g.unmodelled and [c.kept for c in g.calls if c.name.startswith("view_as")] == [[], []]


# ------------------------------------------------------------------ scatter

@pytest.mark.parametrize("name", ["scatter", "scatter_add"])
@pytest.mark.parametrize("grads", [(True, True), (True, False), (False, True)])
def test_scatter(name, grads):
    index = torch.randint(0, 5, (3, 2))
    fn = lambda a, i, s: getattr(torch, name)(a, 1, i, s)  # noqa: E731
    _check(fn, [_x(3, 5, grad=grads[0]), index, _x(3, 2, grad=grads[1])], name)


@pytest.mark.parametrize("name", ["scatter_", "scatter_add_"])
def test_scatter_in_place(name):
    index = torch.randint(0, 5, (3, 2))
    fn = lambda a, i, s: getattr(a * 1.0, name)(1, i, s)  # noqa: E731
    _check(fn, [_x(3, 5), index, _x(3, 2)], name)


def test_scatter_of_a_value():
    index = torch.randint(0, 5, (3, 2))
    kept, _, _ = _check(lambda a, i: (a * 1.0).scatter_(1, i, 0.0), [_x(3, 5), index],
                        "scatter_")
    assert kept == [("in1", 8 * 6)]


# ------------------------------------------------------------------ nll_loss

@pytest.mark.parametrize("case", ["2-D", "4-D", "3-D", "weights", "none", "ignore_index"])
def test_nll_loss(case):
    shape = {"4-D": (2, 5, 3, 3), "3-D": (2, 5, 7)}.get(case, (4, 5))
    x = _x(*shape)
    target = torch.randint(0, 5, (shape[0], *shape[2:]))
    kw = {"weights": dict(weight=torch.rand(5)), "none": dict(reduction="none"),
          "ignore_index": dict(ignore_index=1)}.get(case, {})
    fn = lambda t, y: F.nll_loss(t, y, **kw)  # noqa: E731
    if case == "none":
        fn = lambda t, y: F.nll_loss(t, y, reduction="none").sum()  # noqa: E731
        from test_cost_rules import autograd_oracle

        g = trace_calls(fn, x, target)
        assert not g.unmodelled
        want = autograd_oracle(lambda t, y: F.nll_loss(t, y, reduction="none"), [x, target])
        call = g.calls[0]
        assert sorted(g.storage_bytes[s] for s in call.kept) == sorted(n for _, n in want[0])
        return
    _check(fn, [x, target], "nll_loss")


# ------------------------------------------------------------------ weight norm

@pytest.mark.parametrize("dim", [0, 2, 1])
@pytest.mark.parametrize("grads", [(True, True), (False, True), (False, False)])
def test_weight_norm(dim, grads):
    """wav2vec 2.0's positional convolution: ``weight_norm(conv, dim=2)``."""
    conv = torch.nn.utils.parametrizations.weight_norm(torch.nn.Conv1d(4, 6, 5, groups=2), dim=dim)
    p = conv.parametrizations.weight
    p.original0.requires_grad_(grads[0])
    p.original1.requires_grad_(grads[1])
    fn = lambda v, g: torch._weight_norm(v, g, dim)  # noqa: E731
    _check(fn, [p.original1, p.original0], "_weight_norm", [p.original0, p.original1])


# ------------------------------------------------------------------ timm's and audio models' calls

@pytest.mark.parametrize("name, fn", [
    ("flip", lambda t: t.flip(-1)),                         # gemma4_vit
    ("tile", lambda t: t.tile(2, 1)),                       # sam2_hiera
    ("repeat", lambda t: t.repeat(1, 3)),
    ("broadcast_to", lambda t: t.broadcast_to(2, 3, 5)),    # WavLM
    ("broadcast_to", lambda t: t[:1].broadcast_to(3, 5)),
])
def test_calls_that_keep_nothing(name, fn):
    kept, _, _ = _check(lambda t: fn(t) * 2.0, [_x(3, 5)], "mul")
    g = trace_calls(fn, _x(3, 5))
    assert g.calls[-1].name == name and not g.unmodelled and g.calls[-1].kept == []


def test_one_hot_makes_no_node():
    g = trace_calls(lambda i: F.one_hot(i, 4), torch.tensor([0, 1, 3]))
    assert [c.name for c in g.calls] == ["one_hot"] and not g.unmodelled


@given(shape=sizes, grads=st.sampled_from([(True, True, True), (True, False, True),
                                           (False, True, False), (True, True, False)]))
@FAST
def test_clamp_between_tensors(shape, grads):
    """gemma4_vit's position clamp: ``x.clamp(lo, hi)`` with tensor bounds."""
    xs = [_x(*shape, grad=g) for g in grads]
    if not any(grads):
        return
    _check(lambda a, lo, hi: a.clamp(lo, hi), xs, "clamp")
    _check(lambda a, lo: a.clamp(min=lo), xs[:2], "clamp")


@pytest.mark.parametrize("grads", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("b_shape", [(3, 5), (3, 1)])
def test_div_in_place_by_a_tensor(grads, b_shape):
    """ConViT's ``attn /= attn.sum(-1, keepdim=True)``."""
    _check(lambda a, b: (a * 1.0).div_(b), [_x(3, 5, grad=grads[0]), _x(*b_shape, grad=grads[1])],
           "div_")


@pytest.mark.parametrize("name", ["addcmul", "addcmul_"])
@pytest.mark.parametrize("grads", [(True, True, True), (True, False, True), (False, True, False),
                                   (True, True, False)])
def test_addcmul(name, grads):
    """CSATv2's ``addcmul``: each factor kept for the other's gradient."""
    xs = [_x(3, 5, grad=grads[0]), _x(3, 5, grad=grads[1]), _x(1, 5, grad=grads[2])]
    fn = (lambda a, b, c: torch.addcmul(a, b, c, value=0.5)) if name == "addcmul" else \
        (lambda a, b, c: (a * 1.0).addcmul_(b, c))
    _check(fn, xs, name)


@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3))
@FAST
def test_glu(shape):
    """wav2vec2-BERT's and Conformer's convolution module: ``glu`` keeps its input."""
    x = _x(*shape[:-1], 2 * shape[-1])
    kept, _, _ = _check(lambda t: F.glu(t, -1), [x], "glu")
    assert kept == [("in0", 4 * x.numel())]
