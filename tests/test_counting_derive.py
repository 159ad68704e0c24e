"""`derive` against independent answers: the report's sympy algebra (a route that
never runs a network), hand-derived formulas, and FlopCounterMode on real
tensors at points derive never saw."""
from __future__ import annotations

import json

import pytest
import sympy as sp
import torch
import torchvision
from hypothesis import given, settings, strategies as st
from torch.utils.flop_counter import FlopCounterMode

from complexity.counting import symbolic
from complexity.__main__ import main
from complexity.counting.derive import DeriveError, derive
from complexity.counting.symbolic import NC, NF, NIC, H, W, k
import profile_models as pm

# `report --convention torch` counts exactly what `profile` counts: every
# parameter (weights ↔ params), every leaf module's output units (outputs ↔
# outputs) and conv multiply-accumulates (connections ↔ macs; the torch convention, docs/conventions.md).
REPORT_NAMES = {"params": "weights", "outputs": "outputs", "macs": "connections"}


def derive_cli(argv, capsys):
    assert main(["derive", *argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def parsed(result):
    """The JSON formulas as sympy expressions in the report's symbols."""
    names = {s.name: s for s in (NF, NC, k, NIC, H, W)}
    names.update({n: sp.Symbol(n, integer=True, positive=True) for n in result["symbols"]})
    return {q: sp.sympify(f, locals=names) for q, f in result["formulas"].items()}


def test_unet_formulas_equal_report_in_nf_nc_h_w(capsys):
    r = derive_cli(["unet", "--symbols", "NF=num_filters,NC=num_colours,H,W"], capsys)
    got = parsed(r)
    report = symbolic.formulas("unet", "torch")
    for q, rq in REPORT_NAMES.items():
        assert sp.expand(got[q] - report[rq].subs({k: 3, NIC: 1})) == 0, q
    assert r["domain"]["H"]["step"] == 4 and r["verified_points"] >= 20


def test_cnn_formulas_equal_report_in_every_width_argument(capsys):
    r = derive_cli(["cnn", "--symbols", "NF,NC,k,NIC", "--input", "1,1,32,32"], capsys)
    got = parsed(r)
    report = symbolic.formulas("cnn", "torch")
    for q, rq in REPORT_NAMES.items():
        assert sp.expand(got[q] - report[rq].subs({H: 32, W: 32})) == 0, q
    assert r["domain"]["k"] == {"min": 1, "step": 2, "residue": 1}  # odd kernels only


def test_cnn_floor_effects_are_kept_and_match_report(capsys):
    r = derive_cli(["cnn", "--symbols", "H,W", "--nf", "8", "--nc", "6"], capsys)
    assert r["method"] == "symbolic" and r["narrowed"] == []
    got = parsed(r)
    report = symbolic.formulas("cnn", "torch")
    # the report keeps floor(H/2), floor(H/4); so does the one-pass derive: equal at
    # every size of the domain, odd ones included
    for hv, wv in [(33, 47), (64, 64), (225, 191), (101, 8)]:
        if hv < r["domain"]["H"]["min"] or wv < r["domain"]["W"]["min"]:
            continue
        for q, rq in REPORT_NAMES.items():
            expected = report[rq].subs({NF: 8, NC: 6, k: 3, NIC: 1, H: hv, W: wv})
            assert got[q].subs({H: hv, W: wv}) == expected, (q, hv, wv)


def test_course_convention_params_and_outputs_equal_report(capsys):
    r = derive_cli(["unet", "--symbols", "NF,NC", "--convention", "course"], capsys)
    got = parsed(r)
    report = symbolic.formulas("unet", "course")
    at = {k: 3, NIC: 1, H: 32, W: 32}
    assert sp.expand(got["params"] - report["weights"].subs(at)) == 0
    assert sp.expand(got["outputs"] - report["outputs"].subs(at)) == 0


def test_strided_model_floor_effects_against_hand_formula_and_real_flops(capsys):
    r = derive_cli(["tests.profile_models:strided", "--input", "1,3,32,32",
                    "--symbols", "C=channels,H,W"], capsys)
    got = parsed(r)
    C = sp.Symbol("C", integer=True, positive=True)
    # by hand, on H, W ≡ 0 (mod 4): conv1 → C×H/2×W/2 (fan-in 27), conv2 → C×H/4×W/4
    # (fan-in 9C); ReLU adds outputs, no MACs.
    assert r["domain"]["H"]["step"] == 4 and r["domain"]["C"]["step"] == 1
    assert sp.expand(got["params"] - (27 * C + C + 9 * C * C + C)) == 0
    assert sp.expand(got["macs"] - (27 * C * H * W / 4 + 9 * C * C * H * W / 16)) == 0
    assert sp.expand(got["outputs"] - (2 * C * H * W / 4 + C * H * W / 16)) == 0
    # and at a point derive never used, against FlopCounterMode on real tensors
    net = pm.strided(5)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        net(torch.randn(1, 3, 44, 60))
    assert got["macs"].subs({C: 5, H: 44, W: 60}) == fc.get_total_flops() // 2


def test_resnet18_in_h_w_matches_flopcounter_off_grid():
    from complexity.counting.derive import bind_symbols, model_counter
    from complexity.zoo import parse_spec

    spec = parse_spec("torchvision:resnet18")
    with torch.device("meta"):
        module = spec.build()
    names, bindings, base = bind_symbols("H,W", spec, (1, 3, 224, 224), module)
    r = derive(model_counter(spec, (1, 3, 224, 224), bindings), names, base)
    assert r["domain"]["H"] == {"min": 32, "step": 32, "residue": 0}
    torch.manual_seed(0)
    real = torchvision.models.resnet18().eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        real(torch.randn(1, 3, 96, 64))
    hs, ws = sp.Symbol("H", integer=True, positive=True), sp.Symbol("W", integer=True, positive=True)
    assert r["formulas"]["macs"].subs({hs: 96, ws: 64}) == fc.get_total_flops() // 2
    assert r["formulas"]["params"] == sum(p.numel() for p in real.parameters())


# ---- derive() on synthetic counters: fast, so property-tested
@settings(max_examples=25, deadline=None)
@given(coeffs=st.lists(st.integers(-50, 50), min_size=6, max_size=6),
       base=st.tuples(st.integers(1, 40), st.integers(1, 40)))
def test_recovers_any_polynomial_of_degree_two(coeffs, base):
    c = coeffs
    f = lambda p: {"params": c[0] + c[1] * p["x"] + c[2] * p["y"],  # noqa: E731
                   "outputs": c[3] * p["x"] * p["y"],
                   "macs": c[4] * p["x"] ** 2 * p["y"] + c[5] * p["y"] ** 2}
    r = derive(f, ["x", "y"], {"x": base[0], "y": base[1]})
    x, y = (sp.Symbol(n, integer=True, positive=True) for n in "xy")
    assert sp.expand(r["formulas"]["macs"] - (c[4] * x ** 2 * y + c[5] * y ** 2)) == 0
    assert sp.expand(r["formulas"]["params"] - (c[0] + c[1] * x + c[2] * y)) == 0
    assert r["domain"]["x"]["step"] == 1 and r["verified_points"] >= 20


@settings(max_examples=10, deadline=None)
@given(stride=st.sampled_from([2, 4, 8, 16, 32]), base=st.integers(1, 100))
def test_floor_narrows_to_the_stride(stride, base):
    f = lambda p: {"params": 7, "outputs": (p["H"] // stride) * 3, "macs": 0}  # noqa: E731
    r = derive(f, ["H"], {"H": base})
    d = r["domain"]["H"]
    assert d["step"] == stride and d["residue"] == base % stride
    hs = sp.Symbol("H", integer=True, positive=True)
    value = d["min"] + 5 * stride
    assert r["formulas"]["outputs"].subs(hs, value) == (value // stride) * 3


def test_never_returns_an_unverified_formula():
    # polynomial near the base, different far away: interpolation fits, checks fail
    f = lambda p: {"params": p["n"] if p["n"] < 200 else 0, "outputs": 0, "macs": 0}  # noqa: E731
    with pytest.raises(DeriveError, match="no formula printed"):
        derive(f, ["n"], {"n": 150})
    g = lambda p: {"params": 2 ** p["n"], "outputs": 0, "macs": 0}  # noqa: E731
    with pytest.raises(DeriveError, match="not polynomial"):
        derive(g, ["n"], {"n": 3})


@pytest.mark.parametrize("symbols,fragment", [
    ("NF,num_filters", "both bind argument num_filters"),   # NF is num_filters' alias
    ("A=num_filters,B=num_filters", "both bind argument num_filters"),
    ("lambda", "Python keyword"),
    ("X=lambda", "Python keyword"),
])
def test_symbols_bound_twice_or_keywords_are_rejected(symbols, fragment, capsys):
    # Used to overwrite NF silently (two symbols, one argument) or raise SyntaxError.
    code = main(["derive", "cnn", "--symbols", symbols])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err and fragment in err, err


def test_a_named_argument_symbol_with_letters_in_the_input():
    """``C=width`` keeps its binding when the input's letters add symbols (it was
    rebuilt as a bare ``C``, which names no argument)."""
    from torch import nn

    from complexity import derive

    def conv(width=4):
        return nn.Conv2d(1, width, 3)

    d = derive(conv, "C=width", "1,1,H,8")
    assert d.symbols == {"C": "width", "H": "input[2]"}
    assert str(d.formulas["params"]) == "10*C"
