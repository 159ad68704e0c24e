"""Symbolic sizes, timed and checked in one run.

``python benchmarks/symbolic.py [--points 50]`` prints, as markdown:

* ``derive torchvision:resnet18 --symbols H,W`` in-process (the Python API, as the
  command calls it): the first call after ``import torch, torchvision`` and the
  median of five warm ones;
* ``derive torchvision:swin_t`` at 224 (a one-line refusal: the guard that confines
  W) and at 228 (derived and verified), and swin_v2_t at 224;
* per model, the training step traced once on symbolic sizes
  (:func:`complexity.cost.predict.symbolic.symbolic_step`): its time, the number of
  peak readings left, and at ``--points`` random points of its domain (odd sizes
  included; none the trace ran at) how many agree with the concrete
  :func:`complexity.cost.predict.prediction.predict` on every key, peak included.

Timings are for information (the machine is shared); no test depends on them.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torchvision  # noqa: E402

import complexity  # noqa: E402
from complexity.cost.predict.prediction import predict  # noqa: E402
from complexity.cost.predict.symbolic import symbolic_step  # noqa: E402
from complexity.counting.symbolic_shapes import in_domain  # noqa: E402


def seconds(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(
        vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512))


IMAGE = ("B", 3, "H", "W")
TOKENS = dict(input_dtype=torch.long, input_high=1000)
#: name: (builder, input template, hints, largest size drawn, keyword arguments)
MODELS = {
    "resnet18": (torchvision.models.resnet18, IMAGE, {"H": 64, "W": 64}, 256, {}),
    "resnet50": (torchvision.models.resnet50, IMAGE, {"H": 64, "W": 64}, 256, {}),
    "efficientnet_b0": (torchvision.models.efficientnet_b0, IMAGE, {"H": 64, "W": 64}, 256, {}),
    "mobilenet_v3_large": (torchvision.models.mobilenet_v3_large, IMAGE, {"H": 64, "W": 64},
                           256, {}),
    "convnext_tiny": (torchvision.models.convnext_tiny, IMAGE, {"H": 64, "W": 64}, 256, {}),
    "llama (small)": (llama, ("B", "S"), {"S": 16}, 512, TOKENS),
    # T >= 9: at 8 frames its last stage is 1 frame long, which a ShapeEnv fixes
    "r3d_18": (torchvision.models.video.r3d_18, ("B", 3, "T", "H", "W"),
               {"T": 16, "H": 48, "W": 48}, 96, {}),
}


def timed_derive(model, shape):
    started = time.perf_counter()
    try:
        d = complexity.derive(model, "H,W", shape)
        what = f"derived, verified at {d.verified_points} points"
    except ValueError as e:
        what = f"refused: {e}"
    return time.perf_counter() - started, what


def agreement(name, points, seed=0):
    build, template, hints, top, kw = MODELS[name]
    torch.manual_seed(0)
    model = build()
    hints = {"B": 2, **hints}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        took, s = seconds(lambda: symbolic_step(model, template, hints=hints, **kw))
        rng = random.Random(seed)
        traced = tuple(hints[d] if isinstance(d, str) else d for d in template)
        agree, drawn, odd, first_miss = 0, 0, 0, ""
        while drawn < points:
            point = {k: rng.randint(s.domain[k]["min"], 8 if k == "B" else top)
                     for k in s.symbols}
            shape = tuple(point[d] if isinstance(d, str) else d for d in template)
            if shape == traced or not in_domain({"domain": s.domain, "guards": s.guards}, point):
                continue
            drawn += 1
            odd += any(v % 2 for k, v in point.items() if k != "B")
            want, got = predict(model, shape, **kw), s.at(**point)
            if got == want:
                agree += 1
            elif not first_miss:
                first_miss = f"{point}: " + ", ".join(f"{k} {got[k]} vs {want[k]}"
                                                      for k in want if got[k] != want[k])
    return (took, len(s.readings.terms), agree, drawn, s,
            first_miss or f"{odd} of the points with an odd size")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", type=int, default=50)
    p.add_argument("--models", default=",".join(MODELS))
    args = p.parse_args()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPU cores, load average at the start {load}\n")
    print("## derive\n\n| command | result |\n|---|---|")
    first, _ = seconds(lambda: complexity.derive("torchvision:resnet18", "H,W"))
    warm = [seconds(lambda: complexity.derive("torchvision:resnet18", "H,W"))[0]
            for _ in range(5)]
    # a yardstick timed in the same minutes: one meta-device profile of resnet18 (what
    # each of derive's 20 verification points costs), for a ratio that load cancels
    from complexity.counting.profile import profile

    with torch.device("meta"):
        net = torchvision.models.resnet18()
    yard = statistics.median(seconds(lambda: profile(net, (1, 3, 224, 224), layers=False))[0]
                             for _ in range(5))
    print(f"| derive torchvision:resnet18 --symbols H,W (in-process) | first {first:.2f} s, "
          f"warm median {statistics.median(warm):.2f} s (min {min(warm):.2f} s) = "
          f"{statistics.median(warm) / yard:.0f}× one meta profile of it ({yard * 1000:.0f} ms) |")
    for model, shape in [("torchvision:swin_t", None), ("torchvision:swin_t", (1, 3, 228, 228)),
                         ("torchvision:swin_v2_t", None)]:
        took, what = timed_derive(model, shape)
        where = f" --input {','.join(map(str, shape))}" if shape else ""
        print(f"| derive {model} --symbols H,W{where} | {took:.2f} s, {what} |")
    print("\n## The step traced once on symbolic sizes\n")
    print("| model | symbols | trace | peak readings left | agree with predict | domain | note |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        try:
            took, readings, agree, drawn, s, note = agreement(name, args.points)
        except Exception as e:  # a model that cannot be made symbolic: its one line
            print(f"| {name} | | | | | | {str(e).splitlines()[0]} |")
            continue
        domain = "; ".join(f"{k} ≥ {d['min']}" for k, d in s.domain.items())
        if s.guards:
            domain += f" and {len(s.guards)} guards"
        print(f"| {name} | {', '.join(s.symbols)} | {took:.1f} s | {readings} | "
              f"{agree}/{drawn} | {domain} | {note} |")


if __name__ == "__main__":
    main()
