"""``segment``'s checkpoints: the tensors a run changes, and a reference to the frozen
base they apply to.

A whole state dict of ``deeplabv3_mobilenet_v3_large`` is 44 MB, yet ``--train
last`` trains 514 of its parameters. A checkpoint therefore holds

- ``tensors``: every trainable parameter and every buffer. Buffers are saved whole
  because the run changes all of them even when every weight around them is frozen:
  BatchNorm runs in training mode during the training epochs (as in the course), so
  each layer's running mean and variance follow the training data, and
  ``--bn-images`` re-estimates them before each validation. They are two floats per
  BatchNorm channel (112 kB for ``deeplabv3_mobilenet_v3_large``, 437 kB for
  ``deeplabv3_resnet101``);
- ``base``: what the rest — the frozen parameters — is, so that nobody applies the
  tensors to the wrong network: ``arch``, ``seed`` (torchvision's initialisation
  after ``torch.manual_seed(seed)``, reproducible on the CPU), ``weights`` (None, or
  the ``--weights`` file as given with the sha256 of its bytes) and ``frozen``: the
  number of frozen parameter tensors and elements and a sha256 over their names,
  dtypes, shapes and bytes (:func:`fingerprint`), computed once at the start of the
  run.

With ``--train all`` nothing is frozen: ``tensors`` is the whole state dict and the
checkpoint needs no base. :func:`load_checkpoint` refuses a checkpoint whose frozen
fingerprint differs from the model it is loaded into (another architecture, another
seed, other weights) with one line naming the difference; the fingerprint decides,
so a base described differently but with identical frozen tensors (another seed
under ``--weights``, whose file supplies every frozen tensor) is accepted.

>>> import os, tempfile, torch
>>> from torch import nn
>>> torch.manual_seed(0) and None
>>> net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
>>> net[0].requires_grad_(False) and None
>>> ref = {"arch": "toy", "seed": 0, "weights": None, "frozen": fingerprint(net, saved_names(net))}
>>> path = os.path.join(tempfile.mkdtemp(), "best.pt")
>>> save_checkpoint(path, net, ref, saved_names(net), epoch=1)
>>> sorted(read_checkpoint(path)["tensors"])       # no frozen conv 0 weight or bias
['1.bias', '1.num_batches_tracked', '1.running_mean', '1.running_var', '1.weight', '2.bias', '2.weight']
>>> torch.manual_seed(0) and None
>>> fresh = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
>>> load_checkpoint(path, fresh)["epoch"]
1
>>> torch.manual_seed(1) and None
>>> other = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
>>> try:
...     load_checkpoint(path, other, {"arch": "toy", "seed": 1, "weights": None})
... except CheckpointError as e:
...     print(str(e).replace(path, "best.pt"))
best.pt: trained on another base (seed 0 vs this model's 1): its 2 frozen tensors differ from this model's
"""
from __future__ import annotations

import hashlib

import torch
from torch import nn

from complexity.experiments import checkpoint
from complexity.experiments.checkpoint import CheckpointError

FORMAT = "complexity.segment-checkpoint/1"
REQUIRED = ("format", "base", "tensors")
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def file_sha256(path: str) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def base_reference(arch: str | None, seed: int | None, weights: str | None = None) -> dict:
    """The description of a base without its fingerprint: ``{"arch", "seed",
    "weights": None | {"path", "sha256"}}`` (the file's sha256 is computed here).

    >>> base_reference("deeplabv3_resnet50", 3)
    {'arch': 'deeplabv3_resnet50', 'seed': 3, 'weights': None}
    """
    ref = {"arch": arch, "seed": seed, "weights": None}
    if weights is not None:
        ref["weights"] = {"path": weights, "sha256": file_sha256(weights)}
    return ref


def saved_names(model: nn.Module) -> list:
    """The state-dict names a checkpoint saves: every entry except the frozen
    parameters (``requires_grad=False``), in state-dict order."""
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    return [k for k in model.state_dict() if k not in frozen]


def fingerprint(model: nn.Module, saved) -> dict:
    """``{"tensors", "numel", "sha256"}`` of the model's parameters not in ``saved``
    (the frozen ones), in ``named_parameters`` order: the sha256 runs over each
    one's name, dtype, shape and raw bytes. No parameter: the sha256 of nothing.

    >>> fingerprint(nn.Linear(2, 2), ["weight", "bias"])["sha256"] == EMPTY_SHA256
    True
    """
    saved = set(saved)
    h = hashlib.sha256()
    tensors = numel = 0
    for name, p in model.named_parameters():
        if name in saved:
            continue
        t = p.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(p.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
        tensors += 1
        numel += t.numel()
    return {"tensors": tensors, "numel": numel, "sha256": h.hexdigest()}


def save_checkpoint(path: str, model: nn.Module, base: dict, names, **extra) -> None:
    """Write ``{"format", "base", "tensors": {name: copy} for name in names,
    **extra}`` to ``path`` atomically. ``base`` is a :func:`base_reference` with
    ``"frozen"``: the :func:`fingerprint` of the same model over the same ``names``,
    taken before training."""
    state = model.state_dict()
    # clone: a tensor viewing a larger storage would save all of that storage
    tensors = {k: state[k].detach().clone() for k in names}
    checkpoint.save({"format": FORMAT, "base": base, "tensors": tensors, **extra}, path)


def read_checkpoint(path: str) -> dict:
    """Read a segment checkpoint (``weights_only=True``); :class:`CheckpointError`
    with one line if it is missing, unreadable or not one (e.g. a whole state dict
    written by an older version: give it to ``--weights`` instead)."""
    obj = checkpoint.read(path)
    if isinstance(obj, dict) and "model" in obj and "format" not in obj:
        raise CheckpointError(f"{path}: a whole state dict without a base reference (an "
                              "older segment checkpoint); load it with --weights")
    missing = [k for k in REQUIRED if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise CheckpointError(f"{path}: not a segment checkpoint (missing {', '.join(missing)})")
    if obj["format"] != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {obj['format']!r}; this version "
                              f"reads {FORMAT!r}")
    return obj


def is_segment_checkpoint(obj) -> bool:
    """Whether an object read from a file is one of these checkpoints."""
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def describe(base: dict) -> str:
    """One phrase for a base.

    >>> describe({"arch": "deeplabv3_resnet50", "seed": 0,
    ...           "weights": {"path": "voc.pth", "sha256": "ab" * 32}})
    'deeplabv3_resnet50, seed 0, weights voc.pth (sha256 abababababab…)'
    >>> describe({"arch": "deeplabv3_resnet50", "seed": 2, "weights": None})
    'deeplabv3_resnet50, random init with seed 2'
    """
    w = base.get("weights")
    if w:
        return f"{base.get('arch')}, seed {base.get('seed')}, weights {w['path']} (sha256 {w['sha256'][:12]}…)"
    return f"{base.get('arch')}, random init with seed {base.get('seed')}"


def differences(theirs: dict, ours: dict) -> list:
    """What differs between two base descriptions, as short phrases ("arch A vs this
    model's B", ...); only fields both know."""
    out = []
    for key in ("arch", "seed"):
        a, b = theirs.get(key), ours.get(key)
        if a is not None and b is not None and a != b:
            out.append(f"{key} {a} vs this model's {b}")
    if "weights" in theirs and "weights" in ours:
        a, b = theirs["weights"], ours["weights"]
        sa, sb = (a or {}).get("sha256"), (b or {}).get("sha256")
        if sa != sb:
            show = (lambda w: f"{w['path']} (sha256 {w['sha256'][:12]}…)" if w else "none")
            out.append(f"weights {show(a)} vs this model's {show(b)}")
    return out


def load_checkpoint(path: str, model: nn.Module, base: dict | None = None) -> dict:
    """Apply the checkpoint at ``path`` to ``model``, which must be its base; return
    the checkpoint (``base``, ``epoch``, ``metrics``, ...; ``tensors`` included).

    ``base`` (optional: a :func:`base_reference` of how ``model`` was built) only
    sharpens the message. Refused with :class:`CheckpointError`, one line, and the
    model left unchanged: a file that is not a segment checkpoint; tensors the model
    lacks or has in another shape, or buffers the checkpoint lacks (another
    architecture); frozen parameters whose fingerprint differs (another seed, other
    weights)."""
    return apply_checkpoint(read_checkpoint(path), model, base, path)


def apply_checkpoint(ck: dict, model: nn.Module, base: dict | None = None,
                     path: str = "checkpoint") -> dict:
    """:func:`load_checkpoint` of a checkpoint already read (``path`` names it in
    messages)."""
    theirs, tensors = ck["base"], ck["tensors"]
    if base is not None and base.get("arch") and theirs.get("arch") \
            and base["arch"] != theirs["arch"]:
        raise CheckpointError(f"{path}: trained on another base ({theirs['arch']} vs this "
                              f"model's {base['arch']})")
    own = model.state_dict()
    params = {n for n, _ in model.named_parameters()}
    unknown = [k for k in tensors if k not in own]
    reshaped = [k for k in tensors if k in own and tuple(tensors[k].shape) != tuple(own[k].shape)]
    lacking = [k for k in own if k not in tensors and k not in params]  # buffers are always saved
    if unknown or reshaped or lacking:
        what = (f"{len(unknown)} tensors this model lacks (e.g. {unknown[0]})" if unknown else
                f"{len(reshaped)} tensors of other shapes (e.g. {reshaped[0]})" if reshaped else
                f"no {lacking[0]} ({len(lacking)} buffers missing)")
        raise CheckpointError(f"{path}: not a checkpoint of this architecture: {what}; "
                              f"its base is {describe(theirs)}")
    mine = fingerprint(model, tensors)
    expected = theirs.get("frozen") or {}
    if mine["sha256"] != expected.get("sha256"):
        diff = differences(theirs, base) if base is not None else []
        why = ("; ".join(diff) if diff else f"its base is {describe(theirs)}" if base is None
               else f"{describe(theirs)} on both sides, yet other values: other torch versions?")
        raise CheckpointError(
            f"{path}: trained on another base ({why}): its {expected.get('tensors', '?')} "
            f"frozen tensors differ from this model's")
    model.load_state_dict(tensors, strict=False)
    return ck
