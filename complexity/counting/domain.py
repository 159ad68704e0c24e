"""Where a formula holds: the *domain* of its size symbols.

A :class:`Lattice` is the set of one symbol's admissible values: every integer
≥ ``min`` congruent to ``residue`` modulo ``step`` (strided layers floor their
sizes, so a count is a polynomial only on such a residue class). A *domain* maps
each symbol name to its lattice. Results and JSON keep the plain
``{"min", "step", "residue"}`` dicts (:meth:`Lattice.to_dict`); the functions here
take either form.

One renderer, :func:`text`, with two joiners between symbols, both printed today
and pinned by the golden files:

* ``"; "`` — :func:`complexity.counting.derive.domain_text` (``derive`` and its
  JSON's ``domain_text``): the leftover guards of a symbolic trace (sympy
  relations such as ``floor(H/8) != 3``) follow the symbols, and a "; " keeps them
  apart from a symbol's own ``H >= 8, H ≡ 0 (mod 4)``;
* ``", "`` — :meth:`complexity.cost.fit.size_formula.SizeFormula.domain_text`
  (``fit``'s ``size_domain``): ``B``, ``H``, ``W`` and never a guard.
"""
from __future__ import annotations

from math import gcd
from typing import Iterable, Mapping, NamedTuple, Optional, Sequence, Union

__all__ = ["Lattice", "lattice", "contains", "text"]


class Lattice(NamedTuple):
    """Every integer ≥ ``min`` congruent to ``residue`` modulo ``step``
    (``0 <= residue < step``)."""

    min: int
    step: int
    residue: int

    @classmethod
    def through(cls, value: int, step: int) -> "Lattice":
        """The lattice of ``step`` through ``value``, from ``value`` up.

        >>> Lattice.through(9, 4)
        Lattice(min=9, step=4, residue=1)
        """
        return cls(value, step, value % step)

    @classmethod
    def from_dict(cls, d: Union[Mapping[str, int], "Lattice"]) -> "Lattice":
        """From ``{"min", "step", "residue"}`` (a :class:`Lattice` is returned as is).

        >>> Lattice.from_dict({"min": 8, "step": 4, "residue": 0})
        Lattice(min=8, step=4, residue=0)
        """
        if isinstance(d, Lattice):
            return d
        return cls(d["min"], d["step"], d["residue"])

    def to_dict(self) -> dict:
        """``{"min", "step", "residue"}``, in that order (as JSON prints it).

        >>> Lattice(8, 4, 0).to_dict()
        {'min': 8, 'step': 4, 'residue': 0}
        """
        return {"min": self.min, "step": self.step, "residue": self.residue}

    def contains(self, v: int) -> bool:
        """Whether ``v`` is a member.

        >>> [v for v in range(12) if Lattice(5, 4, 1).contains(v)]
        [5, 9]
        """
        return v >= self.min and (v - self.residue) % self.step == 0

    def first_at_least(self, x: int) -> int:
        """The least member ≥ ``x``.

        >>> Lattice(5, 4, 1).first_at_least(6), Lattice(5, 4, 1).first_at_least(0)
        (9, 5)
        """
        x = max(x, self.min)
        return x + (self.residue - x) % self.step

    def starting_at(self, x: int) -> "Lattice":
        """The same residue class from its first value ≥ ``x`` (``x`` may lie below
        :attr:`min`: the lattice then reaches further down).

        >>> Lattice(9, 4, 1).starting_at(1), Lattice(9, 4, 0).starting_at(1)
        (Lattice(min=1, step=4, residue=1), Lattice(min=4, step=4, residue=0))
        """
        return self._replace(min=x + (self.residue - x) % self.step)

    def meet(self, other: "Lattice") -> Optional["Lattice"]:
        """The values in both lattices (a lattice of the steps' lcm), None if none.

        >>> Lattice(8, 4, 0).meet(Lattice(3, 2, 0)), Lattice(8, 4, 1).meet(Lattice(3, 2, 0))
        (Lattice(min=8, step=4, residue=0), None)
        """
        step = self.step * other.step // gcd(self.step, other.step)
        for k in range(step // self.step):
            v = self.residue + k * self.step
            if (v - other.residue) % other.step == 0:
                return Lattice(0, step, v % step).starting_at(max(self.min, other.min))
        return None

    def text(self, name: str) -> str:
        """In words, as :func:`text` joins them.

        >>> Lattice(32, 32, 0).text("H"), Lattice(1, 1, 0).text("n")
        ('H >= 32, H ≡ 0 (mod 32)', 'n >= 1')
        """
        out = f"{name} >= {self.min}"
        if self.step > 1:
            out += f", {name} ≡ {self.residue} (mod {self.step})"
        return out


Domain = Mapping[str, Union[Mapping[str, int], Lattice]]


def lattice(domain: Domain, name: str) -> Lattice:
    """Symbol ``name``'s lattice in ``domain`` (dicts or lattices).

    >>> lattice({"H": {"min": 8, "step": 4, "residue": 0}}, "H").first_at_least(9)
    12
    """
    return Lattice.from_dict(domain[name])


def contains(domain: Domain, point: Mapping[str, int]) -> bool:
    """Whether every value of ``point`` (by symbol name) lies on its symbol's lattice.

    >>> d = {"B": {"min": 1, "step": 1, "residue": 0}, "H": {"min": 8, "step": 4, "residue": 0}}
    >>> contains(d, {"B": 3, "H": 12}), contains(d, {"B": 3, "H": 10}), contains(d, {"H": 4})
    (True, False, False)
    """
    return all(lattice(domain, n).contains(v) for n, v in point.items())


def text(domain: Domain, names: Sequence[str], joiner: str, extra: Iterable[str] = ()) -> str:
    """The domain in words, the symbols in the order of ``names`` joined by
    ``joiner``, then ``extra`` (derive's leftover guards, already in words).

    >>> d = {"H": Lattice(32, 32, 0), "n": {"min": 1, "step": 1, "residue": 0}}
    >>> text(d, ["H", "n"], "; ", ["floor(H/8) != 3"])
    'H >= 32, H ≡ 0 (mod 32); n >= 1; floor(H/8) != 3'
    >>> text(d, ["n", "H"], ", ")
    'n >= 1, H >= 32, H ≡ 0 (mod 32)'
    """
    return joiner.join([lattice(domain, n).text(n) for n in names] + list(extra))
