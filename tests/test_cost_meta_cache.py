"""The meta-kernel cache (complexity/cost/predict/meta_cache.py) changes nothing a
trace records: every call, value, storage, kept tensor, FLOP count, hold and free
is the same as on a trace that runs every kernel — on a ResNet (batch norm), a
Hugging Face model (its own loss, attention, views), in-place ops, views and
slices written into — and the cache is really used (hits)."""
from __future__ import annotations

import collections
import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st
import pytest
import torch
from torch import nn
import torchvision
from torch.utils._pytree import tree_flatten, tree_map

from complexity.cost.predict import meta_cache
from complexity.cost.predict.leaves import leaves, map_leaves
from complexity.cost.predict.prediction import step_log
from complexity.cost.predict.trace import trace
from complexity.cost.step.optimizers import Optimizer
from complexity.cost.step.options import StepOptions
from tests import text_models


class _InPlace(nn.Module):
    """In-place ops, views of views, a slice written into, a transpose made
    contiguous, a chunk: what aliases an argument or mutates it."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 4)
        self.norm = nn.LayerNorm(8)

    def forward(self, x):
        y = self.a(x).relu_()
        y.add_(1.0).mul_(0.5)
        z = y.view(y.shape[0], 2, 4).transpose(1, 2).contiguous().view(y.shape[0], 8)
        z[:, :2] = y[:, 2:4] * 2
        u, v = self.norm(z).chunk(2, dim=1)
        return self.b(torch.cat([v, u], 1).sigmoid())


def _facts(g):
    """Everything a traced graph holds that a prediction reads."""
    return ([dataclasses.astuple(c) for c in g.calls], g.value_bytes, g.value_storage,
            g.storage_bytes, sorted(g.resident), g.params, sorted(g.unmodelled),
            g.held_until, g.freed_after, [dataclasses.astuple(s) for s in g.segments], g.loss)


def _log(log):
    return (log.values, log.events, log.resident_blocks, log.trainable_sizes,
            log.unmodelled, log.io, log.weights)


def _same_cached(build, shape, **kw):
    """The trace and the step log with the cache (empty, then full) equal to those
    without it; the cache answered kernels on the second run."""
    meta_cache.clear()
    net = build()
    with meta_cache.uncached():
        want = _facts(trace(net, shape, **kw)), _log(step_log(net, shape, **kw))
    for _ in range(2):  # the first fills the table (misses), the second reads it (hits)
        assert _facts(trace(net, shape, **kw)) == want[0]
        assert _log(step_log(net, shape, **kw)) == want[1]


def _hits(build, shape, **kw) -> int:
    """Kernels the cache answered on one more trace of ``build()`` at ``shape``."""
    net = build()
    trace(net, shape, **kw)
    with meta_cache.MetaCache() as c:
        trace(net, shape, **kw)
    return c.hits


def test_resnet_batch_norm_same():
    build = lambda: torchvision.models.resnet18(num_classes=10).to("meta")  # noqa: E731
    _same_cached(build, (2, 3, 32, 32))
    assert _hits(build, (2, 3, 32, 32)) > 20  # batch norms, convs, relu_, add_


def test_transformers_model_same():
    _same_cached(text_models.gpt2, text_models.SHAPE, **text_models.TOKENS)
    assert _hits(text_models.gpt2, text_models.SHAPE, **text_models.TOKENS) > 0


@settings(max_examples=8, deadline=None)
@given(batch=st.integers(1, 5), last=st.booleans())
def test_in_place_and_views_same(batch, last):
    def build():
        net = _InPlace()
        if last:  # the first layer frozen: other nodes, other kept tensors
            net.a.requires_grad_(False)
        return net
    _same_cached(build, (batch, 8))


def test_cached_options_same():
    """bfloat16 weights and SGD: other dtypes in the keys, the same graph."""
    options = StepOptions(dtype="bfloat16", optimizer=Optimizer("sgd"))
    build = lambda: torchvision.models.resnet18(num_classes=10).to("meta")  # noqa: E731
    meta_cache.clear()
    net = build()
    with meta_cache.uncached():
        want = _log(step_log(net, (2, 3, 32, 32), options=options))
    assert _log(step_log(net, (2, 3, 32, 32), options=options)) == want
    assert _log(step_log(net, (2, 3, 32, 32), options=options)) == want


def test_views_and_in_place_are_not_fresh():
    """A view is never rebuilt as a fresh tensor; an in-place op returns its own
    argument, hit or miss."""
    assert meta_cache.cacheable(torch.ops.aten.transpose.int) is None
    assert meta_cache.cacheable(torch.ops.aten.add_.Tensor) == meta_cache.SELF
    x = torch.empty(3, 4, device="meta")
    with meta_cache.MetaCache(table={}) as c:
        outs = [x.add_(1.0) for _ in range(2)]
        views = [x.t() for _ in range(2)]
    assert all(o is x for o in outs) and c.hits == 1
    assert all(v.untyped_storage()._cdata == x.untyped_storage()._cdata for v in views)


@pytest.mark.parametrize("op", [torch.ops.aten.relu.default, torch.ops.aten.sum.dim_IntList])
def test_fresh_results_have_fresh_storage(op):
    x = torch.empty(3, 4, device="meta")
    args = (x,) if op is torch.ops.aten.relu.default else (x, [1])
    with meta_cache.MetaCache(table={}) as c:
        a, b = op(*args), op(*args)
    assert c.hits == 1 and (a.shape, a.stride(), a.dtype) == (b.shape, b.stride(), b.dtype)
    assert a.untyped_storage()._cdata != b.untyped_storage()._cdata
    assert b.untyped_storage().nbytes() == a.untyped_storage().nbytes()


_Pair = collections.namedtuple("_Pair", "a b")
_ATOMS = st.sampled_from([1, 2.5, True, None, "s", torch.float16, torch.device("meta"),
                          torch.Size([2, 3]), torch.ones(1), nn.Parameter(torch.ones(2))])
_TREES = st.recursive(_ATOMS, lambda kids: st.one_of(
    st.lists(kids, max_size=3), st.lists(kids, max_size=3).map(tuple),
    st.dictionaries(st.sampled_from("abc"), kids, max_size=3),
    st.tuples(kids, kids).map(lambda t: _Pair(*t)),
    st.dictionaries(st.sampled_from("xy"), kids, max_size=2).map(collections.OrderedDict)),
    max_leaves=12)


@settings(max_examples=60, deadline=None)
@given(tree=_TREES)
def test_leaves_as_pytree(tree):
    """The trace's fast flatten and map (predict/leaves.py) answer as pytree does."""
    got, want = leaves(tree), tree_flatten(tree)[0]
    assert len(got) == len(want) and all(a is b for a, b in zip(got, want))
    assert map_leaves(id, tree) == tree_map(id, tree)
