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
    """The write-up's weights formula against the true count, derived by hand from
    docs/architectures.md (lecture convention: conv kernels only, k²·Cin·Cout; k = 3,
    NIC = 1). The CNN's six convolutions, Cin → Cout:

        downconv1  NIC → NF    9·1·NF    =  9·NF
        downconv2  NF  → 2NF   9·NF·2NF  = 18·NF²
        rfconv     2NF → 2NF   9·2NF·2NF = 36·NF²
        upconv1    2NF → NF    9·2NF·NF  = 18·NF²
        upconv2    NF  → NC    9·NF·NC   =  9·NF·NC
        finalconv  NC  → NC    9·NC·NC   =  9·NC²

    true = 9·NF + 72·NF² + 9·NF·NC + 9·NC². The write-up published
    9·NF + 72·NF² + 9·NC²: it is short of exactly upconv2's 9·NF·NC, and the code's
    formula is the true one. At NF = 32, NC = 24: 79,200 claimed, 86,112 true
    (docs/conventions.md's table)."""
    by_hand = {"downconv1": 9 * NF, "downconv2": 18 * NF**2, "rfconv": 36 * NF**2,
               "upconv1": 18 * NF**2, "upconv2": 9 * NF * NC, "finalconv": 9 * NC**2}
    true = sum(by_hand.values())
    write_up = 9 * NF + 72 * NF**2 + 9 * NC**2
    ours = symbolic.formulas("cnn", "lecture")["weights"].subs(AT_32)
    assert sp.expand(ours - true) == 0
    assert sp.expand(true - write_up) == by_hand["upconv2"]
    at = {NF: 32, NC: 24}
    assert (write_up.subs(at), true.subs(at)) == (79200, 86112)


def test_lecture_outputs_and_connections_by_hand():
    """The lecture outputs (conv output units) and connections (units × k²·Cin) at
    32×32, layer by layer from docs/architectures.md: MaxPool2d(2) after downconv1
    and downconv2, Upsample(2) after upconv1 and upconv2 (a conv's output is taken
    before its pool or upsample):

        conv        size   units      × k²·Cin   connections
        downconv1   32²    1024·NF    9·1        9216·NF
        downconv2   16²     512·NF    9·NF       4608·NF²
        rfconv       8²     128·NF    9·2NF      2304·NF²
        upconv1      8²      64·NF    9·2NF      1152·NF²
        upconv2     16²     256·NC    9·NF       2304·NF·NC
        finalconv   32²    1024·NC    9·NC       9216·NC²

    outputs = 1728·NF + 1280·NC — the write-up's outputs formula, which is right."""
    units = [(1024 * NF, 9), (512 * NF, 9 * NF), (128 * NF, 18 * NF), (64 * NF, 18 * NF),
             (256 * NC, 9 * NF), (1024 * NC, 9 * NC)]
    f = symbolic.formulas("cnn", "lecture")
    assert sp.expand(f["outputs"].subs(AT_32) - sum(u for u, _ in units)) == 0
    assert sp.expand(f["connections"].subs(AT_32) - sum(u * c for u, c in units)) == 0
    assert sp.expand(sum(u for u, _ in units) - (1728 * NF + 1280 * NC)) == 0
