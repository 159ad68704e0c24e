"""``python -m complexity finetune``: the memory and FLOPs of one training step,
every layer trained versus only the last, predicted from the model's structure and
measured on a fake-tensor step. Imports torch only inside :func:`run`."""
from __future__ import annotations

import argparse
import sys

from complexity.cli import parallel_args
from complexity.cli.parallel_args import add_parallel_arguments
from complexity.cli.step_args import (add_step_arguments, mode_list, step_options,
                                       word_list)
from complexity.cli.common import (UsageError, check_plot, distinct, emit, flag_text, int_list,
                                   size)
from complexity.cli.model_args import MODEL_HELP, add_model_args_option, given_model_args
from complexity.errors import reason
from complexity.output.tables import FORMATS

HELP = "memory and FLOPs of one training step, full vs last layer: predicted and measured"


DEFAULT_LAYERS = [1, 2, 4, 8]
DEFAULT_WIDTH = 16


def _sizes(text: str):
    try:
        values = [size(t, minimum=1) for t in text.split(",") if t.strip()] or int_list(text)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"in {text!r}: {e}")
    return distinct(values, text)


def _input(args):
    """``--input`` as ``[shape]`` (None without it); :class:`UsageError` when it is
    not a shape or comes with ``--size``/``--batch``, which it replaces."""
    from complexity.zoo import ModelSpecError, parse_input

    if args.input is None:
        return None
    given = [f for f, v in (("--size", args.sizes), ("--batch", args.batch)) if v is not None]
    if given:
        raise UsageError(f"--input is the whole input shape (batch first); drop "
                         f"{' and '.join(given)}, or drop --input")
    try:
        return [parse_input(args.input)]
    except ModelSpecError as e:
        raise UsageError(flag_text(e)) from None


def add_arguments(p):
    p.add_argument("--model", type=word_list, default=["stack"], metavar="NAME[,NAME]",
                   help=MODEL_HELP + "; comma-separated for several (default stack)")
    add_model_args_option(p)
    p.add_argument("--layers", type=int_list, default=None, metavar="N[,N]",
                   help="stack only: number of Conv-BN-ReLU blocks, each >= 1 (1,2,4,8)")
    p.add_argument("--width", type=int_list, default=None, metavar="C",
                   help=f"stack only: channels C of every block ({DEFAULT_WIDTH})")
    p.add_argument("--mode", type=mode_list, default=["full", "last"], metavar="full,last",
                   help="full = every parameter trains; last = only the last layer")
    p.add_argument("--trainable", type=word_list, action="append", metavar="PATTERN[,PATTERN]",
                   help="parameter-name glob (e.g. 'backbone.layer4.*'); a mode of its own; "
                   "repeatable or comma-separated: a parameter trains if any pattern matches")
    p.add_argument("--size", "--sizes", dest="sizes", type=_sizes, default=None,
                   metavar="H|HxW[,...]", help="image height and width, each >= 1 (64)")
    p.add_argument("--batch", type=int_list, default=None, metavar="B[,B]",
                   help="image batch (8)")
    p.add_argument("--input", default=None, metavar="N,...",
                   help="the whole input shape, batch first, any rank, sizes >= 1, instead "
                   "of --size/--batch: 8,512 token ids (a model whose first layer is an "
                   "embedding, or a Hugging Face model taking input_ids), 4,16000 audio "
                   "samples, 2,3,16,112,112 video clips, 4,3,224,224 images")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--plot", metavar="FILE", help="draw memory and FLOPs against n and H·W")
    p.add_argument("--cuda", action="store_true",
                   help="also run one real step on the GPU: torch.cuda.max_memory_allocated")
    p.add_argument("--measure", choices=("fake", "real", "none"), default="fake",
                   help="how the step is measured: on fake CPU tensors (any size; an "
                   "--autocast float16 step's forward is recorded on fake CUDA tensors "
                   "and replayed there), on real CPU tensors (must fit in memory), or "
                   "not at all")
    p.add_argument("--no-measure", dest="measure", action="store_const", const="none",
                   help="prediction only: the same as --measure none")
    add_step_arguments(p)
    add_parallel_arguments(p)


def _check_trainable(name: str, pattern: str, layers, width: int, model_args) -> None:
    """The --trainable patterns (comma-joined) must each match at every depth n of
    --layers (stack); other models are checked by :func:`~complexity.cost.finetune.preflight`."""
    from complexity.cost.step.trainable import set_trainable
    from complexity.zoo import build_model

    misses = []
    for n in layers:
        try:
            net, _ = build_model(name, n, width, model_args)
        except Exception as e:
            raise UsageError(f"model {name}: {reason(e)}")
        try:
            set_trainable(net, pattern)
        except ValueError as e:
            misses.append((n, e))
    if misses and len(misses) == len(layers):
        raise UsageError(f"{flag_text(misses[0][1])} of stack at any --layers value")
    if misses:
        hits = [n for n in layers if n not in dict(misses)]
        raise UsageError(f"--trainable {pattern!r} matches parameters of stack at n="
                         f"{','.join(map(str, hits))} but not at n="
                         f"{','.join(str(n) for n, _ in misses)}; "
                         "drop those --layers values or widen the pattern")


def run(args) -> int:
    from complexity.cost import finetune
    from complexity.cost.step.options import check_measurement
    from complexity.output import finetune as finetune_report

    # every option and path first: nothing is built before the last check passes
    if "stack" not in args.model:
        for flag, value in (("--layers", args.layers), ("--width", args.width)):
            if value is not None:
                raise UsageError(f"{flag} applies to the model stack only, not to "
                                 f"{', '.join(args.model)}; drop it or add stack to --model")
    inputs = _input(args)
    layers = args.layers or DEFAULT_LAYERS
    width = args.width or [DEFAULT_WIDTH]
    if len(width) != 1:
        raise UsageError("--width takes one value (>= 1)")
    model_args = given_model_args(args.model_args)
    patterns = [p for group in args.trainable or [] for p in group]
    try:
        distinct(patterns, ",".join(patterns))
    except argparse.ArgumentTypeError as e:
        raise UsageError(f"--trainable {e}") from None
    trainable = ",".join(patterns) or None
    options, lora_modes = step_options(args)
    try:
        check_measurement(options, None if args.measure == "none" else args.measure)
    except ValueError as e:
        raise UsageError(flag_text(e)) from None
    modes = list(args.mode) + ([trainable] if trainable else []) + lora_modes
    if parallel_args.wanted(args, lora_modes):
        args.mode = modes
        return parallel_args.run_finetune(args, options, inputs, model_args)
    if args.plot:
        check_plot(args.plot)
    if args.cuda:
        import torch
        if not torch.cuda.is_available():
            raise UsageError("--cuda: no CUDA device is available on this machine")
    # each model built on meta, every mode set and one shape-only forward run: a
    # model finetune cannot step (a detector, a forward that reads values, a mode
    # that trains nothing) fails here, in a second, not in the sweep
    sizes, batches = args.sizes or [(64, 64)], args.batch or [8]
    h, w = sizes[0]
    for name in args.model:
        if trainable and name == "stack":
            _check_trainable(name, trainable, layers, width[0], model_args)
        try:
            finetune.preflight(name, modes, inputs[0] if inputs else (batches[0], 3, h, w),
                               width=width[0], layers=layers[0] if name == "stack" else 1,
                               model_args=model_args, options=options, given=bool(inputs))
        except finetune.ConfigurationError as e:
            raise UsageError(str(e)) from None

    def progress(r):
        if args.format != "json":
            what = ("input " + "x".join(map(str, r["input"])) if inputs
                    else f"{r['size'][0]}x{r['size'][1]} B={r['batch']}")
            sys.stderr.write(f"  {r['model']} n={r['layers']} {what} {r['mode']}: done\n")

    try:
        results = finetune.sweep(args.model, layers, sizes, batches, modes, inputs=inputs,
                                 width=width[0], measured=args.measure != "none",
                                 how="fake" if args.measure == "none" else args.measure,
                                 cuda=args.cuda, model_args=model_args,
                                 options=options, progress=progress)
    except finetune.ConfigurationError as e:
        raise UsageError(f"the model cannot take this configuration: {e}")
    if args.plot:
        try:
            finetune_report.plot(results, args.plot)
        except OSError as e:
            raise UsageError(f"--plot {args.plot}: cannot write it ({e.strerror or e})") from None
    return emit(finetune_report.render(results, args.format))
