"""Shared fixtures: ``golden`` diffs a rendering against ``tests/golden/NAME.out``
(torchinfo's pattern). ``UPDATE_GOLDEN=1 python -m pytest`` rewrites the files;
review the diff with ``git diff tests/golden`` before committing it."""
import os

import pytest

from complexity.cli import common

#: the real default, for the test of it (the fixture below replaces it in commands)
DEFAULT_THREADS = common.default_threads

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")


@pytest.fixture
def golden():
    def check(name: str, text: str) -> None:
        path = os.path.join(GOLDEN, name + ".out")
        if os.environ.get("UPDATE_GOLDEN") or not os.path.exists(path):
            if not os.environ.get("UPDATE_GOLDEN"):
                pytest.fail(f"no golden file {path}; run with UPDATE_GOLDEN=1 to create it")
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        with open(path, encoding="utf-8") as f:
            assert text == f.read(), f"rendering differs from {path}"
    return check


@pytest.fixture(autouse=True)
def threads_as_they_are(monkeypatch):
    """Commands default to the cores other jobs leave idle (it follows the load
    average); in tests keep PyTorch's thread count as it is, so two runs of one
    test compute with the same number of threads whatever else the machine does."""
    def current(*_args, **_kwargs):
        import torch

        return torch.get_num_threads()

    monkeypatch.setattr(common, "default_threads", current)
