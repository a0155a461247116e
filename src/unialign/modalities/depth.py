"""Depth: single-channel disparity patches with a learned position table (supplement §2.1).

Disparity maps (B, 1, H, W) are patchified by a trainable 1-channel kernel, initialised as CLIP's RGB
kernel summed over colour (the response to a grey image); the position table starts as a copy of CLIP's.
``also_image_tokens=True`` (Table 3 ``*``) also tokenizes the map with the frozen image tokenizer (the
disparity repeated to 3 channels) and appends those patch tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from unialign.backbone.clip import VisionTransformer
from unialign.config import VisionConfig
from unialign.modalities.base import MODALITY_TOKENIZERS, LearnedPosTokenizer


@dataclass(frozen=True)
class DepthOptions:
    """Depth tokenizer options."""

    also_image_tokens: bool = False  # append CLIP image-tokenizer tokens of the map (Table 3 *)
    init_from_clip: bool = True  # start kernel and position table from CLIP's (else random)


@MODALITY_TOKENIZERS.register("depth")
class DepthTokenizer(LearnedPosTokenizer):
    """Normalised disparity (B, 1, H, W) -> (B, 1 + N [+ N], D)."""

    Options = DepthOptions
    input_shape: ClassVar[str] = "(B, 1, H, W) normalised disparity"
    input_ndim: ClassVar[int] = 4
    channels: ClassVar[tuple[int, int]] = (1, 1)

    def __init__(self, name: str, options: DepthOptions, vision: VisionConfig) -> None:
        super().__init__(name, options, vision, num_positions=vision.grid**2)
        p = vision.patch_size
        self.patch_embed = nn.Conv2d(1, vision.width, kernel_size=p, stride=p, bias=False)

    @torch.no_grad()
    def init_from_base(self, base: VisionTransformer) -> None:
        if self.options.init_from_clip:
            self.patch_embed.weight.copy_(base.conv1.weight.sum(dim=1, keepdim=True))
            self.pos_embed.copy_(base.positional_embedding)

    def tokens(self, x: Tensor, base: VisionTransformer) -> Tensor:
        y = self.patch_embed(x)  # (B, D, gh, gw)
        grid = (y.shape[-2], y.shape[-1])
        tokens = self.add_pos_and_cls(y.flatten(2).transpose(1, 2), base, grid_hw=grid)
        if self.options.also_image_tokens:
            image_tokens = base.embed_image(x.expand(-1, 3, -1, -1))[:, 1:]
            tokens = torch.cat([tokens, image_tokens], dim=1)
        return tokens

