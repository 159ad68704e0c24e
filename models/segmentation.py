"""DeepLabV3 with the course's head swap (SPEC §1, Part C).

torchvision's ``deeplabv3_*`` models end in ``classifier[4]``, a 1×1 convolution
256 → 21 (the VOC classes). Fine-tuning for foreground/background replaces it by a
1×1 convolution 256 → ``num_classes`` and freezes everything else.

>>> import torch
>>> with torch.device("meta"):
...     net = deeplab("deeplabv3_mobilenet_v3_large")
>>> freeze_all_but_head(net)
>>> [n for n, p in net.named_parameters() if p.requires_grad]
['classifier.4.weight', 'classifier.4.bias']

Local pretrained weights (torchvision's COCO-with-VOC-labels files, or a
checkpoint of the ``segment`` command) load with :func:`load_weights`; the
replaced head stays random when the file's head has a different number of classes.
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


def freeze_all_but_head(model: nn.Module, head: str = HEAD) -> None:
    """Make only the parameters under ``head`` trainable."""
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(head + "."))


TRAIN_MODES = ("last", "all")
AUX = "aux_classifier"


class WeightsError(ValueError):
    """A weights file that is missing, unreadable, or not a state dict of this
    architecture; the message is one line."""


def set_trainable(model: nn.Module, train: str) -> list:
    """``"last"``: only the new head trains (:func:`freeze_all_but_head`);
    ``"all"``: every parameter trains. Returns the trainable parameters, which is
    exactly what the optimizer should hold."""
    if train not in TRAIN_MODES:
        raise ValueError(f"unknown train mode {train!r}; choose one of {', '.join(TRAIN_MODES)}")
    if train == "last":
        freeze_all_but_head(model)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def _state_dict_of(obj):
    """The state dict inside ``obj``: itself, or under ``"model"`` / ``"state_dict"``
    (our checkpoints and common training scripts wrap it so)."""
    import torch

    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        return None
    return obj


def _examples(keys, n=2):
    keys = sorted(keys)
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_weights(model: nn.Module, path: str, arch: str = "this architecture") -> str:
    """Load a local state dict into ``model`` (``torch.load(weights_only=True)``) and
    return one line saying what was loaded.

    Every tensor of the model must be in the file with the same shape, except
    BatchNorm's ``num_batches_tracked`` counters (older files lack them) and the
    replaced head ``classifier.4``: a file whose head has another number of
    classes (the 21-class VOC head of torchvision's files) leaves the new head at
    its random initialisation. ``aux_classifier`` tensors in the file are ignored
    when the model has no auxiliary head. Anything else — a missing tensor, a
    shape that differs, a tensor the model does not have — raises
    :class:`WeightsError`, and the model is left unchanged.
    """
    from complexity.experiments.checkpoint import CheckpointError, read

    try:
        obj = read(path, "weights")
    except CheckpointError as e:
        raise WeightsError(f"--weights {e}") from None
    state = _state_dict_of(obj)
    if state is None:
        raise WeightsError(f"--weights {path}: not a state dict (need a mapping of names to tensors)")
    own = model.state_dict()
    head = HEAD + "."
    load, head_skipped, aux_skipped, unexpected, mismatched = {}, [], [], [], []
    for k, v in state.items():
        if k not in own:
            (aux_skipped if k.startswith(AUX + ".") else unexpected).append(k)
        elif tuple(v.shape) != tuple(own[k].shape):
            (head_skipped if k.startswith(head) else mismatched).append(k)
        else:
            load[k] = v
    # BatchNorm's num_batches_tracked came later than the other buffers: older state
    # dicts lack it, and torch's load_state_dict accepts that (the counter stays as is)
    missing = [k for k in own if k not in load and not k.startswith(head)
               and not k.endswith(".num_batches_tracked")]
    if missing or mismatched or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensors missing ({_examples(missing)})")
        if mismatched:
            parts.append(f"{len(mismatched)} with other shapes ({_examples(mismatched)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unknown ({_examples(unexpected)})")
        raise WeightsError(f"--weights {path}: not a state dict of {arch}: " + "; ".join(parts))
    model.load_state_dict(load, strict=False)
    head_loaded = any(k.startswith(head) for k in load)
    text = f"loaded {len(load)} of {len(own)} tensors from {path}"
    if head_skipped:
        shape = tuple(state[HEAD + ".weight"].shape) if HEAD + ".weight" in state else "?"
        text += (f"; the file's {HEAD} has shape {shape}, so the new "
                 f"{tuple(own[HEAD + '.weight'].shape)} head keeps its random initialisation")
    elif not head_loaded:
        text += f"; the file has no {HEAD}, so the new head keeps its random initialisation"
    if aux_skipped:
        text += f"; ignored {len(aux_skipped)} {AUX} tensors (this model has no auxiliary head)"
    return text
