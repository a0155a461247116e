"""3-D point cloud: FPS centres, kNN groups, a mini-PointNet per group, learned positions (supplement §2.1).

Points (B, N, C) (C = 3 xyz, or 6 with RGB; N = 8,192 after preprocessing) are grouped into G = 512
neighbourhoods of K = 32 points around farthest-point-sampled centres. A mini-PointNet (PointBERT-style:
shared MLP -> max-pool -> concat the global feature -> shared MLP -> max-pool) embeds each group; a linear
layer maps it to width D, and a small MLP of the centre coordinates gives the learnable position embedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from unialign.backbone.clip import VisionTransformer
from unialign.config import VisionConfig
from unialign.errors import ConfigError, InputError
from unialign.modalities.base import MODALITY_TOKENIZERS, ModalityTokenizer
from unialign.ops.pointops import group_points


@dataclass(frozen=True)
class PointCloudOptions:
    """Point-cloud tokenizer options."""

    num_groups: int = 512  # G centres (FPS)
    group_size: int = 32  # K neighbours per centre (kNN)
    in_channels: int = 3  # 3 (xyz) or 6 (xyz + rgb)
    encoder_dim: int = 256  # mini-PointNet output width before the projection to D

    def __post_init__(self) -> None:
        if self.in_channels < 3 or self.num_groups < 1 or self.group_size < 1:
            raise ConfigError(f"invalid point-cloud tokenizer options {self}")


class MiniPointNet(nn.Module):
    """Per-group encoder: (M, K, C) -> (M, out), order-invariant within each group."""

    def __init__(self, in_channels: int, out_dim: int) -> None:
        super().__init__()
        self.first = nn.Sequential(
            nn.Linear(in_channels, 128), nn.BatchNorm1d(128), nn.ReLU(inplace=True), nn.Linear(128, 256)
        )
        self.second = nn.Sequential(
            nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Linear(512, out_dim)
        )

    @staticmethod
    def _shared(mlp: nn.Sequential, x: Tensor) -> Tensor:
        """Apply a point-wise MLP with BatchNorm to x (M, K, C) -> (M, K, C')."""
        m, k, _ = x.shape
        return mlp(x.reshape(m * k, -1)).reshape(m, k, -1)

    def forward(self, groups: Tensor) -> Tensor:
        f = self._shared(self.first, groups)  # (M, K, 256)
        g = f.max(dim=1, keepdim=True).values.expand_as(f)  # (M, K, 256) global feature of each group
        f = self._shared(self.second, torch.cat([g, f], dim=-1))  # (M, K, out)
        return f.max(dim=1).values  # (M, out)


@MODALITY_TOKENIZERS.register("pointcloud")
class PointCloudTokenizer(ModalityTokenizer):
    """Points (B, N, C) -> (B, 1 + G, D)."""

    Options = PointCloudOptions
    input_shape: ClassVar[str] = "(B, N, C) points, C = 3 (xyz) or 6 (xyz+rgb)"
    input_ndim: ClassVar[int] = 3

    def __init__(self, name: str, options: PointCloudOptions, vision: VisionConfig) -> None:
        super().__init__(name, options, vision)
        self.encoder = MiniPointNet(options.in_channels, options.encoder_dim)
        self.proj = nn.Linear(options.encoder_dim, vision.width)
        self.pos_mlp = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, vision.width))

    def check_input(self, x: Tensor) -> None:
        super().check_input(x)
        o = self.options
        if x.shape[2] != o.in_channels:
            raise InputError(f"{self.name}: expected {o.in_channels} channels in (B, N, C), got {tuple(x.shape)}")
        if x.shape[1] < max(o.num_groups, o.group_size):
            raise InputError(
                f"{self.name}: {x.shape[1]} points; need at least {max(o.num_groups, o.group_size)} to group"
            )

    def tokens(self, x: Tensor, base: VisionTransformer) -> Tensor:
        o = self.options
        centres, groups = group_points(x, o.num_groups, o.group_size)  # (B, G, 3), (B, G, K, C)
        b, g, k, c = groups.shape
        feats = self.encoder(groups.reshape(b * g, k, c).to(x.dtype)).reshape(b, g, -1)  # (B, G, enc)
        tokens = self.proj(feats) + self.pos_mlp(centres.to(x.dtype))  # (B, G, D)
        return base.prepend_cls(tokens)
