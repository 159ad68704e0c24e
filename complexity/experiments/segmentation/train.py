"""The segmentation fine-tuning loop of the course's exercise (DeepLabV3, foreground
vs background, the last layer or everything): Adam on the trainable parameters
only, per-pixel cross-entropy on ``model(x)["out"]``, per epoch the training loss,
validation loss, standard mean IoU and the course's thresholded IoU;
best and last checkpoints written atomically: the trainable parameters and the
buffers, with a reference to the frozen base
(:mod:`complexity.experiments.segmentation.checkpoints`). With ``progress``, a
tqdm bar on stderr over the batches of each pass: training, BatchNorm
re-estimation and validation.

Frozen parameters (``--train last``) have ``requires_grad=False``: autograd builds
no graph through them, so no gradient is computed for them, and the optimizer is
given only the trainable ones. BatchNorm layers still run in training mode during
the training epochs, as in the course, so their running statistics (buffers, not
parameters) follow the training data even when their weights are frozen.

Before each validation the BatchNorm running statistics are re-estimated from up to
``bn_images`` training images with the current weights ("precise BN": Wu & Johnson,
"Rethinking 'Batch' in BatchNorm", 2021, §3): torchvision's MobileNetV3 uses
BatchNorm momentum 0.01, so after a few dozen steps its running statistics are still
mostly their initial values (0, 1) and evaluation mode would see a different network
from the one trained — a random-weight run then predicts background everywhere in
evaluation however low its training loss. ``bn_images=0`` keeps the course's
behaviour (no re-estimation).

>>> import torch
>>> from models.segmentation import deeplab
>>> from complexity.experiments.segmentation.data import Shapes
>>> torch.manual_seed(0) and None
>>> net = deeplab("deeplabv3_mobilenet_v3_large")
>>> r = fit(net, Shapes("train", 32, 4), Shapes("val", 32, 2), epochs=1, lr=0.01,
...         batch_size=2, val_batch_size=2, progress=False)
>>> [sorted(h) for h in r["history"]]
[['course_iou', 'epoch', 'miou', 'train_loss', 'val_loss']]
"""
from __future__ import annotations

import math
import os
import sys
import time

import torch
from torch import nn
from torch.utils.data import DataLoader

from complexity.counting.hooks import mode

from complexity.cost.step.trainable import set_trainable
from complexity.experiments.segmentation import checkpoints
from complexity.experiments.segmentation.metrics import confusion, course_iou, mean_iou

NUM_CLASSES = 2
#: ``segment --train`` → the mode of :func:`complexity.cost.step.trainable.set_trainable`:
#: ``last`` trains the module owning the last parameter, which for DeepLabV3 without
#: its auxiliary head is the new head ``classifier.4``.
TRAIN_MODES = {"last": "last", "all": "full"}


def trainable_mode(train: str) -> str:
    """The :func:`~complexity.cost.step.trainable.set_trainable` mode of ``--train last|all``.

    >>> trainable_mode("all")
    'full'
    """
    try:
        return TRAIN_MODES[train]
    except KeyError:
        raise ValueError(f"unknown train mode {train!r}; choose one of "
                         f"{', '.join(TRAIN_MODES)}") from None


def bar(iterable, progress: bool, desc: str, total: int | None = None):
    """``iterable`` wrapped in a tqdm bar on stderr that vanishes when done
    (``progress=False``: no bar, nothing written)."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, disable=not progress,
                file=sys.stderr)


def evaluate(model: nn.Module, loader, progress: bool = False, desc: str = "validation") -> dict:
    """Validation loss (mean over pixels), mean IoU and course IoU, in eval mode."""
    model.eval()
    loss_sum, pixels, images = 0.0, 0, 0
    conf = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    course_sum = 0.0
    with torch.no_grad():
        for x, y in bar(loader, progress, desc):
            out = model(x)["out"]
            loss_sum += nn.functional.cross_entropy(out, y, reduction="sum").item()
            pixels += y.numel()
            pred = out.argmax(1)
            conf += confusion(pred, y, NUM_CLASSES)
            course_sum += course_iou(pred, y).sum().item()
            images += y.shape[0]
    return {"val_loss": loss_sum / pixels, "miou": mean_iou(conf), "course_iou": course_sum / images}


def recalibrate_bn(model: nn.Module, loader, max_images: int, progress: bool = False,
                   desc: str = "BatchNorm statistics") -> int:
    """Replace every BatchNorm's running statistics by the plain average over batches
    of up to ``max_images`` images (``momentum=None``), forward only, dropout off (it
    would inflate the variances, and evaluation runs without it). Returns the number
    of images used."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or max_images <= 0:
        return 0
    momenta = [m.momentum for m in bns]
    # Kept to put back if no batch of two or more images comes: resetting and then
    # seeing nothing would leave every BN at mean 0, variance 1.
    saved = [(m.running_mean.clone(), m.running_var.clone(),
              None if m.num_batches_tracked is None else m.num_batches_tracked.clone())
             for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = mean over the batches seen
    seen = 0
    with mode(model, True), torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.dropout._DropoutNd):
                m.eval()
        batches = bar(loader, progress, desc)
        for x, _ in batches:
            if seen >= max_images:
                break
            if x.shape[0] < 2:
                continue
            model(x)
            seen += x.shape[0]
        batches.close()
    for m, momentum, (mean, var, tracked) in zip(bns, momenta, saved):
        m.momentum = momentum
        if seen == 0:
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)
    return seen


def training_loader(dataset, batch_size: int) -> DataLoader:
    """Shuffled training batches, none of a single image: when the last batch would
    hold one, it is dropped (a different image each epoch, as the order is shuffled),
    since train-mode BatchNorm cannot use it."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=True,
                      drop_last=len(dataset) % batch_size == 1,
                      generator=torch.Generator().manual_seed(0))


def train_epoch(model: nn.Module, loader, optimizer, progress: bool, desc: str) -> float:
    """One pass over ``loader``; returns the mean per-pixel training loss."""
    model.train()
    loss_sum, pixels = 0.0, 0
    batches = bar(loader, progress, desc)
    for x, y in batches:
        if x.shape[0] < 2:
            # DeepLab's ASPP pooling branch ends in BatchNorm on a 1×1 map: training
            # mode cannot normalise one value per channel. training_loader never makes
            # such a batch; a loader from elsewhere might.
            continue
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x)["out"], y)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * y.numel()
        pixels += y.numel()
        batches.set_postfix(loss=f"{loss.item():.4f}")
    return loss_sum / pixels if pixels else math.nan


def fit(model: nn.Module, train_ds, val_ds, *, train: str = "last", epochs: int = 10,
        lr: float = 0.05, batch_size: int = 128, val_batch_size: int = 256,
        out: str | None = None, progress: bool = True, meta: dict | None = None,
        log=None, bn_images: int = 64, base: dict | None = None) -> dict:
    """Train ``model`` in place; return the run's record.

    ``{"initial": metrics before training, "history": [{"epoch", "train_loss",
    "val_loss", "miou", "course_iou"}...], "best": the entry with the highest
    mean IoU, "trainable_params", "total_params", "seconds"}``. With ``out``, writes
    ``out/last.pt`` after every epoch and ``out/best.pt`` when the mean IoU improves:
    a checkpoint of :mod:`~complexity.experiments.segmentation.checkpoints` with
    ``{"format", "base", "tensors", "train", "epoch", "metrics", **meta}``, where
    ``base`` is ``base`` (a
    :func:`~complexity.experiments.segmentation.checkpoints.base_reference`: how
    ``model`` was built; default: nothing known) with the fingerprint of the frozen
    parameters, taken here before training; the record then also holds
    ``"checkpoint": {"base", "tensors", "numel"}`` (what each file saves).
    Load with :func:`~complexity.experiments.segmentation.checkpoints.load_checkpoint`.
    """
    trainable = set_trainable(model, trainable_mode(train))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    if batch_size < 2:
        raise ValueError(f"batch_size {batch_size}: train-mode BatchNorm needs at least 2 images")
    train_loader = training_loader(train_ds, batch_size)
    val_loader = DataLoader(val_ds, batch_size=val_batch_size)
    calib_loader = DataLoader(train_ds, batch_size=min(batch_size, 64))
    saved, ref = None, None
    if out:
        saved = checkpoints.saved_names(model)
        ref = {**(base or checkpoints.base_reference(None, None)),
               "frozen": checkpoints.fingerprint(model, saved)}
    start = time.perf_counter()
    recalibrate_bn(model, calib_loader, bn_images, progress, "BatchNorm statistics, epoch 0")
    initial = evaluate(model, val_loader, progress, "validation, epoch 0")
    history, best = [], None
    for epoch in range(1, epochs + 1):
        train_loss = train_epoch(model, train_loader, optimizer, progress,
                                 f"epoch {epoch}/{epochs}")
        recalibrate_bn(model, calib_loader, bn_images, progress,
                       f"BatchNorm statistics, epoch {epoch}/{epochs}")
        entry = {"epoch": epoch, "train_loss": train_loss,
                 **evaluate(model, val_loader, progress, f"validation, epoch {epoch}/{epochs}")}
        history.append(entry)
        if log:
            log(f"epoch {epoch}/{epochs}: train loss {train_loss:.4f}, val loss "
                f"{entry['val_loss']:.4f}, mean IoU {entry['miou']:.4f}, "
                f"course IoU {entry['course_iou']:.4f}")
        improved = best is None or entry["miou"] > best["miou"]
        if improved:
            best = entry
        if out:
            extra = {"train": train, "epoch": epoch, "metrics": entry, **(meta or {})}
            checkpoints.save_checkpoint(os.path.join(out, "last.pt"), model, ref, saved, **extra)
            if improved:
                checkpoints.save_checkpoint(os.path.join(out, "best.pt"), model, ref, saved,
                                            **extra)
    record = {
        "initial": initial, "history": history, "best": best,
        "trainable_params": trainable,
        "total_params": sum(p.numel() for p in model.parameters()),
        "seconds": time.perf_counter() - start,
    }
    if out:
        state = model.state_dict()
        record["checkpoint"] = {"base": ref, "tensors": len(saved),
                                "numel": sum(state[k].numel() for k in saved)}
    return record


def predict(model: nn.Module, dataset, n: int = 6) -> tuple:
    """(images, truths, predictions) of the first ``n`` items, in eval mode."""
    model.eval()
    xs, ys = zip(*(dataset[i] for i in range(min(n, len(dataset)))))
    x, y = torch.stack(xs), torch.stack(ys)
    with torch.no_grad():
        pred = model(x)["out"].argmax(1)
    return x, y, pred
