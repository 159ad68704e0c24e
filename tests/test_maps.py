"""The package maps stay true: every module of a package under ``complexity/cost``
is named in its ``__init__`` docstring, and the rules table agrees with the
rule registry.

A map names a module as a ``:mod:`` reference (``:mod:`~complexity.cost.step.lora```,
``:mod:`.conv```) or by its dotted name (``complexity.cost.keys``). Only the cost
packages have such maps; the docstrings of ``complexity.counting``,
``complexity.output`` and ``complexity.cli`` are one line each and
``complexity.reproduce``'s describes :data:`REPORT_STEPS` rather than its modules,
so they are not checked here.
"""
from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

from complexity.cost.predict import rules
from complexity.cost.predict.rules import RULES, lookup

#: The packages whose ``__init__`` docstring is a map of their modules.
MAPPED = [
    "complexity.cost",
    "complexity.cost.step",
    "complexity.cost.predict",
    "complexity.cost.predict.rules",
    "complexity.cost.measure",
    "complexity.cost.fit",
    "complexity.cost.parallel",
    "complexity.api",
]


def modules_of(package: str) -> list[str]:
    """The modules (and subpackages) directly inside ``package``, by short name."""
    pkg = importlib.import_module(package)
    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__))


def named_in(doc: str, package: str, module: str) -> bool:
    """Whether ``doc`` (``package``'s docstring) names ``package.module``: as
    ``:mod:`` with the full dotted name (``~`` or not) or relative (``.module``),
    or as the bare dotted name ``package.module``."""
    full = re.escape(f"{package}.{module}")
    patterns = (
        rf":mod:`~?{full}`",
        rf":mod:`\.{re.escape(module)}`",
        rf"(?<![\w.]){full}(?![\w])",
    )
    return any(re.search(p, doc) for p in patterns)


def missing_from_map(doc: str, package: str, modules) -> list[str]:
    """The modules of ``package`` its map ``doc`` does not name."""
    return [m for m in modules if not named_in(doc, package, m)]


@pytest.mark.parametrize("package", MAPPED)
def test_every_module_is_in_its_package_map(package):
    doc = importlib.import_module(package).__doc__ or ""
    modules = modules_of(package)
    assert modules, package          # the package has modules to map
    assert missing_from_map(doc, package, modules) == [], package


FAKE_MAP = """A package.

* :mod:`~pkg.sub.alpha` — the first.
* :mod:`.beta` — the second, relative.
* and pkg.sub.gamma, by its dotted name; pkg.sub.deltas is another module.
"""


@pytest.mark.parametrize("module, named", [
    ("alpha", True),      # :mod:`~…` reference
    ("beta", True),       # relative :mod:`.name`
    ("gamma", True),      # bare dotted name
    ("delta", False),     # only a longer name (pkg.sub.deltas)
    ("alph", False),      # a prefix of a named module is not named
    ("epsilon", False),   # not there at all
])
def test_the_map_check_catches_a_missing_module(module, named):
    assert named_in(FAKE_MAP, "pkg.sub", module) is named
    assert missing_from_map(FAKE_MAP, "pkg.sub", [module]) == ([] if named else [module])


# ---- The rules package: its table and its families against the registry ----

def _table_rows(doc: str) -> list[str]:
    """The first column of the docstring's reST table (header and rules excluded)."""
    lines = doc.splitlines()
    borders = [i for i, line in enumerate(lines) if re.fullmatch(r"=+( +=+)+", line)]
    assert len(borders) == 3, "the rules table: a top border, a header rule, a bottom border"
    width = len(lines[borders[0]].split()[0])
    return [lines[i][:width].strip() for i in range(borders[1] + 1, borders[2])]


def _expand(token: str) -> list[str]:
    """``conv1d/2d/3d`` → conv1d, conv2d, conv3d; ``max_pool*d`` → max_pool1d/2d/3d."""
    if "/" in token:
        head, *tails = token.split("/")
        stem = re.sub(r"\d+d$", "", head)
        return [head] + [stem + t for t in tails]
    if "*d" in token:
        return [token.replace("*d", f"{n}d") for n in (1, 2, 3)]
    return [token]


def table_call_names(doc: str) -> set[str]:
    """Every identifier-like word of the table's first column, expanded."""
    names = set()
    for cell in _table_rows(doc):
        for token in re.findall(r"[A-Za-z_][\w*/]*", cell):
            names.update(_expand(token))
    return names


def is_call_name(name: str) -> bool:
    """A function of ``torch``/``torch.nn.functional`` or a method of ``Tensor``:
    a name the tracer can meet (prose words in the table — "train", "views",
    "factories", "adapt" — are none of these)."""
    import torch
    import torch.nn.functional as F

    return any(callable(getattr(owner, name, None)) for owner in (torch, F, torch.Tensor))


#: Calls the table lists that the tracer handles itself rather than through a rule
#: (the docstring says so: cross-entropy is log-softmax then nll_loss, two nodes).
HANDLED_BY_TRACE = {"cross_entropy"}


def test_every_call_of_the_rules_table_has_a_rule():
    names = {n for n in table_call_names(rules.__doc__) if is_call_name(n)}
    # The table names calls of every kind it describes, not a handful.
    assert {"conv2d", "linear", "bmm", "batch_norm", "max_pool2d", "dropout",
            "cross_entropy", "embedding", "softmax",
            "scaled_dot_product_attention"} <= names
    assert sorted(n for n in names - HANDLED_BY_TRACE if lookup(n) is None) == []
    for name in HANDLED_BY_TRACE:
        assert lookup(name) is None, name   # else the table should say it is a rule


def test_the_loss_the_table_lists_is_traced_as_two_nodes():
    import torch
    import torch.nn.functional as F

    from complexity.cost.predict.trace import trace_calls

    x = torch.randn(2, 3, requires_grad=True)
    y = torch.tensor([0, 2])
    g = trace_calls(lambda t: F.cross_entropy(t, y), x)
    assert [c.name for c in g.calls] == ["log_softmax", "nll_loss"]


def test_every_rule_module_has_a_row_in_the_rules_table():
    """Generated from the registry: each module that registers rules has at least
    one of its call names in the table."""
    table = table_call_names(rules.__doc__)
    by_module: dict[str, set[str]] = {}
    for name, fn in RULES.items():
        by_module.setdefault(fn.__module__.rsplit(".", 1)[-1], set()).add(name)
    assert [m for m, names in sorted(by_module.items()) if not names & table] == []


def _families_paragraph(doc: str) -> str:
    start = doc.index("The families:")
    end = doc.find("\n\n", start)
    return doc[start:end if end >= 0 else None]


def test_every_family_module_is_in_the_families_paragraph():
    families = _families_paragraph(rules.__doc__)
    package = rules.__name__
    family_modules = [m for m in modules_of(package) if m != "registry"]
    # Every module a registered rule lives in is a module of the package...
    registering = {fn.__module__ for fn in RULES.values()}
    assert {m.rsplit(".", 1)[-1] for m in registering} <= set(family_modules)
    # ... and every module of the package is listed among the families.
    assert missing_from_map(families, package, family_modules) == []


# ---- Paths the docs name exist ----

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent

#: ``complexity/…/x.py`` or ``complexity/…/`` (or ``cost/…/x.py`` relative to complexity/).
PATH = re.compile(r"(?<![\w/.])((?:complexity/)?(?:cost|counting|output|reproduce|cli|experiments)"
                  r"/[\w/]*?(?:\.py|/)(?![\w/]))")

#: Placeholders, not paths.
NOT_PATHS = {"complexity/cli/NAME.py"}

def named_paths(text: str) -> set[str]:
    found = {m if m.startswith("complexity/") else "complexity/" + m for m in PATH.findall(text)}
    return found - NOT_PATHS


def test_named_paths_check_reads_paths():
    text = ("see `complexity/cost/measure.py`, `cost/step/lora.py`, complexity/cost/predict/rules/ "
            "and complexity/cli/NAME.py")
    assert named_paths(text) == {"complexity/cost/measure.py", "complexity/cost/step/lora.py",
                                 "complexity/cost/predict/rules/"}


def test_every_path_the_docs_name_exists():
    """The reorganisation moved cost/*.py into step/, predict/, measure/, fit/: a doc
    still naming complexity/cost/measure.py points nowhere."""
    files = sorted([*ROOT.glob("docs/*.md"), ROOT / "README.md", *ROOT.glob("complexity/**/*.py")])
    missing = sorted((p.relative_to(ROOT).as_posix(), name)
                     for p in files for name in named_paths(p.read_text(encoding="utf-8"))
                     if not (ROOT / name).exists())
    assert missing == []
