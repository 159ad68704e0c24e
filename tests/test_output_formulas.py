"""Readable formulas (complexity.output.formulas) read back: the ⌊⌋/⌈⌉ text by
its own parser and by plain string substitution, the LaTeX by a small reader of
its own here (sympy's LaTeX parser needs antlr); each equal to the sympy
expression at random integer points — derive's real resnet18 and swin formulas
among them."""
from __future__ import annotations

import json
import re

import sympy as sp
from hypothesis import given, settings, strategies as st
from sympy.parsing.sympy_parser import (implicit_multiplication_application, parse_expr,
                                        standard_transformations)

from cli_helpers import run_cli
from complexity.output.formulas import latex, parse_readable, readable

H, W = (sp.Symbol(n, integer=True, positive=True) for n in "HW")


def from_latex(text: str) -> sp.Expr:
    """Enough of LaTeX for sympy's printing of these formulas."""
    text = text.strip("$")
    text = re.sub(r"\\mathit\{(\w+)\}", r"\1", text)
    for old, new in [(r"\left\lfloor", "floor("), (r"\right\rfloor", ")"),
                     (r"\left\lceil", "ceiling("), (r"\right\rceil", ")"),
                     (r"\left(", "("), (r"\right)", ")"), ("{", "("), ("}", ")"), ("^", "**")]:
        text = text.replace(old, new)
    while r"\frac" in text:  # \frac(a)(b) -> ((a)/(b)), innermost arguments have no parens
        text = re.sub(r"\\frac(\([^()]*\))(\([^()]*\))", r"(\1/\2)", text)
    return parse_expr(text, local_dict={"H": H, "W": W},
                      transformations=standard_transformations
                      + (implicit_multiplication_application,))


def by_hand(text: str) -> sp.Expr:
    """The readable text read with nothing of the module under test."""
    sup = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")
    text = re.sub(r"([⁰¹²³⁴⁵⁶⁷⁸⁹]+)", lambda m: "**" + m.group(1).translate(sup), text)
    for old, new in [("·", "*"), ("⌊", "floor("), ("⌋", ")"), ("⌈", "ceiling("), ("⌉", ")")]:
        text = text.replace(old, new)
    return sp.sympify(text, locals={"H": H, "W": W})


floors = st.builds(lambda f, d, c, s: f(s / d + sp.Rational(c, d)),
                   st.sampled_from([sp.floor, sp.ceiling]), st.integers(2, 64),
                   st.integers(0, 63), st.sampled_from([H, W]))
terms = st.builds(lambda k, a, b, p: k * a * b ** p, st.integers(1, 10 ** 7), floors, floors,
                  st.integers(0, 2))
formulas = st.lists(terms, min_size=1, max_size=5).map(lambda ts: sp.Add(*ts) + 512000)


def equal_at_points(a, b, seed: int):
    import random

    rng = random.Random(seed)
    for _ in range(8):
        point = {H: rng.randint(1, 999), W: rng.randint(1, 999)}
        assert a.xreplace(point) == b.xreplace(point), point


@settings(max_examples=60, deadline=None)
@given(e=formulas, seed=st.integers(0, 10 ** 6))
def test_readable_and_latex_read_back_equal(e, seed):
    text = readable(e)
    assert "floor" not in text and "ceiling" not in text and "*" not in text
    equal_at_points(parse_readable(text, ["H", "W"]), e, seed)
    equal_at_points(by_hand(text), e, seed)
    tex = latex(e)
    assert "floor(" not in tex and "ceiling(" not in tex
    equal_at_points(from_latex(tex), e, seed)


def test_derive_resnet18_every_format_reads_back(capsys):
    from complexity.output.profile import render_derive

    code, out, _ = run_cli(["derive", "torchvision:resnet18", "--symbols", "H,W", "--format",
                            "json"], capsys)
    data = json.loads(out)
    assert code == 0
    for q, f in data["formulas"].items():
        e = sp.sympify(f, locals={"H": H, "W": W})
        equal_at_points(by_hand(data["readable"][q]), e, 0)
    macs = data["readable"]["macs"]
    assert "⌈H/32⌉·⌈W/32⌉" in macs, macs
    for fmt in ("table", "markdown"):  # the command renders its JSON so (test_output_formats)
        assert macs in render_derive(data, fmt)
    row = next(ln for ln in render_derive(data, "latex").splitlines()
               if ln.strip().startswith("macs"))
    tex = row.split("&", 1)[1].rstrip("\\ ").strip()
    assert r"\left\lceil" in tex
    equal_at_points(from_latex(tex), sp.sympify(data["formulas"]["macs"],
                                                locals={"H": H, "W": W}), 1)
