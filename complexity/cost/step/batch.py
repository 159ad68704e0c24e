"""The batch of one training step and the loss taken on it: the input
(:func:`make_input`: images, audio, video, token ids — :func:`token_vocabulary`
says which a model takes), the logits a model's output holds
(:func:`logits`), the target reshaped to them (:func:`loss_target`), and the
forward and loss as a training loop writes it (:func:`forward_loss`): the model's
own loss where it has one (a Hugging Face model given ``labels=``), cross-entropy on
its logits otherwise (:func:`loss_of` says which, a :class:`Loss`).
Prediction (the tracer) and measurement run the same step through these.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def logits(output):
    """The tensor the loss is taken on, classes on dim 1: the output,
    ``output["out"]`` (torchvision segmentation models return a dict), or a tuple's
    ``.logits`` or first element (GoogLeNet and Inception v3 add auxiliary logits
    in train mode).

    A Hugging Face ``ModelOutput`` (a dict with a ``.logits`` attribute): its
    ``.logits``; token logits ``(N, L, V)`` (classes last, as Hugging Face's own
    losses take them) are flattened to ``(N·L, V)`` — a view of the contiguous
    logits — so the loss is one cross-entropy over ``N·L`` tokens against a target
    of ``N·L`` class indices (an ``(N, L)`` target is reshaped to that).

    >>> from collections import OrderedDict
    >>> class Out(OrderedDict):  # a ModelOutput stand-in
    ...     logits = property(lambda self: self["logits"])
    >>> logits(Out(logits=torch.zeros(2, 5, 7))).shape
    torch.Size([10, 7])
    >>> logits({"out": torch.zeros(2, 3, 4, 4)}).shape
    torch.Size([2, 3, 4, 4])
    """
    if isinstance(output, dict) and hasattr(output, "logits"):  # transformers' ModelOutput
        out = output.logits
        return out.flatten(0, -2) if out.dim() > 2 else out
    if isinstance(output, dict):
        return output["out"]
    if isinstance(output, tuple):  # GoogLeNet/Inception in train mode: a namedtuple
        return output.logits if hasattr(output, "logits") else output[0]
    return output


#: The seed of the values :func:`make_input` draws (``seed`` 0 the input, 1 the
#: labels): the same batch in every real step, and the one whose values the trace
#: reads where a call depends on them (:mod:`complexity.cost.predict.shadow`).
SEED = 0


def make_input(input_shape: Sequence[int], input_dtype=None, input_high=None,
               device="cpu", seed: int = SEED) -> torch.Tensor:
    """The batch fed to the model: ``torch.randn(*input_shape)`` by default (float32);
    for an integer ``input_dtype`` (token ids), ``torch.randint(0, input_high, shape)``;
    on the meta device, an empty tensor of that shape and dtype. The values are
    drawn on the CPU from a generator seeded with ``seed``, then moved to
    ``device``: every call gives the same batch, and a model that reads its ids
    (for padding) takes the same path in the prediction and the measurement.

    >>> make_input((2, 3), torch.long, 10).dtype, make_input((2, 3)).dtype
    (torch.int64, torch.float32)
    >>> make_input((2, 3), torch.long, 10, device="meta").device.type
    'meta'
    >>> bool((make_input((4,), torch.long, 99) == make_input((4,), torch.long, 99)).all())
    True
    """
    dtype = input_dtype if input_dtype is not None else torch.get_default_dtype()
    shape = tuple(input_shape)
    integer = not (dtype.is_floating_point or dtype.is_complex)
    if integer and dtype is not torch.bool and input_high is None:
        raise ValueError(f"input_dtype={dtype}: give input_high (e.g. the vocabulary size), "
                         "the exclusive upper bound of the input's values")
    if torch.device(device).type == "meta":
        return torch.empty(shape, dtype=dtype, device=device)
    gen = torch.Generator().manual_seed(seed)
    if dtype is torch.bool:
        x = torch.randint(0, 2, shape, generator=gen).bool()
    elif integer:
        x = torch.randint(0, int(input_high), shape, dtype=dtype, generator=gen)
    else:
        x = torch.randn(shape, dtype=dtype, generator=gen)
    return x.to(device)


class _FirstCall(Exception):
    """Raised by the pre-hook of :func:`first_leaf` to stop the forward."""


def first_leaf(model: nn.Module, input_shape: Sequence[int]) -> Optional[nn.Module]:
    """The first leaf module (one without children) that ``model``'s forward calls on
    an ``input_shape`` batch: the forward runs on an empty float tensor on the meta
    device (nothing allocated) and is stopped by a pre-hook as that module is
    entered, before it reads its input. None when no leaf module is reached (the
    forward fails before, or calls none).

    >>> first_leaf(nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2)), (2, 5))
    Embedding(10, 4)
    """
    seen = []

    def hook(module, args):
        seen.append(module)
        raise _FirstCall

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_pre_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            model(torch.empty(tuple(input_shape), device="meta"))
    except Exception:  # _FirstCall, or a forward that fails before any leaf: seen tells
        pass
    finally:
        for h in handles:
            h.remove()
    return seen[0] if seen else None


def token_vocabulary(model: nn.Module, input_shape: Sequence[int]) -> Optional[int]:
    """The vocabulary size when ``model`` takes token ids, else None (a float input:
    images, audio samples, video clips). The model says so: a Hugging Face model's
    ``main_input_name`` is ``"input_ids"`` (its input embedding's ``num_embeddings``,
    or ``config.vocab_size``; another name, such as ``pixel_values`` or
    ``input_values``, is a float input), or the first module its forward calls on an
    ``input_shape`` batch (:func:`first_leaf`) is an ``nn.Embedding`` (its
    ``num_embeddings``). Token ids are then drawn below it (:func:`make_input`).

    >>> token_vocabulary(nn.Sequential(nn.Embedding(100, 8), nn.Linear(8, 3)), (2, 16))
    100
    >>> token_vocabulary(nn.Sequential(nn.Conv1d(1, 4, 3), nn.Flatten()), (2, 1, 800)) is None
    True
    """
    name = getattr(model, "main_input_name", None)
    if isinstance(name, str) and name != "input_ids":
        return None
    if name == "input_ids":
        get = getattr(model, "get_input_embeddings", None)
        try:
            emb = get() if callable(get) else None
        except Exception:  # a model without one raises NotImplementedError
            emb = None
        if isinstance(emb, (nn.Embedding, nn.EmbeddingBag)):
            return emb.num_embeddings
        vocab = getattr(getattr(model, "config", None), "vocab_size", None)
        if isinstance(vocab, int) and vocab > 0:
            return vocab
    first = first_leaf(model, input_shape)
    if isinstance(first, (nn.Embedding, nn.EmbeddingBag)):
        return first.num_embeddings
    return None


def input_kind(model: nn.Module, input_shape: Sequence[int]) -> dict:
    """``{"input_dtype", "input_high"}`` for :func:`make_input` (and for predict and
    measure): ``torch.long`` ids below the vocabulary when ``model`` takes token ids
    (:func:`token_vocabulary`), both None (float32) otherwise.

    >>> input_kind(nn.Embedding(50, 4), (2, 7))
    {'input_dtype': torch.int64, 'input_high': 50}
    >>> input_kind(nn.Conv2d(3, 4, 3), (2, 3, 8, 8))
    {'input_dtype': None, 'input_high': None}
    """
    vocab = token_vocabulary(model, input_shape)
    return {"input_dtype": None if vocab is None else torch.long, "input_high": vocab}


def loss_target(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``target`` with the shape of ``out`` less its class dim: an ``(N, L)`` token
    target for logits flattened to ``(N·L, V)`` (:func:`logits`) is reshaped."""
    shape = (out.shape[0], *out.shape[2:])
    if tuple(target.shape) != shape and target.numel() == out.numel() // out.shape[1]:
        target = target.reshape(shape)
    return target


#: The Hugging Face tasks whose model computes its own loss from ``labels=`` of a
#: shape and range the step can draw: per task, the mapping of
#: ``transformers.models.auto.modeling_auto`` naming its model classes, whether the
#: labels are one per token (the input's shape) or one per example (``(N,)``), and
#: whether they index the vocabulary or the ``num_labels`` classes.
_TASKS = {
    "causal-lm": ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "token", "vocab"),
    "masked-lm": ("MODEL_FOR_MASKED_LM_MAPPING_NAMES", "token", "vocab"),
    "token-classification": ("MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES", "token", "labels"),
    "sequence-classification": ("MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES", "example",
                                "labels"),
    "image-classification": ("MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES", "example", "labels"),
    "audio-classification": ("MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES", "example", "labels"),
    "video-classification": ("MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING_NAMES", "example", "labels"),
}


@dataclass(frozen=True)
class Loss:
    """The step's loss: the model's own (``own``: ``model(x, labels=labels).loss``,
    labels of ``task``'s shape drawn below ``high``), or cross-entropy on the
    model's logits against random class indices (the default).

    >>> Loss().label(), Loss(own=True, task="causal-lm", high=100).label()
    ('cross-entropy', "the model's own (labels=)")
    """

    own: bool = False
    task: Optional[str] = None
    high: Optional[int] = None

    def label(self) -> str:
        """How the output names it."""
        return "the model's own (labels=)" if self.own else "cross-entropy"

    def labels_shape(self, input_shape: Sequence[int]) -> tuple:
        """The labels' shape for an ``input_shape`` batch: the input's (one label per
        token) or ``(N,)`` (one per example).

        >>> Loss(True, "causal-lm", 10).labels_shape((2, 16)), Loss(True, "sequence-classification", 3).labels_shape((2, 16))
        ((2, 16), (2,))
        """
        per = _TASKS[self.task][1]
        return tuple(input_shape) if per == "token" else (int(input_shape[0]),)

    def labels(self, x: torch.Tensor) -> torch.Tensor:
        """Random labels for batch ``x``, on its device: int64 below :attr:`high`
        (an empty tensor on the meta device)."""
        return make_input(self.labels_shape(x.shape), torch.long, self.high, device=x.device,
                          seed=SEED + 1)


@functools.lru_cache(maxsize=None)
def _task_classes() -> dict:
    """``{class name: task}`` of :data:`_TASKS`, read from transformers' auto
    mappings (empty without transformers)."""
    try:
        from transformers.models.auto import modeling_auto
    except Exception:  # no transformers: no model of its
        return {}
    found = {}
    for task, (mapping, _, _) in _TASKS.items():
        for names in getattr(modeling_auto, mapping, {}).values():
            for name in (names if isinstance(names, (tuple, list)) else (names,)):
                found.setdefault(name, task)
    return found


def _from_transformers(cls) -> bool:
    """Whether a class of ``cls``'s MRO is defined in transformers (which a
    ``PreTrainedModel`` subclass's always is: ``PreTrainedModel`` itself).

    >>> _from_transformers(nn.Linear)
    False
    """
    return any((c.__module__ or "").partition(".")[0] == "transformers" for c in cls.__mro__)


def loss_of(model: nn.Module) -> Loss:
    """The loss a training step of ``model`` takes: the model's own when it is a
    Hugging Face ``PreTrainedModel`` whose ``forward`` accepts ``labels`` and whose
    class is one of a task the labels can be drawn for (:data:`_TASKS`: causal and
    masked LM, token classification — labels of the input's shape —, sequence,
    image, audio and video classification — one label per example —, labels below
    the vocabulary or ``num_labels``); cross-entropy on the logits otherwise (a
    regression or multi-label head too: their labels are floats).

    >>> loss_of(nn.Linear(3, 2))
    Loss(own=False, task=None, high=None)
    """
    if not _from_transformers(type(model)):  # no need to import transformers (seconds)
        return Loss()
    try:
        from transformers import PreTrainedModel
    except Exception:
        return Loss()
    if not isinstance(model, PreTrainedModel):
        return Loss()
    try:
        takes_labels = "labels" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        takes_labels = False
    task = _task_classes().get(type(model).__name__)
    if not takes_labels or task is None:
        return Loss()
    config = model.config
    if _TASKS[task][2] == "vocab":
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        high = getattr(text, "vocab_size", None)
    else:
        high = getattr(config, "num_labels", None)
        problem = getattr(config, "problem_type", None)
        if problem not in (None, "single_label_classification") or high == 1:
            return Loss()  # regression, multi-label: float labels
    if not isinstance(high, int) or high < 1:
        return Loss()
    return Loss(own=True, task=task, high=high)


def forward_loss(model: nn.Module, x, target, loss: Optional[Loss] = None) -> tuple:
    """``(loss, target)``: the step's loss (``loss``, by default :func:`loss_of`
    ``model``) on batch ``x``. The model's own: ``model(x, labels=target).loss``,
    labels drawn at random (:meth:`Loss.labels`) when ``target`` is None; the
    model's ``config.problem_type``, which a classification head sets on its first
    call, is left as it was. Otherwise cross-entropy of ``model(x)``'s logits
    against ``target``, drawn at random (class indices of the output's shape) when
    None.

    >>> loss, target = forward_loss(nn.Conv2d(1, 3, 1), torch.randn(2, 1, 4, 4), None)
    >>> tuple(target.shape), loss.dim()
    ((2, 4, 4), 0)
    """
    loss = loss if loss is not None else loss_of(model)
    if loss.own:
        if target is None:
            target = loss.labels(x)
        return own_loss(model, x, target), target
    out = logits(model(x))
    if target is None:  # warm-up: learn the output's shape
        target = torch.randint(0, out.shape[1], (out.shape[0], *out.shape[2:]),
                               device=out.device)
    target = loss_target(out, target)
    return F.cross_entropy(out, target), target


def own_loss(model: nn.Module, x, labels) -> torch.Tensor:
    """``model(x, labels=labels).loss``, the model's output let go before this
    returns, its ``config.problem_type`` (set by a classification head's first
    call) left as it was."""
    config = getattr(model, "config", None)
    problem = getattr(config, "problem_type", None)
    try:
        return model(x, labels=labels).loss
    finally:
        if config is not None and getattr(config, "problem_type", None) != problem:
            config.problem_type = problem
