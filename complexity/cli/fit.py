"""``python -m complexity fit``: will one training step fit in a memory budget, for
each trainable set, and what is the largest batch that does? Wires
:func:`complexity.cost.fit.proofs.will_it_fit` to the options; imports torch
only inside :func:`run`."""
from __future__ import annotations

import argparse
import re
from fractions import Fraction

from complexity.cli.step_args import (add_step_arguments, mode_list, step_options,
                                       word_list)
from complexity.cli.common import UsageError, emit, positive_int, size
from complexity.cli.model_args import MODEL_HELP, add_model_args_option, given_model_args
from complexity.errors import reason
from complexity.output.tables import FORMATS

HELP = "will a training step fit in a memory budget? verdict, largest batch, peak and its parts"
EPILOG = """examples:
  python -m complexity fit torchvision:resnet50 --budget 24GiB --batch 32 --mode full,last --trainable 'layer4.*,fc.*'
  python -m complexity fit unet --size 64 --budget 2GiB --device cpu --format json
  python -m complexity fit torchvision:resnet50 --budget 24GiB --batch 32 --size auto"""

#: where ``--size auto`` starts its lattice (the domain then reaches down as far as
#: the step keeps its structure)
AUTO_BASE = (224, 224)

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
    p.add_argument("--batch", type=positive_int, default=32, metavar="B", help="batch size (32)")
    p.add_argument("--size", type=_size, default=(224, 224),
                   metavar="H|HxW|auto", help="input height and width (224); auto: the "
                   "largest square size that fits, solved from the peak's formula in B, H, W")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                   help="cuda (default): the caching allocator's predicted max_memory_reserved "
                   "plus --reserve must fit; cpu: the exact peak must fit")
    p.add_argument("--reserve", type=_reserve, default=None, metavar="SIZE",
                   help="cuda: memory the CUDA context and libraries hold outside the "
                   "allocator (default 512MiB, an estimate)")
    p.add_argument("--format", choices=FORMATS, default="table")
    add_step_arguments(p)


def _build(name: str, model_args: dict):
    """(model on the meta device, input channels); UsageError when it cannot be built."""
    from complexity.zoo import build_model

    try:
        return build_model(name, model_args=model_args)
    except ValueError as e:
        raise UsageError(str(e)) from None
    except Exception as e:
        raise UsageError(f"model {name}: {reason(e)}") from None


def run(args) -> int:
    from complexity.cost.fit.allocator import DEFAULT_RESERVE
    from complexity.cost.fit.proofs import will_it_fit
    from complexity.cost.fit.step_formula import FormulaError
    from complexity.cost.step.lora import lora_of, target_modules, trainable_model
    from complexity.cost.step.trainable import set_trainable
    from complexity.output import fit as fit_report
    from complexity.output.units import bytes_text

    # every option first: nothing is traced before the last check passes
    if args.reserve is not None and args.device != "cuda":
        raise UsageError("--reserve applies to --device cuda only")
    reserve = DEFAULT_RESERVE if args.reserve is None else args.reserve
    options, lora_sets = step_options(args, args.device)
    if options.autocast == "float16" and args.device == "cpu":
        raise UsageError("--autocast float16 runs on CUDA; on --device cpu use bfloat16")
    sets = list(args.mode)
    for group in args.trainable or []:
        joined = ",".join(group)
        if joined in sets:
            raise UsageError(f"--trainable {joined!r} is given twice; give each set once")
        sets.append(joined)
    model, channels = _build(args.model, given_model_args(args.model_args))
    dtype = options.torch_dtype()
    weights = sum(t.numel() * (dtype.itemsize if t.dtype.is_floating_point else t.element_size())
                  for t in (*model.parameters(), *model.buffers()))
    floor = weights + (reserve if args.device == "cuda" else 0)
    if args.budget < floor:
        extra = (f" plus the {bytes_text(reserve)} reserve for the CUDA context"
                 if args.device == "cuda" else "")
        raise UsageError(f"--budget {bytes_text(args.budget)} is smaller than the weights "
                         f"alone ({weights / 2**30:.4f} GiB = {bytes_text(weights)}{extra}): "
                         "nothing can train")
    for s in sets:
        if s not in ("full", "last"):
            try:
                set_trainable(model, s)
            except ValueError as e:
                raise UsageError(f"model {args.model}: {e}") from None
    try:
        if options.checkpoint:
            from complexity.cost.step.checkpointing import checkpoint_modules

            checkpoint_modules(model, options.checkpoint)
        for mode in lora_sets:
            target_modules(model, lora_of(mode))
    except ValueError as e:
        raise UsageError(f"model {args.model}: {e}") from None
    auto = args.size == "auto"
    h, w = AUTO_BASE if auto else args.size
    results = []
    for s in sets + lora_sets:
        # LoRA: a fresh build with the adapters, the base frozen
        net, _ = trainable_model(model, s, lambda: _build(args.model,
                                                          given_model_args(args.model_args))[0])
        extra, formula = {}, None
        if auto:
            extra, formula, h, w = _auto_size(args, net, channels, s, options, reserve)
        try:
            r = will_it_fit(net, (channels, h, w), args.batch, args.budget,
                            device=args.device, reserve=reserve, options=options,
                            formula=formula)
        except FormulaError as e:
            raise UsageError(f"model {args.model}, {s}: no verified formula ({e})") from None
        except Exception as e:  # the forward failed: a size or input it cannot take
            raise UsageError(f"model {args.model} cannot take a {h}x{w} input "
                             f"({reason(e)})") from None
        results.append({"model": args.model, "mode": s, "size": [h, w], **r, **extra,
                        "step": options.label()})
    return emit(fit_report.render(results, args.format))


def _auto_size(args, net, channels, mode, options, reserve):
    """``--size auto`` for one trainable set: ``(JSON additions, the step's formula
    in B at the size reported, H, W)``. The size reported is the max size, or the
    domain's smallest square size when none fits."""
    from complexity.cost.fit.proofs import proven_max_size
    from complexity.cost.fit.size_formula import size_formula
    from complexity.cost.fit.step_formula import FormulaError

    try:
        f = size_formula(net, channels, args.device, base=AUTO_BASE, options=options)
        best = proven_max_size(net, f, args.batch, args.budget, device=args.device,
                               reserve=reserve)
        lo = f.square_lattice()[0]
    except FormulaError as e:
        raise UsageError(f"--size auto: model {args.model}, {mode}: no verified formula in "
                         f"the size ({e})") from None
    except Exception as e:  # the forward failed at the base size
        raise UsageError(f"--size auto: model {args.model} cannot take a "
                         f"{AUTO_BASE[0]}x{AUTO_BASE[1]} input ({reason(e)})") from None
    at = best or lo
    extra = {"max_size": None if best is None else [best, best],
             "size_formula": str(f.formulas()["peak_bytes"]), "size_domain": f.domain_text()}
    return extra, f.restrict(at, at), at, at
