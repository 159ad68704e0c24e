"""One training step predicted once for every input size: the step traced with
its sizes as symbols.

:func:`symbolic_step` runs the same prediction as
:func:`complexity.cost.predict.prediction.predict_step` — the trace
(:mod:`~complexity.cost.predict.trace`), the per-call rules, the liveness schedule
(:func:`~complexity.cost.predict.schedule.peak`) — on fake tensors whose chosen
dimensions (the batch ``B``; ``S`` of a text model, ``H``, ``W`` of an image,
``T``, ``H``, ``W`` of a video) are symbols of a ``ShapeEnv``, as ``derive`` traces
(:mod:`complexity.counting.symbolic_shapes`). Every storage's size comes out as a
sympy expression with the floors of strided layers kept; the schedule then runs on
those expressions, unchanged: as :class:`Lin` values (sums of monomials whose
additions are dict merges, not sympy's), and its peak readings are collected as a
:class:`Readings` — each reading kept unless another provably covers it (their
difference has only non-negative coefficients over non-negative monomials: sizes,
floors and ceilings of them) — whose maximum is the peak (``sympy.Max`` of the
readings left). Kept bytes, parameter, gradient and
optimizer bytes and FLOPs are sums of the same expressions.

The trace's guards (the conditions PyTorch checked on the sizes) are its domain,
as for ``derive`` (:func:`complexity.counting.symbolic_shapes.domain_of`). Nothing
here is trusted unchecked: :meth:`SymbolicStep.at` evaluates every quantity at a
point, and the tests and ``benchmarks/symbolic.py`` compare it with the concrete
:func:`~complexity.cost.predict.prediction.predict` at random held-out points,
odd sizes included.

>>> from models.stack import Stack
>>> s = symbolic_step(Stack(2, 4), ("B", 4, "H", "W"), hints={"B": 2, "H": 8, "W": 8})
>>> s.values["forward_flops"]  # two 3x3 convolutions of 4 channels, with bias
592*B*H*W
>>> from complexity.cost.predict.prediction import predict
>>> s.at(B=3, H=9, W=7) == predict(Stack(2, 4), (3, 4, 9, 7))
True
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Union

import sympy as sp

__all__ = ["Lin", "Readings", "maximum", "symbolic_step", "SymbolicStep", "DEFAULT_HINTS"]

#: The sizes a symbol is traced at, unless given: none may be 0 or 1 (a ShapeEnv
#: makes those constants).
DEFAULT_HINTS = {"B": 2, "S": 16, "T": 8, "H": 64, "W": 64}


@functools.lru_cache(maxsize=None)
def _nonnegative(monomial) -> bool:
    """Whether a product of factors of sizes is non-negative at every point: each
    factor a positive symbol, a positive power of one, or a floor/ceiling of a sum
    of such with non-negative coefficients and constant."""
    for f in sp.Mul.make_args(monomial):
        if isinstance(f, sp.Pow) and f.exp.is_Integer and f.exp > 0:
            f = f.base
        if f.is_Symbol and f.is_positive:
            continue
        if isinstance(f, (sp.floor, sp.ceiling)) and all(
                c >= 0 and (m == 1 or _nonnegative(m))
                for m, c in sp.expand(f.args[0]).as_coefficients_dict().items()):
            continue
        if f == 1:
            continue
        return False
    return True


class Lin:
    """A size or FLOP count as a sum of monomials (products of symbols and their
    floors and ceilings) with rational coefficients: what the schedule adds and
    subtracts, without sympy's arithmetic for each step (a dict merge instead).

    >>> B, H = sp.symbols("B H", integer=True, positive=True)
    >>> x = Lin.of(4 * B * sp.ceiling(H / 2) + 8)
    >>> (3 * x - x + 1).expr
    8*B*ceiling(H/2) + 17
    """

    __slots__ = ("terms",)

    def __init__(self, terms: Dict):
        self.terms = {m: c for m, c in terms.items() if c}

    @classmethod
    def of(cls, expr) -> "Lin":
        return cls(dict(sp.expand(expr).as_coefficients_dict()))

    @property
    def expr(self) -> sp.Expr:
        return sp.Add(*[c * m for m, c in self.terms.items()])

    def _merged(self, other, sign: int) -> "Lin":
        terms = dict(self.terms)
        items = other.terms.items() if isinstance(other, Lin) else [(sp.S.One, other)]
        for m, c in items:
            terms[m] = terms.get(m, 0) + sign * c
        return Lin(terms)

    def __add__(self, other):
        return self._merged(other, 1)

    __radd__ = __add__

    def __sub__(self, other):
        return self._merged(other, -1)

    def __rsub__(self, other):
        return (-1 * self)._merged(other, 1)

    def __mul__(self, k):
        if isinstance(k, Lin):
            return Lin.of(self.expr * k.expr)
        return Lin({m: c * k for m, c in self.terms.items()})

    __rmul__ = __mul__

    def __floordiv__(self, k):  # exact divisions only (a count of elements)
        return Lin.of(sp.floor(self.expr / k))

    def __eq__(self, other):
        return (self - other).terms == {}

    def __hash__(self):
        return hash(frozenset(self.terms.items()))

    def __bool__(self):
        return bool(self.terms)

    def covers(self, other) -> bool:
        """``self >= other`` at every point, provably: every coefficient of the
        difference non-negative, over non-negative monomials (:func:`_nonnegative`)."""
        d = (self - other).terms
        return all(c >= 0 and (m == 1 or _nonnegative(m)) for m, c in d.items())


def _lin(v):
    return v if isinstance(v, Lin) else Lin({sp.S.One: v})


@dataclass
class Readings:
    """The peak readings of a schedule on symbolic sizes, none provably below
    another (:meth:`Lin.covers`); the peak is their maximum (:attr:`peak`)."""

    terms: List[Lin] = field(default_factory=list)

    def add(self, reading) -> "Readings":
        reading = _lin(reading)
        if any(e.covers(reading) for e in self.terms):
            return self
        self.terms = [e for e in self.terms if not reading.covers(e)] + [reading]
        return self

    @property
    def exprs(self) -> List[sp.Expr]:
        return [t.expr for t in self.terms]

    @property
    def peak(self) -> sp.Expr:
        exprs = self.exprs
        # unevaluated: sympy's own Max would compare every pair again, by assumptions
        return sp.Max(*exprs, evaluate=False) if len(exprs) > 1 else exprs[0]

    def at(self, subs: Dict[sp.Symbol, int]) -> int:
        return max(int(e.xreplace(subs)) for e in self.exprs)


def maximum(peak, live):
    """The schedule's ``max`` for symbolic sizes: the readings so far, with ``live``."""
    if not isinstance(peak, Readings):
        peak = Readings([_lin(peak)])
    return peak.add(live)


@dataclass
class SymbolicStep:
    """The step's quantities (:data:`complexity.cost.keys.KEYS`) as sympy
    expressions in ``symbols`` (the peak a ``sympy.Max`` of ``readings``), on
    ``domain`` where ``guards`` hold; ``unmodelled``: calls without a rule (the
    values are then approximate, as :func:`~complexity.cost.predict.prediction.mark` says)."""

    symbols: List[str]
    values: Dict[str, sp.Expr]
    readings: Readings
    domain: Dict[str, Dict[str, int]]
    guards: List
    unmodelled: List[str]

    def at(self, **point: int) -> Dict[str, int]:
        """Every quantity at ``point`` (each symbol given), as integers."""
        subs = {sp.Symbol(n, integer=True, positive=True): v for n, v in point.items()}
        out = {k: int(sp.sympify(v).xreplace(subs)) for k, v in self.values.items()
               if k != "peak_bytes"}
        out["peak_bytes"] = self.readings.at(subs)
        return out


def _shape(env, template: Sequence[Union[int, str]], hints: Dict[str, int]):
    """The input shape with a SymInt for every letter of ``template``, and
    ``{letter: its ShapeEnv symbol}``."""
    from torch._dynamo.source import ConstantSource
    from torch.fx.experimental.symbolic_shapes import DimDynamic

    shape, internal = [], {}
    for d in template:
        if isinstance(d, str):
            hint = hints.get(d, DEFAULT_HINTS.get(d, 16))
            s = env.create_symbol(hint, ConstantSource(d), dynamic_dim=DimDynamic.DYNAMIC)
            internal[d] = s
            shape.append(env.create_symintnode(s, hint=hint))
        else:
            shape.append(int(d))
    return shape, internal


def _to_sympy_graph(g, to_user) -> None:
    """Every size and FLOP count of graph ``g`` from SymInt to a sympy expression
    in the user's symbols (plain ints stay ints), in place."""
    import torch

    from complexity.counting.symbolic_shapes import to_sympy

    seen: Dict = {}

    def conv(v):
        if not isinstance(v, torch.SymInt):
            return v
        e = v.node.expr
        if e not in seen:
            seen[e] = Lin.of(to_sympy(e, to_user))
        return seen[e]

    for table in (g.storage_bytes, g.value_bytes, g.params):
        for k, v in table.items():
            table[k] = conv(v)
    for c in g.calls:
        c.forward_flops, c.backward_flops = conv(c.forward_flops), conv(c.backward_flops)
        c.transient = conv(c.transient)


def symbolic_step(model, input_shape: Sequence[Union[int, str]], *, hints=None, target=None,
                  device_type: Optional[str] = None, input_dtype=None, input_high=None,
                  options=None, budget_s: float = 60.0) -> SymbolicStep:
    """The step of ``model`` predicted once on an input of ``input_shape``, whose
    letters (``("B", 3, "H", "W")``, ``("B", "S")``) are symbols traced at
    ``hints`` (default :data:`DEFAULT_HINTS`); the other arguments as
    :func:`~complexity.cost.predict.prediction.predict` takes them. Raises
    :class:`complexity.counting.trace_watch.Specialised` when a guard fixes or
    confines a symbol, :class:`~complexity.counting.trace_watch.Unsupported` past
    ``budget_s`` seconds (one line naming the op and module)."""
    from torch._dispatch.python import enable_python_dispatcher
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    from complexity.cost.predict.prediction import predict_step, step_graph
    from complexity.cost.step.options import StepOptions
    from complexity.counting.floor_rules import short_sizes
    from complexity.counting.symbolic_shapes import domain_of
    from complexity.counting.trace_watch import Budget

    options = options or StepOptions()
    hints = dict(hints or {})
    env = ShapeEnv()
    fake = FakeTensorMode(shape_env=env, allow_non_fake_inputs=True)
    fake.cache_enabled = False  # see complexity.counting.symbolic_shapes.trace
    shape, internal = _shape(env, input_shape, hints)
    with fake, short_sizes(), enable_python_dispatcher(), Budget(budget_s, lambda: "the step"):
        g = step_graph(model, shape, target, device_type, input_dtype, input_high, options)
    to_user, domain, guards = domain_of(
        env, internal, {n: int(env.var_to_val[s]) if not hasattr(env, "backed_var_to_val")
                        else int(env.backed_var_to_val[s]) for n, s in internal.items()})
    _to_sympy_graph(g, to_user)
    p = predict_step(model, shape, target, device_type, input_dtype=input_dtype,
                     input_high=input_high, options=options, graph=g, maximum=maximum)
    readings = maximum(p.values["peak_bytes"], 0)
    values = {k: _lin(v).expr for k, v in p.values.items() if k != "peak_bytes"}
    values["peak_bytes"] = readings.peak
    return SymbolicStep(list(internal), values, readings, domain, guards, p.unmodelled)
