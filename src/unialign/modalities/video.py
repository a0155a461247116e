"""Video: 2-frame tubelets with CLIP's patch kernel inflated to 3-D (supplement §2.1; ImageBind-style).

Frames (B, 3, T, H, W) are cut into T/t x H/P x W/P spatio-temporal patches of size t x P x P. The 3-D
kernel is CLIP's 2-D kernel divided by t along time, so a static clip gives each tubelet exactly the
image token of its frame. Tokens get CLIP's 2-D position embedding plus a learned temporal embedding
(zero at start), then CLIP's class token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unialign.backbone.clip import VisionTransformer
from unialign.config import VisionConfig
from unialign.errors import ConfigError, InputError
from unialign.modalities.base import MODALITY_TOKENIZERS, ModalityTokenizer


@dataclass(frozen=True)
class VideoOptions:
    """Video tokenizer options."""

    num_frames: int = 8  # frames per clip (supplement §3.2: 8 frames at stride 8); sets the temporal table
    tubelet: int = 2  # frames per tubelet t
    train_patch_embed: bool = False  # fine-tune the inflated kernel (default: frozen like the image one)

    def __post_init__(self) -> None:
        if self.tubelet < 1 or self.num_frames % self.tubelet:
            raise ConfigError(f"num_frames={self.num_frames} must be a multiple of tubelet={self.tubelet}")


@MODALITY_TOKENIZERS.register("video")
class VideoTokenizer(ModalityTokenizer):
    """Normalised RGB clips (B, 3, T, H, W) -> (B, 1 + (T/t)(H/P)(W/P), D)."""

    Options = VideoOptions
    input_shape: ClassVar[str] = "(B, 3, T, H, W) normalised RGB frames"
    input_ndim: ClassVar[int] = 5
    channels: ClassVar[tuple[int, int]] = (1, 3)

    def __init__(self, name: str, options: VideoOptions, vision: VisionConfig) -> None:
        super().__init__(name, options, vision)
        p, t = vision.patch_size, options.tubelet
        self.patch_weight = nn.Parameter(
            torch.zeros(vision.width, 3, t, p, p), requires_grad=options.train_patch_embed
        )
        self.temporal_pos = nn.Parameter(torch.zeros(options.num_frames // t, vision.width))

    @torch.no_grad()
    def init_from_base(self, base: VisionTransformer) -> None:
        t = self.options.tubelet
        self.patch_weight.copy_(base.conv1.weight.unsqueeze(2).expand_as(self.patch_weight) / t)

    def tokens(self, x: Tensor, base: VisionTransformer) -> Tensor:
        t = self.options.tubelet
        if x.shape[2] % t or x.shape[2] // t > self.temporal_pos.shape[0]:
            raise InputError(
                f"{self.name}: {x.shape[2]} frames; expected a multiple of {t} and at most "
                f"{self.options.num_frames} frames"
            )
        p = self.vision.patch_size
        y = F.conv3d(x, self.patch_weight.to(x.dtype), stride=(t, p, p))  # (B, D, T/t, gh, gw)
        b, d, nt, gh, gw = y.shape
        y = y.permute(0, 2, 3, 4, 1).reshape(b, nt, gh * gw, d)
        y = y + base.spatial_pos_embed((gh, gw)).to(y.dtype) + self.temporal_pos[:nt, None].to(y.dtype)
        return base.prepend_cls(y.reshape(b, nt * gh * gw, d))
