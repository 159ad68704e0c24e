"""Command line: ``python -m complexity <command> ...``.

Thin by design: each subcommand parses its options, calls the library, prints.
Subcommands register themselves in :data:`COMMANDS` as ``(add_arguments, run)``
pairs so that a new one is a new function, not a new branch here.
"""
from __future__ import annotations

import argparse
import sys

from complexity.cli import (finetune as cmd_finetune, invariance as cmd_invariance,
    profile as cmd_profile, reproduce as cmd_reproduce, segment as cmd_segment,
    train as cmd_train)
from complexity.cli.common import OneLineParser, UsageError, odd_kernel, positive_int, size
from complexity.counting.conventions import CONVENTIONS, DEFAULT_CONVENTION

FORMATS = ("table", "markdown", "latex", "csv", "json")


# ------------------------------------------------------------------ report
def report_arguments(p):
    p.add_argument("--model", choices=("cnn", "unet", "both"), default="both",
                   help="which colourization net of the course assignment: the plain CNN, the "
                   "UNet with skip connections, or both (default)")
    p.add_argument("--nf", type=positive_int, default=32, help="NF, filters of the first conv (32)")
    p.add_argument("--nc", type=positive_int, default=24, help="NC, colour classes (24)")
    p.add_argument("--kernel", type=odd_kernel, default=3, help="k, odd kernel size (3)")
    p.add_argument("--in-channels", type=positive_int, default=1, help="NIC, input channels (1)")
    p.add_argument("--size", type=size, default=(32, 32), metavar="H|HxW",
                   help="input height and width, >= 4 (UNet: multiples of 4); default 32")
    p.add_argument("--convention", choices=(*CONVENTIONS, "all"), default=DEFAULT_CONVENTION,
                   help="counting convention (SPEC §2): lecture = conv kernels only; "
                   "course = + biases, BN, pool/upsample outputs, bias connections; "
                   "torch = every parameter, every leaf output, MACs; all = side by side")
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="table (default), markdown, latex, csv, or json (machine-readable, "
                   "general formulas in NF, NC, k, NIC, H, W)")
    p.add_argument("--per-layer", action="store_true",
                   help="also list every layer (its sums equal the totals)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the hook check on a real network (does not import torch)")


def report_run(args) -> str:
    from complexity.counting import report

    models = ["cnn", "unet"] if args.model == "both" else [args.model]
    h, w = args.size
    if "unet" in models and (h % 4 or w % 4):
        raise UsageError(f"--size {h}x{w}: the UNet needs H and W divisible by 4 (its skip "
                         "concatenations fail otherwise); use --model cnn for other sizes")
    conventions = list(CONVENTIONS) if args.convention == "all" else [args.convention]
    params = dict(NF=args.nf, NC=args.nc, k=args.kernel, NIC=args.in_channels, H=h, W=w)
    results = report.build(models, conventions, params, per_layer=args.per_layer,
                           verify=not args.no_verify)
    return report.render(results, args.format, verify=not args.no_verify)


COMMANDS = {
    "report": (report_arguments, report_run,
               "exact weights / outputs / connections of the colourization CNN and UNet"),
    "finetune": (cmd_finetune.add_arguments, cmd_finetune.run,
                 "memory and FLOPs of one training step, full vs last layer: predicted and measured"),
    "profile": (cmd_profile.profile_arguments, cmd_profile.profile_run,
                "per-layer params, outputs and MACs of any PyTorch model, on the meta device"),
    "derive": (cmd_profile.derive_arguments, cmd_profile.derive_run,
               "exact formulas for params, outputs, MACs of any model in chosen symbols, verified"),
    "segment": (cmd_segment.add_arguments, cmd_segment.run,
                "fine-tune DeepLabV3 (last layer or all) for foreground/background, with its cost"),
    "train": (cmd_train.train_arguments, cmd_train.train_run,
              "train the colourization CNN or UNet; curves, samples, checkpoints"),
    "sweep-batch": (cmd_train.sweep_arguments, cmd_train.sweep_run,
                    "train one model per batch size and compare curves and outputs"),
    "invariance": (cmd_invariance.add_arguments, cmd_invariance.run,
                   "does scaling and shifting the input (a·x + b) change the output?"),
    "reproduce": (cmd_reproduce.add_arguments, cmd_reproduce.run,
                  "regenerate the reports under reports/ (--quick: minutes)"),
}


EPILOGS = {
    "report": """examples:
  python -m complexity report --nf 32 --nc 24          the six values of each net, proved
  python -m complexity report --convention all         lecture / course / torch side by side
  python -m complexity report --model cnn --size 30x45 --per-layer
  python -m complexity report --format json | jq '.[0].quantities.weights.formula'""",
}


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m complexity",
                           description="What a convolutional network costs, exactly, and proof.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, (add, _run, text) in COMMANDS.items():
        add(sub.add_parser(name, help=text, description=text, epilog=EPILOGS.get(name),
                           formatter_class=argparse.RawDescriptionHelpFormatter))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        out = COMMANDS[args.command][1](args)
    except UsageError as e:
        sys.stderr.write(f"python -m complexity {args.command}: error: {e}\n")
        return 2
    except OSError as e:
        # a path the user gave that cannot be read or written: their input, one line
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        sys.stderr.write(f"python -m complexity {args.command}: error: "
                         f"{e.strerror or e}{where}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"python -m complexity {args.command}: interrupted\n")
        return 130
    if out:
        sys.stdout.write(out if out.endswith("\n") else out + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
