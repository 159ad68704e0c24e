"""``complexity.fit_ranks``: will one data-parallel training step fit on each of N
GPUs (DDP, FSDP2, FSDP2 without resharding), the largest per-rank batch that does,
and the fewest GPUs that make it fit — the ``fit`` command with ``--gpus``.

Every quantity is per rank, rank 0's (it holds the most); the answers are
:class:`~complexity.cost.parallel.answers.RankFit` rows, one per trainable set,
each with the model's name, mode, device and whether the figures are exact added
to ``to_dict()``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union


def fit_ranks(model: str, budget: int, *, gpus: Union[int, str] = 1,
              parallel: str = "fsdp", shard: Optional[str] = None,
              batch: Optional[int] = None, size: Union[int, Tuple[int, int], None] = None,
              input_shape: Union[Sequence[int], str, None] = None,
              modes: Sequence[str] = ("full", "last"),
              trainable: Sequence[Union[str, Sequence[str]]] = (), device: str = "cuda",
              model_args: Optional[Dict[str, Any]] = None, options=None,
              mixed_precision=None, offload: bool = False) -> List[Dict]:
    """One dict per trainable set (``modes``, then each of ``trainable``): the
    per-rank answer of :func:`~complexity.cost.parallel.answers.rank_fit` for
    ``model`` (a spec, as :func:`complexity.fit` takes it) with a per-rank
    ``batch`` (32) of ``size`` (224×224) images, or ``input_shape`` per rank, on
    ``gpus`` GPUs (``"auto"``: the fewest that fit) under ``parallel`` with FSDP
    units ``shard`` (a glob; None: each transformer block or ResNet stage). On
    ``device="cuda"`` the figures are the live tensors of the step (exact as
    replayed), with no caching allocator and no NCCL buffers: marked
    ``"estimate": true``. ``options``: a
    :class:`~complexity.cost.step.options.StepOptions`. FSDP2's policies:
    ``mixed_precision`` (``"param=bfloat16,reduce=float32"``, or a
    :class:`~complexity.cost.parallel.policy.Precision`) and ``offload`` (CPU
    offload: the rank's shards, gradients and optimizer state on the host; the
    peak is then the device's, ``host_bytes`` and ``host_peak_bytes`` the host's,
    and the row is an estimate: on the CPU the offload moves nothing, so the split
    is not measured).

    >>> (r,) = fit_ranks("stack", 2**30, gpus=2, shard="0", batch=4, size=16,
    ...                  modes=["full"], device="cpu")
    >>> r["gpus"], r["fits"], r["rank0"]["param_bytes"] * 2 == r["single_param_bytes"]
    (2, True, True)
    """
    from complexity.cost.fit.verdict import trainable_sets
    from complexity.cost.parallel.answers import rank_fit
    from complexity.cost.parallel.layout import units
    from complexity.cost.parallel.prediction import check_sharded_options
    from complexity.cost.step.batch import input_kind
    from complexity.cost.step.options import StepOptions
    from complexity.errors import OptionError

    options = options or StepOptions()
    auto = gpus == "auto"
    layout = layout_of(1 if auto else gpus, parallel, shard, mixed_precision, offload)
    if layout.parallel == "ddp" and shard is not None:
        raise OptionError("{shard} names FSDP units; {parallel} shards nothing",
                          shard=shard, parallel=parallel)
    if layout.parallel != "ddp":
        check_sharded_options(options)
    built, shape = _built(model, model_args, batch, size, input_shape)
    if layout.parallel != "ddp":
        units(built, shard)  # a glob that matches nothing: before any tracing
    kind = input_kind(built, shape)
    out = []
    for mode in trainable_sets(modes, trainable):
        from complexity.cost.step.trainable import set_trainable

        set_trainable(built, mode)
        r = rank_fit(built, shape, budget, layout, gpus_auto=auto, options=options,
                     backend="gloo" if device == "cpu" else "nccl", **kind)
        row = r.to_dict()
        row.update(model=model, mode=mode, device=device,
                   estimate=device == "cuda" or estimated(layout),
                   mixed_precision=layout.mixed and layout.mixed.text(),
                   offload=layout.offload,
                   single_param_bytes=sum(p.numel() * p.element_size()
                                          for p in built.parameters()))
        out.append(row)
    return out


def layout_of(gpus: int, parallel: str, shard: Optional[str], mixed_precision=None,
              offload: bool = False):
    """The :class:`~complexity.cost.parallel.prediction.Layout` asked for, its
    policies parsed and checked against this PyTorch (``OptionError`` naming
    ``mixed_precision`` or ``offload``)."""
    from complexity.cost.parallel.policy import Precision, check_available, parse_precision
    from complexity.cost.parallel.prediction import Layout

    mixed = mixed_precision
    if mixed is not None and not isinstance(mixed, Precision):
        mixed = parse_precision(mixed)
    layout = Layout(gpus, parallel, shard, mixed=mixed, offload=bool(offload))
    if mixed is not None or offload:
        check_available(mixed, bool(offload))
    return layout


def estimated(layout) -> bool:
    """Whether the layout's figures are an estimate: offloaded (the device/host
    split is not measured on the CPU) or with ``output_dtype`` (within 0.5% of a
    fake process group's, not exact)."""
    return layout.offload or (layout.mixed is not None and layout.mixed.output is not None)


def _built(name: str, model_args, batch, size, input_shape):
    """(the model on the meta device, the per-rank input shape)."""
    from complexity.cost.finetune import build_for_input
    from complexity.zoo import build_model, parse_input

    if input_shape is not None:
        shape = tuple(parse_input(input_shape) if isinstance(input_shape, str) else input_shape)
        built, _ = build_for_input(name, 4, 16, model_args, shape)
        return built, shape
    built, channels = build_model(name, model_args=model_args)
    h, w = (224, 224) if size is None else ((size, size) if isinstance(size, int) else size)
    return built, (32 if batch is None else batch, channels, h, w)


def step_cost_ranks(model: str, input_shape: Sequence[int], *, gpus: int, parallel: str = "fsdp",
                    shard: Optional[str] = None, mode: str = "full", measure: str = "fake",
                    model_args: Optional[Dict[str, Any]] = None, options=None,
                    layers: int = 4, width: int = 16, mixed_precision=None,
                    offload: bool = False) -> Dict:
    """One step of ``model`` (a spec) at a per-rank ``input_shape`` on ``gpus`` ranks
    under ``parallel``, trained in ``mode``: rank 0's figures ``predicted`` and
    ``measured`` — ``measure="fake"``: one rank on a fake process group with fake
    tensors (FSDP only: DDP's reducer needs real memory); ``"real"``: ``gpus``
    gloo processes on the CPU (small models); ``"none"``. ``mixed_precision``,
    ``offload``: FSDP2's policies, as :func:`fit_ranks` takes them. The
    ``finetune`` command with ``--gpus``.

    >>> r = step_cost_ranks("stack", (2, 16, 8, 8), gpus=2, shard="0", layers=2)
    >>> r["predicted"]["peak_bytes"] == r["measured"]["peak_bytes"]
    True
    """
    from complexity.cost.parallel.prediction import RankModel
    from complexity.cost.step.batch import input_kind
    from complexity.cost.step.trainable import set_trainable
    from complexity.zoo import build_model

    layout = layout_of(gpus, parallel, shard, mixed_precision, offload)
    built, _ = build_model(model, layers, width, model_args)
    set_trainable(built, mode)
    kind = input_kind(built, tuple(input_shape))
    traced = RankModel(built, tuple(input_shape), shard=shard, sharded=layout.sharded,
                       options=options, mixed=layout.mixed, **kind)
    real = measure == "real"
    keys = ("param_bytes", "grad_bytes", "optimizer_bytes", "bucket_bytes", "peak_bytes")
    predicted = traced.rank(layout, 0, "gloo" if real else "nccl")
    if layout.offload:
        keys += ("host_bytes", "host_peak_bytes")
    out = {"model": model, "mode": mode, "input_per_rank": list(input_shape), "gpus": gpus,
           "parallel": parallel, "units": [n for n, _ in traced.found],
           "mixed_precision": layout.mixed and layout.mixed.text(), "offload": layout.offload,
           "estimate": estimated(layout),
           "predicted": {k: predicted[k] for k in keys}, "measured": None,
           "measured_how": None, "parts": predicted["parts"]}
    measured = _measured(built, input_shape, layout, measure, options, kind)
    if measured is not None:
        out["measured"] = {k: measured.get(k) for k in keys}
        out["measured_how"] = "gloo processes" if real else "fake process group"
    return out


def _measured(built, shape, layout, measure: str, options, kind) -> Optional[Dict]:
    """Rank 0 of the step measured ``measure``'s way (None: not measured)."""
    if measure == "none" or (measure == "fake" and layout.parallel == "ddp"):
        return None
    if measure == "fake":
        from complexity.cost.parallel.fake_group import fake_rank

        return fake_rank(built, shape, layout.parallel, layout.world_size, shard=layout.shard,
                         options=options, mixed=layout.mixed, offload=layout.offload, **kind)
    import torch

    from complexity.cost.parallel.gloo_step import Job, measure_ranks

    real = built.to_empty(device="cpu")
    with torch.no_grad():
        for t in real.parameters():
            t.normal_(0, 0.01)
    job = Job(real, tuple(shape), layout.parallel, layout.shard, options, mixed=layout.mixed,
              offload=layout.offload, **kind)
    return measure_ranks([job], layout.world_size)[0][0]
