"""One training step's cost as exact formulas in the batch size ``B``.

Every quantity :func:`complexity.cost.predict.prediction.predict` gives is, for a fixed model
and input size, a function of the batch ``B``: the parameters, their gradients
and the optimizer's state are constants; the saved activations and the FLOPs are affine,
``a + b·B`` (every activation and every call's work scales with the batch); the
peak is the most of the schedule's readings (:func:`complexity.cost.predict.schedule.peak`),
each of them affine, so ``peak(B) = Max(a_1 + b_1·B, …)``.

How: the schedule's event log (every allocation, release and reading, in order)
is recorded at two batch sizes; the two logs must have the same sequence of
events (the step does the same things at every ``B``) — else
:class:`FormulaError` — and each event's size is fitted ``a + b·B`` from the two.
The readings are summed up from the sizes, the ``Max`` is pruned to its upper
envelope over ``B ≥ 1`` (a term below another for every such ``B`` goes), and the
formulas are checked against a concrete :func:`~complexity.cost.predict.prediction.predict`
at several held-out batch sizes: one that differs raises :class:`FormulaError`,
so an unverified formula is never returned.

>>> from models.stack import Stack
>>> f = step_formula(Stack(2, 4), (4, 8, 8))
>>> f.formulas()["grad_bytes"] == 4 * (2 * (4 * 4 * 9 + 4 + 8) + 4 * 2 + 2)  # 2 blocks, head 4→2
True
>>> f.formulas()["forward_flops"] == (2 * 2 * 64 * 4 * 36 + 2 * 64 * 4 * 2) * B
True
>>> f.at(3)["peak_bytes"] == predict(Stack(2, 4), (3, 4, 8, 8))["peak_bytes"]
True
>>> b = f.max_batch(10**6); f.peak_at(b) <= 10**6 < f.peak_at(b + 1)
True

``B`` is the one symbol here: the input's other sizes are fixed by
``sample_shape``. :mod:`complexity.cost.fit.size_formula` fits the step in the input's
height and width too (polynomials on a lattice: strides floor the sizes).
"""
from __future__ import annotations

import random
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from math import floor
from typing import Dict, List, Optional, Sequence, Tuple

import sympy as sp

from complexity.cost.keys import KEYS, PARTS
from complexity.cost.predict.log import Event, Kind, StepLog, shapes
from complexity.cost.fit.traced import for_step
from complexity.cost.predict.prediction import predict, step_log

__all__ = ["B", "FormulaError", "StepFormula", "step_formula"]

#: The batch size: the formulas' one symbol.
B = sp.Symbol("B", integer=True, positive=True)

Affine = Tuple[int, int]  # (a, b): a + b·B


class FormulaError(ValueError):
    """The step's structure changed with the batch, or a formula disagreed with a
    concrete prediction: no formula is given."""


def fit_affine(v1: int, v2: int, b1: int) -> Affine:
    """The line through (b1, v1) and (b1 + 1, v2).

    >>> fit_affine(7, 10, 2)      # 1 + 3·B
    (1, 3)
    """
    slope = v2 - v1
    return v1 - slope * b1, slope


def check_running(resident: tuple, events: Sequence[Event]) -> None:
    """:class:`FormulaError` unless every reading of ``events`` (a
    :attr:`~complexity.cost.predict.log.Kind.MARK`) is ``resident`` plus the sizes
    allocated before it less those freed. Sizes are tuples of coefficients (an
    :data:`Affine`, a polynomial), added elementwise.

    >>> from complexity.cost.predict.log import Key, What
    >>> x = Key(What.ACTIVATION, 1)
    >>> check_running((1, 0), [Event(Kind.ALLOC, (2, 1), x), Event(Kind.MARK, (3, 1)),
    ...                        Event(Kind.FREE, (2, 1), x), Event(Kind.MARK, (1, 0))])
    >>> try:
    ...     check_running((1, 0), [Event(Kind.ALLOC, (2, 1), x), Event(Kind.MARK, (3, 0))])
    ... except FormulaError as e:
    ...     print(e)
    event 1: the reading (3, 0) is not the sum of the sizes before it (3, 1)
    """
    running = tuple(resident)
    for i, e in enumerate(events):
        if e.kind is Kind.ALLOC:
            running = tuple(a + b for a, b in zip(running, e.size))
        elif e.kind is Kind.FREE:
            running = tuple(a - b for a, b in zip(running, e.size))
        elif running != e.size:
            raise FormulaError(f"event {i}: the reading {e.size} is not the sum of the sizes "
                               f"before it {running}")


def _value(t: Affine, batch: int) -> int:
    return t[0] + t[1] * batch


def envelope(terms: Sequence[Affine], start: int = 1) -> List[Affine]:
    """The terms of ``max(a + b·B)`` that are the largest for some real ``B ≥ start``,
    in the order they take over (slopes increasing); the others are dropped.

    >>> envelope([(10, 0), (0, 1), (5, 0), (2, 1), (-100, 3)])
    [(10, 0), (2, 1), (-100, 3)]
    >>> envelope([(0, 2), (1, 1)])       # equal at B = 1, then 2·B above
    [(0, 2)]
    """
    lines = {}
    for a, b in terms:  # one line per slope: the highest
        lines[b] = max(a, lines.get(b, a))
    # the term on top at B = start (the steeper one on a tie: it stays above)
    cur = max(lines.items(), key=lambda ab: (ab[1] + ab[0] * start, ab[0]))
    out, x = [(cur[1], cur[0])], Fraction(start)
    while True:
        best = None
        for b, a in lines.items():
            if b <= cur[0]:
                continue
            cross = max(Fraction(cur[1] - a, b - cur[0]), x)  # where it overtakes
            if best is None or (cross, -b) < (best[0], -best[1][0]):
                best = (cross, (b, a))
        if best is None:
            return out
        x, cur = best[0], best[1]
        out.append((cur[1], cur[0]))


def _largest(terms: Sequence[Affine], budget: int, start: int) -> Optional[int]:
    """Largest integer ``B ≥ start`` with every term ≤ ``budget`` (``start - 1`` when
    none; None when no term grows: every ``B`` fits)."""
    hi = None
    for a, b in terms:
        if b > 0:
            n = floor(Fraction(budget - a, b))
            hi = n if hi is None else min(hi, n)
        elif b == 0 and a > budget:
            return start - 1
        elif b < 0:  # a falling term only rules out small B: not met in a step
            raise FormulaError("a peak term falls with the batch; no max batch is solved")
    if hi is None:
        return None
    return max(hi, start - 1)


@dataclass
class StepFormula:
    """The formulas of one training step in the batch ``B`` (valid for
    ``B ≥ batch_min``), verified at :attr:`checked`. Sizes are bytes, work FLOPs.

    ``events`` is the schedule's log (:class:`~complexity.cost.predict.log.Event`)
    with each size as ``(a, b)`` (``a + b·B``);
    ``peak_terms`` the peak's readings that form the upper envelope."""

    sample_shape: Tuple[int, ...]
    device_type: str
    batch_min: int
    constants: Dict[str, int]              # param_bytes, grad_bytes, optimizer_bytes
    affine: Dict[str, Affine]              # saved_activation_bytes, forward/backward_flops
    weights: int
    optimizer: int
    step_counter_bytes: int
    io: Affine                             # input and target
    resident_blocks: List[Affine]          # each parameter, buffer, input, target storage
    events: List[Event]                    # each size an Affine
    peak_terms: List[Affine]
    trainable_sizes: List[int]
    unmodelled: List[str]
    checked: List[int] = field(default_factory=list)
    options: Optional[object] = None       # the StepOptions traced (None: the default step)
    resident_grads: int = 0                # .grad buffers alive before the step begins
    scaler: int = 0                        # the GradScaler's scale and growth tracker
    traced: Optional[object] = field(default=None, compare=False, repr=False)  # fit/traced.py

    def formulas(self) -> Dict[str, sp.Expr]:
        """The :data:`KEYS` as sympy expressions in :data:`B`; the peak a ``Max``."""
        out = {k: sp.Integer(v) for k, v in self.constants.items()}
        out.update({k: sp.Integer(a) + b * B for k, (a, b) in self.affine.items()})
        out["peak_bytes"] = sp.Max(*[sp.Integer(a) + b * B for a, b in self.peak_terms])
        return {k: out[k] for k in KEYS}

    def at(self, batch: int) -> Dict[str, int]:
        """The :data:`KEYS` at ``batch``, exact integers."""
        out = dict(self.constants)
        out.update({k: _value(t, batch) for k, t in self.affine.items()})
        out["peak_bytes"] = self.peak_at(batch)
        return {k: out[k] for k in KEYS}

    def peak_at(self, batch: int) -> int:
        """The peak at ``batch``: the largest envelope term."""
        return max(_value(t, batch) for t in self.peak_terms)

    def events_at(self, batch: int) -> List[Event]:
        """The schedule's event log at ``batch`` (what
        :func:`~complexity.cost.predict.log.step_log` would record)."""
        return [e.resized(_value(e.size, batch)) for e in self.events]

    def resident_at(self, batch: int) -> List[int]:
        """The bytes of each parameter, buffer, input and target storage at ``batch``."""
        return [_value(t, batch) for t in self.resident_blocks]

    def max_batch(self, budget: int) -> Optional[int]:
        """The largest ``B`` whose peak is at most ``budget`` bytes, solved from the
        envelope's terms (``batch_min - 1`` when none fits, None when the peak does
        not grow with ``B``)."""
        return _largest(self.peak_terms, budget, self.batch_min)

    def parts(self, batch: int) -> Dict[str, int]:
        """What the peak at ``batch`` is made of, at the first moment it is reached;
        the parts sum to :meth:`peak_at`:

        the :data:`~complexity.cost.keys.PARTS`, each event counted in its
        :class:`~complexity.cost.keys.Category` (a gradient made for a parameter is
        ``grads``; one handed to it through a view is ``transient``).
        """
        best = peak_parts(self.events_at(batch), _resident_parts(
            self.weights, self.optimizer, self.scaler, self.resident_grads,
            _value(self.io, batch)))
        if sum(best.values()) != self.peak_at(batch):
            raise FormulaError(f"the parts at B={batch} sum to {sum(best.values())}, "
                               f"not the peak {self.peak_at(batch)}")
        return best


def peak_parts(events: Sequence[Event], start: Dict[str, int]) -> Dict[str, int]:
    """The :data:`~complexity.cost.keys.PARTS` alive at the first highest reading of
    ``events`` (sizes in bytes), from ``start`` (the parts alive before the step),
    each event counted in its :class:`~complexity.cost.keys.Category`.

    >>> from complexity.cost.keys import Category
    >>> from complexity.cost.predict.log import Key, What
    >>> x = Key(What.ACTIVATION, 1)
    >>> peak_parts([Event(Kind.ALLOC, 8, x, Category.ACTIVATIONS), Event(Kind.MARK, 12)],
    ...            {"weights": 4})["activations"]
    8
    """
    live = dict.fromkeys(PARTS, 0)
    live.update(start)
    best = dict(live)
    for e in events:
        if e.kind is Kind.MARK:
            if sum(live.values()) > sum(best.values()):
                best = dict(live)
            continue
        live[e.category.value] += e.size if e.kind is Kind.ALLOC else -e.size
    return best


def log_parts(log: StepLog) -> Dict[str, int]:
    """:func:`peak_parts` of a step traced at a concrete size (a
    :class:`~complexity.cost.predict.log.StepLog`): what its peak is made of."""
    return peak_parts(log.events, _resident_parts(log.weights, log.optimizer, log.scaler,
                                                  log.resident_grads, log.io))


def _resident_parts(weights, optimizer, scaler, resident_grads, io) -> Dict[str, int]:
    """The parts alive before the step: weights, the optimizer's and the GradScaler's
    state, resident ``.grad`` buffers, the input and target (activations)."""
    return dict(weights=weights, optimizer=optimizer + scaler, grads=resident_grads,
                activations=io)


def _log_at(model, sample_shape, batch, device_type, kw, traced=None) -> StepLog:
    log = step_log(model, (batch, *sample_shape), device_type, **kw)
    if traced is not None:  # what the proofs at this batch may read again
        traced.add(model, (batch, *sample_shape), log)
    return log


def step_formula(model, sample_shape: Sequence[int], device_type: Optional[str] = None, *,
                 checks: int = 5, seed: int = 0, check_range: int = 4096,
                 input_dtype=None, input_high=None, options=None) -> StepFormula:
    """The :class:`StepFormula` of ``model`` (its parameters with ``requires_grad``
    train) on inputs of shape ``(B, *sample_shape)``, fitted from two traced steps
    and verified against :func:`~complexity.cost.predict.prediction.predict` at ``checks``
    random batch sizes in ``[batch_min + 2, check_range]`` (log-uniform, drawn with
    ``seed``).
    :class:`FormulaError` if the step's structure changes with ``B`` or a check
    fails. ``device_type``: as :func:`~complexity.cost.predict.prediction.predict` takes it;
    ``options``: the step's :class:`~complexity.cost.step.options.StepOptions`.

    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 2, 1))
    >>> f = step_formula(net, (3, 16, 16))
    >>> # per sample: the input 3·16·16, the ReLU output 8·14·14 (also conv 2's input),
    >>> # log-softmax 2·14·14 (float32), target 14·14 (int64); total_weight: 4 bytes
    >>> f.formulas()["saved_activation_bytes"] == 4 * (768 + 1568 + 392) * B + 8 * 196 * B + 4
    True
    >>> len(f.checked)
    5
    """
    kw = {"input_dtype": input_dtype, "input_high": input_high, "options": options}
    sample_shape = tuple(sample_shape)
    traced = for_step(model, device_type, kw)
    start, first, second = _two_logs(model, sample_shape, device_type, kw, traced)
    f = _fitted(first, second, start, sample_shape, device_type, options)
    f.traced = traced
    for b, log in ((start, first), (start + 1, second)):
        _compare(f, b, log.values)
    rng = random.Random(seed)
    top = max(check_range, start + 2 + 4 * checks)
    picks: set = set()
    while len(picks) < checks:  # log-uniform: small batches and large ones
        picks.add(min(top, int((start + 2) * (top / (start + 2)) ** rng.random())))
    for b in sorted(picks):
        with warnings.catch_warnings():  # unmodelled calls: reported in f.unmodelled
            warnings.simplefilter("ignore", UserWarning)
            values = predict(model, (b, *sample_shape), None, device_type, **kw)
        traced.add(model, (b, *sample_shape), values)
        _compare(f, b, values)
        f.checked.append(b)
    return f


def _two_logs(model, sample_shape, device_type, kw,
              traced=None) -> Tuple[int, StepLog, StepLog]:
    """``(start, log at start, log at start + 1)``: the first two batches from which
    the step is the same schedule; :class:`FormulaError` if those two differ.
    ``traced``: a :class:`~complexity.cost.fit.traced.Traced` that keeps every log made."""
    try:
        first, start = _log_at(model, sample_shape, 1, device_type, kw, traced), 1
    except ValueError:  # e.g. BatchNorm over one value per channel: B = 1 cannot train
        first, start = _log_at(model, sample_shape, 2, device_type, kw, traced), 2
    second = _log_at(model, sample_shape, start + 1, device_type, kw, traced)
    if start == 1:
        third = _log_at(model, sample_shape, 3, device_type, kw, traced)
        if not _on_one_line(first, second, third):
            # At B = 1 a broadcast over the batch (a ViT's class token expanded to B
            # rows) is the same size as its input, so its backward hands the gradient
            # on instead of reducing into a new one; a tensor of batch-sized rows may
            # take another path at B = 1 (BERT's attention): the step from B = 2 on
            # is the regular one.
            first, second, start = second, third, 2
    if shapes(first.events) != shapes(second.events):
        raise FormulaError(f"the step's schedule differs between B={start} and B={start + 1} "
                           f"({len(first.events)} vs {len(second.events)} events): "
                           "no formula in B")
    if len(first.resident_blocks) != len(second.resident_blocks):
        raise FormulaError("the number of resident storages changes with the batch")
    for name, v in first.fixed().items():
        if v != getattr(second, name):
            raise FormulaError(f"{name} changes with the batch ({v} vs {getattr(second, name)})")
    return start, first, second


def _on_one_line(first: StepLog, second: StepLog, third: StepLog) -> bool:
    """Whether three logs at consecutive batches are one schedule whose every size
    and value lies on a line (the third where the first two put it).

    >>> from models.stack import Stack
    >>> a, b, c = (step_log(Stack(2, 4), (n, 4, 8, 8)) for n in (1, 2, 3))
    >>> _on_one_line(a, b, c), _on_one_line(a, c, b)
    (True, False)
    """
    if not shapes(first.events) == shapes(second.events) == shapes(third.events):
        return False
    on = lambda x, y, z: z - y == y - x  # noqa: E731
    return (all(on(e1.size, e2.size, e3.size)
                for e1, e2, e3 in zip(first.events, second.events, third.events))
            and all(on(first.values[k], second.values[k], third.values[k])
                    for k in first.values)
            and on(first.io, second.io, third.io))


def _fitted(first: StepLog, second: StepLog, start: int, sample_shape, device_type,
            options) -> StepFormula:
    """The :class:`StepFormula` through two logs of one schedule at ``start`` and
    ``start + 1`` (not yet checked against a prediction)."""
    io = fit_affine(first.io, second.io, start)
    resident = (first.resident_bytes() + io[0], io[1])
    events = [e.resized(fit_affine(e.size, e2.size, start))
              for e, e2 in zip(first.events, second.events)]
    # The peak starts at the resident bytes; each reading is the live bytes then.
    terms = [resident] + [e.size for e in events if e.kind is Kind.MARK]
    # The readings carry the live bytes; the same must come out of the sizes.
    check_running(resident, events)
    return StepFormula(
        sample_shape=sample_shape, device_type=device_type or "", batch_min=start,
        constants={k: first.values[k] for k in ("param_bytes", "grad_bytes",
                                                "optimizer_bytes")},
        affine={k: fit_affine(first.values[k], second.values[k], start)
                for k in ("saved_activation_bytes", "forward_flops", "backward_flops")},
        weights=first.weights, optimizer=first.optimizer,
        step_counter_bytes=first.step_counter_bytes, io=io, events=events,
        resident_blocks=[fit_affine(x, y, start) for x, y in zip(first.resident_blocks,
                                                                  second.resident_blocks)],
        peak_terms=envelope(terms, start), trainable_sizes=first.trainable_sizes,
        unmodelled=first.unmodelled, options=options,
        resident_grads=first.resident_grads, scaler=first.scaler)


def _compare(f: StepFormula, batch: int, concrete: Dict[str, int]) -> None:
    got = f.at(batch)
    wrong = [k for k in KEYS if got[k] != concrete[k]]
    if wrong:
        k = wrong[0]
        raise FormulaError(f"the formula for {k} gives {got[k]} at B={batch}, "
                           f"predict gives {concrete[k]}")
