"""Shifted-window models in `derive`: a small torchvision Swin traced once on
symbolic sizes (its window padding and patch merging as ceilings) against
FlopCounterMode and forward hooks on real tensors at random held-out sizes, odd
ones included; the default swin_t refused in one line naming the op whose guard
confines the width; and the two integer rules the trace uses, against Python's
own arithmetic."""
from __future__ import annotations

from functools import lru_cache

import sympy as sp
import torch
from hypothesis import given, settings, strategies as st
from torch.utils._sympy.functions import FloorDiv, Mod, PythonMod
from torchvision.models.swin_transformer import SwinTransformer

from complexity.__main__ import main
from complexity.counting import symbolic_shapes as sym
from complexity.counting.floor_rules import padded, short_sizes
from tests.test_counting_derive_symbolic import real_counts

x = sp.Symbol("x", integer=True)


def small_swin():
    """Two stages of a shifted-window transformer (window 7, patch 4): padding to
    the window, a shifted block, patch merging with its odd-size pad."""
    torch.manual_seed(0)
    return SwinTransformer(patch_size=[4, 4], embed_dim=8, depths=[2, 2], num_heads=[1, 1],
                           window_size=[7, 7], num_classes=5).eval()


@lru_cache(maxsize=None)
def traced():
    # 116: the first stage 29 wide (not a multiple of 7), the second 15 (> 7)
    return sym.trace(small_swin(), (1, 3, 116, 116), {"H": 2, "W": 3})


@settings(max_examples=6, deadline=None)
@given(h=st.integers(58, 150), w=st.integers(58, 150))
def test_small_swin_formulas_equal_real_counts_at_held_out_sizes(h, w):
    r = traced()
    if not sym.in_domain(r, {"H": h, "W": w}):
        return
    H, W = (sp.Symbol(n, integer=True, positive=True) for n in "HW")
    formulas = {q: f.xreplace({H: h, W: w}) for q, f in r["formulas"].items()}
    assert formulas == real_counts(small_swin(), (1, 3, h, w))


def test_small_swin_domain_holds_odd_sizes_and_its_padding_is_a_ceiling():
    r = traced()
    odd = [(h, w) for h in range(101, 140, 2) for w in (117, 131)
           if sym.in_domain(r, {"H": h, "W": w})]
    assert len(odd) >= 10
    # the first stage pads ⌊W/4⌋ to a multiple of 7: the formula holds ⌈⌊W/4⌋/7⌉,
    # kept as one floor of W (the nested-floor rule): ⌊(W + 24)/28⌋
    text = str(r["formulas"]["macs"])
    assert "floor(W/28 + 6/7)" in text and "Mod" not in text, text


def test_swin_t_at_224_is_refused_in_one_line_naming_the_op(capsys):
    code = main(["derive", "torchvision:swin_t", "--symbols", "H,W"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    # at 224 each stage's width is a multiple of 7 (56, 28, 14, 7): the unpadding
    # slice is then contiguous, and a guard on that holds at 11 of the next 64 sizes
    assert "confined by aten." in err and "SwinTransformerBlock" in err and "W = 228" in err, err


@settings(max_examples=200, deadline=None)
@given(v=st.integers(-500, 500), c=st.integers(2, 9), k=st.integers(-20, 20))
def test_ceiling_by_padding_equals_python(v, c, k):
    # Swin's pad: (c - x % c) % c, added to x; patch merging: x + x % 2
    for mod, want in [(Mod(c - Mod(x, c), c), v + (c - v % c) % c),
                      (PythonMod(k - x, c), v + (k - v) % c),
                      (Mod(x, 2), v + v % 2)]:
        short = padded(x, mod)
        assert short is not None and short.xreplace({x: v}) == want


def test_padding_that_is_no_ceiling_is_left_alone():
    assert padded(x, Mod(x, 3)) is None  # x + x mod 3: no constant residue of 2x


@settings(max_examples=200, deadline=None)
@given(v=st.integers(-500, 500), m=st.integers(1, 9), n=st.integers(1, 9), k=st.integers(-9, 9))
def test_nested_floor_equals_python(v, m, n, k):
    with short_sizes():
        e = FloorDiv(FloorDiv(x, m) + k, n)
    assert e.xreplace({x: v}) == (v // m + k) // n
