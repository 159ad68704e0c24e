"""The course question on the effect of batch size on training: one model trained per
batch size, everything else held fixed, each in its own run folder.

A batch of B takes ⌈N/B⌉ optimizer steps per epoch over N training images, so at a
fixed number of epochs large batches take far fewer steps.
"""
from __future__ import annotations

import os
from dataclasses import replace

from complexity.experiments.colourization.train import TrainConfig, train, train_or_resume


def run_folder(out: str, batch_size: int) -> str:
    """The run folder of one batch size inside the sweep's folder ``out``.

    >>> run_folder("runs/sweep-batch", 10)
    'runs/sweep-batch/batch-10'
    """
    return os.path.join(out, f"batch-{batch_size}")


def batch_sweep(data, base_cfg: TrainConfig, sizes, out: str, resume: bool = False,
                progress: bool = True):
    """Train ``base_cfg`` once per batch size in ``sizes`` on ``data``, each into
    :func:`run_folder` (checkpoint.pt, history.json).

    With ``resume``, a checkpoint a size's folder already holds is continued
    (:func:`~complexity.experiments.colourization.train.train_or_resume`); without,
    every size trains afresh. ``base_cfg.batch_size`` is ignored.

    Returns ``(result, models)``: ``result`` is the JSON object of the ``sweep-batch``
    command (``{"model", "epochs", "lr", "data", "train_images", "out", "runs"}``, one
    run per size with its ``steps_per_epoch``), ``models`` maps each batch size to its
    trained net (for the figures, :func:`complexity.output.colourization.sweep_figures`).
    """
    runs, models = [], {}
    for bs in sizes:
        cfg = replace(base_cfg, batch_size=bs)
        folder = run_folder(out, bs)
        if resume:
            result, model = train_or_resume(data, cfg, folder, progress=progress)
        else:
            result, model = train(data, cfg, out=folder, progress=progress)
        result["steps_per_epoch"] = -(-len(data.train_x) // bs)
        runs.append(result)
        models[bs] = model
    result = {"model": base_cfg.model, "epochs": base_cfg.epochs, "lr": base_cfg.lr,
              "data": data.description, "train_images": len(data.train_x), "out": out,
              "runs": runs}
    return result, models
