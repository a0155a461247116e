"""The unified encoder: equals the base when untrained, trains only adapters, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import unialign
from conftest import tiny_batch

MODALITIES = ["image", "video", "depth", "point", "audio"]


def test_untrained_image_embedding_equals_base_clip_exactly(tiny) -> None:
    x = tiny_batch("image", 4)
    with torch.no_grad():
        ours = tiny.encode("image", x)
        base = F.normalize(tiny.base.encode_image(x), dim=-1)
    assert torch.equal(ours, base)


def test_video_of_a_static_frame_tokenizes_like_the_image(tiny) -> None:
    img = tiny_batch("image", 2)
    clip = img.unsqueeze(2).expand(-1, -1, 4, -1, -1)
    with torch.no_grad():
        v = tiny.tokenizers["video"](clip, tiny.base.visual)
        i = tiny.base.visual.embed_image(img)
    # temporal positions start at zero: each of the 2 tubelet steps repeats the image's patch tokens
    assert torch.allclose(v[:, 1:17], i[:, 1:], atol=1e-5) and torch.allclose(v[:, 17:], i[:, 1:], atol=1e-5)


def test_embeddings_are_unit_norm_for_every_modality(tiny) -> None:
    for m in MODALITIES:
        e = tiny.encode(m, tiny_batch(m, 3))
        assert e.shape == (3, 32)
        assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    t = tiny.encode_text(["a dog", "a cat"])
    assert t.shape == (2, 32) and torch.allclose(t.norm(dim=-1), torch.ones(2), atol=1e-5)


def _one_step_then_grads(model: unialign.UniAlign, modality: str) -> dict[str, torch.Tensor | None]:
    """Take one SGD step (so B != 0 and A, routers receive gradient), then return fresh gradients."""
    opt = torch.optim.SGD(model.trainable_parameters(), lr=0.1)
    model.train()
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        emb = model.encode(modality, tiny_batch(modality, 4))
        target = model.encode_text(["a", "b", "c", "d"]).detach()
        loss = -(emb * target).sum() + sum(
            model.project_to_teacher(t, emb).pow(2).mean()
            for t, c in model.config.teachers.items() if c.modality == modality
        )
        loss.backward()
        if _ == 0:
            opt.step()
    return {n: p.grad for n, p in model.named_parameters()}


def _owned_by(name: str, modality: str, model: unialign.UniAlign) -> bool:
    parts = name.split(".")
    if parts[0] == "moe":
        return parts[3] == modality if model.config.moe.routing == "grouped" else True
    if parts[0] == "tokenizers":
        return parts[1] == modality
    if parts[0] == "projectors":
        return model.config.teachers[parts[1]].modality == modality
    return False


@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize("modality", MODALITIES)
def test_gradients_reach_every_trainable_parameter_of_the_modality(modality: str, checkpointing: bool) -> None:
    model = unialign.create_model("unialign-test-tiny", grad_checkpointing=checkpointing)
    grads = _one_step_then_grads(model, modality)
    trainable = dict(model.named_trainable_parameters())
    for name, g in grads.items():
        if name not in trainable:
            assert g is None, f"frozen parameter {name} received a gradient"
        elif _owned_by(name, modality, model) and trainable[name].requires_grad:
            assert g is not None and g.abs().sum() > 0, f"{name} got no gradient from {modality}"
        else:
            assert g is None or g.abs().sum() == 0, f"{name} of another modality got a gradient"
    owned = [n for n in trainable if _owned_by(n, modality, model)]
    assert any(n.startswith("moe.") for n in owned)


def test_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    a = unialign.create_model("unialign-test-tiny")
    b = unialign.create_model("unialign-test-tiny", grad_checkpointing=True)
    b.load_state_dict(a.state_dict())
    grads = []
    for model in (a, b):
        torch.manual_seed(1)  # identical inputs for both runs
        grads.append(_one_step_then_grads(model, "depth"))
    ga, gb = grads
    for name, g in ga.items():
        if g is not None:
            assert torch.allclose(g, gb[name], atol=1e-5), name


def test_frozen_base_is_not_a_trainable_parameter(tiny) -> None:
    names = [n for n, _ in tiny.named_trainable_parameters()]
    assert names and not any(n.startswith("base.") for n in names)
    assert {n.split(".")[0] for n in names} == {"moe", "tokenizers", "projectors"}
    # the image tokenizer is CLIP's own; the video kernel is frozen unless train_patch_embed
    assert not any(n.startswith("tokenizers.image.") for n in names)
    assert "tokenizers.video.patch_weight" not in names and "tokenizers.video.temporal_pos" in names


@pytest.mark.parametrize(
    "moe",
    [
        dict(routing="grouped", top_k=1, experts_per_modality=1),
        dict(routing="grouped", top_k=1, experts_per_modality=2),
        dict(routing="grouped", top_k=2, experts_per_modality=2),
        dict(routing="global", top_k=1, experts_per_modality=2),
        dict(routing="global", top_k=2, experts_per_modality=2, init="clip"),
    ],
)
def test_routing_variants_run_and_train(moe: dict) -> None:
    model = unialign.create_model("unialign-test-tiny", moe=moe)
    x = tiny_batch("audio", 8)
    target = F.normalize(torch.randn(8, 32), dim=-1)
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = 1 - (model.encode("audio", x) * target).sum(-1).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, losses


def test_one_modality_forward_is_independent_of_registered_sets() -> None:
    """With grouped routing, 2 or 24 registered sets give the same output and parameter traffic."""
    mods = {f"m{i}": {"type": "image"} for i in range(22)}
    small = unialign.create_model("unialign-test-tiny")
    big = unialign.create_model("unialign-test-tiny", modalities=mods)
    assert len(big.modalities) == 27
    with torch.no_grad():
        for m_small, m_big in zip(small.moe, big.moe):
            for k in ("lora_A", "lora_B", "router"):
                getattr(m_big, k)["audio"].copy_(getattr(m_small, k)["audio"].normal_())
        big.tokenizers["audio"].load_state_dict(small.tokenizers["audio"].state_dict())
        big.base.load_state_dict(small.base.state_dict())
    small.eval(), big.eval()
    x = tiny_batch("audio")
    assert torch.allclose(small.encode("audio", x), big.encode("audio", x), atol=1e-6)


def test_paper_configuration_is_built_and_counted() -> None:
    with torch.device("meta"):
        model = unialign.UniAlign(unialign.load_model_config("unialign-vitb16"))
    counts = {}
    for name, p in model.named_trainable_parameters():
        counts[name.split(".")[0]] = counts.get(name.split(".")[0], 0) + p.numel()
    # 12 blocks x 5 modalities x (A 768x8 + B 8x768 + router 768x2) = 829,440
    assert counts["moe"] == 12 * 5 * (768 * 8 * 2 + 768 * 2)
    frozen = sum(p.numel() for p in model.base.parameters())
    assert 149_000_000 < frozen < 150_000_000  # OpenAI CLIP ViT-B/16 has 149.6M parameters
    assert model.config.clip.vision.grid**2 + 1 == 197 and model.config.clip.vision.width == 768


class TestErrors:
    def test_unknown_modality(self, tiny) -> None:
        with pytest.raises(unialign.InputError, match="unknown modality 'thermal'.*image"):
            tiny.encode("thermal", torch.randn(1, 3, 32, 32))

    @pytest.mark.parametrize(
        "modality, shape, match",
        [
            ("image", (2, 32, 32), r"\(B, 3, H, W\)"),
            ("image", (2, 1, 32, 32), "3 channel"),
            ("depth", (2, 3, 32, 32), "1 channel"),
            ("point", (2, 64, 4), "3 channels"),
            ("point", (2, 4, 3), "need at least 16"),
            ("audio", (2, 40, 128), "16 mel bins"),
            ("audio", (2, 500, 16), "500 frames"),
            ("video", (2, 3, 3, 32, 32), "multiple of 2"),
        ],
    )
    def test_wrong_input_shape(self, tiny, modality: str, shape: tuple, match: str) -> None:
        with pytest.raises(unialign.InputError, match=match):
            tiny.encode(modality, torch.randn(shape))

    def test_nan_input(self, tiny) -> None:
        x = tiny_batch("depth")
        x[0, 0, 0, 0] = float("nan")
        with pytest.raises(unialign.InputError, match="NaN"):
            tiny.encode("depth", x)

    def test_missing_checkpoint_file(self, tmp_path: Path) -> None:
        missing = tmp_path / "nope.safetensors"
        with pytest.raises(unialign.CheckpointError, match="nope.safetensors"):
            unialign.create_model("unialign-test-tiny", base=missing)

    def test_hf_directory_without_weights(self, tmp_path: Path) -> None:
        (tmp_path / "config.json").write_text('{"vision_config": {}, "text_config": {}}')
        with pytest.raises(unialign.CheckpointError, match="model.safetensors"):
            unialign.create_model("unialign-test-tiny", base=tmp_path)

    def test_mismatched_checkpoint_shapes(self, tmp_path: Path) -> None:
        from safetensors.torch import save_file

        other = unialign.create_model("unialign-test-tiny", clip={"vision": {"width": 32, "heads": 2}})
        sd = {k[5:] if k.startswith("text.") else k: v for k, v in other.base.state_dict().items()}
        path = tmp_path / "small.safetensors"
        save_file(sd, str(path))
        with pytest.raises(unialign.CheckpointError, match=r"small.safetensors.*shape mismatch.*visual"):
            unialign.create_model("unialign-test-tiny", base=path)

    def test_corrupt_checkpoint(self, tmp_path: Path) -> None:
        path = tmp_path / "broken.pt"
        path.write_bytes(b"\x80\x04not a checkpoint")
        with pytest.raises(unialign.CheckpointError, match="broken.pt"):
            unialign.create_model("unialign-test-tiny", base=path)

    def test_unknown_config_key_and_model(self) -> None:
        with pytest.raises(unialign.ConfigError, match="moe.*unknown key.*tpo_k"):
            unialign.create_model("unialign-test-tiny", moe={"tpo_k": 1})
        with pytest.raises(unialign.ConfigError, match="unknown model 'vit-huge'"):
            unialign.create_model("vit-huge")
        with pytest.raises(unialign.ConfigError, match="unknown modality tokenizer 'thermal'"):
            unialign.create_model("unialign-test-tiny", modalities={"heat": {"type": "thermal"}})
