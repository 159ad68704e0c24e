"""Formulas for any model, inferred from exact counts and then verified.

The counts of a network (params, outputs, MACs) are, on a suitable domain,
polynomials in its input size and integer constructor arguments. This module
finds them without knowing the architecture:

1. **Degree and domain per symbol.** Vary one symbol along ``base + j·step``
   (the others at their base values) and take finite differences: a polynomial of
   degree d has vanishing (d+1)-th differences. Strided convolutions and pooling
   floor (⌊(H + 2p − k)/s⌋ + 1), which is no polynomial in H on all integers, but
   is one on ``H ≡ base (mod s)``: the step is raised through 1, 2, 4, … 64 until
   the differences vanish (the domain is *narrowed*, and the answer says so).
2. **Exact interpolation.** On the tensor grid of (degree + 1) points per symbol
   the unique polynomial through the counts is built by Lagrange interpolation in
   exact rationals (sympy), so no rounding can creep in.
3. **Verification.** The formulas are checked against fresh counts at ≥ 20 random
   points of the domain, none of them used to build the formulas. If any point
   disagrees, or the model fails there, no formula is returned
   (:class:`DeriveError`): an unverified formula is never printed.

Counting stays with the caller: :func:`derive` takes any function from a point
(``{symbol: int}``) to ``{"params", "outputs", "macs"}``; :func:`model_counter`
makes one from a model spec with :func:`complexity.counting.profile.profile`.

>>> f = lambda p: {"params": 3 * p["n"] ** 2, "outputs": (p["H"] // 4) ** 2, "macs": 0}
>>> r = derive(f, ["n", "H"], {"n": 2, "H": 8})
>>> r["formulas"]["params"], r["formulas"]["outputs"], r["domain"]["H"]["step"]
(3*n**2, H**2/16, 4)
>>> r["verified_points"] >= 20
True
"""
from __future__ import annotations

import keyword

import random
from fractions import Fraction
from itertools import product
from typing import Callable, Dict, List, Optional, Sequence

import sympy as sp

from complexity.counting.domain import Lattice, text as render_domain
from complexity.counting.lattice import LADDER, NoLattice, scan
from complexity.errors import NAMED, OptionError, literal, reason

QUANTITIES = ("params", "outputs", "macs")
_pos = dict(integer=True, positive=True)


class DeriveError(ValueError):
    """No verified formula could be found; one line saying why."""


class _Outside(Exception):
    """The model could not be counted at a point (outside its domain)."""


def derive(count: Callable[[Dict[str, int]], Dict[str, int]], names: Sequence[str],
           base: Dict[str, int], max_degree: int = 4, checks: int = 20, seed: int = 0,
           confirm: int = 3) -> Dict:
    """Verified polynomial formulas of ``count`` in the symbols ``names``.

    Returns ``{"symbols", "domain", "formulas", "verified_points", "narrowed"}``:
    sympy expressions in positive-integer symbols named ``names``; ``domain`` maps
    each name to ``{"min", "step", "residue"}`` (the formulas hold for every value
    ≥ min congruent to residue modulo step, checked at ``verified_points`` random
    points). Raises :class:`DeriveError` when no polynomial of degree ≤
    ``max_degree`` per symbol fits on any lattice of the ladder, or it fails a check.
    """
    names = list(names)
    cache: Dict[tuple, Optional[Dict[str, int]]] = {}
    failures: List[str] = []

    def at(point: Dict[str, int]) -> Dict[str, int]:
        key = tuple(point[n] for n in names)
        if key not in cache:
            try:
                # Fraction: exact for integers and for half-integer MACs alike
                cache[key] = {q: Fraction(v) for q, v in count(dict(point)).items()}
            except Exception as e:  # a size or width the model rejects: outside its domain
                failures.append(f"{point_text(point)}: {reason(e)}")
                cache[key] = None
        if cache[key] is None:
            raise _Outside(point)
        return cache[key]

    steps, degrees, narrowed = {}, {}, []
    for n in names:
        try:
            steps[n], degrees[n] = _scan(at, n, base, max_degree, confirm)
        except NoLattice as e:
            lattices = f"{n} = {base[n]} + s*j for s in {', '.join(map(str, LADDER))}"
            if e.only_failures and failures:  # the model, not the counts, ended every try
                raise DeriveError(f"{n} cannot vary: the model fails at {failures[0]} "
                                  f"(tried {lattices}); no formula printed") from None
            raise DeriveError(f"the counts are not polynomial in {n} (degree <= {max_degree}) "
                              f"on any lattice {lattices}; no formula printed") from None
        if steps[n] > 1:
            narrowed.append(n)

    symbols = {n: sp.Symbol(n, **_pos) for n in names}
    axes = {n: [base[n] + j * steps[n] for j in range(degrees[n] + 1)] for n in names}
    try:
        formulas = _interpolate(at, names, axes, symbols)
    except _Outside as e:
        raise DeriveError(f"the model cannot be counted at grid point {point_text(e.args[0])}; "
                          "no formula printed") from None

    # Prefer the widest domain (from the smallest admissible value); fall back to
    # values >= base when small inputs break the pattern (or the model).
    failure = ""
    through_base = {n: Lattice.through(base[n], steps[n]) for n in names}
    for lattices in ({n: lat.starting_at(1) for n, lat in through_base.items()}, through_base):
        lows = {n: lat.min for n, lat in lattices.items()}
        ok, failure = _verify(at, formulas, symbols, names, base, steps, lows, checks, seed,
                              set(cache))
        if ok:
            domain = {n: lattices[n].to_dict() for n in names}
            return {"symbols": names, "domain": domain, "formulas": formulas,
                    "verified_points": ok, "narrowed": narrowed}
    raise DeriveError(f"the interpolated formulas failed verification ({failure}); "
                      "no formula printed")


def _scan(at, n, base, max_degree, confirm):
    """(step, degree) of symbol ``n`` (:func:`complexity.counting.lattice.scan` on
    the three counts, the other symbols at their base values); :class:`NoLattice`
    if no step of the ladder fits."""
    def along(offset):
        counts = at({**base, n: base[n] + offset})
        return [counts[q] for q in QUANTITIES]

    return scan(along, max_degree, confirm, further=4, seed=0, outside=_Outside)


def _interpolate(at, names, axes, symbols) -> Dict[str, sp.Expr]:
    """Tensor-product Lagrange interpolation in exact rationals."""
    gens = [symbols[n] for n in names]
    basis = {}
    for i, n in enumerate(names):
        x, pts = symbols[n], axes[n]
        for j, pj in enumerate(pts):
            poly = sp.Poly(1, *gens)
            for m, pm in enumerate(pts):
                if m != j:
                    poly *= sp.Poly((x - pm) / sp.Integer(pj - pm), *gens)
            basis[(i, j)] = poly
    total = {q: sp.Poly(0, *gens) for q in QUANTITIES}
    for idx in product(*(range(len(axes[n])) for n in names)):
        point = {n: axes[n][j] for n, j in zip(names, idx)}
        counts = at(point)
        weight = sp.Poly(1, *gens)
        for i, j in enumerate(idx):
            weight *= basis[(i, j)]
        for q in QUANTITIES:
            if counts[q]:
                total[q] += weight * sp.Rational(counts[q].numerator, counts[q].denominator)
    return {q: sp.expand(total[q].as_expr()) for q in QUANTITIES}


def _verify(at, formulas, symbols, names, base, steps, lows, checks, seed, used):
    """(number of points checked, "") if all agree; (0, reason) otherwise."""
    rng = random.Random(seed)
    # Enough lattice points in the box for `checks` fresh ones (one symbol alone
    # needs a longer range than a product of several).
    span = 16 if len(names) > 1 else 2 * (checks + len(used))
    highs = {n: max(2 * base[n], base[n] + span * steps[n]) for n in names}
    points, tries = [], 0
    while len(points) < checks and tries < 50 * checks:
        tries += 1
        point = {n: lows[n] + steps[n] * rng.randint(0, (highs[n] - lows[n]) // steps[n])
                 for n in names}
        key = tuple(point[n] for n in names)
        if key not in used:
            used.add(key)
            points.append(point)
    if len(points) < checks:
        return 0, f"fewer than {checks} fresh points in the domain"
    for point in points:
        try:
            counts = at(point)
        except _Outside:
            return 0, f"the model cannot be counted at {point_text(point)}"
        subs = {symbols[n]: v for n, v in point.items()}
        for q in QUANTITIES:
            predicted = formulas[q].subs(subs)
            if predicted != sp.Rational(counts[q].numerator, counts[q].denominator):
                return 0, f"{q} at {point_text(point)}: formula {predicted}, counted {counts[q]}"
    return len(points), ""


def point_text(point: Dict[str, int]) -> str:
    """``{"H": 8, "W": 9}`` → ``'H=8, W=9'``."""
    return ", ".join(f"{n}={v}" for n, v in point.items())


def relation_text(relation) -> str:
    """A sympy relation as code reads it: ``H == 224``, ``Mod(H, 4) == 0``.

    >>> relation_text(sp.Ne(sp.Symbol("H"), 3))
    'H != 3'
    """
    ops = {sp.Eq: "==", sp.Ne: "!=", sp.Ge: ">=", sp.Gt: ">", sp.Le: "<=", sp.Lt: "<"}
    for cls, op in ops.items():
        if isinstance(relation, cls):
            return f"{relation.lhs} {op} {relation.rhs}"
    return str(relation)


def domain_text(result: Dict) -> str:
    """The domain in words: per symbol its min and lattice, then every guard
    (``result["guards"]``, sympy relations) left over.

    >>> domain_text({"symbols": ["H", "n"], "domain": {"H": {"min": 32, "step": 32, "residue": 0},
    ...              "n": {"min": 1, "step": 1, "residue": 0}}})
    'H >= 32, H ≡ 0 (mod 32); n >= 1'
    >>> H = sp.Symbol("H", integer=True, positive=True)
    >>> domain_text({"symbols": ["H"], "domain": {"H": {"min": 8, "step": 4, "residue": 0}},
    ...              "guards": [sp.Ne(sp.floor(H / 8), 3)]})
    'H >= 8, H ≡ 0 (mod 4); floor(H/8) != 3'
    """
    return render_domain(result["domain"], result["symbols"], "; ",
                         [relation_text(g) for g in result.get("guards", [])])


# ------------------------------------------------------------- models as counters
#: Symbols that name input dimensions (counted from the end: N,C,H,W or N,C,T,H,W).
INPUT_SYMBOLS = {"H": -2, "W": -1}


def parse_symbols(text: str):
    """``"NF=num_filters,H"`` → ``[("NF", "num_filters"), ("H", "H")]``: the names
    and what they bind, checked as text alone (before any model is built): each an
    identifier, no Python keyword or sympy name, none twice. ``ValueError``, one line.

    >>> parse_symbols("NF=num_filters, H")
    [('NF', 'num_filters'), ('H', 'H')]
    """
    pairs = []
    for item in (t.strip() for t in text.split(",")):
        name, _, target = (s.strip() for s in item.partition("="))
        target = target or name
        if keyword.iskeyword(name) or keyword.iskeyword(target):
            raise OptionError("{symbols}: " + literal(repr(name if keyword.iskeyword(name)
                                                            else target))
                              + " is a Python keyword, not usable as a symbol name", symbols=NAMED)
        if not name.isidentifier() or not isinstance(sp.sympify(name), sp.Symbol):
            raise OptionError("{symbols}: " + literal(repr(name)) + " is not usable as a symbol "
                              "name (need an identifier that is not a sympy name like E, I, N, S)",
                              symbols=NAMED)
        if not target.isidentifier():
            raise OptionError("{symbols} " + literal(f"{item}: {target!r}")
                              + " is not an argument name", symbols=NAMED)
        if name in (n for n, _ in pairs):
            raise OptionError("{symbols}: " + literal(name) + " appears twice", symbols=NAMED)
        pairs.append((name, target))
    return pairs


def parse_symbolic_input(text: str):
    """``"1,3,H,W"`` → ``([1, 3, "H", "W"])``: sizes and, where a letter stands, the
    symbol naming that input dimension. ``ValueError`` (one line) for anything else.

    >>> parse_symbolic_input("1, 3, H, W")
    [1, 3, 'H', 'W']
    """
    out = []
    for item in (t.strip() for t in text.split(",")):
        if item.lstrip("+").isdigit() and int(item) >= 1:
            out.append(int(item))
        elif item.isidentifier() and not keyword.iskeyword(item) and \
                isinstance(sp.sympify(item), sp.Symbol):
            if item in out:
                raise OptionError("{input_shape}: " + literal(item) + " names two dimensions",
                                  input_shape=text)
            out.append(item)
        else:
            raise OptionError("{input_shape}: " + literal(repr(item)) + " is neither a size >= 1 "
                              "nor a symbol name (e.g. 1,3,H,W; not a sympy name like E, I, N, S)",
                              input_shape=text)
    return out


def bind_symbols(text: str, spec, input_shape: Sequence[int], module=None,
                 input_dims: Optional[Dict[str, int]] = None):
    """``"NF=num_filters,H,W"`` → ``([names], {name: ("arg", argument) or ("input",
    dim)}, {name: base value})``. A bare name is an input dimension (H, W, or any
    name ``input_dims`` maps to a dimension index, from ``--input 1,3,H,W``), an alias
    of the spec (NF for cnn/unet) or a constructor argument; ``NAME=argument``
    binds a name of one's own choosing. Raises ``ValueError`` with one line.

    >>> from complexity.zoo import parse_spec
    >>> bind_symbols("NF,C=num_colours,H", parse_spec("unet"), (1, 1, 32, 48))
    (['NF', 'C', 'H'], {'NF': ('arg', 'num_filters'), 'C': ('arg', 'num_colours'), 'H': ('input', -2)}, {'NF': 32, 'C': 24, 'H': 32})
    """
    names, bindings, base = [], {}, {}
    input_dims = dict(input_dims or {})
    for name, target in parse_symbols(text):
        if name in input_dims and target == name:
            dim = input_dims[name] - len(input_shape) if input_dims[name] >= 0 else input_dims[name]
            bindings[name], base[name] = ("input", dim), input_shape[dim]
        elif target in INPUT_SYMBOLS and target == name:
            dim = INPUT_SYMBOLS[target]
            if len(input_shape) < 3:
                raise OptionError("{symbols} " + literal(f"{name}: the input has no spatial "
                                                         f"dimensions (rank {len(input_shape)})"),
                                  symbols=NAMED)
            bindings[name], base[name] = ("input", dim), input_shape[dim]
        else:
            argument = spec.aliases.get(target, target)
            value = spec.argument_default(argument, module)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError("{symbols} " + literal(f"{name}: argument {argument} of "
                                                         f"{spec.name} is {value!r}, not a "
                                                         "positive integer"), symbols=NAMED)
            bindings[name], base[name] = ("arg", argument), value
        for other in names:
            if bindings[other] == bindings[name]:
                what = (f"argument {bindings[name][1]}" if bindings[name][0] == "arg"
                        else f"input dimension {name}")
                raise OptionError("{symbols}: " + literal(f"{other} and {name} both bind {what}; ")
                                  + "give each argument one symbol", symbols=NAMED)
        names.append(name)
    return names, bindings, base


def model_counter(spec, input_shape: Sequence[int], bindings: Dict[str, tuple],
                  convention: str = "torch", device: str = "meta", built=None):
    """A function point → ``{"params", "outputs", "macs"}`` that builds ``spec`` with
    the point's constructor arguments (on ``device``) and profiles it on an input
    with the point's dimensions. Models are cached per set of arguments; ``built``,
    when given, is ``spec`` already built on ``device`` with its own arguments (no
    second build of the same model; profile leaves a module as it found it)."""
    import torch

    from complexity.counting.profile import profile, totals

    models = {} if built is None else {(): built}

    def count(point: Dict[str, int]) -> Dict[str, int]:
        args = {bindings[n][1]: v for n, v in point.items() if bindings[n][0] == "arg"}
        shape = list(input_shape)
        for n, v in point.items():
            if bindings[n][0] == "input":
                shape[bindings[n][1]] = v
        for argument, dim in spec.input_links.items():
            if argument in args:
                shape[dim] = args[argument]
        key = tuple(sorted(args.items()))
        if key not in models:
            with torch.device(device):
                models[key] = spec.build(**args)
        return totals(profile(models[key], shape, convention, device, layers=False,
                              input_dtype=getattr(spec, "input_dtype", None)))

    return count
