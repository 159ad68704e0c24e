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


#: the flags whose name is not the library's parameter name with ``-`` for ``_``
FLAG_NAMES = {"input_shape": "--input"}


def flag(parameter: str) -> str:
    """The command line's name of a library parameter.

    >>> flag("model_args"), flag("input_shape"), flag("trainable")
    ('--model-args', '--input', '--trainable')
    """
    return FLAG_NAMES.get(parameter, "--" + parameter.replace("_", "-"))


def flag_text(e: BaseException) -> str:
    """``str(e)`` with every :class:`~complexity.errors.Worded` error of its chain
    (``e`` itself, what it was raised from or while handling) worded by flags: the
    library names Python parameters, the command line its options.

    >>> from complexity.errors import OptionError
    >>> try:
    ...     try:
    ...         raise OptionError("{trainable} matches nothing", trainable="x*")
    ...     except ValueError as inner:
    ...         raise UsageError(f"model m: {inner}") from None
    ... except UsageError as e:
    ...     print(flag_text(e))
    model m: --trainable 'x*' matches nothing
    """
    from complexity.errors import Worded

    text, seen, link = str(e), set(), e
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, Worded) and link.text(flag) not in text:  # not worded twice
            text = text.replace(link.text(), link.text(flag))
        link = link.__cause__ or link.__context__
    return text


class StoreOnce(argparse.Action):
    """argparse's ``store``, but an option given twice is refused (the first value
    would be dropped silently otherwise). Options that compose use ``append``."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.given = False  # in the parse now running (reset by OneLineParser)

    def __call__(self, parser, namespace, values, option_string=None):
        if self.option_strings and self.given:
            raise argparse.ArgumentError(self, f"given twice (again as {option_string}); "
                                         "give it once")
        self.given = True
        setattr(namespace, self.dest, values)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump), exit 2, and
    whose value options may be given once (:class:`StoreOnce`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("action", None, StoreOnce)
        self.register("action", "store", StoreOnce)

    def parse_known_args(self, args=None, namespace=None):
        for action in self._actions:
            if isinstance(action, StoreOnce):
                action.given = False
        return super().parse_known_args(args, namespace)

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
    """``1,2,4`` → [1, 2, 4], each ≥ 1, none twice (a repeated value would only
    repeat the work).

    >>> int_list("1,2,4")
    [1, 2, 4]
    """
    try:
        values = [positive_int(t) for t in text.split(",") if t.strip()] or _empty(text)
    except argparse.ArgumentTypeError as e:
        raise argparse.ArgumentTypeError(f"in {text!r}: {e}")
    return distinct(values, text)


def distinct(values, text: str):
    """``values`` (parsed from ``text``) if none appears twice; else the
    ``ArgumentTypeError`` naming the first repeated one.

    >>> try:
    ...     distinct([5, 5], "5,5")
    ... except argparse.ArgumentTypeError as e:
    ...     print(e)
    in '5,5': 5 appears twice (give each value once)
    """
    seen = []
    for v in values:
        if v in seen:
            shown = "x".join(map(str, v)) if isinstance(v, tuple) else v
            raise argparse.ArgumentTypeError(f"in {text!r}: {shown} appears twice "
                                             "(give each value once)")
        seen.append(v)
    return values


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
    # the folder named as the user named theirs: relative to where they are, or absolute
    where = probe if os.path.isabs(path) else os.path.relpath(probe)
    if not os.path.isdir(probe):
        raise UsageError(f"{option} {path}: {where} is a file, not a folder")
    why = unwritable(probe)
    if why:
        raise UsageError(f"{option} {path}: cannot create anything in {where} ({why})")
    return path


def unwritable(folder: str):
    """Why nothing can be created in the existing ``folder`` (None if something can):
    found by trying — a folder created and removed at once — since permission bits
    say nothing on ``/proc``, read-only mounts or to root.

    >>> import tempfile
    >>> unwritable(tempfile.mkdtemp()) is None, unwritable("/proc") is not None
    (True, True)
    """
    import tempfile

    try:
        made = tempfile.mkdtemp(prefix=".complexity-probe-", dir=folder)
    except OSError as e:
        return e.strerror or str(e)
    os.rmdir(made)
    return None


def check_plot(path: str, option: str = "--plot", formats=None) -> str:
    """Check, before any work, that a figure can be written to ``path``: not a
    folder, its folder exists and takes new files, and its extension is a format
    matplotlib writes (or one of ``formats`` when the figure is only drawn in
    those). :class:`UsageError` naming ``option`` and ``path`` otherwise.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> check_plot(os.path.join(d, "a.png")) == os.path.join(d, "a.png")
    True
    >>> for bad in ("a.xyz", "no/a.png", ""):
    ...     try:
    ...         check_plot(os.path.join(d, bad), formats=("png",))
    ...     except UsageError as e:
    ...         print(str(e).replace(d, "D"))
    --plot D/a.xyz: .xyz is not an image format this figure is written in (use png)
    --plot D/no/a.png: its folder D/no does not exist
    --plot D/: is a folder; give a file name such as figure.png
    """
    if os.path.isdir(path) or path.endswith(os.sep):
        raise UsageError(f"{option} {path}: is a folder; give a file name such as figure.png")
    folder = os.path.dirname(os.path.abspath(path))
    shown = os.path.dirname(path) or "."
    if not os.path.exists(folder):
        raise UsageError(f"{option} {path}: its folder {shown} does not exist")
    if not os.path.isdir(folder):
        raise UsageError(f"{option} {path}: {shown} is a file, not a folder")
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    if formats is None:
        from matplotlib.backend_bases import FigureCanvasBase

        formats = sorted(FigureCanvasBase.get_supported_filetypes())
        what = "an image format matplotlib writes"
    else:
        what = "an image format this figure is written in"
    if ext not in formats:
        raise UsageError(f"{option} {path}: {('.' + ext) if ext else 'no extension'} is not "
                         f"{what} (use {', '.join(formats)})")
    why = unwritable(folder)
    if why:
        raise UsageError(f"{option} {path}: cannot create a file in {shown} ({why})")
    return path


def add_threads_argument(p) -> None:
    """``--threads``: PyTorch's CPU threads for commands that train or run models."""
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads for PyTorch (default: the cores other jobs leave idle, "
                   "at least 1 — on this 2-core machine 2 threads trained 1.85x faster "
                   "when idle, 1 thread 1.7-3.4x faster when other jobs were running)")


def default_threads(cores=None, load=None) -> int:
    """The cores other jobs leave idle: all of them minus the 1-minute load
    average, at least 1. Measured with ``benchmarks/train_threads.py`` (one UNet
    epoch, 2 cores): idle, 2 threads take 0.54× the time of 1; with one or two busy
    processes beside it, 1 thread takes 0.60× or 0.29× the time of 2 — threads
    that wait for a busy core cost more than they give.

    >>> default_threads(cores=2, load=0.1), default_threads(cores=2, load=1.2)
    (2, 1)
    >>> default_threads(cores=8, load=2.6), default_threads(cores=2, load=5.0)
    (5, 1)
    """
    cores = cores or os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # not on every platform
            load = 0.0
    return max(1, min(cores, cores - round(load)))


def set_threads(args) -> None:
    """Apply ``--threads``, or :func:`default_threads` when it is not given."""
    import torch

    torch.set_num_threads(getattr(args, "threads", None) or default_threads())


def emit(text: str) -> int:
    """Print a command's output (one trailing newline) and return exit code 0."""
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
