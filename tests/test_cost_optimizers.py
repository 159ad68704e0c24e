"""The optimizer's state and update temporaries, against a real ``optimizer.step()``
on the CPU watched by the live-bytes tracker (every storage an aten op makes)."""
import pytest
import torch

from complexity.cost.measure.live_bytes import LiveBytes
from complexity.cost.step.optimizers import NAMES, Optimizer, TensorBytes, parse

SHAPES = [(64, 32), (128,), (32, 16, 3, 3), (10,)]

VARIANTS = ([Optimizer(n) for n in NAMES] + [Optimizer(n, foreach=True) for n in NAMES]
            + [Optimizer(n, fused=True) for n in NAMES if n not in ("sgd", "adafactor")])


def _sizes(shapes, itemsize):
    """Each tensor's bytes and shape, as the predictor hands them to the optimizer."""
    return [TensorBytes(torch.Size(s).numel() * itemsize, s) for s in shapes]


def _steady_step(opt_spec: Optimizer, shapes=SHAPES, dtype=torch.float32):
    """(state bytes, bytes the second step allocates beyond state and gradients)."""
    torch.manual_seed(0)
    params = [torch.randn(s, dtype=dtype, requires_grad=True) for s in shapes]
    opt = opt_spec.make(params)
    for _ in range(2):  # the first step creates the state; the second is the steady one
        for p in params:
            p.grad = torch.randn_like(p)
        state = [t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
        live = LiveBytes()
        live.track(params, [p.grad for p in params], state)
        before = live.live
        with live:
            opt.step()
        opt.zero_grad(set_to_none=True)
    state = [t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in state), live.peak - before


@pytest.mark.parametrize("opt", VARIANTS, ids=lambda o: o.label())
def test_state_and_temporaries_match_a_real_step(opt):
    sizes = _sizes(SHAPES, 4)
    state, temporaries = _steady_step(opt)
    assert opt.state_bytes(sizes) == state
    assert opt.step_temporaries(sizes) == temporaries


@pytest.mark.parametrize("opt", [Optimizer("adam"), Optimizer("adamw", foreach=True),
                                 Optimizer("adafactor"), Optimizer("adafactor", foreach=True)],
                         ids=lambda o: o.label())
def test_bfloat16_parameters(opt):
    sizes = _sizes(SHAPES, 2)
    state, temporaries = _steady_step(opt, dtype=torch.bfloat16)
    # the step counters stay float32 scalars whatever the parameters' dtype
    assert opt.state_bytes(sizes) == state
    assert opt.step_temporaries(sizes) == temporaries


def test_step_counters_are_not_on_cuda_unless_fused():
    sizes = [400, 40]
    assert Optimizer("adam").state_bytes(sizes, "cuda") == 880
    assert Optimizer("adam", fused=True).state_bytes(sizes, "cuda") == 888


def test_bad_names():
    with pytest.raises(ValueError, match="choose one of"):
        parse("lion")
    with pytest.raises(ValueError, match="not both"):
        parse("adam", foreach=True, fused=True)


@pytest.mark.parametrize("foreach", [False, True], ids=["for-loop", "foreach"])
def test_adafactor_events_replay_to_the_measured_temporaries(foreach):
    # the tensors its update makes and frees, in order, as a caching allocator replays
    # them (cost/fit/allocator.py): their most alive at once is the real step's
    from complexity.cost.step.adafactor import step_events

    sizes = _sizes(SHAPES, 4)
    live = most = 0
    for op, _, n in step_events(sizes, foreach):
        live += n if op == "malloc" else -n
        most = max(most, live)
    assert live == 0
    # the foreach update's 4-byte torch.tensor(1.0) is host memory, not in the events
    assert most == _steady_step(Optimizer("adafactor", foreach=foreach))[1]
