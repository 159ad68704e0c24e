"""Files written whole or not at all.

Every output of this tool (reports, plots, checkpoints, caches, JSON) is written to
a temporary file in the target folder and renamed over the target, so a crash or a
bad input never leaves a half-written file under the real name (the rename is
atomic on one file system).

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> write_text(os.path.join(d, "a.md"), "# hi\\n")
>>> write_json(os.path.join(d, "a.json"), {"x": 1})
>>> with atomic_path(os.path.join(d, "b.bin")) as tmp:
...     _ = open(tmp, "wb").write(b"x")
>>> sorted(os.listdir(d))
['a.json', 'a.md', 'b.bin']
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager


@contextmanager
def atomic_path(path: str):
    """Yield a temporary path beside ``path``; on success rename it to ``path``
    (readable by everyone, as a normal file), on error remove it."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1]
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    except OSError as e:
        raise _named(e, path) from None
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, path)
    except OSError as e:
        if e.filename in (tmp, None) or e.filename2 == tmp:
            raise _named(e, path) from None
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _named(e: OSError, path: str) -> OSError:
    """The error ``e`` about the temporary file, naming the target ``path`` instead:
    a message must name the file the user asked for, not an internal name.

    >>> str(_named(FileNotFoundError(2, "No such file or directory", "/d/.tmp-x.png"), "/d/a.png"))
    "[Errno 2] No such file or directory: '/d/a.png'"
    """
    if e.errno is None:
        return OSError(f"{path}: {e}")
    return type(e)(e.errno, e.strerror, path)


def write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def write_json(path: str, obj, indent: int = 1) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (argument order as :func:`write_text`)."""
    import json

    write_text(path, json.dumps(obj, indent=indent))


def copy_file(src: str, dst: str) -> None:
    """Copy ``src`` to ``dst`` atomically: a failed copy leaves ``dst`` as it was."""
    import shutil

    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
