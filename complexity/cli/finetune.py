"""``python -m complexity finetune``: the memory and FLOPs of one training step,
every layer trained versus only the last, predicted from the model's structure and
measured on a fake-tensor step. Imports torch only inside :func:`run`."""
from __future__ import annotations

import argparse
import os
import sys

from complexity.cli.common import UsageError, emit, int_list, size
from complexity.errors import reason

HELP = "memory and FLOPs of one training step, full vs last layer: predicted and measured"

FORMATS = ("table", "markdown", "json")


def _sizes(text: str):
    try:
        return [size(t, minimum=1) for t in text.split(",") if t.strip()] or int_list(text)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"in {text!r}: {e}")


def _words(text: str):
    words = [w.strip() for w in text.split(",") if w.strip()]
    if not words:
        raise argparse.ArgumentTypeError(f"{text!r} holds no value")
    return words


def _modes(text: str):
    words = _words(text)
    bad = [w for w in words if w not in ("full", "last")]
    if bad:
        raise argparse.ArgumentTypeError(f"{bad[0]!r} is not a mode (choose full, last; "
                                         "or give --trainable PATTERN)")
    return words


def add_arguments(p):
    p.add_argument("--model", type=_words, default=["stack"], metavar="NAME[,NAME]",
                   help="stack, cnn, unet, a deeplabv3_* architecture, any torchvision model "
                   "(NAME or torchvision:NAME) or package.module:factory")
    p.add_argument("--layers", type=int_list, default=[1, 2, 4, 8], metavar="N[,N]",
                   help="stack: number of Conv-BN-ReLU blocks, each >= 1 (1,2,4,8)")
    p.add_argument("--width", type=int_list, default=[16], metavar="C",
                   help="stack: channels C of every block (16)")
    p.add_argument("--mode", type=_modes, default=["full", "last"], metavar="full,last",
                   help="full = every parameter trains; last = only the last layer")
    p.add_argument("--trainable", metavar="PATTERN",
                   help="parameter-name glob (e.g. 'backbone.layer4.*'); a mode of its own")
    p.add_argument("--size", "--sizes", dest="sizes", type=_sizes, default=[(64, 64)],
                   metavar="H|HxW[,...]", help="input height and width, each >= 1 (64)")
    p.add_argument("--batch", type=int_list, default=[8], metavar="B[,B]", help="batch (8)")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--plot", metavar="FILE", help="draw memory and FLOPs against n and H·W")
    p.add_argument("--cuda", action="store_true",
                   help="also run one real step on the GPU: torch.cuda.max_memory_allocated")
    p.add_argument("--no-measure", action="store_true",
                   help="prediction only (skip the fake-tensor training step)")


def _check_plot(path: str) -> None:
    """A writable image path of a format matplotlib can write, checked before the sweep."""
    from matplotlib.backend_bases import FigureCanvasBase

    if os.path.isdir(path):
        raise UsageError(f"--plot {path}: is a folder; give a file name such as sweep.png")
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise UsageError(f"--plot {path}: its folder does not exist")
    formats = FigureCanvasBase.get_supported_filetypes()
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    if ext not in formats:
        raise UsageError(f"--plot {path}: {('.' + ext) if ext else 'no extension'} is not an "
                         f"image format matplotlib writes (use one of {', '.join(sorted(formats))})")


def _check_trainable(name: str, pattern: str, layers, width: int) -> None:
    """The --trainable pattern must match at every depth n of --layers (stack) or on
    the model itself."""
    from complexity.cost.trainable import set_trainable
    from complexity.zoo import build_model

    depths = layers if name == "stack" else [1]
    misses = []
    for n in depths:
        try:
            net, _ = build_model(name, n, width)
        except Exception as e:
            raise UsageError(f"model {name}: {reason(e)}")
        try:
            names = [p for p, _ in net.named_parameters()]
            set_trainable(net, pattern)
        except ValueError as e:
            if name != "stack":
                raise UsageError(f"model {name}: {e}")
            misses.append(n)
    if misses and len(misses) == len(depths):
        raise UsageError(f"--trainable {pattern!r} matches no parameter name of stack at any "
                         f"--layers value (e.g. {names[0]!r} … {names[-1]!r})")
    if misses:
        hits = [n for n in depths if n not in misses]
        raise UsageError(f"--trainable {pattern!r} matches parameters of stack at n="
                         f"{','.join(map(str, hits))} but none at n={','.join(map(str, misses))}; "
                         "drop those --layers values or widen the pattern")


def run(args) -> int:
    from complexity.cost import sweep as finetune
    from complexity.output import finetune as finetune_report
    from complexity.zoo import build_model

    if args.cuda:
        import torch
        if not torch.cuda.is_available():
            raise UsageError("--cuda: no CUDA device is available on this machine")
    if len(args.width) != 1:
        raise UsageError("--width takes one value (>= 1)")
    modes = list(args.mode) + ([args.trainable] if args.trainable else [])
    if args.plot:
        _check_plot(args.plot)
    for name in args.model:
        try:
            build_model(name, 1, args.width[0])
        except Exception as e:
            raise UsageError(f"model {name}: {reason(e)}"
                             if not isinstance(e, ValueError) else str(e))
        if args.trainable:
            _check_trainable(name, args.trainable, args.layers, args.width[0])

    def progress(r):
        if args.format != "json":
            sys.stderr.write(f"  {r['model']} n={r['layers']} {r['size'][0]}x{r['size'][1]} "
                             f"B={r['batch']} {r['mode']}: done\n")

    try:
        results = finetune.sweep(args.model, args.layers, args.sizes, args.batch, modes,
                                 width=args.width[0], measured=not args.no_measure,
                                 cuda=args.cuda,
                                 progress=progress)
    except finetune.ConfigurationError as e:
        raise UsageError(f"the model cannot take this configuration: {e}")
    if args.plot:
        finetune_report.plot(results, args.plot)
    return emit(finetune_report.render(results, args.format))
