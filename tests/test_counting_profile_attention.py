"""`profile --device cpu` counts the same MACs as the meta device, attention included.

On real tensors in eval mode under ``no_grad``, ``nn.MultiheadAttention`` takes the
fused ``aten._native_multi_head_attention`` fast path, ``nn.TransformerEncoderLayer``
``aten._transformer_encoder_layer_fwd`` and ``F.scaled_dot_product_attention`` the
CPU flash kernel; ``FlopCounterMode`` has no formula for any of them, so a plain cpu
run counts their MACs as 0 (vit_b_16: 11.27 G instead of 17.56 G). The meta run and
the cpu run are two routes to one number; a hand count is the third for a bare
attention layer.
"""
from __future__ import annotations

import functools
import json

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import complexity
from cli_helpers import run_cli
from complexity.counting.profile import decomposed_attention, profile


def small_vit():
    return torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2,
                                                num_heads=2, hidden_dim=32, mlp_dim=64)


class SDPA(nn.Module):
    """q, k, v projections and ``F.scaled_dot_product_attention`` (as timm's ViT)."""

    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):  # N, C, H, W → tokens
        n, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        q, k, v = self.qkv(t).reshape(n, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v)
        return self.proj(a.transpose(1, 2).reshape(n, h * w, c))


class Encoder(nn.Module):
    """``nn.TransformerEncoder`` on the pixels as tokens (the fused encoder-layer path)."""

    def __init__(self, dim=16):
        super().__init__()
        layer = nn.TransformerEncoderLayer(dim, 2, dim_feedforward=32, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, x):
        return self.encoder(x.flatten(2).transpose(1, 2))


MODELS = {
    "small_vit": (small_vit, (1, 3, 32, 32)),
    "vit_b_16_32": (functools.partial(torchvision.models.vit_b_16, image_size=32), (1, 3, 32, 32)),
    "resnet18": (torchvision.models.resnet18, (1, 3, 32, 32)),
    "efficientnet_b0": (torchvision.models.efficientnet_b0, (1, 3, 32, 32)),
    "mobilenet_v3_small": (torchvision.models.mobilenet_v3_small, (1, 3, 32, 32)),
    "swin_t": (torchvision.models.swin_t, (1, 3, 64, 64)),
    "sdpa": (SDPA, (2, 16, 4, 4)),
    "transformer_encoder": (Encoder, (2, 16, 4, 4)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_cpu_macs_equal_meta_macs(name):
    factory, shape = MODELS[name]
    torch.manual_seed(0)
    with torch.device("meta"):
        meta_model = factory()
    cpu_model = factory()
    meta = complexity.profile(meta_model, shape, device="meta")
    cpu = complexity.profile(cpu_model, shape, device="cpu")
    assert meta.macs > 0
    assert cpu.macs == meta.macs
    assert cpu.ops == meta.ops
    assert [(r.name, r.macs) for r in cpu.layers] == [(r.name, r.macs) for r in meta.layers]


def test_small_vit_attention_counted_on_cpu():
    """The attention MACs of the small ViT by hand: per layer, q·kᵀ and a·v over 2
    heads of width 16 on 17 tokens (16 patches + class token): 2 · 2·17·17·16."""
    p = profile(small_vit(), (1, 3, 32, 32), device="cpu", layers=False)
    assert p["ops"]["aten.bmm"] == 2 * (2 * 2 * 17 * 17 * 16)


def test_plain_flopcounter_misses_the_fast_path():
    """Why the fix is needed: without it the cpu run misses attention entirely."""
    model = small_vit().eval()
    x = torch.zeros(1, 3, 32, 32)
    with torch.no_grad(), FlopCounterMode(display=False) as plain:
        model(x)
    with torch.no_grad(), decomposed_attention(), FlopCounterMode(display=False) as fixed:
        model(x)
    meta = profile(small_vit(), (1, 3, 32, 32), layers=False)
    assert plain.get_total_flops() < fixed.get_total_flops() == 2 * meta["macs"]


def test_decomposed_attention_restores_the_fast_path_and_results():
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        fast = mha(x, x, x, need_weights=False)[0]
        before = torch.backends.mha.get_fastpath_enabled()
        with decomposed_attention():
            assert not torch.backends.mha.get_fastpath_enabled()
            slow = mha(x, x, x, need_weights=False)[0]
        assert torch.backends.mha.get_fastpath_enabled() == before
    torch.testing.assert_close(fast, slow)


def test_cli_profile_cpu_equals_meta(capsys):
    out = {}
    for device in ("meta", "cpu"):
        code, text, _ = run_cli(["profile", "tests.test_counting_profile_attention:small_vit",
                              "--input", "1,3,32,32", "--device", device, "--format", "json"],
                             capsys)
        assert code == 0
        out[device] = json.loads(text)
    assert out["cpu"]["macs"] == out["meta"]["macs"] > 0


def test_derive_cpu_equals_meta():
    """``derive --device cpu`` verifies the same formula as on meta (it printed one
    missing the attention as verified). By hand, batch 2, 2 heads of width 8 on H·W
    tokens: q·kᵀ and a·v are 2 · 2·2·(HW)²·8 MACs, the two projections 2·HW·16·(48 + 16)."""
    d = {device: complexity.derive(SDPA(), "H,W", (2, 16, 4, 4), device=device)
         for device in ("meta", "cpu")}
    assert d["cpu"].formulas == d["meta"].formulas
    macs = d["cpu"].formulas["macs"]
    H, W = sorted(macs.free_symbols, key=str)
    assert (macs - (64 * H**2 * W**2 + 2048 * H * W)).expand() == 0
