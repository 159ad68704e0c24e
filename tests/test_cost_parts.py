"""The parts of the peak, measured against predicted: the live-bytes tracker tags
every storage with its category (weights, grads, optimizer, activations,
transient) and sums those alive at the peak (``measure(..., parts=True)``);
``StepFormula.parts`` sorts the schedule's typed events the same way. Two
instruments, one answer: what the peak is made of, not only how large it is."""
import warnings

import pytest

from complexity.cost.fit.step_formula import step_formula
from complexity.cost.keys import PARTS, Category
from complexity.cost.measure.cpu_step import measure
from complexity.cost.measure.live_bytes import LiveBytes
from complexity.cost.step.optimizers import Optimizer
from complexity.cost.step.options import StepOptions
from complexity.cost.step.trainable import set_trainable
from complexity.zoo import build_model

MODELS = [("stack", (4, 16, 16, 16)), ("cnn", (2, 1, 16, 16)), ("unet", (2, 1, 16, 16)),
          ("torchvision:resnet18", (2, 3, 32, 32))]
STEPS = {"adam": StepOptions(), "sgd-momentum": StepOptions(optimizer=Optimizer("sgd-momentum")),
         "zero-grad": StepOptions(set_to_none=False), "grad-accum 2": StepOptions(grad_accum=2)}


@pytest.mark.parametrize("step", list(STEPS))
@pytest.mark.parametrize("mode", ["full", "last"])
@pytest.mark.parametrize("name,shape", MODELS, ids=[m[0] for m in MODELS])
def test_measured_parts_are_the_predicted_parts(name, shape, mode, step):
    net, _ = build_model(name)
    set_trainable(net, mode)
    options = STEPS[step]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        measured = measure(net, shape, parts=True, options=options)
        predicted = step_formula(net, shape[1:], checks=1, options=options).parts(shape[0])
    assert measured["peak_parts"] == predicted
    assert sum(measured["peak_parts"].values()) == measured["peak_bytes"]
    # the parts say something: the weights are all the parameters and buffers
    assert measured["peak_parts"]["weights"] == sum(
        t.numel() * t.element_size() for t in [*net.parameters(), *net.buffers()])


def test_a_gradient_that_becomes_a_grad_is_counted_as_grads_from_its_birth():
    """Hand-worked: one 64-float parameter ``w``, loss = (w * 2).sum(). At the peak,
    in backward, ``w`` (256 B, weights), Adam's ``exp_avg`` and ``exp_avg_sq``
    (2 × 256 B) and its 4-byte ``step`` (optimizer), and the gradient that becomes
    ``w.grad`` (256 B: grads, although made by backward, which tags transient) are
    alive."""
    import torch

    w = torch.zeros(64, requires_grad=True)
    opt = torch.optim.Adam([w])
    (w * 2).sum().backward()
    opt.step()
    w.grad = None
    live = LiveBytes()
    live.track(w, category=Category.WEIGHTS)
    live.track([t for s in opt.state.values() for t in s.values()],
               category=Category.OPTIMIZER)
    node = torch.autograd.graph.get_gradient_edge(w).node
    node.register_prehook(lambda g: live.retag(g[0], Category.GRADS))
    with live:
        loss = (w * 2).sum()
        live.category = Category.TRANSIENT
        loss.backward()
    parts = live.parts()
    assert parts["weights"] == 256 and parts["optimizer"] == 512 + 4  # + Adam's step
    assert parts["grads"] == 256
    assert sum(parts[p] for p in PARTS) == live.peak
