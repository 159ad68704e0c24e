"""``train`` and ``sweep-batch``: train the colourization CNN / UNet (SPEC §1, B3/B4).

torch is imported inside ``run`` only, so ``python -m complexity --help`` stays fast.
"""
from __future__ import annotations

import argparse
import json
import os

from complexity.cli.common import (UsageError, add_threads_argument, int_list, odd_kernel,
    output_folder, positive_float, positive_int, set_threads)


def category(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 9:
        raise argparse.ArgumentTypeError(f"{text!r} is not a CIFAR-10 category (need 0-9)")
    return value


def add_data_arguments(p) -> None:
    p.add_argument("--data", default=None, metavar="PATH",
                   help="cifar-10-batches-bin folder or .bin file, or a folder of images; "
                   "default: the offline photographs (see README)")
    p.add_argument("--category", type=category, default=7,
                   help="CIFAR-10 category 0-9 (7 = horse)")
    p.add_argument("--max-images", type=positive_int, default=None, metavar="N",
                   help="use at most N training and N validation images (quick runs)")
    p.add_argument("--nc", type=positive_int, default=24, help="NC, colour classes (24)")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="where k-means colour centres are cached (default ~/.cache/complexity)")


def add_model_arguments(p, epochs: int = 25) -> None:
    p.add_argument("--epochs", type=positive_int, default=epochs, help=f"epochs in all ({epochs})")
    p.add_argument("--batch-size", type=positive_int, default=100, help="minibatch size (100)")
    p.add_argument("--lr", type=positive_float, default=0.001, help="Adam learning rate (0.001)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and shuffling (0)")
    p.add_argument("--nf", type=positive_int, default=32, help="NF, filters of the first conv (32)")
    p.add_argument("--kernel", type=odd_kernel, default=3, help="k, odd kernel size (3)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_threads_argument(p)
    p.add_argument("--format", choices=("table", "json"), default="table")


def check_cache(args) -> None:
    """The k-means cache folder must be usable before any data is read."""
    from complexity.experiments.colourization import data

    if args.cache is not None:
        output_folder(args.cache, "--cache")
    else:
        output_folder(data.cache_dir(), "cache folder (COMPLEXITY_CACHE or ~/.cache/complexity)")


def load_data(args):
    """Read and prepare the data named by the data options; bad data → UsageError."""
    from complexity.experiments.colourization import data

    try:
        images = data.load_images(args.data, args.category, args.max_images)
        return data.prepare(images, args.nc, args.cache)
    except data.DataError as e:
        raise UsageError(str(e)) from None


def config(args, model: str, batch_size: int | None = None):
    from complexity.experiments.colourization.train import TrainConfig

    return TrainConfig(model=model, epochs=args.epochs,
                       batch_size=batch_size or args.batch_size, lr=args.lr, seed=args.seed,
                       nf=args.nf, nc=args.nc, kernel=args.kernel)


# ------------------------------------------------------------------ train
def train_arguments(p) -> None:
    p.add_argument("--model", choices=("cnn", "unet"), default="cnn")
    add_model_arguments(p)
    add_data_arguments(p)
    p.add_argument("--out", default=None, metavar="DIR",
                   help="checkpoint, history.json, curves.png, samples.png (default runs/train-MODEL)")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                   help="continue a checkpoint (default OUT/checkpoint.pt) up to --epochs in all")


def train_run(args) -> str:
    from complexity.experiments import checkpoint
    from complexity.experiments.colourization.train import CHECKPOINT, train

    out = output_folder(args.out or os.path.join("runs", f"train-{args.model}"), "--out")
    check_cache(args)
    resume = None
    if args.resume is not None:
        resume = os.path.join(out, CHECKPOINT) if args.resume is True else args.resume
        if not os.path.isfile(resume):
            raise UsageError(f"--resume {resume}: no such checkpoint file")
        try:  # fail fast, before reading the data; settings are compared in train()
            checkpoint.load(resume, required=("format", "config", "model_state"))
        except checkpoint.CheckpointError as e:
            raise UsageError(str(e)) from None
    set_threads(args)
    data = load_data(args)
    try:
        result, _ = train(data, config(args, args.model), out=out, resume=resume,
                          progress=not args.quiet)
    except checkpoint.CheckpointError as e:
        raise UsageError(str(e)) from None
    result["out"] = out
    if args.format == "json":
        return json.dumps(result, indent=1)
    return render_train(result)


def render_train(result) -> str:
    from tabulate import tabulate

    rows = [(h["epoch"], h["train_loss"], h["val_loss"], h["val_acc"]) for h in result["history"]]
    head = (f"{result['model']}: {result['epochs']} epochs, batch {result['batch_size']}, "
            f"lr {result['lr']}, NF {result['nf']}, NC {result['nc']}, k {result['kernel']}, "
            f"seed {result['seed']}\ndata: {result['data']}\n")
    table = tabulate(rows, headers=("epoch", "train loss", "val loss", "val acc"),
                     floatfmt=".4f")
    return (f"{head}\n{table}\n\nmeasured wall time of training and validation: "
            f"{result['seconds']:.1f} s; outputs in {result['out']}/")


# ------------------------------------------------------------------ sweep-batch
def sweep_arguments(p) -> None:
    p.add_argument("--model", choices=("cnn", "unet"), default="unet")
    p.add_argument("--sizes", type=int_list, default=[1, 5, 10, 100, 500, 1000],
                   help="comma-separated batch sizes (1,5,10,100,500,1000)")
    add_model_arguments(p, epochs=5)
    add_data_arguments(p)
    p.add_argument("--out", default=os.path.join("runs", "sweep-batch"), metavar="DIR",
                   help="per-size runs and the sweep figures (runs/sweep-batch)")


def sweep(args, data=None, resume: bool = False):
    """Train one model per batch size; returns the JSON object of ``sweep-batch``.
    With ``resume``, a checkpoint left in a size's folder is continued, not redone."""
    from complexity.experiments import checkpoint
    from complexity.output import colourization as plots
    from complexity.experiments.colourization.train import CHECKPOINT, predict, train

    data = data or load_data(args)
    runs, preds = [], {}
    for bs in args.sizes:
        out = os.path.join(args.out, f"batch-{bs}")
        path = os.path.join(out, CHECKPOINT)
        result = None
        if resume and os.path.isfile(path):
            try:
                result, model = train(data, config(args, args.model, bs), out=out, resume=path,
                                      progress=not args.quiet)
            except checkpoint.CheckpointError:
                result = None  # other settings: train afresh below
        if result is None:
            result, model = train(data, config(args, args.model, bs), out=out,
                                  progress=not args.quiet)
        result["steps_per_epoch"] = -(-len(data.train_x) // bs)
        runs.append(result)
        preds[f"batch {bs}"] = predict(model, data.val_x[:plots.SAMPLES])
    plots.curves({f"batch {r['batch_size']}": r["history"] for r in runs},
                 os.path.join(args.out, "curves.png"), title=f"{args.model}: loss by batch size")
    plots.against_batch_size(runs, os.path.join(args.out, "final.png"))
    plots.sample_grid(data.val_x[:plots.SAMPLES], data.val_y[:plots.SAMPLES], preds,
                      data.centres, os.path.join(args.out, "samples.png"))
    return {"model": args.model, "epochs": args.epochs, "lr": args.lr, "data": data.description,
            "train_images": len(data.train_x), "out": args.out, "runs": runs}


def sweep_run(args) -> str:
    output_folder(args.out, "--out")
    check_cache(args)
    set_threads(args)
    result = sweep(args)
    if args.format == "json":
        return json.dumps(result, indent=1)
    return render_sweep(result)


def render_sweep(result) -> str:
    from tabulate import tabulate

    rows = [(r["batch_size"], r["steps_per_epoch"], r["final"]["train_loss"],
             r["final"]["val_loss"], r["final"]["val_acc"], r["seconds"]) for r in result["runs"]]
    table = tabulate(rows, headers=("batch size", "steps/epoch", "train loss", "val loss",
                                    "val acc", "seconds (measured)"),
                     floatfmt=(".0f", ".0f", ".4f", ".4f", ".4f", ".1f"))
    return (f"{result['model']}, {result['epochs']} epochs, lr {result['lr']}; "
            f"data: {result['data']}\n\n{table}\n\nfigures in {result['out']}/")
