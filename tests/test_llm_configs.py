"""The published configs of ``complexity/data/llm_configs/`` build with transformers
(on the meta device) into models of the parameter counts their model cards publish
— the check that the values written into the repository are the published ones."""
from __future__ import annotations

import os
import warnings

import pytest

from complexity.zoo import build_model

HERE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "complexity", "data", "llm_configs")
PUBLISHED = {  # the model cards' counts (8.03B, 1.24B, 7.24B, 7.62B, 9.24B, 3.82B, 124M)
    "llama-3.1-8b.json": ("LlamaForCausalLM", 8_030_261_248),
    "llama-3.2-1b.json": ("LlamaForCausalLM", 1_235_814_400),
    "mistral-7b.json": ("MistralForCausalLM", 7_241_732_096),
    "qwen2.5-7b.json": ("Qwen2ForCausalLM", 7_615_616_512),
    "gemma-2-9b.json": ("Gemma2ForCausalLM", 9_241_705_984),
    "phi-3-mini-4k.json": ("Phi3ForCausalLM", 3_821_079_552),
    "gpt2.json": ("GPT2LMHeadModel", 124_439_808),
}


def test_every_config_file_is_listed():
    assert sorted(f for f in os.listdir(HERE) if f.endswith(".json")) == sorted(PUBLISHED)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_config_builds_with_the_published_parameter_count(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net, _ = build_model("hf:" + os.path.join(HERE, name))
    cls, count = PUBLISHED[name]
    assert type(net).__name__ == cls
    assert sum(p.numel() for p in net.parameters()) == count
    assert next(net.parameters()).device.type == "meta"
