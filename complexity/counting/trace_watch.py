"""Instruments of the symbolic trace (:mod:`complexity.counting.symbolic_shapes`):
which module is running when a guard arises (:class:`Running`, and
:func:`where_text` for the guard's source line), a time budget that ends a trace
whose size expressions grow op by op (:class:`Budget`), and ShapeEnv's guard
source lookup made cheap (:func:`light_source_locations`); the two errors a
trace ends with.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import sys
import time
import types
from typing import Callable, List

from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from complexity.counting.derive import DeriveError

__all__ = ["Specialised", "Unsupported", "Running", "Budget", "Confinement", "light_source_locations",
           "uninteresting_files_light", "op_name", "where_text"]


class Specialised(DeriveError):
    """The forward fixed an input symbol to one value; one line naming the guard."""


class Unsupported(DeriveError):
    """The symbolic trace itself failed (an op with no symbolic-shape kernel, a
    forward that needs values); the caller may count concretely instead."""


@functools.lru_cache(None)
def uninteresting_files_light() -> frozenset:
    """torch's own ``symbolic_shapes.uninteresting_files()`` — the files a guard's
    source location skips — without importing the modules it names only to read
    their ``__file__``. Two of them (``torch.export._trace``,
    ``torch._inductor.sizevars``) are not loaded by ``import torch, torchvision``,
    and importing them pulls in inductor's code cache and aot_autograd: about
    0.45 s of the first trace, for a set of file names. Here torch's function
    itself runs (so the set is the same for any torch version), with stand-in
    modules carrying only the real ``__file__`` for those not yet loaded; they are
    removed again afterwards. Anything unexpected: torch's function as is."""
    from torch.fx.experimental import symbolic_shapes as ss

    original = getattr(ss.uninteresting_files, "__wrapped__", None)
    if original is None:
        return frozenset(ss.uninteresting_files())
    stand_ins = {}
    try:
        for name in ("torch.export._trace", "torch._inductor.sizevars"):
            if name in sys.modules:
                continue
            spec = importlib.util.find_spec(name)  # the parents are loaded already
            if spec is None or not spec.origin:
                return frozenset(ss.uninteresting_files())
            stub = types.ModuleType(name)
            stub.__file__ = spec.origin
            stand_ins[name] = stub
        for name, stub in stand_ins.items():
            sys.modules[name] = stub
            parent, _, leaf = name.rpartition(".")
            setattr(sys.modules[parent], leaf, stub)
        return frozenset(original())
    finally:
        for name in stand_ins:
            if sys.modules.get(name) is stand_ins[name]:
                del sys.modules[name]
            parent, _, leaf = name.rpartition(".")
            if getattr(sys.modules.get(parent), leaf, None) is stand_ins[name]:
                delattr(sys.modules[parent], leaf)


@contextlib.contextmanager
def light_source_locations():
    """ShapeEnv looks up torch's ``uninteresting_files`` by its module global for
    every guard's and symbol's source location; it is swapped for the cheap equal
    set (:func:`uninteresting_files_light`) while the trace runs, and put back after."""
    from torch.fx.experimental import symbolic_shapes as ss

    files = uninteresting_files_light()  # computed before the swap, from torch's own function
    was = ss.uninteresting_files
    ss.uninteresting_files = lambda: files
    try:
        yield
    finally:
        ss.uninteresting_files = was


class Budget(TorchDispatchMode):
    """Ends the trace at the first aten op past ``budget_s`` seconds, naming the
    op that took longest and the module it ran in. ShapeEnv's own size
    expressions can grow stage by stage (swin_t: every stage pads to a multiple of
    its 7×7 window, nesting ``Mod`` and floor terms, and each window-partition
    ``view`` then takes seconds to prove); a check only at module boundaries let
    one slow block run on well past the budget. Passes every op on unchanged."""

    def __init__(self, budget_s: float, here: Callable[[], str],
                 after: Callable[[object], None] = lambda func: None):
        super().__init__()
        self.budget_s, self.here, self.after = budget_s, here, after
        self.started = time.perf_counter()
        self.slowest = (0.0, "", "")

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        now = time.perf_counter()
        if now - self.started > self.budget_s:
            took, op, where = self.slowest
            raise Unsupported(
                f"the symbolic trace passed {self.budget_s:g} s at {op_name(func)} in "
                f"{self.here()}: its size expressions grow op by op (slowest: {op} in "
                f"{where}, {took:.1f} s)")
        out = func(*args, **(kwargs or {}))
        self.after(func)
        took = time.perf_counter() - now
        if took > self.slowest[0]:
            self.slowest = (took, op_name(func), self.here())
        return out


class Confinement:
    """Ends the trace at the op whose guard confines an input symbol to a sliver
    of its sizes: an equation in one symbol (no ``Mod``: those are lattices) that
    holds at fewer than half of the next ``near`` sizes (on the lattice the ``Mod``
    guards so far give). A formula could hold on that sliver only, and finding
    out costs the rest of the trace (swin_t at 224: ``x[:, :H, :W].contiguous()``
    after its window padding is a no-op only where the stage's width is a
    multiple of 7, and the trace guards on it in its first block). The one line
    names the op, the module and a size that takes the other branch. Call
    :meth:`check` after every op; :meth:`name` maps the environment's symbols to
    the user's once they exist."""

    def __init__(self, env, here: Callable[[], str], near: int = 64):
        self.env, self.here, self.near = env, here, near
        self.seen, self.steps, self.names, self.show = 0, {}, {}, str
        self.hints = env.backed_var_to_val if hasattr(env, "backed_var_to_val") else env.var_to_val

    def name(self, names: dict, show: Callable[[object], str] = str) -> None:
        """``names``: the environment's symbols → the user's; ``show``: a guard as text."""
        self.names, self.show = dict(names), show

    def check(self, func) -> None:
        import sympy as sp

        guards = self.env.guards
        while self.seen < len(guards):
            g = guards[self.seen].expr
            self.seen += 1
            if not isinstance(g, sp.Eq) or len(g.free_symbols) != 1:
                continue
            (s,) = g.free_symbols
            mods = [a for a in (g.lhs, g.rhs) if type(a).__name__ in ("Mod", "PythonMod")]
            if mods:
                if mods[0].args[0] == s and mods[0].args[1].is_Integer:
                    self.steps[s] = int(mods[0].args[1])  # a lattice, not a sliver
                continue
            hint, step = int(self.hints[s]), self.steps.get(s, 1)
            sizes = [hint + step * j for j in range(1, self.near + 1)]
            other = [v for v in sizes if not bool(g.xreplace({s: sp.Integer(v)}))]
            if 0 < self.near - len(other) < self.near / 2:
                n = self.names.get(s, s)
                raise Specialised(
                    f"{n} is confined by {op_name(func)} in {self.here()}: its guard "
                    f"{self.show(g)} holds at "
                    f"{self.near - len(other)} of the {self.near} sizes after {hint}; no "
                    f"formula in {n} (at {n} = {other[0]} the forward takes the other branch)")


def op_name(func) -> str:
    """``aten._unsafe_view.default`` → ``aten._unsafe_view``."""
    name = str(func)
    return name[:-len(".default")] if name.endswith(".default") else name


class Running:
    """Which module of ``module`` is running as the trace goes (forward pre- and
    post-hooks on every module), so that a guard can say where it arose:
    :meth:`here` now, :meth:`where` for the ``i``-th guard of the shape
    environment ``env``."""

    def __init__(self, module: nn.Module, env):
        self.module, self.env = module, env
        self.names = {m: n for n, m in module.named_modules()}
        self.kinds = {n: type(m).__name__ for m, n in self.names.items() if n}
        self.running: List[str] = []   # modules now running
        self.events: List[tuple] = []  # (guards so far, the module running from then)

    def hooks(self) -> list:
        """Register the hooks; their handles, for the caller to remove."""
        handles = []
        for m in self.names:
            handles.append(m.register_forward_pre_hook(self._enter))
            handles.append(m.register_forward_hook(self._leave))
        return handles

    def _top(self) -> str:
        return self.running[-1] if self.running else type(self.module).__name__

    def _enter(self, mod, _inputs):
        self.running.append(self.names[mod] or type(mod).__name__)
        self.events.append((len(self.env.guards), self.running[-1]))

    def _leave(self, mod, _inputs, _output):
        self.running.pop()
        self.events.append((len(self.env.guards), self._top()))

    def here(self) -> str:
        """The module running now, with its type."""
        inside = self._top()
        return f"{inside} ({self.kinds[inside]})" if inside in self.kinds else inside

    def where(self, i: int, g) -> str:
        """Where guard ``g`` (the ``i``-th) arose: its source line and module."""
        inside = next((n for count, n in reversed(self.events) if count <= i),
                      type(self.module).__name__)
        loc = where_text(g)
        return (f"{loc} (in {inside})" if "utils/_device.py" not in loc
                else f"the forward of {inside}")


def where_text(g) -> str:
    loc = g.sloc.maybe_user_loc or g.sloc.framework_loc
    if loc is None:
        return "an unknown place"
    if isinstance(loc, str):
        return loc
    return f"{loc.filename.rsplit('site-packages/', 1)[-1]}:{loc.lineno} in {loc.name}"
