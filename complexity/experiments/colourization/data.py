"""Colourization data of the course assignment: images as uint8 RGB crops, grey
inputs, colour-class targets.

Three sources, chosen by :func:`load_images`:

* CIFAR-10 in its binary format (``cifar-10-batches-bin``): records of 1 label byte
  followed by 3072 pixel bytes (1024 R, 1024 G, 1024 B, row-major), as documented at
  https://www.cs.toronto.edu/~kriz/cifar.html. No pickle is involved.
* any folder of images, cut into 32×32 crops;
* an offline default: the colour photographs that scikit-image and scikit-learn ship
  inside their wheels (read from disk, never downloaded), cut into 32×32 crops.

Pixel values are divided by 256, the grey input is the mean of R, G, B, and the
target of each pixel is the index of the nearest of NC colour centres (Euclidean in
RGB); the centres come from k-means over training pixels and are cached as ``.npy``.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import numpy as np
from complexity.atomic import atomic_path

CROP = 32
RECORD = 1 + 3 * CROP * CROP  # CIFAR-10 binary record: label byte + 3072 pixel bytes
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")

# Offline default: colour photographs found on disk in installed packages. Synthetic
# images (colour wheel, logo) and the right half of the motorcycle stereo pair (the
# same scene as the left one) are left out.
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg",
                  "ihc.png", "motorcycle_left.png", "retina.jpg", "rocket.jpg")
# Each photograph is resized so that its shorter side is each of these, then tiled.
SCALES = (64, 128, 192, 256)
# Tiles lying wholly in the right-most quarter of a photograph are validation, wholly
# left of it training; tiles straddling the line are dropped, so no pixel is in both.
VAL_FRACTION = 0.25
# Nearly flat tiles (black sky, retina surround) teach nothing about colour.
MIN_GREY_STD = 0.02


class DataError(ValueError):
    """Data that cannot be read: missing, wrong size, no images. One-line message."""


@dataclass
class Images:
    """uint8 RGB crops, shape (N, 32, 32, 3), split into training and validation;
    ``settings``: what chose them (:func:`source_settings`), when known."""
    train: np.ndarray
    val: np.ndarray
    description: str
    settings: dict = field(default_factory=dict)


# --------------------------------------------------------------- CIFAR-10 binary
def read_cifar_file(path: str, category: int | None = None) -> np.ndarray:
    """Read one CIFAR-10 binary batch; keep only ``category`` (0-9) when given.

    >>> import tempfile, os
    >>> rec = bytes([7]) + bytes(range(256)) * 12
    >>> p = os.path.join(tempfile.mkdtemp(), "b.bin"); _ = open(p, "wb").write(rec * 2)
    >>> read_cifar_file(p, 7).shape
    (2, 32, 32, 3)
    """
    size = os.path.getsize(path)
    if size == 0 or size % RECORD:
        raise DataError(f"{path}: {size} bytes is not a whole number of CIFAR-10 records "
                        f"({RECORD} bytes each: 1 label byte + 3072 pixel bytes)")
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, RECORD)
    if category is not None:
        raw = raw[raw[:, 0] == category]
    # channel-major planes (R, G, B), each 32 rows of 32 → (N, 32, 32, 3)
    return raw[:, 1:].reshape(-1, 3, CROP, CROP).transpose(0, 2, 3, 1).copy()


def read_cifar(path: str, category: int = 7) -> Images:
    """``cifar-10-batches-bin`` folder (data_batch_*.bin → training, test_batch.bin →
    validation) or a single ``.bin`` file (first 5/6 training, last 1/6 validation)."""
    if os.path.isfile(path):
        imgs = read_cifar_file(path, category)
        cut = len(imgs) * 5 // 6
        train, val = imgs[:cut], imgs[cut:]
    else:
        names = sorted(f for f in os.listdir(path) if f.endswith(".bin"))
        train_names = [f for f in names if f.startswith("data_batch")]
        val_names = [f for f in names if f.startswith("test_batch")]
        if not train_names or not val_names:
            raise DataError(f"{path}: a CIFAR-10 folder needs data_batch_*.bin and "
                            "test_batch.bin files")
        train = np.concatenate([read_cifar_file(os.path.join(path, f), category)
                                for f in train_names])
        val = np.concatenate([read_cifar_file(os.path.join(path, f), category)
                              for f in val_names])
    if len(train) == 0 or len(val) == 0:
        raise DataError(f"{path}: no images of category {category} in the training or "
                        "validation part")
    return Images(train, val, f"CIFAR-10 category {category} from {path}: "
                  f"{len(train)} training, {len(val)} validation images")


# --------------------------------------------------------------- photographs → crops
def crops_from_photos(photos, scales=SCALES, crop=CROP):
    """Cut RGB photographs (H, W, 3 uint8) into non-overlapping crop×crop tiles at
    several scales; returns (train, val) uint8 arrays split by position (see
    ``VAL_FRACTION``) in a fixed shuffled order, so a prefix is a fair sample.

    >>> t, v = crops_from_photos([np.random.default_rng(0).integers(0, 256, (64, 320, 3),
    ...                           dtype=np.uint8)], scales=(64,))
    >>> t.shape, v.shape  # 2 rows × (7 columns left of x = 240, 2 right; 1 straddles)
    ((14, 32, 32, 3), (4, 32, 32, 3))
    """
    from skimage.transform import resize

    train, val = [], []
    for photo in photos:
        h, w = photo.shape[:2]
        for short in scales:
            f = short / min(h, w)
            hh, ww = max(crop, round(h * f)), max(crop, round(w * f))
            img = resize(photo, (hh, ww), anti_aliasing=True, preserve_range=True)
            img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
            line = ww * (1 - VAL_FRACTION)
            for y in range(0, hh - crop + 1, crop):
                for x in range(0, ww - crop + 1, crop):
                    tile = img[y:y + crop, x:x + crop]
                    if (tile.mean(axis=2) / 256).std() < MIN_GREY_STD:
                        continue
                    if x + crop <= line:
                        train.append(tile)
                    elif x >= line:
                        val.append(tile)
    rng = np.random.default_rng(0)
    out = []
    for part in (train, val):
        arr = np.stack(part) if part else np.zeros((0, crop, crop, 3), np.uint8)
        out.append(arr[rng.permutation(len(arr))])
    return out[0], out[1]


def _rgb(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def offline_photo_paths():
    """Paths of the photographs that the offline default uses (all on local disk)."""
    import skimage
    import sklearn.datasets

    sk = os.path.join(os.path.dirname(skimage.__file__), "data")
    sl = os.path.join(os.path.dirname(sklearn.datasets.__file__), "images")
    return [os.path.join(sk, f) for f in SKIMAGE_PHOTOS] + [
        os.path.join(sl, f) for f in ("china.jpg", "flower.jpg")]


def read_offline() -> Images:
    from PIL import Image

    photos = []
    for p in offline_photo_paths():
        if not os.path.isfile(p):
            raise DataError(f"offline default photograph {p} is missing; give --data PATH")
        with Image.open(p) as im:
            photos.append(_rgb(np.asarray(im.convert("RGB"))))
    train, val = crops_from_photos(photos)
    return Images(train, val, f"offline default: {len(photos)} photographs from "
                  f"scikit-image and scikit-learn, 32×32 crops at shorter side "
                  f"{'/'.join(map(str, SCALES))} px: {len(train)} training, "
                  f"{len(val)} validation crops")


def read_folder(path: str) -> Images:
    from PIL import Image, UnidentifiedImageError

    names = sorted(f for f in os.listdir(path) if f.lower().endswith(IMAGE_SUFFIXES))
    photos = []
    for f in names:
        try:
            with Image.open(os.path.join(path, f)) as im:
                photos.append(_rgb(np.asarray(im.convert("RGB"))))
        except (OSError, UnidentifiedImageError):
            continue  # a broken file among many is skipped; none at all is an error below
    if not photos:
        raise DataError(f"{path}: no readable images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    train, val = crops_from_photos(photos)
    if len(train) == 0 or len(val) == 0:
        raise DataError(f"{path}: images too small or too flat to give 32×32 training "
                        "and validation crops")
    return Images(train, val, f"{len(photos)} images from {path}, 32×32 crops: "
                  f"{len(train)} training, {len(val)} validation crops")


def check_source(path: str | None) -> None:
    """:class:`DataError` if ``path`` (None: the offline default) cannot be a source:
    missing or unreadable. Reads no image."""
    if path is None:
        return
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file or folder")
    if not os.access(path, os.R_OK):
        raise DataError(f"{path}: not readable")


def is_cifar(path: str | None) -> bool:
    """Whether the existing ``path`` is read as CIFAR-10: a file, or a folder holding
    ``.bin`` files (anything else is a folder of images; None the photographs)."""
    if path is None:
        return False
    return os.path.isfile(path) or any(f.endswith(".bin") for f in os.listdir(path))


def source_settings(path: str | None, category: int = 7, max_images: int | None = None) -> dict:
    """What chooses the images: the source (its real path, or None for the offline
    default), the CIFAR-10 category (None for other sources) and the cap per split —
    recorded in checkpoints so that a mismatch can say which setting differs."""
    return {"data": None if path is None else os.path.realpath(path),
            "category": category if is_cifar(path) else None, "max_images": max_images}


def load_images(path: str | None = None, category: int = 7,
                max_images: int | None = None) -> Images:
    """Pick the source from ``path`` (None → offline default) and cap each split at
    ``max_images`` (a prefix of a fixed shuffled order)."""
    check_source(path)
    if path is None:
        images = read_offline()
    elif is_cifar(path):
        images = read_cifar(path, category)
    else:
        images = read_folder(path)
    if max_images is not None:
        if max_images < 1:
            raise DataError(f"max_images={max_images} (need an integer >= 1)")
        images = Images(images.train[:max_images], images.val[:max_images],
                        images.description + f"; capped at {max_images} per split")
    images.settings = source_settings(path, category, max_images)
    return images


# --------------------------------------------------------------- colours
def grey(rgb: np.ndarray) -> np.ndarray:
    """Grey input = mean of R, G, B (as the course does), channel axis first: (N, 1, H, W)."""
    return rgb.mean(axis=-1)[:, None]


def quantise(rgb: np.ndarray, centres: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """Index of the nearest centre (Euclidean in RGB) for every pixel of ``rgb``
    (…, 3); ties go to the lower index.

    >>> quantise(np.array([[0.1, 0.1, 0.1], [0.9, 0.8, 0.9]]), np.array([[1., 1, 1], [0, 0, 0]]))
    array([1, 0])
    """
    flat = rgb.reshape(-1, 3).astype(np.float64)
    c = centres.astype(np.float64)
    out = np.empty(len(flat), dtype=np.int64)
    for i in range(0, len(flat), chunk):
        d = ((flat[i:i + chunk, None, :] - c[None]) ** 2).sum(axis=-1)
        out[i:i + chunk] = d.argmin(axis=1)
    return out.reshape(rgb.shape[:-1])


def cache_dir() -> str:
    return os.environ.get("COMPLEXITY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "complexity")


def colour_centres(train: np.ndarray, nc: int, cache: str | None = None,
                   sample: int = 100_000) -> np.ndarray:
    """NC colour centres (NC, 3) in [0, 1) by k-means over training pixels, cached as
    ``.npy`` under a key made of the training pixels' SHA-256 and NC."""
    key = hashlib.sha256(np.ascontiguousarray(train).tobytes()).hexdigest()[:16]
    folder = cache or cache_dir()
    path = os.path.join(folder, f"colours-{key}-nc{nc}.npy")
    if os.path.isfile(path):
        try:
            centres = np.load(path, allow_pickle=False)
            if centres.shape == (nc, 3) and np.isfinite(centres).all():
                return centres
        except (OSError, ValueError):
            pass  # unreadable cache: recompute and overwrite below
    from sklearn.cluster import KMeans

    pixels = train.reshape(-1, 3).astype(np.float64) / 256
    if len(pixels) > sample:
        pixels = pixels[np.random.default_rng(0).choice(len(pixels), sample, replace=False)]
    if len(np.unique(pixels, axis=0)) < nc:
        raise DataError(f"--nc {nc}: the training images hold fewer than {nc} distinct colours")
    centres = KMeans(n_clusters=nc, n_init=3, random_state=0).fit(pixels).cluster_centers_
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, centres, allow_pickle=False)
    return centres


@dataclass
class ColourData:
    """Tensors ready for training: grey inputs (N, 1, H, W) float32 in [0, 1), targets
    (N, H, W) int64 colour indices, the centres; ``settings``: the images' settings
    (:func:`source_settings`) and ``nc``."""
    train_x: "object"
    train_y: "object"
    val_x: "object"
    val_y: "object"
    centres: np.ndarray
    description: str
    settings: dict = field(default_factory=dict)


def prepare(images: Images, nc: int = 24, cache: str | None = None) -> ColourData:
    """Grey inputs and nearest-centre targets for both splits."""
    import torch

    centres = colour_centres(images.train, nc, cache)
    tensors = []
    for part in (images.train, images.val):
        rgb = part.astype(np.float64) / 256  # as the course: pixel values divided by 256
        tensors.append(torch.from_numpy(grey(rgb).astype(np.float32)))
        tensors.append(torch.from_numpy(quantise(rgb, centres)))
    return ColourData(*tensors, centres, images.description, {**images.settings, "nc": nc})
