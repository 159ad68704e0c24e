"""Formulas in input sizes from ONE forward pass on symbolically sized fake tensors.

The input's chosen dimensions (H, W, a sequence length, the batch) become
symbols of a ``ShapeEnv`` (``torch.fx.experimental.symbolic_shapes``); the model
runs once under ``FakeTensorMode`` with the same counting :func:`profile` does —
``FlopCounterMode`` for MACs, forward hooks on every leaf module for output
units — so every count comes out as a sympy expression, with the floor divisions
of every strided layer kept (``ceiling(H/32)``), valid for every size the trace's
*guards* allow. The guards (the conditions PyTorch checked on the sizes while
running: ``H//2 != 1``, ``H % 4 == 0``) become the domain. A guard that fixes a
symbol to one value (a ViT asserting its image size) is a *specialisation*:
nothing general can be said, and :class:`Specialised` says which guard did it.

The result is still verified by :func:`verify` at ≥ 20 random points of the
domain (odd sizes included) against concrete counts, by the caller's counter.

>>> import torch
>>> from torch import nn
>>> from complexity.counting.derive import domain_text
>>> net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU())
>>> r = trace(net, (1, 3, 16, 16), {"H": 2, "W": 3})
>>> r["formulas"]["macs"], domain_text(r)  # by hand: 4·27 MACs per output position
(108*ceiling(H/2)*ceiling(W/2), 'H >= 3; W >= 3')
"""
from __future__ import annotations

import math
import random
from fractions import Fraction
from typing import Callable, Dict, List, Sequence

import sympy as sp
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from complexity.counting.derive import QUANTITIES, DeriveError, point_text, relation_text
from complexity.counting.domain import Lattice, contains, lattice
from complexity.counting.floor_rules import short_sizes
from complexity.counting.hooks import kind_of, mode
from complexity.counting.profile import (decomposed_attention, param_owners, selectors,
                                         shortcut_norms, units)
from complexity.counting.trace_watch import (Budget, Confinement, Running, Specialised, Unsupported,
                                             light_source_locations)
from complexity.errors import reason

_pos = dict(integer=True, positive=True)
#: how far up the smallest admissible size is searched for (binary search)
_MAX_MIN = 1 << 16
#: how many lattice sizes after the traced one an equation guard is tried at
_NEAR = 64


def _expr(value) -> sp.Expr:
    """A count (int or SymInt) as a sympy expression in the ShapeEnv's symbols."""
    if isinstance(value, torch.SymInt):
        return value.node.expr
    return sp.Integer(int(value))


def to_sympy(expr: sp.Expr, names: Dict[sp.Symbol, sp.Symbol]) -> sp.Expr:
    """A ShapeEnv expression (``FloorDiv``, ``PythonMod`` …) in plain sympy with the
    user's symbols: ``floor``, ``ceiling``, ``Mod``, ``Max``. ``Unsupported`` for a
    function it does not know (no unverified translation is guessed).

    >>> from torch.utils._sympy.functions import FloorDiv
    >>> s = sp.Symbol("s0", integer=True, positive=True)
    >>> to_sympy(FloorDiv(s - 1, 32) + 1, {s: sp.Symbol("H", **_pos)})
    ceiling(H/32)
    """
    def conv(e):
        if e in names:
            return names[e]
        if e.is_Atom:
            return e
        args = [conv(a) for a in e.args]
        name = type(e).__name__
        if name == "FloorDiv":
            return sp.floor(args[0] / args[1])
        if name == "CleanDiv" or name == "IntTrueDiv":
            return args[0] / args[1]
        if name in ("PythonMod", "Mod"):
            return sp.Mod(*args)
        if name == "ModularIndexing":
            return sp.Mod(sp.floor(args[0] / args[1]), args[2])
        if name in ("FloorToInt",):
            return sp.floor(args[0])
        if name in ("CeilToInt",):
            return sp.ceiling(args[0])
        if name in ("Max",):
            return sp.Max(*args)
        if name in ("Min",):
            return sp.Min(*args)
        if isinstance(e, (sp.Add, sp.Mul, sp.Pow, sp.Rel, sp.And, sp.Or, sp.Not)):
            return e.func(*args)
        raise Unsupported(f"the symbolic trace produced {name}, which is not translated")

    return _tidy(conv(expr))


def _tidy(expr):
    """``floor((H - 1)/b) + 1`` → ``ceiling(H/b)``, then expanded: equal for every
    integer H (⌊(H−1)/b⌋ + 1 = ⌈H/b⌉), shorter to read."""
    def ceil_form(e):
        num, den = sp.fraction(sp.together(e.args[0]))
        num = sp.expand(num)
        c = num.as_coeff_Add()[0]
        # floor((x + c)/b) = ceiling((x + c + 1)/b) - 1; neat when b divides c + 1
        if den.is_Integer and den > 1 and c < 0 and (c + 1) % den == 0:
            return sp.ceiling((num - c) / den) + (c + 1) / den - 1
        return e
    if isinstance(expr, sp.Basic) and not isinstance(expr, sp.logic.boolalg.Boolean):
        expr = expr.replace(lambda e: isinstance(e, sp.floor), ceil_form)
        return sp.expand(expr)
    return expr


def _holds(guard, values: Dict[sp.Symbol, int]) -> bool:
    return bool(guard.xreplace({s: sp.Integer(v) for s, v in values.items()}))


def trace(module: nn.Module, input_shape: Sequence[int], dims: Dict[str, int],
          convention: str = "torch", budget_s: float = 10.0, input_dtype=None) -> Dict:
    """One forward of ``module`` on a fake input of ``input_shape`` whose dimensions
    ``dims`` (``{name: index}``) are symbols. Returns ``{"symbols", "formulas",
    "domain", "guards"}``: sympy formulas for params, outputs and MACs in
    positive-integer symbols named as ``dims``; ``domain`` per symbol ``{"min",
    "step", "residue"}``; ``guards``: the conditions of the trace that these do not
    already imply, as sympy relations. Raises :class:`Specialised` when a guard fixes
    a symbol, :class:`Unsupported` when the trace cannot run. ``input_dtype``: the
    input's when not float32 (``torch.long`` token ids).
    """
    from torch._dispatch.python import enable_python_dispatcher
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import (DimDynamic, ShapeEnv,
                                                       StatelessSymbolicContext)

    rank = len(input_shape)
    index = {name: d % rank for name, d in dims.items()}
    env = ShapeEnv()
    fake = FakeTensorMode(shape_env=env)
    # The fake-tensor cache rebuilds every output's sizes from a cache entry through
    # SymInt arithmetic: with symbolic sizes that costs more than it saves (swin_t
    # 12.4 s with it, 7 s without; resnet18 0.49 s, 0.34 s).
    fake.cache_enabled = False
    dynamic = [DimDynamic.STATIC] * rank
    for d in index.values():
        dynamic[d] = DimDynamic.DYNAMIC
    counts_weight, counts_output = selectors(convention)
    leaves = [m for m in module.modules() if next(m.children(), None) is None]
    outputs: List = []

    def hook(mod, _inputs, output):
        if counts_output(kind_of(mod)):
            outputs.append(units(output))

    counter = FlopCounterMode(display=False)
    handles = [m.register_forward_hook(hook) for m in leaves]
    # BatchNorm, LayerNorm as "a new tensor of the input's shape": same shape, no
    # FlopCounterMode formula; their fake decompositions are most of the trace time
    # otherwise.
    patched = shortcut_norms(module)
    # Fake meta tensors throughout, and meta the default device so that tensors the
    # forward makes itself (torch.arange, masks) sit with the input and weights
    # (fake CPU tensors pick up guards of CPU kernel heuristics, e.g. numel <= 20480).
    # The input is made outside the fake mode (from_tensor makes its sizes symbols).
    real = torch.empty(*input_shape, dtype=input_dtype, device="meta")
    tensors = [*module.named_parameters(), *module.named_buffers()]
    watch = Running(module, env)
    confinement = Confinement(env, watch.here)
    budget = Budget(budget_s, watch.here, confinement.check)
    handles += watch.hooks()
    locations = light_source_locations()
    locations.__enter__()
    try:
        with fake:
            x = fake.from_tensor(real,
                                 symbolic_context=StatelessSymbolicContext(dynamic_sizes=dynamic))
            # fixed-shape stand-ins, nothing allocated; the module is left alone
            state = {n: torch.empty(t.shape, dtype=t.dtype, device="meta") for n, t in tensors}
        internal = {name: x.shape[d].node.expr for name, d in index.items()}
        user = {s: sp.Symbol(name, **_pos) for name, s in internal.items()}
        confinement.name({s: name for name, s in internal.items()},
                         lambda g: relation_text(to_sympy(g, user)))
        # the python dispatcher runs the Python decompositions of composite ops
        # (upsample with a scale factor, constant_pad_nd), which keep sizes symbolic
        # where the C++ kernels need concrete ones; attention decomposed as profile
        # does on cpu, so FlopCounterMode sees the same linear/bmm ops
        with mode(module, False), torch.no_grad(), torch.device("meta"), \
                decomposed_attention(), enable_python_dispatcher(), short_sizes(), fake, \
                counter, budget:
            torch.func.functional_call(module, state, (x,))
    except DeriveError:
        raise
    except Exception as e:
        lines = str(e).strip().splitlines()
        op = next((ln.split("run meta for ")[1].split()[0] for ln in lines
                   if "run meta for " in ln), None)
        what = f"op {op} " if op else ""
        raise Unsupported(f"the symbolic trace failed at {what}({reason(e)})") from None
    finally:
        locations.__exit__(None, None, None)
        for h in handles:
            h.remove()
        for m in patched:
            del m.forward

    return _result(module, input_shape, dims, index, env, internal, watch, outputs, counter,
                   counts_weight)


def _result(module, input_shape, dims, index, env, internal, watch, outputs, counter,
            counts_weight) -> Dict:
    """:func:`trace`'s result from its shape environment: the formulas in the
    user's symbols, :class:`Specialised` if a guard fixed one, the domain and the
    guards it does not imply."""
    to_user, domain, rest = domain_of(env, internal, {n: int(input_shape[index[n]]) for n in dims},
                                      watch.where)
    formulas = {
        "params": sp.Integer(sum(n for _, n, _ in param_owners(module, counts_weight))),
        "outputs": to_sympy(sum((_expr(v) for v in outputs), sp.Integer(0)), to_user),
        "macs": to_sympy(_expr(counter.get_total_flops()), to_user) / 2,
    }
    return {"symbols": list(dims), "formulas": {q: sp.expand(formulas[q]) for q in QUANTITIES},
            "domain": domain, "guards": rest}


def domain_of(env, internal: Dict[str, sp.Expr], hint: Dict[str, int],
              where: Callable = lambda i, g: "the forward"):
    """``(to_user, domain, guards)`` of a trace on the shape environment ``env``
    whose input sizes ``internal`` (``{name: its ShapeEnv symbol}``) were traced at
    ``hint``: the map from ShapeEnv symbols to positive-integer symbols named as the
    user named them, the domain per name (``{"min", "step", "residue"}``) and the
    guards it does not imply (sympy relations). :class:`Specialised` when a guard
    fixed a size. ``where(i, guard)``: where the ``i``-th guard arose, in words."""
    symbols = {name: sp.Symbol(name, **_pos) for name in internal}
    to_user = {internal[n]: symbols[n] for n in internal}
    for n, s in internal.items():
        r = env.replacements.get(s)
        if r is not None and r.is_Integer:
            guard = next((f"{relation_text(to_sympy(g.expr, to_user))} at {where(i, g)}"
                          for i, g in enumerate(env.guards)
                          if s in g.expr.free_symbols and isinstance(g.expr, sp.Eq)), "a guard")
            raise Specialised(f"{n} is fixed to {r} by the forward: guard {guard}; "
                              f"no formula in {n}")
    guards = []
    for i, g in enumerate(env.guards):
        expr = to_sympy(g.expr, to_user)
        if expr is not sp.true:
            guards.append((expr, where(i, g)))
    domain, rest = _domain(symbols, guards,
                           {n: int(env.var_to_range[internal[n]].lower) for n in internal},
                           hint)
    return to_user, domain, rest


def _domain(symbols: Dict[str, sp.Symbol], guards: List, lower: Dict[str, int],
            hint: Dict[str, int]):
    """Per symbol ``{"min", "step", "residue"}`` and the guards these do not imply;
    ``guards`` are ``(relation, where)`` pairs, ``hint`` the traced sizes.

    A one-symbol equation that holds at none of the next lattice points after the
    traced size fixes the symbol: :class:`Specialised`.
    ``Mod(H, m) == r`` guards set the lattice (step m); on it, the smallest min for
    which interval arithmetic (``bound_sympy``) proves every one-symbol guard for
    all larger values is found by binary search (provability only grows with min).
    """
    from torch.utils._sympy.value_ranges import ValueRanges, bound_sympy

    steps = {n: (1, 0) for n in symbols}
    rest = []
    for g, _ in guards:
        if isinstance(g, sp.Eq) and len(g.free_symbols) == 1:
            (s,) = g.free_symbols
            lhs, rhs = (g.lhs, g.rhs) if isinstance(g.lhs, sp.Mod) else (g.rhs, g.lhs)
            if isinstance(lhs, sp.Mod) and lhs.args[0] == s and lhs.args[1].is_Integer \
                    and rhs.is_Integer:
                m, r = int(lhs.args[1]), int(rhs) % int(lhs.args[1])
                old_m, old_r = steps[s.name]
                if old_m == 1:
                    steps[s.name] = (m, r)
                    continue
                if r == 0 and old_r == 0:  # both multiples: of the lcm
                    steps[s.name] = (m * old_m // math.gcd(m, old_m), 0)
                    continue
        rest.append(g)
    for g, where in guards:
        if isinstance(g, sp.Eq) and len(g.free_symbols) == 1 and not g.has(sp.Mod):
            (s,) = g.free_symbols
            step, _ = steps[s.name]
            held = sum(_holds(g, {s: hint[s.name] + step * j}) for j in range(1, _NEAR + 1))
            if held == 0:
                raise Specialised(f"{s} is fixed by the forward: guard {relation_text(g)} at {where}; "
                                  f"no formula in {s}")
            if 2 * held < _NEAR:  # a sliver of the sizes (swin_t at 224: its last stage 7 wide)
                raise Specialised(
                    f"{s} is confined by the forward: guard {relation_text(g)} at {where} holds "
                    f"at {held} of the {_NEAR} sizes after {hint[s.name]}; no formula in {s} "
                    "(a trace at another size takes the other branch)")

    parametrised = {}  # s -> step·t + residue, t a fresh positive symbol: Mod guards vanish
    for n, s in symbols.items():
        step, residue = steps[n]
        # on the plain lattice (step 1) the symbol is its own parameter: substituting
        # a fresh one would rebuild every guard through sympy's evaluation for nothing
        t = s if step == 1 else sp.Symbol(f"_t_{n}", integer=True, nonnegative=True)
        parametrised[s] = (step * t + residue, t, step, residue)

    on_lattice = {}  # guard -> guard on the lattice; built once, not per binary-search step

    def proven(g, lows) -> bool:
        if g not in on_lattice:
            on_lattice[g] = g.xreplace({s: parametrised[s][0] for s in g.free_symbols})
        on = on_lattice[g]
        if on in (sp.true, True):
            return True
        if on in (sp.false, False):
            return False
        ranges = {}
        for s in g.free_symbols:
            _, t, step, residue = parametrised[s]
            ranges[t] = ValueRanges(max(0, -(-(lows[s.name] - residue) // step)), sp.oo)
        try:
            return bound_sympy(on, ranges) == ValueRanges(sp.true, sp.true)
        except Exception:  # interval arithmetic not defined for it: keep it as stated
            return False

    lattices = {}
    for n, s in symbols.items():
        mine = [g for g in rest if g.free_symbols == {s}]
        lo, hi = max(1, lower[n]), _MAX_MIN
        if not all(proven(g, {n: hi}) for g in mine):
            lo = None  # cannot be proven anywhere: keep the guards as conditions
        else:
            while lo < hi:
                mid = (lo + hi) // 2
                if all(proven(g, {n: mid}) for g in mine):
                    hi = mid
                else:
                    lo = mid + 1
        low = lower[n] if lo is None else lo
        lattices[n] = Lattice(low, *steps[n]).starting_at(low)  # from its first point ≥ low
    left = [g for g in rest if not proven(g, {n: lat.min for n, lat in lattices.items()})]
    return {n: lattices[n].to_dict() for n in symbols}, left


def in_domain(result: Dict, point: Dict[str, int]) -> bool:
    """Whether ``point`` lies in a traced result's domain (lattice, min, guards)."""
    if not contains(result["domain"], point):
        return False
    values = {sp.Symbol(n, **_pos): v for n, v in point.items()}
    return all(_holds(g, values) for g in result["guards"])


def verify(result: Dict, count: Callable[[Dict[str, int]], Dict], base: Dict[str, int],
           checks: int = 20, seed: int = 0) -> int:
    """Check the traced formulas against ``count`` at ``checks`` random points of
    the domain other than ``base``, odd sizes included (where the lattice has them);
    the number checked, or :class:`DeriveError` with the first disagreement."""
    rng = random.Random(seed)
    names = result["symbols"]
    symbols = {n: sp.Symbol(n, **_pos) for n in names}
    used = {tuple(base[n] for n in names)}
    points, tries = [], 0
    while len(points) < checks and tries < 200 * checks:
        tries += 1
        point = {}
        for n in names:
            lat = lattice(result["domain"], n)
            top = max(2 * base[n], lat.min + 64 * lat.step)
            v = lat.min + lat.step * rng.randint(0, (top - lat.min) // lat.step)
            if len(points) % 2 == 0 and v % 2 == 0 and lat.step % 2 == 1:
                v += lat.step  # every other point odd: odd sizes floor differently
            point[n] = v
        key = tuple(point[n] for n in names)
        if key not in used and in_domain(result, point):
            used.add(key)
            points.append(point)
    if len(points) < checks:
        raise DeriveError(f"fewer than {checks} fresh points in the traced domain; "
                          "no formula printed")
    for point in points:
        try:
            counts = count(dict(point))
        except Exception as e:
            raise DeriveError(f"the model cannot be counted at {point_text(point)} inside the "
                              f"traced domain ({reason(e)}); "
                              "no formula printed") from None
        subs = {symbols[n]: v for n, v in point.items()}
        for q in QUANTITIES:
            predicted = result["formulas"][q].xreplace(subs)
            value = Fraction(counts[q])
            if predicted != sp.Rational(value.numerator, value.denominator):
                raise DeriveError(f"the traced {q} formula gives {predicted} at {point_text(point)}, "
                                  f"counted {counts[q]}; no formula printed")
    return len(points)
