"""`python -m complexity report`: the command-line and JSON contract of docs/cli.md, every format, bad input."""
import csv
import io
import json
import os
import subprocess
import sys

import pytest
import sympy as sp

from cli_helpers import run_cli
from complexity.__main__ import main
from complexity.counting.symbolic import SYMBOLS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(capsys, *argv):
    return run_cli(argv, capsys)


def run_shell(*argv):
    return subprocess.run([sys.executable, "-m", "complexity", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_json_matches_spec_key_for_key(capsys):
    code, out, _ = run_main(capsys, "report", "--nf", "32", "--nc", "24", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert [(d["model"], d["convention"]) for d in data] == [("cnn", "course"), ("unet", "course")]
    for d in data:
        assert set(d) == {"model", "convention", "params", "quantities"}
        assert d["params"] == {"NF": 32, "NC": 24, "k": 3, "NIC": 1, "H": 32, "W": 32}
        assert set(d["quantities"]) == {"weights", "outputs", "connections"}
        for q in d["quantities"].values():
            assert set(q) == {"formula", "value", "doubled", "ratio", "verified"}
            assert q["verified"] is True
            expr = sp.sympify(q["formula"])  # plain sympify, as a user would
            assert {s.name for s in expr.free_symbols} <= set(SYMBOLS)
            value = expr.subs({sp.Symbol(n): v for n, v in d["params"].items()})
            assert value == q["value"]
            assert q["ratio"] == q["doubled"] / q["value"]
    # the JSON example of docs/cli.md
    assert data[0]["quantities"]["weights"]["value"] == 86784


def test_per_layer_sums_equal_totals(capsys):
    code, out, _ = run_main(capsys, "report", "--convention", "all", "--per-layer",
                            "--format", "json", "--size", "16x24", "--kernel", "5")
    assert code == 0
    data = json.loads(out)
    assert len(data) == 6
    for d in data:
        assert d["layers"] and set(d["layers"][0]) == {"name", "kind", "shape", "weights",
                                                       "outputs", "connections", "formulas",
                                                       "doubled"}
        big = {**d["params"], "H": 2 * d["params"]["H"], "W": 2 * d["params"]["W"]}
        for q, v in d["quantities"].items():
            assert sum(l[q] for l in d["layers"]) == v["value"]
            assert sum(l["doubled"][q] for l in d["layers"]) == v["doubled"]
            assert v["verified"]
            for l in d["layers"]:  # each layer's formula gives its values at both sizes
                expr = sp.sympify(l["formulas"][q])
                assert expr.subs({sp.Symbol(n): x for n, x in d["params"].items()}) == l[q]
                assert expr.subs({sp.Symbol(n): x for n, x in big.items()}) == l["doubled"][q]


def test_cnn_takes_sizes_the_unet_cannot(capsys):
    code, out, _ = run_main(capsys, "report", "--model", "cnn", "--size", "30x7", "--format", "json")
    assert code == 0
    [d] = json.loads(out)
    assert "floor" in d["quantities"]["outputs"]["formula"]
    assert all(q["verified"] for q in d["quantities"].values())


def test_no_verify_does_not_import_torch():
    code = ("import sys; from complexity.__main__ import main; "
            "main(['report', '--no-verify', '--format', 'json']); "
            "sys.exit(3 if 'torch' in sys.modules else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert all(q["verified"] is False for d in json.loads(proc.stdout) for q in d["quantities"].values())


def test_csv_agrees_with_json(capsys):
    _, js, _ = run_main(capsys, "report", "--convention", "all", "--format", "json")
    _, text, _ = run_main(capsys, "report", "--convention", "all", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 2 * 3 * 3
    by_key = {(d["model"], d["convention"]): d for d in json.loads(js)}
    for r in rows:
        q = by_key[(r["model"], r["convention"])]["quantities"][r["quantity"]]
        assert int(r["value"]) == q["value"] and int(r["doubled"]) == q["doubled"]
        assert r["formula"] == q["formula"] and r["verified"] == "true"


@pytest.mark.parametrize("name,argv", [
    ("report_table", ["report", "--nf", "32", "--nc", "24"]),
    ("report_markdown_all", ["report", "--convention", "all", "--format", "markdown"]),
    ("report_latex_lecture", ["report", "--convention", "lecture", "--format", "latex"]),
    ("report_per_layer_cnn", ["report", "--model", "cnn", "--per-layer", "--nf", "8", "--nc", "6"]),
])
def test_golden_renderings(capsys, golden, name, argv):
    """Renderings diffed against reviewed golden files (torchinfo's way); the numbers in
    them are the ones hand-checked in test_counting_published.py. UPDATE_GOLDEN=1
    rewrites them."""
    code, out, _ = run_main(capsys, *argv)
    assert code == 0
    golden(name, out)


BAD = [
    (["--nf", "0"], "--nf"), (["--nf", "-3"], "--nf"), (["--nf", "2.5"], "--nf"),
    (["--nc", "0"], "--nc"), (["--in-channels", "0"], "--in-channels"),
    (["--kernel", "4"], "even"), (["--kernel", "0"], "--kernel"),
    (["--size", "3"], "too small"), (["--size", "32x"], "not a size"),
    (["--size", "axb"], "not a size"), (["--size", "30"], "divisible by 4"),
    (["--model", "vgg"], "--model"), (["--convention", "mine"], "--convention"),
    (["--format", "xml"], "--format"),
]


@pytest.mark.parametrize("argv,needle", BAD)
def test_bad_input_one_line_exit_2(capsys, argv, needle):
    try:
        code = main(["report", *argv])  # UsageError: returns 2
    except SystemExit as exc:  # argparse: exits 2
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_bad_input_from_the_shell():
    proc = run_shell("report", "--size", "30", "--model", "unet")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "divisible by 4" in proc.stderr


def test_counts_report_is_fully_verified(tmp_path):
    from complexity.reproduce import Context, counts as report_counts

    [path] = report_counts.write(Context(reports=str(tmp_path)))
    text = open(path, encoding="utf-8").read()
    assert text.count("| ✓ |") == 2 * 2 * 3 and "✗" not in text
    # the doubled lecture formula of the CNN's outputs: 4 × (1728·NF + 1280·NC)
    assert "6912·NF + 5120·NC" in text
    assert [p.name for p in tmp_path.iterdir()] == ["counts.md"]  # no temp file left


def test_unwritable_path_is_one_line_exit_2(monkeypatch, capsys):
    """An OSError from a command (a path that cannot be written) is the user's input:
    one line, exit 2, no traceback."""
    from complexity.cli import main as cli, report

    def run(_args):
        raise FileExistsError(17, "File exists", "/tmp/somewhere")

    monkeypatch.setattr(report, "run", run)
    code = cli.main(["report"])
    err = capsys.readouterr().err
    assert code == 2 and err == "python -m complexity report: error: File exists: /tmp/somewhere\n"
