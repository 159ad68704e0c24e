"""The model options ``profile`` and ``derive`` share: a model spec, its
constructor arguments, the input shape, the convention and the device."""
from __future__ import annotations

from complexity.cli.common import UsageError, odd_kernel, positive_int
from complexity.output.tables import FORMATS

CONVENTIONS = ("torch", "course", "lecture")
#: the cnn/unet options and the constructor arguments they set
FLAGS = {"num_filters": "--nf", "num_colours": "--nc", "kernel": "--kernel",
         "num_in_channels": "--in-channels"}


def add_model_arguments(p) -> None:
    p.add_argument("model", metavar="MODEL",
                   help="cnn, unet, stack, a deeplabv3_* architecture, a torchvision model "
                   "(NAME or torchvision:NAME) or package.module:factory (a callable returning "
                   "an nn.Module)")
    p.add_argument("--input", default=None, metavar="N,C,H,W",
                   help="input shape, sizes >= 1 (default 1,NIC,32,32 for cnn/unet, "
                   "1,3,224,224 otherwise)")
    p.add_argument("--model-args", default=None, metavar="JSON",
                   help='constructor keyword arguments as a JSON object, e.g. {"num_classes": 10}')
    for name, flag in FLAGS.items():
        p.add_argument(flag, dest=name, type=odd_kernel if name == "kernel" else positive_int,
                       default=None,
                       help=f"cnn/unet only: {name} (the colourization nets' constructor argument)")
    p.add_argument("--convention", choices=CONVENTIONS, default="torch",
                   help="which parameters and outputs count (docs/conventions.md); torch (default) = every "
                   "parameter, every leaf module's output units; MACs are always "
                   "FlopCounterMode's")
    p.add_argument("--device", choices=("meta", "cpu"), default="meta",
                   help="meta (default): shapes only, nothing allocated; cpu: real tensors, "
                   "for models whose forward needs values")
    p.add_argument("--format", choices=FORMATS, default="table")


def model_args(args) -> dict:
    """The constructor arguments the options give: ``--model-args`` JSON and, for
    cnn/unet, ``--nf``/``--nc``/``--kernel``/``--in-channels``."""
    from complexity.zoo import ModelSpecError, parse_model_args

    colour = {k: getattr(args, k) for k in FLAGS if getattr(args, k) is not None}
    try:
        given = parse_model_args(args.model_args)
        if colour and args.model.strip() not in ("cnn", "unet"):
            flag = FLAGS[next(iter(colour))]
            raise ModelSpecError(f"{flag} applies to cnn and unet only; use --model-args "
                                 "for other models")
    except ModelSpecError as e:
        raise UsageError(str(e)) from None
    both = [k for k in colour if k in given]
    if both:
        raise UsageError(f"{FLAGS[both[0]]} and --model-args both set {both[0]}; give it once")
    return {**given, **colour}
