"""``complexity.fit``: will a training step fit in a memory budget (the ``fit``
command), as :class:`~complexity.cost.fit.verdict.FitResult` rows."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple, Union


def fit(model: str, budget: int, *, batch: Optional[int] = None,
        size: Union[int, Tuple[int, int], str, None] = None,
        input_shape: Union[Sequence[int], str, None] = None,
        modes: Sequence[str] = ("full", "last"),
        trainable: Sequence[Union[str, Sequence[str]]] = (), lora=None, device: str = "cuda",
        reserve: Optional[int] = None, model_args: Optional[Dict[str, Any]] = None,
        optimizer: str = "adam", foreach: Optional[bool] = None, fused: bool = False,
        dtype: str = "float32", autocast: Optional[str] = None,
        checkpoint: Optional[str] = None, grad_accum: int = 1, grad_scaler: bool = False,
        set_to_none: bool = True, gpus: Union[int, str, None] = None,
        parallel: Optional[str] = None, shard: Optional[str] = None,
        mixed_precision=None, offload: bool = False, formula: bool = False) -> list:
    """Will one training step of ``model`` fit in ``budget`` bytes, for each
    trainable set, and what is the largest batch that does? A list of
    :class:`~complexity.cost.fit.verdict.FitResult`, one per set — ``modes``
    (``full``, ``last``), each of ``trainable`` (a glob, or globs), then each of
    ``lora`` (``"r=8,alpha=16,targets=GLOB"`` strings or LoRA objects) — whose
    ``to_dict()`` is the object ``python -m complexity fit --format json`` prints.

    ``model``: a spec string as the command takes, with ``model_args``. ``batch``
    (default 32) and ``size``: ``H``, ``(H, W)`` (default 224×224) or ``"auto"``
    (the largest square input that fits) of an image batch; or ``input_shape``,
    the whole input of any rank, batch first, instead of both (``(8, 512)`` token
    ids — a model whose first layer is an embedding, or a Hugging Face model taking
    ``input_ids``, gets int64 ids below its vocabulary — ``(4, 16000)`` audio,
    ``(2, 3, 16, 112, 112)`` video): the max batch is over its first size.
    ``device``: ``"cuda"`` (the caching allocator's predicted reserved bytes plus
    ``reserve``, default 512 MiB, must fit) or ``"cpu"`` (the exact peak must). The
    step's options as :func:`step_cost`'s (``foreach`` None: PyTorch's default on
    ``device``). ``ValueError`` (an :class:`~complexity.errors.OptionError` naming
    the parameter) before any tracing for arguments that cannot be used.

    ``gpus`` (a number, or ``"auto"``: the fewest that fit), ``parallel``
    (``"ddp"``, ``"fsdp"`` — the default —, ``"fsdp-no-reshard"``) and ``shard``
    (the FSDP units' glob): the answer per rank of a data-parallel step, with a
    per-rank batch — :func:`complexity.api.ranks.fit_ranks`' dicts instead, which
    also take FSDP2's ``mixed_precision`` (``"param=bfloat16,reduce=float32"``) and
    ``offload``.

    ``formula``: with ``input_shape = (B, S)`` of a language model, each result's
    ``formula_bs`` holds the step as formulas in B and S, checked at held-out points
    (:mod:`complexity.cost.fit.lm_formula`; one more trace on symbolic sizes).

    >>> rows = fit("stack", 20 * 2**20, batch=8, size=32, device="cpu",
    ...            modes=["last"], trainable=["0.*"])
    >>> [(r.mode, r.fits, r.max_batch > 8) for r in rows]
    [('last', True, True), ('0.*', True, True)]
    >>> rows[0].to_dict()["budget_bytes"], rows[0].step, rows[0].input
    (20971520, 'adam, float32', [8, 16, 32, 32])
    """
    from complexity.cost.fit.verdict import verdicts
    from complexity.cost.step.lora import lora_modes
    from complexity.cost.step.options import step_options

    options = step_options(optimizer, foreach=foreach, fused=fused, dtype=dtype,
                           autocast=autocast, checkpoint=checkpoint, set_to_none=set_to_none,
                           grad_accum=grad_accum, grad_scaler=grad_scaler, device=device)
    if gpus is not None or parallel is not None or shard is not None or (
            mixed_precision is not None or offload):
        from complexity.api.ranks import fit_ranks
        from complexity.errors import NAMED, OptionError

        if formula:
            raise OptionError("{formula} is not modelled per rank: drop it or {gpus}",
                              formula=NAMED, gpus=NAMED)

        return fit_ranks(model, budget, gpus=1 if gpus is None else gpus,
                         parallel=parallel or "fsdp", shard=shard, batch=batch, size=size,
                         input_shape=input_shape, modes=modes, trainable=trainable,
                         device=device, model_args=model_args, options=options,
                         mixed_precision=mixed_precision, offload=offload)
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    return verdicts(model, budget, modes=modes, trainable=trainable, lora=lora_modes(lora),
                    batch=batch, size=size if size in ("auto", None) else tuple(size),
                    device=device, reserve=reserve, options=options, model_args=model_args,
                    input_shape=input_shape, formula=formula)
