"""``python -m complexity profile`` and ``python -m complexity derive``.

Thin: parse the model spec and options, call :mod:`complexity.counting.profile` or
:mod:`complexity.counting.derive`, render. Torch is imported inside ``run`` only, so
``python -m complexity --help`` stays fast.
"""
from __future__ import annotations

import argparse
import json

from complexity.cli.common import UsageError, odd_kernel, positive_int

FORMATS = ("table", "markdown", "json")
CONVENTIONS = ("torch", "course", "lecture")


def _depth(text: str):
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a depth (need an integer >= 0 or 'all')")
    return value


def _checks(text: str) -> int:
    value = positive_int(text)
    if value < 20:
        raise argparse.ArgumentTypeError(f"{value} is too few (need >= 20 verification points)")
    return value


def _model_arguments(p) -> None:
    p.add_argument("model", metavar="MODEL",
                   help="torchvision:NAME, package.module:factory (a callable returning an "
                   "nn.Module), cnn or unet")
    p.add_argument("--input", default=None, metavar="N,C,H,W",
                   help="input shape, sizes >= 1 (default 1,NIC,32,32 for cnn/unet, "
                   "1,3,224,224 otherwise)")
    p.add_argument("--model-args", default=None, metavar="JSON",
                   help='constructor keyword arguments as a JSON object, e.g. {"num_classes": 10}')
    for flag, name, kind in (("--nf", "num_filters", positive_int), ("--nc", "num_colours", positive_int),
                             ("--kernel", "kernel", odd_kernel),
                             ("--in-channels", "num_in_channels", positive_int)):
        p.add_argument(flag, dest=name, type=kind, default=None,
                       help=f"cnn/unet only: {name} (SPEC §1)")
    p.add_argument("--convention", choices=CONVENTIONS, default="torch",
                   help="which parameters and outputs count (SPEC §2); torch (default) = every "
                   "parameter, every leaf module's output units; MACs are always "
                   "FlopCounterMode's")
    p.add_argument("--device", choices=("meta", "cpu"), default="meta",
                   help="meta (default): shapes only, nothing allocated; cpu: real tensors, "
                   "for models whose forward needs values")
    p.add_argument("--format", choices=FORMATS, default="table")


def profile_arguments(p) -> None:
    _model_arguments(p)
    p.add_argument("--depth", type=_depth, default=3, metavar="N|all",
                   help="show modules nested at most N deep (default 3; 'all')")


def derive_arguments(p) -> None:
    _model_arguments(p)
    p.add_argument("--symbols", required=True, metavar="LIST",
                   help="comma-separated symbols: H, W (input size), a constructor argument "
                   "(width_per_group), NAME=argument (NF=num_filters), or for cnn/unet NF, NC, k, NIC")
    p.add_argument("--checks", type=_checks, default=20,
                   help="random verification points, >= 20 (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the verification points (0)")
    p.add_argument("--max-degree", type=positive_int, default=4,
                   help="highest degree tried per symbol (4)")


def _load(args):
    """(spec, input shape, built module) from the common options."""
    import torch

    from complexity.zoo import (ModelSpecError, check_input, parse_input, parse_model_args,
        parse_spec)

    colour = {k: getattr(args, k) for k in ("num_filters", "num_colours", "kernel",
                                             "num_in_channels") if getattr(args, k) is not None}
    try:
        model_args = parse_model_args(args.model_args)
        if colour and args.model.strip() not in ("cnn", "unet"):
            flag = "--" + {"num_filters": "nf", "num_colours": "nc", "kernel": "kernel",
                           "num_in_channels": "in-channels"}[next(iter(colour))]
            raise ModelSpecError(f"{flag} applies to cnn and unet only; use --model-args "
                                 "for other models")
        spec = parse_spec(args.model, {**model_args, **colour})
        if args.input is not None:
            shape = parse_input(args.input)
        elif spec.input_links:
            shape = (1, spec.args["num_in_channels"], 32, 32)
        else:
            shape = (1, 3, 224, 224) if spec.rank != 5 else (1, 3, 16, 112, 112)
        check_input(spec, shape)
        with torch.device(args.device):
            try:
                module = spec.build()
            except ModelSpecError as e:
                text = str(e)
                hint = ("; try --device cpu" if args.device == "meta" and "failed" in text
                        and ("NotImplementedError" in text or "meta" in text.lower()) else "")
                raise ModelSpecError(f"{e}{hint}") from None
    except ModelSpecError as e:
        raise UsageError(str(e)) from None
    return spec, shape, module


def _num(v) -> str:
    return f"{v:,}" if isinstance(v, int) else f"{v:,.1f}"


def _shape_text(shape) -> str:
    if isinstance(shape, dict):
        return "; ".join(f"{k}: {_shape_text(v)}" for k, v in shape.items())
    if isinstance(shape, list) and shape and isinstance(shape[0], (list, dict)):
        return ", ".join(_shape_text(s) for s in shape)
    if isinstance(shape, list):
        return "×".join(map(str, shape))
    return "--"


def profile_run(args) -> str:
    from complexity.counting.profile import ProfileError, profile

    spec, shape, module = _load(args)
    try:
        result = profile(module, shape, args.convention, args.device, model_name=spec.name)
    except ProfileError as e:
        raise UsageError(f"{spec.name}: {e}") from None
    shown = [r for r in result["layers"] if args.depth is None or r["depth"] <= args.depth]
    if args.format == "json":
        out = {k: result[k] for k in ("model", "input", "convention", "device", "params",
                                      "trainable_params", "outputs", "macs", "ops",
                                      "uncovered_kinds")}
        out["layers"] = [{k: r[k] for k in ("name", "kind", "depth", "shape", "params",
                                            "trainable_params", "outputs", "macs", "calls")}
                         for r in shown]
        return json.dumps(out, indent=2)
    from tabulate import tabulate

    # A visible indent: tabulate strips leading spaces (0.9 has no switch for it).
    rows = [["· " * (r["depth"] - 1) + r["name"], r["kind"], _shape_text(r["shape"]),
             _num(r["params"]), _num(r["params"] - r["trainable_params"]),
             _num(r["outputs"]), _num(r["macs"])] for r in shown]
    rows.append(["total", "", "", _num(result["params"]),
                 _num(result["params"] - result["trainable_params"]),
                 _num(result["outputs"]), _num(result["macs"])])
    fmt = "github" if args.format == "markdown" else "simple"
    head = (f"{spec.name}, input {'×'.join(map(str, shape))}, convention {args.convention}, "
            f"{args.device} device — exact counts for this input (batch included); a row "
            f"counts its whole subtree; MACs = FlopCounterMode FLOPs / 2\n")
    if result["uncovered_kinds"]:
        head += (f"note: convention {args.convention} defines weights and outputs for "
                 f"Conv2d, MaxPool2d, Upsample, BatchNorm2d and ReLU only; "
                 f"{', '.join(result['uncovered_kinds'])} count 0 weights and 0 outputs here "
                 f"(use --convention torch to count them)\n")
    table = tabulate(
        rows, headers=["layer", "kind", "output shape", "params", "frozen", "outputs", "MACs"],
        tablefmt=fmt, disable_numparse=True,
        colalign=("left", "left", "left", "right", "right", "right", "right"))
    return head + "\n" + table


def derive_run(args) -> str:
    from complexity.counting.derive import (DeriveError, bind_symbols, derive, domain_text,
        model_counter)

    spec, shape, module = _load(args)
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
    domain = domain_text(result)
    if args.format == "json":
        return json.dumps({
            "model": spec.name, "input": list(shape), "convention": args.convention,
            "symbols": binds, "domain": result["domain"], "domain_text": domain,
            "narrowed": result["narrowed"],
            "formulas": {q: str(f) for q, f in result["formulas"].items()},
            "verified_points": result["verified_points"]}, indent=2)
    lines = [f"{spec.name}, input {'×'.join(map(str, shape))}, convention {args.convention}; "
             f"symbols: {', '.join(f'{n} = {b}' for n, b in binds.items())}",
             f"domain: {domain}"]
    if result["narrowed"]:
        lines.append(f"  (narrowed: the counts are not polynomial in {', '.join(result['narrowed'])} "
                     "on every integer — floor effects of strided layers or of the model's own "
                     "rules — but are on this lattice)")
    width = max(len(q) for q in result["formulas"])
    lines += [f"{q:<{width}} = {f}" for q, f in result["formulas"].items()]
    lines.append(f"verified: exact at {result['verified_points']} random points of the domain, "
                 "none used to build the formulas")
    return "\n".join(lines)
