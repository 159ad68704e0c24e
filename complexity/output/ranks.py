"""Renderings of ``fit --gpus``: one row per trainable set, every figure per rank
(rank 0's: it holds the most), or the JSON array.

>>> r = {"model": "m", "mode": "full", "gpus": 8, "parallel": "fsdp", "units": ["layer1"],
...      "input_per_rank": [4, 3, 8, 8], "budget_bytes": 2**30, "fits": True,
...      "max_batch_per_rank": 96, "gpus_needed": None, "device": "cpu", "estimate": False,
...      "rank0": {"peak_bytes": 3 * 2**20, "param_bytes": 2**20, "grad_bytes": 2**20,
...                "optimizer_bytes": 2**21, "bucket_bytes": 0, "parts": {}}}
>>> table_rows([r])[0][:7]
['m', 'full', 8, 'fsdp', 4, '3.00 MiB', 'yes']
"""
from __future__ import annotations

import json
from typing import List, Sequence

from complexity.output.tables import Cell, prose, render_table
from complexity.output.units import bytes_text

HEADERS = ["model", "mode", "GPUs", "parallel", "batch/rank", "peak/rank", "fits",
           "max batch/rank", "GPUs needed", "weights/rank", "grads/rank", "optimizer/rank",
           "DDP buckets", "gathered at once"]


def _bytes(n) -> Cell:
    return Cell(n, bytes_text(n))


def _offloaded(rows: Sequence[dict]) -> bool:
    return any(r.get("offload") for r in rows)


def table_cells(rows: Sequence[dict]) -> List[list]:
    out = []
    host = _offloaded(rows)
    for r in rows:
        k = r["rank0"]
        mark = "≈ " if r.get("estimate") else ""
        mb, need = r["max_batch_per_rank"], r.get("gpus_needed")
        gathered = next((v for p, v in k.get("parts", {}).items() if p.startswith("gathered")),
                        None)
        out.append([r["model"], r["mode"], r["gpus"], r["parallel"], r["input_per_rank"][0],
                    Cell(k["peak_bytes"], mark + bytes_text(k["peak_bytes"])),
                    Cell(r["fits"], "yes" if r["fits"] else "no"),
                    Cell(mb, "none" if mb is None else f"{mb:,}"),
                    Cell(need, "" if need is None else f"{need:,}"),
                    _bytes(k["param_bytes"]), _bytes(k["grad_bytes"]),
                    _bytes(k["optimizer_bytes"]), _bytes(k["bucket_bytes"]), _bytes(gathered)])
        if host:  # offloaded: what the host holds, at its peak (the update)
            out[-1].append(Cell(k.get("host_peak_bytes"), mark + bytes_text(
                k.get("host_peak_bytes", 0))))
    return out


def headers(rows: Sequence[dict]) -> List[str]:
    """The table's columns: a host column when a row is offloaded."""
    return HEADERS + (["host peak/rank"] if _offloaded(rows) else [])


def table_rows(rows: Sequence[dict]) -> list:
    """The rows as a table shows them."""
    return [[getattr(c, "text", c) for c in row] for row in table_cells(rows)]


def note(rows: Sequence[dict]) -> str:
    r = rows[0]
    lines = [f"Per rank (rank 0, which holds the most), budget {bytes_text(r['budget_bytes'])} "
             f"per GPU. weights/grads/optimizer: what each rank stores (FSDP: its dim-0 "
             "shards, padded to ceil(rows/N); DDP: everything, plus its gradient buckets); "
             "gathered at once: the unsharded parameters of the root and the largest unit."]
    if r["parallel"] != "ddp":
        lines.append("FSDP units: " + ", ".join(r["units"]) + ", then the root.")
    lines.append("max batch/rank: the largest per-rank batch that fits (it fits, one more "
                 "does not); GPUs needed: the fewest that fit (N fits, N − 1 does not).")
    lines += policy_lines(rows)
    if any(x.get("estimate") and x.get("device") == "cuda" for x in rows):
        lines.append("≈: on CUDA the figures are the step's live tensors; the caching "
                     "allocator and NCCL's buffers are not modelled: an estimate.")
    return "\n".join(lines)


def policy_lines(rows: Sequence[dict]) -> List[str]:
    """What FSDP2's policies change, said under the table."""
    lines = []
    mixed = next((r["mixed_precision"] for r in rows if r.get("mixed_precision")), None)
    if mixed:
        lines.append(f"mixed precision {mixed}: the shards, their gradients and the "
                     "optimizer's state stay in the parameters' dtype; the gathered "
                     "parameters, the activations and the unsharded gradients are in "
                     "param's, the reduce-scatter in reduce's."
                     + (" output=: every unit's outputs are cast (FSDP2 casts at each "
                        "unit), ≈: within 0.5% of a fake process group's peak, not exact."
                        if "output=" in mixed else ""))
    if _offloaded(rows):
        lines.append("offload (CPUOffloadPolicy): peak/rank is the device's; the shards, "
                     "gradients, optimizer state and update are on the host (host "
                     "peak/rank). ≈: on the CPU the offload moves nothing, so the split "
                     "is not measured; what the host holds is.")
    return lines


STEP_HEADERS = ["model", "mode", "input/rank", "GPUs", "parallel", "peak/rank", "measured",
                "weights/rank", "grads/rank", "optimizer/rank", "DDP buckets"]


def step_cells(rows: Sequence[dict]) -> List[list]:
    out = []
    host = _offloaded(rows)
    for r in rows:
        p, m = r["predicted"], r["measured"]
        mark = "≈ " if r.get("estimate") else ""
        out.append([r["model"], r["mode"], "x".join(map(str, r["input_per_rank"])), r["gpus"],
                    r["parallel"], Cell(p["peak_bytes"], mark + bytes_text(p["peak_bytes"])),
                    _bytes(m and m["peak_bytes"]), _bytes(p["param_bytes"]),
                    _bytes(p["grad_bytes"]), _bytes(p["optimizer_bytes"]),
                    _bytes(p["bucket_bytes"])])
        if host:
            out[-1].append(_bytes(p.get("host_peak_bytes")))
    return out


def render_steps(rows: Sequence[dict], fmt: str) -> str:
    """``finetune --gpus``' output: rank 0's step, predicted and measured."""
    if fmt == "json":
        return json.dumps(list(rows), indent=2)
    host = _offloaded(rows)
    table = render_table(step_cells(rows), STEP_HEADERS + (["host peak/rank"] if host else []),
                         fmt, numeric_columns=[3, 5, 6, 7, 8, 9, 10] + ([11] if host else []))
    if fmt == "csv":
        return table
    how = next((r["measured_how"] for r in rows if r["measured_how"]), None)
    text = ("Per rank (rank 0, which holds the most). measured: rank 0 "
            + (f"on {how}" if how else "not measured")
            + " (DDP is measured with --measure real only)."
            + (" Offloaded, measured is the whole rank (device and host are one memory "
               "on the CPU)." if host else ""))
    return table + "\n\n" + prose("\n".join([text, *policy_lines(rows)]), fmt)


def render(rows: Sequence[dict], fmt: str) -> str:
    """``fit --gpus``' output in ``fmt`` (``json``: the array of row objects)."""
    if fmt == "json":
        return json.dumps(list(rows), indent=2)
    table = render_table(table_cells(rows), headers(rows), fmt,
                         numeric_columns=[2, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14][
                             :len(headers(rows)) - 3])
    if fmt == "csv":
        return table
    return table + "\n\n" + prose(note(rows), fmt)
