"""``python -m complexity reproduce``: regenerate every report under reports/ with
one command, running the writers of :data:`complexity.reproduce.REPORT_STEPS`.
"""
from __future__ import annotations

import json
import os

from complexity.cli.common import (UsageError, add_threads_argument, emit, output_folder,
    set_threads)
from complexity.reproduce import REPORT_STEPS, USES_RUNS, Context
from complexity.output.tables import FORMATS

HELP = "regenerate the reports under reports/ (--quick: minutes)"


def add_arguments(p) -> None:
    p.add_argument("--quick", action="store_true",
                   help="tiny settings (minutes): checks the pipeline, not the figures; "
                   "writes to runs/quick-reports unless --reports is given")
    p.add_argument("--only", default=None, metavar="NAME[,NAME]",
                   help="run these steps only: " + ", ".join(n for n, _ in REPORT_STEPS))
    p.add_argument("--fresh", action="store_true",
                   help="retrain from scratch instead of continuing checkpoints in the runs folder")
    p.add_argument("--reports", default=None, metavar="DIR",
                   help="where the markdown and PNGs go (reports, or runs/quick-reports)")
    p.add_argument("--runs", default=None, metavar="DIR",
                   help="checkpoints and per-run outputs (runs/reproduce[-quick])")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_threads_argument(p)
    p.add_argument("--format", choices=FORMATS, default="table")


def run(args) -> int:
    # every option and path first: no step runs before this passes
    steps = dict(REPORT_STEPS)
    names = list(steps)
    if args.only is not None:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in steps]
        if unknown or not names:
            raise UsageError(f"--only {args.only!r}: "
                             + (f"unknown step(s) {', '.join(unknown)}" if unknown else "no step")
                             + f"; choose from {', '.join(steps)}")
        twice = [n for i, n in enumerate(names) if n in names[:i]]
        if twice:
            raise UsageError(f"--only {args.only}: {twice[0]} appears twice (give each step once)")
    if not any(n in USES_RUNS for n in names):
        for flag, given in (("--runs", args.runs is not None), ("--fresh", args.fresh)):
            if given:
                raise UsageError(f"{flag} applies to the steps that train ({', '.join(USES_RUNS)}); "
                                 f"none of {', '.join(names)} does; drop it")
    quick = args.quick
    reports = output_folder(
        args.reports or (os.path.join("runs", "quick-reports") if quick else "reports"), "--reports")
    runs = args.runs or os.path.join("runs", "reproduce-quick" if quick else "reproduce")
    if any(n in USES_RUNS for n in names):
        output_folder(runs, "--runs")
    set_threads(args)
    ctx = Context(reports=reports, runs=runs, quick=quick, fresh=args.fresh,
                  progress=not args.quiet)
    written = {name: steps[name](ctx) for name in names}
    if args.format == "json":
        return emit(json.dumps({"quick": quick, "reports": written}, indent=1))
    from complexity.output.experiments import render_reproduce

    return emit(render_reproduce({"quick": quick, "reports": written}, args.format))
