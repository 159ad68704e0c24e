"""``python -m complexity sweep-batch``: the course question on the effect of batch
size on training — one colourization model trained per batch size, curves and
outputs compared (:func:`complexity.experiments.colourization.batch_sweep.batch_sweep`).

torch is imported inside :func:`run` only, so ``python -m complexity --help`` stays fast.
"""
from __future__ import annotations

import argparse
import json
import os

from complexity.cli.colour_args import (add_data_arguments, add_model_arguments, check_data,
    config, load_data)
from complexity.cli.common import (UsageError, emit, int_list, output_folder, positive_int,
    set_threads)

HELP = "train one model per batch size and compare curves and outputs"


def add_arguments(p) -> None:
    p.add_argument("--model", choices=("cnn", "unet"), default="unet")
    p.add_argument("--sizes", type=int_list, default=[1, 5, 10, 100, 500, 1000],
                   help="comma-separated batch sizes, each once (1,5,10,100,500,1000)")
    add_model_arguments(p, epochs=5, batch_size=False)  # --sizes sets the batch size
    p.add_argument("--batch-size", type=positive_int, default=None, help=argparse.SUPPRESS)
    add_data_arguments(p)
    p.add_argument("--out", default=os.path.join("runs", "sweep-batch"), metavar="DIR",
                   help="per-size runs and the sweep figures (runs/sweep-batch)")


def run(args) -> int:
    from complexity.experiments.colourization.batch_sweep import batch_sweep
    from complexity.output.colourization import sweep_figures
    from complexity.output.experiments import render_sweep

    # every option and path first: no data is read and no model built before this passes
    if args.batch_size is not None:
        raise UsageError("--batch-size does not apply to sweep-batch: --sizes gives the "
                         "batch sizes")
    output_folder(args.out, "--out")
    check_data(args)
    set_threads(args)
    data = load_data(args)
    result, models = batch_sweep(data, config(args, args.model), args.sizes, args.out,
                                 progress=not args.quiet)
    sweep_figures(result, models, data, args.out)
    return emit(json.dumps(result, indent=1) if args.format == "json" else render_sweep(result, args.format))
