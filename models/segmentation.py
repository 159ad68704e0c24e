"""DeepLabV3 with the head swap of the course's segmentation exercise (fine-tune a
pretrained DeepLabV3 to separate foreground from background).

torchvision's ``deeplabv3_*`` models end in ``classifier[4]``, a 1×1 convolution
256 → 21 (the VOC classes). Fine-tuning for foreground/background replaces it by a
1×1 convolution 256 → ``num_classes``; without the auxiliary head it owns the
model's last parameters, so "train the last layer" means "train :data:`HEAD`".

>>> import torch
>>> with torch.device("meta"):
...     net = deeplab("deeplabv3_mobilenet_v3_large")
>>> [n for n, _ in net.named_parameters()][-2:]
['classifier.4.weight', 'classifier.4.bias']
>>> net.classifier[4]
Conv2d(256, 2, kernel_size=(1, 1), stride=(1, 1))

Only modules here: freezing is :func:`complexity.cost.step.trainable.set_trainable`, and
local weights load with :func:`complexity.experiments.segmentation.weights.load_weights`.
"""
from __future__ import annotations

from torch import nn

ARCHS = ("deeplabv3_resnet101", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large")
HEAD = "classifier.4"


def deeplab(arch: str = "deeplabv3_resnet101", num_classes: int = 2,
            aux_loss: bool = False) -> nn.Module:
    """A randomly initialised torchvision DeepLabV3 with ``classifier[4]`` replaced by
    a 1×1 conv 256 → ``num_classes``. No download: ``weights=None`` and
    ``weights_backbone=None`` (load local weights afterwards, with weights_only=True)."""
    import torchvision.models.segmentation as seg

    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    model = getattr(seg, arch)(weights=None, weights_backbone=None, num_classes=21,
                               aux_loss=aux_loss)
    old = model.classifier[4]
    model.classifier[4] = nn.Conv2d(old.in_channels, num_classes, kernel_size=1)
    return model
