"""Tar-shard reader: sample dicts, rank split disjoint and equal-length, seeded shuffle, workers."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import unialign
from unialign.data import ShardDataset
from unialign.data.shards import count_samples, shard_groups


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(folder: Path, sizes: list[int], anchors: bool = False) -> list[Path]:
    """Point-cloud shards of the given sample counts; sample keys are unique over all shards."""
    rng = np.random.default_rng(0)
    paths, k = [], 0
    for s, n in enumerate(sizes):
        path = folder / f"shard-{s:03d}.tar"
        with tarfile.open(path, "w") as tar:
            for _ in range(n):
                buf = io.BytesIO()
                np.save(buf, rng.normal(size=(64, 3)).astype(np.float32))
                _add(tar, f"{k:05d}.npy", buf.getvalue())
                if anchors:
                    img = io.BytesIO()
                    Image.fromarray(rng.integers(0, 255, (36, 36, 3), dtype=np.uint8)).save(img, format="png")
                    _add(tar, f"{k:05d}.anchor.png", img.getvalue())
                meta = {"label": ["chair", "lamp"][k % 2]} if k % 3 else {"caption": f"object {k}", "label": None}
                _add(tar, f"{k:05d}.json", json.dumps(meta).encode())
                k += 1
        paths.append(path)
    return paths


@pytest.fixture
def cfg() -> unialign.ModelConfig:
    return unialign.load_model_config("unialign-test-tiny")


def test_groups_and_sample_dicts(tmp_path: Path, cfg: unialign.ModelConfig) -> None:
    shards = write_shards(tmp_path, [3], anchors=True)
    assert count_samples(shards[0]) == 3
    assert [(k, sorted(g)) for k, g in shard_groups(shards[0])][0] == ("00000", ["anchor.png", "json", "npy"])
    ds = ShardDataset("pts", shards, "point", cfg, classnames=["chair", "lamp"], templates=["a {}"], shuffle_buffer=1)
    samples = list(ds)
    assert [s["id"] for s in samples] == ["00000", "00001", "00002"]
    s0, s1 = samples[0], samples[1]
    assert s0["text"] == "object 0" and s0["label"] == -1 and s1["text"] == "a lamp" and s1["label"] == 1
    assert s1["inputs"].shape == (256, 3) and s1["anchor"].shape == (3, 32, 32)
    again = list(ds)[1]
    assert torch.equal(again["inputs"], s1["inputs"]) and again["seed"] == s1["seed"]  # same epoch, same seed
    ds.set_epoch(1)
    assert list(ds)[1]["seed"] != s1["seed"]


def test_rank_split_disjoint_equal_length(tmp_path: Path, cfg: unialign.ModelConfig) -> None:
    shards = write_shards(tmp_path, [4, 3, 5, 2, 4])  # 18 samples, unequal shards
    per_rank = []
    for rank in range(2):
        ds = ShardDataset("pts", shards, "point", cfg, classnames=["chair", "lamp"], rank=rank, world_size=2,
                          seed=3, shuffle_buffer=4, train=False)
        ids = [s["id"] for s in ds]
        assert len(ids) == len(ds) == ds.samples_per_rank()
        per_rank.append(ids)
    assert len(per_rank[0]) == len(per_rank[1]) > 0
    assert not set(per_rank[0]) & set(per_rank[1])
    assert len(set(per_rank[0])) == len(per_rank[0])  # no repeats inside one rank's epoch


def test_workers_share_the_rank_quota(tmp_path: Path, cfg: unialign.ModelConfig) -> None:
    shards = write_shards(tmp_path, [3, 2, 3, 1])
    ds = ShardDataset("pts", shards, "point", cfg, classnames=["chair", "lamp"], seed=1, shuffle_buffer=2)
    single = sorted(s["id"] for s in ds)
    loader = DataLoader(ds, batch_size=None, num_workers=2, collate_fn=lambda s: s)
    multi = [s["id"] for s in loader]
    assert len(multi) == len(ds) == 9 and sorted(multi) == single


def test_shuffle_buffer_is_seeded(tmp_path: Path, cfg: unialign.ModelConfig) -> None:
    shards = write_shards(tmp_path, [6])
    order = lambda seed: [s["id"] for s in ShardDataset("p", shards, "point", cfg, classnames=["chair", "lamp"],
                                                         seed=seed, shuffle_buffer=6, train=False)]
    assert order(0) == order(0) and sorted(order(0)) == sorted(order(1))
    assert any(order(0) != order(s) for s in (1, 2, 3))
    with pytest.raises(unialign.ConfigError, match="cannot feed 2 ranks"):
        ShardDataset("p", shards, "point", cfg, world_size=2, rank=1)
