"""Video models: (B, C, T, H, W) clips in, class logits out; torchvision's video
classifiers built with ``weights=None`` on the meta device and stepped on fake CPU
tensors, every parameter training (``full``) and only the head (``last``).

Each at the smallest clip it takes: the ResNet-style ones any (here 4 frames of
32 × 32); MViT v2 only 16 frames of 224 × 224 (its relative-position grid is
fixed by the builder). MViT v2 was wrong before: ``x[:, :, 1:] += y`` ends in a
``__setitem__`` that returned None and was dropped, so its relative-position
tables and shortcut had no gradient (grad and Adam bytes 0.38 % short), and its
class token's ``expand(1, -1)`` was taken to hand its gradient on (peak over).
And RAFT (optical flow), a step through the zoo's ``FlowPair``.
"""
from __future__ import annotations

import os
import sys
import warnings

import pytest
import torch

from complexity.cost.measure.cpu_step import measure
from complexity.cost.predict.prediction import predict_with_unmodelled
from complexity.cost.step.trainable import set_trainable
from trainable_helpers import trained_as

torchvision = pytest.importorskip("torchvision")

#: model -> the smallest clip it takes (B, C, T, H, W)
CLIPS = {
    "r3d_18": (1, 3, 4, 32, 32),
    "r2plus1d_18": (2, 3, 4, 32, 32),
    "mvit_v2_s": (1, 3, 16, 224, 224),
}

#: (model, trainable) -> {quantity: predicted less measured}: gaps left, observed.
#: MViT v2 at 16 × 224 × 224, every parameter training: the peak
#: 62,752 bytes (0.003 %) over, not fixed; the same 16 blocks on a
#: 4 × 32 × 32 grid (builder patched to that size) predict every quantity exactly.
#: Likely (not proven at this size) the cause of the class-token net's gap in
#: tests/test_cost_rules_vision.py, shown there to come from a write into a slice
#: (MViT: ``x[:, :, 1:] += y``): autograd rebases the written tensor on CopySlices
#: nodes, each cloning the incoming gradient, where the schedule sums the base's
#: two gradients — the same bytes, alive at slightly different moments.
GAPS: dict = {("mvit_v2_s", "full"): {"peak_bytes": 62_752}}


@pytest.fixture(scope="module", params=sorted(CLIPS))
def video_model(request):
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return request.param, torchvision.models.get_model(request.param, weights=None)


@pytest.mark.parametrize("trainable", ["full", "last"])
def test_predicted_equals_measured(video_model, trainable):
    name, model = video_model
    shape = CLIPS[name]
    with trained_as(model, trainable):
        predicted, unmodelled = predict_with_unmodelled(model, shape)
        measured = measure(model, shape, how="fake")
    assert unmodelled == []
    gaps = GAPS.get((name, trainable), {})
    assert {k: predicted[k] - measured[k] for k in measured
            if predicted[k] != measured[k]} == gaps


def test_the_verdict_below_the_formulas_range_is_a_traced_step():
    """r3d_18 trained last at B = 1 is off the line of B = 2, 3, so its formula in B
    starts at 2; the verdict at B = 1 then comes from the step traced at B = 1
    (fit said 'no verified formula: the parts at B=1 sum to …, not the peak')."""
    import torchvision

    from complexity.cost.fit.proofs import will_it_fit
    from complexity.cost.predict.prediction import predict

    net = torchvision.models.video.r3d_18()
    set_trainable(net, "last")
    r = will_it_fit(net, (3, 4, 32, 32), 1, 2**31, device="cpu", checks=1)
    assert r["peak_bytes"] == predict(net, (1, 3, 4, 32, 32))["peak_bytes"]
    assert sum(r["parts"].values()) == r["peak_bytes"] and r["fits"]


#: RAFT at its smallest input (128 × 128: its correlation pyramid), through the
#: zoo's FlowPair (benchmarks/zoo.py: the pair stacked on the channels, one logit
#: per refinement iteration). Every quantity exact. With the last layer alone
#: training the peak, reached in the forward, was 502,784 bytes (3.4 %) under:
#: ``CorrBlock`` keeps its pyramid in ``self.corr_pyramid`` (696,320 bytes here),
#: alive to the end of the step, where the schedule freed it after its last read
#: (tests/test_cost_liveness.py: a tensor kept in a module attribute).
@pytest.mark.parametrize("trainable", ["full", "last"])
def test_raft_step(trainable):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "benchmarks"))
    from zoo import FlowPair

    with torch.device("meta"):
        model = FlowPair(torchvision.models.optical_flow.raft_small(weights=None))
    shape = (2, 6, 128, 128)
    with trained_as(model, trainable):
        predicted, unmodelled = predict_with_unmodelled(model, shape)
        measured = measure(model, shape, how="fake")
    assert unmodelled == []
    assert {k: predicted[k] - measured[k] for k in measured
            if predicted[k] != measured[k]} == {}
