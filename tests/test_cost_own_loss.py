"""The model's own loss: a Hugging Face model given ``labels=`` computes its loss
itself (a causal LM: the labels padded with -100 and shifted by one, the logits
upcast to float32, cross-entropy with ``ignore_index=-100``; sequence
classification: cross-entropy over ``num_labels``), and the step takes
``output.loss`` (:func:`complexity.cost.step.batch.loss_of`). The tracer records the
model's own calls (``pad``, ``contiguous``, ``float``, views, and cross-entropy as
log-softmax + nll_loss); the measurement runs the same forward. A model without
labels (torchvision) keeps cross-entropy on its logits, unchanged.
Skipped without ``transformers``.
"""
from __future__ import annotations


import pytest
import torch

from complexity.cost.keys import KEYS
from complexity.cost.measure.cpu_step import measure
from complexity.cost.predict.prediction import predict_with_unmodelled
from complexity.cost.predict.trace import trace
from complexity.cost.step.batch import Loss, loss_of

transformers = pytest.importorskip("transformers")

from text_models import SHAPE, TOKENS, VOCAB  # noqa: E402
from text_models import bert as _bert  # noqa: E402
from text_models import gpt2 as _gpt2  # noqa: E402
from trainable_helpers import trained_as  # noqa: E402


#: Llama's rotary embedding (``cos``, ``sin`` of the position angles): off the
#: gradient path (no node), so no value depends on their rule; no other call may lack one.
OFF_PATH = {"cos", "sin"}


def _llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    # as many key/value heads as query heads: grouped-query attention is another rule's
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64))


MODELS = {"gpt2": _gpt2, "llama": _llama, "bert": _bert}


@pytest.fixture(scope="module", params=list(MODELS))
def model(request):
    torch.manual_seed(0)
    return request.param, MODELS[request.param]()


def test_loss_of():
    """Which loss, and the labels drawn for it."""
    gpt2, bert = loss_of(_gpt2()), loss_of(_bert())
    assert (gpt2.own, gpt2.task, gpt2.high) == (True, "causal-lm", VOCAB)
    assert (bert.own, bert.task, bert.high) == (True, "sequence-classification", 3)
    assert gpt2.labels_shape(SHAPE) == SHAPE and bert.labels_shape(SHAPE) == (2,)
    assert gpt2.label() == "the model's own (labels=)" and Loss().label() == "cross-entropy"
    labels = gpt2.labels(torch.zeros(SHAPE, dtype=torch.long))
    assert labels.dtype == torch.long and 0 <= labels.min() and labels.max() < VOCAB


@pytest.mark.parametrize("trainable", ["full", "last"])
def test_predicted_equals_real(model, trainable):
    """All seven quantities, predicted from the trace, equal one real step's, with
    the model's own loss in both; the loss is the model's cross-entropy (its last
    two calls), the graph's loss its result."""
    name, net = model
    with trained_as(net, trainable):
        predicted, unmodelled = predict_with_unmodelled(net, SHAPE, **TOKENS)
        real = measure(net, SHAPE, how="real", **TOKENS)
        g = trace(net, SHAPE, **TOKENS)
    assert set(unmodelled) <= OFF_PATH, unmodelled
    assert {k: predicted[k] for k in KEYS} == {k: real[k] for k in KEYS}
    names = [c.name for c in g.calls]
    assert names[-2:] == ["log_softmax", "nll_loss"] and g.loss == g.calls[-1].outputs[0]
    if name != "bert":  # the causal LM's shift: labels padded with -100, sliced, copied
        assert ["float", "pad", "__getitem__", "contiguous"] == \
            [n for n in names[-10:] if n in ("float", "pad", "__getitem__", "contiguous")]
    assert net.config.problem_type is None  # the classification head's setting undone


def test_ignored_labels_change_nothing():
    """Labels of -100 (ignored, as a masked LM's unmasked positions are) cost what
    random labels cost: the target is kept whole either way."""
    torch.manual_seed(0)
    net = _gpt2()
    labels = torch.full(SHAPE, -100, dtype=torch.long)
    labels[:, ::4] = 7
    assert measure(net, SHAPE, how="real", batch_target=labels, **TOKENS) \
        == measure(net, SHAPE, **TOKENS) \
        == predict_with_unmodelled(net, SHAPE, labels.to("meta"), **TOKENS)[0]


def test_without_labels_unchanged():
    """A model without ``labels`` (torchvision's resnet18, 32×32): cross-entropy on
    its logits, predicted equal to a real step and to a fake one."""
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    shape = (2, 3, 32, 32)
    assert loss_of(net) == Loss()
    predicted, unmodelled = predict_with_unmodelled(net, shape)
    real = measure(net, shape, how="real")
    assert not unmodelled and predicted == real
    assert measure(net, shape, how="fake") == real


@pytest.mark.parametrize("head", ["BertForMaskedLM", "BertForTokenClassification"])
def test_per_token_heads(head):
    """A masked LM and a token classifier: one label per token (below the vocabulary,
    below ``num_labels``), their own cross-entropy over every position; exact."""
    torch.manual_seed(0)
    net = getattr(transformers, head)(transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=5))
    loss = loss_of(net)
    assert loss.own and loss.high == (VOCAB if head.endswith("MaskedLM") else 5)
    assert loss.labels_shape(SHAPE) == SHAPE
    predicted, unmodelled = predict_with_unmodelled(net, SHAPE, **TOKENS)
    assert not unmodelled and predicted == measure(net, SHAPE, how="real", **TOKENS)


def test_regression_head_keeps_cross_entropy():
    """``num_labels=1`` (regression: float labels, MSE): not drawn; cross-entropy on
    the logits, as before."""
    net = transformers.BertForSequenceClassification(transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=1))
    assert loss_of(net) == Loss()
