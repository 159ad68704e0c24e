"""``reports/zoo.md``, the corpus index: what ``benchmarks/zoo.py`` ran, grouped by
library and task (torchvision classification, segmentation, video, optical flow,
detection; the timm and transformers samples), with counts of what ran and was
exact, one table per group, and the two corpus reports it does not run itself
(``reports/timm_zoo.md``, ``reports/text_zoo.md``) summarised from their files.
"""
from __future__ import annotations

import os
import re

#: Quantities compared (measure.KEYS), short column names.
QUANTITIES = [("param_bytes", "param"), ("grad_bytes", "grad"), ("optimizer_bytes", "adam"),
              ("saved_activation_bytes", "saved"), ("forward_flops", "fwd"),
              ("backward_flops", "bwd"), ("peak_bytes", "peak")]
#: Input sizes tried in turn when the model refuses the requested one.
FALLBACK_SIZES = (96, 128, 224, 299)

#: Row family -> (library, task), in the order the report shows them.
GROUPS = {"torchvision": ("torchvision", "classification"),
          "torchvision seg": ("torchvision", "segmentation"),
          "video": ("torchvision", "video classification"),
          "optical flow": ("torchvision", "optical flow"),
          "detection": ("torchvision", "detection"),
          "timm": ("timm", "classification (a sample)"),
          "transformers": ("transformers", "a sample (small configs)")}
#: The corpus reports other benchmarks write: (library, path, command).
CORPORA = [("timm", "timm_zoo.md", "python benchmarks/timm_zoo.py",
            "one model from every module of `timm.models`"),
           ("transformers", "text_zoo.md", "python benchmarks/text_zoo.py --timeout 60",
            "every causal-LM, masked-LM, sequence-, image- and audio-classification "
            "architecture")]


def pct(e):
    if e is None:
        return "n/a"
    if e == 0:
        return "0"
    return f"{100 * e:+.2f}%" if abs(e) >= 5e-5 else f"{100 * e:+.1e}%"  # never "+0.00%"


def worst(row, keys=None):
    keys = keys or [k for k, _ in QUANTITIES]
    es = [abs(row["errors"][k]) for k in keys if row["errors"].get(k) is not None]
    return max(es) if es else 0.0


def _exact_but_peak(r) -> bool:
    return worst(r, [k for k, _ in QUANTITIES if k != "peak_bytes"]) == 0


def _peak_ok(r) -> bool:
    e = r["errors"].get("peak_bytes")
    return e is not None and abs(e) <= 0.01


def corpus_summary(path):
    """The ``- `` lines of a corpus report's ``## Summary``, or None when absent."""
    if not os.path.exists(path):
        return None
    lines, inside = [], False
    with open(path) as f:
        for line in f:
            if line.startswith("## Summary"):
                inside = True
            elif line.startswith("#"):
                if inside:
                    break
            elif inside and line.startswith("- "):
                lines.append(line[2:].strip())
    return lines


def _index(rows, reports_dir):
    """The index table: per (library, task) the models, how many ran, how many
    are exact on every quantity but the peak with no unmodelled call, how many
    have the peak within 1 %; then the corpus reports, summarised."""
    lines = ["## The corpus", "",
             "| library | task | models | ran | exact but the peak, nothing unmodelled "
             "| peak within 1 % | not run |", "|---|---|---:|---:|---:|---:|---|"]
    for family, (lib, task) in GROUPS.items():
        rs = [r for r in rows if r["family"] == family]
        if not rs:
            continue
        ok = [r for r in rs if r["error"] is None]
        exact = sum(1 for r in ok if _exact_but_peak(r) and not r["unmodelled"])
        peak = sum(1 for r in ok if _peak_ok(r))
        why = "; ".join(sorted({r["error"].split(": ", 1)[-1][:160] for r in rs
                                if r["error"] is not None}))
        lines.append(f"| {lib} | {task} | {len(rs)} | {len(ok)} | {exact} | {peak} | "
                     f"{why.replace('|', '/') or '—'} |")
    lines += ["", "The whole-corpus reports of the other libraries, run by their own "
              "benchmarks (their summaries, read from the files):", ""]
    for lib, name, command, what in CORPORA:
        got = corpus_summary(os.path.join(reports_dir, name))
        if got is None:
            lines.append(f"- **{lib}** ({what}): [reports/{name}]({name}) not written yet "
                         f"(`{command}`).")
            continue
        lines.append(f"- **{lib}** ({what}; `{command}`, [reports/{name}]({name})): "
                     + "; ".join(re.sub(r"\s+", " ", x) for x in got[:3]) + ".")
    return lines


def _intro(args):
    return [
        "# The model corpus: the training-step cost predicted against measured",
        "",
        "Regenerate: `python benchmarks/zoo.py"
        + (f" --only {args.only}" if args.only else "") + f" --size {args.size} --batch {args.batch}"
        + f" --how {args.how}`" + (" (a subset)" if args.only else ""),
        "",
        f"One Adam step, batch {args.batch}, input {args.size}×{args.size} (or the smallest of "
        f"{', '.join(map(str, FALLBACK_SIZES))} the model takes; video: clips of 4 frames, 16 "
        "for MViT and S3D; optical flow: two images stacked on the channels, `FlowPair` in "
        "`benchmarks/zoo.py`, whose loss is a cross-entropy over one logit per refinement "
        "iteration, that iteration's mean flow), with every parameter "
        "training (`full`) and with only the last layer (`last`). Predicted: "
        "`predict_with_unmodelled`; measured: `measure(how=...)` — `real` is a real CPU "
        f"step (models up to {args.real_limit:,} parameters with `--how auto`), `fake` a "
        "step on fake CPU tensors. Each error column is the larger |predicted / measured − 1| "
        "of the two modes (`0`: equal in both). *unmodelled*: calls with no rule (then the "
        "prediction is approximate, ≈). *cpu = meta*: `profile`'s MACs at batch 1 on the cpu "
        "device equal those on the meta device. Time: build, predict and measure of both "
        "modes, and the profile check, on a 2-core machine shared with other jobs.",
        "",
    ] + ([getattr(args, "note", None), ""] if getattr(args, "note", None) else [])


def _summary(rows, ok, failed, seconds, total, merged=False):
    """Counts over every row this run made, computed from them."""
    zero = [r for r in ok if not r["unmodelled"]]
    exact = [r for r in ok if _exact_but_peak(r)]
    prof = [r for r in ok if isinstance(r.get("profile"), tuple)]
    prof_eq = [r for r in prof if r["profile"][0] == r["profile"][1]]
    hows = sorted({r["how"] for r in ok})
    lines = [
        "## Summary of the rows below", "",
        (f"- **Partial run: {len(rows)} of the {total} models selected** (interrupted; "
         "the rows below are all that was measured)." if total and len(rows) < total else
         f"- {len(rows)} models.") + f" {len(ok)} ran, {len(failed)} did not (listed at the "
        "end, with why).",
        "- Measured with: " + ", ".join(f"`{h}` {sum(r['how'] == h for r in ok)}" for h in hows)
        + ".",
        f"- {len(zero)} of {len(ok)} have no unmodelled call.",
        f"- {len(exact)} of {len(ok)} are predicted exactly (both modes) for every quantity "
        "but the peak.",
    ]
    for key, short in QUANTITIES:
        rs = [r for r in ok if r["errors"].get(key) is not None]
        if rs:
            w = max(rs, key=lambda r: abs(r["errors"][key]))
            n0 = sum(r["errors"][key] == 0 for r in rs)
            lines.append(f"- `{key}`: exact for {n0} of {len(rs)}; worst "
                         f"{pct(w['errors'][key])} ({w['model']}).")
    if prof:
        lines.append(f"- `profile` cpu = meta MACs for {len(prof_eq)} of {len(prof)} models "
                     "checked" + ("" if len(prof_eq) == len(prof) else " (differs: " + ", ".join(
                         r["model"] for r in prof if r not in prof_eq) + ")") + ".")
    if not merged:
        lines.append(f"- Whole run: {seconds:.0f} s.")
    elif seconds:
        lines.append(f"- The runs whose rows are new here: {seconds:.0f} s.")
    return lines


def _row(r):
    p = r.get("profile")
    if isinstance(p, tuple):
        cell = "yes" if p[0] == p[1] else f"no: {p[1]:,} vs {p[0]:,}"
    else:
        cell = p or "—"
    cells = [r["model"], f"{r['params']:,}", r["input"], r["how"],
             ", ".join(sorted(r["unmodelled"])) or "none"]
    cells += [pct(r["errors"].get(k)) for k, _ in QUANTITIES]
    cells += [cell, f"{r['seconds']:.1f}"]
    return "| " + " | ".join(cells) + " |"


def _tables(ok, failed):
    """One table per (library, task), worst first; then what did not run."""
    head = (["model", "params", "input", "how", "unmodelled"]
            + [short for _, short in QUANTITIES] + ["cpu = meta", "time s"])
    lines = ["", "## Models that ran"]
    for family, (lib, task) in GROUPS.items():
        rs = [r for r in ok if r["family"] == family]
        if not rs:
            continue
        lines += ["", f"### {lib}: {task} ({len(rs)})", "", "| " + " | ".join(head) + " |",
                  "|" + "|".join("---" if i < 5 and i != 1 else "---:"
                                 for i in range(len(head))) + "|"]
        lines += [_row(r) for r in rs]
    if failed:
        lines += ["", "## Models that did not run", "", "| model | family | why |",
                  "|---|---|---|"]
        lines += [f"| {r['model']} | {r['family']} | {r['error'].replace('|', '/')} |"
                  for r in failed]
    return lines


def render(rows, args, started, finished, total=None, reports_dir=None):
    """The report: the intro, the corpus index, this run's summary, the tables."""
    reports_dir = reports_dir or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reports")
    ok = sorted((r for r in rows if r["error"] is None), key=lambda r: (-worst(r), r["model"]))
    failed = sorted((r for r in rows if r["error"] is not None), key=lambda r: r["model"])
    lines = _intro(args) + _index(rows, reports_dir) + [""]
    lines += _summary(rows, ok, failed, finished - started, total,
                      bool(getattr(args, "keep", None))) + _tables(ok, failed)
    return "\n".join(lines) + "\n"


def _fraction(cell):
    """A :func:`pct` cell back to a fraction (None for ``n/a``)."""
    if cell == "n/a":
        return None
    return 0.0 if cell == "0" else float(cell.rstrip("%")) / 100


def _profile(cell):
    if cell == "yes":
        return (1, 1)
    got = re.fullmatch(r"no: ([\d,]+) vs ([\d,]+)", cell)
    if got:
        return tuple(int(x.replace(",", "")) for x in reversed(got.groups()))
    return cell


def rows_from_report(text):
    """The rows a report of :func:`render` (or of the flat table before it: a
    family column) shows, read back: what a partial re-run keeps of the others."""
    family, rows, part = None, [], None
    by_heading = {f"{lib}: {task}": fam for fam, (lib, task) in GROUPS.items()}
    for line in text.splitlines():
        if line.startswith("## "):
            part = line[3:].strip()
        elif line.startswith("### "):
            family = by_heading.get(line[4:].rsplit(" (", 1)[0].strip())
        elif line.startswith("| ") and not line.startswith("| model"):
            c = [x.strip() for x in line.strip().strip("|").split("|")]
            if part == "Models that did not run":
                rows.append(dict(model=c[0], family=c[1], error=c[2]))
            elif part == "Models that ran":
                if len(c) == 6 + len(QUANTITIES) + 2:  # the flat table: a family column
                    fam, c = c[1], [c[0]] + c[2:]
                else:
                    fam = family
                rows.append(dict(
                    model=c[0], family=fam, error=None, params=int(c[1].replace(",", "")),
                    input=c[2], how=c[3], unmodelled=set() if c[4] == "none" else set(
                        u.strip() for u in c[4].split(",")),
                    errors={k: _fraction(x) for (k, _), x in zip(QUANTITIES, c[5:])},
                    profile=_profile(c[5 + len(QUANTITIES)]),
                    seconds=float(c[6 + len(QUANTITIES)])))
    return rows
