"""Formulas as people read them: common factors pulled out, floors as ``⌊H/32⌋``
and ceilings as ``⌈H/32⌉``, products with ``·`` and small powers as superscripts.

Every rendering here is the same number as the sympy expression it came from at
every point: :func:`readable` is undone exactly by :func:`parse_readable`, and
:func:`latex` is sympy's LaTeX of the same factored expression (``\\left\\lfloor
... \\right\\rfloor``). The JSON ``formulas`` keep sympy's own string (which
``sympy.sympify`` parses); ``readable`` sits beside them.

>>> H, W = sp.symbols("H W", integer=True, positive=True)
>>> e = 8388608 * sp.ceiling(H / 32) * sp.ceiling(W / 32) + 9408 * sp.floor(H / 28 + sp.Rational(6, 7))
>>> readable(e)
'64·(131072·⌈H/32⌉·⌈W/32⌉ + 147·⌊(H + 24)/28⌋)'
>>> sp.expand(parse_readable(readable(e), ["H", "W"])) == sp.expand(e)
True
>>> latex(sp.floor(H / 32) ** 2)
'\\\\left\\\\lfloor{\\\\frac{H}{32}}\\\\right\\\\rfloor^{2}'
"""
from __future__ import annotations

import re
from typing import Iterable

import sympy as sp
from sympy.printing.str import StrPrinter

__all__ = ["factored", "readable", "parse_readable", "latex"]

_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
_FROM_SUPERSCRIPTS = {v: k for k, v in zip("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")}


def factored(expr) -> sp.Expr:
    """``expr`` with the common numeric and symbolic factors of its terms pulled out
    (``sympy.factor_terms``): equal to it, term by term.

    >>> x = sp.Symbol("x")
    >>> factored(6 * x + 4 * x ** 2)
    2*x*(2*x + 3)
    """
    return sp.factor_terms(sp.sympify(expr))


class _Readable(StrPrinter):
    """sympy's str printer with ``⌊·⌋`` and ``⌈·⌉``; the argument over a common
    denominator (``floor(H/28 + 6/7)`` reads ``⌊(H + 24)/28⌋``)."""

    def _bracket(self, arg, left: str, right: str) -> str:
        num, den = sp.fraction(sp.factor_terms(sp.together(arg)))
        top = self._print(num)
        if den == 1:
            return f"{left}{top}{right}"
        if isinstance(num, sp.Add):
            top = f"({top})"
        bottom = self._print(den)
        if not den.is_Atom:
            bottom = f"({bottom})"
        return f"{left}{top}/{bottom}{right}"

    def _print_floor(self, e):
        return self._bracket(e.args[0], "⌊", "⌋")

    def _print_ceiling(self, e):
        return self._bracket(e.args[0], "⌈", "⌉")


def readable(expr) -> str:
    """The factored ``expr`` as text: ``⌊…⌋``, ``⌈…⌉``, ``·`` for products and
    superscript powers; :func:`parse_readable` reads it back.

    >>> x = sp.Symbol("x", integer=True)
    >>> readable(3 * sp.ceiling(x / 2) ** 2 + 3)
    '3·(⌈x/2⌉² + 1)'
    """
    text = _Readable().doprint(factored(expr))
    text = re.sub(r"\*\*(\d+)", lambda m: m.group(1).translate(_SUPERSCRIPTS), text)
    return text.replace("*", "·")


def parse_readable(text: str, names: Iterable[str]) -> sp.Expr:
    """A :func:`readable` formula back as a sympy expression in positive-integer
    symbols ``names`` (``ValueError`` for text it did not write).

    >>> parse_readable("2·⌊(H + 1)/2⌋²", ["H"])
    2*floor(H/2 + 1/2)**2
    """
    text = re.sub(r"[⁰¹²³⁴⁵⁶⁷⁸⁹]+",
                  lambda m: "**" + "".join(_FROM_SUPERSCRIPTS[c] for c in m.group(0)), text)
    text = (text.replace("·", "*").replace("⌊", "floor(").replace("⌋", ")")
            .replace("⌈", "ceiling(").replace("⌉", ")"))
    local = {n: sp.Symbol(n, integer=True, positive=True) for n in names}
    try:
        return sp.sympify(text, locals=local)
    except (sp.SympifyError, SyntaxError, TypeError) as e:
        raise ValueError(f"not a readable formula: {text!r} ({e})") from None


def latex(expr, symbol_names=None) -> str:
    """The factored ``expr`` in LaTeX (floors and ceilings as
    ``\\left\\lfloor … \\right\\rfloor``, ``\\left\\lceil … \\right\\rceil``)."""
    return sp.latex(factored(expr), symbol_names=symbol_names or {})
