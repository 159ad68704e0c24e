"""How a model is laid out over N ranks: which modules are FSDP units, and what
each rank holds of each parameter. Shared by the prediction and the measurement;
imports neither.

FSDP2 (``fully_shard``) shards every parameter of a unit on dim 0 as
``torch.chunk`` does: each rank gets ``ceil(d0 / N)`` rows, the last ranks fewer
(or none), and every rank stores its shard padded to ``ceil(d0 / N)`` rows
(``FSDPParam._init_sharded_param``: "0th always padded"), so that the all-gather
is of equal pieces. The padded storage is what a rank holds; the optimizer's state
and the gradient follow the unpadded local shard.

>>> rows(10, 4), [local_rows(10, 4, r) for r in range(4)]
(3, [3, 3, 3, 1])
>>> [local_rows(5, 4, r) for r in range(4)]            # torch.chunk: 2, 2, 1 and none
[2, 2, 1, 0]
"""
from __future__ import annotations

import fnmatch
import math
from typing import TYPE_CHECKING, List, Optional, Tuple

if TYPE_CHECKING:  # the CLI imports PARALLEL without torch (report --no-verify)
    from torch import nn

from complexity.errors import OptionError, literal

#: The data-parallel layouts: ``ddp`` (DistributedDataParallel, every rank holds
#: everything), ``fsdp`` (fully_shard, resharding after forward: ZeRO-3) and
#: ``fsdp-no-reshard`` (``reshard_after_forward=False``: ZeRO-2-like).
PARALLEL = ("ddp", "fsdp", "fsdp-no-reshard")


def rows(d0: int, world_size: int) -> int:
    """Rows of dim 0 each rank stores (its shard padded): ``ceil(d0 / N)``."""
    return math.ceil(d0 / world_size)


def local_rows(d0: int, world_size: int, rank: int) -> int:
    """Rows of dim 0 that are rank ``rank``'s own (``torch.chunk``'s pieces)."""
    size = rows(d0, world_size)
    return max(0, min(size, d0 - rank * size))


def shard_numel(shape, world_size: int, rank: int, padded: bool) -> int:
    """Elements of rank ``rank``'s shard of a tensor of ``shape`` (padded: as stored).

    >>> shard_numel((10, 3), 4, 3, padded=True), shard_numel((10, 3), 4, 3, padded=False)
    (9, 3)
    """
    inner = math.prod(shape[1:])
    d0 = shape[0]
    return inner * (rows(d0, world_size) if padded else local_rows(d0, world_size, rank))


def default_shard(model: nn.Module) -> str:
    """The modules made FSDP units by default, as people wrap them: each ResNet
    stage (``layer1`` …), else each block of the longest list of like blocks — a
    ``ModuleList`` or ``Sequential`` whose children are all of one class and hold
    parameters (``model.layers.*``, ``encoder.layers.*``, ``h.*``) —, else each
    child of the root.

    >>> from torchvision.models import resnet18, vit_b_16
    >>> default_shard(resnet18()), default_shard(vit_b_16())
    ('layer*', 'encoder.layers.*')
    """
    from torch import nn

    names = dict(model.named_modules())
    if all(f"layer{i}" in names for i in (1, 2, 3, 4)):
        return "layer*"

    def blocks(m) -> int:
        kids = list(m.children())
        if not isinstance(m, (nn.ModuleList, nn.Sequential)) or len(kids) < 2:
            return 0
        alike = len({type(k) for k in kids}) == 1
        return len(kids) if alike and all(next(k.parameters(), None) is not None
                                          for k in kids) else 0

    lists = [(blocks(m), -n.count("."), n) for n, m in names.items() if n and blocks(m)]
    return f"{max(lists)[2]}.*" if lists else "*"


def units(model: nn.Module, glob: Optional[str]) -> List[Tuple[str, nn.Module]]:
    """``[(name, module)]``: the modules matching ``glob`` (``fnmatch``; outermost
    only, the root never), in the order ``named_modules`` gives; each becomes an
    FSDP unit, then the root. ``glob=None``: :func:`default_shard`. No match:
    :class:`OptionError` naming ``shard``.

    >>> from torchvision.models import resnet18
    >>> [n for n, _ in units(resnet18(), None)]
    ['layer1', 'layer2', 'layer3', 'layer4']
    """
    glob = glob or default_shard(model)
    found: List[Tuple[str, nn.Module]] = []
    for name, mod in model.named_modules():
        if not name or not fnmatch.fnmatchcase(name, glob):
            continue
        if any(name.startswith(outer + ".") for outer, _ in found):
            continue
        if next(mod.parameters(), None) is None:
            continue  # a unit without parameters shards nothing
        found.append((name, mod))
    if not found:
        names = [n for n, _ in model.named_modules() if n]
        few = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
        raise OptionError("{shard} matches no module with parameters (modules: "
                          + literal(few or "none") + ")", shard=glob)
    return found


def unit_of_params(model: nn.Module, found: List[Tuple[str, nn.Module]]) -> List[int]:
    """For each parameter of ``model`` (``named_parameters`` order), the index of
    the unit that owns it in ``found``, or ``len(found)`` for the root."""
    owner = {}
    for k, (_, mod) in enumerate(found):
        for p in mod.parameters():
            owner.setdefault(id(p), k)
    return [owner.get(id(p), len(found)) for p in model.parameters()]
