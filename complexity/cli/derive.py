"""``python -m complexity derive``: exact formulas for params, outputs and MACs of
any model in chosen symbols, verified at held-out points. Thin: parse, call
:func:`complexity.derive` (the Python API), render with :mod:`complexity.output.profile`."""
from __future__ import annotations

import argparse

from complexity.cli.common import UsageError, emit, positive_int
from complexity.cli.model_args import add_model_arguments, model_args

HELP = "exact formulas for params, outputs, MACs of any model in chosen symbols, verified"


def checks(text: str) -> int:
    """An integer >= 20: held-out verification points."""
    value = positive_int(text)
    if value < 20:
        raise argparse.ArgumentTypeError(f"{value} is too few (need >= 20 verification points)")
    return value


def add_arguments(p) -> None:
    add_model_arguments(p)
    p.add_argument("--symbols", default=None, metavar="LIST",
                   help="comma-separated symbols: H, W (input size), a constructor argument "
                   "(width_per_group), NAME=argument (NF=num_filters), or for cnn/unet NF, NC, k, "
                   "NIC; letters in --input (1,3,H,W) are symbols too")
    p.add_argument("--checks", type=checks, default=20,
                   help="random verification points, >= 20 (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the verification points (0)")
    p.add_argument("--max-degree", type=positive_int, default=4,
                   help="highest degree tried per symbol (4)")


def run(args) -> int:
    if args.symbols is None and not (args.input and any(c.isalpha() for c in args.input)):
        raise UsageError("no symbols: give --symbols (e.g. H,W) or letters in --input "
                         "(e.g. 1,3,H,W)")
    from complexity import api
    from complexity.output.profile import render_derive

    try:
        result = api.derive(args.model, args.symbols, args.input, model_args=model_args(args),
                            convention=args.convention, device=args.device, checks=args.checks,
                            seed=args.seed, max_degree=args.max_degree)
    except ValueError as e:  # a bad spec, symbol or input; no formula verified (DeriveError)
        raise UsageError(str(e).splitlines()[0]) from None
    return emit(render_derive(result.to_dict(), args.format))
