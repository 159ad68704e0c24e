"""Will one training step fit in a memory budget, for each trainable set, and what
is the largest batch (or, with ``size="auto"``, the largest square input) that
does? The library behind ``python -m complexity fit``: it wires
:func:`~complexity.cost.fit.proofs.will_it_fit`,
:func:`~complexity.cost.fit.size_formula.size_formula` and
:func:`~complexity.cost.fit.proofs.proven_max_size` to a model by name, its
trainable sets and LoRA adapters, and the step's options. Every argument is
checked before anything is traced; errors are
:class:`~complexity.errors.OptionError` (a ``ValueError``) naming the parameter.

>>> rows = verdicts("stack", 20 * 2**20, batch=8, size=(32, 32), device="cpu")
>>> [(r.mode, r.fits, r.size) for r in rows]
[('full', True, [32, 32]), ('last', True, [32, 32])]
>>> sum(rows[0].parts.values()) == rows[0].peak_bytes
True
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from complexity.cost.step.options import StepOptions
from complexity.errors import NAMED, Given, OptionError, literal, reason

__all__ = ["FitResult", "FitError", "BudgetError", "verdicts", "trainable_sets", "AUTO_BASE",
           "AUTO", "parse_auto_input", "position_limit"]

#: where ``size="auto"`` starts its lattice (the domain then reaches down as far as
#: the step keeps its structure)
AUTO_BASE = (224, 224)

#: the size of an input's axis to be solved for (``input_shape=(4, AUTO)``: the
#: largest sequence length at batch 4)
AUTO = "auto"

#: the size an ``AUTO`` axis is built and probed at before the search
PROBE = 16


class FitError(OptionError):
    """A model, trainable set or size the step cannot be answered for; one line."""


class BudgetError(FitError):
    """The budget is below the weights alone (plus ``reserve`` on CUDA): nothing can
    train. ``budget``, ``weights`` and ``reserve`` (None on the CPU) in bytes."""

    def __init__(self, budget: int, weights: int, reserve: Optional[int]):
        self.budget, self.weights, self.reserve = budget, weights, reserve
        extra = (f" plus the {reserve}-byte reserve for the CUDA context"
                 if reserve is not None else "")
        super().__init__("{budget} is smaller than the weights alone ("
                         + literal(f"{weights} bytes{extra}") + "): nothing can train",
                         budget=budget)


@dataclass
class FitResult:
    """One trainable set's verdict: ``python -m complexity fit --format json``'s
    object (:meth:`to_dict`). ``input``: the batch's shape (``[batch, channels,
    *size]`` of an image batch); ``size`` its sizes after the batch and channels
    (:func:`~complexity.cost.finetune.extent`). ``max_size``, ``size_formula`` and
    ``size_domain`` are set (and in the JSON) only for ``size="auto"``. ``loss``:
    ``"cross-entropy"`` on the logits, or ``"the model's own (labels=)"``
    (:func:`~complexity.cost.step.batch.loss_of`), which ``step`` then names too."""

    model: str
    mode: str
    device: str
    batch: int
    size: List[int]
    input: List[int]
    budget_bytes: int
    peak_bytes: int
    fits: bool
    max_batch: Optional[int]
    parts: Dict[str, int]
    dominant: str
    cuda: Optional[Dict[str, int]]
    peak_formula: str
    unmodelled: List[str]
    step: str
    loss: str = "cross-entropy"
    max_size: Optional[List[int]] = None
    size_formula: Optional[str] = None
    size_domain: Optional[str] = None
    max_input: Optional[List[int]] = None
    input_search: Optional[Dict[str, Any]] = None
    formula_bs: Optional[Dict[str, Any]] = None  # fit --formula (cost/fit/lm_formula.py)

    def to_dict(self) -> Dict[str, Any]:
        """The JSON object ``fit --format json`` prints for this set.

        >>> (r,) = verdicts("stack", 2**30, modes=["last"], batch=2, size=(8, 8), device="cpu")
        >>> list(r.to_dict())[:5], "max_size" in r.to_dict(), "max_input" in r.to_dict()
        (['model', 'mode', 'device', 'batch', 'size'], False, False)
        """
        auto = self.size_formula is not None
        order = ("model", "mode", "device", "batch", "size", "input", "budget_bytes", "peak_bytes",
                 "fits", "max_batch", "max_size", "parts", "dominant", "cuda", "peak_formula",
                 "size_formula", "size_domain", "unmodelled", "step", "loss")
        out = {k: getattr(self, k) for k in order
               if auto or k not in ("max_size", "size_formula", "size_domain")}
        if self.formula_bs is not None:
            out["formula_bs"] = self.formula_bs
        return _with_search(out, self)


def trainable_sets(modes: Sequence[str] = ("full", "last"),
                   trainable: Sequence[Union[str, Sequence[str]]] = ()) -> List[str]:
    """The trainable sets in order: ``modes`` (``full``, ``last``), then each of
    ``trainable`` (a glob, or globs joined by commas); :class:`OptionError` for a
    set given twice.

    >>> trainable_sets(["last"], ["0.*", ["1.*", "head.*"]])
    ['last', '0.*', '1.*,head.*']
    """
    sets = list(modes)
    for group in trainable:
        joined = group if isinstance(group, str) else ",".join(group)
        if joined in sets:
            raise OptionError("{trainable} is given twice; give each set once",
                              trainable=joined)
        sets.append(joined)
    return sets


def _build(name: str, model_args: Optional[dict], input_shape=None):
    """(model on the meta device, input channels), checked against ``input_shape``
    when given (:func:`~complexity.cost.finetune.build_for_input`); :class:`FitError`
    when it cannot be built."""
    from complexity.cost.finetune import build_for_input
    from complexity.zoo import build_model

    try:
        if input_shape is not None:
            return build_for_input(name, 4, 16, model_args, input_shape)
        return build_model(name, model_args=model_args)
    except ValueError:
        raise
    except Exception as e:
        raise FitError(f"model {name}: {reason(e)}") from None


def _check_device(device: str, reserve: Optional[int], options: StepOptions) -> int:
    """The reserve for the CUDA context (0 on the CPU); :class:`OptionError` for a
    setting the device cannot take."""
    from complexity.cost.fit.allocator import DEFAULT_RESERVE

    if device not in ("cpu", "cuda"):
        raise OptionError("{device}: choose cpu or cuda", device=device)
    if reserve is not None and device != "cuda":
        raise OptionError("{reserve} applies to {device} only", reserve=NAMED,
                          device=Given("cuda", "cuda"))
    if options.autocast == "float16" and device == "cpu":
        raise OptionError("{autocast} runs on CUDA; on {device} use bfloat16",
                          autocast=Given("float16", "float16"), device=Given("cpu", "cpu"))
    return DEFAULT_RESERVE if reserve is None else reserve


def _check_budget(model, budget: int, device: str, reserve: int, options: StepOptions) -> None:
    """:class:`BudgetError` when the weights alone (in ``options.dtype``) and, on
    CUDA, the reserve exceed ``budget``."""
    dtype = options.torch_dtype()
    weights = sum(t.numel() * (dtype.itemsize if t.dtype.is_floating_point else t.element_size())
                  for t in (*model.parameters(), *model.buffers()))
    if budget < weights + (reserve if device == "cuda" else 0):
        raise BudgetError(budget, weights, reserve if device == "cuda" else None)


def _check_sets(model, name: str, sets: Sequence[str], lora_sets: Sequence[str],
                options: StepOptions) -> None:
    """Every glob set matches, the checkpoint glob and each LoRA's targets find
    modules; :class:`FitError` naming the model otherwise."""
    from complexity.cost.step.lora import lora_of, target_modules
    from complexity.cost.step.trainable import set_trainable

    try:
        for s in sets:
            if s not in ("full", "last"):
                set_trainable(model, s)
        if options.checkpoint:
            from complexity.cost.step.checkpointing import checkpoint_modules

            checkpoint_modules(model, options.checkpoint)
        for mode in lora_sets:
            target_modules(model, lora_of(mode))
    except ValueError as e:
        raise FitError(f"model {name}: {e}") from None


def verdicts(model: str, budget: int, *, modes: Sequence[str] = ("full", "last"),
             trainable: Sequence[Union[str, Sequence[str]]] = (), lora: Sequence[str] = (),
             batch: Optional[int] = None, size: Union[str, Tuple[int, int], None] = None,
             device: str = "cuda", reserve: Optional[int] = None,
             options: Optional[StepOptions] = None,
             model_args: Optional[dict] = None,
             input_shape: Optional[Sequence[int]] = None,
             formula: bool = False) -> List[FitResult]:
    """One :class:`FitResult` per trainable set — ``modes``, each of ``trainable``,
    then each LoRA mode of ``lora`` (:func:`~complexity.cost.step.lora.lora_modes`)
    — for the model ``model`` (a spec, :func:`complexity.zoo.build_model`) at
    ``batch`` and ``size`` (``(H, W)``, or ``"auto"``: the largest square size
    that fits, solved from the peak's formula in B, H, W) within ``budget`` bytes.
    ``device="cuda"``: the caching allocator's predicted reserved bytes plus
    ``reserve`` (default 512 MiB) must fit; ``"cpu"``: the exact peak must.
    ``batch`` and ``size`` default to 32 and ``(224, 224)``.

    ``input_shape``: the whole input instead of ``batch`` and ``size``, of any
    rank, batch first (``(8, 512)`` token ids, ``(4, 16000)`` audio,
    ``(2, 3, 16, 112, 112)`` video, ``(4, 3, 224, 224)`` images): the formula in B
    is over its first size, the sample ``input_shape[1:]`` fixed; a model that
    takes token ids (:func:`~complexity.cost.step.batch.token_vocabulary`) gets
    int64 ids below its vocabulary. Not with ``size="auto"``. ``formula``: a language
    model's step at ``input_shape = (B, S)`` also as formulas in B and S, checked
    (:mod:`complexity.cost.fit.lm_formula`; its own symbolic trace: slower).

    >>> (r,) = verdicts("stack", 2**30, modes=["full"], batch=4, size=(16, 16), device="cpu")
    >>> r.fits, r.max_batch > 4, r.step
    (True, True, 'adam, float32')
    """
    from complexity.cost.step.batch import input_kind

    options = options or StepOptions()
    batch, size, shape = _check_input(batch, size, input_shape)
    reserve = _check_device(device, reserve, options)
    sets = trainable_sets(modes, trainable)
    built, channels = _build(model, model_args, concrete_input(shape))
    _check_budget(built, budget, device, reserve, options)
    _check_sets(built, model, sets, lora, options)
    # the model says once whether it takes token ids (a meta forward for most models)
    kind = input_kind(built, concrete_input(shape)) if shape is not None else {}
    _check_positions(built, shape, kind)
    if formula:
        from complexity.cost.fit.lm_formula import check_request

        check_request(built, shape, kind)
    return [_verdict(built, model, model_args, channels, s, budget, batch, size, device,
                     reserve, options, shape, kind, formula) for s in [*sets, *lora]]


def _check_input(batch, size, input_shape):
    """``(batch, size, input shape or None)``: the defaults filled in; an
    :class:`OptionError` for an input shape that is not one, or that comes with
    ``batch``, ``size`` or ``size="auto"``.

    >>> _check_input(None, None, (8, 512)), _check_input(None, (16, 16), None)
    ((8, None, (8, 512)), (32, (16, 16), None))
    """
    if input_shape is None:
        return (32 if batch is None else batch), ((224, 224) if size is None else size), None
    if isinstance(input_shape, str):
        input_shape = parse_auto_input(input_shape)
    shape = tuple(input_shape)
    _check_auto(shape)
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1
                        for s in shape if s != AUTO):
        raise OptionError("{input_shape}: need integers >= 1, batch first (e.g. 8,512)",
                          input_shape=Given(shape, ",".join(map(str, shape))))
    if size == "auto":
        raise OptionError("{size} finds the largest square image size; with {input_shape} "
                          "the sizes are given: drop one", size=Given("auto", "auto"),
                          input_shape=NAMED)
    for name, value in (("batch", batch), ("size", size)):
        if value is not None:
            raise OptionError("{input_shape} is the whole input, batch first; drop {" + name
                              + "}", input_shape=NAMED, **{name: NAMED})
    return shape[0], None, shape


def _verdict(built, name, model_args, channels, mode, budget, batch, size, device, reserve,
             options, shape=None, kind=None, in_bs=False) -> FitResult:
    """The verdict for one trainable set (a LoRA one on a fresh build with adapters);
    ``shape``: the whole input (``input_shape``), else ``(batch, channels, *size)``;
    ``kind``: the input's dtype and bound (:func:`~complexity.cost.step.batch.input_kind`);
    ``in_bs``: the step also as formulas in B and S (``verdicts(formula=True)``)."""
    kind = kind or {}
    from complexity.cost.finetune import extent
    from complexity.cost.fit import proofs
    from complexity.cost.fit.step_formula import FormulaError
    from complexity.cost.step.batch import loss_of
    from complexity.cost.step.checkpointing import prepare
    from complexity.cost.step.lora import trainable_model

    net, _ = trainable_model(built, mode, lambda: _build(name, model_args, shape)[0])
    prepare(net, options.checkpoint)  # --checkpoint hf: set up as transformers sets it up
    loss = loss_of(net)  # the model's own (labels=) where it has one
    extra, formula = {}, None
    if shape is not None and AUTO in shape:
        extra, shape = _auto_input(net, name, mode, shape, budget, device, reserve, options,
                                   kind)
    if shape is not None:
        sample, what = shape[1:], "x".join(map(str, shape))
    else:
        h, w = AUTO_BASE if size == "auto" else size
        if size == "auto":
            extra, formula, h, w = _auto_size(net, name, channels, mode, budget, batch, device,
                                              reserve, options)
        sample, what = (channels, h, w), f"{h}x{w}"
    try:
        r = proofs.will_it_fit(net, sample, batch, budget, device=device,
                               reserve=reserve, options=options, formula=formula, **kind)
    except FormulaError as e:
        raise FitError(f"model {name}, {mode}: no verified formula ({e})") from None
    except Exception as e:  # the forward failed: a size or input it cannot take
        raise FitError(f"model {name} cannot take a {what} input ({reason(e)})") from None
    if in_bs:
        from complexity.cost.fit.lm_formula import FormulaError as BSError, formula_json
        try:
            extra["formula_bs"] = formula_json(net, device=device, options=options, **kind)
        except BSError as e:
            raise FitError(f"model {name}, {mode}: no formula in B and S ({e})") from None
    known = {f.name for f in fields(FitResult)}
    full = (batch, *sample)
    return FitResult(model=name, mode=mode, size=extent(full), input=list(full),
                     step=options.label(loss), loss=loss.label(), **extra,
                     **{k: v for k, v in r.items() if k in known})


def _auto_size(net, name, channels, mode, budget, batch, device, reserve, options):
    """``size="auto"`` for one trainable set: ``(the result's size fields, the step's
    formula in B at the size reported, H, W)``. The size reported is the max size, or
    the domain's smallest square size when none fits."""
    from complexity.cost.fit.proofs import proven_max_size
    from complexity.cost.fit.size_formula import size_formula
    from complexity.cost.fit.step_formula import FormulaError

    auto = Given("auto", "auto")
    try:
        f = size_formula(net, channels, device, base=AUTO_BASE, options=options)
        best = proven_max_size(net, f, batch, budget, device=device, reserve=reserve)
        lo = f.square_lattice()[0]
    except FormulaError as e:
        raise FitError("{size}: " + literal(f"model {name}, {mode}: no verified formula in "
                                            f"the size ({e})"), size=auto) from None
    except Exception as e:  # the forward failed at the base size
        raise FitError("{size}: " + literal(f"model {name} cannot take a "
                                            f"{AUTO_BASE[0]}x{AUTO_BASE[1]} input ({reason(e)})"),
                       size=auto) from None
    search = _every_size(net, f, channels, batch, budget, device, reserve, options, best)
    if search is not None:
        best = search.best
    at = best or lo
    extra = {"max_size": None if best is None else [best, best],
             "max_input": None if best is None else [batch, channels, best, best],
             "input_search": None if search is None else _search_json(search, (2, 3)),
             "size_formula": str(f.formulas()["peak_bytes"]), "size_domain": f.domain_text()}
    on_lattice = (at - lo) % f.square_lattice()[1] == 0
    return extra, (f.restrict(at, at) if on_lattice else None), at, at


def _every_size(net, f, channels, batch, budget, device, reserve, options, best):
    """The largest square size over every integer (not only the lattice's), from the
    lattice's answer ``best`` (proved to fit) up to the next lattice size (proved not
    to): :func:`~complexity.cost.fit.proofs.proven_max_input` on sizes traced in
    between. None when there is nothing to search (no size fits, or every one does)."""
    from complexity.cost.fit.proofs import proven_max_input

    if not best:
        return None
    step = f.square_lattice()[1]
    return proven_max_input(net, (batch, channels, best, best), (2, 3), budget, device=device,
                            reserve=reserve, known_fit=best, known_miss=best + step,
                            options=options)


def parse_auto_input(text: str) -> Tuple[Union[int, str], ...]:
    """``"4,auto"`` → ``(4, 'auto')``: :func:`complexity.zoo.parse_input` with one
    size that may be ``auto`` (:data:`AUTO`, to be solved for).

    >>> parse_auto_input("4, auto"), parse_auto_input("2,3")
    ((4, 'auto'), (2, 3))
    """
    from complexity.zoo import parse_input

    parts = [t.strip() for t in text.split(",")]
    given = [p for p in parts if p.lower() != AUTO]
    known = iter(parse_input(",".join(given)) if given else ())
    return tuple(AUTO if p.lower() == AUTO else next(known) for p in parts)


def _check_auto(shape) -> None:
    """One ``auto`` at most, never the batch (the largest batch is always given)."""
    autos = [i for i, s in enumerate(shape) if s == AUTO]
    text = Given(shape, ",".join(map(str, shape)))
    if 0 in autos:
        raise OptionError("{input_shape}: the batch cannot be auto (the largest batch is "
                          "always reported); put auto at the size to solve for, e.g. 4,auto",
                          input_shape=text)
    if len(autos) > 1:
        raise OptionError("{input_shape}: one size can be auto, not " + literal(str(len(autos))),
                          input_shape=text)


def concrete_input(shape):
    """``shape`` with its ``auto`` size at :data:`PROBE` (what the model is built and
    asked about its input with); None stays None.

    >>> concrete_input((4, "auto")), concrete_input(None)
    ((4, 16), None)
    """
    return None if shape is None else tuple(PROBE if s == AUTO else s for s in shape)


def position_limit(model, shape, kind) -> Optional[int]:
    """The longest sequence of token ids ``model`` takes: its config's
    ``max_position_embeddings`` (GPT-2's ``n_positions``), for a ``(B, S)`` input
    of token ids (``kind``'s ``input_high`` set); None otherwise.

    >>> from transformers import GPT2Config, GPT2LMHeadModel
    >>> import torch
    >>> with torch.device("meta"):
    ...     net = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, n_positions=64))
    >>> position_limit(net, (2, 8), {"input_high": 50257}), position_limit(net, (2, 8), {})
    (64, None)
    """
    config = getattr(model, "config", None)
    if config is None or shape is None or len(shape) != 2 or not (kind or {}).get("input_high"):
        return None
    limit = getattr(config, "max_position_embeddings", None)
    return limit if isinstance(limit, int) and limit > 0 else None


def _check_positions(model, shape, kind) -> None:
    """:class:`FitError` for a sequence longer than the model's positions."""
    limit = position_limit(model, shape, kind)
    if limit is not None and shape[1] != AUTO and shape[1] > limit:
        raise FitError("{input_shape}: " + literal(
            f"sequence length {shape[1]} exceeds the model's max_position_embeddings "
            f"({limit})"), input_shape=Given(shape, ",".join(map(str, shape))))


def _auto_input(net, name, mode, shape, budget, device, reserve, options, kind):
    """``input_shape`` with an ``auto`` size: ``(the result's search fields, the input
    at the largest size that fits)`` — at size 1 when none does. The search stops at
    the model's position limit (:func:`position_limit`)."""
    from complexity.cost.fit.proofs import proven_max_input

    axis = shape.index(AUTO)
    limit = position_limit(net, shape, kind)
    try:
        r = proven_max_input(net, [0 if s == AUTO else s for s in shape], (axis,), budget,
                             device=device, reserve=reserve, limit=limit, options=options,
                             **kind)
    except Exception as e:  # the forward failed at a size searched
        raise FitError("{input_shape}: " + literal(f"model {name}, {mode}: {reason(e)}"),
                       input_shape=Given(shape, ",".join(map(str, shape)))) from None
    full = tuple(max(r.best, 1) if i == axis else s for i, s in enumerate(shape))
    return {"max_input": list(full) if r.best else None,
            "input_search": _search_json(r, (axis,))}, full


def _search_json(r, axes) -> Dict[str, Any]:
    """The search's proof in the JSON: the axes solved for, the size that fits and the
    next that does not (with the bytes compared with the budget), the limit, how many
    sizes were traced, and whether their costs grew with the size."""
    return {"axes": list(axes), **r.proof(), "limit": r.limit, "traced": len(r.costs),
            "monotone": r.monotone}


def _with_search(out: Dict[str, Any], r: "FitResult") -> Dict[str, Any]:
    """``out`` with ``max_input`` and ``input_search`` after ``max_batch``, when the
    input had a size to solve for."""
    if r.input_search is None:
        return out
    items = list(out.items())
    at = [k for k, _ in items].index("max_batch") + 1
    add = [("max_input", r.max_input), ("input_search", r.input_search)]
    return dict(items[:at] + add + items[at:])
