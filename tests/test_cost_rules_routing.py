"""The rules of mixture-of-experts routing and of indexing by values, each alone
against PyTorch (``autograd_oracle`` of ``tests/test_cost_rules.py``: what
autograd saves, what ``FlopCounterMode`` counts), and the trace's answer to a
boolean-mask index on the meta device against the same index on CPU values.

``index_add_`` (an expert's output added at its tokens' rows), ``nonzero``,
``where(cond)`` alone, ``greater``, ``unique_consecutive`` (Mixtral, Qwen-MoE,
OLMoE …; Bart's eos check), ``x[i]`` with a 0-dim integer tensor (``select``:
``gate_up_proj[expert_idx]``), ``hidden[mask, :]`` (Bart's sequence classifier).
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings, strategies as st

from complexity.cost.predict.shadow import Shadows
from test_cost_rules import _check, _x

FAST = settings(max_examples=8, deadline=None)


@given(rows=st.integers(2, 6), n=st.integers(1, 5), width=st.integers(1, 4),
       grads=st.sampled_from([(True, True), (True, False), (False, True)]))
@FAST
@pytest.mark.parametrize("name", ["index_add", "index_add_"])
def test_index_add(name, rows, n, width, grads):
    """The index and the source kept when the source requires grad; else nothing."""
    self_grad, src_grad = grads
    index = torch.randint(0, rows, (n,))

    def fn(x, src):
        base = x * 1 if self_grad else x.detach().clone()
        s = src * 2 if src_grad else src.detach()
        return getattr(base, name)(0, index, s)
    kept, _, _ = _check(fn, [_x(rows, width), _x(n, width)], name)
    assert bool(kept) == src_grad


@pytest.mark.parametrize("name, fn", [
    ("nonzero", lambda t: (t > 0).nonzero()),
    ("where", lambda t: torch.where(t > 0)[1]),
    ("greater", lambda t: torch.greater(t, 0)),
    ("unique_consecutive", lambda t: torch.unique_consecutive((t > 0).sum(1))),
    ("bincount", lambda t: torch.bincount((t > 0).long().flatten())),
])
def test_positions_keep_nothing(name, fn):
    kept, fwd, bwd = _check(fn, [_x(4, 5)], name)
    assert (kept, fwd, bwd) == ([], 0, 0)


@pytest.mark.parametrize("index", ["i", "i, j", "j, i", "i, None"])
def test_zero_dim_integer_index_is_a_select(index):
    """``x[torch.tensor(1)]`` is ``x.select(0, 1)``: only a tensor index of one or
    more dimensions is kept."""
    i, j = torch.tensor(1), torch.tensor([0, 2, 2])
    pick = {"i": lambda x: x[i], "i, j": lambda x: x[i, j], "j, i": lambda x: x[j, i],
            "i, None": lambda x: x[i, None]}[index]
    kept, _, _ = _check(lambda x: pick(x * 1), [_x(4, 5)], "__getitem__")
    assert kept == ([] if "j" not in index else [("new", 24)])


@given(batch=st.integers(1, 3), length=st.integers(1, 6), hits=st.data())
@FAST
def test_bool_mask_index_on_meta(batch, length, hits):
    """``hidden[mask, :]`` with a gradient: on meta tensors ``nonzero`` has no
    kernel; the trace answers it from the mask's values, the result's shape and
    autograd node those of the same index on the CPU."""
    values = torch.tensor(hits.draw(st.lists(st.booleans(), min_size=batch * length,
                                             max_size=batch * length))).view(batch, length)
    shadows = Shadows()
    mask = torch.empty(batch, length, dtype=torch.bool, device="meta")
    shadows.leaf(mask, lambda: values)
    hidden = torch.empty(batch, length, 3, device="meta", requires_grad=True)
    with pytest.raises(Exception) as refused:
        hidden[mask, :]
    out, answered, weights = shadows.answer(torch.Tensor.__getitem__,
                                            (hidden, (mask, slice(None))), {}, refused.value)
    real = torch.randn(batch, length, 3, requires_grad=True)[values, :]
    assert out.shape == real.shape and not answered and not weights
    assert type(out.grad_fn).__name__ == type(real.grad_fn).__name__ == "IndexBackward0"


# ------------------------------------------------------------------ other names text models call

@pytest.mark.parametrize("name, fn", [
    ("multiply", lambda a, b: torch.multiply(a, b)),
    ("acos", lambda a, b: torch.acos(a)),  # values outside [-1, 1]: nan, the same kept
    ("asin", lambda a, b: torch.asin(a)),
    ("requires_grad_", lambda a, b: (a * 1).detach().requires_grad_()),
    ("as_strided", lambda a, b: (a * 1).as_strided((2, 3), (4, 1), 1)),
    ("diff", lambda a, b: torch.diff(a * 1, dim=-1)),
    ("exponential_", lambda a, b: (a * 1).exponential_()),
    ("kaiming_uniform_", lambda a, b: torch.nn.init.kaiming_uniform_(torch.empty(3, 4))),
])
def test_aliases(name, fn):
    _check(fn, [_x(3, 4), _x(3, 4)], name)


@pytest.mark.parametrize("form", ["function", "method"])
def test_where_keeps_the_condition(form):
    """``x.where(cond, y)`` (Longformer's masks) keeps ``cond``, as ``torch.where(cond,
    x, y)`` does — not ``x``."""
    cond = torch.rand(3, 4) > 0.5
    fn = {"function": lambda x, y: torch.where(cond, x * 1, y * 1),
          "method": lambda x, y: (x * 1).where(cond, y * 1)}[form]
    kept, _, _ = _check(lambda x, y: fn(x, y), [_x(3, 4), _x(3, 4)], "where")
    assert ("new", 12) in kept  # the boolean condition, 12 bytes
