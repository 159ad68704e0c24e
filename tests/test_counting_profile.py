"""`profile` against independent measurements: the real parameter tensors,
FlopCounterMode on real (CPU) tensors, torchinfo, and hand-computed values."""
from __future__ import annotations

import json
from math import prod

import pytest
import torch
from hypothesis import given, settings, strategies as st
import torchinfo
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from complexity.counting.profile import profile
import profile_models as pm
from cli_helpers import run_cli

TORCHVISION = [
    ("resnet18", {}, (1, 3, 32, 32)),
    ("mobilenet_v3_small", {}, (1, 3, 32, 32)),
    ("deeplabv3_mobilenet_v3_large", {"weights_backbone": None, "num_classes": 3}, (1, 3, 48, 48)),
]


def real_macs(module, shape):
    """FlopCounterMode on real CPU tensors, halved: the independent MAC count."""
    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        module(torch.randn(*shape))
    return fc.get_total_flops() // 2


def torchinfo_weight_macs(module, shape):
    """torchinfo's mult-adds less its bias and BatchNorm terms (which are not
    multiply-accumulates of an input with a weight): what FlopCounterMode counts
    for convolutions and linear layers."""
    s = torchinfo.summary(module, input_size=shape, verbose=0, device="cpu", depth=99)
    extra = 0
    for layer in s.summary_list:
        if not layer.is_leaf_layer or layer.is_recursive:
            continue
        out = layer.output_size
        for name, p in layer.module.named_parameters(recurse=False):
            if "Conv" in layer.class_name and name == "bias":
                extra += p.numel() * prod(out[:1] + out[2:])
            elif "Conv" not in layer.class_name and (name == "bias" or "Norm" in layer.class_name):
                extra += out[0] * p.numel()
    return s, s.total_mult_adds - extra


@pytest.mark.parametrize("name,kwargs,shape", TORCHVISION)
def test_torchvision_totals_match_flopcounter_and_torchinfo(name, kwargs, shape):
    torch.manual_seed(0)
    real = torchvision.models.get_model(name, weights=None, **kwargs)
    with torch.device("meta"):
        meta = torchvision.models.get_model(name, weights=None, **kwargs)
    p = profile(meta, shape)
    assert p["params"] == sum(t.numel() for t in real.parameters())
    assert p["trainable_params"] == p["params"]
    assert p["macs"] == real_macs(real, shape)
    summary, weight_macs = torchinfo_weight_macs(real, shape)
    assert p["params"] == summary.total_params
    assert p["macs"] == weight_macs


def test_resnet18_per_layer_matches_torchinfo_and_rows_add_up():
    torch.manual_seed(0)
    real = torchvision.models.resnet18()
    shape = (2, 3, 64, 64)
    p = profile(real, shape)  # a CPU model: profiled on meta stand-ins, left untouched
    rows = {r["name"]: r for r in p["layers"]}
    s = torchinfo.summary(real, input_size=shape, verbose=0, device="cpu", depth=99)
    names = {m: n for n, m in real.named_modules()}
    convs = 0
    for layer in s.summary_list:
        if isinstance(layer.module, nn.Conv2d):  # resnet convs have no bias
            assert rows[names[layer.module]]["macs"] == layer.macs
            assert rows[names[layer.module]]["shape"] == list(layer.output_size)
            convs += 1
    assert convs == 20
    top = [r for r in p["layers"] if r["depth"] == 1]
    for q in ("params", "macs", "outputs"):
        assert sum(r[q] for r in top) == p[q]
    # outputs: every leaf call's output units, counted here from torchinfo's shapes
    leaf_units = sum(prod(l.output_size) for l in s.summary_list if l.is_leaf_layer)
    assert p["outputs"] == leaf_units
    assert all(t.device.type == "cpu" for t in real.parameters())


def test_meta_and_cpu_devices_agree():
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v3_small()
    a = profile(model, (1, 3, 32, 32), device="meta")
    b = profile(model, (1, 3, 32, 32), device="cpu")
    assert {k: a[k] for k in ("params", "outputs", "macs")} == \
        {k: b[k] for k in ("params", "outputs", "macs")}
    assert [(r["name"], r["shape"], r["macs"], r["outputs"]) for r in a["layers"]] == \
        [(r["name"], r["shape"], r["macs"], r["outputs"]) for r in b["layers"]]


def test_shared_parameters_count_once():
    tied = pm.tied_linear(8)
    p = profile(tied, (1, 8))
    # by hand: one 8×8 weight, two biases of 8
    assert p["params"] == 8 * 8 + 8 + 8 == sum(t.numel() for t in tied.parameters())
    assert p["macs"] == 2 * 64 == real_macs(tied, (1, 8))

    shared = pm.shared_conv(4)
    p = profile(shared, (1, 4, 5, 5))
    assert p["params"] == 4 * 4 * 9 + 4
    # called twice: two convolutions' MACs, two calls' outputs
    assert p["macs"] == 2 * (4 * 25) * (4 * 9) == real_macs(shared, (1, 4, 5, 5))
    assert p["outputs"] == 2 * 4 * 25
    assert [r["calls"] for r in p["layers"]] == [2]


def test_functional_ops_inside_custom_modules_are_counted():
    model = pm.WithFunctionalChild()
    h = 8
    p = profile(model, (1, 3, h, h))
    conv = 8 * h * h * 27                   # F.conv2d: output units × Cin·k²
    matmul = (2 * 8 * (2 * h) ** 2) * 10    # cat of the 2× interpolated map, @ proj
    head = 10 * 5
    assert p["macs"] == conv + matmul + head == real_macs(model, (1, 3, h, h))
    body = {r["name"]: r for r in p["layers"]}["body"]
    assert body["macs"] == conv + matmul
    assert body["params"] == 8 * 27 + 2 * 8 * (2 * h) ** 2 * 10
    assert p["params"] == body["params"] + 50
    # torchinfo reads modules' parameters, not ops: for this leaf it counts batch ×
    # the parameter named "weight" (8·3·3·3) and misses the convolution and matmuls
    s = torchinfo.summary(model, input_size=(1, 3, h, h), verbose=0, device="cpu")
    assert s.total_mult_adds == 8 * 27 < p["macs"]


def test_convention_course_matches_report_hooks():
    from complexity.counting.hooks import count
    from models.colourization import UNet

    net = UNet(3, 8, 6, 1)
    for convention in ("course", "lecture"):
        p = profile(net, (1, 1, 16, 16), convention=convention)
        expected = count(net, (1, 1, 16, 16), convention)
        assert (p["params"], p["outputs"]) == (expected["weights"], expected["outputs"])


def test_cli_profile_json_resnet50_anchor(capsys):
    code, out, err = run_cli(["profile", "torchvision:resnet50", "--format", "json",
                              "--depth", "1"], capsys)
    assert code == 0, err
    data = json.loads(out)
    # the anchor figures (sum of numel; FlopCounterMode total / 2)
    assert (data["params"], data["macs"]) == (25_557_032, 4_089_184_256)
    assert set(data) >= {"model", "input", "params", "trainable_params", "outputs", "macs", "layers"}
    assert set(data["layers"][0]) >= {"name", "kind", "shape", "params", "outputs", "macs"}


def test_cli_profile_table_and_cpu_fallback(capsys):
    code, out, err = run_cli(["profile", "unet", "--nf", "8", "--nc", "6", "--depth", "1"], capsys)
    assert code == 0 and "finalconv" in out and "total" in out
    code, out, err = run_cli(["profile", "tests.profile_models:needs_values",
                              "--input", "1,3,8,8"], capsys)
    assert code == 2 and "--device cpu" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli(["profile", "tests.profile_models:needs_values",
                              "--input", "1,3,8,8", "--device", "cpu", "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)["macs"] == 4 * 36 * 27


BAD = [
    (["profile", "resnet"], "is not cnn, unet"),
    (["profile", "torchvision:"], "is not cnn, unet"),
    (["profile", "torchvision:no_such_net"], "no model"),
    (["profile", "no_such_package_xyz.mod:f"], "cannot import"),
    (["profile", "os:no_such_factory"], "no attribute"),
    (["profile", "tests.profile_models:not_a_module"], "not a torch.nn.Module"),
    (["profile", "tests.profile_models:broken"], "always fails"),
    (["profile", "torchvision:resnet18", "--input", "1,3,224"], "rank 3"),
    (["profile", "torchvision:resnet18", "--input", "1,3,0,224"], "size < 1"),
    (["profile", "torchvision:resnet18", "--input", "1,3,-4,224"], "size < 1"),
    (["profile", "torchvision:resnet18", "--input", "1,3,a,b"], "not a comma-separated"),
    (["profile", "unet", "--input", "1,3,32,32"], "channels"),
    (["profile", "torchvision:resnet18", "--model-args", "{bad"], "not valid JSON"),
    (["profile", "torchvision:resnet18", "--model-args", "[1]"], "JSON object"),
    (["profile", "torchvision:resnet18", "--model-args", '{"weights": "DEFAULT"}'], "downloaded"),
    (["profile", "torchvision:resnet18", "--nf", "8"], "cnn and unet only"),
    (["profile", "unet", "--nf", "0"], "out of range"),
    (["profile", "unet", "--kernel", "4"], "even"),
    (["profile", "unet", "--depth", "-1"], "not a depth"),
    (["profile", "tests.profile_models:needs_values", "--input", "1,3,8,8"], "--device cpu"),
    (["profile", "torchvision:resnet18", "--input", "1,4,32,32"], "Invalid channel"),
    (["profile", "unet", "--input", "1,1,30,30"], "divisible by 4"),
    (["derive", "unet", "--symbols", "FOO"], "names no argument"),
    (["derive", "unet", "--symbols", "E"], "sympy name"),
    (["derive", "unet", "--symbols", "H,H"], "twice"),
    (["derive", "torchvision:resnet18", "--symbols", "width_per_group"], "BasicBlock"),
    (["derive", "tests.profile_models:exponential", "--input", "1,4",
      "--symbols", "n"], "no formula printed"),
    (["derive", "unet", "--symbols", "H", "--checks", "5"], "too few"),
]


@pytest.mark.parametrize("argv,fragment", BAD, ids=[" ".join(a[:3]) for a, _ in BAD])
def test_bad_input_exits_2_with_one_line(argv, fragment, capsys):
    code, out, err = run_cli(argv, capsys)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert fragment in err, err


@settings(max_examples=10, deadline=None)
@given(layers=st.lists(st.tuples(st.integers(1, 6), st.sampled_from([1, 3, 5]),
                                 st.integers(1, 2), st.booleans()), min_size=1, max_size=4),
       size=st.integers(5, 12), batch=st.integers(1, 3))
def test_random_conv_stacks_match_real_flops_and_numel(layers, size, batch):
    torch.manual_seed(0)
    mods, cin = [], 3
    for cout, kernel, stride, bias in layers:
        mods += [nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=bias),
                 nn.BatchNorm2d(cout), nn.ReLU()]
        cin = cout
    net = nn.Sequential(*mods, nn.Flatten())
    shape = (batch, 3, size, size)
    p = profile(net, shape)
    assert p["params"] == sum(t.numel() for t in net.parameters())
    assert p["macs"] == real_macs(net, shape)
    with torch.no_grad():  # outputs: every leaf call's output units, from a real run
        units, x = 0, torch.randn(*shape)
        for m in net:
            x = m(x)
            units += x.numel()
    assert p["outputs"] == units


@pytest.mark.parametrize("argv", [
    ["profile", "torchvision:resnet18", "--input", "1,4,32,32"],   # wrong channels
    ["profile", "tests.profile_models:broken"],                    # factory raises
])
def test_cpu_hint_only_for_meta_device_errors(argv, capsys):
    # "try --device cpu" would not help: the input or the factory is at fault.
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and "--device cpu" not in err, err


def test_lecture_course_note_layers_they_do_not_define(capsys):
    for convention in ("lecture", "course"):
        code, out, err = run_cli(["profile", "torchvision:resnet18", "--input", "1,3,32,32",
                                  "--convention", convention, "--format", "json"], capsys)
        assert code == 0, err
        assert json.loads(out)["uncovered_kinds"] == ["AdaptiveAvgPool2d", "Linear"]
        code, out, err = run_cli(["profile", "torchvision:resnet18", "--input", "1,3,32,32",
                                  "--convention", convention, "--depth", "1"], capsys)
        assert "note:" in out and "AdaptiveAvgPool2d, Linear count 0" in out
    # The colourization nets hold only the kinds the conventions define: no note.
    code, out, err = run_cli(["profile", "unet", "--convention", "lecture", "--depth", "1"], capsys)
    assert code == 0 and "note:" not in out
    code, out, err = run_cli(["profile", "torchvision:resnet18", "--input", "1,3,32,32",
                              "--format", "json"], capsys)
    assert json.loads(out)["uncovered_kinds"] == []   # torch counts every module
