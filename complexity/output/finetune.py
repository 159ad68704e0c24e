"""Renderings of a fine-tuning sweep: table / markdown / latex / csv / JSON, slopes,
and plots.

>>> r = {"model": "stack", "layers": 2, "size": [8, 8], "batch": 1, "mode": "full",
...      "trainable_params": 10, "predicted": dict.fromkeys(KEYS, 100),
...      "measured": dict.fromkeys(KEYS, 104)}
>>> rows = table_rows([r])
>>> rows[0][-3:]
['100 B', '104 B', '-3.85%']

Tables show bytes and FLOPs in human units (:mod:`complexity.output.units`: MiB,
GFLOPs, 3 significant digits); CSV and JSON keep the exact integers.
"""
from __future__ import annotations

import json
import math
import os
from typing import List, Sequence


from complexity.cost.keys import KEYS
from complexity.cost.predict.prediction import mark
from complexity.cost.finetune import slopes
from complexity.output.tables import shape_text
from complexity.output.units import bytes_text, flops_text

MEMORY = ("param_bytes", "grad_bytes", "optimizer_bytes", "saved_activation_bytes", "peak_bytes")
FLOPS = ("forward_flops", "backward_flops")


def error_pct(predicted: int, measured: int) -> float:
    """(predicted − measured) / measured, in percent (0 when both are 0)."""
    if measured == 0:
        return 0.0 if predicted == 0 else float("inf")
    return 100.0 * (predicted - measured) / measured


#: The columns of the sweep's table (and of its CSV).
HEADERS = ("model", "n", "size", "batch", "mode", "quantity", "predicted", "measured", "error")


def quantity_text(quantity: str, n) -> str:
    """A value of ``quantity`` in human units: bytes binary, FLOPs decimal.

    >>> quantity_text("peak_bytes", 3 * 2**20), quantity_text("forward_flops", 2_500_000_000)
    ('3.00 MiB', '2.50 GFLOPs')
    """
    return flops_text(n) if quantity.endswith("_flops") else bytes_text(n)


def table_cells(results: Sequence[dict]) -> List[list]:
    """The sweep's rows as :class:`~complexity.output.tables.Cell` s: a table shows
    ``≥ 1.18 MiB``, ``4.09 GFLOPs`` and ``+0.50%``, CSV gets 1234567, 4089184256
    and 0.5 (error in percent)."""
    from complexity.output.tables import Cell, shape_text

    rows = []
    for r in results:
        for q in KEYS:
            p = r["predicted"][q]
            m = r["measured"][q] if r["measured"] else None
            bound = mark(q, r.get("unmodelled"))
            err = None if m is None else error_pct(p, m)
            rows.append([r["model"], r["layers"], Cell(shape_text(r, "x"), shape_text(r)),
                         r["batch"], r["mode"], q, Cell(p, bound + quantity_text(q, p)),
                         Cell(m, "" if m is None else quantity_text(q, m)),
                         Cell(err, "" if err is None else f"{err:+.2f}%")])
    return rows


def name_runs(names: Sequence[str], most: int = 12) -> str:
    """Module names, runs of three or more consecutive numbers joined, and a long
    list cut in the middle.

    >>> name_runs(["conv1", "bn1", "layer1", "layer2", "layer3", "fc"])
    'conv1, bn1, layer1–3, fc'
    >>> name_runs([str(i) for i in range(40)] + ["head"])
    '0–39, head'
    """
    import re

    parts: List[list] = []  # [prefix, first, last] or [name]
    for name in names:
        m = re.fullmatch(r"(.*?)(\d+)", name)
        if m and parts and len(parts[-1]) == 3 and parts[-1][0] == m.group(1) \
                and parts[-1][2] + 1 == int(m.group(2)):
            parts[-1][2] += 1
        elif m:
            parts.append([m.group(1), int(m.group(2)), int(m.group(2))])
        else:
            parts.append([name])
    texts: List[str] = []
    for part in parts:
        if len(part) == 1:
            texts.append(part[0])
        elif part[2] - part[1] >= 2:
            texts.append(f"{part[0]}{part[1]}–{part[2]}")
        else:
            texts += [f"{part[0]}{i}" for i in range(part[1], part[2] + 1)]
    if len(texts) > most:
        texts = texts[:most - 3] + [f"… ({len(texts) - most + 1} more)"] + texts[-2:]
    return ", ".join(texts)


def frozen_lines(results: Sequence[dict]) -> List[str]:
    """One line per (model, n, mode) that freezes something: what trains, what is
    frozen, and the head named when a mode leaves it frozen (``--trainable
    'layer4.*'`` on a ResNet freezes ``fc``)."""
    lines, seen = [], set()
    for r in results:
        key = (r["model"], r["layers"], r["mode"])
        if key in seen or not r.get("frozen"):
            continue
        seen.add(key)
        head = r.get("head") or ""
        text = name_runs(r["frozen"])
        holder = next((f for f in r["frozen"] if f == head or head.startswith(f + ".")), None)
        if holder is not None:  # a frozen head is the likeliest mistake: say so
            note = "the head" if holder == head else f"with the head {head}"
            items = text.split(", ")
            if holder in items:
                items[items.index(holder)] += f" ({note})"
                text = ", ".join(items)
            else:
                text += f" (the head {head} among them)"
        mode = r["mode"] if r["mode"] in ("full", "last") else f"trainable {r['mode']}"
        tensors = r.get("trainable_tensors")
        lines.append(f"{r['model']} n={r['layers']}, {mode}: {r['trainable_params']:,} "
                     f"parameters" + (f" in {tensors} tensors" if tensors is not None else "")
                     + f" train; frozen: {text}")
    return lines


def table_rows(results: Sequence[dict]) -> List[list]:
    """The sweep's rows as a table shows them (strings; ints for n and batch)."""
    return [[getattr(c, "text", c) for c in row] for row in table_cells(results)]


def slope_text(x) -> str:
    """A fitted slope to 3 decimals, or nothing when there is none.

    >>> slope_text(0.99951), slope_text(None)
    ('1.000', '')
    """
    return "" if x is None else f"{x:.3f}"


def slope_rows(results: Sequence[dict]) -> List[list]:
    source = "measured" if results and results[0]["measured"] else "predicted"
    rows = []
    for against in ("layers", "pixels"):
        whole = set()
        for tail in (False, True):
            for s in slopes(results, against, source, tail):
                key = (s["model"], s["mode"], s["batch"], str(s["fixed"]), tuple(s["range"]))
                if tail and key in whole:
                    continue  # two points in this group: the tail is the whole range
                whole.add(key)
                rows.append([s["model"], s["mode"], "n" if against == "layers" else "H·W",
                             "%d–%d" % tuple(s["range"]), s["batch"]] + [slope_text(s[q]) for q in KEYS])
    return rows


def flops_ratios(results: Sequence[dict]) -> List[list]:
    """Training FLOPs (forward + backward) of full over last, per configuration."""
    by_key = {}
    for r in results:
        v = r["measured"] or r["predicted"]
        by_key.setdefault((r["model"], r["layers"], shape_text(r), r["batch"]), {})[
            r["mode"]] = v["forward_flops"] + v["backward_flops"]
    return [[m, n, s, b, f"{d['full'] / d['last']:.3f}"]
            for (m, n, s, b), d in by_key.items() if "full" in d and "last" in d]


def render(results: Sequence[dict], fmt: str) -> str:
    """The sweep as ``table``, ``markdown``, ``latex``, ``csv`` or ``json`` (JSON: the
    results alone; CSV: the main table alone, :data:`HEADERS`)."""
    from complexity.output.tables import prose, render_table

    if fmt == "json":
        return json.dumps(list(results), indent=1)

    def table(rows, headers, numeric):
        return render_table(rows, headers, fmt, numeric, disable_numparse=True)

    main = table(table_cells(results), HEADERS, (1, 3, 6, 7, 8))
    if fmt == "csv":
        return main
    out = [main]
    steps = list(dict.fromkeys(r["step"] for r in results if "step" in r))
    if steps and steps != ["adam, float32"]:  # the course's step goes without saying
        out.append(prose("Training step: " + "; ".join(steps), fmt))
    frozen = frozen_lines(results)
    if frozen:
        bullet = "- " if fmt == "markdown" else "  "
        out.append(prose("What trains:\n" + "\n".join(bullet + f for f in frozen), fmt))
    unmodelled = sorted({c for r in results for c in r.get("unmodelled", [])})
    if unmodelled:
        out.append(prose("≈ (unmodelled: " + ", ".join(unmodelled) + "): no rule for these "
                         "calls; the prediction counts them as keeping nothing and costing no "
                         "FLOPs, so its kept bytes, peak and FLOPs are approximate (≈), not "
                         "bounds", fmt))
    s_rows = slope_rows(results)
    if s_rows:
        out.append(prose("Fitted log-log slopes (%s):" % ("measured" if results[0]["measured"]
                                                         else "predicted"), fmt))
        out.append(table(s_rows, ["model", "mode", "against", "range", "batch", *KEYS],
                         range(4, 5 + len(KEYS))))
    ratios = flops_ratios(results)
    if ratios:
        out.append(prose("Training FLOPs (forward + backward), full / last:", fmt))
        out.append(table(ratios, ["model", "n", "size", "batch", "full / last"], (1, 3, 4)))
    cuda = [[r["model"], r["layers"], shape_text(r), r["batch"], r["mode"],
             bytes_text(r.get('cuda_predicted_peak_bytes', r['predicted']['peak_bytes'])),
             bytes_text(r['cuda_peak_bytes']),
             f"{error_pct(r.get('cuda_predicted_peak_bytes', r['predicted']['peak_bytes']), r['cuda_peak_bytes']):+.2f}%"]
            for r in results if "cuda_peak_bytes" in r]
    if cuda:
        out.append(prose("Peak on the GPU (torch.cuda.max_memory_allocated; allocator rounding, "
                         "cuDNN workspaces and cuDNN's saved tensors included):", fmt))
        out.append(table(cuda, ["model", "n", "size", "batch", "mode", "predicted peak",
                                "cuda peak", "error"], (1, 3, 5, 6, 7)))
    return "\n\n".join(out)


def step_title(results: Sequence[dict]) -> str:
    """The step the results ran, as the ``finetune`` output names it: the optimizer
    first (``'sgd, float32'``, ``'adamw (foreach), bfloat16'``); results without a
    ``step`` ran the default one.

    >>> step_title([{"step": "sgd, float32"}, {"step": "sgd, float32"}])
    'sgd, float32'
    """
    from complexity.cost.step.options import StepOptions

    steps = dict.fromkeys(r.get("step") or StepOptions().label() for r in results)
    return "; ".join(steps)


def plot(results: Sequence[dict], path: str) -> None:
    """Memory and FLOPs against n (both modes) and against resolution; written to
    ``path`` atomically (a temporary file, then ``os.replace``)."""
    from complexity.output.figures import pyplot, save

    plt = pyplot()

    def v(r):
        return r["measured"] or r["predicted"]

    def varies(key):  # does some model appear at more than one value of key?
        seen = {}
        for r in results:
            seen.setdefault(r["model"], set()).add(key(r))
        return any(len(v) > 1 for v in seen.values())

    panels = [("layers", "layers n")] if varies(lambda r: r["layers"]) else []
    panels += [("pixels", "input pixels H·W")] if varies(lambda r: tuple(r["size"])) else []
    if not panels:
        panels = [("layers", "layers n")]
    models = list(dict.fromkeys(r["model"] for r in results))
    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 4.2 * len(panels)), squeeze=False)
    for row, (against, label) in enumerate(panels):
        # Several models: grads and optimizer state (0, 1× or 2× the trainable weights) crowd
        # the memory panel; weights, kept activations and peak tell the story.
        memory = MEMORY if len(models) == 1 else ("param_bytes", "saved_activation_bytes",
                                                  "peak_bytes")
        for col, keys in enumerate((memory, FLOPS)):
            ax = axes[row][col]
            modes = list(dict.fromkeys(r["mode"] for r in results))
            for mode in modes:
                for model in dict.fromkeys(r["model"] for r in results):
                    rs = [r for r in results if r["mode"] == mode and r["model"] == model]
                    if against == "layers":
                        fixed = rs[0]["size"], rs[0]["batch"]
                        rs = [r for r in rs if (r["size"], r["batch"]) == fixed]
                        xs = [r["layers"] for r in rs]
                    else:
                        fixed = rs[0]["layers"], rs[0]["batch"]
                        rs = [r for r in rs if (r["layers"], r["batch"]) == fixed]
                        xs = [math.prod(r["size"]) for r in rs]
                    style = "-" if mode == "full" else "--"
                    for q in keys:
                        ys = [v(r)[q] for r in rs]
                        if any(y > 0 for y in ys):
                            ax.plot(xs, ys, style, marker="os^vD"[models.index(model) % 5],
                                    ms=3, color=f"C{keys.index(q)}",
                                    label=(f"{model}: {q.replace('_bytes', '')}"
                                           if mode == modes[0] else None))
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("bytes" if col == 0 else "FLOPs")
            ax.set_title(("memory" if col == 0 else "compute") + f" against {label}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=6, ncol=2 if len(models) > 1 else 1)
    fig.suptitle(f"One training step ({step_title(results)}): full (solid) vs last layer / "
                 "pattern (dashed); " + ("measured" if results[0]["measured"] else "predicted"))
    fig.tight_layout()
    save(fig, path, dpi=110, image_format=os.path.splitext(path)[1][1:] or "png", tight=False)
