"""The model specs every command takes (complexity.zoo): ``timm:NAME`` and
``path/to/file.py:Name``, checked against the model built directly (its
parameter count by ``named_parameters``, its output by a real forward), and the
finetune trainable summary checked against ``requires_grad`` read back."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from cli_helpers import run_cli
from complexity.zoo import ModelSpecError, build_model, is_file_spec, parse_spec

MODEL_FILE = '''from torch import nn


class Tiny(nn.Module):
    def __init__(self, width=4, classes=3):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, classes)

    def forward(self, x):
        return self.fc(self.pool(self.conv(x)).flatten(1))


def make(width=4):
    return Tiny(width, classes=5)


NOT_A_MODEL = 3
'''


def direct(width, classes):
    """The same network, written here: the oracle for the file spec."""
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(width, classes))


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "tiny_net.py"
    path.write_text(MODEL_FILE)
    return str(path)


def test_file_class_and_factory_build_the_model_in_the_file(model_file):
    net = parse_spec(f"{model_file}:Tiny", {"width": 6}).build()
    assert type(net).__name__ == "Tiny" and n_params(net) == n_params(direct(6, 3))
    made = parse_spec(f"{model_file}:make").build()
    assert n_params(made) == n_params(direct(4, 5))
    assert made(torch.randn(2, 3, 8, 8)).shape == (2, 5)
    # the same file loaded twice gives the same class (one module per file)
    assert type(parse_spec(f"{model_file}:Tiny").build()) is type(net)


@pytest.mark.parametrize("suffix,words", [
    (":Nope", "defines no 'Nope' (it defines: Tiny, make)"),
    (":NOT_A_MODEL", "is a int, not a class or function"),
])
def test_file_without_the_name(model_file, suffix, words):
    with pytest.raises(ModelSpecError, match=None) as e:
        parse_spec(model_file + suffix)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_file_that_is_missing_a_folder_or_not_python(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    for spec, words in [(f"{tmp_path}/missing.py:Net", "no such file"),
                        (f"{tmp_path}:Net", "is a folder"),
                        (f"{tmp_path}/notes.txt:Net", "is not a .py file")]:
        with pytest.raises(ModelSpecError) as e:
            parse_spec(spec)
        assert words in str(e.value), e.value


def test_file_that_fails_to_load(tmp_path):
    (tmp_path / "broken.py").write_text("def f(:\n")
    with pytest.raises(ModelSpecError) as e:
        parse_spec(f"{tmp_path}/broken.py:f")
    assert "cannot load" in str(e.value) and "SyntaxError" in str(e.value)


def test_module_specs_are_not_taken_for_files():
    assert not is_file_spec("models.stack:Stack")
    from models.stack import Stack

    net = parse_spec("models.stack:Stack", {"layers": 2, "width": 3}).build()
    direct = Stack(layers=2, width=3)
    assert type(net) is Stack
    assert [(n, p.shape) for n, p in net.named_parameters()] == \
        [(n, p.shape) for n, p in direct.named_parameters()]
    # by hand: 2 blocks of Conv 3x3 3->3 (81 + 3) and BatchNorm (3 + 3), head 1x1 3->2 (6 + 2)
    assert n_params(net) == n_params(direct) == 2 * (81 + 3 + 3 + 3) + 6 + 2 == 188


def test_timm_spec_matches_timm_directly():
    timm = pytest.importorskip("timm")
    net, channels = build_model("timm:resnet18", model_args={"num_classes": 7})
    direct_net = timm.create_model("resnet18", pretrained=False, num_classes=7)
    assert channels == 3 and n_params(net) == n_params(direct_net)
    assert next(net.parameters()).device.type == "meta"
    assert build_model("timm:resnet18", model_args={"in_chans": 1})[1] == 1
    with pytest.raises(ModelSpecError, match="timm has no model"):
        parse_spec("timm:no_such_net")
    with pytest.raises(ModelSpecError, match="cannot be downloaded"):
        parse_spec("timm:resnet18", {"pretrained": True})


def test_timm_missing_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "timm", None)  # import timm -> ImportError
    with pytest.raises(ModelSpecError) as e:
        parse_spec("timm:resnet18")
    assert "pip install timm" in str(e.value) and "[zoo]" in str(e.value)


def test_build_model_passes_model_args():
    from models.colourization import UNet

    net, c = build_model("unet", model_args={"num_filters": 4, "num_colours": 6})
    assert c == 1 and n_params(net) == n_params(UNet(3, 4, 6, 1))
    with pytest.raises(ModelSpecError, match="set by layers; drop it from model_args"):
        build_model("stack", model_args={"layers": 3})


def test_finetune_takes_file_specs_and_model_args(model_file, capsys):
    """finetune on a file model with --model-args: the parameter bytes it reports
    are 4 bytes per parameter of the same network built here."""
    code, out, err = run_cli(["finetune", "--model", f"{model_file}:Tiny", "--model-args",
                              '{"width": 6}', "--size", "8", "--batch", "2", "--mode", "full",
                              "--format", "json"], capsys)
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["predicted"]["param_bytes"] == 4 * n_params(direct(6, 3))
    assert row["measured"]["param_bytes"] == 4 * n_params(direct(6, 3))


def test_finetune_says_what_a_pattern_freezes(capsys):
    """resnet50 with --trainable 'layer4.*': the count and tensors printed are what
    requires_grad says after freezing by hand, and the frozen head fc is named."""
    import fnmatch

    import torchvision

    ref = torchvision.models.resnet50()
    chosen = [p for n, p in ref.named_parameters() if fnmatch.fnmatchcase(n, "layer4.*")]
    code, out, err = run_cli(["finetune", "--model", "resnet50", "--trainable", "layer4.*",
                              "--mode", "full", "--size", "32", "--batch", "2",
                              "--no-measure"], capsys)
    assert code == 0, err
    line = f"trainable layer4.*: {sum(p.numel() for p in chosen):,} parameters in " \
           f"{len(chosen)} tensors train; frozen: conv1, bn1, layer1–3, fc (the head)"
    assert line in out, out
