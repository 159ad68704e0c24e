"""The model options ``profile``, ``derive`` and ``finetune`` share: a model spec,
its constructor arguments, the input shape, the convention and the device.

:data:`MODEL_HELP` and :func:`add_model_args_option` / :func:`given_model_args`
are what ``finetune`` (several models, no positional MODEL) takes from here."""
from __future__ import annotations

from complexity.cli.common import UsageError, odd_kernel, positive_int
from complexity.output.tables import FORMATS

CONVENTIONS = ("torch", "course", "lecture")
#: the cnn/unet options and the constructor arguments they set
FLAGS = {"num_filters": "--nf", "num_colours": "--nc", "kernel": "--kernel",
         "num_in_channels": "--in-channels"}


#: what a MODEL may be (complexity.zoo.parse_spec), for every command's --help
MODEL_HELP = ("cnn, unet, stack, a deeplabv3_* architecture, a torchvision model (NAME or "
              "torchvision:NAME), timm:NAME, a Hugging Face transformers model (hf:ARCH, a "
              "class such as hf:BertForSequenceClassification on its config's defaults; "
              "hf:PATH, a config.json or its folder; hf:ORG/NAME, from the local cache; "
              "--model-args sets config fields), package.module:factory or "
              "path/to/file.py:Class (a class or function returning an nn.Module)")


def add_model_args_option(p) -> None:
    """``--model-args JSON``: the model's constructor keyword arguments."""
    p.add_argument("--model-args", default=None, metavar="JSON",
                   help='constructor keyword arguments as a JSON object, e.g. {"num_classes": 10}')


def given_model_args(text) -> dict:
    """``--model-args`` as a dict; :class:`UsageError` (one line) when it is not a
    JSON object.

    >>> given_model_args('{"num_classes": 10}'), given_model_args(None)
    ({'num_classes': 10}, {})
    """
    from complexity.zoo import ModelSpecError, parse_model_args

    try:
        return parse_model_args(text)
    except ModelSpecError as e:
        raise UsageError(str(e)) from None


def add_model_arguments(p) -> None:
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--input", default=None, metavar="N,C,H,W",
                   help="input shape, sizes >= 1 (default 1,NIC,32,32 for cnn/unet; hf: text "
                   "models N,L token ids, 1,128; 1,3,224,224 otherwise)")
    add_model_args_option(p)
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
    from complexity.zoo import ModelSpecError

    colour = {k: getattr(args, k) for k in FLAGS if getattr(args, k) is not None}
    given = given_model_args(args.model_args)
    try:
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
