"""``StepOptions(grad_scaler=True)``: loss scaling with ``torch.amp.GradScaler``
(``scaler.scale(loss).backward(); scaler.step(opt); scaler.update()``), predicted
from the structure and measured on a real CPU step, byte for byte."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cli_helpers import run_cli
from complexity.cost.keys import KEYS, Category
from complexity.cost.predict.log import Event, Key, Kind, What
from complexity.cost.measure.live_bytes import LiveBytes
from complexity.cost.measure.cpu_step import measure
from complexity.cost.step.optimizers import Optimizer
from complexity.cost.step.options import StepOptions
from complexity.cost.predict.prediction import predict, predict_step
from complexity.cost.step.trainable import set_trainable


def small():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 10))


def resnet18():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10)


#: The scaler's resident state: its scale (a float32 scalar, 4 bytes) and its growth
#: tracker (an int32 scalar, 4 bytes), written out here rather than read from the
#: code under test.
SCALER_STATE = 4 + 4

MODELS = {"small": (small, (2, 3, 16, 16)), "resnet18": (resnet18, (2, 3, 32, 32))}
OPTIONS = {"adam": StepOptions(grad_scaler=True),
           "sgd-momentum": StepOptions(optimizer=Optimizer("sgd-momentum"), grad_scaler=True)}


def _check(net, shape, options):
    predicted, measured = predict(net, shape, options=options), \
        measure(net, shape, how="real", options=options)
    assert {k: predicted[k] for k in KEYS} == {k: measured[k] for k in KEYS}
    return predicted


@pytest.mark.parametrize("opt", OPTIONS)
@pytest.mark.parametrize("mode", ["full", "last"])
@pytest.mark.parametrize("name", MODELS)
def test_predicted_equals_measured(name, mode, opt):
    build, shape = MODELS[name]
    net = build()
    set_trainable(net, mode)
    options = OPTIONS[opt]
    off = options.with_(grad_scaler=False)
    without = predict(net, shape, options=off)
    # every row exact on every key (resnet18 last included: its frozen BatchNorm's
    # save_mean/save_invstd, once a gap of the step without a scaler, are counted)
    with_scaler = _check(net, shape, options)
    # the scaler adds its state and a few scalars, never FLOPs or saved tensors
    assert with_scaler["peak_bytes"] > without["peak_bytes"]
    for k in KEYS:
        if k != "peak_bytes":
            assert with_scaler[k] == without[k], k


def test_predicted_equals_measured_with_bfloat16_autocast():
    net = small()
    _check(net, (2, 3, 16, 16), StepOptions(autocast="bfloat16", grad_scaler=True))


def test_backward_peak_holds_the_scaled_loss_and_the_scale():
    # the peak is in backward (a wide activation, few weights): the scaler's state,
    # the scaled loss and its gradient are alive there, 12 bytes beyond the step
    # without scaling
    net = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 2, 1))
    shape = (4, 3, 32, 32)
    options = StepOptions(grad_scaler=True)
    p = _check(net, shape, options)
    assert p["peak_bytes"] - predict(net, shape)["peak_bytes"] == SCALER_STATE + 4  # 12 bytes


@pytest.mark.parametrize("opt", [Optimizer("sgd"), Optimizer("adam"),
                                 Optimizer("adamw", foreach=True),
                                 Optimizer("sgd-momentum", fused=True)],
                         ids=lambda o: o.label())
def test_the_update_of_a_real_scaler_step(opt):
    """scaler.step + scaler.update alone on resident parameters, gradients and state:
    the most it allocates (the unscaling's scalars, then the optimizer's
    temporaries) and what it leaves (nothing), as the schedule logs them."""
    shapes = [(64, 32), (128,), (10,)]
    torch.manual_seed(0)
    params = [torch.randn(*s, requires_grad=True) for s in shapes]
    sizes = [p.numel() * 4 for p in params]
    optimizer, scaler = opt.make(params), torch.amp.GradScaler("cpu")
    for _ in range(2):  # the first makes the optimizer's state and the scaler's
        for p in params:
            p.grad = torch.randn_like(p)
        scaler.scale(torch.ones(()))
        state = [t for s in optimizer.state.values() for t in s.values()
                 if isinstance(t, torch.Tensor)]
        live = LiveBytes()
        live.track(params, [p.grad for p in params], state, scaler._scale,
                   scaler._growth_tracker)
        before = live.live
        with live:
            scaler.step(optimizer)
            scaler.update()
        after = live.live
        optimizer.zero_grad()
    # the literal above is a real scaler's state: a float32 scale, an int32 tracker
    assert (scaler._scale.dtype, scaler._growth_tracker.dtype) == (torch.float32, torch.int32)
    assert sum(t.numel() * t.element_size()
               for t in (scaler._scale, scaler._growth_tracker)) == SCALER_STATE
    # the schedule's update, replayed from its events
    from complexity.cost.predict.schedule import _Schedule, _Liveness

    events: list = []
    step = object.__new__(_Liveness)
    step.sch, step.scaled = _Schedule(0, events), True
    step.update(opt, sizes)
    alive = top = 0
    for e in events:
        if e.kind is Kind.MARK:
            top = max(top, alive)
        else:
            alive += e.size if e.kind is Kind.ALLOC else -e.size
    assert live.peak - before == top
    # all the scaler made is gone (the schedule's step ends with the optimizer's
    # temporaries still counted: the step's last moment)
    assert after == before
    assert alive == opt.step_temporaries(sizes)


def test_events_name_the_scaler_and_free_what_it_made():
    events: list = []
    p = predict_step(small(), (2, 3, 16, 16), options=StepOptions(grad_scaler=True),
                     events=events)
    scaler = [e for e in events if e.key is not None and e.key.what is What.SCALER]
    assert [e.key.ident for e in scaler if e.kind is Kind.ALLOC] == [
        "double", "reciprocal", "inv_scale", "found_inf", "inv_scale copy", "found_inf copy"]
    assert sum(e.size if e.kind is Kind.ALLOC else -e.size for e in scaler) == 0
    assert {e.category for e in scaler} == {Category.TRANSIENT}
    assert max(e.size for e in events if e.kind is Kind.MARK) == p.values["peak_bytes"]
    # the scaled loss is freed when backward returns; the loss itself is still held
    scaled = p.graph.value_storage[p.graph.calls[-1].outputs[0]]
    assert Event(Kind.FREE, 4, Key(What.ACTIVATION, scaled), Category.ACTIVATIONS) in events


def test_off_is_the_default_and_changes_nothing():
    assert StepOptions(grad_scaler=False) == StepOptions()
    assert "grad_scaler" not in StepOptions().to_dict()
    assert StepOptions(grad_scaler=True).to_dict()["grad_scaler"] is True
    assert StepOptions(grad_scaler=True).label() == "adam, float32, grad-scaler"
    with pytest.raises(ValueError, match="grad_scaler"):
        StepOptions(grad_scaler="yes")


def test_fake_measurement_refuses():
    with pytest.raises(ValueError, match="found_inf.item") as e:
        measure(small(), (2, 3, 16, 16), options=StepOptions(grad_scaler=True))
    assert "how='real'" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("argv, words", [
    (["finetune", "--grad-scaler"], "use --measure real or --measure none"),
    (["finetune", "--grad-scaler", "--measure", "fake"], "cannot run on fake tensors"),
])
def test_cli_refuses_before_any_work(argv, words, capsys, monkeypatch):
    import complexity.cost.fit.proofs as sf
    import complexity.cost.finetune as sweep

    def no_work(*a, **k):
        raise AssertionError("work began before the error")

    monkeypatch.setattr(sf, "will_it_fit", no_work)
    monkeypatch.setattr(sweep, "sweep", no_work)
    monkeypatch.setattr(sweep, "preflight", no_work)
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"python -m complexity {argv[0]}: error: ")
    assert words in err and "--grad-scaler" in err


def test_fit_formulas_carry_the_scaler():
    """fit's formulas in B and in (B, H, W) hold the scaler's 8 resident bytes (in the
    optimizer part) and agree with a real CPU step at a batch and size they were not
    fitted on; the CUDA allocator model allocates its two scalars."""
    from complexity.cost.fit import allocator
    from complexity.cost.fit.size_formula import size_formula
    from complexity.cost.fit.step_formula import step_formula

    net = small()
    options = StepOptions(grad_scaler=True)
    f = step_formula(net, (3, 16, 16), options=options)
    real = measure(net, (7, 3, 16, 16), how="real", options=options)
    assert f.at(7) == real
    plain = step_formula(net, (3, 16, 16))
    assert f.parts(7)["optimizer"] == plain.parts(7)["optimizer"] + SCALER_STATE
    assert f.resident_blocks[-2:] == [(4, 0), (4, 0)]
    assert allocator.cuda_at(f, 7)["allocated"] > allocator.cuda_at(plain, 7)["allocated"]
    s = size_formula(net, 3, options=options, base=(16, 16), checks=2)
    assert s.on_domain(5, 20, 24)
    assert s.at(5, 20, 24)["peak_bytes"] == measure(
        net, (5, 3, 20, 24), how="real", options=options)["peak_bytes"]


def test_fit_with_the_scaler_agrees_with_a_real_step(capsys):
    import json

    from complexity.cost.step.trainable import set_trainable as train
    from complexity.zoo import build_model

    code, out, err = run_cli(["fit", "stack", "--budget", "8MiB", "--device", "cpu",
                              "--size", "16", "--batch", "4", "--mode", "full",
                              "--grad-scaler", "--format", "json"], capsys)
    assert code == 0, err
    (r,) = json.loads(out)
    net, c = build_model("stack")
    train(net, "full")
    options = StepOptions(grad_scaler=True)
    assert r["peak_bytes"] == measure(net, (4, c, 16, 16), how="real",
                                      options=options)["peak_bytes"]
    b = r["max_batch"]
    peak = lambda n: predict(net, (n, c, 16, 16), options=options)["peak_bytes"]  # noqa: E731
    assert peak(b) <= 8 * 2**20 < peak(b + 1)
