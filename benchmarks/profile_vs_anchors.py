"""`complexity profile` (meta device) against torchinfo, fvcore, ptflops, thop and
FlopCounterMode on real tensors: time, peak memory and the totals each reports,
with ratios, measured in one run.

    pip install -e ".[bench]"
    python benchmarks/profile_vs_anchors.py                 # the issue's three cases
    python benchmarks/profile_vs_anchors.py --cases resnet50:224 --tools complexity,torchinfo

The anchors run in eval mode under ``torch.no_grad()``, their cheapest setting,
so that their totals are comparable; ``torchinfo-default`` runs torchinfo as its
README does (fresh model in train mode, autograd on), which is what costs the
memory users see. Each (tool, case) runs in a fresh subprocess so that its peak memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own. Imports are done
before the clock starts; the time covers building the model (random weights for
the anchors, shapes only for ``complexity``) and counting. The peak includes the
imports; ``base`` is the resident memory after them, so ``peak - base`` is what
the build and count added. Heavy at 1024×1024 (up to ~9 GB and ~30 s per anchor):
run it alone, and not in the test suite.

Also prints, from complexity's per-layer profile, the sizes that explain where
the anchors' totals differ: BatchNorm / ReLU / pooling output units and
convolution bias units.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = ("complexity", "flopcounter", "torchinfo", "fvcore", "ptflops", "thop",
         "torchinfo-default")
CASES = ("resnet50:224", "deeplabv3_resnet101:224", "deeplabv3_resnet101:512",
         "deeplabv3_resnet101:1024")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _real_model(name):
    import torchvision

    kwargs = {"weights": None}
    if name.startswith("deeplabv3"):
        kwargs["weights_backbone"] = None
    return torchvision.models.get_model(name, **kwargs).eval()


def worker(tool: str, name: str, size: int) -> dict:
    """Import, then time build + count for one tool; return what it reports."""
    import warnings

    warnings.filterwarnings("ignore")
    import torch
    import torchvision  # noqa: F401

    sys.path.insert(0, ROOT)
    shape = (1, 3, size, size)
    if tool == "complexity":
        from complexity.zoo import parse_spec
        from complexity.counting.profile import profile
    elif tool == "flopcounter":
        from torch.utils.flop_counter import FlopCounterMode
    elif tool in ("torchinfo", "torchinfo-default"):
        import torchinfo
    elif tool == "fvcore":
        from fvcore.nn import FlopCountAnalysis, parameter_count
    elif tool == "ptflops":
        from ptflops import get_model_complexity_info
    elif tool == "thop":
        import thop
    torch.manual_seed(0)
    base = _rss_mb()
    extra = {}
    start = time.perf_counter()
    if tool == "complexity":
        spec = parse_spec(f"torchvision:{name}")
        with torch.device("meta"):
            model = spec.build()
        p = profile(model, shape)
        params, macs = p["params"], p["macs"]
        extra["breakdown"] = _breakdown(p)
    elif tool == "torchinfo-default":
        # As its README shows it: a freshly built model (train mode), autograd on.
        kwargs = {"weights": None, **({"weights_backbone": None} if "deeplab" in name else {})}
        model = torchvision.models.get_model(name, **kwargs)
        s = torchinfo.summary(model, input_size=shape, verbose=0, device="cpu")
        params, macs = s.total_params, s.total_mult_adds
    else:
        model = _real_model(name)
        x = torch.randn(*shape)
        if tool == "flopcounter":
            with torch.no_grad(), FlopCounterMode(display=False) as fc:
                model(x)
            params = sum(t.numel() for t in model.parameters())
            macs = fc.get_total_flops() // 2
        elif tool == "torchinfo":
            s = torchinfo.summary(model, input_data=x, verbose=0, device="cpu")
            params, macs = s.total_params, s.total_mult_adds
        elif tool == "fvcore":
            with torch.no_grad():
                analysis = FlopCountAnalysis(model, x)
                analysis.unsupported_ops_warnings(False)
                analysis.uncalled_modules_warnings(False)
                macs = analysis.total()  # fvcore's "flop" is one multiply-add
                extra["by_operator"] = dict(analysis.by_operator())
            params = parameter_count(model)[""]
        elif tool == "ptflops":
            with torch.no_grad():
                macs, params = get_model_complexity_info(
                    model, shape[1:], as_strings=False, print_per_layer_stat=False,
                    verbose=False)
        elif tool == "thop":
            with torch.no_grad():
                macs, params = thop.profile(model, inputs=(x,), verbose=False)
    seconds = time.perf_counter() - start
    return {"tool": tool, "model": name, "size": size, "seconds": seconds,
            "peak_mb": _rss_mb(), "base_mb": base, "params": int(params), "macs": int(macs),
            **extra}


def _breakdown(p: dict) -> dict:
    """Output units per leaf kind (from the profile's rows): what the anchors add."""
    units = {}
    for r in p["layers"]:
        if r["outputs"] and r["kind"] in ("BatchNorm2d", "ReLU", "MaxPool2d", "AdaptiveAvgPool2d",
                                          "Dropout", "Conv2d", "Linear", "Upsample"):
            units[r["kind"]] = units.get(r["kind"], 0) + r["outputs"]
    return units


def run_one(tool: str, case: str) -> dict:
    name, size = case.split(":")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", tool, name, size]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"tool": tool, "model": name, "size": int(size), "error": tail[:200]}
    return json.loads(lines[-1])


def render(results) -> str:
    from tabulate import tabulate

    out = []
    for case in dict.fromkeys((r["model"], r["size"]) for r in results):
        rows = [r for r in results if (r["model"], r["size"]) == case]
        ours = next((r for r in rows if r["tool"] == "complexity" and "error" not in r), None)
        ti = next((r for r in rows if r["tool"] == "torchinfo" and "error" not in r), None)
        table = []
        for r in rows:
            if "error" in r:
                table.append([r["tool"], "failed: " + r["error"]] + [""] * 7)
                continue
            table.append([
                r["tool"], f"{r['seconds']:.2f}", f"{r['peak_mb']:,.0f}",
                f"{r['peak_mb'] - r['base_mb']:,.0f}", f"{r['params']:,}", f"{r['macs']:,}",
                f"{r['macs'] / ours['macs']:.4f}" if ours else "",
                f"{r['seconds'] / ours['seconds']:.1f}" if ours else "",
                f"{r['peak_mb'] / ti['peak_mb']:.2f}" if ti else "",
            ])
        out.append(f"{case[0]} at {case[1]}×{case[1]} (batch 1)")
        out.append(tabulate(table, headers=["tool", "time s", "peak MB", "peak-base MB", "params",
                                            "MACs reported", "MACs / ours", "time / ours",
                                            "peak / torchinfo"],
                            disable_numparse=True,
                            colalign=("left",) + ("right",) * 8))
        if ours:
            out.append("complexity's output units by leaf kind: " + ", ".join(
                f"{k} {v:,}" for k, v in ours["breakdown"].items()))
        fv = next((r for r in rows if r["tool"] == "fvcore" and "by_operator" in r), None)
        if fv:
            out.append("fvcore by operator: " + ", ".join(
                f"{k} {v:,}" for k, v in fv["by_operator"].items()))
        out.append("")
    ours = [r for r in results if r["tool"] == "complexity" and "error" not in r]
    for name in dict.fromkeys(r["model"] for r in ours):
        runs = sorted((r["size"], r["seconds"]) for r in ours if r["model"] == name)
        if len(runs) > 1:
            out.append(f"complexity on {name}: " + ", ".join(
                f"{s}×{s} {t:.2f} s" for s, t in runs) +
                f" — largest / smallest size time ratio {runs[-1][1] / runs[0][1]:.2f}")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES), help="MODEL:SIZE,... (torchvision names)")
    ap.add_argument("--tools", default=",".join(TOOLS), help=",".join(TOOLS))
    ap.add_argument("--json", action="store_true", help="print the raw results as JSON")
    ap.add_argument("--worker", nargs=3, metavar=("TOOL", "MODEL", "SIZE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        tool, name, size = args.worker
        print(json.dumps(worker(tool, name, int(size))))
        return 0
    results = []
    for case in args.cases.split(","):
        for tool in args.tools.split(","):
            r = run_one(tool, case)
            print(f"  {case} {tool}: " + (f"{r['seconds']:.2f} s, {r['peak_mb']:,.0f} MB"
                                          if "error" not in r else r["error"]),
                  file=sys.stderr, flush=True)
            results.append(r)
    print(json.dumps(results, indent=1) if args.json else render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
