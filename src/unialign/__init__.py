"""unialign: align image, text, video, depth, 3-D point clouds and audio in one model.

A frozen pretrained CLIP ViT is shared by every modality and adapted by a modality-aware mixture of LoRA
experts (Zhou et al., "UniAlign: Scaling Multimodal Alignment within One Unified Model").
"""

from unialign.checkpoint import load_checkpoint, save_checkpoint
from unialign.config import ModelConfig, list_architectures, list_models, load_model_config
from unialign.errors import CheckpointError, ConfigError, InputError, UniAlignError
from unialign.factory import create_model
from unialign.modalities import MODALITY_TOKENIZERS
from unialign.model import UniAlign

__version__ = "0.1.0"

load = load_checkpoint  # ``unialign.load(checkpoint_dir, base=None)``: a ready model


def list_modalities() -> list[str]:
    """Registered modality tokenizers, plus ``text`` (the frozen CLIP text tower)."""
    return sorted(MODALITY_TOKENIZERS.names() + ["text"])


__all__ = [
    "CheckpointError",
    "ConfigError",
    "InputError",
    "ModelConfig",
    "UniAlign",
    "UniAlignError",
    "__version__",
    "create_model",
    "list_architectures",
    "list_modalities",
    "list_models",
    "load",
    "load_checkpoint",
    "load_model_config",
    "save_checkpoint",
]
