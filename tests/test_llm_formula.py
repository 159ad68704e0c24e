"""``fit --input B,S --formula``: a language model's step as formulas in B and S
(complexity.cost.fit.lm_formula), against a real CPU step at a point the trace
never ran at, and against eager attention's quadratic growth; the envelope that
prunes the peak's readings against brute evaluation; the CLI's JSON and its
refusals."""
from __future__ import annotations

import json
import warnings

import pytest
import sympy as sp
import torch
from hypothesis import given, settings, strategies as st

from cli_helpers import run_cli
from complexity.cost.fit.lm_formula import B, S, bs_formula, envelope
from complexity.cost.measure.cpu_step import measure
from complexity.cost.step.options import step_options
from complexity.output.formulas import parse_readable
from complexity.zoo import build_model

LLAMA = {"vocab_size": 100, "hidden_size": 32, "intermediate_size": 64,
         "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
         "max_position_embeddings": 256}
TOKENS = dict(input_dtype=torch.long, input_high=100)
OPTIONS = step_options("adamw", dtype="bfloat16")


def test_eager_attention_is_quadratic_in_s():
    # eager attention keeps the softmax of the S x S scores per head for backward
    net, _ = build_model("hf:LlamaForCausalLM", model_args={
        **LLAMA, "attn_implementation": "eager"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = bs_formula(net, options=OPTIONS, limit=256, checks=1, **TOKENS)
    assert sp.Poly(f["saved_activation_bytes"], S).degree() == 2
    assert "quadratic in S" in f["attention"]


line = st.tuples(st.integers(0, 50), st.integers(0, 20), st.integers(0, 20),
                 st.integers(0, 500))


@settings(max_examples=15, deadline=None)
@given(st.lists(line, min_size=1, max_size=6), st.integers(1, 3), st.integers(1, 3))
def test_envelope_keeps_the_maximum_wherever_it_is_taken(lines, b0, s0):
    readings = [a * B * S + b * B + c * S + d for a, b, c, d in lines]
    kept = envelope(readings, (b0, s0))
    assert set(kept) <= {sp.expand(r) for r in readings}
    for b in range(b0, b0 + 8):
        for n in range(s0, s0 + 8):
            point = {B: b, S: n}
            assert max(int(r.xreplace(point)) for r in kept) == max(
                int(r.xreplace(point)) for r in readings)


def test_cli_formulas_equal_a_real_cpu_step_at_a_held_out_point(capsys):
    args = ["fit", "hf:LlamaForCausalLM", "--model-args", json.dumps(LLAMA), "--input", "2,16",
            "--budget", "1GiB", "--device", "cpu", "--mode", "full", "--dtype", "bfloat16",
            "--optimizer", "adamw", "--formula", "--format", "json"]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    (r,) = json.loads(out)
    f = r["formula_bs"]
    exprs = {k: sp.sympify(f[k], locals={"B": B, "S": S}) for k in f["readable"]}
    assert int(exprs["peak_bytes"].xreplace({B: 2, S: 16})) == r["peak_bytes"]  # the verdict's
    net, _ = build_model("hf:LlamaForCausalLM", model_args=LLAMA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        real = measure(net, (3, 37), how="real", options=OPTIONS, **TOKENS)
    assert {k: int(e.xreplace({B: 3, S: 37})) for k, e in exprs.items()} == real
    for key, text in f["readable"].items():
        assert sp.expand(parse_readable(text, ["B", "S"]) - exprs[key]) == 0, key
    assert f["domain"] == {"B": 2, "S": 2} and "linear in S" in f["attention"]
    assert len(f["checked_at"]) == 3 and f["symbols"] == ["B", "S"]


@pytest.mark.parametrize("extra,words", [
    (["--input", "2,16,4"], "give --input as B,S"),
    (["--batch", "2"], "give --input as B,S"),
])
def test_formula_without_a_b_s_input_is_one_line_exit_2(extra, words, capsys):
    code, out, err = run_cli(["fit", "stack", "--budget", "1GiB", "--device", "cpu",
                              "--formula", *extra], capsys)
    assert code == 2 and out == ""
    assert words in err and len(err.strip().splitlines()) == 1


def test_held_out_points_hold_every_guard():
    # Gemma-2's sliding window is a guard S < 4095 of its trace: checks are drawn inside
    from complexity.cost.fit.lm_formula import _points

    pts = _points(5, (2, 2), 8192, 1, [S < 100, B < 5])
    assert len(pts) == 5 and pts[0][0] == 2 and len(set(pts)) == 5
    assert all(2 <= b < 5 and 2 < n < 100 for b, n in pts)
