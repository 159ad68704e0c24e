"""The caching-allocator model against a real GPU: ``python benchmarks/cuda_check.py``.

For a handful of models (resnet18 and resnet50, all layers and the last, at
224×224; a small ViT), one training loop of three Adam(foreach=False) steps on
CUDA, as :func:`complexity.cost.measure.cuda_step.measure_cuda` steps it, with the peak
statistics reset before the third: ``torch.cuda.max_memory_allocated`` and
``max_memory_reserved`` against :func:`complexity.cost.fit.allocator.cuda_step` on
the schedule of the same step traced for CUDA. cuBLAS and cuDNN are warmed up
first and what they then hold is the baseline, subtracted from the measured
figures (it is part of what ``fit --reserve`` stands for). Prints a markdown
table for reports/cuda.md; without a CUDA device it says so and exits 0.

Then resnet50 (all layers) with the step options of ``finetune`` and ``fit``: the
foreach and fused Adam, SGD with momentum, bfloat16 parameters, float16 and
bfloat16 autocast, float16 autocast with a GradScaler, checkpointing of
``layer*``, ``zero_grad(set_to_none=False)``.

Options: ``--batch 32`` (``--batch-vit 64``), ``--only resnet18,vit,options``.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def small_vit():
    from torchvision.models import VisionTransformer

    return VisionTransformer(image_size=224, patch_size=16, num_layers=4, num_heads=4,
                             hidden_dim=256, mlp_dim=512, num_classes=1000)


def option_cases():
    """(label, StepOptions) of the step options checked on resnet50."""
    from complexity.cost.step.optimizers import Optimizer
    from complexity.cost.step.options import StepOptions

    return [("adam foreach", StepOptions(optimizer=Optimizer("adam", foreach=True))),
            ("adam fused", StepOptions(optimizer=Optimizer("adam", fused=True))),
            ("sgd-momentum", StepOptions(optimizer=Optimizer("sgd-momentum"))),
            ("bfloat16 weights", StepOptions(dtype="bfloat16")),
            ("float16 autocast", StepOptions(autocast="float16")),
            ("float16 autocast + GradScaler", StepOptions(autocast="float16", grad_scaler=True)),
            ("bfloat16 autocast", StepOptions(autocast="bfloat16")),
            ("checkpoint layer*", StepOptions(checkpoint="layer*")),
            ("zero-grad", StepOptions(set_to_none=False))]


def cases(batch: int, batch_vit: int):
    """(row name, model factory on the meta device, mode, input shape)."""
    import torch

    from complexity.zoo import build_model

    for name in ("resnet18", "resnet50"):
        for mode in ("full", "last"):
            yield name, lambda name=name: build_model(name)[0], mode, (batch, 3, 224, 224)

    def vit():
        with torch.device("meta"):
            return small_vit()

    for mode in ("full", "last"):
        yield "vit (4 layers, 256 wide)", vit, mode, (batch_vit, 3, 224, 224)


def measured(model, shape, options=None):
    """(max_memory_allocated, max_memory_reserved) of the third of three steps, less
    the baseline held before the model was made
    (:func:`complexity.cost.measure.cuda_step.measure_cuda`)."""
    from complexity.cost.measure.cuda_step import measure_cuda

    got = measure_cuda(model, shape, options, steps=3)
    return got["allocated"], got["reserved"]


def predicted(model, shape, options=None):
    """(allocated, reserved, exact peak) predicted for the third of three steps
    (:func:`complexity.cost.fit.proofs.fresh_cuda_step`)."""
    from complexity.cost.fit.proofs import fresh_cuda_step

    r = fresh_cuda_step(model, shape, "cuda", options=options, steps=3)
    return r["allocated"], r["reserved"], r["peak_bytes"]


def warm_up():
    """cuBLAS and cuDNN handles and workspaces, made once, before any baseline."""
    import torch

    a = torch.randn(256, 256, device="cuda", requires_grad=True)
    (a @ a).sum().backward()
    c = torch.nn.Conv2d(3, 8, 3).cuda()
    c(torch.randn(2, 3, 16, 16, device="cuda")).sum().backward()
    torch.cuda.synchronize()
    del a, c
    torch.cuda.empty_cache()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--batch-vit", type=int, default=64)
    p.add_argument("--only", default="", help="substrings of the row names, comma-separated")
    args = p.parse_args(argv)
    import torch

    from complexity.cost.step.trainable import set_trainable
    from complexity.output.units import bytes_text
    from complexity.zoo import build_model

    if not torch.cuda.is_available():
        print("cuda_check: no CUDA device on this machine; nothing measured "
              "(run it where a GPU is lent)")
        return 0
    warm_up()
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}; baseline after "
          f"warm-up: {torch.cuda.memory_allocated():,} B allocated, "
          f"{torch.cuda.memory_reserved():,} B reserved (subtracted)\n")
    print("| model | mode | step | batch | exact peak | allocated predicted | allocated measured "
          "| error | reserved predicted | reserved measured | error |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    only = [s for s in args.only.split(",") if s]
    rows = [(name, make, mode, shape, "adam", None)
            for name, make, mode, shape in cases(args.batch, args.batch_vit)]
    rows += [("resnet50", lambda: build_model("resnet50")[0], "full", (args.batch, 3, 224, 224),
              label, options) for label, options in option_cases()]
    for name, make, mode, shape, label, options in rows:
        if only and not any(s in name or (s == "options" and options) for s in only):
            continue
        model = make()
        set_trainable(model, mode)
        pa, pr, exact = predicted(model, shape, options)
        ma, mr = measured(model, shape, options)
        err = lambda p, m: f"{100 * (p - m) / m:+.2f}%" if m else ""  # noqa: E731
        print(f"| {name} | {mode} | {label} | {shape[0]} | {bytes_text(exact)} | {pa:,} | "
              f"{ma:,} | {err(pa, ma)} | {pr:,} | {mr:,} | {err(pr, mr)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
