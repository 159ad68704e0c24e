"""Renderings of ``profile`` and ``derive`` results (table, markdown, latex, csv, json).

>>> shape_text([1, 3, 8, 8])
'1×3×8×8'
"""
from __future__ import annotations

import json

PROFILE_JSON_KEYS = ("model", "input", "convention", "device", "params", "trainable_params",
                     "outputs", "macs", "ops", "uncovered_kinds")
LAYER_JSON_KEYS = ("name", "kind", "depth", "shape", "params", "trainable_params", "outputs",
                   "macs", "calls")


def shape_text(shape) -> str:
    """A module's output shape(s): ``1×64×56×56``; dicts and lists joined, ``--`` if none."""
    if isinstance(shape, dict):
        return "; ".join(f"{k}: {shape_text(v)}" for k, v in shape.items())
    if isinstance(shape, list) and shape and isinstance(shape[0], (list, dict)):
        return ", ".join(shape_text(s) for s in shape)
    if isinstance(shape, list):
        return "×".join(map(str, shape))
    return "--"


def profile_heading(result: dict) -> str:
    """What the numbers are: model, input, convention, device (and a note on leaf
    classes the convention leaves at 0)."""
    convention = result["convention"]
    head = (f"{result['model']}, input {'×'.join(map(str, result['input']))}, convention "
            f"{convention}, {result['device']} device — exact counts for this input (batch "
            f"included); a row counts its whole subtree; MACs = FlopCounterMode FLOPs / 2\n")
    if result["uncovered_kinds"]:
        head += (f"note: convention {convention} defines weights and outputs for "
                 f"Conv2d, MaxPool2d, Upsample, BatchNorm2d and ReLU only; "
                 f"{', '.join(result['uncovered_kinds'])} count 0 weights and 0 outputs here "
                 f"(use --convention torch to count them)\n")
    return head


#: The columns of a profile table (and of its CSV).
PROFILE_HEADERS = ("layer", "kind", "output shape", "params", "frozen", "outputs", "MACs")
_PROFILE_COLALIGN = ("left", "left", "left", "right", "right", "right", "right")
#: The default depth of ``profile`` shows at most this many layer rows.
SCREEN_ROWS = 40


class Screenful:
    """The default ``--depth`` of ``profile``: the deepest depth whose rows fit a
    screen (see :func:`screen_depth`)."""

    def __repr__(self) -> str:
        return "a screenful"


#: ``render_profile(result, SCREENFUL)``: rows nested at most :func:`screen_depth` deep.
SCREENFUL = Screenful()


def screen_depth(layers, max_rows: int = SCREEN_ROWS):
    """The deepest depth (at least 1) whose rows number at most ``max_rows``; None
    when every row fits.

    >>> rows = [{"depth": 1}] * 5 + [{"depth": 2}] * 30 + [{"depth": 3}] * 100
    >>> screen_depth(rows), screen_depth(rows[:35]), screen_depth(rows, 4)
    (2, None, 1)
    """
    if len(layers) <= max_rows:
        return None
    fits = [d for d in sorted({r["depth"] for r in layers})
            if d >= 1 and sum(1 for r in layers if r["depth"] <= d) <= max_rows]
    return max(fits, default=1)


def profile_rows(result: dict, depth=None) -> list:
    """Rows nested at most ``depth`` deep (None: all), indented by depth, and a total
    row: :class:`~complexity.output.tables.Cell` s of :data:`PROFILE_HEADERS`."""
    from complexity.output.tables import Cell, latex_text, number_cell

    shown = [r for r in result["layers"] if depth is None or r["depth"] <= depth]
    # A visible indent: tabulate strips leading spaces (0.9 has no switch for it).
    rows = [[Cell(r["name"], "· " * (r["depth"] - 1) + r["name"],
                  "\\quad " * (r["depth"] - 1) + latex_text(r["name"])), r["kind"],
             Cell(shape_text(r["shape"]).replace("×", "x"), shape_text(r["shape"])),
             number_cell(r["params"]), number_cell(r["params"] - r["trainable_params"]),
             number_cell(r["outputs"]), number_cell(r["macs"])] for r in shown]
    rows.append(["total", "", "", number_cell(result["params"]),
                 number_cell(result["params"] - result["trainable_params"]),
                 number_cell(result["outputs"]), number_cell(result["macs"])])
    return rows


def profile_table(result: dict, depth=None, tablefmt: str = "simple") -> str:
    """Rows nested at most ``depth`` deep (None: all), indented by depth, and a total
    row; ``tablefmt`` is tabulate's (``github`` for markdown)."""
    from tabulate import tabulate

    rows = [[getattr(c, "text", c) for c in row] for row in profile_rows(result, depth)]
    return tabulate(rows, headers=PROFILE_HEADERS, tablefmt=tablefmt, disable_numparse=True,
                    colalign=_PROFILE_COLALIGN)


def hidden_note(result: dict, depth) -> str:
    """One line on the rows a depth leaves out and how to see them ('' if none)."""
    hidden = 0 if depth is None else sum(1 for r in result["layers"] if r["depth"] > depth)
    if not hidden:
        return ""
    return (f"{hidden} more rows nested deeper than {depth} not shown (a screenful by "
            f"default): --depth N shows N levels, --depth all every row")


def render_profile(result: dict, depth=None, fmt: str = "table") -> str:
    """A profile (the JSON object of ``profile --format json``, all layers), rows
    nested at most ``depth`` deep (None: all; :data:`SCREENFUL`: as many levels as
    fit :data:`SCREEN_ROWS` rows, and a line on the rows left out), as ``table``,
    ``markdown``, ``latex``, ``csv`` or ``json``."""
    from complexity.output.tables import prose, render_table

    note = ""
    if isinstance(depth, Screenful):
        depth = screen_depth(result["layers"])
        note = hidden_note(result, depth)
    if fmt == "json":
        out = {k: result[k] for k in PROFILE_JSON_KEYS}
        out["layers"] = [{k: r[k] for k in LAYER_JSON_KEYS} for r in result["layers"]
                         if depth is None or r["depth"] <= depth]
        return json.dumps(out, indent=2)
    table = render_table(profile_rows(result, depth), PROFILE_HEADERS, fmt, (3, 4, 5, 6),
                         disable_numparse=True, colalign=_PROFILE_COLALIGN)
    if fmt == "csv":
        return table
    text = prose(profile_heading(result), fmt) + "\n" + table
    return text + ("\n\n" + prose(note, fmt) if note else "")


#: The columns of ``derive``'s table: one row per quantity.
DERIVE_HEADERS = ("quantity", "formula")


def _expr(formula: str, symbols):
    """A JSON formula string as a sympy expression in positive-integer symbols."""
    import sympy as sp

    return sp.sympify(formula, locals={n: sp.Symbol(n, integer=True, positive=True)
                                       for n in symbols})


def _latex_formula(formula: str, symbols) -> str:
    """A derived formula as LaTeX math, factored, floors as ``\\left\\lfloor``; each
    symbol upright as written (``width_per_group`` stays one name, not a subscript)."""
    from complexity.output.formulas import latex
    from complexity.output.tables import latex_text

    expr = _expr(formula, symbols)
    return "$" + latex(expr, symbol_names={
        s: r"\mathit{" + latex_text(s.name) + "}" for s in expr.free_symbols}) + "$"


def readable_formulas(result: dict) -> dict:
    """Per quantity the formula as people read it (:func:`complexity.output.formulas.readable`:
    factored, ``⌊H/32⌋``, ``⌈H/32⌉``)."""
    from complexity.output.formulas import readable

    return {q: readable(_expr(f, result["symbols"])) for q, f in result["formulas"].items()}


def derive_rows(result: dict, fmt: str = "table") -> list:
    """``[quantity, formula]`` per quantity: the JSON's string in CSV, the readable
    form in tables, LaTeX math in the latex format."""
    from complexity.output.tables import Cell

    texts = readable_formulas(result)
    return [[q, Cell(f, texts[q], _latex_formula(f, result["symbols"]) if fmt == "latex"
                     else None)] for q, f in result["formulas"].items()]


def render_derive(result: dict, fmt: str = "table") -> str:
    """A derivation (the JSON object of ``derive --format json``) as ``table`` text
    (``quantity = formula`` lines), ``markdown``, ``latex``, ``csv`` (one row per
    quantity) or ``json``."""
    if fmt == "json":  # beside sympy's strings (the contract), the readable forms
        return json.dumps({**result, "readable": result.get("readable")
                           or readable_formulas(result)}, indent=2)
    from complexity.output.tables import prose, render_table

    lines = [f"{result['model']}, input {'×'.join(map(str, result['input']))}, convention "
             f"{result['convention']}; symbols: "
             f"{', '.join(f'{n} = {b}' for n, b in result['symbols'].items())}",
             f"domain: {result['domain_text']}"]
    if result["narrowed"]:
        lines.append(f"  (narrowed: the counts are not polynomial in {', '.join(result['narrowed'])} "
                     "on every integer — floor effects of strided layers or of the model's own "
                     "rules — but are on this lattice)")
    if result.get("method") == "symbolic":
        lines.append("  (from one forward on symbolically sized fake tensors; floors of "
                     "strided layers kept; the domain is the trace's guards)")
    verified = (f"verified: exact at {result['verified_points']} random points of the domain, "
                "none used to build the formulas")
    if fmt == "table":
        width = max(len(q) for q in result["formulas"])
        lines += [f"{q:<{width}} = {f}" for q, f in readable_formulas(result).items()]
        return "\n".join(lines + [verified])
    table = render_table(derive_rows(result, fmt), DERIVE_HEADERS, fmt)
    if fmt == "csv":
        return table
    return "\n\n".join([prose("\n".join(lines), fmt), table, prose(verified, fmt)])
