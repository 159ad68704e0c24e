"""Renderings of ``fit``: one row per trainable set (table, markdown, latex, csv)
or the JSON array.

>>> r = {"model": "m", "mode": "full", "device": "cpu", "batch": 4, "size": [8, 8],
...      "budget_bytes": 2**30, "peak_bytes": 3 * 2**20, "fits": True, "max_batch": 1300,
...      "parts": {"weights": 2**20, "grads": 0, "optimizer": 2**20, "activations": 2**20,
...                "transient": 0}, "dominant": "weights", "cuda": None, "unmodelled": []}
>>> table_rows([r])[0][:6]
['m', 'full', 4, '8×8', '3.00 MiB', 'yes']
"""
from __future__ import annotations

import json
from typing import List, Sequence

from complexity.cost.keys import KEYS, PARTS
from complexity.output import formulas
from complexity.output.tables import Cell, prose, render_table, shape_text
from complexity.output.units import bytes_text

#: the keys of each JSON object, in order (the contract of docs/cli.md)
JSON_KEYS = ("model", "mode", "device", "batch", "size", "input", "budget_bytes", "peak_bytes",
             "fits", "max_batch", "max_input", "input_search", "max_size", "parts", "dominant", "cuda", "peak_formula",
             "formula_bs", "size_formula", "size_domain", "unmodelled", "step", "loss")


def _bytes(n) -> Cell:
    return Cell(n, bytes_text(n))


def headers(results: Sequence[dict]) -> List[str]:
    """The columns: the cuda ones only when the results are for a CUDA device."""
    cuda = any(r["cuda"] for r in results)
    auto = any("max_size" in r for r in results)
    return (["model", "mode", "batch", "size", "peak", "fits", "max batch"]
            + (["max size"] if auto else [])
            + (["allocated", "reserved", "reserve (estimate)"] if cuda else [])
            + list(PARTS) + ["dominant"])


def table_cells(results: Sequence[dict]) -> List[list]:
    """One row per trainable set; byte counts in binary units (CSV: exact bytes)."""
    rows = []
    cuda = any(r["cuda"] for r in results)
    auto = any("max_size" in r for r in results)
    for r in results:
        approx = "≈ " if r.get("unmodelled") else ""
        mb = r["max_batch"]
        row = [r["model"], r["mode"], r["batch"], Cell(shape_text(r, "x"), shape_text(r)),
               Cell(r["peak_bytes"], approx + bytes_text(r["peak_bytes"])),
               Cell(r["fits"], "yes" if r["fits"] else "no"),
               Cell(mb, "any" if mb is None else "none" if mb == 0 else f"{mb:,}")]
        if auto:
            ms = r.get("max_size")
            row.append(Cell(ms and ms[0], "any" if ms is None else "none" if ms[0] == 0
                            else "%d×%d" % tuple(ms)))
        if cuda:
            c = r["cuda"] or {}
            row += [_bytes(c.get("allocated")), _bytes(c.get("reserved")),
                    _bytes(c.get("reserve_for_context"))]
        row += [_bytes(r["parts"][p]) for p in PARTS] + [r["dominant"]]
        rows.append(row)
    return rows


def table_rows(results: Sequence[dict]) -> list:
    """The rows as a table shows them."""
    return [[getattr(c, "text", c) for c in row] for row in table_cells(results)]


def note(results: Sequence[dict]) -> str:
    """What the verdict compares, under the table."""
    r = results[0]
    budget = f"budget {bytes_text(r['budget_bytes'])} ({r['budget_bytes']:,} bytes)"
    if r["device"] == "cuda":
        what = ("fits = the caching allocator's predicted max_memory_reserved + the reserve "
                "for the CUDA context (an estimate, --reserve) <= budget")
        how = ("found by bisection on the allocator model below the bound the peak's "
               "formula in B gives, and checked on fresh traces")
    else:
        what = "fits = the predicted peak of one step (every live tensor) <= budget"
        how = "solved from the peak's formula in B and proved by two concrete predictions"
    lines = [f"{budget}; {what}.",
             f"max batch: the largest batch that fits, {how} (it fits, one more does not); "
             "peak (predicted: every live tensor, no allocator) and its parts at the given batch."]
    if any("max_size" in x for x in results):
        lines.append("max size: the largest square input S×S at the given batch that fits, "
                     "solved from the peak's formula in B, H, W on the lattice, then over "
                     "every integer up to the lattice's next size, proved by fresh predictions "
                     "(S fits, S + 1 does not); size: the max size "
                     "(the smallest of the domain when none fits). Domain: "
                     + "; ".join(dict.fromkeys(x["size_domain"] for x in results
                                               if "size_domain" in x)) + ".")
    lines += search_notes(results) + formula_notes(results)
    if any(x.get("unmodelled") for x in results):
        lines.append("≈: some calls have no cost rule (unmodelled); the figures are approximate.")
    return "\n".join(lines)


def search_notes(results: Sequence[dict]) -> List[str]:
    """The lines that state each solved size's proof (``input_search``), and that
    warn where the sizes traced were not monotone.

    >>> search_notes([{"mode": "full", "input_search": {"axes": [1], "fits": 9,
    ...     "fits_bytes": 10, "next": 10, "next_bytes": 12, "limit": None, "traced": 5,
    ...     "monotone": True}, "budget_bytes": 11}])
    ['full: size 9 fits (10 <= 11 bytes); 10 does not (12); 5 sizes traced, the peak growing with the size.']
    """
    lines = []
    for r in results:
        s = r.get("input_search")
        if not s:
            continue
        head = f"{r['mode']}: size {s['fits']} fits ({s['fits_bytes']:,} <= " \
               f"{r['budget_bytes']:,} bytes); "
        nxt = (f"{s['next']} does not ({s['next_bytes']:,})" if s["next_bytes"] is not None
               else f"{s['next']} is not a size the model takes" if s["next"] is not None
               else f"it is the model's limit (max_position_embeddings {s['limit']})")
        mono = ("the peak growing with the size" if s["monotone"] else
                "the peak NOT monotone in the size: the largest fitting size found, no proof "
                "that none larger fits")
        lines.append(f"{head}{nxt}; {s['traced']} sizes traced, {mono}.")
    return lines


def with_readable(f: dict) -> dict:
    """``formula_bs`` with each formula also as people read it (``readable``) and in
    LaTeX (``latex``), beside sympy's strings."""
    exprs = {k: v for k, v in f.items() if k in KEYS}
    return {**f, "readable": {k: formulas.readable(_expr(v)) for k, v in exprs.items()},
            "latex": {k: formulas.latex(_expr(v)) for k, v in exprs.items()}}


def _expr(text: str):
    import sympy as sp

    B, S = sp.symbols("B S", integer=True, positive=True)
    return sp.sympify(text, locals={"B": B, "S": S})


def formula_notes(results: Sequence[dict]) -> List[str]:
    """The peak of each set as a formula in B and S (``fit --formula``), its domain,
    the attention it assumes and the points it was checked at."""
    lines = []
    for r in results:
        f = r.get("formula_bs")
        if not f:
            continue
        pts = ", ".join(f"({b}, {s})" for b, s in f["checked_at"])
        where = "".join(f", {g}" for g in f.get("guards", []))
        lines.append(f"{r['mode']}: peak bytes in B and S (B >= {f['domain']['B']}, "
                     f"S >= {f['domain']['S']}{where}) = "
                     f"{formulas.readable(_expr(f['peak_bytes']))}; "
                     f"saved activations = "
                     f"{formulas.readable(_expr(f['saved_activation_bytes']))}; "
                     f"{f['attention']}; equal to the concrete prediction at (B, S) = {pts}.")
    return lines


def render(results: Sequence[dict], fmt: str) -> str:
    """``fit``'s output in ``fmt`` (``json``: the array of :data:`JSON_KEYS` objects)."""
    if fmt == "json":
        return json.dumps([{k: (with_readable(r[k]) if k == "formula_bs" else r[k])
                            for k in JSON_KEYS if k in r} for r in results], indent=2)
    hs = headers(results)
    table = render_table(table_cells(results), hs, fmt,
                         numeric_columns=[i for i, h in enumerate(hs)
                                          if h not in ("model", "mode", "size", "fits", "max size",
                                                       "dominant")])
    if fmt == "csv":
        return table
    steps = list(dict.fromkeys(r["step"] for r in results if "step" in r))
    step = ("Training step: " + "; ".join(steps) + ".\n") if steps else ""
    return table + "\n\n" + prose(step + note(results), fmt)
