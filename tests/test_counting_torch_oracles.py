"""The `torch` convention against PyTorch's own counters on real tensors:
sum(p.numel()), torchinfo's totals and per-layer shapes, FlopCounterMode."""
import pytest
import torch
import torchinfo
from hypothesis import given, settings
from torch.utils.flop_counter import FlopCounterMode

import complexity
from models.colourization import build
from strategies import params


def small(p):
    # real arithmetic: keep it small
    return {**p, "NF": min(p["NF"], 16), "NC": min(p["NC"], 16),
            "H": min(p["H"], 48), "W": min(p["W"], 48)}


@pytest.mark.parametrize("model", ["cnn", "unet"])
def test_torch_convention_against_pytorch(model):
    @settings(max_examples=25, deadline=None)
    @given(p=params(model))
    def check(p):
        p = small(p)
        net = build(model, p["k"], p["NF"], p["NC"], p["NIC"])
        shape = (1, p["NIC"], p["H"], p["W"])
        counted = complexity.count(net, shape, "torch")
        assert counted["weights"] == sum(t.numel() for t in net.parameters())
        stats = torchinfo.summary(net, input_size=shape, verbose=0)
        assert counted["weights"] == stats.total_params
        flops = FlopCounterMode(display=False)
        with flops, torch.no_grad():
            net.eval()(torch.zeros(shape))
        conv_flops = sum(v for op, v in flops.get_flop_counts()["Global"].items()
                         if "convolution" in str(op))
        assert counted["connections"] * 2 == conv_flops
        # outputs: every leaf module's output units, read off torchinfo's layer list
        leaves = [l for l in stats.summary_list if l.is_leaf_layer]
        assert counted["outputs"] == sum(
            torch.Size(l.output_size[1:]).numel() for l in leaves)

    check()


def test_count_leaves_the_module_untouched():
    net = build("cnn", 3, 4, 5, 1).train()
    before = {n: t.clone() for n, t in net.state_dict().items()}
    complexity.count(net, (1, 1, 16, 16))
    assert net.training and all(m.training for m in net.modules())
    after = net.state_dict()
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert all(t.device.type == "cpu" for t in after.values())
