"""Tiny Hugging Face text models built from configs (nothing downloaded), shared by
the text-model tests: token ids ``SHAPE`` below a ``VOCAB``-word vocabulary."""
from __future__ import annotations

import warnings

import torch

SHAPE = (2, 16)
VOCAB = 100
TOKENS = dict(input_dtype=torch.long, input_high=VOCAB)


def bert():
    """BERT for sequence classification: 2 layers, width 32, 3 labels."""
    from transformers import BertConfig, BertForSequenceClassification

    return BertForSequenceClassification(BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=3))


def gpt2():
    """GPT-2 with its LM head: 2 layers, width 32."""
    from transformers import GPT2Config, GPT2LMHeadModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                            bos_token_id=None, eos_token_id=None)
    return GPT2LMHeadModel(config)
