"""Every command that prints a table offers ``--format table|markdown|latex|csv|json``
with the same columns: each format parses (CSV with the csv module, JSON with
json.loads, LaTeX as a tabular whose numeric columns are right-aligned, markdown as
a GitHub table) and every format shows the same values as the command's JSON.

The commands that train are tested on their renderers with small result objects of
the shape their ``--format json`` prints, and with one short run each."""
import csv
import io
import json
import math
import os
import re

import pytest
import sympy as sp

from cli_helpers import run_cli
from complexity.output import experiments as ex
from complexity.output.tables import FORMATS, Cell, latex_text, render_table

TEXT_FORMATS = ("table", "markdown", "latex", "csv")


# ------------------------------------------------------------------ parsing helpers

def parse_csv(text):
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


def markdown_tables(text):
    """Every GitHub table in ``text``: [(header cells, [row cells])]."""
    tables, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if re.fullmatch(r"\|(-+\|)+", line):
            cells = lambda l: [c.strip() for c in l.strip().strip("|").split("|")]
            rows = []
            for l in lines[i + 1:]:
                if not l.startswith("|"):
                    break
                rows.append(cells(l))
            tables.append((cells(lines[i - 1]), rows))
    return tables


def simple_tables(text):
    """Every tabulate "simple" table: [(header cells, [row cells])], cells split at
    two or more spaces (headers and cells hold single spaces at most)."""
    tables, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line and re.fullmatch(r"-+( +-+)*", line):
            cuts = [m.span() for m in re.finditer(r"-+", line)]

            def cells(l):
                return [l[a:(cuts[j + 1][0] if j + 1 < len(cuts) else len(l))].strip()
                        for j, (a, _) in enumerate(cuts)]
            rows = []
            for l in lines[i + 1:]:
                if not l.strip() or l.startswith("("):  # a blank line or a note ends it
                    break
                rows.append(cells(l))
            tables.append((cells(lines[i - 1]), rows))
    return tables


def latex_tables(text):
    """Every tabular: [(column spec, [[cells] per row, header first])]."""
    out = []
    for spec, body in re.findall(r"\\begin\{tabular\}\{([lrc]+)\}\n(.*?)\\end\{tabular\}",
                                 text, re.S):
        rows = [[c.strip() for c in line.rstrip().removesuffix("\\\\").split(" & ")]
                for line in body.splitlines() if line.strip() and line.strip() != r"\hline"]
        out.append((spec, rows))
    return out


def spec_for(n, numeric):
    return "".join("r" if i in set(numeric) else "l" for i in range(n))


def as_number(text):
    """A displayed number back as a float: thousands separators, ≥, % and + dropped."""
    return float(text.replace("≥", "").replace("≈", "").replace(",", "").replace("%", "").replace("+", ""))


def close(shown, value, rel=5e-3, abs_=1e-4):
    """Does the text a table shows stand for ``value`` (at the table's precision)?"""
    if value in (None, ""):
        return shown in ("", "—", "---")
    return math.isclose(as_number(shown), float(value), rel_tol=rel, abs_tol=abs_)


def check_formats(texts, headers, numeric, n_tables=1):
    """The formats' shared contract: CSV header = the columns, markdown and table
    show the same header, LaTeX right-aligns the numeric columns; returns the CSV rows."""
    headers = list(headers)
    head, rows = parse_csv(texts["csv"])
    assert head == headers
    assert "|---" in texts["markdown"]
    assert markdown_tables(texts["markdown"])[0][0] == headers
    assert simple_tables(texts["table"])[0][0] == headers
    assert r"\begin{tabular}" in texts["latex"]
    spec, latex_rows = latex_tables(texts["latex"])[0]
    assert spec == spec_for(len(headers), numeric)
    assert latex_rows[0] == [latex_text(h) for h in headers]
    assert len(latex_tables(texts["latex"])) == n_tables
    # the same rows in every format
    n = len(rows)
    assert len(markdown_tables(texts["markdown"])[0][1]) == n
    assert len(simple_tables(texts["table"])[0][1]) == n
    assert len(latex_rows) - 1 == n
    return rows


def cli_texts(capsys, argv, formats=FORMATS):
    out = {}
    for fmt in formats:
        code, text, err = run_cli(argv + ["--format", fmt], capsys)
        assert code == 0, err
        out[fmt] = text
    return out


# ------------------------------------------------------------------ the helper

def test_render_table_formats_one_table_four_ways():
    rows = [["conv_1", Cell(1234, "1,234"), 0.5, None], ["total", Cell(1234, "1,234"), 1.0, "x"]]
    headers = ["layer", "params", "share", "note"]
    texts = {f: render_table(rows, headers, f, (1, 2)) for f in TEXT_FORMATS}
    assert parse_csv(texts["csv"]) == (headers, [["conv_1", "1234", "0.5", ""],
                                                 ["total", "1234", "1.0", "x"]])
    assert "1,234" in texts["table"] and "1234" not in texts["table"]
    spec, latex_rows = latex_tables(texts["latex"])[0]
    assert spec == "lrrl" and latex_rows[1][0] == r"conv\_1"  # escaped
    with pytest.raises(ValueError, match="not a table format"):
        render_table(rows, headers, "xml")


def test_every_command_offers_every_format(capsys):
    from complexity.cli import main as cli

    for name in cli.COMMANDS:
        code, out, _ = run_cli([name, "--help"], capsys)
        assert code == 0
        assert re.search(r"--format\s+\{[^}]*\}", out), name
        choices = re.search(r"--format\s+\{([^}]*)\}", out).group(1).split(",")
        assert set(FORMATS) <= set(choices), (name, choices)


# ------------------------------------------------------------------ report

def pretty_of_latex(formula):
    r"""``$72 \cdot NF^{2} + NC$`` → ``72·NF² + NC``: the LaTeX formula read back as the
    table's text, to compare term order."""
    s = formula.strip("$").replace(r" \cdot ", "·").replace("^{2}", "²")
    return re.sub(r"\^\{(\d+)\}", r"^\1", s)


def test_report_formats_agree(capsys):
    texts = cli_texts(capsys, ["report", "--nf", "8", "--nc", "6"])
    data = json.loads(texts["json"])
    head, rows = parse_csv(texts["csv"])
    assert len(rows) == 2 * 3
    by_key = {(d["model"], q): d["quantities"][q] for d in data for q in d["quantities"]}
    table_head, table_rows = simple_tables(texts["table"])[0]
    md_head, md_rows = markdown_tables(texts["markdown"])[0]
    spec, latex_rows = latex_tables(texts["latex"])[0]
    assert spec == "lllrrrl" and md_head == table_head and len(latex_rows[0]) == len(table_head)
    for t, m, l in zip(table_rows, md_rows, latex_rows[1:]):
        d = by_key[(t[0], t[1])]
        # values: table (with separators), markdown and LaTeX (plain) equal the JSON
        assert [as_number(c) for c in (t[3], t[4], m[3], m[4], l[3], l[4])] == [
            d["value"], d["doubled"]] * 3
        # formulas: the same terms, in the same order, in every format
        assert m[2] == t[2] == pretty_of_latex(l[2])
    for r in rows:
        d = by_key[(r[0], r[head.index("quantity")])]
        assert int(r[head.index("value")]) == d["value"]


def test_report_per_layer_every_format_has_layers_formulas_doubling_and_totals(capsys):
    argv = ["report", "--per-layer", "--nf", "8", "--nc", "6", "--size", "16x24"]
    texts = cli_texts(capsys, argv)
    data = json.loads(texts["json"])
    assert [d["model"] for d in data] == ["cnn", "unet"]
    # JSON: every layer holds its formulas and its values at 2H×2W, summing to the totals
    for d in data:
        for q, v in d["quantities"].items():
            assert sum(l["doubled"][q] for l in d["layers"]) == v["doubled"]
            assert all(set(l["formulas"]) == set(d["quantities"]) for l in d["layers"])
    # CSV: one row per (model, convention, quantity, layer) and a total row per quantity
    head, rows = parse_csv(texts["csv"])
    assert head == ["model", "convention", "quantity", "layer", "kind", "shape", "formula",
                    "value", "doubled"]
    expected = []
    for d in data:
        for q, total in d["quantities"].items():
            expected += [[d["model"], d["convention"], q, l["name"], l["kind"],
                          "x".join(map(str, l["shape"])), l["formulas"][q], str(l[q]),
                          str(l["doubled"][q])] for l in d["layers"]]
            expected.append([d["model"], d["convention"], q, "total", "", "", total["formula"],
                             str(total["value"]), str(total["doubled"])])
    assert rows == expected
    # table, markdown, LaTeX: after the totals, one table per model and quantity, each
    # with every layer and a total row, the same values and formulas in the same order
    per_layer = [(d, q) for d in data for q in d["quantities"]]
    simple = simple_tables(texts["table"])[1:]
    md = markdown_tables(texts["markdown"])[1:]
    latex = latex_tables(texts["latex"])
    assert latex[0][0] == "lllrrrl"
    latex = latex[1:]
    assert len(simple) == len(md) == len(latex) == len(per_layer) == 6
    for (d, q), (s_head, s_rows), (m_head, m_rows), (spec, l_rows) in zip(
            per_layer, simple, md, latex):
        assert s_head == m_head == ["layer", "kind", "output", "formula at 16×24 (k=3, NIC=1)",
                                    "16×24", "32×48"]
        assert spec == "llllrr"
        names = [l["name"] for l in d["layers"]] + ["total"]
        values = [(l[q], l["doubled"][q]) for l in d["layers"]]
        values.append((d["quantities"][q]["value"], d["quantities"][q]["doubled"]))
        for rows_, skip in ((s_rows, 0), (m_rows, 0), (l_rows, 1)):
            rows_ = rows_[skip:]
            assert [r[0] for r in rows_] == names
            assert [(as_number(r[4]), as_number(r[5])) for r in rows_] == values
        assert [r[3] for r in s_rows] == [r[3] for r in m_rows] == [
            pretty_of_latex(r[3]) for r in l_rows[1:]]


# ------------------------------------------------------------------ profile

PROFILE = ["profile", "torchvision:resnet18", "--input", "1,3,32,32"]


def test_profile_formats_and_a_screenful_by_default(capsys, golden):
    from complexity.output.profile import PROFILE_HEADERS, SCREEN_ROWS

    texts = cli_texts(capsys, list(PROFILE))
    golden("profile_resnet18_screenful", texts["table"])
    data = json.loads(texts["json"])
    code, everything, _ = run_cli(PROFILE + ["--depth", "all", "--format", "json"], capsys)
    every = json.loads(everything)["layers"]
    # the default: the deepest depth that fits a screen, the same rows in JSON
    depth = max(r["depth"] for r in data["layers"])
    assert len(data["layers"]) <= SCREEN_ROWS
    assert sum(1 for r in every if r["depth"] <= depth + 1) > SCREEN_ROWS
    assert data["layers"] == [r for r in every if r["depth"] <= depth]
    hidden = len(every) - len(data["layers"])
    for fmt in ("table", "markdown", "latex"):
        assert f"{hidden} more rows nested deeper than {depth} not shown" in texts[fmt]
        assert "--depth all" in texts[fmt]
    assert "not shown" not in texts["csv"]
    rows = check_formats({f: texts[f] for f in TEXT_FORMATS}, PROFILE_HEADERS, (3, 4, 5, 6))
    # CSV: the JSON's rows and a total, plain numbers
    assert [r[0] for r in rows] == [l["name"] for l in data["layers"]] + ["total"]
    for r, l in zip(rows, data["layers"] + [data]):
        assert [int(r[3]), int(r[4]), int(r[5]), int(r[6])] == [
            l["params"], l["params"] - l["trainable_params"], l["outputs"], l["macs"]]
    for t, r in zip(simple_tables(texts["table"])[0][1], rows):
        assert [as_number(c) for c in t[3:]] == [float(c) for c in r[3:]]


def test_profile_explicit_depth_shows_no_note(capsys):
    code, out, _ = run_cli(PROFILE + ["--depth", "3"], capsys)
    assert code == 0 and "not shown" not in out
    code, out, _ = run_cli(PROFILE + ["--depth", "3", "--format", "json"], capsys)
    layers = json.loads(out)["layers"]
    assert len(layers) > 40 and max(r["depth"] for r in layers) == 3
    # a model that fits: every row, no note
    code, out, _ = run_cli(["profile", "unet"], capsys)
    assert "not shown" not in out and "· upconv2.3" in out


# ------------------------------------------------------------------ derive

def test_derive_formats_one_row_per_quantity(capsys):
    from complexity.output.profile import DERIVE_HEADERS, render_derive

    code, out, _ = run_cli(["derive", "cnn", "--symbols", "NF,NC", "--format", "json"], capsys)
    data = json.loads(out)
    texts = {f: render_derive(data, f) for f in ("markdown", "latex", "csv")}
    code, cli_csv, _ = run_cli(["derive", "cnn", "--symbols", "NF,NC", "--format", "csv"], capsys)
    assert code == 0 and cli_csv == texts["csv"]
    head, rows = parse_csv(texts["csv"])
    assert head == list(DERIVE_HEADERS)
    assert dict(rows) == data["formulas"]
    md_head, md_rows = markdown_tables(texts["markdown"])[0]
    # the markdown shows the readable (factored) forms; each equals the JSON's formula
    assert md_head == list(DERIVE_HEADERS) and dict(md_rows) == data["readable"]
    names = {n: sp.Symbol(n, integer=True, positive=True) for n in ("NF", "NC")}
    for q, f in data["formulas"].items():
        readable = sp.sympify(data["readable"][q].replace("·", "*").replace("²", "**2"),
                              locals=names)
        assert sp.expand(readable - sp.sympify(f, locals=names)) == 0, q
    spec, l_rows = latex_tables(texts["latex"])[0]
    assert spec == "ll" and [r[0] for r in l_rows[1:]] == list(data["formulas"])
    for (q, f), r in zip(data["readable"].items(), l_rows[1:]):
        # the same numbers in the same order as the readable text (both factored)
        assert re.findall(r"\d+", r[1].replace("^{2}", "")) == \
            re.findall(r"\d+", f.replace("²", "")), (r[1], f)
    assert "verified: exact" in texts["markdown"] and "% verified: exact" in texts["latex"]


# ------------------------------------------------------------------ finetune

def test_finetune_formats_agree_with_json(capsys):
    from complexity.cost.keys import KEYS
    from complexity.output import finetune as fr

    argv = ["finetune", "--no-measure", "--layers", "1,2", "--width", "4", "--size", "8",
            "--batch", "2"]
    texts = cli_texts(capsys, argv)
    data = json.loads(texts["json"])
    rows = check_formats({f: texts[f] for f in TEXT_FORMATS}, fr.HEADERS, (1, 3, 6, 7, 8),
                         n_tables=3)  # + slopes, full / last
    assert len(rows) == len(data) * len(KEYS)
    for r, (d, q) in zip(rows, [(d, q) for d in data for q in KEYS]):
        assert (r[0], int(r[1]), r[2], int(r[3]), r[4], r[5]) == (
            d["model"], d["layers"], "%dx%d" % tuple(d["size"]), d["batch"], d["mode"], q)
        assert int(r[6]) == d["predicted"][q] and r[7] == r[8] == ""


def test_finetune_measured_error_is_a_plain_percentage():
    from complexity.cost.keys import KEYS
    from complexity.output import finetune as fr

    r = {"model": "stack", "layers": 2, "size": [8, 8], "batch": 1, "mode": "full",
         "trainable_params": 10, "predicted": dict.fromkeys(KEYS, 100),
         "measured": dict.fromkeys(KEYS, 104), "unmodelled": ["softmax"]}
    texts = {f: fr.render([r], f) for f in TEXT_FORMATS}
    _, rows = parse_csv(texts["csv"])
    assert all(float(row[8]) == pytest.approx(fr.error_pct(100, 104)) for row in rows)
    assert {row[6] for row in rows} == {"100"}  # the ≈ of an estimate is the table's
    assert "≈ 100" in texts["table"] and r"$\approx$ 100" in texts["latex"]
    assert "% ≈ (unmodelled: softmax)" in texts["latex"]


# ------------------------------------------------------------------ train, sweep-batch

HISTORY = [{"epoch": 1, "train_loss": 1.6961591243743896, "val_loss": 1.5903507868448894,
            "val_acc": 0.24658203125},
           {"epoch": 2, "train_loss": 1.606522023677826, "val_loss": 1.5918041865030925,
            "val_acc": 0.18123372395833334}]
TRAIN = {"model": "cnn", "epochs": 2, "batch_size": 6, "lr": 0.001, "seed": 0, "nf": 4,
         "nc": 5, "kernel": 3, "data": "offline default; capped at 12 per split",
         "history": HISTORY, "final": {k: HISTORY[-1][k] for k in ("train_loss", "val_loss",
                                                                   "val_acc")},
         "seconds": 0.0568, "out": "runs/train-cnn"}


def test_train_formats_show_the_history():
    texts = {f: ex.render_train(TRAIN, f) for f in TEXT_FORMATS}
    rows = check_formats(texts, ex.TRAIN_HEADERS, (0, 1, 2, 3))
    keys = ("epoch", "train_loss", "val_loss", "val_acc")
    assert [[float(c) for c in r] for r in rows] == [[h[k] for k in keys] for h in HISTORY]
    for shown, h in zip(simple_tables(texts["table"])[0][1], HISTORY):
        assert all(close(c, h[k]) for c, k in zip(shown, keys))
    assert "% measured wall time" in texts["latex"]


def test_sweep_formats_show_one_row_per_batch_size():
    runs = [dict(TRAIN, batch_size=b, steps_per_epoch=s, seconds=t)
            for b, s, t in ((3, 4, 1.25), (12, 1, 0.5))]
    result = {"model": "unet", "epochs": 2, "lr": 0.001, "data": "x", "train_images": 12,
              "out": "runs/sweep-batch", "runs": runs}
    texts = {f: ex.render_sweep(result, f) for f in TEXT_FORMATS}
    rows = check_formats(texts, ex.SWEEP_HEADERS, range(6))
    for r, run in zip(rows, runs):
        assert [float(c) for c in r] == [run["batch_size"], run["steps_per_epoch"],
                                         run["final"]["train_loss"], run["final"]["val_loss"],
                                         run["final"]["val_acc"], run["seconds"]]


# ------------------------------------------------------------------ invariance

def _inv_row(bn, a, b, interior_max, delta):
    return {"a": a, "b": b, "bn": bn,
            "interior": {"max": interior_max, "mean": None if interior_max is None else 0.1,
                         "pixels": 0 if interior_max is None else 4},
            "border": {"max": 5.46, "mean": 0.62, "pixels": 1020}, "acc": 0.38,
            "acc_moved": 0.38 + delta, "delta_acc": delta,
            "expected": "invariant up to BN's ε (exact when ε = 0), every pixel"}


INVARIANCE = {"model": "cnn", "border_band": 15, "interior_pixels": 4, "pixels": 1024,
              "images": 12, "exact": False, "source": "test", "data": "x", "kernel": 3,
              "nf": 4, "nc": 5,
              "rows": [_inv_row("train", 0.5, 0.0, 6.17e-3, -1e-4),
                       _inv_row("eval", 2.0, -0.5, None, 0.023)]}


def test_invariance_formats_and_regions_without_pixels():
    texts = {f: ex.render_invariance(INVARIANCE, f) for f in TEXT_FORMATS}
    rows = check_formats(texts, ex.INVARIANCE_HEADERS, range(1, 8))
    for r, d in zip(rows, INVARIANCE["rows"]):
        want = [d["bn"], d["a"], d["b"], d["interior"]["max"], d["interior"]["mean"],
                d["border"]["max"], d["border"]["mean"], d["delta_acc"], d["expected"]]
        assert r[0] == want[0] and r[-1] == want[-1]
        assert [None if c == "" else float(c) for c in r[1:-1]] == want[1:-1]
    shown = simple_tables(texts["table"])[0][1][1]
    assert shown[3] == shown[4] == "—"  # no interior pixel: no measurement, not 0
    assert "---" in latex_tables(texts["latex"])[0][1][2][3]
    assert r"$\varepsilon$" in texts["latex"] and "ε" not in texts["latex"].split("tabular")[1]


# ------------------------------------------------------------------ segment

SEGMENT = {
    "arch": "deeplabv3_mobilenet_v3_large", "train": "last", "epochs": 2,
    "history": [{"epoch": 1, "train_loss": 0.6895, "val_loss": 25099.14, "miou": 0.3035,
                 "course_iou": 0.0},
                {"epoch": 2, "train_loss": 3.0453, "val_loss": 15440.15, "miou": 0.3035,
                 "course_iou": 0.0}],
    "best": {"epoch": 1, "train_loss": 0.6895, "val_loss": 25099.14, "miou": 0.3035,
             "course_iou": 0.0},
    "trainable_params": 514, "total_params": 11020594, "seconds": 3.1,
    "initial": {"val_loss": 668.44, "miou": 0.2348, "course_iou": 0.0},
    "weights": "no --weights: every weight is random", "data": "generated shapes", "size": 32,
    "lr": 0.05, "batch_size": 2,
    "cost": {"input_shape": [2, 3, 32, 32], "batch_size": 2, "size": 32, "source": "measured",
             "trainable_param_bytes": 2056, "param_bytes": 44082376, "peak_bytes": 44535240},
    "files": {"best.pt": "runs/segment/best.pt", "result.json": "runs/segment/result.json"},
}


def test_segment_formats_show_epoch_zero_and_every_epoch():
    texts = {f: ex.render_segment(SEGMENT, f) for f in TEXT_FORMATS}
    assert ex.render_segment(SEGMENT, "text") == texts["table"]
    rows = check_formats(texts, ex.SEGMENT_HEADERS, range(5), n_tables=2)  # + the cost
    keys = ("train_loss", "val_loss", "miou", "course_iou")
    assert rows[0] == ["0", ""] + [str(SEGMENT["initial"][k]) for k in keys[1:]]
    assert [[float(c) for c in r] for r in rows[1:]] == [
        [h["epoch"]] + [h[k] for k in keys] for h in SEGMENT["history"]]
    cost = markdown_tables(texts["markdown"])[1]
    assert cost[0] == list(ex.SEGMENT_COST_HEADERS)
    assert dict(cost[1]) == {k: f"{v:,}" for k, v in SEGMENT["cost"].items()
                             if k.endswith("bytes")}
    assert latex_tables(texts["latex"])[1][0] == "lr"


# ------------------------------------------------------------------ reproduce

def test_reproduce_formats_one_row_per_file():
    result = {"quick": True, "reports": {"counts": ["reports/counts.md"],
                                         "finetune": ["reports/finetune.md", "reports/a.png"]}}
    table = ex.render_reproduce(result, "table")
    assert table == "counts: reports/counts.md\nfinetune: reports/finetune.md, reports/a.png"
    texts = {f: ex.render_reproduce(result, f) for f in ("markdown", "latex", "csv")}
    head, rows = parse_csv(texts["csv"])
    assert head == list(ex.REPRODUCE_HEADERS)
    assert rows == [[n, p] for n, ps in result["reports"].items() for p in ps]
    assert markdown_tables(texts["markdown"])[0][1] == rows
    spec, l_rows = latex_tables(texts["latex"])[0]
    assert spec == "ll" and len(l_rows) == 1 + len(rows)


def test_reproduce_cli_csv_lists_what_json_lists(capsys, tmp_path):
    argv = ["reproduce", "--only", "counts", "--reports", str(tmp_path), "--quiet"]
    code, out, err = run_cli(argv + ["--format", "json"], capsys)
    assert code == 0, err
    code, text, err = run_cli(argv + ["--format", "csv"], capsys)
    assert code == 0, err
    written = json.loads(out)["reports"]
    assert parse_csv(text)[1] == [[n, p] for n, ps in written.items() for p in ps]


# ------------------------------------------------------------------ short real runs

@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPLEXITY_CACHE", str(tmp_path / "cache"))


def test_train_and_invariance_cli_formats(tmp_path, cache, capsys):
    """One short training run in CSV: its rows are the history the run wrote; then
    the invariance study of its checkpoint in CSV, against its JSON."""
    out = str(tmp_path / "run")
    code, text, err = run_cli(["train", "--max-images", "12", "--epochs", "2", "--nf", "4",
                               "--nc", "5", "--batch-size", "6", "--out", out, "--quiet",
                               "--threads", "1", "--format", "csv"], capsys)
    assert code == 0, err
    with open(os.path.join(out, "history.json"), encoding="utf-8") as f:
        history = json.load(f)["history"]
    head, rows = parse_csv(text)
    assert head == list(ex.TRAIN_HEADERS)
    assert [[float(c) for c in r] for r in rows] == [
        [h[k] for k in ("epoch", "train_loss", "val_loss", "val_acc")] for h in history]
    inv = ["invariance", "--checkpoint", os.path.join(out, "checkpoint.pt"),
           "--max-images", "12", "--threads", "1"]
    texts = cli_texts(capsys, inv, ("json", "csv"))
    data = json.loads(texts["json"])
    head, rows = parse_csv(texts["csv"])
    assert head == list(ex.INVARIANCE_HEADERS) and len(rows) == len(data["rows"])
    for r, d in zip(rows, data["rows"]):
        assert (r[0], float(r[1]), float(r[2]), float(r[7])) == (d["bn"], d["a"], d["b"],
                                                                 d["delta_acc"])


def test_sweep_batch_cli_csv_rows_are_the_runs_it_wrote(tmp_path, cache, capsys):
    out = str(tmp_path / "sweep")
    code, text, err = run_cli(["sweep-batch", "--sizes", "6,12", "--epochs", "1",
                               "--max-images", "12", "--nf", "4", "--nc", "5", "--out", out,
                               "--quiet", "--threads", "1", "--format", "csv"], capsys)
    assert code == 0, err
    head, rows = parse_csv(text)
    assert head == list(ex.SWEEP_HEADERS) and [r[0] for r in rows] == ["6", "12"]
    for r in rows:
        with open(os.path.join(out, f"batch-{r[0]}", "history.json"), encoding="utf-8") as f:
            final = json.load(f)["final"]
        assert [float(c) for c in r[2:5]] == [final[k] for k in ("train_loss", "val_loss",
                                                                  "val_acc")]


def test_segment_cli_csv_rows_are_the_result_it_wrote(tmp_path, capsys):
    out = str(tmp_path / "run")
    code, text, err = run_cli(["segment", "--arch", "deeplabv3_mobilenet_v3_large", "--size",
                               "32", "--epochs", "2", "--batch-size", "2", "--val-batch-size",
                               "4", "--max-images", "2", "--out", out, "--format", "csv"],
                              capsys)
    assert code == 0, err
    with open(os.path.join(out, "result.json"), encoding="utf-8") as f:
        result = json.load(f)
    head, rows = parse_csv(text)
    assert head == list(ex.SEGMENT_HEADERS)
    keys = ("val_loss", "miou", "course_iou")
    assert rows[0] == ["0", ""] + [str(result["initial"][k]) for k in keys]
    assert [[float(c) for c in r] for r in rows[1:]] == [
        [h["epoch"], h["train_loss"]] + [h[k] for k in keys] for h in result["history"]]
