"""Renderings of a fine-tuning sweep: table / markdown / latex / csv / JSON, slopes,
and plots.

>>> r = {"model": "stack", "layers": 2, "size": [8, 8], "batch": 1, "mode": "full",
...      "trainable_params": 10, "predicted": dict.fromkeys(KEYS, 100),
...      "measured": dict.fromkeys(KEYS, 104)}
>>> rows = table_rows([r])
>>> rows[0][-3:]
['100', '104', '-3.85%']
"""
from __future__ import annotations

import json
import os
from typing import List, Sequence


from complexity.cost.measure import KEYS
from complexity.cost.predict import mark
from complexity.cost.sweep import slopes

MEMORY = ("param_bytes", "grad_bytes", "optimizer_bytes", "saved_activation_bytes", "peak_bytes")
FLOPS = ("forward_flops", "backward_flops")


def error_pct(predicted: int, measured: int) -> float:
    """(predicted − measured) / measured, in percent (0 when both are 0)."""
    if measured == 0:
        return 0.0 if predicted == 0 else float("inf")
    return 100.0 * (predicted - measured) / measured


#: The columns of the sweep's table (and of its CSV).
HEADERS = ("model", "n", "size", "batch", "mode", "quantity", "predicted", "measured", "error")


def table_cells(results: Sequence[dict]) -> List[list]:
    """The sweep's rows as :class:`~complexity.output.tables.Cell` s: a table shows
    ``≥ 1,234`` and ``+0.50%``, CSV gets 1234 and 0.5 (error in percent)."""
    from complexity.output.tables import Cell

    rows = []
    for r in results:
        for q in KEYS:
            p = r["predicted"][q]
            m = r["measured"][q] if r["measured"] else None
            bound = mark(q, r.get("unmodelled"))
            err = None if m is None else error_pct(p, m)
            rows.append([r["model"], r["layers"], Cell("%dx%d" % tuple(r["size"]),
                                                       "%d×%d" % tuple(r["size"])),
                         r["batch"], r["mode"], q, Cell(p, bound + f"{p:,}"),
                         Cell(m, "" if m is None else f"{m:,}"),
                         Cell(err, "" if err is None else f"{err:+.2f}%")])
    return rows


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
        for tail in (False, True):
            for s in slopes(results, against, source, tail):
                if tail and len({tuple(r["size"]) if against == "pixels" else r["layers"]
                                 for r in results}) < 3:
                    continue  # two points: the tail is the whole range
                rows.append([s["model"], s["mode"], "n" if against == "layers" else "H·W",
                             "%d–%d" % tuple(s["range"]), s["batch"]] + [slope_text(s[q]) for q in KEYS])
    return rows


def flops_ratios(results: Sequence[dict]) -> List[list]:
    """Training FLOPs (forward + backward) of full over last, per configuration."""
    by_key = {}
    for r in results:
        v = r["measured"] or r["predicted"]
        by_key.setdefault((r["model"], r["layers"], tuple(r["size"]), r["batch"]), {})[
            r["mode"]] = v["forward_flops"] + v["backward_flops"]
    return [[m, n, "%d×%d" % s, b, f"{d['full'] / d['last']:.3f}"]
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
    cuda = [[r["model"], r["layers"], "%d×%d" % tuple(r["size"]), r["batch"], r["mode"],
             f"{r.get('cuda_predicted_peak_bytes', r['predicted']['peak_bytes']):,}",
             f"{r['cuda_peak_bytes']:,}",
             f"{error_pct(r.get('cuda_predicted_peak_bytes', r['predicted']['peak_bytes']), r['cuda_peak_bytes']):+.2f}%"]
            for r in results if "cuda_peak_bytes" in r]
    if cuda:
        out.append(prose("Peak on the GPU (torch.cuda.max_memory_allocated; allocator rounding, "
                         "cuDNN workspaces and cuDNN's saved tensors included):", fmt))
        out.append(table(cuda, ["model", "n", "size", "batch", "mode", "predicted peak",
                                "cuda peak", "error"], (1, 3, 5, 6, 7)))
    return "\n\n".join(out)


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
        # Several models: grads and Adam state (= or 2× the trainable weights) crowd
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
                        xs = [r["size"][0] * r["size"][1] for r in rs]
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
    fig.suptitle("One Adam training step: full (solid) vs last layer / pattern (dashed); "
                 + ("measured" if results[0]["measured"] else "predicted"))
    fig.tight_layout()
    save(fig, path, dpi=110, image_format=os.path.splitext(path)[1][1:] or "png", tight=False)
