"""Mixed precision: ``StepOptions(autocast=...)`` predicted (a trace on fake tensors
under the same autocast, its casts recorded) against one real CPU bfloat16 training
step and the fake step of :func:`complexity.cost.measure.cpu_step.measure`, for every KEY."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from complexity.cost.keys import KEYS
from complexity.cost.measure.cpu_step import measure
from complexity.cost.step.optimizers import Optimizer
from complexity.cost.step.options import StepOptions
from complexity.cost.predict.prediction import predict_step
from complexity.cost.step.trainable import set_trainable

BF16 = StepOptions(autocast="bfloat16")


def small():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 36, 5))


def resnet18():
    import torchvision

    return torchvision.models.resnet18(num_classes=10)


def vit():
    from torchvision.models.vision_transformer import VisionTransformer

    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                             hidden_dim=32, mlp_dim=64, num_classes=10)


MODELS = {"small": (small, (2, 3, 8, 8)), "resnet18": (resnet18, (2, 3, 32, 32)),
          "vit": (vit, (2, 3, 32, 32))}


def _build(name, trainable):
    torch.manual_seed(0)
    make, shape = MODELS[name]
    net = make()
    set_trainable(net, trainable)
    return net, shape


@pytest.mark.parametrize("trainable", ["full", "last"])
@pytest.mark.parametrize("name", list(MODELS))
def test_prediction_equals_a_real_bfloat16_step(name, trainable):
    net, shape = _build(name, trainable)
    p = predict_step(net, shape, options=BF16)
    assert p.unmodelled == []
    real = measure(net, shape, how="real", options=BF16)
    # The ViT (full) was over-predicted by 2048 bytes, with or without autocast:
    # its class token's and position embedding's gradients were counted as the
    # broadcast gradient they are summed from (sum_to_size makes their own).
    assert {k: p.values[k] for k in KEYS} == {k: real[k] for k in KEYS}


@pytest.mark.parametrize("name", ["small", "vit"])  # resnet18 has the small net's layers
def test_fake_step_equals_the_real_one(name):
    net, shape = _build(name, "full")
    fake = measure(net, shape, options=BF16)
    real = measure(net, shape, how="real", options=BF16)
    keys = list(KEYS)
    if any(isinstance(m, nn.BatchNorm2d) for m in net.modules()):
        # PyTorch's fake (meta) batch norm gives a bfloat16 input with float32 weights
        # bfloat16 save_mean/save_invstd; the CPU kernel keeps float32 ones (the
        # prediction follows the real kernel): 2 bytes per channel per statistic.
        channels = sum(m.num_features for m in net.modules() if isinstance(m, nn.BatchNorm2d))
        assert real["saved_activation_bytes"] - fake["saved_activation_bytes"] == 2 * 2 * channels
        keys.remove("saved_activation_bytes")
    assert {k: fake[k] for k in keys} == {k: real[k] for k in keys}


def test_adamw_foreach():
    options = StepOptions(optimizer=Optimizer("adamw", foreach=True), autocast="bfloat16")
    net, shape = _build("small", "full")
    assert predict_step(net, shape, options=options).values == measure(
        net, shape, how="real", options=options)


def test_the_casts_are_in_the_graph():
    # One cast per leaf parameter per forward (autocast's cache), whatever reads it:
    # a weight shared by two linears is cast once.
    lin = nn.Linear(4, 4)
    net = nn.Sequential(lin, nn.ReLU(), lin)
    p = predict_step(net, (3, 4), options=BF16)
    casts = [c for c in p.graph.calls if c.name == "_to_copy"]
    # weight and bias once each, the input, and the logits to float32 for the loss
    assert len(casts) == 4
    assert p.values == measure(net, (3, 4), how="real", options=BF16)


def test_float16_on_the_cpu_is_refused():
    with pytest.raises(ValueError, match="float16"):
        measure(small(), (2, 3, 8, 8), how="real", options=StepOptions(autocast="float16"))


FP16 = StepOptions(autocast="float16")


def convnext():
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    return ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)], num_classes=10)


def bert_eager():
    pytest.importorskip("transformers")
    from transformers import BertConfig, BertForSequenceClassification

    # eager attention: a GPU would run scaled_dot_product_attention fused (no rule)
    return BertForSequenceClassification(BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, attn_implementation="eager"))


CUDA_MODELS = {"small": (small, (2, 3, 8, 8), {}), "resnet18": (resnet18, (2, 3, 32, 32), {}),
               "convnext": (convnext, (2, 3, 32, 32), {}),
               "bert": (bert_eager, (2, 64), dict(input_dtype=torch.long, input_high=100))}


def _fake_bn_statistics(net, trainable) -> int:
    """Bytes the replayed float16 step keeps fewer than cuDNN: replayed on CPU
    tensors, PyTorch's fake ``cudnn_batch_norm`` (a decomposition into
    ``native_batch_norm``, whose CPU branch returns the statistics in the input's
    dtype) gives a float16 input float16 ``save_mean``/``save_var``; on fake CUDA
    tensors it gives float32 ones, as cuDNN makes them in the weight's dtype
    (``at::empty({num_features}, weight_t.options())`` in
    aten/src/ATen/native/cudnn/BatchNorm.cpp), and the prediction follows cuDNN: 2 bytes
    per channel per statistic, for each batch norm whose input needs a gradient."""
    if trainable != "full":
        return 0
    return 2 * 2 * sum(m.num_features for m in net.modules()
                       if isinstance(m, nn.modules.batchnorm._BatchNorm))


@pytest.mark.parametrize("trainable", ["full", "last"])
@pytest.mark.parametrize("name", list(CUDA_MODELS))
def test_cuda_float16_against_the_fake_cuda_step(name, trainable):
    """float16 autocast is CUDA's: the measurement records the forward on fake CUDA
    tensors (CUDA's autocast lists, cuDNN's batch norm) and replays it on fake CPU
    ones for autograd's backward and the update (cost/measure/cuda_replay.py). Every key
    exact, but for the fake batch norm's statistics."""
    make, shape, kw = CUDA_MODELS[name]
    torch.manual_seed(0)
    net = make()
    set_trainable(net, trainable)
    p = predict_step(net, shape, options=FP16, **kw)
    assert p.unmodelled == []
    m = measure(net, shape, options=FP16, **kw)
    fake_bn = _fake_bn_statistics(net, trainable)
    assert p.values["saved_activation_bytes"] - m["saved_activation_bytes"] == fake_bn
    assert 0 <= p.values["peak_bytes"] - m["peak_bytes"] <= fake_bn
    keys = [k for k in KEYS if k not in ("saved_activation_bytes", "peak_bytes")]
    assert {k: p.values[k] for k in keys} == {k: m[k] for k in keys}


@pytest.mark.parametrize("options", [
    StepOptions(autocast="float16", optimizer=Optimizer("sgd-momentum", foreach=True)),
    StepOptions(autocast="float16", optimizer=Optimizer("adamw", fused=True)),
    StepOptions(autocast="float16", optimizer=Optimizer("adam", foreach=True)),
    StepOptions(autocast="float16", grad_accum=2),
    StepOptions(autocast="float16", set_to_none=False),
], ids=lambda o: o.label())
def test_cuda_float16_options_against_the_fake_cuda_step(options):
    # convnext: no batch norm, so every key is exact
    torch.manual_seed(0)
    net = convnext()
    shape = (2, 3, 32, 32)
    assert predict_step(net, shape, options=options).values == measure(net, shape,
                                                                       options=options)


def test_cuda_float16_step_counters_are_host_memory():
    # Adam's step counters of CUDA parameters sit on the CPU (unless fused): neither
    # the optimizer's device bytes nor the peak count them
    net = small()
    m = measure(net, (2, 3, 8, 8), options=FP16)
    params = list(net.parameters())
    assert m["optimizer_bytes"] == 2 * sum(p.numel() * 4 for p in params)
    fused = StepOptions(autocast="float16", optimizer=Optimizer("adam", fused=True))
    assert measure(net, (2, 3, 8, 8), options=fused)["optimizer_bytes"] == \
        m["optimizer_bytes"] + 4 * len(params)


def test_cuda_float16_checkpointing_is_not_measured():
    with pytest.raises(ValueError, match="checkpoint"):
        measure(small(), (2, 3, 8, 8), options=StepOptions(autocast="float16",
                                                           checkpoint="0"))


def test_bert_lora_float32_attention_math_casts_back():
    """Under CPU bfloat16 autocast BERT's attention (dropout on: the math path)
    runs in float32 and returns ``matmul(attn, v).to(bf16)`` after ``attn.to(bf16)``:
    both casts are alive beside the float32 weights and product. With LoRA on the
    projections the forward peaks there (12288 bytes short before the rule had the
    casts). Against a real step, every key."""
    pytest.importorskip("peft")
    pytest.importorskip("transformers")
    from transformers import BertConfig, BertForSequenceClassification

    from complexity.cost.step.lora import LoRA, apply_lora

    torch.manual_seed(0)
    net = apply_lora(BertForSequenceClassification(BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64)),
        LoRA(r=8, alpha=16, targets="*.attention.self.*"))
    shape, kw = (2, 64), dict(input_dtype=torch.long, input_high=100)
    p = predict_step(net, shape, options=BF16, **kw)
    assert p.unmodelled == []
    real = measure(net, shape, how="real", options=BF16, **kw)
    assert {k: p.values[k] for k in KEYS} == real


@pytest.mark.parametrize("name", ["resnet18", "bert"])
def test_the_replayed_forward_is_the_recorded_one(name):
    """The replay itself moves nothing: the forward and loss replayed on fake CPU
    tensors allocate, free and keep for backward what the eager forward on fake CUDA
    tensors did under CUDA's float16 autocast — the same peak of live bytes and the
    same saved bytes (BERT's eager attention holds tensors past their last use:
    the replay lets go of them where Python did) — but for the batch norm statistics
    the fake kernel gives CPU tensors in float16 (:func:`_fake_bn_statistics`)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from complexity.cost.measure import cuda_replay
    from complexity.cost.step.autocast import autocast_region
    from complexity.cost.measure.live_bytes import LiveBytes
    from complexity.cost.step.batch import logits, loss_target, make_input
    from complexity.cost.step.state import stand_ins
    from complexity.cost.step.state import tensor_attributes

    make, shape, kw = CUDA_MODELS[name]
    torch.manual_seed(0)
    net = make().train()
    named = dict([*net.named_parameters(), *net.named_buffers()])

    def forward_loss(state, attributes, x, target):
        with stand_ins(net, state, attributes):
            out = logits(net(x))
            if target is None:
                target = torch.randint(0, out.shape[1], out.shape[:1], device=out.device)
            target = loss_target(out, target)
            return F.cross_entropy(out, target), target

    def watch(run):
        live, saved = LiveBytes(), {}

        def pack(t):
            saved[id(t.untyped_storage())] = t.untyped_storage()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), live:
            loss, _ = run()
            del loss
        return live.peak, sum(s.nbytes() for s in saved.values())

    with FakeTensorMode():
        state = {n: cuda_replay._cpu(t) for n, t in named.items()}
        attributes = {k: cuda_replay._cpu(t) for k, t in tensor_attributes(net).items()}
        x = make_input(shape, kw.get("input_dtype"), kw.get("input_high"), "cpu")
        replay = cuda_replay.CudaReplay(forward_loss, state, attributes)
        target = replay.prepare(x, None)
        on_cuda = {n: cuda_replay._cuda(t) for n, t in state.items()}
        attrs_cuda = {k: cuda_replay._cuda(t) for k, t in attributes.items()}
        xc, tc = cuda_replay._cuda(x), cuda_replay._cuda(target)

        def eager():
            with autocast_region("cuda", torch.float16):
                return forward_loss(on_cuda, attrs_cuda, xc, tc)

        (eager_peak, eager_saved), (peak, saved) = watch(eager), watch(lambda: replay(x, target))
    fake_bn = _fake_bn_statistics(net, "full")
    assert eager_saved - saved == fake_bn
    assert 0 <= eager_peak - peak <= fake_bn
