"""``python -m complexity derive``: exact formulas for params, outputs and MACs of
any model in chosen symbols, verified at held-out points. Thin: parse, call
:mod:`complexity.counting.derive`, render with :mod:`complexity.output.profile`."""
from __future__ import annotations

import argparse

from complexity.cli.common import UsageError, emit, positive_int
from complexity.cli.model_args import add_model_arguments, load

HELP = "exact formulas for params, outputs, MACs of any model in chosen symbols, verified"


def checks(text: str) -> int:
    """An integer >= 20: held-out verification points."""
    value = positive_int(text)
    if value < 20:
        raise argparse.ArgumentTypeError(f"{value} is too few (need >= 20 verification points)")
    return value


def add_arguments(p) -> None:
    add_model_arguments(p)
    p.add_argument("--symbols", required=True, metavar="LIST",
                   help="comma-separated symbols: H, W (input size), a constructor argument "
                   "(width_per_group), NAME=argument (NF=num_filters), or for cnn/unet NF, NC, k, NIC")
    p.add_argument("--checks", type=checks, default=20,
                   help="random verification points, >= 20 (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the verification points (0)")
    p.add_argument("--max-degree", type=positive_int, default=4,
                   help="highest degree tried per symbol (4)")


def run(args) -> int:
    from complexity.output.profile import render_derive
    from complexity.counting.derive import (DeriveError, bind_symbols, derive, domain_text,
        model_counter)

    spec, shape, module = load(args)
    try:
        names, bindings, base = bind_symbols(args.symbols, spec, shape, module)
    except ValueError as e:
        raise UsageError(str(e).splitlines()[0]) from None
    # The base point must count, or every later failure would be misread as a
    # domain effect.
    count = model_counter(spec, shape, bindings, args.convention, args.device)
    try:
        count(dict(base))
    except Exception as e:
        raise UsageError(f"{spec.name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    try:
        result = derive(count, names, base, max_degree=args.max_degree, checks=args.checks,
                        seed=args.seed)
    except DeriveError as e:
        raise UsageError(f"{spec.name}: {e}") from None
    binds = {n: (f"input[{len(shape) + bindings[n][1]}]" if bindings[n][0] == "input"
                 else bindings[n][1]) for n in names}
    return emit(render_derive(result, spec.name, shape, args.convention, binds,
                              domain_text(result), args.format))
