"""`doubled` is the value at 2H×2W; for H, W divisible by 4 the ratios are exactly
1 (weights) and 4 (outputs, connections)."""
from hypothesis import given, settings

from complexity.counting import report, symbolic
from complexity.counting.conventions import CONVENTIONS
from strategies import params


@settings(max_examples=100, deadline=None)
@given(p=params("unet"))
def test_doubled_and_ratios(p):
    results = report.build(["cnn", "unet"], list(CONVENTIONS), p, verify=False)
    for r in results:
        for q, d in r["quantities"].items():
            at_double = symbolic.evaluate(d["formula"], {**p, "H": 2 * p["H"], "W": 2 * p["W"]})
            assert d["doubled"] == at_double
            assert d["value"] == symbolic.evaluate(d["formula"], p)
            assert d["ratio"] == (1.0 if q == "weights" else 4.0)
            # exact, not a rounded float: the integers themselves
            assert d["doubled"] == d["value"] * (1 if q == "weights" else 4)
