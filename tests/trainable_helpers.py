"""A model trained as ``full``/``last`` for one block, its ``requires_grad`` flags
put back after (the model fixtures are shared by module)."""
from contextlib import contextmanager

from complexity.cost.step.trainable import set_trainable


@contextmanager
def trained_as(model, mode: str):
    flags = [p.requires_grad for p in model.parameters()]
    set_trainable(model, mode)
    try:
        yield model
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
