"""``python -m complexity profile``: per-layer params, outputs and MACs of any
PyTorch model. Thin: parse, call :func:`complexity.counting.profile.profile`,
render with :mod:`complexity.output.profile`. Torch is imported inside ``run``."""
from __future__ import annotations

import argparse

from complexity.cli.common import UsageError, emit
from complexity.cli.model_args import add_model_arguments, load

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
    p.add_argument("--depth", type=depth, default=3, metavar="N|all",
                   help="show modules nested at most N deep (default 3; 'all')")


def run(args) -> int:
    from complexity.counting.profile import ProfileError, profile
    from complexity.output.profile import render_profile

    spec, shape, module = load(args)
    try:
        result = profile(module, shape, args.convention, args.device, model_name=spec.name)
    except ProfileError as e:
        raise UsageError(f"{spec.name}: {e}") from None
    return emit(render_profile(result, spec.name, shape, args.convention, args.device,
                               args.depth, args.format))
