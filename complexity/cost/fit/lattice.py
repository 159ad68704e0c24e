"""The lattice arithmetic behind :mod:`complexity.cost.fit.size_formula`: on which
lattice of input sizes a step's numbers are polynomials (:func:`scan`: the
search of :mod:`complexity.counting.lattice`, which derive shares, along ``H`` or
``W`` of a traced step; strided layers floor the sizes, so a number is polynomial
only on multiples of their stride), the Lagrange basis the polynomials are
interpolated in (:func:`line_basis`), and the pruning of a ``Max`` of polynomials
to the terms no other dominates past the domain's corner (:func:`prune`).
"""
from __future__ import annotations

import random
from fractions import Fraction
from itertools import product
from math import comb
from typing import Dict, List, Sequence, Tuple

from complexity.cost.fit.step_formula import FormulaError
from complexity.counting.lattice import LADDER, Changed, NoLattice, scan as scan_line

__all__ = ["Point", "Poly", "line_basis", "scan", "shifted", "prune"]

Point = Tuple[int, int, int]   # (B, H, W)
Poly = Tuple[Fraction, ...]    # coefficients over a list of monomials


def line_basis(xs: Sequence[int]) -> List[List[Fraction]]:
    """The Lagrange basis on ``xs``: coefficient lists (constant first)."""
    out = []
    for j, xj in enumerate(xs):
        coef = [Fraction(1)]
        for m, xm in enumerate(xs):
            if m != j:  # multiply by (x - xm) / (xj - xm)
                d = Fraction(1, xj - xm)
                coef = [(coef[i - 1] if i else 0) * d - (coef[i] if i < len(coef) else 0) * xm * d
                        for i in range(len(coef) + 1)]
        out.append(coef)
    return out


def scan(vector_at, axis: int, base: Point, max_degree: int, confirm: int, further: int):
    """(step, degree) of size symbol ``axis`` (1: H, 2: W): the first step of the
    ladder on which every number ``vector_at(point)`` gives is a polynomial along
    the axis (:func:`complexity.counting.lattice.scan`). ``vector_at`` raises
    :class:`FormulaError` where the step changes its structure, anything else
    where the model cannot take the point; :class:`FormulaError` if no step fits.

    >>> scan(lambda p: [p[1] // 4, p[2] * p[2]], 1, (1, 8, 8), 2, 2, 3)  # floors repeat
    (4, 1)
    """
    def along(offset):
        p = list(base)
        p[axis] += offset
        try:
            return vector_at(tuple(p))
        except FormulaError as e:  # off this lattice the step does other things
            raise Changed(str(e)) from None

    try:
        return scan_line(along, max_degree, confirm, further, random.Random(axis))
    except NoLattice as e:
        if e.changed:
            raise FormulaError(e.changed) from None
        raise FormulaError(f"the step is not polynomial in {'HW'[axis - 1]} (degree <= "
                           f"{max_degree}) on any lattice {'HW'[axis - 1]} = {base[axis]} + s*j, "
                           f"s in {', '.join(map(str, LADDER))}: no formula in the size") from None


def shifted(poly: Poly, monomials, corner: Point) -> Dict[tuple, Fraction]:
    """``poly`` in ``(B - B0, H - H0, W - W0)``: its coefficients there."""
    out: Dict[tuple, Fraction] = {}
    for c, (i, j, k) in zip(poly, monomials):
        if not c:
            continue
        for a, b, d in product(range(i + 1), range(j + 1), range(k + 1)):
            # binomial expansion of (x + x0)^i (y + y0)^j (z + z0)^k
            coef = (c * comb(i, a) * corner[0] ** (i - a) * comb(j, b)
                    * corner[1] ** (j - b) * comb(k, d) * corner[2] ** (k - d))
            out[(a, b, d)] = out.get((a, b, d), 0) + coef
    return out


def prune(terms: Sequence[Poly], monomials, corner: Point) -> List[Poly]:
    """The terms of a ``Max`` that no other term is at least everywhere on
    ``B ≥ B0, H ≥ H0, W ≥ W0`` (reals; ``corner = (B0, H0, W0)``): duplicates go,
    and a term goes when its difference from another, shifted to the corner, has
    no positive coefficient (a sufficient test, so a kept term may still be
    dominated; the ``Max`` is the same either way).

    >>> mons = [(0, 0, 0), (1, 0, 0)]
    >>> prune([(Fraction(5), Fraction(1)), (Fraction(3), Fraction(1)), (Fraction(0), Fraction(2))],
    ...       mons, (1, 1, 1))
    [(Fraction(5, 1), Fraction(1, 1)), (Fraction(0, 1), Fraction(2, 1))]
    """
    uniq = list(dict.fromkeys(terms))
    at_corner = [shifted(t, monomials, corner) for t in uniq]
    keys = sorted(set().union(*at_corner)) if at_corner else []
    vecs = [tuple(s.get(k, 0) for k in keys) for s in at_corner]
    # a term another dominates is no larger at the corner nor in its coefficients'
    # sum: in this order the dominating term is met first
    order = sorted(range(len(uniq)), key=lambda i: (at_corner[i].get((0, 0, 0), 0),
                                                   sum(vecs[i])), reverse=True)
    kept: List[int] = []
    for i in order:
        if not any(all(a >= b for a, b in zip(vecs[j], vecs[i])) for j in kept):
            kept.append(i)
    return [uniq[i] for i in sorted(kept)]
