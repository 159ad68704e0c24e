"""``python -m complexity profile``: per-layer params, outputs and MACs of any
PyTorch model. Thin: parse, call :func:`complexity.profile` (the Python API),
render with :mod:`complexity.output.profile`. Torch is imported inside ``run``."""
from __future__ import annotations

import argparse

from complexity.cli.common import UsageError, emit
from complexity.cli.model_args import add_model_arguments, model_args
from complexity.output.profile import SCREEN_ROWS, SCREENFUL

HELP = "per-layer params, outputs and MACs of any PyTorch model, on the meta device"


def depth(text: str):
    """``N`` (an integer >= 0) or ``all`` (None)."""
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a depth (need an integer >= 0 or 'all')")
    return value


def add_arguments(p) -> None:
    add_model_arguments(p)
    p.add_argument("--depth", type=depth, default=SCREENFUL, metavar="N|all",
                   help="show modules nested at most N deep, or 'all' (default: a screenful, "
                   f"the deepest level that fits {SCREEN_ROWS} rows)")


def run(args) -> int:
    from complexity import api
    from complexity.counting.profile import ProfileError
    from complexity.output.profile import render_profile

    try:
        result = api.profile(args.model, args.input, args.convention, args.device,
                             model_args=model_args(args))
    # ValueError: a spec, argument or input that cannot be used;
    # ProfileError: the forward failed (the message names the model)
    except (ValueError, ProfileError) as e:
        raise UsageError(str(e)) from None
    return emit(render_profile(result.to_dict(), args.depth, args.format))
