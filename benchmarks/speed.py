"""How long ``fit`` and ``derive`` take, beyond importing torch, timed in one run
against the tools people use instead.

``python benchmarks/speed.py [--repeat 3] [--out reports/speed.md] [--baseline DIR]``
measures:

* ``import torch, torchvision`` and ``import torch`` (fresh interpreters);
* ``python -m complexity fit torchvision:resnet50 --budget 24GiB --batch 32 --mode
  full,last`` in a subprocess, less the import of torch and torchvision;
* ``derive torchvision:resnet18 --symbols H,W`` in-process, warm (the Python API,
  as the command calls it): the first call, then the median of ``--repeat``;
* ``fit`` of the 8B Llama config (``--input 1,4096 --budget 80GiB --device cpu
  --mode full --dtype bfloat16 --optimizer adamw``) in a subprocess, less the
  import of torch, and its most resident memory; its prediction (one traced step
  at 1×4096) in-process, warm;
* what people would use instead, in the same run: ``torchinfo.summary`` of
  resnet50 at (32, 3, 224, 224) on the meta device, and ``FlopCounterMode`` over
  one forward and backward of resnet50 at batch 32 on the meta device.

``--baseline DIR``: the two ``fit`` commands run on the code of ``DIR`` too (a
checkout from before a change), as ratios. Each subprocess is timed ``--repeat`` times; the table gives the smallest wall
time (the least disturbed by other jobs) and the CPU time (user + system) of the
same run, which another job's load inflates far less. It prints a markdown
table (and writes it to ``--out``), with the machine and its load. Timings are
for information: the machine is shared; no test depends on them.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FIT_RESNET = ["fit", "torchvision:resnet50", "--budget", "24GiB", "--batch", "32",
              "--mode", "full,last"]
FIT_LLAMA = ["fit", "hf:complexity/data/llm_configs/llama-3.1-8b.json", "--input", "1,4096",
             "--budget", "80GiB", "--device", "cpu", "--mode", "full", "--dtype", "bfloat16",
             "--optimizer", "adamw"]
#: runs a command line in a fresh interpreter and reports its most resident memory
_RSS = ("import resource, runpy, sys\n"
        "sys.argv = ['complexity'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('complexity', run_name='__main__')\n"
        "finally:\n    print('maxrss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
        " file=sys.stderr)\n")


def child(argv, repeat, cwd=ROOT):
    """``(wall, cpu, maxrss bytes)`` of the fastest of ``repeat`` runs of ``python
    argv`` in ``cwd`` (whose ``complexity`` it runs; cpu: user + system of that run)."""
    best = None
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True,
                              text=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        rss = [int(line.split()[1]) * 1024 for line in done.stderr.splitlines()
               if line.startswith("maxrss ")]
        if best is None or wall < best[0]:
            best = (wall, cpu, rss[0] if rss else None)
    return best


def fit_argv(args):
    return ["-c", _RSS, *args]


def derive_warm(repeat):
    """``(first, warm median)`` seconds of derive resnet18 in H, W in-process."""
    import complexity

    def once():
        started, cpu = time.perf_counter(), time.process_time()
        complexity.derive("torchvision:resnet18", "H,W", None)
        return time.perf_counter() - started, time.process_time() - cpu
    first = once()[0]
    runs = [once() for _ in range(repeat)]
    return first, statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)


def llama_prediction(repeat):
    """Seconds of the 8B Llama's prediction at 1×4096 in-process (bfloat16, AdamW),
    warm: the median of ``repeat`` after one."""
    import warnings

    from complexity.cost.finetune import build_for_input
    from complexity.cost.predict.prediction import predict
    from complexity.cost.step.batch import input_kind
    from complexity.cost.step.optimizers import Optimizer
    from complexity.cost.step.options import StepOptions

    net, _ = build_for_input(FIT_LLAMA[1], 4, 16, None, (1, 4096))  # as fit builds it
    kind = input_kind(net, (1, 4096))
    options = StepOptions(dtype="bfloat16", optimizer=Optimizer("adamw"))

    def once():
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predict(net, (1, 4096), None, "cpu", options=options, **kind)
        return time.perf_counter() - started
    once()
    return statistics.median(once() for _ in range(repeat))


def alternatives(repeat):
    """``(torchinfo, flop counter)`` seconds on resnet50 at batch 32, on meta: the
    median of ``repeat`` after one (the model built once, outside the timing)."""
    import torch
    import torchinfo
    import torchvision
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        net = torchvision.models.resnet50()

    def summary():
        torchinfo.summary(net, input_size=(32, 3, 224, 224), device="meta", verbose=0)

    def flops():
        x = torch.empty(32, 3, 224, 224, device="meta")
        with FlopCounterMode(display=False):
            net(x).sum().backward()
        net.zero_grad(set_to_none=True)

    out = []
    for fn in (summary, flops):
        fn()
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        out.append(statistics.median(times))
    return out


#: where a profiled fit's own time goes: (label, substrings of the file names)
CATEGORIES = [
    ("PyTorch's Python meta kernels (batch norm's decomposition, refs) on sizes not seen "
     "before", ("_decomp", "_refs", "_prims", "fake_impl", "custom_ops", "_meta_registrations")),
    ("the meta-kernel cache's keys", ("meta_cache",)),
    ("the tracer, its rules, shadows and graph", ("predict/trace", "predict/rules",
                                                  "predict/shadow", "predict/graph",
                                                  "predict/leaves", "predict/custom")),
    ("the liveness schedule", ("predict/schedule", "predict/log", "predict/prediction")),
    ("the CUDA allocator model (max batch bisection, proofs)", ("fit/allocator",)),
    ("formulas and proofs (sympy included)", ("fit/", "sympy")),
    ("the model's forward (nn.Module calls, hooks)", ("nn/modules", "torchvision/models")),
    ("PyTorch's dispatch and autograd on meta tensors (C++ and its Python glue)",
     ("~", "torch/")),
]


def breakdown(argv) -> list:
    """``[(label, share)]`` of the own time of ``main(argv)`` in-process under
    cProfile, by :data:`CATEGORIES` (the first that matches a function's file)."""
    import contextlib
    import cProfile
    import io
    import pstats

    from complexity.cli.main import main as cli

    prof = cProfile.Profile()
    with contextlib.redirect_stdout(io.StringIO()):
        prof.runcall(cli, argv)
    stats = pstats.Stats(prof).stats
    total = sum(v[2] for v in stats.values())
    shares = dict.fromkeys([c for c, _ in CATEGORIES] + ["other"], 0.0)
    for (path, _, _), v in stats.items():
        label = next((c for c, keys in CATEGORIES if any(k in path for k in keys)), "other")
        shares[label] += v[2] / total
    return sorted(shares.items(), key=lambda kv: -kv[1])


def _s(x):
    return f"{x:.2f} s"


def table(r) -> str:
    """The report: the measurements ``r`` as a markdown table, targets and ratios."""
    tv, t = r["import_tv"], r["import_torch"]
    fit, llama = r["fit_resnet"], r["fit_llama"]
    beyond = fit[0] - tv[0]
    info, flops = r["torchinfo"], r["flop_counter"]
    rows = [
        ("`import torch, torchvision` (fresh interpreter)", f"{_s(tv[0])} (CPU {_s(tv[1])})",
         "", ""),
        ("`import torch`", f"{_s(t[0])} (CPU {_s(t[1])})", "", ""),
        ("`fit torchvision:resnet50 --budget 24GiB --batch 32 --mode full,last`, beyond "
         "the import", f"{_s(beyond)} (CPU {_s(fit[1] - tv[1])}; total {_s(fit[0])})",
         "≤ 1 s", f"{beyond / info:.1f}× torchinfo, {beyond / flops:.1f}× FlopCounterMode"),
        ("`derive torchvision:resnet18 --symbols H,W` in-process, warm (median)",
         f"{_s(r['derive'][1])} (CPU {_s(r['derive'][2])}; first {_s(r['derive'][0])})",
         "≤ 0.3 s",
         f"{r['derive'][1] / info:.1f}× torchinfo"),
        ("`fit` 8B Llama (1×4096, 80GiB, cpu, bfloat16, adamw), beyond `import torch`",
         f"{_s(llama[0] - t[0])} (CPU {_s(llama[1] - t[1])}; total {_s(llama[0])})",
         "≤ 5 s", ""),
        ("its prediction at 1×4096, in-process, warm (median)", _s(r["llama_predict"]),
         "≤ 2 s", ""),
        ("its tool's most resident memory", f"{llama[2] / 2 ** 30:.2f} GiB", "< 1 GiB", ""),
        ("`torchinfo.summary(resnet50, (32, 3, 224, 224), device='meta')` (median)",
         _s(info), "", "1×"),
        ("`FlopCounterMode`, one forward + backward of resnet50 at batch 32 on meta (median)",
         _s(flops), "", f"{flops / info:.1f}× torchinfo"),
    ]
    for name, key, base in (("fit resnet50", "base_resnet", tv), ("fit 8B Llama", "base_llama", t)):
        if key in r:  # the same command on the baseline's code, in the same run
            old, new = r[key], fit if key == "base_resnet" else llama
            rows.append((f"{name} on the baseline ({r['baseline']}), beyond the import",
                         f"{_s(old[0] - base[0])} (CPU {_s(old[1] - base[1])})", "",
                         f"now {(old[0] - base[0]) / (new[0] - base[0]):.1f}× faster "
                         f"(CPU {(old[1] - base[1]) / (new[1] - base[1]):.1f}×)"))
    lines = ["| what | time | target | ratio |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    cpu = {"fit resnet50 beyond the import": fit[1] - tv[1],
           "fit 8B Llama beyond `import torch`": llama[1] - t[1]}
    missed = [(what, got - want) for what, got, want in (
        ("fit resnet50 beyond the import", beyond, 1.0),
        ("derive resnet18 warm", r["derive"][1], 0.3),
        ("fit 8B Llama beyond `import torch`", llama[0] - t[0], 5.0),
        ("the 8B prediction", r["llama_predict"], 2.0)) if got > want]
    lines += ["", "Targets missed (wall time, at this load): " + ("; ".join(
        f"{what} by {_s(over)}" + (f" (its CPU time {_s(cpu[what])})" if what in cpu else "")
        for what, over in missed) or "none") + "."]
    lines += ["", "Where `fit torchvision:resnet50 ...` (in-process, cProfile) spends its own "
              "time:", "", "| share | what |", "|---|---|"]
    lines += [f"| {share:.0%} | {label} |" for label, share in r["breakdown"] if share >= 0.005]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None, help="also write the report there")
    parser.add_argument("--baseline", default=None,
                        help="a checkout of older code: its fit commands timed too")
    args = parser.parse_args(argv)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    r = {"import_tv": child(["-c", "import torch, torchvision"], args.repeat),
         "import_torch": child(["-c", "import torch"], args.repeat),
         "fit_resnet": child(fit_argv(FIT_RESNET), args.repeat),
         "fit_llama": child(fit_argv(FIT_LLAMA), args.repeat)}
    if args.baseline:
        r["baseline"] = "commit " + subprocess.run(
            ["git", "-C", args.baseline, "rev-parse", "--short", "HEAD"], capture_output=True,
            text=True).stdout.strip()
        r["base_resnet"] = child(fit_argv(FIT_RESNET), args.repeat, args.baseline)
        r["base_llama"] = child(fit_argv(FIT_LLAMA), args.repeat, args.baseline)
    import torch  # noqa: F401  (the in-process timings start warm on torch)
    import torchvision  # noqa: F401

    r["derive"] = derive_warm(max(args.repeat, 3))
    r["llama_predict"] = llama_prediction(args.repeat)
    r["torchinfo"], r["flop_counter"] = alternatives(args.repeat)
    r["breakdown"] = breakdown(FIT_RESNET)
    end = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    given = list(argv if argv is not None else sys.argv[1:])
    if args.baseline:  # a checkout's folder says nothing to a reader: its commit does
        given[given.index(args.baseline)] = f"CHECKOUT-OF-{r['baseline'].split()[1]}"
    command = "python benchmarks/speed.py " + " ".join(given)
    text = "\n".join([
        "# Speed: `fit` and `derive` beyond the import", "",
        f"Written by `{command.strip()}` (output unedited).", "",
        f"{os.cpu_count()} CPU cores ({platform.machine()}), Python "
        f"{platform.python_version()}, torch {torch.__version__}; load average "
        f"{load} at the start, {end} at the end; each subprocess the fastest of "
        f"{args.repeat} runs.", "", table(r)])
    print(text)
    if args.out:
        from complexity.atomic import write_text

        write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
