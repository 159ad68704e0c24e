"""``python -m complexity train``: train the colourization CNN or UNet (the course
question comparing the two nets' training), with curves, samples and a checkpoint
that ``--resume`` continues.

torch is imported inside :func:`run` only, so ``python -m complexity --help`` stays fast.
"""
from __future__ import annotations

import json
import os

from complexity.cli.colour_args import (add_data_arguments, add_model_arguments, check_data,
    config, data_settings, load_data)
from complexity.cli.common import UsageError, emit, output_folder, set_threads

HELP = "train the colourization CNN or UNet; curves, samples, checkpoints"


def add_arguments(p) -> None:
    p.add_argument("--model", choices=("cnn", "unet"), default="cnn")
    add_model_arguments(p)
    add_data_arguments(p)
    p.add_argument("--out", default=None, metavar="DIR",
                   help="checkpoint, history.json, curves.png, samples.png (default runs/train-MODEL)")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                   help="continue a checkpoint (default OUT/checkpoint.pt) up to --epochs in all")


def run(args) -> int:
    from complexity.experiments import checkpoint
    from complexity.experiments.colourization.train import CHECKPOINT, check_resume, train
    from complexity.output.colourization import training_figures
    from complexity.output.experiments import render_train

    # every option and path first: no data is read and no model built before this passes
    out = output_folder(args.out or os.path.join("runs", f"train-{args.model}"), "--out")
    check_data(args)
    resume = None
    if args.resume is not None:
        resume = os.path.join(out, CHECKPOINT) if args.resume is True else args.resume
        if not os.path.isfile(resume):
            raise UsageError(f"--resume {resume}: no such checkpoint file")
        try:  # its settings and data settings, before reading the data
            check_resume(resume, config(args, args.model), data_settings(args))
        except checkpoint.CheckpointError as e:
            raise UsageError(str(e)) from None
    set_threads(args)
    data = load_data(args)
    try:
        result, model = train(data, config(args, args.model), out=out, resume=resume,
                              progress=not args.quiet)
    except checkpoint.CheckpointError as e:
        raise UsageError(str(e)) from None
    training_figures(result, model, data, out)
    result["out"] = out
    return emit(json.dumps(result, indent=1) if args.format == "json" else render_train(result, args.format))
