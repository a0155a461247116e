"""Modality tokenizers, one file each, registered by name in :data:`MODALITY_TOKENIZERS`."""

from unialign.modalities import audio, depth, image, pointcloud, video  # noqa: F401  (registration)
from unialign.modalities.base import MODALITY_TOKENIZERS, ModalityTokenizer, build_tokenizer

__all__ = ["MODALITY_TOKENIZERS", "ModalityTokenizer", "build_tokenizer"]
