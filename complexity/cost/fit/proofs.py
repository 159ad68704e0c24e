"""Will a training step fit in a memory budget, and the largest batch and input
size that do — each answer proved by steps traced afresh (it fits, one more does
not), never read off a formula alone.

* :func:`will_it_fit` — the verdict at a batch, the peak's parts (the
  :data:`~complexity.cost.keys.PARTS`) and the largest batch, on the CPU (the exact
  peak) or on CUDA (the caching-allocator model plus a reserve);
* :func:`proven_max_batch`, :func:`proven_max_size` — the largest batch and square
  input size, solved from the formulas of
  :mod:`~complexity.cost.fit.step_formula` and :mod:`~complexity.cost.fit.size_formula`;
* :func:`fresh_cuda_step` — the allocator model on a step traced at a concrete size.
"""
from __future__ import annotations

import warnings
from typing import Dict, NamedTuple, Optional, Sequence

from complexity.cost.fit import allocator
from complexity.cost.fit.allocator import step_optimizer
from complexity.cost.fit.size_formula import SizeFormula
from complexity.cost.fit.step_formula import FormulaError, StepFormula, log_parts, step_formula
from complexity.cost.keys import PARTS
from complexity.cost.predict.prediction import predict, step_log

__all__ = ["will_it_fit", "proven_max_batch", "proven_max_size", "fresh_cuda_step",
           "dominant", "largest_extent", "ExtentSearch", "proven_max_input"]


def proven_max_batch(model, f: StepFormula, budget: int, *, input_dtype=None,
                     input_high=None) -> Optional[int]:  # the options: those f was made with
    """:meth:`StepFormula.max_batch` for ``budget``, proved by two concrete
    predictions of ``model`` (with the trainable flags ``f`` was made with): the
    peak at the max batch fits the budget, at one more it does not. None when every
    batch fits (the peak does not grow); below ``f.batch_min`` (none in the formula's
    range fits), the largest smaller batch a concrete prediction fits, 0 when none.
    :class:`FormulaError` if the proof fails.

    >>> from models.stack import Stack
    >>> net = Stack(2, 4)
    >>> f = step_formula(net, (4, 8, 8))
    >>> proven_max_batch(net, f, 2 * 10**6) == f.max_batch(2 * 10**6)
    True
    """
    kw = {"input_dtype": input_dtype, "input_high": input_high, "options": f.options}
    best = f.max_batch(budget)
    if best is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if best < f.batch_min:  # below the formula's range (off its line): traced there
            return _below_range(model, f, budget, kw)
        for b, fits in ((best, True), (best + 1, False)):
            if b < f.batch_min:
                continue
            p = _peak(model, f, b, kw)
            if (p <= budget) != fits:
                raise FormulaError(f"max batch {best} for {budget} bytes: predict gives a "
                                   f"peak of {p} at B={b}, which "
                                   f"{'does not fit' if fits else 'fits'}")
    return best


def _below_range(model, f: StepFormula, budget: int, kw) -> int:
    """The largest batch below ``f.batch_min`` whose concretely predicted peak fits
    (0 when none does): the formula does not hold there, and ``batch_min`` itself
    was found not to fit."""
    for b in range(f.batch_min - 1, 0, -1):
        if _peak(model, f, b, kw) <= budget:
            return b
    return 0


def _peak(model, f: StepFormula, batch: int, kw) -> int:
    """The peak of a step of ``model`` traced at ``batch``: read off the step traced
    there while ``f`` was made (:attr:`StepFormula.traced`: the same model, flags
    and options), else predicted afresh."""
    shape, device = (batch, *f.sample_shape), f.device_type or None
    known = f.traced.values(model, shape, device, kw["input_dtype"], kw["input_high"],
                            kw["options"]) if f.traced is not None else None
    if known is None:
        known = predict(model, shape, None, device, **kw)
    return known["peak_bytes"]


def fresh_cuda_step(model, input_shape: Sequence[int], device_type: Optional[str] = "cuda", *,
                    input_dtype=None, input_high=None, options=None,
                    steps: int = 3, traced=None) -> Dict[str, int]:
    """:func:`~complexity.cost.fit.allocator.cuda_step` on a step traced afresh at the
    concrete ``input_shape`` (no formula: what proves a max batch or size):
    ``{"allocated", "reserved"}``, and the trace's exact ``peak_bytes``. ``traced``: a
    :class:`~complexity.cost.fit.traced.Traced` whose step at this shape, when it
    has one of this model with these arguments, is read instead of tracing it again.

    >>> from models.stack import Stack
    >>> r = fresh_cuda_step(Stack(2, 4), (8, 4, 8, 8))
    >>> r["peak_bytes"] == predict(Stack(2, 4), (8, 4, 8, 8), None, "cuda")["peak_bytes"]
    True
    >>> r["allocated"] <= r["reserved"]
    True
    """
    log = _step(model, input_shape, device_type, {"input_dtype": input_dtype,
                                                   "input_high": input_high,
                                                   "options": options}, traced)
    got = allocator.cuda_step(log.resident_blocks, log.events, log.trainable_sizes,
                                steps, optimizer=step_optimizer(options))
    return {**got, "peak_bytes": log.values["peak_bytes"]}


def _step(model, shape, device_type, kw, traced=None):
    """The step of ``model`` at ``shape`` (``kw``: input dtype and bound, options):
    the one ``traced`` holds (:class:`~complexity.cost.fit.traced.Traced`: the same
    model, flags and arguments), else traced now."""
    log = traced.log(model, shape, device_type or None, kw["input_dtype"], kw["input_high"],
                     kw["options"]) if traced is not None else None
    return log if log is not None else step_log(model, shape, device_type, **kw)


def dominant(parts: Dict[str, int]) -> str:
    """The largest part (the first of :data:`PARTS` on a tie).

    >>> dominant({"weights": 1, "grads": 0, "optimizer": 2, "activations": 2, "transient": 0})
    'optimizer'
    """
    return max(PARTS, key=lambda p: (parts[p], -PARTS.index(p)))


def will_it_fit(model, sample_shape: Sequence[int], batch: int, budget: int, *,
                device: str = "cuda", reserve: Optional[int] = None, checks: int = 5,
                input_dtype=None, input_high=None, options=None,
                formula: Optional[StepFormula] = None) -> dict:
    """Does one training step of ``model`` (its trainable flags as set) at
    ``(batch, *sample_shape)`` fit in ``budget`` bytes, and what is the largest batch
    that does? ``device="cpu"``: the exact peak must fit; ``"cuda"``: the caching
    allocator's predicted ``max_memory_reserved``
    (:mod:`complexity.cost.fit.allocator`) plus ``reserve`` (default
    :data:`~complexity.cost.fit.allocator.DEFAULT_RESERVE`, an estimate for the CUDA
    context). The max batch is proved: it fits, one more does not — by
    :func:`~complexity.cost.predict.prediction.predict` (cpu) or by the allocator model on
    freshly traced steps (cuda).

    Returns ``{"device", "batch", "budget_bytes", "peak_bytes", "fits", "max_batch",
    "parts", "dominant", "cuda", "peak_formula", "unmodelled"}``; ``cuda`` is None
    on the CPU, else ``{"allocated", "reserved", "reserve_for_context"}``.
    ``formula``: a verified :class:`StepFormula` of this step at this size (e.g.
    :meth:`complexity.cost.fit.size_formula.SizeFormula.restrict`), used instead of
    tracing one.

    >>> from models.stack import Stack
    >>> r = will_it_fit(Stack(2, 4), (4, 8, 8), 8, 10**6, device="cpu", checks=1)
    >>> r["fits"], sum(r["parts"].values()) == r["peak_bytes"]
    (True, True)
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: choose cpu or cuda")
    kw = {"input_dtype": input_dtype, "input_high": input_high}
    f = formula if formula is not None else step_formula(model, sample_shape, device,
                                                         checks=checks, options=options, **kw)
    kw["options"] = options
    concrete = None
    if batch >= f.batch_min:
        peak, parts = f.peak_at(batch), f.parts(batch)
    else:  # below the formula's range (a step off its line at B = 1): traced there
        concrete = _step(model, (batch, *f.sample_shape), device, kw, f.traced)
        peak, parts = concrete.values["peak_bytes"], log_parts(concrete)
    out = {"device": device, "batch": batch, "budget_bytes": budget,
           "peak_bytes": peak, "fits": None, "max_batch": None,
           "parts": parts, "dominant": dominant(parts), "cuda": None,
           "peak_formula": str(f.formulas()["peak_bytes"]), "unmodelled": f.unmodelled}
    if device == "cpu":
        out["fits"] = out["peak_bytes"] <= budget
        out["max_batch"] = proven_max_batch(model, f, budget, input_dtype=input_dtype,
                                             input_high=input_high)
        return out
    reserve = allocator.DEFAULT_RESERVE if reserve is None else reserve
    if concrete is None:
        cuda = allocator.cuda_at(f, batch)
    else:
        cuda = allocator.cuda_step(concrete.resident_blocks, concrete.events,
                                   concrete.trainable_sizes, optimizer=step_optimizer(options))
    out["cuda"] = {**cuda, "reserve_for_context": reserve}
    out["fits"] = cuda["reserved"] + reserve <= budget
    best = allocator.cuda_max_batch(f, budget, reserve)
    if best is not None:  # the proof, on steps traced afresh at best and best + 1
        for b, fits in ((best, True), (best + 1, False)):
            if b < f.batch_min:
                continue
            got = fresh_cuda_step(model, (b, *f.sample_shape), device, traced=f.traced,
                                  **kw)["reserved"]
            if (got + reserve <= budget) != fits:
                raise FormulaError(f"max batch {best}: the allocator model gives "
                                   f"{got} bytes reserved at B={b} on a fresh trace")
    out["max_batch"] = best
    return out


def proven_max_size(model, f: SizeFormula, batch: int, budget: int, *, device: str = "cpu",
                    reserve: int = 0, input_dtype=None, input_high=None) -> Optional[int]:
    """The largest square size ``S`` of ``f``'s domain whose step at ``batch`` fits
    ``budget`` — on ``"cpu"`` the exact peak (:meth:`SizeFormula.max_size`), on
    ``"cuda"`` the caching-allocator model's reserved bytes plus ``reserve``
    (bisection on the lattice below the peak's bound) — proved by fresh
    traces: ``S`` fits, the next lattice size does not. 0 when none fits, None
    when every size does. :class:`FormulaError` if the proof fails.

    >>> from models.stack import Stack
    >>> net = Stack(2, 4)
    >>> from complexity.cost.fit.size_formula import size_formula
    >>> f = size_formula(net, 4, base=(8, 8), checks=1)
    >>> s = proven_max_size(net, f, 2, 10**6)
    >>> predict(net, (2, 4, s, s))["peak_bytes"] <= 10**6 < predict(net, (2, 4, s + 1, s + 1))["peak_bytes"]
    True
    """
    kw = {"input_dtype": input_dtype, "input_high": input_high, "options": f.options}
    lo, step, _ = f.square_lattice()
    if device == "cpu":
        best = f.max_size(batch, budget)

        def fits_fresh(s):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return predict(model, (batch, f.channels, s, s), None,
                               f.device_type or None, **kw)["peak_bytes"] <= budget
    else:
        room = budget - reserve
        fits = lambda s: allocator.cuda_at(f.restrict(s, s), batch)["reserved"] <= room  # noqa
        hi = f.max_size(batch, room + f.constants["step_counter_bytes"])
        if hi is None:
            return None
        best = 0
        if hi >= lo:  # hi is on the lattice: by index j (lo + j·step); -1 (below lo) fits
            j = allocator.largest_fitting(-1, (hi - lo) // step,
                                            lambda j: fits(lo + j * step))
            best = lo + j * step if j >= 0 else 0

        def fits_fresh(s):
            return fresh_cuda_step(model, (batch, f.channels, s, s), f.device_type or None,
                                   **kw)["reserved"] <= room
    if best is None:
        return None
    for s, want in ((best, True), ((best or lo - step) + step, False)):
        if s < lo:
            continue
        if fits_fresh(s) != want:
            raise FormulaError(f"max size {best} for {budget} bytes at B={batch}: a fresh "
                               f"prediction at {s}x{s} {'does not fit' if want else 'fits'}")
    return best


class ExtentSearch(NamedTuple):
    """What :func:`largest_extent` found: ``best`` (the largest size that fits; 0 when
    none from 1 does), ``limit`` (the largest size allowed; None: unbounded),
    ``costs`` (every size traced → the bytes compared with the budget) and
    ``monotone`` (whether those costs never fall as the size grows: the condition
    under which "``best`` fits, ``best + 1`` does not" makes ``best`` the largest)."""

    best: int
    limit: Optional[int]
    costs: Dict[int, int]
    monotone: bool

    def proof(self) -> Dict[str, Optional[int]]:
        """The two traced sizes that prove ``best``: ``{"fits": best, "fits_bytes",
        "next": best + 1, "next_bytes"}`` (``next`` None when ``best`` is the limit).

        >>> ExtentSearch(3, None, {3: 10, 4: 20}, True).proof()
        {'fits': 3, 'fits_bytes': 10, 'next': 4, 'next_bytes': 20}
        """
        nxt = None if self.best == self.limit else self.best + 1
        return {"fits": self.best, "fits_bytes": self.costs.get(self.best),
                "next": nxt, "next_bytes": self.costs.get(nxt)}


#: the largest size an unbounded search tries (an extent with no limit of its own)
EXTENT_CAP = 2 ** 24


def largest_extent(cost, budget: int, *, limit: Optional[int] = None, known_fit: int = 0,
                   known_miss: Optional[int] = None, probes: Sequence[int] = (64, 128, 256)
                   ) -> ExtentSearch:
    """The largest integer ``n`` in ``[1, limit]`` with ``cost(n) <= budget``, every
    answer traced: ``cost(best)`` fits and ``cost(best + 1)`` does not (or ``best`` is
    ``limit``). A quadratic through ``cost`` at ``probes`` guesses where the budget is
    crossed (attention's scores grow as n²); galloping and bisection from the guess
    find the crossing. ``known_fit``/``known_miss``: sizes already proved to fit / not
    to fit (a lattice's answer and its next point). When the costs traced are not
    monotone, the window between the answer and ``known_miss`` is scanned whole, so
    ``best`` is the largest size there that fits. ``cost(n)`` None: the model takes
    no input of size ``n`` (its forward fails there), which counts as not fitting.

    >>> r = largest_extent(lambda n: 100 + 3 * n * n, 10**6)
    >>> r.best, 100 + 3 * r.best ** 2 <= 10**6 < 100 + 3 * (r.best + 1) ** 2, r.monotone
    (577, True, True)
    >>> largest_extent(lambda n: 5 * n, 10**6, limit=1000).proof()["next"] is None
    True
    """
    cap = limit if limit is not None else (known_miss - 1 if known_miss else EXTENT_CAP)
    costs: Dict[int, int] = {}

    def fits(n: int) -> bool:
        if n not in costs:
            costs[n] = cost(n)
        return costs[n] is not None and costs[n] <= budget

    lo, hi = known_fit, known_miss if known_miss is not None else cap + 1
    guess = _quadratic_guess({p: costs.setdefault(p, cost(p)) for p in probes
                              if lo < p < hi and known_miss is None}, budget)
    g = min(max(guess or lo + 1, lo + 1), hi - 1)
    if g > lo:
        lo, hi = _gallop(fits, g, lo, hi)
    lo = allocator.largest_fitting(lo, hi - 1, fits) if hi - lo > 1 else lo
    if lo + 1 == hi and (limit is None or hi <= limit):
        fits(hi)  # traced: the proof's second half
    if lo >= 1:
        fits(lo)  # and its first (a known fit is traced again)
    ordered = [costs[n] for n in sorted(costs) if costs[n] is not None]
    monotone = all(a <= b for a, b in zip(ordered, ordered[1:]))
    if not monotone and known_miss is not None:  # the whole window, size by size
        lo = max([n for n in range(lo, known_miss) if n >= 1 and fits(n)], default=lo)
    return ExtentSearch(lo, limit, dict(sorted(costs.items())), monotone)


def _gallop(fits, g: int, lo: int, hi: int):
    """``(lo, hi)`` around the crossing, from the guess ``g``: ``lo`` fits (or is the
    known ``lo``), ``hi`` does not (or is one past the cap)."""
    step = 1
    if fits(g):
        lo = g
        while lo + step < hi and fits(lo + step):
            lo, step = lo + step, step * 2
        return lo, min(hi, lo + step)
    hi = g
    while hi - step > lo and not fits(hi - step):
        hi, step = hi - step, step * 2
    return max(lo, hi - step), hi


def _quadratic_guess(points: Dict[int, int], budget: int) -> Optional[int]:
    """Where the quadratic (or, with two points, the line) through ``points`` (size →
    cost) reaches ``budget``, rounded down; None when it gives no positive size.

    >>> _quadratic_guess({1: 12, 2: 22, 3: 36}, 10**4)  # 2n² + 4n + 6
    69
    """
    from fractions import Fraction

    xs = sorted(points)
    if len(xs) < 2:
        return None
    if len(xs) == 2:
        (x1, x2), c = xs, 0
    else:
        x1, x2, x3 = xs[-3:]
        y1, y2, y3 = (points[x] for x in (x1, x2, x3))
        c = Fraction(Fraction(y3 - y2, x3 - x2) - Fraction(y2 - y1, x2 - x1), x3 - x1)
        x1, x2 = x2, x3
    b = Fraction(points[x2] - points[x1], x2 - x1) - c * (x1 + x2)
    a = points[x1] - b * x1 - c * x1 * x1
    if c > 0:
        disc = b * b - 4 * c * (a - budget)
        root = (-b + Fraction(disc) ** 0.5) / (2 * c) if disc >= 0 else None
    else:
        root = (budget - a) / b if b > 0 else None
    return int(root) if root is not None and root >= 1 else None


def proven_max_input(model, input_shape: Sequence[int], axes: Sequence[int], budget: int, *,
                     device: str = "cpu", reserve: int = 0, limit: Optional[int] = None,
                     known_fit: int = 0, known_miss: Optional[int] = None, input_dtype=None,
                     input_high=None, options=None) -> ExtentSearch:
    """The largest integer ``n`` that, put at every axis of ``axes`` of
    ``input_shape`` (the sequence length of token ids ``(B, S)``: ``axes=(1,)``; a
    square image's side: ``(2, 3)``), gives a step that fits ``budget`` — on
    ``"cpu"`` the exact peak of :func:`~complexity.cost.predict.prediction.predict`,
    on ``"cuda"`` the caching-allocator model's reserved bytes plus ``reserve`` — by
    :func:`largest_extent` on steps traced at concrete sizes (no formula): ``n``
    fits, ``n + 1`` does not (or ``n`` is ``limit``).

    >>> from models.stack import Stack
    >>> r = proven_max_input(Stack(2, 4), (2, 4, 0, 0), (2, 3), 10**6)
    >>> at = lambda n: predict(Stack(2, 4), (2, 4, n, n))["peak_bytes"]
    >>> at(r.best) <= 10**6 < at(r.best + 1), r.costs[r.best] == at(r.best)
    (True, True)
    """
    kw = {"input_dtype": input_dtype, "input_high": input_high, "options": options}

    def shape(n: int):
        return tuple(n if i in axes else s for i, s in enumerate(input_shape))

    def cost(n: int) -> Optional[int]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            try:
                if device == "cpu":
                    return predict(model, shape(n), None, "cpu", **kw)["peak_bytes"]
                return fresh_cuda_step(model, shape(n), device, **kw)["reserved"] + reserve
            except Exception as e:  # a size the model cannot take
                errors.append(e)
                return None

    errors: list = []
    r = largest_extent(cost, budget, limit=limit, known_fit=known_fit, known_miss=known_miss)
    if errors and not known_fit and all(c is None for c in r.costs.values()):
        raise errors[0]  # no size it was asked about ran: not a size question
    return r
