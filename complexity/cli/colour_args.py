"""Options shared by the colourization commands (``train``, ``sweep-batch``,
``invariance``): the data, the model and training settings, and turning them into
data and a :class:`~complexity.experiments.colourization.train.TrainConfig`.

torch is imported inside the functions only, so ``--help`` stays fast.
"""
from __future__ import annotations

import argparse

from complexity.cli.common import (UsageError, add_threads_argument, odd_kernel, output_folder,
    positive_float, positive_int)


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


def add_data_arguments(p) -> None:
    p.add_argument("--data", default=None, metavar="PATH",
                   help="cifar-10-batches-bin folder or .bin file, or a folder of images; "
                   "default: the offline photographs (see README)")
    p.add_argument("--category", type=category, default=7,
                   help="CIFAR-10 category 0-9 (7 = horse)")
    p.add_argument("--max-images", type=positive_int, default=None, metavar="N",
                   help="use at most N training and N validation images (quick runs)")
    p.add_argument("--nc", type=positive_int, default=24, help="NC, colour classes (24)")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="where k-means colour centres are cached (default ~/.cache/complexity)")


def add_model_arguments(p, epochs: int = 25) -> None:
    p.add_argument("--epochs", type=positive_int, default=epochs, help=f"epochs in all ({epochs})")
    p.add_argument("--batch-size", type=positive_int, default=100, help="minibatch size (100)")
    p.add_argument("--lr", type=positive_float, default=0.001, help="Adam learning rate (0.001)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and shuffling (0)")
    p.add_argument("--nf", type=positive_int, default=32, help="NF, filters of the first conv (32)")
    p.add_argument("--kernel", type=odd_kernel, default=3, help="k, odd kernel size (3)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_threads_argument(p)
    p.add_argument("--format", choices=("table", "json"), default="table")


def check_cache(args) -> None:
    """The k-means cache folder must be usable before any data is read."""
    from complexity.experiments.colourization import data

    if args.cache is not None:
        output_folder(args.cache, "--cache")
    else:
        output_folder(data.cache_dir(), "cache folder (COMPLEXITY_CACHE or ~/.cache/complexity)")


def load_data(args, nc: int | None = None):
    """Read and prepare the data named by the data options, with ``nc`` colours
    (default ``--nc``); bad data → :class:`UsageError`."""
    from complexity.experiments.colourization import data

    try:
        images = data.load_images(args.data, args.category, args.max_images)
        return data.prepare(images, args.nc if nc is None else nc, args.cache)
    except data.DataError as e:
        raise UsageError(str(e)) from None


def config(args, model: str):
    """The :class:`~complexity.experiments.colourization.train.TrainConfig` of the
    model and training options."""
    from complexity.experiments.colourization.train import TrainConfig

    return TrainConfig(model=model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       seed=args.seed, nf=args.nf, nc=args.nc, kernel=args.kernel)
