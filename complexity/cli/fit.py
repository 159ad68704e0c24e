"""``python -m complexity fit``: will one training step fit in a memory budget, for
each trainable set, and what is the largest batch that does? Parses
the options and renders what :func:`complexity.cost.fit.verdict.verdicts` answers;
imports torch only inside :func:`run`."""
from __future__ import annotations

import argparse
import re
from fractions import Fraction

from complexity.cli.step_args import (add_step_arguments, mode_list, step_options,
                                       word_list)
from complexity.cli import parallel_args
from complexity.cli.common import UsageError, emit, flag_text, positive_int, size
from complexity.cli.parallel_args import add_parallel_arguments
from complexity.cli.model_args import MODEL_HELP, add_model_args_option, given_model_args
from complexity.output.tables import FORMATS

HELP = "will a training step fit in a memory budget? verdict, largest batch, peak and its parts"
EPILOG = """examples:
  python -m complexity fit torchvision:resnet50 --budget 24GiB --batch 32 --mode full,last --trainable 'layer4.*,fc.*'
  python -m complexity fit unet --size 64 --budget 2GiB --device cpu --format json
  python -m complexity fit torchvision:resnet50 --budget 24GiB --batch 32 --size auto
  python -m complexity fit pkg.mod:factory --budget 8GiB --input 8,512 --device cpu
  python -m complexity fit hf:LlamaForCausalLM --budget 24GiB --input 1,auto --device cpu --dtype bfloat16 --optimizer adamw
  python -m complexity fit hf:complexity/data/llm_configs/llama-3.2-1b.json --budget 24GiB --input 2,2048 --device cpu --formula
  python -m complexity fit torchvision:resnet50 --budget 24GiB --batch 32 --gpus 8 --parallel fsdp
  python -m complexity fit torchvision:vit_b_16 --budget 16GiB --batch 64 --gpus auto"""

#: units of a size: binary (KiB … and the bare K, M, G, T, as ls -h and nvidia-smi
#: write them) and decimal (kB, MB, GB, TB, SI)
UNITS = {"": 1, "b": 1,
         "k": 2**10, "kib": 2**10, "m": 2**20, "mib": 2**20, "g": 2**30, "gib": 2**30,
         "t": 2**40, "tib": 2**40,
         "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def byte_size(text: str, allow_zero: bool = False) -> int:
    """``24GiB``, ``24 GB``, ``24G``, ``1.5TiB`` or plain bytes → bytes (an integer,
    rounded down). GiB/G are 2³⁰ bytes, GB 10⁹.

    >>> byte_size("24GiB") == byte_size("24G") == 24 * 2**30, byte_size("24 GB")
    (True, 24000000000)
    >>> byte_size("1.5TiB") == 3 * 2**39, byte_size("4096")
    (True, 4096)
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*", text)
    unit = m and UNITS.get(m.group(2).lower())
    if not m or unit is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size (write e.g. 24GiB, 24G, 24 GB, 1.5TiB or a number of bytes)")
    value = int(Fraction(m.group(1)) * unit)
    if value < 0 or (value == 0 and not allow_zero):
        raise argparse.ArgumentTypeError(f"{text!r} is out of range (need a size > 0)")
    return value


def _size(text: str):
    """``auto`` or ``H``/``HxW`` (each >= 1).

    >>> _size("auto"), _size("32x48")
    ('auto', (32, 48))
    """
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return size(text, minimum=1)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(str(e).replace("(write H or HxW", "(write auto, H or HxW"))


def _budget(text: str) -> int:
    return byte_size(text)


def _reserve(text: str) -> int:
    return byte_size(text, allow_zero=True)


def add_arguments(p) -> None:
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    add_model_args_option(p)
    p.add_argument("--budget", type=_budget, required=True, metavar="SIZE",
                   help="memory to fit in: 24GiB, 24G (binary), 24GB (decimal), 1.5TiB or bytes")
    p.add_argument("--mode", type=mode_list, default=["full", "last"], metavar="full,last",
                   help="full = every parameter trains; last = only the last layer (full,last)")
    p.add_argument("--trainable", type=word_list, action="append", metavar="GLOB[,GLOB]",
                   help="parameter-name globs (e.g. 'layer4.*,fc.*'): one more trainable set; "
                   "repeatable: each --trainable is a set of its own")
    p.add_argument("--batch", type=positive_int, default=None, metavar="B",
                   help="image batch size (32)")
    p.add_argument("--size", type=_size, default=None,
                   metavar="H|HxW|auto", help="image height and width (224); auto: the "
                   "largest square size that fits, solved from the peak's formula in B, H, W "
                   "on the sizes the strided layers allow, then over every integer up to "
                   "the next of them (it fits, one more does not)")
    p.add_argument("--input", default=None, metavar="N,...",
                   help="the whole input shape, batch first, any rank, sizes >= 1, instead "
                   "of --batch/--size (the max batch is over N): 8,512 token ids, 4,16000 "
                   "audio samples, 2,3,16,112,112 video clips, 4,3,224,224 images; one size "
                   "may be auto: 4,auto = the longest sequence that fits at batch 4, proved "
                   "(it fits, one more does not), up to the model's max_position_embeddings")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cuda (default): the caching allocator's predicted max_memory_reserved "
                   "plus --reserve must fit; cpu: the exact peak must fit")
    p.add_argument("--reserve", type=_reserve, default=None, metavar="SIZE",
                   help="cuda: memory the CUDA context and libraries hold outside the "
                   "allocator (default 512MiB, an estimate)")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--formula", action="store_true",
                   help="with --input B,S of a language model: the step's peak and every "
                   "other quantity also as formulas in B and S (one more trace, on symbolic "
                   "sizes: tens of seconds for a 7B model), checked against concrete "
                   "predictions at random B, S")
    add_step_arguments(p)
    add_parallel_arguments(p)


def run(args) -> int:
    from complexity.cost.fit.verdict import BudgetError, verdicts
    from complexity.output import fit as fit_report

    # every option first: nothing is traced before the last check passes
    options, lora_sets = step_options(args, args.device)
    shape = _input(args)
    if args.formula and (shape is None or len(shape) != 2):
        raise UsageError("--formula is a formula in B and S: give --input as B,S "
                         "(B sequences of S token ids)")
    if parallel_args.wanted(args, lora_sets):
        return parallel_args.run_fit(args, options, shape)
    try:
        results = verdicts(args.model, args.budget, modes=args.mode,
                           trainable=args.trainable or [], lora=lora_sets, batch=args.batch,
                           size=args.size, device=args.device, reserve=args.reserve,
                           options=options, model_args=given_model_args(args.model_args),
                           input_shape=shape, formula=args.formula)
    except BudgetError as e:
        raise UsageError(_budget_text(e)) from None
    except ValueError as e:
        raise UsageError(flag_text(e)) from None
    return emit(fit_report.render([r.to_dict() for r in results], args.format))


def _input(args):
    """``--input`` as a shape (None without it); :class:`UsageError` when it is not
    one or comes with ``--batch``/``--size``, which it replaces (``--size auto``
    finds an image size: not with a shape given)."""
    from complexity.cost.fit.verdict import parse_auto_input
    from complexity.zoo import ModelSpecError

    if args.input is None:
        return None
    if args.size == "auto":
        raise UsageError("--size auto finds the largest square image size; with --input the "
                         "sizes are given: drop one")
    given = [f for f, v in (("--batch", args.batch), ("--size", args.size)) if v is not None]
    if given:
        raise UsageError(f"--input is the whole input shape (batch first); drop "
                         f"{' and '.join(given)}, or drop --input")
    try:
        return parse_auto_input(args.input)
    except ModelSpecError as e:
        raise UsageError(flag_text(e)) from None


def _budget_text(e) -> str:
    """The budget below the weights, in the units people read."""
    from complexity.output.units import bytes_text

    extra = (f" plus the {bytes_text(e.reserve)} reserve for the CUDA context"
             if e.reserve is not None else "")
    return (f"--budget {bytes_text(e.budget)} is smaller than the weights alone "
            f"({e.weights / 2**30:.4f} GiB = {bytes_text(e.weights)}{extra}): nothing can train")
