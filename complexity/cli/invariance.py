"""``python -m complexity invariance``: the course question on whether scaling and
shifting the input (y = a·x + b) changes the colourization nets' output.

The argument and the exact conditions are in
:mod:`complexity.experiments.colourization.invariance`; this command measures them on
a trained model (``--checkpoint``) or on one it trains briefly.
"""
from __future__ import annotations

import json

from complexity.cli.colour_args import (DEFAULT_NC, add_data_arguments, check_data,
    data_settings, load_data)
from complexity.cli.common import (UsageError, add_threads_argument, check_plot, emit,
    positive_int, set_threads)
from complexity.output.tables import FORMATS

HELP = "does scaling and shifting the input (a·x + b) change the output?"
EPOCHS = 3  # the brief training without --checkpoint


def add_arguments(p) -> None:
    p.add_argument("--model", choices=("cnn", "unet"), default="cnn")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="a checkpoint written by `train` (its model, NF, NC, k are used); "
                   "default: train one for --epochs on the data first")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help=f"without --checkpoint only: epochs of the brief training ({EPOCHS})")
    p.add_argument("--batch-size", type=positive_int, default=100,
                   help="validation images in the measured batch (100): train-mode BN uses "
                   "this batch's statistics")
    add_data_arguments(p, nc_default=None)  # with --checkpoint, NC is the checkpoint's
    p.add_argument("--exact", action="store_true",
                   help="float64 and BN eps 1e-300 (ε → 0): separates what theory says from "
                   "rounding and from PyTorch's ε = 1e-5")
    add_threads_argument(p)
    p.add_argument("--plot", default=None, metavar="PNG", help="also draw the grid of |Δ|")
    p.add_argument("--format", choices=FORMATS, default="table")


def run(args) -> int:
    from complexity.experiments import checkpoint
    from complexity.experiments.colourization import invariance
    from complexity.output.experiments import render_invariance

    # every option and path first: no data is read before this passes
    if args.checkpoint is not None:  # its model, NF, NC, k and data are used
        for flag, value in (("--nc", args.nc), ("--epochs", args.epochs)):
            if value is not None:
                raise UsageError(f"{flag} does not apply with --checkpoint (the checkpoint "
                                 "sets it); drop one of them")
    if args.plot:
        check_plot(args.plot, formats=("png",))  # the grid is drawn as a PNG
    check_data(args)
    nc = args.nc or DEFAULT_NC
    try:
        if args.checkpoint is not None:  # before the data: its NC is the data's
            nc = invariance.load_trained(args.checkpoint, args.model)[1].nc
            invariance.check_data(args.checkpoint, {**data_settings(args), "nc": nc})
    except checkpoint.CheckpointError as e:
        raise UsageError(str(e)) from None
    set_threads(args)
    try:
        data = load_data(args, nc)
        model, cfg, source = invariance.model_for(data, args.model, args.checkpoint,
                                                  args.epochs or EPOCHS)
    except checkpoint.CheckpointError as e:
        raise UsageError(str(e)) from None
    result = invariance.run_study(model, cfg, data, source, args.batch_size, args.exact)
    if args.plot:
        from complexity.output import colourization as plots

        try:
            plots.invariance_grid([result], args.plot)
        except OSError as e:
            raise UsageError(f"--plot {args.plot}: cannot write it ({e.strerror or e})") from None
    return emit(json.dumps(result, indent=1) if args.format == "json"
                else render_invariance(result, args.format))
