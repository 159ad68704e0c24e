"""Text renderings of the training experiments: the ``train``, ``sweep-batch``,
``invariance`` and ``segment`` commands' tables, and ``reproduce``'s list of files;
each as ``table``, ``markdown``, ``latex`` or ``csv`` (the command's table alone).

Each takes the JSON object its command prints with ``--format json``.

>>> fmt_value(1234567), fmt_value(0.123456), fmt_value("x")
('1,234,567', '0.1235', 'x')
"""
from __future__ import annotations

from complexity.output.tables import Cell, prose, render_table

#: The columns of each command's table (and of its CSV).
TRAIN_HEADERS = ("epoch", "train loss", "val loss", "val acc")
SWEEP_HEADERS = ("batch size", "steps/epoch", "train loss", "val loss", "val acc",
                 "seconds (measured)")
INVARIANCE_HEADERS = ("BN", "a", "b", "interior max Δ", "interior mean Δ", "border max Δ",
                      "border mean Δ", "Δ acc", "theory")
SEGMENT_HEADERS = ("epoch", "train loss", "val loss", "mean IoU", "course IoU")
SEGMENT_COST_HEADERS = ("quantity", "value")
REPRODUCE_HEADERS = ("report", "file")


def render_train(result: dict, fmt: str = "table") -> str:
    """One colourization training run: settings, a row per epoch, wall time, folder."""
    rows = [(h["epoch"], h["train_loss"], h["val_loss"], h["val_acc"]) for h in result["history"]]
    table = render_table(rows, TRAIN_HEADERS, fmt, (0, 1, 2, 3), floatfmt=".4f")
    if fmt == "csv":
        return table
    head = (f"{result['model']}: {result['epochs']} epochs, batch {result['batch_size']}, "
            f"lr {result['lr']}, NF {result['nf']}, NC {result['nc']}, k {result['kernel']}, "
            f"seed {result['seed']}\ndata: {result['data']}\n")
    tail = (f"measured wall time of training and validation: {result['seconds']:.1f} s; "
            f"outputs in {result['out']}/")
    return f"{prose(head, fmt)}\n{table}\n\n{prose(tail, fmt)}"


def render_sweep(result: dict, fmt: str = "table") -> str:
    """A batch-size sweep: a row per batch size with its final figures."""
    rows = [(r["batch_size"], r["steps_per_epoch"], r["final"]["train_loss"],
             r["final"]["val_loss"], r["final"]["val_acc"], r["seconds"]) for r in result["runs"]]
    table = render_table(rows, SWEEP_HEADERS, fmt, range(6),
                         floatfmt=(".0f", ".0f", ".4f", ".4f", ".4f", ".1f"))
    if fmt == "csv":
        return table
    head = (f"{result['model']}, {result['epochs']} epochs, lr {result['lr']}; "
            f"data: {result['data']}")
    return f"{prose(head, fmt)}\n\n{table}\n\n{prose('figures in ' + result['out'] + '/', fmt)}"


def render_invariance(result: dict, fmt: str = "table") -> str:
    """The input-scaling study: a row per (BN mode, a, b) with |Δ logits| inside and at
    the border, the change of accuracy and what theory predicts."""
    rows = [(r["bn"], r["a"], r["b"], r["interior"]["max"], r["interior"]["mean"],
             r["border"]["max"], r["border"]["mean"], r["delta_acc"], r["expected"])
            for r in result["rows"]]
    table = render_table(rows, INVARIANCE_HEADERS, fmt, range(1, 8),
                         floatfmt=("", "g", "g", ".2e", ".2e", ".2e", ".2e", "+.4f", ""),
                         missingval="—")  # — : the region has no pixel
    if fmt == "csv":
        return table
    arithmetic = ("float64, BN ε = 1e-300 (--exact)" if result["exact"]
                  else "float32, BN ε = 1e-5 as trained")
    head = (f"{result['model']} ({result['source']}; {arithmetic}); {result['images']} validation "
            f"images, {result['pixels']} pixels each, of which {result['interior_pixels']} interior "
            f"(border band {result['border_band']} px: the receptive field reaches the zero "
            f"padding); Δ = |change of a logit|, worst of the classes at a pixel")
    return f"{prose(head, fmt)}\n\n{table}"


def fmt_value(v) -> str:
    """An int with thousands separators, a float to 4 decimals, anything else as is."""
    return f"{v:,}" if isinstance(v, int) else f"{v:.4f}" if isinstance(v, float) else str(v)


def _value_cell(v) -> Cell:
    return Cell(v, "" if v is None else fmt_value(v))


def segment_rows(result: dict) -> list:
    """Epoch 0 (the untrained head: no training loss), then a row per epoch."""
    first = result["initial"]
    rows = [[0, _value_cell(None),
             *(_value_cell(first[k]) for k in ("val_loss", "miou", "course_iou"))]]
    rows += [[h["epoch"], *(_value_cell(h[k]) for k in ("train_loss", "val_loss", "miou",
                                                         "course_iou"))]
             for h in result["history"]]
    return rows


def render_segment(result: dict, fmt: str = "table") -> str:
    """The report of one ``segment`` run (``text`` is ``table``)."""
    fmt = "table" if fmt == "text" else fmt
    table = render_table(segment_rows(result), SEGMENT_HEADERS, fmt, range(5),
                         disable_numparse=True)
    if fmt == "csv":
        return table
    cost = result["cost"]
    cost_rows = [[k, _value_cell(v)] for k, v in cost.items()
                 if k not in ("source", "input_shape", "batch_size", "size")]
    batch = cost.get("batch_size", cost["input_shape"][0])
    side = cost.get("size", cost["input_shape"][-1])
    b = result["best"]
    return "\n".join([
        prose(f"{result['arch']}, --train {result['train']}: {result['trainable_params']:,} of "
              f"{result['total_params']:,} parameters trainable. {result['weights']}.\n"
              f"data: {result['data']}, {result['size']}×{result['size']}", fmt),
        "",
        table,
        prose("(epoch 0 = the untrained head)", fmt),
        "",
        prose(f"best: epoch {b['epoch']}, mean IoU {b['miou']:.4f}, course IoU "
              f"{b['course_iou']:.4f}; {result['seconds']:.0f} s of wall time (measured on this "
              "machine)", fmt),
        "",
        prose(f"one training step at batch {batch}, {side}×{side} (input "
              f"{tuple(cost['input_shape'])}), --train {result['train']} — {cost['source']}:", fmt),
        render_table(cost_rows, SEGMENT_COST_HEADERS, fmt, (1,), disable_numparse=True,
                     colalign=("left", "right")),
        "",
        prose("files: " + ", ".join(result["files"].values()), fmt),
    ])


def render_reproduce(result: dict, fmt: str = "table") -> str:
    """The files each step of ``reproduce`` wrote (``result``: its JSON object):
    ``step: path, path`` lines as ``table``; a row per file otherwise."""
    if fmt == "table":
        return "\n".join(f"{name}: {', '.join(paths)}" for name, paths in result["reports"].items())
    rows = [[name, path] for name, paths in result["reports"].items() for path in paths]
    return render_table(rows, REPRODUCE_HEADERS, fmt)
