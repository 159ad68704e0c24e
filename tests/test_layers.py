"""The layout's import rules, read from the source (ast), so they stay true.

Layers, lowest first: ``models`` (nn.Modules, nothing of complexity) → counting, cost,
experiments (computation; they never print or parse arguments) → output (every
rendering and figure) → reproduce (one writer per report) → cli (one module per
command) → ``complexity/__main__.py``. Imports point down that list.
"""
import ast
import os
from typing import Dict, List, Set, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("complexity", "models")
COMPUTING = ("complexity.counting", "complexity.cost", "complexity.experiments")
PRESENTING = ("complexity.output", "complexity.reproduce", "complexity.cli")


def _module_name(path: str) -> str:
    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def _sources(folders) -> Dict[str, str]:
    found = {}
    for folder in folders:
        for dirpath, _, names in os.walk(os.path.join(ROOT, folder)):
            for n in names:
                if n.endswith(".py"):
                    path = os.path.join(dirpath, n)
                    found[_module_name(path)] = path
    return found


MODULES = _sources(PACKAGES)


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _resolve(importer: str, path: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = importer if path.endswith("__init__.py") else importer.rpartition(".")[0]
    parts = package.split(".")
    if node.level > 1:
        parts = parts[: -(node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def imports(module: str, path: str) -> List[Tuple[str, str, int]]:
    """``(imported module, imported name or '', line)`` for every import in the file,
    at any depth (a lazy import inside a function is still a dependency)."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, "", node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path, node)
            for a in node.names:
                target = f"{base}.{a.name}"
                if target in MODULES:  # `from package import module`
                    found.append((target, "", node.lineno))
                else:
                    found.append((base, a.name, node.lineno))
    return [f for f in found if f[0].split(".")[0] in PACKAGES]


GRAPH = {m: imports(m, p) for m, p in MODULES.items()}


def _violations(rule) -> List[str]:
    return [f"{MODULES[m]}:{line}: {m} imports {target}{'.' + name if name else ''}"
            for m, edges in GRAPH.items() for target, name, line in edges if rule(m, target, name)]


def test_the_scan_sees_the_layers():
    """Guards the guard: the walk finds every layer and real edges between them."""
    for layer in (*COMPUTING, *PRESENTING, "models"):
        assert any(_within(m, [layer]) for m in MODULES), layer
    assert any(_within(t, ["complexity.counting"]) for m in GRAPH if _within(m, ["complexity.cli"])
               for t, _, _ in GRAPH[m])


def test_models_import_nothing_of_complexity():
    assert _violations(lambda m, t, _: _within(m, ["models"]) and _within(t, ["complexity"])) == []


def test_computation_never_imports_presentation():
    assert _violations(lambda m, t, _: _within(m, COMPUTING) and _within(t, PRESENTING)) == []


def test_prediction_never_imports_measurement():
    """What a step costs is predicted from the model's structure alone: nothing in
    ``cost/step`` or ``cost/predict`` may lean on the instruments that check it."""
    assert _violations(lambda m, t, _: _within(m, ["complexity.cost.predict",
                                                   "complexity.cost.step"])
                       and _within(t, ["complexity.cost.measure"])) == []


def test_what_a_step_is_knows_nothing_of_how_it_is_costed():
    """``cost/step`` (options, optimizers, trainable sets …) sits below prediction,
    measurement and fit; ``cost/keys`` and ``cost/flops`` below everything."""
    upper = ["complexity.cost.predict", "complexity.cost.measure", "complexity.cost.fit",
             "complexity.cost.finetune"]
    assert _violations(lambda m, t, _: _within(m, ["complexity.cost.step"])
                       and _within(t, upper)) == []
    assert _violations(lambda m, t, _: _within(m, ["complexity.cost.keys", "complexity.cost.flops"])
                       and _within(t, ["complexity"])) == []


def test_fit_and_measurement_are_apart():
    """The fit answers from predictions (``cost/fit`` never runs the measurement) and
    the measurement never reads the fit's formulas."""
    assert _violations(lambda m, t, _: _within(m, ["complexity.cost.fit"])
                       and _within(t, ["complexity.cost.measure"])) == []
    assert _violations(lambda m, t, _: _within(m, ["complexity.cost.measure"])
                       and _within(t, ["complexity.cost.fit", "complexity.cost.predict"])) == []


def test_parallel_prediction_never_imports_its_measurement():
    """Per-rank prediction (``cost/parallel``'s layout and prediction) leans on
    neither the single-process instruments nor the multi-process run that checks it."""
    instruments = ["complexity.cost.measure", "complexity.cost.parallel.gloo_step",
                   "complexity.cost.parallel.tracker", "complexity.cost.parallel.fake_group"]
    predicting = ["complexity.cost.parallel.layout", "complexity.cost.parallel.prediction",
                  "complexity.cost.parallel.timeline", "complexity.cost.parallel.answers"]
    assert any(_within(m, predicting) for m in MODULES)
    assert _violations(lambda m, t, _: _within(m, predicting)
                       and _within(t, instruments)) == []


def test_output_never_imports_reproduce_or_cli():
    assert _violations(lambda m, t, _: _within(m, ["complexity.output"])
                       and _within(t, ["complexity.reproduce", "complexity.cli"])) == []


def test_only_main_imports_the_cli():
    allowed = ("complexity.cli", "complexity.__main__")
    assert _violations(lambda m, t, _: _within(t, ["complexity.cli"])
                       and not _within(m, allowed)) == []


def test_no_private_name_crosses_modules():
    def private(m, t, name):
        return name.startswith("_") and not name.startswith("__") and t != m
    assert _violations(private) == []
    # `module._name` on an imported project module
    crossings = []
    for m, path in MODULES.items():
        tree = ast.parse(open(path, encoding="utf-8").read())
        aliases: Dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = _resolve(m, path, node)
                for a in node.names:
                    if f"{base}.{a.name}" in MODULES:
                        aliases[a.asname or a.name] = f"{base}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in MODULES and a.asname:
                        aliases[a.asname] = a.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                crossings.append(f"{path}:{node.lineno}: {node.value.id}.{node.attr}")
    assert crossings == []


def _cycles() -> List[List[str]]:
    edges: Dict[str, Set[str]] = {m: set() for m in MODULES}
    for m, found in GRAPH.items():
        for target, _, _ in found:
            if target in MODULES and target != m:
                edges[m].add(target)
    # Tarjan's strongly connected components: any component of two or more is a cycle
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    components: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return components


def test_no_import_cycles():
    assert _cycles() == []


@pytest.mark.parametrize("source,expected", [
    ("from complexity.cli import main\n", "complexity.cli.main"),
    ("from .cost import predict\n", "complexity.cost.predict"),
    ("from complexity.errors import reason\n", "complexity.errors"),
])
def test_imports_are_resolved(tmp_path, source, expected):
    """`from package import module` is an edge to the module itself; relative imports
    resolve against the importer's package."""
    probe = os.path.join(tmp_path, "probe.py")
    with open(probe, "w") as f:
        f.write(source)
    assert [t for t, _, _ in imports("complexity.probe", probe)] == [expected]
