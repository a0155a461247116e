"""One-phase training: accumulation, losses going down, exact resume, non-finite steps, teacher cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from train_fixtures import train_config, write_world
from unialign.checkpoint import ADAPTERS
from unialign.train.config import load_train_config
from unialign.train.loop import Trainer, TrainingError


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    return write_world(tmp_path_factory.mktemp("world"))


def _trainer(world: dict, out: Path, **kw) -> Trainer:
    return Trainer(load_train_config(train_config(world, out, **kw)))


def test_accumulated_gradients_equal_summed_loss_gradients(world: dict, tmp_path: Path) -> None:
    tr = _trainer(world, tmp_path)
    plan = next(iter(tr.sampler))
    assert set(plan) == {"imgs", "sounds", "shapes", "scenes"} and sum(map(len, plan.values())) == 8
    batches = tr.micro_batches(plan)
    tr.model.zero_grad()
    tr.accumulate_gradients(batches)
    accumulated = {n: p.grad.clone() for n, p in tr.model.named_trainable_parameters() if p.grad is not None}
    tr.model.zero_grad()
    total = sum(sum(tr.micro_batch_losses(mb).values()) for mb in batches)
    total.backward()
    summed = {n: p.grad.clone() for n, p in tr.model.named_trainable_parameters() if p.grad is not None}
    assert accumulated.keys() == summed.keys() and len(accumulated) > 10
    for name in summed:
        assert torch.allclose(accumulated[name], summed[name], atol=1e-6, rtol=1e-5), name


def test_every_loss_term_is_computed_and_training_lowers_them(world: dict, tmp_path: Path) -> None:
    tr = _trainer(world, tmp_path, steps=40)
    tr.run(progress=False)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    keys = {k for k in lines[0] if k.endswith("_loss")}
    for modality in ("image", "audio", "point", "depth"):
        assert f"{modality}/nce_loss" in keys and f"{modality}/soft_bind_loss" in keys
    for modality in ("point", "depth"):  # the datasets with paired images
        assert f"{modality}/anchor_distil_loss" in keys and f"{modality}/nce_image_loss" in keys
    for key in sorted(keys):
        first = sum(line[key] for line in lines[:5]) / 5
        last = sum(line[key] for line in lines[-5:]) / 5
        assert last < first, f"{key}: {first:.4f} -> {last:.4f}"
    assert (tmp_path / "checkpoint" / ADAPTERS).is_file()


def test_resume_continues_exactly(world: dict, tmp_path: Path) -> None:
    straight = _trainer(world, tmp_path / "a", steps=6)
    straight.run(progress=False)
    first = _trainer(world, tmp_path / "b", steps=6)
    first.run(max_steps=3, progress=False)  # stops after step 3 with a checkpoint
    del first
    second = _trainer(world, tmp_path / "b", steps=6)
    assert second.resume() and second.step == 3
    second.run(progress=False)
    a, b = straight.model.state_dict(), second.model.state_dict()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_non_finite_steps_are_skipped_counted_then_fatal(world: dict, tmp_path: Path, monkeypatch) -> None:
    tr = _trainer(world, tmp_path, steps=3, max_bad_steps=2)
    before = {n: p.detach().clone() for n, p in tr.model.named_trainable_parameters()}
    original = tr.micro_batch_losses
    calls = {"n": 0}

    def poisoned(mb):
        calls["n"] += 1
        terms = original(mb)
        if calls["n"] == 1:  # the very first micro-batch of step 1 yields NaN
            terms["nce_loss"] = terms["nce_loss"] * float("nan")
        return terms

    monkeypatch.setattr(tr, "micro_batch_losses", poisoned)
    assert tr.train_step(next(iter(tr.sampler))) is None
    assert tr.skipped_steps == 1
    for n, p in tr.model.named_trainable_parameters():
        assert torch.equal(p, before[n]), f"{n} changed in a skipped step"
    monkeypatch.setattr(tr, "micro_batch_losses", lambda mb: {"nce_loss": torch.tensor(float("inf"))})
    with pytest.raises(TrainingError, match="consecutive steps with a non-finite loss"):
        tr.run(progress=False)


def test_teacher_features_from_the_cache_drive_model_distillation(world: dict, tmp_path: Path) -> None:
    from unialign.config import load_model_config
    from unialign.data import build_datasets, cache_teacher

    cfg = load_train_config(train_config(world, tmp_path / "run", steps=12, aug_views=2))
    ds = build_datasets({"shapes": cfg.data["shapes"]}, load_model_config("unialign-test-tiny"))["shapes"]
    weights = torch.randn(9, 24, generator=torch.Generator().manual_seed(1))

    def teacher(points: torch.Tensor) -> torch.Tensor:  # a fixed "foundation model": pooled xyz statistics
        x = points.reshape(points.shape[0], -1, 3)
        return torch.cat([x.mean(1), x.std(1), x.abs().max(1).values], dim=1) @ weights

    cache_teacher(ds, "point_teacher", teacher, tmp_path / "cache", seeds_per_sample=2, batch_size=4)
    cfg = load_train_config(train_config(world, tmp_path / "run", steps=12, aug_views=2)
                            | {"teachers_cache": str(tmp_path / "cache")})
    tr = Trainer(cfg)
    tr.run(progress=False)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    key = "point/feat_align_loss/point_teacher"
    assert key in lines[0]
    assert lines[-1][key] < lines[0][key]


def _write_shards(world: dict, folder: Path) -> list[str]:
    """Pack the 'shapes' dataset into two webdataset-layout tar shards (input, anchor, json per key)."""
    import tarfile

    manifest = Path(world["shapes"]["manifest"])
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    paths = []
    for s in range(2):
        path = folder / f"shapes-{s:03d}.tar"
        with tarfile.open(path, "w") as tar:
            for i, rec in enumerate(records[s::2]):
                key = f"{s}{i:04d}"
                tar.add(manifest.parent / rec["path"], arcname=f"{key}.npy")
                tar.add(manifest.parent / rec["anchor"], arcname=f"{key}.anchor.png")
                meta = folder / f"{key}.json"
                meta.write_text(json.dumps({"id": rec["id"], "label": rec["label"]}))
                tar.add(meta, arcname=f"{key}.json")
        paths.append(str(path))
    return paths


def test_tar_shards_train_beside_manifest_datasets(world: dict, tmp_path: Path) -> None:
    _write_shards(world, tmp_path)
    shapes = world["shapes"]
    cfg = train_config({"imgs": world["imgs"]}, tmp_path / "run", steps=3, batch=6) | {"shards": {
        "shapes_tar": {"shards": [str(tmp_path / "shapes-*.tar")], "modality": "point",
                       "classnames": shapes["classnames"], "templates": shapes["templates"], "weight": 1.0}}}
    tr = Trainer(load_train_config(cfg))
    assert tr.shard_local == {"shapes_tar": 3}
    batches = tr.micro_batches(next(tr._plans()))
    assert [mb.dataset for mb in batches] == ["imgs", "shapes_tar"] and len(batches[1]) == 3
    assert batches[1].anchors is not None  # the anchor members travel with the shard samples
    tr.run(progress=False)
    line = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "point/anchor_distil_loss" in line and "point/soft_bind_loss" in line and "image/nce_loss" in line


def test_collective_timeout_reaches_the_process_group(world: dict, tmp_path: Path, monkeypatch) -> None:
    import unialign.train.loop as loop

    seen = []
    real = loop.init_distributed
    monkeypatch.setattr(loop, "init_distributed", lambda timeout_s=600: seen.append(timeout_s) or real(timeout_s))
    _trainer(world, tmp_path, collective_timeout_s=42)
    assert seen == [42]


def test_resume_drops_metric_lines_logged_after_the_checkpoint(world: dict, tmp_path: Path) -> None:
    first = _trainer(world, tmp_path, steps=6)
    first.run(max_steps=3, progress=False)  # checkpoint at step 3, lines for steps 1-3
    with open(tmp_path / "metrics.jsonl", "a") as f:  # what a run killed after logging step 4-5 leaves
        f.write(json.dumps({"step": 4, "loss": 1.0}) + "\n" + json.dumps({"step": 5, "loss": 1.0}) + "\n")
        f.write('{"step": 6, "lo')  # torn by the kill
    del first
    second = _trainer(world, tmp_path, steps=6)
    assert second.resume() and second.step == 3
    second.run(progress=False)
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
