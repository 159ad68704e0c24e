"""Hugging Face image- and audio-classification specs (``complexity.zoo``'s
``_hf_input``): each kind of input a model of those mappings takes — pixels, raw
audio samples, an Audio Spectrogram Transformer's spectrogram, Whisper's log-mel
features — from its (shrunk) config, then ``finetune`` from the command line on a
tiny model of each kind, its prediction against a real CPU step of the same run.
Skipped without ``transformers``."""
from __future__ import annotations

import json

import pytest

from cli_helpers import run_cli
from complexity.zoo import ModelSpecError, check_input, parse_spec

transformers = pytest.importorskip("transformers")

#: The shrunk encoders: two layers of width 32, four heads.
ENCODER = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
           "intermediate_size": 64, "num_labels": 3}
WHISPER = {"d_model": 32, "encoder_layers": 2, "encoder_attention_heads": 4,
           "encoder_ffn_dim": 64, "num_mel_bins": 16, "max_source_positions": 16,
           "classifier_proj_size": 16, "num_labels": 3}
AST = {**ENCODER, "max_length": 64, "num_mel_bins": 32, "patch_size": 16,
       "frequency_stride": 10, "time_stride": 10}
#: wav2vec 2.0 with its feature encoder cut to two convolutions; no layer drop and
#: no time masking, which draw at random which layers and frames a step runs.
WAV2VEC2 = {**ENCODER, "conv_dim": [16, 16], "conv_stride": [5, 2], "conv_kernel": [10, 3],
            "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4,
            "classifier_proj_size": 16, "layerdrop": 0.0, "mask_time_prob": 0.0}
VIT = {**ENCODER, "image_size": 32, "patch_size": 8}


@pytest.mark.parametrize("arch, args, rank, default", [
    ("WhisperForAudioClassification", WHISPER, 3, (1, 16, 32)),
    ("ASTForAudioClassification", AST, 3, (1, 64, 32)),
    ("Wav2Vec2ForSequenceClassification", WAV2VEC2, 2, (1, 16000)),
    ("Wav2Vec2BertForSequenceClassification", {}, 3, (1, 100, 160)),
    ("ViTForImageClassification", VIT, 4, (1, 3, 32, 32)),
    ("CLIPForImageClassification", {}, 4, (1, 3, 224, 224)),   # its vision sub-config's
])
def test_the_input_each_kind_takes(arch, args, rank, default):
    spec = parse_spec(f"hf:{arch}", args)
    assert (spec.rank, spec.default_input, spec.input_dtype) == (rank, default, None)
    check_input(spec, default)


@pytest.mark.parametrize("arch, args, shape, words", [
    ("WhisperForAudioClassification", WHISPER, (2, 8, 32), "num_mel_bins=16"),
    ("WhisperForAudioClassification", WHISPER, (2, 32), "rank 2"),
    ("ASTForAudioClassification", AST, (2, 64, 16), "num_mel_bins=32"),
    ("ASTForAudioClassification", AST, (2, 48, 32), "max_length=64"),
])
def test_a_spectrogram_of_the_wrong_shape_is_one_line(arch, args, shape, words):
    with pytest.raises(ModelSpecError, match=words) as e:
        check_input(parse_spec(f"hf:{arch}", args), shape)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("arch, args, shape", [
    ("ViTForImageClassification", VIT, "2,3,32,32"),
    ("Wav2Vec2ForSequenceClassification", WAV2VEC2, "2,400"),
    ("ASTForAudioClassification", AST, "2,64,32"),
    ("WhisperForAudioClassification", WHISPER, "2,16,32"),
])
def test_finetune_predicts_a_real_step_exactly(arch, args, shape, capsys):
    """Every quantity of both modes, predicted = measured by a real CPU step, with the
    model's own loss and nothing unmodelled (``_weight_norm`` in wav2vec 2.0)."""
    code, out, err = run_cli(["finetune", "--model", f"hf:{arch}", "--model-args",
                              json.dumps(args), "--input", shape, "--measure", "real",
                              "--format", "json"], capsys)
    assert code == 0, err
    rows = json.loads(out)
    assert [r["mode"] for r in rows] == ["full", "last"]
    for r in rows:
        assert r["input"] == [int(s) for s in shape.split(",")]
        assert r["loss"] == "the model's own (labels=)" and r["unmodelled"] == []
        assert r["predicted"] == r["measured"], r["mode"]
