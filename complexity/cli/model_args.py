"""The model options ``profile`` and ``derive`` share: a model spec, its
constructor arguments, the input shape, the convention and the device."""
from __future__ import annotations

from complexity.cli.common import UsageError, odd_kernel, positive_int

FORMATS = ("table", "markdown", "json")
CONVENTIONS = ("torch", "course", "lecture")


def add_model_arguments(p) -> None:
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
                       help=f"cnn/unet only: {name} (the colourization nets' constructor argument)")
    p.add_argument("--convention", choices=CONVENTIONS, default="torch",
                   help="which parameters and outputs count (docs/conventions.md); torch (default) = every "
                   "parameter, every leaf module's output units; MACs are always "
                   "FlopCounterMode's")
    p.add_argument("--device", choices=("meta", "cpu"), default="meta",
                   help="meta (default): shapes only, nothing allocated; cpu: real tensors, "
                   "for models whose forward needs values")
    p.add_argument("--format", choices=FORMATS, default="table")


def load(args):
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
