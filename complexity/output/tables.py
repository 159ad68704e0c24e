"""One way to turn rows into text, for every command: ``table`` (tabulate's
"simple"), ``markdown`` (GitHub), ``latex`` (a ``tabular``, numbers right-aligned)
and ``csv`` (the same columns, plain values).

A cell is a plain value (str, int, float, None) or a :class:`Cell` when what a
reader sees differs from the value a program should get: ``Cell(86784, "86,784")``
shows ``86,784`` in a table and writes ``86784`` to CSV.

>>> rows = [["conv", Cell(1234, "1,234"), 0.5], ["total", Cell(1234, "1,234"), None]]
>>> print(render_table(rows, ["layer", "params", "share"], "csv"), end="")
layer,params,share
conv,1234,0.5
total,1234,
>>> print(render_table(rows, ["layer", "params", "share"], "latex", numeric_columns=(1, 2)))
\\begin{tabular}{lrr}
\\hline
 layer   &   params &   share \\\\
\\hline
 conv    &    1,234 &     0.5 \\\\
 total   &    1,234 &         \\\\
\\hline
\\end{tabular}
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any, Optional, Sequence

#: Every output format a command offers (``json`` is each command's own object).
FORMATS = ("table", "markdown", "latex", "csv", "json")
#: The formats :func:`render_table` renders.
TABLE_FORMATS = ("table", "markdown", "latex", "csv")

_TABLEFMT = {"table": "simple", "markdown": "github", "latex": "latex_raw"}

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}
_LATEX_UNICODE = {"×": r"$\times$", "·": r"$\cdot$", "²": r"$^{2}$", "³": r"$^{3}$",
                  "≥": r"$\geq$", "≈": r"$\approx$", "≤": r"$\leq$", "Δ": r"$\Delta$", "ε": r"$\varepsilon$",
                  "—": "---", "–": "--", "✓": r"\checkmark", "✗": r"$\times$",
                  "→": r"$\to$", "…": r"\dots", "|": r"$|$", "<": r"$<$", ">": r"$>$"}


@dataclass(frozen=True)
class Cell:
    """A value (what CSV writes) and its text (what a table shows); ``latex``, when
    given, is raw LaTeX for the latex format (default: ``text``, escaped)."""

    value: Any
    text: str
    latex: Optional[str] = None


def number_cell(v) -> Cell:
    """A count with thousands separators in tables, plain in CSV.

    >>> number_cell(1234567)
    Cell(value=1234567, text='1,234,567', latex=None)
    """
    return Cell(v, f"{v:,}" if isinstance(v, int) else f"{v:,.1f}")


def latex_text(text: str) -> str:
    """Plain text as LaTeX: special characters escaped, ×, ·, ², ≥, Δ, — … as LaTeX.

    >>> print(latex_text("param_bytes ≥ 1×2 — 50%"))
    param\\_bytes $\\geq$ 1$\\times$2 --- 50\\%
    """
    return "".join(_LATEX_SPECIAL.get(c) or _LATEX_UNICODE.get(c) or c for c in str(text))


def latex_comment(text: str) -> str:
    """Prose as LaTeX comment lines (``% ...``), so the output stays valid LaTeX."""
    lines = "\n".join("% " + line if line.strip() else "%" for line in text.splitlines())
    return lines + "\n" if text.endswith("\n") else lines


def prose(text: str, fmt: str) -> str:
    """Text around a table: as is, or LaTeX comments in the latex format."""
    return latex_comment(text) if fmt == "latex" else text


def _csv_value(v):
    if isinstance(v, Cell):
        v = v.value
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    return v


def _text(v, fmt: str, escape: bool):
    if isinstance(v, Cell):
        if fmt == "latex":
            return v.latex if v.latex is not None else latex_text(v.text) if escape else v.text
        return v.text
    if fmt == "latex" and escape and isinstance(v, str):
        return latex_text(v)
    return v  # numbers and None: tabulate formats them (floatfmt, missingval)


def csv_text(rows: Sequence[Sequence], headers: Sequence[str]) -> str:
    """Header row, then one row per row; :class:`Cell` values, None as empty."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow([h.value if isinstance(h, Cell) else h for h in headers])
    for row in rows:
        w.writerow([_csv_value(v) for v in row])
    return out.getvalue()


def render_table(rows: Sequence[Sequence], headers: Sequence, fmt: str,
                 numeric_columns: Sequence[int] = (), *, escape: bool = True,
                 **options) -> str:
    """``rows`` under ``headers`` as ``table``, ``markdown``, ``latex`` or ``csv``.

    ``numeric_columns`` (indices) are right-aligned in LaTeX; ``options`` go to
    tabulate for the text formats (``floatfmt``, ``colalign``, ``missingval``,
    ``disable_numparse`` …; ``colalign`` is replaced in LaTeX). ``escape=False``:
    the string cells are already LaTeX. CSV writes each cell's plain value.
    """
    if fmt == "csv":
        return csv_text(rows, headers)
    if fmt not in _TABLEFMT:
        raise ValueError(f"{fmt!r} is not a table format (choose {', '.join(TABLE_FORMATS)})")
    from tabulate import tabulate

    if fmt == "latex":
        numeric = set(numeric_columns)
        options["colalign"] = tuple("right" if i in numeric else "left"
                                    for i in range(len(headers)))
        if escape and isinstance(options.get("missingval"), str):
            options["missingval"] = latex_text(options["missingval"])
    cells = [[_text(v, fmt, escape) for v in row] for row in rows]
    head = [_text(h, fmt, escape) for h in headers]
    return tabulate(cells, headers=head, tablefmt=_TABLEFMT[fmt], **options)


def shape_text(r: dict, sep: str = "×") -> str:
    """The ``size`` column of a result: ``H×W`` for an image batch, else the whole
    input shape (``--input``: ``8×512`` token ids, ``1×3×16×112×112`` a clip).

    >>> shape_text({"size": [64, 48], "input": [8, 3, 64, 48]}), shape_text({"size": [512], "input": [8, 512]})
    ('64×48', '8×512')
    """
    if len(r.get("input") or [0] * 4) != 4:
        return sep.join(map(str, r["input"]))
    return sep.join(map(str, r["size"]))
