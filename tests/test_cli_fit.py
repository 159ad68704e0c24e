"""``python -m complexity fit``: bad input (exit 2, one line, no traceback, before
any tracing), and its answers against independent routes — concrete predictions
at the max batch and one more, the module's own sizes, the allocator model."""
from __future__ import annotations

import json

import pytest

from cli_helpers import run_cli
from complexity.cost.predict.prediction import predict
from complexity.cost.step.trainable import set_trainable
from complexity.zoo import build_model

BAD = [
    (["stack", "--budget", "lots"], "not a size"),
    (["stack", "--budget", "-1"], "not a size"),
    (["stack", "--budget", "0"], "out of range"),
    (["stack", "--budget", "3 parsecs"], "not a size"),
    (["stack", "--budget", "1KiB", "--device", "cpu"], "smaller than the weights alone"),
    (["stack", "--budget", "100MiB"], "plus the 512 MiB reserve"),
    (["resnet18", "--budget", "10MiB", "--device", "cpu"], "weights alone (0.04"),
    (["nosuchmodel", "--budget", "24GiB"], "is not cnn, unet"),
    (["stack", "--budget", "1GiB", "--trainable", "nothing.*"], "matches no parameter"),
    (["unet", "--budget", "1GiB", "--size", "30"], "cannot take a 30x30 input"),
    (["stack", "--budget", "1GiB", "--mode", "middle"], "not a mode"),
    (["stack", "--budget", "1GiB", "--batch", "0"], "need an integer >= 1"),
    (["stack", "--budget", "1GiB", "--device", "cpu", "--reserve", "1GiB"], "cuda only"),
    (["stack"], "--budget"),
    (["stack", "--budget", "1GiB", "--device", "cpu", "--autocast", "float16"],
     "--autocast float16 runs on CUDA"),
    (["stack", "--budget", "1GiB", "--lora", "r=2,targets=nothing*"],
     "matches no Linear or Conv2d module"),
    (["stack", "--budget", "1GiB", "--foreach", "--fused"], "not allowed with argument"),
    (["stack", "--budget", "1GiB", "--size", "big"], "(write auto, H or HxW"),
]


@pytest.mark.parametrize("argv,words", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_before_any_trace(argv, words, capsys, monkeypatch):
    import complexity.cost.fit.proofs as sf

    if "--lora" in argv:  # without peft, its absence is the error
        pytest.importorskip("peft")

    calls = []  # fit catches Exception around will_it_fit: a raise alone would be swallowed

    def no_work(*a, **k):  # a size the model cannot take is found by the trace itself
        if "--size" in argv:
            return real(*a, **k)
        calls.append((a, k))
        raise AssertionError("traced before the input was checked")

    real = sf.will_it_fit
    monkeypatch.setattr(sf, "will_it_fit", no_work)
    code, out, err = run_cli(["fit", *argv], capsys)
    assert calls == [], "traced before the input was checked"
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert words in err


def test_the_weights_named_are_the_modules(capsys):
    net, _ = build_model("resnet18")
    weights = sum(t.numel() * t.element_size() for t in (*net.parameters(), *net.buffers()))
    code, _, err = run_cli(["fit", "resnet18", "--budget", "1MiB", "--device", "cpu"], capsys)
    assert code == 2 and f"({weights / 2**30:.4f} GiB = " in err


def test_json_max_batch_is_proved_and_the_parts_add_up(capsys):
    budget = 20 * 2**20
    code, out, err = run_cli(["fit", "stack", "--budget", str(budget), "--device", "cpu",
                              "--size", "32", "--batch", "8", "--mode", "full,last",
                              "--trainable", "0.*", "--format", "json"], capsys)
    assert code == 0, err
    results = json.loads(out)
    assert [r["mode"] for r in results] == ["full", "last", "0.*"]
    net, c = build_model("stack")
    weights = sum(t.numel() * t.element_size() for t in (*net.parameters(), *net.buffers()))
    for r in results:
        set_trainable(net, r["mode"])
        peak = lambda b: predict(net, (b, c, 32, 32))["peak_bytes"]  # noqa: E731
        assert r["peak_bytes"] == peak(8) and r["fits"] == (peak(8) <= budget)
        b = r["max_batch"]
        assert peak(b) <= budget < peak(b + 1)
        assert sum(r["parts"].values()) == r["peak_bytes"]
        assert r["parts"]["weights"] == weights
        assert r["budget_bytes"] == budget and r["size"] == [32, 32] and r["cuda"] is None


def test_cuda_verdict_adds_the_reserve_to_the_allocator_model(capsys):
    from complexity.cost.fit.allocator import cuda_step
    from complexity.cost.predict.prediction import step_log

    code, out, _ = run_cli(["fit", "stack", "--budget", "600MiB", "--reserve", "512MiB",
                            "--size", "32", "--mode", "last", "--format", "json"], capsys)
    assert code == 0
    (r,) = json.loads(out)
    net, c = build_model("stack")
    set_trainable(net, "last")
    room = 88 * 2**20  # 600 MiB - 512 MiB

    def reserved(b):  # the allocator model on a fresh trace at b
        log = step_log(net, (b, c, 32, 32), "cuda")
        return cuda_step(log.resident_blocks, log.events, log.trainable_sizes)["reserved"]

    assert r["cuda"]["reserve_for_context"] == 512 * 2**20
    assert r["cuda"]["reserved"] == reserved(32)
    assert r["cuda"]["allocated"] <= r["cuda"]["reserved"]
    assert r["fits"] == (reserved(32) <= room)
    b = r["max_batch"]
    assert reserved(b) <= room < reserved(b + 1)


@pytest.mark.parametrize("fmt", ["table", "markdown", "latex", "csv"])
def test_every_format_renders(fmt, capsys):
    code, out, _ = run_cli(["fit", "stack", "--budget", "1GiB", "--size", "16",
                            "--mode", "full", "--format", fmt], capsys)
    assert code == 0 and "stack" in out and "full" in out


def test_csv_holds_the_json_integers_and_the_markdown_is_pinned(capsys, golden):
    import csv
    import io

    argv = ["fit", "stack", "--budget", "600MiB", "--size", "32", "--batch", "4",
            "--mode", "full,last"]
    texts = {}
    for fmt in ("json", "csv", "markdown"):
        code, texts[fmt], _ = run_cli([*argv, "--format", fmt], capsys)
        assert code == 0
    data = json.loads(texts["json"])
    rows = list(csv.DictReader(io.StringIO(texts["csv"])))
    assert [d["mode"] for d in data] == ["full", "last"]  # one per --mode
    assert len(rows) == len(data) == 2
    for d, row in zip(data, rows):
        assert row["mode"] == d["mode"]
        assert int(row["peak"]) == d["peak_bytes"] and int(row["max batch"]) == d["max_batch"]
        assert int(row["reserved"]) == d["cuda"]["reserved"]
        assert [int(row[p]) for p in d["parts"]] == list(d["parts"].values())
    golden("fit_stack_markdown", texts["markdown"])


@pytest.mark.parametrize("step", [["--optimizer", "sgd-momentum", "--zero-grad"],
                                  ["--optimizer", "adamw", "--foreach", "--grad-accum", "2"],
                                  ["--dtype", "bfloat16"]], ids=" ".join)
def test_step_options_reach_the_verdict_and_a_real_step_agrees(step, capsys):
    """The peak fit reports at the given batch is the peak a real CPU step with the
    same options measures; the max batch is proved with the same options."""
    from complexity.cost.measure.cpu_step import measure
    from complexity.cost.step.optimizers import Optimizer
    from complexity.cost.step.options import StepOptions

    budget = 8 * 2**20
    code, out, err = run_cli(["fit", "stack", "--budget", str(budget), "--device", "cpu",
                              "--size", "16", "--batch", "4", "--mode", "full",
                              "--format", "json", *step], capsys)
    assert code == 0, err
    (r,) = json.loads(out)
    options = StepOptions(
        optimizer=Optimizer("sgd-momentum" if "sgd-momentum" in step else
                            "adamw" if "adamw" in step else "adam", foreach="--foreach" in step),
        dtype="bfloat16" if "bfloat16" in step else "float32",
        set_to_none="--zero-grad" not in step, grad_accum=2 if "--grad-accum" in step else 1)
    net, c = build_model("stack")
    set_trainable(net, "full")
    assert r["peak_bytes"] == measure(net, (4, c, 16, 16), how="real", options=options)["peak_bytes"]
    b = r["max_batch"]
    peak = lambda n: predict(net, (n, c, 16, 16), options=options)["peak_bytes"]  # noqa: E731
    assert peak(b) <= budget < peak(b + 1)


def test_size_auto_table_has_the_max_size_column(capsys):
    code, out, err = run_cli(["fit", "stack", "--budget", "8MiB", "--device", "cpu",
                              "--batch", "2", "--size", "auto", "--mode", "last"], capsys)
    assert code == 0, err
    header, _, row = out.splitlines()[:3]
    assert "max size" in header and "max size: the largest square input" in out
    cells = row.split()
    s = int(cells[3].split("×")[0])  # the size column: the max size
    assert cells[3] == f"{s}×{s}" and f"{s}×{s}" in cells[7:]
    net, c = build_model("stack")
    set_trainable(net, "last")
    assert predict(net, (2, c, s, s))["peak_bytes"] <= 8 * 2**20
