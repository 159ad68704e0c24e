"""Sympy layer algebra: shapes and weights / outputs / connections per layer.

Each colourization architecture (docs/architectures.md) is described here once, as a list of :class:`Layer`
records built by small constructors (:func:`conv`, :func:`maxpool`, ...). Every
formula the tool prints is a sum over such a list; the hook counter in
:mod:`complexity.counting.hooks` measures the same list on a real module, and the tests
demand the two agree.

>>> from complexity.counting.symbolic import architecture, totals, k, NIC
>>> t = totals(architecture("cnn"), "lecture")
>>> t["weights"].subs({k: 3, NIC: 1})
9*NC**2 + 9*NC*NF + 72*NF**2 + 9*NF
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Dict, List, Tuple

import sympy as sp

from complexity.counting import conventions as conv_mod
from complexity.counting.conventions import QUANTITIES

_pos = dict(integer=True, positive=True)
NF, NC, k, NIC, H, W = (sp.Symbol(s, **_pos) for s in ("NF", "NC", "k", "NIC", "H", "W"))
SYMBOLS = {s.name: s for s in (NF, NC, k, NIC, H, W)}

MODELS = ("cnn", "unet")

Shape = Tuple[sp.Expr, sp.Expr, sp.Expr]  # (channels, height, width), batch 1


@dataclass
class Layer:
    """One leaf layer: its kind, output shape and parameter sizes."""

    name: str
    kind: str
    in_shape: Shape
    out_shape: Shape
    params: Dict[str, sp.Expr] = field(default_factory=dict)
    fan_in: sp.Expr = sp.Integer(0)  # inputs feeding one output unit (conv only)

    @property
    def out_units(self) -> sp.Expr:
        c, h, w = self.out_shape
        return c * h * w

    def quantities(self, convention) -> Dict[str, sp.Expr]:
        """Weights, outputs and connections of this layer under ``convention``."""
        cv = conv_mod.get(convention) if isinstance(convention, str) else convention
        return cv.layer_quantities(self.kind, self.params, self.out_units, self.fan_in,
                                   "bias" in self.params, zero=sp.Integer(0))


def _half(x: sp.Expr) -> sp.Expr:
    """⌊x/2⌋, written flat: ⌊⌊H/2⌋/2⌋ = ⌊H/4⌋ (true for every real H)."""
    if isinstance(x, sp.floor):
        return sp.floor(x.args[0] / 2)
    return sp.floor(x / 2)


def _exact_half(x: sp.Expr) -> sp.Expr:
    """x/2 for sizes known to be even (the UNet's domain: H, W multiples of 4)."""
    return x / 2


# Layer constructors (PyTorch semantics: Conv2d stride 1, padding k//2, odd k keeps
# H and W; MaxPool2d(2) floors; Upsample(scale_factor=2) doubles).
def conv(name: str, x: Shape, out_channels, kernel=k) -> Layer:
    c, h, w = x
    return Layer(
        name, "conv", x, (out_channels, h, w),
        params={"weight": kernel**2 * c * out_channels, "bias": out_channels},
        fan_in=kernel**2 * c,
    )


def maxpool(name: str, x: Shape, half=_half) -> Layer:
    c, h, w = x
    return Layer(name, "maxpool", x, (c, half(h), half(w)))


def upsample(name: str, x: Shape) -> Layer:
    c, h, w = x
    return Layer(name, "upsample", x, (c, 2 * h, 2 * w))


def batchnorm(name: str, x: Shape) -> Layer:
    return Layer(name, "batchnorm", x, x, params={"weight": x[0], "bias": x[0]})


def relu(name: str, x: Shape) -> Layer:
    return Layer(name, "relu", x, x)


def _block(layers: List[Layer], name: str, x: Shape, out_channels, resize=None) -> Shape:
    """Conv → (MaxPool2d(2) | Upsample(2) | nothing) → BatchNorm2d → ReLU (the course's block),
    named as ``nn.Sequential`` children ``name.0`` … ``name.3``."""
    seq = [lambda n, s: conv(n, s, out_channels)]
    if resize is not None:
        seq.append(resize)
    seq += [batchnorm, relu]
    for i, make in enumerate(seq):
        layer = make(f"{name}.{i}", x)
        layers.append(layer)
        x = layer.out_shape
    return x


def _cat(a: Shape, b: Shape) -> Shape:
    """torch.cat on the channel dimension: no weights, outputs or connections."""
    return (a[0] + b[0], a[1], a[2])


def architecture(model: str, nf=NF, nc=NC, kernel=k, nic=NIC, h=H, w=W) -> List[Layer]:
    """The leaf layers of ``model`` ('cnn' or 'unet'), symbolic by default.

    >>> [l.name for l in architecture("cnn")][:4]
    ['downconv1.0', 'downconv1.1', 'downconv1.2', 'downconv1.3']
    >>> architecture("unet")[-1].in_shape[0]
    NC + NIC
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    nf, nc, kernel, nic, h, w = map(sp.sympify, (nf, nc, kernel, nic, h, w))
    layers: List[Layer] = []
    blk = lambda name, s, c, r=None: _block(layers, name, s, c, r)  # noqa: E731
    # The UNet only takes H, W divisible by 4 (its skip concatenations need it), where ⌊H/2⌋ = H/2.
    half = _half if model == "cnn" else _exact_half
    pool = lambda n, s: maxpool(n, s, half)  # noqa: E731
    x = (nic, h, w)
    d1 = blk("downconv1", x, nf, pool)
    d2 = blk("downconv2", d1, 2 * nf, pool)
    rf = blk("rfconv", d2, 2 * nf)
    if model == "cnn":
        u1 = blk("upconv1", rf, nf, upsample)
        u2 = blk("upconv2", u1, nc, upsample)
        layers.append(conv("finalconv", u2, nc, kernel))
    else:
        u1 = blk("upconv1", _cat(rf, d2), nf, upsample)
        u2 = blk("upconv2", _cat(u1, d1), nc, upsample)
        layers.append(conv("finalconv", _cat(u2, x), nc, kernel))
    return layers


def totals(layers: List[Layer], convention) -> Dict[str, sp.Expr]:
    """Sum of each quantity over ``layers``."""
    out = {q: sp.Integer(0) for q in QUANTITIES}
    for layer in layers:
        for q, v in layer.quantities(convention).items():
            out[q] += v
    return {q: sp.expand(v) for q, v in out.items()}


@lru_cache(maxsize=None)
def formulas(model: str, convention: str = conv_mod.DEFAULT_CONVENTION) -> Dict[str, sp.Expr]:
    """Exact total formulas in NF, NC, k, NIC, H, W.

    >>> f = formulas("cnn", "lecture")
    >>> f["outputs"].subs({H: 32, W: 32})
    1280*NC + 1728*NF
    """
    conv_mod.get(convention)
    return totals(architecture(model), convention)


@lru_cache(maxsize=None)
def layer_formulas(model: str, convention: str = conv_mod.DEFAULT_CONVENTION):
    """Per-layer ``[(name, kind, out_shape, {quantity: expr})]`` in NF, NC, k, NIC, H, W."""
    conv_mod.get(convention)
    return [
        (l.name, l.kind, l.out_shape, {q: sp.expand(v) for q, v in l.quantities(convention).items()})
        for l in architecture(model)
    ]


def evaluate(expr: sp.Expr, values: Dict) -> int:
    """Exact integer value of ``expr`` at ``values`` (keyed by symbol or name).

    Symbols are matched by name, so a formula parsed back from its JSON string
    (plain symbols, no assumptions) evaluates the same as the original, and so do
    formulas in other symbols (the training-cost closed forms of
    :mod:`complexity.cost.fit.closed_forms`: n, C, K, B …). ``ValueError`` when a
    symbol has no value or the value is not an integer (never truncated).

    >>> evaluate(formulas("cnn", "lecture")["weights"], dict(NF=32, NC=24, k=3, NIC=1, H=32, W=32))
    86112
    >>> evaluate("NF*floor(H/4)", {"NF": 2, "H": 31})
    14
    >>> evaluate("H/4", {"H": 6})
    Traceback (most recent call last):
    ...
    ValueError: H/4 does not evaluate to an integer at {'H': 6}: 3/2
    """
    by_name = {getattr(s, "name", s): v for s, v in values.items()}
    expr = sp.sympify(expr, locals=SYMBOLS)
    try:
        value = expr.xreplace({s: sp.Integer(by_name[s.name]) for s in expr.free_symbols})
    except KeyError as e:
        raise ValueError(f"no value given for {e.args[0]} in {expr}") from None
    if not value.is_Integer:
        raise ValueError(f"{expr} does not evaluate to an integer at {values}: {value}")
    return int(value)


def sympify_formula(text: str) -> sp.Expr:
    """Parse a formula string back with this module's symbols (and their assumptions).

    >>> sympify_formula("NF*k**2") == NF * k**2
    True
    """
    return sp.sympify(text, locals=SYMBOLS)


def polynomial_in_widths(expr: sp.Expr, values: Dict) -> sp.Expr:
    """``expr`` with k, NIC, H, W fixed at ``values``: a polynomial in NF and NC.

    >>> polynomial_in_widths(formulas("cnn", "lecture")["outputs"], dict(k=3, NIC=1, H=32, W=32))
    1280*NC + 1728*NF
    """
    subs = {SYMBOLS[s]: v for s, v in values.items() if s not in ("NF", "NC")}
    return sp.expand(sp.sympify(expr).subs(subs))
