"""Rendering of ``reports/finetune_options.md``: one table per model (peak memory in
GiB and training FLOPs in TFLOPs for every combination of trainable set, precision,
optimizer and checkpointing, with the error of the prediction against the measured
step), a figure, and the lessons the numbers teach — computed from them, not
written in advance."""
from __future__ import annotations

from typing import Dict, List, Sequence

from complexity.output.finetune import error_pct

GIB = 2 ** 30


def _err(p: int, m: int) -> str:
    if p == m:
        return "0"
    return "n/a" if m == 0 else f"{error_pct(p, m):+.2f}%"


def _flops(v: Dict[str, int]) -> int:
    return v["forward_flops"] + v["backward_flops"]


def _key(c) -> tuple:
    return (c["model"], c["trainable"], c["precision"], c["optimizer"], bool(c["checkpoint"]))


def table(cells: Sequence[dict]) -> str:
    """The markdown table of one model's cells."""
    rows = ["| trainable | precision | optimizer | checkpointing | peak GiB | peak error "
            "| kept activations GiB | kept error | training TFLOPs | FLOPs error "
            "| weights + grads + optimizer |",
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for c in cells:
        p, m = c["predicted"], c["measured"]
        exact = all(p[k] == m[k] for k in ("param_bytes", "grad_bytes", "optimizer_bytes"))
        rows.append(
            f"| {c['trainable']} | {c['precision']} | {c['optimizer']} | "
            f"{c['checkpoint'] or 'off'} | {p['peak_bytes'] / GIB:.3f} | "
            f"{_err(p['peak_bytes'], m['peak_bytes'])} | "
            f"{p['saved_activation_bytes'] / GIB:.3f} | "
            f"{_err(p['saved_activation_bytes'], m['saved_activation_bytes'])} | "
            f"{_flops(p) / 1e12:.3f} | {_err(_flops(p), _flops(m))} | "
            f"{'exact' if exact else 'differs'} |")
    return "\n".join(rows)


def worst_errors(cells: Sequence[dict]) -> Dict[str, float]:
    """The largest |predicted / measured − 1| per quantity, in percent."""
    from complexity.cost.keys import KEYS

    out = {}
    for k in KEYS:
        errs = [abs(error_pct(c["predicted"][k], c["measured"][k]))
                for c in cells if c["measured"][k]]
        out[k] = max(errs, default=0.0)
    return out


def lessons(cells: Sequence[dict]) -> List[str]:
    """Sentences read off the measured values: each choice alone against the
    baseline (the default step: all layers, float32, Adam, no checkpointing), and where the "only the
    last layer trains, so its cost is O(1)" intuition fails."""
    by = {_key(c): c for c in cells}
    out = []
    for model in dict.fromkeys(c["model"] for c in cells):
        base = by.get((model, "full", "float32", "adam", False))
        if base is None:
            continue
        peak0, flops0 = base["measured"]["peak_bytes"], _flops(base["measured"])
        alone = {
            "training only the last layer": (model, "last", "float32", "adam", False),
            "LoRA adapters": (model, "lora", "float32", "adam", False),
            "bfloat16 autocast": (model, "full", "bfloat16 autocast", "adam", False),
            "SGD with momentum instead of Adam": (model, "full", "float32", "sgd-momentum",
                                                  False),
            "activation checkpointing": (model, "full", "float32", "adam", True),
        }
        saved = {name: 1 - by[k]["measured"]["peak_bytes"] / peak0
                 for name, k in alone.items() if k in by}
        best = max(saved, key=saved.get)
        last = by[alone["training only the last layer"]]["measured"]
        lora = by[alone["LoRA adapters"]]["measured"]
        ckpt = by[alone["activation checkpointing"]]["measured"]
        out.append(
            f"**{model}.** Of the single choices, {best} saves most peak memory "
            f"({100 * saved[best]:.0f}% of {peak0 / GIB:.2f} GiB); "
            + ", ".join(f"{n} {100 * v:.0f}%" for n, v in saved.items() if n != best)
            + f". Training only the last layer still costs {100 * _flops(last) / flops0:.0f}% "
            f"of the full step's FLOPs (the whole forward is paid) and "
            f"{100 * last['peak_bytes'] / peak0:.0f}% of its peak (weights and the forward's "
            f"activations stay) — not O(1). LoRA trains "
            f"{by[alone['LoRA adapters']]['trainable_params']:,} parameters yet needs "
            f"{100 * lora['peak_bytes'] / peak0:.0f}% of the full peak and "
            f"{100 * _flops(lora) / flops0:.0f}% of its FLOPs: the adapters sit deep in "
            f"the network, so activations are kept and the backward runs through it. "
            f"Checkpointing trades {100 * (_flops(ckpt) / flops0 - 1):.0f}% more FLOPs for "
            f"{100 * (1 - ckpt['peak_bytes'] / peak0):.0f}% less peak.")
    return out


def markdown(cells: Sequence[dict], quick: bool = False) -> str:
    """The whole report."""
    from complexity.output.units import bytes_text

    models = list(dict.fromkeys(c["model"] for c in cells))
    worst = worst_errors(cells)
    seconds = sum(c["predict_s"] + c["measure_s"] for c in cells)
    lines = [
        "# Fine-tuning as people run it: precision, optimizer, checkpointing, LoRA",
        "",
        "Regenerate: `python -m complexity reproduce --only finetune_options`"
        + (" (this is the `--quick` grid on small stand-ins)" if quick else ""),
        "",
        "One training step (forward, cross-entropy, backward, `optimizer.step()`), "
        "predicted from the model's structure and measured on fake CPU tensors (the "
        "measurement equals a real CPU step byte for byte where both run: "
        "`tests/test_cost_measure.py`, `tests/test_cost_autocast.py`, "
        "`tests/test_cost_checkpoint.py`). Trainable: `full` every parameter, `last` the "
        "last layer, `lora` rank-8 adapters (alpha 16, peft) on the layers named under "
        "each table, the base frozen. Precision: float32, or bfloat16 `torch.autocast` "
        "around forward and loss with float32 master weights (the CPU's autocast op "
        "lists). Optimizer: `Adam` or `SGD(momentum=0.9)`, for-loop update. "
        "Checkpointing: `torch.utils.checkpoint(use_reentrant=False)` around each block "
        "named under the table. Training FLOPs = forward + backward (PyTorch's "
        "`FlopCounterMode`, 2 per multiply-accumulate; the recomputed forward counts in "
        "the backward). Errors: (predicted − measured) / measured; `0` is exact.",
        "",
        f"Worst error over all {len(cells)} cells: "
        + ", ".join(f"{k} {'0' if v == 0 else f'{v:.3f}%'}" for k, v in worst.items())
        + f". Predicting and measuring the whole grid took {seconds:.0f} s.",
        "",
        "One known gap of the measurement itself: under bfloat16 autocast PyTorch's fake "
        "batch norm keeps bfloat16 statistics where the CPU kernel keeps float32 ones, so "
        "on BatchNorm models (resnet50) the fake step's kept and peak bytes are 4 bytes "
        "per BN channel low; the prediction follows the real kernel "
        "(`tests/test_cost_autocast.py` checks it against a real bfloat16 step).",
        "",
        "## What the numbers teach",
        "",
        *[s + "\n" for s in lessons(cells)],
        "![peak memory per configuration](finetune_options.png)",
        "",
    ]
    for model in models:
        mine = [c for c in cells if c["model"] == model]
        first = mine[0]
        lines += [f"## {model}, input {'×'.join(map(str, first['input']))}", "",
                  f"LoRA targets `{first['lora_targets']}`; checkpointed blocks "
                  f"`{first['blocks']}`. Weights: "
                  f"{bytes_text(mine[0]['measured']['param_bytes'])}.", "",
                  table(mine), ""]
    return "\n".join(lines)


def figure(cells: Sequence[dict], path: str) -> None:
    """Measured peak (GiB) of every configuration, one panel per model."""
    from complexity.output.figures import pyplot, save

    plt = pyplot()
    models = list(dict.fromkeys(c["model"] for c in cells))
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 5), squeeze=False)
    for ax, model in zip(axes[0], models):
        mine = [c for c in cells if c["model"] == model]
        labels = [f"{c['trainable']} {'bf16' if 'bfloat16' in c['precision'] else 'fp32'} "
                  f"{'SGD' if c['optimizer'] != 'adam' else 'Adam'}"
                  f"{' ckpt' if c['checkpoint'] else ''}" for c in mine]
        values = [c["measured"]["peak_bytes"] / GIB for c in mine]
        colours = ["tab:blue" if c["trainable"] == "full" else
                   "tab:orange" if c["trainable"] == "last" else "tab:green" for c in mine]
        ax.barh(range(len(mine)), values, color=colours)
        ax.set_yticks(range(len(mine)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("peak memory of one step, GiB (measured)")
        ax.set_title(model)
    fig.tight_layout()
    save(fig, path)
