"""Renderings of ``profile`` and ``derive`` results (table, markdown, json).

>>> number(1234567), number(2.5), shape_text([1, 3, 8, 8])
('1,234,567', '2.5', '1×3×8×8')
"""
from __future__ import annotations

import json

PROFILE_JSON_KEYS = ("model", "input", "convention", "device", "params", "trainable_params",
                     "outputs", "macs", "ops", "uncovered_kinds")
LAYER_JSON_KEYS = ("name", "kind", "depth", "shape", "params", "trainable_params", "outputs",
                   "macs", "calls")


def number(v) -> str:
    """Thousands separators; one decimal for non-integers."""
    return f"{v:,}" if isinstance(v, int) else f"{v:,.1f}"


def shape_text(shape) -> str:
    """A module's output shape(s): ``1×64×56×56``; dicts and lists joined, ``--`` if none."""
    if isinstance(shape, dict):
        return "; ".join(f"{k}: {shape_text(v)}" for k, v in shape.items())
    if isinstance(shape, list) and shape and isinstance(shape[0], (list, dict)):
        return ", ".join(shape_text(s) for s in shape)
    if isinstance(shape, list):
        return "×".join(map(str, shape))
    return "--"


def render_profile(result: dict, name: str, shape, convention: str, device: str,
                   depth, fmt: str) -> str:
    """``result`` of :func:`complexity.counting.profile.profile`, rows nested at most
    ``depth`` deep (None: all), as ``table``, ``markdown`` or ``json``."""
    shown = [r for r in result["layers"] if depth is None or r["depth"] <= depth]
    if fmt == "json":
        out = {k: result[k] for k in PROFILE_JSON_KEYS}
        out["layers"] = [{k: r[k] for k in LAYER_JSON_KEYS} for r in shown]
        return json.dumps(out, indent=2)
    from tabulate import tabulate

    # A visible indent: tabulate strips leading spaces (0.9 has no switch for it).
    rows = [["· " * (r["depth"] - 1) + r["name"], r["kind"], shape_text(r["shape"]),
             number(r["params"]), number(r["params"] - r["trainable_params"]),
             number(r["outputs"]), number(r["macs"])] for r in shown]
    rows.append(["total", "", "", number(result["params"]),
                 number(result["params"] - result["trainable_params"]),
                 number(result["outputs"]), number(result["macs"])])
    tablefmt = "github" if fmt == "markdown" else "simple"
    head = (f"{name}, input {'×'.join(map(str, shape))}, convention {convention}, "
            f"{device} device — exact counts for this input (batch included); a row "
            f"counts its whole subtree; MACs = FlopCounterMode FLOPs / 2\n")
    if result["uncovered_kinds"]:
        head += (f"note: convention {convention} defines weights and outputs for "
                 f"Conv2d, MaxPool2d, Upsample, BatchNorm2d and ReLU only; "
                 f"{', '.join(result['uncovered_kinds'])} count 0 weights and 0 outputs here "
                 f"(use --convention torch to count them)\n")
    table = tabulate(
        rows, headers=["layer", "kind", "output shape", "params", "frozen", "outputs", "MACs"],
        tablefmt=tablefmt, disable_numparse=True,
        colalign=("left", "left", "left", "right", "right", "right", "right"))
    return head + "\n" + table


def render_derive(result: dict, name: str, shape, convention: str, binds: dict,
                  domain: str, fmt: str) -> str:
    """``result`` of :func:`complexity.counting.derive.derive`; ``binds`` maps each
    symbol to what it stands for (``input[2]`` or a constructor argument)."""
    if fmt == "json":
        return json.dumps({
            "model": name, "input": list(shape), "convention": convention,
            "symbols": binds, "domain": result["domain"], "domain_text": domain,
            "narrowed": result["narrowed"],
            "formulas": {q: str(f) for q, f in result["formulas"].items()},
            "verified_points": result["verified_points"]}, indent=2)
    lines = [f"{name}, input {'×'.join(map(str, shape))}, convention {convention}; "
             f"symbols: {', '.join(f'{n} = {b}' for n, b in binds.items())}",
             f"domain: {domain}"]
    if result["narrowed"]:
        lines.append(f"  (narrowed: the counts are not polynomial in {', '.join(result['narrowed'])} "
                     "on every integer — floor effects of strided layers or of the model's own "
                     "rules — but are on this lattice)")
    width = max(len(q) for q in result["formulas"])
    lines += [f"{q:<{width}} = {f}" for q, f in result["formulas"].items()]
    lines.append(f"verified: exact at {result['verified_points']} random points of the domain, "
                 "none used to build the formulas")
    return "\n".join(lines)
