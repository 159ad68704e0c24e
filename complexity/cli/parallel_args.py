"""The options of many GPUs that ``fit`` and ``finetune`` take: ``--gpus N``
or ``auto``, ``--parallel ddp|fsdp|fsdp-no-reshard``, ``--shard GLOB`` (the FSDP
units), FSDP2's policies ``--mixed-precision param=DTYPE,reduce=DTYPE`` and
``--offload``, the batch then per rank. :func:`add_parallel_arguments` adds them;
:func:`wanted` checks them together (exit 2, one line, before any tracing) and says
whether the command answers per rank; :func:`run_fit` renders the answer."""
from __future__ import annotations

import argparse
import sys

from complexity.cli.common import UsageError, emit, flag_text
from complexity.cost.parallel.layout import PARALLEL


def gpus_count(text: str):
    """``auto`` or an integer ≥ 1.

    >>> gpus_count("8"), gpus_count("auto")
    (8, 'auto')
    """
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of GPUs (need an integer "
                                         ">= 1, or auto)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is out of range (need an integer >= 1, "
                                         "or auto)")
    return value


def precision(text: str):
    """A ``--mixed-precision`` value, parsed (its dtype names checked).

    >>> precision("param=bf16,reduce=fp32").text()
    'param=bfloat16,reduce=float32'
    """
    from complexity.cost.parallel.policy import parse_precision

    try:
        return parse_precision(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).split(": ", 1)[-1]) from None


#: the flags, each with its argparse settings (every default None: not given)
FLAGS = (
    ("--gpus", dict(type=gpus_count, metavar="N|auto",
                    help="data-parallel over N GPUs; auto: the fewest that fit, proved at N "
                    "and N-1")),
    ("--parallel", dict(choices=PARALLEL,
                        help="ddp: DistributedDataParallel; fsdp (default with --gpus): "
                        "fully_shard, resharding after forward (ZeRO-3); fsdp-no-reshard: "
                        "reshard_after_forward=False (ZeRO-2-like)")),
    ("--shard", dict(metavar="GLOB", help="the modules made FSDP units, then the root "
                     "(default: each transformer block, each ResNet stage)")),
    ("--mixed-precision", dict(type=precision, metavar="param=DTYPE,reduce=DTYPE",
                               help="FSDP2's MixedPrecisionPolicy: param= the gathered "
                               "parameters' dtype (activations too), reduce= the gradient "
                               "reduction's; output= every unit's outputs (an estimate); "
                               "cast-inputs=yes|no; dtypes float32, bfloat16, float16, "
                               "float64")),
    ("--offload", dict(action="store_true", help="FSDP2's CPUOffloadPolicy: shards, "
                       "gradients and optimizer state on the host (device and host bytes "
                       "apart; an estimate)")),
)


def add_parallel_arguments(p) -> None:
    g = p.add_argument_group("many GPUs (every figure per rank; --batch is per rank)")
    for flag, settings in FLAGS:
        g.add_argument(flag, **({} if settings.get("action") else {"default": None}),
                       **settings)


def wanted(args, lora_sets) -> bool:
    """Whether the command answers per rank; :class:`UsageError` for a combination
    it cannot answer. ``--parallel``/``--shard`` on one GPU change nothing: said on
    stderr, and the single-GPU answer follows."""
    gpus, parallel, shard = args.gpus, args.parallel, args.shard
    _check_policies(args)
    if gpus is None and parallel is None and shard is None:
        return False
    if parallel == "ddp" and shard is not None:
        raise UsageError(f"--shard {shard} names FSDP units; --parallel ddp shards nothing")
    if gpus in (None, 1):
        given = " ".join(f for f, v in (("--parallel", parallel), ("--shard", shard)) if v)
        print(f"note: {given} with one GPU changes nothing: one rank holds the whole step",
              file=sys.stderr)
        return False
    for flag, bad in (("--size auto", getattr(args, "size", None) == "auto"),
                      ("--lora", bool(lora_sets)),
                      ("--reserve", getattr(args, "reserve", None) is not None),
                      # its state is factored by shape, and a rank's shard is no shape
                      ("--optimizer adafactor", getattr(args, "optimizer", None) == "adafactor"),
                      ("--formula", bool(getattr(args, "formula", False)))):
        if bad:
            raise UsageError(f"{flag} is not modelled per rank yet: drop it or --gpus")
    try:
        import torch.distributed.fsdp as fsdp
    except ImportError as e:
        raise UsageError(f"--gpus: this PyTorch has no torch.distributed ({e})") from None
    if (parallel or "fsdp") != "ddp" and not hasattr(fsdp, "fully_shard"):
        raise UsageError("--parallel fsdp needs fully_shard (FSDP2), which this PyTorch lacks")
    return True


def _check_policies(args) -> None:
    """FSDP2's policies need FSDP over several GPUs, and a PyTorch that has them."""
    mixed, offload = args.mixed_precision, args.offload
    given = " and ".join(f for f, v in (("--mixed-precision", mixed), ("--offload", offload))
                         if v)
    if not given:
        return
    if args.parallel == "ddp":
        raise UsageError(f"{given} is FSDP2's policy; --parallel ddp has none")
    if args.gpus in (None, 1):
        raise UsageError(f"{given} is FSDP2's policy over several GPUs: give --gpus N (N >= 2) "
                         "or auto")
    from complexity.cost.parallel.policy import check_available

    try:
        check_available(mixed, bool(offload))
    except ValueError as e:
        raise UsageError(flag_text(e)) from None


def run_fit(args, options, shape) -> int:
    """``fit --gpus``: the per-rank answers, rendered."""
    from complexity.api.ranks import fit_ranks
    from complexity.cli.model_args import given_model_args
    from complexity.output import ranks

    try:
        rows = fit_ranks(args.model, args.budget, gpus=args.gpus,
                         parallel=args.parallel or "fsdp", shard=args.shard,
                         batch=args.batch, size=args.size, input_shape=shape,
                         modes=args.mode, trainable=args.trainable or [],
                         device=args.device, model_args=given_model_args(args.model_args),
                         options=options, mixed_precision=args.mixed_precision,
                         offload=args.offload)
    except ValueError as e:
        raise UsageError(flag_text(e)) from None
    return emit(ranks.render(rows, args.format))


def run_finetune(args, options, inputs, model_args) -> int:
    """``finetune --gpus``: rank 0's step at every model, input and mode, predicted
    and measured (``--measure``: fake process group, real gloo processes, none);
    ``inputs``: the ``--input`` shapes, else ``--size`` × ``--batch`` images."""
    from complexity.api.ranks import step_cost_ranks
    from complexity.errors import reason
    from complexity.output import ranks
    from complexity.zoo import build_model

    if args.gpus == "auto":
        raise UsageError("--gpus auto finds the fewest GPUs that fit a budget: it is fit's; "
                         "give finetune a number")
    shape = dict(layers=(args.layers or [4])[0], width=(args.width or [16])[0])
    rows = []
    for name in args.model:
        channels = build_model(name, model_args=model_args, **shape)[1]
        for x in inputs or [(b, channels, h, w) for h, w in (args.sizes or [(64, 64)])
                            for b in (args.batch or [8])]:
            for mode in args.mode:
                try:
                    rows.append(step_cost_ranks(
                        name, x, gpus=args.gpus, parallel=args.parallel or "fsdp",
                        shard=args.shard, mode=mode, measure=args.measure,
                        model_args=model_args, options=options,
                        mixed_precision=args.mixed_precision, offload=args.offload, **shape))
                except ValueError as e:
                    raise UsageError(flag_text(e)) from None
                except RuntimeError as e:
                    raise UsageError(f"model {name} cannot take a {'x'.join(map(str, x))} "
                                     f"input ({reason(e)})") from None
    return emit(ranks.render_steps(rows, args.format))
