"""Does y = a·x + b on the input change the output? (The course question on
whether scaling and shifting the input changes the colourization nets' output.)

The claim tested: "batch norm makes the output invariant, so no effect". What holds:

* Every BN follows a conv (+ max-pool / upsample): conv(a·x) = a·conv_nobias(x) + bias;
  max-pool commutes with multiplication by a > 0 and with adding a per-channel
  constant; nearest upsampling commutes with both; zero padding pads zeros, which
  scaling leaves zeros. BN in *train* mode subtracts the batch mean (removing the
  bias and any per-channel shift) and divides by the batch standard deviation
  (removing a > 0). So for the CNN with a > 0, b = 0 and train-mode BN the logits are
  unchanged at *every* pixel — exactly when BN's ε = 0, and up to a relative error of
  about ε/(2·var)·(1 − 1/a²) with PyTorch's ε = 1e-5 (only the first BN sees a²·var).
* a < 0 turns max-pooling into min-pooling (max(a·u) = a·min(u)): fails everywhere.
* a = 0 makes the input the constant b: every pixel gets the same logits: fails.
* b ≠ 0: zero padding does not shift, so conv(x + b) = conv(x) + b·S(p) where S(p) is
  the sum of the kernel taps that fall inside the image — constant in the interior,
  smaller near the border. Train-mode BN subtracts the mean over *all* pixels, border
  ones included, so even interior pixels keep a residual offset: small, not zero.
* BN in *eval* mode uses running statistics, fixed numbers: a and b pass straight
  through the first conv into everything after it: fails for any (a, b) ≠ (1, 0).
* The UNet concatenates the raw input x into its last conv, past every BN: fails for
  any (a, b) ≠ (1, 0), in either mode.

Border pixels are those whose receptive field reaches the zero padding of some conv
(:func:`border_band`); they are reported apart from the interior.

:func:`model_for` gives the net to study (a ``train`` checkpoint, or one trained
briefly here) and :func:`run_study` measures it on validation images.
"""
from __future__ import annotations

import copy

import torch

from complexity.experiments import checkpoint
from complexity.experiments.colourization.train import (TrainConfig, data_key, data_mismatch,
    load_model, train)

A_GRID = (-1.0, 0.0, 0.5, 1.0, 2.0, 10.0)
B_GRID = (-0.5, 0.0, 0.5)


def border_band(model: str, kernel: int = 3) -> int:
    """Rows (and columns) at each edge of the output whose receptive field reaches the
    zero padding of some conv, for inputs with H, W divisible by 4.

    Receptive-field arithmetic: a conv with padding r = k//2 widens the band by r; a
    2×2 max-pool halves it rounding up (one affected input taints the output); a ×2
    nearest upsample doubles it; a concatenation takes the wider of its inputs.

    >>> border_band("cnn"), border_band("unet"), border_band("cnn", 1)
    (15, 15, 0)
    """
    r = kernel // 2
    conv = lambda band: band + r  # noqa: E731
    pool = lambda band: -(-band // 2)  # noqa: E731
    d1 = pool(conv(0))
    d2 = pool(conv(d1))
    rf = conv(d2)
    if model == "cnn":
        return conv(2 * conv(2 * conv(rf)))
    if model == "unet":
        u1 = 2 * conv(max(rf, d2))
        u2 = 2 * conv(max(u1, d1))
        return conv(max(u2, 0))
    raise ValueError(f"unknown model {model!r}")


def interior_mask(h: int, w: int, band: int) -> torch.Tensor:
    """Boolean (H, W) mask of pixels farther than ``band`` from every edge."""
    mask = torch.zeros(h, w, dtype=torch.bool)
    if 2 * band < h and 2 * band < w:
        mask[band:h - band, band:w - band] = True
    return mask


def exact(model):
    """A float64 copy of ``model`` whose BNs have ε = 1e-300: PyTorch refuses ε = 0 in
    train mode, and sqrt(var + 1e-300) == sqrt(var) in float64 for any var > 1e-284,
    so this is the ε = 0 network of the argument above, up to float64 rounding."""
    m = copy.deepcopy(model).double()
    for mod in m.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.eps = 1e-300
    return m


@torch.no_grad()
def logits(model, x, bn_mode: str):
    """Logits with BN in ``"train"`` mode (statistics of this batch; the model and its
    running statistics are left untouched) or ``"eval"`` mode (running statistics)."""
    if bn_mode == "train":
        m = copy.deepcopy(model)  # a train-mode forward would update running statistics
        m.train()
        return m(x)
    if bn_mode == "eval":
        m = copy.deepcopy(model)  # leave the caller's train/eval flag as it was
        m.eval()
        return m(x)
    raise ValueError(f"bn_mode must be 'train' or 'eval', got {bn_mode!r}")


def _stats(delta, mask):
    """Max and mean of ``delta`` over the pixels of ``mask``; None for both when the
    region is empty (k = 5 on 32×32 has no interior pixel): no measurement is not a
    measured 0."""
    if not mask.any():
        return {"max": None, "mean": None, "pixels": 0}
    d = delta[..., mask]
    return {"max": d.max().item(), "mean": d.mean().item(), "pixels": int(mask.sum())}


def measure(model, x, y, a: float, b: float, bn_mode: str, band: int):
    """|Δ logits| between inputs a·x + b and x, split into interior and border pixels,
    and the per-pixel accuracy on both."""
    base = logits(model, x, bn_mode)
    moved = logits(model, a * x + b, bn_mode)
    delta = (moved - base).abs().amax(dim=1)  # worst class per pixel: (N, H, W)
    inner = interior_mask(x.shape[-2], x.shape[-1], band)
    acc = (base.argmax(1) == y).double().mean().item()
    acc_moved = (moved.argmax(1) == y).double().mean().item()
    return {"a": a, "b": b, "bn": bn_mode, "interior": _stats(delta, inner),
            "border": _stats(delta, ~inner), "acc": acc, "acc_moved": acc_moved,
            "delta_acc": acc_moved - acc}


def expected(model_name: str, a: float, b: float, bn_mode: str) -> str:
    """What the argument in the module docstring predicts for one grid point."""
    if a == 1 and b == 0:
        return "identical (no change)"
    if model_name == "unet":
        return "changes: the raw input reaches the last conv past every BN"
    if bn_mode == "eval":
        return "changes: running statistics are constants, a and b pass through"
    if a == 0:
        return "changes: a = 0 erases the image"
    if a < 0:
        return "changes: max-pooling becomes min-pooling"
    if b != 0:
        return "changes: zero padding does not shift; BN mean mixes border into interior"
    return "invariant up to BN's ε (exact when ε = 0), every pixel"


def study(model, model_name: str, x, y, kernel: int = 3, a_grid=A_GRID, b_grid=B_GRID):
    """:func:`measure` over the (a, b) grid in both BN modes, with the prediction."""
    band = border_band(model_name, kernel)
    rows = []
    for bn_mode in ("train", "eval"):
        for a in a_grid:
            for b in b_grid:
                row = measure(model, x, y, a, b, bn_mode, band)
                row["expected"] = expected(model_name, a, b, bn_mode)
                rows.append(row)
    return {"model": model_name, "border_band": band,
            "interior_pixels": int(interior_mask(x.shape[-2], x.shape[-1], band).sum()),
            "pixels": x.shape[-2] * x.shape[-1], "images": len(x), "rows": rows}


def check_data(path: str, settings: dict) -> None:
    """Before any data is read: :class:`~complexity.experiments.checkpoint.CheckpointError`
    naming the setting if the checkpoint ``path`` records data settings other than
    ``settings`` (:func:`~complexity.experiments.colourization.data.source_settings`)."""
    error = data_mismatch(checkpoint.load(path), f"--checkpoint {path}", settings=settings)
    if error:
        raise error


def load_trained(path: str, model_name: str):
    """``(model, cfg)`` of the ``train`` checkpoint ``path``;
    :class:`~complexity.experiments.checkpoint.CheckpointError` with one line if it is
    unreadable, not ours, or holds another net than ``model_name``. Its ``cfg.nc``
    says how many colours the data must be prepared with."""
    model, cfg = load_model(path)
    if cfg.model != model_name:
        raise checkpoint.CheckpointError(f"--checkpoint {path} holds a {cfg.model}, "
                                         f"not a {model_name}")
    return model, cfg


def model_for(data, model_name: str, checkpoint_path: str | None = None, epochs: int = 3):
    """``(model, cfg, source)``: the net of ``checkpoint_path`` (:func:`load_trained`),
    which must have been trained on ``data`` — a model measured on other data than it
    was trained on answers a different question — or, without a checkpoint, a
    ``model_name`` trained here on ``data`` for ``epochs`` epochs with the default
    settings (and ``data``'s number of colours). ``source`` says which, in words.
    :class:`~complexity.experiments.checkpoint.CheckpointError` for a checkpoint
    that does not fit."""
    if checkpoint_path is not None:
        model, cfg = load_trained(checkpoint_path, model_name)
        ck = checkpoint.load(checkpoint_path)
        if ck.get("data") != data_key(data):
            raise data_mismatch(ck, f"--checkpoint {checkpoint_path}", data) or \
                checkpoint.CheckpointError(f"--checkpoint {checkpoint_path}: trained on "
                                           "other data or colours than the data given here")
        return model, cfg, f"checkpoint {checkpoint_path}"
    cfg = TrainConfig(model=model_name, epochs=epochs, nc=len(data.centres))
    _, model = train(data, cfg)
    return model, cfg, f"trained here for {epochs} epochs (defaults otherwise)"


def run_study(model, cfg: TrainConfig, data, source: str, images: int = 100,
              exact_arithmetic: bool = False) -> dict:
    """:func:`study` of ``model`` on the first ``images`` validation images of
    ``data`` — in float64 with BN ε → 0 (:func:`exact`) when ``exact_arithmetic`` — with
    what was measured: the JSON object of the ``invariance`` command."""
    x, y = data.val_x[:images], data.val_y[:images]
    if exact_arithmetic:
        model, x = exact(model), x.double()
    result = study(model, cfg.model, x, y, cfg.kernel)
    result.update(exact=bool(exact_arithmetic), source=source, data=data.description,
                  kernel=cfg.kernel, nf=cfg.nf, nc=cfg.nc)
    return result
