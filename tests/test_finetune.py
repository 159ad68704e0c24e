"""Fine-tuning cost: prediction (structure + rules), closed forms (by hand) and
measurement (FlopCounterMode, saved_tensors_hooks, live-bytes tracker) must agree."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from complexity import finetune_symbolic as fs
from complexity.finetune import (KEYS, build_model, measure, predict, set_trainable, slopes,
                                 sweep)
from models.colourization import CNN, UNet
from models.stack import Stack

ADDITIVE = [q for q in KEYS if q != "peak_bytes"]


def _agree(p, m, peak_tol=0.10):
    """Every additive quantity within 5 % (they are exact here), peak within 10 %."""
    for q in ADDITIVE:
        assert abs(p[q] - m[q]) <= 0.05 * m[q], (q, p[q], m[q])
    assert abs(p["peak_bytes"] - m["peak_bytes"]) <= peak_tol * m["peak_bytes"]


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 5), width=st.integers(1, 6), size=st.integers(2, 12),
       batch=st.integers(1, 3), mode=st.sampled_from(["full", "last"]))
def test_stack_closed_form_prediction_and_measurement_agree(n, width, size, batch, mode):
    net = Stack(n, width)
    set_trainable(net, mode)
    shape = (batch, width, size, size)
    m, p = measure(net, shape), predict(net, shape)
    _agree(p, m)
    # The hand-derived closed forms match the measurement exactly.
    values = dict(n=n, C=width, k=3, K=2, B=batch, H=size, W=size)
    for q, expr in fs.stack_formulas(mode).items():
        assert fs.evaluate(expr, values) == m[q], q


@settings(max_examples=6, deadline=None)
@given(model=st.sampled_from(["cnn", "unet"]), nf=st.integers(1, 6), nc=st.integers(2, 5),
       h=st.integers(1, 5), w=st.integers(1, 5), batch=st.integers(2, 3),
       mode=st.sampled_from(["full", "last"]))
def test_colourization_closed_forms_match_measurement(model, nf, nc, h, w, batch, mode):
    # The CNN takes any H, W >= 4 (floors); the UNet multiples of 4. Batch >= 2: BatchNorm
    # in train mode needs more than one value per channel (the CNN pools 4×4 to 1×1).
    h, w = (4 * h, 4 * w) if model == "unet" else (h + 3, w + 3)
    net = {"cnn": CNN, "unet": UNet}[model](3, nf, nc, 1)
    set_trainable(net, mode)
    m = measure(net, (batch, 1, h, w))
    values = dict(NF=nf, NC=nc, k=3, NIC=1, H=h, W=w, B=batch)
    for q, expr in fs.colourization_formulas(model, mode).items():
        assert fs.evaluate(expr, values) == m[q], q


@pytest.mark.parametrize("cls", [CNN, UNet])
@pytest.mark.parametrize("mode", ["full", "last", "rfconv.*"])
def test_colourization_nets(cls, mode):
    net = cls(3, 8, 6, 1)
    set_trainable(net, mode)
    _agree(predict(net, (4, 1, 16, 16)), measure(net, (4, 1, 16, 16)))


def test_hand_checked_conv_step():
    # One 3×3 conv 2→3 on 1×2×4×4, then cross-entropy over 3 classes, all trainable.
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1))
    m = measure(net, (1, 2, 4, 4))
    assert m["param_bytes"] == 4 * (54 + 3)
    assert m["optimizer_bytes"] == 8 * 57 + 4 * 2
    assert m["forward_flops"] == 2 * 16 * 3 * 18          # 2 · outputs · fan-in
    assert m["backward_flops"] == m["forward_flops"]      # weight grad only: x needs none
    # kept: x (conv input), log-softmax output, int64 target, total_weight scalar
    assert m["saved_activation_bytes"] == 4 * 32 + 4 * 48 + 8 * 16 + 4


def test_measure_leaves_the_model_alone():
    net = Stack(2, 4)
    set_trainable(net, "last")
    net.eval()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    flags = {n: p.requires_grad for n, p in net.named_parameters()}
    measure(net, (2, 4, 8, 8), batch_target=torch.zeros(2, 8, 8, dtype=torch.long))
    predict(net, (2, 4, 8, 8))
    assert all(torch.equal(before[n], p) for n, p in net.named_parameters())
    assert flags == {n: p.requires_grad for n, p in net.named_parameters()}
    assert not any(m.training for m in net.modules())
    assert all(p.grad is None for p in net.parameters())


def test_deeplab_head_swap_meta_small():
    from models.segmentation import deeplab, freeze_all_but_head
    with torch.device("meta"):
        net = deeplab("deeplabv3_resnet101")
    freeze_all_but_head(net)
    shape = (2, 3, 32, 32)
    m, p = measure(net, shape), predict(net, shape)
    _agree(p, m)
    assert m["grad_bytes"] == 4 * (256 * 2 + 2)  # only the swapped 1×1 conv 256 → 2 trains
    assert m["param_bytes"] > 2e8                 # the frozen backbone is still held


def test_slope_and_ratio_targets_on_small_sweep():
    rs = sweep(["stack"], [16, 32], [(8, 8), (16, 16)], [2], ["full", "last"], width=8)
    for r in rs:
        _agree(r["predicted"], r["measured"])
    by_mode = {}
    for s in slopes(rs, "layers", tail=True):
        by_mode.setdefault(s["mode"], []).append(s)
    for s in by_mode["full"]:
        for q in ("param_bytes", "grad_bytes", "optimizer_bytes", "saved_activation_bytes"):
            assert 0.9 <= s[q] <= 1.1, (q, s[q])
    for s in by_mode["last"]:
        assert 0.9 <= s["param_bytes"] <= 1.1
        for q in ("grad_bytes", "optimizer_bytes", "saved_activation_bytes"):
            assert abs(s[q]) < 0.1, (q, s[q])
    flops = {(r["mode"], r["layers"], tuple(r["size"])):
             r["measured"]["forward_flops"] + r["measured"]["backward_flops"] for r in rs}
    assert flops["full", 32, (8, 8)] / flops["last", 32, (8, 8)] >= 2.7
    # Doubling H and W: saved activations ×4, parameters ×1.
    for s in slopes(rs, "pixels"):
        assert s["saved_activation_bytes"] == pytest.approx(1.0, abs=0.015)  # ×4 ± 2 %
        assert s["param_bytes"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", ["cnn", "unet"])
def test_doubling_resolution_colourization(name):
    net, c = build_model(name)
    set_trainable(net, "full")
    small, big = measure(net, (2, c, 16, 16)), measure(net, (2, c, 32, 32))
    assert big["saved_activation_bytes"] / small["saved_activation_bytes"] == pytest.approx(4, rel=0.02)
    assert big["param_bytes"] == small["param_bytes"]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "complexity", "finetune", *args],
                          capture_output=True, text=True)


def test_cli_json():
    out = _cli("--model", "stack", "--layers", "1,2", "--size", "8", "--batch", "2",
               "--width", "4", "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert len(data) == 4
    assert set(data[0]) == {"model", "layers", "size", "batch", "mode", "trainable_params",
                            "predicted", "measured"}
    assert set(data[0]["measured"]) == set(KEYS) and data[0]["size"] == [8, 8]


@pytest.mark.parametrize("args", [
    ["--model", "nosuchnet"], ["--layers", "0"], ["--size", "0"], ["--batch", "-1"],
    ["--model", "unet", "--size", "10"], ["--trainable", "nothing.*"], ["--mode", "half"],
    ["--model", "deeplabv3_resnet101", "--size", "8", "--batch", "1"],  # BN: 1 value per channel
])
def test_cli_bad_input(args, capsys):
    # In-process (the entry point itself is exercised by test_cli_json): exit 2,
    # one line on stderr, no traceback, nothing on stdout.
    from complexity.__main__ import main
    try:
        code = main(["finetune", *args, "--no-measure"])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err


class _Activations(nn.Module):
    """One of each element-wise rule beyond the course nets (MobileNet/EfficientNet
    style squeeze-excitation, in-place activations, layer norm, a factory call)."""

    def __init__(self, c=4):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.se = nn.Conv2d(c, c, 1)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Conv2d(c, 3, 1)

    def forward(self, x):
        import torch.nn.functional as F
        y = F.hardswish(self.conv(x), inplace=True)
        y = y * F.hardsigmoid(self.se(F.adaptive_avg_pool2d(y, 1)))
        y = F.silu(y) + torch.zeros(1, device=y.device)
        y = torch.sigmoid(self.norm(F.avg_pool2d(y, 2, stride=1, padding=1)[..., :8, :8]))
        y = F.gelu(torch.tanh(y))
        return self.head(F.relu6(y, inplace=True))


@pytest.mark.parametrize("mode", ["full", "last", "norm.*"])
def test_activation_rules(mode):
    net = _Activations()
    set_trainable(net, mode)
    _agree(predict(net, (2, 3, 8, 8)), measure(net, (2, 3, 8, 8)))


@settings(max_examples=6, deadline=None)
@given(n=st.integers(2, 5), data=st.data())
def test_stack_any_trainable_subset(n, data):
    # "--trainable PATTERN for anything in between": any non-empty set of tensors.
    net = Stack(n, 3)
    names = [name for name, _ in net.named_parameters()]
    chosen = data.draw(st.sets(st.sampled_from(names), min_size=1))
    for name, p in net.named_parameters():
        p.requires_grad_(name in chosen)
    _agree(predict(net, (2, 3, 6, 6)), measure(net, (2, 3, 6, 6)))


def _step_flops(module, x_shape, counter):
    """Forward and backward FLOPs of ``module(x).sum().backward()`` on real tensors
    with ``x`` requiring grad, under ``counter`` (a FlopCounterMode factory)."""
    torch.manual_seed(0)
    x = torch.randn(*x_shape, requires_grad=True)
    with counter() as f:
        y = module(x)
    with counter() as b:
        y.sum().backward()
    return f.get_total_flops(), b.get_total_flops(), tuple(y.shape)


def test_transposed_conv_flops_hand_count():
    from complexity.flops import flop_counter
    # ConvTranspose2d(4, 6, 3, stride=2): weight (4, 6, 3, 3); each of the 2·4·5·5 input
    # elements multiplies 6·3·3 weights -> 200 · 54 MACs; backward = input grad + weight grad.
    conv = nn.ConvTranspose2d(4, 6, 3, stride=2, bias=False)
    fwd, bwd, _ = _step_flops(conv, (2, 4, 5, 5), flop_counter)
    macs = (2 * 4 * 5 * 5) * (6 * 3 * 3)
    assert fwd == 2 * macs and bwd == 2 * 2 * macs
    # groups=1: PyTorch's own FlopCounterMode rule is right there and is the oracle.
    from torch.utils.flop_counter import FlopCounterMode
    assert (fwd, bwd) == _step_flops(conv, (2, 4, 5, 5), FlopCounterMode)[:2]
    # Grouped transposed conv (groups=2): weight (4, 3, 3, 3), each input element
    # meets 3·3·3 weights.
    gconv = nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2, bias=False)
    fwd, bwd, _ = _step_flops(gconv, (2, 4, 5, 5), flop_counter)
    assert fwd == 2 * (200 * 27) and bwd == 4 * (200 * 27)


def test_transposed_conv_on_gradient_path_measures():
    # Used to raise TypeError (PyTorch's rule called with shapes).
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ConvTranspose2d(4, 2, 2, stride=2))
    m = measure(net, (2, 3, 8, 8))
    conv, convt = 2 * 64 * 4 * 27, (2 * 4 * 8 * 8) * (2 * 2 * 2)  # MACs, by hand
    assert m["forward_flops"] == 2 * (conv + convt)
    # conv1's input needs no grad: its weight grad only; convT: input + weight grads.
    assert m["backward_flops"] == 2 * (conv + 2 * convt)


def test_grouped_strided_dilated_conv_flops_hand_count():
    from complexity.flops import flop_counter
    from torch.utils.flop_counter import FlopCounterMode
    # Conv2d(8, 12, 3, stride=2, dilation=2, groups=4) on 2×8×11×11:
    # output side = floor((11 - 2·(3-1) - 1) / 2) + 1 = 4; each output element sums
    # (8/4)·3·3 = 18 products.
    conv = nn.Conv2d(8, 12, 3, stride=2, dilation=2, groups=4, bias=False)
    fwd, bwd, out = _step_flops(conv, (2, 8, 11, 11), flop_counter)
    assert out == (2, 12, 4, 4)
    macs = (2 * 12 * 4 * 4) * (2 * 3 * 3)
    assert fwd == 2 * macs and bwd == 2 * 2 * macs
    # The same layout with groups=1: PyTorch's rule is exact there.
    conv1 = nn.Conv2d(8, 12, 3, stride=2, dilation=2, bias=False)
    assert _step_flops(conv1, (2, 8, 11, 11), flop_counter)[:2] == \
        _step_flops(conv1, (2, 8, 11, 11), FlopCounterMode)[:2]
