"""Formulas against values published or checked by hand, not produced by the code."""
import sympy as sp

from complexity.counting import symbolic
from complexity.counting.symbolic import NC, NF, H, W, NIC, k

AT_32 = {k: 3, NIC: 1, H: 32, W: 32}


def test_lecture_point_of_spec():
    """The published point of the `lecture` convention (docs/conventions.md): k = 3, NIC = 1, 32×32 (the published point)."""
    f = symbolic.formulas("cnn", "lecture")
    published = {
        "weights": 9 * NF + 72 * NF**2 + 9 * NF * NC + 9 * NC**2,
        "outputs": 1728 * NF + 1280 * NC,
        "connections": 9216 * NF + 8064 * NF**2 + 2304 * NF * NC + 9216 * NC**2,
    }
    for q, expr in published.items():
        assert sp.expand(f[q].subs(AT_32) - expr) == 0, q


def test_course_weights_of_spec_example():
    """The JSON example of docs/cli.md: the CNN at NF = 32, NC = 24 has 86,784 course weights.
    By hand: 9·32 + 32 (downconv1) + 64 (BN) + 9·32·64 + 64 + 128 + 9·64·64 + 64 + 128
    + 9·64·32 + 32 + 64 + 9·32·24 + 24 + 48 + 9·24·24 + 24 = 86,784."""
    by_hand = (9 * 32 + 32 + 64 + 9 * 32 * 64 + 64 + 128 + 9 * 64 * 64 + 64 + 128
               + 9 * 64 * 32 + 32 + 64 + 9 * 32 * 24 + 24 + 48 + 9 * 24 * 24 + 24)
    assert by_hand == 86784
    assert symbolic.evaluate(symbolic.formulas("cnn", "course")["weights"],
                             dict(NF=32, NC=24, k=3, NIC=1, H=32, W=32)) == by_hand


def test_unet_extra_weights_are_the_skip_channels():
    """The UNet differs from the CNN only in the input channels of upconv1 (+2NF),
    upconv2 (+NF) and finalconv (+NIC): k²·(2NF·NF + NF·NC + NIC·NC) more weights."""
    diff = symbolic.formulas("unet", "lecture")["weights"] - symbolic.formulas("cnn", "lecture")["weights"]
    assert sp.expand(diff - k**2 * (2 * NF * NF + NF * NC + NIC * NC)) == 0


def test_write_up_errors_are_caught():
    """The write-up's weights formula dropped upconv2's term (9·NF·NC at k = 3):
    it must not equal ours."""
    write_up = 9 * NF + 72 * NF**2 + 9 * NC**2
    assert sp.expand(symbolic.formulas("cnn", "lecture")["weights"].subs(AT_32) - write_up) != 0
