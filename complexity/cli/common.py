"""Argument types and error handling shared by every subcommand.

Bad input must end in exit code 2 and one line on stderr naming the problem,
never a traceback: argument types raise ``argparse.ArgumentTypeError``
with the accepted range, and :class:`UsageError` carries problems found later.
"""
from __future__ import annotations

import argparse
import os
import re
import sys


class UsageError(Exception):
    """Bad input found after parsing; printed as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump), exit 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(2)


def positive_int(text: str) -> int:
    """An integer ≥ 1.

    >>> positive_int("32")
    32
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer (need an integer >= 1)")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is out of range (need an integer >= 1)")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (need a number > 0)")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is out of range (need a finite number > 0)")
    return value


def odd_kernel(text: str) -> int:
    """A positive odd kernel size (padding k//2 keeps H and W only for odd k)."""
    value = positive_int(text)
    if value % 2 == 0:
        raise argparse.ArgumentTypeError(
            f"{value} is even (need an odd kernel >= 1: padding k//2 keeps H, W only for odd k)")
    return value


def size(text: str, minimum: int = 4):
    """``H`` or ``HxW`` → (H, W), each ≥ ``minimum``.

    >>> size("32"), size("32x48")
    ((32, 32), (32, 48))
    """
    m = re.fullmatch(r"\s*(\d+)\s*(?:[x×X]\s*(\d+)\s*)?", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (write H or HxW, e.g. 32 or 32x48)")
    h = int(m.group(1))
    w = int(m.group(2)) if m.group(2) else h
    if h < minimum or w < minimum:
        raise argparse.ArgumentTypeError(f"{h}x{w} is too small (need H, W >= {minimum})")
    return h, w


def int_list(text: str):
    """``1,2,4`` → [1, 2, 4], each ≥ 1."""
    try:
        return [positive_int(t) for t in text.split(",") if t.strip()] or _empty(text)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"in {text!r}: {e}")


def _empty(text):
    raise argparse.ArgumentTypeError(f"{text!r} holds no value")


def output_folder(path: str, option: str) -> str:
    """Check, before any work, that ``path`` is or can become a folder: it and its
    nearest existing ancestor must be folders. :class:`UsageError` otherwise.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> output_folder(os.path.join(d, "new", "run"), "--out") == os.path.join(d, "new", "run")
    True
    >>> f = os.path.join(d, "file")
    >>> _ = open(f, "w").close()
    >>> try:
    ...     output_folder(os.path.join(f, "run"), "--out")
    ... except UsageError as e:
    ...     print(str(e).replace(d, "D"))
    --out D/file/run: D/file is a file, not a folder
    """
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        where = path if probe == os.path.abspath(path) else probe
        raise UsageError(f"{option} {path}: {where} is a file, not a folder")
    return path


def add_threads_argument(p) -> None:
    """``--threads``: PyTorch's CPU threads for commands that train or run models."""
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads for PyTorch (default: its own choice; 1 is often "
                   "faster on a machine shared with other jobs)")


def set_threads(args) -> None:
    """Apply ``--threads`` (imports torch only when it is given)."""
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def emit(text: str) -> int:
    """Print a command's output (one trailing newline) and return exit code 0."""
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
