"""Every command's bad input, as a new user would type it: exit code 2, exactly one
line on stderr naming the problem (no traceback), nothing on stdout, nothing written
anywhere (outputs, the colour cache, temporary files), and no work begun — the
model builders, data loaders, training loops, sweeps and report steps are fakes
that record a call, so an error found after them fails the test.

Each case runs in-process (``run_cli``) with the working directory a fresh
temporary folder holding a few fixtures (a regular file, a checkpoint, a module
``mynet``), ``COMPLEXITY_CACHE`` and ``TMPDIR`` inside it; the whole folder (and
the repository's ``runs/``) is listed before and after.
"""
from __future__ import annotations

import os
import sys
import tempfile
import warnings

import pytest

from cli_helpers import run_cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = ("report", "profile", "derive", "finetune", "train", "sweep-batch", "invariance",
            "segment", "reproduce")

#: the work a command must not begin before its input is checked, by kind:
#: (module, attribute) pairs replaced by a fake that records the call
WORK = {
    "build": [("complexity.zoo", "ModelSpec.build"),
              ("models", "build"),
              ("models.colourization", "build"),
              ("complexity.experiments.colourization.train", "build"),
              ("models.segmentation", "deeplab")],
    "data": [("complexity.experiments.colourization.data", "load_images"),
             ("complexity.experiments.colourization.data", "prepare"),
             ("complexity.experiments.segmentation.data", "datasets"),
             ("complexity.reproduce.context", "Context.data")],
    "train": [("complexity.experiments.colourization.train", "train"),
              ("complexity.experiments.colourization.train", "train_or_resume"),
              ("complexity.experiments.colourization.batch_sweep", "train"),
              ("complexity.experiments.colourization.batch_sweep", "train_or_resume"),
              ("complexity.experiments.colourization.batch_sweep", "batch_sweep"),
              ("complexity.experiments.colourization.invariance", "run_study"),
              ("complexity.experiments.segmentation.train", "fit"),
              ("complexity.cost.finetune", "sweep"),
              ("complexity.counting.report", "build")],
}

PROC = "/proc/x"  # an existing folder nothing can be created in, even by root


def case(command, argv, words, allow=(), id=None):
    """One bad input: ``python -m complexity COMMAND ARGV`` must fail with ``words``
    in its one line; ``allow``: kinds of :data:`WORK` this input may need to be
    found (a model built on the meta device to see its parameters …)."""
    return pytest.param(command, argv, words, set(allow), id=f"{command}-{id}")


CASES = [
    # ------------------------------------------------------------- report
    case("report", ["--nf", "0"], "need an integer >= 1", id="nf-zero"),
    case("report", ["--kernel", "4"], "is even", id="even-kernel"),
    case("report", ["--size", "3"], "too small", id="size-too-small"),
    case("report", ["--size", "10x"], "not a size", id="size-unparsable"),
    case("report", ["--model", "unet", "--size", "30"], "divisible by 4", id="unet-size-30"),
    case("report", ["--convention", "foo"], "invalid choice", id="unknown-convention"),
    case("report", ["--format", "yaml"], "invalid choice", id="unknown-format"),
    case("report", ["--nf", "8", "--nf", "16"], "given twice", id="nf-given-twice"),
    # ------------------------------------------------------------- profile
    case("profile", ["nosuchmodel"], "is not cnn, unet", id="unknown-model"),
    case("profile", ["cnn", "--input", "1,1,32"], "rank 3", id="input-rank"),
    case("profile", ["cnn", "--input", "1,1,0,32"], "size < 1", id="input-size-zero"),
    case("profile", ["cnn", "--input", "1,3,32,32"], "3 channels", id="input-channels-vs-nic"),
    case("profile", ["resnet18", "--model-args", "{bad"], "not valid JSON", id="model-args-json"),
    case("profile", ["resnet18", "--nf", "8"], "cnn and unet only", id="nf-on-resnet18"),
    case("profile", ["cnn", "--nf", "8", "--model-args", '{"num_filters": 4}'], "give it once",
         id="nf-and-model-args"),
    case("profile", ["cnn", "--depth", "-1"], "not a depth", id="depth-negative"),
    case("profile", ["torchvision:fasterrcnn_resnet50_fpn"], "list of images",
         id="detection-model"),
    case("profile", ["cnn", "--device", "gpu"], "invalid choice", id="unknown-device"),
    # the channel mismatch shows in the forward only: building is part of finding it
    case("profile", ["mynet:MyNet", "--input", "1,5,32,32"],
         "expects 3 input channels, the input has 5", allow={"build"},
         id="channel-mismatch-on-meta"),
    case("profile", ["mynet:MyNet", "--input", "1,5,32,32", "--device", "cpu"],
         "expects 3 input channels, the input has 5", allow={"build"},
         id="channel-mismatch-on-cpu"),
    # ------------------------------------------------------------- derive
    case("derive", ["cnn"], "--symbols", id="symbols-missing"),
    case("derive", ["cnn", "--symbols", ""], "not usable as a symbol", id="symbols-empty"),
    case("derive", ["cnn", "--symbols", "class"], "Python keyword", id="keyword-symbol"),
    case("derive", ["cnn", "--symbols", "NF,NF"], "appears twice", id="symbol-twice"),
    case("derive", ["cnn", "--symbols", "X=1"], "not an argument name", id="symbol-bound-to-1"),
    case("derive", ["cnn", "--symbols", "NF", "--checks", "5"], "too few", id="checks-5"),
    case("derive", ["cnn", "--symbols", "NF", "--max-degree", "0"], ">= 1", id="max-degree-0"),
    case("derive", ["nosuchmodel", "--symbols", "H"], "is not cnn, unet", id="unknown-model"),
    case("derive", ["resnet18", "--symbols", "H", "--nc", "3"], "cnn and unet only",
         id="nc-on-resnet18"),
    case("derive", ["cnn", "--symbols", "depth"], "names no argument", allow={"build"},
         id="symbol-names-no-argument"),
    case("derive", ["cnn", "--symbols", "NF,F=num_filters"], "both bind", allow={"build"},
         id="two-symbols-one-argument"),
    # ------------------------------------------------------------- finetune
    case("finetune", ["--model", "resnet18", "--layers", "4"], "stack only",
         id="layers-without-stack"),
    case("finetune", ["--model", "resnet18", "--width", "64"], "stack only",
         id="width-without-stack"),
    case("finetune", ["--plot", PROC + ".png"], "--plot /proc/x.png: cannot create",
         id="plot-in-proc"),
    case("finetune", ["--plot", "x.xyz"], "--plot x.xyz: .xyz is not", id="plot-xyz"),
    case("finetune", ["--plot", "nodir/x.png"], "folder nodir does not exist",
         id="plot-missing-folder"),
    case("finetune", ["--plot", "."], "is a folder", id="plot-is-folder"),
    case("finetune", ["--width", "8,16"], "one value", id="width-two-values"),
    case("finetune", ["--layers", "2,2"], "2 appears twice", id="layers-repeated-value"),
    case("finetune", ["--mode", "foo"], "not a mode", id="unknown-mode"),
    case("finetune", ["--size", "32", "--sizes", "64"], "given twice", id="size-given-twice"),
    case("finetune", ["--trainable", "head.*", "--trainable", "head.*"], "appears twice",
         id="same-pattern-twice"),
    case("finetune", ["--model", "nosuchmodel"], "is not cnn, unet", id="unknown-model"),
    case("finetune", ["--trainable", "head.*,nomatch*"], "'nomatch*' matches no parameter",
         allow={"build"}, id="pattern-matches-nothing"),
    case("finetune", ["--model", "torchvision:fasterrcnn_resnet50_fpn"],
         "torchvision:fasterrcnn_resnet50_fpn is a detection model", id="detection-model"),
    # GPT-2's classifier finds each sequence's last token with .item(): no values on meta
    case("finetune", ["--model", "gpt2cls.py:make"],
         "model gpt2cls.py:make: its forward reads tensor values", allow={"build"},
         id="forward-reads-values"),
    case("finetune", ["--model", "mynet.py:NoParams"],
         "model mynet.py:NoParams: the model has no parameters", allow={"build"},
         id="nothing-trains"),
    case("finetune", ["--model", "resnet18", "--trainable", "layer9.*"],
         "model resnet18: --trainable 'layer9.*' matches no parameter", allow={"build"},
         id="pattern-matches-nothing-resnet18"),
    case("finetune", ["--model", "missing.py:Net"], "no such file missing.py",
         id="file-missing"),
    case("finetune", ["--model", "mynet.py:Nope"], "mynet.py defines no 'Nope'",
         id="file-without-the-class"),
    case("finetune", ["--model", "afile:Net"], "afile is not a .py file", id="file-not-python"),
    case("finetune", ["--model-args", "[1]"], "must be a JSON object", id="model-args-not-object"),
    case("finetune", ["--model", "stack", "--model-args", '{"layers": 3}'],
         "stack's layers is set by --layers", id="model-args-layers-of-stack"),
    # the training step's options (issue 11), checked before any step is traced
    case("finetune", ["--autocast", "float16", "--measure", "real"],
         "--autocast float16 cannot run for real on the CPU", id="fp16-autocast-real-cpu"),
    case("finetune", ["--autocast", "float16", "--checkpoint", "conv*"],
         "--autocast float16 with --checkpoint can be predicted only",
         id="fp16-autocast-checkpoint-measured"),
    case("finetune", ["--autocast", "bfloat16", "--dtype", "float16"],
         "does not combine with dtype float16", id="autocast-with-half-weights"),
    case("finetune", ["--foreach", "--fused"], "not allowed with argument --foreach",
         id="foreach-and-fused"),
    case("finetune", ["--optimizer", "lion"], "invalid choice: 'lion'", id="unknown-optimizer"),
    case("finetune", ["--grad-accum", "0"], "--grad-accum", id="grad-accum-0"),
    case("finetune", ["--lora", "r=8"], "needs targets=GLOB", id="lora-without-targets"),
    case("finetune", ["--lora", "r=0,targets=*"], "the rank must be an integer >= 1",
         id="lora-rank-0"),
    case("finetune", ["--model", "resnet18", "--lora", "r=4,targets=decoder.*"],
         "targets='decoder.*' matches no Linear or Conv2d module", allow={"build"},
         id="lora-target-matches-nothing"),
    case("finetune", ["--model", "resnet18", "--checkpoint", "decoder.*"],
         "--checkpoint 'decoder.*' matches no module", allow={"build"},
         id="checkpoint-glob-matches-nothing"),
    # ------------------------------------------------------------- train
    case("train", ["--out", PROC], "--out /proc/x: cannot create", id="out-in-proc"),
    case("train", ["--out", "afile"], "afile is a file", id="out-is-file"),
    case("train", ["--out", "a", "--out", "b"], "given twice", id="out-given-twice"),
    case("train", ["--nc", "1"], "at least 2 colour classes", id="nc-1"),
    case("train", ["--data", "nosuch"], "--data nosuch: no such file", id="data-missing"),
    case("train", ["--category", "3"], "CIFAR-10 data only", id="category-without-cifar"),
    case("train", ["--cache", PROC], "--cache /proc/x: cannot create", id="cache-in-proc"),
    case("train", ["--epochs", "0"], ">= 1", id="epochs-0"),
    case("train", ["--resume", "missing.pt"], "no such checkpoint", id="resume-missing"),
    case("train", ["--resume", "afile"], "not a PyTorch checkpoint", id="resume-not-torch"),
    case("train", ["--resume", "ck.pt"], "other settings", id="resume-other-settings"),
    case("train", ["--resume", "ck.pt", "--nf", "4", "--nc", "5", "--epochs", "3",
                   "--max-images", "100"], "--max-images 200 there, 100 here",
         id="resume-other-data"),
    # ------------------------------------------------------------- sweep-batch
    case("sweep-batch", ["--sizes", "5,5"], "5 appears twice", id="sizes-5-5"),
    case("sweep-batch", ["--sizes", "0,5"], ">= 1", id="size-0"),
    case("sweep-batch", ["--out", PROC], "--out /proc/x: cannot create", id="out-in-proc"),
    case("sweep-batch", ["--out", "afile"], "afile is a file", id="out-is-file"),
    case("sweep-batch", ["--nc", "1"], "at least 2 colour classes", id="nc-1"),
    case("sweep-batch", ["--batch-size", "4"], "--sizes gives the batch sizes",
         id="batch-size-given"),
    case("sweep-batch", ["--data", "nosuch"], "no such file", id="data-missing"),
    case("sweep-batch", ["--cache", "afile"], "afile is a file", id="cache-is-file"),
    # ------------------------------------------------------------- invariance
    case("invariance", ["--plot", PROC + ".png"], "--plot /proc/x.png: cannot create",
         id="plot-in-proc"),
    case("invariance", ["--plot", "x.xyz"], "--plot x.xyz: .xyz is not", id="plot-xyz"),
    case("invariance", ["--plot", "nodir/x.png"], "folder nodir does not exist",
         id="plot-missing-folder"),
    case("invariance", ["--plot", "."], "is a folder", id="plot-is-folder"),
    case("invariance", ["--checkpoint", "ck.pt", "--nc", "8"], "--nc does not apply",
         id="checkpoint-and-nc"),
    case("invariance", ["--checkpoint", "ck.pt", "--epochs", "7"], "--epochs does not apply",
         id="checkpoint-and-epochs"),
    case("invariance", ["--checkpoint", "missing.pt"], "no such checkpoint",
         id="checkpoint-missing"),
    case("invariance", ["--nc", "1"], "at least 2 colour classes", id="nc-1"),
    case("invariance", ["--data", "nosuch"], "no such file", id="data-missing"),
    # reading the checkpoint builds its (small) model: part of checking it
    case("invariance", ["--checkpoint", "ck.pt", "--model", "unet"], "holds a cnn",
         allow={"build"}, id="checkpoint-other-model"),
    case("invariance", ["--checkpoint", "ck.pt", "--max-images", "100"],
         "--max-images 200 there, 100 here", allow={"build"}, id="checkpoint-other-data"),
    # ------------------------------------------------------------- segment
    case("segment", ["--out", PROC], "--out /proc/x: cannot create", id="out-in-proc"),
    case("segment", ["--out", "afile"], "afile is a file", id="out-is-file"),
    case("segment", ["--bn-images", "-1"], ">= 0", id="bn-images-negative"),
    case("segment", ["--weights", "missing.pt"], "--weights missing.pt: no such file",
         id="weights-missing"),
    case("segment", ["--weights", "afile"], "not a PyTorch file", id="weights-not-torch"),
    case("segment", ["--data", "nosuch"], "--data nosuch: no such folder", id="data-missing"),
    case("segment", ["--data", "afile"], "not a folder", id="data-is-file"),
    case("segment", ["--max-images", "1"], "at least 2 training images", id="max-images-1"),
    case("segment", ["--batch-size", "1"], "too small", id="batch-size-1"),
    case("segment", ["--size", "8"], "too small", id="size-8"),
    case("segment", ["--arch", "foo"], "invalid choice", id="unknown-arch"),
    # the same spec form as the other commands, but only DeepLabV3 (its head swap)
    case("segment", ["--arch", "torchvision:fcn_resnet50"], "invalid choice: 'fcn_resnet50'",
         id="arch-not-deeplabv3"),
    # ------------------------------------------------------------- reproduce
    case("reproduce", ["--only", ""], "no step", id="only-empty"),
    case("reproduce", ["--only", "foo"], "unknown step(s) foo", id="only-unknown"),
    case("reproduce", ["--only", "counts,counts"], "appears twice", id="only-twice"),
    case("reproduce", ["--runs", PROC, "--reports", "r1"], "--runs /proc/x: cannot create",
         id="runs-in-proc"),
    case("reproduce", ["--reports", "afile"], "--reports afile: afile is a file",
         id="reports-is-file"),
    case("reproduce", ["--reports", PROC], "--reports /proc/x: cannot create",
         id="reports-in-proc"),
    case("reproduce", ["--runs", "afile"], "--runs afile: afile is a file", id="runs-is-file"),
    case("reproduce", ["--only", "counts", "--fresh"], "--fresh applies to the steps that train",
         id="fresh-without-training"),
    case("reproduce", ["--only", "counts", "--runs", "r2"], "--runs applies",
         id="runs-without-training"),
    case("reproduce", ["--threads", "0"], ">= 1", id="threads-0"),
]

MYNET = '''from torch import nn


class MyNet(nn.Module):
    """A user's model for RGB images."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        return self.bn(self.conv(x))


class NoParams(nn.Module):
    """A model with nothing to train."""

    def forward(self, x):
        return x.relu()
'''

GPT2CLS = '''import warnings


def make():
    """A tiny GPT-2 classifier (transformers), built from its config."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = GPT2Config(vocab_size=100, n_embd=16, n_layer=1, n_head=2, n_positions=64,
                            pad_token_id=0, bos_token_id=None, eos_token_id=None)
        return GPT2ForSequenceClassification(config)
'''


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    """A ``train`` checkpoint of a cnn (NF 4, NC 5, one epoch) on the offline data
    capped at 200 images per split, as bytes."""
    import torch
    from dataclasses import asdict

    from complexity.experiments import checkpoint
    from complexity.experiments.colourization.train import FORMAT, TrainConfig
    from models.colourization import build

    cfg = TrainConfig(model="cnn", epochs=1, nf=4, nc=5)
    model = build("cnn", cfg.kernel, cfg.nf, cfg.nc, 1)
    optimizer = torch.optim.Adam(model.parameters())
    path = str(tmp_path_factory.mktemp("ck") / "ck.pt")
    checkpoint.save({"format": FORMAT, "config": asdict(cfg),
                     "data": "(200, 1, 32, 32)/(200, 1, 32, 32)/" + ",".join(["0.5"] * 15),
                     "data_settings": {"data": None, "category": None, "max_images": 200,
                                       "nc": 5},
                     "model_state": model.state_dict(), "optimizer_state": optimizer.state_dict(),
                     "history": [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0,
                                  "val_acc": 0.5}],
                     "rng": torch.Generator().get_state(), "seconds": 1.0}, path)
    with open(path, "rb") as f:
        return f.read()


def tree(root: str) -> set:
    """Every file and folder under ``root``, relative to it."""
    found = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(folder, name), root))
    return found


@pytest.fixture
def sandbox(tmp_path, monkeypatch, checkpoint_bytes):
    """A fresh working directory with the fixtures; cache and temporary files inside."""
    (tmp_path / "afile").write_text("a regular file\n")
    (tmp_path / "ck.pt").write_bytes(checkpoint_bytes)
    (tmp_path / "mynet.py").write_text(MYNET)
    (tmp_path / "gpt2cls.py").write_text(GPT2CLS)
    (tmp_path / "tmp").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMPLEXITY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.delitem(sys.modules, "mynet", raising=False)
    yield tmp_path
    sys.modules.pop("mynet", None)


def forbid_work(monkeypatch, allow):
    """Replace the :data:`WORK` entry points not in ``allow`` by recording fakes; the
    list of calls is returned (a fake also raises, but a broad ``except`` could
    swallow that, so the list is what the test checks)."""
    import importlib

    calls = []
    # import every module first: one imported while another is patched would keep
    # the fake (``from ... import train``) after the test
    for targets in WORK.values():
        for module, _ in targets:
            importlib.import_module(module)
    for kind, targets in WORK.items():
        if kind in allow:
            continue
        for module, attribute in targets:
            owner = importlib.import_module(module)
            *path, name = attribute.split(".")
            for part in path:
                owner = getattr(owner, part)

            def fake(*args, _what=f"{module}.{attribute}", **kwargs):
                calls.append(_what)
                raise AssertionError(f"{_what} was called: work began before the bad input "
                                     "was found")
            monkeypatch.setattr(owner, name, fake)
    if "train" not in allow:  # the report steps of reproduce, as the command reads them
        from complexity.cli import reproduce

        def fake_step(step):
            def write(ctx):
                calls.append(f"reproduce step {step}")
                raise AssertionError(f"reproduce step {step} ran before the bad input was found")
            return write
        monkeypatch.setattr(reproduce, "REPORT_STEPS",
                            [(step, fake_step(step)) for step, _ in reproduce.REPORT_STEPS])
    return calls


@pytest.mark.parametrize("command, argv, words, allow", CASES)
def test_bad_input_is_one_line_exit_2_before_any_work(sandbox, monkeypatch, capsys, command,
                                                      argv, words, allow):
    if any(PROC in a for a in argv) and not os.path.isdir("/proc"):
        pytest.skip("needs /proc, a folder nothing can be created in")
    if "gpt2cls.py:make" in argv:
        pytest.importorskip("transformers")
    if "--lora" in argv and "matches no" in words:  # without peft, its absence is the error
        pytest.importorskip("peft")
    repo_runs = os.path.join(REPO, "runs")
    before, runs_before = tree(str(sandbox)), tree(repo_runs)
    calls = forbid_work(monkeypatch, allow)
    code, out, err = run_cli([command] + argv, capsys)
    assert calls == [], f"work began before the error: {calls}"
    assert code == 2, (code, out, err)
    assert out == "", out
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err
    assert err.startswith(f"python -m complexity {command}: error: "), err
    assert words in err, err
    assert ".tmp-" not in err and "complexity-probe" not in err, err  # the user's names only
    assert tree(str(sandbox)) == before, "files or folders were created"
    assert tree(repo_runs) == runs_before, "files or folders were created under runs/"


def test_every_command_has_at_least_six_cases():
    counts = {c: sum(p.values[0] == c for p in CASES) for c in COMMANDS}
    assert all(n >= 6 for n in counts.values()), counts


def test_trainable_patterns_compose(sandbox, capsys):
    """--trainable repeated or comma-separated: a parameter trains if any pattern
    matches it, so the union's count is the sum over disjoint patterns."""
    import json

    def trainable(*patterns):
        argv = ["finetune", "--layers", "2", "--no-measure", "--format", "json"]
        for p in patterns:
            argv += ["--trainable", p]
        code, out, err = run_cli(argv, capsys)
        assert code == 0, err
        (row,) = [r for r in json.loads(out) if r["mode"] not in ("full", "last")]
        return row["mode"], row["trainable_params"]

    one, two, both = trainable("0.*"), trainable("head.*"), trainable("0.*", "head.*")
    assert both == ("0.*,head.*", one[1] + two[1])
    assert trainable("0.*,head.*") == both


def test_inception_v3_builds_and_runs_without_a_warning(capsys):
    """torchvision's Inception warns (FutureWarning) about its initialisation when
    built; ``derive`` and ``profile`` must not pass that on to the user."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        code, out, err = run_cli(["profile", "torchvision:inception_v3", "--input",
                                  "1,3,299,299", "--depth", "0"], capsys)
    assert code == 0 and err == "", err
    assert not [w for w in seen if issubclass(w.category, FutureWarning)], \
        [str(w.message) for w in seen]


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc")
def test_a_failed_write_names_the_file_asked_for_not_the_temporary_one():
    """Files are written to a temporary name and renamed (complexity.atomic); when the
    write fails, the error names the path the caller gave."""
    from complexity.atomic import write_text
    from complexity.output.figures import pyplot, save

    with pytest.raises(OSError) as e:
        write_text("/proc/report.md", "text")
    assert e.value.filename == "/proc/report.md"
    fig, _ = pyplot().subplots()
    with pytest.raises(OSError) as e:
        save(fig, "/proc/figure.png")
    assert e.value.filename == "/proc/figure.png"
