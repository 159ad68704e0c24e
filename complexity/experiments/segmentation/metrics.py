"""Segmentation metrics: the standard mean IoU over classes, and the course's
thresholded per-image IoU (the course's segmentation exercise).

Both take integer label maps (N, H, W) — predictions are ``argmax`` over the class
dimension of ``model(x)["out"]`` — and are exact counts of pixels.

Standard mean IoU (PASCAL VOC / Cityscapes convention; Everingham et al., "The
PASCAL Visual Object Classes Challenge", IJCV 2010): accumulate one confusion
matrix over *all* validation pixels, IoU_c = TP_c / (TP_c + FP_c + FN_c) per class,
then the mean over classes that occur (in truth or prediction).

Course IoU (the 2020 assignment's ``iou_pytorch``): per image, I and U are the
intersection and union of the predicted and true *foreground* (class 1),
iou = (I + 1e-6) / (U + 1e-6), thresholded = ceil(clamp(20·(iou − 0.5), 0, 10)) / 10,
averaged over images. It rewards nothing below iou 0.5 and counts in steps of 0.1.
Computed here in float64 (the course used float32; the two differ only when
20·(iou − 0.5) sits within float32 rounding of an integer).

>>> import torch
>>> truth = torch.tensor([[[0, 1], [1, 1]]])
>>> pred = torch.tensor([[[0, 1], [0, 1]]])
>>> mean_iou(confusion(pred, truth, 2))       # background 1/2, foreground 2/3
0.5833333333333333
>>> course_iou(pred, truth).tolist()          # iou 2/3 → ceil(3.33)/10
[0.4]
"""
from __future__ import annotations

import torch

SMOOTH = 1e-6  # the course's smoothing term


def confusion(pred: torch.Tensor, truth: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Confusion matrix C[t, p] = number of pixels of true class t predicted as p."""
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != truth shape {tuple(truth.shape)}")
    idx = truth.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(idx, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def class_iou(conf: torch.Tensor) -> list:
    """IoU per class from a confusion matrix; ``None`` for a class absent from both
    truth and prediction (its IoU is undefined, not 0 or 1)."""
    conf = conf.double()
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    return [(t / u).item() if u > 0 else None for t, u in zip(tp, union)]


def mean_iou(conf: torch.Tensor) -> float:
    """Mean of the defined per-class IoUs."""
    ious = [v for v in class_iou(conf) if v is not None]
    return sum(ious) / len(ious) if ious else float("nan")


def course_iou(pred: torch.Tensor, truth: torch.Tensor, foreground: int = 1) -> torch.Tensor:
    """The course's thresholded IoU of the foreground, one value per image (N,)."""
    p, t = pred == foreground, truth == foreground
    inter = (p & t).flatten(1).sum(1).double()
    union = (p | t).flatten(1).sum(1).double()
    iou = (inter + SMOOTH) / (union + SMOOTH)
    return torch.clamp(20 * (iou - 0.5), 0, 10).ceil() / 10
