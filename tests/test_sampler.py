"""Mixed-modality sampler: step composition, repeat / balanced downsampling, distribution, resume, views."""

from __future__ import annotations

from collections import Counter

import pytest

from unialign.data import MixedModalitySampler, PoolSpec, aug_seed, cached_view_seeds, split_batch
from unialign.errors import ConfigError


def specs() -> dict[str, PoolSpec]:
    return {
        "img": PoolSpec(labels=[i % 10 for i in range(100)], weight=0.5),
        "pts": PoolSpec(labels=[i % 3 for i in range(30)], weight=0.3, repeat=2),
        "aud": PoolSpec(labels=[0] * 50 + [1] * 5, weight=0.2, max_per_class=10),
    }


def test_split_batch_exact() -> None:
    assert split_batch([0.5, 0.3, 0.2], 2048) == [1024, 614, 410]
    assert split_batch([1, 1, 100], 10) == [1, 1, 8]  # every dataset at least one
    assert split_batch([1, 2], 7) == [2, 5]
    assert split_batch([1, 1], 8, multiple=4) == [4, 4]
    for w, t in [([0.1, 0.7, 0.2], 33), ([3, 3, 3, 1], 11), ([1e-6, 1.0], 5)]:
        assert sum(split_batch(w, t)) == t and min(split_batch(w, t)) >= 1
    with pytest.raises(ConfigError, match="divide by 3"):
        split_batch([1, 1], 8, multiple=3)
    with pytest.raises(ConfigError, match="too small"):
        split_batch([1, 1, 1], 2)


def test_step_composition_matches_weights() -> None:
    s = MixedModalitySampler(specs(), global_batch=20, seed=1)
    assert s.global_sizes == {"img": 10, "pts": 6, "aud": 4}
    steps = list(s)
    assert len(steps) == s.steps_per_epoch == len(s) == 10  # img: 100 / 10 = 10 steps, the largest
    for step in steps:
        assert set(step) == {"img", "pts", "aud"}
        assert {k: len(v) for k, v in step.items()} == {"img": 10, "pts": 6, "aud": 4}
    # one epoch reads the largest pool exactly once
    assert Counter(i for st in steps for i, _ in st["img"]) == Counter(range(100))


def test_repeat_and_balanced_downsampling_counts() -> None:
    s = MixedModalitySampler(specs(), global_batch=20, seed=3)
    assert s.pool_lengths == {"img": 100, "pts": 60, "aud": 15}  # aud: min(50, 10) + 5
    pts = [s._entries("pts", k, 1)[0][0] for k in range(60)]  # pass 0 of pts
    assert Counter(pts) == {i: 2 for i in range(30)}  # repeat=2: every sample exactly twice per pass
    seeds = [sd for sd in (s._entries("pts", k, 1)[0] for k in range(60))]
    assert len(set(seeds)) == 60  # the two copies get different augmentation seeds
    for p in range(3):
        aud = [i for i, _ in s._entries("aud", p * 15, 15)]
        assert sum(i < 50 for i in aud) == 10 and sorted(i for i in aud if i >= 50) == [50, 51, 52, 53, 54]
        assert len(set(aud)) == 15  # no sample doubled while another is dropped
    first, second = ({i for i, _ in s._entries("aud", p * 15, 15)} for p in (0, 1))
    assert first != second  # a fresh downsampled subset per pass


def test_wraps_across_passes_and_deterministic() -> None:
    a = MixedModalitySampler(specs(), global_batch=20, seed=5)
    b = MixedModalitySampler(specs(), global_batch=20, seed=5)
    c = MixedModalitySampler(specs(), global_batch=20, seed=6)
    sa, sb, sc = list(a), list(b), list(c)
    assert sa == sb and sa != sc
    aud = [i for st in sa for i, _ in st["aud"]]  # 40 draws from a 15-long pool: 2 full passes + 10
    assert len(aud) == 40 and len(set(aud[:15])) == 15 and len(set(aud[15:30])) == 15
    assert list(a)[0] != sa[0]  # the next epoch is a different order
    assert a.epoch == 2 and a.step == 0


def test_distributed_disjoint_union_equal_steps() -> None:
    single = list(MixedModalitySampler(specs(), global_batch=20, seed=2, size_multiple=2))
    ranks = [list(MixedModalitySampler(specs(), global_batch=20, seed=2, rank=r, world_size=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(single)
    for k, step in enumerate(single):
        for name, entries in step.items():
            r0, r1 = ranks[0][k][name], ranks[1][k][name]
            assert len(r0) == len(r1) == len(entries) // 2
            assert r0 + r1 == entries  # union is the single-process step (with its seeds)
            if name == "img":
                assert not {i for i, _ in r0} & {i for i, _ in r1}  # disjoint samples
    with pytest.raises(ConfigError, match="divide by 2"):
        MixedModalitySampler(specs(), global_batch=21, world_size=2)


def test_resume_reproduces_remaining_steps() -> None:
    full = MixedModalitySampler(specs(), global_batch=20, seed=9)
    ref = list(full) + list(full)
    run = MixedModalitySampler(specs(), global_batch=20, seed=9)
    it = iter(run)
    done = [next(it) for _ in range(4)]
    state = run.state_dict()
    assert state["epoch"] == 0 and state["step"] == 4 and all(isinstance(v, (int, list)) for v in state.values())
    resumed = MixedModalitySampler(specs(), global_batch=20, seed=9)
    resumed.load_state_dict(state)
    assert done + list(resumed) + list(resumed) == ref
    with pytest.raises(ConfigError, match="seed"):
        MixedModalitySampler(specs(), global_batch=20, seed=10).load_state_dict(state)


def test_aug_views_restricts_seeds_to_cached_set() -> None:
    s = MixedModalitySampler(specs(), global_batch=20, seed=4, aug_views=2)
    seen: dict[int, set[int]] = {}
    for _ in range(4):
        for step in s:
            for i, sd in step["pts"]:
                seen.setdefault(i, set()).add(sd)
    for i, sds in seen.items():
        assert sds == set(cached_view_seeds(4, "pts", i, 2))  # repeat=2: both views used every pass
    assert aug_seed(4, "pts", 0, 0) != aug_seed(4, "img", 0, 0) != aug_seed(5, "pts", 0, 0)
    assert 0 <= aug_seed(4, "pts", 0, 0) < 2**62
