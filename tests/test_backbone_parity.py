"""The plain-torch CLIP equals independent implementations when loaded from their checkpoints."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import unialign
from unialign.backbone.tokenizer import ClipTokenizer

transformers = pytest.importorskip("transformers")

TINY_HF = dict(
    text_config=dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     max_position_embeddings=16, vocab_size=49408, hidden_act="quick_gelu"),
    vision_config=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                       image_size=32, patch_size=8, hidden_act="quick_gelu"),
    projection_dim=32,
)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, "transformers.CLIPModel"]:
    torch.manual_seed(1)
    model = transformers.CLIPModel(transformers.CLIPConfig(**TINY_HF)).eval()
    with torch.no_grad():  # make the layer norms and biases non-trivial so a wrong mapping shows
        for name, p in model.named_parameters():
            if "norm" in name or "bias" in name:
                p.add_(0.1 * torch.randn_like(p))
        model.logit_scale.fill_(3.0)
    folder = tmp_path_factory.mktemp("hf_clip")
    model.save_pretrained(folder)
    return folder, model


def _hf_image(model: "transformers.CLIPModel", x: torch.Tensor) -> torch.Tensor:
    out = model.get_image_features(pixel_values=x)
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _hf_text(model: "transformers.CLIPModel", ids: torch.Tensor) -> torch.Tensor:
    out = model.get_text_features(input_ids=ids)
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def test_hf_checkpoint_gives_identical_image_and_text_embeddings(hf_dir) -> None:
    folder, hf = hf_dir
    ours = unialign.create_model("unialign-test-tiny", base=folder).eval()
    assert ours.config.clip.vision.width == 64 and ours.config.clip.embed_dim == 32
    x = torch.randn(3, 3, 32, 32)
    ids = ClipTokenizer.from_bpe_file(context_length=16)(["a photo of a dog", "a red bicycle", "rain"])
    with torch.no_grad():
        ref_img, ref_txt = _hf_image(hf, x), _hf_text(hf, ids)
        img = ours.encode("image", x, normalize=False)
        txt = ours.encode_text(ids, normalize=False)
    assert (img - ref_img).abs().max().item() <= 1e-5
    assert (txt - ref_txt).abs().max().item() <= 1e-5
    assert torch.allclose(ours.logit_scale, torch.tensor(3.0).exp())
    # encode() is unit-norm and the strings path equals the ids path
    with torch.no_grad():
        t2 = ours.encode_text(["a photo of a dog", "a red bicycle", "rain"])
    assert torch.allclose(t2, torch.nn.functional.normalize(ref_txt, dim=-1), atol=1e-5)


def test_hf_bin_weights_load_too(hf_dir, tmp_path: Path) -> None:
    folder, hf = hf_dir
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    ours = unialign.create_model("unialign-test-tiny", base=tmp_path).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (ours.encode("image", x, normalize=False) - _hf_image(hf, x)).abs().max() <= 1e-5


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_openclip_state_dict_round_trip(hf_dir, tmp_path: Path, suffix: str) -> None:
    """An OpenAI/open_clip-layout file (text keys at top level, fused in_proj) loads into the same model."""
    folder, hf = hf_dir
    ref = unialign.create_model("unialign-test-tiny", base=folder).eval()
    sd = {}
    for k, v in ref.base.state_dict().items():
        sd[k[len("text."):] if k.startswith("text.") else k] = v.clone()
    path = tmp_path / f"clip{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(sd, str(path))
    else:
        torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, path)
    ours = unialign.create_model("unialign-test-tiny", base=path).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours.encode("image", x), ref.encode("image", x))
        assert torch.equal(ours.encode_text(["a cat"]), ref.encode_text(["a cat"]))


@pytest.mark.skipif(importlib.util.find_spec("open_clip") is None, reason="open_clip not installed (optional)")
def test_open_clip_parity(tmp_path: Path) -> None:
    import open_clip

    oc = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    path = tmp_path / "oc.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in oc.state_dict().items() if k != "attn_mask"}, str(path))
    ours = unialign.create_model("unialign-test-tiny", base=path, clip="ViT-B-32").eval()
    x = torch.randn(1, 3, 224, 224)
    ids = open_clip.get_tokenizer("ViT-B-32")(["a photo of a dog"])
    with torch.no_grad():
        assert (ours.encode("image", x, normalize=False) - oc.encode_image(x)).abs().max() <= 1e-5
        assert (ours.encode_text(ids, normalize=False) - oc.encode_text(ids)).abs().max() <= 1e-5
