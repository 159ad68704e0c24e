"""reports/finetune.md and its plots: the assignment's questions on the cost of
fine-tuning all n layers against only the last one, and on doubling the input's
height and width, measured: ``python -m complexity reproduce --only finetune``.

Every figure in the report is computed in this run (prediction and fake-tensor
measurement, complexity.cost.finetune); the prose only names what the numbers show.
Takes a minute or two on two CPU cores; needs no GPU and no download. torch is
imported when the report is written, not with this module.
"""
from __future__ import annotations

import os
import sys
import time

from complexity.atomic import write_text

LAYERS = [1, 2, 4, 8, 16, 32]


def by(results, **kw):
    return [r for r in results if all((list(r[k]) if k == "size" else r[k]) == v
                                      for k, v in kw.items())]


def one(results, **kw):
    (r,) = by(results, **kw)
    return r


def worst_error(results):
    """Largest |error| % per quantity over ``results``."""
    from complexity.cost.keys import KEYS
    from complexity.output import finetune as fr

    return {q: max(abs(fr.error_pct(r["predicted"][q], r["measured"][q])) for r in results)
            for q in KEYS}


def write(ctx) -> list:
    """Run the sweeps and write finetune.md and its two PNGs into ``ctx.reports`` (a
    :class:`~complexity.reproduce.context.Context`); returns their paths."""
    from tabulate import tabulate

    from complexity.cost import finetune as ft
    from complexity.cost.keys import KEYS
    from complexity.output import finetune as fr

    out_dir = ctx.reports
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.time()
    log = lambda r: sys.stderr.write(f"  {r['model']} n={r['layers']} {r['size']} {r['mode']}\n")  # noqa
    stack = ft.sweep(["stack"], LAYERS, [(64, 64)], [8], ["full", "last"], width=16, progress=log)
    res = ft.sweep(["stack", "cnn", "unet"], [8], [(32, 32), (64, 64), (128, 128)], [8],
                   ["full", "last"], width=16, progress=log)
    wide = ft.sweep(["stack"], LAYERS, [(8, 8)], [1], ["last"], width=128, progress=log)
    deep = ft.sweep(["deeplabv3_resnet101"], [1], [(224, 224), (448, 448)], [8],
                    ["full", "last"], progress=log)
    other = ft.sweep(["resnet18", "mobilenet_v3_small", "convnext_tiny", "vit_b_16"], [1],
                     [(224, 224)], [2], ["full", "last"], progress=log)
    unruled = sorted({c for r in other for c in r["unmodelled"]})
    fr.plot(stack, os.path.join(out_dir, "finetune_layers.png"))
    fr.plot(res, os.path.join(out_dir, "finetune_resolution.png"))
    elapsed = time.time() - t0

    md = ["# Fine-tuning cost: all layers vs the last layer, and doubling the input size", "",
          "Regenerate everything here (text, tables, both PNGs) with one command, from the "
          "repository root:", "", "```bash", "python -m complexity reproduce --only finetune", "```", "",
          f"(this run: {elapsed:.0f} s on the CPU; no GPU, no download). The same tables come "
          "from the CLI, e.g. `python -m complexity finetune --model stack --layers "
          "1,2,4,8,16,32 --mode full,last --size 64 --batch 8 --format markdown --plot "
          "reports/finetune_layers.png`.", "",
          "**What is measured.** One Adam step (forward, cross-entropy, backward, "
          "`optimizer.step()`) after a warm-up step, so the Adam state exists as in every "
          "step but the first. It runs on PyTorch fake tensors (shapes, dtypes and storage "
          "identity; no data), so deeplabv3_resnet101 at 448×448 takes seconds. FLOPs: "
          "`torch.utils.flop_counter.FlopCounterMode` (2 per multiply-add of convolutions "
          "and matrix products; element-wise ops count 0; its rule for grouped-convolution backward corrected, see below). Kept activations: "
          "`torch.autograd.graph.saved_tensors_hooks`, each storage once, parameters and "
          "buffers left out. Peak: a `TorchDispatchMode` that adds each new storage and "
          "drops it when freed (parameters, buffers, Adam state, input and int64 target "
          "are resident). float32 throughout. On fake tensors autograd sums two gradients "
          "of one tensor out of place (`InputBuffer::accumulate` adds in place only into a "
          "plain tensor it holds the last reference to); on real tensors it may add in "
          "place and need up to one activation less at that moment. **What is predicted.** The same quantities "
          "from the model's structure (`complexity/cost/predict/trace.py`: a meta-device "
          "trace of functional calls, per-call derivative rules from the registry in `complexity/cost/predict/rules/`, a liveness schedule for "
          "the peak), and for `stack`, CNN and UNet also as closed formulas "
          "(`complexity/cost/fit/closed_forms.py`), which equal the measurement exactly for "
          "the six quantities other than the peak (tests/test_cost_finetune.py).", ""]

    md += _stack_section(stack)
    md += _deeplab_section(deep)
    md += _doubling_section(res, deep)
    allres = stack + wide + res + deep
    werr = worst_error(allres)
    md += ["## Targets", "",
           f"Worst |predicted − measured| / measured over all {len(allres)} configurations "
           "above (stack n ≤ 32, CNN, UNet, deeplabv3_resnet101 at 224 and 448; full and last):", ""]
    md += [tabulate([[q, f"{werr[q]:.3f}%", "10%" if q == "peak_bytes" else "5%",
                      "met" if werr[q] <= (10 if q == "peak_bytes" else 5) else "NOT met"]
                     for q in KEYS], ["quantity", "worst error", "target", ""],
                    tablefmt="github", disable_numparse=True), ""]
    md += answers(stack, wide, res, deep)
    md += beyond(other, unruled)
    write_text(os.path.join(out_dir, "finetune.md"), "\n".join(md))
    return [os.path.join(out_dir, f) for f in
            ("finetune.md", "finetune_layers.png", "finetune_resolution.png")]


def _stack_section(stack) -> list:
    """The `stack` sweep: n similar layers, all trained vs the last."""
    from tabulate import tabulate

    from complexity.cost.fit import closed_forms as fs
    from complexity.cost import finetune as ft
    from complexity.cost.keys import KEYS
    from complexity.output import finetune as fr

    md = []
    md += ["## All n layers vs the last — n similar layers: `stack`, 64×64, batch 8, C = 16", "",
           "`stack` = n blocks Conv 3×3 16→16 → BatchNorm → ReLU, then a 1×1 conv 16 → 2 "
           "(the last layer). Measured, exact bytes and FLOPs (predicted: "
           + _agreement(stack) + "):", ""]
    rows = []
    for n in LAYERS:
        for mode in ("full", "last"):
            m = one(stack, layers=n, mode=mode)["measured"]
            rows.append([n, mode] + [f"{m[q]:,}" for q in KEYS])
    md += [tabulate(rows, ["n", "mode"] + list(KEYS), tablefmt="github",
                    disable_numparse=True), ""]
    md += ["Closed forms (B batch, H×W input, K = 2 classes, k = 3; bytes):", ""]
    for mode in ("full", "last"):
        f = fs.stack_formulas(mode)
        md.append(f"- {mode}: saved activations = `{f['saved_activation_bytes']}`; "
                  f"backward FLOPs = `{f['backward_flops']}`")
    md += ["", "Fitted log-log slopes against n (measured; whole range 1–32, then between "
           "n = 16 and 32):", ""]
    srows = []
    for tail in (False, True):
        for s in ft.slopes(stack, "layers", tail=tail):
            srows.append([s["mode"], "%d–%d" % tuple(s["range"])] + [fr.slope_text(s[q]) for q in KEYS])
    md += [tabulate(srows, ["mode", "n"] + list(KEYS), tablefmt="github",
                    disable_numparse=True), ""]
    ratio = {n: (lambda f, l: (f["forward_flops"] + f["backward_flops"])
                 / (l["forward_flops"] + l["backward_flops"]))(
        one(stack, layers=n, mode="full")["measured"], one(stack, layers=n, mode="last")["measured"])
        for n in LAYERS}
    md += ["Training FLOPs full / last: " + ", ".join(f"n={n}: {v:.3f}" for n, v in ratio.items())
           + ".", ""]
    md += ["![memory and FLOPs against n](finetune_layers.png)", ""]

    return md


def _deeplab_section(deep) -> list:
    """deeplabv3_resnet101, all layers vs the head: predicted vs measured."""
    from tabulate import tabulate

    from complexity.cost.keys import KEYS
    from complexity.output import finetune as fr

    md = []
    md += ["## All layers vs the last in the real case: deeplabv3_resnet101, head swapped to 256 → 2, batch 8", "",
           "`last` = only `classifier.4` trains (the course's head swap). Predicted vs measured:", ""]
    drows = []
    for r in deep:
        for q in KEYS:
            p, m = r["predicted"][q], r["measured"][q]
            drows.append(["%d×%d" % tuple(r["size"]), r["mode"], q, f"{p:,}", f"{m:,}",
                          f"{fr.error_pct(p, m):+.2f}%"])
    md += [tabulate(drows, ["size", "mode", "quantity", "predicted",
                            "measured", "error"], tablefmt="github", disable_numparse=True), ""]

    return md


def _doubling_section(res, deep) -> list:
    """Measured ratios when H and W double, and the closed forms of the kept activations."""
    from tabulate import tabulate

    from complexity.cost.fit import closed_forms as fs
    from complexity.cost.keys import KEYS
    from complexity.counting import symbolic as sym

    md = []
    md += ["## Doubling the input height and width", "",
           "Measured ratio (2H×2W) / (H×W), batch 8 (stack: n = 8, C = 16; CNN/UNet: "
           "NF = 32, NC = 24):", ""]
    crow = []
    for model, sizes in (("stack", [(32, 32), (64, 64), (128, 128)]),
                         ("cnn", [(32, 32), (64, 64), (128, 128)]),
                         ("unet", [(32, 32), (64, 64), (128, 128)]),
                         ("deeplabv3_resnet101", [(224, 224), (448, 448)])):
        src = deep if model.startswith("deeplab") else res
        for mode in ("full", "last"):
            for a, b in zip(sizes, sizes[1:]):
                ra = one(src, model=model, mode=mode, size=list(a))["measured"]
                rb = one(src, model=model, mode=mode, size=list(b))["measured"]
                crow.append([model, mode, "%d→%d" % (a[0], b[0])]
                            + [f"{rb[q] / ra[q]:.3f}" if ra[q] else "–" for q in KEYS])
    md += [tabulate(crow, ["model", "mode", "H=W"] + list(KEYS), tablefmt="github",
                    disable_numparse=True), ""]
    md += ["Closed forms of the kept activations, full mode (bytes; B batch, NF, NC, "
           "NIC = 1 input channel, H×W; from `complexity.cost.fit.closed_forms`, equal to the "
           "measurement in the tests). Every term but the BatchNorm statistics (8·NF, "
           "8·NC: per channel, not per pixel) and the 4-byte loss scalar scales with H·W "
           "(exactly ×4 on doubling when H and W are multiples of 4; the CNN floors):", ""]
    for model in ("cnn", "unet"):
        f = fs.colourization_formulas(model, "full")["saved_activation_bytes"]
        md.append(f"- {model}: `{f.subs({sym.NIC: 1, sym.k: 3})}`")
    md += ["", "![memory and FLOPs against resolution](finetune_resolution.png)", ""]

    return md


def depthwise_counts():
    """Forward, PyTorch's backward and the corrected backward count of one depthwise conv."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from complexity.cost.flops import flop_counter

    conv = torch.nn.Conv2d(16, 16, 3, padding=1, groups=16)
    counts = []
    for counter in (FlopCounterMode(display=False), flop_counter()):
        x = torch.randn(2, 16, 8, 8, requires_grad=True)
        with FlopCounterMode(display=False) as f:
            y = conv(x)
        with counter:
            y.sum().backward()
        counts.append(counter.get_total_flops())
    return f.get_total_flops(), counts[0], counts[1]


def beyond(other, unruled):
    """Other torchvision models: where the prediction's rules, or the counter, end."""
    from tabulate import tabulate

    from complexity.cost.keys import KEYS
    from complexity.output import finetune as fr

    dw = depthwise_counts()
    rows = []
    for r in other:
        errs = {q: fr.error_pct(r["predicted"][q], r["measured"][q]) for q in KEYS}
        worst = max(errs, key=lambda q: abs(errs[q]))
        rows.append([r["model"], r["mode"], worst, f"{errs[worst]:+.2f}%",
                     f"{errs['peak_bytes']:+.2f}%"])
    return [
        "## Beyond the targets: other torchvision models (224×224, batch 2)", "",
        "Not part of the issue's targets; shown so that the limits are visible. Worst "
        "error of any quantity, and the peak's error:", "",
        tabulate(rows, ["model", "mode", "worst quantity", "its error", "peak error"],
                 tablefmt="github", disable_numparse=True), "",
        "- Grouped and depthwise convolutions (MobileNet, ConvNeXt): the prediction counts "
        "a weight gradient as 2·outputs·fan-in, as for the forward; PyTorch 2.14.1's own "
        "`FlopCounterMode` rule (`conv_backward_flop`) builds the weight-gradient shape "
        "from transposed shapes that lose the division by `groups`, so it counts that "
        "gradient `groups` times over. Checked by hand on a depthwise 3×3 conv, 16 "
        f"channels, 2×16×8×8 input (this run): forward {dw[0]:,} FLOPs (= 2·2·16·64·9), "
        f"backward counted {dw[1]:,} by PyTorch's rule instead of 2 × {dw[0]:,} = "
        f"{2 * dw[0]:,} (pytorch/pytorch PR #183405 touches exactly this line). The "
        "measurement here uses the corrected rule of `complexity/cost/flops.py`, which counts "
        f"{dw[2]:,}.",
        "- Calls with no rule (each result's `unmodelled` list; the CLI marks those "
        "predictions with ≈, approximate): "
        + (", ".join(unruled) + " (counted as keeping nothing and costing no FLOPs)"
           if unruled else "none: `nn.MultiheadAttention` is traced through its functional "
           "body, so its projections, attention and dropout meet their rules") + ".", ""]


def _agreement(results) -> str:
    """How the predictions compare with the measurements, in words."""
    from complexity.cost.keys import KEYS

    off = [q for q in KEYS if q != "peak_bytes"
           if any(r["predicted"][q] != r["measured"][q] for r in results)]
    gap = max(abs(r["predicted"]["peak_bytes"] - r["measured"]["peak_bytes"]) for r in results)
    if not off and gap == 0:
        return "the same for every quantity, the peak included"
    head = "the same" if not off else "NOT the same (" + ", ".join(off) + ")"
    return f"{head} for every quantity but the peak, which is within {gap:,} bytes"


def answers(stack, wide, res, deep):
    """The prose answers, every number taken from this run."""
    from complexity.cost import finetune as ft

    sl = {(s["mode"], tuple(s["range"])): s for t in (False, True)
          for s in ft.slopes(stack, "layers", tail=t)}
    whole_f, whole_l = sl["full", (1, 32)], sl["last", (1, 32)]
    tail_f = sl["full", (16, 32)]
    w_l = ft.slopes(wide, "layers")[0]
    s32f = one(stack, layers=32, mode="full")["measured"]
    s32l = one(stack, layers=32, mode="last")["measured"]
    w32 = one(wide, layers=32, mode="last")["measured"]
    d = {(r["size"][0], r["mode"]): r["measured"] for r in deep}
    train = lambda m: m["forward_flops"] + m["backward_flops"]  # noqa: E731
    ratio32 = train(s32f) / train(s32l)
    c5 = res
    saved_ratios, param_ratios = [], []
    for model in ("stack", "cnn", "unet"):
        for mode in ("full", "last"):
            for a, b in ((32, 64), (64, 128)):
                ra = one(c5, model=model, mode=mode, size=[a, a])["measured"]
                rb = one(c5, model=model, mode=mode, size=[b, b])["measured"]
                saved_ratios.append(rb["saved_activation_bytes"] / ra["saved_activation_bytes"])
                param_ratios.append(rb["param_bytes"] / ra["param_bytes"])
    ok = lambda c: "met" if c else "**NOT met**"  # noqa: E731
    return [
        "## Answers", "",
        "**Fine-tuning all n layers vs the last one.** The write-up claimed O(n) vs "
        "O(1) for both memory and compute. Measured, the O(1) claims fail in three places:", "",
        f"1. *Weights are still held.* Parameter memory grows as n in both modes (slope "
        f"{whole_f['param_bytes']:.3f} full, {whole_l['param_bytes']:.3f} last). In the "
        f"`stack` above the weights are small beside the activations, so last-mode peak "
        f"memory looks flat ({s32l['peak_bytes']:,} B at n = 32, slope "
        f"{whole_l['peak_bytes']:.3f}); make the layers wide and the input small (C = 128, "
        f"8×8, batch 1) and last-mode peak grows like n (slope {w_l['peak_bytes']:.3f}; "
        f"{w32['peak_bytes']:,} B at n = 32, of which {w32['param_bytes']:,} B are frozen "
        f"weights). DeepLabV3-ResNet101 holds {d[224, 'last']['param_bytes']:,} B of weights "
        f"when only its head trains: {100 * d[224, 'last']['param_bytes'] / d[224, 'last']['peak_bytes']:.0f}% "
        f"of its {d[224, 'last']['peak_bytes']:,} B peak at 224×224, batch 8.",
        f"2. *The forward pass is still paid.* Forward FLOPs are identical in both modes "
        f"({s32f['forward_flops']:,} at n = 32) and grow as n (slope "
        f"{whole_l['forward_flops']:.3f}); only the backward shrinks to the head's weight "
        f"gradient ({s32l['backward_flops']:,} FLOPs, constant). A last-layer step therefore "
        f"costs O(n) compute, and full / last training FLOPs tend to 3, not n "
        f"({ratio32:.3f} at n = 32): freezing saves at most two thirds of the compute.",
        f"3. *The frozen forward still needs working memory.* Last-mode saved activations "
        f"are O(1) in n but not zero ({s32l['saved_activation_bytes']:,} B: the head's "
        f"input, the log-softmax and the int64 target), and the frozen forward keeps two "
        f"or three activations alive at once, so the peak is resident weights + a few "
        f"activations, O(B·H·W) — and for deeplab at 448×448 {d[448, 'last']['peak_bytes']:,} B.", "",
        f"What freezing does save is exactly the write-up's list: gradients and Adam state "
        f"(slope {whole_f['grad_bytes']:.3f} → {whole_l['grad_bytes']:.3f}), kept "
        f"activations (slope {tail_f['saved_activation_bytes']:.3f} at n = 16–32 → "
        f"{whole_l['saved_activation_bytes']:.3f}) and the backward pass. In the real case, "
        f"deeplabv3_resnet101 at 448×448, batch 8: peak {d[448, 'full']['peak_bytes']:,} B "
        f"full vs {d[448, 'last']['peak_bytes']:,} B last "
        f"({d[448, 'full']['peak_bytes'] / d[448, 'last']['peak_bytes']:.1f}×); training FLOPs "
        f"{train(d[448, 'full']):,} vs {train(d[448, 'last']):,} "
        f"({train(d[448, 'full']) / train(d[448, 'last']):.3f}×).", "",
        "**Doubling H and W.** Kept activations ×4 "
        f"({min(saved_ratios):.4f}–{max(saved_ratios):.4f} for stack, CNN, UNet; "
        "the few non-×4 bytes are BatchNorm's per-channel statistics and a loss scalar), "
        f"parameters ×1 ({min(param_ratios):.0f}–{max(param_ratios):.0f}), FLOPs ×4 "
        "(both passes). Peak memory is *not* ×4: weights, gradients and Adam state do not "
        "grow, so it grows by less (table above; deeplab last mode only "
        f"{d[448, 'last']['peak_bytes'] / d[224, 'last']['peak_bytes']:.2f}×, "
        f"because its {d[224, 'last']['param_bytes']:,} B of frozen weights dominate).", "",
        "## Slope and ratio targets of the issue", "",
        f"- Full mode, slope against n of gradients {whole_f['grad_bytes']:.3f}, Adam state "
        f"{whole_f['optimizer_bytes']:.3f}: {ok(0.9 <= whole_f['grad_bytes'] <= 1.1)}. Saved "
        f"activations: {whole_f['saved_activation_bytes']:.3f} fitted over n = 1–32, "
        f"{ok(0.9 <= whole_f['saved_activation_bytes'] <= 1.1)} — the closed form "
        "8BCHW·n + 4BCHW + (loss terms) has a constant term (the input kept by the first "
        "conv, the head's log-softmax and target) that pulls the whole-range fit below 1; "
        f"between n = 16 and 32 the slope is {tail_f['saved_activation_bytes']:.3f} "
        f"({ok(0.9 <= tail_f['saved_activation_bytes'] <= 1.1)}). The growth is exactly "
        "linear; the log-log slope only reaches 1 asymptotically.",
        f"- Last mode, slopes of gradients, Adam state, saved activations "
        f"{whole_l['grad_bytes']:.3f}, {whole_l['optimizer_bytes']:.3f}, "
        f"{whole_l['saved_activation_bytes']:.3f}: "
        f"{ok(max(abs(whole_l[q]) for q in ('grad_bytes', 'optimizer_bytes', 'saved_activation_bytes')) < 0.1)}.",
        f"- Parameter bytes, slope {whole_f['param_bytes']:.3f} (full) and "
        f"{whole_l['param_bytes']:.3f} (last): {ok(0.9 <= whole_l['param_bytes'] <= 1.1)}.",
        f"- Training FLOPs full / last at n = 32: {ratio32:.3f} (≥ 2.7: {ok(ratio32 >= 2.7)}).",
        f"- Doubling H and W: saved activations ×{min(saved_ratios):.4f}–{max(saved_ratios):.4f} "
        f"(×4 ± 2%: {ok(all(abs(r / 4 - 1) <= 0.02 for r in saved_ratios))}), parameters ×1 "
        f"({ok(all(r == 1 for r in param_ratios))}).", "",
        "Not measured here: `torch.cuda.max_memory_allocated` (this machine has no GPU; "
        "`python -m complexity finetune --cuda` adds it where one is present; expect "
        "cuDNN workspaces and allocator rounding on top of the peak above).", ""]
