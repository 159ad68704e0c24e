"""Segmentation fine-tuning: metrics against hand-computed masks and scikit-learn,
freezing (no gradient for frozen parameters, optimizer = the head), weights
loading, the Oxford reader on a fake tree in the real layout, and the CLI."""
from __future__ import annotations

import copy
import json
import os
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from complexity.__main__ import main
from complexity.cost.step.trainable import last_layer, set_trainable
from complexity.experiments import checkpoint
from complexity.experiments.segmentation.cost import step_cost
from complexity.experiments.segmentation.data import DataError, Flowers, Shapes, oxford_pairs
from complexity.experiments.segmentation.metrics import class_iou, confusion, course_iou, mean_iou
from complexity.experiments.segmentation.train import TRAIN_MODES, fit, trainable_mode
from complexity.experiments.segmentation.weights import WeightsError, load_weights
from models.segmentation import ARCHS, HEAD, deeplab

ARCH = "deeplabv3_mobilenet_v3_large"


# ------------------------------------------------------------------ metrics

def test_mean_iou_by_hand():
    truth = torch.tensor([[[1, 1, 0], [1, 1, 0], [0, 0, 0]]])
    pred = torch.tensor([[[1, 1, 1], [1, 0, 0], [0, 0, 0]]])
    # foreground: I = 3 (three of the four true pixels), U = 5 → 3/5
    # background: I = 4, U = 6 (five true + one false background) → 4/6
    assert class_iou(confusion(pred, truth, 2)) == pytest.approx([4 / 6, 3 / 5])
    assert mean_iou(confusion(pred, truth, 2)) == pytest.approx((4 / 6 + 3 / 5) / 2)


def test_mean_iou_pools_pixels_over_images_and_skips_absent_classes():
    truth = torch.tensor([[[0, 0]], [[0, 1]]])
    pred = torch.tensor([[[0, 1]], [[0, 1]]])
    # over both images: background I = 2, U = 3; foreground I = 1, U = 2
    assert mean_iou(confusion(pred, truth, 2)) == pytest.approx((2 / 3 + 1 / 2) / 2)
    # a class in neither truth nor prediction is undefined, not 0
    assert class_iou(confusion(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), 2)) == [1.0, None]


def test_course_iou_by_hand():
    def image(fg_pred, fg_true, n=6):
        p, t = torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long)
        p[list(fg_pred)], t[list(fg_true)] = 1, 1
        return p.view(2, 3), t.view(2, 3)

    cases = [  # (pred fg, true fg, expected): iou → ceil(clamp(20(iou - 0.5), 0, 10)) / 10
        ((0, 1), (0, 1, 2), 0.4),          # I 2, U 3: 20·(2/3 − 1/2) = 3.33 → 4
        ((0,), (0, 1, 2, 3), 0.0),         # I 1, U 4: below one half → 0
        ((), (), 1.0),                     # both empty: (0 + ε)/(0 + ε) = 1 → 10
        ((0, 1, 2), (0, 1, 2), 1.0),       # exact
        ((0, 1, 2, 3, 4), (0, 1, 2, 3, 4, 5), 0.7),  # I 5, U 6: 20·(5/6 − 1/2) = 6.67 → 7
        ((3,), (0,), 0.0),                 # disjoint
    ]
    preds, truths = zip(*(image(p, t) for p, t, _ in cases))
    got = course_iou(torch.stack(preds), torch.stack(truths))
    assert got.tolist() == pytest.approx([e for *_, e in cases])


masks = st.lists(st.integers(0, 1), min_size=12, max_size=12)


@settings(max_examples=60, deadline=None)
@given(masks, masks)
def test_mean_iou_matches_sklearn(p, t):
    from sklearn.metrics import jaccard_score

    pred, truth = torch.tensor(p).view(1, 3, 4), torch.tensor(t).view(1, 3, 4)
    present = sorted(set(p) | set(t))
    expected = jaccard_score(t, p, labels=present, average="macro", zero_division=0)
    assert mean_iou(confusion(pred, truth, 2)) == pytest.approx(expected)
    assert 0 <= course_iou(pred, truth).item() <= 1


# ------------------------------------------------------------------ freezing

def _tiny_data(n=4, size=32):
    return Shapes("train", size, n), Shapes("val", size, 2)


def test_train_last_optimizer_holds_only_the_head_and_frozen_get_no_grad(monkeypatch):
    torch.manual_seed(0)
    net = deeplab(ARCH)
    head = {id(p) for n, p in net.named_parameters() if n.startswith(HEAD + ".")}
    before = copy.deepcopy(net.state_dict())
    seen = {}
    real_adam = torch.optim.Adam

    def spy(params, **kw):
        params = list(params)
        seen["ids"] = {id(p) for p in params}
        return real_adam(params, **kw)

    monkeypatch.setattr(torch.optim, "Adam", spy)
    fit(net, *_tiny_data(n=2), train="last", epochs=1, lr=0.01, batch_size=2,
        val_batch_size=2, progress=False)
    assert seen["ids"] == head and len(head) == 2
    for name, p in net.named_parameters():
        if name.startswith(HEAD + "."):
            assert p.grad is not None and not torch.equal(p, before[name])
        else:
            assert p.grad is None and not p.requires_grad, name
            assert torch.equal(p, before[name]), name


@pytest.mark.parametrize("arch", ARCHS)
def test_last_layer_of_deeplab_is_the_new_head(arch):
    """``--train last`` is set_trainable's 'last' (the module owning the last
    parameter): without the auxiliary head that is exactly the swapped head."""
    with torch.device("meta"):
        net = deeplab(arch)
    assert last_layer(net) == HEAD
    count = set_trainable(net, trainable_mode("last"))
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    assert trainable == [HEAD + ".weight", HEAD + ".bias"]
    assert count == 256 * 2 + 2 == sum(p.numel() for p in net.classifier[4].parameters())
    assert set_trainable(net, trainable_mode("all")) == sum(p.numel() for p in net.parameters())
    assert all(p.requires_grad for p in net.parameters())
    assert TRAIN_MODES == {"last": "last", "all": "full"}
    with pytest.raises(ValueError, match="unknown train mode"):
        trainable_mode("full")


def test_train_all_gives_every_parameter_a_gradient():
    net = deeplab(ARCH)
    count = set_trainable(net, trainable_mode("all"))
    assert count == sum(p.numel() for p in net.parameters())
    assert all(p.requires_grad for p in net.parameters())
    out = net(torch.randn(2, 3, 32, 32))["out"]
    nn.functional.cross_entropy(out, torch.zeros(2, 32, 32, dtype=torch.long)).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_backward_of_last_is_only_the_head_weight_gradient():
    """FlopCounterMode sees one convolution backward: the head's weight gradient,
    2 FLOPs per multiply-accumulate of (batch · H'·W' · 256 · 2), H'×W' read from a
    hook on the head's input. Any frozen layer's backward would add to it."""
    with torch.device("meta"):
        net = deeplab(ARCH)
    set_trainable(net, trainable_mode("last"))
    shape = {}
    net.classifier[4].register_forward_hook(lambda m, i, o: shape.update({"in": i[0].shape}))
    cost = step_cost(net, (2, 3, 64, 64))
    b, c, h, w = shape["in"]
    assert cost["backward_flops"] == 2 * b * h * w * c * 2
    assert cost["trainable_param_bytes"] == cost["grad_bytes"] == (256 * 2 + 2) * 4
    set_trainable(net, trainable_mode("all"))
    full = step_cost(net, (2, 3, 64, 64))
    assert full["forward_flops"] == cost["forward_flops"]   # the forward pass is paid either way
    assert full["backward_flops"] > full["forward_flops"]   # grad input + grad weight per conv
    assert full["grad_bytes"] == full["param_bytes"]


def test_predicted_adam_state_bytes_match_a_real_optimizer():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    net[0].requires_grad_(False)
    predicted = step_cost(net, (2, 3, 8, 8))["optimizer_bytes"]
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad])
    net(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    real = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values()
               if torch.is_tensor(t))
    assert predicted == real


# ------------------------------------------------------------------ weights

@pytest.fixture(scope="module")
def voc_file(tmp_path_factory):
    """A 21-class, auxiliary-head state dict like torchvision's COCO/VOC files."""
    import torchvision.models.segmentation as seg

    torch.manual_seed(1)
    m = seg.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21,
                                         aux_loss=True)
    path = tmp_path_factory.mktemp("w") / "voc.pth"
    torch.save(m.state_dict(), path)
    return str(path), m.state_dict()


def test_load_voc_weights_keeps_the_new_head(voc_file):
    path, state = voc_file
    net = deeplab(ARCH)
    head_before = net.classifier[4].weight.clone()
    text = load_weights(net, path, ARCH)
    own = net.state_dict()
    for k, v in own.items():
        if k.startswith(HEAD + "."):
            continue
        assert torch.equal(v, state[k]), k
    assert torch.equal(net.classifier[4].weight, head_before)
    n_loaded = len([k for k in own if not k.startswith(HEAD + ".")])
    assert text.startswith(f"loaded {n_loaded} of {len(own)} tensors")
    assert "(21, 256, 1, 1)" in text and "aux_classifier" in text


def test_load_own_checkpoint_loads_the_head_too(tmp_path):
    src = deeplab(ARCH)
    checkpoint.save({"model": src.state_dict(), "epoch": 1}, str(tmp_path / "best.pt"))
    net = deeplab(ARCH)
    load_weights(net, str(tmp_path / "best.pt"), ARCH)
    assert torch.equal(net.classifier[4].weight, src.classifier[4].weight)


def test_bad_weights_files(tmp_path, voc_file):
    net = deeplab(ARCH)
    before = copy.deepcopy(net.state_dict())
    bad_shape = dict(voc_file[1])
    bad_shape["backbone.0.0.weight"] = torch.zeros(1)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    files = {"missing": str(tmp_path / "nope.pt"), "garbage": str(garbage)}
    for name, obj in (("list", [1, 2]), ("shape", bad_shape),
                      ("other", {"conv1.weight": torch.zeros(64, 3, 7, 7)})):
        files[name] = str(tmp_path / f"{name}.pt")
        torch.save(obj, files[name])
    for name, path in files.items():
        with pytest.raises(WeightsError) as e:
            load_weights(net, path, ARCH)
        assert "\n" not in str(e.value), name
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k  # a refused file changes nothing


def test_files_that_are_not_torch_files_say_so(tmp_path, voc_file):
    """torch's own message for such files is a truncated unpickling error."""
    good = open(voc_file[0], "rb").read()
    files = {"text": b"not a torch file", "empty": b"", "truncated zip": good[:len(good) // 2]}
    for name, content in files.items():
        path = tmp_path / f"{name}.pt"
        path.write_bytes(content)
        with pytest.raises(WeightsError, match="not a PyTorch checkpoint file"):
            load_weights(deeplab(ARCH), str(path), ARCH)
        with pytest.raises(checkpoint.CheckpointError, match="not a PyTorch checkpoint file"):
            checkpoint.load(str(path))
    legacy = tmp_path / "legacy.pt"
    torch.save({"epoch": 1}, legacy, _use_new_zipfile_serialization=False)
    assert checkpoint.load(str(legacy))["epoch"] == 1


# ------------------------------------------------------------------ checkpoints

def _base(seed=0, arch=ARCH, weights=None):
    """The model ``segment --seed SEED [--weights FILE]`` builds, and its description."""
    from complexity.experiments.segmentation.checkpoints import base_reference

    torch.manual_seed(seed)
    net = deeplab(arch)
    if weights is not None:
        load_weights(net, weights, arch, seed)
    return net, base_reference(arch, seed, weights)


def _outputs(net, size=32):
    net.eval()
    with torch.no_grad():
        return net(torch.stack([Shapes("val", size, 2)[i][0] for i in range(2)]))["out"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One --train last and one --train all run of one epoch, with checkpoints:
    {train: (trained model, run folder, record)}."""
    runs = {}
    for train in ("last", "all"):
        net, base = _base(seed=0)
        out = tmp_path_factory.mktemp(f"run-{train}")
        record = fit(net, *_tiny_data(n=2), train=train, epochs=1, lr=0.01, batch_size=2,
                     val_batch_size=2, progress=False, out=str(out), base=base, bn_images=2)
        runs[train] = (net, out, record)
    return runs


def test_train_last_checkpoint_holds_the_head_and_buffers_only(trained):
    """The file holds the trainable parameters and the buffers (the run changes every
    BatchNorm's statistics) — kilobytes — not the 44 MB of the frozen backbone."""
    from complexity.experiments.segmentation.checkpoints import read_checkpoint

    net, out, record = trained["last"]
    ck = read_checkpoint(str(out / "last.pt"))
    buffers = [n for n, _ in net.named_buffers()]
    assert set(ck["tensors"]) == {HEAD + ".weight", HEAD + ".bias", *buffers}
    payload = sum(t.numel() * t.element_size() for t in ck["tensors"].values())
    assert payload == (256 * 2 + 2) * 4 + sum(b.numel() * b.element_size() for b in net.buffers())
    full = sum(t.numel() * t.element_size() for t in net.state_dict().values())
    size = os.path.getsize(out / "last.pt")
    assert payload < size < payload + 400 * len(ck["tensors"]) + 16_000  # zip records, pickle
    assert size < 200_000 and size * 200 < full
    frozen = [p for n, p in net.named_parameters() if not n.startswith(HEAD + ".")]
    assert ck["base"]["frozen"]["tensors"] == len(frozen) == record["checkpoint"]["base"]["frozen"]["tensors"]
    assert ck["base"]["frozen"]["numel"] == sum(p.numel() for p in frozen)
    # every buffer in the file is the trained model's, and it moved away from the base's
    base, _ = _base(seed=0)
    state, base_state = net.state_dict(), base.state_dict()
    assert all(torch.equal(ck["tensors"][k], state[k]) for k in buffers)
    assert not torch.equal(state["backbone.0.1.running_mean"], base_state["backbone.0.1.running_mean"])


@pytest.mark.parametrize("train", ["last", "all"])
def test_checkpoint_round_trip_on_a_fresh_base_gives_identical_outputs(trained, train):
    from complexity.experiments.segmentation.checkpoints import load_checkpoint

    net, out, record = trained[train]
    for name in ("last.pt", "best.pt"):
        fresh, base = _base(seed=0)
        ck = load_checkpoint(str(out / name), fresh, base)
        assert ck["epoch"] == 1 and ck["train"] == train
        assert all(torch.equal(v, net.state_dict()[k]) for k, v in fresh.state_dict().items())
        assert torch.equal(_outputs(fresh), _outputs(net))


def test_checkpoint_for_another_base_is_refused_with_one_line(trained, voc_file):
    from complexity.experiments.segmentation.checkpoints import CheckpointError, load_checkpoint

    path = str(trained["last"][1] / "best.pt")
    cases = {"seed 0 vs this model's 1": _base(seed=1),
             "weights none vs this model's": _base(seed=0, weights=voc_file[0]),
             f"{ARCH} vs this model's deeplabv3_resnet50": _base(arch="deeplabv3_resnet50")}
    for words, (net, base) in cases.items():
        before = copy.deepcopy(net.state_dict())
        for described in (base, None):  # without a description the fingerprint still refuses
            with pytest.raises(CheckpointError) as e:
                load_checkpoint(path, net, described)
            assert "\n" not in str(e.value) and path in str(e.value)
            assert (words in str(e.value)) if described else "base" in str(e.value)
        assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_train_all_checkpoint_needs_no_base(trained):
    """Nothing is frozen, so the file is the whole state dict and any base of the
    architecture takes it."""
    from complexity.experiments.segmentation.checkpoints import EMPTY_SHA256, load_checkpoint

    net, out, _ = trained["all"]
    other, base = _base(seed=5)
    ck = load_checkpoint(str(out / "last.pt"), other, base)
    assert ck["base"]["frozen"] == {"tensors": 0, "numel": 0, "sha256": EMPTY_SHA256}
    assert torch.equal(_outputs(other), _outputs(net))


def test_weights_option_applies_a_train_last_checkpoint_to_its_base(trained):
    net, out, _ = trained["last"]
    path = str(out / "best.pt")
    same, _ = _base(seed=0)
    from complexity.experiments.segmentation.checkpoints import read_checkpoint

    text = load_weights(same, path, ARCH, 0)
    n = len(read_checkpoint(path)["tensors"])
    assert text.startswith(f"loaded {n} tensors of the segment checkpoint {path}")
    assert "onto its base" in text and "\n" not in text
    assert torch.equal(_outputs(same), _outputs(net))
    other, _ = _base(seed=1)
    with pytest.raises(WeightsError) as e:
        load_weights(other, path, ARCH, 1)
    assert "\n" not in str(e.value) and "seed 0 vs this model's 1" in str(e.value)
    assert "--seed 0" in str(e.value)


def test_weights_option_loads_the_base_file_a_checkpoint_names(tmp_path, voc_file):
    """A --train last run on --weights FILE records FILE and its sha256; --weights
    CHECKPOINT loads FILE first, and refuses once FILE has changed."""
    import shutil

    weights = str(tmp_path / "voc.pth")
    shutil.copy(voc_file[0], weights)
    net, base = _base(seed=0, weights=weights)
    fit(net, *_tiny_data(n=2), train="last", epochs=1, lr=0.01, batch_size=2,
        val_batch_size=2, progress=False, out=str(tmp_path / "run"), base=base, bn_images=2)
    path = str(tmp_path / "run" / "last.pt")
    fresh, _ = _base(seed=3)  # seed does not matter: the file supplies every frozen tensor
    assert "base: loaded" in load_weights(fresh, path, ARCH, 3)
    assert torch.equal(_outputs(fresh), _outputs(net))
    with open(weights, "ab") as f:
        f.write(b"\0")
    with pytest.raises(WeightsError, match="has changed since"):
        load_weights(deeplab(ARCH), path, ARCH, 0)
    os.unlink(weights)
    with pytest.raises(WeightsError, match="is not there"):
        load_weights(deeplab(ARCH), path, ARCH, 0)


def test_progress_bars_over_batches_go_to_stderr(capsys):
    """Training, BatchNorm re-estimation and validation each show a bar per pass."""
    torch.manual_seed(0)
    fit(deeplab(ARCH), *_tiny_data(n=4), epochs=1, lr=0.01, batch_size=2, val_batch_size=1,
        progress=True, bn_images=4)
    out, err = capsys.readouterr()
    assert out == ""
    for desc in ("epoch 1/1", "BatchNorm statistics, epoch 1/1", "validation, epoch 1/1"):
        assert f"{desc}: " in err, desc
    assert re.search(r"validation, epoch 1/1: [^\r]*\| 0/2 ", err)  # counted in batches (2 of 1)


# ------------------------------------------------------------------ Oxford reader

def _fake_oxford(root, n=6, size=20, split="mat", orphan=False):
    from PIL import Image

    os.makedirs(root / "jpg")
    os.makedirs(root / "trimaps")
    truths = {}
    for i in range(1, n + 1):
        name = f"image_{i:04d}"
        Image.fromarray(np.full((size, size, 3), 40 * i % 255, np.uint8)).save(root / "jpg" / f"{name}.jpg")
        if i == n:  # real archive: some images have no trimap
            continue
        tri = np.zeros((size, size, 3), np.uint8)
        tri[:, :] = (0, 0, 128)                       # background colour
        tri[2:2 + i, 3:9] = (128, 0, 0)               # foreground, i rows
        tri[2 + i, 3:9] = (255, 255, 255)             # "unsure" border → background
        Image.fromarray(tri).save(root / "trimaps" / f"{name}.png")
        truths[name] = tri
    if orphan:
        Image.fromarray(tri).save(root / "trimaps" / "image_0099.png")
    if split == "mat":
        from scipy.io import savemat

        savemat(root / "datasplits.mat", {"trn1": np.array([[1, 2, 3, 6]]),
                                          "val1": np.array([[4, 5]]), "tst1": np.array([[6]])})
    else:
        (root / "train.txt").write_text("image_0001\nimage_0002\nimage_0003\n")
        (root / "val.txt").write_text("image_0004\nimage_0005\n")
    return truths


@pytest.mark.parametrize("split", ["mat", "txt"])
def test_oxford_reader_on_a_fake_tree(tmp_path, split):
    truths = _fake_oxford(tmp_path, split=split)
    train = Flowers(str(tmp_path), "train", 20)
    val = Flowers(str(tmp_path), "val", 20)
    assert [os.path.basename(p) for p, _ in train.pairs] == \
        ["image_0001.jpg", "image_0002.jpg", "image_0003.jpg"]  # image 6 has no trimap
    assert len(val) == 2
    x, m = val[1]  # image_0005: rows 2..6, columns 3..8 are foreground
    assert x.shape == (3, 20, 20) and m.dtype == torch.int64
    expected = np.zeros((20, 20), np.int64)
    expected[2:7, 3:9] = 1
    assert np.array_equal(m.numpy(), expected)
    assert int(m.sum()) == 30
    assert np.array_equal(m.numpy(), (truths["image_0005"] == (128, 0, 0)).all(-1))
    # ImageNet normalisation of a flat grey image: (v/255 - mean) / std per channel
    v = 40 * 5 % 255 / 255
    assert x[:, 0, 0].tolist() == pytest.approx(
        [(v - mu) / sd for mu, sd in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))], abs=0.03)


def test_oxford_reader_resizes_trimaps_without_new_colours(tmp_path):
    _fake_oxford(tmp_path)
    _, m = Flowers(str(tmp_path), "val", 37)[0]
    assert set(m.unique().tolist()) <= {0, 1} and m.shape == (37, 37)


def test_oxford_reader_refuses_bad_trees(tmp_path):
    _fake_oxford(tmp_path / "a", orphan=True)
    with pytest.raises(DataError, match="do not match"):
        oxford_pairs(str(tmp_path / "a"), "train")
    with pytest.raises(DataError, match="no such folder"):
        oxford_pairs(str(tmp_path / "missing"), "train")
    _fake_oxford(tmp_path / "b")
    os.unlink(tmp_path / "b" / "datasplits.mat")
    with pytest.raises(DataError, match="no split file"):
        oxford_pairs(str(tmp_path / "b"), "train")


# ------------------------------------------------------------------ CLI

CLI_DEFAULTS = {"--size": "32", "--epochs": "2", "--batch-size": "2", "--val-batch-size": "4"}


def _cli(capsys, *argv):
    """``segment`` with small defaults; an option in ``argv`` replaces its default (the
    parser refuses an option given twice)."""
    defaults = [x for k, v in CLI_DEFAULTS.items() if k not in argv for x in (k, v)]
    code = main(["segment", "--arch", ARCH, *defaults, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_offline_json_run(tmp_path, capsys, monkeypatch):
    from complexity.experiments.segmentation.checkpoints import load_checkpoint
    from complexity.output.experiments import render_segment

    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)  # the test's threads stay
    code, out, err = _cli(capsys, "--max-images", "4", "--batch-size", "3", "--size", "40",
                          "--out", str(tmp_path / "run"), "--format", "json", "--threads", "1")
    assert code == 0, err
    assert threads == [1]
    r = json.loads(out)
    for key in ("arch", "train", "epochs", "history", "best", "trainable_params",
                "total_params", "seconds"):
        assert key in r
    assert [h["epoch"] for h in r["history"]] == [1, 2]
    assert set(r["history"][0]) == {"epoch", "train_loss", "val_loss", "miou", "course_iou"}
    assert r["best"] == max(r["history"], key=lambda h: h["miou"])
    assert r["trainable_params"] == 256 * 2 + 2
    assert "random" in r["weights"]
    assert set(os.listdir(tmp_path / "run")) == {"best.pt", "last.pt", "curves.png",
                                                 "predictions.png", "result.json"}
    ck = checkpoint.load(str(tmp_path / "run" / "last.pt"), required=("format", "base", "tensors"))
    assert ck["arch"] == ARCH and ck["epoch"] == 2 and ck["train"] == "last"
    assert ck["base"]["arch"] == ARCH and ck["base"]["seed"] == 0 and ck["base"]["weights"] is None
    assert r["checkpoint"]["bytes"] == os.path.getsize(tmp_path / "run" / "last.pt")
    torch.manual_seed(0)  # the base: --seed 0's random initialisation
    assert load_checkpoint(str(tmp_path / "run" / "best.pt"), deeplab(ARCH))["epoch"] == r["best"]["epoch"]
    # the cost table is at the run's batch and size, as an independent measurement there
    assert r["cost"]["input_shape"] == [3, 3, 40, 40]
    assert (r["cost"]["batch_size"], r["cost"]["size"]) == (r["batch_size"], r["size"]) == (3, 40)
    with torch.device("meta"):
        net = deeplab(ARCH)
    set_trainable(net, trainable_mode("last"))
    expected = step_cost(net, (3, 3, 40, 40))
    assert {k: r["cost"][k] for k in expected} == expected
    assert "one training step at batch 3, 40×40" in render_segment(r)


def test_cli_cost_batch_is_capped_by_the_images(tmp_path, capsys):
    """Two training images and --batch-size 3 train in batches of two: the step is
    costed at two."""
    code, out, err = _cli(capsys, "--max-images", "2", "--batch-size", "3", "--epochs", "1",
                          "--out", str(tmp_path / "run"), "--format", "json")
    assert code == 0, err
    r = json.loads(out)
    assert r["cost"]["input_shape"] == [2, 3, 32, 32] and r["batch_size"] == 3


def test_cli_on_fake_oxford_with_voc_weights(tmp_path, capsys, voc_file):
    _fake_oxford(tmp_path / "data", split="txt")
    code, out, err = _cli(capsys, "--data", str(tmp_path / "data"), "--weights", voc_file[0],
                          "--out", str(tmp_path / "run"), "--epochs", "1")
    assert code == 0, err
    assert "loaded" in out and "(21, 256, 1, 1)" in out


@pytest.mark.parametrize("argv, words", [
    (["--size", "0"], "--size"),
    (["--data", "{tmp}/nothing"], "no such folder"),
    (["--data", "{tmp}/orphan"], "do not match"),
    (["--weights", "{tmp}/w.pt"], "not a state dict"),
    (["--out", "{tmp}/file"], "is a file, not a folder"),
    (["--out", "{tmp}/file/run"], "is a file, not a folder"),
])
def test_cli_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, argv, words):
    _fake_oxford(tmp_path / "orphan", orphan=True)
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "w.pt")
    (tmp_path / "file").write_text("a regular file")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        out = [] if "--out" in argv else ["--out", str(tmp_path / "run")]
        code = main(["segment", "--arch", ARCH, *out, *argv])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and words in err
    assert not (tmp_path / "run").exists()


def test_cli_arch_list_matches_models():
    from complexity.cli import segment as cmd_segment

    assert cmd_segment.ARCHS == ARCHS


@pytest.mark.parametrize("groups", [1, 4, 16])
def test_conv_backward_flops_are_twice_forward_even_for_grouped_convs(groups):
    """Hand count: forward MACs = N·C_out·H·W·(C_in/groups)·k²; the backward computes
    the input gradient and the weight gradient, each that many MACs again."""
    conv = nn.Conv2d(16, 16, 3, padding=1, groups=groups, bias=False)
    cost = step_cost(conv, (2, 16, 8, 8))
    macs = 2 * 16 * 8 * 8 * (16 // groups) * 9
    assert cost["forward_flops"] == 2 * macs
    # the input does not require grad, so only the weight gradient is computed
    assert cost["backward_flops"] == 2 * macs


def test_recalibrated_bn_statistics_are_the_data_statistics():
    """With equal batches, the average of per-batch means is the overall mean, and the
    average of per-batch unbiased variances is checked against numpy by hand."""
    from complexity.experiments.segmentation.train import recalibrate_bn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2, momentum=0.01), nn.Dropout(0.5))
    data = [(torch.randn(4, 3, 5, 5) * 3 + 1, None) for _ in range(3)]
    used = recalibrate_bn(net, data, max_images=8)
    assert used == 8
    with torch.no_grad():
        feats = [net[0](x).permute(1, 0, 2, 3).reshape(2, -1).numpy() for x, _ in data[:2]]
    mean = np.mean([f.mean(1) for f in feats], axis=0)
    var = np.mean([f.var(1, ddof=1) for f in feats], axis=0)
    assert net[1].running_mean.numpy() == pytest.approx(mean, rel=1e-5)
    assert net[1].running_var.numpy() == pytest.approx(var, rel=1e-5)
    assert net[1].momentum == 0.01 and net[2].training and net.training  # restored


def test_recalibration_that_sees_no_usable_batch_keeps_the_statistics():
    """Batches of one image are unusable in train mode; a loader of only those used to
    reset every BN to mean 0, variance 1 and then leave it so."""
    from complexity.experiments.segmentation.train import recalibrate_bn

    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2))
    net[1].running_mean.fill_(3.0)
    net[1].running_var.fill_(7.0)
    net[1].num_batches_tracked.fill_(5)
    used = recalibrate_bn(net, [(torch.randn(1, 3, 4, 4), None)] * 3, max_images=8)
    assert used == 0
    assert net[1].running_mean.tolist() == [3.0, 3.0]
    assert net[1].running_var.tolist() == [7.0, 7.0]
    assert int(net[1].num_batches_tracked) == 5


@pytest.mark.parametrize("n, batch", [(3, 2), (5, 2), (7, 3), (4, 2), (2, 128)])
def test_training_batches_never_hold_a_single_image(n, batch):
    from complexity.experiments.segmentation.train import training_loader

    sizes = [len(x) for x, _ in training_loader(Shapes("train", 16, n), batch)]
    assert sizes and min(sizes) >= 2
    assert sum(sizes) >= n - 1  # at most the one odd image is left out


@pytest.mark.parametrize("option", ["--batch-size", "--batch-size=1"])
def test_cli_refuses_a_training_batch_of_one(tmp_path, capsys, option):
    argv = [option, "1"] if "=" not in option else [option]
    with pytest.raises(SystemExit) as e:
        main(["segment", "--arch", ARCH, "--out", str(tmp_path / "run"), *argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and ">= 2" in err
    assert not (tmp_path / "run").exists()


def test_oxford_splits_must_not_overlap_and_come_from_one_source(tmp_path):
    _fake_oxford(tmp_path / "a", split="txt")
    (tmp_path / "a" / "val.txt").write_text("image_0003\nimage_0004\n")  # 3 is in train too
    for split in ("train", "val"):
        with pytest.raises(DataError, match="share 1 image"):
            oxford_pairs(str(tmp_path / "a"), split)
    # train.txt alone beside datasplits.mat: used to be train from .txt, val from .mat
    _fake_oxford(tmp_path / "b", split="mat")
    (tmp_path / "b" / "train.txt").write_text("image_0004\nimage_0005\n")
    val = [os.path.basename(p) for p, _ in oxford_pairs(str(tmp_path / "b"), "val")]
    train = [os.path.basename(p) for p, _ in oxford_pairs(str(tmp_path / "b"), "train")]
    assert val == ["image_0004.jpg", "image_0005.jpg"]
    assert train == ["image_0001.jpg", "image_0002.jpg", "image_0003.jpg"]  # the .mat's
    _fake_oxford(tmp_path / "c", split="txt")
    os.unlink(tmp_path / "c" / "val.txt")
    with pytest.raises(DataError, match="without its partner"):
        oxford_pairs(str(tmp_path / "c"), "train")


@pytest.mark.parametrize("victim", ["jpg/image_0003.jpg", "trimaps/image_0005.png"])
def test_cli_names_a_damaged_later_image_before_any_work(tmp_path, capsys, victim):
    """Only the first image of each split used to be read up front; a damaged later
    one surfaced after the model was built and the run had started logging."""
    _fake_oxford(tmp_path / "data", split="txt")
    (tmp_path / "data" / victim).write_bytes(b"\xff\xd8 damaged")
    code, out, err = _cli(capsys, "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and os.path.basename(victim) in err, err
    assert not (tmp_path / "run").exists()


def test_state_dict_without_num_batches_tracked_loads(tmp_path, voc_file):
    """Older state dicts have no BatchNorm num_batches_tracked; torch accepts them."""
    old = {k: v for k, v in voc_file[1].items() if not k.endswith(".num_batches_tracked")}
    assert len(old) < len(voc_file[1])
    torch.save(old, tmp_path / "old.pth")
    net = deeplab(ARCH)
    text = load_weights(net, str(tmp_path / "old.pth"), ARCH)
    assert text.startswith("loaded ") and "ignored" in text  # aux head, 21-class head skipped
    k = "backbone.0.0.weight"
    assert torch.equal(net.state_dict()[k], voc_file[1][k])
    partial = dict(old)
    del partial[k]  # a real tensor missing is still refused
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(WeightsError, match="1 tensors missing"):
        load_weights(deeplab(ARCH), str(tmp_path / "partial.pth"), ARCH)
