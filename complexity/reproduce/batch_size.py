"""reports/batch_size.md: the course question on the effect of batch size on
training — the UNet trained at batch sizes 1 … 1000 for the same number of epochs.
"""
from __future__ import annotations

import os

from complexity.atomic import copy_file, write_text
from complexity.reproduce.context import Context, md_table


def write(ctx: Context) -> list:
    """Train the UNet at each batch size (or continue the checkpoints in ``ctx.runs``)
    and write batch_size.md with its three PNGs into ``ctx.reports``; returns [the
    markdown's path]."""
    from complexity.experiments.colourization.batch_sweep import batch_sweep
    from complexity.experiments.colourization.train import TrainConfig
    from complexity.output.colourization import sweep_figures

    s = ctx.settings["sweep"]
    out = os.path.join(ctx.runs, "batch_size")
    ctx.clear_once(out)
    ctx.log(f"batch_size: training the UNet at batch sizes {s['sizes']}")
    data = ctx.data(s["max_images"])
    result, models = batch_sweep(data, TrainConfig(model="unet", epochs=s["epochs"]), s["sizes"],
                                 out, resume=True, progress=ctx.progress)
    sweep_figures(result, models, data, out)
    for png in ("curves.png", "final.png", "samples.png"):
        copy_file(os.path.join(out, png), os.path.join(ctx.reports, f"batch_size_{png}"))
    rows = [(r["batch_size"], r["steps_per_epoch"], r["final"]["train_loss"],
             r["final"]["val_loss"], r["final"]["val_acc"], f"{r['seconds']:.0f}")
            for r in result["runs"]]
    best = min(result["runs"], key=lambda r: r["final"]["val_loss"])
    cap = f" --max-images {s['max_images']}" if s["max_images"] else ""
    slow = [r for r in result["runs"] if r["steps_per_epoch"] * s["epochs"] <= 20]
    few_steps = ("Batch " + ", ".join(str(r["batch_size"]) for r in slow) + " made only "
                 + ", ".join(str(r["steps_per_epoch"] * s["epochs"]) for r in slow)
                 + f" optimizer steps in {s['epochs']} epochs: their validation loss is still "
                 "near its starting value." if slow else "")
    text = f"""# Batch size: how do batches of 1, 5, 10, 100, 500 and 1000 change the curves and the outputs?

The UNet, {s['epochs']} epochs at each batch size, Adam lr 0.001, NF 32, NC 24, seed 0.
Data: {result['data']}.

Regenerate: `python -m complexity reproduce{' --quick' if ctx.quick else ''} --only batch_size` or
`python -m complexity sweep-batch --sizes {','.join(map(str, s['sizes']))} --epochs {s['epochs']}{cap}`.

{md_table(("batch size", "steps/epoch", "train loss", "val loss", "val per-pixel acc",
            "seconds (wall, measured)"), rows)}

Lowest validation loss: batch {best['batch_size']} ({best['final']['val_loss']:.4f}).
{few_steps}
At a fixed number of epochs a batch of B takes ⌈N/B⌉ optimizer steps per epoch, so
large batches take far fewer steps (and BN statistics over many images are smooth),
while batch 1 takes N noisy steps whose BN statistics come from a single image —
its train-mode and eval-mode networks differ most.

![curves per batch size](batch_size_curves.png)

![final loss and accuracy against batch size](batch_size_final.png)

Rows: grey input, target, then the prediction at each batch size:

![samples](batch_size_samples.png)
"""
    path = os.path.join(ctx.reports, "batch_size.md")
    write_text(path, text)
    return [path]
