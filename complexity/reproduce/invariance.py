"""reports/invariance.md: the course question on whether scaling and shifting the
input (y = a·x + b) changes the colourization nets' output, measured on the trained
CNN and UNet against what theory predicts.
"""
from __future__ import annotations

import os

from complexity.atomic import write_text
from complexity.reproduce.context import Context, flag

ROUNDING = 1e-12  # float64 rounding through six layers leaves ~1e-14 (tests/test_experiments_colourization.py)


def worst_positive_scaling(study) -> float | None:
    """Largest Δ (interior or border) over the train-mode BN rows with a > 0, b = 0."""
    values = [r[region]["max"] for r in study["rows"]
              if r["bn"] == "train" and r["a"] > 0 and r["b"] == 0
              for region in ("interior", "border") if r[region]["max"] is not None]
    return max(values) if values else None


def scaling_claim(exact_study, float32_study) -> str:
    """The report's sentence on CNN, train-mode BN, a > 0, b = 0 — computed from the rows,
    with whether Δ stayed at float64 rounding level."""
    worst = worst_positive_scaling(exact_study)
    if worst is None:
        return "no pixel measured, so nothing can be said"
    w32 = worst_positive_scaling(float32_study)
    remainder = f" (largest Δ {w32:.1e})" if w32 is not None else ""
    return (f"the float64 ε → 0 rows below have largest Δ {worst:.1e}: at rounding level "
            f"(below {ROUNDING:g}) {flag(worst < ROUNDING)}; the float32 ε = 1e-5 rows show "
            f"the small remainder ε causes{remainder}")


def write(ctx: Context) -> list:
    """y = a·x + b on the CNN and UNet of the colourization report (trained first if
    their checkpoints are not in ``ctx.runs``): write invariance.md with its two PNGs
    into ``ctx.reports``; returns [the markdown's path]."""
    from complexity.experiments.colourization import invariance as inv
    from complexity.experiments.colourization.train import TrainConfig
    from complexity.output import colourization as plots
    from complexity.output.experiments import render_invariance

    s = ctx.settings["colour"]
    n = ctx.settings["invariance_batch"]
    data = ctx.data(s["max_images"])
    x, y = data.val_x[:n], data.val_y[:n]
    studies, sections, by_arithmetic = [], [], {}
    for name in ("cnn", "unet"):
        _, model = ctx.trained(TrainConfig(model=name, epochs=s["epochs"]), s["max_images"],
                               os.path.join(ctx.runs, "colourization", name))
        for exact in (False, True):
            m, xx = (inv.exact(model), x.double()) if exact else (model, x)
            st = inv.study(m, name, xx, y)
            st.update(exact=exact, source=f"trained {s['epochs']} epochs by `reproduce`")
            by_arithmetic[name, exact] = st
            if not exact:
                studies.append(st)
            sections.append(render_invariance(st, "markdown"))
    plots.invariance_grid(studies, os.path.join(ctx.reports, "invariance_interior.png"))
    plots.invariance_grid(studies, os.path.join(ctx.reports, "invariance_border.png"), "border")
    theory = inv.__doc__.split("What holds:", 1)[1].split("Border pixels", 1)[0]
    body = "\n\n".join(sections)
    text = f"""# Input scaling y = a·x + b: does batch norm make the output invariant?

The claim: "batch norm makes the output invariant, so no effect". What holds:
{theory}
Measured on {n} validation crops ({data.description}) with the CNN and UNet trained
by the colourization report; Δ is the largest absolute change over the {24} logits of a
pixel, between input a·x + b and input x, with BN in the same mode. "Border" pixels
are those whose receptive field reaches some conv's zero padding: a band of 15 px
at each edge for k = 3 (checked against an independent measurement in
tests/test_experiments_colourization.py), which leaves only the 2×2 centre of a 32×32 crop as interior.

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
    write_text(path, text)
    return [path]
