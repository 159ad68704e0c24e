"""LoRA through peft: the adapters trainable, the base frozen, and the step's
cost predicted as measured on a real CPU step."""
import pytest
import torch
from torch import nn

from complexity.cost.step.lora import LoRA, apply_lora, parse_lora, target_modules
from complexity.cost.measure.cpu_step import measure
from complexity.cost.predict.prediction import predict_with_unmodelled

pytest.importorskip("peft")


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        h = self.conv(x).relu().mean((2, 3))
        return self.head(h + self.mlp(h))


@pytest.mark.parametrize("targets,dropout", [("mlp.*", 0.0), ("*", 0.0), ("mlp.0", 0.1)])
def test_lora_step_predicted_as_measured(targets, dropout):
    torch.manual_seed(0)
    net = apply_lora(Tiny(), LoRA(r=2, alpha=4, targets=targets, dropout=dropout))
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    shape = (2, 3, 8, 8)
    predicted, unmodelled = predict_with_unmodelled(net, shape)
    measured = measure(net, shape, how="real")
    assert unmodelled == []
    assert predicted == measured


def test_adapter_shapes_follow_the_paper():
    net = apply_lora(Tiny(), LoRA(r=3, targets="head"))
    params = {n: tuple(p.shape) for n, p in net.named_parameters() if p.requires_grad}
    assert sorted(params.values()) == [(3, 8), (5, 3)]  # A: r × in, B: out × r


def test_a_glob_that_matches_nothing_is_named():
    with pytest.raises(ValueError, match="matches no Linear or Conv2d"):
        target_modules(Tiny(), LoRA(targets="decoder.*"))


@pytest.mark.parametrize("text,message", [("r=8", "needs targets"), ("rank=8,targets=*", "expected"),
                                          ("r=x,targets=*", "rank"), ("targets=*,dropout=1", "dropout"),
                                          ("r=2,r=3,targets=*", "twice")])
def test_bad_specs(text, message):
    with pytest.raises(ValueError, match=message):
        parse_lora(text)
