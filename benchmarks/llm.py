"""Fine-tuning widely used language models: will it fit at sequence length S, with
which recipe — and where the usual rules of thumb go wrong. Writes
``reports/llm.md``, ``reports/llm.json`` and ``reports/llm.png``:

    python benchmarks/llm.py            # the whole grid (about 15 minutes on 2 cores)
    python benchmarks/llm.py --quick    # GPT-2 and Llama-3.2-1B only
    python benchmarks/llm.py --reuse    # only what reports/llm.json lacks
    python benchmarks/llm.py --reuse --rerun Gemma-2-9B   # and that model's rows again

The configs are the published ``config.json`` files in
``complexity/data/llm_configs/`` (their sources in the README there), built on the
meta device (nothing allocated, nothing downloaded). For each config × recipe × S:
the predicted step at batch 1 (:func:`complexity.cost.predict.prediction.predict`;
the CPU step: PyTorch's CPU flash attention kernel for the models that use sdpa,
eager attention — quadratic in S — for Gemma-2), its peak and the part that
dominates, and the largest batch that fits 24, 48 and 80 GiB, each proved by two
concrete predictions (:func:`complexity.cost.fit.proofs.will_it_fit`). Beside
them, three rules of thumb and their error against our step:

* accelerate's ``estimate-memory`` (``accelerate.commands.estimate.
  estimate_training_usage``, called as accelerate calls it: the fp32 size of the
  model and the dtype; batch 1, no activations) against our peak;
* DeepSpeed/ZeRO's model states, 16 bytes per parameter for mixed-precision Adam
  (2 + 2 + 12: Rajbhandari et al., *ZeRO*, 2020, §3.1; for LoRA the frozen base
  counts 2 bytes and the adapters 16) against our weights + gradients + optimizer;
* Korthikanti et al.'s activations (*Reducing Activation Recomputation in Large
  Transformer Models*, 2022, eq. (1)): ``L·s·b·h·(34 + 5·a·s/h)`` bytes, or
  ``2·L·s·b·h`` with full recomputation, against our saved activations
  (``saved_activation_bytes``).

Then the checks: a subset (every config, full bf16 + AdamW, S = 512) measured on
fake tensors (:func:`complexity.cost.measure.cpu_step.measure`, ``how="fake"``)
and compared key by key with the prediction; and the 8B scale run (Llama-3.1-8B at
S = 4096): prediction time in-process, ``fit`` time over ``import torch``, the
tool's own memory (max RSS), and the fake-tensor step of the same case.
Tests never read these timings.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from complexity.cost.fit.proofs import will_it_fit  # noqa: E402
from complexity.cost.fit.step_formula import step_formula  # noqa: E402
from complexity.cost.measure.cpu_step import measure  # noqa: E402
from complexity.cost.predict.prediction import predict_with_unmodelled  # noqa: E402
from complexity.cost.step.checkpointing import prepare  # noqa: E402
from complexity.cost.step.lora import apply_lora, parse_lora  # noqa: E402
from complexity.cost.step.options import step_options  # noqa: E402
from complexity.zoo import build_model  # noqa: E402

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {  # name → (file, LoRA targets on the attention projections)
    "GPT-2": ("gpt2.json", None),  # transformers' Conv1D: not a layer this LoRA adapts
    "Llama-3.2-1B": ("llama-3.2-1b.json", "q_proj,k_proj,v_proj,o_proj"),
    "Phi-3-mini": ("phi-3-mini-4k.json", "qkv_proj,o_proj"),
    "Mistral-7B": ("mistral-7b.json", "q_proj,k_proj,v_proj,o_proj"),
    "Qwen2.5-7B": ("qwen2.5-7b.json", "q_proj,k_proj,v_proj,o_proj"),
    "Llama-3.1-8B": ("llama-3.1-8b.json", "q_proj,k_proj,v_proj,o_proj"),
    "Gemma-2-9B": ("gemma-2-9b.json", "q_proj,k_proj,v_proj,o_proj"),
}
RECIPES = {  # name → (step options, LoRA?)
    "full bf16 + AdamW": (dict(optimizer="adamw", dtype="bfloat16"), False),
    "fp32 master + bf16 autocast": (dict(optimizer="adamw", autocast="bfloat16"), False),
    "LoRA r=16 (attention)": (dict(optimizer="adamw", dtype="bfloat16"), True),
    "LoRA + HF checkpointing": (dict(optimizer="adamw", dtype="bfloat16", checkpoint="hf"), True),
    "Adafactor (bf16)": (dict(optimizer="adafactor", dtype="bfloat16"), False),
}
LENGTHS = (512, 2048, 8192)
BUDGETS = (24, 48, 80)  # GiB
GIB = 2 ** 30


def path(name: str) -> str:
    return os.path.join(HERE, "complexity", "data", "llm_configs", CONFIGS[name][0])


def model_for(name: str, lora: bool):
    net, _ = build_model("hf:" + path(name))
    if lora:
        net = apply_lora(net, parse_lora(f"r=16,alpha=32,targets={CONFIGS[name][1]}"))
    return net


def rules_of_thumb(net, recipe: dict, s: int, lora: bool) -> dict:
    """accelerate's, ZeRO's and Korthikanti's figures for this case at batch 1."""
    from accelerate.commands.estimate import estimate_training_usage

    c = net.config if not lora else net.base_model.model.config
    total = _base_params(net)
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    mixed = "float32" if recipe.get("dtype", "float32") == "float32" and not recipe.get(
        "autocast") else "bfloat16"
    accelerate = max(estimate_training_usage(4 * total, mixed).values())
    zero = 2 * total + 16 * trainable if lora else 16 * total
    h, a = c.hidden_size, c.num_attention_heads
    layers = c.num_hidden_layers
    per_layer = 2 * s * h if recipe.get("checkpoint") else s * h * (34 + 5 * a * s / h)
    return {"accelerate": accelerate, "zero": zero, "korthikanti": int(layers * per_layer)}


def _base_params(net) -> int:
    return sum(p.numel() for n, p in net.named_parameters() if "lora_" not in n)


def case(name: str, recipe_name: str, s: int) -> dict:
    """One cell of the grid: our step at batch 1, its max batches, the rules of thumb."""
    recipe, lora = RECIPES[recipe_name]
    row = {"model": name, "recipe": recipe_name, "S": s}
    limit = json.load(open(path(name))).get("max_position_embeddings") or json.load(
        open(path(name))).get("n_positions")
    if lora and CONFIGS[name][1] is None:
        return {**row, "skipped": "transformers' Conv1D layers: no LoRA target"}
    if limit and s > limit:
        return {**row, "skipped": f"S > max_position_embeddings ({limit})"}
    options = step_options(**recipe)
    net = prepare(model_for(name, lora), options.checkpoint)
    kind = {"input_dtype": torch.long, "input_high": net.config.vocab_size}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values, unmodelled = predict_with_unmodelled(net, (1, s), None, "cpu", options=options,
                                                     **kind)
        f = step_formula(net, (s,), "cpu", checks=1, options=options, **kind)
        fits = [will_it_fit(net, (s,), 1, b * GIB, device="cpu", options=options, formula=f,
                            **kind) for b in BUDGETS]
    ours = {"peak": values["peak_bytes"], "states": sum(values[k] for k in (
        "param_bytes", "grad_bytes", "optimizer_bytes")),
        "activations": values["saved_activation_bytes"]}
    thumbs = rules_of_thumb(net, recipe, s, lora)
    return {**row, **ours, "parts": fits[0]["parts"], "dominant": fits[0]["dominant"],
            "max_batch": {f"{b}GiB": r["max_batch"] for b, r in zip(BUDGETS, fits)},
            "unmodelled": unmodelled, "peak_formula": fits[0]["peak_formula"],
            **thumbs,
            "error": {"accelerate": thumbs["accelerate"] / ours["peak"] - 1,
                      "zero": thumbs["zero"] / ours["states"] - 1,
                      "korthikanti": thumbs["korthikanti"] / ours["activations"] - 1}}


def fake_check(name: str, s: int = 512) -> dict:
    """Prediction vs the fake-tensor step, key by key (full bf16 + AdamW)."""
    options = step_options("adamw", dtype="bfloat16")
    net = model_for(name, False)
    kind = {"input_dtype": torch.long, "input_high": net.config.vocab_size}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        p, unmodelled = predict_with_unmodelled(net, (1, s), None, "cpu", options=options,
                                                **kind)
        t_pred = time.perf_counter() - t
        t = time.perf_counter()
        m = measure(net, (1, s), how="fake", options=options, **kind)
        t_fake = time.perf_counter() - t
    return {"model": name, "S": s, "predict_s": t_pred, "fake_s": t_fake,
            "different": {k: [p[k], m[k]] for k in p if p[k] != m[k]},
            "peak_error": p["peak_bytes"] / m["peak_bytes"] - 1, "unmodelled": unmodelled}


def scale() -> dict:
    """Llama-3.1-8B at S = 4096, full bf16 + AdamW: times and the tool's memory."""
    t = time.perf_counter()
    net = model_for("Llama-3.1-8B", False)
    t_build = time.perf_counter() - t
    out = fake_check("Llama-3.1-8B", 4096)
    out.update(build_s=t_build, max_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    py = [sys.executable, "-c"]
    t = time.perf_counter()
    subprocess.run(py + ["import torch"], check=True)
    t_torch = time.perf_counter() - t
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "complexity", "fit", "hf:" + path("Llama-3.1-8B"),
                    "--input", "1,4096", "--budget", "80GiB", "--device", "cpu", "--mode", "full",
                    "--dtype", "bfloat16", "--optimizer", "adamw", "--format", "json"],
                   check=True, cwd=HERE, stdout=subprocess.DEVNULL)
    out.update(fit_s=time.perf_counter() - t, import_torch_s=t_torch,
               fit_max_rss_mib=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    del net
    return out


def memtracker_check() -> dict:
    """A second instrument at a medium size: PyTorch's own ``MemTracker``
    (``torch.distributed._tools.mem_tracker``) around one real CPU step of a
    4-layer Llama (width 256, GQA 8/2, S = 256, batch 2; AdamW for-loop, its state
    made by a first step), against our prediction and our live-bytes measurement."""
    from torch.distributed._tools.mem_tracker import MemTracker
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=1000, hidden_size=256, intermediate_size=688,
                         num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=2)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    shape, options = (2, 256), step_options("adamw")
    kind = {"input_dtype": torch.long, "input_high": 1000}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predicted, _ = predict_with_unmodelled(model, shape, None, "cpu", options=options, **kind)
        ours = measure(model, shape, how="real", options=options, **kind)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=False)
        x = torch.randint(0, 1000, shape)

        def step():
            model(x, labels=x).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        step()
        tracker = MemTracker()
        tracker.track_external(model, opt)
        with tracker:
            step()
    peak = tracker.get_tracker_snapshot("peak")[torch.device("cpu")]
    return {"predicted": predicted["peak_bytes"], "live_bytes": ours["peak_bytes"],
            "memtracker": {str(k).split(".")[-1]: v for k, v in peak.items()},
            "input_and_labels": 2 * x.numel() * x.element_size()}


def main(argv=None) -> int:
    from tqdm import tqdm

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="GPT-2 and Llama-3.2-1B only")
    p.add_argument("--out", default=os.path.join(HERE, "reports"))
    p.add_argument("--reuse", action="store_true", help="take what OUT/llm.json holds and "
                   "run only the cases and checks it lacks (then rewrite the report)")
    p.add_argument("--rerun", action="append", default=[], choices=list(CONFIGS),
                   metavar="MODEL", help="with --reuse: run this model's grid rows again "
                   "(repeatable): " + ", ".join(CONFIGS))
    args = p.parse_args(argv)
    names = ["GPT-2", "Llama-3.2-1B"] if args.quick else list(CONFIGS)
    data = {}
    if args.reuse and os.path.exists(os.path.join(args.out, "llm.json")):
        data = json.load(open(os.path.join(args.out, "llm.json")))
    grid = [(n, r, s) for n in names for r in RECIPES for s in LENGTHS]
    rows = {(r["model"], r["recipe"], r["S"]): r for r in data.get("rows", [])
            if r["model"] not in args.rerun}
    load = os.getloadavg()[0]
    todo = [g for g in grid if g not in rows]
    ran = len(todo)
    for g in tqdm(todo, desc="grid", unit="case"):
        rows[g] = case(*g)
    data["rows"] = [rows[g] for g in grid]
    checks = {c["model"]: c for c in data.get("fake_checks", [])}
    for n in tqdm([n for n in names if n not in checks], desc="fake steps"):
        checks[n] = fake_check(n)
    data["fake_checks"] = [checks[n] for n in names]
    if not data.get("scale") and not args.quick:
        data["scale"] = scale()
    if "memtracker" not in data:
        data["memtracker"] = memtracker_check()
    data["torch"] = torch.__version__
    data.setdefault("runs", []).append({
        "command": " ".join(["python benchmarks/llm.py", *(argv if argv is not None
                                                            else sys.argv[1:])]),
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
        "load": round(load, 1), "cases": ran})
    paths = write(data, args.out)
    print("\n".join(paths))
    return 0


def _runs(runs) -> str:
    """Which commands wrote the grid's rows, when, on how many cores and at what load."""
    if not runs:
        return ""
    said = "; ".join(f"`{r['command']}`, finished {r['finished']} ({r['cases']} grid cases, "
                     f"{r['cores']} cores, load average {r['load']} at the start)" for r in runs)
    return ("The rows and checks of earlier runs are kept (`--reuse`); the runs recorded: "
            + said + ".")


def _gib(n) -> str:
    return "" if n is None else f"{n / GIB:.1f}"


def _pct(x) -> str:
    return f"{100 * x:+.0f}%"


def _table(rows) -> list:
    head = ("| model | recipe | S | peak GiB | dominant | max B 24/48/80 GiB | accelerate GiB "
            "(err) | ZeRO states GiB (err) | Korthikanti act. GiB (err) |")
    out = [head, "|" + "---|" * 9]
    for r in rows:
        if "skipped" in r:
            out.append(f"| {r['model']} | {r['recipe']} | {r['S']} | n/a: {r['skipped']} "
                       "| | | | | |")
            continue
        mb = "/".join("none" if v == 0 else "any" if v is None else str(v)
                      for v in r["max_batch"].values())
        e = r["error"]
        approx = "≈ " if r["unmodelled"] else ""
        out.append(f"| {r['model']} | {r['recipe']} | {r['S']} | {approx}{_gib(r['peak'])} | "
                   f"{r['dominant']} | {mb} | {_gib(r['accelerate'])} ({_pct(e['accelerate'])}) | "
                   f"{_gib(r['zero'])} ({_pct(e['zero'])}) | {_gib(r['korthikanti'])} "
                   f"({_pct(e['korthikanti'])}) |")
    return out


def _summary(rows) -> list:
    """Per rule and recipe: the range and median of its error (computed from the rows)."""
    done = [r for r in rows if "skipped" not in r]
    lines = ["| rule (compared with our …) | recipe | error: min / median / max | cases |",
             "|---|---|---|---|"]
    for key, what in (("accelerate", "peak"), ("zero", "weights + grads + optimizer"),
                      ("korthikanti", "saved activations")):
        for recipe in RECIPES:
            errs = sorted(r["error"][key] for r in done if r["recipe"] == recipe)
            if errs:
                lines.append(f"| {key} ({what}) | {recipe} | {_pct(errs[0])} / "
                             f"{_pct(errs[len(errs) // 2])} / {_pct(errs[-1])} | {len(errs)} |")
    return lines


def _figure(rows, path_png) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["model"] for r in rows))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(RECIPES)
    for i, recipe in enumerate(RECIPES):
        ys = [next((r["peak"] / GIB for r in rows if r["model"] == n and r["recipe"] == recipe
                    and r["S"] == 2048 and "peak" in r), 0) for n in names]
        ax.bar([k + i * width for k in range(len(names))], ys, width, label=recipe)
    for b in BUDGETS:
        ax.axhline(b, color="grey", lw=0.8, ls="--")
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(names))], names)
    ax.set_ylabel("peak of one step at batch 1 (GiB)")
    ax.set_title("Predicted peak at S = 2048 (0: not applicable); dashed: 24/48/80 GiB")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path_png, dpi=110)
    plt.close(fig)


def write(data: dict, out: str) -> list:
    """reports/llm.json, llm.md and llm.png from one run's ``data``."""
    os.makedirs(out, exist_ok=True)
    paths = [os.path.join(out, f) for f in ("llm.json", "llm.md", "llm.png")]
    with open(paths[0], "w") as f:
        json.dump(data, f, indent=1)
    _figure(data["rows"], paths[2])
    checks = data["fake_checks"]
    lines = ["# Fine-tuning language models: will it fit, and the rules of thumb",
             "", "Generated by `python benchmarks/llm.py` (torch " + data["torch"] + "); "
             "the data in `reports/llm.json`. " + _runs(data.get("runs", [])) + " Every figure below is for one training step "
             "at batch 1 on the configs of `complexity/data/llm_configs/` (the published "
             "config.json files), predicted on the meta device.", "",
             *NOTES, "", "## The grid", "", *_table(data["rows"]), "",
             "## The rules of thumb against our step", "", *_summary(data["rows"]), "",
             "![peaks](llm.png)", "", "## Prediction against the fake-tensor step", "",
             "| model | S | keys that differ | peak error | predict s | fake step s |",
             "|---|---|---|---|---|---|"]
    for c in checks:
        lines.append(f"| {c['model']} | {c['S']} | {', '.join(c['different']) or 'none'} | "
                     f"{100 * c['peak_error']:+.3f}% | "
                     f"{c['predict_s']:.2f} | {c['fake_s']:.1f} |")
    lines += ["", *GAPS]
    big = data.get("scale")
    if big:
        lines += ["", "## Scale: Llama-3.1-8B at S = 4096 (full bf16 + AdamW)", "",
                  "Wall times on a 2-core machine shared with other jobs (loose; `import "
                  "torch` alone shows the load). `fit` traces the step about ten times: the "
                  "formula in B from two or three batches and five held-out checks, then the "
                  "max batch's two proofs.", "",
                  f"* prediction in-process: {big['predict_s']:.2f} s (build on meta: "
                  f"{big['build_s']:.2f} s); the fake-tensor step: {big['fake_s']:.1f} s;",
                  f"* `python -m complexity fit ... --input 1,4096`: {big['fit_s']:.1f} s, of "
                  f"which `import torch` alone takes {big['import_torch_s']:.1f} s;",
                  f"* the tool's memory: max RSS of that `fit` process "
                  f"{big.get('fit_max_rss_mib', 0):.0f} MiB (of this benchmark's process, "
                  f"after the whole grid: {big['max_rss_mib']:.0f} MiB);",
                  f"* prediction vs fake step: keys that differ: "
                  f"{', '.join(big['different']) or 'none'}; peak error "
                  f"{100 * big['peak_error']:.3f}%."]
    mt = data.get("memtracker")
    if mt:
        lines += ["", "## A second instrument: PyTorch's MemTracker", "",
                  "One real CPU step of a 4-layer Llama (width 256, GQA 8/2, S = 256, batch 2, "
                  "AdamW) under `torch.distributed._tools.mem_tracker.MemTracker`:", "",
                  f"* our prediction: {mt['predicted']:,} bytes; our live-bytes measurement: "
                  f"{mt['live_bytes']:,};",
                  f"* MemTracker's peak: {mt['memtracker']['Total']:,} bytes ("
                  + ", ".join(f"{k} {v:,}" for k, v in mt["memtracker"].items() if k != "Total")
                  + ");",
                  f"* the difference, {mt['predicted'] - mt['memtracker']['Total']:,} bytes, is "
                  f"the input ids and the labels ({mt['input_and_labels']:,} bytes), made before "
                  "MemTracker starts: it sees only what is allocated inside its context."]
    with open(paths[1], "w") as f:
        f.write("\n".join(lines) + "\n")
    return paths


GAPS = [
    'Prediction equals the fake-tensor step on every key for every config above. Two '
    'predictor gaps this table once showed are fixed: GPT-2 in bfloat16 (its attention '
    "with dropout takes sdpa's math path, which copies q, k and v to float32: saved "
    'activations and peak were under-predicted) and the configs with tied input and '
    'output embeddings (their two gradients are summed out of place before `.grad`: the '
    'peak was 4 bytes low with AdamW). Every row was re-run after both fixes (GPT-2 first; '
    'Llama-3.2-1B and Gemma-2-9B, the tied configs, with `--rerun`: their full-model AdamW '
    'peaks at S = 512 rose by those 4 bytes, the other rows did not move, and no figure '
    'shown changed). '
    'Rows marked ≈ (`--checkpoint hf`) have a call without a rule (`requires_grad_`, the '
    'input-grad hook); on a tiny Llama their peak is within 1% of a real CPU step and '
    'every other quantity exact (`tests/test_llm_recipes.py`).',
]

NOTES = [
    "* **Our step** is PyTorch's CPU step: attention through `scaled_dot_product_attention` "
    "on the CPU flash kernel (linear in S: it keeps q, k, v, the output and a logsumexp "
    "row) for every model here but Gemma-2, whose logit soft-capping makes transformers "
    "use eager attention (the S×S scores kept: quadratic in S). On a GPU the flash and "
    "memory-efficient kernels keep the same kind of tensors; this tool does not model "
    "the CUDA kernels (`unmodelled` on `--device cuda`).",
    "* **Max batch**: the largest batch whose peak fits 24/48/80 GiB, solved from the "
    "step's formula in B and proved by two concrete predictions (it fits, one more does "
    "not); `none`: not even batch 1. The CUDA allocator's rounding and the CUDA context "
    "are not included here (use `fit --device cuda`).",
    "* **accelerate** (`accelerate estimate-memory`) gives one number per dtype at batch 1 "
    "with no activations: for bf16 it is the largest of its four terms (8 bytes per "
    "parameter), whatever the recipe; it knows no LoRA.",
    "* **ZeRO** model states: 16 bytes per parameter (fp16 weights and gradients, fp32 "
    "master weights and Adam moments); LoRA counted fairly (2 bytes per frozen parameter, "
    "16 per adapter parameter). Our full bf16 recipe keeps bf16 weights, gradients and "
    "AdamW moments (8 bytes per parameter), the autocast one fp32 weights, gradients and "
    "moments (16).",
    "* **Adafactor (bf16)**: `torch.optim.Adafactor` (its for-loop, PyTorch's default for "
    "it) on bf16 weights: a row and a column vector per weight matrix and a float32 "
    "`step` per parameter instead of AdamW's two full moments; its update's largest "
    "temporary is one weight's size (`var_estimate`). Exact against a real CPU step on "
    "a tiny Llama, fp32 and bf16, for-loop and foreach (`tests/test_llm_adafactor.py`). "
    "ZeRO's column is still its Adam rule (16 bytes per parameter).",
    "* **Korthikanti** assumes GPT-3 layers (4h MLP, dropout masks, 16-bit); the models "
    "here use SwiGLU MLPs of other widths, rotary embeddings, GQA and no dropout: its "
    "error is the point of the column.",
]


if __name__ == "__main__":
    sys.exit(main())
