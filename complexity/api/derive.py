"""``complexity.derive``: exact formulas for any model's params, outputs and MACs
in symbols chosen by the caller (the ``derive`` command), as a :class:`Derivation`."""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Dict, List, Optional, Sequence, Union

from complexity.api.models import input_shape_of, resolve_model, spec_of


@dataclass
class Derivation:
    """Verified formulas for params, outputs and MACs in chosen symbols.

    ``formulas``: sympy expressions in positive-integer symbols (``floor`` and
    ``ceiling`` of strided layers kept when ``method`` is ``"symbolic"``); they hold
    on ``domain`` (per symbol ``{"min", "step", "residue"}``: every value ≥ min
    congruent to residue modulo step) where every one of ``guards`` holds (sympy
    relations as text; the conditions of the symbolic trace not implied by the
    rest) and were checked at ``verified_points`` random points of it, none used to
    build them. ``symbols`` maps each symbol to the constructor argument it binds,
    or ``"input[i]"`` for an input dimension. ``method``: ``"symbolic"`` (one
    forward on symbolically sized fake tensors) or ``"interpolation"`` (exact
    interpolation of concrete counts).

    >>> from torch import nn
    >>> d = derive(lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), "H,W", (1, 2, 8, 8))
    >>> d.formulas["macs"], d.domain_text
    (54*ceiling(H/2)*ceiling(W/2), 'H >= 2; W >= 2')
    >>> d.at(H=11, W=20)["macs"]  # 54 · 6 · 10
    3240
    """

    model: str
    input: List[int]
    convention: str
    symbols: Dict[str, str]
    domain: Dict[str, Dict[str, int]]
    domain_text: str
    narrowed: List[str]
    formulas: Dict[str, Any]
    verified_points: int
    guards: List[str] = field(default_factory=list)
    method: str = "interpolation"

    def to_dict(self) -> Dict[str, Any]:
        """The JSON of ``python -m complexity derive --format json`` (formulas as
        strings ``sympy.sympify`` parses, and as people read them: ``readable``)."""
        from complexity.output.formulas import readable

        return {"model": self.model, "input": list(self.input), "convention": self.convention,
                "symbols": dict(self.symbols), "domain": {n: dict(d) for n, d in self.domain.items()},
                "domain_text": self.domain_text, "narrowed": list(self.narrowed),
                "guards": list(self.guards), "method": self.method,
                "formulas": {q: str(f) for q, f in self.formulas.items()},
                "verified_points": self.verified_points,
                "readable": {q: readable(f) for q, f in self.formulas.items()}}

    def at(self, **values: int) -> Dict[str, Union[int, Fraction]]:
        """The formulas evaluated at a point of the domain (every symbol given):
        exact integers (a ``Fraction`` for half-integer MACs). ``ValueError`` for a
        point outside the verified domain."""
        missing = [n for n in self.symbols if n not in values]
        extra = [n for n in values if n not in self.symbols]
        if missing or extra:
            raise ValueError(f"give exactly the symbols {', '.join(self.symbols)} "
                             f"(missing: {', '.join(missing) or 'none'}; "
                             f"unknown: {', '.join(extra) or 'none'})")
        from complexity.counting.domain import lattice

        for n, v in values.items():
            if isinstance(v, bool) or not isinstance(v, int) or \
                    not lattice(self.domain, n).contains(v):
                raise ValueError(f"{n}={v!r} is outside the verified domain ({self.domain_text})")
        if self.guards:  # only a symbolic trace has guards: torch is loaded already
            import sympy as sp

            from complexity.counting.symbolic_shapes import in_domain

            names = {n: sp.Symbol(n, integer=True, positive=True) for n in self.symbols}
            traced = {"domain": self.domain,
                      "guards": [sp.sympify(g, locals=names) for g in self.guards]}
            if not in_domain(traced, values):
                raise ValueError(f"{values} is outside the verified domain ({self.domain_text})")
        out = {}
        for q, f in self.formulas.items():
            subs = {s: values[s.name] for s in f.free_symbols}
            value = Fraction(str(f.subs(subs)))
            out[q] = int(value) if value.denominator == 1 else value
        return out

    def table(self, tablefmt: str = "simple") -> str:
        """One row per quantity: its formula."""
        from tabulate import tabulate

        return tabulate([[q, str(f)] for q, f in self.formulas.items()],
                        headers=["quantity", "formula"], tablefmt=tablefmt,
                        disable_numparse=True)

    def __str__(self) -> str:
        from complexity.output.profile import render_derive

        return render_derive(self.to_dict())


def derive(model, symbols: Union[str, Sequence[str], None] = None, input_shape=None, *,
           model_args: Optional[Dict[str, Any]] = None, convention: str = "torch",
           device: str = "meta", checks: int = 20, seed: int = 0,
           max_degree: int = 4) -> Derivation:
    """Exact formulas for params, outputs and MACs of a model in ``symbols``, verified.

    ``model``: a spec string (``"cnn"``, ``"unet"``, ``"torchvision:NAME"``,
    ``"package.module:factory"``), a factory (any callable returning an
    ``nn.Module``; its keyword arguments can be symbols), or an ``nn.Module`` (then
    only input dimensions can be symbols). ``symbols``: ``"H,W"`` or a list —
    ``H``/``W`` (input size), a letter of ``input_shape`` given as text
    (``"1,3,H,W"``, ``"B,3,H,W"``: those dimensions are symbols, and ``symbols``
    may be None), a constructor argument (``width_per_group``),
    ``NAME=argument`` (``NF=num_filters``), or for cnn/unet ``NF``, ``NC``, ``k``,
    ``NIC``. Defaults as ``python -m complexity derive``: input as in
    :func:`profile`, convention ``torch``, meta device, ``checks=20`` random
    verification points (≥ 20), ``seed=0``, degree ≤ ``max_degree`` per symbol.
    Raises ``ValueError`` (one line) for bad input or when no formula verifies
    (:class:`complexity.counting.derive.DeriveError`): an unverified formula is never
    returned.

    >>> d = derive("unet", "NF,NC")
    >>> d.formulas["params"]
    9*NC**2 + 18*NC*NF + 13*NC + 90*NF**2 + 27*NF
    >>> d.symbols
    {'NF': 'num_filters', 'NC': 'num_colours'}
    """
    import gc

    # A full collection walks the whole heap that importing torch left (about a
    # million objects); one or two fall inside a first derive, 0.1-0.2 s of it.
    # What is alive now is set aside for the call (gc.freeze) and handed back after
    # (gc.unfreeze), so nothing goes uncollected; a caller's own frozen objects (a
    # freeze before forking) are left as they are.
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        return _derive_model(model, symbols, input_shape, model_args, convention, device,
                             checks, seed, max_degree)
    finally:
        if freeze:
            gc.unfreeze()


def _derive_model(model, symbols, input_shape, model_args, convention, device, checks, seed,
                  max_degree) -> Derivation:
    """:func:`derive`'s work, with the heap set aside: the symbols chosen, the model
    resolved, the symbols bound, then a symbolic trace or an interpolation."""
    from torch import nn

    from complexity.counting.derive import bind_symbols, model_counter

    if checks < 20:
        raise ValueError(f"checks={checks} is too few (need >= 20 verification points)")
    text, input_shape, input_dims = _chosen_symbols(model, symbols, input_shape, model_args)
    spec, shape, module = _derived_model(model, input_shape, model_args, device)
    names, bindings, base = bind_symbols(text, spec, shape, module, input_dims)
    if isinstance(model, nn.Module):  # a built module: input sizes only
        _check_input_symbols(names, bindings)
    count = model_counter(spec, shape, bindings, convention, device, built=module)
    binds = {n: (f"input[{len(shape) + bindings[n][1]}]" if bindings[n][0] == "input"
                 else bindings[n][1]) for n in names}
    common = dict(model=spec.name, input=list(shape), convention=convention, symbols=binds)
    # Input sizes only, on meta: one forward on symbolically sized fake tensors gives
    # the formulas with every floor kept; constructor arguments cannot be symbolic
    # (parameters have fixed shapes), so those go the interpolation way.
    fallback = ""
    if device == "meta" and all(bindings[n][0] == "input" for n in names):
        traced, fallback = _traced(module, spec, shape, names, bindings, convention, count,
                                   base, checks, seed, common)
        if traced is not None:
            return traced
    return _interpolated(count, spec, names, base, max_degree, checks, seed, fallback, common)


def _chosen_symbols(model, symbols, input_shape, model_args):
    """``(symbols as text, input shape, {letter: input dimension})``: the symbols
    given, and the letters of an input shape given as text (``"1,3,H,W"``), each
    dimension's base value then the default input's size there (64 where there is
    none); ``ValueError`` when there is no symbol or a name is unusable."""
    from torch import nn

    from complexity.counting.derive import parse_symbolic_input, parse_symbols

    text = symbols if isinstance(symbols, str) or symbols is None else ",".join(symbols)
    text = (text or "").strip()
    input_dims: Dict[str, int] = {}
    if isinstance(input_shape, str) and any(c.isalpha() or c == "_" for c in input_shape):
        template = parse_symbolic_input(input_shape)
        input_dims = {v: i for i, v in enumerate(template) if isinstance(v, str)}
        default = None if isinstance(model, nn.Module) else input_shape_of(spec_of(model, model_args), None)
        if default is None or len(default) != len(template):
            default = [64] * len(template)
        # at least 2: a symbolic trace treats a size of 1 as the constant 1
        input_shape = tuple(v if isinstance(v, int) else max(2, default[i])
                            for i, v in enumerate(template))
        given = parse_symbols(text) if text else []  # NAME=argument kept as given
        text = ",".join([n if t == n else f"{n}={t}" for n, t in given]
                        + [n for n in input_dims if n not in dict(given)])
    if not text and symbols is None:
        from complexity.errors import NAMED, OptionError

        raise OptionError("no symbols: name them with {symbols} (e.g. H,W) or as letters "
                          "in {input_shape} (e.g. 1,3,H,W)", symbols=NAMED, input_shape=NAMED)
    parse_symbols(text)  # the names as text, before any model is built
    return text, input_shape, input_dims


def _derived_model(model, input_shape, model_args, device):
    """``(spec, input shape, module)``: a built module wrapped in a spec that returns
    it, or any other model resolved as :func:`resolve_model` does."""
    from torch import nn

    if not isinstance(model, nn.Module):
        spec, _name, shape, module = resolve_model(model, input_shape, model_args, device)
        return spec, shape, module
    if model_args:
        raise TypeError("model_args applies to a spec or a factory, not to a built module")
    from complexity.zoo import ModelSpec

    return ModelSpec(type(model).__name__, lambda: model), input_shape_of(None, input_shape), model


def _check_input_symbols(names, bindings) -> None:
    """A built module cannot vary a constructor argument: ``ValueError`` for the first
    symbol that binds one."""
    args = [n for n in names if bindings[n][0] == "arg"]
    if args:
        raise ValueError(f"symbol {args[0]} binds constructor argument {bindings[args[0]][1]}, "
                         "which a built module cannot vary; pass a factory instead")


def _traced(module, spec, shape, names, bindings, convention, count, base, checks, seed,
            common):
    """``(Derivation or None, why not)``: the formulas of one forward on symbolically
    sized fake tensors, verified against ``count``; None and the reason when the
    trace meets something it cannot follow symbolically."""
    from complexity.counting import symbolic_shapes as sym
    from complexity.counting.derive import DeriveError, domain_text

    try:
        traced = sym.trace(module, shape, {n: bindings[n][1] for n in names}, convention,
                           input_dtype=getattr(spec, "input_dtype", None))
    except sym.Specialised as e:
        raise DeriveError(f"{spec.name}: {e}") from None
    except sym.Unsupported as e:
        return None, str(e)
    try:
        checked = sym.verify(traced, count, base, checks=checks, seed=seed)
    except DeriveError as e:
        raise DeriveError(f"{spec.name}: {e}") from None
    return Derivation(**common, domain=traced["domain"], domain_text=domain_text(traced),
                      narrowed=[], formulas=dict(traced["formulas"]), verified_points=checked,
                      guards=[str(g) for g in traced["guards"]], method="symbolic"), ""


def _interpolated(count, spec, names, base, max_degree, checks, seed, fallback, common):
    """The formulas interpolated from concrete counts and verified at held-out points;
    ``fallback``: why the symbolic trace was not used (named if this fails too)."""
    from complexity.counting.derive import DeriveError, derive as _derive, domain_text

    # The base point must count, or every later failure would be misread as a
    # domain effect.
    try:
        count(dict(base))
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DeriveError(f"{spec.name}: {first}") from None
    try:
        result = _derive(count, names, base, max_degree=max_degree, checks=checks, seed=seed)
    except DeriveError as e:
        also = f" (and {fallback})" if fallback else ""
        raise DeriveError(f"{spec.name}: {e}{also}") from None
    return Derivation(**common, domain=result["domain"], domain_text=domain_text(result),
                      narrowed=list(result["narrowed"]), formulas=dict(result["formulas"]),
                      verified_points=result["verified_points"])
