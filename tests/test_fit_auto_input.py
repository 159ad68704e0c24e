"""The largest size that fits, over every integer: ``fit --input B,auto`` (the longest
sequence at a batch) and ``fit --size auto`` (square images, no longer only on the
lattice of the strided layers) — each answer checked against independent routes:
brute force over the integers for the search itself, and the fake-tensor step
(:func:`complexity.cost.measure.cpu_step.measure`) at the answer and one more."""
from __future__ import annotations

import json
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cli_helpers import run_cli
from complexity.cost.fit.proofs import largest_extent
from complexity.cost.measure.cpu_step import measure
from complexity.zoo import build_model

LLAMA = {"vocab_size": 100, "hidden_size": 32, "intermediate_size": 64,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
         "max_position_embeddings": 4096}


@settings(max_examples=60, deadline=None)
@given(a=st.integers(0, 10**4), b=st.integers(0, 500), c=st.integers(0, 40),
       steps=st.integers(1, 9), budget=st.integers(1, 10**7))
def test_the_search_matches_brute_force_on_monotone_costs(a, b, c, steps, budget):
    # a quadratic with plateaus (a floor): what a step's peak looks like in the size
    cost = lambda n: a + b * (n // steps) + c * n * n  # noqa: E731
    r = largest_extent(cost, budget, limit=3000)
    brute = max([n for n in range(1, 3001) if cost(n) <= budget], default=0)
    assert r.best == brute and r.monotone
    if 0 < brute < 3000:
        assert r.costs[brute] <= budget < r.costs[brute + 1]


def test_a_non_monotone_window_is_scanned_whole():
    # fits at 10 (known), not at 20 (known); the cost falls from 11 to 12, and 18 fits
    # again after 14 to 17 do not: a search that assumed monotone costs would stop at 13
    cost = {10: 1, 11: 3, 12: 2, 13: 1, 14: 9, 15: 9, 16: 9, 17: 9, 18: 4, 19: 9}.get
    r = largest_extent(cost, 5, known_fit=10, known_miss=20)
    assert r.best == 18 and not r.monotone


def _fit_json(capsys, *argv):
    """The JSON rows of ``fit ARGV --device cpu --mode full --format json``."""
    code, out, err = run_cli(["fit", *argv, "--device", "cpu", "--mode", "full",
                              "--format", "json"], capsys)
    assert code == 0, err
    return json.loads(out)


def _tokens_peak(net, shape, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return measure(net, shape, how="fake", input_dtype=torch.long, input_high=100,
                       **options)["peak_bytes"]


def test_longest_sequence_is_proved_by_the_fake_step(capsys):
    budget = 12 * 2**20
    (r,) = _fit_json(capsys, "hf:LlamaForCausalLM", "--model-args", json.dumps(LLAMA),
                     "--budget", str(budget), "--input", "2,auto")
    s = r["max_input"][1]
    assert r["input"] == [2, s] == r["max_input"] and r["fits"]
    proof = r["input_search"]
    assert proof["fits"] == s and proof["next"] == s + 1 and proof["axes"] == [1]
    net, _ = build_model("hf:LlamaForCausalLM", model_args=LLAMA)
    real = _tokens_peak(net, (2, s)), _tokens_peak(net, (2, s + 1))
    assert real == (proof["fits_bytes"], proof["next_bytes"])  # the instrument agrees
    assert real[0] <= budget < real[1]
    assert r["peak_bytes"] == real[0]


def test_the_position_limit_caps_the_search_and_refuses_longer_inputs(capsys):
    args = ["hf:LlamaForCausalLM", "--model-args", json.dumps({**LLAMA,
            "max_position_embeddings": 64}), "--budget", "1GiB"]
    (r,) = _fit_json(capsys, *args, "--input", "2,auto")
    assert r["max_input"] == [2, 64] and r["input_search"]["next"] is None
    assert r["input_search"]["limit"] == 64
    code, out, err = run_cli(["fit", *args, "--input", "2,65", "--device", "cpu"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "sequence length 65 exceeds the model's max_position_embeddings (64)" in err


@pytest.mark.parametrize("text,words", [
    ("auto,16", "the batch cannot be auto"),
    ("2,auto,auto", "one size can be auto, not 2"),
    ("2,x", "is not a comma-separated list of integers"),
])
def test_bad_auto_input_is_one_line_exit_2(text, words, capsys, monkeypatch):
    import complexity.cost.fit.proofs as proofs

    monkeypatch.setattr(proofs, "largest_extent", lambda *a, **k: pytest.fail("searched"))
    code, out, err = run_cli(["fit", "hf:LlamaForCausalLM", "--model-args", json.dumps(LLAMA),
                              "--budget", "1GiB", "--input", text, "--device", "cpu"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert words in err and "Traceback" not in err


def test_size_auto_answers_off_the_lattice(capsys):
    # the CNN's lattice is every 4th size; the answer is the largest integer that fits
    budget = 3 * 2**20
    (r,) = _fit_json(capsys, "cnn", "--budget", str(budget), "--batch", "2", "--size", "auto")
    s = r["max_size"][0]
    assert r["max_input"] == [2, 1, s, s] and r["input_search"]["next"] == s + 1
    net, c = build_model("cnn")
    peak = lambda n: measure(net, (2, c, n, n), how="fake")["peak_bytes"]  # noqa: E731
    assert peak(s) <= budget < peak(s + 1)
    assert s % 4 != 0  # not a lattice size: the old answer was below it


def test_max_batch_below_the_formulas_range_is_traced_not_read_off():
    # a formula whose range starts at 3 (as for a step off its line at small B): a budget
    # that 3 does not fit is answered by concrete predictions at 2 and 1, not "2"
    from dataclasses import replace

    from complexity.cost.fit.proofs import proven_max_batch
    from complexity.cost.fit.step_formula import step_formula
    from complexity.cost.predict.prediction import predict
    from models.stack import Stack

    net = Stack(2, 4)
    f = replace(step_formula(net, (4, 8, 8), checks=1), batch_min=3)
    peak = lambda b: predict(net, (b, 4, 8, 8))["peak_bytes"]  # noqa: E731
    budget = (peak(1) + peak(2)) // 2
    assert proven_max_batch(net, f, budget) == 1
    assert proven_max_batch(net, f, peak(1) - 1) == 0
