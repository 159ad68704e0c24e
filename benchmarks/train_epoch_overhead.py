"""What does the tool's training epoch cost over a plain PyTorch loop? (target ≤ 1.1×)

Both run one epoch over the same tensors (the offline default data), in the same
shuffled order, from the same weights, with Adam: the tool through
``complexity.experiments.colourization.train.run_epoch`` (progress bar on, as the CLI has it), the plain loop as
written in the PyTorch tutorials. Runs alternate, and the ratio is of the medians.

    python benchmarks/train_epoch_overhead.py [--model unet] [--max-images 500]
        [--repeats 5] [--threads 1]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from complexity.experiments.colourization import data  # noqa: E402
from models.colourization import build  # noqa: E402
from complexity.experiments.colourization.train import run_epoch  # noqa: E402


def plain_epoch(model, optimizer, x, y, batch_size, generator):
    model.train()
    order = torch.randperm(len(x), generator=generator)
    for i in range(0, len(x), batch_size):
        idx = order[i:i + batch_size]
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("cnn", "unet"), default="unet")
    p.add_argument("--max-images", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    d = data.prepare(data.load_images(None, max_images=args.max_images), 24)
    torch.manual_seed(0)
    start = build(args.model)
    times = {"tool": [], "plain": []}
    for r in range(args.repeats + 1):  # the first round warms up and is dropped
        for name in ("tool", "plain") if r % 2 == 0 else ("plain", "tool"):
            model = copy.deepcopy(start)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            gen = torch.Generator().manual_seed(0)
            t0 = time.perf_counter()
            if name == "tool":
                with contextlib.redirect_stderr(io.StringIO()):
                    run_epoch(model, opt, d.train_x, d.train_y, args.batch_size, gen,
                              progress=True)
            else:
                plain_epoch(model, opt, d.train_x, d.train_y, args.batch_size, gen)
            if r:
                times[name].append(time.perf_counter() - t0)
    tool, plain = statistics.median(times["tool"]), statistics.median(times["plain"])
    print(f"{args.model}, {len(d.train_x)} images, batch {args.batch_size}, "
          f"{args.threads} thread(s), median of {args.repeats} epochs each (measured):")
    print(f"  tool loop  {tool:.3f} s/epoch   (runs: {', '.join(f'{t:.3f}' for t in times['tool'])})")
    print(f"  plain loop {plain:.3f} s/epoch   (runs: {', '.join(f'{t:.3f}' for t in times['plain'])})")
    print(f"  ratio tool / plain = {tool / plain:.3f}  (target <= 1.1: "
          f"{'met' if tool / plain <= 1.1 else 'NOT met'})")


if __name__ == "__main__":
    main()
