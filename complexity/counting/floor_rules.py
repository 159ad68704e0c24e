"""Two integer identities that keep a symbolic trace's sizes short.

A forward that pads to a multiple (Swin's windows: ``pad = (7 - W % 7) % 7``,
then ``W + pad``; its patch merging: ``W + W % 2``) or that slices with a step
after a strided layer builds sizes PyTorch's ``ShapeEnv`` does not simplify:
``W + Mod(7 - Mod(W, 7), 7)``, ``FloorDiv(FloorDiv(W, 4) + 1, 2)``. Every later
size is built on them, and each view's shape check then reasons about nested
``Mod``s and ``FloorDiv``s: on ``swin_t`` the trace passed two minutes. With the
two rules below, every size of that trace is ``FloorDiv(H + c, d)``, one level
deep, and the trace takes seconds:

* **ceiling by padding** — ``x + Mod(e, c)`` where ``e + x`` is a constant ``k``
  modulo ``c`` is ``k + c·⌊(x − k + c − 1)/c⌋`` (with ``y = x − k``:
  ``y + (−y mod c) = c·⌈y/c⌉``); so ``W + (7 − W mod 7) mod 7 = 7·⌈W/7⌉`` and
  ``W + W mod 2 = 2·⌈W/2⌉``.
* **nested floors** — ``⌊(⌊a/m⌋ + k)/n⌋ = ⌊(a + k·m)/(m·n)⌋`` for integers
  ``a``, ``k`` and positive ``m``, ``n`` (``⌊a/m⌋ + k = ⌊(a + k·m)/m⌋``, and
  ``⌊⌊y⌋/n⌋ = ⌊y/n⌋``); PyTorch's ``FloorDiv`` knows only ``k = 0``.

Both are exact for every integer, so a size they rewrite is the same number at
every point; the formulas are still verified against concrete counts after the
trace. :func:`short_sizes` applies them for the duration of a ``with`` block.

>>> import sympy as sp
>>> from torch.utils._sympy.functions import FloorDiv, Mod
>>> W = sp.Symbol("W", integer=True, positive=True)
>>> padded(W, Mod(7 - Mod(W, 7), 7))
7*(((W + 6)//7))
>>> with short_sizes():
...     FloorDiv(FloorDiv(W, 4) + 1, 2)
((W + 4)//8)
"""
from __future__ import annotations

import contextlib
from typing import Optional

import sympy as sp
from torch.utils._sympy.functions import FloorDiv, Mod, PythonMod

__all__ = ["short_sizes", "padded", "residue"]

_MODS = (Mod, PythonMod)


def _divisor(e) -> Optional[int]:
    """``c`` when ``e`` is ``Mod(·, c)`` (either flavour) with an integer ``c`` > 1."""
    if isinstance(e, _MODS) and e.args[1].is_Integer and int(e.args[1]) > 1:
        return int(e.args[1])
    return None


def residue(expr, c: int) -> Optional[int]:
    """``expr mod c`` when it is the same integer for every value of the symbols
    (a ``Mod(y, m)`` with ``c | m`` counts as ``y``; integer multiples of ``c``
    vanish), else None.

    >>> x = sp.Symbol("x", integer=True)
    >>> residue(7 - Mod(x, 7) + x, 7), residue(2 * x + 3, 2), residue(x + 1, 3)
    (0, 1, None)
    """
    def strip(e):
        d = _divisor(e)
        if d is not None and d % c == 0:
            return strip(e.args[0])
        if isinstance(e, (sp.Add, sp.Mul)):
            return e.func(*[strip(a) for a in e.args])
        return e

    const = 0
    for term in sp.Add.make_args(sp.expand(strip(expr))):
        coeff, rest = term.as_coeff_Mul()
        if not coeff.is_Integer:
            return None
        if rest == 1:
            const += int(coeff)
        elif int(coeff) % c:
            return None
    return const % c


def padded(rest, mod):
    """``rest + mod`` (``mod`` a ``Mod(e, c)``) as ``k + c·FloorDiv(rest − k + c − 1, c)``
    when ``e + rest ≡ k (mod c)`` for a constant ``k``; None otherwise."""
    c = _divisor(mod)
    if c is None:
        return None
    k = residue(mod.args[0] + rest, c)
    if k is None:
        return None
    return k + c * FloorDiv(rest - k + c - 1, c)


def _shorter_sum(out):
    """The ceiling-by-padding rule on a sum ``ShapeEnv`` just built (or None)."""
    if not isinstance(out, sp.Add):
        return None
    for term in out.args:
        if _divisor(term) is not None:
            short = padded(out - term, term)
            if short is not None:
                return short
    return None


def _nested_floor(base, divisor):
    """The nested-floor rule (or None): one ``FloorDiv(a, m)`` plus integer terms,
    divided by a positive integer."""
    if not (divisor.is_Integer and int(divisor) > 0 and isinstance(base, sp.Add)):
        return None
    floors = [t for t in base.args
              if isinstance(t, FloorDiv) and t.args[1].is_Integer and int(t.args[1]) > 0]
    if len(floors) != 1:
        return None
    inner = floors[0]
    rest = base - inner
    if not rest.is_integer:
        return None
    a, m = inner.args
    return FloorDiv(a + rest * m, m * divisor)


@contextlib.contextmanager
def short_sizes():
    """Within the block, sums of SymInts and ``FloorDiv`` use the two rules
    above (``torch.fx.experimental.sym_node._optimized_add`` and
    ``FloorDiv.eval`` wrapped; both restored after). sympy caches what it built
    meanwhile, which is harmless: the rules are identities."""
    from torch.fx.experimental import sym_node

    add, floor_eval = sym_node._optimized_add, FloorDiv.__dict__["eval"]
    inner_eval = floor_eval.__func__

    def optimized_add(lhs, rhs, lhs_opt=False, rhs_opt=False):
        flag, out = add(lhs, rhs, lhs_opt, rhs_opt)
        short = _shorter_sum(out)
        return (False, short) if short is not None else (flag, out)

    def eval_(cls, base, divisor):
        short = _nested_floor(base, divisor)
        return short if short is not None else inner_eval(cls, base, divisor)

    sym_node._optimized_add = optimized_add
    FloorDiv.eval = classmethod(eval_)
    try:
        yield
    finally:
        sym_node._optimized_add = add
        FloorDiv.eval = floor_eval
