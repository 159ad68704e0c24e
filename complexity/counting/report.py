"""The `report` answer: formulas, values at H×W and 2H×2W, and hook verification.

Building the answer (:func:`build`, here) and rendering it
(:func:`complexity.output.report.render`) are separate, as torchinfo separates its
statistics from its formatter. ``build`` imports torch only when asked to verify.

>>> r = build(["cnn"], ["lecture"], dict(NF=32, NC=24, k=3, NIC=1, H=32, W=32), verify=False)
>>> r[0]["quantities"]["weights"]["value"], r[0]["quantities"]["outputs"]["ratio"]
(86112, 4.0)
"""
from __future__ import annotations

from typing import Dict, List, Sequence

from complexity.counting import symbolic
from complexity.counting.conventions import CONVENTIONS

PARAM_ORDER = ("NF", "NC", "k", "NIC", "H", "W")


def doubled(params: Dict[str, int]) -> Dict[str, int]:
    """The same parameters at twice the height and width."""
    return {**params, "H": 2 * params["H"], "W": 2 * params["W"]}


def _layer_rows(model: str, convention: str, params: Dict[str, int]) -> List[dict]:
    rows = []
    for name, kind, shape, qs in symbolic.layer_formulas(model, convention):
        rows.append({
            "name": name, "kind": kind,
            "shape": [symbolic.evaluate(s, params) for s in shape],
            **{q: symbolic.evaluate(v, params) for q, v in qs.items()},
        })
    return rows


def _trace(model: str, params: Dict[str, int]) -> List[dict]:
    """What forward hooks see on the real network (meta device), once per size."""
    import torch

    from models.colourization import build as build_model

    from complexity.counting.hooks import trace

    with torch.device("meta"):
        net = build_model(model, params["k"], params["NF"], params["NC"], params["NIC"])
    return trace(net, (1, params["NIC"], params["H"], params["W"]))


def _measured_rows(records: List[dict], convention: str) -> List[dict]:
    from complexity.counting.hooks import quantities

    cv = CONVENTIONS[convention]
    return [{"name": r["name"], "kind": r["kind"], "shape": r["shape"], **quantities(r, cv)}
            for r in records]


def _agrees(predicted: List[dict], measured: List[dict], quantity: str) -> bool:
    if [(r["name"], r["shape"]) for r in predicted] != [(r["name"], r["shape"]) for r in measured]:
        return False
    return all(p[quantity] == m[quantity] for p, m in zip(predicted, measured))


def build(models: Sequence[str], conventions: Sequence[str], params: Dict[str, int],
          per_layer: bool = False, verify: bool = True) -> List[dict]:
    """One object per (model, convention), as ``report --format json`` prints it:
    ``{"model", "convention", "params", "quantities": {q: {"formula", "value",
    "doubled", "ratio", "verified"}}}`` (+ ``"layers"`` with ``per_layer``: ``{"name",
    "kind", "shape", q: value, "formulas": {q: formula}, "doubled": {q: value at
    2H×2W}}`` per layer)."""
    params = {p: int(params[p]) for p in PARAM_ORDER}
    big = doubled(params)
    results = []
    for model in models:
        traces = (_trace(model, params), _trace(model, big)) if verify else None
        for convention in conventions:
            rows, rows2 = _layer_rows(model, convention, params), _layer_rows(model, convention, big)
            if verify:
                measured = [_measured_rows(t, convention) for t in traces]
            quantities = {}
            for q, expr in symbolic.formulas(model, convention).items():
                value, value2 = symbolic.evaluate(expr, params), symbolic.evaluate(expr, big)
                # The totals are sums of the layer rows; check that too, so a bug in
                # either path shows.
                assert value == sum(r[q] for r in rows) and value2 == sum(r[q] for r in rows2)
                quantities[q] = {
                    "formula": str(expr),
                    "value": value,
                    "doubled": value2,
                    "ratio": value2 / value if value else None,
                    "verified": bool(verify) and _agrees(rows, measured[0], q)
                    and _agrees(rows2, measured[1], q),
                }
            entry = {"model": model, "convention": convention, "params": params,
                     "quantities": quantities}
            if per_layer:
                # Each layer: its values at H×W, its general formulas and its values at 2H×2W.
                entry["layers"] = [
                    {**row, "formulas": {q: str(v) for q, v in layer[3].items()},
                     "doubled": {q: row2[q] for q in layer[3]}}
                    for row, row2, layer in zip(rows, rows2,
                                                symbolic.layer_formulas(model, convention))]
            results.append(entry)
    return results
