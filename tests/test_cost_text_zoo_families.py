"""One tiny model per family the text zoo (``benchmarks/text_zoo.py``) found off,
predicted against a real CPU step in ``full`` and ``last`` training.

* Mixtral (mixture of experts; Qwen-MoE, OLMoE … route the same way): the
  router's choices read off the weights' values (reported as such, with
  ``READS_WEIGHTS``), ``nonzero``/``where``/``index_add_``; every pass of the
  measurement starts from the same weights, so the real step routes as the
  prediction does.
* Bart's sequence classifier: ``hidden[input_ids.eq(eos), :]``, a boolean-mask
  index with a gradient, answered from the ids' values.

Skipped without ``transformers``.
"""
from __future__ import annotations

import os
import warnings

import pytest
import torch

from complexity.cost.measure.cpu_step import measure
from complexity.cost.predict.prediction import READS_WEIGHTS, predict_with_unmodelled
from complexity.cost.step.batch import make_input
from text_models import SHAPE, TOKENS, VOCAB
from trainable_helpers import trained_as

transformers = pytest.importorskip("transformers")

#: ``last`` mode (no gradient through the routing or the mask) with
#: COMPLEXITY_SLOW_TESTS=1: the fast set keeps this file near 20 s.
MODES = ["full", pytest.param("last", marks=pytest.mark.skipif(
    not os.environ.get("COMPLEXITY_SLOW_TESTS"), reason="slow: set COMPLEXITY_SLOW_TESTS=1"))]

#: Quantities that depend on no routing choice's rounding: exact.
EXACT = ("param_bytes", "grad_bytes", "optimizer_bytes", "saved_activation_bytes",
         "forward_flops", "backward_flops")


def _compare(model, mode):
    with trained_as(model, mode), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predicted, unmodelled = predict_with_unmodelled(model, SHAPE, **TOKENS)
        real = measure(model, SHAPE, how="real", **TOKENS)
    return predicted, real, unmodelled


def mixtral():
    from transformers import MixtralConfig, MixtralForCausalLM

    torch.manual_seed(0)
    config = MixtralConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=32,
                           num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                           num_local_experts=4, num_experts_per_tok=2,
                           max_position_embeddings=64)
    config._experts_implementation = "eager"  # the per-expert loop
    return MixtralForCausalLM(config)


def bart_classifier():
    """Bart's sequence classifier, its eos id one every example of the batch holds once."""
    from transformers import BartConfig, BartForSequenceClassification

    ids = make_input(SHAPE, **TOKENS)
    eos = next(t for t in range(VOCAB) if all((row == t).sum() == 1 for row in ids))
    torch.manual_seed(0)
    return BartForSequenceClassification(BartConfig(
        vocab_size=VOCAB, d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
        decoder_ffn_dim=32, max_position_embeddings=64, num_labels=3, eos_token_id=eos,
        pad_token_id=VOCAB - 1, bos_token_id=VOCAB - 2, decoder_start_token_id=VOCAB - 2,
        forced_eos_token_id=None))


@pytest.mark.parametrize("mode", MODES)
def test_mixtral(mode):
    predicted, real, unmodelled = _compare(mixtral(), mode)
    assert unmodelled and all(u.endswith(READS_WEIGHTS) for u in unmodelled), unmodelled
    assert {k: predicted[k] for k in EXACT} == {k: real[k] for k in EXACT}
    assert abs(predicted["peak_bytes"] - real["peak_bytes"]) <= 0.01 * real["peak_bytes"]


@pytest.mark.parametrize("mode", MODES)
def test_bart_classifier(mode):
    """Exact but the peak, 32 B (the eos mask's size, of 475,324 B) short in
    ``full`` mode: not found yet."""
    predicted, real, unmodelled = _compare(bart_classifier(), mode)
    assert unmodelled == []
    assert {k: predicted[k] for k in EXACT} == {k: real[k] for k in EXACT}
    assert abs(predicted["peak_bytes"] - real["peak_bytes"]) <= 32
