"""The public Python API, named like the commands: :func:`profile`, :func:`derive`,
:func:`step_cost` (``finetune``), :func:`fit`. Each returns a typed result —
:class:`Profile`, :class:`Derivation`, :class:`StepCost`, a list of
:class:`~complexity.cost.fit.verdict.FitResult` — with ``to_dict()`` (JSON-ready, exact
integers; for ``profile`` and ``derive`` the objects ``--format json`` prints) and a
table a person can read (``print(result)``).

They wire the library as the commands do, with the same defaults, so that a
command can be a thin layer over this module: a model is an ``nn.Module``, or a
spec string (``"cnn"``, ``"unet"``, ``"torchvision:NAME"``,
``"package.module:factory"``) built on the chosen device, or (``derive``) a
factory, a callable returning a module.

One module per command: :mod:`~complexity.api.profile`,
:mod:`~complexity.api.derive`, :mod:`~complexity.api.step` (``step_cost``),
:mod:`~complexity.api.fit`, :mod:`~complexity.api.ranks` (``fit_ranks``: ``fit``
with ``--gpus``, per rank of a data-parallel step); and :mod:`~complexity.api.models` (a model as the API
takes it: a module or a spec string, and the input a spec gets by default).

Nothing heavy is imported here at module level: torch, sympy and tabulate are
imported inside the functions, so ``import complexity`` stays fast.

>>> import complexity
>>> from models.stack import Stack
>>> p = complexity.profile(Stack(2, 4), (1, 4, 8, 8))
>>> p.params == sum(t.numel() for t in Stack(2, 4).parameters())
True
"""
from __future__ import annotations

from complexity.api.derive import Derivation, derive
from complexity.api.fit import fit
from complexity.api.models import DEFAULT_INPUT, DEFAULT_VIDEO_INPUT, resolve_model
from complexity.api.profile import Profile, ProfileLayer, profile
from complexity.api.ranks import fit_ranks
from complexity.api.step import StepCost, step_cost

__all__ = ["profile", "derive", "step_cost", "fit", "fit_ranks", "Profile", "ProfileLayer", "Derivation",
           "StepCost", "resolve_model", "DEFAULT_INPUT", "DEFAULT_VIDEO_INPUT"]
