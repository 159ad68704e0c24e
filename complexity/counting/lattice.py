"""The lattice search: along one size symbol, on which lattice ``base + j·step``
some numbers are polynomials, and of which degree.

Strided layers floor their sizes (⌊(H + 2p − k)/s⌋ + 1), which is no polynomial
in ``H`` on all integers but is one on ``H ≡ base (mod s)``; so the step is raised
through the :data:`LADDER` 1, 2, 4, … 64 until the finite differences of every
number vanish (:func:`degree`) and the 1-D interpolant (:func:`lagrange_1d`) also
holds at points further out (a floor of period p repeats values p times, which a
few neighbouring points cannot tell from a polynomial). :func:`scan` does it for
any function of the offset along the line; its two callers are
:func:`complexity.counting.derive.derive` (params, outputs, MACs per symbol) and
:func:`complexity.cost.fit.lattice.scan` (every number of a traced training step
along ``H`` or ``W``), each wording the failure (:class:`NoLattice`) its own way.
"""
from __future__ import annotations

import random
from fractions import Fraction
from typing import Callable, List, Sequence, Tuple, Type, Union

__all__ = ["LADDER", "Changed", "NoLattice", "degree", "lagrange_1d", "scan"]

#: the lattice steps tried for each size symbol, smallest first
LADDER = (1, 2, 4, 8, 16, 32, 64)


class Changed(ValueError):
    """Raised by a scanned function where it computes something else at a point
    (a training step with another schedule), not merely fails there: the scan
    stops trying that step and, if no step fits, reports this message."""


class NoLattice(ValueError):
    """No step of the :data:`LADDER` fits. ``changed``: the message of the last
    :class:`Changed` met ("" if none); ``only_failures``: whether every step
    ended in the function failing (it never gave a full series, nor one that
    was rejected or fitted)."""

    def __init__(self, changed: str, only_failures: bool):
        super().__init__(changed or "no lattice of the ladder fits")
        self.changed, self.only_failures = changed, only_failures


def degree(rows: Sequence[Sequence], max_degree: int, confirm: int):
    """For vectors along a line: (d, None) once every component's (d+1)-th
    differences vanish (at least ``confirm`` of them); (None, True) once no
    d ≤ max_degree can; (None, False) while undecided.

    >>> degree([[0, 1], [1, 1], [4, 1], [9, 1], [16, 1]], 3, 2)
    (2, None)
    >>> degree([[1], [2], [4], [8], [16]], 2, 2), degree([[1], [2], [4]], 2, 2)
    ((None, True), (None, False))
    """
    diffs = []
    for _ in range(max_degree + 1):
        rows = [[b - a for a, b in zip(u, v)] for u, v in zip(rows, rows[1:])]
        diffs.append(rows)
    for d, row in enumerate(diffs):
        if len(row) >= confirm and not any(any(v) for v in row):
            return d, None
    return None, all(any(any(v) for v in row) for row in diffs)


def lagrange_1d(xs, ys, x) -> Fraction:
    """The polynomial through the points ``(xs[i], ys[i])`` at ``x``, exactly.

    >>> lagrange_1d([0, 1, 2], [0, 1, 4], 3)
    Fraction(9, 1)
    """
    total = Fraction(0)
    for i, (xi, yi) in enumerate(zip(xs, ys)):
        term = Fraction(yi)
        for m, xm in enumerate(xs):
            if m != i:
                term *= Fraction(x - xm, xi - xm)
        total += term
    return total


def scan(along: Callable[[int], Sequence], max_degree: int, confirm: int, further: int,
         seed: Union[int, random.Random], outside: Type[BaseException] = Exception
         ) -> Tuple[int, int]:
    """(step, degree): the first step of the :data:`LADDER` on which every number
    ``along(offset)`` gives (the numbers at the base point moved by ``offset``
    along the symbol) is a polynomial of degree ≤ ``max_degree`` in the offset —
    its differences vanish over ``confirm`` points and ``further`` points further
    out agree. ``along`` raises ``outside`` where it cannot take a point (that
    line ends there) and :class:`Changed` where it computes something else.
    ``seed``: an int gives each further check a fresh ``random.Random(seed)``; a
    ``random.Random`` is one stream across the steps. :class:`NoLattice` if no step fits.

    >>> scan(lambda o: [(8 + o) // 4, 64], 2, 2, 3, 0)  # floors repeat
    (4, 1)
    """
    changed, only_failures = "", True
    for step in LADDER:
        rows: List[Sequence] = []
        for j in range(max_degree + confirm + 1):
            try:
                got = along(j * step)
            except Changed as e:  # off this lattice the function does other things
                changed = str(e)
                break
            except outside:
                break
            if j == max_degree + confirm:
                only_failures = False
            rows.append(got)
            d, reject = degree(rows, max_degree, confirm)
            if reject:
                only_failures = False
                break
            if d is not None:
                only_failures = False
                rng = random.Random(seed) if isinstance(seed, int) else seed
                try:
                    if _holds_further(along, step, rows, d, len(rows), further, rng, outside):
                        return step, d
                except Changed as e:
                    changed = str(e)
                break
    raise NoLattice(changed, only_failures)


def _holds_further(along, step, rows, degree, seen, extra, rng, outside) -> bool:
    """Whether the 1-D interpolant through the first points also fits ``extra``
    points further out (up to 2·64/step + 8 lattice steps)."""
    xs = list(range(degree + 1))
    for j in rng.sample(range(seen, seen + 2 * max(LADDER) // step + 8), extra):
        try:
            got = along(j * step)
        except Changed:
            raise
        except outside:  # it fails further out: no polynomial along this line
            return False
        if len(got) != len(rows[0]):
            return False
        for c in range(len(got)):
            if lagrange_1d(xs, [r[c] for r in rows[:degree + 1]], j) != got[c]:
                return False
    return True
