"""The default thread count follows what other jobs leave idle."""
import os

from conftest import DEFAULT_THREADS


def test_default_threads_leaves_busy_cores_alone(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    for load, threads in ((0.0, 4), (1.4, 3), (2.6, 1), (9.0, 1)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, 0.0, 0.0))
        assert DEFAULT_THREADS() == threads, load
