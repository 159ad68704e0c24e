"""The training step's formulas in the batch B (complexity.cost.fit.step_formula)
against independent routes: a fake-tensor training step (measure) for every
quantity it measures exactly, concrete predictions at batch sizes the formula was
not fitted or checked at, brute force for the envelope and the max batch, and the
module's own parameters for the parts of the peak."""
from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from complexity.cost.measure.cpu_step import measure
from complexity.cost.predict.prediction import predict
from complexity.cost.fit.proofs import proven_max_batch
from complexity.cost.fit.step_formula import FormulaError, envelope, step_formula
from complexity.cost.keys import PARTS
from complexity.cost.step.trainable import set_trainable
from models.stack import Stack

EXACT = ("param_bytes", "grad_bytes", "optimizer_bytes", "saved_activation_bytes",
         "forward_flops", "backward_flops")


class Drop(nn.Module):
    """Conv, BN, ReLU, dropout, pooling, linear: a bit of everything the rules cover."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):
        x = self.drop(torch.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(nn.functional.max_pool2d(x, 2), 1))


def models():
    yield "stack-full", Stack(3, 8), "full", (8, 12, 12)
    yield "stack-last", Stack(3, 8), "last", (8, 12, 12)
    yield "drop-full", Drop(), "full", (3, 8, 8)
    yield "drop-fc", Drop(), "fc.*", (3, 8, 8)


@pytest.mark.parametrize("name,net,mode,sample", list(models()), ids=[m[0] for m in models()])
def test_formulas_equal_a_measured_step_and_predict_at_new_batches(name, net, mode, sample):
    set_trainable(net, mode)
    f = step_formula(net, sample, checks=5, seed=1)
    assert len(f.checked) == 5
    for b in (3, 7):  # neither fit points (1, 2) nor, here, the checked ones
        m = measure(net, (b, *sample))
        got = f.at(b)
        assert {k: got[k] for k in EXACT} == {k: m[k] for k in EXACT}
        assert got["peak_bytes"] == predict(net, (b, *sample))["peak_bytes"]


def test_peak_is_a_max_of_affine_terms_on_its_envelope():
    net = Stack(2, 8)
    f = step_formula(net, (8, 16, 16))
    expr = f.formulas()["peak_bytes"]
    from complexity.cost.fit.step_formula import B
    for b in (1, 5, 40):
        assert int(expr.subs(B, b)) == predict(net, (b, 8, 16, 16))["peak_bytes"]
    # every kept term is the largest somewhere at B >= 1 (else it would be pruned)
    xs = range(1, 10**5, 7)
    for a, s in f.peak_terms:
        assert any(a + s * x >= max(a2 + s2 * x for a2, s2 in f.peak_terms) for x in xs)


def test_envelope_equals_brute_force_on_random_lines():
    rng = random.Random(0)
    for _ in range(200):
        lines = [(rng.randint(-50, 50), rng.randint(0, 6)) for _ in range(rng.randint(1, 8))]
        env = envelope(lines)
        for x in range(1, 60):
            assert max(a + b * x for a, b in env) == max(a + b * x for a, b in lines)
        assert len(set(env)) == len(env)


def test_max_batch_is_proved_by_concrete_predictions():
    net = Stack(2, 8)
    set_trainable(net, "full")
    f = step_formula(net, (8, 16, 16))
    for budget in (3 * 10**6, 10**7, 123_456_789):
        b = proven_max_batch(net, f, budget)
        assert predict(net, (b, 8, 16, 16))["peak_bytes"] <= budget
        assert predict(net, (b + 1, 8, 16, 16))["peak_bytes"] > budget
    # brute force over the formula's own values, for small budgets
    for budget in range(f.peak_at(1) - 10, f.peak_at(1) + 5 * (f.peak_at(2) - f.peak_at(1)), 997):
        scan = 0
        while f.peak_at(scan + 1) <= budget:
            scan += 1
        assert f.max_batch(budget) == scan


def test_parts_sum_to_the_peak_and_match_the_module():
    net = Drop()
    f = step_formula(net, (3, 8, 8))
    weights = sum(t.numel() * t.element_size() for t in (*net.parameters(), *net.buffers()))
    trainable = [p for p in net.parameters() if p.requires_grad]
    adam = sum(2 * p.numel() * 4 + 4 for p in trainable)
    for b in (1, 9, 300):
        parts = f.parts(b)
        assert set(parts) == set(PARTS)
        assert sum(parts.values()) == predict(net, (b, 3, 8, 8))["peak_bytes"]
        assert parts["weights"] == weights and parts["optimizer"] == adam
        # the input (float32) and the target (int64 class index per sample) at least
        assert parts["activations"] >= b * (3 * 64 * 4 + 8)
        assert 0 <= parts["grads"] <= sum(p.numel() * 4 for p in trainable)


class Changes(nn.Module):
    """A step whose calls depend on the batch size: no formula in B."""

    def __init__(self, above):
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.above = above

    def forward(self, x):
        if x.shape[0] > self.above:
            x = torch.relu(x) * 2
        return self.fc(x)


def test_a_step_that_differs_only_at_batch_one_starts_at_two():
    # B=1 and B=2 differ, B=2 and B=3 agree: the formula holds from B=2, verified
    f = step_formula(Changes(1), (4,), checks=3)
    assert f.batch_min == 2 and len(f.checked) == 3


@pytest.mark.parametrize("above", [2, 20])
def test_a_step_that_changes_with_the_batch_gets_no_formula(above):
    # above=2 and 20: B=1, 2 agree; only the held-out checks see the change
    with pytest.raises(FormulaError):
        step_formula(Changes(above), (4,), checks=5, check_range=64)


def test_a_class_token_broadcast_starts_the_formula_at_batch_two():
    """At B = 1 a ViT's class token expanded over the batch is the size of its input,
    so its backward hands the gradient on; from B = 2 it reduces into a new one. The
    formula starts at B = 2 and still equals predict at held-out batches."""
    import torch
    import torchvision

    from complexity.cost.predict.prediction import predict as concrete
    from complexity.cost.fit.step_formula import step_formula as formula

    with torch.device("meta"):
        vit = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=1,
                                                   num_heads=2, hidden_dim=32, mlp_dim=64)
    f = formula(vit, (3, 32, 32), checks=3)
    assert f.batch_min == 2 and len(f.checked) == 3
    for b in (2, 7):
        assert f.at(b)["peak_bytes"] == concrete(vit, (b, 3, 32, 32))["peak_bytes"]


def test_step_counters_follow_the_steps_optimizer():
    """Adam's float32 ``step`` counters (what a real Adam keeps per trainable tensor)
    are the only state a CUDA step holds on the CPU; SGD has none (it was once taken
    as Adam's and came out negative)."""
    import torch

    from complexity.cost.step.optimizers import Optimizer
    from complexity.cost.step.options import StepOptions
    from complexity.cost.predict.prediction import step_log
    from models.stack import Stack

    net = Stack(2, 4)
    real = Stack(2, 4)
    opt = torch.optim.Adam(real.parameters(), foreach=False)
    for p in real.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    steps = sum(s["step"].numel() * s["step"].element_size() for s in opt.state.values())
    assert step_log(net, (2, 4, 8, 8)).step_counter_bytes == steps
    for name in ("sgd", "sgd-momentum"):
        options = StepOptions(optimizer=Optimizer(name))
        assert step_log(net, (2, 4, 8, 8), options=options).step_counter_bytes == 0


def test_steps_kept_for_the_proofs_equal_fresh_predictions():
    """The steps a formula keeps for its proofs (fit/traced.py) are what predict gives
    afresh at those batches; another model, or other trainable flags, find none."""
    net, sample = Stack(2, 4), (4, 8, 8)
    f = step_formula(net, sample, checks=3)
    how = (None, None, None, None)  # device, input dtype and bound, options: as traced
    batches = [1, 2, *f.checked]
    for b in batches:
        assert f.traced.values(net, (b, *sample), *how) == predict(net, (b, *sample))
    assert f.traced.log(net, (1, *sample), *how) is not None
    assert f.traced.values(Stack(2, 4), (1, *sample), *how) is None
    assert f.traced.values(net, (1, *sample), "cuda", None, None, None) is None
    next(net.parameters()).requires_grad_(False)
    assert all(f.traced.values(net, (b, *sample), *how) is None for b in batches)
