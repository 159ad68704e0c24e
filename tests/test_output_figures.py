"""Figures: what the invariance heat map writes in its cells, and that it draws."""
import numpy as np
import pytest

from complexity.output import colourization as plots


def _row(a, b, mean):
    return {"a": a, "b": b, "bn": "train", "interior": {"mean": mean}}


def test_exact_zero_is_labelled_0_and_drawn_lowest():
    rows = [_row(1.0, 0.0, 0.0), _row(1.0, 0.5, 0.9), _row(2.0, 0.0, 3.2e-6),
            _row(2.0, 0.5, None)]
    a_vals, b_vals, grid, labels = plots.invariance_cells(rows)
    assert (a_vals, b_vals) == ([1.0, 2.0], [0.0, 0.5])
    assert labels == [["0", "0.9"], ["3e-6", "—"]]
    assert grid[0, 0] == -17 and np.isnan(grid[1, 1])
    # no cell reads "-0" or "-17", the old labels of 0.9 and of an exact zero
    assert not {c for row in labels for c in row} & {"-0", "-17"}


def test_heat_map_is_written(tmp_path):
    rows = [_row(a, b, m) for a, b, m in [(1.0, 0.0, 0.0), (1.0, 0.5, 0.1)]]
    rows += [{**r, "bn": "eval"} for r in rows]
    path = tmp_path / "grid.png"
    plots.invariance_grid([{"model": "cnn", "rows": rows}], str(path))
    assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("optimizer", ["sgd", "sgd-momentum", "adam", "adamw"])
def test_finetune_plot_title_names_the_steps_optimizer(optimizer, monkeypatch, tmp_path):
    """``finetune --optimizer sgd --plot FILE`` was titled "One Adam training step"."""
    from complexity.cost.finetune import sweep
    from complexity.cost.step.optimizers import Optimizer
    from complexity.cost.step.options import StepOptions
    from complexity.output import figures
    from complexity.output import finetune as finetune_report

    results = sweep(["stack"], [1, 2], [(4, 4)], [2], ["full", "last"], width=2,
                    measured=False, options=StepOptions(optimizer=Optimizer(optimizer)))
    titles = []
    monkeypatch.setattr(figures, "save",
                        lambda fig, path, **kw: titles.append(fig._suptitle.get_text()))
    finetune_report.plot(results, str(tmp_path / "f.png"))
    assert titles == [f"One training step ({optimizer}, float32): full (solid) vs last "
                      "layer / pattern (dashed); predicted"]
