"""The options of a training step that ``finetune`` and ``fit`` share: the
optimizer and how it updates (for-loop, foreach, fused), the parameters' dtype,
autocast, activation checkpointing, gradient buffers kept or set to None,
gradient accumulation, loss scaling (GradScaler), and LoRA adapters as one more trainable set.

:func:`add_step_arguments` adds them to a parser; :func:`step_options` checks
them together (exit 2, one line) and returns a
:class:`complexity.cost.step.options.StepOptions` and the LoRA modes."""
from __future__ import annotations

import argparse

from complexity.cli.common import UsageError, flag_text, positive_int
from complexity.cost.step.optimizers import NAMES as OPTIMIZERS
from complexity.cost.step.options import AUTOCAST, DTYPES


def word_list(text: str):
    """``A,B`` → ``["A", "B"]``: comma-separated words, none empty, none twice."""
    from complexity.cli.common import distinct

    words = [w.strip() for w in text.split(",") if w.strip()]
    if not words:
        raise argparse.ArgumentTypeError(f"{text!r} holds no value")
    return distinct(words, text)


def mode_list(text: str):
    """``full,last`` → the modes (each ``full`` or ``last``)."""
    words = word_list(text)
    bad = [w for w in words if w not in ("full", "last")]
    if bad:
        raise argparse.ArgumentTypeError(f"{bad[0]!r} is not a mode (choose full, last; "
                                         "or give --trainable GLOB)")
    return words


def _lora(text: str) -> str:
    from complexity.cost.step.lora import parse_lora

    try:
        parse_lora(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(flag_text(e).replace("--lora ", "", 1))
    return text


def add_step_arguments(p) -> None:
    """The step options (argparse group "training step")."""
    g = p.add_argument_group("training step", "how the step runs (default: Adam for-loop, "
                             "float32, no autocast, no checkpointing, gradients set to None)")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default="adam",
                   help="sgd, sgd-momentum (0.9), adam, adamw, adafactor (torch.optim.Adafactor: "
                   "factored second moments) (default adam)")
    how = g.add_mutually_exclusive_group()
    how.add_argument("--foreach", dest="foreach", action="store_true", default=None,
                     help="the multi-tensor update (PyTorch's default on CUDA)")
    how.add_argument("--no-foreach", dest="foreach", action="store_false",
                     help="the per-parameter for-loop update (PyTorch's default on the CPU)")
    how.add_argument("--fused", action="store_true", help="the fused update kernel")
    g.add_argument("--dtype", choices=DTYPES, default="float32",
                   help="the type parameters, buffers and the input are stored in (float32)")
    g.add_argument("--autocast", choices=AUTOCAST, default=None,
                   help="torch.autocast around forward and loss, float32 master weights")
    g.add_argument("--checkpoint", metavar="GLOB", default=None,
                   help="torch.utils.checkpoint (non-reentrant) around every module whose "
                   "name matches, e.g. 'layer*' or 'encoder.layers.*'; 'hf': Hugging Face's "
                   "own model.gradient_checkpointing_enable() (every decoder/encoder layer, "
                   "the input embeddings' output made to require grad)")
    g.add_argument("--lora", metavar="r=8,alpha=16,targets=GLOB", type=_lora, action="append",
                   help="LoRA adapters (peft) on the Linear/Conv2d modules the glob matches "
                   "(or names: targets=q_proj,k_proj,v_proj,o_proj matches every module so "
                   "named, at any depth), the base frozen: one more trainable set; repeatable")
    zero = g.add_mutually_exclusive_group()
    zero.add_argument("--set-to-none", dest="set_to_none", action="store_true", default=True,
                      help="optimizer.zero_grad(set_to_none=True): gradients freed (default)")
    zero.add_argument("--zero-grad", dest="set_to_none", action="store_false",
                      help="optimizer.zero_grad(set_to_none=False): gradient buffers kept, zeroed")
    g.add_argument("--grad-accum", type=positive_int, default=1, metavar="K",
                   help="K micro-batches of --batch per optimizer step (1)")
    g.add_argument("--grad-scaler", action="store_true",
                   help="loss scaling with torch.amp.GradScaler: scaler.scale(loss).backward(), "
                   "scaler.step(opt), scaler.update()")


def step_options(args, device: str = "cpu"):
    """``(StepOptions, lora_modes)`` from the parsed options, built by the library
    (:func:`complexity.cost.step.options.step_options`,
    :func:`complexity.cost.step.lora.lora_modes`); ``device`` picks the update
    PyTorch uses by default (foreach on CUDA, the for-loop on the CPU).
    :class:`UsageError` (worded by flags) for options that do not go together,
    before any work."""
    from complexity.cost.step.lora import lora_modes
    from complexity.cost.step.options import step_options as build

    try:
        options = build(args.optimizer, foreach=args.foreach, fused=args.fused,
                        dtype=args.dtype, autocast=args.autocast, checkpoint=args.checkpoint,
                        set_to_none=args.set_to_none, grad_accum=args.grad_accum,
                        grad_scaler=args.grad_scaler, device=device)
        return options, lora_modes(args.lora)
    except ValueError as e:
        raise UsageError(flag_text(e)) from None
