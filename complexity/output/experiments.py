"""Text renderings of the training experiments: the ``train``, ``sweep-batch``,
``invariance`` and ``segment`` commands' tables.

Each takes the JSON object its command prints with ``--format json``.

>>> fmt_value(1234567), fmt_value(0.123456), fmt_value("x")
('1,234,567', '0.1235', 'x')
"""
from __future__ import annotations


def render_train(result: dict) -> str:
    """One colourization training run: settings, a row per epoch, wall time, folder."""
    from tabulate import tabulate

    rows = [(h["epoch"], h["train_loss"], h["val_loss"], h["val_acc"]) for h in result["history"]]
    head = (f"{result['model']}: {result['epochs']} epochs, batch {result['batch_size']}, "
            f"lr {result['lr']}, NF {result['nf']}, NC {result['nc']}, k {result['kernel']}, "
            f"seed {result['seed']}\ndata: {result['data']}\n")
    table = tabulate(rows, headers=("epoch", "train loss", "val loss", "val acc"),
                     floatfmt=".4f")
    return (f"{head}\n{table}\n\nmeasured wall time of training and validation: "
            f"{result['seconds']:.1f} s; outputs in {result['out']}/")


def render_sweep(result: dict) -> str:
    """A batch-size sweep: a row per batch size with its final figures."""
    from tabulate import tabulate

    rows = [(r["batch_size"], r["steps_per_epoch"], r["final"]["train_loss"],
             r["final"]["val_loss"], r["final"]["val_acc"], r["seconds"]) for r in result["runs"]]
    table = tabulate(rows, headers=("batch size", "steps/epoch", "train loss", "val loss",
                                    "val acc", "seconds (measured)"),
                     floatfmt=(".0f", ".0f", ".4f", ".4f", ".4f", ".1f"))
    return (f"{result['model']}, {result['epochs']} epochs, lr {result['lr']}; "
            f"data: {result['data']}\n\n{table}\n\nfigures in {result['out']}/")


def render_invariance(result: dict, tablefmt: str = "simple") -> str:
    """The input-scaling study: a row per (BN mode, a, b) with |Δ logits| inside and at
    the border, the change of accuracy and what theory predicts."""
    from tabulate import tabulate

    rows = [(r["bn"], r["a"], r["b"], r["interior"]["max"], r["interior"]["mean"],
             r["border"]["max"], r["border"]["mean"], r["delta_acc"], r["expected"])
            for r in result["rows"]]
    table = tabulate(rows, headers=("BN", "a", "b", "interior max Δ", "interior mean Δ",
                                    "border max Δ", "border mean Δ", "Δ acc", "theory"),
                     floatfmt=("", "g", "g", ".2e", ".2e", ".2e", ".2e", "+.4f", ""),
                     tablefmt=tablefmt, missingval="—")  # — : the region has no pixel
    arithmetic = ("float64, BN ε = 1e-300 (--exact)" if result["exact"]
                  else "float32, BN ε = 1e-5 as trained")
    return (f"{result['model']} ({result['source']}; {arithmetic}); {result['images']} validation images, "
            f"{result['pixels']} pixels each, of which {result['interior_pixels']} interior "
            f"(border band {result['border_band']} px: the receptive field reaches the zero "
            f"padding); Δ = |change of a logit|, worst of the classes at a pixel\n\n{table}")


def fmt_value(v) -> str:
    """An int with thousands separators, a float to 4 decimals, anything else as is."""
    return f"{v:,}" if isinstance(v, int) else f"{v:.4f}" if isinstance(v, float) else str(v)


def render_segment(result: dict) -> str:
    """The text report of one ``segment`` run."""
    from tabulate import tabulate

    rows = [[0, "", *(fmt_value(result["initial"][k]) for k in ("val_loss", "miou", "course_iou"))]]
    rows += [[h["epoch"], fmt_value(h["train_loss"]), fmt_value(h["val_loss"]),
              fmt_value(h["miou"]), fmt_value(h["course_iou"])] for h in result["history"]]
    cost = result["cost"]
    cost_rows = [[k, fmt_value(v)] for k, v in cost.items() if k not in ("source", "input_shape")]
    b = result["best"]
    return "\n".join([
        f"{result['arch']}, --train {result['train']}: {result['trainable_params']:,} of "
        f"{result['total_params']:,} parameters trainable. {result['weights']}.",
        f"data: {result['data']}, {result['size']}×{result['size']}",
        "",
        tabulate(rows, headers=["epoch", "train loss", "val loss", "mean IoU", "course IoU"],
                 disable_numparse=True),
        "(epoch 0 = the untrained head)",
        "",
        f"best: epoch {b['epoch']}, mean IoU {b['miou']:.4f}, course IoU {b['course_iou']:.4f}; "
        f"{result['seconds']:.0f} s of wall time (measured on this machine)",
        "",
        f"one training step at input {tuple(cost['input_shape'])}, --train {result['train']} "
        f"— {cost['source']}:",
        tabulate(cost_rows, headers=["quantity", "value"], disable_numparse=True,
                 colalign=("left", "right")),
        "",
        "files: " + ", ".join(result["files"].values()),
    ])
