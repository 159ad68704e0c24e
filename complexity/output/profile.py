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


def profile_heading(result: dict) -> str:
    """What the numbers are: model, input, convention, device (and a note on leaf
    classes the convention leaves at 0)."""
    convention = result["convention"]
    head = (f"{result['model']}, input {'×'.join(map(str, result['input']))}, convention "
            f"{convention}, {result['device']} device — exact counts for this input (batch "
            f"included); a row counts its whole subtree; MACs = FlopCounterMode FLOPs / 2\n")
    if result["uncovered_kinds"]:
        head += (f"note: convention {convention} defines weights and outputs for "
                 f"Conv2d, MaxPool2d, Upsample, BatchNorm2d and ReLU only; "
                 f"{', '.join(result['uncovered_kinds'])} count 0 weights and 0 outputs here "
                 f"(use --convention torch to count them)\n")
    return head


def profile_table(result: dict, depth=None, tablefmt: str = "simple") -> str:
    """Rows nested at most ``depth`` deep (None: all), indented by depth, and a total
    row; ``tablefmt`` is tabulate's (``github`` for markdown)."""
    from tabulate import tabulate

    shown = [r for r in result["layers"] if depth is None or r["depth"] <= depth]
    # A visible indent: tabulate strips leading spaces (0.9 has no switch for it).
    rows = [["· " * (r["depth"] - 1) + r["name"], r["kind"], shape_text(r["shape"]),
             number(r["params"]), number(r["params"] - r["trainable_params"]),
             number(r["outputs"]), number(r["macs"])] for r in shown]
    rows.append(["total", "", "", number(result["params"]),
                 number(result["params"] - result["trainable_params"]),
                 number(result["outputs"]), number(result["macs"])])
    return tabulate(
        rows, headers=["layer", "kind", "output shape", "params", "frozen", "outputs", "MACs"],
        tablefmt=tablefmt, disable_numparse=True,
        colalign=("left", "left", "left", "right", "right", "right", "right"))


def render_profile(result: dict, depth=None, fmt: str = "table") -> str:
    """A profile (the JSON object of ``profile --format json``, all layers), rows
    nested at most ``depth`` deep, as ``table``, ``markdown`` or ``json``."""
    if fmt == "json":
        out = {k: result[k] for k in PROFILE_JSON_KEYS}
        out["layers"] = [{k: r[k] for k in LAYER_JSON_KEYS} for r in result["layers"]
                         if depth is None or r["depth"] <= depth]
        return json.dumps(out, indent=2)
    return (profile_heading(result) + "\n"
            + profile_table(result, depth, "github" if fmt == "markdown" else "simple"))


def render_derive(result: dict, fmt: str = "table") -> str:
    """A derivation (the JSON object of ``derive --format json``) as ``table`` text
    or ``json``."""
    if fmt == "json":
        return json.dumps(result, indent=2)
    lines = [f"{result['model']}, input {'×'.join(map(str, result['input']))}, convention "
             f"{result['convention']}; symbols: "
             f"{', '.join(f'{n} = {b}' for n, b in result['symbols'].items())}",
             f"domain: {result['domain_text']}"]
    if result["narrowed"]:
        lines.append(f"  (narrowed: the counts are not polynomial in {', '.join(result['narrowed'])} "
                     "on every integer — floor effects of strided layers or of the model's own "
                     "rules — but are on this lattice)")
    width = max(len(q) for q in result["formulas"])
    lines += [f"{q:<{width}} = {f}" for q, f in result["formulas"].items()]
    lines.append(f"verified: exact at {result['verified_points']} random points of the domain, "
                 "none used to build the formulas")
    return "\n".join(lines)
