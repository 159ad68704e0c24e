"""Pictures of a segmentation run: loss and IoU curves, a prediction grid
(image / truth / prediction), and the cost of training last vs all side by side.

Drawn and saved atomically through :mod:`complexity.output.figures`.
"""
from __future__ import annotations

from complexity.output import figures
from complexity.output.figures import pyplot

DPI = 110  # these pictures have always been drawn at 110 dpi (the colourization ones at 100)


def save(fig, path: str) -> None:
    """:func:`complexity.output.figures.save` at :data:`DPI`."""
    figures.save(fig, path, dpi=DPI)


def curves(runs: dict, path: str) -> None:
    """Loss (left) and IoU (right) per epoch; ``runs`` maps a label to a run record
    of :func:`complexity.experiments.segmentation.train.fit`. Epoch 0 is the untrained head."""
    plt = pyplot()
    fig, (ax_loss, ax_iou) = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, run in runs.items():
        hist = run["history"]
        epochs = [0] + [h["epoch"] for h in hist]
        ax_loss.plot([h["epoch"] for h in hist], [h["train_loss"] for h in hist], "--",
                     marker=".", label=f"{label}: train")
        ax_loss.plot(epochs, [run["initial"]["val_loss"]] + [h["val_loss"] for h in hist],
                     marker="o", label=f"{label}: validation")
        ax_iou.plot(epochs, [run["initial"]["miou"]] + [h["miou"] for h in hist],
                    marker="o", label=f"{label}: mean IoU")
        ax_iou.plot(epochs, [run["initial"]["course_iou"]] + [h["course_iou"] for h in hist],
                    ":", marker="s", label=f"{label}: course IoU")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy per pixel", title="loss")
    ax_iou.set(xlabel="epoch (0 = untrained head)", ylabel="IoU", ylim=(0, 1),
               title="validation IoU")
    for ax in (ax_loss, ax_iou):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save(fig, path)


def prediction_grid(images, truths, preds, path: str, title: str = "") -> None:
    """Columns = examples; rows = image, ground truth, prediction."""
    from complexity.experiments.segmentation.data import denormalise

    plt = pyplot()
    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n, 5.0), squeeze=False)
    for i in range(n):
        for row, (pic, kw) in enumerate(((denormalise(images[i]), {}),
                                         (truths[i].numpy(), {"cmap": "gray", "vmin": 0, "vmax": 1}),
                                         (preds[i].numpy(), {"cmap": "gray", "vmin": 0, "vmax": 1}))):
            axes[row, i].imshow(pic, **kw)
            axes[row, i].set_xticks([])
            axes[row, i].set_yticks([])
    for row, name in enumerate(("image", "truth", "prediction")):
        axes[row, 0].set_ylabel(name)
    if title:
        fig.suptitle(title, fontsize=9)
    save(fig, path)


def cost_bars(costs: dict, path: str, title: str = "") -> None:
    """Grouped bars, log scale: ``costs`` maps a label ("last", "all") to a dict of
    quantity → value (bytes or FLOPs)."""
    plt = pyplot()
    labels = list(costs)
    keys = [k for k in costs[labels[0]] if all(isinstance(costs[l].get(k), (int, float))
                                                 for l in labels)]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(keys)), 3.8))
    width = 0.8 / len(labels)
    for j, label in enumerate(labels):
        xs = [i + (j - (len(labels) - 1) / 2) * width for i in range(len(keys))]
        ax.bar(xs, [max(costs[label][k], 1) for k in keys], width, label=f"--train {label}")
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([k.replace("_", "\n") for k in keys], fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("bytes or FLOPs (log scale)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title, fontsize=9)
    save(fig, path)
