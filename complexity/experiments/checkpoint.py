"""Checkpoints written atomically and read safely.

A checkpoint is written to a temporary file in the target folder and renamed over
the target, so a crash never leaves a half-written file under the real name. It is
read with ``torch.load(..., weights_only=True)``: tensors, numbers, strings, lists
and dicts only, no unpickling of arbitrary objects.

>>> import tempfile, os, torch
>>> d = tempfile.mkdtemp()
>>> save({"epoch": 3, "w": torch.ones(2)}, os.path.join(d, "ck.pt"))
>>> load(os.path.join(d, "ck.pt"))["epoch"]
3
"""
from __future__ import annotations

import os

import torch
from complexity.atomic import atomic_path


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or not one of ours."""


def save(obj, path: str) -> None:
    """Write ``obj`` to ``path`` atomically (temporary file + rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(obj, f)


def is_torch_file(path: str) -> bool:
    """Whether ``path`` starts like a file of ``torch.save``: a zip archive (the format
    since PyTorch 1.6) or a pickle stream (the legacy format; protocol 2+ opens with
    byte 0x80). Anything else would only give torch's unpickling error, cut short."""
    import zipfile

    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as f:
        return f.read(1) == b"\x80"


def read(path: str, what: str = "checkpoint"):
    """``torch.load(path, weights_only=True)`` on the CPU, or :class:`CheckpointError`
    with a one-line reason (missing, not a torch file, unreadable)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such {what} file")
    if not is_torch_file(path):
        raise CheckpointError(f"{path}: not a PyTorch checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for corrupt files
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise CheckpointError(f"{path}: not a readable {what} ({reason})") from None


def load(path: str, required=()):
    """Read a checkpoint with ``weights_only=True``; :class:`CheckpointError` with a
    one-line reason if it is missing, unreadable, or lacks the ``required`` keys."""
    obj = read(path)
    missing = [k for k in required if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise CheckpointError(f"{path}: not a checkpoint of this tool (missing {', '.join(missing)})")
    return obj
