"""Per-rank memory of data-parallel training, predicted
(:mod:`complexity.cost.parallel.prediction`) against the truth: a real step of two
processes over gloo on the CPU (:mod:`complexity.cost.parallel.gloo_step`) for DDP,
FSDP2 and FSDP2 without resharding, each rank watched by the live-bytes tracker and
by PyTorch's own ``FSDPMemTracker`` / ``MemTracker``.

One spawn of two processes runs all three layouts and FSDP2 with its two
policies, mixed precision and CPU offload (the model: odd channel counts, so that
FSDP pads every shard and the ranks differ). The sharding rule itself is
checked against ``fully_shard`` on a fake process group at many sizes (hypothesis).
"""
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from torch import nn

from complexity.cost.parallel.layout import PARALLEL, shard_numel, units
from complexity.cost.parallel.policy import dtypes, parse_precision
from complexity.cost.parallel.prediction import Layout, predict_ranks
from complexity.errors import OptionError
from text_models import VOCAB

TEXT_SHAPE = (2, 16)

SHAPE = (2, 3, 8, 8)
SHARD = "[0-9]"  # the two inner Sequentials (named 2 and 3), then the root
MIXED = parse_precision("param=bfloat16,reduce=float32")
#: FSDP with each of its policies, as extra jobs of the same spawn
POLICIES = {"fsdp+mixed": dict(mixed=MIXED), "fsdp+offload": dict(offload=True)}
#: layouts whose step is also watched by torch.profiler (the MLP's)
PROFILED = ("ddp", "fsdp")
MLP = None  # made once, in the fixture


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 10, 3, padding=1), nn.ReLU(),
        nn.Sequential(nn.Conv2d(10, 7, 3, padding=1), nn.ReLU()),
        nn.Sequential(nn.Conv2d(7, 5, 3, padding=1), nn.Flatten(), nn.Linear(5 * 8 * 8, 3)))


def small_mlp() -> nn.Module:
    """Linear layers only: no oneDNN convolution, whose scratch buffers the
    profiler sees and a tensor-level count does not."""
    return nn.Sequential(nn.Linear(12, 20), nn.ReLU(),
                         nn.Sequential(nn.Linear(20, 9), nn.ReLU()), nn.Sequential(nn.Linear(9, 3)))


MLP_SHAPE = (4, 12)


def tiny_llama() -> nn.Module:
    """Llama with its LM head: 2 layers, width 32, grouped-query attention."""
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64))


@pytest.fixture(scope="module")
def measured():
    """One spawn of two processes: the CNN under each layout (the tiny Llama on two
    and four gloo ranks: ``tests/test_parallel_four_ranks.py``; on eight fake ranks:
    ``tests/test_parallel_fake.py``)."""
    from complexity.cost.parallel.gloo_step import Job, measure_ranks

    global MLP
    torch.manual_seed(0)
    MLP = small_mlp()
    model = small_cnn()
    jobs = [Job(model, SHAPE, p, shard=SHARD) for p in PARALLEL]
    jobs += [Job(model, SHAPE, "fsdp", shard=SHARD, **kw) for kw in POLICIES.values()]
    jobs += [Job(MLP, MLP_SHAPE, p, shard=None if p == "ddp" else SHARD, profile=True)
             for p in PROFILED]
    found = measure_ranks(jobs, 2)
    return model, dict(zip([*PARALLEL, *POLICIES, *(f"{p} profiled" for p in PROFILED)],
                           found))


@pytest.mark.parametrize("parallel", PARALLEL)
def test_what_each_rank_holds_is_exact(measured, parallel):
    """Parameters, gradients, optimizer state and DDP's buckets, per rank, byte for
    byte — FSDP's padded shards and the smaller optimizer state of the last rank."""
    model, runs = measured
    predicted = predict_ranks(model, SHAPE, Layout(2, parallel, SHARD))
    for real, pred in zip(runs[parallel], predicted):
        for key in ("param_bytes", "grad_bytes", "optimizer_bytes", "bucket_bytes"):
            assert pred[key] == real[key], (parallel, real["rank"], key)
    if parallel != "ddp":  # odd row counts: the ranks' states differ
        assert runs[parallel][0]["optimizer_bytes"] != runs[parallel][1]["optimizer_bytes"]


def test_ddp_peak_is_exact(measured):
    """DDP: the single-process peak plus the reducer's bucket buffers, on every rank,
    and both instruments agree."""
    model, runs = measured
    predicted = predict_ranks(model, SHAPE, Layout(2, "ddp"))
    for real, pred in zip(runs["ddp"], predicted):
        assert pred["peak_bytes"] == real["peak_bytes"] == real["torch_peak_bytes"]
        assert pred["peak_exact"]


@pytest.mark.parametrize("parallel", ["fsdp", "fsdp-no-reshard"])
def test_fsdp_peak_is_the_runs_floor(measured, parallel):
    """FSDP's peak, replayed from the single-process log with FSDP2's gathers and
    reduce-scatters inserted, is never above the tracker's on any rank, and never
    below it by more than one gathered unit: a finished gloo collective still holds
    its buffer at the peak on some runs and not on others (four repeated two-rank
    runs of this CNN measured 0, 264, 2,900, 4,072 and 4,344 B above the prediction,
    on varying ranks; the bound, root + largest unit, is 6,672 B). PyTorch's
    FSDPMemTracker, the second instrument, is within one gathered unit of the
    prediction either way (it times some frees by module state, not by when the
    storage goes, and sees the collective's buffer on some runs: 5–6% either side)."""
    model, runs = measured
    predicted = predict_ranks(model, SHAPE, Layout(2, parallel, SHARD))
    for real, pred in zip(runs[parallel], predicted):
        assert not pred["peak_exact"]  # it rests on FSDP2's internals: not claimed
        gathered = pred["parts"]["gathered (root + largest unit)"]
        excess = real["peak_bytes"] - pred["peak_bytes"]
        assert 0 <= excess <= gathered, (real["rank"], excess)
        assert abs(real["torch_peak_bytes"] - pred["peak_bytes"]) <= gathered, real["rank"]


def test_mixed_precision_rank(measured):
    """FSDP2 with ``MixedPrecisionPolicy(bfloat16, float32)``: the fp32 shards,
    gradients and optimizer state exact on each rank; the peak (bf16 gathered
    units, activations and unsharded gradients, fp32 reduce-scatter) as the
    fp32 layouts' — never above the run's, at most one gathered unit below (it
    was exact on every run seen) — and below the fp32 run's."""
    model, runs = measured
    layout = Layout(2, "fsdp", SHARD, mixed=MIXED)
    for real, pred, fp32 in zip(runs["fsdp+mixed"], predict_ranks(model, SHAPE, layout),
                                runs["fsdp"]):
        for key in ("param_bytes", "grad_bytes", "optimizer_bytes"):
            assert pred[key] == real[key] == fp32[key], (real["rank"], key)
        excess = real["peak_bytes"] - pred["peak_bytes"]
        assert 0 <= excess <= pred["parts"]["gathered (root + largest unit)"], excess
        assert real["peak_bytes"] < fp32["peak_bytes"]


def test_offload_host_holds_what_is_predicted(measured):
    """``CPUOffloadPolicy(pin_memory=False)``: every shard, gradient and state the
    rank stores is on the host, and the host's bytes are the prediction's (the
    gradients as a device would copy them out: the unpadded local shards). On the
    CPU the offload's copies are no-ops: the run's peak is the plain FSDP
    prediction's (within one gathered unit, as above), and the predicted device
    peak is that less what moved to the host."""
    model, runs = measured
    off = predict_ranks(model, SHAPE, Layout(2, "fsdp", SHARD, offload=True))
    plain = predict_ranks(model, SHAPE, Layout(2, "fsdp", SHARD))
    for real, pred, whole in zip(runs["fsdp+offload"], off, plain):
        assert real["held_on"] == ["cpu"]
        assert pred["host_bytes"] == (real["param_bytes"] + real["grad_local_bytes"]
                                      + real["optimizer_bytes"])
        assert pred["param_bytes"] == real["param_bytes"]
        excess = real["peak_bytes"] - whole["peak_bytes"]
        assert 0 <= excess <= whole["parts"]["gathered (root + largest unit)"], excess
        assert pred["peak_bytes"] < whole["peak_bytes"] - pred["param_bytes"]


@pytest.mark.parametrize("parallel", PROFILED)
def test_profiler_sees_the_peak(measured, parallel):
    """``torch.profiler``'s ``[memory]`` events (the CPU allocator's, a third
    instrument) on the MLP's step: DDP's peak is the prediction's and the
    tracker's plus 12 B (an 8-byte and a 4-byte scalar Adam's update makes below
    the dispatcher); FSDP's is above the tracker's by what gloo allocates inside
    its collectives (outside the dispatcher), at most one gathered unit on every
    run seen (124 to 844 B of 1,040)."""
    _, runs = measured
    predicted = predict_ranks(MLP, MLP_SHAPE, Layout(2, parallel, None if parallel == "ddp"
                                                    else SHARD))
    for real, pred in zip(runs[f"{parallel} profiled"], predicted):
        above = real["profiler_peak_bytes"] - real["peak_bytes"]
        if parallel == "ddp":
            assert pred["peak_bytes"] == real["peak_bytes"] and above == 12, above
        else:
            gathered = pred["parts"]["gathered (root + largest unit)"]
            assert 0 <= real["peak_bytes"] - pred["peak_bytes"] <= gathered
            assert 0 <= above <= gathered + 12, (real["rank"], above)


@pytest.fixture
def fake_group():
    """A fake process group of the world size asked for (no processes)."""
    import torch.distributed as dist
    from torch.testing._internal.distributed.fake_pg import FakeStore

    def join(rank, world_size):
        if dist.is_initialized():
            dist.destroy_process_group()
        dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=world_size)

    yield join
    if dist.is_initialized():
        dist.destroy_process_group()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # joins anew each time
@given(rows=st.integers(1, 40), inner=st.integers(1, 5), world=st.integers(1, 9),
       data=st.data())
def test_shards_as_fully_shard_makes_them(fake_group, rows, inner, world, data):
    """Each rank's shard of a (rows × inner) weight: the stored (padded) storage and
    the local rows, as ``fully_shard`` makes them on a fake process group."""
    from torch.distributed.fsdp import fully_shard

    rank = data.draw(st.integers(0, world - 1))
    fake_group(rank, world)
    net = nn.Linear(inner, rows)
    fully_shard(net)
    local = net.weight.to_local()
    assert local.untyped_storage().nbytes() == 4 * shard_numel((rows, inner), world, rank, True)
    assert local.numel() == shard_numel((rows, inner), world, rank, False)


FLOATS = [None, torch.float32, torch.bfloat16, torch.float16]


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(param=st.sampled_from(FLOATS), reduce=st.sampled_from(FLOATS),
       orig=st.sampled_from([torch.float32, torch.bfloat16]))
def test_policy_dtypes_as_fully_shard_sets_them(fake_group, param, reduce, orig):
    """The gather and reduce dtypes of a parameter, as ``fully_shard`` sets them
    from a ``MixedPrecisionPolicy`` (its clamps) on a fake process group."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    from complexity.cost.parallel.policy import Precision

    fake_group(0, 2)
    net = nn.Linear(3, 4).to(orig)
    fully_shard(net, mp_policy=MixedPrecisionPolicy(param_dtype=param, reduce_dtype=reduce))
    net(torch.ones(2, 3, dtype=param or orig))  # FSDP2 sets the dtypes on its first call
    fsdp_param = net._get_fsdp_state()._fsdp_param_group.fsdp_params[0]
    names = {None: None, **{d: str(d).removeprefix("torch.") for d in FLOATS[1:]}}
    gathered, reduced = dtypes(Precision(names[param], names[reduce]), orig)
    assert (fsdp_param.param_dtype or orig) == gathered
    assert (fsdp_param.reduce_dtype or fsdp_param.param_dtype or orig) == reduced


def test_units_and_bad_layouts():
    from torchvision.models import resnet18

    assert [n for n, _ in units(resnet18(), None)] == ["layer1", "layer2", "layer3", "layer4"]
    with pytest.raises(OptionError, match="shard='block.*' matches no module"):
        units(resnet18(), "block*")
    with pytest.raises(OptionError, match="gpus=0"):
        Layout(0)
    with pytest.raises(OptionError, match="parallel='zero'"):
        Layout(2, "zero")
    with pytest.raises(OptionError, match="mixed_precision=.*parallel='ddp'"):
        Layout(2, "ddp", mixed=MIXED)
    with pytest.raises(OptionError, match="offload=True.*parallel='ddp'"):
        Layout(2, "ddp", offload=True)
    with pytest.raises(OptionError, match="mixed_precision='param=int8'"):
        parse_precision("param=int8")


def test_one_rank_is_the_single_process_step():
    """At N = 1 every layout is the single-process step (DDP has no buckets)."""
    from complexity.cost.predict.prediction import predict

    net = small_cnn()
    one = predict(net, SHAPE)
    for parallel in PARALLEL:
        (rank,) = predict_ranks(net, SHAPE, Layout(1, parallel))
        assert rank["peak_bytes"] == one["peak_bytes"]
        assert rank["param_bytes"] == one["param_bytes"]
