"""What the corpus benchmarks share (``text_zoo.py``, ``timm_zoo.py``): one model
predicted against a real CPU step in ``full`` and ``last`` training
(:func:`compare`), the loop over models with a per-model time limit and a
progress bar that rewrites the report after every model (:func:`run`), and the
report: a summary computed from the rows (built, trained, exact; the unmodelled
calls ranked by how many models hit them; what did not build or train, with why)
and one row per (model, mode) with the error of each quantity (:func:`report`).
"""
from __future__ import annotations

import gc
import signal
import time
import warnings
from collections import Counter

from complexity.atomic import write_text
from complexity.errors import reason

#: Quantities compared (measure.KEYS), short column names.
QUANTITIES = [("param_bytes", "param"), ("grad_bytes", "grad"), ("optimizer_bytes", "adam"),
              ("saved_activation_bytes", "saved"), ("forward_flops", "fwd"),
              ("backward_flops", "bwd"), ("peak_bytes", "peak")]


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout("over the time limit")


def error(pred, meas):
    """Relative error % of a prediction (0 when both are 0; None when measured is 0)."""
    if meas == 0:
        return 0.0 if pred == 0 else None
    return 100.0 * (pred - meas) / meas


def compare(model, shape, name, group, how="real", **kw):
    """Rows for one built model: one per mode (``full``, ``last``), each with the
    error of every quantity and the unmodelled calls, or why the step failed.
    ``kw``: the input's ``input_dtype``/``input_high``."""
    from complexity.cost.measure.cpu_step import measure
    from complexity.cost.predict.prediction import predict_with_unmodelled
    from complexity.cost.step.trainable import set_trainable

    rows = []
    for mode in ("full", "last"):
        row = dict(name=name, group=group, built=True, mode=mode)
        try:
            set_trainable(model, mode)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                predicted, unmodelled = predict_with_unmodelled(model, shape, **kw)
                measured = measure(model, shape, how=how, **kw)
            row.update(ran=True, unmodelled=sorted(set(unmodelled)),
                       errors={k: error(predicted[k], measured[k]) for k, _ in QUANTITIES},
                       predicted=predicted, measured=measured)
        except Timeout:
            raise
        except Exception as e:
            row.update(ran=False, why=reason(e)[:300])
        rows.append(row)
    return rows


def run(todo, run_one, out, render, timeout, desc):
    """``run_one(group, name)`` for each ``(group, name)`` of ``todo`` under a
    ``timeout`` (seconds, SIGALRM), the report ``render(rows, seconds)`` rewritten
    to ``out`` after each; the rows."""
    from tqdm import tqdm

    rows, start = [], time.time()
    signal.signal(signal.SIGALRM, _alarm)
    for group, name in tqdm(todo, desc=desc, unit="model"):
        signal.alarm(timeout)
        try:
            got = run_one(group, name)
        except Timeout:
            got = [dict(name=name, group=group, built=True, mode="full", ran=False,
                        why=f"over the {timeout} s limit")]
        except Exception as e:
            got = [dict(name=name, group=group, built=False, why=reason(e)[:300])]
        finally:
            signal.alarm(0)
        rows += got
        gc.collect()
        write_text(out, render(rows, time.time() - start))
    return rows


def _cell(e):
    if e is None:
        return "n/a"
    return "0" if e == 0 else f"{e:+.1f}"


def _exact(r) -> bool:
    return not r["unmodelled"] and all(e == 0 for e in r["errors"].values() if e is not None)


def summary(rows, total, seconds, noun):
    """The summary's lines: counts, then the unmodelled calls by how many models hit them."""
    built = {r["name"] for r in rows if r["built"]}
    ran = [r for r in rows if r.get("ran")]
    ran_names = {r["name"] for r in ran}
    exact = [r for r in ran if _exact(r)]
    exact_models = {r["name"] for r in exact
                    if all(_exact(x) for x in ran if x["name"] == r["name"])}
    hits = Counter()
    for name in ran_names:
        for call in {c for r in ran if r["name"] == name for c in r["unmodelled"]}:
            hits[call] += 1
    off = Counter(k for r in ran for k, e in r["errors"].items() if e is not None and e != 0)
    lines = ["## Summary", "",
             f"- {noun} tried: {len({r['name'] for r in rows})} of {total} "
             f"({seconds / 60:.0f} min)",
             f"- built: {len(built)}; ran a training step: {len(ran_names)}",
             f"- exact on every quantity, both modes, nothing unmodelled: {len(exact_models)}",
             f"- ({noun[:-1] if noun.endswith('s') else noun}, mode) rows exact on every "
             f"quantity: {len(exact)} of {len(ran)}",
             f"- rows with no unmodelled call: {sum(1 for r in ran if not r['unmodelled'])} "
             f"of {len(ran)}",
             "- rows off per quantity: " + ", ".join(f"{s} {off[k]}" for k, s in QUANTITIES),
             "", f"### Unmodelled calls, by how many {noun} hit them", "",
             "| call | " + noun + " |", "|---|---|"]
    lines += [f"| `{c}` | {n} |" for c, n in hits.most_common()]
    return lines


#: Suffix of a call whose answer read the weights' values (a router's choice):
#: not unmodelled, but the prediction is exact for those weights only
#: (:data:`complexity.cost.predict.prediction.READS_WEIGHTS`).
READS = " (reads the weights' values)"

#: Issue 19's tolerances (|error| %) per quantity: bytes of the state and FLOPs
#: exact, saved activations within 0.5 %, the peak within 1 %.
TOLERANCE = {"saved_activation_bytes": 0.5, "peak_bytes": 1.0}


def _on_target(r) -> bool:
    return not [c for c in r["unmodelled"] if not c.endswith(READS)] and all(
        e is None or abs(e) <= TOLERANCE.get(k, 0) for k, e in r["errors"].items())


def targets(rows, noun="architectures"):
    """Lines: per group (task), how many were tried, built, ran, are exact, and are
    within the tolerances with no unmodelled call (a read of the weights' values
    allowed: :data:`READS`); and how many rows read the weights' values."""
    ran = [r for r in rows if r.get("ran")]
    lines = ["", "### By task", "",
             f"Within tolerance: parameter, gradient, optimizer bytes and FLOPs exact, saved "
             f"activations within {TOLERANCE['saved_activation_bytes']} %, peak within "
             f"{TOLERANCE['peak_bytes']} %, no unmodelled call (a router reading the weights' "
             "values allowed: the step's path, exact for the weights the step holds).", "",
             f"| task | tried | built | ran | exact (both modes) | within tolerance "
             "(both modes) | reads the weights |", "|---|---|---|---|---|---|---|"]
    for group in sorted({r["group"] for r in rows}):
        mine = [r for r in rows if r["group"] == group]
        names = {r["name"] for r in mine}
        runs = {n: [r for r in ran if r["name"] == n] for n in names}
        runs = {n: rs for n, rs in runs.items() if rs}
        lines.append(
            f"| {group} | {len(names)} | {len({r['name'] for r in mine if r['built']})} | "
            f"{len(runs)} | {sum(all(_exact(r) for r in rs) for rs in runs.values())} | "
            f"{sum(all(_on_target(r) for r in rs) for rs in runs.values())} | "
            f"{sum(any(c.endswith(READS) for r in rs for c in r['unmodelled']) for rs in runs.values())} |")
    return lines


def report(rows, total, seconds, title, intro, noun="architectures", column="architecture"):
    """The whole report: title, intro, summary, what failed, the rows (worst first)."""
    lines = [f"# {title}", "", intro, ""] + summary(rows, total, seconds, noun)
    lines += targets(rows, noun)
    by_group = sorted(rows, key=lambda r: r["group"])  # stable: run order within a group
    lines += ["", "### Did not build", "", f"| {column} | group | why |", "|---|---|---|"]
    lines += [f"| {r['name']} | {r['group']} | {r['why'][:200].replace('|', '/')} |"
              for r in by_group if not r["built"]]
    lines += ["", "### Built but could not train", "", f"| {column} | group | mode | why |",
              "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['group']} | {r['mode']} | {r['why'][:200].replace('|', '/')} |"
              for r in by_group if r["built"] and not r.get("ran")]
    lines += ["", "## Rows", "",
              f"| {column} | group | mode | " + " | ".join(s for _, s in QUANTITIES)
              + " | unmodelled |", "|---|---|---|" + "---|" * len(QUANTITIES) + "---|"]

    def badness(r):
        return max((abs(e) for e in r["errors"].values() if e is not None), default=0)
    ran = [r for r in rows if r.get("ran")]
    for r in sorted(ran, key=lambda r: (-badness(r), r["name"], r["mode"])):
        lines.append(f"| {r['name']} | {r['group']} | {r['mode']} | "
                     + " | ".join(_cell(r["errors"][k]) for k, _ in QUANTITIES)
                     + f" | {', '.join(r['unmodelled'])} |")
    return "\n".join(lines) + "\n"


def _number(cell):
    """An error cell back to a number: ``0`` exact, ``n/a`` None; a cell shown as
    ``+0.0`` stays nonzero (a tiny error, not an exact one)."""
    if cell == "n/a":
        return None
    if cell == "0":
        return 0.0
    value = float(cell)
    return value if value else (1e-9 if cell.startswith("+") else -1e-9)


def _table(lines, heading):
    """The cells of each row of the table under ``heading`` (header rows skipped)."""
    try:
        i = lines.index(heading)
    except ValueError:
        return []
    rows, body = [], False
    for line in lines[i + 1:]:
        if line.startswith("#"):
            break
        if line.startswith("|---"):
            body = True
        elif body and line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def rows_from_report(text):
    """The rows a :func:`report` shows, read back from its markdown (errors as
    rounded there): what an ``--only`` re-run merges its own rows into."""
    lines = text.splitlines()
    rows = [dict(name=c[0], group="", built=False, why=c[1])
            for c in _table(lines, "### Did not build")]
    rows += [dict(name=c[0], group="", built=True, mode=c[1], ran=False, why=c[2])
             for c in _table(lines, "### Built but could not train")]
    for c in _table(lines, "## Rows"):
        errors = {k: _number(cell) for (k, _), cell in zip(QUANTITIES, c[3:])}
        calls = [u.strip() for u in c[3 + len(QUANTITIES)].split(",") if u.strip()]
        rows.append(dict(name=c[0], group=c[1], built=True, mode=c[2], ran=True,
                         unmodelled=calls, errors=errors))
    return rows
