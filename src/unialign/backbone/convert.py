"""Import pretrained CLIP weights: Hugging Face ``transformers`` directories and OpenAI/open_clip state dicts.

Nothing here executes pickled code: ``.safetensors`` is read with safetensors, ``.pt``/``.bin``/``.pth``
with ``torch.load(weights_only=True)``, and TorchScript archives are refused. Every failure names the file.

Supported layouts (``load_clip_checkpoint(path)``):

* a ``transformers`` CLIP directory: ``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``
  (+ optional ``preprocessor_config.json`` for mean/std, + ``vocab.json``/``merges.txt``);
* an open_clip hub directory: ``open_clip_config.json`` + ``open_clip_model.safetensors`` or
  ``open_clip_pytorch_model.bin``;
* a single OpenAI/open_clip state-dict file (``visual.transformer.resblocks.*``, fused ``in_proj_weight``):
  its architecture must come from the model config, and every tensor shape is checked against it.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from unialign.config import ClipConfig, PreprocessConfig, TextConfig, VisionConfig
from unialign.errors import CheckpointError

_PIL_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}


@dataclass
class ClipCheckpoint:
    """Weights in unialign's (open_clip) naming, plus the architecture the checkpoint carries, if any."""

    state_dict: dict[str, Tensor]
    config: ClipConfig | None  # None for a bare state dict: the caller's config decides
    source: Path
    tokenizer_dir: Path | None  # a directory holding vocab.json + merges.txt, when present


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a tensor dict from ``.safetensors``, or ``.pt``/``.bin``/``.pth`` without unpickling code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint file is empty: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd: Any = load_file(str(path), device="cpu")
        else:
            if zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as zf:
                    if any(n.split("/", 1)[-1].startswith("code/") for n in zf.namelist()):
                        raise CheckpointError(
                            f"{path} is a TorchScript archive (e.g. OpenAI's JIT ViT-B-16.pt); unialign does "
                            "not load executable archives. Convert it once with torch.jit.load(...).state_dict() "
                            "saved via safetensors, or use the open_clip/transformers release of the weights."
                        )
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as exc:  # corrupt, truncated, or an unsafe pickle refused by weights_only
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from None
    for key in ("state_dict", "model", "module"):
        if isinstance(sd, Mapping) and key in sd and isinstance(sd[key], Mapping):
            sd = sd[key]
    if not isinstance(sd, Mapping) or not all(isinstance(v, Tensor) for v in sd.values()):
        raise CheckpointError(f"{path} does not hold a dict of tensors")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}


def _hf_block(prefix: str, out: str, sd: Mapping[str, Tensor], dst: dict[str, Tensor]) -> None:
    """Map one transformers encoder layer onto an open_clip resblock (q/k/v fused into in_proj)."""
    att = f"{prefix}.self_attn"
    for kind in ("weight", "bias"):
        dst[f"{out}.attn.in_proj_{kind}"] = torch.cat([sd[f"{att}.{p}_proj.{kind}"] for p in "qkv"], 0)
        dst[f"{out}.attn.out_proj.{kind}"] = sd[f"{att}.out_proj.{kind}"]
        dst[f"{out}.ln_1.{kind}"] = sd[f"{prefix}.layer_norm1.{kind}"]
        dst[f"{out}.ln_2.{kind}"] = sd[f"{prefix}.layer_norm2.{kind}"]
        dst[f"{out}.mlp.c_fc.{kind}"] = sd[f"{prefix}.mlp.fc1.{kind}"]
        dst[f"{out}.mlp.c_proj.{kind}"] = sd[f"{prefix}.mlp.fc2.{kind}"]


def convert_hf_state_dict(sd: Mapping[str, Tensor], vision_layers: int, text_layers: int) -> dict[str, Tensor]:
    """Rename a ``transformers.CLIPModel`` state dict to unialign's names (projections transposed)."""
    v, t = "vision_model", "text_model"
    out: dict[str, Tensor] = {
        "visual.conv1.weight": sd[f"{v}.embeddings.patch_embedding.weight"],
        "visual.class_embedding": sd[f"{v}.embeddings.class_embedding"],
        "visual.positional_embedding": sd[f"{v}.embeddings.position_embedding.weight"],
        "visual.proj": sd["visual_projection.weight"].t(),
        "text.token_embedding.weight": sd[f"{t}.embeddings.token_embedding.weight"],
        "text.positional_embedding": sd[f"{t}.embeddings.position_embedding.weight"],
        "text.text_projection": sd["text_projection.weight"].t(),
        "logit_scale": sd["logit_scale"],
    }
    for kind in ("weight", "bias"):
        out[f"visual.ln_pre.{kind}"] = sd[f"{v}.pre_layrnorm.{kind}"]
        out[f"visual.ln_post.{kind}"] = sd[f"{v}.post_layernorm.{kind}"]
        out[f"text.ln_final.{kind}"] = sd[f"{t}.final_layer_norm.{kind}"]
    for i in range(vision_layers):
        _hf_block(f"{v}.encoder.layers.{i}", f"visual.transformer.resblocks.{i}", sd, out)
    for i in range(text_layers):
        _hf_block(f"{t}.encoder.layers.{i}", f"text.transformer.resblocks.{i}", sd, out)
    return {k: x.contiguous() for k, x in out.items()}


def convert_openclip_state_dict(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename an OpenAI/open_clip state dict: text-tower keys move under ``text.``; buffers are dropped."""
    text_keys = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")
    out = {}
    for key, value in sd.items():
        if key in ("attn_mask", "input_resolution", "context_length", "vocab_size") or key.endswith("attn_mask"):
            continue
        if key.startswith(text_keys):
            key = "text." + key
        out[key] = value
    return out


def clip_config_from_hf(config: Mapping[str, Any], preprocessor: Mapping[str, Any] | None) -> ClipConfig:
    """A :class:`ClipConfig` from a ``transformers`` CLIP ``config.json`` (+ ``preprocessor_config.json``)."""
    vc, tc = config.get("vision_config", {}), config.get("text_config", {})

    def act(c: Mapping[str, Any]) -> str:
        name = c.get("hidden_act", "quick_gelu")
        return "gelu" if name in ("gelu", "gelu_python") else name

    vision = VisionConfig(
        image_size=int(vc.get("image_size", 224)),
        patch_size=int(vc.get("patch_size", 32)),
        width=int(vc.get("hidden_size", 768)),
        layers=int(vc.get("num_hidden_layers", 12)),
        heads=int(vc.get("num_attention_heads", 12)),
        mlp_ratio=vc.get("intermediate_size", 3072) / vc.get("hidden_size", 768),
        act=act(vc),
        ln_eps=float(vc.get("layer_norm_eps", 1e-5)),
    )
    text = TextConfig(
        context_length=int(tc.get("max_position_embeddings", 77)),
        vocab_size=int(tc.get("vocab_size", 49408)),
        width=int(tc.get("hidden_size", 512)),
        layers=int(tc.get("num_hidden_layers", 12)),
        heads=int(tc.get("num_attention_heads", 8)),
        mlp_ratio=tc.get("intermediate_size", 2048) / tc.get("hidden_size", 512),
        act=act(tc),
        ln_eps=float(tc.get("layer_norm_eps", 1e-5)),
        eot_token_id=int(tc.get("eos_token_id", 49407)),
    )
    pre = PreprocessConfig()
    if preprocessor:
        pre = replace(
            pre,
            mean=tuple(preprocessor.get("image_mean", pre.mean)),
            std=tuple(preprocessor.get("image_std", pre.std)),
            interpolation=_PIL_RESAMPLE.get(preprocessor.get("resample", 3), "bicubic"),
        )
    name = config.get("_name_or_path") or "hf-clip"
    return ClipConfig(
        name=str(name),
        embed_dim=int(config.get("projection_dim", 512)),
        vision=vision,
        text=text,
        preprocess=pre,
        init_logit_scale=float(config.get("logit_scale_init_value", 2.6592)),
    )


def clip_config_from_openclip(cfg: Mapping[str, Any]) -> ClipConfig:
    """A :class:`ClipConfig` from an open_clip ``open_clip_config.json`` (``model_cfg`` + ``preprocess_cfg``)."""
    m = cfg.get("model_cfg", cfg)
    vc, tc = m["vision_cfg"], m["text_cfg"]
    act = "quick_gelu" if m.get("quick_gelu", False) else "gelu"
    vwidth = int(vc.get("width", 768))
    vision = VisionConfig(
        image_size=int(vc.get("image_size", 224)),
        patch_size=int(vc.get("patch_size", 16)),
        width=vwidth,
        layers=int(vc.get("layers", 12)),
        heads=int(vc.get("heads", vwidth // int(vc.get("head_width", 64)))),
        mlp_ratio=float(vc.get("mlp_ratio", 4.0)),
        act=act,
    )
    twidth = int(tc.get("width", 512))
    text = TextConfig(
        context_length=int(tc.get("context_length", 77)),
        vocab_size=int(tc.get("vocab_size", 49408)),
        width=twidth,
        layers=int(tc.get("layers", 12)),
        heads=int(tc.get("heads", 8)),
        mlp_ratio=float(tc.get("mlp_ratio", 4.0)),
        act=act,
    )
    pp = cfg.get("preprocess_cfg", {})
    pre = PreprocessConfig()
    pre = replace(pre, mean=tuple(pp.get("mean", pre.mean)), std=tuple(pp.get("std", pre.std)))
    return ClipConfig(name="open_clip", embed_dim=int(m.get("embed_dim", 512)), vision=vision, text=text,
                      preprocess=pre)


def _first_existing(folder: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(f"{folder}: none of the weight files {list(names)} exists")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None


def load_clip_checkpoint(path: str | Path) -> ClipCheckpoint:
    """Read CLIP weights from a directory or a file (layouts in the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"base weights not found: {path}")
    if path.is_dir():
        has_vocab = (path / "vocab.json").is_file() and (path / "merges.txt").is_file()
        if (path / "config.json").is_file():
            config = _read_json(path / "config.json")
            if "vision_config" not in config:
                raise CheckpointError(f"{path / 'config.json'} is not a CLIP config (no vision_config)")
            pre_path = path / "preprocessor_config.json"
            cfg = clip_config_from_hf(config, _read_json(pre_path) if pre_path.is_file() else None)
            weights = _first_existing(path, ("model.safetensors", "pytorch_model.bin"))
            raw = read_state_dict(weights)
            try:
                sd = convert_hf_state_dict(raw, cfg.vision.layers, cfg.text.layers)
            except KeyError as exc:
                raise CheckpointError(f"{weights}: missing tensor {exc.args[0]!r} for a CLIP model") from None
            return ClipCheckpoint(sd, cfg, weights, path if has_vocab else None)
        if (path / "open_clip_config.json").is_file():
            cfg = clip_config_from_openclip(_read_json(path / "open_clip_config.json"))
            weights = _first_existing(path, ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"))
            sd = convert_openclip_state_dict(read_state_dict(weights))
            return ClipCheckpoint(sd, cfg, weights, path if has_vocab else None)
        raise CheckpointError(f"{path}: a directory needs config.json (transformers) or open_clip_config.json")
    return ClipCheckpoint(convert_openclip_state_dict(read_state_dict(path)), None, path, None)


def check_state_dict(expected: Mapping[str, Tensor], given: Mapping[str, Tensor], source: Path) -> None:
    """Raise one :class:`CheckpointError` listing missing, unexpected and wrongly shaped tensors."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    wrong = [
        f"{k}: checkpoint {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(given))
        if given[k].shape != expected[k].shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"{len(wrong)} shape mismatch(es): " + "; ".join(wrong[:5]))
        if missing:
            parts.append(f"{len(missing)} missing: {missing[:5]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {unexpected[:5]}")
        raise CheckpointError(
            f"{source} does not fit the configured CLIP architecture ({' | '.join(parts)}). "
            "Pick the matching architecture (e.g. clip: ViT-B-32) or pass a checkpoint directory that carries "
            "its own config."
        )
