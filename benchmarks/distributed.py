"""Regenerates ``reports/distributed.md``: per-rank memory of one training step of
resnet50, ViT-B/16 and an 8B-parameter Llama (Llama-3-8B's shape) over
N ∈ {1, 2, 4, 8, 64} GPUs, DDP vs FSDP2 vs FSDP2 without resharding — the
per-rank peak at a batch, the model states each rank stores, DeepSpeed's
model-state estimate beside them, and the largest per-rank batch within 80 GiB —
then the check of the 8B model on 8 ranks against a fake process group.

Then FSDP2's policies on the 8B model (``MixedPrecisionPolicy(bfloat16,
float32)``, ``CPUOffloadPolicy``, both): device and host bytes per rank, and the
mixed-precision step on 8 ranks against a fake process group.

``python benchmarks/distributed.py`` (about 15 minutes on two CPU cores;
``--quick`` leaves out the 8B model and the fake-process-group check;
``--policies`` computes only the policies' section and puts it in place in the
report, a few minutes).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from complexity.cost.parallel.answers import largest  # noqa: E402
from complexity.cost.parallel.layout import PARALLEL, default_shard  # noqa: E402
from complexity.cost.parallel.policy import parse_precision  # noqa: E402
from complexity.cost.parallel.prediction import Layout, RankModel  # noqa: E402
from complexity.output.units import bytes_text  # noqa: E402

GPUS = (1, 2, 4, 8, 64)
BUDGET = 80 * 2**30
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   "reports", "distributed.md")


def llama_8b(layers: int = 32):
    """Llama-3-8B's shape (4096 wide, 32 layers, 32 heads, 8 KV heads, 14336 MLP,
    128256-word vocabulary, untied head) on the meta device."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                      num_hidden_layers=layers, num_attention_heads=32, num_key_value_heads=8,
                      max_position_embeddings=8192, tie_word_embeddings=False)
    with torch.device("meta"):
        return LlamaForCausalLM(cfg)


def vision(name: str):
    import torchvision

    with torch.device("meta"):
        return getattr(torchvision.models, name)()


def deepspeed_states(parallel: str, n: int, params: int, largest_layer: int) -> int:
    """DeepSpeed's model-state estimate per GPU (its ``estimate_zero2/3_model_states
    _mem_needs``, no offload; fp16 mixed precision with Adam): ZeRO-3
    ``4·largest layer + 18Ψ/N``, ZeRO-2 ``4Ψ + 16Ψ/N``; plain data parallel 16Ψ
    (the ZeRO paper's 2 + 2 + 12 bytes per parameter)."""
    if parallel == "ddp":
        return 16 * params
    if parallel == "fsdp":
        return 4 * largest_layer + 18 * params // n
    return 4 * params + 16 * params // n


class Traces:
    """One traced step per batch, shared by every layout and N."""

    def __init__(self, model, sample, kw):
        self.model, self.sample, self.kw, self.cache = model, sample, kw, {}

    def at(self, batch: int) -> RankModel:
        if batch not in self.cache:
            self.cache[batch] = RankModel(self.model, (batch, *self.sample), **self.kw)
        return self.cache[batch]

    def peak(self, batch: int, parallel: str, n: int) -> int:
        return self.at(batch).rank(Layout(n, parallel), 0, "nccl")["peak_bytes"]


def rows_for(name, model, sample, batch, kw):
    traces = Traces(model, sample, kw)
    params = sum(p.numel() for p in model.parameters())
    units = traces.at(batch).found
    biggest = max(sum(p.numel() for p in m.parameters()) for _, m in units)
    rows = []
    for parallel in PARALLEL:
        for n in GPUS:
            r = traces.at(batch).rank(Layout(n, parallel), 0, "nccl")
            states = r["param_bytes"] + r["grad_bytes"] + r["optimizer_bytes"] + r["bucket_bytes"]
            best = largest(lambda b: traces.peak(b, parallel, n) <= BUDGET, batch, 2**14)
            rows.append([name, parallel, n, bytes_text(r["peak_bytes"]), bytes_text(states),
                         bytes_text(deepspeed_states(parallel, n, params, biggest)),
                         "none" if best is None else f"{best:,}"])
            print(rows[-1], flush=True)
    return rows, default_shard(model)


def fake_check():
    """The 8B model on 8 ranks (one sequence of 1024 tokens per rank), FSDP: the
    prediction, the live-bytes tracker and FSDPMemTracker on a fake process group."""
    from complexity.cost.parallel.fake_group import fake_rank

    model = llama_8b()
    kw = dict(input_dtype=torch.long, input_high=128256)
    out = []
    for parallel in ("fsdp", "fsdp-no-reshard"):
        p = RankModel(model, (1, 1024), **kw).rank(Layout(8, parallel), 0, "nccl")
        r = fake_rank(model, (1, 1024), parallel, 8, **kw)
        out.append([parallel, f"{p['peak_bytes']:,}", f"{r['peak_bytes']:,}",
                    f"{r['torch_peak_bytes']:,}", f"{r['peak_bytes'] - p['peak_bytes']:,}",
                    f"{r['peak_bytes'] - r['torch_peak_bytes']:,}"])
        print(out[-1], flush=True)
    return out


MIXED = "param=bfloat16,reduce=float32"
POLICY_GPUS = (2, 4, 8, 64)
TOKENS_8B = dict(input_dtype=torch.long, input_high=128256)


def policy_rows():
    """The 8B model, seq 2048, FSDP at each N under each policy: the device's
    peak, the model states on the device, the host's peak, the max batch."""
    model, mixed = llama_8b(), parse_precision(MIXED)
    rows = []
    for label, mp, offload in (("fp32", None, False), (MIXED, mixed, False),
                               ("offload", None, True), (MIXED + " + offload", mixed, True)):
        traces = Traces(model, (2048,), dict(TOKENS_8B, mixed=mp))
        for n in POLICY_GPUS:
            layout = Layout(n, "fsdp", mixed=mp, offload=offload)
            r = traces.at(1).rank(layout, 0, "nccl")
            device_states = 0 if offload else (r["param_bytes"] + r["grad_bytes"]
                                               + r["optimizer_bytes"])
            best = largest(lambda b: traces.at(b).rank(layout, 0, "nccl")["peak_bytes"]
                           <= BUDGET, 1, 2**14)
            mark = "≈ " if offload else ""
            rows.append([label, n, mark + bytes_text(r["peak_bytes"]), bytes_text(device_states),
                         mark + bytes_text(r.get("host_peak_bytes", 0)) if offload else "—",
                         "none" if best is None else f"{best:,}"])
            print(rows[-1], flush=True)
    return rows


def policy_fake_check():
    """The 8B model on 8 ranks, seq 1024, FSDP with bf16/fp32 mixed precision:
    the prediction against the fake process group's two instruments."""
    from complexity.cost.parallel.fake_group import fake_rank

    model, mixed = llama_8b(), parse_precision(MIXED)
    p = RankModel(model, (1, 1024), mixed=mixed, **TOKENS_8B).rank(
        Layout(8, "fsdp", mixed=mixed), 0, "nccl")
    r = fake_rank(model, (1, 1024), "fsdp", 8, mixed=mixed, **TOKENS_8B)
    row = [MIXED, f"{p['peak_bytes']:,}", f"{r['peak_bytes']:,}", f"{r['torch_peak_bytes']:,}",
           f"{r['peak_bytes'] - p['peak_bytes']:,}",
           f"{r['peak_bytes'] - r['torch_peak_bytes']:,}"]
    same = all(p[k] == r[k] for k in ("param_bytes", "grad_bytes", "optimizer_bytes"))
    print(row, "held bytes equal:", same, flush=True)
    return [row], same


def policy_section(tabulate, seconds=None) -> str:
    t0 = time.time()
    rows = policy_rows()
    fake, same = policy_fake_check()
    took = seconds if seconds is not None else time.time() - t0
    return "\n".join([
        POLICY_HEAD,
        tabulate(rows, headers=["policy", "GPUs", "device peak / rank",
                                "model states on the device", "host peak / rank",
                                "max batch / rank (80 GiB)"], tablefmt="github"),
        POLICY_FAKE.format(same="equal" if same else "NOT equal"),
        tabulate(fake, headers=["policy", "predicted", "tracker", "FSDPMemTracker",
                                "tracker − predicted", "tracker − FSDPMemTracker"],
                 tablefmt="github"),
        f"\nThis section: `python benchmarks/distributed.py --policies`, {took / 60:.0f} min "
        f"on this machine ({os.cpu_count()} CPUs, shared, load {os.getloadavg()[0]:.1f}).\n"])


def replace_policy_section(text: str) -> None:
    """Put the policies' section in the report, in place of the one there."""
    with open(OUT, encoding="utf-8") as f:
        old = f.read()
    start = old.find(POLICY_TITLE)
    end = old.find("\n## How these numbers are checked")
    if start < 0:
        start = end
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(old[:start] + text.lstrip("\n") + old[end:])
    print("wrote", OUT)


def main():
    from tabulate import tabulate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--policies", action="store_true",
                    help="only the 8B model under FSDP2's policies, in place in the report")
    args = ap.parse_args()
    if args.policies:
        replace_policy_section(policy_section(tabulate))
        return
    t0 = time.time()
    cases = [("resnet50", vision("resnet50"), (3, 224, 224), 32, {}),
             ("vit_b_16", vision("vit_b_16"), (3, 224, 224), 32, {})]
    if not args.quick:
        cases.append(("llama-8b (seq 2048)", llama_8b(), (2048,), 1,
                      dict(input_dtype=torch.long, input_high=128256)))
    tables, shards = [], []
    for name, model, sample, batch, kw in cases:
        rows, shard = rows_for(name, model, sample, batch, kw)
        tables.append((name, batch, sample, rows))
        shards.append(f"{name}: `{shard}`")
    fake = [] if args.quick else fake_check()
    policies = "" if args.quick else policy_section(tabulate)
    write(tables, shards, fake, time.time() - t0, tabulate, policies)


def write(tables, shards, fake, seconds, tabulate, policies=""):
    head = ["model", "parallel", "GPUs", "peak / rank", "model states / rank",
            "DeepSpeed estimate", "max batch / rank (80 GiB)"]
    parts = [INTRO.format(units="; ".join(shards))]
    for name, batch, sample, rows in tables:
        parts.append(f"\n## {name}, batch {batch} per rank of {'×'.join(map(str, sample))}\n")
        parts.append(tabulate(rows, headers=head, tablefmt="github"))
    if fake:
        parts.append(FAKE_HEAD)
        parts.append(tabulate(fake, headers=["parallel", "predicted", "tracker",
                                             "FSDPMemTracker", "tracker − predicted",
                                             "tracker − FSDPMemTracker"], tablefmt="github"))
    if policies:
        parts.append(policies)
    parts.append(TRUTH)
    parts.append(f"\nGenerated by `python benchmarks/distributed.py` in {seconds / 60:.0f} min "
                 f"on {os.cpu_count()} shared CPU cores (load {os.getloadavg()[0]:.1f}), no GPU.\n")
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(parts))
    print("wrote", OUT)


INTRO = """# Many GPUs: per-rank memory of DDP and FSDP2

Every figure is per rank (rank 0, which holds the most), for one training step
(forward, loss, backward, `Adam(foreach=False)` update) in float32, predicted by
`complexity.cost.parallel` — the single-process step's log replayed with each
rank's shards and FSDP2's gathers, reduce-scatters and buffers
(`docs/distributed.md`). Collectives are NCCL's (no copy in the reduce-scatter).
The peak is every live tensor; the CUDA caching allocator, the CUDA context and
NCCL's own buffers are not in it, so on a GPU these are **estimates** (a lower
bound on what `nvidia-smi` shows).

* **model states / rank**: parameters + gradients + optimizer state (+ DDP's
  gradient buckets) the rank stores — exact (FSDP: dim-0 shards padded to
  `ceil(rows / N)`).
* **DeepSpeed estimate**: DeepSpeed's model-state estimators (no offload), which
  assume fp16 mixed precision: ZeRO-3 `4·largest layer + 18Ψ/N` beside `fsdp`,
  ZeRO-2 `4Ψ + 16Ψ/N` beside `fsdp-no-reshard`, `16Ψ` beside `ddp` (Ψ parameters).
  They leave out activations, gathered parameters and communication buffers,
  which is most of the gap to the peak.
* **max batch / rank**: the largest per-rank batch whose peak fits in 80 GiB
  (proved: it fits, one more does not); `none`: not even one.
* **GPUs = 1**: the single-process step, no wrapper (every layout the same).
  FSDP can cost more than it saves at small N: the gathered units, the prefetched
  one and the reduce-scatter buffers come on top of the shards.

FSDP units (the default: each ResNet stage / transformer block, then the root):
{units}.
"""

FAKE_HEAD = """
## The 8B model on 8 ranks, against a fake process group

One rank of the step run in one process on a fake process group with fake
tensors (`complexity.cost.parallel.fake_group`): one sequence of 1024 tokens per
rank. The live-bytes tracker and the prediction agree to the byte;
`FSDPMemTracker` counts 16 KiB less (small storages it does not attribute).
"""

POLICY_TITLE = "## FSDP2's policies: the 8B model in mixed precision and offloaded"
POLICY_HEAD = "\n" + POLICY_TITLE + """

The llama-8b (seq 2048, batch 1 per rank) under `fsdp` with FSDP2's
`MixedPrecisionPolicy(param_dtype=bfloat16, reduce_dtype=float32)`, with
`CPUOffloadPolicy`, and both (`--mixed-precision param=bfloat16,reduce=float32
--offload`). Mixed precision keeps the shards, gradients and Adam's state in
fp32 (the same model states) and halves the gathered units, the activations and
the unsharded gradients. Offloaded, the shards, gradients, state and update are
on the host: the device holds the gathered units, the activations and the
collectives' buffers, about the same at every N. Offloaded figures are
estimates (≈): no GPU checked the device/host split (`docs/distributed.md`);
the host's is its shards + gradients (unpadded) + state + the update's
temporaries.
"""
POLICY_FAKE = """
The mixed-precision step on 8 ranks (one sequence of 1024 tokens per rank)
against a fake process group, as above: parameter, gradient and optimizer bytes
{same}.
"""

TRUTH = """
## How these numbers are checked

* Real runs, N = 2 (default test suite) and N = 4 (`COMPLEXITY_SLOW_TESTS=1`), gloo
  on the CPU: parameter, gradient, optimizer and bucket bytes per rank exact for
  DDP and FSDP; the peak exact for DDP on every rank and for FSDP on the ranks
  where gloo has let go of the last collective's buffers when the peak comes; on
  the others the tracker sees up to one gathered unit more (at N = 2 on the test's
  CNN 0 to 4,344 B of a 6,672 B bound; at N = 4 two of four ranks exact, the others
  up to 8 MiB more on resnet18) — which ranks, and whether, varies from run to run.
* Fake process group, N = 8, in the default suite: a CNN with empty shards and a
  tiny Llama, exact.
* Mixed precision: the CNN on two gloo ranks (`param=bfloat16,reduce=float32`:
  held bytes exact, the peak within the FSDP bound, exact on the runs seen) and
  eight fake ranks (the CNN with a bf16 reduce, the tiny Llama bf16/fp32: every
  figure exact), in the default suite.
* Offload: on the CPU the policy moves nothing, so only what the host holds is
  checked (a gloo run with `CPUOffloadPolicy(pin_memory=False)`); the device's
  peak is an estimate.
* `torch.profiler`'s memory events (the CPU allocator's), a third instrument on
  the gloo run of an MLP: DDP's peak the tracker's plus 12 B of scalars, FSDP's
  above it by gloo's internal buffers, within one gathered unit.
* `MixedPrecisionPolicy`'s `output_dtype` (every unit's outputs cast): within
  0.5% of a fake process group's peak, an estimate.
* Not modelled yet: activation checkpointing, gradient accumulation with FSDP;
  the caching allocator per rank.
"""


if __name__ == "__main__":
    main()
