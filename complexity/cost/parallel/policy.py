"""FSDP2's two policies, as this package takes them: :class:`Precision` (FSDP2's
``MixedPrecisionPolicy``: the dtype of the gathered parameters, of the gradient
reduction, of the root's output, and whether inputs are cast) and CPU offload
(``CPUOffloadPolicy``: a flag, see :mod:`~complexity.cost.parallel.prediction`).
No torch import at module level: the command line parses the policy before it
loads torch.

What FSDP2 does with a precision (``torch/distributed/fsdp/_fully_shard``,
``FSDPParam.init_dtype_attrs``): a parameter that is not floating point, or
already of ``param``'s dtype, is not cast; ``reduce`` equal to ``param`` is no
cast either (the gradients are computed in ``param``'s dtype).

>>> p = parse_precision("param=bfloat16,reduce=float32")
>>> p.param, p.reduce, p.output, p.cast_inputs
('bfloat16', 'float32', None, True)
>>> p.text()
'param=bfloat16,reduce=float32'
>>> parse_precision("param=bf16,cast-inputs=no").text()
'param=bfloat16,cast-inputs=no'
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from complexity.errors import OptionError

#: the dtype names a precision takes (``torch.<name>``), and short aliases
DTYPES = ("float32", "bfloat16", "float16", "float64")
ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16",
           "float": "float32", "fp64": "float64", "double": "float64"}
#: the keys of ``--mixed-precision``: the policy's fields as FSDP2 names them
KEYS = {"param": "param_dtype", "reduce": "reduce_dtype", "output": "output_dtype",
        "cast-inputs": "cast_forward_inputs"}


@dataclass(frozen=True)
class Precision:
    """FSDP2's ``MixedPrecisionPolicy`` by dtype names (None: FSDP2's default,
    no cast): ``param`` (``param_dtype``: the gathered parameters, hence the
    forward's activations and the unsharded gradients), ``reduce``
    (``reduce_dtype``: the reduce-scatter), ``output`` (``output_dtype``: the
    root's outputs), ``cast_inputs`` (``cast_forward_inputs``: floating inputs
    cast to ``param``)."""

    param: Optional[str] = None
    reduce: Optional[str] = None
    output: Optional[str] = None
    cast_inputs: bool = True

    def dtype(self, which: str):
        """``torch.<name>`` of the field ``which``, or None."""
        import torch

        name = getattr(self, which)
        return None if name is None else getattr(torch, name)

    def policy(self):
        """FSDP2's ``MixedPrecisionPolicy`` of this precision."""
        from torch.distributed.fsdp import MixedPrecisionPolicy

        return MixedPrecisionPolicy(param_dtype=self.dtype("param"),
                                    reduce_dtype=self.dtype("reduce"),
                                    output_dtype=self.dtype("output"),
                                    cast_forward_inputs=self.cast_inputs)

    def text(self) -> str:
        """The ``--mixed-precision`` text of this precision."""
        parts = [f"{k}={getattr(self, k)}" for k in ("param", "reduce", "output")
                 if getattr(self, k)]
        return ",".join(parts + ([] if self.cast_inputs else ["cast-inputs=no"]))


def parse_precision(text: str) -> Precision:
    """``param=DTYPE,reduce=DTYPE,output=DTYPE,cast-inputs=yes|no`` (any subset,
    at least one dtype) as a :class:`Precision`; :class:`OptionError` naming
    ``mixed_precision`` for an unknown key or dtype."""
    fields = {}
    for item in (s.strip() for s in str(text).split(",") if s.strip()):
        key, eq, value = (s.strip().lower() for s in item.partition("="))
        if not eq or key not in KEYS:
            raise OptionError("{mixed_precision}: " + f"{item!r} is not KEY=VALUE with KEY one "
                              "of " + ", ".join(KEYS), mixed_precision=text)
        if key == "cast-inputs":
            if value not in ("yes", "no", "true", "false"):
                raise OptionError("{mixed_precision}: cast-inputs takes yes or no",
                                  mixed_precision=text)
            fields["cast_inputs"] = value in ("yes", "true")
            continue
        name = ALIASES.get(value, value.removeprefix("torch."))
        if name not in DTYPES:
            raise OptionError("{mixed_precision}: " + f"{value!r} is no floating dtype (one of "
                              + ", ".join(DTYPES) + ")", mixed_precision=text)
        fields[key] = name
    if not any(k in fields for k in ("param", "reduce", "output")):
        raise OptionError("{mixed_precision} names no dtype (param=, reduce= or output=)",
                          mixed_precision=text)
    return Precision(**fields)


def check_available(mixed: Optional[Precision], offload: bool) -> None:
    """:class:`OptionError` when this PyTorch's FSDP2 lacks the policy (or a field
    of it) asked for."""
    import dataclasses

    try:
        from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy
    except ImportError:
        raise OptionError("{mixed_precision} and {offload} need FSDP2's policies, which this "
                          "PyTorch lacks", mixed_precision=mixed, offload=offload) from None
    if mixed is not None:
        have = {f.name for f in dataclasses.fields(MixedPrecisionPolicy)}
        wanted = {v for k, v in KEYS.items()
                  if getattr(mixed, k.replace("-", "_")) not in (None, True)}
        missing = sorted(wanted - have)
        if missing:
            raise OptionError("{mixed_precision}: this PyTorch's MixedPrecisionPolicy has no "
                              + ", ".join(missing), mixed_precision=mixed.text())
    if offload and "pin_memory" not in {f.name for f in dataclasses.fields(CPUOffloadPolicy)}:
        raise OptionError("{offload}: this PyTorch's CPUOffloadPolicy has no pin_memory",
                          offload=offload)


def dtypes(mixed: Optional[Precision], orig):
    """``(gathered, reduced)``: the dtypes of a floating parameter of dtype
    ``orig`` once all-gathered (and of its unsharded gradient), and in the
    reduce-scatter — FSDP2's clamps (``init_dtype_attrs``) and
    ``foreach_reduce``'s ``reduce_dtype or grad_dtype``.

    >>> import torch
    >>> dtypes(parse_precision("param=bf16,reduce=fp32"), torch.float32)
    (torch.bfloat16, torch.float32)
    >>> dtypes(parse_precision("reduce=bf16"), torch.float32)
    (torch.float32, torch.bfloat16)
    """
    if mixed is None or not orig.is_floating_point:
        return orig, orig
    gathered = mixed.dtype("param") or orig
    return gathered, mixed.dtype("reduce") or gathered


def cast_copy(model, mixed: Optional[Precision]):
    """``model`` as FSDP2's forward and backward see it: a copy whose floating
    parameters are of ``param``'s dtype (buffers are not cast: FSDP2 casts only
    what it gathers); ``model`` itself when nothing is cast."""
    import copy

    if mixed is None or mixed.param is None:
        return model
    out = copy.deepcopy(model)
    for p in out.parameters():
        if p.is_floating_point():
            p.data = p.data.to(mixed.dtype("param"))
    return out


def input_cast(mixed: Optional[Precision], input_dtype):
    """The input's dtype inside the model: ``param``'s when FSDP2 casts floating
    inputs (``cast_forward_inputs``), else ``input_dtype`` (None: the default)."""
    import torch

    dtype = input_dtype or torch.get_default_dtype()
    if mixed is None or mixed.param is None or not mixed.cast_inputs:
        return input_dtype
    return mixed.dtype("param") if dtype.is_floating_point else input_dtype



def cast_hooks(model, unit_modules, mixed: Optional[Precision]) -> list:
    """With ``output``: hooks that do to the trace what FSDP2 does at every unit
    (``FSDPState._post_forward`` casts each unit's floating outputs to
    ``output``'s dtype after its reshard, the root's too; ``_pre_forward`` casts
    each unit's floating inputs back to ``param``'s after its gather). Register
    them after the call-range hooks, so that the casts fall where FSDP2 runs
    them: an input's inside the unit's calls, an output's after. The handles."""
    if mixed is None or mixed.output is None:
        return []
    import torch
    from torch.utils._pytree import tree_map_only

    def caster(dtype):
        return lambda t: t.to(dtype) if t.is_floating_point() and t.dtype != dtype else t

    out_cast, in_cast = caster(mixed.dtype("output")), caster(mixed.dtype("param"))
    handles = []
    for mod in [*unit_modules, model]:
        if mod is not model and mixed.param and mixed.cast_inputs:
            handles.append(mod.register_forward_pre_hook(
                lambda _m, args, kwargs: (tree_map_only(torch.Tensor, in_cast, args),
                                          tree_map_only(torch.Tensor, in_cast, kwargs)),
                with_kwargs=True))
        handles.append(mod.register_forward_hook(
            lambda _m, _args, out: tree_map_only(torch.Tensor, out_cast, out)))
    return handles
