"""Renderings of the `report` answer (:func:`complexity.counting.report.build`):
table, markdown, latex, csv and json.

>>> from complexity.counting.report import build
>>> r = build(["cnn"], ["lecture"], dict(NF=32, NC=24, k=3, NIC=1, H=32, W=32), verify=False)
>>> print(render(r, "csv").splitlines()[1])
cnn,lecture,32,24,3,1,32,32,weights,NC**2*k**2 + NC*NF*k**2 + 8*NF**2*k**2 + NF*NIC*k**2,86112,86112,1.0,false
"""
from __future__ import annotations

import json
from typing import Dict, List

import sympy as sp

from complexity.counting import symbolic
from complexity.counting.conventions import CONVENTIONS, QUANTITIES
from complexity.counting.report import PARAM_ORDER
from complexity.output.tables import csv_text, render_table


def ordered_terms(expr: sp.Expr):
    """The terms of a polynomial in NF and NC, highest degree first (NF before NC):
    ``[(coefficient, [(symbol name, exponent), ...]), ...]``; what :func:`pretty`
    and :func:`latex_formula` print, in one order.

    >>> ordered_terms(9 * symbolic.NC**2 + 72 * symbolic.NF**2 + 4)
    [(72, [('NF', 2)]), (9, [('NC', 2)]), (4, [])]
    """
    poly = sp.Poly(expr, symbolic.NF, symbolic.NC)
    return [(c, [(sym, e) for sym, e in (("NF", a), ("NC", b)) if e])
            for (a, b), c in sorted(poly.terms(), key=lambda t: (-sum(t[0]), -t[0][0]))]


def pretty(expr: sp.Expr) -> str:
    """``72*NF**2 + 9*NF*NC`` → ``72·NF² + 9·NF·NC``, highest degree first."""
    terms = []
    for c, powers in ordered_terms(expr):
        factors = [] if c == 1 and powers else [str(c)]
        factors += [sym + ("²" if e == 2 else "" if e == 1 else f"^{e}") for sym, e in powers]
        terms.append("·".join(factors))
    return " + ".join(terms) or "0"


def latex_formula(expr: sp.Expr) -> str:
    """:func:`pretty`'s terms, in its order, as LaTeX math.

    >>> print(latex_formula(72 * symbolic.NF**2 + 9 * symbolic.NF * symbolic.NC + symbolic.NC))
    $72 \\cdot NF^{2} + 9 \\cdot NF \\cdot NC + NC$
    """
    terms = []
    for c, powers in ordered_terms(expr):
        factors = [] if c == 1 and powers else [sp.latex(c)]
        factors += [sym + ("" if e == 1 else f"^{{{e}}}") for sym, e in powers]
        terms.append(r" \cdot ".join(factors))
    return "$" + (" + ".join(terms) or "0") + "$"


def _formula_at(entry: dict, formula: str, fmt: str) -> str:
    """A general formula at the entry's k, NIC, H, W: a polynomial in NF and NC,
    highest degree first, as text or LaTeX."""
    values = {p: entry["params"][p] for p in ("k", "NIC", "H", "W")}
    expr = symbolic.polynomial_in_widths(symbolic.sympify_formula(formula), values)
    return latex_formula(expr) if fmt == "latex" else pretty(expr)


def _display_formula(entry: dict, quantity: str, fmt: str) -> str:
    return _formula_at(entry, entry["quantities"][quantity]["formula"], fmt)


def _num(v: int, fmt: str) -> str:
    return f"{v:,}" if fmt == "table" else str(v)


def _mark(ok: bool, verify: bool, fmt: str = "table") -> str:
    if fmt == "latex":
        return r"\checkmark" if ok else (r"$\times$" if verify else "--")
    return "✓" if ok else ("✗" if verify else "–")


def _size(p: Dict[str, int], factor: int = 1, fmt: str = "table") -> str:
    times = r"$\times$" if fmt == "latex" else "×"
    return f"{p['H'] * factor}{times}{p['W'] * factor}"


def _tabulate(rows, headers, fmt: str, numeric_columns=()) -> str:
    # Cells are already in the format's text (LaTeX included): no escaping.
    return render_table(rows, headers, fmt, numeric_columns, escape=False,
                        disable_numparse=True)


def _title(params: Dict[str, int], fmt: str, extra: str = "") -> str:
    p = params
    text = (f"NF={p['NF']}, NC={p['NC']}, k={p['k']}, NIC={p['NIC']}, "
            f"{_size(p)} and {_size(p, 2)}{extra}")
    return {"markdown": f"### {text}", "latex": f"% {text}"}.get(fmt, text)


def _formula_header(p: Dict[str, int], fmt: str) -> str:
    return f"formula at {_size(p, 1, fmt)} (k={p['k']}, NIC={p['NIC']})"


def _render_one_convention(results: List[dict], fmt: str, verify: bool) -> str:
    blocks = []
    for conv in dict.fromkeys(r["convention"] for r in results):
        group = [r for r in results if r["convention"] == conv]
        p = group[0]["params"]
        head = ["model", "quantity", _formula_header(p, fmt),
                _size(p, 1, fmt), _size(p, 2, fmt), "ratio", "verified"]
        rows = []
        for r in group:
            for q in QUANTITIES:
                d = r["quantities"][q]
                rows.append([r["model"], q, _display_formula(r, q, fmt), _num(d["value"], fmt),
                             _num(d["doubled"], fmt), f"{d['ratio']:.4g}",
                             _mark(d["verified"], verify, fmt)])
        title = _title(p, fmt, f" — convention {conv}: {CONVENTIONS[conv].summary}")
        blocks.append(title + "\n\n" + _tabulate(rows, head, fmt, (3, 4, 5)))
    return "\n\n".join(blocks)


def _render_side_by_side(results: List[dict], fmt: str, verify: bool) -> str:
    convs = list(dict.fromkeys(r["convention"] for r in results))
    p = results[0]["params"]
    head = ["model", "quantity"]
    for c in convs:
        head += [f"{c} {_size(p, 1, fmt)}", f"{c} {_size(p, 2, fmt)}"]
    head.append("verified")
    rows = []
    for model in dict.fromkeys(r["model"] for r in results):
        by_conv = {r["convention"]: r for r in results if r["model"] == model}
        for q in QUANTITIES:
            row, ok = [model, q], True
            for c in convs:
                d = by_conv[c]["quantities"][q]
                row += [_num(d["value"], fmt), _num(d["doubled"], fmt)]
                ok = ok and d["verified"]
            rows.append(row + [_mark(ok, verify, fmt)])
    numeric = range(2, 2 + 2 * len(convs))
    return _title(p, fmt, " — all conventions") + "\n\n" + _tabulate(rows, head, fmt, numeric)


def layer_headers(params: Dict[str, int], fmt: str = "table") -> List[str]:
    """The columns of a per-layer table (one per model, convention and quantity)."""
    return ["layer", "kind", "output", _formula_header(params, fmt), _size(params, 1, fmt),
            _size(params, 2, fmt)]


def _render_layers(results: List[dict], fmt: str) -> str:
    """Per (model, convention), one table per quantity: every layer's formula at
    the input size, its value at H×W and 2H×2W, and a total row. (One table with
    the three quantities side by side would be over 200 characters wide.)"""
    blocks = []
    times = r"$\times$" if fmt == "latex" else "×"
    for r in results:
        for q in QUANTITIES:
            rows = [[l["name"], l["kind"], times.join(map(str, l["shape"])),
                     _formula_at(r, l["formulas"][q], fmt), _num(l[q], fmt),
                     _num(l["doubled"][q], fmt)] for l in r["layers"]]
            d = r["quantities"][q]
            rows.append(["total", "", "", _display_formula(r, q, fmt), _num(d["value"], fmt),
                         _num(d["doubled"], fmt)])
            title = (f"{r['model']} per layer, convention {r['convention']}, {q}, "
                     f"{_size(r['params'])} and {_size(r['params'], 2)}")
            title = {"markdown": f"#### {title}", "latex": f"% {title}"}.get(fmt, title)
            blocks.append(title + "\n\n" + _tabulate(rows, layer_headers(r["params"], fmt),
                                                     fmt, (4, 5)))
    return "\n\n".join(blocks)


def _render_csv(results: List[dict], per_layer: bool) -> str:
    if per_layer:
        rows = []
        for r in results:
            for q in QUANTITIES:
                for l in r["layers"]:
                    rows.append([r["model"], r["convention"], q, l["name"], l["kind"],
                                 "x".join(map(str, l["shape"])), l["formulas"][q], l[q],
                                 l["doubled"][q]])
                d = r["quantities"][q]
                rows.append([r["model"], r["convention"], q, "total", "", "", d["formula"],
                             d["value"], d["doubled"]])
        return csv_text(rows, PER_LAYER_CSV_COLUMNS)
    rows = [[r["model"], r["convention"], *(r["params"][p] for p in PARAM_ORDER), q,
             d["formula"], d["value"], d["doubled"], d["ratio"], d["verified"]]
            for r in results for q, d in ((q, r["quantities"][q]) for q in QUANTITIES)]
    return csv_text(rows, CSV_COLUMNS)


#: The CSV columns: the table's (formula: the general one, as in JSON) with the
#: model, convention and parameters each row belongs to.
CSV_COLUMNS = ("model", "convention", *PARAM_ORDER, "quantity", "formula", "value", "doubled",
               "ratio", "verified")
#: The CSV columns with ``--per-layer``: a per-layer table's, with its model,
#: convention and quantity; a ``total`` row ends each (model, convention, quantity).
PER_LAYER_CSV_COLUMNS = ("model", "convention", "quantity", "layer", "kind", "shape", "formula",
                         "value", "doubled")


def render(results: List[dict], fmt: str = "table", verify: bool = True) -> str:
    """Render :func:`build`'s results as table, markdown, latex, csv or json."""
    if fmt == "json":
        return json.dumps(results, indent=2)
    per_layer = "layers" in results[0]
    if fmt == "csv":
        return _render_csv(results, per_layer)
    side_by_side = len({r["convention"] for r in results}) > 1
    text = (_render_side_by_side if side_by_side else _render_one_convention)(results, fmt, verify)
    if per_layer:
        text += "\n\n" + _render_layers(results, fmt)
    if fmt != "latex":
        text += "\n\n" + ("verified: ✓ = hooks on a real network (meta device) gave the same "
                          "numbers, per layer, at both sizes" if verify
                          else "not verified (--no-verify): formulas only")
    return text + "\n"
