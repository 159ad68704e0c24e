"""Goldens of the training-step commands with their options, pinned before
``complexity/cost`` was laid out in folders (so the move is proved to change no
byte of what ``finetune``, ``fit``, ``profile``, ``derive`` and ``report`` print).

The numbers are checked elsewhere against real steps (tests/test_cost_*.py,
tests/test_cli_fit.py); these files pin the rendering of every option."""
import pytest

from cli_helpers import run_cli

CASES = [
    ("finetune_stack_measured_json",
     ["finetune", "--model", "stack", "--layers", "2", "--size", "16", "--batch", "2",
      "--mode", "full,last", "--format", "json"]),
    ("finetune_stack_options_markdown",
     ["finetune", "--model", "stack", "--layers", "2", "--size", "16", "--batch", "2",
      "--optimizer", "sgd-momentum", "--foreach", "--checkpoint", "0.0", "--zero-grad",
      "--grad-accum", "2", "--format", "markdown"]),
    ("finetune_stack_bf16_csv",
     ["finetune", "--model", "stack", "--layers", "1", "--size", "16", "--batch", "2",
      "--autocast", "bfloat16", "--optimizer", "adamw", "--format", "csv"]),
    ("finetune_cnn_grad_scaler_json",
     ["finetune", "--model", "cnn", "--size", "16", "--batch", "2", "--grad-scaler",
      "--measure", "real", "--format", "json"]),
    ("fit_stack_cuda_json",
     ["fit", "stack", "--budget", "600MiB", "--size", "32", "--batch", "4",
      "--mode", "full,last", "--optimizer", "adamw", "--format", "json"]),
    ("fit_stack_cpu_options_table",
     ["fit", "stack", "--budget", "8MiB", "--device", "cpu", "--size", "16", "--batch", "4",
      "--optimizer", "sgd-momentum", "--zero-grad", "--checkpoint", "0.0",
      "--trainable", "0.1.*"]),
    ("fit_cnn_size_auto_json",
     ["fit", "cnn", "--budget", "8MiB", "--device", "cpu", "--size", "auto", "--batch", "2",
      "--mode", "full,last", "--format", "json"]),
    ("fit_cnn_grad_scaler_latex",
     ["fit", "cnn", "--budget", "600MiB", "--size", "32", "--batch", "4", "--grad-scaler",
      "--format", "latex"]),
    ("profile_resnet18_json",
     ["profile", "torchvision:resnet18", "--input", "1,3,64,64", "--depth", "1",
      "--format", "json"]),
    ("derive_cnn_json", ["derive", "cnn", "--symbols", "NF,NC", "--format", "json"]),
    ("report_json_both", ["report", "--nf", "8", "--nc", "4", "--format", "json"]),
]


@pytest.mark.parametrize("name,argv", CASES, ids=[c[0] for c in CASES])
def test_step_command_rendering(capsys, golden, name, argv):
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    golden(name, out)
