"""Words that stay true: the docs and docstrings say "Adam" only where the code is
Adam-specific (a step may run SGD, SGD with momentum, Adam or AdamW), and the
README's test command is the install CI runs."""
from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Where the sources are scanned: the package, the docs, the README.
SCANNED = ["complexity/**/*.py", "docs/*.md", "README.md"]

#: A line may say Adam where it also names another optimizer (the choices listed),
#: names Adam's own API or variants (``torch.optim.Adam``, ``Adam(foreach=False)``,
#: AdamW, Adam(W)), or says it is the default / the course's step.
LISTS_OR_DEFAULT = re.compile(r"SGD|sgd|AdamW|Adam\(W\)|torch\.optim\.Adam|Adam\(|default|course's")

#: Files whose code runs Adam and nothing else.
ADAM_FILES = {
    "complexity/cost/step/optimizers.py": "the optimizers themselves",
    "complexity/experiments/*": "the course's experiments train with torch.optim.Adam",
    "complexity/reproduce/colourization.py": "reports of those experiments",
    "complexity/reproduce/batch_size.py": "reports of those experiments",
    "complexity/reproduce/segmentation.py": "reports of those experiments",
    "complexity/reproduce/finetune.py": "its sweep runs the default step (no options): Adam",
    "complexity/cost/fit/closed_forms.py": "the closed forms are of the default step: 8 bytes "
                                           "of moments per parameter, 4 per tensor",
    "docs/architectures.md": "the course's training recipe",
}

#: Single lines about Adam itself: (file, text on the line, why).
ADAM_LINES = [
    ("docs/cli.md", "| Adam learning rate |", "train (colourization) runs Adam"),
    ("docs/experiments.md", "train.py`): Adam,", "the colourization training loop"),
    ("docs/finetune.md", "the for-loop Adam holds", "Adam's update temporaries"),
    ("complexity/cost/fit/allocator.py", "foreach Adam's", "Adam's foreach temporaries"),
    ("complexity/cost/fit/allocator.py", "fused Adam keeps", "Adam's fused step counters"),
    ("complexity/cost/fit/allocator.py", "less Adam's CPU step counters", "only Adam has them"),
    ("complexity/cost/predict/prediction.py", "Adam's 4-byte", "only Adam has step counters"),
    ("complexity/cost/predict/log.py", "that Adam keeps in 4-byte", "only Adam has step counters"),
    ("complexity/cost/fit/allocator.py", "(Adam's ``step`` counter", "only Adam has step counters"),
    ("complexity/cost/fit/allocator.py", "(Adam: 2 blocks)", "Adam's two moments, in a worked example"),
    ("complexity/cost/measure/cpu_step.py", "Adam's step counters, host memory",
     "only Adam has step counters"),
    ("complexity/cost/measure/cpu_step.py", "Adam's ``step`` counters, unless fused",
     "only Adam has step counters"),
    ("complexity/cost/predict/prediction.py", "Adam keeps exp_avg", "Adam's state, then SGD's"),
    ("complexity/cost/predict/prediction.py", "Adam's two moments", "lists Adam's state in a "
     "sentence whose next lines are Adam(foreach=False)'s"),
]


def sources():
    seen = set()
    for pattern in SCANNED:
        for path in sorted(ROOT.glob(pattern)):
            rel = path.relative_to(ROOT).as_posix()
            if rel not in seen:
                seen.add(rel)
                yield rel


def unexplained_adam(rel: str, text: str) -> list[str]:
    """The lines of ``text`` (file ``rel``) that say Adam where nothing allows it."""
    if any(fnmatch.fnmatch(rel, pattern) for pattern in ADAM_FILES):
        return []
    allowed = [words for path, words, _ in ADAM_LINES if path == rel]
    return [f"{rel}:{number}: {line.strip()}"
            for number, line in enumerate(text.splitlines(), 1)
            if "Adam" in line and not LISTS_OR_DEFAULT.search(line)
            and not any(words in line for words in allowed)]


def test_adam_only_where_the_code_is_adam_specific():
    found = [hit for rel in sources()
             for hit in unexplained_adam(rel, (ROOT / rel).read_text(encoding="utf-8"))]
    assert found == []


def test_every_allowed_line_is_still_there():
    """An allowance whose line was reworded is removed, so the list stays short."""
    stale = [(path, words) for path, words, _ in ADAM_LINES
             if words not in (ROOT / path).read_text(encoding="utf-8")]
    assert stale == []
    assert all(list(ROOT.glob(pattern)) for pattern in ADAM_FILES)


@pytest.mark.parametrize("line, caught", [
    ("Memory of one Adam training step.", True),
    ("gradients and Adam state", True),
    ("the default: Adam, float32", False),
    ("SGD, SGD with momentum, Adam, AdamW", False),
    ("``Adam(foreach=False)`` then needs two temporaries", False),
    ("nothing about the optimizer", False),
])
def test_the_scan_catches_a_generic_adam(line, caught):
    assert bool(unexplained_adam("docs/some_page.md", line)) is caught


# ---- CI runs the README's test command ----

def _installs(text: str) -> list[str]:
    """The ``pip install`` arguments of ``text``, in order, ``-q`` and comments dropped."""
    found = []
    for cmd in re.findall(r"pip install ([^&#\n]+)", text):
        found.append(" ".join(a for a in cmd.split() if a != "-q"))
    return found


def test_readme_test_command_is_what_ci_installs():
    ci = (ROOT / ".ci/run").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("Install the test extra"):]
    start = section.index("```bash")
    command = section[start:section.index("```", start + 7)]
    assert _installs(ci) == _installs(command)
    assert '-e ".[test,zoo]"' in _installs(ci)
    assert "python3 -m pytest -q" in ci and "python -m pytest -q" in command
