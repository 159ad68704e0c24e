"""``reports/finetune_options.md`` (+ ``finetune_options.png``): what the choices
people make when they fine-tune do to one training step's memory and compute.

For resnet50 and vit_b_16 at 224×224, batch 32, and a BERT-base built from its
default config (nothing downloaded) at sequence length 512, batch 8: the peak
memory and the training FLOPs of full / last-layer / LoRA fine-tuning × float32 /
bfloat16 autocast × Adam / SGD with momentum × activation checkpointing off / on,
each predicted (:func:`complexity.cost.predict.prediction.predict_with_unmodelled`) and
measured on a fake-tensor CPU step (:func:`complexity.cost.measure.cpu_step.measure`), with
the error of every cell. ``--quick``: the same grid on small stand-ins.
"""
from __future__ import annotations

import os
import time
from itertools import product

#: (label, how to build on meta, input shape, input dtype, token bound, LoRA targets,
#: checkpoint glob); the quick variants are small stand-ins of the same families.
FULL_MODELS = [
    ("resnet50", "torchvision:resnet50", (32, 3, 224, 224), None, "layer*.*.conv*", "layer*"),
    ("vit_b_16", "torchvision:vit_b_16", (32, 3, 224, 224), None, "encoder.layers.*.mlp.*",
     "encoder.layers.encoder_layer_*"),
    ("BERT-base", "bert", (8, 512), 30522, "*.attention.self.*", "bert.encoder.layer.*"),
]
QUICK_MODELS = [
    ("resnet18", "torchvision:resnet18", (2, 3, 64, 64), None, "layer*.*.conv*", "layer*"),
    ("vit (2 layers)", "vit-small", (2, 3, 32, 32), None, "encoder.layers.*.mlp.*",
     "encoder.layers.encoder_layer_*"),
    ("BERT (2 layers)", "bert-small", (2, 64), 1000, "*.attention.self.*",
     "bert.encoder.layer.*"),
]

TRAINABLE = ("full", "last", "lora")
PRECISIONS = (None, "bfloat16")
OPTIMIZERS = ("adam", "sgd-momentum")
CHECKPOINTS = (False, True)


def build(how: str):
    """A model on the meta device (BERT from a transformers config, no download)."""
    import torch

    if how.startswith("bert"):
        from transformers import BertConfig, BertForSequenceClassification

        small = dict(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=128, max_position_embeddings=128)
        config = BertConfig(**(small if how == "bert-small" else {}))
        with torch.device("meta"):
            return BertForSequenceClassification(config)
    if how == "vit-small":
        import torchvision

        with torch.device("meta"):
            return torchvision.models.VisionTransformer(
                image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                mlp_dim=64, num_classes=10)
    from complexity.zoo import build_model

    return build_model(how)[0]


def cells(models, progress=None):
    """One dict per (model, trainable, precision, optimizer, checkpoint): the
    options, ``predicted`` and ``measured`` (fake step) values, seconds taken."""
    import torch

    from complexity.cost.step.lora import LoRA, apply_lora
    from complexity.cost.measure.cpu_step import measure
    from complexity.cost.step.optimizers import Optimizer
    from complexity.cost.step.options import StepOptions
    from complexity.cost.predict.prediction import predict_with_unmodelled
    from complexity.cost.step.trainable import set_trainable

    out = []
    for (label, how, shape, high, lora_targets, ckpt) in models:
        for trainable, autocast, opt, checkpoint in product(TRAINABLE, PRECISIONS, OPTIMIZERS,
                                                            CHECKPOINTS):
            model = build(how)
            if trainable == "lora":
                model = apply_lora(model, LoRA(r=8, alpha=16, targets=lora_targets))
            else:
                set_trainable(model, trainable)
            options = StepOptions(optimizer=Optimizer(opt), autocast=autocast,
                                  checkpoint=ckpt if checkpoint else None)
            kw = {"input_dtype": torch.long, "input_high": high} if high else {}
            t0 = time.perf_counter()
            predicted, unmodelled = predict_with_unmodelled(model, shape, options=options, **kw)
            t1 = time.perf_counter()
            measured = measure(model, shape, how="fake", options=options, **kw)
            t2 = time.perf_counter()
            cell = {"model": label, "input": list(shape), "trainable": trainable,
                    "trainable_params": sum(p.numel() for p in model.parameters()
                                            if p.requires_grad),
                    "precision": f"{autocast} autocast" if autocast else "float32",
                    "optimizer": opt, "checkpoint": ckpt if checkpoint else None,
                    "lora_targets": lora_targets, "blocks": ckpt,
                    "predicted": predicted, "measured": measured, "unmodelled": unmodelled,
                    "predict_s": t1 - t0, "measure_s": t2 - t1}
            out.append(cell)
            if progress:
                progress(cell)
    return out


def write(ctx) -> list:
    """Write ``finetune_options.md``, ``finetune_options.json`` and
    ``finetune_options.png`` into ``ctx.reports``; returns their paths."""
    from complexity.atomic import write_json, write_text
    from complexity.output import finetune_options as render

    models = QUICK_MODELS if ctx.quick else FULL_MODELS

    def progress(c):
        if ctx.progress:
            print(f"  {c['model']} {c['trainable']} {c['precision']} {c['optimizer']} "
                  f"checkpoint={c['checkpoint'] or 'off'}: "
                  f"{c['predict_s']:.1f} s + {c['measure_s']:.1f} s", flush=True)

    results = cells(models, progress)
    md = os.path.join(ctx.reports, "finetune_options.md")
    png = os.path.join(ctx.reports, "finetune_options.png")
    data = os.path.join(ctx.reports, "finetune_options.json")
    render.figure(results, png)
    write_text(md, render.markdown(results, quick=ctx.quick))
    write_json(data, results)
    return [md, png, data]
