"""Audio: log-mel frames embedded by a 1-D convolution over time, learned positions (supplement §2.1).

Input is a Kaldi-style filterbank (B, T, F): T frames of 10 ms, F = 128 mel bins. A Conv1d with F input
channels, kernel ``patch_frames`` and stride ``stride`` turns it into (T - k) / s + 1 tokens of width D
(5 s = 498 frames -> 61 tokens with the defaults); a learned position table and CLIP's class token follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from unialign.backbone.clip import VisionTransformer
from unialign.config import VisionConfig
from unialign.errors import ConfigError, InputError
from unialign.modalities.base import MODALITY_TOKENIZERS, LearnedPosTokenizer


@dataclass(frozen=True)
class AudioOptions:
    """Audio tokenizer options."""

    n_mels: int = 128  # mel bins F of the filterbank
    patch_frames: int = 16  # convolution kernel along time (frames)
    stride: int = 8  # convolution stride along time (frames)
    max_frames: int = 1024  # longest input (10.24 s at a 10 ms hop); sizes the position table

    def __post_init__(self) -> None:
        if min(self.n_mels, self.patch_frames, self.stride) < 1 or self.max_frames < self.patch_frames:
            raise ConfigError(f"invalid audio tokenizer options {self}")

    def num_tokens(self, frames: int) -> int:
        """Tokens produced from `frames` frames."""
        return (frames - self.patch_frames) // self.stride + 1


@MODALITY_TOKENIZERS.register("audio")
class AudioTokenizer(LearnedPosTokenizer):
    """Log-mel filterbank (B, T, F) -> (B, 1 + (T - k) / s + 1, D)."""

    Options = AudioOptions
    input_shape: ClassVar[str] = "(B, T, F) log-mel frames"
    input_ndim: ClassVar[int] = 3

    def __init__(self, name: str, options: AudioOptions, vision: VisionConfig) -> None:
        super().__init__(name, options, vision, num_positions=options.num_tokens(options.max_frames))
        self.conv = nn.Conv1d(options.n_mels, vision.width, kernel_size=options.patch_frames, stride=options.stride)

    def check_input(self, x: Tensor) -> None:
        super().check_input(x)
        o = self.options
        if x.shape[2] != o.n_mels:
            raise InputError(f"{self.name}: expected {o.n_mels} mel bins in (B, T, F), got shape {tuple(x.shape)}")
        if not o.patch_frames <= x.shape[1] <= o.max_frames:
            raise InputError(
                f"{self.name}: {x.shape[1]} frames; this tokenizer takes {o.patch_frames} to {o.max_frames}"
            )

    def tokens(self, x: Tensor, base: VisionTransformer) -> Tensor:
        y = self.conv(x.transpose(1, 2)).transpose(1, 2)  # (B, F, T) -> (B, D, L) -> (B, L, D)
        return self.add_pos_and_cls(y, base)
