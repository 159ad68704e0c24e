"""Training the colourization nets as the course assignment does: per-pixel
cross-entropy over NC colour classes, Adam, per-epoch train loss / validation loss /
validation per-pixel accuracy, an atomic checkpoint each epoch that ``resume``
continues exactly. :func:`train_or_resume` continues whatever checkpoint a run
folder holds, or trains afresh when it cannot.

The epoch loop is the plain PyTorch loop plus a progress bar and one ``.item()`` per
batch; ``benchmarks/train_epoch_overhead.py`` measures what that costs.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F

from complexity.experiments import checkpoint
from models.colourization import build
from complexity import atomic

FORMAT = "complexity-colourization-train/1"
CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    model: str = "cnn"
    epochs: int = 25
    batch_size: int = 100
    lr: float = 0.001
    seed: int = 0
    nf: int = 32
    nc: int = 24
    kernel: int = 3


HISTORY_KEYS = ("epoch", "train_loss", "val_loss", "val_acc")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def checked_config(ck: dict, path: str) -> dict:
    """``ck["config"]`` if it is a dict of exactly the :class:`TrainConfig` fields with
    values of their types; :class:`~complexity.experiments.checkpoint.CheckpointError` otherwise (a file
    with our format string but other contents must not crash with AttributeError)."""
    cfg = ck["config"]
    names = [f.name for f in fields(TrainConfig)]
    if not isinstance(cfg, dict) or sorted(cfg) != sorted(names):
        raise checkpoint.CheckpointError(f"{path}: malformed config (need the fields "
                                         f"{', '.join(names)})")
    for f in fields(TrainConfig):
        v = cfg[f.name]
        ok = (isinstance(v, str) if f.type in (str, "str") else
              _number(v) if f.type in (float, "float") else
              isinstance(v, int) and not isinstance(v, bool))
        if not ok:
            raise checkpoint.CheckpointError(f"{path}: malformed config ({f.name} = {v!r:.40})")
    return cfg


def _checked_history(ck: dict, path: str) -> tuple:
    history, seconds = ck["history"], ck.get("seconds", 0.0)
    if not (isinstance(history, list) and all(
            isinstance(h, dict) and all(_number(h.get(k)) for k in HISTORY_KEYS)
            for h in history)):
        raise checkpoint.CheckpointError(f"{path}: malformed history (need a list of "
                                         f"{{{', '.join(HISTORY_KEYS)}}} numbers)")
    if not _number(seconds):
        raise checkpoint.CheckpointError(f"{path}: malformed seconds ({seconds!r:.40})")
    return [dict(h) for h in history], float(seconds)


def run_epoch(model, optimizer, x, y, batch_size, generator, progress=False, desc="train"):
    """One pass over (x, y) in a shuffled order drawn from ``generator``; returns the
    mean per-pixel cross-entropy over the epoch (weighted by batch size)."""
    from tqdm import tqdm

    model.train()
    order = torch.randperm(len(x), generator=generator)
    total = 0.0
    starts = range(0, len(x), batch_size)
    for i in tqdm(starts, desc=desc, leave=False, disable=not progress, file=sys.stderr):
        idx = order[i:i + batch_size]
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    return total / len(x)


@torch.no_grad()
def evaluate(model, x, y, batch_size=500):
    """(mean per-pixel cross-entropy, per-pixel accuracy) with BN in eval mode."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size])
        target = y[i:i + batch_size]
        loss_sum += F.cross_entropy(logits, target, reduction="sum").item()
        correct += (logits.argmax(1) == target).sum().item()
    pixels = y.numel()
    return loss_sum / pixels, correct / pixels


@torch.no_grad()
def predict(model, x, batch_size=500):
    """Colour-class index per pixel (eval mode)."""
    model.eval()
    return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def data_key(data) -> str:
    """What the checkpoint must agree with on resume: shapes and the colour centres."""
    return f"{tuple(data.train_x.shape)}/{tuple(data.val_x.shape)}/" + ",".join(
        f"{v:.6f}" for v in data.centres.ravel())


#: the options that set each recorded data setting, for messages
DATA_OPTIONS = {"data": "--data", "category": "--category", "max_images": "--max-images",
                "nc": "--nc"}


def settings_difference(recorded: dict, current: dict) -> str:
    """Which data settings differ between a checkpoint's ``recorded`` ones and the
    ``current`` ones (keys of :data:`DATA_OPTIONS` present in both), in words; ""
    when none does.

    >>> settings_difference({"max_images": 200, "data": None}, {"max_images": 100, "data": None})
    '--max-images 200 there, 100 here'
    """
    def shown(key, value):
        if value is None:
            return {"data": "the offline default", "max_images": "all",
                    "category": "none (not CIFAR-10)"}.get(key, "none")
        return str(value)

    return "; ".join(f"{DATA_OPTIONS[k]} {shown(k, recorded[k])} there, "
                     f"{shown(k, current[k])} here"
                     for k in DATA_OPTIONS if k in recorded and k in current
                     and recorded[k] != current[k])


def key_difference(recorded_key: str, current_key: str) -> str:
    """What differs between two :func:`data_key` strings, in words (for checkpoints
    that do not record their data settings).

    >>> key_difference("(8, 1, 32, 32)/(2, 1, 32, 32)/0.1,0.2,0.3",
    ...                "(4, 1, 32, 32)/(2, 1, 32, 32)/0.1,0.2,0.3")
    '8 training and 2 validation images there, 4 and 2 here'
    """
    def parts(key):
        train, val, centres = (str(key).split("/") + ["", "", ""])[:3]
        count = lambda shape: shape.strip("()").split(",")[0]  # noqa: E731
        return count(train), count(val), len(centres.split(",")) // 3
    (t0, v0, c0), (t1, v1, c1) = parts(recorded_key), parts(current_key)
    if (t0, v0) != (t1, v1):
        return f"{t0} training and {v0} validation images there, {t1} and {v1} here"
    if c0 != c1:
        return f"{c0} colours there, {c1} here"
    return "as many images and colours, but other images or colour centres"


def data_mismatch(ck: dict, path: str, data=None, settings: dict | None = None):
    """The :class:`~complexity.experiments.checkpoint.CheckpointError` saying how the
    data of checkpoint ``ck`` (at ``path``) differs from ``data`` (prepared) or, before
    any data is read, from the ``settings`` of :func:`~complexity.experiments.colourization.data.source_settings`;
    None when nothing is known to differ."""
    recorded = ck.get("data_settings") if isinstance(ck.get("data_settings"), dict) else {}
    current = settings if settings is not None else getattr(data, "settings", {}) or {}
    diff = settings_difference(recorded, current)
    if not diff and data is not None and ck.get("data") != data_key(data):
        diff = key_difference(ck.get("data"), data_key(data))
    if not diff:
        return None
    return checkpoint.CheckpointError(f"{path}: trained on other data ({diff}); give the "
                                      "data options of the run that wrote it")


def check_resume(path: str, cfg: TrainConfig, settings: dict | None = None) -> dict:
    """Read the checkpoint ``path`` and check, before any data is read, that
    :func:`train` can continue it with ``cfg``: ours, well-formed, the same settings
    (``epochs`` may grow) and, when ``settings`` are given and recorded, the same data
    settings. Returns the checkpoint; :class:`~complexity.experiments.checkpoint.CheckpointError`
    with one line otherwise."""
    ck = checkpoint.load(path, required=("format", "config", "data", "model_state",
                                         "optimizer_state", "history", "rng"))
    if ck["format"] != FORMAT:
        raise checkpoint.CheckpointError(f"{path}: not a colourization training "
                                         f"checkpoint (format {ck['format']!r})")
    mine = {k: v for k, v in asdict(cfg).items() if k != "epochs"}
    theirs = {k: v for k, v in checked_config(ck, path).items() if k != "epochs"}
    history, _ = _checked_history(ck, path)
    if mine != theirs:
        diff = ", ".join(f"{k}={theirs.get(k)!r} vs {v!r}" for k, v in mine.items()
                         if theirs.get(k) != v)
        raise checkpoint.CheckpointError(f"{path}: trained with other settings ({diff})")
    if len(history) > cfg.epochs:
        raise checkpoint.CheckpointError(f"{path}: already holds {len(history)} "
                                         f"epochs, more than the {cfg.epochs} asked for")
    if settings is not None:
        error = data_mismatch(ck, path, settings={**settings, "nc": cfg.nc})
        if error:
            raise error
    return ck


def _start(cfg: TrainConfig, data, resume_path):
    torch.manual_seed(cfg.seed)
    model = build(cfg.model, cfg.kernel, cfg.nf, cfg.nc, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    history, seconds = [], 0.0
    if resume_path is not None:
        ck = check_resume(resume_path, cfg)
        history, seconds = _checked_history(ck, resume_path)
        if ck["data"] != data_key(data):
            raise data_mismatch(ck, resume_path, data) or checkpoint.CheckpointError(
                f"{resume_path}: trained on other data or colours")
        try:
            model.load_state_dict(ck["model_state"])
            optimizer.load_state_dict(ck["optimizer_state"])
            generator.set_state(ck["rng"])
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as e:
            reason = (str(e).splitlines() or [type(e).__name__])[0][:100]
            raise checkpoint.CheckpointError(f"{resume_path}: does not fit this model "
                                             f"({reason})") from None
    return model, optimizer, generator, history, seconds


def train(data, cfg: TrainConfig, out: str | None = None, resume: str | None = None,
          progress: bool = False):
    """Train ``cfg.model`` on ``data`` (a
    :class:`~complexity.experiments.colourization.data.ColourData`) up to ``cfg.epochs``
    epochs in all, continuing the checkpoint ``resume`` when given.

    Writes ``out``/checkpoint.pt after every epoch (atomically) and, at the end,
    ``out``/history.json. Returns ``(result, model)`` where ``result`` is the JSON
    object of the ``train`` command; its figures (curves.png, samples.png) are the
    caller's to draw (:func:`complexity.output.colourization.training_figures`).
    """
    model, optimizer, generator, history, seconds = _start(cfg, data, resume)
    for epoch in range(len(history) + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        train_loss = run_epoch(model, optimizer, data.train_x, data.train_y, cfg.batch_size,
                               generator, progress, desc=f"{cfg.model} epoch {epoch}/{cfg.epochs}")
        val_loss, val_acc = evaluate(model, data.val_x, data.val_y)
        seconds += time.perf_counter() - t0
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                        "val_acc": val_acc})
        if progress:
            sys.stderr.write(f"{cfg.model} epoch {epoch}/{cfg.epochs}: train loss "
                             f"{train_loss:.4f}, val loss {val_loss:.4f}, val acc {val_acc:.4f}\n")
        if out is not None:
            checkpoint.save({"format": FORMAT, "config": asdict(cfg), "data": data_key(data),
                             "data_settings": dict(getattr(data, "settings", {}) or {}),
                             "model_state": model.state_dict(),
                             "optimizer_state": optimizer.state_dict(),
                             "history": history, "rng": generator.get_state(),
                             "seconds": seconds}, os.path.join(out, CHECKPOINT))
    result = {"model": cfg.model, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
              "lr": cfg.lr, "seed": cfg.seed, "nf": cfg.nf, "nc": cfg.nc, "kernel": cfg.kernel,
              "data": data.description, "history": history,
              "final": {k: history[-1][k] for k in ("train_loss", "val_loss", "val_acc")}
              if history else None,
              "seconds": seconds}
    if out is not None:
        atomic.write_json(os.path.join(out, "history.json"), result)
    return result, model


def train_or_resume(data, cfg: TrainConfig, out: str, progress: bool = False, log=None):
    """:func:`train` into the run folder ``out``, continuing the checkpoint there when
    it holds one of these settings and data; a checkpoint that does not fit (other
    settings, other data, unreadable) is reported to ``log`` (a ``str -> None``
    callable, optional) and the run starts afresh over it. Returns ``(result, model)``.
    """
    path = os.path.join(out, CHECKPOINT)
    if os.path.isfile(path):
        try:
            return train(data, cfg, out=out, resume=path, progress=progress)
        except checkpoint.CheckpointError as e:
            if log is not None:
                log(f"{e}; training {cfg.model} from scratch")
    return train(data, cfg, out=out, progress=progress)


def load_model(path: str):
    """The model and its :class:`TrainConfig` from a checkpoint written by :func:`train`;
    :class:`complexity.experiments.checkpoint.CheckpointError` for anything else."""
    ck = checkpoint.load(path, required=("format", "config", "model_state"))
    if ck["format"] != FORMAT:
        raise checkpoint.CheckpointError(f"{path}: not a colourization training checkpoint")
    try:
        cfg = TrainConfig(**checked_config(ck, path))
        model = build(cfg.model, cfg.kernel, cfg.nf, cfg.nc, 1)
        model.load_state_dict(ck["model_state"])
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as e:
        if isinstance(e, checkpoint.CheckpointError):
            raise
        reason = (str(e).splitlines() or [type(e).__name__])[0][:100]
        raise checkpoint.CheckpointError(f"{path}: does not fit a colourization model "
                                         f"({reason})") from None
    return model, cfg
