"""The caching-allocator model (complexity.cost.fit.allocator) on hand-made request
sequences whose outcome is worked out by hand, in the comments, from the rules of
c10/cuda/CUDACachingAllocator.cpp: kMinBlockSize 512, kSmallSize 1 MiB,
kSmallBuffer 2 MiB, kLargeBuffer 20 MiB, kMinLargeAlloc 10 MiB, kRoundLarge 2 MiB.
(The model's figures on a real GPU: benchmarks/cuda_check.py.)"""
from __future__ import annotations

import random

from complexity.cost.fit.allocator import CachingAllocator, cuda_at, cuda_step
from complexity.cost.fit.step_formula import step_formula
from complexity.cost.predict.log import Event, Key, Kind, What
from models.stack import Stack

K, M = 1 << 10, 1 << 20


def free_sizes(a, small):
    return sorted(entry[0] for entry in a.pools[small])


def test_rounding_and_the_small_pool():
    a = CachingAllocator()
    x = a.malloc(1)                  # 1 B -> 512 B, a new 2 MiB small segment
    assert (a.allocated, a.reserved) == (512, 2 * M)
    a.malloc(513)                    # -> 1024 B, from the rest of that segment
    assert (a.allocated, a.reserved) == (1536, 2 * M)
    assert free_sizes(a, True) == [2 * M - 1536]
    a.free(x)                        # 512 B free, not adjacent to the rest: two blocks
    assert free_sizes(a, True) == [512, 2 * M - 1536]


def test_small_segment_is_carved_until_full():
    a = CachingAllocator()
    for _ in range(4):               # 4 x 512 KiB = 2 MiB: one segment exactly
        a.malloc(512 * K)
    assert (a.allocated, a.reserved, free_sizes(a, True)) == (2 * M, 2 * M, [])
    a.malloc(512 * K)                # the fifth needs a second segment
    assert a.reserved == 4 * M


def test_one_to_ten_mib_requests_share_20_mib_segments():
    a = CachingAllocator()
    a.malloc(M + 1)                  # > 1 MiB: large pool; rounded 1 MiB + 512
    assert a.reserved == 20 * M      # < 10 MiB: a 20 MiB segment, split
    assert a.allocated == M + 512
    assert free_sizes(a, False) == [19 * M - 512]
    a.malloc(3 * M)                  # from the 19 MiB rest: no new segment
    assert a.reserved == 20 * M and free_sizes(a, False) == [16 * M - 512]


def test_large_rest_of_one_mib_or_less_is_not_split():
    a = CachingAllocator()
    b = a.malloc(11 * M)             # own segment: 12 MiB; rest 1 MiB is not > 1 MiB
    assert (a.allocated, a.reserved) == (12 * M, 12 * M)   # the whole block counts
    a.free(b)
    a.malloc(10 * M + 512 * K)       # reuses the 12 MiB block; rest 1.5 MiB > 1 MiB: split
    assert (a.allocated, a.reserved) == (10 * M + 512 * K, 12 * M)
    assert free_sizes(a, False) == [M + 512 * K]
    a.malloc(int(19.5 * M))          # 19.5 MiB -> a 20 MiB segment; 0.5 MiB rest kept in the block
    assert a.allocated == 10 * M + 512 * K + 20 * M


def test_best_fit_picks_the_smallest_block_that_holds_the_request():
    a = CachingAllocator()
    big = a.malloc(12 * M)           # a 12 MiB segment, whole (rest 0)
    small = a.malloc(10 * M)         # a 10 MiB segment, whole
    a.free(big)
    a.free(small)
    a.malloc(10 * M)                 # 10 MiB fits both; the 10 MiB block is the best fit
    assert free_sizes(a, False) == [12 * M] and a.reserved == 22 * M


def test_freed_neighbours_coalesce_within_a_segment():
    a = CachingAllocator()
    x, y, z = (a.malloc(2 * M) for _ in range(3))   # 2+2+2 of one 20 MiB segment, 14 left
    a.free(x)
    a.free(y)                        # x and y merge: 4 MiB; z holds the 14 MiB apart
    assert free_sizes(a, False) == [4 * M, 14 * M]
    a.free(z)                        # all of it merges back: one 20 MiB block
    assert free_sizes(a, False) == [20 * M]
    a.malloc(18 * M)                 # reuses it (rest 2 MiB, split): no new segment
    assert a.reserved == 20 * M and free_sizes(a, False) == [2 * M]


def test_pools_do_not_serve_each_other():
    a = CachingAllocator()
    a.free(a.malloc(2 * M))          # a cached 20 MiB large block
    a.malloc(512)                    # a small request never takes a large block
    assert a.reserved == 22 * M
    a.free(a.malloc(M))              # 1 MiB is small: from the small segment's rest
    a.malloc(M + 512)                # large: from the cached 20 MiB block
    assert a.reserved == 22 * M


def test_peaks_reset_like_reset_peak_memory_stats():
    a = CachingAllocator()
    a.free(a.malloc(30 * M))
    a.reset_peaks()
    assert (a.max_allocated, a.max_reserved) == (0, 30 * M)


def test_allocated_never_exceeds_reserved_on_random_sequences():
    rng = random.Random(0)
    for _ in range(30):
        a, live = CachingAllocator(), []
        for _ in range(300):
            if live and rng.random() < 0.45:
                a.free(live.pop(rng.randrange(len(live))))
            else:
                live.append(a.malloc(rng.choice([rng.randint(1, 4 * K), rng.randint(1, 3 * M),
                                                 rng.randint(1, 40 * M)])))
            assert 0 <= a.allocated <= a.reserved
            assert a.max_allocated <= a.max_reserved
        assert a.allocated == sum(b.size for b in live)
        for b in list(live):
            a.free(b)
        assert a.allocated == 0
        # everything freed: each segment is one free block again
        assert sum(e[0] for p in a.pools.values() for e in p) == a.reserved
        assert sum(len(p) for p in a.pools.values()) == a.segments


def test_adam_update_is_replayed_parameter_by_parameter():
    # params of 1 MiB + 512 and 2 MiB + 512 (large pool); the update allocates per
    # parameter sqrt (t) and denom, frees t, then the previous denom: at the second
    # parameter, denom_1 + t_2 + denom_2 are alive: (1 MiB + 512) + 2 (2 MiB + 512).
    p1, p2 = M + 512, 2 * M + 512
    events = [Event(Kind.ALLOC, p1 + p2, Key(What.UPDATE)), Event(Kind.MARK, 0)]
    r = cuda_step([p1, p2], events, [p1, p2], steps=2)
    resident = 3 * (p1 + p2)                         # weights, exp_avg, exp_avg_sq
    assert r["allocated"] == resident + p1 + 2 * p2
    assert r["allocated"] <= r["reserved"]


def test_allocator_model_holds_at_least_the_schedule_peak():
    # the schedule's exact peak, less Adam's 4-byte step counters (on the CPU for
    # CUDA), is a lower bound of what the allocator holds: it only rounds up
    net = Stack(2, 16)
    f = step_formula(net, (16, 24, 24), "cuda", checks=2)
    for b in (1, 4, 33):
        r = cuda_at(f, b)
        assert f.peak_at(b) - f.step_counter_bytes <= r["allocated"] <= r["reserved"]
