"""The command line: ``python -m complexity COMMAND ...``.

Thin by design: each command is one module of this package with ``HELP`` (one
line), ``add_arguments(parser)`` and ``run(args) -> exit code``; a new command is a
new module and one line in :data:`COMMANDS`. Errors the user can fix end in one
line on stderr and exit code 2 (:class:`~complexity.cli.common.UsageError`, or an
``OSError`` on a path they gave); Ctrl-C ends in one line and 130.
"""
from __future__ import annotations

import argparse
import sys

from complexity.cli import (derive, finetune, fit, invariance, profile, report, reproduce,
                            segment, sweep_batch, train)
from complexity.cli.common import OneLineParser, UsageError, flag_text

COMMANDS = {
    "report": report,
    "finetune": finetune,
    "fit": fit,
    "profile": profile,
    "derive": derive,
    "segment": segment,
    "train": train,
    "sweep-batch": sweep_batch,
    "invariance": invariance,
    "reproduce": reproduce,
}


def main(argv=None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command, return its exit code."""
    parser = OneLineParser(prog="python -m complexity",
                           description="What a convolutional network costs, exactly, and proof.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, module in COMMANDS.items():
        module.add_arguments(sub.add_parser(
            name, help=module.HELP, description=module.HELP, epilog=getattr(module, "EPILOG", None),
            formatter_class=argparse.RawDescriptionHelpFormatter))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command].run(args)
    except UsageError as e:
        sys.stderr.write(f"python -m complexity {args.command}: error: {flag_text(e)}\n")
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
