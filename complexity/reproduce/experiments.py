"""The training reports of ``reproduce``: reports/colourization.md, batch_size.md and
invariance.md with their PNGs. Each step trains (or continues the checkpoint it left
in the runs folder), measures, and writes markdown + figures atomically.
"""
from __future__ import annotations

import os
import shutil
import sys
from argparse import Namespace
from dataclasses import dataclass, field
from complexity import atomic

FULL = {"colour": {"epochs": 25, "max_images": None},
        "sweep": {"sizes": [1, 5, 10, 100, 500, 1000], "epochs": 5, "max_images": None},
        "invariance_batch": 100}
QUICK = {"colour": {"epochs": 3, "max_images": 200},
         "sweep": {"sizes": [1, 10, 100], "epochs": 1, "max_images": 100},
         "invariance_batch": 50}


@dataclass
class Context:
    """What every report step gets: where to write, how much to do, shared data."""
    reports: str
    runs: str
    quick: bool = False
    fresh: bool = False
    progress: bool = True
    _data: dict = field(default_factory=dict)
    _cleared: set = field(default_factory=set)

    @property
    def settings(self):
        return QUICK if self.quick else FULL

    def data(self, max_images):
        if max_images not in self._data:
            from complexity.experiments.colourization import data

            self._data[max_images] = data.prepare(data.load_images(None, 7, max_images), 24)
        return self._data[max_images]

    def clear_once(self, out: str) -> None:
        """With ``fresh``, delete the run folder ``out`` — the first time it is asked for
        in this Context only: a later step reusing the run (invariance reuses the
        colourization checkpoints) must continue it, not train it again."""
        key = os.path.abspath(out)
        if self.fresh and key not in self._cleared:
            self._cleared.add(key)
            if os.path.isdir(out):
                shutil.rmtree(out)

    def log(self, text: str) -> None:
        if self.progress:
            sys.stderr.write(text + "\n")


def write_text(text: str, path: str) -> None:
    """Write a text file atomically (temporary file + rename)."""
    atomic.write_text(path, text)


def trained(ctx: Context, cfg, max_images, out):
    """Train ``cfg`` into ``out``, continuing the checkpoint there (with ``ctx.fresh``,
    the folder is cleared the first time this Context uses it)."""
    from complexity.experiments import checkpoint
    from complexity.experiments.colourization.train import CHECKPOINT, train

    data = ctx.data(max_images)
    path = os.path.join(out, CHECKPOINT)
    ctx.clear_once(out)
    if os.path.isfile(path):
        try:
            return train(data, cfg, out=out, resume=path, progress=ctx.progress)
        except checkpoint.CheckpointError as e:
            ctx.log(f"{e}; training {cfg.model} from scratch")
    return train(data, cfg, out=out, progress=ctx.progress)


def _md_table(headers, rows) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="github", floatfmt=".4f")


def _flag(cond: bool) -> str:
    return "**met**" if cond else "**not met**"


# ------------------------------------------------------------------ colourization
def colourization(ctx: Context):
    """CNN vs UNet on default settings (SPEC §1, B3)."""
    from complexity.output import colourization as plots
    from complexity.experiments.colourization.train import TrainConfig, predict

    s = ctx.settings["colour"]
    results, preds = {}, {}
    for name in ("cnn", "unet"):
        ctx.log(f"colourization: training {name}")
        result, model = trained(ctx, TrainConfig(model=name, epochs=s["epochs"]), s["max_images"],
                                os.path.join(ctx.runs, "colourization", name))
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
    text = f"""# Colourization: CNN vs UNet (SPEC §1, Parts A and B)

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

{_md_table(("model", "train loss", "val loss", "val per-pixel acc", "seconds (wall, measured)"), rows)}

{"(`--quick` settings: far too short to judge the target; the full run is what counts.)" + chr(10) + chr(10) if ctx.quick else ""}Target — the UNet ends with lower validation loss ({unet['val_loss']:.4f} vs
{cnn['val_loss']:.4f}: {_flag(unet['val_loss'] < cnn['val_loss'])}) and higher
validation accuracy ({unet['val_acc']:.4f} vs {cnn['val_acc']:.4f}:
{_flag(unet['val_acc'] > cnn['val_acc'])}) than the CNN.

Why: the CNN must rebuild 32×32 detail from an 8×8 bottleneck, so its colours are
blurred and washed out; the UNet's skip connections hand the full-resolution features
(and, in its last conv, the grey input itself) to the decoder.

![training curves](colourization_curves.png)

Rows: grey input, target (nearest of 24 colours), CNN prediction, UNet prediction
(validation crops):

![samples](colourization_samples.png)

## Per epoch

{_md_table(("epoch", "CNN train", "CNN val", "CNN acc", "UNet train", "UNet val", "UNet acc"),
           per_epoch)}
"""
    path = os.path.join(ctx.reports, "colourization.md")
    write_text(text, path)
    return [path]


# ------------------------------------------------------------------ batch size
def batch_size(ctx: Context):
    """The UNet at batch sizes 1 … 1000 (SPEC §1, B4)."""
    from complexity.cli import train as cmd_train

    s = ctx.settings["sweep"]
    out = os.path.join(ctx.runs, "batch_size")
    ctx.clear_once(out)
    args = Namespace(model="unet", sizes=s["sizes"], epochs=s["epochs"], batch_size=100,
                     lr=0.001, seed=0, nf=32, kernel=3, nc=24, out=out, quiet=not ctx.progress)
    ctx.log(f"batch_size: training the UNet at batch sizes {s['sizes']}")
    result = cmd_train.sweep(args, ctx.data(s["max_images"]), resume=True)
    for png in ("curves.png", "final.png", "samples.png"):
        atomic.copy_file(os.path.join(out, png), os.path.join(ctx.reports, f"batch_size_{png}"))
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
    text = f"""# Batch size (SPEC §1, B4)

The UNet, {s['epochs']} epochs at each batch size, Adam lr 0.001, NF 32, NC 24, seed 0.
Data: {result['data']}.

Regenerate: `python -m complexity reproduce{' --quick' if ctx.quick else ''} --only batch_size` or
`python -m complexity sweep-batch --sizes {','.join(map(str, s['sizes']))} --epochs {s['epochs']}{cap}`.

{_md_table(("batch size", "steps/epoch", "train loss", "val loss", "val per-pixel acc",
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
    write_text(text, path)
    return [path]


# ------------------------------------------------------------------ invariance
ROUNDING = 1e-12  # float64 rounding through six layers leaves ~1e-14 (tests/test_train.py)


def _worst_positive_scaling(study) -> float | None:
    """Largest Δ (interior or border) over the train-mode BN rows with a > 0, b = 0."""
    values = [r[region]["max"] for r in study["rows"]
              if r["bn"] == "train" and r["a"] > 0 and r["b"] == 0
              for region in ("interior", "border") if r[region]["max"] is not None]
    return max(values) if values else None


def scaling_claim(exact_study, float32_study) -> str:
    """The report's sentence on CNN, train-mode BN, a > 0, b = 0 — computed from the rows,
    with whether Δ stayed at float64 rounding level."""
    worst = _worst_positive_scaling(exact_study)
    if worst is None:
        return "no pixel measured, so nothing can be said"
    w32 = _worst_positive_scaling(float32_study)
    remainder = f" (largest Δ {w32:.1e})" if w32 is not None else ""
    return (f"the float64 ε → 0 rows below have largest Δ {worst:.1e}: at rounding level "
            f"(below {ROUNDING:g}) {_flag(worst < ROUNDING)}; the float32 ε = 1e-5 rows show "
            f"the small remainder ε causes{remainder}")


def invariance(ctx: Context):
    """y = a·x + b on the trained CNN and UNet (SPEC §1, A4)."""
    from complexity.experiments.colourization import invariance as inv
    from complexity.output import colourization as plots
    from complexity.experiments.colourization.train import TrainConfig

    from complexity.cli.invariance import render

    s = ctx.settings["colour"]
    n = ctx.settings["invariance_batch"]
    data = ctx.data(s["max_images"])
    x, y = data.val_x[:n], data.val_y[:n]
    studies, sections, by_arithmetic = [], [], {}
    for name in ("cnn", "unet"):
        _, model = trained(ctx, TrainConfig(model=name, epochs=s["epochs"]), s["max_images"],
                           os.path.join(ctx.runs, "colourization", name))
        for exact in (False, True):
            m, xx = (inv.exact(model), x.double()) if exact else (model, x)
            st = inv.study(m, name, xx, y)
            st.update(exact=exact, source=f"trained {s['epochs']} epochs by `reproduce`")
            by_arithmetic[name, exact] = st
            if not exact:
                studies.append(st)
            sections.append(render(st, tablefmt="github"))
    plots.invariance_grid(studies, os.path.join(ctx.reports, "invariance_interior.png"))
    plots.invariance_grid(studies, os.path.join(ctx.reports, "invariance_border.png"), "border")
    theory = inv.__doc__.split("What holds:", 1)[1].split("Border pixels", 1)[0]
    body = "\n\n".join(sections)
    text = f"""# Input scaling y = a·x + b (SPEC §1, A4)

The claim: "batch norm makes the output invariant, so no effect". What holds:
{theory}
Measured on {n} validation crops ({data.description}) with the CNN and UNet trained
by the colourization report; Δ is the largest absolute change over the {24} logits of a
pixel, between input a·x + b and input x, with BN in the same mode. "Border" pixels
are those whose receptive field reaches some conv's zero padding: a band of 15 px
at each edge for k = 3 (checked against an independent measurement in
tests/test_train.py), which leaves only the 2×2 centre of a 32×32 crop as interior.

Regenerate: `python -m complexity reproduce{' --quick' if ctx.quick else ''} --only invariance`, or
`python -m complexity invariance --model cnn --checkpoint runs/reproduce/colourization/cnn/checkpoint.pt`
(add `--exact` for the float64, ε → 0 rows).

## When the claim holds

* **CNN, BN in train mode, a > 0, b = 0**: no effect at every pixel, up to BN's ε —
  {scaling_claim(by_arithmetic["cnn", True], by_arithmetic["cnn", False])}.
* Everything else changes the output: a ≤ 0, any b ≠ 0 (interior pixels too, since
  BN's mean includes the border), BN in eval mode (what a trained model uses at
  test time), and the UNet always.

In the figures, each cell is log10 of the mean Δ over pixels and images; −17 marks
exactly 0 (only a = 1, b = 0). Float32, ε = 1e-5, as trained:

![mean |Δ| interior](invariance_interior.png)

![mean |Δ| border](invariance_border.png)

## Tables

{body}
"""
    path = os.path.join(ctx.reports, "invariance.md")
    write_text(text, path)
    return [path]
