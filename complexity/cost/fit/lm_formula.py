"""A language model's training step as formulas in the batch ``B`` and the sequence
length ``S`` (``fit --input B,S --formula``).

The step is traced once with both sizes as symbols
(:func:`complexity.cost.predict.symbolic.symbolic_step`): every key of the
prediction (weights, gradients, optimizer state, saved activations, FLOPs) comes
out as a polynomial in B and S, and the peak as the maximum of the schedule's
readings. Readings that can never be the maximum where ``B >= 1`` and ``S >= 1``
are dropped (:func:`envelope`: a reading is dropped when a weighted mean of the
others is at least as large at every such point, which holds when every
coefficient of the difference, written in ``B - 1`` and ``S - 1``, is
non-negative — an LP finds the weights; :func:`complexity.cost.fit.lattice.prune`
tests one other reading at a time). Nothing is printed unchecked: the
formulas are evaluated at random held-out ``(B, S)`` of their domain and
compared key by key with the concrete prediction
(:func:`complexity.cost.predict.prediction.predict`) at each; a disagreement
raises :class:`FormulaError`.

The domain is the trace's (PyTorch's ``ShapeEnv`` makes a size of 1 a constant,
so the sizes are traced as ``>= 2``). Batch 1 is another step, not only another
point: transformers' loss takes ``labels[..., 1:].contiguous()`` of the labels
padded by one, and for one sequence that slice is contiguous already — no copy,
so the padded labels (8 bytes more) are what backward keeps. The formulas are
for ``B >= 2``; at ``B = 1`` the concrete prediction (``fit --input 1,S``) is the
answer.

Which attention the formula assumes is the step's (docs/llm.md, "Which attention
the numbers assume"): sdpa on PyTorch's CPU flash kernel keeps q, k, v, the output
and a logsumexp row — linear in S; eager attention (Gemma-2) and sdpa's math path
keep the S×S scores — quadratic. :func:`attention_of` reads the degree in S of the
formula and the model's attention implementation.

>>> import sympy as sp
>>> B, S = sp.symbols("B S", integer=True, positive=True)
>>> envelope([10 * B * S + 5, 4 * B * S + 12, 3 * B * S + 8])   # 3BS + 8 is never the max
[10*B*S + 5, 4*B*S + 12]
"""
from __future__ import annotations

import random
from typing import Dict, List, Optional

import sympy as sp

from complexity.cost.keys import KEYS

__all__ = ["FormulaError", "envelope", "attention_of", "bs_formula", "to_json", "formula_json",
           "check_request"]

B, S = sp.symbols("B S", integer=True, positive=True)


class FormulaError(ValueError):
    """The formula in B and S disagrees with the concrete prediction, or cannot be
    traced: no formula is reported."""


def _shifted(expr, low) -> Optional[Dict]:
    """The coefficients of ``expr`` written in ``B - low[0]`` and ``S - low[1]``, by
    monomial; None when a term is not a product of the symbols (a floor, a ceiling)."""
    poly = sp.Poly(sp.expand(expr.subs({B: B + low[0], S: S + low[1]}, simultaneous=True)),
                   B, S)
    if any(not c.is_Rational for c in poly.coeffs()):
        return None
    return dict(zip(poly.monoms(), poly.coeffs()))


def envelope(readings: List[sp.Expr], low=(1, 1)) -> List[sp.Expr]:
    """``readings`` less those no larger than a weighted mean (weights >= 0, sum 1)
    of the others at every ``B >= low[0], S >= low[1]``: their maximum is unchanged there."""
    from scipy.optimize import linprog

    readings = list(dict.fromkeys(sp.expand(r) for r in readings))
    coeffs = [_shifted(r, low) if not (r.free_symbols - {B, S}) else None for r in readings]
    if any(c is None for c in coeffs):
        return readings
    kept = list(range(len(readings)))
    for i in range(len(readings)):
        others = [j for j in kept if j != i]
        if not others:
            continue
        monoms = sorted({m for j in [i, *others] for m in coeffs[j]})
        # w >= 0, sum w = 1, sum_j w_j c_j[m] - c_i[m] >= t (|c_i[m]| + 1) for every
        # monomial m, t as large as it goes: a strict slack survives rounding w
        a_ub = [[-float(coeffs[j].get(m, 0)) for j in others]
                + [float(abs(coeffs[i].get(m, 0)) + 1)] for m in monoms]
        b_ub = [-float(coeffs[i].get(m, 0)) for m in monoms]
        res = linprog([0] * len(others) + [-1], A_ub=a_ub, b_ub=b_ub,
                      A_eq=[[1] * len(others) + [0]], b_eq=[1],
                      bounds=[(0, None)] * len(others) + [(None, 1)], method="highs")
        if res.status == 0 and res.x[-1] > 0 and _dominated(coeffs, i, others, res.x, monoms):
            kept.remove(i)
    return [readings[i] for i in kept]


def _dominated(coeffs, i, others, weights, monoms) -> bool:
    """The LP's weights checked in exact arithmetic (the floats as they are, clipped
    at 0 and divided by their sum): every coefficient of the weighted mean minus
    reading ``i`` >= 0."""
    w = [sp.Rational(max(float(x), 0.0)) for x in weights[:len(others)]]
    total = sum(w)
    if total <= 0:
        return False
    w = [x / total for x in w]
    return all(sum(wj * coeffs[j].get(m, 0) for wj, j in zip(w, others))
               >= coeffs[i].get(m, 0) for m in monoms)


def attention_of(net, peak: sp.Expr) -> str:
    """Which attention the formula assumes: the model's implementation and the
    degree in S of the peak."""
    config = getattr(net, "config", None)
    impl = getattr(config, "_attn_implementation", None) or "unknown"
    degree = max((sp.Poly(r, S).degree() for r in _readings(peak)), default=0)
    growth = {0: "constant", 1: "linear", 2: "quadratic"}.get(degree, f"degree {degree}")
    how = ("scaled_dot_product_attention (on the CPU: the flash kernel unless dropout or "
           "a mask that needs grad takes the math path)" if impl == "sdpa"
           else f"{impl} attention (the S×S scores kept)" if impl == "eager"
           else f"attention implementation {impl}")
    return f"{how}: the peak is {growth} in S"


def _readings(peak: sp.Expr) -> List[sp.Expr]:
    return list(peak.args) if isinstance(peak, sp.Max) else [peak]


def _points(n: int, low, limit: Optional[int], seed: int, guards=()) -> List[tuple]:
    """``n`` held-out (B, S) from ``low`` on where every guard holds: the smallest
    batch first, then random batches and lengths, odd ones included (the trace ran
    at B = 2, S = 64)."""
    rng = random.Random(seed)
    top = max(min(limit or 4096, 4096), low[1] + 8)
    pts: List[tuple] = []
    for _ in range(1000):
        if len(pts) == n:
            break
        p = (low[0] if not pts else rng.randrange(low[0], low[0] + 8),
             rng.randrange(low[1] + 1, top + 1))
        if p not in pts and p != (2, 64) and all(
                bool(g.xreplace({B: p[0], S: p[1]})) for g in guards):
            pts.append(p)
    return pts


def _guards(s) -> List:
    """The trace's guards on B and S beyond the domain's lower bounds (Gemma-2's
    sliding window: ``S < 4095``), simplified."""
    out = []
    for g in s.guards:
        g = sp.simplify(sp.sympify(g, locals={"B": B, "S": S}))
        if g is not sp.true:
            out.append(g)
    return out


def bs_formula(net, *, device: str = "cpu", options=None, input_dtype=None, input_high=None,
               limit: Optional[int] = None, checks: int = 3, seed: int = 0,
               budget_s: float = 600.0) -> Dict:
    """The step of ``net`` on ``(B, S)`` token ids as formulas: ``{"symbols",
    "peak_bytes" (a sympy ``Max`` of the readings left), every other key, "readings",
    "attention", "checked_at", "unmodelled"}``, each expression checked against
    :func:`~complexity.cost.predict.prediction.predict` at ``checks`` held-out points
    (``S <= limit``, the model's position limit). :class:`FormulaError` if the
    trace or a check fails."""
    from complexity.cost.predict.prediction import predict
    from complexity.cost.predict.symbolic import symbolic_step

    kind = dict(input_dtype=input_dtype, input_high=input_high)
    try:
        s = symbolic_step(net, ("B", "S"), hints={"B": 2, "S": 64}, device_type=device,
                          options=options, budget_s=budget_s, **kind)
    except Exception as e:  # a guard fixed S, the budget ran out, an op without a rule
        raise FormulaError(f"the step could not be traced in B and S ({e})") from None
    if any(s.domain[n]["step"] != 1 for n in ("B", "S")):
        raise FormulaError(f"the trace confines the sizes to a lattice ({s.domain}): no "
                           "formula for every B and S")
    values = {k: sp.sympify(v) for k, v in s.values.items()}
    low = tuple(s.domain[n]["min"] for n in ("B", "S"))
    readings = envelope(s.readings.exprs, low)
    values["peak_bytes"] = _peak(readings)
    readings = _readings(values["peak_bytes"])
    guards = _guards(s)
    pts = _points(checks, low, limit, seed, guards)
    for b, n in pts:
        want = predict(net, (b, n), None, device, options=options, **kind)
        got = {k: int(v.xreplace({B: b, S: n})) if k != "peak_bytes" else
               max(int(r.xreplace({B: b, S: n})) for r in readings) for k, v in values.items()}
        bad = [k for k in KEYS if k in want and got.get(k) != want[k]]
        if bad:
            raise FormulaError(f"the formula in B and S disagrees with the prediction at "
                               f"B={b}, S={n} on {', '.join(bad)}")
    return {"symbols": ["B", "S"], **{k: values[k] for k in KEYS if k in values},
            "readings": len(readings), "readings_traced": len(s.readings.terms),
            "attention": attention_of(net, values["peak_bytes"]),
            "domain": {"B": low[0], "S": low[1]}, "guards": [str(g) for g in guards],
            "checked_at": [list(p) for p in pts], "unmodelled": list(s.unmodelled)}


def to_json(f: Dict) -> Dict:
    """:func:`bs_formula`'s answer as JSON: each expression as sympy's string (which
    ``sympy.sympify`` reads back; the peak a ``Max(...)`` of the readings left)."""
    return {k: (str(v) if isinstance(v, sp.Basic) else v) for k, v in f.items()}


def _peak(readings: List[sp.Expr]) -> sp.Expr:
    """The maximum of ``readings`` as sympy evaluates it on positive integer B, S
    (it drops a reading it proves never the larger): what the JSON string reads
    back as."""
    return sp.Max(*readings) if len(readings) > 1 else readings[0]


def formula_json(net, *, device: str = "cpu", options=None, input_dtype=None,
                 input_high=None) -> Dict:
    """:func:`bs_formula` up to the model's position limit, as JSON (:func:`to_json`)."""
    config = getattr(net, "config", None)
    limit = (getattr(config, "max_position_embeddings", None)
             or getattr(config, "n_positions", None))
    return to_json(bs_formula(net, device=device, options=options, input_dtype=input_dtype,
                              input_high=input_high, limit=limit))


def check_request(net, shape, kind: Dict) -> None:
    """:class:`~complexity.errors.OptionError` naming ``formula`` unless the input is
    ``(B, S)`` (``shape``) of token ids (``kind``:
    :func:`complexity.cost.step.batch.input_kind`), before anything is traced."""
    import torch

    from complexity.errors import NAMED, OptionError

    if shape is None or len(shape) != 2:
        raise OptionError("{formula} is a formula in B and S: give {input_shape} as B,S",
                          formula=NAMED, input_shape=NAMED)
    if kind.get("input_dtype") is not torch.long:
        raise OptionError("{formula} is for a model that takes token ids (B sequences of S "
                          "tokens)", formula=NAMED)
