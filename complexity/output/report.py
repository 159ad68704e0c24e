"""Renderings of the `report` answer (:func:`complexity.counting.report.build`):
table, markdown, latex, csv and json.

>>> from complexity.counting.report import build
>>> r = build(["cnn"], ["lecture"], dict(NF=32, NC=24, k=3, NIC=1, H=32, W=32), verify=False)
>>> print(render(r, "csv").splitlines()[1])
cnn,lecture,32,24,3,1,32,32,weights,NC**2*k**2 + NC*NF*k**2 + 8*NF**2*k**2 + NF*NIC*k**2,86112,86112,1.0,false
"""
from __future__ import annotations

import csv
import io
import json
from typing import Dict, List

import sympy as sp

from complexity.counting import symbolic
from complexity.counting.conventions import CONVENTIONS, QUANTITIES
from complexity.counting.report import PARAM_ORDER



def pretty(expr: sp.Expr) -> str:
    """``72*NF**2 + 9*NF*NC`` → ``72·NF² + 9·NF·NC``, highest degree first."""
    poly = sp.Poly(expr, symbolic.NF, symbolic.NC)
    terms = []
    for (a, b), c in sorted(poly.terms(), key=lambda t: (-sum(t[0]), -t[0][0])):
        factors = [] if c == 1 and (a or b) else [str(c)]
        for sym, e in (("NF", a), ("NC", b)):
            if e:
                factors.append(sym + ("²" if e == 2 else "" if e == 1 else f"^{e}"))
        terms.append("·".join(factors))
    return " + ".join(terms) or "0"


def _display_formula(entry: dict, quantity: str, fmt: str) -> str:
    values = {p: entry["params"][p] for p in ("k", "NIC", "H", "W")}
    expr = symbolic.polynomial_in_widths(
        symbolic.sympify_formula(entry["quantities"][quantity]["formula"]), values)
    return f"${sp.latex(expr)}$" if fmt == "latex" else pretty(expr)


def _num(v: int, fmt: str) -> str:
    return f"{v:,}" if fmt == "table" else str(v)


def _mark(ok: bool, verify: bool, fmt: str = "table") -> str:
    if fmt == "latex":
        return r"\checkmark" if ok else (r"$\times$" if verify else "--")
    return "✓" if ok else ("✗" if verify else "–")


def _size(p: Dict[str, int], factor: int = 1, fmt: str = "table") -> str:
    times = r"$\times$" if fmt == "latex" else "×"
    return f"{p['H'] * factor}{times}{p['W'] * factor}"


def _tabulate(rows, headers, fmt: str) -> str:
    from tabulate import tabulate

    tablefmt = {"table": "simple", "markdown": "github", "latex": "latex_raw"}[fmt]
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)


def _title(params: Dict[str, int], fmt: str, extra: str = "") -> str:
    p = params
    text = (f"NF={p['NF']}, NC={p['NC']}, k={p['k']}, NIC={p['NIC']}, "
            f"{_size(p)} and {_size(p, 2)}{extra}")
    return {"markdown": f"### {text}", "latex": f"% {text}"}.get(fmt, text)


def _render_one_convention(results: List[dict], fmt: str, verify: bool) -> str:
    blocks = []
    for conv in dict.fromkeys(r["convention"] for r in results):
        group = [r for r in results if r["convention"] == conv]
        p = group[0]["params"]
        head = ["model", "quantity", f"formula at {_size(p, 1, fmt)} (k={p['k']}, NIC={p['NIC']})",
                _size(p, 1, fmt), _size(p, 2, fmt), "ratio", "verified"]
        rows = []
        for r in group:
            for q in QUANTITIES:
                d = r["quantities"][q]
                rows.append([r["model"], q, _display_formula(r, q, fmt), _num(d["value"], fmt),
                             _num(d["doubled"], fmt), f"{d['ratio']:.4g}",
                             _mark(d["verified"], verify, fmt)])
        title = _title(p, fmt, f" — convention {conv}: {CONVENTIONS[conv].summary}")
        blocks.append(title + "\n\n" + _tabulate(rows, head, fmt))
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
    return _title(p, fmt, " — all conventions") + "\n\n" + _tabulate(rows, head, fmt)


def _render_layers(results: List[dict], fmt: str) -> str:
    blocks = []
    for r in results:
        times = r"$\times$" if fmt == "latex" else "×"
        rows = [[l["name"], l["kind"], times.join(map(str, l["shape"]))]
                + [_num(l[q], fmt) for q in QUANTITIES] for l in r["layers"]]
        rows.append(["total", "", ""] + [_num(r["quantities"][q]["value"], fmt) for q in QUANTITIES])
        title = f"{r['model']} per layer, convention {r['convention']}, {_size(r['params'])}"
        title = {"markdown": f"#### {title}", "latex": f"% {title}"}.get(fmt, title)
        blocks.append(title + "\n\n" + _tabulate(rows, ["layer", "kind", "output", *QUANTITIES], fmt))
    return "\n\n".join(blocks)


def _render_csv(results: List[dict], per_layer: bool) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    if per_layer:
        w.writerow(["model", "convention", "layer", "kind", "shape", *QUANTITIES])
        for r in results:
            for l in r["layers"]:
                w.writerow([r["model"], r["convention"], l["name"], l["kind"],
                            "x".join(map(str, l["shape"]))] + [l[q] for q in QUANTITIES])
        return out.getvalue()
    w.writerow(["model", "convention", *PARAM_ORDER, "quantity", "formula", "value", "doubled",
                "ratio", "verified"])
    for r in results:
        for q in QUANTITIES:
            d = r["quantities"][q]
            w.writerow([r["model"], r["convention"], *(r["params"][p] for p in PARAM_ORDER), q,
                        d["formula"], d["value"], d["doubled"], d["ratio"],
                        str(d["verified"]).lower()])
    return out.getvalue()


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
