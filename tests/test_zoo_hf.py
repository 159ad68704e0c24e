"""Hugging Face model specs (complexity.zoo): ``hf:ARCH``, ``hf:PATH`` and
``hf:ORG/NAME``, built from a config on the meta device, nothing downloaded.
Skipped without ``transformers``."""
from __future__ import annotations

import json
import re

import pytest
import torch

from cli_helpers import run_cli
from complexity.zoo import ModelSpecError, check_input, parse_spec

transformers = pytest.importorskip("transformers")

#: a BERT small enough to build and run in a moment
TINY = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2,
        "intermediate_size": 128, "vocab_size": 100, "max_position_embeddings": 64}


def _on_meta(spec):
    with torch.device("meta"):
        return spec.build()


def _config_file(folder, **extra):
    data = {"model_type": "bert", "architectures": ["BertForSequenceClassification"],
            **TINY, **extra}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps({k: v for k, v in data.items() if v is not None}))
    return path


def test_arch_builds_the_class_with_the_fields_given():
    spec = parse_spec("hf:BertForSequenceClassification", TINY)
    model = _on_meta(spec)
    assert type(model) is transformers.BertForSequenceClassification
    assert next(model.parameters()).is_meta
    for field, value in TINY.items():
        assert getattr(model.config, field) == value, field
    assert model.config.type_vocab_size == transformers.BertConfig().type_vocab_size  # default
    assert model.config._attn_implementation == "sdpa"
    # the input: token ids below the vocabulary, (N, L)
    assert (spec.rank, spec.input_dtype, spec.input_high, spec.default_input) == (
        2, torch.long, 100, (1, 64))
    assert spec.argument_default("hidden_size") == 64
    assert spec.argument_default("layer_norm_eps") == transformers.BertConfig().layer_norm_eps


def test_attribute_map_aliases_and_attention():
    spec = parse_spec("hf:GPT2LMHeadModel", {"hidden_size": 32, "n_layer": 1,
                                             "num_attention_heads": 2,
                                             "attn_implementation": "eager"})
    model = _on_meta(spec)
    assert (model.config.n_embd, model.config.n_layer, model.config.n_head) == (32, 1, 2)
    assert model.config._attn_implementation == "eager"


@pytest.mark.parametrize("args, named", [({"hiden_size": 8}, "hiden_size"),
                                         ({"no_such_field": 1}, "no_such_field")])
def test_an_unknown_field_is_one_line_naming_it(args, named):
    with pytest.raises(ModelSpecError) as e:
        parse_spec("hf:BertModel", args)
    text = str(e.value)
    assert "\n" not in text and e.value.parameter == "model_args"
    assert text.startswith(f"model_args {named!r}: BertConfig has no such field"), text
    if named == "hiden_size":
        assert "did you mean hidden_size" in text


@pytest.mark.parametrize("text, words", [
    ("hf:NoSuchModelClass", "transformers has no model class"),
    ("hf:BertConfig", "transformers has no model class"),
    ("hf:", "names nothing"),
    ("hf:nowhere/config.json", "no such file or folder"),
])
def test_bad_names_are_one_line(text, words):
    with pytest.raises(ModelSpecError, match=words) as e:
        parse_spec(text)
    assert "\n" not in str(e.value)


def test_input_of_images_and_audio():
    vit = parse_spec("hf:ViTForImageClassification",
                     {"image_size": 32, "patch_size": 8, "num_channels": 1, "hidden_size": 32,
                      "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64})
    assert (vit.rank, vit.input_dtype, vit.default_input, vit.input_channels) == (
        4, None, (1, 1, 32, 32), 1)
    with pytest.raises(ModelSpecError, match="num_channels=1"):
        check_input(vit, (1, 3, 32, 32))
    audio = parse_spec("hf:Wav2Vec2ForSequenceClassification")
    assert (audio.rank, audio.input_dtype, audio.default_input) == (2, None, (1, 16000))
    with pytest.raises(ModelSpecError, match="N,L token ids"):
        check_input(parse_spec("hf:BertModel", TINY), (1, 3, 16))


def test_a_config_file_and_its_folder(tmp_path):
    path = _config_file(tmp_path / "bert", hidden_act="relu")
    for text in (str(path), str(path.parent)):
        spec = parse_spec(f"hf:{text}", {"num_hidden_layers": 1})
        model = _on_meta(spec)
        assert type(model) is transformers.BertForSequenceClassification
        assert (model.config.hidden_act, model.config.hidden_size,
                model.config.num_hidden_layers) == ("relu", 64, 1)
        assert spec.input_high == 100


def test_a_relative_path_that_exists_is_a_path(tmp_path, monkeypatch):
    _config_file(tmp_path / "org" / "name")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    assert type(_on_meta(parse_spec("hf:org/name"))) is transformers.BertForSequenceClassification


@pytest.mark.parametrize("architectures, words", [
    (None, "names no architectures; give the model class as hf:ARCH"),
    (["MyRemoteModel"], "which transformers does not define (remote code is not run)"),
])
def test_a_config_without_a_transformers_class(tmp_path, architectures, words):
    path = _config_file(tmp_path, architectures=architectures)
    with pytest.raises(ModelSpecError, match=re.escape(words)) as e:
        parse_spec(f"hf:{path}")
    assert "\n" not in str(e.value)
    # the class named apart, the config's fields as model_args: that works
    fields = {k: v for k, v in json.loads(path.read_text()).items()
              if k not in ("model_type", "architectures")}
    assert _on_meta(parse_spec("hf:BertModel", fields)).config.hidden_size == 64


def test_not_cached_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = run_cli(["profile", "hf:someorg/somemodel"], capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "not in the local Hugging Face cache" in err and "hf:path/to/config.json" in err


def _fake_cache(root, repo_id):
    """The layout huggingface_hub leaves: refs/main → a commit, its snapshot's config."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    _config_file(repo / "snapshots" / commit)


@pytest.mark.parametrize("variable, under", [("HF_HUB_CACHE", ""), ("HF_HOME", "hub")])
def test_a_cached_model(tmp_path, monkeypatch, variable, under):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv(variable, str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _fake_cache(tmp_path / under if under else tmp_path, "someorg/tiny-bert")
    spec = parse_spec("hf:someorg/tiny-bert", {"num_labels": 5})
    model = _on_meta(spec)
    assert type(model) is transformers.BertForSequenceClassification
    assert (model.config.hidden_size, model.classifier.out_features) == (64, 5)


def test_profile_equals_the_module_built_directly(capsys):
    from complexity import profile

    direct = transformers.BertForSequenceClassification(transformers.BertConfig(**TINY))
    via_spec = profile("hf:BertForSequenceClassification", (2, 16), model_args=TINY)
    assert via_spec.params == sum(p.numel() for p in direct.parameters())
    from complexity.counting.profile import profile as profile_module

    built = profile_module(direct, (2, 16), input_dtype=torch.long)
    assert (built["params"], built["macs"], built["outputs"]) == (
        via_spec.params, via_spec.macs, via_spec.outputs)
    code, out, err = run_cli(["profile", "hf:BertForSequenceClassification", "--model-args",
                              json.dumps(TINY), "--input", "2,16", "--format", "json"], capsys)
    assert code == 0, err
    cli = json.loads(out)
    assert (cli["params"], cli["macs"], cli["input"]) == (via_spec.params, via_spec.macs, [2, 16])
    # the same counts on real tensors (cpu: zero token ids)
    on_cpu = profile("hf:BertForSequenceClassification", (2, 16), device="cpu",
                     model_args=TINY)
    assert on_cpu.totals() == via_spec.totals()


def test_step_cost_feeds_token_ids():
    from complexity import step_cost

    cost = step_cost("hf:BertForSequenceClassification", (2, 8), measure=None,
                     model_args={**TINY, "num_hidden_layers": 1, "hidden_size": 32})
    assert cost.predicted["forward_flops"] > 0 and cost.input == [2, 8]


def test_the_help_names_the_forms(capsys):
    code, out, _ = run_cli(["profile", "--help"], capsys)
    assert code == 0
    for form in ("hf:ARCH", "hf:PATH", "hf:ORG/NAME"):
        assert form in out


def test_derive_in_config_fields_and_token_length():
    """A config field is a constructor argument for derive (NAME=field), with the
    letters of the input: the token length L."""
    from complexity import derive

    d = derive("hf:BertModel", "D=intermediate_size", "1,L",
               model_args={**TINY, "num_hidden_layers": 1, "hidden_size": 16,
                           "max_position_embeddings": 512})
    assert d.symbols == {"D": "intermediate_size", "L": "input[1]"}
    # two linear layers 16→D→16 and their biases; the rest does not depend on D
    assert str(d.formulas["params"]).startswith("33*D + "), d.formulas
