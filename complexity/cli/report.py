"""``python -m complexity report``: exact weights / outputs / connections of the
colourization CNN and UNet as formulas in NF, NC, k, NIC, H, W, their values at
H×W and 2H×2W, and a proof against hooks on a real network. Thin: parse, call
:func:`complexity.counting.report.build`, render with :mod:`complexity.output.report`.
``--no-verify`` never imports torch."""
from __future__ import annotations

from complexity.cli.common import UsageError, emit, odd_kernel, positive_int, size
from complexity.counting.conventions import CONVENTIONS, DEFAULT_CONVENTION
from complexity.output.tables import FORMATS

HELP = "exact weights / outputs / connections of the colourization CNN and UNet"
EPILOG = """examples:
  python -m complexity report --nf 32 --nc 24          the six values of each net, proved
  python -m complexity report --convention all         lecture / course / torch side by side
  python -m complexity report --model cnn --size 30x45 --per-layer
  python -m complexity report --format json | jq '.[0].quantities.weights.formula'"""


def add_arguments(p) -> None:
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
                   help="counting convention (docs/conventions.md): lecture = conv kernels only; "
                   "course = + biases, BN, pool/upsample outputs, bias connections; "
                   "torch = every parameter, every leaf output, MACs; all = side by side")
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="table (default), markdown, latex, csv, or json (machine-readable, "
                   "general formulas in NF, NC, k, NIC, H, W)")
    p.add_argument("--per-layer", action="store_true",
                   help="also list every layer (its sums equal the totals)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the hook check on a real network (does not import torch)")


def run(args) -> int:
    from complexity.counting import report
    from complexity.output.report import render

    models = ["cnn", "unet"] if args.model == "both" else [args.model]
    h, w = args.size
    if "unet" in models and (h % 4 or w % 4):
        raise UsageError(f"--size {h}x{w}: the UNet needs H and W divisible by 4 (its skip "
                         "concatenations fail otherwise); use --model cnn for other sizes")
    conventions = list(CONVENTIONS) if args.convention == "all" else [args.convention]
    params = dict(NF=args.nf, NC=args.nc, k=args.kernel, NIC=args.in_channels, H=h, W=w)
    results = report.build(models, conventions, params, per_layer=args.per_layer,
                           verify=not args.no_verify)
    return emit(render(results, args.format, verify=not args.no_verify))
