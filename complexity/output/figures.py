"""The one matplotlib set-up of this package: the Agg backend (files only, no
display) and PNGs written atomically (temporary file + rename), so a failed run
never leaves a half-written picture under the real name.

>>> import os, tempfile
>>> plt = pyplot()
>>> fig, ax = plt.subplots()
>>> _ = ax.plot([0, 1], [1, 0])
>>> path = os.path.join(tempfile.mkdtemp(), "line.png")
>>> save(fig, path)
>>> open(path, "rb").read(4) == b"\\x89PNG"
True
"""
from __future__ import annotations

from complexity.atomic import atomic_path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str, dpi: int = 100, image_format: str = "png", tight: bool = True) -> None:
    """Write ``fig`` to ``path`` atomically and close it (also on error).
    ``image_format``: what matplotlib writes (``png``, ``svg``, ``pdf`` …);
    ``tight``: crop the figure to its drawn content."""
    plt = pyplot()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=image_format, dpi=dpi,
                        bbox_inches="tight" if tight else None)
    finally:
        plt.close(fig)
