"""The public Python API, named like the commands: :func:`profile`, :func:`derive`,
:func:`step_cost` (``finetune``), :func:`fit`. Each returns a typed result —
:class:`Profile`, :class:`Derivation`, :class:`StepCost`, a list of
:class:`~complexity.cost.fit.verdict.FitResult` — with ``to_dict()`` (JSON-ready, exact
integers; for ``profile`` and ``derive`` the objects ``--format json`` prints) and a
table a person can read (``print(result)``).

They wire the library as the commands do, with the same defaults, so that a
command can be a thin layer over this module: a model is an ``nn.Module``, or a
spec string (``"cnn"``, ``"unet"``, ``"torchvision:NAME"``,
``"package.module:factory"``) built on the chosen device, or (``derive``) a
factory, a callable returning a module.

Nothing heavy is imported here at module level: torch, sympy and tabulate are
imported inside the functions, so ``import complexity`` stays fast.

>>> import complexity
>>> from models.stack import Stack
>>> p = complexity.profile(Stack(2, 4), (1, 4, 8, 8))
>>> p.params == sum(t.numel() for t in Stack(2, 4).parameters())
True
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

__all__ = ["profile", "derive", "step_cost", "fit", "Profile", "ProfileLayer", "Derivation",
           "StepCost"]

#: The input a spec gets when none is given (as ``profile``/``derive`` on the command line).
DEFAULT_INPUT = (1, 3, 224, 224)
DEFAULT_VIDEO_INPUT = (1, 3, 16, 112, 112)


# ------------------------------------------------------------------ models
def _input(spec, input_shape) -> Tuple[int, ...]:
    """The input shape: given (a sequence or ``"1,3,224,224"``), or the spec's default."""
    from complexity.zoo import ModelSpecError, parse_input

    if input_shape is None:
        if spec is None:
            raise ModelSpecError("input_shape is needed for a module (e.g. (1, 3, 224, 224))")
        if spec.input_links:  # cnn/unet: their own input channels, the course's 32×32
            return (1, spec.args["num_in_channels"], 32, 32)
        return DEFAULT_VIDEO_INPUT if spec.rank == 5 else DEFAULT_INPUT
    if isinstance(input_shape, str):
        return parse_input(input_shape)
    shape = tuple(input_shape)
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ModelSpecError(f"input_shape {shape!r}: need integers >= 1 (e.g. (1, 3, 224, 224))")
    return shape


def _spec(model, model_args: Optional[Dict[str, Any]]):
    """A :class:`complexity.zoo.ModelSpec` for a spec string, a spec or a factory."""
    import dataclasses

    from complexity.zoo import ModelSpec, parse_spec

    model_args = dict(model_args or {})
    if isinstance(model, str):
        return parse_spec(model, model_args)
    if isinstance(model, ModelSpec):
        return dataclasses.replace(model, args={**model.args, **model_args})
    if callable(model):
        name = getattr(model, "__qualname__", None) or type(model).__name__
        return ModelSpec(name, model, model_args)
    raise TypeError(f"model must be an nn.Module, a spec string or a factory, "
                    f"not {type(model).__name__}")


def _build(spec, shape, device: str):
    """Build ``spec`` on ``device`` after checking ``shape`` against it (as the CLI does)."""
    import torch

    from complexity.errors import Given, literal
    from complexity.zoo import ModelSpecError, check_input

    check_input(spec, shape)
    with torch.device(device):
        try:
            return spec.build()
        except ModelSpecError as e:
            text = str(e)
            if device == "meta" and "failed" in text and ("NotImplementedError" in text
                                                          or "meta" in text.lower()):
                raise ModelSpecError(literal(text) + "; try {device}",
                                     device=Given("cpu", "cpu")) from None
            raise ModelSpecError(text) from None


def resolve_model(model, input_shape, model_args=None, device: str = "meta"):
    """``(spec or None, name, input shape, module)`` for any accepted model: an
    ``nn.Module``, a spec string (:func:`complexity.zoo.parse_spec`), a
    :class:`~complexity.zoo.ModelSpec` or a factory, built on ``device``; the input
    shape given (a sequence or ``"1,3,224,224"``) or the spec's default. ``ValueError``
    (one line) for a spec, argument or input that cannot be used."""
    from torch import nn

    if isinstance(model, nn.Module):
        if model_args:
            raise TypeError("model_args applies to a spec or a factory, not to a built module")
        return None, type(model).__name__, _input(None, input_shape), model
    spec = _spec(model, model_args)
    shape = _input(spec, input_shape)
    return spec, spec.name, shape, _build(spec, shape, device)


# ------------------------------------------------------------------ profile
@dataclass
class ProfileLayer:
    """One row of a :class:`Profile`: a module and the counts of its whole subtree."""

    name: str
    kind: str
    depth: int
    shape: Any
    params: int
    trainable_params: int
    outputs: int
    macs: Union[int, float]
    calls: int

    @property
    def frozen_params(self) -> int:
        return self.params - self.trainable_params

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class Profile:
    """Exact per-layer and total params, output units and MACs of a model on one input.

    ``macs`` = ``FlopCounterMode`` FLOPs / 2; ``ops``: MACs per aten op;
    ``uncovered_kinds``: leaf classes a ``lecture``/``course`` count leaves at 0.

    >>> from torch import nn
    >>> p = profile(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), (1, 1, 5, 5))
    >>> p.totals()                     # 2·1·9 + 2 params; 2·3·3 conv + 18 ReLU units
    {'params': 20, 'outputs': 36, 'macs': 162}
    >>> print(p.table())
    layer    kind    output shape      params    frozen    outputs    MACs
    -------  ------  --------------  --------  --------  ---------  ------
    0        Conv2d  1×2×3×3               20         0         18     162
    1        ReLU    1×2×3×3                0         0         18       0
    total                                  20         0         36     162
    """

    model: str
    input: List[int]
    convention: str
    device: str
    params: int
    trainable_params: int
    outputs: int
    macs: Union[int, float]
    ops: Dict[str, Union[int, float]]
    uncovered_kinds: List[str]
    layers: List[ProfileLayer] = field(default_factory=list)

    @property
    def frozen_params(self) -> int:
        return self.params - self.trainable_params

    def totals(self) -> Dict[str, Union[int, float]]:
        """``{"params", "outputs", "macs"}``: what :func:`derive` fits formulas to."""
        from complexity.counting.profile import totals

        return totals(vars(self))

    def _shown(self, depth: Optional[int]) -> List[ProfileLayer]:
        return [r for r in self.layers if depth is None or r.depth <= depth]

    def to_dict(self, depth: Optional[int] = None) -> Dict[str, Any]:
        """The JSON of ``python -m complexity profile --format json`` (rows nested at
        most ``depth`` deep; all by default)."""
        return {"model": self.model, "input": list(self.input), "convention": self.convention,
                "device": self.device, "params": self.params,
                "trainable_params": self.trainable_params, "outputs": self.outputs,
                "macs": self.macs, "ops": dict(self.ops),
                "uncovered_kinds": list(self.uncovered_kinds),
                "layers": [r.to_dict() for r in self._shown(depth)]}

    def table(self, depth: Optional[int] = None, tablefmt: str = "simple") -> str:
        """Rows nested at most ``depth`` deep (all by default), indented by depth,
        and a total row; ``tablefmt`` is tabulate's (``"github"`` for markdown)."""
        from complexity.output.profile import profile_table

        return profile_table(self.to_dict(), depth, tablefmt)

    def heading(self) -> str:
        """What the numbers are: model, input, convention, device (and a note on
        leaf classes the convention leaves at 0)."""
        from complexity.output.profile import profile_heading

        return profile_heading(self.to_dict(depth=0))

    def render(self, depth: Optional[int] = None, tablefmt: str = "simple") -> str:
        """Heading and table: what ``python -m complexity profile`` prints."""
        return self.heading() + "\n" + self.table(depth, tablefmt)

    def __str__(self) -> str:
        return self.render()


def profile(model, input_shape=None, convention: str = "torch", device: str = "meta", *,
            model_args: Optional[Dict[str, Any]] = None) -> Profile:
    """Per-layer params, output units and MACs of ``model`` on an input of ``input_shape``.

    ``model``: an ``nn.Module`` (left untouched: on the meta device it runs on
    stand-ins of its weights) or a spec string — ``"cnn"``, ``"unet"``,
    ``"torchvision:NAME"``, ``"package.module:factory"`` — built on ``device`` with
    ``model_args``; a spec's default input is ``(1, NIC, 32, 32)`` for cnn/unet,
    ``(1, 3, 224, 224)`` otherwise. ``convention``: ``"torch"`` (every parameter,
    every leaf module's output units), ``"course"`` or ``"lecture"``; MACs are always
    ``FlopCounterMode``'s / 2. ``device``: ``"meta"`` (shapes only, nothing
    allocated) or ``"cpu"`` (real zero tensors, for a forward that needs values).
    Raises ``ValueError`` (:class:`complexity.zoo.ModelSpecError`) for a bad spec or
    input, :class:`complexity.counting.profile.ProfileError` when the forward fails.

    >>> from models.colourization import UNet
    >>> p = profile("unet", model_args={"num_filters": 8})
    >>> p.input, p.params == sum(t.numel() for t in UNet(3, 8, 24, 1).parameters())
    ([1, 1, 32, 32], True)
    >>> [(r.name, r.kind) for r in p.layers][:2]
    [('downconv1', 'Sequential'), ('downconv1.0', 'Conv2d')]
    """
    from complexity.counting.profile import DEVICES, ProfileError, profile as _profile

    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    _, name, shape, module = resolve_model(model, input_shape, model_args, device)
    try:
        p = _profile(module, shape, convention, device, model_name=name)
    except ProfileError as e:
        raise ProfileError(f"{name}: {e}") from None
    keys = [f.name for f in fields(ProfileLayer)]
    layers = [ProfileLayer(**{k: r[k] for k in keys}) for r in p["layers"]]
    return Profile(**{**{f.name: p[f.name] for f in fields(Profile)}, "layers": layers})


# ------------------------------------------------------------------ derive
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
        strings ``sympy.sympify`` parses)."""
        return {"model": self.model, "input": list(self.input), "convention": self.convention,
                "symbols": dict(self.symbols), "domain": {n: dict(d) for n, d in self.domain.items()},
                "domain_text": self.domain_text, "narrowed": list(self.narrowed),
                "guards": list(self.guards), "method": self.method,
                "formulas": {q: str(f) for q, f in self.formulas.items()},
                "verified_points": self.verified_points}

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
        default = None if isinstance(model, nn.Module) else _input(_spec(model, model_args), None)
        if default is None or len(default) != len(template):
            default = [64] * len(template)
        # at least 2: a symbolic trace treats a size of 1 as the constant 1
        input_shape = tuple(v if isinstance(v, int) else max(2, default[i])
                            for i, v in enumerate(template))
        given = [n for n, _ in parse_symbols(text)] if text else []
        text = ",".join(given + [n for n in input_dims if n not in given])
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

    return ModelSpec(type(model).__name__, lambda: model), _input(None, input_shape), model


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
        traced = sym.trace(module, shape, {n: bindings[n][1] for n in names}, convention)
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


# ------------------------------------------------------------------ step_cost


@dataclass
class StepCost:
    """Memory and FLOPs of one training step (forward, cross-entropy, backward,
    ``optimizer.step()``; ``step`` names its options, ``options`` holds them as
    ``finetune``'s JSON does): ``predicted`` from the model's structure and
    ``measured`` on fake or real tensors (``measured_how``; None when not
    measured), each with the keys of
    :data:`complexity.cost.keys.KEYS`, in bytes and FLOPs. ``unmodelled``: calls
    with no rule; when non-empty, the predicted saved, peak and FLOP values are
    approximate (≈), not bounds.

    >>> from models.stack import Stack
    >>> c = step_cost(Stack(2, 4), (1, 4, 8, 8), trainable="last", measure=False)
    >>> c.trainable_params, c.predicted["grad_bytes"], c.measured
    (10, 40, None)
    """

    model: str
    input: List[int]
    trainable: Optional[str]
    trainable_params: int
    predicted: Dict[str, int]
    measured: Optional[Dict[str, int]]
    unmodelled: List[str]
    step: str = "adam, float32"
    options: Optional[Dict[str, Any]] = None
    measured_how: Optional[str] = None

    def errors(self) -> Optional[Dict[str, float]]:
        """(predicted − measured) / measured per quantity, in percent (None if not measured)."""
        if self.measured is None:
            return None
        out = {}
        for q, m in self.measured.items():
            p = self.predicted[q]
            out[q] = (0.0 if p == 0 else float("inf")) if m == 0 else 100.0 * (p - m) / m
        return out

    def to_dict(self) -> Dict[str, Any]:
        return {"model": self.model, "input": list(self.input), "trainable": self.trainable,
                "trainable_params": self.trainable_params, "predicted": dict(self.predicted),
                "unmodelled": list(self.unmodelled),
                "measured": None if self.measured is None else dict(self.measured),
                "step": self.step, "options": self.options, "measured_how": self.measured_how}

    def table(self, tablefmt: str = "simple") -> str:
        """One row per quantity: predicted, measured, error."""
        from tabulate import tabulate

        from complexity.cost.predict.prediction import mark

        errors = self.errors() or {}
        rows = []
        for q, p in self.predicted.items():
            bound = mark(q, self.unmodelled)
            m = self.measured[q] if self.measured else None
            rows.append([q, bound + f"{p:,}", "" if m is None else f"{m:,}",
                         "" if m is None else f"{errors[q]:+.2f}%"])
        return tabulate(rows, headers=["quantity", "predicted", "measured", "error"],
                        tablefmt=tablefmt, disable_numparse=True,
                        colalign=("left", "right", "right", "right"))

    def __str__(self) -> str:
        what = self.trainable if self.trainable is not None else "requires_grad as set"
        on = "real CPU tensors" if self.measured_how == "real" else "fake tensors"
        how = (f"predicted from structure, measured on {on}" if self.measured
               else "predicted from structure (not measured)")
        head = (f"{self.model}, input {'×'.join(map(str, self.input))}, trainable: {what} "
                f"({self.trainable_params:,} parameters) — one step ({self.step}), bytes and "
                "FLOPs; " + how)
        if self.unmodelled:
            head += (f"\n≈ (unmodelled: {', '.join(self.unmodelled)}): the predicted "
                     "values marked ≈ are approximate, not bounds")
        return head + "\n\n" + self.table()


def step_cost(model, input_shape: Optional[Sequence[int]] = None,
              trainable: Optional[str] = "full", measure: Union[bool, str, None] = True, *,
              input_dtype=None, input_high=None, model_args: Optional[Dict[str, Any]] = None,
              optimizer: str = "adam", foreach: Optional[bool] = None, fused: bool = False,
              dtype: str = "float32", autocast: Optional[str] = None,
              checkpoint: Optional[str] = None, lora=None, grad_accum: int = 1,
              grad_scaler: bool = False, set_to_none: bool = True) -> StepCost:
    """Predicted and measured cost of one training step of ``model`` on a batch
    of ``input_shape`` (``N, C, H, W``; loss = cross-entropy on the output, or on
    ``output["out"]``, against random class indices).

    ``model``: an ``nn.Module`` (left as found: weights, ``requires_grad`` flags,
    train/eval mode) or a spec string as ``finetune`` takes (``"stack"``,
    ``"torchvision:resnet18"``, ``"timm:NAME"``, ``"pkg.mod:factory"``,
    ``"file.py:Class"``) built on the meta device with ``model_args``; a spec's
    default input is :func:`profile`'s. ``trainable``: ``"full"`` (every
    parameter), ``"last"`` (the module owning the last parameter), a
    parameter-name glob (``"backbone.layer4.*"``), or None (the ``requires_grad``
    flags as set). ``measure``: ``"fake"`` (or True: a step on fake tensors),
    ``"real"`` (a real CPU step) or None/False (prediction only).

    The step's options, as ``finetune``'s: ``optimizer`` (``"sgd"``,
    ``"sgd-momentum"``, ``"adam"``, ``"adamw"``), ``foreach``/``fused`` (the
    update; None: the CPU's for-loop), ``dtype`` of the parameters, ``autocast``
    (``"bfloat16"``, ``"float16"``), ``checkpoint`` (a glob of module names),
    ``lora`` (``"r=8,alpha=16,targets=GLOB"`` or a
    :class:`~complexity.cost.step.lora.LoRA`: adapters on a copy, the base frozen;
    ``trainable`` is then the adapters), ``grad_accum``, ``grad_scaler``,
    ``set_to_none`` (False: ``zero_grad(set_to_none=False)``). ``ValueError``
    (an :class:`~complexity.errors.OptionError` naming the parameter) when
    nothing would train, a glob matches nothing or options do not go together.

    ``input_dtype``, ``input_high``: a batch of another dtype than float32, e.g.
    token ids ``(N, L)`` with ``input_dtype=torch.long, input_high=vocab_size`` for
    a Hugging Face model (its ``.logits``; ``(N, L, V)`` token logits are taken as
    ``N·L`` rows of cross-entropy).

    >>> import torch
    >>> from models.stack import Stack
    >>> c = step_cost(Stack(2, 4), (2, 4, 8, 8))
    >>> c.measured == c.predicted | {"peak_bytes": c.measured["peak_bytes"]}
    True
    >>> c.measured["param_bytes"] == 4 * sum(p.numel() for p in Stack(2, 4).parameters())
    True
    >>> s = step_cost("stack", (2, 4, 8, 8), model_args={"layers": 2, "width": 4},
    ...               optimizer="sgd-momentum", checkpoint="0", measure=None)
    >>> s.step, s.predicted["optimizer_bytes"] == s.predicted["param_bytes"]
    ('sgd-momentum, float32, checkpoint 0', True)
    """
    from complexity.cost.step.lora import lora_modes
    from complexity.cost.step.options import check_measurement, step_options

    options = step_options(optimizer, foreach=foreach, fused=fused, dtype=dtype,
                           autocast=autocast, checkpoint=checkpoint, set_to_none=set_to_none,
                           grad_accum=grad_accum, grad_scaler=grad_scaler)
    how = _measure_how(measure)
    check_measurement(options, how)
    mode = _lora_mode(lora_modes(lora), trainable)
    spec, name, shape, module = _step_model(model, input_shape, model_args)
    flags = [(p, p.requires_grad) for p in module.parameters()]
    try:
        net, params = _trained(module, spec, mode, options)
        dtypes = dict(input_dtype=input_dtype, input_high=input_high)
        predicted, unmodelled, measured = _costed(net, shape, options, how, dtypes)
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    return StepCost(model=name, input=list(shape), trainable=mode, trainable_params=params,
                    predicted=dict(predicted), measured=measured, unmodelled=list(unmodelled),
                    step=options.label(), options=options.to_dict(), measured_how=how)


def _measure_how(measure) -> Optional[str]:
    """``measure`` as the measurement's ``how``: True → ``"fake"``, False → None."""
    if measure is True:
        return "fake"
    return None if measure is False else measure


def _lora_mode(modes: List[str], trainable: Optional[str]) -> Optional[str]:
    """The trainable set: ``trainable``, or the one LoRA mode (with ``trainable``
    left at ``"full"``)."""
    from complexity.errors import NAMED, OptionError

    if not modes:
        return trainable
    if len(modes) > 1:
        raise OptionError("{lora}: give one set of adapters for one step", lora=NAMED)
    if trainable != "full":
        raise OptionError("{lora} trains the adapters only; leave {trainable} at 'full'",
                          lora=NAMED, trainable=NAMED)
    return modes[0]


def _step_model(model, input_shape, model_args):
    """``(spec or None, name, input shape, module)``: a module as given, a spec built
    on the meta device (only shapes are needed: fake tensors stand in for values)."""
    from torch import nn

    if isinstance(model, nn.Module):
        if model_args:
            raise TypeError("model_args applies to a spec or a factory, not to a built module")
        return None, type(model).__name__, _input(None, input_shape), model
    if not isinstance(model, str):
        raise TypeError(f"model must be an nn.Module or a spec string, not {type(model).__name__}")
    return resolve_model(model, input_shape, model_args, device="meta")


def _trained(module, spec, mode, options):
    """``(the module the step trains, its trainable parameter count)``: ``mode`` set
    on ``module`` (None: its flags as they are), or LoRA adapters on a fresh build
    (a copy of a module given); the checkpoint glob checked against it."""
    import copy

    from complexity.cost.step.lora import trainable_model

    if mode is None:
        net = module
    else:
        rebuild = spec.build if spec is not None else (lambda: copy.deepcopy(module))
        net, _ = trainable_model(module, mode, rebuild)
    if options.checkpoint:
        from complexity.cost.step.checkpointing import checkpoint_modules

        checkpoint_modules(net, options.checkpoint)
    return net, sum(p.numel() for p in net.parameters() if p.requires_grad)


def _costed(net, shape, options, how, dtypes):
    """``(predicted, unmodelled, measured or None)`` of one step of ``net``."""
    from complexity.cost.measure.cpu_step import measure as _measure
    from complexity.cost.predict.prediction import predict_with_unmodelled

    predicted, unmodelled = predict_with_unmodelled(net, shape, options=options, **dtypes)
    measured = _measure(net, shape, how=how, options=options, **dtypes) if how else None
    return predicted, unmodelled, measured


# ------------------------------------------------------------------ fit
def fit(model: str, budget: int, *, batch: int = 32,
        size: Union[int, Tuple[int, int], str] = (224, 224),
        modes: Sequence[str] = ("full", "last"),
        trainable: Sequence[Union[str, Sequence[str]]] = (), lora=None, device: str = "cuda",
        reserve: Optional[int] = None, model_args: Optional[Dict[str, Any]] = None,
        optimizer: str = "adam", foreach: Optional[bool] = None, fused: bool = False,
        dtype: str = "float32", autocast: Optional[str] = None,
        checkpoint: Optional[str] = None, grad_accum: int = 1, grad_scaler: bool = False,
        set_to_none: bool = True) -> list:
    """Will one training step of ``model`` fit in ``budget`` bytes, for each
    trainable set, and what is the largest batch that does? A list of
    :class:`~complexity.cost.fit.verdict.FitResult`, one per set — ``modes``
    (``full``, ``last``), each of ``trainable`` (a glob, or globs), then each of
    ``lora`` (``"r=8,alpha=16,targets=GLOB"`` strings or LoRA objects) — whose
    ``to_dict()`` is the object ``python -m complexity fit --format json`` prints.

    ``model``: a spec string as the command takes, with ``model_args``. ``size``:
    ``H``, ``(H, W)`` or ``"auto"`` (the largest square input that fits).
    ``device``: ``"cuda"`` (the caching allocator's predicted reserved bytes plus
    ``reserve``, default 512 MiB, must fit) or ``"cpu"`` (the exact peak must). The
    step's options as :func:`step_cost`'s (``foreach`` None: PyTorch's default on
    ``device``). ``ValueError`` (an :class:`~complexity.errors.OptionError` naming
    the parameter) before any tracing for arguments that cannot be used.

    >>> rows = fit("stack", 20 * 2**20, batch=8, size=32, device="cpu",
    ...            modes=["last"], trainable=["0.*"])
    >>> [(r.mode, r.fits, r.max_batch > 8) for r in rows]
    [('last', True, True), ('0.*', True, True)]
    >>> rows[0].to_dict()["budget_bytes"], rows[0].step
    (20971520, 'adam, float32')
    """
    from complexity.cost.fit.verdict import verdicts
    from complexity.cost.step.lora import lora_modes
    from complexity.cost.step.options import step_options

    options = step_options(optimizer, foreach=foreach, fused=fused, dtype=dtype,
                           autocast=autocast, checkpoint=checkpoint, set_to_none=set_to_none,
                           grad_accum=grad_accum, grad_scaler=grad_scaler, device=device)
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    return verdicts(model, budget, modes=modes, trainable=trainable, lora=lora_modes(lora),
                    batch=batch, size=size if size == "auto" else tuple(size), device=device,
                    reserve=reserve, options=options, model_args=model_args)
