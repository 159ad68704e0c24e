"""Four ranks: resnet18 at 64×64 and the tiny Llama, DDP and FSDP2, predicted
against a real step of four gloo processes, and the tiny Llama on two. About five
minutes on two CPU cores: runs with COMPLEXITY_SLOW_TESTS=1.

What each rank holds is exact. The peak: DDP's exact on every rank. FSDP's is
never above the tracker's: exact on the ranks where gloo has let go of the last
collective's buffers when the peak comes (resnet18 with resharding; without it,
30 KiB, 0.025%, under on every rank, not yet explained); on the others the
tracker sees one more unit-sized buffer still held by a finished collective
(which ranks varies from run to run), never more.
"""
import os

import pytest
import torch

from complexity.cost.parallel.prediction import Layout, predict_ranks
from text_models import TOKENS

SLOW = bool(os.environ.get("COMPLEXITY_SLOW_TESTS"))
pytestmark = pytest.mark.skipif(not SLOW, reason="slow: set COMPLEXITY_SLOW_TESTS=1")

CASES = [("resnet18", (2, 3, 64, 64), {}), ("llama", (2, 16), TOKENS)]


def _model(name):
    if name == "resnet18":
        from torchvision.models import resnet18

        return resnet18(num_classes=10)
    from test_parallel_gloo import tiny_llama

    return tiny_llama()


@pytest.mark.parametrize("name,shape,kw", CASES, ids=[c[0] for c in CASES])
def test_four_ranks(name, shape, kw):
    from complexity.cost.parallel.gloo_step import Job, measure_ranks

    torch.manual_seed(0)
    model = _model(name)
    layouts = ["ddp", "fsdp", "fsdp-no-reshard"]
    runs = measure_ranks([Job(model, shape, p, **kw) for p in layouts], 4)
    for parallel, real in zip(layouts, runs):
        predicted = predict_ranks(model, shape, Layout(4, parallel), **kw)
        gathered = max(predicted[0]["parts"].get("gathered (root + largest unit)", 0), 0)
        excesses = []
        for r, p in zip(real, predicted):
            for key in ("param_bytes", "grad_bytes", "optimizer_bytes", "bucket_bytes"):
                assert p[key] == r[key], (parallel, r["rank"], key)
            excesses.append(r["peak_bytes"] - p["peak_bytes"])
            assert 0 <= excesses[-1] <= gathered, (parallel, r["rank"], excesses[-1])
        if parallel == "ddp":
            assert excesses == [0] * 4
        else:  # the closest rank within 0.1% (resnet18 without resharding: 30 KiB)
            assert min(excesses) <= 0.001 * real[0]["peak_bytes"], (parallel, excesses)


def test_two_ranks_llama_is_exact():
    """The tiny Llama under FSDP and FSDP without resharding on two gloo ranks
    (each decoder layer a unit, then the root with the embeddings and the LM
    head): every figure, each rank, to the byte."""
    from complexity.cost.parallel.gloo_step import Job, measure_ranks

    torch.manual_seed(0)
    llama = _model("llama")
    layouts = ["fsdp", "fsdp-no-reshard"]
    runs = measure_ranks([Job(llama, (2, 16), p, **TOKENS) for p in layouts], 2)
    for parallel, real in zip(layouts, runs):
        for r, p in zip(real, predict_ranks(llama, (2, 16), Layout(2, parallel), **TOKENS)):
            for key in ("param_bytes", "grad_bytes", "optimizer_bytes", "peak_bytes"):
                assert p[key] == r[key], (parallel, key)


def test_four_ranks_mixed_precision():
    """The tiny Llama on four gloo ranks under FSDP2's mixed precision: bf16
    gathers with an fp32 reduce (resharding), and a bf16 reduce cast back to fp32
    (no resharding). Held bytes exact on every rank; the peak never above the
    tracker's and at most one gathered unit below it, within 0.1% on the closest
    rank, as without the policy."""
    from complexity.cost.parallel.gloo_step import Job, measure_ranks
    from complexity.cost.parallel.policy import parse_precision

    torch.manual_seed(0)
    llama = _model("llama")
    cases = [("fsdp", parse_precision("param=bfloat16,reduce=float32")),
             ("fsdp-no-reshard", parse_precision("param=bfloat16"))]
    runs = measure_ranks([Job(llama, (2, 16), p, mixed=mp, **TOKENS) for p, mp in cases], 4)
    for (parallel, mp), real in zip(cases, runs):
        predicted = predict_ranks(llama, (2, 16), Layout(4, parallel, mixed=mp), **TOKENS)
        gathered = predicted[0]["parts"]["gathered (root + largest unit)"]
        excesses = []
        for r, p in zip(real, predicted):
            for key in ("param_bytes", "grad_bytes", "optimizer_bytes"):
                assert p[key] == r[key], (parallel, r["rank"], key)
            excesses.append(r["peak_bytes"] - p["peak_bytes"])
            assert 0 <= excesses[-1] <= gathered, (parallel, r["rank"], excesses[-1])
        assert min(excesses) <= 0.001 * real[0]["peak_bytes"], (parallel, excesses)
