"""The rule registry: call name → the function that says what the call costs.

In the style of ``torch.utils.flop_counter.register_flop_formula`` (and fvcore's
handle map): a rule is registered for one or more call names with :func:`rule`
and found again with :func:`lookup`. A rule takes a :class:`Context` and fills in
``kept``, ``forward_flops``, ``backward_flops`` and ``transient`` on
``ctx.call``; it returns ``False`` to decline the call (the call is then
unmodelled, as a name with no rule is).

>>> @rule("my_op_for_the_doctest")
... def _nothing(ctx):
...     pass
>>> lookup("my_op_for_the_doctest") is _nothing, lookup("no_such_op")
(True, None)
>>> del RULES["my_op_for_the_doctest"]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import torch

from complexity.cost.predict.graph import Call, Graph


@dataclass
class Context:
    """One call as a rule sees it: what was passed and made, and the graph."""

    name: str
    args: tuple
    kwargs: Dict[str, Any]
    ins: List[torch.Tensor]    # tensor arguments, in order
    outs: List[torch.Tensor]   # tensor results, in order
    call: Call                 # value ids in ``call.inputs`` / ``call.outputs``
    graph: Graph
    grad: bool                 # some tensor argument requires grad: a node is made

    def arg(self, i: int, name: str, default=None):
        """Argument ``name``, by keyword or else at position ``i``."""
        if name in self.kwargs:
            return self.kwargs[name]
        return self.args[i] if len(self.args) > i else default

    def input_storage(self, i: int = 0) -> int:
        """Storage id of tensor argument ``i``."""
        return self.graph.value_storage[self.call.inputs[i]]

    def output_storage(self, i: int = 0) -> int:
        """Storage id of tensor result ``i``."""
        return self.graph.value_storage[self.call.outputs[i]]

    def input_bytes(self, i: int = 0) -> int:
        """Bytes of tensor argument ``i`` (its own elements, not its storage)."""
        return self.graph.value_bytes[self.call.inputs[i]]

    def new_storage(self, nbytes: int) -> int:
        """A storage the call makes and keeps (indices, masks, statistics, copies)."""
        return self.graph.new_storage(nbytes)

    def folded(self, i: int) -> int:
        """The storage kept for an N-D × 2-D product's operand ``i``: matmul folds
        it to 2-D with ``reshape``, a copy (a storage of its own) when no view can."""
        x = self.ins[i]
        if x.dim() <= 2:
            return self.input_storage(i)
        try:
            x.view(-1, x.shape[-1])
        except (RuntimeError, ValueError):  # meta tensors raise the one, fake the other
            return self.new_storage(self.input_bytes(i))
        return self.input_storage(i)


#: A rule: fills in ``ctx.call``; returns ``False`` to decline the call.
Rule = Callable[[Context], Optional[bool]]

#: Call name → rule.
RULES: Dict[str, Rule] = {}


def rule(*names: str) -> Callable[[Rule], Rule]:
    """Register the decorated function as the rule for each of ``names``."""
    def register(fn: Rule) -> Rule:
        for name in names:
            if name in RULES:
                raise ValueError(f"call {name!r} has a rule already: {RULES[name].__qualname__}")
            RULES[name] = fn
        return fn
    return register


def lookup(name: str) -> Optional[Rule]:
    """The rule for call ``name``, or None (the call is unmodelled)."""
    return RULES.get(name)
