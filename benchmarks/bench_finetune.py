"""How much faster the fake-tensor step is than a real one, measured in one run.

``python benchmarks/bench_finetune.py`` prints seconds for predict and measure of
deeplabv3_resnet101 (meta weights) at 224 and 448, and for one model small enough
to also train for real on the CPU, the ratio real step / fake measurement.
Timings are for information; no test depends on them.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from complexity.cost.measure.cpu_step import measure  # noqa: E402
from complexity.cost.predict.prediction import predict  # noqa: E402
from complexity.cost.step.trainable import set_trainable  # noqa: E402
from complexity.zoo import build_model  # noqa: E402
from models.stack import Stack  # noqa: E402


def seconds(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def real_step(net, shape):
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], foreach=False)
    x = torch.randn(*shape)
    out = net(x)
    F.cross_entropy(out, torch.randint(0, out.shape[1], (shape[0], *out.shape[2:]))).backward()
    opt.step()


def main():
    net, c = build_model("deeplabv3_resnet101")
    for size in (224, 448):
        for mode in ("full", "last"):
            set_trainable(net, mode)
            shape = (8, c, size, size)
            print(f"deeplabv3_resnet101 {size}x{size} B=8 {mode}: predict "
                  f"{seconds(lambda: predict(net, shape)):.2f} s, measure "
                  f"{seconds(lambda: measure(net, shape)):.2f} s")
    net = Stack(16, 32)
    shape = (8, 32, 128, 128)
    real = seconds(lambda: real_step(net, shape))
    fake = seconds(lambda: measure(net, shape))
    print(f"stack n=16 C=32 128x128 B=8: real CPU step {real:.2f} s, fake measurement "
          f"(two steps) {fake:.2f} s, ratio {real / fake:.1f}")


if __name__ == "__main__":
    main()
