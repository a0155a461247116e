"""JSONL manifests: parsing, file:line errors, sample dicts, seeding, anchors, collation, registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

import unialign
from unialign.data import (
    DatasetConfig, ManifestDataset, ManifestError, MixtureDataset, build_datasets, collate_samples, register_dataset,
)
from unialign.errors import ConfigError


def write_world(folder: Path, n: int = 4) -> dict[str, Path]:
    """Tiny files + manifests: point clouds with rendered anchors, audio with captions, images."""
    rng = np.random.default_rng(0)
    (folder / "pc").mkdir(parents=True, exist_ok=True)
    pc, au, im = [], [], []
    for i in range(n):
        np.save(folder / "pc" / f"s{i}.npy", rng.normal(size=(300, 3)).astype(np.float32))
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"r{i}.png")
        t = np.arange(8000) / 16000
        sf.write(folder / f"a{i}.wav", (0.3 * np.sin(2 * np.pi * (200 + 100 * i) * t)).astype(np.float32), 16000)
        pc.append({"id": f"pc{i}", "path": f"pc/s{i}.npy", "label": ["chair", "table_lamp"][i % 2],
                   "anchor": f"r{i}.png"})
        au.append({"id": f"au{i}", "path": f"a{i}.wav", "label": None, "caption": f"a tone number {i}"})
        im.append({"id": f"im{i}", "path": f"r{i}.png", "label": i % 2})
    out = {}
    for name, recs in (("pc", pc), ("au", au), ("im", im)):
        out[name] = folder / f"{name}.jsonl"
        out[name].write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    (folder / "classes.txt").write_text("chair\ntable_lamp\n")
    return out


@pytest.fixture
def cfg() -> unialign.ModelConfig:
    return unialign.load_model_config("unialign-test-tiny")


def test_sample_dict_and_seeding(tmp_path: Path, cfg: unialign.ModelConfig) -> None:
    files = write_world(tmp_path)
    ds = ManifestDataset("shapes", DatasetConfig(str(files["pc"]), "point", classnames="classes.txt",
                                                 templates=["a {} shape"]), cfg)
    assert len(ds) == 4 and ds.labels == [0, 1, 0, 1] and ds.classnames == ["chair", "table_lamp"]
    s = ds.get(1, seed=7)
    assert set(s) == {"id", "inputs", "label", "text", "anchor", "seed"}
    assert s["id"] == "pc1" and s["label"] == 1 and s["text"] == "a table lamp shape" and s["seed"] == 7
    assert s["inputs"].shape == (256, 3) and s["anchor"].shape == (3, 32, 32)
    again, other = ds.get(1, seed=7), ds.get(1, seed=8)
    assert torch.equal(again["inputs"], s["inputs"]) and torch.equal(again["anchor"], s["anchor"])
    assert not torch.equal(other["inputs"], s["inputs"])
    # the anchor is exactly a seeded load of the anchor file with the SAME seed
    ref = unialign.preprocess.load("image", tmp_path / "r1.png", True, config=cfg, seed=7)[0]
    assert torch.equal(s["anchor"], ref)
    ref_pts = unialign.preprocess.load("point", tmp_path / "pc" / "s1.npy", True, config=cfg, seed=7)[0]
    assert torch.equal(s["inputs"], ref_pts)


def test_captions_templates_and_eval(tmp_path: Path, cfg: unialign.ModelConfig) -> None:
    files = write_world(tmp_path)
    au = ManifestDataset("tones", DatasetConfig(str(files["au"]), "audio"), cfg)
    s = au.get(2, seed=0, train=False)
    assert s["text"] == "a tone number 2" and s["label"] == -1 and s["anchor"] is None
    assert s["inputs"].shape[-1] == 16  # (frames, mels)
    im = ManifestDataset("pics", DatasetConfig(str(files["im"]), "image", classnames=["cat", "dog"],
                                               templates="image"), cfg)
    texts = {im.get(1, seed=k)["text"] for k in range(30)}
    assert len(texts) > 1 and all("dog" in t for t in texts)  # the template is drawn with the seed
    assert im.get(1, seed=3)["text"] == im.get(1, seed=3)["text"]


def test_collate_microbatch(tmp_path: Path, cfg: unialign.ModelConfig) -> None:
    files = write_world(tmp_path)
    ds = ManifestDataset("shapes", DatasetConfig(str(files["pc"]), "point", classnames=["chair", "table_lamp"]), cfg)
    mb = collate_samples([ds.get(i, seed=10 + i) for i in range(3)], "shapes", "point")
    assert mb.inputs.shape == (3, 256, 3) and mb.anchors is not None and mb.anchors.shape == (3, 3, 32, 32)
    assert mb.labels.tolist() == [0, 1, 0] and mb.seeds.tolist() == [10, 11, 12] and mb.ids == ["pc0", "pc1", "pc2"]
    assert mb.teacher == {} and len(mb) == 3
    no_anchor = dict(ds.get(0, 1), anchor=None)
    assert collate_samples([no_anchor, ds.get(1, 2)], "shapes", "point").anchors is None
    step = MixtureDataset({"shapes": ds})[{"shapes": [(0, 10), (1, 11)]}]
    assert torch.equal(step["shapes"].inputs, mb.inputs[:2])


def _bad(tmp_path: Path, lines: list[str]) -> Path:
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.mark.parametrize("line, match", [
    ("{not json", "not valid JSON"),
    ('{"id": "b", "path": "x.npy", "label": "sofa"}', "unknown class name 'sofa'"),
    ('{"id": "b", "path": "x.npy", "label": 5}', "label 5 out of range"),
    ('{"id": "b", "path": 3, "label": 0}', "'path' must be"),
    ('{"id": "b", "path": "x.npy"}', "a record needs a 'label' or a 'caption'"),
    ('{"id": "b", "path": "x.npy", "label": 0, "colour": 1}', "unknown key"),
    ('{"id": "a", "path": "x.npy", "label": 0}', "duplicate id 'a' \\(first on line 1\\)"),
    ('[1, 2]', "expected a JSON object"),
])
def test_bad_records_name_file_and_line(tmp_path: Path, cfg: unialign.ModelConfig, line: str, match: str) -> None:
    path = _bad(tmp_path, ['{"id": "a", "path": "x.npy", "label": "chair"}', "", line])
    with pytest.raises(ManifestError, match=f"bad.jsonl:3: {match}") as err:
        ManifestDataset("d", DatasetConfig(str(path), "point", classnames=["chair", "table"]), cfg)
    assert err.value.line == 3 and isinstance(err.value, ConfigError)


def test_config_errors_and_registry(tmp_path: Path, cfg: unialign.ModelConfig) -> None:
    files = write_world(tmp_path)
    with pytest.raises(ConfigError, match="modality 'smell'"):
        ManifestDataset("d", DatasetConfig(str(files["pc"]), "smell"), cfg)
    with pytest.raises(ConfigError, match="weight must be > 0"):
        DatasetConfig(str(files["pc"]), "point", weight=0)
    with pytest.raises(ConfigError, match="manifest not found"):
        ManifestDataset("d", DatasetConfig(str(tmp_path / "nope.jsonl"), "point"), cfg)
    register_dataset("test-shapes-registry", {"manifest": str(files["pc"]), "modality": "point",
                                              "classnames": ["chair", "table_lamp"], "repeat": 2})
    built = build_datasets({"shapes": "test-shapes-registry",
                            "tones": {"manifest": str(files["au"]), "modality": "audio", "weight": 0.5}}, cfg)
    assert built["shapes"].cfg.repeat == 2 and len(built["tones"]) == 4 and built["tones"].cfg.weight == 0.5
    with pytest.raises(ConfigError, match="unknown key"):
        build_datasets({"x": {"manifest": "m", "modality": "point", "wieght": 1}}, cfg)


def test_rgbd_anchor_shares_the_crop(tmp_path: Path, cfg: unialign.ModelConfig) -> None:
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(500, 4000, (40, 50), dtype=np.uint16)).save(tmp_path / "d.png")
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    (tmp_path / "m.jsonl").write_text('{"id": "x", "path": "d.png", "label": 0, "anchor": "rgb.png"}\n')
    ds = ManifestDataset("rooms", DatasetConfig(str(tmp_path / "m.jsonl"), "depth", classnames=["bedroom"]), cfg)
    s = ds.get(0, seed=4)
    assert s["inputs"].shape == (1, 32, 32) and s["anchor"].shape == (3, 32, 32)
    from unialign.preprocess.depth import load_rgbd  # the registered-pair loader is what get() uses
    assert torch.equal(ds.get(0, seed=4)["anchor"], s["anchor"]) and callable(load_rgbd)
