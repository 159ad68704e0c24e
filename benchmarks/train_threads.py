"""Which default thread count makes `train` fastest here: 1 or 2 PyTorch threads,
on an idle machine and on one loaded by other jobs?

Each measurement is one epoch of `run_epoch` (the loop `python -m complexity train`
runs) on the offline default data, in a fresh subprocess with
``torch.set_num_threads(T)``; runs alternate between T = 1 and T = 2 and the
medians are compared. ``--load N`` starts N busy processes (pure-Python loops, one
core each) for the duration, as other jobs on a shared machine would.

    python benchmarks/train_threads.py [--model unet] [--max-images 300] [--repeats 3] [--load 0]
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

EPOCH = r"""
import sys, time, torch
sys.path.insert(0, {root!r})
torch.set_num_threads({threads})
from complexity.experiments.colourization import data
from complexity.experiments.colourization.train import run_epoch
from models.colourization import build
d = data.prepare(data.load_images(None, 7, {images}), 24)
torch.manual_seed(0)
model = build({model!r})
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
g = torch.Generator().manual_seed(0)
run_epoch(model, opt, d.train_x, d.train_y, 100, g)        # warm-up
t = time.perf_counter()
run_epoch(model, opt, d.train_x, d.train_y, 100, g)
print(time.perf_counter() - t)
"""


def _busy(_):
    while True:
        pass


def epoch_seconds(threads: int, model: str, images: int) -> float:
    code = EPOCH.format(root=ROOT, threads=threads, model=model, images=images)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="unet", choices=("cnn", "unet"))
    p.add_argument("--max-images", type=int, default=300)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--load", type=int, default=0, help="busy processes running meanwhile")
    args = p.parse_args(argv)
    workers = [multiprocessing.Process(target=_busy, args=(i,), daemon=True)
               for i in range(args.load)]
    for w in workers:
        w.start()
    try:
        times = {1: [], 2: []}
        for _ in range(args.repeats):
            for threads in (1, 2):
                times[threads].append(epoch_seconds(threads, args.model, args.max_images))
    finally:
        for w in workers:
            w.terminate()
    med = {t: statistics.median(v) for t, v in times.items()}
    print(f"{args.model}, {args.max_images} images, batch 100, {os.cpu_count()} cores, "
          f"{args.load} busy processes, median of {args.repeats} epochs")
    for t in (1, 2):
        print(f"  {t} thread{'s' if t > 1 else ''}: {med[t]:.2f} s per epoch "
              f"(runs: {', '.join(f'{x:.2f}' for x in times[t])})")
    print(f"  2 threads / 1 thread: {med[2] / med[1]:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
