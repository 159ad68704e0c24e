"""``complexity.profile``: per-layer params, output units and MACs of any model
(the ``profile`` command), as a :class:`Profile`."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Optional, Union

from complexity.api.models import resolve_model


@dataclass
class ProfileLayer:
    """One row of a :class:`Profile`: a module and the counts of its whole subtree."""

    name: str
    kind: str
    depth: int
    shape: Any
    params: int
    trainable_params: int
    outputs: int
    macs: Union[int, float]
    calls: int

    @property
    def frozen_params(self) -> int:
        return self.params - self.trainable_params

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class Profile:
    """Exact per-layer and total params, output units and MACs of a model on one input.

    ``macs`` = ``FlopCounterMode`` FLOPs / 2; ``ops``: MACs per aten op;
    ``uncovered_kinds``: leaf classes a ``lecture``/``course`` count leaves at 0.

    >>> from torch import nn
    >>> p = profile(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), (1, 1, 5, 5))
    >>> p.totals()                     # 2·1·9 + 2 params; 2·3·3 conv + 18 ReLU units
    {'params': 20, 'outputs': 36, 'macs': 162}
    >>> print(p.table())
    layer    kind    output shape      params    frozen    outputs    MACs
    -------  ------  --------------  --------  --------  ---------  ------
    0        Conv2d  1×2×3×3               20         0         18     162
    1        ReLU    1×2×3×3                0         0         18       0
    total                                  20         0         36     162
    """

    model: str
    input: List[int]
    convention: str
    device: str
    params: int
    trainable_params: int
    outputs: int
    macs: Union[int, float]
    ops: Dict[str, Union[int, float]]
    uncovered_kinds: List[str]
    layers: List[ProfileLayer] = field(default_factory=list)

    @property
    def frozen_params(self) -> int:
        return self.params - self.trainable_params

    def totals(self) -> Dict[str, Union[int, float]]:
        """``{"params", "outputs", "macs"}``: what :func:`derive` fits formulas to."""
        from complexity.counting.profile import totals

        return totals(vars(self))

    def _shown(self, depth: Optional[int]) -> List[ProfileLayer]:
        return [r for r in self.layers if depth is None or r.depth <= depth]

    def to_dict(self, depth: Optional[int] = None) -> Dict[str, Any]:
        """The JSON of ``python -m complexity profile --format json`` (rows nested at
        most ``depth`` deep; all by default)."""
        return {"model": self.model, "input": list(self.input), "convention": self.convention,
                "device": self.device, "params": self.params,
                "trainable_params": self.trainable_params, "outputs": self.outputs,
                "macs": self.macs, "ops": dict(self.ops),
                "uncovered_kinds": list(self.uncovered_kinds),
                "layers": [r.to_dict() for r in self._shown(depth)]}

    def table(self, depth: Optional[int] = None, tablefmt: str = "simple") -> str:
        """Rows nested at most ``depth`` deep (all by default), indented by depth,
        and a total row; ``tablefmt`` is tabulate's (``"github"`` for markdown)."""
        from complexity.output.profile import profile_table

        return profile_table(self.to_dict(), depth, tablefmt)

    def heading(self) -> str:
        """What the numbers are: model, input, convention, device (and a note on
        leaf classes the convention leaves at 0)."""
        from complexity.output.profile import profile_heading

        return profile_heading(self.to_dict(depth=0))

    def render(self, depth: Optional[int] = None, tablefmt: str = "simple") -> str:
        """Heading and table: what ``python -m complexity profile`` prints."""
        return self.heading() + "\n" + self.table(depth, tablefmt)

    def __str__(self) -> str:
        return self.render()


def profile(model, input_shape=None, convention: str = "torch", device: str = "meta", *,
            model_args: Optional[Dict[str, Any]] = None) -> Profile:
    """Per-layer params, output units and MACs of ``model`` on an input of ``input_shape``.

    ``model``: an ``nn.Module`` (left untouched: on the meta device it runs on
    stand-ins of its weights) or a spec string — ``"cnn"``, ``"unet"``,
    ``"torchvision:NAME"``, ``"package.module:factory"`` — built on ``device`` with
    ``model_args``; a spec's default input is ``(1, NIC, 32, 32)`` for cnn/unet,
    ``(1, 3, 224, 224)`` otherwise. ``convention``: ``"torch"`` (every parameter,
    every leaf module's output units), ``"course"`` or ``"lecture"``; MACs are always
    ``FlopCounterMode``'s / 2. ``device``: ``"meta"`` (shapes only, nothing
    allocated) or ``"cpu"`` (real zero tensors, for a forward that needs values).
    Raises ``ValueError`` (:class:`complexity.zoo.ModelSpecError`) for a bad spec or
    input, :class:`complexity.counting.profile.ProfileError` when the forward fails.

    >>> from models.colourization import UNet
    >>> p = profile("unet", model_args={"num_filters": 8})
    >>> p.input, p.params == sum(t.numel() for t in UNet(3, 8, 24, 1).parameters())
    ([1, 1, 32, 32], True)
    >>> [(r.name, r.kind) for r in p.layers][:2]
    [('downconv1', 'Sequential'), ('downconv1.0', 'Conv2d')]
    """
    from complexity.counting.profile import DEVICES, ProfileError, profile as _profile

    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    spec, name, shape, module = resolve_model(model, input_shape, model_args, device)
    try:  # a spec's input dtype: hf: text models take torch.long token ids
        p = _profile(module, shape, convention, device, model_name=name,
                     input_dtype=getattr(spec, "input_dtype", None))
    except ProfileError as e:
        raise ProfileError(f"{name}: {e}") from None
    keys = [f.name for f in fields(ProfileLayer)]
    layers = [ProfileLayer(**{k: r[k] for k in keys}) for r in p["layers"]]
    return Profile(**{**{f.name: p[f.name] for f in fields(Profile)}, "layers": layers})
