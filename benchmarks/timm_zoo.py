"""One timm model from every module of ``timm.models``, predicted against a CPU step.

``python benchmarks/timm_zoo.py`` groups ``timm.list_models()`` by the module that
registers each (``timm.models._registry``), and for each module picks the
smallest variant: the few names that look smallest (:data:`HINTS`: ``test_``,
``atto``, ``tiny``, ``small``, ``b0`` …; :func:`candidates`) are built on the meta
device (``pretrained=False``, nothing downloaded) and the one with the fewest
parameters is kept. Its input is the first of :data:`SIZES` (then its default
input size) that a meta forward of batch 2 accepts, passed as ``img_size`` where
the model takes it (a vision transformer's position table then shrinks with it).
For ``full`` and ``last`` training
(:func:`complexity.cost.step.trainable.set_trainable`) it compares
:func:`complexity.cost.predict.prediction.predict_with_unmodelled` with a real
CPU step (:func:`complexity.cost.measure.cpu_step.measure`, ``how="real"``), or a
step on fake CPU tensors above ``--real-limit`` parameters or an input above
:data:`REAL_SIZE` (but for models with recurrent layers: :func:`recurrent`).

It writes ``reports/timm_zoo.md`` (rewritten after every model, so an
interrupted run leaves the rows done so far): the summary (built, trained,
exact; the unmodelled calls ranked by how many models hit them; what did not
build or train, with why) and one row per (model, mode) with the error of each
of the seven quantities (``benchmarks/corpus.py``).

Options: ``--only vit,resnet`` (substrings of module names), ``--limit N`` (the
first N modules), ``--candidates K`` (names built per module, 3), ``--timeout S``
(seconds per module, 240), ``--real-limit P`` (10,000,000), ``--out PATH``,
``--merge`` (with ``--only``: re-run those modules and merge their rows into the
report at ``--out``, the others' rows kept as it shows them).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from complexity.errors import reason  # noqa: E402
from corpus import compare, report, rows_from_report, run  # noqa: E402

#: Words in a model name that say it is a small variant, most telling first.
HINTS = ("test_", "atto", "femto", "pico", "nano", "xxs", "tiny", "xs", "mini", "small",
         "_s", "b0", "s0", "t0", "m0", "050", "18", "lite", "_t", "_m")
#: Input sizes tried in turn (then the model's default).
SIZES = (64, 96, 128, 160, 224)
BATCH = 2
#: Above this input size (or ``--real-limit`` parameters) the step is measured on
#: fake CPU tensors: a real one would take minutes on a shared 2-core machine.
REAL_SIZE = 128


def modules() -> dict:
    """``{module: [model names]}`` of every model timm registers, modules in name order."""
    import timm
    from timm.models import _registry

    found: dict = {}
    for name in timm.list_models():
        found.setdefault(_registry._model_to_module.get(name, "?"), []).append(name)
    return dict(sorted(found.items()))


def candidates(names, k=3):
    """The ``k`` names that look smallest: by the first of :data:`HINTS` they hold,
    then by length (a variant's suffixes make it longer)."""
    def score(name):
        rank = next((i for i, h in enumerate(HINTS) if h in name), len(HINTS))
        return rank, len(name), name
    return sorted(names, key=score)[:k]


def _create(name, size):
    """The model on the meta device, with ``img_size=size`` where it takes one."""
    import timm

    with torch.device("meta"):
        try:
            return timm.create_model(name, pretrained=False, img_size=size), True
        except TypeError:
            return timm.create_model(name, pretrained=False), False


def _fits(model, size) -> bool:
    try:
        with torch.no_grad():
            model.eval()(torch.empty(BATCH, 3, size, size, device="meta"))
        return True
    except Exception:
        return False
    finally:
        model.train()


def sized(name):
    """``(model, input size)``: the first of :data:`SIZES`, then the model's default
    input size, that a meta forward accepts; ``(None, why)`` when none does."""
    import timm

    default = timm.get_pretrained_cfg_value(name, "input_size") or (3, 224, 224)
    sizes = SIZES + (default[-1],)
    try:
        model, takes_size = _create(name, sizes[0])
        for size in sizes:
            if takes_size and size != sizes[0]:
                model, _ = _create(name, size)
            if _fits(model, size):
                return model, size
    except Exception as e:
        return None, reason(e)
    return None, "no input size of " + ", ".join(map(str, sizes)) + " runs"


def smallest(names, k):
    """``(name, model, size)`` of the fewest parameters among the :func:`candidates`,
    or ``(name, None, why)`` of the first when none builds."""
    best, first_why = None, None
    for name in candidates(names, k):
        model, size = sized(name)
        if model is None:
            first_why = first_why or (name, size)
            continue
        n = sum(p.numel() for p in model.parameters())
        if best is None or n < best[0]:
            best = (n, name, model, size)
    if best is None:
        return first_why[0], None, first_why[1]
    return best[1], best[2], best[3]


def recurrent(model) -> bool:
    """Has ``model`` an LSTM, GRU or RNN? Its step is then measured for real
    whatever its size: the fake kernel of the CPU's LSTM (oneDNN) makes its
    workspace empty, where the real one keeps pages of it."""
    return any(isinstance(m, torch.nn.RNNBase) for m in model.modules())


def merged_rows(path, rerun, every):
    """``(rows, notes)``: the rows of the report at ``path`` of the modules not in
    ``rerun`` (a failure row names a model, or the module when it timed out), and
    the merge notes its introduction has."""
    with open(path) as f:
        text = f.read()

    def module(r):
        if r["group"]:
            return r["group"].split(" (")[0]
        return r["name"] if r["name"] in every else next(
            (m for m, names in every.items() if r["name"] in names), None)
    rows = [r for r in rows_from_report(text) if module(r) not in rerun]
    notes = "".join(" Merged:" + n.split("`--merge`")[0] + "`--merge`."
                    for n in text.split(" Merged:")[1:])
    return rows, notes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="comma-separated substrings of module names")
    parser.add_argument("--limit", type=int, default=None, help="the first N modules")
    parser.add_argument("--candidates", type=int, default=3,
                        help="smallest-looking names built per module to find the smallest (3)")
    parser.add_argument("--timeout", type=int, default=240, help="seconds per module (240)")
    parser.add_argument("--real-limit", type=int, default=10_000_000,
                        help="a real CPU step up to this many parameters, fake tensors above")
    parser.add_argument("--merge", action="store_true",
                        help="keep the report's rows of the modules not re-run (with --only)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "reports", "timm_zoo.md"), help="the report's path")
    a = parser.parse_args(argv)
    if a.limit is not None and a.limit < 1 or a.candidates < 1 or a.timeout < 1:
        parser.error("--limit, --candidates and --timeout must be >= 1")
    import timm

    torch.manual_seed(0)
    every = modules()
    only = [o for o in a.only.split(",") if o]
    todo = [(m, m) for m in every if not only or any(o in m for o in only)][:a.limit]

    def run_one(module, _):
        name, model, size = smallest(every[module], a.candidates)
        if model is None:
            return [dict(name=name, group=module, built=False, why=size)]
        n = sum(p.numel() for p in model.parameters())
        how = ("real" if n <= a.real_limit and size <= REAL_SIZE or recurrent(model)
               else "fake")
        return compare(model, (BATCH, 3, size, size), name, f"{module} ({size}², {how})", how)

    intro = (f"One model from each module of `timm.models` (timm {timm.__version__}): the "
             f"fewest parameters among the {a.candidates} names per module that look smallest "
             "(`benchmarks/timm_zoo.py`'s `candidates`), built with `pretrained=False` on the "
             f"meta device; input batch {BATCH}, 3 channels, the first of "
             f"{', '.join(map(str, SIZES))} (or the model's default size) it takes (shown in "
             "the group column with how it was measured); `full` and `last` training; error "
             "% = (predicted − measured) / measured of a real CPU step (`measure(how=\"real\")`"
             f"; fake CPU tensors above {a.real_limit:,} parameters or {REAL_SIZE}²). "
             "Regenerate: `python benchmarks/timm_zoo.py`.")
    kept = []
    if a.merge and os.path.exists(a.out):
        kept, earlier = merged_rows(a.out, {m for m, _ in todo}, every)
        intro += earlier + (" Merged: the modules matching `--only " + a.only + "` re-run "
                            "with `--merge` (the minutes below are theirs); every other row "
                            "as the previous report showed it (its errors as it rounded them).")
    run(todo, run_one, a.out, lambda rows, seconds: report(
        kept + rows, len(every), seconds, "timm models: predicted vs a CPU step", intro,
        noun="modules", column="model"), a.timeout, "timm zoo")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
