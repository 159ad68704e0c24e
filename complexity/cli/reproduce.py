"""``reproduce``: regenerate every report under reports/ with one command.

A report step is a function ``step(ctx) -> [written paths]`` taking a
:class:`complexity.reproduce.experiments.Context`; :data:`REPORT_STEPS` is the one list of
them. Adding a report (segmentation, say) is one line there.
"""
from __future__ import annotations

import json
import os

from complexity.reproduce import experiments as train_reports
from complexity.cli.common import UsageError, add_threads_argument, set_threads

def _counts(ctx):
    from complexity.reproduce import counts as report_counts

    return [report_counts.write(ctx.reports)]


def _finetune(ctx):
    from complexity.reproduce import finetune as finetune_answers

    return finetune_answers.main(ctx.reports)


def _segmentation(ctx):
    from complexity.reproduce import segmentation as segmentation_report

    return [segmentation_report.write_report(ctx.reports, quick=True, smoke=ctx.quick)]


REPORT_STEPS = [
    ("counts", _counts),
    ("finetune", _finetune),
    ("colourization", train_reports.colourization),
    ("batch_size", train_reports.batch_size),
    ("invariance", train_reports.invariance),
    ("segmentation", _segmentation),
]


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


def run(args) -> str:
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
    ctx = train_reports.Context(
        reports=args.reports or (os.path.join("runs", "quick-reports") if quick else "reports"),
        runs=args.runs or os.path.join("runs", "reproduce-quick" if quick else "reproduce"),
        quick=quick, fresh=args.fresh, progress=not args.quiet)
    written = {}
    for name in names:
        written[name] = steps[name](ctx)
    if args.format == "json":
        return json.dumps({"quick": quick, "reports": written}, indent=1)
    return "\n".join(f"{name}: {', '.join(paths)}" for name, paths in written.items())
