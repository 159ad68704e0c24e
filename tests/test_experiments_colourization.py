"""Training the colourization nets, their data, the batch-size sweep and the
input-scaling study (does y = a·x + b on the input change the output?).

Oracles: CIFAR records the test encodes itself, a brute-force nearest centre, an
uninterrupted run for ``--resume``, the receptive field measured by embedding an
image in a larger one, and real-arithmetic invariance measured in float64.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from complexity.experiments import checkpoint
from complexity.experiments.colourization import data, invariance
from models.colourization import build
from complexity.experiments.colourization.train import (TrainConfig, load_model, train,
    train_or_resume)
from cli_helpers import run_cli


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: PyTorch's thread pool only adds synchronisation (many times slower
    on a busy 2-core machine). Restored for the other test modules."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------ helpers
def cifar_bytes(labels, images) -> bytes:
    """Encode HWC uint8 images as CIFAR-10 records: label byte, then R, G, B planes."""
    return b"".join(bytes([lab]) + img.transpose(2, 0, 1).tobytes()
                    for lab, img in zip(labels, images))


def blob_images(n, seed=0):
    """Smooth colourful 32×32 images: learnable, unlike noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] / 32
    out = []
    for _ in range(n):
        f = rng.uniform(1, 4, size=(3, 2))
        p = rng.uniform(0, 6.3, size=3)
        img = [127 + 120 * np.sin(f[c, 0] * 6.3 * xx + f[c, 1] * 3 * yy + p[c]) for c in range(3)]
        out.append(np.stack(img, -1).astype(np.uint8))
    return np.stack(out)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("COMPLEXITY_CACHE", str(d))
    return str(d)


@pytest.fixture
def cifar_dir(tmp_path):
    d = tmp_path / "cifar-10-batches-bin"
    d.mkdir()
    imgs = blob_images(36, seed=1)
    labels = [7, 3] * 18  # half horses
    (d / "data_batch_1.bin").write_bytes(cifar_bytes(labels[:24], imgs[:24]))
    (d / "test_batch.bin").write_bytes(cifar_bytes(labels[24:], imgs[24:]))
    return str(d), imgs, labels


def tiny_data(n_train=20, n_val=8, nc=6, cache=None):
    imgs = blob_images(n_train + n_val)
    return data.prepare(data.Images(imgs[:n_train], imgs[n_train:], "blobs"), nc, cache)


# ------------------------------------------------------------------ data
def test_cifar_reader_decodes_records_the_test_wrote(tmp_path, cifar_dir):
    path, imgs, labels = cifar_dir
    got = data.read_cifar_file(os.path.join(path, "data_batch_1.bin"), 7)
    horses = [i for i in range(24) if labels[i] == 7]
    assert np.array_equal(got, imgs[horses])
    everything = data.read_cifar_file(os.path.join(path, "data_batch_1.bin"))
    assert np.array_equal(everything, imgs[:24])
    split = data.load_images(path, 7)
    assert len(split.train) == 12 and len(split.val) == 6


def test_cifar_wrong_size_and_missing_data_are_data_errors(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x07" * 3074)
    with pytest.raises(data.DataError, match="3073"):
        data.load_images(str(bad))
    with pytest.raises(data.DataError, match="no such"):
        data.load_images(str(tmp_path / "nope"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(data.DataError, match="no readable images"):
        data.load_images(str(empty))


def test_image_folder_is_cut_into_crops(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    big = np.concatenate([np.concatenate(list(blob_images(4, seed=s)), 1) for s in range(2)], 0)
    Image.fromarray(big).save(folder / "a.png")  # 64 × 128
    images = data.load_images(str(folder))
    assert images.train.shape[1:] == (32, 32, 3) and len(images.train) and len(images.val)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 12), st.integers(1, 60), st.integers(0, 10_000))
def test_quantise_matches_brute_force_nearest_centre(nc, n, seed):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, 3)) / 256
    centres = rng.random((nc, 3))
    expected = []
    for p in pixels:  # brute force: first centre with the smallest squared distance
        best, best_d = 0, None
        for j, c in enumerate(centres):
            d = sum((float(p[i]) - float(c[i])) ** 2 for i in range(3))
            if best_d is None or d < best_d:
                best, best_d = j, d
        expected.append(best)
    assert data.quantise(pixels, centres, chunk=7).tolist() == expected


def test_colour_centres_find_the_colours_and_are_cached(tmp_path):
    colours = np.array([[250, 10, 10], [10, 250, 10], [10, 10, 250]], dtype=np.uint8)
    rng = np.random.default_rng(0)
    imgs = colours[rng.integers(0, 3, size=(5, 32, 32))]
    centres = data.colour_centres(imgs, 3, str(tmp_path))
    assert np.allclose(np.sort(centres, axis=0), np.sort(colours / 256, axis=0))
    (cached,) = [f for f in os.listdir(tmp_path) if f.endswith("-nc3.npy")]
    assert np.array_equal(np.load(tmp_path / cached, allow_pickle=False), centres)
    np.save(tmp_path / cached, np.zeros((3, 3)))  # the cache is what is read next time
    assert np.array_equal(data.colour_centres(imgs, 3, str(tmp_path)), np.zeros((3, 3)))


def test_grey_is_mean_of_rgb_and_targets_are_nearest_centres(tmp_path):
    d = tiny_data(4, 2, cache=str(tmp_path))
    imgs = blob_images(6)
    rgb = imgs[:4].astype(np.float64) / 256
    assert np.allclose(d.train_x[:, 0].numpy(), (rgb[..., 0] + rgb[..., 1] + rgb[..., 2]) / 3)
    dist = ((rgb[..., None, :] - d.centres) ** 2).sum(-1)
    assert np.array_equal(d.train_y.numpy(), dist.argmin(-1))


# ------------------------------------------------------------------ training
def test_tiny_training_lowers_the_loss(tmp_path):
    d = tiny_data(cache=str(tmp_path))
    for name in ("cnn", "unet"):
        result, _ = train(d, TrainConfig(model=name, epochs=6, batch_size=10, lr=0.01, nf=4, nc=6))
        losses = [h["train_loss"] for h in result["history"]]
        assert losses[-1] < losses[0] * 0.9, (name, losses)


def test_resume_continues_the_same_history(tmp_path):
    d = tiny_data(cache=str(tmp_path))
    cfg = dict(model="unet", batch_size=7, lr=0.01, nf=4, nc=6)
    straight, m1 = train(d, TrainConfig(epochs=4, **cfg))
    out = str(tmp_path / "run")
    train(d, TrainConfig(epochs=2, **cfg), out=out)
    ck = os.path.join(out, "checkpoint.pt")
    assert len(checkpoint.load(ck)["history"]) == 2
    resumed, m2 = train(d, TrainConfig(epochs=4, **cfg), out=out, resume=ck)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3, 4]
    for a, b in zip(straight["history"], resumed["history"]):
        for k in ("train_loss", "val_loss", "val_acc"):
            assert a[k] == pytest.approx(b[k], rel=1e-6, abs=1e-9)
    for (k, p1), p2 in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.allclose(p1.float(), p2.float(), atol=1e-6), k
    loaded, cfg2 = load_model(ck)
    assert cfg2.epochs == 4 and cfg2.model == "unet"
    # figures are the caller's (experiments never draw): the CLI test checks them
    assert sorted(os.listdir(out)) == ["checkpoint.pt", "history.json"]
    assert json.load(open(os.path.join(out, "history.json")))["history"] == resumed["history"]


def test_train_or_resume_continues_a_fitting_checkpoint_and_replaces_one_that_does_not(tmp_path):
    d = tiny_data(cache=str(tmp_path))
    out = str(tmp_path / "run")
    cfg = TrainConfig(model="cnn", epochs=1, batch_size=10, nf=4, nc=6)
    first, _ = train_or_resume(d, cfg, out)
    again, _ = train_or_resume(d, replace(cfg, epochs=2), out)
    assert again["history"][0] == first["history"][0] and len(again["history"]) == 2
    said = []
    other, _ = train_or_resume(d, replace(cfg, nf=8), out, log=said.append)
    assert len(other["history"]) == 1 and other["nf"] == 8
    assert len(said) == 1 and "other settings" in said[0] and "from scratch" in said[0]
    assert load_model(os.path.join(out, "checkpoint.pt"))[1].nf == 8


def test_batch_sweep_trains_one_run_per_size_and_resumes(tmp_path):
    from complexity.experiments.colourization.batch_sweep import batch_sweep, run_folder

    d = tiny_data(cache=str(tmp_path))
    out = str(tmp_path / "sweep")
    base = TrainConfig(model="cnn", epochs=1, batch_size=999, nf=4, nc=6)
    result, models = batch_sweep(d, base, [5, 20], out, progress=False)
    assert [r["batch_size"] for r in result["runs"]] == [5, 20]
    assert [r["steps_per_epoch"] for r in result["runs"]] == [4, 1]  # 20 images
    assert sorted(models) == [5, 20] and result["train_images"] == 20 and result["out"] == out
    for bs in (5, 20):
        assert sorted(os.listdir(run_folder(out, bs))) == ["checkpoint.pt", "history.json"]
    json.dumps(result)
    more, _ = batch_sweep(d, replace(base, epochs=2), [5], out,
                          resume=True, progress=False)
    assert more["runs"][0]["history"][0] == result["runs"][0]["history"][0]
    assert len(more["runs"][0]["history"]) == 2


def test_train_cli_json_and_resume(tmp_path, cifar_dir, cache, capsys):
    path = cifar_dir[0]
    out = str(tmp_path / "out")
    base = ["train", "--model", "cnn", "--data", path, "--nf", "4", "--nc", "5",
            "--batch-size", "5", "--out", out, "--quiet", "--format", "json"]
    code, stdout, _ = run_cli(base + ["--epochs", "1"], capsys)
    assert code == 0
    assert sorted(os.listdir(out)) == ["checkpoint.pt", "curves.png", "history.json", "samples.png"]
    first = json.loads(stdout)
    assert set(first) >= {"model", "epochs", "batch_size", "lr", "history", "final", "seconds"}
    assert set(first["final"]) == {"train_loss", "val_loss", "val_acc"}
    for other, words in ((["--nf", "8"], "other settings"), (["--lr", "0.01"], "other settings"),
                         (["--max-images", "6"], "other data")):
        argv = list(base)  # an option is given once: replace its value, or add it
        for flag, value in zip(other[::2], other[1::2]):
            if flag in argv:
                argv[argv.index(flag) + 1] = value
            else:
                argv += [flag, value]
        code, stdout, err = run_cli(argv + ["--epochs", "2", "--resume"], capsys)
        assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1, err
        assert words in err
    code, stdout, _ = run_cli(base + ["--epochs", "2", "--resume"], capsys)
    second = json.loads(stdout)
    assert code == 0 and second["history"][0] == first["history"][0]
    assert len(second["history"]) == 2

    # invariance on this CNN, float64 ε → 0: train-mode BN with a > 0, b = 0 leaves the
    # logits unchanged up to rounding at every pixel, while b ≠ 0 changes the interior
    ck = os.path.join(out, "checkpoint.pt")
    code, stdout, err = run_cli(["invariance", "--model", "cnn", "--checkpoint", ck,
                                 "--data", path, "--exact", "--format", "json"], capsys)
    assert code == 0, err
    rows = [r for r in json.loads(stdout)["rows"] if r["bn"] == "train" and r["a"] > 0]
    for r in rows:
        if r["b"] == 0:
            assert r["interior"]["max"] <= EXACT_TOL and r["border"]["max"] <= EXACT_TOL, r
        else:
            assert r["interior"]["max"] > 1e3 * EXACT_TOL, r
    code, stdout, err = run_cli(["invariance", "--model", "cnn", "--checkpoint", ck,
                                 "--data", path, "--max-images", "6"], capsys)
    assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1
    assert "other data" in err


@pytest.mark.parametrize("make, words", [
    (lambda d: (d / "bad.bin").write_bytes(b"\x07" * 3074), "3073"),
    (lambda d: (d / "empty").mkdir(), "no readable images"),
])
def test_train_cli_refuses_bad_data_with_one_line(tmp_path, cache, capsys, make, words):
    make(tmp_path)
    target = tmp_path / ("bad.bin" if words == "3073" else "empty")
    code, stdout, err = run_cli(["train", "--data", str(target), "--out", str(tmp_path / "out"),
                                 "--quiet"], capsys)
    assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1 and words in err
    assert not (tmp_path / "out").exists()


def test_sweep_and_invariance_cli_json(tmp_path, cifar_dir, cache, capsys):
    path = cifar_dir[0]
    code, stdout, _ = run_cli(["sweep-batch", "--sizes", "3,12", "--epochs", "1", "--data", path,
                               "--nf", "4", "--nc", "5", "--out", str(tmp_path / "sw"),
                               "--quiet", "--format", "json"], capsys)
    assert code == 0
    sweep = json.loads(stdout)
    assert [r["batch_size"] for r in sweep["runs"]] == [3, 12]
    assert [r["steps_per_epoch"] for r in sweep["runs"]] == [4, 1]  # 12 horses: ⌈12/3⌉, ⌈12/12⌉
    for png in ("curves.png", "final.png", "samples.png"):
        assert (tmp_path / "sw" / png).is_file()
    for bs in (3, 12):
        assert sorted(os.listdir(tmp_path / "sw" / f"batch-{bs}")) == [
            "checkpoint.pt", "curves.png", "history.json", "samples.png"]
    ck = str(tmp_path / "sw" / "batch-3" / "checkpoint.pt")
    code, stdout, _ = run_cli(["invariance", "--model", "unet", "--checkpoint", ck, "--data", path,
                               "--exact", "--format", "json"], capsys)
    assert code == 0
    inv = json.loads(stdout)
    assert inv["border_band"] == 15 and inv["interior_pixels"] == 4
    assert len(inv["rows"]) == 2 * len(invariance.A_GRID) * len(invariance.B_GRID)
    # the UNet feeds the raw input to its last conv: every (a, b) ≠ (1, 0) must show
    changed = [r for r in inv["rows"] if (r["a"], r["b"]) != (1, 0)]
    assert all(r["interior"]["max"] > 1e3 * EXACT_TOL for r in changed)
    code, _, err = run_cli(["invariance", "--model", "cnn", "--checkpoint", ck, "--data", path],
                           capsys)
    assert code == 2 and "holds a unet" in err
    code, _, err = run_cli(["reproduce", "--only", "nonsense"], capsys)
    assert code == 2 and "colourization" in err


@pytest.mark.parametrize("extra, message", [
    (["--max-images", "0"], ">= 1"),
    (["--data", "/no/such/path"], "no such file"),
    (["--resume", "MISSING"], "no such checkpoint"),
    (["--resume", "CORRUPT"], "not a PyTorch checkpoint file"),
    (["--resume", "FOREIGN"], "not a checkpoint of this tool"),
    (["--out", "FILE"], "is a file, not a folder"),
    (["--out", "FILE/run"], "is a file, not a folder"),
    (["--cache", "FILE"], "is a file, not a folder"),
])
def test_bad_input_exits_2_with_one_line_and_leaves_nothing(tmp_path, cache, capsys, extra, message):
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "file").write_text("a regular file")
    torch.save({"weights": torch.ones(2)}, tmp_path / "foreign.pt")
    names = {"MISSING": "missing.pt", "CORRUPT": "corrupt.pt", "FOREIGN": "foreign.pt",
             "FILE": "file", "FILE/run": "file/run"}
    extra = [str(tmp_path / names[e]) if e in names else e for e in extra]
    out = tmp_path / "out"
    own_out = [] if "--out" in extra else ["--out", str(out)]  # an option is given once
    code, stdout, err = run_cli(["train", "--quiet"] + own_out + extra, capsys)
    assert (tmp_path / "file").read_text() == "a regular file"
    assert code == 2 and stdout == ""
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not out.exists()


# ------------------------------------------------------------------ invariance
def _random_model(name, kernel=3, nf=4, nc=5):
    torch.manual_seed(1)
    m = build(name, kernel, nf, nc, 1)
    for mod in m.modules():  # non-trivial affine BN and running statistics
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.weight.data.uniform_(0.5, 2)
            mod.bias.data.uniform_(-1, 1)
            mod.running_mean.uniform_(-1, 1)
            mod.running_var.uniform_(0.5, 2)
    return m


@pytest.mark.parametrize("name, kernel", [("cnn", 3), ("unet", 3), ("cnn", 5), ("unet", 5)])
def test_border_band_matches_receptive_field_measured_by_embedding(name, kernel):
    # Independent measurement: run the net on x and on x embedded at an offset divisible
    # by 4 in a larger random image. With BN in eval mode (a per-pixel affine map) and
    # ReLU replaced by identity (so no pixel agrees by both being clipped to 0), output
    # pixels agree exactly where their receptive field never reaches the padding.
    m = _random_model(name, kernel).double().eval()
    for blk in m.children():
        if isinstance(blk, torch.nn.Sequential):
            blk[-1] = torch.nn.Identity()
    h, pad = 72, 32
    x = torch.rand(2, 1, h, h, dtype=torch.float64)
    big = torch.rand(2, 1, h + 2 * pad, h + 2 * pad, dtype=torch.float64)
    big[..., pad:pad + h, pad:pad + h] = x
    with torch.no_grad():
        diff = (m(x) - m(big)[..., pad:pad + h, pad:pad + h]).abs().amax(1).amax(0)
    measured = diff < 1e-9
    band = invariance.border_band(name, kernel)
    assert torch.equal(measured, invariance.interior_mask(h, h, band))


# Tolerance: in real arithmetic |Δ| is 0; in float64 each logit is a sum of a few
# thousand rounded terms through six layers, so rounding leaves 1e-14..1e-13 (measured); the
# bound 1e-9 is 10^4 above that and 10^6 below the smallest violation we check for.
EXACT_TOL = 1e-9


@settings(max_examples=8, deadline=None)
@given(a=st.floats(0.05, 20.0), seed=st.integers(0, 100))
def test_cnn_train_mode_positive_scaling_has_exactly_no_effect(a, seed):
    torch.manual_seed(seed)
    m = invariance.exact(_random_model("cnn"))
    x = torch.rand(4, 1, 32, 32, dtype=torch.float64)
    y = torch.randint(0, 5, (4, 32, 32))
    r = invariance.measure(m, x, y, a, 0.0, "train", invariance.border_band("cnn"))
    assert r["interior"]["max"] <= EXACT_TOL and r["border"]["max"] <= EXACT_TOL
    assert r["delta_acc"] == 0


@pytest.mark.parametrize("name, a, b, mode, region", [
    ("cnn", -1.0, 0.0, "train", "interior"),   # max-pool becomes min-pool
    ("cnn", 0.0, 0.5, "train", "interior"),    # the image is erased
    ("cnn", 1.0, 0.5, "train", "interior"),    # padding + BN mean over the border
    ("cnn", 1.0, 0.5, "train", "border"),
    ("cnn", 2.0, 0.0, "eval", "interior"),     # running statistics are constants
    ("unet", 2.0, 0.0, "train", "interior"),   # raw input reaches the last conv
])
def test_changes_where_theory_says_they_must(name, a, b, mode, region):
    torch.manual_seed(0)
    m = invariance.exact(_random_model(name))
    x = torch.rand(4, 1, 32, 32, dtype=torch.float64)
    y = torch.randint(0, 5, (4, 32, 32))
    r = invariance.measure(m, x, y, a, b, mode, invariance.border_band(name))
    assert r[region]["max"] > 1e-3
    assert invariance.expected(name, a, b, mode).startswith("changes")


def test_pytorch_eps_leaves_a_small_nonzero_remainder():
    # float32 with BN ε = 1e-5: a > 0, b = 0 is invariant only up to ε's share of the
    # first BN's variance, so the change is small but measurably not zero.
    torch.manual_seed(0)
    m = _random_model("cnn").double()
    x = torch.rand(4, 1, 32, 32, dtype=torch.float64) * 0.01  # small variance: ε matters
    y = torch.randint(0, 5, (4, 32, 32))
    r = invariance.measure(m, x, y, 2.0, 0.0, "train", 15)
    assert r["border"]["max"] > 1e3 * EXACT_TOL
    r0 = invariance.measure(invariance.exact(m), x, y, 2.0, 0.0, "train", 15)
    assert r0["border"]["max"] <= EXACT_TOL  # the same net with ε → 0: the remainder was ε's


# ------------------------------------------------------------------ reproduce
def test_reproduce_fresh_trains_each_run_once_per_context(tmp_path, monkeypatch):
    """colourization and invariance both ask for the same run folder; with --fresh the
    second request used to delete the checkpoint the first had just written."""
    from complexity.reproduce.context import Context
    import complexity.experiments.colourization.train

    ctx = Context(reports=str(tmp_path / "r"), runs=str(tmp_path / "runs"), fresh=True,
                  progress=False)
    ctx.datasets[5] = tiny_data(cache=str(tmp_path))
    (tmp_path / "runs" / "cnn").mkdir(parents=True)
    (tmp_path / "runs" / "cnn" / "stale").write_text("from an earlier run")
    calls = []
    real = complexity.experiments.colourization.train.train

    def spy(data, cfg, out=None, resume=None, progress=False):
        calls.append(resume)
        return real(data, cfg, out=out, resume=resume, progress=progress)

    monkeypatch.setattr(complexity.experiments.colourization.train, "train", spy)
    cfg = TrainConfig(model="cnn", epochs=1, batch_size=10, nf=4, nc=6)
    out = str(tmp_path / "runs" / "cnn")
    ctx.trained(cfg, 5, out)
    assert not os.path.exists(os.path.join(out, "stale"))  # --fresh did clear it once
    ctx.trained(cfg, 5, out)
    assert calls == [None, os.path.join(out, "checkpoint.pt")]  # the second one resumed
    assert sorted(os.listdir(out)) == ["checkpoint.pt", "curves.png", "history.json", "samples.png"]


@pytest.mark.parametrize("argv", [
    ["sweep-batch", "--out", "FILE"],
    ["invariance", "--plot", "FILE/x.png"],
    ["invariance", "--plot", "DIR"],
])
def test_other_commands_refuse_unusable_outputs_before_work(tmp_path, cache, capsys, argv):
    (tmp_path / "file").write_text("a regular file")
    argv = [a.replace("FILE", str(tmp_path / "file")).replace("DIR", str(tmp_path)) for a in argv]
    code, stdout, err = run_cli(argv + ["--quiet"] * (argv[0] == "sweep-batch"), capsys)
    assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1
    assert (tmp_path / "file").read_text() == "a regular file"


def test_invariance_model_for_and_run_study(tmp_path, one_epoch_cnn):
    d, ck = one_epoch_cnn
    model, cfg, source = invariance.model_for(d, "cnn", ck)
    assert cfg.nf == 4 and source == f"checkpoint {ck}"
    result = invariance.run_study(model, cfg, d, source, images=3, exact_arithmetic=True)
    assert result["images"] == 3 and result["exact"] is True and result["nc"] == 6
    assert len(result["rows"]) == 2 * len(invariance.A_GRID) * len(invariance.B_GRID)
    with pytest.raises(checkpoint.CheckpointError, match="holds a cnn, not a unet"):
        invariance.model_for(d, "unet", ck)
    with pytest.raises(checkpoint.CheckpointError, match="other data"):
        invariance.model_for(tiny_data(12, 4, cache=str(tmp_path)), "cnn", ck)
    brief, cfg, source = invariance.model_for(d, "unet", epochs=1)
    assert cfg.model == "unet" and cfg.nc == 6 and "trained here for 1 epochs" in source


def test_empty_interior_is_no_measurement_not_zero(tmp_path):
    """k = 5 leaves no interior pixel on 32×32: the interior columns used to read 0."""
    from complexity.output import colourization as plots
    from complexity.output.experiments import render_invariance

    torch.manual_seed(0)
    m = _random_model("cnn", kernel=5)
    x = torch.rand(2, 1, 32, 32)
    st = invariance.study(m, "cnn", x, torch.randint(0, 5, (2, 32, 32)), kernel=5,
                          a_grid=(1.0, 2.0), b_grid=(0.0,))
    assert st["interior_pixels"] == 0
    for r in st["rows"]:
        assert r["interior"] == {"max": None, "mean": None, "pixels": 0}
        assert r["border"]["pixels"] == 32 * 32 and r["border"]["max"] is not None
    st.update(exact=False, source="test")
    text = render_invariance(st)
    assert "—" in text
    json.dumps(st)  # None becomes null
    _, _, grid, labels = plots.invariance_cells([r for r in st["rows"] if r["bn"] == "train"])
    assert np.isnan(grid).all() and {c for row in labels for c in row} == {"—"}
    plots.invariance_grid([st], str(tmp_path / "g.png"))
    assert (tmp_path / "g.png").is_file()


@pytest.fixture(scope="module")
def one_epoch_cnn(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cnn")
    d = tiny_data(cache=str(tmp))
    train(d, TrainConfig(model="cnn", epochs=1, batch_size=10, nf=4, nc=6), out=str(tmp / "run"))
    return d, str(tmp / "run" / "checkpoint.pt")


@pytest.mark.parametrize("field, value", [
    ("config", "cnn"), ("config", {"model": "cnn"}), ("config", "NF"), ("config", "LR"),
    ("history", "1,2"), ("history", [{"epoch": "1"}]), ("history", [3]),
    ("seconds", "12"), ("optimizer_state", "x"), ("model_state", [1]), ("rng", "x"),
])
def test_resume_refuses_our_format_with_wrong_field_types(tmp_path, one_epoch_cnn, field, value):
    """Our format string with other contents used to crash with AttributeError or
    TypeError instead of a CheckpointError (one line at the CLI)."""
    d, good = one_epoch_cnn
    path = str(tmp_path / "checkpoint.pt")
    ck = checkpoint.load(good)
    if value == "NF":
        value = dict(ck["config"], nf="4")
    elif value == "LR":
        value = dict(ck["config"], lr=None)
    ck[field] = value
    torch.save(ck, path)
    with pytest.raises(checkpoint.CheckpointError) as e:
        train(d, TrainConfig(model="cnn", epochs=2, batch_size=10, nf=4, nc=6), resume=path)
    assert "\n" not in str(e.value)
    if field in ("config", "model_state"):
        with pytest.raises(checkpoint.CheckpointError):
            load_model(path)


def test_report_figures_are_copied_atomically(tmp_path, monkeypatch):
    """The batch-size report copied its PNGs with shutil.copyfile straight onto the
    target: a failure midway left a truncated figure under the real name."""
    import shutil
    from complexity import atomic
    from complexity.reproduce import batch_size

    src, dst = tmp_path / "new.png", tmp_path / "reports" / "old.png"
    src.write_bytes(b"new figure" * 100)
    dst.parent.mkdir()
    dst.write_bytes(b"old figure")

    def half_copy(a, b):
        with open(a, "rb") as f, open(b, "wb") as g:
            g.write(f.read(5))
        raise OSError("disk full")

    monkeypatch.setattr(shutil, "copyfile", half_copy)
    with pytest.raises(OSError):
        atomic.copy_file(str(src), str(dst))
    assert dst.read_bytes() == b"old figure" and os.listdir(dst.parent) == ["old.png"]
    monkeypatch.undo()
    atomic.copy_file(str(src), str(dst))
    assert dst.read_bytes() == src.read_bytes()
    source = open(batch_size.__file__, encoding="utf-8").read()
    assert "shutil.copyfile" not in source  # every report figure goes through atomic


def test_invariance_report_claim_is_computed_from_the_rows():
    """The report used to state "below 1e-12" whatever the rows held."""
    from complexity.reproduce.invariance import scaling_claim

    def study(worst, other=5.0):
        row = lambda a, b, bn, v: {"a": a, "b": b, "bn": bn,  # noqa: E731
                                   "interior": {"max": v}, "border": {"max": v / 2}}
        return {"rows": [row(2.0, 0.0, "train", worst), row(0.5, 0.0, "train", worst / 3),
                         row(2.0, 0.5, "train", other), row(-1.0, 0.0, "train", other),
                         row(2.0, 0.0, "eval", other)]}

    met = scaling_claim(study(2e-13), study(1e-2))
    assert "2.0e-13" in met and "**met**" in met and "1.0e-02" in met
    missed = scaling_claim(study(3e-9), study(1e-2))
    assert "3.0e-09" in missed and "**not met**" in missed
