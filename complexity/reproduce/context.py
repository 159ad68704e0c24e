"""What every report writer of ``reproduce`` gets: a :class:`Context` saying where
reports and runs go, how much to do (``quick``), whether to retrain (``fresh``),
and the colourization data, loaded once and shared by the writers.

>>> ctx = Context(reports="r", runs="runs/x", quick=True)
>>> ctx.settings["colour"]["epochs"]
3
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field

FULL = {"colour": {"epochs": 25, "max_images": None},
        "sweep": {"sizes": [1, 5, 10, 100, 500, 1000], "epochs": 5, "max_images": None},
        "invariance_batch": 100}
QUICK = {"colour": {"epochs": 3, "max_images": 200},
         "sweep": {"sizes": [1, 10, 100], "epochs": 1, "max_images": 100},
         "invariance_batch": 50}


@dataclass
class Context:
    """Where to write, how much to do, and the data the writers share."""
    reports: str = "reports"
    runs: str = os.path.join("runs", "reproduce")
    quick: bool = False
    fresh: bool = False
    progress: bool = True
    #: colourization data by ``max_images`` (None: all), filled by :meth:`data`
    datasets: dict = field(default_factory=dict)
    _cleared: set = field(default_factory=set)

    @property
    def settings(self):
        return QUICK if self.quick else FULL

    def data(self, max_images):
        """The default colourization data (the offline photographs, 24 colours), at
        most ``max_images`` images per split; loaded once per Context."""
        if max_images not in self.datasets:
            from complexity.experiments.colourization import data

            self.datasets[max_images] = data.prepare(data.load_images(None, 7, max_images), 24)
        return self.datasets[max_images]

    def clear_once(self, out: str) -> None:
        """With ``fresh``, delete the run folder ``out`` — the first time it is asked for
        in this Context only: a later step reusing the run (invariance reuses the
        colourization checkpoints) must continue it, not train it again."""
        key = os.path.abspath(out)
        if self.fresh and key not in self._cleared:
            self._cleared.add(key)
            if os.path.isdir(out):
                shutil.rmtree(out)

    def log(self, text: str) -> None:
        if self.progress:
            sys.stderr.write(text + "\n")

    def trained(self, cfg, max_images, out: str):
        """``(result, model)``: ``cfg`` trained into the run folder ``out`` on
        :meth:`data` ``(max_images)``, continuing the checkpoint there
        (:func:`~complexity.experiments.colourization.train.train_or_resume`), with the
        run's curves.png and samples.png; with ``fresh``, the folder is cleared the
        first time this Context uses it."""
        from complexity.experiments.colourization import train
        from complexity.output.colourization import training_figures

        data = self.data(max_images)
        self.clear_once(out)
        result, model = train.train_or_resume(data, cfg, out, progress=self.progress,
                                              log=self.log)
        training_figures(result, model, data, out)
        return result, model


def md_table(headers, rows) -> str:
    """A GitHub markdown table, floats to 4 decimals."""
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="github", floatfmt=".4f")


def flag(cond: bool) -> str:
    """**met** or **not met**, for the targets a report checks.

    >>> flag(True), flag(False)
    ('**met**', '**not met**')
    """
    return "**met**" if cond else "**not met**"
