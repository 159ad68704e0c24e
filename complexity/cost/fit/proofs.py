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
from typing import Dict, Optional, Sequence

from complexity.cost.fit import allocator
from complexity.cost.fit.allocator import step_optimizer
from complexity.cost.fit.size_formula import SizeFormula
from complexity.cost.fit.step_formula import FormulaError, StepFormula, log_parts, step_formula
from complexity.cost.keys import PARTS
from complexity.cost.predict.prediction import predict, step_log

__all__ = ["will_it_fit", "proven_max_batch", "proven_max_size", "fresh_cuda_step",
           "dominant"]


def proven_max_batch(model, f: StepFormula, budget: int, *, input_dtype=None,
                     input_high=None) -> Optional[int]:  # the options: those f was made with
    """:meth:`StepFormula.max_batch` for ``budget``, proved by two concrete
    predictions of ``model`` (with the trainable flags ``f`` was made with): the
    peak at the max batch fits the budget, at one more it does not. None when every
    batch fits (the peak does not grow); ``f.batch_min - 1`` when none does.
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
        for b, fits in ((best, True), (best + 1, False)):
            if b < f.batch_min:
                continue
            p = predict(model, (b, *f.sample_shape), None, f.device_type or None,
                        **kw)["peak_bytes"]
            if (p <= budget) != fits:
                raise FormulaError(f"max batch {best} for {budget} bytes: predict gives a "
                                   f"peak of {p} at B={b}, which "
                                   f"{'does not fit' if fits else 'fits'}")
    return best


def fresh_cuda_step(model, input_shape: Sequence[int], device_type: Optional[str] = "cuda", *,
                    input_dtype=None, input_high=None, options=None,
                    steps: int = 3) -> Dict[str, int]:
    """:func:`~complexity.cost.fit.allocator.cuda_step` on a step traced afresh at the
    concrete ``input_shape`` (no formula: what proves a max batch or size):
    ``{"allocated", "reserved"}``, and the trace's exact ``peak_bytes``.

    >>> from models.stack import Stack
    >>> r = fresh_cuda_step(Stack(2, 4), (8, 4, 8, 8))
    >>> r["peak_bytes"] == predict(Stack(2, 4), (8, 4, 8, 8), None, "cuda")["peak_bytes"]
    True
    >>> r["allocated"] <= r["reserved"]
    True
    """
    log = step_log(model, input_shape, device_type, input_dtype=input_dtype,
                   input_high=input_high, options=options)
    got = allocator.cuda_step(log.resident_blocks, log.events, log.trainable_sizes,
                                steps, optimizer=step_optimizer(options))
    return {**got, "peak_bytes": log.values["peak_bytes"]}


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
        concrete = step_log(model, (batch, *f.sample_shape), device, **kw)
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
            got = fresh_cuda_step(model, (b, *f.sample_shape), device, **kw)["reserved"]
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
