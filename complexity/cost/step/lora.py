"""Low-rank adapters (LoRA) as people add them: the ``peft`` package's
``get_peft_model`` around a model, the base frozen and only the adapters trainable.

A LoRA layer adds ``B·A·x·(alpha / r)`` to a frozen ``Linear`` or ``Conv2d``:
``A`` of ``r × in_features`` (a ``k×k`` convolution of ``in → r`` channels),
``B`` of ``out_features × r`` (a 1×1 convolution), Hu et al., *LoRA: Low-Rank
Adaptation of Large Language Models* (2021), eq. (3). The wrapped model is an
ordinary ``nn.Module``: :func:`complexity.cost.predict.prediction.predict` and
:func:`complexity.cost.measure.cpu_step.measure` take it like any other, so the adapters'
memory and FLOPs — and the frozen forward and the activations the adapters still
need, which PEFT users often forget — are predicted and measured the same way.
``peft`` is an optional extra (``pip install -e ".[zoo]"``).

>>> spec = parse_lora("r=4,alpha=8,targets=layer4.*.conv*")
>>> spec.r, spec.alpha, spec.targets
(4, 8.0, 'layer4.*.conv*')
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from complexity.errors import NAMED, OptionError, literal

__all__ = ["LoRA", "parse_lora", "apply_lora", "target_modules", "target_matches", "unwrapped_name", "lora_of",
           "lora_modes", "trainable_model"]

#: where peft's ``get_peft_model`` puts the wrapped model: globs and reports name
#: the model's own modules, without this prefix
PEFT_PREFIX = "base_model.model."


def unwrapped_name(name: str) -> str:
    """A module's or parameter's name in the model a LoRA wrapper holds.

    >>> unwrapped_name("base_model.model.layer1"), unwrapped_name("layer1")
    ('layer1', 'layer1')
    """
    return name[len(PEFT_PREFIX):] if name.startswith(PEFT_PREFIX) else name


@dataclass(frozen=True)
class LoRA:
    """Rank ``r``, scale ``alpha`` (the update is scaled by alpha / r), and a glob
    over module names (``fnmatch``: ``*.query``, ``layer4.*.conv*``); ``dropout``
    on the adapter's input (0 by default: peft then uses an ``Identity``)."""

    r: int = 8
    alpha: float = 16.0
    targets: str = "*"
    dropout: float = 0.0

    def label(self) -> str:
        return f"lora r={self.r} alpha={self.alpha:g} targets={self.targets}"

    def text(self) -> str:
        """The ``r=…,alpha=…,targets=…`` form :func:`parse_lora` reads back.

        >>> parse_lora(LoRA(r=4, targets="*.query", dropout=0.1).text())
        LoRA(r=4, alpha=16.0, targets='*.query', dropout=0.1)
        """
        extra = f",dropout={self.dropout:g}" if self.dropout else ""
        return f"r={self.r},alpha={self.alpha:g},targets={self.targets}{extra}"


def parse_lora(text: str) -> LoRA:
    """``r=8,alpha=16,targets=GLOB[,dropout=P]`` → :class:`LoRA`; ``ValueError``
    (one line) for an unknown key, a bad value or no ``targets``.

    >>> parse_lora("targets=*.query,r=2")
    LoRA(r=2, alpha=16.0, targets='*.query', dropout=0.0)
    >>> parse_lora("r=16,targets=q_proj,k_proj,v_proj,o_proj").targets
    'q_proj,k_proj,v_proj,o_proj'
    >>> parse_lora("r=0,targets=fc")
    Traceback (most recent call last):
    ...
    complexity.errors.OptionError: lora r=0: the rank must be an integer >= 1
    """
    fields, last = {}, None
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep and last == "targets":  # targets=q_proj,k_proj,…: a list of names
            fields["targets"] += "," + part
            continue
        last = key
        if not sep or key not in ("r", "alpha", "targets", "dropout"):
            raise OptionError("{lora}: expected r=INT, alpha=NUM, targets=GLOB, "
                              "dropout=P (comma-separated)", lora=part)
        if key in fields:
            raise OptionError("{lora} gives " + literal(key) + " twice", lora=NAMED)
        fields[key] = value.strip()
    if not fields.get("targets"):
        raise OptionError("{lora} needs targets=GLOB (module names, e.g. targets=*.query)",
                          lora=NAMED)
    try:
        r = int(fields.get("r", 8))
    except ValueError:
        r = 0
    if r < 1:
        raise OptionError("{lora} r=" + literal(str(fields.get("r")))
                          + ": the rank must be an integer >= 1", lora=NAMED)
    try:
        alpha = float(fields.get("alpha", 16))
        dropout = float(fields.get("dropout", 0))
    except ValueError as e:
        raise OptionError("{lora}: " + literal(str(e)), lora=NAMED) from None
    if not 0 <= dropout < 1:
        raise OptionError("{lora} dropout=" + literal(f"{dropout:g}") + ": must be in [0, 1)",
                          lora=NAMED)
    return LoRA(r=r, alpha=alpha, targets=fields["targets"], dropout=dropout)


def target_matches(name: str, targets: str) -> bool:
    """Whether module ``name`` is one of ``targets``: globs or plain names separated
    by commas; a glob matches the whole name (``fnmatch``), a plain name (no ``*``,
    ``?`` or ``[``) the last part of it, as peft matches a list of names
    (``q_proj`` is every ``….self_attn.q_proj``).

    >>> [target_matches("model.layers.0.self_attn.q_proj", t) for t in ("q_proj,v_proj",
    ...  "*.q_proj", "proj", "layers.*")]
    [True, True, False, False]
    """
    for entry in (t.strip() for t in targets.split(",")):
        if any(c in entry for c in "*?["):
            if fnmatch.fnmatchcase(name, entry):
                return True
        elif name == entry or name.rsplit(".", 1)[-1] == entry:
            return True
    return False


def target_modules(model, lora: LoRA):
    """Names of the ``Linear`` and ``Conv2d`` modules of ``model`` the glob matches
    (the layers peft can adapt); ``ValueError`` naming the glob if there is none.

    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> target_modules(net, LoRA(targets="*"))
    ['0', '2']
    """
    from torch import nn

    names = [n for n, m in model.named_modules()
             if n and isinstance(m, (nn.Linear, nn.Conv2d)) and target_matches(n, lora.targets)]
    if not names:
        adaptable = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        example = ", ".join(adaptable[:3]) + (" …" if len(adaptable) > 3 else "")
        raise OptionError("{lora} targets=" + literal(repr(lora.targets))
                          + " matches no Linear or Conv2d module (e.g. "
                          + literal(example or "none in this model") + ")", lora=NAMED)
    return names


def apply_lora(model, lora: LoRA):
    """``model`` wrapped by ``peft.get_peft_model`` with adapters on
    :func:`target_modules`: every base parameter frozen, the adapters trainable.
    The adapters are made on the base layers' device (meta for a meta model).
    ``ImportError`` (one line) without peft."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise ImportError("LoRA adapters need the peft package: pip install peft "
                          "(or pip install -e \".[zoo]\")") from None
    import re

    names = target_modules(model, lora)
    # A string is matched by peft with re.fullmatch against each module's full
    # name; a list would also match any name that merely ends with ".<entry>".
    pattern = "|".join(re.escape(n) for n in names)
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=f"(?:{pattern})")
    return get_peft_model(model, config)


def lora_modes(lora) -> list:
    """The trainable-set modes (``"lora:r=…,targets=…"``) of LoRA adapters given as
    ``r=8,alpha=16,targets=GLOB`` strings or :class:`LoRA` objects (one, a list, or
    None for none), each checked; :class:`~complexity.errors.OptionError` naming
    ``lora`` for a bad one, the same adapters twice, or no peft to add them with.

    >>> lora_modes("r=4,targets=*.query"), lora_modes(None)
    (['lora:r=4,targets=*.query'], [])
    """
    import importlib.util

    given = [] if lora is None else [lora] if isinstance(lora, (str, LoRA)) else list(lora)
    texts = [g.text() if isinstance(g, LoRA) else g for g in given]
    for text in texts:
        parse_lora(text)
    unique = list(dict.fromkeys(texts))
    if len(unique) != len(texts):
        raise OptionError("{lora}: the same adapters are given twice", lora=NAMED)
    if unique and importlib.util.find_spec("peft") is None:
        raise OptionError("{lora} needs the peft package: pip install peft "
                          "(or pip install -e \".[zoo]\")", lora=NAMED)
    return [f"lora:{text}" for text in unique]


def lora_of(mode: str):
    """The :class:`LoRA` a mode names (``"lora:r=8,alpha=16,targets=GLOB"``), or None
    for ``full``, ``last`` and parameter globs.

    >>> lora_of("lora:r=4,targets=*.query").r, lora_of("last")
    (4, None)
    """
    if not mode.startswith("lora:"):
        return None
    return parse_lora(mode[len("lora:"):])


def trainable_model(model, mode: str, rebuild):
    """``(the model a mode trains, its trainable parameter count)``: ``model`` with
    :func:`~complexity.cost.step.trainable.set_trainable`, or for a LoRA mode a fresh
    ``rebuild()`` wrapped by peft (the base frozen, the adapters trainable)."""
    lora = lora_of(mode)
    if lora is None:
        from complexity.cost.step.trainable import set_trainable

        return model, set_trainable(model, mode)
    wrapped = apply_lora(rebuild(), lora)
    return wrapped, sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
