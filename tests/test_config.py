"""Configs: named and file configs, overrides, the paper configuration, loud failures."""

from __future__ import annotations

from pathlib import Path

import pytest

import unialign
from unialign.config import ModelConfig, load_model_config, parse_overrides, save_config

ROOT = Path(__file__).resolve().parents[1]


def test_paper_config_file_matches_the_bundled_one() -> None:
    from_file = load_model_config(ROOT / "configs" / "unialign_vitb16.yaml")
    assert from_file == load_model_config("unialign-vitb16")
    moe = from_file.moe
    assert (moe.experts_per_modality, moe.top_k, moe.rank, moe.alpha, moe.routing) == (2, 2, 4, 32.0, "grouped")
    assert from_file.clip.name == "ViT-B-16" and from_file.clip.vision.patch_size == 16
    assert set(from_file.modalities) == {"image", "video", "depth", "point", "audio"}
    assert {t.dim for t in from_file.teachers.values()} == {512, 768, 1536}


def test_overrides_nested_and_dotted() -> None:
    cfg = load_model_config("unialign-test-tiny", parse_overrides(["moe.top_k=1", "moe.routing=global"]))
    assert cfg.moe.top_k == 1 and cfg.moe.routing == "global"
    cfg = load_model_config("unialign-test-tiny", {"clip": {"vision": {"layers": 3}}})
    assert cfg.clip.vision.layers == 3 and cfg.clip.vision.width == 64


def test_yaml_round_trip(tmp_path: Path) -> None:
    cfg = load_model_config("unialign-vitb16")
    save_config(cfg, tmp_path / "c.yaml")
    assert load_model_config(tmp_path / "c.yaml") == cfg
    (tmp_path / "exp.yaml").write_text("model:\n  inherit_nothing: 1\n")
    with pytest.raises(unialign.ConfigError, match="exp.yaml.*inherit_nothing"):
        load_model_config(tmp_path / "exp.yaml")


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"moe": {"routing": "random"}}, "routing"),
        ({"moe": {"rank": "four"}}, "moe.rank: expected int"),
        ({"modalities": {"text": {}}}, "anchor modality"),
        ({"teachers": {"t": {"modality": "thermal", "dim": 4}}}, "thermal"),
        ({"teachers": {"t": {"modality": "audio"}}}, "dim"),
        ({"clip": "ViT-H-99"}, "unknown CLIP architecture"),
    ],
)
def test_bad_configs_fail_loudly(bad: dict, match: str) -> None:
    with pytest.raises(unialign.ConfigError, match=match):
        load_model_config("unialign-test-tiny", bad)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(unialign.ConfigError, match="not found.*none.yaml"):
        load_model_config(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("moe: [1, 2\n")
    with pytest.raises(unialign.ConfigError, match="bad.yaml.*not valid YAML"):
        load_model_config(tmp_path / "bad.yaml")


def test_every_bundled_config_builds() -> None:
    assert {"unialign-vitb16", "unialign-test-tiny"} <= set(unialign.list_models())
    assert {"ViT-B-16", "ViT-B-32", "ViT-L-14"} <= set(unialign.list_architectures())
    for name in unialign.list_models():
        assert isinstance(load_model_config(name), ModelConfig)


def test_paper_training_config_parses() -> None:
    from unialign.train.config import load_train_config

    cfg = load_train_config(ROOT / "configs" / "train_paper.yaml")
    assert cfg.optim.lr == 2e-4 and cfg.optim.betas == (0.9, 0.98) and cfg.optim.weight_decay == 0.05
    assert cfg.optim.warmup_steps == 10_000 and cfg.train.global_batch == 2048 and cfg.loss.lam == 2000
    assert {d["modality"] for d in cfg.data.values()} == {"image", "point", "depth", "audio", "video"}
    with pytest.raises(unialign.ConfigError, match=r"train_paper.yaml: train: unknown key.*stpes"):
        load_train_config(ROOT / "configs" / "train_paper.yaml", {"train": {"stpes": 1}})
