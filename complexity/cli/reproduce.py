"""``python -m complexity reproduce``: regenerate every report under reports/ with
one command, running the writers of :data:`complexity.reproduce.REPORT_STEPS`.
"""
from __future__ import annotations

import json
import os

from complexity.cli.common import UsageError, add_threads_argument, emit, set_threads
from complexity.reproduce import REPORT_STEPS, Context

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
    p.add_argument("--format", choices=("table", "json"), default="table")


def run(args) -> int:
    steps = dict(REPORT_STEPS)
    names = list(steps)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in steps]
        if unknown or not names:
            raise UsageError(f"--only {args.only}: unknown step(s) {', '.join(unknown) or '(none)'}"
                             f"; choose from {', '.join(steps)}")
    set_threads(args)
    quick = args.quick
    ctx = Context(
        reports=args.reports or (os.path.join("runs", "quick-reports") if quick else "reports"),
        runs=args.runs or os.path.join("runs", "reproduce-quick" if quick else "reproduce"),
        quick=quick, fresh=args.fresh, progress=not args.quiet)
    written = {name: steps[name](ctx) for name in names}
    if args.format == "json":
        return emit(json.dumps({"quick": quick, "reports": written}, indent=1))
    return emit("\n".join(f"{name}: {', '.join(paths)}" for name, paths in written.items()))
