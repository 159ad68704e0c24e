"""Local weights for the DeepLabV3 of :mod:`models.segmentation`: torchvision's
COCO-with-VOC-labels files, or a checkpoint of the ``segment`` command, read with
``torch.load(weights_only=True)`` (:func:`complexity.experiments.checkpoint.read`).

The replaced head stays at its random initialisation when the file's head has a
different number of classes; anything else that does not fit is refused whole.

A ``segment`` checkpoint (:mod:`complexity.experiments.segmentation.checkpoints`)
of ``--train all`` holds every tensor and loads like a state dict. One of ``--train
last`` holds only the head and the buffers, and is applied to its base: the base's
weights file, when it names one, is loaded first from the path it records (its
sha256 must still match); without one, the model given must be the base's random
initialisation (the same ``seed``). The fingerprint of the frozen tensors decides.

>>> import os, tempfile, torch
>>> from models.segmentation import deeplab
>>> torch.manual_seed(0) and None
>>> src, net = deeplab("deeplabv3_mobilenet_v3_large"), deeplab("deeplabv3_mobilenet_v3_large")
>>> path = os.path.join(tempfile.mkdtemp(), "w.pt")
>>> torch.save({"model": src.state_dict()}, path)
>>> load_weights(net, path).startswith("loaded ")
True
>>> torch.equal(net.classifier[4].weight, src.classifier[4].weight)
True
"""
from __future__ import annotations

import os

import torch
from torch import nn

from complexity.experiments.checkpoint import CheckpointError, read
from complexity.experiments.segmentation import checkpoints
from models.segmentation import HEAD

AUX = "aux_classifier"


class WeightsError(ValueError):
    """A weights file that is missing, unreadable, or not a state dict of this
    architecture; the message is one line."""


def state_dict_of(obj):
    """The state dict inside ``obj``: itself, or under ``"model"`` / ``"state_dict"``
    (our checkpoints and common training scripts wrap it so); None if there is none."""
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        return None
    return obj


def examples(keys, n: int = 2) -> str:
    """The first ``n`` of ``keys`` in sorted order, and how many more.

    >>> examples(['c', 'a', 'b'])
    'a, b and 1 more'
    """
    keys = sorted(keys)
    more = f" and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_weights(model: nn.Module, path: str, arch: str | None = None,
                 seed: int | None = None) -> str:
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

    A ``segment`` checkpoint that holds only some tensors is applied to its base
    (see the module's text); ``arch`` and ``seed`` (how ``model`` was built) name
    what differs when the model is not that base.
    """
    try:
        obj = read(path, "weights")
    except CheckpointError as e:
        raise WeightsError(f"--weights {e}") from None
    if checkpoints.is_segment_checkpoint(obj):
        own = model.state_dict()
        if not all(k in obj["tensors"] for k in own):  # --train last: needs its base
            return load_delta(model, path, obj, arch, seed)
        obj = obj["tensors"]  # --train all: every tensor, a whole state dict
    arch = arch or "this architecture"
    state = state_dict_of(obj)
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
            parts.append(f"{len(missing)} tensors missing ({examples(missing)})")
        if mismatched:
            parts.append(f"{len(mismatched)} with other shapes ({examples(mismatched)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unknown ({examples(unexpected)})")
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


def load_delta(model: nn.Module, path: str, ck: dict, arch: str | None, seed: int | None) -> str:
    """Apply a segment checkpoint that holds only some tensors to ``model``, after
    loading its base's weights file if it names one; the model is left unchanged
    when refused."""
    theirs = ck["base"]
    base_file = theirs.get("weights")
    ours = {"arch": arch, "seed": seed, "weights": base_file}
    backup, note = None, ""
    if base_file:
        wpath = base_file["path"]
        if not os.path.isfile(wpath):
            raise WeightsError(f"--weights {path}: holds only the tensors its run changed, and "
                               f"its base weights file {wpath} is not there")
        if checkpoints.file_sha256(wpath) != base_file["sha256"]:
            raise WeightsError(f"--weights {path}: its base weights file {wpath} has changed "
                               f"since (sha256 differs from the recorded {base_file['sha256'][:12]}…)")
        backup = {k: v.clone() for k, v in model.state_dict().items()}
        note = "; base: " + load_weights(model, wpath, arch, seed)
    try:
        checkpoints.apply_checkpoint(ck, model, ours, path)
    except CheckpointError as e:
        if backup is not None:
            model.load_state_dict(backup)
        hint = (f" (use --seed {theirs['seed']})" if not base_file and seed is not None
                and theirs.get("seed") is not None and seed != theirs["seed"] else "")
        raise WeightsError(f"--weights {e}{hint}") from None
    return (f"loaded {len(ck['tensors'])} tensors of the segment checkpoint {path} "
            f"(--train {ck.get('train', '?')}, epoch {ck.get('epoch', '?')}) onto its base, "
            f"{checkpoints.describe(theirs)}{note}")
