"""Teacher-feature cache: fp16 round trip, missing keys, join, cache_teacher with the sampler's seeds."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch

import unialign
from unialign.data import (
    DatasetConfig, ManifestDataset, MixedModalitySampler, MixtureDataset, TeacherCache, TeacherCacheMiss,
    cache_teacher, join,
)
from unialign.data.teacher_cache import add_parser
from test_data_manifest import write_world


def test_round_trip_append_and_reopen(tmp_path: Path) -> None:
    feats = torch.randn(5, 24)
    with TeacherCache(tmp_path / "c") as cache:
        cache.write("t", ["a", "b", "c"], [1, 1, 2], feats[:3])
        cache.write("t", ["d", "a"], torch.tensor([0, 7]), feats[3:])
        cache.write("u", ["a"], [1], torch.ones(1, 3))
    again = TeacherCache(tmp_path / "c")
    out = again.lookup("t", ["a", "d", "a", "c"], [1, 0, 7, 2])
    assert out.dtype == torch.float32 and out.shape == (4, 24)
    assert torch.allclose(out, feats[[0, 3, 4, 2]], atol=1e-2, rtol=1e-3)  # fp16 storage
    assert again.teachers() == ["t", "u"] and ("t", "a", 7) in again and ("t", "a", 8) not in again
    assert np.load(tmp_path / "c" / "t.index.npz")["rows"].shape == (5,)
    assert not list((tmp_path / "c").glob("*.tmp*"))  # atomic index write left no temp file
    # a rewrite of a key wins, after reopen too
    with again:
        again.write("t", ["a"], [1], torch.zeros(1, 24))
    assert torch.equal(TeacherCache(tmp_path / "c").lookup("t", ["a"], [1]), torch.zeros(1, 24))


def test_missing_key_and_teacher_errors(tmp_path: Path) -> None:
    with TeacherCache(tmp_path) as cache:
        cache.write("t", ["a"], [1], torch.ones(1, 4))
    with pytest.raises(TeacherCacheMiss, match=f"id 'a' with aug seed 2 in {tmp_path}"):
        cache.lookup("t", ["a"], [2])
    with pytest.raises(KeyError, match="no features of teacher 'v'"):
        cache.lookup("v", ["a"], [1])
    with pytest.raises(unialign.ConfigError, match="width 5 != cached width 4"):
        cache.write("t", ["b"], [1], torch.ones(1, 5))


def test_cache_teacher_matches_sampler_and_join(tmp_path: Path) -> None:
    cfg = unialign.load_model_config("unialign-test-tiny")
    files = write_world(tmp_path / "data")
    ds = ManifestDataset("shapes", DatasetConfig(str(files["pc"]), "point", classnames=["chair", "table_lamp"]), cfg)
    calls: list[int] = []

    def teacher(x: torch.Tensor) -> torch.Tensor:  # (B, 256, 3) -> (B, 6): a deterministic "teacher"
        calls.append(x.shape[0])
        return torch.cat([x.mean(1), x.std(1)], dim=1)

    cache = cache_teacher(ds, "pt", teacher, tmp_path / "cache", seeds_per_sample=2, batch_size=3, seed=11)
    assert sum(calls) == 8 and max(calls) == 3
    cache_teacher(ds, "pt", teacher, tmp_path / "cache", seeds_per_sample=2, batch_size=3, seed=11)
    assert sum(calls) == 8  # resumed run: everything already cached
    sampler = MixedModalitySampler.from_datasets({"shapes": ds}, global_batch=2, seed=11, aug_views=2)
    mixture = MixtureDataset({"shapes": ds})
    for step in list(sampler) + list(sampler):
        mb = join(mixture[step]["shapes"], TeacherCache(tmp_path / "cache"), ["pt"])
        assert mb.teacher["pt"].shape == (2, 6)
        assert torch.allclose(mb.teacher["pt"], teacher(mb.inputs), atol=2e-3)  # same seed -> same view
    wrong = MixedModalitySampler.from_datasets({"shapes": ds}, global_batch=2, seed=11, aug_views=3)
    with pytest.raises(TeacherCacheMiss, match="aug seed"):
        for step in [st for _ in range(3) for st in wrong]:
            join(mixture[step]["shapes"], cache, ["pt"])


def test_cli_parser(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["cache-teacher", "shapes.yaml", "--teacher", "m:f", "--name", "pt", "--out",
                              str(tmp_path), "--views", "4", "--eval"])
    assert args.views == 4 and args.train is False and args.folder == str(tmp_path) and callable(args.func)
