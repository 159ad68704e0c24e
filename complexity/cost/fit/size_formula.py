"""One training step's cost as exact formulas in the batch ``B`` and the input's
height ``H`` and width ``W``.

:mod:`complexity.cost.fit.step_formula` fits the step in ``B`` at one input size. Here
the size varies too. Every size in the schedule's event log (each allocation,
release and peak reading, :func:`complexity.cost.predict.schedule.peak`) is affine in
``B`` and, on a lattice ``H ≡ H0 (mod s_H)``, ``W ≡ W0 (mod s_W)``, a polynomial
in ``H`` and ``W`` (strided layers floor, ``⌊(H + 2p − k)/s⌋ + 1``, which is
linear on such a lattice). How:

1. **Step and degree per symbol.** ``H`` (then ``W``) is varied along
   ``H0 + j·s`` for ``s`` = 1, 2, 4, … 64 until the finite differences of every
   event size vanish (and the 1-D interpolant holds at points further out: a
   floor repeats values); the event sequence (kinds and keys) must be the same at
   every point, else :class:`~complexity.cost.fit.step_formula.FormulaError`.
2. **Exact interpolation.** On the tensor grid (degree + 1 points per size symbol,
   two batches) every event size, quantity and reading is interpolated by
   Lagrange in exact fractions.
3. **The peak** is ``Max`` over the readings' polynomials (and the resident
   bytes), duplicates dropped and every term dropped that another is at least
   everywhere on the domain (a sufficient test: the difference, shifted to the
   domain's corner, has no negative coefficient).
4. **Verification.** Every quantity is compared with a concrete
   :func:`~complexity.cost.predict.prediction.predict` at the domain's corner and at random
   held-out ``(B, H, W)`` points of the domain: one difference raises, so an
   unverified formula is never returned.

>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.Conv2d(4, 2, 1))
>>> f = size_formula(net, 3, base=(9, 9))
>>> f.domain["H"]
{'min': 3, 'step': 2, 'residue': 1}
>>> f.at(5, 11, 13) == predict(net, (5, 3, 11, 13))
True
"""
from __future__ import annotations

import random
import warnings
from dataclasses import dataclass, field
from itertools import product
from typing import Dict, List, Optional, Sequence, Tuple

import sympy as sp

from complexity.cost.fit.step_formula import (
    FormulaError,
    StepFormula,
    check_running,
    envelope,
    fit_affine,
)
from complexity.cost.keys import KEYS
from complexity.cost.predict.log import Event, Kind, StepLog, shapes
from complexity.cost.predict.prediction import predict, step_log
from complexity.cost.fit.lattice import Point, Poly, line_basis, prune, scan
from complexity.counting.domain import Lattice, contains, lattice, text as render_domain

__all__ = ["SizeFormula", "size_formula"]

_pos = dict(integer=True, positive=True)
#: the quantities given as one polynomial each (the peak is a Max of readings)
VALUES = tuple(k for k in KEYS if k != "peak_bytes")



def _sections(log: StepLog) -> Dict[str, List[int]]:
    """Every number of a traced step that the formulas give, by name: each event's
    size, the :data:`VALUES`, the input and target bytes, the numbers that must not
    change with the size (:attr:`StepLog.FIXED`), the resident blocks and the
    trainable tensors' sizes. Interpolation works on them flattened
    (:func:`_vector`); :func:`_unflatten` names the polynomials again."""
    return {"events": [e.size for e in log.events],
            "values": [log.values[k] for k in VALUES],
            "io": [log.io],
            "fixed": list(log.fixed().values()),
            "resident_blocks": list(log.resident_blocks),
            "trainable_sizes": list(log.trainable_sizes)}


def _vector(log: StepLog) -> List[int]:
    """:func:`_sections` in one list, in a fixed order."""
    return [x for section in _sections(log).values() for x in section]


def _unflatten(log: StepLog, flat: Sequence) -> Dict[str, list]:
    """``flat`` (one entry per number of :func:`_vector`, e.g. its polynomials) cut
    into :func:`_sections`' parts, by name.

    >>> from models.stack import Stack
    >>> log = step_log(Stack(1, 2), (1, 2, 4, 4))
    >>> parts = _unflatten(log, _vector(log))
    >>> parts["values"] == [log.values[k] for k in VALUES], parts["io"] == [log.io]
    (True, True)
    """
    out, start = {}, 0
    for name, section in _sections(log).items():
        out[name] = list(flat[start:start + len(section)])
        start += len(section)
    if start != len(flat):
        raise ValueError(f"{len(flat)} numbers for a step of {start}")
    return out


def _structure(log: StepLog) -> tuple:
    """What must be equal for two traces to be one schedule (sizes aside)."""
    return shapes(log.events), len(log.resident_blocks), len(log.trainable_sizes)


@dataclass
class SizeFormula:
    """The formulas of one training step in ``B``, ``H``, ``W``, valid on
    :attr:`domain` (``{symbol: {"min", "step", "residue"}}``: every value ≥ min
    congruent to residue modulo step) and verified at :attr:`checked`.

    Each polynomial is a tuple of exact coefficients over :attr:`monomials`
    (exponents of ``B``, ``H``, ``W``)."""

    names: Tuple[str, str, str]
    channels: int
    device_type: str
    domain: Dict[str, Dict[str, int]]
    monomials: List[Tuple[int, int, int]]
    values: Dict[str, Poly]                  # the KEYS but the peak
    peak_terms: List[Poly]                   # the readings left after pruning
    events: List[Event]                      # each size a Poly
    io: Poly
    constants: Dict[str, int]                # weights, optimizer, step_counter_bytes,
    #                                          resident_grads, scaler
    resident_blocks: List[Poly]
    trainable_sizes: List[int]
    unmodelled: List[str]
    options: Optional[object] = None
    checked: List[Point] = field(default_factory=list)

    @property
    def batch_min(self) -> int:
        return self.domain[self.names[0]]["min"]

    def symbols(self) -> Tuple[sp.Symbol, ...]:
        return tuple(sp.Symbol(n, **_pos) for n in self.names)

    def _expr(self, poly: Poly) -> sp.Expr:
        syms = self.symbols()
        return sp.expand(sum(sp.Rational(c.numerator, c.denominator)
                             * syms[0] ** i * syms[1] ** j * syms[2] ** k
                             for c, (i, j, k) in zip(poly, self.monomials) if c))

    def formulas(self) -> Dict[str, sp.Expr]:
        """The :data:`KEYS` as sympy expressions; the peak a ``Max``."""
        out = {k: self._expr(p) for k, p in self.values.items()}
        # already pruned: evaluating the Max would compare every pair under the
        # symbols' assumptions, seconds for a few dozen terms
        out["peak_bytes"] = sp.Max(*[self._expr(p) for p in self.peak_terms], evaluate=False)
        return {k: out[k] for k in KEYS}

    def _eval(self, poly: Poly, point: Point) -> int:
        b, h, w = point
        v = sum(c * b ** i * h ** j * w ** k for c, (i, j, k) in zip(poly, self.monomials) if c)
        if v.denominator != 1:
            raise FormulaError(f"a formula gives the non-integer {v} at B={b}, H={h}, W={w}")
        return int(v)

    def on_domain(self, batch: int, h: int, w: int) -> bool:
        """Whether ``(batch, h, w)`` lies in the domain."""
        return contains(self.domain, dict(zip(self.names, (batch, h, w))))

    def at(self, batch: int, h: int, w: int) -> Dict[str, int]:
        """The :data:`KEYS` at ``(batch, h, w)``, exact integers."""
        out = {k: self._eval(p, (batch, h, w)) for k, p in self.values.items()}
        out["peak_bytes"] = self.peak_at(batch, h, w)
        return {k: out[k] for k in KEYS}

    def peak_at(self, batch: int, h: int, w: int) -> int:
        return max(self._eval(p, (batch, h, w)) for p in self.peak_terms)

    def restrict(self, h: int, w: int) -> StepFormula:
        """The :class:`~complexity.cost.fit.step_formula.StepFormula` (formulas in ``B``
        alone) at the size ``h × w``, read off these formulas (no trace)."""
        if not self.on_domain(self.batch_min, h, w):
            raise FormulaError(f"{h}x{w} is outside the domain {self.domain_text()}")
        bm = self.batch_min

        def affine(p):
            return fit_affine(self._eval(p, (bm, h, w)), self._eval(p, (bm + 1, h, w)), bm)

        terms = [affine(p) for p in self.peak_terms]
        return StepFormula(
            sample_shape=(self.channels, h, w), device_type=self.device_type,
            batch_min=bm,
            constants={k: self._eval(self.values[k], (bm, h, w))
                       for k in ("param_bytes", "grad_bytes", "optimizer_bytes")},
            affine={k: affine(self.values[k])
                    for k in ("saved_activation_bytes", "forward_flops", "backward_flops")},
            weights=self.constants["weights"], optimizer=self.constants["optimizer"],
            step_counter_bytes=self.constants["step_counter_bytes"], io=affine(self.io),
            resident_blocks=[affine(p) for p in self.resident_blocks],
            events=[e.resized(affine(e.size)) for e in self.events],
            peak_terms=envelope(terms, bm), trainable_sizes=list(self.trainable_sizes),
            unmodelled=self.unmodelled, options=self.options,
            resident_grads=self.constants["resident_grads"], scaler=self.constants["scaler"])

    def square_lattice(self) -> Lattice:
        """``(min, step, residue)`` of the square sizes ``S×S`` in the domain;
        :class:`FormulaError` when there are none."""
        both = lattice(self.domain, self.names[1]).meet(lattice(self.domain, self.names[2]))
        if both is None:
            raise FormulaError(f"no square size lies in the domain {self.domain_text()}")
        return both

    def max_size(self, batch: int, budget: int) -> Optional[int]:
        """The largest square size ``S`` of the domain whose peak at ``batch`` is at
        most ``budget`` bytes, solved from the peak's terms (each a polynomial in
        ``S`` at ``H = W = S``): the feasible set ends at a real root of some term
        minus the budget, so the answer is the largest lattice point below a root
        that every term allows. 0 when none fits; None when the peak does not grow
        with the size (every size fits)."""
        s = sp.Symbol("S", real=True)
        lo, step, _ = self.square_lattice()
        polys = [sp.Poly(self._expr(p).subs(dict(zip(self.symbols(), (batch, s, s))))
                         - budget, s) for p in self.peak_terms]
        if all(p.LC() <= 0 or p.degree() <= 0 for p in polys):
            return None if self.peak_at(batch, lo, lo) <= budget else 0
        fits = lambda x: self.peak_at(batch, x, x) <= budget  # noqa: E731
        candidates = set()
        for p in polys:
            for r in sp.Poly(p, s).real_roots() if p.degree() > 0 else []:
                x = int(sp.floor(r))
                if x >= lo:
                    candidates.add(x - (x - lo) % step)
        for x in sorted(candidates, reverse=True):
            if fits(x):
                return x
        return 0

    def domain_text(self) -> str:
        """The domain in words: ``B >= 1, H >= 32, H ≡ 0 (mod 32), …`` (symbols
        joined by ", ": see :mod:`complexity.counting.domain`)."""
        return render_domain(self.domain, self.names, ", ")


class _Tracer:
    """Traced steps by ``(B, H, W)``, cached; failures kept as the exception."""

    def __init__(self, model, channels, device_type, kw):
        self.model, self.channels, self.device_type, self.kw = model, channels, device_type, kw
        self.cache: Dict[Point, object] = {}
        self.ref = None

    def __call__(self, point: Point) -> StepLog:
        if point not in self.cache:
            b, h, w = point
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    log = step_log(self.model, (b, self.channels, h, w), self.device_type,
                                   **self.kw)
                if self.ref is None:
                    self.ref = log
                self.cache[point] = (log, _structure(log) == _structure(self.ref)
                                     and log.trainable_sizes == self.ref.trainable_sizes)
            except Exception as e:  # a size the model cannot take: outside the domain
                self.cache[point] = e
        got = self.cache[point]
        if isinstance(got, Exception):
            raise got
        log, same = got
        if not same:
            raise FormulaError(f"the step's schedule at B={point[0]}, H={point[1]}, "
                               f"W={point[2]} is not the same sequence of events as at "
                               f"the base size: no formula in the size")
        return log


def size_formula(model, channels: int, device_type: Optional[str] = None, *,
                 symbols: Sequence[str] = ("B", "H", "W"), base: Tuple[int, int] = (64, 64),
                 checks: int = 5, seed: int = 0, max_degree: int = 2,
                 input_dtype=None, input_high=None, options=None) -> SizeFormula:
    """The :class:`SizeFormula` of one training step of ``model`` (its parameters
    with ``requires_grad`` train) on inputs ``(B, channels, H, W)``: the lattice
    found around ``base``, the domain's low corner pushed down as far as the step
    keeps its structure, verified against :func:`~complexity.cost.predict.prediction.predict`
    at the domain's corner and ``checks`` random held-out points. ``symbols``: the
    names of batch, height, width. :class:`~complexity.cost.fit.step_formula.FormulaError`
    when the step's structure or a size is not polynomial, or a check fails.

    >>> from models.stack import Stack
    >>> f = size_formula(Stack(2, 4), 4, base=(8, 8), checks=2)
    >>> f.formulas()["forward_flops"]
    592*B*H*W
    >>> f.domain["W"], len(f.checked)
    ({'min': 2, 'step': 1, 'residue': 0}, 3)
    """
    names = tuple(symbols)
    if len(names) != 3 or len(set(names)) != 3:
        raise ValueError(f"symbols {names}: give three distinct names (batch, height, width)")
    kw = {"input_dtype": input_dtype, "input_high": input_high, "options": options}
    trace = _Tracer(model, channels, device_type, kw)
    h0, w0 = base
    try:
        trace((1, h0, w0))
        bm = 1
    except ValueError:  # e.g. BatchNorm over one value per channel: B = 1 cannot train
        bm = 2
        trace((bm, h0, w0))
    origin = (bm, h0, w0)
    vector_at = lambda p: _vector(trace(p))  # noqa: E731
    (sh, dh), (sw, dw) = (scan(vector_at, 1, origin, max_degree, 2, 3),
                          scan(vector_at, 2, origin, max_degree, 2, 3))
    axes = [[bm, bm + 1], [h0 + j * sh for j in range(dh + 1)],
            [w0 + j * sw for j in range(dw + 1)]]
    monomials = list(product(range(2), range(dh + 1), range(dw + 1)))
    bases = [line_basis(a) for a in axes]
    grid = list(product(*(range(len(a)) for a in axes)))
    vectors = []
    for idx in grid:
        try:
            vectors.append(_vector(trace(tuple(a[i] for a, i in zip(axes, idx)))))
        except FormulaError:
            raise
        except Exception as e:
            raise FormulaError(f"the model cannot take grid point {idx}: {e}") from None
    weights = [[bases[0][i][m0] * bases[1][j][m1] * bases[2][k][m2]
                for (m0, m1, m2) in monomials] for (i, j, k) in grid]
    n = len(vectors[0])
    polys = [tuple(sum(weights[g][m] * vectors[g][c] for g in range(len(grid)))
                   for m in range(len(monomials))) for c in range(n)]
    ref = trace(origin)
    f = _assemble(ref, polys, names, channels, device_type, monomials, bm, (h0, w0),
                  (sh, sw), options)
    _verify(f, polys, model, trace, kw, checks, seed)
    return f


def _assemble(log: StepLog, polys, names, channels, device_type, monomials, bm, base,
              steps, options) -> SizeFormula:
    """The formula from ``polys`` (one per number of :func:`_vector`), the peak not
    yet pruned; :class:`FormulaError` when one of :attr:`StepLog.FIXED` changes with
    the size or a reading is not the running sum of the sizes."""
    parts = _unflatten(log, polys)
    for k, poly in zip(log.FIXED, parts["fixed"]):
        if any(poly[1:]):
            raise FormulaError(f"{k} changes with the size: no formula")
    ev = [e.resized(p) for e, p in zip(log.events, parts["events"])]
    (io,) = parts["io"]
    resident = tuple(c + (log.resident_bytes() if m == (0, 0, 0) else 0)
                     for c, m in zip(io, monomials))
    # the readings carry the live bytes; the same must come out of the sizes
    check_running(resident, ev)
    domain = {names[0]: Lattice.through(bm, 1).to_dict()}
    for n, b, s in zip(names[1:], base, steps):
        domain[n] = Lattice.through(b, s).to_dict()
    return SizeFormula(names=names, channels=channels, device_type=device_type or "",
                       domain=domain, monomials=monomials,
                       values=dict(zip(VALUES, parts["values"])),
                       # pruned once the domain's corner is known
                       peak_terms=[resident] + [e.size for e in ev if e.kind is Kind.MARK],
                       events=ev, io=io, constants=log.fixed(),
                       resident_blocks=parts["resident_blocks"],
                       trainable_sizes=list(log.trainable_sizes),
                       unmodelled=log.unmodelled, options=options)


def _verify(f: SizeFormula, polys, model, trace, kw, checks, seed) -> None:
    """Push the domain's corner down (:func:`_lower_corner`), prune the peak there,
    then check the formulas against concrete predictions (:func:`_check`)."""
    corner = _lower_corner(f, polys, trace)
    f.peak_terms = prune(f.peak_terms, f.monomials, corner)
    _check(f, model, trace, kw, checks, seed)


def _lower_corner(f: SizeFormula, polys, trace) -> Point:
    """Push the domain's corner down as far as the step keeps its structure (every
    number of the trace there equal to its polynomial in ``polys``, in
    :func:`_vector`'s order); returns the corner ``(B, H, W)``."""
    bm = f.batch_min
    dh, dw = f.domain[f.names[1]], f.domain[f.names[2]]
    # the smallest sizes of the lattice that the model takes with the same schedule
    lo_h = Lattice.from_dict(dh).starting_at(1).min
    lo_w = Lattice.from_dict(dw).starting_at(1).min
    while lo_h < dh["min"] or lo_w < dw["min"]:
        try:
            log = trace((bm, lo_h, lo_w))
            if _vector(log) == [f._eval(p, (bm, lo_h, lo_w)) for p in polys]:
                break
        except Exception:
            pass
        lo_h, lo_w = min(lo_h + dh["step"], dh["min"]), min(lo_w + dw["step"], dw["min"])
    dh["min"], dw["min"] = lo_h, lo_w
    return bm, lo_h, lo_w


def _check(f: SizeFormula, model, trace, kw, checks, seed) -> None:
    """Compare ``f`` with concrete predictions at the domain's corner and at
    ``checks`` random points no trace was made at; FormulaError on any difference."""
    bm = f.batch_min
    dh, dw = f.domain[f.names[1]], f.domain[f.names[2]]
    lo_h, lo_w = dh["min"], dw["min"]
    rng = random.Random(seed)
    span = 24
    points = [(bm, lo_h, lo_w)]
    while len(points) < checks + 1:
        b = min(4096, int(bm * (4096 / bm) ** rng.random()))
        p = (b, lo_h + dh["step"] * rng.randint(0, span), lo_w + dw["step"] * rng.randint(0, span))
        if p not in trace.cache and p not in points:
            points.append(p)
    for p in points:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            try:
                concrete = predict(model, (p[0], f.channels, p[1], p[2]), None,
                                   f.device_type or None, **kw)
            except Exception as e:
                raise FormulaError(f"the model cannot take B={p[0]}, H={p[1]}, W={p[2]} "
                                   f"inside the domain ({e})") from None
        got = f.at(*p)
        wrong = [k for k in KEYS if got[k] != concrete[k]]
        if wrong:
            k = wrong[0]
            raise FormulaError(f"the formula for {k} gives {got[k]} at B={p[0]}, H={p[1]}, "
                               f"W={p[2]}, predict gives {concrete[k]}")
        f.checked.append(p)
