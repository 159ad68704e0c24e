"""``--input`` on ``finetune`` and ``fit``: an input shape of any rank — token ids
(the model says so: a Hugging Face ``main_input_name`` of ``input_ids`` or a first
layer that is an ``nn.Embedding``), audio samples, video clips, images — with
``--size``/``--batch`` the image shorthand. Models come from a file spec written
to the test's folder."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from cli_helpers import run_cli
from complexity.cost.step.batch import first_leaf, input_kind, token_vocabulary

NETS = '''import torch
from torch import nn


def bert():
    """A tiny BERT classifier, from its config (as tests/test_cost_text_models.py)."""
    from transformers import BertConfig, BertForSequenceClassification

    return BertForSequenceClassification(BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=3))


class Audio(nn.Module):
    """Raw samples (B, T) → a Conv1d over (B, 1, T)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 9, stride=4)
        self.head = nn.Linear(4, 5)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x.unsqueeze(1))).mean(-1))


def video():
    return nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1),
                         nn.Flatten(), nn.Linear(4, 2))
'''

EXACT = ("param_bytes", "grad_bytes", "optimizer_bytes", "saved_activation_bytes",
         "peak_bytes", "forward_flops", "backward_flops")


@pytest.fixture
def nets(tmp_path, monkeypatch):
    (tmp_path / "nets.py").write_text(NETS)
    monkeypatch.chdir(tmp_path)
    return "nets.py"


def _json(argv, capsys):
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    return json.loads(out)


# ------------------------------------------------------------ the detection alone
def test_token_detection():
    emb = nn.Sequential(nn.Embedding(30, 4), nn.Flatten(), nn.Linear(4 * 6, 2))
    assert isinstance(first_leaf(emb, (2, 6)), nn.Embedding)
    assert token_vocabulary(emb, (2, 6)) == 30
    assert input_kind(emb, (2, 6)) == {"input_dtype": torch.long, "input_high": 30}
    # float inputs: a conv first, a model that calls no module, a failing forward
    assert token_vocabulary(nn.Conv2d(3, 4, 3), (1, 3, 8, 8)) is None
    assert token_vocabulary(nn.Sequential(), (2, 6)) is None
    assert token_vocabulary(nn.Linear(5, 2), (2, 3, 4)) is None
    # a Hugging Face-like model: main_input_name decides, no forward needed
    hf = nn.Linear(4, 2)
    hf.main_input_name = "pixel_values"
    assert token_vocabulary(nn.Sequential(nn.Embedding(9, 2)), (1, 3)) == 9
    assert token_vocabulary(hf, (1, 4)) is None
    hf.main_input_name = "input_ids"
    hf.config = type("Config", (), {"vocab_size": 77})()
    assert token_vocabulary(hf, (1, 4)) == 77
    # the model is left as found: no hook stays behind
    assert not any(m._forward_pre_hooks for m in emb.modules())


# ------------------------------------------------------------ finetune
def test_finetune_bert_tokens_exact(nets, capsys):
    pytest.importorskip("transformers")
    rows = _json(["finetune", "--model", f"{nets}:bert", "--input", "2,16", "--measure", "real",
                  "--format", "json"], capsys)
    assert [r["mode"] for r in rows] == ["full", "last"]
    for r in rows:
        assert r["input"] == [2, 16] and r["size"] == [16] and r["batch"] == 2
        assert r["measured_how"] == "real"
        assert {q: r["predicted"][q] for q in EXACT} == {q: r["measured"][q] for q in EXACT}
        # BERT's own loss (labels=): named in the row and in the step
        assert r["loss"] == "the model's own (labels=)"
        assert r["step"] == "adam, float32, loss: the model's own (labels=)"


def test_finetune_audio_and_table(nets, capsys):
    rows = _json(["finetune", "--model", f"{nets}:Audio", "--input", "2,800", "--measure",
                  "real", "--format", "json"], capsys)
    for r in rows:
        assert r["input"] == [2, 800] and r["size"] == [800]
        assert r["predicted"] == r["measured"]
    code, out, err = run_cli(["finetune", "--model", f"{nets}:Audio", "--input", "2,800",
                              "--no-measure"], capsys)
    assert code == 0, err
    assert "2×800" in out


def test_finetune_video(nets, capsys):
    rows = _json(["finetune", "--model", f"{nets}:video", "--input", "1,3,4,16,16",
                  "--measure", "fake", "--format", "json", "--mode", "full"], capsys)
    (r,) = rows
    assert r["input"] == [1, 3, 4, 16, 16] and r["size"] == [4, 16, 16]
    assert r["predicted"] == r["measured"]


def test_finetune_image_input_is_the_size_shorthand(capsys):
    """``--input 2,16,8,8`` on stack (width 16) is ``--size 8 --batch 2``: same rows."""
    common = ["finetune", "--model", "stack", "--layers", "1", "--no-measure"]
    by_input = _json(common + ["--input", "2,16,8,8", "--format", "json"], capsys)
    by_size = _json(common + ["--size", "8", "--batch", "2", "--format", "json"], capsys)
    assert by_input == by_size and by_input[0]["input"] == [2, 16, 8, 8]
    tables = [run_cli(common + flags, capsys)[1] for flags in (["--input", "2,16,8,8"],
                                                                ["--size", "8", "--batch", "2"])]
    assert tables[0] == tables[1]


# ------------------------------------------------------------ fit
@pytest.mark.parametrize("mode", ["full", "last"])
def test_fit_bert_max_batch_proved(nets, capsys, mode):
    """In ``last`` mode BERT's step at B = 1 is off the line the larger batches are
    on (the formula in B starts at B = 2 then: 'no verified formula' before)."""
    pytest.importorskip("transformers")
    from complexity.cost.predict.prediction import predict
    from complexity.cost.step.trainable import set_trainable
    from complexity.zoo import parse_spec

    budget = 2 * 2**20
    (r,) = _json(["fit", f"{nets}:bert", "--budget", str(budget), "--input", "2,16",
                  "--device", "cpu", "--mode", mode, "--format", "json"], capsys)
    assert r["input"] == [2, 16] and r["batch"] == 2 and r["size"] == [16]
    assert r["loss"] == "the model's own (labels=)" and r["step"].endswith("loss: " + r["loss"])
    best = r["max_batch"]
    assert best and best > 2
    with torch.device("meta"):
        model = parse_spec(f"{nets}:bert").build()
    set_trainable(model, mode)
    tokens = dict(input_dtype=torch.long, input_high=100)
    assert predict(model, (best, 16), **tokens)["peak_bytes"] <= budget
    assert predict(model, (best + 1, 16), **tokens)["peak_bytes"] > budget
    assert predict(model, (2, 16), **tokens)["peak_bytes"] == r["peak_bytes"]


def test_fit_audio(nets, capsys):
    rows = _json(["fit", f"{nets}:Audio", "--budget", "1MiB", "--input", "2,800",
                  "--device", "cpu", "--format", "json"], capsys)
    assert [(r["input"], r["fits"]) for r in rows] == [([2, 800], True)] * 2
    assert all(r["max_batch"] > 2 for r in rows)


# ------------------------------------------------------------ bad input
BAD = [
    (["finetune", "--input", "2,0,8,8"], "--input '2,0,8,8' has a size < 1"),
    (["finetune", "--input", "2,x"], "is not a comma-separated list of integers"),
    (["finetune", "--input", "2,16,8,8", "--size", "8"], "drop --size"),
    (["finetune", "--input", "2,16,8,8", "--batch", "2"], "drop --batch"),
    (["finetune", "--model", "resnet18", "--input", "2,3,32"], "--input 2,3,32 has rank 3"),
    (["finetune", "--model", "{nets}:Audio", "--input", "2,3,800"], "cannot take a 2×3×800"),
    (["fit", "stack", "--budget", "1GiB", "--input", "2,-1"], "has a size < 1"),
    (["fit", "stack", "--budget", "1GiB", "--input", "2,16,8,8", "--size", "auto"],
     "--size auto finds the largest square image size; with --input"),
    (["fit", "stack", "--budget", "1GiB", "--input", "2,16,8,8", "--batch", "4"],
     "drop --batch"),
    (["fit", "{nets}:video", "--budget", "1GiB", "--input", "1,3,8,8", "--device", "cpu"],
     "cannot take a 1x3x8x8 input"),
]


@pytest.mark.parametrize("argv,words", BAD, ids=[f"{a[0]}-{i}" for i, (a, _) in enumerate(BAD)])
def test_bad_input_one_line(nets, capsys, argv, words):
    code, out, err = run_cli([a.format(nets=nets) for a in argv], capsys)
    assert code == 2, (code, out, err)
    assert out == "" and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert words in err, err


def test_api_fit_and_step_cost_take_any_rank(nets):
    import complexity

    (r,) = complexity.fit(f"{nets}:Audio", 2**20, input_shape=(2, 800), device="cpu",
                          modes=["full"])
    assert r.input == [2, 800] and r.fits
    with pytest.raises(ValueError, match="drop batch"):
        complexity.fit("stack", 2**20, input_shape=(2, 16, 8, 8), batch=4, device="cpu")
    emb = nn.Sequential(nn.Embedding(40, 4), nn.Flatten(), nn.Linear(4 * 5, 3))
    c = complexity.step_cost(emb, (2, 5), measure="real")
    assert c.measured == c.predicted
