"""The training-step cost of every model we can build, predicted against measured.

``python benchmarks/zoo.py`` (``pip install -e ".[zoo]"`` for the timm and
transformers rows) runs, for every torchvision classification, segmentation and
video model, a spread of timm models and a few Hugging Face transformers built from small
configs (nothing is downloaded), with every parameter training (``full``) and only
the last layer (``last``, :func:`complexity.cost.step.trainable.set_trainable`):

* predicted: :func:`complexity.cost.predict.prediction.predict_with_unmodelled`;
* measured: :func:`complexity.cost.measure.cpu_step.measure`, a real CPU step
  (``how="real"``) for models up to ``--real-limit`` parameters, fake tensors
  above (``how="fake"``), or as ``--how`` says;
* ``profile`` MACs on the cpu device against the meta device (eval mode, no_grad).

It writes ``reports/zoo.md`` (rewritten after every model, so an interrupted run
leaves the rows done so far): one row per model, sorted by worst error, and a
summary computed from the rows. A model that cannot run is a row saying why.

Options: ``--only resnet,vit_`` (substrings of the row names), ``--size 64``,
``--batch 2``, ``--how auto|real|fake``, ``--out PATH``, ``--no-profile``.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from complexity.atomic import write_text  # noqa: E402
from complexity.errors import reason  # noqa: E402

from zoo_report import FALLBACK_SIZES, QUANTITIES, pct, render, rows_from_report, worst  # noqa: E402,E501

TIMM = ["vit_tiny_patch16_224", "deit_tiny_patch16_224", "convnext_atto", "resnet18d",
        "efficientnet_b0", "mobilevitv2_050", "poolformer_s12", "cspresnet50",
        "regnetx_002", "levit_128s", "mixer_b16_224", "swin_tiny_patch4_window7_224",
        "ghostnet_100", "coat_lite_tiny"]

#: What the predict/measure API lacks for a model taking token ids.
TOKEN_IDS = {"input_dtype": torch.long, "input_high": 100}  # token ids of a 100-word vocabulary


# ------------------------------------------------------------------ the models
class Entry:
    """One model of the zoo: ``build(device)`` returns the module; ``shape(size,
    batch)`` its input; ``unsupported`` a reason not to run it."""

    def __init__(self, name, family, build, shape=None, unsupported=None, sizes=True,
                 input_kw=None):
        self.name, self.family, self.build = name, family, build
        self.input_kw = input_kw or {}  # token ids: input_dtype, input_high
        self.shape = shape or (lambda size, batch: (batch, 3, size, size))
        self.unsupported = unsupported
        self.sizes = sizes  # whether other input sizes may be tried


def torchvision_entries():
    import torchvision

    from complexity.zoo import parse_spec

    entries = []
    for family, module in (("torchvision", torchvision.models),
                           ("torchvision seg", torchvision.models.segmentation)):
        for name in torchvision.models.list_models(module=module):
            def build(device, name=name):
                try:
                    with torch.device(device):
                        return parse_spec(name).build()
                except Exception:  # regnet_* reads values in its constructor: build on the CPU
                    if device == "cpu":
                        raise
                    return parse_spec(name).build().to(device)
            entries.append(Entry(name, family, build))
    entries += video_entries()
    return entries


#: Video models whose input must have 16 frames (MViT's fixed positional grid,
#: S3D's final temporal pool); the others take 4.
SIXTEEN_FRAMES = ("mvit", "s3d")


class FlowPair(torch.nn.Module):
    """An optical-flow model as one-input classifier for the step: the input is
    the two images stacked on the channels, ``(B, 6, H, W)``; the output, one
    logit per refinement iteration, is the mean of that iteration's flow
    prediction, ``(B, K)``. The step's cross-entropy on it (a target iteration
    per example) stands in for RAFT's sequence loss (an L1 loss on each of the K
    flows, weighted by γ^(K-i)): a scalar that every one of the K predictions
    reaches, so the backward runs through every update, as in training."""

    def __init__(self, flow):
        super().__init__()
        self.flow = flow

    def forward(self, x):
        flows = self.flow(x[:, :3], x[:, 3:])
        return torch.stack([f.mean((1, 2, 3)) for f in flows], 1)


def video_entries():
    """torchvision's video classifiers, on (B, 3, T, size, size) clips (MViT only at
    16 × 224 × 224: the fallback sizes reach it), and its optical-flow models on
    image pairs (:class:`FlowPair`: the pair stacked on the channels, one logit
    per refinement iteration)."""
    import torchvision

    from complexity.zoo import parse_spec

    entries = []
    for name in torchvision.models.list_models(module=torchvision.models.video):
        def build(device, name=name):
            with torch.device(device):
                return parse_spec(name).build()
        frames = 16 if name.startswith(SIXTEEN_FRAMES) else 4
        entries.append(Entry(name, "video", build,
                             shape=lambda size, batch, t=frames: (batch, 3, t, size, size)))
    for name in torchvision.models.list_models(module=torchvision.models.detection):
        entries.append(Entry(name, "detection", None, unsupported=(
            "a list of images in, and to train their target boxes; a dict of losses out "
            "(not one input tensor and logits)")))
    for name in torchvision.models.list_models(module=torchvision.models.optical_flow):
        def build_flow(device, name=name):
            with torch.device(device):
                return FlowPair(torchvision.models.get_model(name, weights=None))
        entries.append(Entry(name, "optical flow", build_flow,
                             shape=lambda size, batch: (batch, 6, size, size)))
    return entries


def timm_entries():
    try:
        import timm
    except ImportError as e:
        return [Entry("timm", "timm", None, unsupported=f"timm not installed ({reason(e)})")]

    def build(device, name):
        # timm constructors read values (drop-path rates via .item()): build on the CPU.
        model = timm.create_model(name, pretrained=False)
        return model if device == "cpu" else model.to(device)

    return [Entry(f"timm:{n}", "timm", lambda device, n=n: build(device, n)) for n in TIMM]


def hf_entries():
    try:
        import transformers as tf
    except ImportError as e:
        return [Entry("transformers", "transformers", None,
                      unsupported=f"transformers not installed ({reason(e)})")]
    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64)

    def built(make):
        def build(device):
            model = make()  # complexity.cost.step.batch.logits reads a ModelOutput's .logits
            return model if device == "cpu" else model.to(device)
        return build

    return [
        Entry("hf:ViTForImageClassification", "transformers", built(lambda: tf.ViTForImageClassification(
            tf.ViTConfig(image_size=32, patch_size=8, num_labels=10, **small))),
            shape=lambda size, batch: (batch, 3, 32, 32), sizes=False),
        Entry("hf:ConvNextForImageClassification", "transformers", built(
            lambda: tf.ConvNextForImageClassification(tf.ConvNextConfig(
                hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1], num_labels=10)))),
        Entry("hf:BertForSequenceClassification", "transformers", built(
            lambda: tf.BertForSequenceClassification(tf.BertConfig(
                vocab_size=100, max_position_embeddings=64, num_labels=2, **small))),
            shape=lambda size, batch: (batch, 32), sizes=False, input_kw=TOKEN_IDS),
        Entry("hf:GPT2LMHeadModel", "transformers", built(
            lambda: tf.GPT2LMHeadModel(tf.GPT2Config(
                vocab_size=100, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                bos_token_id=None, eos_token_id=None))),
            shape=lambda size, batch: (batch, 32), sizes=False, input_kw=TOKEN_IDS),
    ]


# ------------------------------------------------------------------ one model
def error(pred, meas):
    """Relative error of a prediction (0 when both are 0; None when measured is 0)."""
    if meas == 0:
        return 0.0 if pred == 0 else None
    return pred / meas - 1


def run_one(entry, size, batch, how, real_limit, do_profile, modes=("full", "last")):
    from complexity.cost.measure.cpu_step import measure
    from complexity.cost.predict.prediction import predict_with_unmodelled
    from complexity.cost.step.trainable import set_trainable

    row = {"model": entry.name, "family": entry.family, "error": None}
    t0 = time.perf_counter()
    if entry.unsupported:
        row["error"] = "not run: " + entry.unsupported
        return row
    try:
        model = entry.build("meta")
    except Exception as e:
        row["error"] = f"build failed: {reason(e)}"
        return row
    row["params"] = sum(p.numel() for p in model.parameters())
    # The input: the requested size, else the first fallback the model takes.
    sizes = [size] + ([s for s in FALLBACK_SIZES if s > size] if entry.sizes else [])
    shape, first_error = None, None
    for s in sizes:
        try:
            set_trainable(model, "full")
            pred, unmodelled = predict_with_unmodelled(model, entry.shape(s, batch),
                                                       **entry.input_kw)
            shape = entry.shape(s, batch)
            break
        except Exception as e:
            first_error = first_error or reason(e)
    if shape is None:
        row["error"] = f"predict failed at every size {sizes}: {first_error}"
        return row
    row["input"] = "×".join(map(str, shape))
    mode_how = how if how != "auto" else ("real" if row["params"] <= real_limit else "fake")
    row["how"] = mode_how
    row["errors"], row["unmodelled"], row["modes"] = {}, set(), {}
    try:
        for mode in modes:
            set_trainable(model, mode)
            pred, unmodelled = predict_with_unmodelled(model, shape, **entry.input_kw)
            meas = measure(model, shape, how=mode_how, **entry.input_kw)
            row["unmodelled"].update(unmodelled)
            row["modes"][mode] = {"predicted": pred, "measured": meas}
            for key, _ in QUANTITIES:
                e = error(pred[key], meas[key])
                old = row["errors"].get(key)
                if e is None or old is None and key in row["errors"]:
                    row["errors"][key] = None
                elif old is None or abs(e) > abs(old):
                    row["errors"][key] = e
    except Exception as e:
        row["error"] = f"{mode}: {reason(e)}"
    if entry.input_kw:
        row["profile"] = "skipped (token-id input: profile builds a float input)"
    elif do_profile and row["error"] is None:
        row["profile"] = profile_check(entry, shape, row["params"], real_limit)
    row["seconds"] = time.perf_counter() - t0
    return row


def profile_check(entry, shape, params, real_limit):
    """``(meta MACs, cpu MACs)`` of ``profile`` at batch 1, or a reason string."""
    from complexity.counting.profile import profile

    if params > real_limit:
        return "skipped (too large for a real cpu forward)"
    one = (1, *shape[1:])
    try:
        meta = profile(entry.build("meta"), one, device="meta", layers=False)["macs"]
        torch.manual_seed(0)
        cpu_model = entry.build("cpu")
        cpu = profile(cpu_model, one, device="cpu", layers=False)["macs"]
        return meta, cpu
    except Exception as e:
        return f"failed: {reason(e)}"


def save_rows(path, rows, seconds):
    """The rows as JSON (sets as sorted lists, the profile pair as a list)."""
    import json

    def plain(r):
        r = dict(r, unmodelled=sorted(r["unmodelled"])) if "unmodelled" in r else dict(r)
        r.pop("modes", None)
        return r
    write_text(path, json.dumps({"seconds": seconds, "rows": [plain(r) for r in rows]}))


def load_rows(path):
    """``(rows, seconds)`` as :func:`save_rows` wrote them."""
    import json

    with open(path) as f:
        data = json.load(f)
    rows = data["rows"]
    for r in rows:
        if "unmodelled" in r:
            r["unmodelled"] = set(r["unmodelled"])
        if isinstance(r.get("profile"), list):
            r["profile"] = tuple(r["profile"])
    return rows, data["seconds"]


def selected(args):
    """The entries to run: every one, or those ``--only`` names."""
    entries = hf_entries() + timm_entries() + torchvision_entries()[::-1]
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        entries = [e for e in entries if any(w in e.name for w in wanted)]
    return entries


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated substrings of model names")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--how", choices=("auto", "real", "fake"), default="auto")
    parser.add_argument("--real-limit", type=int, default=50_000_000,
                        help="--how auto: a real step up to this many parameters")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--out", default=os.path.join("reports", "zoo.md"))
    parser.add_argument("--rows", default=None,
                        help="also write the rows as JSON to this path (after every model)")
    parser.add_argument("--from-rows", default=None,
                        help="render --out from the rows --rows runs wrote (comma-separated "
                        "paths); run nothing")
    parser.add_argument("--note", default=None,
                        help="a paragraph for the report's introduction (how it was assembled)")
    parser.add_argument("--keep", default=None,
                        help="a report whose rows of the models the --from-rows JSON lacks "
                        "are kept (as it rounded them); alone, it re-renders that report")
    args = parser.parse_args(argv)
    if args.from_rows or args.keep:
        rows, seconds = [], 0.0
        for path in filter(None, (args.from_rows or "").split(",")):
            got, s = load_rows(path)
            rows, seconds = rows + got, seconds + s
        seen = {r["model"] for r in rows}
        if args.keep:
            with open(args.keep) as f:
                rows += [r for r in rows_from_report(f.read()) if r["model"] not in seen]
            seen = {r["model"] for r in rows}
        # entries the rows predate that are not run: listed with why
        rows += [run_one(e, args.size, args.batch, args.how, args.real_limit, False)
                 for e in selected(args) if e.unsupported and e.name not in seen]
        write_text(args.out, render(rows, args, 0, seconds))
        print(f"wrote {args.out}")
        return 0

    import inspect

    from complexity.cost.measure.cpu_step import measure
    if "how" not in inspect.signature(measure).parameters:
        sys.exit("complexity.cost.measure.cpu_step.measure has no how= argument: this benchmark needs it")
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    entries = selected(args)
    started = time.perf_counter()
    rows = []
    for i, entry in enumerate(entries, 1):
        row = run_one(entry, args.size, args.batch, args.how, args.real_limit, not args.no_profile)
        rows.append(row)
        status = (row["error"] or f"worst {pct(worst(row))}, unmodelled "
                  f"{', '.join(sorted(row['unmodelled'])) or 'none'}")
        print(f"[{i}/{len(entries)}] {entry.name}: {status} ({row.get('seconds', 0):.1f} s)",
              flush=True)
        write_text(args.out, render(rows, args, started, time.perf_counter(), len(entries)))
        if args.rows:
            save_rows(args.rows, rows, time.perf_counter() - started)
        gc.collect()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
