"""``python -m complexity invariance``: the course question on whether scaling and
shifting the input (y = a·x + b) changes the colourization nets' output.

The argument and the exact conditions are in
:mod:`complexity.experiments.colourization.invariance`; this command measures them on
a trained model (``--checkpoint``) or on one it trains briefly.
"""
from __future__ import annotations

import json
import os

from complexity.cli.colour_args import add_data_arguments, check_cache, load_data
from complexity.cli.common import (UsageError, add_threads_argument, emit, output_folder,
    positive_int, set_threads)

HELP = "does scaling and shifting the input (a·x + b) change the output?"


def add_arguments(p) -> None:
    p.add_argument("--model", choices=("cnn", "unet"), default="cnn")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="a checkpoint written by `train` (its model, NF, NC, k are used); "
                   "default: train one for --epochs on the data first")
    p.add_argument("--epochs", type=positive_int, default=3,
                   help="epochs of the brief training when no --checkpoint is given (3)")
    p.add_argument("--batch-size", type=positive_int, default=100,
                   help="validation images in the measured batch (100): train-mode BN uses "
                   "this batch's statistics")
    add_data_arguments(p)
    p.add_argument("--exact", action="store_true",
                   help="float64 and BN eps 1e-300 (ε → 0): separates what theory says from "
                   "rounding and from PyTorch's ε = 1e-5")
    add_threads_argument(p)
    p.add_argument("--plot", default=None, metavar="PNG", help="also draw the grid of |Δ|")
    p.add_argument("--format", choices=("table", "json"), default="table")


def run(args) -> int:
    from complexity.experiments import checkpoint
    from complexity.experiments.colourization import invariance
    from complexity.output.experiments import render_invariance

    if args.plot:
        if os.path.isdir(args.plot):
            raise UsageError(f"--plot {args.plot}: is a folder (need a .png file name)")
        output_folder(os.path.dirname(args.plot) or ".", "--plot")
    check_cache(args)
    set_threads(args)
    nc = args.nc
    try:
        if args.checkpoint is not None:  # before the data: its NC is the data's
            nc = invariance.load_trained(args.checkpoint, args.model)[1].nc
        data = load_data(args, nc)
        model, cfg, source = invariance.model_for(data, args.model, args.checkpoint, args.epochs)
    except checkpoint.CheckpointError as e:
        raise UsageError(str(e)) from None
    result = invariance.run_study(model, cfg, data, source, args.batch_size, args.exact)
    if args.plot:
        from complexity.output import colourization as plots

        plots.invariance_grid([result], args.plot)
    return emit(json.dumps(result, indent=1) if args.format == "json"
                else render_invariance(result))
