"""Adafactor (``torch.optim.Adafactor``: factored second moments) in a whole training
step: predicted on the meta device, measured on a real CPU step
(:func:`complexity.cost.measure.cpu_step.measure`, ``how="real"``), for-loop and
foreach, on a small CNN and a tiny Llama in float32 and bfloat16; and its state
over random layer shapes against the state a real first step makes."""
from __future__ import annotations

import os
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from complexity.cost.measure.cpu_step import measure
from complexity.cost.predict.prediction import predict_with_unmodelled
from complexity.cost.step import adafactor
from complexity.cost.step.optimizers import Optimizer, TensorBytes
from complexity.cost.step.options import step_options
from complexity.zoo import build_model
from models.stack import Stack

LLAMA = {"vocab_size": 100, "hidden_size": 32, "intermediate_size": 64,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}
TOKENS = dict(input_dtype=torch.long, input_high=100)


def _both(net, shape, options, **kind):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predicted, unmodelled = predict_with_unmodelled(net, shape, None, "cpu",
                                                        options=options, **kind)
        real = measure(net, shape, how="real", options=options, **kind)
    assert unmodelled == []
    return predicted, real


@pytest.mark.parametrize("foreach", [False, True], ids=["for-loop", "foreach"])
def test_small_cnn_where_the_update_is_the_peak(foreach, monkeypatch):
    # wide 3x3 convolutions on a 4x4 input: the update's var_estimate (a weight's size)
    # on top of the gradients is the step's peak, so a wrong temporary moves it
    net = Stack(2, 48)
    options = step_options("adafactor", foreach=foreach)
    predicted, real = _both(net, (1, 48, 4, 4), options)
    assert predicted == real
    # the fake-tensor step (finetune's default measurement) reads Adafactor's scalars as 1.0
    assert measure(net, (1, 48, 4, 4), how="fake", options=options) == real
    monkeypatch.setattr(adafactor, "step_temporaries", lambda sizes, foreach=False: 0)
    without, _ = predict_with_unmodelled(net, (1, 48, 4, 4), None, "cpu", options=options)
    assert without["peak_bytes"] < real["peak_bytes"]


#: two of the four (dtype, update) pairs run by default; all four with COMPLEXITY_SLOW_TESTS=1
SLOW = pytest.mark.skipif(not os.environ.get("COMPLEXITY_SLOW_TESTS"),
                          reason="slow: set COMPLEXITY_SLOW_TESTS=1")


@pytest.mark.parametrize("dtype,foreach", [
    ("bfloat16", False), ("float32", True),
    pytest.param("float32", False, marks=SLOW), pytest.param("bfloat16", True, marks=SLOW)])
def test_tiny_llama(dtype, foreach):
    net, _ = build_model("hf:LlamaForCausalLM", model_args=LLAMA)
    predicted, real = _both(net, (2, 16), step_options("adafactor", foreach=foreach,
                                                       dtype=dtype), **TOKENS)
    assert predicted == real


def _real_state(shapes, dtype):
    """The state bytes a real first Adafactor step makes for parameters of ``shapes``."""
    params = [torch.zeros(s, dtype=dtype, requires_grad=True) for s in shapes]
    for p in params:
        p.grad = torch.ones_like(p)
    opt = torch.optim.Adafactor(params)
    opt.step()
    return sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values())


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.integers(1, 9), min_size=0, max_size=4), min_size=1, max_size=5),
       st.sampled_from([torch.float32, torch.bfloat16, torch.float64]))
def test_state_over_random_layer_shapes(shapes, dtype):
    sizes = [TensorBytes(torch.Size(s).numel() * dtype.itemsize, s) for s in shapes]
    assert Optimizer("adafactor").state_bytes(sizes) == _real_state(shapes, dtype)
    # on a GPU the step counters stay on the host
    assert Optimizer("adafactor").state_bytes(sizes, "cuda") == _real_state(
        shapes, dtype) - 4 * len(shapes)


def test_byte_counts_alone_are_refused():
    with pytest.raises(ValueError, match="shape"):
        Optimizer("adafactor").state_bytes([400, 40])
    with pytest.raises(ValueError, match="no fused"):
        Optimizer("adafactor", fused=True)
