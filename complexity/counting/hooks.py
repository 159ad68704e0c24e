"""The quantities of :mod:`complexity.counting.symbolic`, measured on a real module.

Forward hooks on every leaf module record what actually happens when the module
runs: output shapes, the sizes of each module's own parameter tensors, and each
convolution's fan-in read off its weight tensor. The counting switches of the
chosen convention (:mod:`complexity.counting.conventions`) then select what to add up. The
run happens on the meta device: tensors carry shapes only, nothing is allocated
and nothing is computed, so a 1024×1024 input costs what a 32×32 one does.

>>> import torch
>>> from models.colourization import CNN
>>> with torch.device("meta"):
...     net = CNN(3, 32, 24, 1)
>>> count(net, (1, 1, 32, 32), "lecture")
{'weights': 86112, 'outputs': 86016, 'connections': 15630336}
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, List, Sequence

import torch
from torch import nn
from torch.func import functional_call

from complexity.counting import conventions as conv_mod

#: Module classes and the layer kinds (of the colourization nets) they are.
KINDS = {
    nn.Conv2d: "conv",
    nn.MaxPool2d: "maxpool",
    nn.Upsample: "upsample",
    nn.BatchNorm2d: "batchnorm",
    nn.ReLU: "relu",
}


def kind_of(module: nn.Module) -> str:
    """The layer kind of ``module``: 'conv', 'maxpool', ... or its class name."""
    for cls, kind in KINDS.items():
        if isinstance(module, cls):
            return kind
    return type(module).__name__.lower()


@contextmanager
def mode(module: nn.Module, train: bool):
    """Run a block with ``module`` in train (or eval) mode, then put every submodule's
    own ``training`` flag back as it was (a caller's model is left as found).

    >>> net = nn.Sequential(nn.BatchNorm2d(2), nn.Dropout()).train()
    >>> net[1].eval()
    Dropout(p=0.5, inplace=False)
    >>> with mode(net, False):
    ...     [m.training for m in net.modules()]
    [False, False, False]
    >>> [m.training for m in net.modules()]
    [True, True, False]
    """
    modes = {m: m.training for m in module.modules()}
    module.train(train)
    try:
        yield module
    finally:
        for m, flag in modes.items():  # parents first, so children keep their own flag
            m.train(flag)


def _leaves(module: nn.Module):
    return [(n, m) for n, m in module.named_modules() if not list(m.children())]


def trace(module: nn.Module, input_shape: Sequence[int]) -> List[dict]:
    """Run ``module`` on a meta tensor of ``input_shape`` and record every leaf call.

    Each record: ``name``, ``kind``, ``shape`` (per-example output shape),
    ``out_units`` (per example), ``params`` (``{name: numel}``, on a module's first
    call only, so shared modules count once), ``fan_in`` and ``has_bias`` (conv).
    The module itself is not modified: parameters and buffers are swapped for meta
    stand-ins through :func:`torch.func.functional_call`, and BatchNorm runs in
    eval mode (shapes do not depend on it; train mode rejects 1×1 maps at batch 1).
    """
    records: List[dict] = []
    seen = set()

    def hook_for(name, mod):
        def hook(_m, _inputs, output):
            batch = output.shape[0]
            rec = {
                "name": name,
                "kind": kind_of(mod),
                "shape": list(output.shape[1:]),
                "out_units": output.numel() // batch,
                "params": {},
            }
            if id(mod) not in seen:
                seen.add(id(mod))
                rec["params"] = {p: t.numel() for p, t in mod.named_parameters(recurse=False)}
            if isinstance(mod, nn.Conv2d):
                rec["fan_in"] = mod.weight[0].numel()  # Cin/groups · kh · kw
                rec["has_bias"] = mod.bias is not None
            records.append(rec)
        return hook

    handles = [m.register_forward_hook(hook_for(n, m)) for n, m in _leaves(module)]
    meta = {n: torch.empty_like(t, device="meta")
            for n, t in list(module.named_parameters()) + list(module.named_buffers())}
    try:
        with mode(module, False), torch.no_grad():
            functional_call(module, meta, (torch.empty(*input_shape, device="meta"),))
    finally:
        for h in handles:
            h.remove()
    return records


def quantities(rec: dict, cv) -> Dict[str, int]:
    """Weights, outputs and connections of one :func:`trace` record under convention ``cv``."""
    return cv.layer_quantities(rec["kind"], rec["params"], rec["out_units"],
                               rec.get("fan_in", 0), rec.get("has_bias", False))


def count_layers(module: nn.Module, input_shape: Sequence[int],
                 convention: str = conv_mod.DEFAULT_CONVENTION) -> List[dict]:
    """Per-leaf-call ``{name, kind, shape, weights, outputs, connections}``.

    >>> from models.colourization import UNet
    >>> rows = count_layers(UNet(3, 4, 6, 1), (1, 1, 8, 8), "course")
    >>> rows[-1]["name"], rows[-1]["shape"], rows[-1]["weights"]
    ('finalconv', [6, 8, 8], 384)
    """
    cv = conv_mod.get(convention)
    return [{"name": r["name"], "kind": r["kind"], "shape": r["shape"], **quantities(r, cv)}
            for r in trace(module, input_shape)]


def count(module: nn.Module, input_shape: Sequence[int],
          convention: str = conv_mod.DEFAULT_CONVENTION) -> Dict[str, int]:
    """Total weights, outputs and connections of ``module`` on ``input_shape``."""
    rows = count_layers(module, input_shape, convention)
    return {q: sum(r[q] for r in rows) for q in conv_mod.QUANTITIES}
