"""The training step traced once on symbolic sizes (complexity.cost.predict.symbolic)
against the concrete prediction (complexity.cost.predict.prediction.predict) at
random held-out sizes, odd ones included: every key, the peak too, for a strided
image net (B, H, W), a small 3-D conv net (B, T, H, W) and a tiny Llama (B, S).
And the provable-cover test that prunes peak readings, against evaluation."""
from __future__ import annotations

import random
import warnings
from functools import lru_cache

import sympy as sp
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from complexity.cost.predict.prediction import predict
from complexity.cost.predict.symbolic import Lin, symbolic_step
from complexity.counting.symbolic_shapes import in_domain

B, H, W = (sp.Symbol(n, integer=True, positive=True) for n in "BHW")


class Strided(nn.Module):
    """Convolutions with stride 2 and 3, BatchNorm, ReLU, max-pooling: floors
    that differ for odd and even sizes."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 5, stride=3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 4, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))

    def forward(self, x):
        return self.body(x)


class Video(nn.Module):
    """A 3-D convolution strided in time and space, BatchNorm3d, pooling."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(3, 4, 3, stride=(1, 2, 2), padding=1), nn.BatchNorm3d(4), nn.ReLU(),
            nn.Conv3d(4, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(),
            nn.Linear(4, 3))

    def forward(self, x):
        return self.body(x)


def llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128))


TOKENS = dict(input_dtype=torch.long, input_high=100)


@lru_cache(maxsize=None)
def traced(name):
    if name == "strided":
        return Strided(), symbolic_step(Strided(), ("B", 3, "H", "W"),
                                        hints={"B": 2, "H": 40, "W": 40})
    if name == "video":
        return Video(), symbolic_step(Video(), ("B", 3, "T", "H", "W"),
                                      hints={"B": 2, "T": 8, "H": 24, "W": 24})
    model = llama()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model, symbolic_step(model, ("B", "S"), hints={"B": 2, "S": 16}, **TOKENS)


def check_points(name, template, n, seed, top):
    model, s = traced(name)
    rng = random.Random(seed)
    done = 0
    while done < n:
        point = {k: rng.randint(s.domain[k]["min"], 5 if k == "B" else top) for k in s.symbols}
        if not in_domain({"domain": s.domain, "guards": s.guards}, point):
            continue
        done += 1
        shape = [point[d] if isinstance(d, str) else d for d in template]
        kw = TOKENS if name == "llama" else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert s.at(**point) == predict(model, shape, **kw), point


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10 ** 6))
def test_strided_step_equals_predict_at_random_sizes(seed):
    check_points("strided", ("B", 3, "H", "W"), 3, seed, 97)


def test_strided_step_keeps_its_floors_and_odd_sizes_are_in_its_domain():
    _, s = traced("strided")
    assert s.symbols == ["B", "H", "W"] and s.unmodelled == []
    assert s.values["forward_flops"].has(sp.ceiling) and s.values["forward_flops"].has(B)
    assert in_domain({"domain": s.domain, "guards": s.guards}, {"B": 3, "H": 41, "W": 53})
    # the parameters, their gradients and Adam's state do not depend on the input
    assert s.values["param_bytes"].free_symbols == set()


def test_video_step_equals_predict_in_b_t_h_w():
    check_points("video", ("B", 3, "T", "H", "W"), 6, 1, 41)


def test_llama_step_equals_predict_in_b_and_s():
    _, s = traced("llama")
    assert s.symbols == ["B", "S"] and s.guards == []  # no guard on the batch
    check_points("llama", ("B", "S"), 4, 2, 128)


monomials = st.sampled_from([sp.S.One, B, B * H, B * sp.ceiling(H / 2), sp.floor(H / 3) * W,
                             B * H * W])
lins = st.dictionaries(monomials, st.integers(-50, 50), min_size=1).map(Lin)


@settings(max_examples=200, deadline=None)
@given(a=lins, b=lins, point=st.tuples(st.integers(1, 50), st.integers(1, 300),
                                       st.integers(1, 300)))
def test_a_cover_holds_at_every_point(a, b, point):
    subs = dict(zip((B, H, W), point))
    if a.covers(b):
        assert a.expr.xreplace(subs) >= b.expr.xreplace(subs)
    assert (a + b - b) == a and (2 * a).expr == sp.expand(2 * a.expr)
