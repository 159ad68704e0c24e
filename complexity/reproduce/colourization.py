"""reports/colourization.md: the course question comparing the colourization CNN and
UNet trained on the same data with the same settings — curves, final figures,
sample predictions.
"""
from __future__ import annotations

import os

from complexity.atomic import write_text
from complexity.reproduce.context import Context, flag, md_table


def write(ctx: Context) -> list:
    """Train the CNN and the UNet (or continue their checkpoints in ``ctx.runs``) and
    write colourization.md with its two PNGs into ``ctx.reports``; returns
    [the markdown's path]."""
    from complexity.experiments.colourization.train import TrainConfig, predict
    from complexity.output import colourization as plots

    s = ctx.settings["colour"]
    results, preds = {}, {}
    for name in ("cnn", "unet"):
        ctx.log(f"colourization: training {name}")
        result, model = ctx.trained(TrainConfig(model=name, epochs=s["epochs"]),
                                    s["max_images"], os.path.join(ctx.runs, "colourization", name))
        data = ctx.data(s["max_images"])
        results[name] = result
        preds[name] = predict(model, data.val_x[:plots.SAMPLES])
    plots.curves({k: r["history"] for k, r in results.items()},
                 os.path.join(ctx.reports, "colourization_curves.png"),
                 title="CNN vs UNet: per-pixel cross-entropy")
    plots.sample_grid(data.val_x[:plots.SAMPLES], data.val_y[:plots.SAMPLES], preds,
                      data.centres, os.path.join(ctx.reports, "colourization_samples.png"))
    cnn, unet = results["cnn"]["final"], results["unet"]["final"]
    cap = f" --max-images {s['max_images']}" if s["max_images"] else ""
    rows = [(k, r["final"]["train_loss"], r["final"]["val_loss"], r["final"]["val_acc"],
             f"{r['seconds']:.0f}") for k, r in results.items()]
    per_epoch = [(h["epoch"], h["train_loss"], h["val_loss"], h["val_acc"],
                  u["train_loss"], u["val_loss"], u["val_acc"])
                 for h, u in zip(results["cnn"]["history"], results["unet"]["history"])]
    text = f"""# Colourization: does the UNet (skip connections) beat the plain CNN on validation loss and accuracy?

Data: {results['cnn']['data']}. Grey input = mean of R, G, B; target = nearest of
24 k-means colour centres. Settings: {s['epochs']} epochs, batch 100, Adam lr 0.001,
NF 32, NC 24, kernel 3, seed 0 — the defaults of `train`{" except epochs and --max-images" if ctx.quick else ""}.
Seconds are wall time on a 2-core machine shared with other jobs: an estimate of
cost, not a benchmark.

Regenerate: `python -m complexity reproduce{' --quick' if ctx.quick else ''} --only colourization`,
or one model at a time:
`python -m complexity train --model cnn --epochs {s['epochs']}{cap}` and
`python -m complexity train --model unet --epochs {s['epochs']}{cap}`.

## Final figures (measured, epoch {s['epochs']})

{md_table(("model", "train loss", "val loss", "val per-pixel acc", "seconds (wall, measured)"), rows)}

{"(`--quick` settings: far too short to judge the target; the full run is what counts.)" + chr(10) + chr(10) if ctx.quick else ""}Target — the UNet ends with lower validation loss ({unet['val_loss']:.4f} vs
{cnn['val_loss']:.4f}: {flag(unet['val_loss'] < cnn['val_loss'])}) and higher
validation accuracy ({unet['val_acc']:.4f} vs {cnn['val_acc']:.4f}:
{flag(unet['val_acc'] > cnn['val_acc'])}) than the CNN.

Why: the CNN must rebuild 32×32 detail from an 8×8 bottleneck, so its colours are
blurred and washed out; the UNet's skip connections hand the full-resolution features
(and, in its last conv, the grey input itself) to the decoder.

![training curves](colourization_curves.png)

Rows: grey input, target (nearest of 24 colours), CNN prediction, UNet prediction
(validation crops):

![samples](colourization_samples.png)

## Per epoch

{md_table(("epoch", "CNN train", "CNN val", "CNN acc", "UNet train", "UNet val", "UNet acc"),
           per_epoch)}
"""
    path = os.path.join(ctx.reports, "colourization.md")
    write_text(path, text)
    return [path]
