"""``fit --gpus``, ``--parallel``, ``--shard`` and the API's ``fit(gpus=...)``: the
answers are the per-rank prediction's (checked against real gloo runs in
``tests/test_parallel_gloo.py``), their proofs hold, and bad input is one line,
exit 2, before any tracing."""
import json

import pytest

from cli_helpers import run_cli
from complexity.cost.parallel.prediction import Layout, predict_ranks

FIT = ["fit", "stack", "--size", "8", "--device", "cpu", "--mode", "full"]


def _json(capsys, *extra):
    code, out, err = run_cli([*FIT, "--format", "json", *extra], capsys)
    assert code == 0, err
    return json.loads(out)


def test_per_rank_answer_is_the_prediction_and_its_proofs_hold(capsys):
    from complexity.zoo import build_model

    (row,) = _json(capsys, "--budget", "1MiB", "--batch", "4", "--gpus", "2", "--shard", "0")
    net, channels = build_model("stack")
    rank0 = predict_ranks(net, (4, channels, 8, 8), Layout(2, "fsdp", "0"))[0]
    assert row["rank0"]["peak_bytes"] == rank0["peak_bytes"]
    assert row["units"] == ["0"] and row["gpus"] == 2
    b = row["max_batch_per_rank"]
    proof = {int(k): v for k, v in row["max_batch_proof"].items()}
    assert proof[b] <= row["budget_bytes"] < proof[b + 1]


def test_gpus_auto_is_proved_at_n_and_n_minus_one(capsys):
    code, out, err = run_cli(["fit", "stack", "--size", "2", "--device", "cpu", "--mode",
                              "full", "--format", "json", "--budget", "100KB", "--batch", "1",
                              "--gpus", "auto", "--shard", "*"], capsys)
    assert code == 0, err
    (row,) = json.loads(out)
    n = row["gpus_needed"]
    proof = {int(k): v for k, v in row["gpus_proof"].items()}
    assert n > 1 and proof[n] <= row["budget_bytes"] < proof[n - 1]
    assert row["gpus"] == n and row["fits"]


def test_ddp_never_fits_by_adding_gpus(capsys):
    (row,) = _json(capsys, "--budget", "1KiB", "--batch", "1", "--gpus", "auto",
                   "--parallel", "ddp")
    assert row["gpus_needed"] is None and not row["fits"]


def test_table_says_what_is_sharded_and_gathered(capsys):
    code, out, _ = run_cli([*FIT, "--budget", "1MiB", "--batch", "2", "--gpus", "4",
                            "--shard", "0"], capsys)
    assert code == 0
    assert "gathered at once" in out and "FSDP units: 0, then the root." in out


def test_parallel_on_one_gpu_changes_nothing(capsys):
    plain = run_cli([*FIT, "--budget", "1MiB", "--batch", "2", "--format", "json"], capsys)
    code, out, err = run_cli([*FIT, "--budget", "1MiB", "--batch", "2", "--format", "json",
                              "--parallel", "fsdp"], capsys)
    assert code == 0 and out == plain[1]
    assert "changes nothing" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("extra,words", [
    (["--gpus", "0"], "--gpus"),
    (["--gpus", "two"], "--gpus"),
    (["--gpus", "2", "--shard", "block*"], "--shard"),
    (["--gpus", "2", "--parallel", "ddp", "--shard", "0"], "--shard"),
    (["--gpus", "2", "--batch", "0"], "--batch"),
    (["--gpus", "2", "--shard", "0", "--checkpoint", "0"], "checkpoint"),
    (["--gpus", "2", "--reserve", "1GiB"], "--reserve"),
    (["--gpus", "2", "--parallel", "ddp", "--mixed-precision", "param=bf16"], "--parallel ddp"),
    (["--gpus", "1", "--mixed-precision", "param=bf16"], "--gpus N"),
    (["--mixed-precision", "param=bf16"], "--gpus N"),
    (["--gpus", "2", "--mixed-precision", "param=int8"], "'int8' is no floating dtype"),
    (["--gpus", "2", "--mixed-precision", "param"], "--mixed-precision"),
    (["--gpus", "2", "--mixed-precision", "cast-inputs=no"], "names no dtype"),
    (["--gpus", "2", "--parallel", "ddp", "--offload"], "--offload"),
    (["--gpus", "1", "--offload"], "--offload"),
])
def test_bad_input_is_one_line(capsys, extra, words):
    code, out, err = run_cli([*FIT, "--budget", "1MiB", *extra], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and words in err, err


def test_api_fit_with_gpus():
    import complexity

    (row,) = complexity.fit("stack", 2**20, batch=2, size=8, device="cpu", modes=["full"],
                            gpus=2, shard="0")
    assert row["gpus"] == 2 and row["parallel"] == "fsdp" and not row["estimate"]
    with pytest.raises(ValueError, match="gpus=0"):
        complexity.fit("stack", 2**20, batch=2, size=8, device="cpu", gpus=0)


def test_finetune_gpus_predicted_equals_the_fake_group(capsys):
    """``finetune --gpus``: rank 0 predicted and measured on a fake process group,
    every trainable set — the frozen parameters are gathered, not reduced."""
    code, out, err = run_cli(["finetune", "--model", "stack", "--layers", "2", "--size", "8",
                              "--batch", "2", "--gpus", "4", "--shard", "*", "--mode",
                              "full,last", "--format", "json"], capsys)
    assert code == 0, err
    rows = json.loads(out)
    assert [r["mode"] for r in rows] == ["full", "last"]
    for r in rows:
        assert r["measured_how"] == "fake process group"
        assert r["predicted"] == r["measured"]
    assert rows[1]["predicted"]["grad_bytes"] < rows[0]["predicted"]["grad_bytes"]


def test_policies_in_json_and_table(capsys):
    """``--mixed-precision`` and ``--offload``: the row says them; offloaded, the
    host's bytes are the shards, gradients and state, and every figure the
    prediction's (an estimate: ≈ in the table)."""
    from complexity.cost.parallel.policy import parse_precision
    from complexity.zoo import build_model

    args = ["--budget", "1MiB", "--batch", "2", "--gpus", "2", "--shard", "0",
            "--mixed-precision", "param=bfloat16", "--offload"]
    (row,) = _json(capsys, *args)
    assert row["mixed_precision"] == "param=bfloat16" and row["offload"] and row["estimate"]
    net, channels = build_model("stack")
    layout = Layout(2, "fsdp", "0", mixed=parse_precision("param=bfloat16"), offload=True)
    rank0 = predict_ranks(net, (2, channels, 8, 8), layout)[0]
    k = row["rank0"]
    assert k["peak_bytes"] == rank0["peak_bytes"] and k["host_bytes"] == rank0["host_bytes"]
    assert k["host_bytes"] == k["param_bytes"] + k["grad_bytes"] + k["optimizer_bytes"]
    code, out, _ = run_cli([*FIT, *args], capsys)
    assert code == 0 and "host peak/rank" in out and "≈" in out
    assert "mixed precision param=bfloat16" in out


def test_finetune_gpus_auto_is_fits(capsys):
    code, out, err = run_cli(["finetune", "--model", "stack", "--gpus", "auto"], capsys)
    assert code == 2 and out == "" and "fit's" in err and len(err.strip().splitlines()) == 1
