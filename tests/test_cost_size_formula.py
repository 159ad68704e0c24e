"""The training step's formulas in B, H, W (complexity/cost/fit/size_formula.py) and
``fit --size auto``, against independent routes: concrete ``predict`` (itself
equal to a real CPU step, tests/test_cost_*) at fresh random points of the
domain, off the construction grid; the peak against a real CPU step
(``measure(how="real")``); the max size proved through the CLI."""
from __future__ import annotations

import json
import random
import warnings

import pytest
import torch
from torch import nn

from cli_helpers import run_cli
from complexity.cost.keys import KEYS
from complexity.cost.measure.cpu_step import measure
from complexity.cost.predict.prediction import predict
from complexity.cost.fit.size_formula import size_formula
from complexity.cost.fit.step_formula import FormulaError
from complexity.cost.step.trainable import set_trainable
from complexity.zoo import build_model


def _built(net, channels, **kw):
    """:func:`size_formula` and every ``(B, H, W)`` its construction traced (the
    lattice scans, the interpolation grid, the corner search), recorded at the
    trace itself."""
    import complexity.cost.fit.size_formula as sfm

    traced = set()
    real = sfm.step_log

    def recording(model, shape, *a, **k):
        traced.add((shape[0], shape[2], shape[3]))
        return real(model, shape, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sfm, "step_log", recording)
        f = size_formula(net, channels, **kw)
    assert traced  # the recording saw the construction
    return f, traced


def _fresh_points(f, traced, n, seed, batch_hi=64, span=12):
    """Random (B, H, W) of the domain, none of them a point the formula was built
    (``traced``, from :func:`_built`) or checked at."""
    rng = random.Random(seed)
    d = [f.domain[s] for s in f.names]
    out = set()
    while len(out) < n:
        p = tuple(x["min"] + x["step"] * rng.randint(0, hi)
                  for x, hi in zip(d, (batch_hi, span, span)))
        if p not in f.checked and p not in traced:
            out.add(p)
    return sorted(out)


def _agrees(net, f, points):
    for b, h, w in points:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            concrete = predict(net, (b, f.channels, h, w))
        got = f.at(b, h, w)
        assert got == {k: concrete[k] for k in KEYS}, (b, h, w)
        # the formula in B at this size, read off the same formulas
        assert f.restrict(h, w).at(b) == got


def _strided():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(4, 6, 3, stride=2), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.Conv2d(6, 2, 1))


def test_strided_net_at_odd_sizes_narrows_the_lattice():
    net = _strided()
    f, traced = _built(net, 3, base=(21, 19))
    # two stride-2 layers: the sizes are polynomial only every 4 values
    assert f.domain["H"]["step"] == 4 and f.domain["H"]["residue"] == 21 % 4
    assert f.domain["W"]["step"] == 4 and f.domain["W"]["residue"] == 19 % 4
    assert len(f.checked) >= 6  # the domain's corner and 5 random points
    _agrees(net, f, _fresh_points(f, traced, 5, seed=1))
    # off the lattice no formula is claimed
    h, w = f.domain["H"]["min"] + 4 * 3 + 1, f.domain["W"]["min"] + 4 * 2
    assert not f.on_domain(3, h, w)
    with pytest.raises(FormulaError, match="outside the domain"):
        f.restrict(h, w)


@pytest.mark.parametrize("name,base", [("unet", (32, 32)), ("cnn", (32, 24))])
def test_course_models(name, base):
    net, c = build_model(name)
    f, traced = _built(net, c, base=base, checks=5)
    _agrees(net, f, _fresh_points(f, traced, 3, seed=2, span=6))
    # conv nets: every size is bilinear in H, W (and affine in B)
    assert all(j <= 1 and k <= 1 for _, j, k in f.monomials)


def test_resnet18_small_sizes_and_last_layer_only():
    net, c = build_model("resnet18")
    set_trainable(net, "last")
    f, traced = _built(net, c, base=(64, 64), checks=5)
    assert f.domain["H"] == {"min": 64, "step": 32, "residue": 0}  # B=1 at 32×32: BN fails
    # (2, 96, 64) is a point of the interpolation grid; the others were never traced
    fresh = [(5, 64, 160), (3, 128, 96), (2, 160, 128)]
    assert not set(fresh) & (traced | set(f.checked))
    _agrees(net, f, [(2, 96, 64), *fresh])
    peak = f.formulas()["peak_bytes"]
    assert peak.subs({s: v for s, v in zip(f.symbols(), (3, 128, 96))}) == f.peak_at(3, 128, 96)


def test_peak_formula_equals_a_real_cpu_step():
    net = _strided()
    f = size_formula(net, 3, base=(13, 13), checks=5)
    b, h, w = 3, f.domain["H"]["min"] + 8, f.domain["W"]["min"] + 4
    real = measure(net, (b, 3, h, w), how="real")
    assert f.at(b, h, w) == {k: real[k] for k in KEYS}


def test_max_size_is_solved_and_proved():
    net = _strided()
    f = size_formula(net, 3, base=(21, 21), checks=5)
    lo, step, _ = f.square_lattice()
    for budget in (2 * 2**20, 10 * 2**20):
        s = f.max_size(4, budget)
        assert s >= lo and (s - lo) % step == 0
        assert predict(net, (4, 3, s, s))["peak_bytes"] <= budget
        assert predict(net, (4, 3, s + step, s + step))["peak_bytes"] > budget
    assert f.max_size(4, f.peak_at(4, lo, lo) - 1) == 0  # none fits


def test_cli_size_auto_json_is_proved(capsys):
    budget = 64 * 2**20
    code, out, err = run_cli(["fit", "cnn", "--budget", str(budget), "--device", "cpu",
                              "--batch", "4", "--size", "auto", "--mode", "full,last",
                              "--format", "json"], capsys)
    assert code == 0, err
    net, c = build_model("cnn")
    for r in json.loads(out):
        set_trainable(net, r["mode"])
        s = r["max_size"][0]
        assert r["max_size"] == [s, s] and r["size"] == [s, s]
        step = int(r["size_domain"].split("(mod ")[1].split(")")[0]) if "mod" in r[
            "size_domain"] else 1
        assert predict(net, (4, c, s, s))["peak_bytes"] <= budget
        assert predict(net, (4, c, s + step, s + step))["peak_bytes"] > budget
        assert r["peak_bytes"] == predict(net, (4, c, s, s))["peak_bytes"] and r["fits"]
        assert r["size_formula"].startswith("Max(")


GROWS = """
import torch.nn as nn
import torch.nn.functional as F


class Halver(nn.Module):
    # pools until the map is small: how many pools depends on the size
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        x = self.conv(x)
        while x.shape[-1] > 8:
            x = F.max_pool2d(x, 2)
        return self.head(x)
"""


@pytest.mark.parametrize("spec,words", [
    ("halver.py:Halver", "no verified formula in the size"),
    ("torchvision.models:VisionTransformer", "cannot take a 224x224 input"),
])
def test_size_auto_without_a_formula_is_one_line_exit_2(spec, words, tmp_path, capsys,
                                                       monkeypatch):
    (tmp_path / "halver.py").write_text(GROWS)
    monkeypatch.chdir(tmp_path)
    argv = ["fit", spec, "--budget", "1GiB", "--device", "cpu", "--size", "auto"]
    if "Vision" in spec:  # a fixed input size: 32×32
        argv += ["--model-args", json.dumps({"image_size": 32, "patch_size": 8,
                                             "num_layers": 1, "num_heads": 2,
                                             "hidden_dim": 8, "mlp_dim": 16})]
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "--size auto" in err and words in err
