"""The oracle at the heart of the project: the sympy formulas (per layer and in
total) equal what forward hooks measure on a real instantiated network."""
import pytest
import torch
from hypothesis import example, given, settings

from complexity.counting import hooks, symbolic
from complexity.counting.conventions import CONVENTIONS, QUANTITIES
from models.colourization import build
from strategies import params


def measured(model, p):
    with torch.device("meta"):
        net = build(model, p["k"], p["NF"], p["NC"], p["NIC"])
    return net


def predicted_layers(model, convention, p):
    return [
        {"name": name, "kind": kind, "shape": [symbolic.evaluate(s, p) for s in shape],
         **{q: symbolic.evaluate(v, p) for q, v in qs.items()}}
        for name, kind, shape, qs in symbolic.layer_formulas(model, convention)
    ]


CASES = [(m, c) for m in symbolic.MODELS for c in CONVENTIONS]


@pytest.mark.parametrize("model,convention", CASES)
def test_formulas_equal_hooks(model, convention):
    @settings(max_examples=200, deadline=None)
    @given(p=params(model))
    # Odd sizes, where the CNN's floor matters; k = 1 (no padding); the smallest map.
    @example(p=dict(NF=1, NC=1, k=1, NIC=1, H=4, W=4))
    @example(p=dict(NF=3, NC=5, k=7, NIC=4, H=4, W=8))
    def check(p):
        net = measured(model, p)
        got = hooks.count_layers(net, (1, p["NIC"], p["H"], p["W"]), convention)
        want = predicted_layers(model, convention, p)
        assert got == want
        totals = {q: symbolic.evaluate(f, p) for q, f in symbolic.formulas(model, convention).items()}
        assert totals == {q: sum(r[q] for r in got) for q in QUANTITIES}

    check()


@settings(max_examples=60, deadline=None)
@given(p=params("cnn"))
@example(p=dict(NF=2, NC=3, k=3, NIC=1, H=5, W=7))     # floor(5/4) = 1, floor(7/2) = 3
@example(p=dict(NF=2, NC=3, k=5, NIC=2, H=127, W=6))
def test_cnn_floor_sizes(p):
    """The CNN at sizes not divisible by 4: the formulas carry floor()."""
    net = measured("cnn", p)
    got = hooks.count(net, (1, p["NIC"], p["H"], p["W"]), "torch")
    want = {q: symbolic.evaluate(f, p) for q, f in symbolic.formulas("cnn", "torch").items()}
    assert got == want
