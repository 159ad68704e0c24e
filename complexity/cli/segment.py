"""``python -m complexity segment``: fine-tune DeepLabV3 for foreground/background
(the course's segmentation exercise) — the last layer only or everything — and say
what it cost.

Imports torch only inside :func:`run`, so ``--help`` and argument errors are fast.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from complexity.cli.common import (UsageError, add_threads_argument, emit, output_folder,
    positive_float, positive_int, set_threads)
from complexity.output.tables import FORMATS

HELP = "fine-tune DeepLabV3 (last layer or all) for foreground/background, with its cost"
ARCHS = ("deeplabv3_resnet101", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large")
MIN_SIZE = 16  # below this the backbones' stride-8/16 feature maps have under 2×2 cells
COST_BATCH = 2  # BatchNorm in training mode needs at least two values per channel


def image_size(text: str) -> int:
    value = positive_int(text)
    if value < MIN_SIZE:
        raise argparse.ArgumentTypeError(f"{value} is too small (need an integer >= {MIN_SIZE})")
    return value


def training_batch(text: str) -> int:
    """A training batch of at least two images: DeepLab's ASPP pooling branch ends in
    BatchNorm on a 1×1 map, which training mode cannot normalise from one value per
    channel, so a batch of one would train nothing."""
    value = positive_int(text)
    if value < COST_BATCH:
        raise argparse.ArgumentTypeError(
            f"{value} is too small (need an integer >= {COST_BATCH}: BatchNorm in training "
            "mode needs two images per batch)")
    return value


def arch_name(text: str) -> str:
    """``--arch`` as the model specs of the other commands spell it: a DeepLabV3
    name, bare or ``torchvision:NAME`` (the same model); argparse's ``choices``
    then refuses any other. Only these three: the head swap, ``--train last``
    and ``--weights`` are DeepLabV3's (models/segmentation.py).

    >>> arch_name("torchvision:deeplabv3_resnet50"), arch_name("deeplabv3_resnet50")
    ('deeplabv3_resnet50', 'deeplabv3_resnet50')
    """
    text = text.strip()
    return text.split(":", 1)[1] if text.startswith("torchvision:") else text


def add_arguments(p) -> None:
    p.add_argument("--arch", type=arch_name, choices=ARCHS, default="deeplabv3_resnet101",
                   help="torchvision DeepLabV3 variant, NAME or torchvision:NAME (default "
                   "deeplabv3_resnet101, the course's)")
    p.add_argument("--train", choices=("last", "all"), default="last",
                   help="last = only the new 1×1 head trains, everything else frozen; all = everything")
    p.add_argument("--weights", metavar="FILE",
                   help="local state dict (torchvision COCO/VOC file) or a segment checkpoint "
                   "(applied to the base it names); without it every weight starts random")
    p.add_argument("--data", metavar="DIR",
                   help="Oxford 17 Flowers folder (jpg/, trimaps/, datasplits.mat or train.txt + "
                   "val.txt); default: the generated offline shapes")
    p.add_argument("--epochs", type=positive_int, default=10, help="epochs (10)")
    p.add_argument("--lr", type=positive_float, default=0.05, help="Adam learning rate (0.05, the course's)")
    p.add_argument("--batch-size", type=training_batch, default=128,
                   help=f"training batch, >= {COST_BATCH} (128)")
    p.add_argument("--val-batch-size", type=positive_int, default=256, help="validation batch (256)")
    p.add_argument("--size", type=image_size, default=224, help=f"image side, >= {MIN_SIZE} (224)")
    p.add_argument("--max-images", type=positive_int, help="use at most this many images per split")
    p.add_argument("--bn-images", type=int, default=64, metavar="N",
                   help="re-estimate BatchNorm statistics from N training images before each "
                   "validation (64; 0 = the course's behaviour: keep the running averages)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random initialisation (0)")
    p.add_argument("--out", default=os.path.join("runs", "segment"), metavar="DIR",
                   help="folder for best.pt, last.pt (the trainable tensors and buffers, and "
                   "a reference to the frozen base), curves.png, predictions.png, result.json")
    p.add_argument("--format", choices=("text", *FORMATS), default="table",
                   help="table (default; 'text' is the same), markdown, latex, csv (the "
                   "epochs' table) or json")
    add_threads_argument(p)


def _log(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _datasets(args):
    from complexity.experiments.segmentation.data import DataError, datasets

    try:
        train_ds, val_ds = datasets(args.data, args.size, args.max_images)
        for ds in (train_ds, val_ds):
            ds.verify()  # every file now: a damaged one fails before anything is written
    except DataError as e:
        raise UsageError(str(e)) from None
    if len(train_ds) < 2:
        raise UsageError(f"{len(train_ds)} training image(s): need at least 2 (BatchNorm "
                         "in training mode needs two values per channel)")
    return train_ds, val_ds


def _model(args):
    import torch

    from complexity.experiments.segmentation.weights import WeightsError, load_weights
    from models.segmentation import deeplab

    torch.manual_seed(args.seed)
    model = deeplab(args.arch)
    if args.weights is None:
        return model, ("no --weights: every weight is random (backbone included; pretrained "
                       "weights cannot be downloaded here)")
    try:
        return model, load_weights(model, args.weights, args.arch, args.seed)
    except WeightsError as e:
        raise UsageError(str(e)) from None


def check_inputs(args) -> None:
    """Every option and path, before any data is read or model built: the output
    folder takes files, --data is a folder, --weights a readable PyTorch file, and
    the numbers fit together. :class:`UsageError` with one line otherwise."""
    if args.bn_images < 0:
        raise UsageError(f"--bn-images {args.bn_images}: need an integer >= 0")
    if args.max_images is not None and args.max_images < COST_BATCH:
        raise UsageError(f"--max-images {args.max_images}: need at least {COST_BATCH} "
                         "training images (BatchNorm in training mode needs two per batch)")
    output_folder(args.out, "--out")
    if args.data is not None and not os.path.isdir(args.data):
        raise UsageError(f"--data {args.data}: " + ("not a folder (need the Oxford 17 Flowers "
                         "folder)" if os.path.exists(args.data) else "no such folder"))
    if args.weights is not None:
        from complexity.experiments.checkpoint import is_torch_file

        if not os.path.isfile(args.weights):
            raise UsageError(f"--weights {args.weights}: " + (
                "is a folder, not a file" if os.path.isdir(args.weights) else "no such file"))
        if not is_torch_file(args.weights):
            raise UsageError(f"--weights {args.weights}: not a PyTorch file (a state dict "
                             "saved with torch.save)")


def run(args) -> int:
    check_inputs(args)
    from complexity.atomic import write_json
    from complexity.experiments.segmentation.checkpoints import base_reference
    from complexity.experiments.segmentation.cost import step_cost
    from complexity.experiments.segmentation.data import DataError
    from complexity.experiments.segmentation.train import fit, predict
    from complexity.output import segmentation as plots
    from complexity.output.experiments import render_segment

    set_threads(args)
    train_ds, val_ds = _datasets(args)
    model, weights_note = _model(args)
    base = base_reference(args.arch, args.seed, args.weights)
    _log(weights_note)
    data_note = args.data or "generated shapes (offline default; complexity/experiments/segmentation/data.py)"
    _log(f"data: {data_note}; {len(train_ds)} training and {len(val_ds)} validation images "
         f"at {args.size}×{args.size}")
    meta = {"arch": args.arch, "train": args.train, "size": args.size}
    try:
        record = fit(model, train_ds, val_ds, train=args.train, epochs=args.epochs, lr=args.lr,
                     batch_size=args.batch_size, val_batch_size=args.val_batch_size,
                     out=args.out, progress=sys.stderr.isatty(), meta=meta, log=_log,
                     bn_images=args.bn_images, base=base)
    except DataError as e:  # an unreadable image found mid-run; finished checkpoints stay whole
        raise UsageError(str(e)) from None
    files = {name: os.path.join(args.out, name) for name in
             ("best.pt", "last.pt", "curves.png", "predictions.png", "result.json")}
    plots.curves({f"--train {args.train}": record}, files["curves.png"])
    plots.prediction_grid(*predict(model, val_ds), files["predictions.png"],
                          title=f"{args.arch}, --train {args.train}, after epoch {args.epochs}")
    # the step as this run took it: a full training batch (fewer images than
    # --batch-size make one smaller batch) at --size
    batch = min(args.batch_size, len(train_ds))
    cost = step_cost(model, (batch, 3, args.size, args.size))
    result = {"arch": args.arch, "train": args.train, "epochs": args.epochs,
              "history": record["history"], "best": record["best"],
              "trainable_params": record["trainable_params"],
              "total_params": record["total_params"], "seconds": record["seconds"],
              "initial": record["initial"], "weights": weights_note, "data": data_note,
              "size": args.size, "lr": args.lr, "batch_size": args.batch_size,
              "cost": {"input_shape": [batch, 3, args.size, args.size], "batch_size": batch,
                       "size": args.size, **cost},
              "checkpoint": {**record["checkpoint"],
                             "bytes": os.path.getsize(files["last.pt"])},
              "files": files}
    write_json(files["result.json"], result)
    return emit(json.dumps(result, indent=1) if args.format == "json" else render_segment(result, args.format))
