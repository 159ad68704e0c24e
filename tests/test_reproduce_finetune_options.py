"""The fine-tuning options report on a tiny grid: every cell predicted and
measured (a fake step, itself equal to a real one: tests/test_cost_*), the lessons
read off the measured numbers, the tables and figure rendered."""
import pytest

from complexity.output import finetune_options as render
from complexity.reproduce import finetune_options as grid

pytest.importorskip("peft")  # the grid's LoRA rows

TINY = [("stack", "stack", (2, 16, 8, 8), None, "*", "0")]


@pytest.fixture(scope="module")
def cells():
    return grid.cells(TINY)


def test_every_combination_is_a_cell(cells):
    combos = {(c["trainable"], c["precision"], c["optimizer"], bool(c["checkpoint"]))
              for c in cells}
    assert len(cells) == len(combos) == 3 * 2 * 2 * 2


#: the keys predicted exactly; the others within a relative tolerance (of measured)
EXACT = ("param_bytes", "grad_bytes", "optimizer_bytes", "forward_flops", "backward_flops")
#: (observed worst over the grid: saved 0.44 %, peak 0.17 %)
CLOSE = {"saved_activation_bytes": 0.005, "peak_bytes": 0.002}


def test_state_bytes_are_exact_and_peaks_close_in_every_cell(cells):
    """Every cell on its own (not through the report's summary, which skips a cell
    whose measured value is 0): the state and FLOPs exact, saved and peak close,
    and no call left unmodelled."""
    from complexity.cost.keys import KEYS

    assert set(EXACT) | set(CLOSE) == set(KEYS)
    for c in cells:
        where = (c["trainable"], c["precision"], c["optimizer"], c["checkpoint"])
        predicted, measured = c["predicted"], c["measured"]
        assert c["unmodelled"] == [], (where, c["unmodelled"])
        for k in EXACT:
            assert predicted[k] == measured[k], (where, k, predicted[k], measured[k])
        for k, tol in CLOSE.items():
            assert measured[k] > 0, (where, k)
            assert abs(predicted[k] - measured[k]) <= tol * measured[k], \
                (where, k, predicted[k], measured[k])
    # the report's summary says the same
    worst = render.worst_errors(cells)
    for k in ("param_bytes", "grad_bytes", "optimizer_bytes", "forward_flops",
              "backward_flops"):
        assert worst[k] == 0, k
    assert worst["peak_bytes"] < 0.2 and worst["saved_activation_bytes"] < 0.5  # percent


def test_lessons_are_read_off_the_measurements(cells):
    (text,) = render.lessons(cells)
    by = {(c["trainable"], c["precision"], c["optimizer"], bool(c["checkpoint"])): c
          for c in cells}
    base = by[("full", "float32", "adam", False)]["measured"]
    last = by[("last", "float32", "adam", False)]["measured"]
    share = round(100 * (last["forward_flops"] + last["backward_flops"])
                  / (base["forward_flops"] + base["backward_flops"]))
    assert f"still costs {share}% of the full step's FLOPs" in text


def test_report_and_figure(cells, tmp_path):
    md = render.markdown(cells, quick=True)
    assert md.count("| full | float32 | adam | off |") == 1
    assert "## stack, input 2×16×8×8" in md
    path = tmp_path / "options.png"
    render.figure(cells, str(path))
    assert path.stat().st_size > 1000
