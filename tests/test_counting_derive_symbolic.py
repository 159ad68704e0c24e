"""`derive` by one symbolic-shape trace, against independent counts: FlopCounterMode
on real tensors, forward hooks (complexity.counting.hooks) and profile on the meta
device, at random sizes — odd ones included — that the trace never saw."""
from __future__ import annotations

import json
from functools import lru_cache

import pytest
import sympy as sp
import torch
import torchvision
from hypothesis import given, settings, strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import complexity
from complexity.__main__ import main
from complexity.counting import hooks
from complexity.counting.profile import profile, totals

H, W = (sp.Symbol(n, integer=True, positive=True) for n in "HW")


def real_counts(net: nn.Module, shape):
    """params, leaf-module output units and FlopCounterMode MACs of a real forward."""
    units = []
    leaves = [m for m in net.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(lambda m, i, o: units.append(o.numel())) for m in leaves]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            net.eval()(torch.randn(*shape))
    finally:
        for h in handles:
            h.remove()
    return {"params": sum(p.numel() for p in net.parameters()), "outputs": sum(units),
            "macs": sp.Rational(fc.get_total_flops(), 2)}


def at(d, **values):
    return {q: f.xreplace({sp.Symbol(n, integer=True, positive=True): v
                           for n, v in values.items()}) for q, f in d.formulas.items()}


class Strided(nn.Module):
    """Three stride-2 layers of different padding and kernel: floors that differ
    for odd and even sizes."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.b = nn.Conv2d(4, 6, 5, stride=2)
        self.pool = nn.MaxPool2d(2)
        self.c = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        return self.c(self.pool(torch.relu(self.b(torch.relu(self.a(x))))))


@lru_cache(maxsize=None)
def strided():
    return complexity.derive(Strided, "H,W", (1, 3, 40, 40))


@lru_cache(maxsize=None)
def resnet18():
    return complexity.derive("torchvision:resnet18", "H,W", (1, 3, 64, 64))


def test_strided_net_is_symbolic_and_matches_a_hand_formula():
    d = strided()
    assert d.method == "symbolic" and d.verified_points >= 20 and d.narrowed == []
    # by hand: a → ⌈H/2⌉ (fan-in 27, 4 ch), b → ⌊(⌈H/2⌉ − 5)/2⌋ + 1 (fan-in 100, 6 ch),
    # pool halves (floor), c: fan-in 6, 2 ch
    h1, w1 = sp.ceiling(H / 2), sp.ceiling(W / 2)
    h2, w2 = sp.floor((h1 - 5) / 2) + 1, sp.floor((w1 - 5) / 2) + 1
    h3, w3 = sp.floor(h2 / 2), sp.floor(w2 / 2)
    macs = 108 * h1 * w1 + 600 * h2 * w2 + 12 * h3 * w3
    for hv, wv in [(225, 191), (41, 97), (64, 64), (301, 33)]:
        assert at(d, H=hv, W=wv)["macs"] == macs.xreplace({H: hv, W: wv})


@settings(max_examples=12, deadline=None)
@given(h=st.integers(23, 160), w=st.integers(23, 160))
def test_strided_net_formula_equals_flopcounter_and_hooks_at_any_size(h, w):
    d = strided()
    if h < d.domain["H"]["min"] or w < d.domain["W"]["min"]:
        return
    torch.manual_seed(0)
    assert at(d, H=h, W=w) == real_counts(Strided(), (1, 3, h, w))


@settings(max_examples=6, deadline=None)
@given(h=st.integers(33, 129), w=st.integers(33, 129))
def test_resnet18_formula_equals_flopcounter_on_real_tensors(h, w):
    d = resnet18()
    assert d.method == "symbolic" and d.domain["H"]["step"] == 1
    real = torchvision.models.resnet18()
    assert at(d, H=h, W=w) == real_counts(real, (1, 3, h, w))


def test_resnet18_formula_equals_profile_at_odd_sizes():
    d = resnet18()
    with torch.device("meta"):
        net = torchvision.models.resnet18()
    for hv, wv in [(225, 191), (33, 35), (511, 97)]:
        counted = totals(profile(net, (1, 3, hv, wv), layers=False))
        assert at(d, H=hv, W=wv) == {q: sp.Rational(v) for q, v in counted.items()}
        assert d.at(H=hv, W=wv) == counted


@pytest.mark.parametrize("name", ["cnn", "unet"])
def test_colourization_nets_against_hooks(name):
    d = complexity.derive(name, "H,W")
    assert d.method == "symbolic"
    from models.colourization import CNN, UNet

    cls = CNN if name == "cnn" else UNet
    step = d.domain["H"]["step"]
    if name == "unet":  # UNet asks for H, W divisible by 4: the domain says so
        # by hand: H a multiple of 4, and two MaxPool2d(2) take H to H/4 at the
        # bottleneck, which the symbolic trace cannot let be 1 (a size-1 dimension is
        # a special case of the strides: the guard floor(H/4) != 1); H/4 >= 2, so the
        # least H is 8 — the same for W
        for s in ("H", "W"):
            assert d.domain[s] == {"min": 8, "step": 4, "residue": 0}, s
        assert "(mod 4)" in d.domain_text
    with torch.device("meta"):
        net = cls(3, 32, 24, 1)
    for hv, wv in [(36, 44), (100, 68), (52, 212)] if step == 4 else [(37, 45), (101, 67)]:
        counted = hooks.count(net, (1, 1, hv, wv), "torch")
        got = d.at(H=hv, W=wv)
        assert (got["params"], got["outputs"], got["macs"]) == \
            (counted["weights"], counted["outputs"], counted["connections"])
    if name == "unet":
        with pytest.raises(ValueError, match="outside"):
            d.at(H=37, W=40)
        # the minimum is taken (and agrees with the hooks), the lattice point below it not
        for hv, wv in [(8, 8), (8, 12), (12, 8)]:
            counted = hooks.count(net, (1, 1, hv, wv), "torch")
            got = d.at(H=hv, W=wv)
            assert (got["params"], got["outputs"], got["macs"]) == \
                (counted["weights"], counted["outputs"], counted["connections"])
        for hv, wv in [(4, 8), (8, 4)]:
            with pytest.raises(ValueError, match="outside"):
                d.at(H=hv, W=wv)


class FixedSize(nn.Module):
    """Asserts its input width, as a ViT asserts its image size."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        torch._assert(x.shape[-1] == 48, "width must be 48")
        return self.conv(x)


def test_a_specialised_symbol_is_refused_naming_the_guard():
    with pytest.raises(ValueError, match=r"W is fixed to 48 by the forward: guard W == 48 at the forward of FixedSize"):
        complexity.derive(FixedSize(), "H,W", (1, 3, 48, 48))


def test_cli_refuses_vit_b_16_in_one_line(capsys):
    code = main(["derive", "torchvision:vit_b_16", "--input", "1,3,H,W"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert "fixed" in err and "H == 224" in err and "VisionTransformer" in err, err


def test_cli_input_letters_are_the_symbols(capsys):
    assert main(["derive", "tests.test_counting_derive_symbolic:Strided", "--input", "1,3,H,W",
                 "--format", "json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["method"] == "symbolic" and r["symbols"] == {"H": "input[2]", "W": "input[3]"}
    f = sp.sympify(r["formulas"]["macs"], locals={"H": H, "W": W})
    torch.manual_seed(0)
    assert f.xreplace({H: 225, W: 191}) == real_counts(Strided(), (1, 3, 225, 191))["macs"]


def test_cli_batch_letter_is_a_symbol(capsys):
    assert main(["derive", "tests.test_counting_derive_symbolic:Strided", "--input", "B,3,40,H",
                 "--format", "json"]) == 0
    r = json.loads(capsys.readouterr().out)
    B = sp.Symbol("B", integer=True, positive=True)
    f = sp.sympify(r["formulas"]["outputs"], locals={"B": B, "H": H})
    assert f.xreplace({B: 3, H: 77}) == real_counts(Strided(), (3, 3, 40, 77))["outputs"]


def test_cli_without_any_symbol_is_one_line(capsys):
    code = main(["derive", "cnn", "--input", "1,1,32,32"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and "--symbols" in err


def test_guard_locations_skip_the_same_files_as_torch_without_its_imports():
    """The trace swaps ShapeEnv's uninteresting_files for an equal set built without
    importing torch.export._trace (about 0.45 s of a first trace): equal to torch's
    own, no stand-in module left behind, and torch's function put back after."""
    import sys

    from torch.fx.experimental import symbolic_shapes as ss

    from complexity.counting import symbolic_shapes as sym
    from complexity.counting import trace_watch

    was = ss.uninteresting_files
    names = ("torch.export._trace", "torch._inductor.sizevars")
    before = {n: sys.modules.get(n) for n in names}
    trace_watch.uninteresting_files_light.cache_clear()
    ours = trace_watch.uninteresting_files_light()
    assert {n: sys.modules.get(n) for n in names} == before  # loaded or not, as before
    sym.trace(Strided(), (1, 3, 40, 40), {"H": 2, "W": 3})
    assert ss.uninteresting_files is was
    assert ours == frozenset(ss.uninteresting_files())  # imports them, as torch does


def test_a_trace_past_its_budget_names_the_op_and_module_in_one_line():
    from complexity.counting import symbolic_shapes as sym

    with pytest.raises(sym.Unsupported) as e:
        sym.trace(Strided(), (1, 3, 40, 40), {"H": 2, "W": 3}, budget_s=0)
    text = str(e.value)
    assert "\n" not in text and "passed 0 s at aten." in text and "(Conv2d)" in text, text


def test_derive_hands_the_heap_back_to_the_collector():
    import gc

    assert gc.get_freeze_count() == 0
    strided.cache_clear()
    assert strided().method == "symbolic"
    assert gc.get_freeze_count() == 0


def test_a_boolean_guard_translates_without_expanding():
    """A guard ShapeEnv keeps as Not(...) (mobilenet_v3_large's trace has one) is a
    condition, not a size: translated, never expanded."""
    from complexity.counting.symbolic_shapes import to_sympy

    from torch.utils._sympy.functions import FloorDiv

    s, t = (sp.Symbol(n, integer=True, positive=True) for n in ("s0", "s1"))
    # as ShapeEnv wrote it: not (both maps are 1 wide after a stride-8 stage)
    guard = sp.Not(sp.And(sp.Eq(FloorDiv(s - 1, 8) + 1, 1), sp.Eq(FloorDiv(t - 1, 8) + 1, 1)))
    assert isinstance(guard, sp.Not)
    g = to_sympy(guard, {s: H, t: W})
    assert not g.xreplace({H: 8, W: 8}) and g.xreplace({H: 9, W: 8})
