"""The networks of the course, as plain ``nn.Module``s (torch and torchvision only).

* :mod:`models.colourization`: the colourization CNN and UNet;
* :mod:`models.stack`: n similar conv blocks and a 1×1 head;
* :mod:`models.segmentation`: torchvision's DeepLabV3 with a foreground/background head.

:func:`build` makes any of them by name.

>>> type(build("unet", num_filters=8)).__name__
'UNet'
>>> len(build("stack", layers=3, width=4))
4
>>> sorted(NAMES)[:3]
['cnn', 'deeplabv3_mobilenet_v3_large', 'deeplabv3_resnet101']
"""
from __future__ import annotations

from models import colourization
from models.segmentation import ARCHS, deeplab
from models.stack import Stack

COLOURIZATION = tuple(colourization.MODELS)
STACK = "stack"
#: Every name :func:`build` takes.
NAMES = (*COLOURIZATION, STACK, *ARCHS)


def build(name: str, **kw):
    """The network called ``name``, its constructor's keyword arguments ``kw``:

    * ``cnn``, ``unet``: ``kernel``, ``num_filters``, ``num_colours``,
      ``num_in_channels`` (:func:`models.colourization.build`; defaults 3, 32, 24, 1);
    * ``stack``: ``layers``, ``width``, ``kernel``, ``classes`` (:class:`models.stack.Stack`);
    * a DeepLabV3 architecture: ``num_classes``, ``aux_loss``
      (:func:`models.segmentation.deeplab`; random weights, no download).

    ``ValueError`` for any other name.
    """
    if name in COLOURIZATION:
        return colourization.build(name, **kw)
    if name == STACK:
        return Stack(**kw)
    if name in ARCHS:
        return deeplab(name, **kw)
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(NAMES)}")
