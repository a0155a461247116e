"""``create_model``: config + optional pretrained CLIP weights -> a ready :class:`UniAlign`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

import torch

from unialign.backbone.convert import load_clip_checkpoint
from unialign.config import ModelConfig, load_model_config
from unialign.errors import ConfigError
from unialign.model import UniAlign


def create_model(
    name_or_config: str | Path | Mapping[str, Any] | ModelConfig,
    base: str | Path | None = None,
    device: str | torch.device | None = None,
    **overrides: Any,
) -> UniAlign:
    """Build a UniAlign model.

    Args:
        name_or_config: a bundled model name (see :func:`unialign.list_models`), a YAML file, a mapping or
            a :class:`ModelConfig`.
        base: pretrained CLIP weights: a ``transformers`` CLIP directory, an open_clip hub directory or an
            OpenAI/open_clip state-dict file. A directory's own config replaces the configured
            architecture (with its preprocessing constants); a bare file must fit the configured one.
            ``None`` keeps the CLIP weights random (tests, benchmarks). With ``clip.text.tower: hf`` the text
            tower is built from ``clip.text.hf_path``; a CLIP checkpoint then supplies only the image tower
            and logit scale, while a unialign ``base.safetensors`` restores the text tower too.
        device: where to put the model.
        **overrides: nested config overrides, e.g. ``moe={"top_k": 1}`` or ``grad_checkpointing=True``.

    The experts start with ``B = 0``, so the untrained model encodes images exactly as the base CLIP.
    """
    cfg = load_model_config(name_or_config, overrides or None)
    checkpoint = None
    if base is not None:
        checkpoint = load_clip_checkpoint(base)
        if checkpoint.config is not None:  # the weights carry their own architecture and preprocessing
            clip = checkpoint.config
            if cfg.clip.text.tower != "clip":  # a pluggable text tower is configured, not taken from CLIP
                clip = replace(clip, text=cfg.clip.text)
            cfg = replace(cfg, clip=clip)
        cfg = replace(cfg, base=str(Path(base).resolve()))
    elif cfg.base:
        raise ConfigError(
            f"config {cfg.name!r} names base weights {cfg.base!r}; pass base=... to load them (or base=None "
            "after clearing it for random weights)"
        )
    model = UniAlign(cfg)
    if checkpoint is not None:
        model.load_base_state_dict(checkpoint.state_dict, checkpoint.source)
    model.init_from_base()
    if device is not None:
        model = model.to(device)
    return model
