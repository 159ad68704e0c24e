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

from complexity.cost.fit import closed_forms as fs
from complexity.cost.keys import KEYS
from complexity.cost.measure.cpu_step import measure
from complexity.cost.predict.prediction import predict, predict_with_unmodelled
from complexity.cost.finetune import slopes, sweep
from complexity.cost.step.trainable import last_layer, set_trainable
from complexity.counting.symbolic import evaluate
from complexity.zoo import build_model
from models.colourization import CNN, UNet
from models.stack import Stack

ADDITIVE = [q for q in KEYS if q != "peak_bytes"]


def _agree(p, m, peak_tol=0.0, slack=0):
    """Every additive quantity equal to the byte/FLOP (the README's claim), and the
    peak too (exact on every model of these tests; the README claims <= 0.15 % in
    general), or within ``peak_tol`` / ``slack`` bytes where a test says why."""
    for q in ADDITIVE:
        assert p[q] == m[q], (q, p[q], m[q])
    assert abs(p["peak_bytes"] - m["peak_bytes"]) <= max(peak_tol * m["peak_bytes"], slack), \
        (p["peak_bytes"], m["peak_bytes"])


#: On tiny stacks (2×2 to 12×12 inputs, C <= 6) the peak schedule is off by up to
#: 48 bytes (measured over n 1–5, C 1–6, sizes 2–12, batch 1–3; cause not pinned
#: down), several percent of a ~2 kB peak; the relative error shrinks with size.
TINY_SLACK = 64


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 5), width=st.integers(1, 6), size=st.integers(2, 12),
       batch=st.integers(1, 3), mode=st.sampled_from(["full", "last"]))
def test_stack_closed_form_prediction_and_measurement_agree(n, width, size, batch, mode):
    net = Stack(n, width)
    set_trainable(net, mode)
    shape = (batch, width, size, size)
    m, p = measure(net, shape), predict(net, shape)
    _agree(p, m, slack=TINY_SLACK)
    # The hand-derived closed forms match the measurement exactly.
    values = dict(n=n, C=width, k=3, K=2, B=batch, H=size, W=size)
    for q, expr in fs.stack_formulas(mode).items():
        assert evaluate(expr, values) == m[q], q


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
        assert evaluate(expr, values) == m[q], q


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
    from models.segmentation import deeplab
    with torch.device("meta"):
        net = deeplab("deeplabv3_resnet101")
    assert set_trainable(net, "last") == 256 * 2 + 2   # the swapped head, classifier.4
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
    # Observed (deterministic): weights, grads and state 0.9986 (the head's fixed
    # bytes bend the line a little), kept activations 0.967 (the input and the
    # loss's do not grow with n); frozen layers add exactly nothing.
    for s in by_mode["full"]:
        for q in ("param_bytes", "grad_bytes", "optimizer_bytes"):
            assert 0.998 <= s[q] <= 1.0, (q, s[q])
        assert 0.96 <= s["saved_activation_bytes"] <= 1.0, s["saved_activation_bytes"]
    for s in by_mode["last"]:
        assert 0.998 <= s["param_bytes"] <= 1.0
        for q in ("grad_bytes", "optimizer_bytes", "saved_activation_bytes"):
            assert s[q] == 0, (q, s[q])
    flops = {(r["mode"], r["layers"], tuple(r["size"])):
             r["measured"]["forward_flops"] + r["measured"]["backward_flops"] for r in rs}
    assert flops["full", 32, (8, 8)] / flops["last", 32, (8, 8)] >= 2.96  # observed 2.966
    # Doubling H and W: saved activations ×4, parameters ×1.
    for s in slopes(rs, "pixels"):
        # ×4 less the fixed bytes (target, loss): observed 0.9959 to 0.9996
        assert s["saved_activation_bytes"] == pytest.approx(1.0, abs=0.005)
        assert s["param_bytes"] == 0


@pytest.mark.parametrize("name", ["cnn", "unet"])
def test_doubling_resolution_colourization(name):
    net, c = build_model(name)
    set_trainable(net, "full")
    small, big = measure(net, (2, c, 16, 16)), measure(net, (2, c, 32, 32))
    # observed 3.987 (cnn), 3.990 (unet): a few of the kept bytes do not grow with
    # the image (total_weight, a 4-byte scalar, among them)
    assert big["saved_activation_bytes"] / small["saved_activation_bytes"] == pytest.approx(4, rel=0.004)
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
    assert set(data[0]) == {"model", "layers", "size", "batch", "input", "mode", "trainable_params",
                            "trainable_tensors", "frozen", "head", "options", "step", "loss",
                            "predicted", "unmodelled", "measured", "measured_how"}
    assert data[0]["step"] == "adam, float32" and data[0]["options"]["grad_accum"] == 1
    assert data[0]["unmodelled"] == []
    assert set(data[0]["measured"]) == set(KEYS) and data[0]["size"] == [8, 8]
    assert data[0]["input"] == [2, 4, 8, 8]  # the batch's shape: (batch, width, H, W)
    assert data[0]["loss"] == "cross-entropy"  # no labels=: said only in the JSON


@pytest.mark.parametrize("args", [
    ["--model", "nosuchnet"], ["--layers", "0"], ["--size", "0"], ["--batch", "-1"],
    ["--model", "unet", "--size", "10"], ["--trainable", "nothing.*"], ["--mode", "half"],
    ["--model", "deeplabv3_resnet101", "--size", "8", "--batch", "1"],  # BN: 1 value per channel
    ["--model", "vit_b_16", "--size", "64"],             # AssertionError inside forward
    ["--model", "fasterrcnn_resnet50_fpn"],              # detection: a list of images
    ["--model", "raft_small"],                           # optical flow: a pair
    ["--model", "r3d_18"],                               # video: N,C,T,H,W
    ["--plot", "/tmp/finetune-plot.txt"],                # not an image format
    ["--plot", "/tmp"],                                  # a folder
    ["--layers", "2,4", "--trainable", "3.*"],           # matches at n=4 only
    # a later configuration fails: nothing (no progress line) before the error
    ["--model", "stack,unet", "--layers", "1", "--size", "8,10", "--batch", "2"],
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
    # Once a known gap (last mode: the peak 540 bytes, 5 %, under); now exact.
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
    _agree(predict(net, (2, 3, 6, 6)), measure(net, (2, 3, 6, 6)), slack=TINY_SLACK)


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
    from complexity.cost.flops import flop_counter
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
    from complexity.cost.flops import flop_counter
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


def test_cli_trainable_checked_at_each_depth(capsys):
    # '3.*' names block 3, which exists at n=4: accepted (it was checked at n=1).
    from complexity.__main__ import main
    code = main(["finetune", "--model", "stack", "--layers", "4", "--trainable", "3.*",
                 "--mode", "full", "--size", "4", "--batch", "2", "--width", "2",
                 "--no-measure", "--format", "json"])
    out, err = capsys.readouterr()
    assert code in (0, None), err
    data = json.loads(out)
    # block 3 = Conv 2→2 3×3 (36 + 2) and BN (2 + 2) parameters, counted by hand
    assert [r["trainable_params"] for r in data if r["mode"] == "3.*"] == [36 + 2 + 2 + 2]


def test_cli_plot_checked_before_the_sweep(tmp_path, capsys):
    from complexity.__main__ import main
    code = main(["finetune", "--plot", str(tmp_path / "x.txt"), "--size", "4", "--batch", "2",
                 "--width", "2", "--layers", "1"])
    out, err = capsys.readouterr()
    assert code == 2 and "done" not in err and err.count("\n") == 1


class _AuxOutput(nn.Module):
    """Returns (logits, aux_logits) as a namedtuple in train mode, like GoogLeNet."""

    def __init__(self):
        super().__init__()
        from collections import namedtuple
        self.Out = namedtuple("Out", ["logits", "aux"])
        self.body = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 2, 1)
        self.aux = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        y = torch.relu(self.body(x))
        return self.Out(self.head(y), self.aux(y)) if self.training else self.head(y)


def test_tuple_output_loss_on_logits_and_aux_head_gets_no_grad():
    net = _AuxOutput()
    m, p = measure(net, (2, 3, 4, 4)), predict(net, (2, 3, 4, 4))
    _agree(p, m)
    # Hand count: the aux head (2·4 + 2 parameters) is not in the loss: no grad.
    all_params = 4 * (4 * 27 + 4 + 2 * 4 + 2 + 2 * 4 + 2)  # body 3→4 3×3, head, aux
    assert m["param_bytes"] == all_params
    assert m["grad_bytes"] == all_params - 4 * (2 * 4 + 2)


def test_cli_googlenet_namedtuple_output(capsys):
    from complexity.__main__ import main
    code = main(["finetune", "--model", "googlenet", "--size", "32", "--batch", "2",
                 "--mode", "last", "--no-measure", "--format", "json"])
    out, err = capsys.readouterr()
    assert code in (0, None), err
    # last = fc: Linear(1024, 1000), counted by hand
    assert json.loads(out)[0]["trainable_params"] == 1024 * 1000 + 1000


def test_last_layer_top_level_parameter_and_no_parameters():
    # A bare Conv2d: its last parameter 'bias' has no dot; the owner is the model.
    net = nn.Conv2d(1, 2, 1)
    assert last_layer(net) == ""
    assert set_trainable(net, "last") == 2 * 1 + 2     # weight and bias: the whole layer
    for mode in ("last", "full", "*"):
        with pytest.raises(ValueError, match="no parameters"):
            set_trainable(nn.ReLU(), mode)


class _Dropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.head(self.drop(torch.relu(self.conv(x))))


@pytest.mark.parametrize("mode", ["full", "last"])
def test_dropout_rule(mode):
    net = _Dropout()
    set_trainable(net, mode)
    m, p = measure(net, (2, 3, 6, 6)), predict(net, (2, 3, 6, 6))
    _agree(p, m)
    if mode == "full":
        # kept by hand: x's grad-free conv input (2·3·36 floats), relu output
        # (2·4·36), float dropout mask (2·4·36), dropout output for the head
        # (2·4·36), log-softmax (2·2·36), int64 target (2·36), total_weight.
        assert m["saved_activation_bytes"] == (4 * (216 + 3 * 288 + 144) + 8 * 72 + 4)


def test_dropout_mask_is_bool_when_predicting_for_cuda():
    net = _Dropout()
    cpu, _ = predict_with_unmodelled(net, (2, 3, 6, 6))
    cuda, _ = predict_with_unmodelled(net, (2, 3, 6, 6), device_type="cuda")
    # the 2·4·6·6 mask: 4-byte floats on the CPU, 1-byte bools on CUDA
    assert cpu["saved_activation_bytes"] - cuda["saved_activation_bytes"] == 3 * 288


def test_deeplab_full_meta_small():
    from models.segmentation import deeplab
    with torch.device("meta"):
        net = deeplab("deeplabv3_resnet101")
    set_trainable(net, "full")
    m, p = measure(net, (2, 3, 32, 32)), predict(net, (2, 3, 32, 32))
    _agree(p, m)
    assert m["grad_bytes"] == m["param_bytes"]


class _Mixed(nn.Module):
    """Calls beyond conv2d: transposed conv, linear on 3-D, bmm, matmul, conv1d/3d."""

    def __init__(self, c=4):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.up = nn.ConvTranspose2d(c, c, 2, stride=2)
        self.c1 = nn.Conv1d(c, c, 3, padding=1)
        self.c3 = nn.Conv3d(c, c, (1, 3, 3), padding=(0, 1, 1))
        self.lin = nn.Linear(c, c)
        self.head = nn.Conv2d(c, 3, 1)

    def forward(self, x):
        y = torch.relu(self.up(self.conv(x)))             # B,c,2H,2W
        b, c, h, w = y.shape
        t = self.lin(y.flatten(2).transpose(1, 2))        # B,HW,c (non-contiguous input)
        a = torch.bmm(t, t.transpose(1, 2))               # B,HW,HW
        t = torch.matmul(a, t) + t                        # B,HW,c
        y = self.c1(t.transpose(1, 2)).reshape(b, c, h, w)
        y = self.c3(y.unsqueeze(2)).squeeze(2)
        return self.head(y)


@pytest.mark.parametrize("mode", ["full", "last", "c1.*", "up.*"])
def test_matmul_conv1d3d_transposed_rules(mode):
    net = _Mixed()
    set_trainable(net, mode)
    p, unmodelled = predict_with_unmodelled(net, (2, 3, 4, 4))
    m = measure(net, (2, 3, 4, 4))
    assert unmodelled == []
    # Additive quantities exact. Known gap: transient reshape copies are not in the
    # schedule, so the predicted peak is up to 4,096 bytes (~9 %) low in last/c1.* mode.
    _agree(p, m)
    assert p["peak_bytes"] <= m["peak_bytes"]


def _made_up(x):
    """A call no rule knows (as tests/test_cost_rules.py's made_up_op)."""
    if torch.overrides.has_torch_function((x,)):
        return torch.overrides.handle_torch_function(_made_up, (x,), x)
    return x.clone()


class _Unruled(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return _made_up(self.conv(x))


def test_unmodelled_calls_are_reported_and_marked():
    from complexity.output import finetune as finetune_report
    rs = sweep(["stack"], [1], [(4, 4)], [2], ["full"], width=2, measured=False)
    assert rs[0]["unmodelled"] == []
    text = finetune_report.render(rs, "table")
    assert "≥" not in text and "≈" not in text
    with pytest.warns(UserWarning, match="_made_up"):
        predict(_Unruled(), (2, 3, 4, 4))
    _, unmodelled = predict_with_unmodelled(_Unruled(), (2, 3, 4, 4))
    assert unmodelled == ["_made_up"]
    r = dict(rs[0], unmodelled=unmodelled)
    text = finetune_report.render([r], "table")
    assert "≈ (unmodelled: _made_up)" in text
    rows = {row[5]: row[6] for row in finetune_report.table_rows([r])}
    # No bound is proven: everything that depends on the calls is approximate;
    # the weights, gradients and Adam state do not depend on them.
    assert rows["param_bytes"][0].isdigit() and rows["optimizer_bytes"][0].isdigit()
    for q in ("saved_activation_bytes", "peak_bytes", "forward_flops", "backward_flops"):
        assert rows[q].startswith("≈ ")
