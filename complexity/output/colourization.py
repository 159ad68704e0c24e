"""Figures of the colourization experiments (training curves, sample grids, the
batch-size sweep, the input-scaling grid), drawn and saved through
:mod:`complexity.output.figures`.
"""
from __future__ import annotations

import os

import numpy as np

from complexity.output.figures import pyplot, save

SAMPLES = 8  # columns of a sample grid


def curves(histories: dict, path: str, title: str = "", key_val: str = "val_loss") -> None:
    """Train (dashed) and validation (solid) loss per epoch, one colour per run."""
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, (name, hist) in enumerate(histories.items()):
        ep = [h["epoch"] for h in hist]
        colour = f"C{i % 10}"
        ax.plot(ep, [h["train_loss"] for h in hist], "--", color=colour, label=f"{name} train")
        ax.plot(ep, [h[key_val] for h in hist], "-", color=colour, label=f"{name} validation")
        ax2.plot(ep, [h["val_acc"] for h in hist], "-", color=colour, label=name)
    ax.set(xlabel="epoch", ylabel="per-pixel cross-entropy", title=title or "loss")
    ax2.set(xlabel="epoch", ylabel="validation per-pixel accuracy", title="accuracy")
    ax.legend(fontsize=7)
    ax2.legend(fontsize=7)
    from matplotlib.ticker import MaxNLocator

    for a in (ax, ax2):
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.subplots_adjust(wspace=0.3)
    save(fig, path)


def colourise(indices, centres) -> np.ndarray:
    """Class indices (N, H, W) → RGB (N, H, W, 3) using the colour centres."""
    return np.asarray(centres)[np.asarray(indices)]


def sample_grid(grey, target, predictions: dict, centres, path: str) -> None:
    """Rows: grey input / target (nearest of NC colours) / one row per prediction."""
    plt = pyplot()
    rows = [("grey input", np.repeat(np.asarray(grey)[:, 0, :, :, None], 3, axis=-1)),
            (f"target ({len(centres)} colours)", colourise(target, centres))]
    rows += [(f"{name} prediction", colourise(p, centres)) for name, p in predictions.items()]
    n = len(rows[0][1])
    fig, axes = plt.subplots(len(rows), n, figsize=(1.2 * n + 1.4, 1.25 * len(rows)),
                             squeeze=False)
    for r, (label, imgs) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(np.clip(imgs[c], 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    save(fig, path)


def against_batch_size(rows, path: str) -> None:
    """Final validation loss and accuracy against batch size (log axis)."""
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    sizes = [r["batch_size"] for r in rows]
    ax.plot(sizes, [r["final"]["val_loss"] for r in rows], "o-")
    ax2.plot(sizes, [r["final"]["val_acc"] for r in rows], "o-")
    for a, label in ((ax, "final validation loss"), (ax2, "final validation accuracy")):
        a.set_xscale("log")
        a.set(xlabel="batch size", ylabel=label)
    save(fig, path)


def cell_label(mean) -> str:
    """The text of one heat-map cell: the mean |Δ| itself, compact — ``0`` for an
    exact zero, ``—`` for a region without pixels, else one significant digit.

    >>> [cell_label(v) for v in (0.0, None, 3.2e-6, 0.9, 12.0)]
    ['0', '—', '3e-6', '0.9', '1e1']
    """
    if mean is None:
        return "—"
    if mean == 0:
        return "0"
    if 0.1 <= mean < 1:
        return f"{mean:.1f}"
    mantissa, exponent = f"{mean:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def invariance_cells(rows, region: str = "interior"):
    """(a values, b values, grid of log10 mean |Δ|, grid of cell labels) of one
    panel. An exact 0 is drawn in the lowest colour (log10 clipped at −17) but
    labelled ``0``; a region without pixels (mean None) stays NaN: drawn blank, "—"."""
    a_vals = sorted({r["a"] for r in rows})
    b_vals = sorted({r["b"] for r in rows})
    grid = np.full((len(a_vals), len(b_vals)), np.nan)
    labels = [["—"] * len(b_vals) for _ in a_vals]
    for r in rows:
        i, j = a_vals.index(r["a"]), b_vals.index(r["b"])
        mean = r[region]["mean"]
        labels[i][j] = cell_label(mean)
        if mean is not None:
            grid[i, j] = np.log10(max(mean, 1e-17))
    return a_vals, b_vals, grid, labels


def invariance_grid(studies, path: str, region: str = "interior") -> None:
    """Mean |Δ logits| over the (a, b) grid, coloured by its log10, one panel per
    model and BN mode; each cell shows the value itself."""
    plt = pyplot()
    panels = [(s["model"], mode, [r for r in s["rows"] if r["bn"] == mode])
              for s in studies for mode in ("train", "eval")]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.6), squeeze=False)
    for ax, (model, mode, rows) in zip(axes[0], panels):
        a_vals, b_vals, grid, labels = invariance_cells(rows, region)
        im = ax.imshow(grid, vmin=-17, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(b_vals)), [f"{b:g}" for b in b_vals])
        ax.set_yticks(range(len(a_vals)), [f"{a:g}" for a in a_vals])
        ax.set(xlabel="b (shift added to the input)", ylabel="a (input scale)",
               title=f"{model}, BN in {mode} mode")
        for i in range(len(a_vals)):
            for j in range(len(b_vals)):
                ax.text(j, i, labels[i][j], ha="center", va="center", fontsize=8,
                        color="w" if np.isnan(grid[i, j]) or grid[i, j] < -6 else "k")
    fig.colorbar(im, ax=list(axes[0]),
                 label=f"log10 mean |Δ logits|, {region} pixels (exact 0 at the bottom)")
    save(fig, path)


def training_figures(result: dict, model, data, out: str):
    """``out``/curves.png and ``out``/samples.png of one training run: ``result`` is the
    JSON object of :func:`complexity.experiments.colourization.train.train`, ``model``
    the trained net, ``data`` its :class:`~complexity.experiments.colourization.data.ColourData`.
    Returns the predictions drawn (the first :data:`SAMPLES` validation images)."""
    from complexity.experiments.colourization.train import predict

    name = result["model"]
    curves({name: result["history"]}, os.path.join(out, "curves.png"),
           title=f"{name}: per-pixel cross-entropy")
    pred = predict(model, data.val_x[:SAMPLES])
    sample_grid(data.val_x[:SAMPLES], data.val_y[:SAMPLES], {name: pred}, data.centres,
                os.path.join(out, "samples.png"))
    return pred


def sweep_figures(result: dict, models: dict, data, out: str) -> None:
    """Every figure of a batch-size sweep: each run's :func:`training_figures` in its
    own folder, and in ``out`` curves.png (loss per epoch, one colour per batch size),
    final.png (final loss and accuracy against batch size) and samples.png (one
    prediction row per batch size). ``result`` is the JSON object of
    :func:`complexity.experiments.colourization.batch_sweep.batch_sweep`, ``models``
    maps each batch size to its trained net."""
    from complexity.experiments.colourization.batch_sweep import run_folder

    runs = result["runs"]
    # each run's predictions, drawn in its own folder, again in the comparison
    preds = {f"batch {r['batch_size']}": training_figures(
        r, models[r["batch_size"]], data, run_folder(out, r["batch_size"])) for r in runs}
    curves({f"batch {r['batch_size']}": r["history"] for r in runs},
           os.path.join(out, "curves.png"), title=f"{result['model']}: loss by batch size")
    against_batch_size(runs, os.path.join(out, "final.png"))
    sample_grid(data.val_x[:SAMPLES], data.val_y[:SAMPLES], preds, data.centres,
                os.path.join(out, "samples.png"))
