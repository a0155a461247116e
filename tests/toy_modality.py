"""A new modality in one file: a toy 'sensor' tokenizer (B, T, 6) -> tokens. Used by test_extend.py.

This is everything a new modality needs: an options dataclass, a registered tokenizer class, and an
entry under ``modalities:`` in the model config. The model class is not edited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from unialign.backbone.clip import VisionTransformer
from unialign.config import VisionConfig
from unialign.modalities.base import MODALITY_TOKENIZERS, LearnedPosTokenizer


@dataclass(frozen=True)
class SensorOptions:
    channels: int = 6  # e.g. IMU accelerometer + gyroscope
    max_steps: int = 32


@MODALITY_TOKENIZERS.register("toy-sensor")
class SensorTokenizer(LearnedPosTokenizer):
    Options = SensorOptions
    input_shape: ClassVar[str] = "(B, T, C) sensor readings"
    input_ndim: ClassVar[int] = 3

    def __init__(self, name: str, options: SensorOptions, vision: VisionConfig) -> None:
        super().__init__(name, options, vision, num_positions=options.max_steps)
        self.embed = nn.Linear(options.channels, vision.width)

    def tokens(self, x: Tensor, base: VisionTransformer) -> Tensor:
        return self.add_pos_and_cls(self.embed(x), base)
