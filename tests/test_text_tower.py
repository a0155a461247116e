"""The pluggable text tower: a local Hugging Face encoder (sentence-transformers style) instead of CLIP's.

No network and no real model: a tiny random ``transformers.BertModel`` and a tiny WordPiece vocabulary are
saved with ``save_pretrained`` into a temporary directory, the layout of e.g. all-MiniLM-L6-v2.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import unialign
from unialign.backbone.clip import TextTransformer
from unialign.backbone.text_towers import HFTextTower, init_text_projection
from unialign.config import TextConfig, load_model_config, to_dict
from unialign.errors import CheckpointError, ConfigError, InputError
from unialign.report import build_for_counting, parameter_report

transformers = pytest.importorskip("transformers")

WORDS = ["a", "an", "the", "of", "photo", "picture", "drawing", "dog", "cat", "car", "chair", "table", "red", "blue",
         "green", "small", "big", "on", "with"]
TEXTS = ["a photo of a dog", "the big red car on the table", "cat", "", "an unknownword of blue chair"]
HIDDEN = 48


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT encoder directory: config.json, model.safetensors and tokenizer files."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s", "##ing"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = transformers.BertTokenizer(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(str(folder))
    torch.manual_seed(123)
    cfg = transformers.BertConfig(vocab_size=len(vocab), hidden_size=HIDDEN, num_hidden_layers=2,
                                  num_attention_heads=4, intermediate_size=96, max_position_embeddings=64)
    transformers.BertModel(cfg).save_pretrained(str(folder))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 32, "do_lower_case": False}))
    return folder


def _hf_model(hf_dir: Path, **text: object) -> unialign.UniAlign:
    return unialign.create_model("unialign-test-tiny", clip={"text": {"tower": "hf", "hf_path": str(hf_dir), **text}})


def _reference_mean_pool(hf_dir: Path, texts: list[str]) -> torch.Tensor:
    """sentence-transformers' mean pooling, computed directly with transformers.BertModel."""
    model = transformers.BertModel.from_pretrained(str(hf_dir)).eval()
    tok = transformers.BertTokenizer.from_pretrained(str(hf_dir))
    batch = tok(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        h = model(**batch).last_hidden_state
    m = batch["attention_mask"].unsqueeze(-1).float()
    return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)


def test_pooled_output_equals_independent_mean_pooling(hf_dir: Path) -> None:
    model = _hf_model(hf_dir)
    tower = model.base.text
    assert isinstance(tower, HFTextTower) and tower.max_length == 32
    model.train()  # a frozen anchor: the encoder's dropout stays off
    assert not tower.model.training
    with torch.no_grad():
        pooled = tower(TEXTS)
    ref = _reference_mean_pool(hf_dir, TEXTS)
    assert pooled.shape == (len(TEXTS), HIDDEN)
    assert (pooled - ref).abs().max().item() <= 1e-6
    # cls pooling takes the first ([CLS]) token
    cls_tower = _hf_model(hf_dir, pooling="cls").base.text
    bert = transformers.BertModel.from_pretrained(str(hf_dir)).eval()
    batch = transformers.BertTokenizer.from_pretrained(str(hf_dir))(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(cls_tower(TEXTS), bert(**batch).last_hidden_state[:, 0], atol=1e-6)


def test_encode_text_is_unit_norm_and_config_filled(hf_dir: Path) -> None:
    model = _hf_model(hf_dir)
    e = model.config.clip.embed_dim
    with torch.no_grad():
        emb = model.encode_text(TEXTS)
        also = model.encode("text", TEXTS[:2])
    assert emb.shape == (len(TEXTS), e)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(len(TEXTS)), atol=1e-5)
    assert torch.allclose(also, emb[:2], atol=1e-6)
    text_cfg = model.config.clip.text
    assert text_cfg.hf_width == HIDDEN and Path(text_cfg.hf_path).is_absolute()
    with pytest.raises(InputError, match="token ids"):
        model.encode_text(torch.zeros(2, 5, dtype=torch.long))
    assert model.encode_text([]).shape == (0, e)
    # projection: seeded semi-orthogonal (orthonormal columns for hidden >= E)
    p = model.base.text.text_projection
    assert p.shape == (HIDDEN, e)
    assert torch.allclose(p.T @ p, torch.eye(e), atol=1e-5)
    assert torch.equal(p, init_text_projection(HIDDEN, e))
    q = init_text_projection(8, 16)
    assert torch.allclose(q @ q.T, torch.eye(8), atol=1e-5)


def test_everything_frozen_and_lit_switch(hf_dir: Path) -> None:
    model = _hf_model(hf_dir)
    names = [n for n, _ in model.named_trainable_parameters()]
    assert names and not any(n.startswith("base.") for n in names)
    model.base.visual.requires_grad_(True)
    model.set_text_projection_trainable(True)
    base_trainable = {n for n, _ in model.named_trainable_parameters() if n.startswith("base.")}
    assert "base.text.text_projection" in base_trainable
    assert not any(n.startswith("base.text.model.") for n in base_trainable)
    model.encode_text(["a dog", "a cat"]).sum().backward()
    assert model.base.text.text_projection.grad is not None
    model.set_text_projection_trainable(False)
    assert not model.base.text.text_projection.requires_grad
    named = dataclasses.replace(model.config, base="/somewhere/clip.safetensors")
    model.config = named
    with pytest.raises(ConfigError, match="base weights"):
        model.set_text_projection_trainable(True)


def test_checkpoint_round_trip_restores_text_tower(hf_dir: Path, tmp_path: Path) -> None:
    model = _hf_model(hf_dir)
    with torch.no_grad():  # weights that differ from hf_path's, so they must come from base.safetensors
        model.base.text.text_projection.add_(0.1 * torch.randn_like(model.base.text.text_projection))
        model.base.text.model.encoder.layer[0].output.dense.weight.mul_(1.5)
        before = model.encode_text(TEXTS)
    unialign.save_checkpoint(model, tmp_path / "ck")
    assert (tmp_path / "ck" / "base.safetensors").is_file()
    loaded = unialign.load(tmp_path / "ck")
    assert loaded.config.clip.text.tower == "hf"
    with torch.no_grad():
        after = loaded.encode_text(TEXTS)
    assert torch.equal(before, after)
    # the bare base.safetensors alone loads into a fresh hf-tower model and is checked by name and shape
    fresh = _hf_model(hf_dir)
    from safetensors.torch import load_file

    fresh.load_base_state_dict(load_file(str(tmp_path / "ck" / "base.safetensors")), "base.safetensors")
    with torch.no_grad():
        assert torch.equal(fresh.encode_text(TEXTS), before)
    sd = load_file(str(tmp_path / "ck" / "base.safetensors"))
    sd["text.text_projection"] = torch.zeros(HIDDEN + 1, model.config.clip.embed_dim)
    with pytest.raises(CheckpointError, match="text.text_projection"):
        fresh.load_base_state_dict(sd, "bad.safetensors")


def test_clip_checkpoint_supplies_image_tower_only(hf_dir: Path, tmp_path: Path) -> None:
    clip_model = unialign.create_model("unialign-test-tiny")
    path = tmp_path / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in clip_model.base.state_dict().items()}, str(path))
    model = unialign.create_model(
        "unialign-test-tiny", base=path, clip={"text": {"tower": "hf", "hf_path": str(hf_dir)}}
    )
    assert isinstance(model.base.text, HFTextTower)
    assert torch.equal(model.base.visual.proj, clip_model.base.visual.proj)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.encode("image", x), clip_model.encode("image", x), atol=1e-6)
        ref = torch.nn.functional.normalize(
            _reference_mean_pool(hf_dir, TEXTS) @ init_text_projection(HIDDEN, model.config.clip.embed_dim), dim=-1
        )
        assert torch.allclose(model.encode_text(TEXTS), ref, atol=1e-5)


def test_missing_or_bad_hf_path_is_named(hf_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(CheckpointError, match="no-such-model"):
        _hf_model(missing)
    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="config.json"):
        _hf_model(empty)
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((hf_dir / "config.json").read_text())
    with pytest.raises(CheckpointError, match="no-weights"):
        _hf_model(no_weights)
    with pytest.raises(ConfigError, match="hf_path"):
        TextConfig(tower="hf")
    with pytest.raises(ConfigError, match="tower"):
        load_model_config("unialign-test-tiny", {"clip": {"text": {"tower": "bert"}}})
    with pytest.raises(ConfigError, match="pooling"):
        TextConfig(pooling="max")
    with pytest.raises(ConfigError, match="hidden_size"):
        _hf_model(hf_dir, hf_width=HIDDEN + 1)


def test_clip_tower_unchanged_and_meta_counting(hf_dir: Path) -> None:
    tiny = unialign.create_model("unialign-test-tiny")
    assert isinstance(tiny.base.text, TextTransformer)
    text = to_dict(tiny.config)["clip"]["text"]
    assert (text["tower"], text["hf_path"], text["pooling"], text["hf_width"]) == ("clip", "", "mean", 0)
    assert not any(".model." in k for k in tiny.base.state_dict())
    cfg = load_model_config("unialign-test-tiny", {"clip": {"text": {"tower": "hf", "hf_path": str(hf_dir)}}})
    report = parameter_report(build_for_counting(cfg))
    real = _hf_model(hf_dir)
    assert report["total"] == sum(p.numel() for p in real.parameters())
    assert report["trainable"] == sum(p.numel() for p in real.trainable_parameters())
