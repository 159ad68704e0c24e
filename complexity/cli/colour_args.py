"""Options shared by the colourization commands (``train``, ``sweep-batch``,
``invariance``): the data, the model and training settings, and turning them into
data and a :class:`~complexity.experiments.colourization.train.TrainConfig`.

torch is imported inside the functions only, so ``--help`` stays fast.
"""
from __future__ import annotations

import argparse

from complexity.cli.common import (UsageError, add_threads_argument, odd_kernel, output_folder,
    positive_float, positive_int)
from complexity.output.tables import FORMATS


def category(text: str) -> int:
    """A CIFAR-10 category, 0-9.

    >>> category("7")
    7
    """
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 9:
        raise argparse.ArgumentTypeError(f"{text!r} is not a CIFAR-10 category (need 0-9)")
    return value


DEFAULT_CATEGORY = 7  # horse
DEFAULT_NC = 24


def add_data_arguments(p, nc_default=DEFAULT_NC) -> None:
    """The data options; ``nc_default=None`` lets a command tell an explicit ``--nc``
    from the default (it fills :data:`DEFAULT_NC` itself)."""
    p.add_argument("--data", default=None, metavar="PATH",
                   help="cifar-10-batches-bin folder or .bin file, or a folder of images; "
                   "default: the offline photographs (see README)")
    p.add_argument("--category", type=category, default=None,
                   help=f"CIFAR-10 data only: category 0-9 ({DEFAULT_CATEGORY} = horse)")
    p.add_argument("--max-images", type=positive_int, default=None, metavar="N",
                   help="use at most N training and N validation images (quick runs)")
    p.add_argument("--nc", type=positive_int, default=nc_default,
                   help=f"NC, colour classes, >= 2 ({DEFAULT_NC})")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="where k-means colour centres are cached (default ~/.cache/complexity)")


def add_model_arguments(p, epochs: int = 25, batch_size: bool = True) -> None:
    """The model and training options; ``batch_size=False`` for a command that sets
    the batch size itself (``sweep-batch``), so that ``--batch-size`` is refused."""
    p.add_argument("--epochs", type=positive_int, default=epochs, help=f"epochs in all ({epochs})")
    if batch_size:
        p.add_argument("--batch-size", type=positive_int, default=100, help="minibatch size (100)")
    p.add_argument("--lr", type=positive_float, default=0.001, help="Adam learning rate (0.001)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and shuffling (0)")
    p.add_argument("--nf", type=positive_int, default=32, help="NF, filters of the first conv (32)")
    p.add_argument("--kernel", type=odd_kernel, default=3, help="k, odd kernel size (3)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_threads_argument(p)
    p.add_argument("--format", choices=FORMATS, default="table")


def check_cache(args) -> None:
    """The k-means cache folder must be usable before any data is read."""
    from complexity.experiments.colourization import data

    if args.cache is not None:
        output_folder(args.cache, "--cache")
    else:
        output_folder(data.cache_dir(), "cache folder (COMPLEXITY_CACHE or ~/.cache/complexity)")


def check_data(args) -> None:
    """Everything about the data options that can be known without reading an image:
    the source exists and is readable, ``--category`` only with CIFAR-10 data, at
    least two colour classes, a usable cache folder. :class:`UsageError` otherwise."""
    from complexity.experiments.colourization import data

    try:
        data.check_source(args.data)
    except data.DataError as e:
        raise UsageError(f"--data {e}") from None
    if args.category is not None and not data.is_cifar(args.data):
        raise UsageError(f"--category {args.category} applies to CIFAR-10 data only, not to "
                         f"{args.data or 'the offline photographs'}; drop it")
    if args.nc is not None and args.nc < 2:
        raise UsageError(f"--nc {args.nc}: need at least 2 colour classes (with one there "
                         "is nothing to predict)")
    check_cache(args)


def data_settings(args) -> dict:
    """The data options as a checkpoint records them
    (:func:`~complexity.experiments.colourization.data.source_settings`)."""
    from complexity.experiments.colourization import data

    return data.source_settings(args.data, _category(args), args.max_images)


def _category(args) -> int:
    return DEFAULT_CATEGORY if args.category is None else args.category


def load_data(args, nc: int | None = None):
    """Read and prepare the data named by the data options, with ``nc`` colours
    (default ``--nc``); bad data → :class:`UsageError`."""
    from complexity.experiments.colourization import data

    try:
        images = data.load_images(args.data, _category(args), args.max_images)
        return data.prepare(images, args.nc if nc is None else nc, args.cache)
    except data.DataError as e:
        raise UsageError(str(e)) from None


def config(args, model: str):
    """The :class:`~complexity.experiments.colourization.train.TrainConfig` of the
    model and training options."""
    from complexity.experiments.colourization.train import TrainConfig

    return TrainConfig(model=model, epochs=args.epochs,
                       batch_size=getattr(args, "batch_size", None) or TrainConfig.batch_size,
                       lr=args.lr, seed=args.seed, nf=args.nf, nc=args.nc, kernel=args.kernel)
