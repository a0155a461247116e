"""Image: CLIP's own frozen patch embedding, class token and 2-D position table (supplement §2.1)."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from unialign.backbone.clip import VisionTransformer
from unialign.modalities.base import MODALITY_TOKENIZERS, ModalityTokenizer


@MODALITY_TOKENIZERS.register("image")
class ImageTokenizer(ModalityTokenizer):
    """Normalised RGB (B, 3, H, W) -> (B, 1 + (H/P)(W/P), D); position table resampled for other sizes.

    Holds no parameters of its own: every weight is the frozen CLIP tokenizer's.
    """

    input_shape: ClassVar[str] = "(B, 3, H, W) normalised RGB"
    input_ndim: ClassVar[int] = 4
    channels: ClassVar[tuple[int, int]] = (1, 3)

    def tokens(self, x: Tensor, base: VisionTransformer) -> Tensor:
        return base.embed_image(x)
