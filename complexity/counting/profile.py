"""Per-layer profile of any ``nn.Module``: parameters, output units and MACs,
measured on the meta device.

How each number is obtained, and why:

* **params** — ``sum(p.numel())`` over ``module.named_parameters()``, which yields
  each parameter object once, so tied/shared weights count once. A parameter
  belongs to the module whose name comes first (PyTorch's own de-duplication
  order). Nothing is run for this.
* **MACs** — ``torch.utils.flop_counter.FlopCounterMode`` total / 2. It intercepts
  aten ops (``TorchDispatchMode``), so ``F.conv2d``, ``matmul``, ``F.linear``
  called inside a custom module's ``forward`` count as much as ``nn.Conv2d`` does;
  ops it has no formula for (``cat``, ``interpolate``, pooling, BatchNorm,
  activations) are 0, as in torchinfo and in the ``torch`` convention (docs/conventions.md).
  A module's MACs are the counter's growth between its forward pre-hook and
  forward hook, so nested modules, repeated calls and functional ops inside the
  module are attributed without relying on the counter's private names.
* **outputs** — output units (``numel`` of every tensor returned) of every leaf
  module call: the ``torch`` convention, applied to any leaf module.
  Functional ops are not modules and add no outputs (as ``torch.cat`` in every convention).

All counts are for the input as given (batch included). On the meta device
tensors carry shapes only: nothing is allocated or computed, so the time does
not depend on the input size. ``device="cpu"`` runs real (zero) tensors for
models whose forward needs real values, with attention decomposed as on meta
(:func:`decomposed_attention`), so both devices count the same MACs.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
>>> p = profile(net, (1, 3, 4, 4))  # by hand: 8·3·9 + 8 + 128·10 + 10 params
>>> p["params"], p["outputs"], p["macs"]
(1514, 394, 4736)
>>> [(r["name"], r["macs"]) for r in p["layers"]]
[('0', 3456), ('1', 0), ('2', 0), ('3', 1280)]
"""
from __future__ import annotations

import contextlib
from fractions import Fraction
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn
from torch.func import functional_call
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from complexity.counting import conventions as conv_mod
from complexity.counting.hooks import kind_of, mode
from complexity.errors import Given, Worded, literal

DEVICES = ("meta", "cpu")


class ProfileError(Worded, RuntimeError):
    """The model could not run on the requested device; one line saying why."""


def _shape(output):
    """Output shape(s) as JSON-friendly lists (tuples and dicts kept as such)."""
    if isinstance(output, torch.Tensor):
        return list(output.shape)
    if isinstance(output, dict):
        return {str(k): _shape(v) for k, v in output.items()}
    if isinstance(output, (list, tuple)):
        return [_shape(v) for v in output]
    return None


def units(output) -> int:
    """Output units of a module call: ``numel`` of every tensor it returned."""
    return sum(t.numel() for t in tree_leaves(output) if isinstance(t, torch.Tensor))


def selectors(convention: str):
    """(counts this parameter?, counts this leaf's outputs?) for ``convention``.

    ``torch`` means every parameter and every leaf module's output units, for any
    module type; ``lecture`` and ``course`` keep their meaning (docs/conventions.md), which only
    knows the colourization layer kinds (conv, maxpool, upsample, batchnorm, relu).
    """
    cv = conv_mod.get(convention)
    if cv.name == "torch":
        return (lambda kind, name: True), (lambda kind: True)
    return cv.counts_weight, cv.counts_output


def param_owners(module: nn.Module, counts_weight):
    """``[(owner module name, numel, trainable)]``, each parameter object once."""
    kinds = {name: kind_of(m) for name, m in module.named_modules()}
    owners = []
    for full, p in module.named_parameters():  # de-duplicated by identity
        owner, _, local = full.rpartition(".")
        if counts_weight(kinds.get(owner, ""), local):
            owners.append((owner, p.numel(), p.requires_grad))
    return owners


def _same_shape(x, *args, **kwargs):
    # contiguous, unlike empty_like: no stride query, so no contiguity guard of the
    # input in a symbolic trace (its branch is the next real op's to take)
    return x.new_empty(x.shape)


def shortcut_norms(module: nn.Module) -> List[nn.Module]:
    """On the meta device, run BatchNorm and LayerNorm as "a new tensor of the
    input's shape".

    Exact for every count here: their output has their input's shape, and
    FlopCounterMode has no formula for either (0 MACs, as torchinfo's conv-only
    MACs and the ``torch`` convention). It matters for speed: meta BatchNorm runs
    through Python reference decompositions, about half of deeplabv3_resnet101's
    profile time, and LayerNorm's symbolic decomposition is a sixth of swin_t's
    symbolic trace. The instance attribute is removed again after the run.
    """
    patched = []
    for m in module.modules():
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)) and \
                "forward" not in m.__dict__:
            m.forward = _same_shape
            patched.append(m)
    return patched


def from_meta(e: BaseException) -> bool:
    """Whether an error looks like the meta device's doing (an op without a meta
    kernel, or one that needs values: "Cannot copy out of meta tensor", ``.item()``)
    rather than a bad input, so that "try --device cpu" can help."""
    return isinstance(e, NotImplementedError) or "meta" in str(e).lower()


def mismatch(module: nn.Module, shapes) -> Optional[str]:
    """What does not fit between a module and the shapes of its inputs, in words
    (None when nothing is seen): the channels a conv or BatchNorm expects, the
    features a linear layer expects. The meta device's own error for these is
    terse ("Invalid channel dimensions"); this says the same as the cpu one.

    >>> mismatch(nn.Conv2d(3, 8, 3), [(1, 5, 32, 32)])
    'Conv2d expects 3 input channels, the input has 5'
    >>> mismatch(nn.Linear(10, 2), [(4, 12)])
    'Linear expects 10 input features, the input has 12'
    """
    if not shapes or not shapes[0]:
        return None
    shape, kind = shapes[0], type(module).__name__
    if isinstance(module, nn.modules.conv._ConvNd) and len(shape) >= 2:
        if shape[1] != module.in_channels:
            return f"{kind} expects {module.in_channels} input channels, the input has {shape[1]}"
    elif isinstance(module, nn.modules.batchnorm._BatchNorm) and len(shape) >= 2:
        if shape[1] != module.num_features:
            return f"{kind} expects {module.num_features} channels, the input has {shape[1]}"
    elif isinstance(module, nn.Linear) and shape[-1] != module.in_features:
        return f"{kind} expects {module.in_features} input features, the input has {shape[-1]}"
    return None


@contextlib.contextmanager
def decomposed_attention():
    """Run attention as the meta device does: through ``linear``/``bmm`` ops that
    ``FlopCounterMode`` counts, not through fused CPU kernels it has no formula for.

    In eval mode under ``no_grad`` on real tensors, ``nn.MultiheadAttention`` takes
    the ``aten._native_multi_head_attention`` fast path (``nn.TransformerEncoderLayer``
    ``aten._transformer_encoder_layer_fwd``), and ``F.scaled_dot_product_attention``
    the ``aten._scaled_dot_product_flash_attention_for_cpu`` kernel; none has a flop
    formula, so their MACs would count 0 (vit_b_16 at 224: 11,271,124,992 MACs
    instead of 17,563,828,224). The meta device never takes those kernels. Turning
    the fast path off (``torch.backends.mha.set_fastpath_enabled(False)``) and
    restricting SDPA to its math backend makes the CPU run the same aten ops as the
    meta run, so the counts are equal by construction, for any attention module
    built on these, rather than equal only as far as a hand-written formula for
    each fused kernel restates the decomposition. The results are the same
    (the fast path and the flash kernel are optimisations); the setting is restored
    on exit.

    >>> import torch
    >>> from torch import nn
    >>> mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    >>> x = torch.zeros(1, 4, 8)
    >>> with torch.no_grad(), decomposed_attention(), FlopCounterMode(display=False) as c:
    ...     _ = mha(x, x, x, need_weights=False)
    >>> c.get_total_flops() == 2 * (4 * 8 * 24 + 2 * 2 * 4 * 4 * 4 + 4 * 8 * 8)  # in-proj, q·k, a·v, out-proj
    True
    >>> torch.backends.mha.get_fastpath_enabled()
    True
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    was = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(was)


def _macs(flops: int):
    value = Fraction(flops, 2)
    return int(value) if value.denominator == 1 else float(value)


def profile(module: nn.Module, input_shape: Sequence[int], convention: str = "torch",
            device: str = "meta", model_name: Optional[str] = None,
            layers: bool = True, input_dtype: Optional[torch.dtype] = None) -> Dict:
    """Totals and per-module rows of ``module`` on an input of ``input_shape``.

    Returns ``{"model", "input", "convention", "device", "params",
    "trainable_params", "outputs", "macs", "ops", "uncovered_kinds", "layers"}``
    (``uncovered_kinds``: leaf module classes outside the colourization layer kinds,
    whose weights and outputs a ``lecture``/``course`` count leaves out; [] for ``torch``); each layer row is
    ``{"name", "kind", "depth", "shape", "params", "trainable_params", "outputs",
    "macs", "calls"}`` with the counts of its whole subtree, in first-call order.
    ``ops`` gives the MACs per aten op. The module is not modified.
    ``layers=False`` skips the rows (totals only; what ``derive`` needs, faster).
    ``input_dtype``: the input's dtype when not float32, e.g. ``torch.long`` token
    ids (zeros on the cpu device: a valid id of any vocabulary).
    """
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    counts_weight, counts_output = selectors(convention)
    names = {m: n for n, m in module.named_modules()}
    leaves = {m for m in names if next(m.children(), None) is None}

    counter = FlopCounterMode(display=False)
    rows: Dict[nn.Module, dict] = {}
    stack: List[tuple] = []
    state = {"outputs": 0}

    def pre_hook(mod, _inputs):
        stack.append((counter.get_total_flops(), state["outputs"]))
        if mod not in rows:  # rows in first-call order, parents before children
            rows[mod] = {"name": names[mod], "kind": type(mod).__name__, "shape": None,
                         "flops": 0, "outputs": 0, "calls": 0}

    def leaf_hook(mod, _inputs, output):
        if counts_output(kind_of(mod)):
            state["outputs"] += units(output)

    def post_hook(mod, _inputs, output):
        flops0, outputs0 = stack.pop()
        if mod in leaves:
            leaf_hook(mod, _inputs, output)
        row = rows[mod]
        if row["calls"] == 0:
            row["shape"] = _shape(output)
        row["flops"] += counter.get_total_flops() - flops0
        row["outputs"] += state["outputs"] - outputs0
        row["calls"] += 1

    entered: List[tuple] = []  # (module, input shapes) of the calls now running

    def enter(mod, inputs):
        entered.append((mod, [tuple(t.shape) for t in inputs if isinstance(t, torch.Tensor)]))

    def leave(mod, _inputs, _output):
        entered.pop()

    handles = []
    patched = shortcut_norms(module) if device == "meta" else []
    for m in names:
        handles.append(m.register_forward_pre_hook(enter))
        handles.append(m.register_forward_hook(leave))
    for m in names:
        if layers:
            handles.append(m.register_forward_pre_hook(pre_hook))
            handles.append(m.register_forward_hook(post_hook))
        elif m in leaves:
            handles.append(m.register_forward_hook(leaf_hook))
    try:
        # Eval mode: shapes and counts do not depend on it, and train-mode
        # BatchNorm rejects a single value per channel (1×1 maps at batch 1).
        with mode(module, False), torch.no_grad():
            if device == "meta":
                tensors = list(module.named_parameters()) + list(module.named_buffers())
                # Default device meta: tensors the forward creates itself land there too.
                with torch.device("meta"), counter:
                    x = torch.empty(*input_shape, dtype=input_dtype)
                    if all(t.is_meta for _, t in tensors):  # built on meta: run as is
                        module(x)
                    else:  # real weights: run on meta stand-ins, leave the module alone
                        stand_ins = {n: torch.empty_like(t, device="meta") for n, t in tensors}
                        functional_call(module, stand_ins, (x,))
            else:
                x = torch.zeros(*input_shape, dtype=input_dtype)
                with decomposed_attention(), counter:
                    module(x)
    except Exception as e:
        lines = str(e).strip().splitlines()
        reason = f"{type(e).__name__}: {lines[0][:200]}" if lines else type(e).__name__
        where = mismatch(*entered[-1]) if entered else None
        hint = device == "meta" and from_meta(e) and not where
        at = f" at {names[entered[-1][0]] or 'the model'}: {where}" if where else ""
        text = (f"forward on the {device} device failed with input "
                f"{','.join(map(str, input_shape))}{at} ({reason})")
        if hint:
            raise ProfileError(literal(text) + "; if the forward needs real values, try {device}",
                               device=Given("cpu", "cpu")) from None
        raise ProfileError(text) from None
    finally:
        for h in handles:
            h.remove()
        for m in patched:
            del m.forward

    owners = param_owners(module, counts_weight)
    # lecture/course only know the colourization kinds: anything else counts 0.
    uncovered = [] if convention == "torch" else sorted(
        {type(m).__name__ for m in rows if m in leaves and kind_of(m) not in conv_mod.LAYER_KINDS})
    layers = []
    for mod, row in rows.items():
        prefix = row["name"]
        mine = [(n, t) for owner, n, t in owners
                if not prefix or owner == prefix or owner.startswith(prefix + ".")]
        layers.append({
            "name": prefix, "kind": row["kind"],
            "depth": 0 if not prefix else prefix.count(".") + 1,
            "shape": row["shape"],
            "params": sum(n for n, _ in mine),
            "trainable_params": sum(n for n, t in mine if t),
            "outputs": row["outputs"], "macs": _macs(row["flops"]), "calls": row["calls"],
        })
    ops = {str(op): _macs(v)
           for op, v in counter.get_flop_counts().get("Global", {}).items()}
    return {
        "model": model_name or type(module).__name__,
        "input": list(input_shape),
        "convention": convention,
        "device": device,
        "params": sum(n for _, n, _ in owners),
        "trainable_params": sum(n for _, n, t in owners if t),
        "outputs": state["outputs"],
        "macs": _macs(counter.get_total_flops()),
        "ops": ops,
        "uncovered_kinds": uncovered,
        # The root row duplicates the totals; the rows below it are the tree.
        "layers": [r for r in layers if r["name"]],
    }


def totals(p: Dict) -> Dict[str, int]:
    """The three quantities ``derive`` works with.

    >>> totals({"params": 1, "outputs": 2, "macs": 3, "layers": []})
    {'params': 1, 'outputs': 2, 'macs': 3}
    """
    return {"params": p["params"], "outputs": p["outputs"], "macs": p["macs"]}
