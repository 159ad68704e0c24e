"""Data for segmentation fine-tuning: Oxford 17 Flowers from a folder, or a small
generated two-class set when no folder is given (no download is possible here).

Both yield ``(image, mask)``: image float32 (3, S, S) with ImageNet normalisation
(mean/std below, the statistics torchvision's pretrained models expect), mask int64
(S, S) with 1 = foreground, 0 = background.

**Oxford 17 Flowers** (Nilsback & Zisserman, VGG; the data of the course's segmentation exercise),
in the layout of the two published archives::

    DIR/jpg/image_0001.jpg ...       (17flowers.tgz)
    DIR/trimaps/image_0001.png ...   (trimaps.tgz; a subset of the images)
    DIR/datasplits.mat               (trn1/val1: 1-based image numbers) — or
    DIR/train.txt, DIR/val.txt       (one image name per line, e.g. image_0001)

Only images that have a trimap are used. Foreground = trimap pixels equal to
(128, 0, 0); every other colour (background, the "unsure" border) is background.
Images are resized to S×S (bilinear; the course distorted the aspect ratio the same
way), trimaps with nearest-neighbour so that no new colours appear.

**Generated shapes** (the offline default): each image is a textured background
(two to four random sinusoidal gratings in random colours, plus pixel noise) with
one to three objects (ellipses, rotated rectangles, triangles) filled with a
smooth colour gradient. A pixel is foreground exactly when its centre lies inside
an object, and the object colour is painted on exactly those pixels, so the masks
are exact by construction. Image ``i`` of split ``s`` depends only on
(seed, s, i, size): the set is the same on every machine and at every run.

>>> ds = Shapes("train", 32, count=4)
>>> x, m = ds[0]
>>> tuple(x.shape), tuple(m.shape), sorted(set(m.flatten().tolist())) == [0, 1]
((3, 32, 32), (32, 32), True)
>>> bool((Shapes("train", 32, count=4)[0][0] == x).all())   # deterministic
True
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FOREGROUND_RGB = (128, 0, 0)
SEED = 0
SHAPES_COUNTS = {"train": 320, "val": 80}  # default sizes of the generated set
SPLIT_IDS = {"train": 1, "val": 2}


class DataError(ValueError):
    """A data folder that cannot be read as Oxford 17 Flowers; one-line message."""


def normalise(rgb01: np.ndarray) -> torch.Tensor:
    """(H, W, 3) floats in [0, 1] → (3, H, W) tensor with ImageNet normalisation."""
    x = torch.from_numpy(np.ascontiguousarray(rgb01, dtype=np.float32)).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def denormalise(x: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`normalise`, clipped to [0, 1], as (H, W, 3) for plotting."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x.cpu() * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()


# ----------------------------------------------------------- generated shapes

def _inside(kind: str, u: np.ndarray, v: np.ndarray, rng) -> np.ndarray:
    """Pixel-centre membership for one object; u, v are coordinates in [0, 1]."""
    cx, cy = rng.uniform(0.2, 0.8, 2)
    a, b = rng.uniform(0.12, 0.32, 2)
    t = rng.uniform(0, np.pi)
    du, dv = u - cx, v - cy
    ru, rv = du * np.cos(t) + dv * np.sin(t), -du * np.sin(t) + dv * np.cos(t)
    if kind == "ellipse":
        return (ru / a) ** 2 + (rv / b) ** 2 <= 1
    if kind == "rectangle":
        return (np.abs(ru) <= a) & (np.abs(rv) <= b)
    # triangle: three random vertices around the centre; inside = same side of all edges
    ang = t + np.array([0, 2.1, 4.2]) + rng.uniform(-0.4, 0.4, 3)
    px, py = cx + a * 1.4 * np.cos(ang), cy + b * 1.4 * np.sin(ang)
    sides = [(u - px[i]) * (py[(i + 1) % 3] - py[i]) - (v - py[i]) * (px[(i + 1) % 3] - px[i])
             for i in range(3)]
    return ((sides[0] >= 0) & (sides[1] >= 0) & (sides[2] >= 0)) | \
           ((sides[0] <= 0) & (sides[1] <= 0) & (sides[2] <= 0))


def shapes_image(size: int, rng) -> tuple:
    """One generated (rgb in [0, 1] of shape (S, S, 3), bool mask (S, S))."""
    c = (np.arange(size) + 0.5) / size  # pixel centres
    u, v = np.meshgrid(c, c)
    img = np.zeros((size, size, 3))
    for _ in range(rng.integers(2, 5)):  # background: random coloured gratings
        f, t, ph = rng.uniform(4, 14), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * f * (u * np.cos(t) + v * np.sin(t)) + ph)
        img += wave[..., None] * rng.uniform(0, 1, 3)
    img = img / img.max() * rng.uniform(0.5, 1.0) + rng.normal(0, 0.06, img.shape)
    mask = np.zeros((size, size), bool)
    for _ in range(rng.integers(1, 4)):
        obj = _inside(rng.choice(["ellipse", "rectangle", "triangle"]), u, v, rng)
        c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        g = rng.uniform(0, np.pi)
        ramp = (u * np.cos(g) + v * np.sin(g))[..., None]  # smooth gradient fill
        fill = c0 + (c1 - c0) * (ramp - ramp.min()) / (np.ptp(ramp) + 1e-9)
        img[obj] = fill[obj]
        mask |= obj
    return np.clip(img, 0, 1), mask


class Shapes(Dataset):
    """The generated two-class set: ``count`` images of ``size``×``size``."""

    def __init__(self, split: str, size: int, count: int | None = None, seed: int = SEED):
        if split not in SPLIT_IDS:
            raise ValueError(f"unknown split {split!r}")
        self.split, self.size, self.seed = split, size, seed
        self.count = SHAPES_COUNTS[split] if count is None else count

    def __len__(self):
        return self.count

    def verify(self) -> None:
        """Generated in memory: nothing on disk to check."""

    def __getitem__(self, i):
        if not 0 <= i < self.count:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, SPLIT_IDS[self.split], i, self.size])
        rgb, mask = shapes_image(self.size, rng)
        return normalise(rgb), torch.from_numpy(mask.astype(np.int64))


# ------------------------------------------------------------ Oxford 17 Flowers

def _stems(folder: str, ext: str) -> dict:
    return {os.path.splitext(f)[0]: os.path.join(folder, f) for f in os.listdir(folder)
            if f.lower().endswith(ext) and not f.startswith(".")}


def _split_names(root: str, split: str) -> list:
    """The image names of ``split``, both splits always from one source: train.txt and
    val.txt when both exist, else datasplits.mat (mixing them would pair splits that
    were never drawn together)."""
    txts = [os.path.join(root, f"{s}.txt") for s in ("train", "val")]
    mat = os.path.join(root, "datasplits.mat")
    if all(os.path.isfile(t) for t in txts):
        with open(os.path.join(root, f"{split}.txt")) as f:
            return [line.strip() for line in f if line.strip()]
    if os.path.isfile(mat):
        from scipy.io import loadmat  # reads MATLAB arrays; no pickle involved

        key = {"train": "trn1", "val": "val1"}[split]
        try:
            numbers = loadmat(mat)[key]
        except Exception as e:
            raise DataError(f"{mat}: cannot read split {key} ({str(e)[:80]})") from None
        return [f"image_{int(n):04d}" for n in np.asarray(numbers).ravel()]
    present = [os.path.basename(t) for t in txts if os.path.isfile(t)]
    if present:
        raise DataError(f"{root}: {present[0]} without its partner (need datasplits.mat, or "
                        "train.txt and val.txt)")
    raise DataError(f"{root}: no split file (need datasplits.mat, or train.txt and val.txt)")


def oxford_pairs(root: str, split: str) -> list:
    """Sorted (image path, trimap path) pairs of ``split`` whose trimap exists;
    :class:`DataError` if the folder is not in the expected layout or its image
    and trimap sets do not match."""
    img_dir, tri_dir = os.path.join(root, "jpg"), os.path.join(root, "trimaps")
    for d in (root, img_dir, tri_dir):
        if not os.path.isdir(d):
            raise DataError(f"{d}: no such folder (Oxford 17 Flowers needs DIR/jpg and DIR/trimaps)")
    images, trimaps = _stems(img_dir, ".jpg"), _stems(tri_dir, ".png")
    if not trimaps:
        raise DataError(f"{tri_dir}: no .png trimaps")
    orphans = sorted(set(trimaps) - set(images))
    if orphans:
        raise DataError(f"{root}: image and trimap sets do not match: {len(orphans)} trimaps "
                        f"without an image in jpg/ (e.g. {orphans[0]}.png)")
    other = {"train": "val", "val": "train"}[split]
    shared = sorted(set(_split_names(root, split)) & set(_split_names(root, other)))
    if shared:
        raise DataError(f"{root}: the train and val splits share {len(shared)} image(s) "
                        f"(e.g. {shared[0]}): validation would measure memorisation")
    names = [n for n in _split_names(root, split) if n in trimaps]
    if not names:
        raise DataError(f"{root}: the {split} split has no image with a trimap")
    return [(images[n], trimaps[n]) for n in sorted(set(names))]


def foreground(trimap_rgb: np.ndarray) -> np.ndarray:
    """Foreground mask: pixels exactly equal to (128, 0, 0).

    >>> t = np.array([[[128, 0, 0], [128, 0, 1]], [[0, 0, 0], [255, 255, 255]]], np.uint8)
    >>> foreground(t).astype(int).tolist()
    [[1, 0], [0, 0]]
    """
    return np.all(trimap_rgb == np.array(FOREGROUND_RGB, dtype=trimap_rgb.dtype), axis=-1)


class Flowers(Dataset):
    """Oxford 17 Flowers images with their trimap foreground, resized to ``size``."""

    def __init__(self, root: str, split: str, size: int, max_images: int | None = None):
        self.pairs = oxford_pairs(root, split)[:max_images]
        self.size = size

    def __len__(self):
        return len(self.pairs)

    def verify(self) -> None:
        """Open every image and trimap and check its structure (PIL ``verify``: header
        and, for PNG, the chunk checksums) so that a damaged file is named before any
        training or writing starts; :class:`DataError` for the first bad one."""
        from PIL import Image

        for pair in self.pairs:
            for path in pair:
                try:
                    with Image.open(path) as im:
                        im.verify()
                except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, ...
                    raise DataError(f"cannot read {path}: "
                                    f"{(str(e) or type(e).__name__)[:80]}") from None

    def __getitem__(self, i):
        from PIL import Image

        img_path, tri_path = self.pairs[i]
        try:
            with Image.open(img_path) as im:
                rgb = np.asarray(im.convert("RGB").resize((self.size, self.size),
                                                          Image.BILINEAR)) / 255.0
            with Image.open(tri_path) as tm:
                tri = np.asarray(tm.convert("RGB").resize((self.size, self.size), Image.NEAREST))
        except OSError as e:
            raise DataError(f"cannot read {img_path} or {tri_path}: {str(e)[:80]}") from None
        return normalise(rgb), torch.from_numpy(foreground(tri).astype(np.int64))


def datasets(data: str | None, size: int, max_images: int | None = None) -> tuple:
    """(train, val) datasets: Oxford 17 Flowers under ``data``, or the generated
    shapes when ``data`` is None. ``max_images`` caps each split."""
    if data is None:
        cap = (lambda n: n if max_images is None else min(n, max_images))
        return (Shapes("train", size, cap(SHAPES_COUNTS["train"])),
                Shapes("val", size, cap(SHAPES_COUNTS["val"])))
    return Flowers(data, "train", size, max_images), Flowers(data, "val", size, max_images)
