"""``invariance``: do inputs y = a·x + b change the colourization output? (SPEC §1, A4)

The argument and the exact conditions are in :mod:`complexity.experiments.colourization.invariance`; this command
measures them on a trained model (``--checkpoint``) or on one it trains briefly.
"""
from __future__ import annotations

import json

import os

from complexity.cli.common import (UsageError, add_threads_argument, output_folder,
    positive_int, set_threads)
from complexity.cli.train import add_data_arguments, check_cache, load_data


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


def model_for(args, data=None):
    """(model, description) from --checkpoint, or trained here for --epochs."""
    from complexity.experiments import checkpoint
    from complexity.experiments.colourization.train import TrainConfig, data_key, load_model, train

    if args.checkpoint is not None:
        try:
            model, cfg = load_model(args.checkpoint)
        except checkpoint.CheckpointError as e:
            raise UsageError(str(e)) from None
        if cfg.model != args.model:
            raise UsageError(f"--checkpoint {args.checkpoint} holds a {cfg.model}, "
                             f"not a {args.model}")
        args.nc = cfg.nc
        data = data or load_data(args)
        # as --resume does: a model measured on other data than it was trained on
        # answers a different question
        trained_on = checkpoint.load(args.checkpoint).get("data")
        if trained_on != data_key(data):
            raise UsageError(f"--checkpoint {args.checkpoint}: trained on other data or "
                             "colours than the data given here")
        return model, cfg, data, f"checkpoint {args.checkpoint}"
    data = data or load_data(args)
    cfg = TrainConfig(model=args.model, epochs=args.epochs, nc=args.nc)
    _, model = train(data, cfg)
    return model, cfg, data, f"trained here for {args.epochs} epochs (defaults otherwise)"


def measure(args, data=None):
    """The JSON object of ``invariance``."""
    from complexity.experiments.colourization import invariance

    model, cfg, data, source = model_for(args, data)
    x, y = data.val_x[:args.batch_size], data.val_y[:args.batch_size]
    if args.exact:
        model, x = invariance.exact(model), x.double()
    result = invariance.study(model, cfg.model, x, y, cfg.kernel)
    result.update(exact=bool(args.exact), source=source, data=data.description, kernel=cfg.kernel, nf=cfg.nf,
                  nc=cfg.nc)
    if args.plot:
        from complexity.output import colourization as plots

        plots.invariance_grid([result], args.plot)
    return result


def run(args) -> str:
    if args.plot:
        if os.path.isdir(args.plot):
            raise UsageError(f"--plot {args.plot}: is a folder (need a .png file name)")
        output_folder(os.path.dirname(args.plot) or ".", "--plot")
    check_cache(args)
    set_threads(args)
    result = measure(args)
    if args.format == "json":
        return json.dumps(result, indent=1)
    return render(result)


def render(result, tablefmt: str = "simple") -> str:
    from tabulate import tabulate

    rows = [(r["bn"], r["a"], r["b"], r["interior"]["max"], r["interior"]["mean"],
             r["border"]["max"], r["border"]["mean"], r["delta_acc"], r["expected"])
            for r in result["rows"]]
    table = tabulate(rows, headers=("BN", "a", "b", "interior max Δ", "interior mean Δ",
                                    "border max Δ", "border mean Δ", "Δ acc", "theory"),
                     floatfmt=("", "g", "g", ".2e", ".2e", ".2e", ".2e", "+.4f", ""),
                     tablefmt=tablefmt, missingval="—")  # — : the region has no pixel
    arithmetic = ("float64, BN ε = 1e-300 (--exact)" if result["exact"]
                  else "float32, BN ε = 1e-5 as trained")
    return (f"{result['model']} ({result['source']}; {arithmetic}); {result['images']} validation images, "
            f"{result['pixels']} pixels each, of which {result['interior_pixels']} interior "
            f"(border band {result['border_band']} px: the receptive field reaches the zero "
            f"padding); Δ = |change of a logit|, worst of the classes at a pixel\n\n{table}")

