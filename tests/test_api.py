"""The public API (``complexity.profile``, ``derive``, ``step_cost``) against
independent oracles: the real parameter tensors (``sum(numel)``), PyTorch's
``FlopCounterMode`` on a real CPU forward (MACs = FLOPs / 2), forward hooks
written here, a real CPU Adam step under autograd, and the command line's JSON.
No expected value is copied from the code under test."""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import sympy as sp
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import complexity
from complexity.cost.keys import KEYS
from complexity.cost.measure.cpu_step import measure
from models.colourization import CNN, UNet
from models.stack import Stack
import profile_models as pm
from cli_helpers import run_cli


# ------------------------------------------------------------------ oracles
def real_params(module, trainable_only=False):
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def real_macs(module, shape):
    """FlopCounterMode on a real CPU forward (eval mode), halved."""
    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        module(torch.randn(*shape))
    return fc.get_total_flops() // 2


def real_leaf_outputs(module, shape):
    """Output units of every leaf-module call, by hooks written here."""
    total = []

    def hook(_m, _i, out):
        total.append(out.numel())

    leaves = [m for m in module.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(hook) for m in leaves]
    module.eval()
    try:
        with torch.no_grad():
            module(torch.randn(*shape))
    finally:
        for h in handles:
            h.remove()
    return sum(total)


def stack_factory(layers: int = 2, width: int = 4):
    """A factory with keyword arguments derive can vary."""
    return Stack(layers, width)


# ------------------------------------------------------------------ import
def test_import_complexity_stays_light():
    code = ("import sys, complexity, complexity.api; "
            "print(sorted(m for m in ('torch', 'sympy', 'tabulate') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_names_resolve():
    for name in complexity.__all__:
        assert getattr(complexity, name) is not None
    assert complexity.profile is complexity.api.profile
    with pytest.raises(AttributeError):
        complexity.no_such_name


# ------------------------------------------------------------------ profile
CASES = [
    (lambda: Stack(3, 4), (2, 4, 8, 8)),
    (lambda: CNN(3, 8, 5, 1), (1, 1, 20, 12)),
    (lambda: UNet(3, 8, 5, 2), (1, 2, 16, 16)),
    (lambda: torchvision.models.resnet18(weights=None, num_classes=7), (1, 3, 32, 32)),
    (pm.Functional, (1, 3, 8, 8)),
    (pm.TiedLinear, (3, 8)),
]


@pytest.mark.parametrize("make,shape", CASES)
def test_profile_totals_equal_real_tensors(make, shape):
    torch.manual_seed(0)
    net = make()
    p = complexity.profile(net, shape)
    assert p.params == real_params(net)
    assert p.trainable_params == p.params and p.frozen_params == 0
    assert p.macs == real_macs(net, shape)
    assert p.outputs == real_leaf_outputs(net, shape)
    assert p.totals() == {"params": p.params, "outputs": p.outputs, "macs": p.macs}
    assert isinstance(p.params, int) and isinstance(p.macs, int)


def test_profile_rows_match_each_real_module():
    torch.manual_seed(0)
    net = UNet(3, 4, 6, 1)
    p = complexity.profile(net, (1, 1, 16, 16))
    modules = dict(net.named_modules())
    assert {r.name for r in p.layers} == set(modules) - {""}
    shapes = {}
    for name, m in net.named_modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(lambda mod, i, o, name=name: shapes.__setitem__(name, o.shape))
    real_macs(net, (1, 1, 16, 16))
    for r in p.layers:
        assert r.params == real_params(modules[r.name]), r.name
        if isinstance(modules[r.name], nn.Conv2d):
            conv, out = modules[r.name], shapes[r.name]
            fan_in = conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
            assert r.macs == out.numel() * fan_in, r.name
            assert r.shape == list(out)


def test_profile_counts_frozen_parameters_apart_and_leaves_the_model_alone():
    torch.manual_seed(0)
    net = Stack(2, 4).train()
    for name, q in net.named_parameters():
        q.requires_grad_(name.startswith("head."))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    p = complexity.profile(net, (1, 4, 8, 8))
    assert p.trainable_params == real_params(net, trainable_only=True) == real_params(net.head)
    assert p.frozen_params == real_params(net) - real_params(net.head)
    assert all(m.training for m in net.modules())
    assert all(not v.is_meta for v in net.state_dict().values())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_profile_of_a_spec_string_uses_the_commands_default_input():
    p = complexity.profile("torchvision:resnet18")
    assert p.input == [1, 3, 224, 224] and p.model == "torchvision:resnet18"
    assert p.params == real_params(torchvision.models.resnet18(weights=None))
    u = complexity.profile("unet", model_args={"num_in_channels": 3, "num_filters": 4})
    assert u.input == [1, 3, 32, 32]
    assert u.params == real_params(UNet(3, 4, 24, 3))


@pytest.mark.parametrize("argv,kwargs", [
    (["profile", "unet", "--depth", "all"], {}),
    (["profile", "cnn", "--convention", "course", "--input", "2,1,24,16", "--depth", "all"],
     {"convention": "course", "input_shape": (2, 1, 24, 16)}),
    (["profile", "torchvision:resnet18", "--input", "1,3,64,64", "--depth", "1"],
     {"input_shape": "1,3,64,64", "depth": 1}),
])
def test_profile_to_dict_is_the_commands_json(argv, kwargs, capsys):
    code, out, _ = run_cli(argv + ["--format", "json"], capsys)
    assert code == 0
    depth = kwargs.pop("depth", None)
    p = complexity.profile(argv[1], **kwargs)
    assert json.loads(json.dumps(p.to_dict(depth))) == json.loads(out)


def test_profile_prints_a_row_per_layer():
    p = complexity.profile(Stack(2, 4), (1, 4, 8, 8))
    text = str(p)
    assert text.splitlines()[0].startswith("Stack, input 1×4×8×8, convention torch")
    for r in p.layers:
        assert r.name in text
    assert f"{p.macs:,}" in text.splitlines()[-1]
    assert p.table(depth=1).count("\n") < p.table().count("\n")
    assert p.table(tablefmt="github").startswith("| layer")


def test_profile_rejects_bad_input_in_one_line():
    with pytest.raises(ValueError, match="input_shape"):
        complexity.profile(Stack(1, 2))
    with pytest.raises(ValueError, match="not cnn, unet"):
        complexity.profile("resnet")
    with pytest.raises(ValueError, match="device"):
        complexity.profile(Stack(1, 2), (1, 2, 4, 4), device="cuda:7")
    with pytest.raises(ValueError, match="channels"):
        complexity.profile("unet", (1, 3, 32, 32))


# ------------------------------------------------------------------ derive
@pytest.mark.parametrize("nf,nc", [(5, 7), (11, 3), (1, 1)])
def test_derive_formulas_hold_on_fresh_real_networks(nf, nc):
    d = derive_unet()
    at = d.at(NF=nf, NC=nc)
    torch.manual_seed(0)
    net = UNet(3, nf, nc, 1)
    assert at["params"] == real_params(net)
    assert at["macs"] == real_macs(net, (1, 1, 32, 32))
    assert at["outputs"] == real_leaf_outputs(net, (1, 1, 32, 32))


_UNET = {}


def derive_unet():
    if not _UNET:
        _UNET["d"] = complexity.derive("unet", "NF,NC")
    return _UNET["d"]


def test_derive_of_a_factory_in_an_argument_and_the_input_size():
    d = complexity.derive(stack_factory, ["n=layers", "H", "W"], (1, 4, 8, 8))
    assert d.symbols == {"n": "layers", "H": "input[2]", "W": "input[3]"}
    assert d.domain_text == "n >= 1; H >= 1; W >= 1" and not d.narrowed
    for n, h, w in ((5, 12, 7), (1, 3, 30)):
        net = Stack(n, 4)
        at = d.at(n=n, H=h, W=w)
        assert at == {"params": real_params(net), "outputs": real_leaf_outputs(net, (1, 4, h, w)),
                      "macs": real_macs(net, (1, 4, h, w))}


def test_derive_of_a_module_keeps_the_floors_of_a_strided_layer():
    # input-size symbols take the one-pass symbolic trace: the stride's floor stays
    # in the formula, so odd sizes need no narrowed domain
    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
    d = complexity.derive(net, "H,W", (1, 3, 16, 16))
    assert d.narrowed == [] and d.domain["H"]["step"] == 1
    for h, w in ((40, 22), (41, 22), (17, 33)):
        assert d.at(H=h, W=w)["macs"] == real_macs(net, (1, 3, h, w))
    with pytest.raises(ValueError, match="give exactly"):
        d.at(H=40)


def test_derive_of_a_module_refuses_constructor_symbols():
    with pytest.raises(ValueError, match="pass a factory"):
        complexity.derive(Stack(2, 4), "width", (1, 4, 8, 8))


def test_derive_to_dict_is_the_commands_json(capsys):
    code, out, _ = run_cli(["derive", "unet", "--symbols", "NF,NC", "--format", "json"], capsys)
    assert code == 0
    assert derive_unet().to_dict() == json.loads(out)


def test_derive_prints_every_formula():
    d = derive_unet()
    text = str(d)
    from complexity.output.formulas import parse_readable

    for q, f in d.formulas.items():  # printed readable (factored, ·): read back, the same
        line = next(ln for ln in text.splitlines() if ln.split()[:1] == [q])
        printed = parse_readable(line.split("=", 1)[1].strip(), d.symbols)
        assert sp.expand(printed - f) == 0, (q, line)
    assert "verified: exact at 20 random points" in text


def test_derive_rejects_bad_input_in_one_line():
    with pytest.raises(ValueError, match="too few"):
        complexity.derive("unet", "NF", checks=5)
    with pytest.raises(ValueError, match="appears twice"):
        complexity.derive("unet", "NF,NF")


# ------------------------------------------------------------------ step_cost
def real_adam_step(net, shape):
    """One real CPU Adam step under autograd (after a warm-up step, as a training
    loop's steady state): FLOPs of forward + loss and of backward by
    FlopCounterMode, bytes of gradients, Adam state, parameters and of the tensors
    autograd saves for backward (saved_tensors_hooks)."""
    net.train()
    torch.manual_seed(0)
    x = torch.randn(*shape)
    trainable = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=1e-3, foreach=False)
    # what autograd keeps for backward: each storage once, parameters and buffers apart
    state = {t.untyped_storage().data_ptr() for t in [*net.parameters(), *net.buffers()]}
    saved = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in state:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        saved.clear()
        with FlopCounterMode(display=False) as fwd, \
                torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = net(x)
            loss = F.cross_entropy(out, torch.randint(0, out.shape[1], (out.shape[0], *out.shape[2:])))
        with FlopCounterMode(display=False) as bwd:
            loss.backward()
        opt.step()
    nbytes = lambda ts: sum(t.numel() * t.element_size() for t in ts)
    return {
        "param_bytes": nbytes(net.parameters()),
        "grad_bytes": nbytes(p.grad for p in trainable),
        "optimizer_bytes": nbytes(t for s in opt.state.values() for t in s.values()),
        "saved_activation_bytes": sum(saved.values()),
        "forward_flops": fwd.get_total_flops(),
        "backward_flops": bwd.get_total_flops(),
    }


STEPS = [  # (model, input, trainable, which parameter names that means, written here)
    pytest.param(lambda: Stack(3, 4), (2, 4, 8, 8), "full", lambda n: True, id="stack-full"),
    pytest.param(lambda: Stack(3, 4), (2, 4, 8, 8), "last", lambda n: n.startswith("head."),
                 id="stack-last"),
    pytest.param(lambda: Stack(3, 4), (2, 4, 8, 8), "0.*", lambda n: n.startswith("0."),
                 id="stack-glob"),
    pytest.param(lambda: UNet(3, 4, 6, 1), (2, 1, 16, 16), "full", lambda n: True,
                 id="unet-full"),
    pytest.param(lambda: UNet(3, 4, 6, 1), (2, 1, 16, 16), "last",
                 lambda n: n.startswith("finalconv."), id="unet-last"),
    pytest.param(lambda: UNet(3, 4, 6, 1), (2, 1, 16, 16), "downconv2.*",
                 lambda n: n.startswith("downconv2."), id="unet-glob"),
]


@pytest.mark.parametrize("make,shape,trainable,chosen", STEPS)
def test_step_cost_equals_a_real_autograd_step(make, shape, trainable, chosen):
    torch.manual_seed(0)
    net = make()
    c = complexity.step_cost(net, shape, trainable=trainable)
    real = copy.deepcopy(net)
    for name, q in real.named_parameters():
        q.requires_grad_(chosen(name))
    truth = real_adam_step(real, shape)
    assert c.trainable_params == real_params(real, trainable_only=True)
    for q, v in truth.items():
        assert c.predicted[q] == v, q
        assert c.measured[q] == v, q


def test_step_cost_measured_is_measure_and_the_model_is_left_as_found():
    torch.manual_seed(0)
    net = UNet(3, 4, 6, 1).eval()
    for name, q in net.named_parameters():
        q.requires_grad_(not name.startswith("downconv1."))
    flags = [q.requires_grad for q in net.parameters()]
    c = complexity.step_cost(net, (2, 1, 16, 16), trainable="last")
    assert [q.requires_grad for q in net.parameters()] == flags
    assert not any(m.training for m in net.modules())
    frozen_but_last = copy.deepcopy(net)
    for name, q in frozen_but_last.named_parameters():
        q.requires_grad_(name.startswith("finalconv."))
    assert c.measured == measure(frozen_but_last, (2, 1, 16, 16))
    assert sorted(c.predicted) == sorted(c.measured) == sorted(KEYS)
    assert c.unmodelled == []


def test_step_cost_with_flags_as_set():
    torch.manual_seed(0)
    net = Stack(2, 4)
    for name, q in net.named_parameters():
        q.requires_grad_(name.startswith("1."))
    c = complexity.step_cost(net, (1, 4, 8, 8), trainable=None, measure=False)
    assert c.measured is None and c.errors() is None
    assert c.trainable_params == real_params(net[1])
    assert c.predicted["grad_bytes"] == 4 * real_params(net[1])


def test_step_cost_to_dict_and_table():
    c = complexity.step_cost(Stack(2, 4), (1, 4, 8, 8))
    d = json.loads(json.dumps(c.to_dict()))
    assert d == c.to_dict()
    assert all(isinstance(v, int) for v in [*d["predicted"].values(), *d["measured"].values()])
    text = str(c)
    for q in KEYS:
        assert any(line.startswith(q) for line in text.splitlines()), q
    assert c.errors()["param_bytes"] == 0.0


def test_step_cost_rejects_what_cannot_train():
    with pytest.raises(ValueError, match="matches no parameter"):
        complexity.step_cost(Stack(1, 2), (1, 2, 4, 4), trainable="nothing.*")
    net = Stack(1, 2)
    for q in net.parameters():
        q.requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to train"):
        complexity.step_cost(net, (1, 2, 4, 4), trainable=None)
    assert not any(q.requires_grad for q in net.parameters())


# ------------------------------------------------------------------ step options, fit
def test_step_cost_with_options_equals_the_finetune_json(capsys):
    """A spec string and finetune's options: the same step as the command's."""
    code, out, err = run_cli(["finetune", "--model", "stack", "--layers", "2", "--width", "4",
                              "--size", "8", "--batch", "2", "--mode", "full",
                              "--optimizer", "sgd-momentum", "--checkpoint", "0",
                              "--format", "json"], capsys)
    assert code == 0, err
    (row,) = json.loads(out)
    c = complexity.step_cost("stack", (2, 4, 8, 8), model_args={"layers": 2, "width": 4},
                             optimizer="sgd-momentum", checkpoint="0")
    assert c.predicted == row["predicted"] and c.measured == row["measured"]
    assert c.trainable_params == row["trainable_params"]
    assert (c.step, c.options, c.measured_how) == (row["step"], row["options"],
                                                   row["measured_how"])
    plain = complexity.step_cost("stack", (2, 4, 8, 8), model_args={"layers": 2, "width": 4},
                                 measure=None)
    assert plain.predicted["optimizer_bytes"] > c.predicted["optimizer_bytes"]  # Adam: 2 states


def test_step_cost_with_options_on_a_module_leaves_it_as_found():
    net = Stack(2, 4)
    flags = [q.requires_grad for q in net.parameters()]
    c = complexity.step_cost(net, (2, 4, 8, 8), trainable="last", optimizer="sgd",
                             set_to_none=False, grad_accum=2, measure="fake")
    assert [q.requires_grad for q in net.parameters()] == flags
    assert c.predicted["optimizer_bytes"] == 0 and c.measured == c.predicted | {
        "peak_bytes": c.measured["peak_bytes"]}
    assert c.options["set_to_none"] is False and c.options["grad_accum"] == 2


@pytest.mark.parametrize("argv,kwargs", [
    (["--size", "32", "--batch", "8", "--mode", "full,last", "--trainable", "0.*",
      "--device", "cpu"],
     dict(size=32, batch=8, modes=["full", "last"], trainable=["0.*"], device="cpu")),
    (["--size", "16", "--batch", "4", "--mode", "last", "--optimizer", "sgd-momentum"],
     dict(size=(16, 16), batch=4, modes=["last"], optimizer="sgd-momentum")),
])
def test_fit_equals_the_cli_json(argv, kwargs, capsys):
    budget = 20 * 2**20 if "cpu" in argv else 2**30
    code, out, err = run_cli(["fit", "stack", "--budget", str(budget), *argv,
                              "--format", "json"], capsys)
    assert code == 0, err
    rows = complexity.fit("stack", budget, **kwargs)
    assert [r.to_dict() for r in rows] == json.loads(out)
    assert all(isinstance(r, complexity.FitResult) for r in rows)


@pytest.mark.parametrize("call,argv,library,flagged", [
    (lambda: complexity.step_cost(Stack(1, 2), (1, 2, 4, 4), trainable="x.*"),
     ["fit", "stack", "--budget", "1GiB", "--trainable", "x.*"],
     "trainable='x.*' matches no parameter name", "--trainable 'x.*' matches no parameter name"),
    (lambda: complexity.fit("stack", 2**30, checkpoint="zz*"),
     ["fit", "stack", "--budget", "1GiB", "--checkpoint", "zz*"],
     "checkpoint='zz*' matches no module", "--checkpoint 'zz*' matches no module"),
    (lambda: complexity.fit("stack", 2**30, reserve=1, device="cpu"),
     ["fit", "stack", "--budget", "1GiB", "--reserve", "1", "--device", "cpu"],
     "reserve applies to device='cuda' only", "--reserve applies to --device cuda only"),
    (lambda: complexity.step_cost("stack", (1, 16, 8, 8), grad_scaler=True),
     ["finetune", "--grad-scaler"],
     "grad_scaler cannot run on fake tensors", "--grad-scaler cannot run on fake tensors"),
])
def test_library_errors_name_parameters_and_the_cli_names_flags(call, argv, library, flagged,
                                                                 capsys):
    from complexity.errors import OptionError

    with pytest.raises(OptionError) as info:
        call()
    assert library in str(info.value) and "--" not in str(info.value)
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and flagged in err and len(err.strip().splitlines()) == 1
